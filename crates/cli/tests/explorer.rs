//! The explorer in headless Chromium (driven over WebDriver by `fantoccini` and the system
//! `chromedriver`) against the live network `chipledger demo` starts and fills: four validator
//! processes, a provisioned fleet with a finished firmware rollout, sensors whose records a
//! gateway committed, and the access story (offer, purchase, key release, revocation, command).
//! Each page loads with that data (what to expect is read from the JSON API, never hard-coded),
//! the search box finds a device, the device page shows its attested version and verifies the
//! device's state in the browser, the transaction and grant pages verify their proofs, proofs
//! a test hook tampered with show the failure, the network page updates live, no page logs a
//! console error, and every page leaves a screenshot under `target/explorer-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages; `scripts/test.sh` installs them).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::browser::Browser;
use chipledger_cli::client::Client;
use fantoccini::Locator;
use serde_json::{Value, json};

/// The demo's ports: API 27070..27073, p2p 27170.., MQTT 27270, record API 27271, key service
/// 27272 (below Linux's ephemeral range, so no outgoing connection holds them).
const BASE_PORT: u16 = 27070;
/// The demo's rollout seed (which devices fail), for a repeatable run.
const ROLLOUT_SEED: &str = "7";
/// What `chipledger demo` prints once its network is up and filled.
const DEMO_READY: &str = "the network is running";
/// How long the demo may take to start and fill its network (a debug build on 2 cores).
const DEMO_WAIT: Duration = Duration::from_secs(600);
/// Desktop and phone viewport widths (the 1280 px and a phone's 375 px).
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 812);
/// The stream the demo's sensors publish.
const SENSOR_STREAM: &str = "telemetry";

#[test]
fn explorer_pages_show_the_demo_and_verify_proofs_in_the_browser() -> Result<()> {
    let started = Instant::now();
    let demo = Demo::start()?;
    eprintln!("demo network ready after {:?}", started.elapsed());
    let facts = Facts::read(&demo.client)?;
    let browser = Browser::start(DESKTOP)?;
    pages(&browser, &demo, &facts)?;
    eprintln!("explorer test done after {:?}", started.elapsed());
    Ok(())
}

/// `chipledger demo` in a temporary directory, with the node test hooks on; stopped (SIGTERM,
/// which stops its validators, gateway and key service) when dropped.
struct Demo {
    child: Child,
    dir: PathBuf,
    base: String,
    client: Client,
    validators: Vec<String>,
}

impl Demo {
    fn start() -> Result<Demo> {
        let dir = std::env::temp_dir().join(format!("chipledger-test-explorer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_chipledger"))
            .args(["demo", "--dir", &dir.display().to_string()])
            .args(["--base-port", &BASE_PORT.to_string(), "--rollout-seed", ROLLOUT_SEED])
            .env("CHIPLEDGER_TEST_HOOKS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting chipledger demo")?;
        let stdout = child.stdout.take().context("the demo's stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("demo | {line}");
                if line.contains(DEMO_READY) {
                    let _ = tx.send(());
                }
            }
        });
        let base = format!("http://127.0.0.1:{BASE_PORT}");
        let mut demo = Demo {
            child,
            dir,
            client: Client::new(&base)?,
            base,
            validators: Vec::new(),
        };
        let deadline = Instant::now() + DEMO_WAIT;
        while rx.recv_timeout(Duration::from_millis(500)).is_err() {
            if let Some(status) = demo.child.try_wait()? {
                bail!("chipledger demo exited ({status}) before its network was ready");
            }
            if Instant::now() > deadline {
                bail!("chipledger demo was not ready within {DEMO_WAIT:?}");
            }
        }
        let validators: Value = demo.client.get_json("/v1/validators")?;
        demo.validators = validators
            .as_array()
            .context("validators")?
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect();
        Ok(demo)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the demo put on the ledger, read from the API: what the pages must show.
struct Facts {
    /// A device with accepted evidence, and the version it attested.
    attested: (String, String),
    /// A sensor with committed records.
    sensor: String,
    total_devices: u64,
    /// The newest release: id, version, what it fixes.
    release: (String, String, Vec<String>),
    /// A rollout of it: id, fleet.
    rollout: (String, String),
    /// The city's first grant: id and purpose.
    grant: (String, String),
    /// The organisation that owns the fleet.
    owner: String,
}

impl Facts {
    fn read(c: &Client) -> Result<Facts> {
        let stats: Value = c.get_json("/v1/devices/stats")?;
        let total_devices = stats["total"].as_u64().context("device total")?;
        let (version, _) = stats["by_attested_version"]
            .as_object()
            .and_then(|m| m.iter().max_by_key(|(_, n)| n.as_u64()))
            .context("an attested version")?;
        let page: Value = c.get_json(&format!("/v1/devices?attested_version={version}&limit=1"))?;
        let attested_id = page["devices"][0]["id"]
            .as_str()
            .context("an attested device")?
            .to_string();
        let owner = page["devices"][0]["owner"].as_str().context("its owner")?.to_string();
        let releases: Value = c.get_json("/v1/firmware/releases")?;
        let newest = releases["releases"]
            .as_array()
            .and_then(|r| r.iter().max_by_key(|x| x["published_height"].as_u64()))
            .context("a release")?;
        let release_id = newest["id"].as_str().context("release id")?.to_string();
        let fixes = newest["fixes"]
            .as_array()
            .map(|f| f.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let rollouts: Value = c.get_json("/v1/firmware/rollouts")?;
        let rollout = rollouts["rollouts"]
            .as_array()
            .and_then(|r| r.iter().find(|x| x["release"] == newest["id"]))
            .context("a rollout of the newest release")?;
        let grants: Value = c.get_json(&format!("/v1/access/grants?owner={owner}"))?;
        let grant = &grants["grants"][0];
        Ok(Facts {
            attested: (attested_id, version.clone()),
            sensor: sensor_with_records(c)?,
            total_devices,
            release: (
                release_id,
                newest["version"].as_str().context("version")?.to_string(),
                fixes,
            ),
            rollout: (
                rollout["id"].as_str().context("rollout id")?.to_string(),
                format!(
                    "{}/{}",
                    rollout["owner"].as_str().unwrap_or(""),
                    rollout["fleet"].as_str().unwrap_or("")
                ),
            ),
            grant: (
                grant["id"].as_str().context("a grant of the owner")?.to_string(),
                grant["purpose"].as_str().context("its purpose")?.to_string(),
            ),
            owner,
        })
    }
}

/// A device whose data chain has records (the demo's sensors), found by its chain heads.
fn sensor_with_records(c: &Client) -> Result<String> {
    let mut after = String::new();
    loop {
        let page: Value = c.get_json(&format!("/v1/devices?limit=200{after}"))?;
        for d in page["devices"].as_array().context("devices")? {
            let id = d["id"].as_str().context("id")?;
            if let Ok(data) = c.get_json::<Value>(&format!("/v1/data/devices/{id}"))
                && data["records"].as_u64().unwrap_or(0) > 0
            {
                return Ok(id.to_string());
            }
        }
        match page["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => bail!("no device with committed records"),
        }
    }
}

/// Every page, in the order a visitor would take.
fn pages(b: &Browser, d: &Demo, f: &Facts) -> Result<()> {
    let base = d.base.as_str();
    network_page(b, d)?;
    live_updates(b, d)?;
    b.open(base, "#/fleet", "fleet")?;
    b.wait_text(
        "the fleet's counts and attested version",
        "[data-test=page-fleet]",
        |s| s.contains(&f.total_devices.to_string()) && s.contains(&f.attested.1) && s.contains(&f.owner),
    )?;
    b.finish_page("fleet")?;
    b.open(base, "#/firmware", "firmware")?;
    b.wait_text("the newest release", "[data-test=releases-table]", |s| {
        s.contains(&f.release.1) && f.release.2.iter().all(|cve| s.contains(cve.as_str()))
    })?;
    b.wait_text("its rollout", "[data-test=rollouts-table]", |s| {
        s.contains(&f.rollout.1)
    })?;
    b.finish_page("firmware")?;
    detail_pages(b, base, f)?;
    search_finds_device(b, base, &f.sensor)?;
    device_page(b, d, &f.attested)?;
    unknown_device(b, base)?;
    b.open(base, &format!("#/audit?org={}", f.owner), "audit")?;
    b.wait_text("the grant in the owner's trail", "[data-test=audit-table]", |s| {
        s.contains(&f.grant.0) && s.contains("key-release")
    })?;
    b.finish_page("audit")?;
    tx_page(b, d, &f.grant.0)?;
    phone_page(b, d)
}

/// Release, rollout, organisation and grant pages; the grant verifies its state proof.
fn detail_pages(b: &Browser, base: &str, f: &Facts) -> Result<()> {
    b.open(base, &format!("#/release/{}", f.release.0), "release")?;
    let v = b.wait_text("the release version", "[data-test=release-version]", |s| {
        !s.trim().is_empty()
    })?;
    assert_eq!(v.trim(), f.release.1);
    b.wait_text("its rollout", "[data-test=release-rollouts-table]", |s| {
        s.contains(&f.rollout.1)
    })?;
    b.finish_page("release")?;
    b.open(base, &format!("#/rollout/{}", f.rollout.0), "rollout")?;
    b.wait_text("the rollout's devices", "[data-test=rollout-devices-table]", |s| {
        s.contains("Firmware updated")
    })?;
    b.finish_page("rollout")?;
    b.open(base, &format!("#/org/{}", f.owner), "org")?;
    b.wait_text("the owner's grants", "[data-test=org-grants-given]", |s| {
        s.contains(&f.grant.1)
    })?;
    b.finish_page("org")?;
    b.open(base, &format!("#/grant/{}", f.grant.0), "grant")?;
    let status = b.wait_text("the grant's verification", "[data-test=grant-verify-status]", settled)?;
    assert!(status.starts_with("verified against checkpoint"), "grant: {status}");
    b.wait_text("the purpose", "[data-test=grant-purpose]", |s| s.contains(&f.grant.1))?;
    b.finish_page("grant")
}

/// At a phone's width the network page fits without horizontal scrolling.
fn phone_page(b: &Browser, d: &Demo) -> Result<()> {
    b.set_size(PHONE)?;
    b.open(&d.base, "#/network", "network")?;
    b.wait_text("network at 375 px", "[data-test=page-network]", |s| {
        s.contains(&d.validators[0])
    })?;
    let px = |script: &str| -> Result<u64> { b.execute(script, json!([]))?.as_u64().context("a pixel count") };
    let inner = px("return window.innerWidth")?;
    let width = px("return document.documentElement.scrollWidth")?;
    assert_eq!(inner, u64::from(PHONE.0), "the phone viewport");
    assert!(
        width <= inner,
        "no horizontal scroll at 375 px: scrollWidth {width}, innerWidth {inner}"
    );
    b.finish_page("network-375")
}

/// Validators by name and a height above zero.
fn network_page(b: &Browser, d: &Demo) -> Result<()> {
    b.open(&d.base, "#/network", "network")?;
    b.probe_console()?;
    let text = b.wait_text("validators", "[data-test=page-network]", |s| {
        d.validators.iter().all(|n| s.contains(n.as_str()))
    })?;
    let height = d.client.status()?.height;
    assert!(height > 0);
    assert!(
        numbers(&text).any(|n| n > 0 && n <= height + 10),
        "the network page shows no height > 0: {text}"
    );
    b.finish_page("network")
}

/// The network page's height follows the chain without a reload.
fn live_updates(b: &Browser, d: &Demo) -> Result<()> {
    let shown = || -> Result<u64> {
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).collect::<String>();
        let text = b.wait_text("the height", "[data-test=status-height]", |s| !digits(s).is_empty())?;
        Ok(digits(&text).parse()?)
    };
    let first = shown()?;
    let target = d.client.status()?.height.max(first) + 2;
    b.wait("the height to move on without a reload", || {
        Ok((shown()? >= target).then_some(()))
    })?;
    Ok(())
}

/// Typing a device id in the search box and Enter opens that device's page.
fn search_finds_device(b: &Browser, base: &str, id: &str) -> Result<()> {
    b.open(base, "#/network", "network")?;
    let search = b.block(b.wd.find(Locator::Css("[data-test=search]")))?;
    b.block(search.send_keys(&format!("{id}\u{E007}")))?;
    let url = b.wait("the device route", || {
        let url = b.block(b.wd.current_url())?;
        Ok(url.fragment().is_some_and(|f| f.starts_with("/device/")).then_some(url))
    })?;
    assert_eq!(url.fragment(), Some(format!("/device/{id}").as_str()));
    b.wait_text("the searched device", "[data-test=page-device]", |s| s.contains(id))?;
    b.wait_text("its data chain", "[data-test=device-streams-table]", |s| {
        s.contains(SENSOR_STREAM)
    })?;
    b.finish_page("search")
}

/// The attested device's page shows the version its evidence reported and verifies the
/// device's state in the browser; a device record the node altered (test hook) fails.
fn device_page(b: &Browser, d: &Demo, (id, version): &(String, String)) -> Result<()> {
    b.open(&d.base, &format!("#/device/{id}"), "device")?;
    let shown = b.wait_text("the attested version", "[data-test=device-attested-version]", |s| {
        !s.trim().is_empty()
    })?;
    assert_eq!(shown.trim(), version, "attested version shown");
    let status = b.wait_text("the device's verification", "[data-test=device-verify-status]", settled)?;
    let (_, k, n) = parse_verified(&status).with_context(|| format!("device-verify-status: {status:?}"))?;
    assert_eq!(n, d.validators.len(), "{status}");
    assert!(k >= quorum(n), "{status}");
    assert!(status.contains(&format!("attested firmware {version}")), "{status}");
    b.finish_page("device")?;

    b.open(&d.base, &format!("#/device/{id}?proof=tampered"), "device")?;
    let status = b.wait_text("the failed verification", "[data-test=device-verify-status]", settled)?;
    assert!(
        status.trim().starts_with("verification failed: "),
        "an altered device record must fail: {status:?}"
    );
    b.finish_page("device-tampered")
}

/// An id the ledger does not know is an answer on the page, not an error.
fn unknown_device(b: &Browser, base: &str) -> Result<()> {
    let id = "00".repeat(20);
    b.open(base, &format!("#/device/{id}"), "device")?;
    b.wait_text("the unknown device", "[data-test=device-unknown]", |s| s.contains(&id))?;
    b.finish_page("device-unknown")
}

/// The grant's transaction proof verifies in the browser; the tampered one fails.
fn tx_page(b: &Browser, d: &Demo, hash: &str) -> Result<()> {
    b.open(&d.base, &format!("#/tx/{hash}"), "tx")?;
    let status = b.wait_text("the verification", "[data-test=verify-status]", settled)?;
    let (size, k, n) = parse_verified(&status).with_context(|| format!("verify-status: {status:?}"))?;
    assert!(size > 0, "{status}");
    assert_eq!(n, d.validators.len(), "{status}");
    assert!(k >= quorum(n) && k <= n, "{status}");
    b.wait_text("the decoded grant", "[data-test=tx-kind]", |s| {
        s.contains("Purchase") || s.contains("GrantAccess")
    })?;
    b.finish_page("tx")?;

    b.open(&d.base, &format!("#/tx/{hash}?proof=tampered"), "tx")?;
    let status = b.wait_text("the failed verification", "[data-test=verify-status]", settled)?;
    assert!(
        status.trim().starts_with("verification failed: "),
        "a tampered proof must fail: {status:?}"
    );
    b.finish_page("tx-tampered")
}

/// 2f+1 of n = 3f+1.
fn quorum(n: usize) -> usize {
    2 * ((n - 1) / 3) + 1
}

/// A final verification verdict (either way), not a "verifying…" placeholder.
fn settled(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("verified against") || s.starts_with("verification failed")
}

/// "verified against checkpoint N signed by k of n validators[ …]" → (N, k, n).
fn parse_verified(s: &str) -> Option<(u64, usize, usize)> {
    let w: Vec<&str> = s.split_whitespace().collect();
    match w.as_slice() {
        [
            "verified",
            "against",
            "checkpoint",
            size,
            "signed",
            "by",
            k,
            "of",
            n,
            validators,
            ..,
        ] if validators.starts_with("validators") => Some((size.parse().ok()?, k.parse().ok()?, n.parse().ok()?)),
        _ => None,
    }
}

/// The decimal numbers in `text`.
fn numbers(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty() && w.len() < 12)
        .filter_map(|w| w.parse().ok())
}

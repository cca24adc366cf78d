//! The explorer in headless Chromium (driven over WebDriver by `fantoccini` and the system
//! `chromedriver`) against four validator processes holding real data: simulated sensors with
//! committed records, one attested chip and one access grant. Each page loads with that data,
//! the search box finds a device, the transaction page verifies its proof in the browser (and
//! shows the failure for a proof the test hook tampered with), no page logs a console error,
//! and every page leaves a screenshot under the workspace's `target/explorer-screenshots/`.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages; `scripts/test.sh` installs them).

mod data_support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::data_net::{DATA_MODEL, MANUFACTURER, OWNER, org_key, org_key_path, register_sim_devices};
use chipledger_cli::device_cmd::{
    DEFAULT_FIRMWARE_IMAGE, attest_payload, chip_device_id, provision_chip, register_payload, submit_final,
};
use chipledger_cli::simulate::SIM_STREAM;
use chipledger_device::chip::Firmware;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_types::access_tx::{AccessScope, GrantAccess, Grantee};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::Payload;
use data_support::{TestNet, WAIT, poll};
use fantoccini::{Client as WebDriver, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// API ports 36070..36073, p2p 36170.. (issue 7's port plan: lead).
const BASE_PORT: u16 = 36070;
const SEED: u64 = 73;
const SENSORS: u64 = 3;
/// `fleet simulate --rate 2 --seconds 1`: records per sensor.
const RECORDS: u64 = 2;
/// The gateway that commits the sensors' records.
const GATEWAY: &str = "gw-explorer";
/// The firmware the attested chip reports: a version only the attestation can put on a page.
const FIRMWARE: Firmware<'static> = Firmware {
    name: "chipledger-fw",
    version: "3.7.1",
    svn: 3,
    image: DEFAULT_FIRMWARE_IMAGE,
};
/// A release the vendor publishes for the sensors' model (shown on the firmware page).
const RELEASE_VERSION: &str = "4.2.0";
const RELEASE_FIXES: &str = "CVE-2026-7007";
/// The genesis organisation that publishes firmware.
const PUBLISHER: &str = "vendor";
/// The organisation the city grants its sensors to.
const GRANTEE: &str = "vendor";
const GRANT_PURPOSE: &str = "explorer test study";
const DAY_MS: u64 = 24 * 3600 * 1000;
/// How long a page may take to show what the test looks for (it polls the API itself).
const PAGE_WAIT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to listen.
const DRIVER_WAIT: Duration = Duration::from_secs(20);
/// Desktop and phone viewport widths (the 1280 px and a phone's 375 px).
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (375, 812);

/// What the test put on the ledger, for the pages to show.
struct Fixture {
    sensors: Vec<DeviceId>,
    attested: DeviceId,
    grant_tx: String,
}

#[test]
fn explorer_pages_show_real_data_and_verify_proofs_in_the_browser() -> Result<()> {
    let started = Instant::now();
    let t = TestNet::start_with_env("explorer", BASE_PORT, &[("CHIPLEDGER_TEST_HOOKS", "1")])?;
    let fx = fixture(&t)?;
    eprintln!("ledger data ready after {:?}", started.elapsed());
    let base = t.net.apis[0].trim_end_matches('/').to_string();
    let browser = Browser::start(DESKTOP)?;
    pages(&browser, &t, &base, &fx)?;
    eprintln!("explorer test done after {:?}", started.elapsed());
    Ok(())
}

/// Sensors with committed records, one attested chip, one grant.
fn fixture(t: &TestNet) -> Result<Fixture> {
    let sensors = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..SENSORS)?;
    let attested = attested_chip(t)?;
    simulate_records(t)?;
    let grant_tx = grant(t, &sensors)?;
    publish_release(t)?;
    Ok(Fixture {
        sensors,
        attested,
        grant_tx,
    })
}

/// A chip of the data CA, registered to the city and attested with [`FIRMWARE`].
fn attested_chip(t: &TestNet) -> Result<DeviceId> {
    let mut chip = provision_chip(&t.data.ca, MANUFACTURER, "data-sensor")?;
    let id = chip_device_id(&chip);
    let register = register_payload(t.data.ca.id, &chip, DATA_MODEL, OWNER)?;
    submit_final(&t.client, MANUFACTURER, &org_key(&t.net, MANUFACTURER)?, register)?;
    let nonce = hex::decode(t.client.challenge(&id.to_string())?.nonce)?;
    let evidence = attest_payload(&mut chip, DATA_MODEL, &FIRMWARE, &nonce)?;
    submit_final(&t.client, OWNER, &org_key(&t.net, OWNER)?, evidence)?;
    Ok(id)
}

/// A gateway and `fleet simulate` for a second: every sensor's records committed.
fn simulate_records(t: &TestNet) -> Result<()> {
    let broker = free_local_addr()?;
    let gateway = t.start_gateway(GATEWAY, broker, &["--batch-ms", "200"])?;
    let sim = Command::new(&t.exe)
        .args(["fleet", "simulate", "--devices", &SENSORS.to_string()])
        .args(["--rate", &RECORDS.to_string(), "--seconds", "1"])
        .args(["--seed", &SEED.to_string(), "--broker", &broker.to_string()])
        .args(["--ack-wait-ms", "30000", "--json"])
        .output()?;
    if !sim.status.success() {
        bail!("fleet simulate: {}", String::from_utf8_lossy(&sim.stderr));
    }
    poll("every record committed", WAIT, || {
        Ok((t.gateway(GATEWAY)?.records >= SENSORS * RECORDS).then_some(()))
    })?;
    gateway.kill()
}

/// `chipledger firmware key-gen / key-register / publish` as [`PUBLISHER`].
fn publish_release(t: &TestNet) -> Result<()> {
    let key = path_str(&t.dir.join("vendor-fw.pem"));
    let image = path_str(&t.dir.join("release.bin"));
    std::fs::write(&image, b"explorer test firmware image")?;
    firmware(t, &["key-gen", "--out", &key])?;
    let org_key = path_str(&org_key_path(&t.net, PUBLISHER));
    let signer = ["--org", PUBLISHER, "--org-key", &org_key, "--api", &t.net.apis[0]];
    firmware(t, &[&["key-register", "--key", &key][..], &signer].concat())?;
    let model = DATA_MODEL.to_string();
    let publish = [
        &["publish", "--image", &image, "--version", RELEASE_VERSION][..],
        &["--model", &model, "--sequence", "1", "--min", "0.0.0", "--max", "9.9.9"],
        &["--key", &key, "--fixes", RELEASE_FIXES],
        &signer,
    ]
    .concat();
    firmware(t, &publish)?;
    Ok(())
}

/// `chipledger firmware <args> --json`; its stdout as JSON.
fn firmware(t: &TestNet, args: &[&str]) -> Result<Value> {
    let out = Command::new(&t.exe).arg("firmware").args(args).arg("--json").output()?;
    if !out.status.success() {
        bail!("firmware {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("output of firmware {args:?}"))
}

fn path_str(p: &std::path::Path) -> String {
    p.display().to_string()
}

/// The city grants [`GRANTEE`] its sensors' data for a day; the grant's transaction hash.
fn grant(t: &TestNet, sensors: &[DeviceId]) -> Result<String> {
    let now = chipledger_node::metrics::now_ms();
    let mut devices = sensors.to_vec();
    devices.sort();
    let payload = Payload::GrantAccess(GrantAccess {
        grantee: Grantee::Org(GRANTEE.into()),
        scope: AccessScope {
            devices,
            tags: Vec::new(),
            streams: Vec::new(),
            from_ms: 0,
            until_ms: now + DAY_MS,
        },
        purpose: GRANT_PURPOSE.into(),
        expires_ms: now + DAY_MS,
        price: None,
    });
    Ok(submit_final(&t.client, OWNER, &org_key(&t.net, OWNER)?, payload)?.hash)
}

/// Every page, in the order a visitor would take.
fn pages(b: &Browser, t: &TestNet, base: &str, fx: &Fixture) -> Result<()> {
    network_page(b, t, base)?;
    let sensor = fx.sensors[0].to_string();
    b.open(base, "#/fleet", "fleet")?;
    b.wait_text("sensors and the attested version", "[data-test=page-fleet]", |s| {
        s.contains(&sensor[..16]) && s.contains(FIRMWARE.version)
    })?;
    b.finish_page("fleet")?;
    b.open(base, "#/firmware", "firmware")?;
    b.wait_text("the release", "[data-test=page-firmware]", |s| {
        s.contains(RELEASE_VERSION) && s.contains(RELEASE_FIXES)
    })?;
    b.finish_page("firmware")?;
    search_finds_device(b, base, &sensor)?;
    device_page(b, base, &fx.attested)?;
    b.open(base, &format!("#/audit?org={OWNER}"), "audit")?;
    b.wait_text("the grant in the owner's trail", "[data-test=page-audit]", |s| {
        s.contains(GRANT_PURPOSE)
    })?;
    b.finish_page("audit")?;
    wait_checkpointed(t, &fx.grant_tx)?;
    tx_page(b, base, &fx.grant_tx, t.net.names.len())?;
    phone_page(b, t, base)
}

/// Waits until a final checkpoint covers `hash` (the page verifies against that checkpoint).
fn wait_checkpointed(t: &TestNet, hash: &str) -> Result<()> {
    poll("a final checkpoint over the grant", WAIT, || {
        let tx: Value = t.client.get_json(&format!("/v1/tx/{hash}"))?;
        Ok(tx["proof"]["checkpoint"].is_string().then_some(()))
    })
}

/// At a phone's width the network page fits without horizontal scrolling.
fn phone_page(b: &Browser, t: &TestNet, base: &str) -> Result<()> {
    b.set_size(PHONE)?;
    b.open(base, "#/network", "network")?;
    b.wait_text("network at 375 px", "[data-test=page-network]", |s| {
        s.contains(&t.net.names[0])
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
fn network_page(b: &Browser, t: &TestNet, base: &str) -> Result<()> {
    b.open(base, "#/network", "network")?;
    b.probe_console()?;
    let text = b.wait_text("validators", "[data-test=page-network]", |s| {
        t.net.names.iter().all(|n| s.contains(n.as_str()))
    })?;
    let height = t.client.status()?.height;
    assert!(height > 0);
    assert!(
        numbers(&text).any(|n| n > 0 && n <= height + 10),
        "the network page shows no height > 0: {text}"
    );
    b.finish_page("network")
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
        s.contains(SIM_STREAM) && s.contains(GATEWAY)
    })?;
    b.finish_page("search")
}

/// The attested chip's page shows the version its evidence reported.
fn device_page(b: &Browser, base: &str, id: &DeviceId) -> Result<()> {
    b.open(base, &format!("#/device/{id}"), "device")?;
    b.wait_text("the device id", "[data-test=page-device]", |s| {
        s.contains(&id.to_string())
    })?;
    let version = b.wait_text("the attested version", "[data-test=device-attested-version]", |s| {
        !s.trim().is_empty()
    })?;
    assert!(
        version.contains(FIRMWARE.version),
        "attested version shown: {version:?}"
    );
    b.finish_page("device")
}

/// The grant's proof verifies in the browser; the tampered one fails.
fn tx_page(b: &Browser, base: &str, hash: &str, validators: usize) -> Result<()> {
    b.open(base, &format!("#/tx/{hash}"), "tx")?;
    let status = b.wait_text("the verification", "[data-test=verify-status]", settled)?;
    let (size, k, n) = parse_verified(&status).with_context(|| format!("verify-status: {status:?}"))?;
    let quorum = 2 * ((validators - 1) / 3) + 1;
    assert!(size > 0, "{status}");
    assert_eq!(n, validators, "{status}");
    assert!(k >= quorum && k <= n, "{status}");
    b.wait_text("the grant", "[data-test=page-tx]", |s| s.contains(GRANT_PURPOSE))?;
    b.finish_page("tx")?;

    b.open(base, &format!("#/tx/{hash}?proof=tampered"), "tx")?;
    let status = b.wait_text("the failed verification", "[data-test=verify-status]", settled)?;
    assert!(
        status.trim().starts_with("verification failed: "),
        "a tampered proof must fail: {status:?}"
    );
    b.finish_page("tx-tampered")
}

/// A final verification verdict (either way), not a "verifying…" placeholder.
fn settled(s: &str) -> bool {
    let s = s.trim();
    s.starts_with("verified against") || s.starts_with("verification failed")
}

/// "verified against checkpoint N signed by k of n validators" → (N, k, n).
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
            "validators",
        ] => Some((size.parse().ok()?, k.parse().ok()?, n.parse().ok()?)),
        _ => None,
    }
}

/// The decimal numbers in `text`.
fn numbers(text: &str) -> impl Iterator<Item = u64> + '_ {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty() && w.len() < 12)
        .filter_map(|w| w.parse().ok())
}

// ---- the browser ---------------------------------------------------------------------------

/// `chromedriver` on a free port; killed when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start() -> Result<Chromedriver> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(driver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (apt-get install chromium chromium-driver)")?;
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > DRIVER_WAIT {
                bail!("chromedriver did not listen on {port} within {DRIVER_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(driver)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn driver_path() -> PathBuf {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

/// One headless Chromium session; its calls run on a private runtime, so the test stays
/// synchronous like the other process tests.
struct Browser {
    rt: tokio::runtime::Runtime,
    wd: WebDriver,
    /// The session's `/se/log` endpoint (chromedriver's browser console log).
    log_url: String,
    /// Kept for its `Drop` (stops chromedriver after the session ended).
    _driver: Chromedriver,
    http: reqwest::blocking::Client,
}

impl Browser {
    fn start((width, height): (u32, u32)) -> Result<Browser> {
        let driver = Chromedriver::start()?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": { "browser": "ALL" },
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            bail!("capabilities")
        };
        let wd = rt
            .block_on(
                ClientBuilder::new(HttpConnector::new())
                    .capabilities(caps)
                    .connect(&driver.url),
            )
            .context("a WebDriver session")?;
        let session = rt.block_on(wd.session_id())?.context("session id")?;
        let log_url = format!("{}/session/{session}/se/log", driver.url);
        Ok(Browser {
            rt,
            wd,
            log_url,
            _driver: driver,
            http: reqwest::blocking::Client::new(),
        })
    }

    fn block<T, E: std::error::Error + Send + Sync + 'static>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        Ok(self.rt.block_on(f)?)
    }

    /// Loads `route` (a fresh document each time) and waits for `page-<page>`.
    fn open(&self, base: &str, route: &str, page: &str) -> Result<()> {
        self.block(self.wd.goto("about:blank"))?;
        self.block(self.wd.goto(&format!("{base}/{route}")))?;
        let css = format!("[data-test=page-{page}]");
        let state = self.wait(&format!("{css} ready on {route}"), || {
            let Some(root) = self.block(self.wd.find_all(Locator::Css(&css)))?.into_iter().next() else {
                return Ok(None);
            };
            let state = self.block(root.attr("data-state"))?.unwrap_or_default();
            Ok((state != "loading").then_some((state, root)))
        })?;
        match state {
            (s, _) if s == "ready" => Ok(()),
            (s, root) => bail!("{route}: page state {s}: {}", self.block(root.text())?),
        }
    }

    /// Polls until `f` returns `Some` (at most [`PAGE_WAIT`]).
    fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
        let started = Instant::now();
        loop {
            if let Some(v) = f()? {
                return Ok(v);
            }
            if started.elapsed() > PAGE_WAIT {
                bail!("timed out after {PAGE_WAIT:?} waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The text of the first element matching `css` once `ok` holds for it.
    fn wait_text(&self, what: &str, css: &str, ok: impl Fn(&str) -> bool) -> Result<String> {
        let mut last = String::new();
        let found = self.wait(what, || {
            let Some(el) = self.block(self.wd.find_all(Locator::Css(css)))?.into_iter().next() else {
                return Ok(None);
            };
            last = self.block(el.text())?;
            Ok(ok(&last).then(|| last.clone()))
        });
        found.with_context(|| format!("{css} last read: {last:?}"))
    }

    fn execute(&self, script: &str, args: Value) -> Result<Value> {
        let Value::Array(args) = args else {
            bail!("script arguments")
        };
        self.block(self.wd.execute(script, args))
    }

    fn set_size(&self, (width, height): (u32, u32)) -> Result<()> {
        self.block(self.wd.set_window_size(width, height))
    }

    /// Screenshot to `target/explorer-screenshots/<name>.png`; no console error so far and no
    /// error box on the page (a section that could not be shown).
    fn finish_page(&self, name: &str) -> Result<()> {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let png = self.block(self.wd.screenshot())?;
        std::fs::write(dir.join(format!("{name}.png")), png)?;
        let errors = self.console_errors()?;
        assert!(errors.is_empty(), "console errors on {name}: {errors:#?}");
        let boxes = self.block(self.wd.find_all(Locator::Css("main .error")))?;
        let mut shown = Vec::new();
        for b in boxes {
            shown.push(self.block(b.text())?);
        }
        assert!(shown.is_empty(), "error boxes on {name}: {shown:#?}");
        Ok(())
    }

    /// The console check sees what a page logs: a `console.error`, an uncaught exception and an
    /// unhandled rejection are each reported.
    fn probe_console(&self) -> Result<()> {
        self.console_errors()?;
        let probes = ["probe-console-error", "probe-uncaught", "probe-rejection"];
        self.execute(
            "console.error(arguments[0]); \
             setTimeout(() => { throw new Error(arguments[1]); }); \
             Promise.reject(new Error(arguments[2]));",
            json!(probes),
        )?;
        let mut seen = Vec::new();
        self.wait("the probes in the console log", || {
            seen.extend(self.console_errors()?);
            Ok(probes.iter().all(|p| seen.iter().any(|s| s.contains(p))).then_some(()))
        })
        .with_context(|| format!("the console log does not report errors: {seen:?}"))?;
        assert_eq!(seen.len(), probes.len(), "{seen:?}");
        Ok(())
    }

    /// Warnings and errors in the browser's console log since the last call.
    fn console_errors(&self) -> Result<Vec<String>> {
        let log: Value = self
            .http
            .post(&self.log_url)
            .json(&json!({ "type": "browser" }))
            .send()?
            .error_for_status()?
            .json()?;
        let entries = log["value"].as_array().cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect())
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium quits), also when an assertion failed; then `_driver` goes.
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.wd.clone().close());
    }
}

/// The workspace's `target/explorer-screenshots` (not the shared cargo target dir).
fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/explorer-screenshots")
}

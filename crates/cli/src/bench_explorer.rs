//! `chipledger bench explorer`: the explorer's fleet page over N real devices, measured through
//! the JSON API and in headless Chromium.
//!
//! Four validator processes in a temporary directory (as `bench ledger`); governance adds
//! owners (one per ~2,000 devices, at least two: an owner holds at most 4,096 devices) and
//! grants the manufacturer's CA (`chipledger_cli::fleet_setup`, as the demo); the manufacturer
//! provisions N SoftChips (real DICE DeviceID keys and certificates) and registers them in
//! batches over several models and owners, so every chart has bars. A stall (no registration
//! final for a minute) stops the run with where the next registration stands on each validator.
//! Then: median and p95 latency of the routes the fleet page reads, and in Chromium the time
//! from navigation (or the "Next" click) to `[data-test=page-fleet][data-state=ready]`, with the
//! rendered row count checked to stay within one page.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chipledger_cli::browser::{self, Browser};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, chip_device_id, provision_chip, register_payload};
use chipledger_cli::fleet_setup::{add_org, grant_ca, org_key};
use chipledger_cli::net::LocalNet;
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::ModelRange;
use chipledger_types::tx::{Payload, Role, SignedTx, TxBody, TxHash};
use clap::Args;
use serde_json::{Value, json};

/// The registering manufacturer (a default organisation) and its CA.
const MANUFACTURER: &str = "maker";
const CA_NAME: &str = "CN=Bench Device CA,O=maker";
const MODEL_NAME: &str = "bench-sensor";
/// The models registered (granted range `MODEL_FIRST..=MODEL_FIRST + 99`); see [`model_of`].
const MODEL_FIRST: u32 = 100;
const MODELS: u32 = 4;
/// The owners: a default one and others added by governance; see [`Owners`].
const OWNER: &str = "city";
/// Devices per owner the benchmark plans for: under the ledger's `MAX_DEVICES_PER_OWNER`
/// (4,096; the owner index is one state value), so a large fleet is split across owners.
const DEVICES_PER_OWNER_PLANNED: usize = 4_000;
/// Registrations per `POST /v1/txs` batch.
const BATCH_TXS: usize = 1000;
/// Most registrations submitted but not yet final (the mempool admits 25,000 per organisation).
const MAX_IN_FLIGHT: usize = 10_000;
/// Calls per API route (median and p95 over them).
const API_CALLS: usize = 50;
/// Page loads per browser figure (the median is reported).
const PAGE_LOADS: usize = 5;
/// Devices per fleet page (the explorer's `FLEET_PAGE`): the page never renders more rows.
const FLEET_PAGE: usize = 50;
/// Hex characters of the id-prefix search.
const PREFIX_CHARS: usize = 2;
/// Targets: fleet page ready, API p95.
const TARGET_PAGE_READY_MS: f64 = 1000.0;
const TARGET_API_P95_MS: f64 = 50.0;
/// How long the network may take to start, and to finalize all registrations.
const START_WAIT: Duration = Duration::from_secs(60);
const REGISTER_WAIT: Duration = Duration::from_secs(1800);
/// No new registration for this long is a stall (the benchmark stops and says why).
const STALL_AFTER: Duration = Duration::from_secs(60);
/// Desktop viewport.
const WINDOW: (u32, u32) = (1280, 900);

#[derive(Debug, Args)]
pub struct ExplorerArgs {
    /// Devices to register.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Base port of the benchmark network (API P..P+3, p2p P+100..).
    #[arg(long, default_value_t = 7470)]
    pub base_port: u16,
    #[arg(long)]
    pub json: bool,
}

pub fn explorer(a: ExplorerArgs) -> Result<()> {
    ensure!(a.devices >= 1, "need --devices ≥ 1");
    browser::check_installed()?;
    let dir = std::env::temp_dir().join(format!("chipledger-bench-explorer-{}", std::process::id()));
    let exe = std::env::current_exe()?;
    let mut net = LocalNet::prepare(&dir, &exe, a.base_port, "chipledger-bench-explorer")?;
    let result = net.start_all_ready(START_WAIT).and_then(|()| measure(&net, a.devices));
    net.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
    let figures = result?;
    if a.json {
        println!("{figures}");
    } else {
        print_table(&figures);
    }
    Ok(())
}

fn measure(net: &LocalNet, n: usize) -> Result<Value> {
    let client = Client::new(&net.apis[0])?;
    let owners = Owners::for_devices(n);
    for name in &owners.names[1..] {
        add_org(net, &client, name, vec![Role::Owner])?;
    }
    let models = ModelRange {
        first: MODEL_FIRST,
        last: MODEL_FIRST + 99,
    };
    let ca = grant_ca(net, &client, MANUFACTURER, CA_NAME, models)?;
    let started = Instant::now();
    let (mut ids, payloads) = provision(&ca, n, &owners)?;
    let provision_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    register(net, &client, payloads)?;
    let register_s = started.elapsed().as_secs_f64();
    ids.sort();
    let queries = Queries::new(&ids);
    let api = api_latencies(&net.apis[0], &queries, n)?;
    let page = browser_figures(&net.apis[0], &queries)?;
    Ok(json!({
        "validators": net.apis.len(), "devices": n, "models": MODELS, "owners": owners.names,
        "provision_s": round1(provision_s), "register_s": round1(register_s),
        "registrations_per_s": (n as f64 / register_s).round(),
        "api": api, "browser": page,
        "target_page_ready_ms": TARGET_PAGE_READY_MS, "target_api_p95_ms": TARGET_API_P95_MS,
        "target_rows_max": FLEET_PAGE,
    }))
}

/// Model of the `i`th device: skewed (1 : 1 : 1 : 4) so the chart's bars differ.
fn model_of(i: usize) -> u32 {
    MODEL_FIRST + (i % 7).min(MODELS as usize - 1) as u32
}

/// The owners of the registered devices: [`OWNER`] and `owner-2`.. `owner-k`, enough that none
/// gets more than [`DEVICES_PER_OWNER_PLANNED`] (at least two, so the owner chart has bars).
struct Owners {
    names: Vec<String>,
}

impl Owners {
    fn for_devices(n: usize) -> Owners {
        // The last owner gets a double share (the chart's bars differ): 2n / (k + 1) ≤ planned.
        let k = ((2 * n).div_ceil(DEVICES_PER_OWNER_PLANNED)).saturating_sub(1).max(2);
        let names = std::iter::once(OWNER.to_string())
            .chain((2..=k).map(|j| format!("owner-{j}")))
            .collect();
        Owners { names }
    }

    /// Owner of the `i`th device.
    fn of(&self, i: usize) -> &str {
        let k = self.names.len();
        &self.names[(i % (k + 1)).min(k - 1)]
    }
}

/// N chips (random UDS, DeviceID certified by `ca`) on all cores: their ids (hex) and
/// `RegisterDevice` payloads, in device order.
fn provision(ca: &Ca, n: usize, owners: &Owners) -> Result<(Vec<String>, Vec<Payload>)> {
    let workers = std::thread::available_parallelism().map_or(1, |w| w.get()).min(n);
    let per = n.div_ceil(workers);
    let parts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| s.spawn(move || provision_range(ca, owners, w * per..((w + 1) * per).min(n))))
            .collect();
        handles.into_iter().map(|h| h.join()).collect::<Vec<_>>()
    });
    let mut ids = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    for part in parts {
        let part = part.map_err(|_| anyhow::anyhow!("a provisioning thread panicked"))??;
        for (id, payload) in part {
            ids.push(id);
            payloads.push(payload);
        }
    }
    eprintln!("provisioned {n} chips");
    Ok((ids, payloads))
}

fn provision_range(ca: &Ca, owners: &Owners, range: std::ops::Range<usize>) -> Result<Vec<(String, Payload)>> {
    range
        .map(|i| {
            let chip = provision_chip(ca, MANUFACTURER, MODEL_NAME)?;
            let payload = register_payload(ca.id, &chip, model_of(i), owners.of(i))?;
            Ok((chip_device_id(&chip).to_string(), payload))
        })
        .collect()
}

/// Signs the registrations with contiguous sequence numbers, submits them in batches across
/// the validators (at most [`MAX_IN_FLIGHT`] not yet final) and waits until the fleet index
/// counts them all; prints progress.
fn register(net: &LocalNet, client: &Client, payloads: Vec<Payload>) -> Result<()> {
    let key = org_key(net, MANUFACTURER)?;
    let status = client.status()?;
    let first_seq = client.org(MANUFACTURER)?.last_seq + 1;
    let clients = net.apis.iter().map(|a| Client::new(a)).collect::<Result<Vec<_>>>()?;
    let n = payloads.len();
    let started = Instant::now();
    let txs: Vec<Vec<u8>> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let body = TxBody {
                chain_id: status.chain_id.clone(),
                org: MANUFACTURER.into(),
                key_id: key.public_key().id(),
                seq: first_seq + i as u64,
                expiry_height: status.height + 1_000_000,
                payload,
            };
            SignedTx::sign(body, &key).to_cbor()
        })
        .collect();
    let stall = Stall {
        txs: &txs,
        clients: &clients,
    };
    let mut submitted = 0;
    for (b, chunk) in txs.chunks(BATCH_TXS).enumerate() {
        wait_registered(
            client,
            (submitted + chunk.len()).saturating_sub(MAX_IN_FLIGHT),
            started,
            &stall,
        )?;
        let items = clients[b % clients.len()].submit_batch(chunk)?;
        if let Some(bad) = items.iter().find(|it| it.status != "pending") {
            bail!(
                "registration refused: {} {}",
                bad.status,
                bad.message.as_deref().unwrap_or("")
            );
        }
        submitted += chunk.len();
    }
    wait_registered(client, n, started, &stall)
}

/// What to look at when registrations stop: the signed registrations in sequence order and a
/// client per validator.
struct Stall<'a> {
    txs: &'a [Vec<u8>],
    clients: &'a [Client],
}

impl Stall<'_> {
    /// Where the first registration not yet final stands on each validator.
    fn explain(&self, registered: usize) -> String {
        let Some(tx) = self.txs.get(registered) else {
            return "every registration was submitted".into();
        };
        let hash = hex::encode(TxHash::of(tx).0);
        let statuses: Vec<String> = self
            .clients
            .iter()
            .map(|c| match c.tx(&hash) {
                Ok(t) => format!(
                    "{}: {}{}",
                    c.base(),
                    t.status,
                    t.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                ),
                Err(e) => format!("{}: {e:#}", c.base()),
            })
            .collect();
        format!("registration #{registered} (tx {hash}) is {}", statuses.join("; "))
    }
}

/// Waits until the fleet index counts at least `n` devices; prints progress every 2 s. If the
/// count does not move for [`STALL_AFTER`], says where the next registration stands on each
/// validator and gives up.
fn wait_registered(client: &Client, n: usize, started: Instant, stall: &Stall<'_>) -> Result<()> {
    let mut last_print = Instant::now();
    let (mut last_total, mut last_move) = (usize::MAX, Instant::now());
    loop {
        let total = client.get_json::<Value>("/v1/devices/stats")?["total"]
            .as_u64()
            .unwrap_or(0) as usize;
        if total >= n {
            return Ok(());
        }
        if total != last_total {
            (last_total, last_move) = (total, Instant::now());
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!(
                "registered {total} devices ({:.0}s, waiting for {n})",
                started.elapsed().as_secs_f64()
            );
            last_print = Instant::now();
        }
        if last_move.elapsed() > STALL_AFTER {
            bail!(
                "registrations stalled at {total} of {n} for {STALL_AFTER:?}: {}",
                stall.explain(total)
            );
        }
        if started.elapsed() > REGISTER_WAIT {
            bail!("only {total} of {n} devices registered after {REGISTER_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The queries the fleet page makes, with values taken from the registered devices.
struct Queries {
    /// A model filter (`model=`).
    model: u32,
    /// An id prefix of [`PREFIX_CHARS`] hex characters (`q=`).
    prefix: String,
    /// A cursor one page and a bit before the end (`after=`).
    deep_after: String,
}

impl Queries {
    fn new(sorted_ids: &[String]) -> Queries {
        let n = sorted_ids.len();
        Queries {
            model: model_of(1),
            prefix: sorted_ids[n / 2][..PREFIX_CHARS].to_string(),
            deep_after: sorted_ids[n.saturating_sub(FLEET_PAGE + 10)].clone(),
        }
    }

    /// `(figure name, API path)`: the routes a fleet page load reads (the stats and one page;
    /// the deep cursor is where "Next" leads near the end).
    fn api_paths(&self) -> Vec<(&'static str, String)> {
        vec![
            ("api_stats", "/v1/devices/stats".into()),
            ("api_first_page", format!("/v1/devices?limit={FLEET_PAGE}")),
            (
                "api_model_filter",
                format!("/v1/devices?limit={FLEET_PAGE}&model={}", self.model),
            ),
            (
                "api_id_prefix",
                format!("/v1/devices?limit={FLEET_PAGE}&q={}", self.prefix),
            ),
            (
                "api_deep_cursor",
                format!("/v1/devices?limit={FLEET_PAGE}&after={}", self.deep_after),
            ),
        ]
    }
}

/// Median and p95 (ms) of [`API_CALLS`] calls of each route, after checking each answer once.
fn api_latencies(base: &str, q: &Queries, n: usize) -> Result<Value> {
    let http = reqwest::blocking::Client::new();
    let mut out = serde_json::Map::new();
    for (name, path) in q.api_paths() {
        let url = format!("{base}{path}");
        let first: Value = http.get(&url).send()?.error_for_status()?.json()?;
        check_answer(name, &first, q, n)?;
        let mut ms = Vec::with_capacity(API_CALLS);
        for _ in 0..API_CALLS {
            let t = Instant::now();
            let body = http.get(&url).send()?.error_for_status()?.bytes()?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            std::hint::black_box(body);
        }
        let (p50, p95) = median_p95(&mut ms);
        out.insert(
            name.into(),
            json!({ "p50_ms": round2(p50), "p95_ms": round2(p95), "calls": API_CALLS }),
        );
    }
    Ok(Value::Object(out))
}

/// The answers are what the page needs: the whole fleet counted, full pages, filters applied.
fn check_answer(name: &str, v: &Value, q: &Queries, n: usize) -> Result<()> {
    if name == "api_stats" {
        ensure!(
            v["total"].as_u64() == Some(n as u64),
            "stats count {} of {n}",
            v["total"]
        );
        return Ok(());
    }
    let devices = v["devices"].as_array().context("a device page")?;
    ensure!(
        !devices.is_empty() && devices.len() <= FLEET_PAGE,
        "{name}: {} devices",
        devices.len()
    );
    let ok = |d: &Value| match name {
        "api_model_filter" => d["model"].as_u64() == Some(u64::from(q.model)),
        "api_id_prefix" => d["id"].as_str().is_some_and(|id| id.starts_with(&q.prefix)),
        "api_deep_cursor" => d["id"].as_str().is_some_and(|id| id > q.deep_after.as_str()),
        _ => true,
    };
    ensure!(devices.iter().all(ok), "{name}: a device that does not match");
    Ok(())
}

/// What one browser measurement read when the page was ready.
struct Load {
    ms: f64,
    rows: usize,
    heap_bytes: Option<u64>,
    dom_nodes: u64,
}

/// Waits (in the page) for a fleet page root that is not `old` to leave `loading`; returns the
/// time since `t0` (navigation start unless `next` clicked the pager's "Next" button), the
/// device rows rendered, the JS heap and the DOM size. Argument: `"load"` or `"next"`.
const WAIT_READY_JS: &str = r#"
const [mode, done] = [arguments[0], arguments[arguments.length - 1]];
const sel = "[data-test=page-fleet]";
let old = null, t0 = 0;
if (mode === "next") {
  old = document.querySelector(sel);
  const next = old && [...old.querySelectorAll("nav.pager button")].find((b) => b.textContent === "Next");
  if (!next || next.disabled) { done({ error: "no enabled Next button" }); return; }
  t0 = performance.now();
  next.click();
}
const check = () => {
  const el = document.querySelector(sel);
  if (!el || el === old || el.dataset.state === "loading") return false;
  done({
    state: el.dataset.state, ms: performance.now() - t0,
    rows: document.querySelectorAll("[data-test=devices-table] tbody tr").length,
    heap: performance.memory ? performance.memory.usedJSHeapSize : null,
    nodes: document.getElementsByTagName("*").length,
    text: el.dataset.state === "ready" ? "" : el.textContent.slice(0, 400),
  });
  return true;
};
if (!check()) {
  const obs = new MutationObserver(() => { if (check()) obs.disconnect(); });
  obs.observe(document.documentElement, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
}
"#;

fn read_load(b: &Browser, mode: &str, what: &str) -> Result<Load> {
    let v = b.execute_async(WAIT_READY_JS, json!([mode]))?;
    if let Some(e) = v["error"].as_str() {
        bail!("{what}: {e}");
    }
    ensure!(
        v["state"] == "ready",
        "{what}: page state {}: {}",
        v["state"],
        v["text"]
    );
    let load = Load {
        ms: v["ms"].as_f64().context("a time")?,
        rows: v["rows"].as_u64().context("a row count")? as usize,
        heap_bytes: v["heap"].as_u64(),
        dom_nodes: v["nodes"].as_u64().unwrap_or(0),
    };
    // The page renders one page of devices, never the fleet.
    ensure!(
        load.rows >= 1 && load.rows <= FLEET_PAGE,
        "{what}: {} device rows rendered (1..={FLEET_PAGE} expected)",
        load.rows
    );
    let errors = b.console_errors()?;
    ensure!(errors.is_empty(), "{what}: console errors: {errors:#?}");
    Ok(load)
}

/// A fresh document at `route`, timed from navigation start to ready.
fn cold_load(b: &Browser, base: &str, route: &str) -> Result<Load> {
    b.block(b.wd.goto("about:blank"))?;
    b.block(b.wd.goto(&format!("{base}/{route}")))?;
    read_load(b, "load", route)
}

/// `#/fleet`, then "Next": timed from the click to the next page ready.
fn next_page(b: &Browser, base: &str) -> Result<Load> {
    cold_load(b, base, "#/fleet")?;
    read_load(b, "next", "next page")
}

/// The browser figures: median of [`PAGE_LOADS`] for each, largest row count, heap and DOM size
/// after a cold `#/fleet` load.
fn browser_figures(base: &str, q: &Queries) -> Result<Value> {
    let b = Browser::start(WINDOW)?;
    let routes = [
        ("fleet_ready", "#/fleet".to_string()),
        ("fleet_filter_ready", format!("#/fleet?model={}", q.model)),
        ("fleet_search_ready", format!("#/fleet?q={}", q.prefix)),
    ];
    let mut out = serde_json::Map::new();
    let mut rows_max = 0;
    let mut last = None;
    for (name, route) in &routes {
        let loads = (0..PAGE_LOADS)
            .map(|_| cold_load(&b, base, route))
            .collect::<Result<Vec<_>>>()?;
        rows_max = rows_max.max(loads.iter().map(|l| l.rows).max().unwrap_or(0));
        let mut ms: Vec<f64> = loads.iter().map(|l| l.ms).collect();
        out.insert(format!("{name}_ms"), json!(round1(median_p95(&mut ms).0)));
        last.get_or_insert(loads.into_iter().next_back());
    }
    let nexts = (0..PAGE_LOADS)
        .map(|_| next_page(&b, base))
        .collect::<Result<Vec<_>>>()?;
    rows_max = rows_max.max(nexts.iter().map(|l| l.rows).max().unwrap_or(0));
    let mut ms: Vec<f64> = nexts.iter().map(|l| l.ms).collect();
    out.insert("fleet_next_page_ms".into(), json!(round1(median_p95(&mut ms).0)));
    let fleet = last.flatten().context("a fleet load")?;
    out.insert("rows_max".into(), json!(rows_max));
    out.insert("dom_nodes".into(), json!(fleet.dom_nodes));
    let heap_mb = fleet.heap_bytes.map(|h| round1(h as f64 / 1e6));
    out.insert("js_heap_mb".into(), json!(heap_mb));
    Ok(Value::Object(out))
}

/// Median and 95th percentile (nearest rank) of `v` (sorted in place); zeros when empty.
fn median_p95(v: &mut [f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.5), rank(0.95))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The table: figure, measured, target, ratio (target / measured: above 1 meets it).
fn print_table(f: &Value) {
    println!("{:<34} {:>12} {:>10} {:>8}", "figure", "measured", "target", "ratio");
    let row = |name: &str, v: &Value, target: Option<f64>| {
        let m = v.as_f64();
        let shown = m.map_or("-".to_string(), |m| format!("{m}"));
        match (m, target) {
            (Some(m), Some(t)) => println!(
                "{name:<34} {shown:>12} {:>10} {:>8.2}",
                format!("≤{t}"),
                t / m.max(0.01)
            ),
            _ => println!("{name:<34} {shown:>12} {:>10} {:>8}", "-", "-"),
        }
    };
    row("devices", &f["devices"], None);
    row("registrations_per_s", &f["registrations_per_s"], None);
    if let Some(api) = f["api"].as_object() {
        for (name, v) in api {
            row(&format!("{name}_p50_ms"), &v["p50_ms"], None);
            row(&format!("{name}_p95_ms"), &v["p95_ms"], Some(TARGET_API_P95_MS));
        }
    }
    let b = &f["browser"];
    for name in [
        "fleet_ready_ms",
        "fleet_filter_ready_ms",
        "fleet_search_ready_ms",
        "fleet_next_page_ms",
    ] {
        row(name, &b[name], Some(TARGET_PAGE_READY_MS));
    }
    row("rows_max", &b["rows_max"], Some(FLEET_PAGE as f64));
    row("dom_nodes", &b["dom_nodes"], None);
    row("js_heap_mb", &b["js_heap_mb"], None);
}

//! Real-process chaos: four `chipledger node run` processes, each in its own network namespace
//! (veth pairs on a private bridge; all traffic stays on this machine), a `chipledger gateway`
//! and simulated sensors, under continuous load while one validator after another is
//! SIGKILLed and restarted, SIGSTOPped and SIGCONTed, and cut off the network (its veth link
//! down) and reconnected. Afterwards every validator holds the same blocks (digest, state root,
//! log root) at a common height, every transaction a validator accepted is final everywhere,
//! and every record the gateway acknowledged as durable is committed on the ledger.
//!
//! Clients behave as real ones do: a transaction is "acknowledged" when some validator accepts
//! it; a client whose validator went away resubmits what is not final yet (the test counts those
//! resubmissions). Figures (operations during each fault, recovery times) are printed.
//!
//! Needs root (network namespaces: `ip netns`, veth and bridge links from iproute2).

mod data_support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::data_net::{
    DataNet, GatewayProcess, OPERATOR, org_key, prepare_data_network, register_sim_devices,
};
use chipledger_cli::net::LocalNet;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_types::cbor::Encode;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Payload, SignedTx, TxBody, TxHash};
use data_support::poll;
use serde_json::Value;

/// API ports 19070.. and p2p 19170.. on each validator's own address (below the ephemeral range).
const BASE_PORT: u16 = 19070;
const VALIDATORS: usize = 4;
/// Organisations whose clients submit statements (each from its own thread).
const LOAD_ORGS: [&str; 3] = ["maker", "vendor", "audit"];
/// Pause between a client's transactions.
const LOAD_PAUSE: Duration = Duration::from_millis(40);
/// A client's request timeout: a stopped validator must not stall the load.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client avoids a validator that did not answer (as a real client's health check).
const AVOID: Duration = Duration::from_secs(3);
/// Transactions stay valid this many blocks past the height they were built at.
const EXPIRY_BLOCKS: u64 = 5_000;
/// How long each fault lasts, and the load before the first one.
const FAULT: Duration = Duration::from_secs(6);
const WARMUP: Duration = Duration::from_secs(3);
/// How long recovery, finality and commitment may take.
const WAIT: Duration = Duration::from_secs(90);
/// Simulated sensors publishing through the gateway during the faults.
const SENSORS: u64 = 4;
const SENSOR_SEED: u64 = 991;
const GATEWAY: &str = "gw-chaos";

#[test]
fn validators_survive_kill_stop_and_partition_and_lose_nothing_acknowledged() -> Result<()> {
    let lab = Lab::create()?;
    let mut net = Network::start(&lab)?;
    let data = prepare_data_network(&net.net, &net.clients[0])?;
    register_sim_devices(
        &net.net,
        &net.clients[0],
        &data.ca,
        DeviceKeyAlg::P256,
        SENSOR_SEED,
        0..SENSORS,
    )?;
    let gateway = start_gateway(&net, &data)?;
    let load = Load::start(&net)?;
    let sensors = Sensors::start(&net, &gateway)?;
    std::thread::sleep(WARMUP);

    let kill = fault(
        &mut net,
        &load,
        "SIGKILL v3, restart",
        3,
        |n, i| n.net.signal(i, "KILL"),
        |n, i| n.net.start(i),
    )?;
    let stop = fault(
        &mut net,
        &load,
        "SIGSTOP v2, SIGCONT",
        2,
        |n, i| n.net.signal(i, "STOP"),
        |n, i| n.net.signal(i, "CONT"),
    )?;
    let partition = fault(
        &mut net,
        &load,
        "partition v1, heal",
        1,
        |_, i| lab.link(i, false),
        |_, i| lab.link(i, true),
    )?;
    let figures = [kill, stop, partition];

    let sensor_report = sensors.finish()?;
    let acked = load.stop()?;
    let resubmitted = settle(&net, &acked)?;
    assert_agreement(&net)?;
    let committed = records_committed(&net, sensor_report.records_acked)?;
    drop(gateway);

    eprintln!(
        "\nchaos figures (validator processes in network namespaces, load from {} clients)",
        LOAD_ORGS.len()
    );
    eprintln!(
        "{:<24} {:>10} {:>12} {:>12} {:>14}",
        "fault", "duration", "acked tx", "final tx/s", "recovery"
    );
    for f in &figures {
        eprintln!(
            "{:<24} {:>9.1}s {:>12} {:>12.1} {:>13.1}s",
            f.name,
            f.duration.as_secs_f64(),
            f.acked,
            f.final_rate,
            f.recovery.as_secs_f64()
        );
    }
    eprintln!(
        "transactions acknowledged: {}, final on every validator: all ({} resubmitted by their client after a fault)",
        acked.len(),
        resubmitted
    );
    eprintln!(
        "sensor records: {} published, {} acknowledged durable by the gateway, {} committed",
        sensor_report.records_published, sensor_report.records_acked, committed
    );
    Ok(())
}

// ---- the lab: network namespaces on a bridge ------------------------------------------------

/// One network namespace per validator, each with a veth link to a private bridge in the root
/// namespace (which the test, the gateway and the sensors use); removed when dropped.
struct Lab {
    tag: String,
    subnet: String,
}

impl Lab {
    fn create() -> Result<Lab> {
        let pid = std::process::id();
        let lab = Lab {
            tag: format!("clc{}", pid % 100_000),
            subnet: format!("10.231.{}", pid % 250),
        };
        lab.setup().with_context(
            || "setting up network namespaces (the chaos test needs root and iproute2: `ip netns`, veth, bridge)",
        )?;
        Ok(lab)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }
    fn veth(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }
    fn host(&self, i: usize) -> String {
        format!("{}.{}", self.subnet, i + 1)
    }

    fn setup(&self) -> Result<()> {
        let br = self.bridge();
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}.254/24", self.subnet), "dev", &br])?;
        ip(&["link", "set", &br, "up"])?;
        for i in 0..VALIDATORS {
            let (ns, veth) = (self.ns(i), self.veth(i));
            ip(&["netns", "add", &ns])?;
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            ip(&["link", "set", &veth, "master", &br])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.host(i)), "dev", "eth0"])?;
            ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// Validator `i`'s link to everyone: up (connected) or down (partitioned away).
    fn link(&self, i: usize, up: bool) -> Result<()> {
        ip(&["link", "set", &self.veth(i), if up { "up" } else { "down" }])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for i in 0..VALIDATORS {
            let _ = ip(&["netns", "del", &self.ns(i)]);
            let _ = ip(&["link", "del", &self.veth(i)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (iproute2)")?;
    if !out.status.success() {
        bail!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

// ---- the validators ---------------------------------------------------------------------------

struct Network {
    net: LocalNet,
    clients: Vec<Client>,
    dir: PathBuf,
}

impl Network {
    fn start(lab: &Lab) -> Result<Network> {
        let dir = std::env::temp_dir().join(format!("chipledger-test-chaos-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
        let hosts: Vec<String> = (0..VALIDATORS).map(|i| lab.host(i)).collect();
        let mut net = LocalNet::prepare_on(&dir, &exe, BASE_PORT, "chipledger-chaos", &hosts)?;
        net.launchers = (0..VALIDATORS)
            .map(|i| {
                ["ip", "netns", "exec"]
                    .map(String::from)
                    .into_iter()
                    .chain([lab.ns(i)])
                    .collect()
            })
            .collect();
        let clients = net
            .apis
            .iter()
            .map(|a| Client::with_timeout(a, CLIENT_TIMEOUT))
            .collect::<Result<_>>()?;
        let mut network = Network { net, clients, dir };
        network.net.start_all_ready(WAIT)?;
        Ok(network)
    }

    fn height(&self, i: usize) -> Option<u64> {
        self.clients[i].status().ok().map(|s| s.height)
    }

    fn log_tail(&self, i: usize) -> String {
        let log = std::fs::read_to_string(self.net.node_dir(i).join("node.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.net.stop_all();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What one fault did to the service.
struct Figure {
    name: &'static str,
    duration: Duration,
    /// Transactions acknowledged while the fault lasted.
    acked: usize,
    /// Transactions finalized per second on a healthy validator while the fault lasted.
    final_rate: f64,
    /// From the end of the fault until the faulted validator reached the height the others had then.
    recovery: Duration,
}

/// Inject a fault into validator `i` for [`FAULT`], end it, and time its recovery.
fn fault(
    net: &mut Network,
    load: &Load,
    name: &'static str,
    i: usize,
    inject: impl Fn(&mut Network, usize) -> Result<()>,
    end: impl Fn(&mut Network, usize) -> Result<()>,
) -> Result<Figure> {
    let healthy = (i + 1) % VALIDATORS;
    let log_before = net.clients[healthy].status()?.log_size;
    let acked_before = load.acked_count();
    let started = Instant::now();
    inject(net, i)?;
    std::thread::sleep(FAULT);
    let duration = started.elapsed();
    let log_after = net.clients[healthy].status()?.log_size;
    let acked = load.acked_count() - acked_before;
    end(net, i)?;
    let ended = Instant::now();
    let target = net.height(healthy).context("the healthy validator's height")?;
    poll(&format!("{name}: v{i} to catch up to height {target}"), WAIT, || {
        Ok(net.height(i).is_some_and(|h| h >= target).then_some(()))
    })
    .with_context(|| format!("v{i}'s log:\n{}", net.log_tail(i)))?;
    let figure = Figure {
        name,
        duration,
        acked,
        final_rate: (log_after - log_before) as f64 / duration.as_secs_f64(),
        recovery: ended.elapsed(),
    };
    assert!(
        figure.acked > 0,
        "{name}: the service accepted no transaction during the fault"
    );
    assert!(log_after > log_before, "{name}: nothing was finalized during the fault");
    Ok(figure)
}

// ---- the load ----------------------------------------------------------------------------------

/// A transaction some validator accepted.
#[derive(Clone)]
struct Acked {
    hash: TxHash,
    org: &'static str,
    seq: u64,
    bytes: Vec<u8>,
}

/// One client thread per organisation, signing statements with consecutive sequence numbers and
/// sending each to the next validator in turn (failing over when one does not answer).
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
    threads: Vec<JoinHandle<Result<()>>>,
}

impl Load {
    fn start(net: &Network) -> Result<Load> {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let chain_id = net.net.genesis.chain_id.clone();
        let mut threads = Vec::new();
        for (k, org) in LOAD_ORGS.into_iter().enumerate() {
            let key = org_key(&net.net, org)?;
            let clients: Vec<Client> = net
                .net
                .apis
                .iter()
                .map(|a| Client::with_timeout(a, CLIENT_TIMEOUT))
                .collect::<Result<_>>()?;
            let first_seq = net.clients[0].org(org)?.last_seq + 1;
            let (stop, acked, chain_id) = (stop.clone(), acked.clone(), chain_id.clone());
            threads.push(std::thread::spawn(move || {
                client_loop(org, k, &key, &chain_id, first_seq, &clients, &stop, &acked)
            }));
        }
        Ok(Load { stop, acked, threads })
    }

    fn acked_count(&self) -> usize {
        self.acked.lock().map(|a| a.len()).unwrap_or(0)
    }

    fn stop(self) -> Result<Vec<Acked>> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().map_err(|_| anyhow::anyhow!("a load thread panicked"))??;
        }
        let acked = self.acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        Ok(acked)
    }
}

#[allow(clippy::too_many_arguments)]
fn client_loop(
    org: &'static str,
    k: usize,
    key: &SigningKey,
    chain_id: &str,
    first_seq: u64,
    clients: &[Client],
    stop: &AtomicBool,
    acked: &Mutex<Vec<Acked>>,
) -> Result<()> {
    let mut seq = first_seq;
    let mut turn = k;
    let mut mine: Vec<Acked> = Vec::new();
    let mut avoid_until = vec![Instant::now(); clients.len()];
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        let live: Vec<usize> = (0..clients.len()).filter(|&i| avoid_until[i] <= now).collect();
        let Some(height) = live.iter().find_map(|&i| clients[i].status().ok().map(|s| s.height)) else {
            avoid_until.iter_mut().for_each(|t| *t = now);
            std::thread::sleep(LOAD_PAUSE);
            continue;
        };
        let body = TxBody {
            chain_id: chain_id.to_string(),
            org: org.into(),
            key_id: key.public_key().id(),
            seq,
            expiry_height: height + EXPIRY_BLOCKS,
            payload: Payload::Statement {
                topic: "chaos".into(),
                body: format!("{org} #{seq}").into_bytes(),
            },
        };
        let bytes = SignedTx::sign(body, key).to_cbor();
        for attempt in 0..clients.len() * 2 {
            let v = (turn + attempt) % clients.len();
            if avoid_until[v] > Instant::now() {
                continue;
            }
            let c = &clients[v];
            match c.try_submit(&bytes) {
                Ok(Ok(_)) => {
                    let a = Acked {
                        hash: TxHash::of(&bytes),
                        org,
                        seq,
                        bytes: bytes.clone(),
                    };
                    mine.push(a.clone());
                    acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(a);
                    seq += 1;
                    break;
                }
                // This validator never saw an earlier transaction of ours (it went to one that
                // failed): hand it what we sent since, as a client that keeps its own log does.
                Ok(Err(e)) if e.error == "seq_gap" => {
                    for earlier in &mine {
                        let _ = c.try_submit(&earlier.bytes);
                    }
                }
                Ok(Err(e)) => bail!("{org} seq {seq}: refused by {}: {} {}", c.base(), e.error, e.message),
                Err(_) => avoid_until[v] = Instant::now() + AVOID, // no answer: the next validator
            }
        }
        turn += 1;
        // Forget what is final (bounded memory), keep what might still need resubmitting.
        if mine.len() > 200 {
            mine.drain(..100);
        }
        std::thread::sleep(LOAD_PAUSE);
    }
    Ok(())
}

/// Waits until every acknowledged transaction is final on every validator, resubmitting (as its
/// client would) any that a fault dropped; returns how many needed resubmitting.
fn settle(net: &Network, acked: &[Acked]) -> Result<usize> {
    let mut resubmitted = std::collections::BTreeSet::new();
    let started = Instant::now();
    let mut last_push = Instant::now();
    for (i, c) in net.clients.iter().enumerate() {
        loop {
            let pending: Vec<&Acked> = acked.iter().filter(|a| !is_final(c, &a.hash)).collect();
            if pending.is_empty() {
                break;
            }
            if started.elapsed() > WAIT {
                let first = pending[0];
                bail!(
                    "{} acknowledged transactions not final on v{i} after {WAIT:?} (first: {} seq {} {}); v{i}'s log:\n{}",
                    pending.len(),
                    first.org,
                    first.seq,
                    first.hash,
                    net.log_tail(i)
                );
            }
            if last_push.elapsed() > Duration::from_secs(3) {
                let mut by_org: BTreeMap<&str, Vec<&Acked>> = BTreeMap::new();
                for a in &pending {
                    by_org.entry(a.org).or_default().push(a);
                }
                for txs in by_org.values_mut() {
                    txs.sort_by_key(|a| a.seq);
                    for a in txs.iter() {
                        resubmitted.insert(a.hash.to_string());
                        let _ = net.clients[0].try_submit(&a.bytes);
                    }
                }
                last_push = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    Ok(resubmitted.len())
}

fn is_final(c: &Client, hash: &TxHash) -> bool {
    c.tx(&hash.to_string()).is_ok_and(|t| t.status == "final")
}

/// Every validator holds the same block (digest, state root, log root) at a height all have.
fn assert_agreement(net: &Network) -> Result<()> {
    let heights: Vec<u64> = (0..VALIDATORS)
        .map(|i| net.height(i).with_context(|| format!("v{i} does not answer")))
        .collect::<Result<_>>()?;
    let common = *heights.iter().min().context("no validators")?;
    let headers: Vec<Value> = net
        .clients
        .iter()
        .map(|c| Ok(c.get_json::<Value>(&format!("/v1/blocks/{common}"))?["header"].clone()))
        .collect::<Result<_>>()?;
    for (i, h) in headers.iter().enumerate() {
        assert_eq!(h, &headers[0], "v{i}'s block at height {common} differs from v0's");
    }
    eprintln!("agreement: the four validators hold the same block at height {common} (heights {heights:?})");
    Ok(())
}

// ---- the gateway and its sensors -----------------------------------------------------------

fn start_gateway(net: &Network, data: &DataNet) -> Result<(GatewayProcess, std::net::SocketAddr)> {
    let listen = free_local_addr()?;
    let mut args: Vec<String> = ["--name", GATEWAY, "--org", OPERATOR, "--key"].map(String::from).into();
    args.push(data.operator_key_path.display().to_string());
    args.extend([
        "--api".into(),
        net.net.apis[0].clone(),
        "--listen".into(),
        listen.to_string(),
    ]);
    args.extend(["--data".into(), net.dir.join("gateway-data").display().to_string()]);
    args.extend(["--batch-ms".into(), "300".into()]);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    Ok((
        GatewayProcess::start(&exe, &args, Some(&net.dir.join("gateway.log")))?,
        listen,
    ))
}

/// `fleet simulate` publishing through the gateway for the whole fault sequence.
struct Sensors {
    child: Child,
}

/// The counts `fleet simulate --json` reports.
struct SensorReport {
    records_published: u64,
    records_acked: u64,
}

impl Sensors {
    fn start(_net: &Network, gateway: &(GatewayProcess, std::net::SocketAddr)) -> Result<Sensors> {
        let seconds = (WARMUP + FAULT * 3 + Duration::from_secs(10)).as_secs();
        let child = Command::new(env!("CARGO_BIN_EXE_chipledger"))
            .args(["fleet", "simulate", "--devices", &SENSORS.to_string(), "--rate", "2"])
            .args(["--seconds", &seconds.to_string(), "--seed", &SENSOR_SEED.to_string()])
            .args(["--broker", &gateway.1.to_string(), "--ack-wait-ms", "60000", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting fleet simulate")?;
        Ok(Sensors { child })
    }

    fn finish(self) -> Result<SensorReport> {
        let out = self.child.wait_with_output()?;
        if !out.status.success() {
            bail!("fleet simulate failed ({})", out.status);
        }
        let v: Value = serde_json::from_slice(&out.stdout).context("fleet simulate --json output")?;
        Ok(SensorReport {
            records_published: v["records_published"].as_u64().context("records_published")?,
            records_acked: v["records_acked"].as_u64().context("records_acked")?,
        })
    }
}

/// Waits until the ledger holds at least `acked` records committed by the gateway.
fn records_committed(net: &Network, acked: u64) -> Result<u64> {
    assert!(acked > 0, "the gateway acknowledged no record");
    poll("every acknowledged record committed", WAIT, || {
        let g: Value = net.clients[0].get_json(&format!("/v1/data/gateways/{GATEWAY}"))?;
        let records = g["records"].as_u64().unwrap_or(0);
        Ok((records >= acked).then_some(records))
    })
}

//! `chipledger bench ingest`: how close the gateway's end-to-end ingest comes to its bound.
//!
//! One process, one run, per algorithm (ES256, Ed25519), over the same pre-signed records:
//!
//! - **bound**: raw signature verification of every record on all cores
//!   (`chipledger_gateway::verify`: aws-lc ES256, dalek Ed25519 batches), measured before the
//!   validators start (and again next to them: `bound_with_validators_records_per_s`);
//! - **end to end**: simulated devices (edge nodes, one MQTT connection each, several devices
//!   behind each) publish the records as fast as the broker takes them, each device keeping at
//!   most `--window` records without a `DACK`, → the embedded broker → the in-process gateway
//!   (the `chipledger gateway` sink: registry lookups over the node API, signatures on all
//!   cores, chain checks, one store transaction per group, `DACK` after durable) → batches cut
//!   and submitted as `CommitBatch` to 4 local validator processes until final.
//!
//! Records/s end to end run from the first publish to the moment the gateway saw the batch
//! holding the last record final; latency is per record, publish → its batch final. The run
//! refuses to report figures unless every record was accepted, acknowledged and committed
//! exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use chipledger_cli::client::Client;
use chipledger_cli::data_net::{OPERATOR, prepare_data_network, register_sim_devices};
use chipledger_cli::device_cmd::submit_final;
use chipledger_cli::gateway_cmd::{ClientSubmitter, GatewaySink, HttpDirectory};
use chipledger_cli::net::LocalNet;
use chipledger_cli::simulate::{SIM_STREAM, SimKey};
use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey};
use chipledger_device::record::RecordChainWriter;
use chipledger_device::seal::{EpochKey, iv_for, payload_aad, seal_encrypt0};
use chipledger_gateway::mqtt::{EmbeddedBroker, SubscriberConfig, free_local_addr, spawn_subscriber};
use chipledger_gateway::store::ChainKey;
use chipledger_gateway::topics::{DurableAck, EdgeSequencer, Frame, MessageType, NAMESPACE, Topic, device_segment};
use chipledger_gateway::verify::{SigCheck, verify_signatures};
use chipledger_gateway::{Gateway, GatewayConfig, submit_batches_shared};
use chipledger_types::data_tx::RegisterGateway;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::Payload;
use clap::Args;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

/// Seed of the simulated device keys.
const SEED: u64 = 11;
/// Edge nodes (publisher connections) at most; devices are spread over them.
pub const MAX_PUBLISHERS: usize = 8;
/// The end-to-end target: records/s at least this fraction of the bound.
pub const TARGET_RATIO: f64 = 0.6;
/// The latency target: p99 publish → batch final.
pub const TARGET_P99_MS: u64 = 2_000;
/// Longest an end-to-end run may take before it is called stuck.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// Pause of the bench's ledger loop between passes.
const LEDGER_TICK: Duration = Duration::from_millis(20);
/// Interval of progress lines.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Timed passes of the bound's verification (the fastest counts).
const BOUND_RUNS: usize = 3;
/// Client request queue of a publisher connection.
const PUBLISHER_QUEUE: usize = 1024;
/// How long startup steps (validators, registration, subscriptions) may take.
const SETUP_WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Simulated devices (spread over up to 8 edge-node connections).
    #[arg(long, default_value_t = 100)]
    pub devices: usize,
    /// Records in all (per algorithm), spread evenly over the devices.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// Which signature algorithm(s) to run.
    #[arg(long, default_value = "both", value_parser = ["es256", "ed25519", "both"])]
    pub alg: String,
    /// Records a device keeps without a `DACK` before it waits.
    #[arg(long, default_value_t = 16)]
    pub window: u64,
    /// Cut a batch once its oldest record waited this long.
    #[arg(long, default_value_t = 250)]
    pub batch_ms: u64,
    /// Base port of the validator network (API P..P+3, p2p P+100..).
    #[arg(long, default_value_t = 7670)]
    pub base_port: u16,
    #[arg(long)]
    pub json: bool,
}

/// Progress on stderr (stdout carries the table or the JSON).
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!($($arg)*) };
}

mod e2e;

/// The algorithm's JSON key and device key type.
fn algorithms(which: &str) -> Vec<(&'static str, DeviceKeyAlg)> {
    let all = [("es256", DeviceKeyAlg::P256), ("ed25519", DeviceKeyAlg::Ed25519)];
    all.into_iter()
        .filter(|(name, _)| which == "both" || which == *name)
        .collect()
}

pub fn ingest(a: IngestArgs) -> Result<()> {
    ensure!(
        a.devices >= 1 && a.records >= a.devices,
        "need --devices ≥ 1 and --records ≥ --devices"
    );
    ensure!(a.window >= 1, "--window must be at least 1");
    // The bound is measured on idle cores, before anything else runs (and again next to the
    // validators, for comparison).
    let mut works = Vec::new();
    for (name, alg) in algorithms(&a.alg) {
        progress!("{name}: signing {} records of {} devices", a.records, a.devices);
        let work = Workload::generate(alg, a.devices, a.records)?;
        let (bound, cores) = work.bound()?;
        progress!("{name}: bound {bound:.0} records/s on {cores} idle cores");
        works.push((name, work, bound));
    }
    let dir = std::env::temp_dir().join(format!("chipledger-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = std::env::current_exe()?;
    progress!("starting 4 validators under {}", dir.display());
    let mut net = LocalNet::prepare(&dir, &exe, a.base_port, "chipledger-bench-ingest")?;
    net.start_all_ready(SETUP_WAIT)?;
    let result = run_all(&net, &a, works);
    net.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
    let figures = result?;
    match a.json {
        true => println!("{}", Value::Object(figures.into_iter().collect())),
        false => print_table(&figures),
    }
    Ok(())
}

/// What every algorithm's run shares.
struct Bench<'a> {
    net: &'a LocalNet,
    client: Client,
    operator_key: SigningKey,
    broker: EmbeddedBroker,
    args: &'a IngestArgs,
}

/// Setup on the ledger, then each algorithm's end-to-end run over its workload.
fn run_all(net: &LocalNet, a: &IngestArgs, works: Vec<(&str, Workload, f64)>) -> Result<Vec<(String, Value)>> {
    let client = Client::new(&net.apis[0])?;
    progress!("governance: operator organisation and device CA");
    let data = prepare_data_network(net, &client)?;
    for (name, work, _) in &works {
        progress!("registering {} {name} devices", a.devices);
        register_sim_devices(net, &client, &data.ca, work.alg, SEED, 0..a.devices as u64)?;
    }
    let bench = Bench {
        net,
        client,
        operator_key: data.operator_key,
        broker: EmbeddedBroker::start(free_local_addr()?)?,
        args: a,
    };
    let mut figures = Vec::new();
    for (name, work, bound) in works {
        figures.push((name.to_string(), bench.run(name, work, bound)?));
    }
    Ok(figures)
}

impl Bench<'_> {
    /// The end-to-end run of one algorithm, and its figures against `bound` (idle cores).
    fn run(&self, name: &str, work: Workload, bound: f64) -> Result<Value> {
        let (loaded_bound, threads) = work.bound()?;
        progress!("{name}: bound {loaded_bound:.0} records/s next to the running validators");
        let e2e = self.end_to_end(name, work)?;
        let counts = [e2e.accepted, e2e.dacked, e2e.committed];
        ensure!(
            counts.iter().all(|&c| c == e2e.records),
            "{name}: counts are not exact: {} records, {} accepted, {} DACKed, {} committed",
            e2e.records,
            counts[0],
            counts[1],
            counts[2]
        );
        let ratio = e2e.records_per_s / bound;
        progress!(
            "{name}: end to end {:.0} records/s = {ratio:.2} × bound; final p50 {} ms, p99 {} ms",
            e2e.records_per_s,
            e2e.p50_ms,
            e2e.p99_ms
        );
        Ok(json!({
            "bound_records_per_s": bound.round(),
            "end_to_end_records_per_s": e2e.records_per_s.round(),
            "ratio": (ratio * 1000.0).round() / 1000.0,
            "final_latency_p99_ms": e2e.p99_ms,
            "final_latency_p50_ms": e2e.p50_ms,
            "bound_with_validators_records_per_s": loaded_bound.round(),
            "ratio_to_bound_with_validators": (e2e.records_per_s / loaded_bound * 1000.0).round() / 1000.0,
            "durable_records_per_s": e2e.durable_records_per_s.round(),
            "records": e2e.records,
            "records_accepted": e2e.accepted,
            "records_dacked": e2e.dacked,
            "records_committed": e2e.committed,
            "batches": e2e.batches,
            "devices": self.args.devices,
            "publishers": e2e.publishers,
            "verify_threads": threads,
            "elapsed_s": (e2e.elapsed.as_secs_f64() * 100.0).round() / 100.0,
            "target_ratio": TARGET_RATIO,
            "target_final_latency_p99_ms": TARGET_P99_MS,
        }))
    }
}

fn print_table(figures: &[(String, Value)]) {
    println!(
        "{:<8} {:>14} {:>14} {:>7} {:>7} {:>8} {:>8} {:>9}",
        "alg", "bound rec/s", "e2e rec/s", "ratio", "target", "p50 ms", "p99 ms", "p99 ≤ ms"
    );
    for (name, f) in figures {
        let num = |k: &str| f[k].as_f64().unwrap_or(0.0);
        println!(
            "{:<8} {:>14.0} {:>14.0} {:>7.2} {:>7.2} {:>8.0} {:>8.0} {:>9}",
            name,
            num("bound_records_per_s"),
            num("end_to_end_records_per_s"),
            num("ratio"),
            TARGET_RATIO,
            num("final_latency_p50_ms"),
            num("final_latency_p99_ms"),
            TARGET_P99_MS
        );
    }
}

// ---- workload -----------------------------------------------------------------------------------

/// One simulated device.
struct SimDevice {
    id: DeviceId,
    public: DevicePublicKey,
    /// Its `DDATA` topic (set when it is placed on an edge node).
    topic: String,
}

/// One data message an edge node publishes: whose, which seq, the framed record.
struct DataFrame {
    device: usize,
    seq: u64,
    frame: Vec<u8>,
}

/// An edge node: one MQTT connection, several devices, one session sequence.
struct Node {
    group: String,
    edge: String,
    devices: Vec<usize>,
    /// `NBIRTH` and the `DBIRTH`s, then the data in publish order.
    births: Vec<(String, Vec<u8>)>,
    data: Vec<DataFrame>,
}

/// Pre-signed records of one algorithm, framed for publishing.
struct Workload {
    alg: DeviceKeyAlg,
    devices: Vec<SimDevice>,
    nodes: Vec<Node>,
    records: usize,
}

impl Workload {
    /// `records` records of `devices` devices (chained, sealed, signed), on up to
    /// [`MAX_PUBLISHERS`] edge nodes; signing runs on all cores.
    fn generate(alg: DeviceKeyAlg, devices: usize, records: usize) -> Result<Workload> {
        let per_device: Vec<usize> = (0..devices)
            .map(|i| records / devices + usize::from(i < records % devices))
            .collect();
        let signed = sign_all(alg, &per_device)?;
        let publishers = devices.min(MAX_PUBLISHERS);
        let mut sims: Vec<SimDevice> = (0..devices)
            .map(|i| {
                let key = SimKey::derive(alg, SEED, i as u64);
                SimDevice {
                    id: key.device_id(),
                    public: key.public(),
                    topic: String::new(),
                }
            })
            .collect();
        let nodes = (0..publishers)
            .map(|k| Node::frame(&group_name(alg, k), k, publishers, &mut sims, &signed))
            .collect::<Result<Vec<_>>>()?;
        Ok(Workload {
            alg,
            devices: sims,
            nodes,
            records,
        })
    }

    /// Records/s of raw signature verification of every record on all cores (the best of
    /// [`BOUND_RUNS`]), and the cores.
    fn bound(&self) -> Result<(f64, usize)> {
        let mut checks = Vec::with_capacity(self.records);
        for node in &self.nodes {
            for d in &node.data {
                let body = Frame::decode(&d.frame)?.body;
                checks.push(SigCheck::new(body, &self.devices[d.device].public)?);
            }
        }
        let mut best = f64::MAX;
        for _ in 0..BOUND_RUNS {
            let started = Instant::now();
            let verdicts = verify_signatures(&checks);
            best = best.min(started.elapsed().as_secs_f64());
            ensure!(
                verdicts.iter().all(Result::is_ok),
                "a pre-signed record does not verify"
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok((checks.len() as f64 / best.max(1e-9), cores))
    }
}

/// The MQTT group of edge node `k` of an algorithm's run (each run has its own, so runs do
/// not mix; each node its own, so the gateway serves each on its own connection).
fn group_name(alg: DeviceKeyAlg, k: usize) -> String {
    format!("bench-{}-{k}", alg.name())
}

/// Every device's records, signed on all cores: `per_device[i]` records of device `i`.
fn sign_all(alg: DeviceKeyAlg, per_device: &[usize]) -> Result<Vec<Vec<Vec<u8>>>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let indices: Vec<usize> = (0..per_device.len()).collect();
    let chunk = indices.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Vec<Vec<Vec<u8>>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = indices
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|&i| sign_device(alg, i, per_device[i])).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut out = Vec::with_capacity(per_device.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Device `index`'s `count` records: sealed readings (COSE_Encrypt0), chained, signed.
fn sign_device(alg: DeviceKeyAlg, index: usize, count: usize) -> Result<Vec<Vec<u8>>> {
    let key = SimKey::derive(alg, SEED, index as u64);
    let id = key.device_id();
    let data_key = EpochKey::from_bytes([index as u8; 16]);
    let mut writer = RecordChainWriter::new(id, SIM_STREAM)?;
    let mut out = Vec::with_capacity(count);
    for k in 0..count as u64 {
        let seq = writer.next_seq();
        let plaintext = format!("{{\"device\":{index},\"k\":{k},\"temp_mc\":{}}}", 20_000 + k % 500);
        let aad = payload_aad(id, SIM_STREAM, seq, 1);
        let sealed = seal_encrypt0(&data_key, &iv_for(seq), plaintext.as_bytes(), &aad)
            .map_err(|e| anyhow::anyhow!("sealing: {e}"))?;
        let (_, signed) = writer.sign_next(key.signer(), 1_764_000_000_000 + k, 1, sealed)?;
        out.push(signed.bytes);
    }
    Ok(out)
}

impl Node {
    /// Edge node `k` of `nodes`: devices `k, k + nodes, …`, their births, then their records
    /// round-robin, each framed in the node's session sequence.
    fn frame(group: &str, k: usize, nodes: usize, sims: &mut [SimDevice], signed: &[Vec<Vec<u8>>]) -> Result<Node> {
        let edge = format!("bench-{k}");
        let devices: Vec<usize> = (k..sims.len()).step_by(nodes).collect();
        let mut session = EdgeSequencer::new(0);
        let mut births = vec![(
            Topic::node(group, MessageType::NBirth, &edge)?.to_string(),
            session.birth(&[]),
        )];
        for &d in &devices {
            let segment = device_segment(&sims[d].id);
            let dbirth = Topic::device(group, MessageType::DBirth, &edge, &segment)?.to_string();
            births.push((dbirth, session.next(sims[d].public.raw().as_bytes())));
            sims[d].topic = Topic::device(group, MessageType::DData, &edge, &segment)?.to_string();
        }
        let longest = devices.iter().map(|&d| signed[d].len()).max().unwrap_or(0);
        let mut data = Vec::new();
        for i in 0..longest {
            for &d in &devices {
                if let Some(record) = signed[d].get(i) {
                    let frame = session.next(record);
                    data.push(DataFrame {
                        device: d,
                        seq: i as u64 + 1,
                        frame,
                    });
                }
            }
        }
        Ok(Node {
            group: group.into(),
            edge,
            devices,
            births,
            data,
        })
    }
}

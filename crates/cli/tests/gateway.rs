//! Issue 5, Done-when 1: 200 devices × 50 records through `chipledger gateway` on four validator
//! processes, once with the gateway's embedded broker and once with mosquitto as the broker;
//! afterwards every record (data and epoch keys) is provable under a final checkpoint: the
//! gateway's record proof (record → batch root → `CommitBatch` tx → log root of a checkpoint
//! cosigned by a quorum) verifies offline. Also: the chain heads on the ledger hold exactly the
//! records sent at trust level 1, a clean restart commits nothing twice, and neither the gateway
//! nor any validator stores a plaintext reading or an epoch data key ("relays see nothing").

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::data_cmd::{node_trust, wait_record_proof};
use chipledger_cli::data_net::{GatewayProcess, OPERATOR, org_key_path, prepare_data_network, register_sim_devices};
use chipledger_cli::net::LocalNet;
use chipledger_cli::simulate::{SIM_STREAM, SimKey, sim_owner_secret};
use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey};
use chipledger_device::record::verify_record;
use chipledger_device::seal::{open_payload, unwrap_epoch_key};
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_node::api_data::{BatchBody, DeviceDataBody, GatewayBody};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::record::{Record, STREAM_EPOCH_KEYS, parse_sign1};

/// API ports 28070..28073, p2p 28170.. (clear of the other process tests).
const BASE_PORT: u16 = 28070;
const DEVICES: u64 = 200;
/// Data records per device: `--rate 25 --seconds 2`.
const RECORDS: u64 = 50;
const WAIT: Duration = Duration::from_secs(120);
/// The marker every simulated plaintext carries (`{"device":…,"k":…,"temp_mc":…}`).
const PLAINTEXT_MARKER: &[u8] = b"\"temp_mc\":";

/// One run: a broker, a gateway in front of it, a seed for its devices.
struct Run<'a> {
    name: &'a str,
    seed: u64,
    /// `--listen ADDR` (embedded broker) or `--broker ADDR`.
    broker_flag: &'a str,
    broker: SocketAddr,
    http: SocketAddr,
}

#[test]
fn two_hundred_devices_through_embedded_broker_and_mosquitto_every_record_provable() -> Result<()> {
    if !Command::new("which").arg("mosquitto").output()?.status.success() {
        bail!("mosquitto is not installed: run the README's test command (scripts/test.sh installs it)");
    }
    let dir = std::env::temp_dir().join(format!("chipledger-test-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, BASE_PORT, "chipledger-test")?;
    net.start_all_ready(WAIT)?;
    let result = run(&net, &exe, &dir);
    net.stop_all();
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn run(net: &LocalNet, exe: &Path, dir: &Path) -> Result<()> {
    let c = Client::new(&net.apis[0])?;
    let dn = prepare_data_network(net, &c)?;
    let embedded = Run {
        name: "gw-embedded",
        seed: 5,
        broker_flag: "--listen",
        broker: free_local_addr()?,
        http: free_local_addr()?,
    };
    let mosquitto_addr = free_local_addr()?;
    let _mosquitto = Mosquitto::start(mosquitto_addr, dir)?;
    let via_mosquitto = Run {
        name: "gw-mosquitto",
        seed: 6,
        broker_flag: "--broker",
        broker: mosquitto_addr,
        http: free_local_addr()?,
    };
    for r in [&embedded, &via_mosquitto] {
        let ids = register_sim_devices(net, &c, &dn.ca, DeviceKeyAlg::P256, r.seed, 0..DEVICES)?;
        fleet_through_gateway(net, exe, dir, &c, r, &ids)?;
    }
    Ok(())
}

fn gateway_args(net: &LocalNet, dir: &Path, r: &Run<'_>) -> Vec<String> {
    [
        "--name",
        r.name,
        "--org",
        OPERATOR,
        "--key",
        &org_key_path(net, OPERATOR).display().to_string(),
        "--api",
        &net.apis[0],
        r.broker_flag,
        &r.broker.to_string(),
        "--http",
        &r.http.to_string(),
        "--data",
        &dir.join(r.name).display().to_string(),
        "--batch-ms",
        "200",
    ]
    .map(String::from)
    .to_vec()
}

fn fleet_through_gateway(
    net: &LocalNet,
    exe: &Path,
    dir: &Path,
    c: &Client,
    r: &Run<'_>,
    ids: &[DeviceId],
) -> Result<()> {
    let gateway = GatewayProcess::start(exe, &gateway_args(net, dir, r), None)?;
    let registered: GatewayBody = c.get_json(&format!("/v1/data/gateways/{}", r.name))?;
    assert_eq!(registered.operator, OPERATOR);

    let started = Instant::now();
    let report = simulate(exe, r)?;
    eprintln!("{}: simulated in {:.1} s", r.name, started.elapsed().as_secs_f64());
    let count = |k: &str| report[k].as_u64().unwrap_or(0);
    assert_eq!(count("records_published"), DEVICES * RECORDS, "{}: {report}", r.name);
    assert_eq!(
        count("records_acked"),
        DEVICES * RECORDS,
        "{}: every record acked durable",
        r.name
    );
    let sent = count("records_published") + count("epoch_keys_published");
    assert_eq!(
        count("dacks_received"),
        sent,
        "{}: epoch keys acked too: {report}",
        r.name
    );

    // Every acked record ends up committed, in batches the ledger holds as final.
    let g: GatewayBody = poll(&format!("{}: all records committed", r.name), || {
        let g: GatewayBody = c.get_json(&format!("/v1/data/gateways/{}", r.name))?;
        Ok((g.records == sent).then_some(g))
    })?;
    eprintln!("{}: committed after {:.1} s", r.name, started.elapsed().as_secs_f64());
    let mut in_batches = 0;
    for seq in 1..=g.last_batch {
        let b: BatchBody = c.get_json(&format!("/v1/data/batches/{}/{seq}", r.name))?;
        assert_eq!(b.operator, OPERATOR);
        in_batches += b.record_count as u64;
    }
    assert_eq!(in_batches, sent, "{}: batches hold every record once", r.name);

    // The ledger's chain heads: every device, both streams, every seq, no gap, trust 1.
    let mut epoch_keys = Vec::new();
    for id in ids {
        let d: DeviceDataBody = c.get_json(&format!("/v1/data/devices/{id}"))?;
        let streams: BTreeSet<&str> = d.streams.iter().map(|s| s.stream.as_str()).collect();
        assert_eq!(streams, BTreeSet::from([STREAM_EPOCH_KEYS, SIM_STREAM]), "{id}");
        for s in &d.streams {
            assert_eq!(s.gateway, r.name);
            assert_eq!(s.trust, 1, "registered DeviceID key: trust level 1");
            assert_eq!(
                (s.missing, s.records),
                (0, s.seq),
                "{id}/{}: every seq committed",
                s.stream
            );
            if s.stream == SIM_STREAM {
                assert_eq!(s.seq, RECORDS, "{id}: {RECORDS} data records");
            } else {
                epoch_keys.push((*id, s.seq));
            }
        }
        assert_eq!(d.anomalies.total, 0, "{id}: no anomaly");
    }

    let proving = Instant::now();
    prove_every_record(net, r, ids, &epoch_keys)?;
    eprintln!(
        "{}: every record proven in {:.1} s",
        r.name,
        proving.elapsed().as_secs_f64()
    );
    relays_see_nothing(net, dir, r)?;

    // A clean stop and a restart on the same store: registration found, nothing committed twice.
    let status = gateway.interrupt(WAIT)?;
    assert!(status.success(), "{}: exit {status}", r.name);
    let again = GatewayProcess::start(exe, &gateway_args(net, dir, r), None)?;
    std::thread::sleep(Duration::from_secs(1));
    let after: GatewayBody = c.get_json(&format!("/v1/data/gateways/{}", r.name))?;
    assert_eq!((after.last_batch, after.records), (g.last_batch, g.records));
    assert_eq!(after.registered_height, registered.registered_height);
    let status = again.interrupt(WAIT)?;
    assert!(status.success(), "{}: exit {status}", r.name);
    Ok(())
}

/// `fleet simulate`: DEVICES devices × RECORDS records through the run's broker.
fn simulate(exe: &Path, r: &Run<'_>) -> Result<serde_json::Value> {
    let out = Command::new(exe)
        .args(["fleet", "simulate", "--devices", &DEVICES.to_string()])
        .args(["--rate", "25", "--seconds", "2", "--ack-wait-ms", "60000", "--json"])
        .args(["--broker", &r.broker.to_string(), "--seed", &r.seed.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("fleet simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).context("simulate report")
}

/// Fetches every record's proof from the gateway and verifies it offline against the
/// validators' keys: each proves the exact (device, stream, seq) asked for, under a checkpoint
/// cosigned by a quorum, and the record itself verifies under the device's key (end to end).
fn prove_every_record(net: &LocalNet, r: &Run<'_>, ids: &[DeviceId], epoch_keys: &[(DeviceId, u64)]) -> Result<()> {
    let trust = node_trust(&net.apis[0])?;
    let keys: std::collections::HashMap<DeviceId, DevicePublicKey> = (0..DEVICES)
        .map(|i| {
            let k = SimKey::derive(DeviceKeyAlg::P256, r.seed, i);
            (k.device_id(), k.public())
        })
        .collect();
    let gateway = format!("http://{}", r.http);
    let wanted = ids
        .iter()
        .flat_map(|id| (1..=RECORDS).map(move |seq| (*id, SIM_STREAM, seq)))
        .chain(
            epoch_keys
                .iter()
                .flat_map(|(id, n)| (1..=*n).map(move |seq| (*id, STREAM_EPOCH_KEYS, seq))),
        );
    let wanted: Vec<(DeviceId, &str, u64)> = wanted.collect();
    let check = |&(device, stream, seq): &(DeviceId, &str, u64)| -> Result<()> {
        let proof = wait_record_proof(&gateway, &device, stream, seq, WAIT)?;
        let p = trust
            .verify(&proof)
            .with_context(|| format!("{}: proof of {device}/{stream}/{seq}", r.name))?;
        assert_eq!((p.device, p.stream.as_str(), p.seq), (device, stream, seq));
        assert!(p.signers >= 3, "cosigned by a quorum of the 4 validators");
        let key = keys.get(&device).context("a simulated device")?;
        verify_record(&proof.record, key).map_err(|e| anyhow::anyhow!("{device}/{stream}/{seq}: {e}"))?;
        Ok(())
    };
    // Four client threads: the gateway serves proofs concurrently.
    let chunk = wanted.len().div_ceil(4).max(1);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = wanted
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().try_for_each(check)))
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a proof thread panicked"))??;
        }
        Ok(())
    })?;
    let proven = wanted.len() as u64;
    let expected = DEVICES * RECORDS + epoch_keys.iter().map(|(_, n)| n).sum::<u64>();
    assert_eq!(proven, expected);
    Ok(())
}

/// Relays see nothing: the owner can open the records (so the test knows every epoch data
/// key and plaintext), yet no file of the gateway or of any validator contains a data key or
/// a plaintext reading.
fn relays_see_nothing(net: &LocalNet, dir: &Path, r: &Run<'_>) -> Result<()> {
    let owner = sim_owner_secret(r.seed);
    let gateway = format!("http://{}", r.http);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    let mut opened = 0;
    let device = SimKey::derive(DeviceKeyAlg::P256, r.seed, 0).device_id();
    let key_proof = wait_record_proof(&gateway, &device, STREAM_EPOCH_KEYS, 1, WAIT)?;
    let key_record = decode(&key_proof.record)?;
    let grant = unwrap_epoch_key(&key_record.payload, &owner).map_err(|e| anyhow::anyhow!("{e}"))?;
    secrets.push(grant.key.as_bytes().to_vec());
    for seq in 1..=RECORDS {
        let proof = wait_record_proof(&gateway, &device, SIM_STREAM, seq, WAIT)?;
        let record = decode(&proof.record)?;
        if record.epoch != grant.epoch {
            continue;
        }
        let plain = open_payload(&record, &grant.key).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert!(plain.windows(PLAINTEXT_MARKER.len()).any(|w| w == PLAINTEXT_MARKER));
        secrets.push(plain);
        opened += 1;
    }
    assert!(opened > 0, "the owner opened records of epoch {}", grant.epoch);
    secrets.push(PLAINTEXT_MARKER.to_vec());
    let mut roots = vec![dir.join(r.name)];
    roots.extend((0..net.names.len()).map(|i| net.node_dir(i)));
    let mut scanned = 0u64;
    for root in roots {
        for file in files_under(&root)? {
            // Live stores: a temporary file may vanish between listing and reading.
            let bytes = match std::fs::read(&file) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                other => other.with_context(|| format!("reading {}", file.display()))?,
            };
            scanned += bytes.len() as u64;
            for s in &secrets {
                assert!(
                    memchr::memmem::find(&bytes, s).is_none(),
                    "{} holds a secret ({} bytes)",
                    file.display(),
                    s.len()
                );
            }
        }
    }
    assert!(scanned > 1_000_000, "the stores were scanned ({scanned} bytes)");
    Ok(())
}

fn decode(signed: &[u8]) -> Result<Record> {
    let parts = parse_sign1(signed).map_err(|e| anyhow::anyhow!("{e}"))?;
    Record::decode_body(parts.body).map_err(|e| anyhow::anyhow!("{e}"))
}

fn files_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.with_context(|| format!("listing {}", d.display()))?,
        };
        for entry in entries {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// A mosquitto broker on a loopback port, killed on drop.
struct Mosquitto(Child);

impl Mosquitto {
    fn start(addr: SocketAddr, dir: &Path) -> Result<Mosquitto> {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} {}\nallow_anonymous true\npersistence false\n{}",
                addr.port(),
                addr.ip(),
                chipledger_gateway::mqtt::MOSQUITTO_GATEWAY_SETTINGS
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto")?;
        let m = Mosquitto(child);
        poll("mosquitto to listen", || {
            Ok(std::net::TcpStream::connect(addr).ok().map(|_| ()))
        })?;
        Ok(m)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn poll<T>(what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f()? {
            return Ok(v);
        }
        if start.elapsed() > WAIT {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

//! The demo's data-at-source phase: governance adds the operator organisation `ops` and a data
//! device CA, the maker registers simulated sensors, `chipledger gateway` (a child process with
//! its embedded MQTT broker) registers itself, and `fleet simulate` publishes signed, sealed,
//! hash-chained records through it until every one is committed in a final batch. The gateway
//! keeps running with the network; a restarted demo restarts it on the same store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::data_net::{GatewayProcess, OPERATOR, org_key_path, prepare_data_network, register_sim_devices};
use chipledger_cli::simulate::{SimulateOptions, SimulateReport, sim_owner_secret, simulate};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::api_data::{DeviceDataBody, GatewayBody};
use chipledger_types::device_tx::DeviceId;

use crate::client::Client;
use crate::net::LocalNet;

/// The demo gateway's registered name.
pub const GATEWAY: &str = "city-gw";
/// Simulated sensors.
const SENSORS: usize = 40;
/// Records each sensor publishes.
const RECORDS_PER_SENSOR: u64 = 25;
/// Records per second per sensor.
const RATE_PER_S: f64 = 10.0;
/// Seed of the sensors' keys (and of the owner key their data is sealed to).
pub const SENSOR_SEED: u64 = 2026;
/// MQTT group of the sensors.
const GROUP: &str = "air-quality";
/// How long the demo waits for the last batch to be final.
const COMMIT_WAIT: Duration = Duration::from_secs(60);
/// Port offsets from the demo's base port.
const MQTT_PORT_OFFSET: u16 = 200;
const GATEWAY_HTTP_PORT_OFFSET: u16 = 201;

/// Where the demo's data files live.
fn data_dir(net: &LocalNet) -> PathBuf {
    net.dir.join("data")
}

fn gateway_args(net: &LocalNet, base_port: u16) -> Vec<String> {
    let dir = data_dir(net);
    [
        "--name",
        GATEWAY,
        "--org",
        OPERATOR,
        "--key",
        &org_key_path(net, OPERATOR).display().to_string(),
        "--api",
        &net.apis[0],
        "--listen",
        &format!("127.0.0.1:{}", base_port + MQTT_PORT_OFFSET),
        "--http",
        &format!("127.0.0.1:{}", base_port + GATEWAY_HTTP_PORT_OFFSET),
        "--data",
        &dir.join("gateway").display().to_string(),
        "--batch-ms",
        "500",
    ]
    .map(String::from)
    .to_vec()
}

/// Starts the demo's gateway process (log in the data directory) and says so.
fn start_gateway(net: &LocalNet, exe: &Path, base_port: u16, what: &str) -> Result<GatewayProcess> {
    let log = data_dir(net).join("gateway.log");
    let gateway = GatewayProcess::start(exe, &gateway_args(net, base_port), Some(&log))?;
    println!(
        "  gateway {GATEWAY} {what}: embedded MQTT broker on 127.0.0.1:{}, record API on http://127.0.0.1:{} (log: {})",
        base_port + MQTT_PORT_OFFSET,
        base_port + GATEWAY_HTTP_PORT_OFFSET,
        log.display()
    );
    Ok(gateway)
}

/// Restarts the gateway of an earlier demo run on the same store, if there was one.
pub fn resume(net: &LocalNet, exe: &Path, base_port: u16) -> Result<Option<GatewayProcess>> {
    if !data_dir(net).join("gateway").exists() {
        return Ok(None);
    }
    let gateway = start_gateway(net, exe, base_port, "resumed")?;
    Ok(Some(gateway))
}

/// The whole phase; returns the running gateway and the sensors.
pub fn run(net: &LocalNet, exe: &Path, base_port: u16) -> Result<(GatewayProcess, Vec<DeviceId>)> {
    let client = Client::new(&net.apis[0])?;
    let dn = prepare_data_network(net, &client)?;
    println!("  operator organisation '{OPERATOR}' and a data device CA: approved by city, maker, vendor");
    let ids = register_sim_devices(net, &client, &dn.ca, DeviceKeyAlg::P256, SENSOR_SEED, 0..SENSORS as u64)?;
    println!("  {} air-quality sensors registered (owner: city)", ids.len());
    let dir = data_dir(net);
    std::fs::create_dir_all(&dir)?;
    let owner = sim_owner_secret(SENSOR_SEED);
    let owner_path = owner_key_path(net);
    std::fs::write(&owner_path, hex::encode(owner.to_bytes()))
        .with_context(|| format!("writing {}", owner_path.display()))?;
    let gateway = start_gateway(net, exe, base_port, "registered")?;
    let report = publish(base_port, owner.public_key())?;
    let sent = report.records_published + report.epoch_keys_published;
    let committed = wait_committed(&client, sent)?;
    println!(
        "  {} records ({} data, {} epoch keys) committed in {} batches; relays and validators hold only ciphertext",
        committed.records, report.records_published, report.epoch_keys_published, committed.last_batch
    );
    let first = ids.first().context("no sensors")?;
    let d: DeviceDataBody = client.get_json(&format!("/v1/data/devices/{first}"))?;
    for s in &d.streams {
        println!(
            "  sensor {}… {:<12} head seq {} ({} records, trust {}, {} missing)",
            &first.to_string()[..12],
            s.stream,
            s.seq,
            s.records,
            s.trust_name,
            s.missing
        );
    }
    println!(
        "  try: chipledger data show {first} --api {api}\n       chipledger data get {first} telemetry 1 --gateway http://127.0.0.1:{http} --api {api} --decrypt --owner-key {owner}",
        api = net.apis[0],
        http = base_port + GATEWAY_HTTP_PORT_OFFSET,
        owner = owner_path.display(),
    );
    Ok((gateway, ids))
}

/// The owner's data key file (hex P-256 secret) the sensors seal to.
pub fn owner_key_path(net: &LocalNet) -> PathBuf {
    data_dir(net).join("owner-data-key.hex")
}

/// The gateway's embedded MQTT broker (the sensors' command channel too).
pub fn broker(base_port: u16) -> std::net::SocketAddr {
    ([127, 0, 0, 1], base_port + MQTT_PORT_OFFSET).into()
}

/// The gateway's record API.
pub fn records_url(base_port: u16) -> String {
    format!("http://127.0.0.1:{}", base_port + GATEWAY_HTTP_PORT_OFFSET)
}

/// Where the demo's data files live (key service log too).
pub fn dir(net: &LocalNet) -> PathBuf {
    data_dir(net)
}

/// Runs the simulator in-process with a progress line.
fn publish(base_port: u16, owner: p256::PublicKey) -> Result<SimulateReport> {
    let opts = SimulateOptions {
        host: "127.0.0.1".into(),
        port: base_port + MQTT_PORT_OFFSET,
        devices: SENSORS,
        records_per_device: RECORDS_PER_SENSOR,
        records_per_s: RATE_PER_S,
        group: GROUP.into(),
        alg: DeviceKeyAlg::P256,
        seed: SENSOR_SEED,
        owner,
        ack_wait_ms: COMMIT_WAIT.as_millis() as u64,
    };
    let total = SENSORS as u64 * RECORDS_PER_SENSOR;
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(simulate(opts, |r| {
        use std::io::Write as _;
        print!(
            "\r  simulating {SENSORS} sensors: {}/{total} records published, {} acked durable   ",
            r.records_published, r.records_acked
        );
        let _ = std::io::stdout().flush();
    }))?;
    println!(
        "\r  simulated {SENSORS} sensors: {} records published, {} acked durable in {:.1} s          ",
        report.records_published,
        report.records_acked,
        report.elapsed_ms as f64 / 1000.0
    );
    if report.records_acked != report.records_published {
        bail!(
            "the gateway acknowledged {} of {} records",
            report.records_acked,
            report.records_published
        );
    }
    Ok(report)
}

/// Waits until the gateway's committed record count on the ledger reaches `sent`.
fn wait_committed(client: &Client, sent: u64) -> Result<GatewayBody> {
    let started = Instant::now();
    loop {
        if let Ok(g) = client.get_json::<GatewayBody>(&format!("/v1/data/gateways/{GATEWAY}"))
            && g.records >= sent
        {
            return Ok(g);
        }
        if started.elapsed() > COMMIT_WAIT {
            bail!("the gateway's records were not all committed within {COMMIT_WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

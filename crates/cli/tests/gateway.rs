//! `chipledger gateway` end to end on four validator processes: governance adds an Operator
//! organisation and a manufacturer CA, three devices are registered with DeviceID certificates
//! for the keys `fleet simulate` signs with, the gateway process registers itself, `fleet
//! simulate` publishes records through its embedded broker, and the ledger then shows the
//! gateway's committed batches and every device's chain heads at trust level 1 (registered key).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::device_cmd::{Ca, provision_chip, submit_final};
use chipledger_cli::net::LocalNet;
use chipledger_cli::simulate::SimKey;
use chipledger_device::cert::{CertRequest, CertValidity, issue_deviceid_cert};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_node::api_data::{BatchBody, DeviceDataBody, GatewayBody};
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, ModelRange, RegisterDevice};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, TxHash};

/// API ports 28070..28073, p2p 28170.. (clear of the other process tests).
const BASE_PORT: u16 = 28070;
const MODEL: u32 = 120;
const DEVICES: u64 = 3;
const SEED: u64 = 5;
const GATEWAY: &str = "gw-test";
const OPERATOR: &str = "ops";
const WAIT: Duration = Duration::from_secs(60);

fn org_key(net: &LocalNet, org: &str) -> SigningKey {
    KeyFile::read(&net.dir.join("orgs").join(format!("{org}.key"))).expect("org key")
}

fn proposal_id(hash: &str) -> Result<TxHash> {
    let b: [u8; 32] = hex::decode(hash)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("tx hash is 32 bytes"))?;
    Ok(TxHash(b))
}

/// Proposed by `city`, approved by `maker` and `vendor` (3 of 4).
fn govern(net: &LocalNet, c: &Client, action: GovAction) -> Result<()> {
    let proposal = submit_final(c, "city", &org_key(net, "city"), Payload::Propose(action))?;
    let id = proposal_id(&proposal.hash)?;
    for org in ["maker", "vendor"] {
        submit_final(c, org, &org_key(net, org), Payload::Approve { proposal: id })?;
    }
    Ok(())
}

/// Registers simulated device `index` (its DeviceID key is the key the simulator signs with).
fn register_sim_device(net: &LocalNet, c: &Client, ca: &Ca, index: u64) -> Result<String> {
    let key = SimKey::derive(DeviceKeyAlg::P256, SEED, index);
    let id = key.device_id();
    let template = provision_chip(ca, "maker", "lamp")?.deviceid_request();
    let public = key.public();
    let request = CertRequest {
        subject_public_key: &public,
        subject_id: &id.0,
        tcb_info: &template.tcb_info,
        validity: CertValidity::DICE_DEFAULT,
    };
    let der = issue_deviceid_cert(&ca.key, &ca.cert_der, &request).map_err(|e| anyhow::anyhow!("{e}"))?;
    let payload = Payload::RegisterDevice(RegisterDevice {
        ca: ca.id,
        deviceid_cert_der: der,
        model: MODEL,
        owner: "city".into(),
    });
    submit_final(c, "maker", &org_key(net, "maker"), payload)?;
    Ok(id.to_string())
}

/// Kills the gateway process when the test ends, however it ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `chipledger gateway` with its embedded broker on `listen`; returns once it is
/// subscribed.
fn start_gateway(exe: &Path, dir: &Path, api: &str, listen: SocketAddr) -> Result<Gateway> {
    let mut child = Command::new(exe)
        .args(["gateway", "--name", GATEWAY, "--org", OPERATOR, "--key"])
        .arg(dir.join("ops.key"))
        .args(["--api", api, "--listen", &listen.to_string(), "--data"])
        .arg(dir.join("gateway-data"))
        .args(["--batch-ms", "200"])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the gateway")?;
    let lines = stdout_lines(child.stdout.take().context("gateway stdout")?);
    let gateway = Gateway(child);
    poll("the gateway's subscription", || {
        Ok(lines.try_iter().find(|l| l.contains("subscribed")))
    })?;
    Ok(gateway)
}

/// Ctrl-C (SIGINT) stops the gateway cleanly (exit status 0).
fn interrupt(mut g: Gateway) -> Result<()> {
    let pid = g.0.id().to_string();
    let ok = Command::new("kill").args(["-INT", &pid]).status()?.success();
    assert!(ok, "kill -INT {pid}");
    let status = poll("the gateway to stop", || Ok(g.0.try_wait()?))?;
    assert!(status.success(), "gateway exited with {status}");
    Ok(())
}

/// The lines a process prints, read on a thread (so its pipe never fills).
fn stdout_lines(out: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)).map_while(Result::ok) {
            // Keep draining after the receiver is gone, so the gateway's stdout stays open.
            let _ = tx.send(line);
        }
    });
    rx
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

#[test]
fn gateway_commits_simulated_fleet_records() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("chipledger-test-gateway-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_chipledger"));
    let mut net = LocalNet::prepare(&dir, &exe, BASE_PORT, "chipledger-test")?;
    net.start_all_ready(WAIT)?;
    let result = run(&net, &exe, &dir);
    net.stop_all();
    result
}

fn run(net: &LocalNet, exe: &Path, dir: &Path) -> Result<()> {
    let c = Client::new(&net.apis[0])?;
    let ops_key = SigningKey::ed25519_from_seed(&[7u8; 32]);
    KeyFile::write(&dir.join("ops.key"), &ops_key)?;
    govern(
        net,
        &c,
        GovAction::AddOrg(OrgSpec {
            name: OPERATOR.into(),
            roles: vec![Role::Operator],
            keys: vec![ops_key.public_key()],
        }),
    )?;
    let ca = Ca::generate("CN=Maker Device CA,O=maker")?;
    govern(
        net,
        &c,
        GovAction::AddManufacturerCa(AddManufacturerCa {
            org: "maker".into(),
            ca_cert_der: ca.cert_der.clone(),
            models: vec![ModelRange { first: 100, last: 199 }],
        }),
    )?;
    let ids = (0..DEVICES)
        .map(|i| register_sim_device(net, &c, &ca, i))
        .collect::<Result<Vec<_>>>()?;

    let listen = free_local_addr()?;
    let gateway = start_gateway(exe, dir, &net.apis[0], listen)?;
    let registered: GatewayBody = poll("the gateway's registration", || {
        Ok(c.get_json::<GatewayBody>(&format!("/v1/data/gateways/{GATEWAY}")).ok())
    })?;
    assert_eq!(registered.operator, OPERATOR);

    let out = Command::new(exe)
        .args([
            "fleet",
            "simulate",
            "--devices",
            &DEVICES.to_string(),
            "--rate",
            "10",
            "--seconds",
            "2",
        ])
        .args(["--broker", &listen.to_string(), "--seed", &SEED.to_string(), "--json"])
        .output()?;
    if !out.status.success() {
        bail!("fleet simulate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("simulate report")?;
    let count = |k: &str| report[k].as_u64().unwrap_or(0);
    let sent = count("records_published") + count("epoch_keys_published");
    assert!(
        count("records_published") >= DEVICES,
        "every device published: {report}"
    );
    assert_eq!(
        count("records_acked"),
        count("records_published"),
        "every data record acked durable: {report}"
    );
    assert_eq!(
        count("dacks_received"),
        sent,
        "every record (epoch keys too) acked: {report}"
    );

    // Every acked record ends up committed, in batches the ledger holds.
    let g: GatewayBody = poll("all records committed", || {
        let g: GatewayBody = c.get_json(&format!("/v1/data/gateways/{GATEWAY}"))?;
        Ok((g.records == sent).then_some(g))
    })?;
    assert!(g.last_batch >= 1);
    let mut in_batches = 0;
    for seq in 1..=g.last_batch {
        let b: BatchBody = c.get_json(&format!("/v1/data/batches/{GATEWAY}/{seq}"))?;
        assert_eq!(b.operator, OPERATOR);
        assert!(b.tx_proof.is_some(), "batch {seq} is final with a log proof");
        in_batches += b.record_count as u64;
    }
    assert_eq!(in_batches, sent);

    let mut heads = 0;
    for id in &ids {
        let d: DeviceDataBody = c.get_json(&format!("/v1/data/devices/{id}"))?;
        assert!(d.registered && !d.revoked, "{id}");
        assert!(!d.streams.is_empty(), "device {id} has chain heads");
        for s in &d.streams {
            assert_eq!(s.gateway, GATEWAY);
            assert_eq!(s.trust, 1, "registered DeviceID key: trust level 1");
            assert_eq!(s.missing, 0, "no gaps");
            assert_eq!(s.records, s.seq, "every record of {id}/{} committed", s.stream);
        }
        assert_eq!(d.anomalies.total, 0);
        heads += d.records;
    }
    assert_eq!(heads, sent, "the devices' chains hold every record");

    // Ctrl-C stops it cleanly; a restart on the same store finds its registration and commits
    // nothing twice.
    interrupt(gateway)?;
    let again = start_gateway(exe, dir, &net.apis[0], listen)?;
    std::thread::sleep(Duration::from_secs(1));
    let after: GatewayBody = c.get_json(&format!("/v1/data/gateways/{GATEWAY}"))?;
    assert_eq!((after.last_batch, after.records), (g.last_batch, g.records));
    assert_eq!(after.registered_height, registered.registered_height);
    interrupt(again)
}

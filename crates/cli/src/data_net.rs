//! A local network made ready for data at source: an Operator organisation that runs gateways,
//! a manufacturer CA, and simulated devices registered with the DeviceID keys `fleet simulate`
//! signs with. Shared by `bench ingest`, the demo and the integration tests, so that each sets
//! up the same ledger state the same way.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chipledger_device::cert::{CertRequest, CertValidity, issue_deviceid_cert};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::{AddManufacturerCa, DeviceId, ModelRange, RegisterDevice};
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, TxHash};

use crate::client::Client;
use crate::device_cmd::{Ca, provision_chip, submit_final};
use crate::net::LocalNet;
use crate::simulate::SimKey;
use crate::txcmd::{build, wait_final};

/// The organisation that operates gateways.
pub const OPERATOR: &str = "ops";
/// The manufacturer that registers the simulated devices.
pub const MANUFACTURER: &str = "maker";
/// The organisation that owns them (and proposes governance).
pub const OWNER: &str = "city";
/// Hardware model of simulated data devices.
pub const DATA_MODEL: u32 = 120;
/// Models the data CA may endorse.
const DATA_MODELS: ModelRange = ModelRange { first: 100, last: 199 };
/// Registrations per `/v1/txs` request (the API's limit is 4,096).
const REGISTER_CHUNK: usize = 1000;
/// How long setup waits for a transaction to be final.
const SETUP_WAIT: Duration = Duration::from_secs(120);
/// Blocks a registration stays valid.
const REGISTER_EXPIRY_BLOCKS: u64 = 1000;

/// The key of one of the network's organisations (`<net>/orgs/<org>.key`).
pub fn org_key(net: &LocalNet, org: &str) -> Result<SigningKey> {
    let path = org_key_path(net, org);
    KeyFile::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Where an organisation's key file lives.
pub fn org_key_path(net: &LocalNet, org: &str) -> PathBuf {
    net.dir.join("orgs").join(format!("{org}.key"))
}

/// Proposed by `city`, approved by `maker` and `vendor` (3 of the 4 genesis organisations):
/// the action executes once the last approval is final.
pub fn govern(net: &LocalNet, client: &Client, action: GovAction) -> Result<()> {
    let proposal = submit_final(client, OWNER, &org_key(net, OWNER)?, Payload::Propose(action))?;
    let id: [u8; 32] = hex::decode(&proposal.hash)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("a transaction hash is 32 bytes"))?;
    for org in [MANUFACTURER, "vendor"] {
        submit_final(
            client,
            org,
            &org_key(net, org)?,
            Payload::Approve { proposal: TxHash(id) },
        )?;
    }
    Ok(())
}

/// What [`prepare_data_network`] set up.
pub struct DataNet {
    /// The operator organisation's key (also written to `<net>/orgs/ops.key`).
    pub operator_key: SigningKey,
    pub operator_key_path: PathBuf,
    /// The manufacturer CA that endorses simulated devices.
    pub ca: Ca,
}

/// Adds the Operator organisation `ops` (a fresh key) and a manufacturer CA for models
/// 100..=199 by governance.
pub fn prepare_data_network(net: &LocalNet, client: &Client) -> Result<DataNet> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let operator_key = SigningKey::ed25519_from_seed(&seed);
    let operator_key_path = org_key_path(net, OPERATOR);
    KeyFile::write(&operator_key_path, &operator_key)?;
    govern(
        net,
        client,
        GovAction::AddOrg(OrgSpec {
            name: OPERATOR.into(),
            roles: vec![Role::Operator],
            keys: vec![operator_key.public_key()],
        }),
    )
    .context("adding the operator organisation")?;
    let ca = Ca::generate("CN=Maker Data Device CA,O=maker")?;
    govern(
        net,
        client,
        GovAction::AddManufacturerCa(AddManufacturerCa {
            org: MANUFACTURER.into(),
            ca_cert_der: ca.cert_der.clone(),
            models: vec![DATA_MODELS],
        }),
    )
    .context("adding the data device CA")?;
    Ok(DataNet {
        operator_key,
        operator_key_path,
        ca,
    })
}

/// The registration of simulated device `index` of `seed`: a DeviceID certificate from `ca`
/// for the key the simulator signs with.
pub fn sim_registration(ca: &Ca, alg: DeviceKeyAlg, seed: u64, index: u64) -> Result<(DeviceId, Payload)> {
    let key = SimKey::derive(alg, seed, index);
    let id = key.device_id();
    let template = provision_chip(ca, MANUFACTURER, "data-sensor")?.deviceid_request();
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
        model: DATA_MODEL,
        owner: OWNER.into(),
    });
    Ok((id, payload))
}

/// Registers simulated devices `indices` of `seed` (owner `city`), submitting in large batches
/// and waiting until the last registration is final. Returns their ids in index order.
pub fn register_sim_devices(
    net: &LocalNet,
    client: &Client,
    ca: &Ca,
    alg: DeviceKeyAlg,
    seed: u64,
    indices: Range<u64>,
) -> Result<Vec<DeviceId>> {
    let key = org_key(net, MANUFACTURER)?;
    let mut next_seq = client.org(MANUFACTURER)?.last_seq + 1;
    let mut ids = Vec::new();
    let mut last = None;
    let all: Vec<u64> = indices.collect();
    for chunk in all.chunks(REGISTER_CHUNK) {
        let mut txs = Vec::with_capacity(chunk.len());
        for &index in chunk {
            let (id, payload) = sim_registration(ca, alg, seed, index)?;
            ids.push(id);
            txs.push(build(
                client,
                MANUFACTURER,
                &key,
                Some(next_seq),
                REGISTER_EXPIRY_BLOCKS,
                payload,
            )?);
            next_seq += 1;
        }
        for item in client.submit_batch(&txs)? {
            match item.hash {
                Some(h) if item.status == "pending" => last = Some(h),
                _ => bail!(
                    "registration refused: {} {}",
                    item.status,
                    item.message.unwrap_or_default()
                ),
            }
        }
    }
    if let Some(hash) = last {
        let s = wait_final(client, &hash, SETUP_WAIT)?;
        if s.status != "final" {
            bail!("registration {hash}: {}", s.reason.unwrap_or_default());
        }
    }
    Ok(ids)
}

/// A `chipledger gateway` child process; killed (SIGKILL) when dropped.
pub struct GatewayProcess {
    child: std::process::Child,
    /// Lines it printed that nobody read yet.
    pub lines: std::sync::mpsc::Receiver<String>,
}

/// How long [`GatewayProcess::start`] waits for the subscription.
pub const GATEWAY_START_WAIT: Duration = Duration::from_secs(60);

impl GatewayProcess {
    /// Runs `exe gateway <args>` and returns once it printed that it is subscribed. Its log
    /// (stderr) goes to `log` when given, else to this process's stderr.
    pub fn start(exe: &std::path::Path, args: &[String], log: Option<&std::path::Path>) -> Result<GatewayProcess> {
        use std::io::BufRead as _;
        let stderr = match log {
            Some(path) => std::process::Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => std::process::Stdio::inherit(),
        };
        let mut child = std::process::Command::new(exe)
            .arg("gateway")
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting the gateway")?;
        let out = child.stdout.take().context("gateway stdout")?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                // Keep draining after the receiver is gone, so the gateway's stdout stays open.
                let _ = tx.send(line);
            }
        });
        let mut gateway = GatewayProcess { child, lines };
        let started = std::time::Instant::now();
        loop {
            match gateway.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains("subscribed") => return Ok(gateway),
                Ok(_) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = gateway.child.wait()?;
                    bail!("the gateway exited before subscribing ({status})");
                }
            }
            if started.elapsed() > GATEWAY_START_WAIT {
                bail!("the gateway did not subscribe within {GATEWAY_START_WAIT:?}");
            }
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and wait for the exit.
    pub fn kill(mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGINT (a clean stop); waits up to `timeout` and returns the exit status.
    pub fn interrupt(mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-INT", &pid]).status()?;
        if !sent.success() {
            bail!("kill -INT {pid} failed");
        }
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > timeout {
                bail!("the gateway did not stop within {timeout:?} of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

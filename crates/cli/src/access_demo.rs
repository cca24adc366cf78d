//! The access scenario of issue 6, shared by `chipledger demo` and `tests/access_flow.rs`:
//!
//! 1. governance issues ledger credits to a research organisation (the buyer);
//! 2. the city tags one district's sensors and offers a month of their air-quality data;
//! 3. the buyer purchases the offer: credits move and the grant is created atomically;
//! 4. the buyer asks the city's key service (a separate `chipledger keyservice` process) for a
//!    sensor's epoch key: the `KeyRelease` is final on the ledger before any key leaves; the
//!    buyer decrypts a proven record;
//! 5. the city revokes the grant; the next request is refused (`grant_revoked`);
//! 6. the city authorizes a technician's organisation to run diagnostics on one sensor; the
//!    sensor (a simulated device on the MQTT broker) verifies the authorization proof, answers,
//!    and its signed receipt lands on the ledger;
//! 7. the sensor's commitment to a reading and a range proof that it is within a limit are
//!    published and verified by the ledger;
//! 8. the sensor's audit trail, every entry's inclusion proof checked offline under a
//!    quorum-cosigned checkpoint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_node::api_access::CreditsBody;
use chipledger_node::api_audit::AuditEntryBody;
use chipledger_types::access_tx::{AccessScope, Grantee, PublishOffer, Purchase, RevokeAccess, TagDevices};
use chipledger_types::audit::AuditSubject;
use chipledger_types::command_tx::Authorize;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::{GovAction, Payload, TxHash};

use crate::audit_cmd::{EntryCheck, fetch_all, verify_entry};
use crate::client::Client;
use crate::command_cmd::{CommandArgs, CommandOutput, send_command};
use crate::data_cmd::{Decryptor, NetworkTrust, Opened, open_record, wait_record_proof};
use crate::data_net::{OWNER, govern, org_key, org_key_path};
use crate::device_cmd::submit_final;
use crate::keyservice::protocol::{Refused, Signer, fresh_p256_secret, request_keys};
use crate::net::LocalNet;
use crate::simulate::SIM_STREAM;
use crate::zk_cmd::{BoundsArgs, PublishArgs, publish_payload};

/// The district tag the city puts on the sensors it sells.
pub const DISTRICT_TAG: &str = "district-north";
/// Credits governance issues to the buyer.
pub const BUYER_CREDITS: u64 = 1_000;
/// Price of a month of the district's data.
pub const OFFER_PRICE: u64 = 400;
/// What the buyer buys: 30 days of records.
const MONTH_MS: u64 = 30 * 24 * 3_600_000;
/// How long the offer stays open.
const OFFER_OPEN_MS: u64 = 7 * 24 * 3_600_000;
/// The reading the range proof is about, and its public band (milli-°C, 15–30 °C).
const READING_QUANTITY: &str = "temp_mc";
const READING_MIN: u64 = 15_000;
const READING_MAX: u64 = 30_000;
const READING_BITS: u8 = 16;
/// How long a child service may take to start.
const START_WAIT: Duration = Duration::from_secs(60);
/// How long the audit check waits for a cosigned checkpoint to cover the newest entries.
const COSIGN_WAIT: Duration = Duration::from_secs(60);

/// What the scenario needs from the network it runs on.
pub struct AccessDemo<'a> {
    pub net: &'a LocalNet,
    pub exe: &'a Path,
    /// City-owned sensors whose records are committed; the first half is the district.
    pub sensors: &'a [DeviceId],
    /// The gateway's record API.
    pub records_url: String,
    /// The owner's P-256 data key file (hex), read only by the key service.
    pub owner_data_key: PathBuf,
    /// Where the key service listens.
    pub keyservice_listen: SocketAddr,
    /// A Consumer organisation (the research institute).
    pub buyer: &'a str,
    /// The organisation whose technician runs a diagnostic (has a key file in the network).
    pub technician: &'a str,
    /// The MQTT broker the sensors listen on for commands.
    pub broker: SocketAddr,
    /// The simulation seed of the sensors (sensor 0 answers commands and signs its reading
    /// commitment with its registered key).
    pub sensor_seed: u64,
    /// Where the key service's log goes (`None`: inherit stderr).
    pub keyservice_log: Option<PathBuf>,
}

/// What happened, for the caller to print or assert.
#[derive(Debug)]
pub struct AccessOutcome {
    pub offer: TxHash,
    pub grant: TxHash,
    pub buyer_credits: u64,
    pub owner_credits: u64,
    pub release_tx: String,
    pub released_epochs: Vec<u32>,
    pub plaintext: String,
    pub refusal_after_revoke: String,
    pub authorization: TxHash,
    /// `accepted`, or the device's rejection code.
    pub command_outcome: String,
    pub receipt_tx: String,
    pub range_proof_tx: String,
    pub range_proof_bytes: usize,
    pub audit: Vec<AuditEntryBody>,
    pub audit_cosigned: usize,
}

/// A `chipledger keyservice` child; stopped when dropped.
pub struct KeyServiceProcess {
    child: Child,
    pub url: String,
    _lines: Receiver<String>,
}

impl KeyServiceProcess {
    /// Starts the owner's key service and waits until it listens.
    pub fn start(d: &AccessDemo<'_>) -> Result<KeyServiceProcess> {
        use std::io::BufRead as _;
        let stderr = match &d.keyservice_log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening {}", path.display()))?,
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(d.exe)
            .args(["keyservice", "--api", &d.net.apis[0], "--org", OWNER, "--key"])
            .arg(org_key_path(d.net, OWNER))
            .arg("--data-key")
            .arg(&d.owner_data_key)
            .args([
                "--records",
                &d.records_url,
                "--listen",
                &d.keyservice_listen.to_string(),
            ])
            .arg("--genesis")
            .arg(d.net.dir.join("genesis.json"))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting chipledger keyservice")?;
        let out = child.stdout.take().context("the key service's stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut ks = KeyServiceProcess {
            child,
            url: format!("http://{}", d.keyservice_listen),
            _lines: lines,
        };
        match ks._lines.recv_timeout(START_WAIT) {
            Ok(line) if line.contains("listening on") => Ok(ks),
            Ok(line) => {
                ks.stop();
                bail!("the key service said '{line}' instead of listening")
            }
            Err(_) => {
                ks.stop();
                bail!("the key service did not start within {START_WAIT:?}")
            }
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for KeyServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_ms() -> u64 {
    chipledger_node::metrics::now_ms()
}

fn tx_hash(hex_hash: &str) -> Result<TxHash> {
    let b: [u8; 32] = hex::decode(hex_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("'{hex_hash}' is not a transaction hash"))?;
    Ok(TxHash(b))
}

fn submit(d: &AccessDemo<'_>, client: &Client, org: &str, payload: Payload) -> Result<(TxHash, u64)> {
    let s = submit_final(client, org, &org_key(d.net, org)?, payload)?;
    Ok((tx_hash(&s.hash)?, s.height.unwrap_or_default()))
}

fn credits(client: &Client, org: &str) -> Result<u64> {
    Ok(client
        .get_json::<CreditsBody>(&format!("/v1/access/credits/{org}"))?
        .balance)
}

/// Steps 1–5 (credits, tags, offer, purchase, release, decrypt, revoke → refused) and 8 (the
/// verified audit trail of the first sensor). Returns the running key service too.
pub fn run(d: &AccessDemo<'_>, out: &mut dyn FnMut(&str)) -> Result<(AccessOutcome, KeyServiceProcess)> {
    let client = Client::new(&d.net.apis[0])?;
    let sensor = *d.sensors.first().context("no sensors")?;
    govern(
        d.net,
        &client,
        GovAction::IssueCredits {
            org: d.buyer.into(),
            amount: BUYER_CREDITS,
        },
    )?;
    out(&format!(
        "  governance issues {BUYER_CREDITS} credits to '{}' (proposed by city, approved by maker and vendor)",
        d.buyer
    ));
    let mut district: Vec<DeviceId> = d.sensors[..d.sensors.len().div_ceil(2)].to_vec();
    district.sort();
    let n = district.len();
    submit(
        d,
        &client,
        OWNER,
        Payload::TagDevices(TagDevices {
            tag: DISTRICT_TAG.into(),
            add: district,
            remove: vec![],
        }),
    )?;
    out(&format!("  city tags {n} sensors '{DISTRICT_TAG}'"));
    let from_ms = now_ms().saturating_sub(24 * 3_600_000);
    let (offer, _) = submit(
        d,
        &client,
        OWNER,
        Payload::PublishOffer(PublishOffer {
            scope: AccessScope {
                devices: vec![],
                tags: vec![DISTRICT_TAG.into()],
                streams: vec![SIM_STREAM.into()],
                from_ms,
                until_ms: from_ms + MONTH_MS,
            },
            price: OFFER_PRICE,
            duration_ms: MONTH_MS,
            terms: "air-quality research only; no re-identification; no resale".into(),
            expires_ms: now_ms() + OFFER_OPEN_MS,
        }),
    )?;
    out(&format!(
        "  city offers a month of '{DISTRICT_TAG}' air-quality data for {OFFER_PRICE} credits: offer {offer}"
    ));
    let (grant, height) = submit(
        d,
        &client,
        d.buyer,
        Payload::Purchase(Purchase {
            offer,
            max_price: OFFER_PRICE,
        }),
    )?;
    let (buyer_credits, owner_credits) = (credits(&client, d.buyer)?, credits(&client, OWNER)?);
    out(&format!(
        "  '{}' buys it at height {height}: grant {grant}; credits now {} {buyer_credits}, city {owner_credits}",
        d.buyer, d.buyer
    ));

    let ks = KeyServiceProcess::start(d)?;
    out(&format!(
        "  city's key service listening on {} (its data key never leaves it)",
        ks.url
    ));
    let trust = NetworkTrust::from_genesis(&d.net.dir.join("genesis.json"))?;
    let proof = wait_record_proof(&d.records_url, &sensor, SIM_STREAM, 1, START_WAIT)
        .map_err(|e| anyhow::anyhow!("record {sensor}/{SIM_STREAM}/1: {e}"))?;
    let proven = trust.verify(&proof).map_err(|e| anyhow::anyhow!("record proof: {e}"))?;
    let epoch = proven.record.epoch;
    let buyer_key = org_key(d.net, d.buyer)?;
    let signer = Signer::Org(d.buyer.into());
    let recipient = fresh_p256_secret();
    let released = request_keys(&ks.url, grant, sensor, &[epoch], (&signer, &buyer_key), &recipient)?;
    let key = released
        .keys
        .first()
        .with_context(|| format!("the key service withheld epoch {epoch}: {:?}", released.withheld))?
        .key
        .clone();
    out(&format!(
        "  key release for sensor {}… epoch {epoch}: KeyRelease {} final at height {} before the key was sent",
        &sensor.to_string()[..12],
        released.release_tx,
        released.height
    ));
    let plaintext = match open_record(&d.records_url, &trust, &proven, &Decryptor::EpochKey(key), START_WAIT)? {
        Opened::Plaintext(p) => String::from_utf8_lossy(&p).into_owned(),
        Opened::EpochKey { .. } => bail!("a telemetry record opened as an epoch key"),
    };
    out(&format!(
        "  '{}' decrypts record 1 (proven under a 2f+1 checkpoint): {plaintext}",
        d.buyer
    ));

    submit(
        d,
        &client,
        OWNER,
        Payload::RevokeAccess(RevokeAccess {
            grant,
            reason: "consent withdrawn by the city council".into(),
        }),
    )?;
    let refusal = match request_keys(
        &ks.url,
        grant,
        sensor,
        &[epoch],
        (&signer, &buyer_key),
        &fresh_p256_secret(),
    ) {
        Ok(r) => bail!("the key service released keys after the revocation: {}", r.release_tx),
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(r) => r.code.clone(),
            None => return Err(e.context("asking the key service after the revocation")),
        },
    };
    out(&format!(
        "  city revokes the grant; the next request is refused: {refusal} (keys already released stay released)"
    ));

    let (authorization, command) = diagnostic(d, &client, sensor, out)?;
    let (range_proof_tx, range_proof_bytes) = range_proof(d, &client, &proven, &plaintext, out)?;

    let (audit, audit_cosigned) = verified_trail(&client, &trust, &AuditSubject::Device(sensor))?;
    out(&format!(
        "  audit trail of sensor {}…: {} entries, every inclusion proof checked under a quorum-cosigned checkpoint",
        &sensor.to_string()[..12],
        audit.len()
    ));
    for e in &audit {
        out(&format!(
            "    #{} h{} {:<14} by {:<6} {}",
            e.n, e.height, e.kind, e.actor, e.summary
        ));
    }
    Ok((
        AccessOutcome {
            offer,
            grant,
            buyer_credits,
            owner_credits,
            release_tx: released.release_tx,
            released_epochs: released.keys.iter().map(|k| k.epoch).collect(),
            plaintext,
            refusal_after_revoke: refusal,
            authorization,
            command_outcome: command.outcome,
            receipt_tx: command.receipt_tx.unwrap_or_default(),
            range_proof_tx,
            range_proof_bytes,
            audit,
            audit_cosigned,
        },
        ks,
    ))
}

/// Step 6: the city authorizes the technician's organisation to run diagnostics on `sensor`
/// for an hour; the sensor (a `chipledger device serve-commands` child on the broker) checks
/// the authorization proof and answers; its signed receipt is committed.
fn diagnostic(
    d: &AccessDemo<'_>,
    client: &Client,
    sensor: DeviceId,
    out: &mut dyn FnMut(&str),
) -> Result<(TxHash, CommandOutput)> {
    let (authorization, height) = submit(
        d,
        client,
        OWNER,
        Payload::Authorize(Authorize {
            grantee: Grantee::Org(d.technician.into()),
            devices: vec![sensor],
            actions: vec!["diagnostic".into()],
            expires_ms: now_ms() + 3_600_000,
            purpose: "sensor drift check after a calibration alarm".into(),
        }),
    )?;
    out(&format!(
        "  city authorizes '{}' to run diagnostics on sensor {}… for an hour: authorization {authorization} (height {height})",
        d.technician,
        &sensor.to_string()[..12]
    ));
    let _device = Responder::start(d, 0)?;
    let args = CommandArgs {
        signer: crate::device_cmd::Signer {
            api: d.net.apis[0].clone(),
            org: d.technician.into(),
            key: org_key_path(d.net, d.technician),
            json: false,
        },
        authorization: authorization.to_string(),
        device: sensor.to_string(),
        action: "diagnostic".into(),
        args: "self-test".into(),
        broker: d.broker.to_string(),
        token: None,
        timeout_s: START_WAIT.as_secs(),
        force_send: false,
        request_key: None,
    };
    let command = send_command(&args)?;
    if command.outcome != "accepted" {
        bail!("the sensor rejected the authorized diagnostic: {}", command.outcome);
    }
    let receipt = command
        .receipt_tx
        .clone()
        .with_context(|| format!("the receipt was not committed: {:?}", command.receipt_error))?;
    out(&format!(
        "  the technician's diagnostic (token {}) is accepted by the sensor, which signs a receipt: AccessReceipt {receipt}",
        command.client_token
    ));
    out(&format!("    sensor answered: {}", command.result));
    Ok((authorization, command))
}

/// Step 7: the sensor commits to the reading of record 1 and the city proves, without
/// revealing it, that it lies within the plausible band; the ledger verifies the proof.
fn range_proof(
    d: &AccessDemo<'_>,
    client: &Client,
    proven: &chipledger_types::record_proof::ProvenRecord,
    plaintext: &str,
    out: &mut dyn FnMut(&str),
) -> Result<(String, usize)> {
    let reading: serde_json::Value = serde_json::from_str(plaintext).context("the reading is not JSON")?;
    let value = reading[READING_QUANTITY]
        .as_u64()
        .with_context(|| format!("the reading has no {READING_QUANTITY}"))?;
    let mut secret = [0u8; 32];
    rand::fill(&mut secret);
    let args = PublishArgs {
        api: d.net.apis[0].clone(),
        org: OWNER.into(),
        key: org_key_path(d.net, OWNER),
        sim_seed: d.sensor_seed,
        sim_index: 0,
        sim_alg: "p256".into(),
        stream: SIM_STREAM.into(),
        seq: proven.seq,
        record_hash: hex::encode(proven.hash.0),
        quantity: READING_QUANTITY.into(),
        value,
        blinding_secret: hex::encode(secret),
        bounds: BoundsArgs {
            min: READING_MIN,
            max: READING_MAX,
            bits: READING_BITS,
        },
        wait: true,
        json: false,
    };
    let (_, payload) = publish_payload(&args)?;
    let proof_bytes = match &payload {
        Payload::PublishRangeProof(p) => p.proof.len(),
        _ => 0,
    };
    let (tx, height) = submit(d, client, OWNER, payload)?;
    out(&format!(
        "  range proof: sensor reading 1 has {READING_QUANTITY} within [{READING_MIN}, {READING_MAX}], value hidden; \
         {proof_bytes}-byte Bulletproof verified by every validator, tx {tx} (height {height})"
    ));
    Ok((tx.to_string(), proof_bytes))
}

/// A `chipledger device serve-commands` child for sensor `index`; killed when dropped.
struct Responder(Child);

impl Responder {
    fn start(d: &AccessDemo<'_>, index: u64) -> Result<Responder> {
        use std::io::BufRead as _;
        let mut child = Command::new(d.exe)
            .args(["device", "serve-commands", "--broker", &d.broker.to_string()])
            .args(["--seed", &d.sensor_seed.to_string(), "--index", &index.to_string()])
            .args(["--owner", OWNER, "--api", &d.net.apis[0], "--genesis"])
            .arg(d.net.dir.join("genesis.json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chipledger device serve-commands")?;
        let mut lines = std::io::BufReader::new(child.stdout.take().context("the device's stdout")?);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        if !first.contains("serving") {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the simulated sensor did not start serving commands: {first:?}");
        }
        std::thread::spawn(move || for _ in lines.lines().map_while(Result::ok) {});
        Ok(Responder(child))
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `subject`'s whole trail, once every entry's proof verifies under a quorum-cosigned
/// checkpoint (waits for the checkpoint to catch up with the newest entries).
pub fn verified_trail(
    client: &Client,
    trust: &NetworkTrust,
    subject: &AuditSubject,
) -> Result<(Vec<AuditEntryBody>, usize)> {
    let started = Instant::now();
    loop {
        let entries = fetch_all(client, subject, None)?;
        let mut cosigned = 0;
        for e in &entries {
            if let EntryCheck::Cosigned { .. } = verify_entry(e, trust)? {
                cosigned += 1;
            }
        }
        if cosigned == entries.len() {
            return Ok((entries, cosigned));
        }
        if started.elapsed() > COSIGN_WAIT {
            bail!(
                "{} of {} audit entries of {} are still not under a cosigned checkpoint",
                entries.len() - cosigned,
                entries.len(),
                subject.path()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

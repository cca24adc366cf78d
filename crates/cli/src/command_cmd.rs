//! `chipledger access authorize | revoke-authorization | command | accesses | anomalies` and
//! `chipledger device serve-commands` (issue 6): authorized commands over MQTT with signed
//! device receipts.
//!
//! **Grantee side** ([`command`]): fetch the authorization's device-facing proof from the API
//! (`/v1/access/authorizations/{id}?proof=true`), sign a [`CommandRequest`] with the grantee
//! organisation's key (COSE_Sign1), record it on the ledger (`RecordCommand`, waited until
//! final), publish request + proof on `chipledger/cmd/v1/<device>/request`, wait on
//! `…/request/accepted` and `…/request/rejected` for the receipt echoing this client token,
//! commit it (`AccessReceipt`, the ledger verifies the device's signature) and print it.
//! A ledger refusal of `RecordCommand` stops there unless `--force-send` (for checking that
//! the device refuses on its own).
//!
//! **Device side** ([`serve_commands`]): a simulated device (the `fleet simulate` key of
//! `--seed`/`--index`, registered as its DeviceID key) provisioned with the genesis validators,
//! log origin and quorum and its owner; it verifies each message with
//! `chipledger_device::command::answer_command` and publishes the signed receipt on the reply
//! topic. It prints one JSON line per answer.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use chipledger_device::command::{CommandTrust, answer_command, ledger_signer, peek_receipt, sign_request};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::api_command::{AccessesBody, AnomaliesBody, AuthorizationBody};
use chipledger_node::config::{GenesisFile, KeyFile};
use chipledger_types::access_tx::Grantee;
use chipledger_types::cbor::{Decode, Encode};
use chipledger_types::command_tx::*;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::{Payload, TxHash};
use clap::Args;
use rumqttc::{Client as MqttClient, Connection, Event, MqttOptions, Packet, QoS};

use crate::access_cmd::{Refused, parse_grantee_key, parse_time_ms, submit_access};
use crate::client::{Client, DEFAULT_API};
use crate::device_cmd::Signer;
use crate::firmware_trust::genesis_validators;
use crate::simulate::SimKey;

/// How long `access command` waits for the device's reply by default.
pub const DEFAULT_REPLY_TIMEOUT_S: u64 = 30;
/// How long the proof download retries while the newest block is still being cosigned.
const PROOF_RETRY_MAX: Duration = Duration::from_secs(30);
const PROOF_RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Largest MQTT packet either side sends or takes (a message carries two state proofs).
const MQTT_PACKET_BYTES: usize = 128 * 1024;
/// Requests an MQTT client may queue.
const MQTT_QUEUE: usize = 64;

#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    #[command(flatten)]
    pub signer: Signer,
    /// The grantee organisation.
    #[arg(long, conflicts_with = "to_key", required_unless_present = "to_key")]
    pub to_org: Option<String>,
    /// The grantee person's key: `ed25519:<hex>`, `p256:<hex>` (compressed), or bare hex.
    #[arg(long)]
    pub to_key: Option<String>,
    /// Hex device id(s) the grantee may act on.
    #[arg(long = "device", value_delimiter = ',', required = true)]
    pub devices: Vec<String>,
    /// Allowed action(s): diagnostic, config, reboot, firmware, or a custom `[a-z0-9._-]` name.
    #[arg(long = "action", value_delimiter = ',', required = true)]
    pub actions: Vec<String>,
    /// When the authorization ends (block time): RFC 3339, unix ms, or `+1h`, `+30d`.
    #[arg(long)]
    pub expires: String,
    #[arg(long, default_value = "")]
    pub purpose: String,
}

#[derive(Debug, Args)]
pub struct RevokeAuthorizationArgs {
    #[command(flatten)]
    pub signer: Signer,
    /// Hex authorization id.
    #[arg(long)]
    pub authorization: String,
}

#[derive(Debug, Args)]
pub struct CommandArgs {
    /// The grantee organisation sending the command, its key and the validator API.
    #[command(flatten)]
    pub signer: Signer,
    /// Hex authorization id.
    #[arg(long)]
    pub authorization: String,
    /// Hex device id.
    #[arg(long)]
    pub device: String,
    /// The action: diagnostic, config, reboot, firmware, or a custom `[a-z0-9._-]` name.
    #[arg(long)]
    pub action: String,
    /// Command arguments (UTF-8 text).
    #[arg(long, default_value = "")]
    pub args: String,
    /// MQTT broker `HOST:PORT`.
    #[arg(long)]
    pub broker: String,
    /// Client token (default: random); echoed in the device's reply.
    #[arg(long)]
    pub token: Option<String>,
    /// Seconds to wait for the device's reply.
    #[arg(long, default_value_t = DEFAULT_REPLY_TIMEOUT_S)]
    pub timeout_s: u64,
    /// Send even if the ledger refuses to record the command (to check the device refuses).
    #[arg(long)]
    pub force_send: bool,
    /// Sign the request with this key file instead of `--key`: a person-key grantee's key,
    /// while `--org`/`--key` (the owner, for such grants) record the command.
    #[arg(long, value_name = "FILE")]
    pub request_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DeviceViewArgs {
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Hex device id.
    #[arg(long)]
    pub device: String,
    /// For anomalies: blocks after which a command without receipt is listed.
    #[arg(long)]
    pub after_blocks: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// MQTT broker `HOST:PORT`.
    #[arg(long)]
    pub broker: String,
    /// Simulation seed and device index of the simulated device (its registered key).
    #[arg(long)]
    pub seed: u64,
    #[arg(long)]
    pub index: u64,
    #[arg(long, default_value = "p256")]
    pub alg: String,
    /// The network's genesis file: validators, quorum and log origin the device trusts.
    #[arg(long, value_name = "FILE")]
    pub genesis: PathBuf,
    /// The device's owner (default: read once from the API's device record).
    #[arg(long)]
    pub owner: Option<String>,
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// Stop after answering this many messages (default: run until killed).
    #[arg(long)]
    pub max_commands: Option<u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn parse_hash(s: &str, what: &str) -> Result<[u8; 32]> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("a {what} is 64 hex characters, not '{s}'"))
}

fn parse_device(s: &str) -> Result<DeviceId> {
    hex::decode(s.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .with_context(|| format!("a device id is 40 hex characters, not '{s}'"))
}

fn split_broker(broker: &str) -> Result<(String, u16)> {
    let (host, port) = broker
        .rsplit_once(':')
        .with_context(|| format!("--broker is HOST:PORT, not '{broker}'"))?;
    Ok((
        host.into(),
        port.parse().with_context(|| format!("bad port in '{broker}'"))?,
    ))
}

fn mqtt(broker: &str, client_id: &str) -> Result<(MqttClient, Connection)> {
    let (host, port) = split_broker(broker)?;
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(MQTT_PACKET_BYTES, MQTT_PACKET_BYTES);
    Ok(MqttClient::new(options, MQTT_QUEUE))
}

/// Drives `conn` until a SubAck arrives (the subscriptions are in force).
fn wait_subscribed(conn: &mut Connection, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => return Ok(()),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("MQTT connection failed: {e}"),
            Err(_) => break,
        }
    }
    bail!("the MQTT broker did not confirm the subscription within {timeout:?}")
}

fn print_tx(json: bool, what: &str, hash: &str, height: Option<u64>) {
    if json {
        println!("{}", serde_json::json!({ what: hash, "tx": hash, "height": height }));
    } else {
        println!("{what} {hash} (height {})", height.unwrap_or_default());
    }
}

// ---- authorize / revoke -------------------------------------------------------------------------

/// `access authorize`: prints the authorization id (the transaction hash).
pub fn authorize(a: AuthorizeArgs) -> Result<()> {
    let grantee = match (&a.to_org, &a.to_key) {
        (Some(org), None) => Grantee::Org(org.clone()),
        (None, Some(k)) => Grantee::Key(parse_grantee_key(k)?),
        _ => bail!("give exactly one of --to-org or --to-key"),
    };
    let mut devices = a.devices.iter().map(|d| parse_device(d)).collect::<Result<Vec<_>>>()?;
    devices.sort();
    devices.dedup();
    let mut actions = a.actions.clone();
    actions.sort();
    actions.dedup();
    for action in &actions {
        check_action(action).map_err(|e| anyhow!("--action {action}: {e}"))?;
    }
    let p = Payload::Authorize(Authorize {
        grantee,
        devices,
        actions,
        expires_ms: parse_time_ms(&a.expires)?,
        purpose: a.purpose,
    });
    let s = submit_access(&a.signer.api, &a.signer.org, &a.signer.key, p)?;
    print_tx(a.signer.json, "authorization", &s.hash, s.height);
    Ok(())
}

/// `access revoke-authorization`.
pub fn revoke_authorization(a: RevokeAuthorizationArgs) -> Result<()> {
    let p = Payload::RevokeAuthorization(RevokeAuthorization {
        authorization: TxHash(parse_hash(&a.authorization, "authorization id")?),
    });
    let s = submit_access(&a.signer.api, &a.signer.org, &a.signer.key, p)?;
    print_tx(a.signer.json, "revoked", &s.hash, s.height);
    Ok(())
}

// ---- command (grantee side) --------------------------------------------------------------------

/// The authorization with its device-facing proof, retrying while the node's newest block is
/// still collecting checkpoint signatures (HTTP 503).
pub fn fetch_proof(client: &Client, id: &str) -> Result<(AuthorizationBody, AuthorizationProof)> {
    let start = Instant::now();
    loop {
        match client.get_json::<AuthorizationBody>(&format!("/v1/access/authorizations/{id}?proof=true")) {
            Ok(body) => {
                let hex_proof = body.proof.clone().context("the node sent no proof")?;
                let bytes = hex::decode(hex_proof).context("the proof is not hex")?;
                let proof = AuthorizationProof::from_cbor(&bytes, PROOF_LIMITS)
                    .map_err(|e| anyhow!("the proof does not decode: {e}"))?;
                return Ok((body, proof));
            }
            Err(e) if format!("{e:#}").contains("HTTP 503") && start.elapsed() < PROOF_RETRY_MAX => {
                std::thread::sleep(PROOF_RETRY_PAUSE);
            }
            Err(e) => return Err(e.context(format!("fetching authorization {id}"))),
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 8];
    rand::fill(&mut b);
    format!("cli-{}", hex::encode(b))
}

/// What `access command` prints.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct CommandOutput {
    pub request_hash: String,
    pub client_token: String,
    /// `RecordCommand` transaction, or the ledger's refusal code.
    pub recorded: Option<String>,
    pub record_refused: Option<String>,
    /// `accepted`, or the device's rejection code.
    pub outcome: String,
    pub reply_topic: String,
    /// The device's result (UTF-8, lossy).
    pub result: String,
    /// The `AccessReceipt` transaction, or why committing it failed.
    pub receipt_tx: Option<String>,
    pub receipt_error: Option<String>,
}

/// `access command`: see the module documentation. Exits with an error when the device
/// rejected the command (after printing what happened).
pub fn command(a: CommandArgs) -> Result<()> {
    let out = send_command(&a)?;
    print_command(&out, a.signer.json)?;
    if out.outcome != "accepted" {
        bail!("the device rejected the command: {}", out.outcome);
    }
    match out.receipt_error {
        Some(e) => bail!("the receipt was not committed: {e}"),
        None => Ok(()),
    }
}

/// Records the command on the ledger, sends it with its authorization proof, waits for the
/// device's signed reply and commits it as an `AccessReceipt`: what `access command` does,
/// without printing (the demo and tests call it).
pub fn send_command(a: &CommandArgs) -> Result<CommandOutput> {
    let client = Client::new(&a.signer.api)?;
    let key = KeyFile::read(a.request_key.as_ref().unwrap_or(&a.signer.key))?;
    let device = parse_device(&a.device)?;
    let (_, proof) = fetch_proof(&client, &a.authorization)?;
    let request = CommandRequest {
        device,
        authorization: TxHash(parse_hash(&a.authorization, "authorization id")?),
        action: a.action.clone(),
        args: a.args.as_bytes().to_vec(),
        client_token: a.token.clone().unwrap_or_else(random_token),
        issued_ms: now_ms(),
    };
    check_action(&request.action).map_err(|e| anyhow!("--action: {e}"))?;
    check_client_token(&request.client_token).map_err(|e| anyhow!("--token: {e}"))?;
    let signed = sign_request(&request, ledger_signer(&key)).map_err(|e| anyhow!("{e}"))?;
    let hash = request_hash(&signed);
    let record = Payload::RecordCommand(RecordCommand {
        authorization: request.authorization,
        device,
        request_hash: hash,
        action: request.action.clone(),
    });
    let (recorded, record_refused) = match submit_access(&a.signer.api, &a.signer.org, &a.signer.key, record) {
        Ok(s) => (Some(s.hash), None),
        Err(e) if a.force_send => (None, Some(refusal_code(&e))),
        Err(e) => return Err(e.context("the ledger refused to record the command; nothing was sent")),
    };
    let message = CommandMessage { request: signed, proof }.to_cbor();
    let (topic, receipt) = exchange(&a.broker, &device, &request.client_token, &hash, &message, a.timeout_s)?;
    let claimed = peek_receipt(&receipt).map_err(|e| anyhow!("the reply is not a receipt: {e}"))?;
    let commit = submit_access(
        &a.signer.api,
        &a.signer.org,
        &a.signer.key,
        Payload::AccessReceipt(AccessReceipt { receipt }),
    );
    let out = CommandOutput {
        request_hash: hex::encode(hash),
        client_token: request.client_token,
        recorded,
        record_refused,
        outcome: claimed.outcome.code().into(),
        reply_topic: topic,
        result: String::from_utf8_lossy(&claimed.result).into_owned(),
        receipt_tx: commit.as_ref().ok().map(|s| s.hash.clone()),
        receipt_error: commit.as_ref().err().map(|e| format!("{e:#}")),
    };
    Ok(out)
}

fn refusal_code(e: &anyhow::Error) -> String {
    e.downcast_ref::<Refused>()
        .map_or_else(|| format!("{e:#}"), |r| r.code.clone())
}

fn print_command(out: &CommandOutput, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(out)?);
    } else {
        println!(
            "request {} token {}: {} on {}",
            out.request_hash, out.client_token, out.outcome, out.reply_topic
        );
        if !out.result.is_empty() {
            println!("result: {}", out.result);
        }
        match (&out.receipt_tx, &out.receipt_error) {
            (Some(tx), _) => println!("receipt committed: {tx}"),
            (None, Some(e)) => println!("receipt not committed: {e}"),
            _ => {}
        }
    }
    Ok(())
}

/// Subscribe to the reply topics, publish `message`, and wait for the receipt whose client
/// token and request hash are ours. Returns the reply topic and the signed receipt (its
/// signature is checked by the ledger when it is committed).
pub fn exchange(
    broker: &str,
    device: &DeviceId,
    token: &str,
    hash: &[u8; 32],
    message: &[u8],
    timeout_s: u64,
) -> Result<(String, Vec<u8>)> {
    let timeout = Duration::from_secs(timeout_s);
    let (client, mut conn) = mqtt(broker, &format!("cmd-{token}"))?;
    client.subscribe(format!("{}/+", request_topic(device)), QoS::AtLeastOnce)?;
    wait_subscribed(&mut conn, timeout)?;
    client.publish(request_topic(device), QoS::AtLeastOnce, false, message.to_vec())?;
    let deadline = Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let publish = match conn.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => p,
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => bail!("MQTT connection failed: {e}"),
            Err(_) => break,
        };
        let ours = peek_receipt(&publish.payload)
            .is_ok_and(|r| r.client_token == token && r.request_hash == *hash && r.device == *device);
        if ours && parse_command_topic(&publish.topic).is_some_and(|(_, k)| k != CommandTopic::Request) {
            let _ = client.disconnect();
            return Ok((publish.topic.clone(), publish.payload.to_vec()));
        }
    }
    bail!("no reply from device {device} within {timeout:?} (token {token})")
}

// ---- views -------------------------------------------------------------------------------------

/// `access accesses --device ID`: who accessed the device, when, for what.
pub fn accesses(a: DeviceViewArgs) -> Result<()> {
    let client = Client::new(&a.api)?;
    let device = parse_device(&a.device)?;
    let body: AccessesBody = client.get_json(&format!("/v1/access/devices/{device}/accesses"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!(
        "device {}: {} command(s), {} receipt(s), {} flagged, {} pending (height {})",
        body.device, body.commands, body.receipts, body.anomalies, body.pending, body.height
    );
    for e in &body.entries {
        println!(
            "{:>6} {:>13} ms  {:<22} {:<10} {}",
            e.height, e.timestamp_ms, e.kind, e.actor, e.summary
        );
    }
    Ok(())
}

/// `access anomalies --device ID`: commands without receipts, receipts without authorization.
pub fn anomalies(a: DeviceViewArgs) -> Result<()> {
    let client = Client::new(&a.api)?;
    let device = parse_device(&a.device)?;
    let query = a.after_blocks.map(|n| format!("?after_blocks={n}")).unwrap_or_default();
    let body: AnomaliesBody = client.get_json(&format!("/v1/access/devices/{device}/anomalies{query}"))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!("device {} at height {}:", body.device, body.height);
    for u in &body.unanswered {
        println!(
            "  no receipt after {} blocks: '{}' by {} (request {})",
            u.blocks_waiting,
            u.command.action,
            u.command.org.as_deref().unwrap_or("?"),
            u.command.request_hash
        );
    }
    for r in &body.flagged_receipts {
        println!("  flagged receipt {} at height {}: {}", r.tx, r.height, r.summary);
    }
    if let Some(next) = body.next_from {
        println!("  (audit trail scanned up to entry {next}; more flagged receipts may follow)");
    }
    Ok(())
}

// ---- device side -------------------------------------------------------------------------------

/// What the simulated device does for an accepted command: a small JSON result.
fn execute(device: &DeviceId, cmd: &chipledger_device::command::VerifiedCommand, started: Instant) -> Vec<u8> {
    let what = match cmd.request.action.as_str() {
        "diagnostic" => "ok: sensors nominal, battery 97%",
        "reboot" => "rebooting (simulated)",
        "config" => "configuration applied (simulated)",
        _ => "done (simulated)",
    };
    serde_json::json!({
        "device": device.to_string(),
        "action": cmd.request.action,
        "args": String::from_utf8_lossy(&cmd.request.args),
        "uptime_ms": started.elapsed().as_millis() as u64,
        "status": what,
    })
    .to_string()
    .into_bytes()
}

/// `device serve-commands`: see the module documentation.
pub fn serve_commands(a: ServeArgs) -> Result<()> {
    let alg = DeviceKeyAlg::from_name(&a.alg).with_context(|| format!("unknown key algorithm '{}'", a.alg))?;
    let key = SimKey::derive(alg, a.seed, a.index);
    let device = key.device_id();
    let genesis = GenesisFile::read(&a.genesis)?;
    let owner = match &a.owner {
        Some(o) => o.clone(),
        None => Client::new(&a.api)?.device(&device.to_string())?.owner,
    };
    let mut trust = CommandTrust::new(
        &genesis.log_origin(),
        genesis_validators(&genesis)?,
        genesis.quorum(),
        device,
        &owner,
    );
    let (client, mut conn) = mqtt(&a.broker, &format!("dev-{device}"))?;
    client.subscribe(request_topic(&device), QoS::AtLeastOnce)?;
    wait_subscribed(&mut conn, Duration::from_secs(30))?;
    println!(
        "{}",
        serde_json::json!({ "serving": device.to_string(), "owner": owner })
    );
    let started = Instant::now();
    let mut answered = 0u64;
    for event in conn.iter() {
        let publish = match event {
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == request_topic(&device) => p,
            Ok(_) => continue,
            Err(e) => bail!("MQTT connection failed: {e}"),
        };
        let reply = answer_command(&publish.payload, &mut trust, now_ms(), key.signer(), |cmd| {
            execute(&device, cmd, started)
        })
        .map_err(|e| anyhow!("cannot sign a receipt: {e}"))?;
        client.publish(reply.topic.clone(), QoS::AtLeastOnce, false, reply.signed)?;
        println!(
            "{}",
            serde_json::json!({
                "token": reply.receipt.client_token,
                "outcome": reply.receipt.outcome.code(),
                "topic": reply.topic,
            })
        );
        answered += 1;
        if a.max_commands.is_some_and(|n| answered >= n) {
            // The disconnect is queued after the receipt: drive the loop until it is sent.
            client.disconnect()?;
            for event in conn.iter() {
                if event.is_err() {
                    break;
                }
            }
            break;
        }
    }
    Ok(())
}

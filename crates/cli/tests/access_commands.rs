//! Issue 6, Done-when 1 for commands, on four validator processes, an embedded MQTT broker and
//! one `chipledger device serve-commands` process (a registered simulated device):
//!
//! - the owner (`city`) authorizes a technician organisation (`vendor`) to run `diagnostic` on
//!   the device; `chipledger access command` fetches the authorization proof, records the
//!   command, publishes it, gets the device's receipt on `…/request/accepted` with its client
//!   token echoed, and commits it: the ledger holds the command with an accepted receipt and
//!   the owner's accesses view lists authorization, command and receipt;
//! - a request naming no authorization, a wrong action and a revoked authorization are each
//!   refused *by the device* (sent with `--force-send` past the ledger's own refusal): a signed
//!   receipt on `…/request/rejected` with the typed code (`not_proven`, `action_not_allowed`,
//!   `revoked`) and the token echoed, and no accepted receipt on the ledger;
//! - the owner's anomaly view lists a recorded command never answered and a device-signed
//!   receipt for a command no authorization allowed (stored, flagged `no_authorization`).

mod data_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chipledger_cli::client::Client;
use chipledger_cli::command_cmd::{CommandOutput, exchange, fetch_proof};
use chipledger_cli::data_net::{OWNER, org_key, org_key_path, register_sim_devices};
use chipledger_cli::device_cmd::submit_final;
use chipledger_cli::simulate::SimKey;
use chipledger_device::command::{ledger_signer, peek_receipt, sign_receipt, sign_request};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_gateway::mqtt::{EmbeddedBroker, free_local_addr};
use chipledger_node::api_command::{AccessesBody, AnomaliesBody, CommandBody};
use chipledger_types::cbor::Encode;
use chipledger_types::command_tx::{
    AccessReceipt, CommandMessage, CommandReceipt, CommandRequest, CommandTopic, Outcome, RecordCommand,
    parse_command_topic, request_hash,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::Payload;
use chipledger_types::tx::TxHash;
use data_support::{TestNet, WAIT};

/// API ports 33070..33073, p2p 33170.. (issue 6's port plan: C).
const BASE_PORT: u16 = 33070;
const SEED: u64 = 63;
/// The technician organisation (a genesis organisation with a key file).
const TECH: &str = "vendor";

/// The `chipledger device serve-commands` child; killed when dropped.
struct Responder(Child);

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_responder(t: &TestNet, broker: &str) -> Result<Responder> {
    let genesis = t.net.dir.join("genesis.json");
    let mut child = Command::new(&t.exe)
        .args([
            "device",
            "serve-commands",
            "--broker",
            broker,
            "--seed",
            &SEED.to_string(),
        ])
        .args(["--index", "0", "--owner", OWNER, "--api", &t.net.apis[0], "--genesis"])
        .arg(&genesis)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting chipledger device serve-commands")?;
    let mut stdout = BufReader::new(child.stdout.take().context("responder stdout")?);
    let mut first = String::new();
    stdout.read_line(&mut first)?;
    if !first.contains("serving") {
        let _ = child.kill();
        bail!("the responder did not start: {first:?}");
    }
    // Keep draining its answers (one JSON line each) so it never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            eprintln!("device: {line}");
        }
    });
    Ok(Responder(child))
}

/// Runs the CLI; returns its exit success and stdout.
fn cli(t: &TestNet, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(&t.exe).args(args).output()?;
    let stdout = String::from_utf8(out.stdout)?;
    if !out.status.success() {
        eprintln!(
            "chipledger {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((out.status.success(), stdout))
}

fn authorize(t: &TestNet, device: &DeviceId) -> Result<String> {
    let key = org_key_path(&t.net, OWNER).display().to_string();
    let dev = device.to_string();
    let args = [
        "access",
        "authorize",
        "--api",
        &t.net.apis[0],
        "--org",
        OWNER,
        "--key",
        &key,
        "--to-org",
        TECH,
        "--device",
        &dev,
        "--action",
        "diagnostic",
        "--expires",
        "+1h",
        "--purpose",
        "quarterly diagnostic",
        "--json",
    ];
    let (ok, out) = cli(t, &args)?;
    assert!(ok, "authorize failed: {out}");
    let v: serde_json::Value = serde_json::from_str(out.trim())?;
    Ok(v["authorization"].as_str().context("authorization id")?.to_string())
}

fn send(
    t: &TestNet,
    broker: &str,
    authz: &str,
    device: &DeviceId,
    action: &str,
    token: &str,
) -> Result<(bool, CommandOutput)> {
    let key = org_key_path(&t.net, TECH).display().to_string();
    let dev = device.to_string();
    let args = [
        "access",
        "command",
        "--api",
        &t.net.apis[0],
        "--org",
        TECH,
        "--key",
        &key,
        "--authorization",
        authz,
        "--device",
        &dev,
        "--action",
        action,
        "--args",
        "full",
        "--broker",
        broker,
        "--token",
        token,
        "--force-send",
        "--json",
    ];
    let (ok, out) = cli(t, &args)?;
    let parsed = serde_json::from_str(out.trim()).with_context(|| format!("access command printed {out:?}"))?;
    Ok((ok, parsed))
}

fn ledger_command(client: &Client, hash: &str) -> Result<CommandBody> {
    client.get_json(&format!("/v1/access/commands/{hash}"))
}

/// A refused command: rejected topic, typed code, token echoed, and the ledger holds the
/// device's *rejected* receipt (never an accepted one), unflagged.
fn assert_refused(client: &Client, out: &CommandOutput, code: &str, token: &str) -> Result<()> {
    assert_eq!(out.outcome, code, "{out:?}");
    assert!(out.reply_topic.ends_with("/request/rejected"), "{out:?}");
    assert_eq!(out.client_token, token);
    assert!(out.recorded.is_none(), "the ledger must not record it: {out:?}");
    let cmd = ledger_command(client, &out.request_hash)?;
    let receipt = cmd.receipt.context("the rejected receipt is committed")?;
    assert_eq!((receipt.outcome.as_str(), receipt.anomaly), (code, None));
    Ok(())
}

#[test]
fn authorized_commands_get_receipts_and_unauthorized_ones_are_refused_by_the_device() -> Result<()> {
    let started = Instant::now();
    let t = TestNet::start("access-commands", BASE_PORT)?;
    let ids = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..1)?;
    let device = ids[0];
    let broker_addr = EmbeddedBroker::start(free_local_addr()?)?.addr().to_string();
    let _responder = start_responder(&t, &broker_addr)?;
    let authz = authorize(&t, &device)?;
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    // 1. Authorized diagnostic: accepted, token echoed, receipt on the ledger.
    let (ok, out) = send(&t, &broker_addr, &authz, &device, "diagnostic", "tok-ok")?;
    assert!(ok, "{out:?}");
    assert_eq!(
        (out.outcome.as_str(), out.client_token.as_str()),
        ("accepted", "tok-ok")
    );
    assert!(out.reply_topic.ends_with("/request/accepted"));
    assert!(out.recorded.is_some() && out.receipt_tx.is_some(), "{out:?}");
    assert!(out.result.contains("sensors nominal"), "{}", out.result);
    let cmd = ledger_command(&t.client, &out.request_hash)?;
    assert_eq!((cmd.org.as_deref(), cmd.action.as_str()), (Some(TECH), "diagnostic"));
    let receipt = cmd.receipt.context("receipt committed")?;
    assert_eq!((receipt.outcome.as_str(), receipt.anomaly), ("accepted", None));
    let view: AccessesBody = t.client.get_json(&format!("/v1/access/devices/{device}/accesses"))?;
    let kinds: Vec<&str> = view.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["authorization", "command", "receipt"], "{view:?}");
    assert_eq!(
        (view.commands, view.receipts, view.anomalies, view.pending),
        (1, 1, 0, 0)
    );
    assert_eq!(view.entries[1].actor, TECH);
    assert!(view.entries[0].summary.contains("quarterly diagnostic"));

    // 2. No authorization: a request naming an authorization that does not exist.
    let (_, proof) = fetch_proof(&t.client, &authz)?;
    let request = CommandRequest {
        device,
        authorization: TxHash([0x5a; 32]),
        action: "diagnostic".into(),
        args: Vec::new(),
        client_token: "tok-none".into(),
        issued_ms: chipledger_node::metrics::now_ms(),
    };
    let tech_key = org_key(&t.net, TECH)?;
    let signed = sign_request(&request, ledger_signer(&tech_key))?;
    let hash = request_hash(&signed);
    let message = CommandMessage { request: signed, proof }.to_cbor();
    let (topic, raw) = exchange(&broker_addr, &device, "tok-none", &hash, &message, 30)?;
    assert_eq!(parse_command_topic(&topic), Some((device, CommandTopic::Rejected)));
    let r = peek_receipt(&raw)?;
    assert_eq!(
        (r.outcome, r.client_token.as_str()),
        (Outcome::Rejected("not_proven".into()), "tok-none")
    );

    // 3. Wrong action: the ledger refuses to record it, the device refuses to run it.
    let (ok, out) = send(&t, &broker_addr, &authz, &device, "reboot", "tok-action")?;
    assert!(!ok);
    assert_eq!(out.record_refused.as_deref(), Some("action_not_allowed"));
    assert_refused(&t.client, &out, "action_not_allowed", "tok-action")?;

    // 4. Revoked: the owner revokes; the device sees it in the next proof.
    let key = org_key_path(&t.net, OWNER).display().to_string();
    let args = [
        "access",
        "revoke-authorization",
        "--api",
        &t.net.apis[0],
        "--org",
        OWNER,
        "--key",
        &key,
        "--authorization",
        &authz,
        "--json",
    ];
    assert!(cli(&t, &args)?.0, "revoke-authorization failed");
    let (ok, out) = send(&t, &broker_addr, &authz, &device, "diagnostic", "tok-revoked")?;
    assert!(!ok);
    assert_eq!(out.record_refused.as_deref(), Some("authorization_revoked"));
    assert_refused(&t.client, &out, "revoked", "tok-revoked")?;

    // The owner's view: one accepted receipt only, nothing flagged, nothing unanswered.
    let view: AccessesBody = t.client.get_json(&format!("/v1/access/devices/{device}/accesses"))?;
    assert_eq!(
        (view.commands, view.receipts, view.anomalies, view.pending),
        (1, 3, 0, 0)
    );
    let anomalies: AnomaliesBody = t
        .client
        .get_json(&format!("/v1/access/devices/{device}/anomalies?after_blocks=0"))?;
    assert!(anomalies.unanswered.is_empty() && anomalies.flagged_receipts.is_empty());
    let dev = device.to_string();
    let (ok, text) = cli(&t, &["access", "accesses", "--api", &t.net.apis[0], "--device", &dev])?;
    assert!(ok, "{text}");
    assert!(
        text.contains("1 command(s), 3 receipt(s), 0 flagged, 0 pending"),
        "{text}"
    );
    for needle in [
        "authorization-revoked",
        "sent 'diagnostic'",
        "accepted 'diagnostic'",
        "revoked 'diagnostic'",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }

    // 5. Anomalies in the owner's view: a recorded command never answered, and a receipt
    // (validly signed by the device) for a command no authorization allowed.
    let authz2 = TxHash(hex::decode(authorize(&t, &device)?)?.try_into().expect("32 bytes"));
    let unanswered = RecordCommand {
        authorization: authz2,
        device,
        request_hash: [0x77; 32],
        action: "diagnostic".into(),
    };
    submit_final(&t.client, TECH, &tech_key, Payload::RecordCommand(unanswered))?;
    let rogue = CommandReceipt {
        device,
        request_hash: [0x66; 32],
        authorization: TxHash([0x99; 32]),
        action: "reboot".into(),
        outcome: Outcome::Accepted,
        result: Vec::new(),
        client_token: "rogue".into(),
        device_ms: chipledger_node::metrics::now_ms(),
    };
    let signed = sign_receipt(&rogue, SimKey::derive(DeviceKeyAlg::P256, SEED, 0).signer())?;
    let commit = Payload::AccessReceipt(AccessReceipt { receipt: signed });
    submit_final(&t.client, OWNER, &org_key(&t.net, OWNER)?, commit)?;
    let anomalies: AnomaliesBody = t
        .client
        .get_json(&format!("/v1/access/devices/{device}/anomalies?after_blocks=0"))?;
    assert_eq!(anomalies.unanswered.len(), 1, "{anomalies:?}");
    assert_eq!(anomalies.unanswered[0].command.request_hash, hex::encode([0x77; 32]));
    assert_eq!(anomalies.flagged_receipts.len(), 1, "{anomalies:?}");
    assert!(anomalies.flagged_receipts[0].summary.contains("no_authorization"));
    let (ok, text) = cli(
        &t,
        &[
            "access",
            "anomalies",
            "--api",
            &t.net.apis[0],
            "--device",
            &dev,
            "--after-blocks",
            "0",
        ],
    )?;
    assert!(
        ok && text.contains("no receipt after") && text.contains("flagged receipt"),
        "{text}"
    );

    let elapsed = started.elapsed();
    eprintln!("done in {:.1} s", elapsed.as_secs_f64());
    assert!(elapsed < WAIT + Duration::from_secs(60), "took {elapsed:?}");
    Ok(())
}

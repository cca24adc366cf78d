//! Range proofs end to end on four validator processes (port base 34070): a registered
//! simulated device's reading commitment and its Bulletproof are published with
//! `chipledger zk publish`, become final, and `/v1/zk/proofs/{tx}` serves them re-verified with
//! the transaction's log proof, and the device's audit trail lists them. An out-of-range
//! reading cannot be proved; a forged proof, a statement by an unregistered device and one
//! published by another organisation are refused at submission with their typed codes; the
//! offline `zk prove` / `zk verify` round trip holds and fails for other bounds.

mod data_support;

use std::process::Command;

use anyhow::{Context, Result, bail};
use chipledger_cli::data_net::{OWNER, org_key, org_key_path, register_sim_devices};
use chipledger_cli::txcmd::build;
use chipledger_cli::zk_cmd::{BoundsArgs, PublishArgs, publish_payload};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_node::api_audit::AuditBody;
use chipledger_node::api_zk::RangeProofBody;
use chipledger_types::tx::Payload;
use data_support::TestNet;

const BASE_PORT: u16 = 34070;
const SEED: u64 = 6070;
const SECRET: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn publish_args(t: &TestNet, index: u64, value: u64, max: u64) -> PublishArgs {
    PublishArgs {
        api: t.net.apis[0].clone(),
        org: OWNER.into(),
        key: org_key_path(&t.net, OWNER),
        sim_seed: SEED,
        sim_index: index,
        sim_alg: "p256".into(),
        stream: "air".into(),
        seq: 7,
        record_hash: "ab".repeat(32),
        quantity: "no2".into(),
        value,
        blinding_secret: SECRET.into(),
        bounds: BoundsArgs { min: 0, max, bits: 8 },
        wait: true,
        json: true,
    }
}

/// `chipledger zk publish` for `a`, as the binary runs it; (success, stdout, stderr).
fn run_publish(t: &TestNet, a: &PublishArgs) -> Result<(bool, String, String)> {
    let out = Command::new(&t.exe)
        .args(["zk", "publish", "--api", &a.api, "--org", &a.org])
        .arg("--key")
        .arg(&a.key)
        .args([
            "--sim-seed",
            &a.sim_seed.to_string(),
            "--sim-index",
            &a.sim_index.to_string(),
        ])
        .args([
            "--stream",
            &a.stream,
            "--seq",
            &a.seq.to_string(),
            "--record-hash",
            &a.record_hash,
        ])
        .args(["--quantity", &a.quantity, "--value", &a.value.to_string()])
        .args(["--blinding-secret", &a.blinding_secret])
        .args(["--min", &a.bounds.min.to_string(), "--max", &a.bounds.max.to_string()])
        .args(["--bits", &a.bounds.bits.to_string(), "--wait", "--json"])
        .output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// Submit `payload` signed by `org`; the refusal code (None if accepted).
fn refusal(t: &TestNet, org: &str, payload: Payload) -> Result<Option<String>> {
    let tx = build(&t.client, org, &org_key(&t.net, org)?, None, 100, payload)?;
    Ok(t.client.try_submit(&tx)?.err().map(|e| e.error))
}

fn tamper(payload: Payload) -> Payload {
    match payload {
        Payload::PublishRangeProof(mut p) => {
            p.proof[200] ^= 0x01;
            Payload::PublishRangeProof(p)
        }
        other => other,
    }
}

fn offline_round_trip(t: &TestNet) -> Result<()> {
    let out = Command::new(&t.exe)
        .args([
            "zk",
            "prove",
            "--value",
            "1234",
            "--blinding-secret",
            SECRET,
            "--context",
            "x",
        ])
        .args(["--min", "1000", "--max", "2000", "--bits", "16", "--json"])
        .output()?;
    if !out.status.success() {
        bail!("zk prove: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let (c, proof) = (
        v["commitment"].as_str().unwrap_or(""),
        v["proof"].as_str().unwrap_or(""),
    );
    assert_eq!(v["proof_bytes"], 608);
    let verify = |min: &str| {
        Command::new(&t.exe)
            .args(["zk", "verify", "--commitment", c, "--proof", proof])
            .args(["--min", min, "--max", "2000", "--bits", "16"])
            .output()
    };
    assert!(verify("1000")?.status.success(), "the proof verifies");
    assert!(!verify("1001")?.status.success(), "not for other bounds");
    Ok(())
}

#[test]
fn range_proofs_are_published_verified_and_refused_when_forged() -> Result<()> {
    let t = TestNet::start("zk", BASE_PORT)?;
    let ids = register_sim_devices(&t.net, &t.client, &t.data.ca, DeviceKeyAlg::P256, SEED, 0..1)?;
    let device = ids[0];

    let (ok, stdout, stderr) = run_publish(&t, &publish_args(&t, 0, 23, 40))?;
    assert!(ok, "zk publish failed: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).context("zk publish --json")?;
    assert_eq!(v["status"], "final");
    assert_eq!(v["device"], device.to_string());
    let tx = v["tx"].as_str().unwrap_or_default().to_string();

    let body: RangeProofBody = t.client.get_json(&format!("/v1/zk/proofs/{tx}"))?;
    assert!(body.verified, "the node re-verifies the stored proof");
    assert_eq!(
        (body.device.as_str(), body.quantity.as_str()),
        (device.to_string().as_str(), "no2")
    );
    assert_eq!((body.min, body.max, body.bits, body.proof_bytes), (0, 40, 8, 544));
    assert_eq!((body.signed_by.as_str(), body.publisher.as_str()), ("device-id", OWNER));
    assert_eq!(body.transcript_label, "chipledger/range-proof/v1");
    assert!(
        body.tx_proof.is_some() && body.tx_cbor.is_some(),
        "final: with its log proof"
    );
    assert!(!body.statement.is_empty() && body.commitment.len() == 64);

    let trail: AuditBody = t
        .client
        .get_json(&format!("/v1/audit/devices/{device}?kind=range-proof&proofs=false"))?;
    assert_eq!(trail.entries.len(), 1);
    assert_eq!(trail.entries[0].tx, tx);

    // Out of range: the prover refuses, nothing is submitted.
    let (ok, _, stderr) = run_publish(&t, &publish_args(&t, 0, 55, 40))?;
    assert!(!ok && stderr.contains("not within [0, 40]"), "{stderr}");

    let (_, forged) = publish_payload(&publish_args(&t, 0, 23, 40))?;
    let code = refusal(&t, OWNER, tamper(forged))?;
    assert!(
        matches!(code.as_deref(), Some("proof_invalid" | "proof_malformed")),
        "{code:?}"
    );
    let (_, unregistered) = publish_payload(&publish_args(&t, 5, 23, 40))?;
    assert_eq!(refusal(&t, OWNER, unregistered)?.as_deref(), Some("unknown_device"));
    let (_, foreign) = publish_payload(&publish_args(&t, 0, 23, 40))?;
    assert_eq!(refusal(&t, "maker", foreign)?.as_deref(), Some("not_device_owner"));

    let missing = t
        .client
        .get_json::<RangeProofBody>(&format!("/v1/zk/proofs/{}", "00".repeat(32)));
    assert!(format!("{:#}", missing.unwrap_err()).contains("404"));
    offline_round_trip(&t)
}

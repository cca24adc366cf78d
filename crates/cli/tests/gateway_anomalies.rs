//! Issue 5, Done-when 2, on four validator processes and one `chipledger gateway` process: a
//! raw MQTT client publishes crafted records of registered devices — a valid chain, then a gap,
//! a replay of an old seq, a fork (two records with seq 6), a bad signature, malformed CBOR,
//! duplicates (old records published again), a revoked device's record, an oversized frame and
//! a record of a device nobody registered. Each anomaly reaches the ledger with its kind and
//! the typed error's code in its detail (`/v1/data/devices/{id}`), the unknown device is not
//! reported at all, rejected records get no `DACK`, and the accepted chain is exactly what the
//! valid records imply: head seq and hash, committed record count, one missing seq.
//!
//! The replay: the gateway holds every record it accepted, so an old record published again
//! byte for byte is a `duplicate` (acked again, stored once). A `replay` is an old seq the
//! gateway does not hold and does not know to be missing: here seq 4, which was skipped before
//! a gateway restart (a chain resumes from its durable head, forgetting missing ranges).

mod data_support;

use anyhow::Result;
use chipledger_cli::data_net::{OWNER, org_key, register_sim_devices};
use chipledger_cli::device_cmd::submit_final;
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::record::{SignedRecord, record_hash};
use chipledger_gateway::mqtt::free_local_addr;
use chipledger_gateway::topics::{Frame, MAX_FRAME_BYTES, MessageType};
use chipledger_node::api_data::{AnomalyBody, BatchBody, DeviceDataBody};
use chipledger_types::device_tx::{DeviceId, RevokeDevice, RevokeReason};
use chipledger_types::limits::MAX_RECORD_BYTES;
use chipledger_types::tx::Payload;
use data_support::{DackLog, Mqtt, STREAM, TestDevice, TestNet, WAIT, poll};

/// API ports 29070..29073, p2p 29170.. (clear of the other process tests).
const BASE_PORT: u16 = 29070;
const SEED: u64 = 29;
const GATEWAY: &str = "gw-anomalies";
const GROUP: &str = "anomalies";
/// Cut batches quickly so the test does not wait for them.
const GATEWAY_FLAGS: [&str; 4] = ["--batch-ms", "200", "--http", "off"];

/// The anomaly counts the ledger must end up with for the chain device.
const CHAIN_DEVICE_COUNTS: [(&str, u64); 8] = [
    ("gap", 1),
    ("duplicate", 2),
    ("fork", 1),
    ("replay", 1),
    ("bad_signature", 1),
    ("revoked_device", 0),
    ("malformed", 1),
    ("out_of_order", 0),
];

#[test]
fn every_record_anomaly_is_reported_typed_and_accepted_records_stay_intact() -> Result<()> {
    let t = TestNet::start("gateway-anomalies", BASE_PORT)?;
    let runtime = tokio::runtime::Runtime::new()?;
    let alg = DeviceKeyAlg::P256;
    let registered = register_sim_devices(&t.net, &t.client, &t.data.ca, alg, SEED, 0..3)?;
    let mut chain = TestDevice::new(SEED, 0, GROUP)?;
    let mut revoked = TestDevice::new(SEED, 1, GROUP)?;
    let mut big = TestDevice::new(SEED, 2, GROUP)?;
    let mut stranger = TestDevice::new(SEED, 9, GROUP)?;
    assert_eq!(registered, [chain.id, revoked.id, big.id]);
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: revoked.id,
        reason: RevokeReason::Compromised,
    });
    submit_final(&t.client, OWNER, &org_key(&t.net, OWNER)?, revoke)?;

    // r[i] is seq i + 1; fork6 is another record with seq 6 (same prev as r[5]).
    let mut r: Vec<SignedRecord> = Vec::new();
    for seq in 1..=8 {
        if seq == 6 {
            let fork6 = chain.sign_conflicting("another reading 6")?;
            r.push(chain.sign("reading 6")?);
            r.push(fork6);
        } else {
            r.push(chain.sign(&format!("reading {seq}"))?);
        }
    }
    let fork6 = r.remove(6);
    let listen = free_local_addr()?;
    let subscribe = [&chain, &revoked, &big, &stranger]
        .map(|d| d.dack_topic())
        .into_iter()
        .collect::<Result<Vec<_>>>()?;
    let mut log = DackLog::default();

    // Gateway life 1: seqs 1-3, then 5 (a gap: 4 missing).
    let gateway = t.start_gateway(GATEWAY, listen, &GATEWAY_FLAGS)?;
    let mqtt = Mqtt::connect(&runtime, listen, "devices-1", &subscribe)?;
    mqtt.publish(chain.births())?;
    for rec in &r[0..3] {
        mqtt.publish([chain.ddata(&rec.bytes)])?;
    }
    log.wait(&mqtt, chain.id, 3)?;
    mqtt.publish([chain.ddata(&r[4].bytes)])?;
    log.wait(&mqtt, chain.id, 5)?;
    let status = gateway.interrupt(WAIT)?;
    assert!(status.success(), "clean stop: {status}");
    mqtt.close();

    // Life 2 (the embedded broker restarted with it): every anomaly, then valid records.
    let _gateway = t.start_gateway(GATEWAY, listen, &GATEWAY_FLAGS)?;
    let mqtt = Mqtt::connect(&runtime, listen, "devices-2", &subscribe)?;
    mqtt.publish(chain.births())?;
    let mut tampered = r[6].bytes.clone();
    let signature_r = tampered.len() - 64;
    tampered[signature_r] ^= 0x01;
    let truncated = &r[6].bytes[..r[6].bytes.len() - 10];
    for body in [
        &r[3].bytes[..], // seq 4 after the restart: replay
        &r[5].bytes,     // seq 6
        &fork6.bytes,    // another seq 6: fork
        &tampered,       // seq 7, one signature byte flipped: bad_signature
        truncated,       // not CBOR any more: malformed
        &r[6].bytes,     // the real seq 7
        &r[1].bytes,     // seq 2 again: duplicate, reported at once
        &r[0].bytes,     // seqs 1 and 3 again: held back, then one report for both
        &r[2].bytes,
        &r[7].bytes, // seq 8: still accepted after all of that
    ] {
        mqtt.publish([chain.ddata(body)])?;
    }
    mqtt.publish(revoked.births())?;
    let rec = revoked.sign("from a revoked device")?;
    mqtt.publish([revoked.ddata(&rec.bytes)])?;
    mqtt.publish(stranger.births())?;
    let rec = stranger.sign("from nobody we know")?;
    mqtt.publish([stranger.ddata(&rec.bytes)])?;
    mqtt.publish(big.births())?;
    let oversized = vec![0xd2; MAX_RECORD_BYTES + 1];
    let oversized_frame = Frame {
        seq: 0,
        bd_seq: 0,
        body: &oversized,
    }
    .encode();
    mqtt.publish([(big.topic(MessageType::DData), oversized_frame.clone())])?;
    let rec = big.sign("after an oversized frame")?;
    mqtt.publish([big.ddata(&rec.bytes)])?;
    log.wait(&mqtt, chain.id, 8)?;
    log.wait(&mqtt, big.id, 1)?;
    log.drain(&mqtt);

    // DACKs: every accepted record (a duplicate is acked again with the chain's highest seq),
    // no rejected one; after the restart the gateway's DACK memory starts afresh.
    assert_eq!(log.seqs(chain.id), [1, 2, 3, 5, 6, 7, 7, 7, 7, 8]);
    assert_eq!(log.seqs(big.id), [1]);
    assert!(log.seqs(revoked.id).is_empty() && log.seqs(stranger.id).is_empty());

    let d = poll("every anomaly of the chain device on the ledger", WAIT, || {
        let d = t.device(&chain.id)?;
        Ok(d.filter(|d| counts(d) == CHAIN_DEVICE_COUNTS.map(|(k, n)| (k.to_string(), n)).to_vec()))
    })?;
    let find = |kind: &str| -> Vec<&AnomalyBody> { d.anomalies.recent.iter().filter(|a| a.kind == kind).collect() };
    let hex = |rec: &SignedRecord| hex::encode(rec.hash.0);
    let gap = find("gap")[0];
    assert_eq!((gap.seq, gap.expected_seq), (5, Some(4)));
    let replay = find("replay")[0];
    assert_eq!((replay.seq, replay.evidence.clone()), (4, vec![hex(&r[3])]));
    let fork = find("fork")[0];
    assert_eq!(fork.seq, 6);
    assert_eq!(fork.evidence, [hex(&r[5]), hex(&fork6)], "both seq-6 records");
    let bad = find("bad_signature")[0];
    assert_eq!((bad.seq, bad.stream.as_str()), (7, STREAM));
    assert!(bad.detail.starts_with("bad_signature: "), "{}", bad.detail);
    assert_eq!(bad.evidence, [hex::encode(record_hash(&tampered).0)]);
    let malformed = find("malformed")[0];
    assert!(malformed.detail.starts_with("body: "), "{}", malformed.detail);
    assert_eq!((malformed.seq, malformed.stream.as_str()), (0, "_undecodable"));
    let duplicates = find("duplicate");
    assert_eq!((duplicates[0].seq, duplicates[1].seq), (2, 3));
    assert!(
        duplicates[0].detail.starts_with("duplicate: "),
        "{}",
        duplicates[0].detail
    );
    assert!(
        duplicates[1]
            .detail
            .ends_with("(+1 more duplicate rejections of this device coalesced)"),
        "two held-back duplicates, one report: {}",
        duplicates[1].detail
    );
    assert!(d.anomalies.recent.iter().all(|a| a.gateway == GATEWAY));

    // The accepted chain is exactly seqs 1-3 and 5-8: head 8 with r8's hash, 7 records, seq 4
    // missing, at trust level 1.
    let head = poll("the chain device's head at seq 8", WAIT, || {
        let d = t.device(&chain.id)?;
        Ok(d.and_then(|d| d.streams.into_iter().find(|s| s.stream == STREAM && s.seq == 8)))
    })?;
    assert_eq!(head.hash, hex(&r[7]));
    assert_eq!((head.records, head.missing, head.trust), (7, 1, 1));

    assert_other_devices(&t, &revoked.id, &big.id, &stranger.id, oversized_frame.len())?;
    assert_batches_hold(&t, 8)
}

/// Kind → count, in the API's order.
fn counts(d: &DeviceDataBody) -> Vec<(String, u64)> {
    CHAIN_DEVICE_COUNTS
        .iter()
        .map(|(k, _)| (k.to_string(), d.anomalies.counts.get(*k).copied().unwrap_or(0)))
        .collect()
}

/// The revoked device: one `revoked_device` report, nothing committed; the device that sent
/// an oversized frame: one `malformed` naming the size and the limit, and its valid record
/// committed; the unregistered device: nothing on the ledger at all.
fn assert_other_devices(
    t: &TestNet,
    revoked: &DeviceId,
    big: &DeviceId,
    stranger: &DeviceId,
    len: usize,
) -> Result<()> {
    let rv = poll("the revoked device's report", WAIT, || {
        Ok(t.device(revoked)?.filter(|d| d.anomalies.total == 1))
    })?;
    assert!(rv.revoked && rv.streams.is_empty());
    let report = &rv.anomalies.recent[0];
    assert_eq!((report.kind.as_str(), report.seq), ("revoked_device", 1));
    assert!(report.detail.starts_with("revoked: "), "{}", report.detail);

    let b = poll("the oversized frame's report and the record after it", WAIT, || {
        Ok(t.device(big)?.filter(|d| d.anomalies.total == 1 && d.records == 1))
    })?;
    let report = &b.anomalies.recent[0];
    assert_eq!(report.kind, "malformed");
    let want = format!("frame_too_large: frame is {len} bytes, more than {MAX_FRAME_BYTES}");
    assert_eq!(report.detail, want);
    assert_eq!((b.streams[0].seq, b.streams[0].missing), (1, 0));

    assert!(t.device(stranger)?.is_none(), "an unknown device is never reported");
    Ok(())
}

/// The gateway's batches hold exactly the accepted records, each once.
fn assert_batches_hold(t: &TestNet, records: u64) -> Result<()> {
    let g = poll("every accepted record committed", WAIT, || {
        Ok(Some(t.gateway(GATEWAY)?).filter(|g| g.records >= records))
    })?;
    assert_eq!(g.records, records);
    let mut in_batches = 0;
    for seq in 1..=g.last_batch {
        let b: BatchBody = t.client.get_json(&format!("/v1/data/batches/{GATEWAY}/{seq}"))?;
        in_batches += u64::from(b.record_count);
    }
    assert_eq!(in_batches, records);
    Ok(())
}

//! Range-proof rules (issue 6), ledger side: a device-signed reading commitment plus a
//! Bulletproof that the committed reading lies within public bounds. Valid proofs are stored
//! with an audit entry; out-of-range, forged, wrongly signed, foreign or revoked-device proofs
//! are refused with a typed code and leave the state unchanged (the harness checks both).
//! Devices are real: DICE certificates from the device SDK, registered by a manufacturer.

mod support;

use chipledger_device::cert::{CertValidity, issue_ca_cert};
use chipledger_device::reading::sign_reading_commitment;
use chipledger_state::audit::audit_entries;
use chipledger_state::device::device_id_of;
use chipledger_state::zk::{ZkEvent, get_range_proof};
use chipledger_state::{Event, TxError};
use chipledger_types::audit::AuditSubject;
use chipledger_types::device_tx::*;
use chipledger_types::tx::{GovAction, Payload, Role, TxHash};
use chipledger_types::zk_tx::{PublishRangeProof, ReadingCommitment, StatementKey, range_proof_key};
use chipledger_zk::{Blinding, commit, prove_bounds};
use p256::ecdsa::SigningKey;
use support::World;
use support::chip::{Chip, ChipKind, p256_key};

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;
const SENSOR: u32 = 150;
/// The NO₂ limit the city proves its sensors stay under (µg/m³).
const LIMIT: u64 = 40;

const ORGS: [(&str, Role); 3] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("audit", Role::Auditor),
];

/// The chips of these tests.
const KIND: ChipKind = ChipKind {
    model: SENSOR,
    model_name: "sensor",
    swname: "sensor-fw",
};

/// A world with `maker`'s CA granted sensors and two registered sensors owned by `city`.
fn scene() -> (World, Chip, Chip) {
    let mut w = World::new(&ORGS, 2, T0_MS);
    let ca_key = p256_key(1);
    let ca_der = issue_ca_cert(&ca_key, "CN=CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
    let p = w.tx(
        "city",
        Payload::Propose(GovAction::AddManufacturerCa(AddManufacturerCa {
            org: "maker".into(),
            ca_cert_der: ca_der.clone(),
            models: vec![ModelRange { first: 100, last: 199 }],
        })),
    );
    w.apply(&p).unwrap();
    let proposal = TxHash::of(&p);
    w.apply(&w.tx("audit", Payload::Approve { proposal })).unwrap();
    let a = w.register_chip(&ca_key, &ca_der, 10, KIND, "city");
    let b = w.register_chip(&ca_key, &ca_der, 11, KIND, "city");
    (w, a, b)
}

/// A reading of `value` committed with a blinding derived from `secret`.
struct Reading {
    value: u64,
    blinding: Blinding,
    statement: ReadingCommitment,
}

fn reading(device: &DeviceId, value: u64, seq: u64) -> Reading {
    let blinding = Blinding::derive(&[seq as u8 + 1; 32], format!("{device}/air/{seq}/no2").as_bytes()).unwrap();
    let statement = ReadingCommitment {
        device: *device,
        stream: "air".into(),
        seq,
        record_hash: [seq as u8; 32],
        quantity: "no2".into(),
        commitment: commit(value, &blinding).0,
    };
    Reading {
        value,
        blinding,
        statement,
    }
}

/// The payload publishing `r` under [0, max], signed by `key`, with an honest proof for
/// [0, proved_max] (= max unless a test crafts a mismatch).
fn publish(r: &Reading, key: &SigningKey, max: u64, proved_max: u64) -> Payload {
    let proof = prove_bounds(r.value, &r.blinding, 0, proved_max, 8).unwrap();
    Payload::PublishRangeProof(PublishRangeProof {
        statement: sign_reading_commitment(&r.statement, key).unwrap(),
        min: 0,
        max,
        bits: 8,
        proof,
    })
}

fn with_proof(p: Payload, f: impl FnOnce(&mut PublishRangeProof)) -> Payload {
    let Payload::PublishRangeProof(mut inner) = p else {
        unreachable!("a range-proof payload")
    };
    f(&mut inner);
    Payload::PublishRangeProof(inner)
}

impl World {
    /// Expect a refusal with `code`, the state unchanged.
    fn refuse(&mut self, org: &str, payload: Payload, code: &str) -> TxError {
        let err = self.reject_unchanged(org, payload);
        assert_eq!(err.code(), code, "{err}");
        err
    }
}

#[test]
fn a_valid_proof_is_verified_stored_and_audited() {
    let (mut w, a, _) = scene();
    let r = reading(&a.id, 23, 5);
    let (hash, events) = w.apply_ok("city", publish(&r, &a.key, LIMIT, LIMIT));
    assert_eq!(
        events,
        vec![Event::Zk(ZkEvent::RangeProofPublished {
            tx: hash,
            device: a.id,
            stream: "air".into(),
            seq: 5,
            quantity: "no2".into(),
            min: 0,
            max: LIMIT,
            bits: 8,
        })]
    );
    let rec = get_range_proof(&w.state, &hash).unwrap().expect("stored");
    assert_eq!(rec.reading, r.statement);
    assert_eq!((rec.min, rec.max, rec.bits), (0, LIMIT, 8));
    assert_eq!(rec.signed_by, StatementKey::DeviceId);
    assert_eq!(rec.publisher, "city");
    assert_eq!(rec.height, w.height - 1);
    // The stored statement and proof re-verify from state alone.
    let c = chipledger_zk::Commitment(rec.reading.commitment);
    assert_eq!(
        chipledger_zk::verify_bounds(&c, rec.min, rec.max, rec.bits, &rec.proof),
        Ok(())
    );
    // The value is nowhere in what was stored.
    assert!(w.state.contains_key(&range_proof_key(&hash)));
    for subject in [AuditSubject::Device(a.id), AuditSubject::Org("city".into())] {
        let entries = audit_entries(&w.state, &subject, 0, 10).unwrap();
        assert_eq!(entries.len(), 1, "{subject:?}");
        assert_eq!(entries[0].1.kind, "range-proof");
        assert_eq!(entries[0].1.tx, hash);
        assert!(
            entries[0].1.summary.contains("no2 of record air#5 lies in [0, 40]"),
            "{}",
            entries[0].1.summary
        );
    }
}

#[test]
fn the_attested_alias_key_may_sign_once_the_device_is_attested() {
    let (mut w, a, _) = scene();
    let r = reading(&a.id, 12, 1);
    w.refuse("city", publish(&r, &a.alias_key, LIMIT, LIMIT), "statement_signature");
    w.attest_chip(&a);
    let (hash, _) = w.apply_ok("city", publish(&r, &a.alias_key, LIMIT, LIMIT));
    assert_eq!(
        get_range_proof(&w.state, &hash).unwrap().unwrap().signed_by,
        StatementKey::Alias
    );
}

#[test]
fn an_out_of_range_reading_cannot_be_proved_within_the_limit() {
    let (mut w, a, _) = scene();
    let r = reading(&a.id, 55, 2);
    // The prover refuses outright ...
    assert!(prove_bounds(r.value, &r.blinding, 0, LIMIT, 8).is_err());
    // ... and an honest proof for wider bounds does not pass for the limit.
    w.refuse("city", publish(&r, &a.key, LIMIT, 60), "proof_invalid");
    assert!(w.state.keys().all(|k| !k.starts_with(b"zk/")));
}

#[test]
fn forged_proofs_are_refused() {
    let (mut w, a, _) = scene();
    let r = reading(&a.id, 23, 3);
    let good = publish(&r, &a.key, LIMIT, LIMIT);
    let flipped = with_proof(good.clone(), |p| p.proof[100] ^= 0x01);
    let err = w.reject_unchanged("city", flipped);
    assert!(["proof_invalid", "proof_malformed"].contains(&err.code()), "{err}");
    w.refuse(
        "city",
        with_proof(good.clone(), |p| p.proof.truncate(512)),
        "proof_malformed",
    );
    // A proof made for another commitment (same value, other blinding).
    let other = reading(&a.id, 23, 4);
    let foreign = prove_bounds(other.value, &other.blinding, 0, LIMIT, 8).unwrap();
    w.refuse("city", with_proof(good.clone(), |p| p.proof = foreign), "proof_invalid");
    // The device signed a commitment to 99, the proof is about 23's commitment.
    let mut lie = reading(&a.id, 23, 3);
    lie.statement.commitment = commit(99, &lie.blinding).0;
    let signed = sign_reading_commitment(&lie.statement, &a.key).unwrap();
    w.refuse(
        "city",
        with_proof(good.clone(), |p| p.statement = signed),
        "proof_invalid",
    );
    // Swapped or impossible bounds.
    w.refuse(
        "city",
        with_proof(good.clone(), |p| (p.min, p.max) = (LIMIT, 0)),
        "bad_bounds",
    );
    w.refuse("city", with_proof(good.clone(), |p| p.max = 1000), "bad_bounds");
    w.apply_ok("city", good);
}

#[test]
fn statements_signed_by_a_wrong_key_are_refused() {
    let (mut w, a, b) = scene();
    let r = reading(&a.id, 23, 6);
    w.refuse("city", publish(&r, &p256_key(77), LIMIT, LIMIT), "statement_signature");
    // Device b's registered key cannot speak for device a.
    w.refuse("city", publish(&r, &b.key, LIMIT, LIMIT), "statement_signature");
    // A tampered signature.
    let tampered = with_proof(publish(&r, &a.key, LIMIT, LIMIT), |p| {
        let n = p.statement.len();
        p.statement[n - 1] ^= 0x01;
    });
    w.refuse("city", tampered, "statement_signature");
}

#[test]
fn statements_that_are_not_reading_commitments_are_refused() {
    let (mut w, a, _) = scene();
    let good = publish(&reading(&a.id, 23, 7), &a.key, LIMIT, LIMIT);
    w.refuse(
        "city",
        with_proof(good.clone(), |p| p.statement = vec![0xa0]),
        "bad_statement",
    );
    let transfer_proof = chipledger_device::ledger::AcceptTransferProof {
        device_id: a.id.0,
        to_org: "city".into(),
        nonce: vec![1; 40],
    }
    .sign(&a.key)
    .unwrap();
    w.refuse(
        "city",
        with_proof(good, |p| p.statement = transfer_proof),
        "bad_statement",
    );
}

#[test]
fn unknown_and_revoked_devices_and_other_publishers_are_refused() {
    let (mut w, a, _) = scene();
    let stranger = p256_key(42);
    let unknown = reading(&device_id_of(stranger.verifying_key()), 23, 8);
    w.refuse("city", publish(&unknown, &stranger, LIMIT, LIMIT), "unknown_device");
    let r = reading(&a.id, 23, 8);
    let err = w.refuse("audit", publish(&r, &a.key, LIMIT, LIMIT), "not_device_owner");
    assert!(err.to_string().contains("belongs to 'city'"), "{err}");
    w.apply_ok(
        "city",
        Payload::RevokeDevice(RevokeDevice {
            device: a.id,
            reason: RevokeReason::Compromised,
        }),
    );
    w.refuse("city", publish(&r, &a.key, LIMIT, LIMIT), "device_revoked");
    assert!(w.state.keys().all(|k| !k.starts_with(b"zk/")));
    let trail = audit_entries(&w.state, &AuditSubject::Device(a.id), 0, 10).unwrap();
    assert!(trail.iter().all(|(_, e)| e.kind != "range-proof"));
}

#[test]
fn the_ledger_limits_match_the_proof_system() {
    use chipledger_types::limits::{MAX_RANGE_PROOF_BYTES, RANGE_PROOF_BITS};
    assert_eq!(MAX_RANGE_PROOF_BYTES, chipledger_zk::MAX_PROOF_BYTES);
    assert_eq!(RANGE_PROOF_BITS, chipledger_zk::ALLOWED_BITS);
}

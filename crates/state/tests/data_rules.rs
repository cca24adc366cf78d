//! Data-at-source rules (issue 5), ledger side: gateway registration, batch commits moving
//! device+stream chain heads, trust levels checked against the device registry, chain
//! anomalies and rebirth requests. Every rejection gets its typed error (and code) and leaves
//! the state unchanged (the harness checks both). Devices are real: DICE certificates from the
//! device SDK, registered by a manufacturer, attested with a signed EAT, revoked by the owner.

mod support;

use chipledger_device::cert::{CertValidity, issue_ca_cert};
use chipledger_state::data::model::*;
use chipledger_state::data::{DataError, DataEvent};
use chipledger_state::{Event, TxError};
use chipledger_types::data_tx::*;
use chipledger_types::device_tx::*;
use chipledger_types::limits::*;
use chipledger_types::tx::{GovAction, Payload, Role, TxHash};
use support::World;
use support::chip::{Chip, ChipKind, p256_key};

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;
const LAMP: u32 = 150;

const ORGS: [(&str, Role); 5] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("audit", Role::Auditor),
    ("ops", Role::Operator),
    ("ops2", Role::Operator),
];

impl World {
    fn ok_hash(&mut self, org: &str, payload: Payload) -> (TxHash, Vec<DataEvent>) {
        let (hash, events) = self.apply_ok(org, payload);
        let data = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Data(x) => Some(x),
                _ => None,
            })
            .collect();
        (hash, data)
    }

    fn ok(&mut self, org: &str, payload: Payload) -> Vec<DataEvent> {
        self.ok_hash(org, payload).1
    }

    /// Apply and expect an error, checking that the state did not change.
    fn reject(&mut self, org: &str, payload: Payload) -> TxError {
        self.reject_unchanged(org, payload)
    }

    /// Expect a data rejection with `code`; return it.
    fn refuse(&mut self, org: &str, payload: Payload, code: &str) -> DataError {
        match self.reject(org, payload) {
            TxError::Data(e) => {
                assert_eq!(e.code(), code, "{e}");
                e
            }
            other => panic!("expected a data error, got {other:?}"),
        }
    }

    fn govern(&mut self, action: GovAction) {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let proposal = TxHash::of(&p);
        self.apply(&self.tx("audit", Payload::Approve { proposal })).unwrap();
    }

    fn head(&self, device: &DeviceId, stream: &str) -> ChainHead {
        get_head(&self.state, device, stream).unwrap().expect("chain head")
    }
}

// ---- devices -----------------------------------------------------------------------------------

/// The chips of these tests.
const KIND: ChipKind = ChipKind {
    model: LAMP,
    model_name: "lamp",
    swname: "lamp-fw",
};

fn revoke(w: &mut World, c: &Chip) {
    let p = Payload::RevokeDevice(RevokeDevice {
        device: c.id,
        reason: RevokeReason::Compromised,
    });
    let t = w.tx("city", p);
    w.apply(&t).expect("revocation accepted");
}

/// A world with `maker`'s CA granted lamps, two registered lamps (`a`, `b`) and gateway `gw-1`
/// of `ops`.
fn scene() -> (World, Chip, Chip) {
    let mut w = World::new(&ORGS, 2, T0_MS);
    let ca_key = p256_key(1);
    let ca_der = issue_ca_cert(&ca_key, "CN=CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
    w.govern(GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca_der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    }));
    let a = w.register_chip(&ca_key, &ca_der, 10, KIND, "city");
    let b = w.register_chip(&ca_key, &ca_der, 11, KIND, "city");
    w.ok("ops", gateway("gw-1"));
    (w, a, b)
}

// ---- payloads ----------------------------------------------------------------------------------

fn gateway(name: &str) -> Payload {
    Payload::RegisterGateway(RegisterGateway { name: name.into() })
}

fn head(device: &DeviceId, stream: &str, seq: u64, hash: u8, records: u32, trust: TrustLevel) -> BatchHead {
    BatchHead {
        device: *device,
        stream: stream.into(),
        seq,
        hash: [hash; 32],
        records,
        trust,
    }
}

/// Batch `seq` of `gw` with `heads` (sorted here), counting exactly their records.
fn batch(gw: &str, seq: u64, mut heads: Vec<BatchHead>) -> Payload {
    heads.sort_by(|x, y| (x.device, &x.stream).cmp(&(y.device, &y.stream)));
    let record_count = heads.iter().map(|h| h.records).sum::<u32>().max(1);
    Payload::CommitBatch(CommitBatch {
        gateway: gw.into(),
        batch_seq: seq,
        root: batch_root(&[[seq as u8; 32]]),
        record_count,
        first_timestamp_ms: T0_MS,
        last_timestamp_ms: T0_MS + 500,
        heads,
    })
}

fn anomaly(gw: &str, device: &DeviceId, kind: AnomalyKind, evidence: Vec<[u8; 32]>) -> Payload {
    Payload::ReportChainAnomaly(ReportChainAnomaly {
        gateway: gw.into(),
        device: *device,
        stream: "temp".into(),
        kind,
        seq: 12,
        expected_seq: Some(10),
        evidence,
        detail: format!("{} seen by gw", kind.name()),
    })
}

const REG: TrustLevel = TrustLevel::Registered;

// ---- gateways ----------------------------------------------------------------------------------

#[test]
fn gateways_belong_to_the_operator_that_registered_them() {
    let (mut w, a, _) = scene();
    let g = get_gateway(&w.state, "gw-1").unwrap().unwrap();
    assert_eq!((g.operator.as_str(), g.last_batch, g.records), ("ops", 0, 0));
    assert_eq!(gateways_of(&w.state, "ops").unwrap(), vec!["gw-1".to_string()]);
    assert_eq!(
        w.ok("ops2", gateway("gw-2")),
        vec![DataEvent::GatewayRegistered {
            gateway: "gw-2".into(),
            operator: "ops2".into()
        }]
    );

    let e = w.refuse("ops2", gateway("gw-1"), "gateway_exists");
    assert_eq!(e.to_string(), "gateway 'gw-1' is already registered");
    // Only operators run gateways and commit data.
    let e = w.refuse("city", gateway("gw-city"), "not_operator");
    assert!(e.to_string().contains("'city' does not hold the operator role"), "{e}");
    w.refuse(
        "city",
        batch("gw-1", 1, vec![head(&a.id, "temp", 1, 1, 1, REG)]),
        "not_operator",
    );
    // Another operator cannot act for gw-1.
    let e = w.refuse(
        "ops2",
        batch("gw-1", 1, vec![head(&a.id, "temp", 1, 1, 1, REG)]),
        "not_gateway_operator",
    );
    assert_eq!(
        e.to_string(),
        "gateway 'gw-1' belongs to 'ops'; 'ops2' cannot act for it"
    );
    w.refuse(
        "ops2",
        anomaly("gw-1", &a.id, AnomalyKind::Gap, vec![]),
        "not_gateway_operator",
    );
    let rebirth = Payload::RequestRebirth(RequestRebirth {
        gateway: "gw-1".into(),
        device: a.id,
        edge_node: "edge-1".into(),
        reason: "gap".into(),
    });
    w.refuse("ops2", rebirth, "not_gateway_operator");
    w.refuse(
        "ops",
        batch("gw-9", 1, vec![head(&a.id, "temp", 1, 1, 1, REG)]),
        "unknown_gateway",
    );
}

#[test]
fn an_operator_registers_at_most_max_gateways() {
    let mut w = World::new(&ORGS, 2, T0_MS);
    for i in 0..MAX_GATEWAYS_PER_ORG {
        w.ok("ops", gateway(&format!("gw-{i}")));
    }
    let err = w.reject("ops", gateway("gw-one-more"));
    assert_eq!(err.code(), "limit_reached", "{err}");
}

// ---- batches -----------------------------------------------------------------------------------

#[test]
fn batches_move_chain_heads_and_are_recorded() {
    let (mut w, a, b) = scene();
    let unknown = DeviceId([0x77; 20]);
    let heads = vec![
        head(&a.id, "temp", 3, 0xa3, 3, REG),
        head(&a.id, "door", 1, 0xd1, 1, REG),
        head(&unknown, "temp", 2, 0x12, 2, TrustLevel::SelfReported),
    ];
    let p = batch("gw-1", 1, heads);
    let (hash, events) = w.ok_hash("ops", p.clone());
    assert_eq!(
        events,
        vec![DataEvent::BatchCommitted {
            gateway: "gw-1".into(),
            seq: 1,
            records: 6,
            heads: 3
        }]
    );
    let Payload::CommitBatch(sent) = p else { unreachable!() };
    let rec = get_batch(&w.state, "gw-1", 1).unwrap().expect("batch record");
    assert_eq!(
        (
            rec.root,
            rec.record_count,
            rec.heads.clone(),
            rec.tx,
            rec.operator.as_str()
        ),
        (sent.root, 6, sent.heads, hash, "ops")
    );
    assert_eq!(rec.height, w.height - 1);
    let h = w.head(&a.id, "temp");
    assert_eq!(
        (h.seq, h.hash, h.records, h.missing, h.batch_seq),
        (3, [0xa3; 32], 3, 0, 1)
    );
    assert_eq!(
        streams_of(&w.state, &a.id).unwrap(),
        vec!["door".to_string(), "temp".to_string()]
    );
    assert_eq!(w.head(&unknown, "temp").trust, TrustLevel::SelfReported);
    assert!(get_head(&w.state, &b.id, "temp").unwrap().is_none());

    // Batch 2: a's temp chain advances 3 → 9 with 4 records (2 seqs missing: a gap).
    w.ok("ops", batch("gw-1", 2, vec![head(&a.id, "temp", 9, 0xa9, 4, REG)]));
    let h = w.head(&a.id, "temp");
    assert_eq!((h.seq, h.records, h.missing, h.batch_seq), (9, 7, 2, 2));
    let g = get_gateway(&w.state, "gw-1").unwrap().unwrap();
    assert_eq!((g.last_batch, g.records), (2, 10));
    // Late records filling a gap are in the root and the count, but move no head.
    let mut late = batch("gw-1", 3, vec![head(&b.id, "temp", 1, 0xb1, 1, REG)]);
    if let Payload::CommitBatch(c) = &mut late {
        c.record_count = 3;
    }
    w.ok("ops", late);
    assert_eq!(get_gateway(&w.state, "gw-1").unwrap().unwrap().records, 13);
}

#[test]
fn a_replayed_or_skipping_batch_is_refused() {
    let (mut w, a, _) = scene();
    let first = batch("gw-1", 1, vec![head(&a.id, "temp", 1, 1, 1, REG)]);
    w.ok("ops", first.clone());
    let e = w.refuse("ops", first, "batch_replayed");
    assert_eq!(
        e.to_string(),
        "batch 1 of gateway 'gw-1' already committed (last committed: 1)"
    );
    let e = w.refuse(
        "ops",
        batch("gw-1", 3, vec![head(&a.id, "temp", 2, 2, 1, REG)]),
        "batch_seq_gap",
    );
    assert_eq!(
        e.to_string(),
        "batch 3 of gateway 'gw-1' skips ahead: batch 2 comes next"
    );
    // Batch numbers are per gateway.
    w.ok("ops", gateway("gw-2"));
    w.ok("ops", batch("gw-2", 1, vec![head(&a.id, "temp", 2, 2, 1, REG)]));
}

#[test]
fn heads_must_extend_the_committed_chain() {
    let (mut w, a, b) = scene();
    w.ok("ops", batch("gw-1", 1, vec![head(&a.id, "temp", 12, 0x12, 12, REG)]));
    // Same seq, another hash: a fork.
    let fork = batch("gw-1", 2, vec![head(&a.id, "temp", 12, 0x99, 1, REG)]);
    let e = w.refuse("ops", fork, "chain_fork");
    assert!(
        e.to_string().starts_with(&format!(
            "record chain fork for device {} stream 'temp' at seq 12",
            a.id
        )),
        "{e}"
    );
    // Same seq, same hash: already committed.
    let again = batch("gw-1", 2, vec![head(&a.id, "temp", 12, 0x12, 1, REG)]);
    w.refuse("ops", again, "head_already_committed");
    // Backwards.
    let back = batch("gw-1", 2, vec![head(&a.id, "temp", 11, 0x11, 1, REG)]);
    let e = w.refuse("ops", back, "chain_rewind");
    assert!(e.to_string().contains("already at seq 12"), "{e}");
    // More records than seqs advanced (12 → 14 is two records at most); a new chain from seq 1.
    let over = batch("gw-1", 2, vec![head(&a.id, "temp", 14, 0x14, 3, REG)]);
    w.refuse("ops", over, "too_many_records");
    let over_new = batch("gw-1", 2, vec![head(&b.id, "temp", 2, 0x02, 3, REG)]);
    w.refuse("ops", over_new, "too_many_records");
    // A batch with one good head and one forking head changes nothing (atomic).
    let mixed = batch(
        "gw-1",
        2,
        vec![head(&b.id, "temp", 1, 1, 1, REG), head(&a.id, "temp", 12, 0x98, 1, REG)],
    );
    w.refuse("ops", mixed, "chain_fork");
    assert!(get_head(&w.state, &b.id, "temp").unwrap().is_none());
    // The same chain from another gateway must extend the same head.
    w.ok("ops2", gateway("gw-2"));
    let other = batch("gw-2", 1, vec![head(&a.id, "temp", 12, 0x97, 1, REG)]);
    w.refuse("ops2", other, "chain_fork");
    w.ok("ops2", batch("gw-2", 1, vec![head(&a.id, "temp", 13, 0x13, 1, REG)]));
    assert_eq!(w.head(&a.id, "temp").gateway, "gw-2");
}

#[test]
fn trust_levels_are_checked_against_the_registry() {
    let (mut w, a, b) = scene();
    let unknown = DeviceId([0x77; 20]);
    let e = w.refuse(
        "ops",
        batch("gw-1", 1, vec![head(&unknown, "temp", 1, 1, 1, REG)]),
        "device_not_registered",
    );
    assert!(e.to_string().contains("not registered"), "{e}");
    let attested = TrustLevel::Attested;
    w.refuse(
        "ops",
        batch("gw-1", 1, vec![head(&unknown, "temp", 1, 1, 1, attested)]),
        "device_not_registered",
    );
    let e = w.refuse(
        "ops",
        batch("gw-1", 1, vec![head(&a.id, "temp", 1, 1, 1, attested)]),
        "not_attested",
    );
    assert!(e.to_string().contains("no verified attestation"), "{e}");
    w.attest_chip(&a);
    w.ok("ops", batch("gw-1", 1, vec![head(&a.id, "temp", 1, 1, 1, attested)]));
    assert_eq!(w.head(&a.id, "temp").trust, TrustLevel::Attested);
    // A revoked device commits nothing, at any trust level.
    revoke(&mut w, &b);
    for trust in TrustLevel::ALL {
        let e = w.refuse(
            "ops",
            batch("gw-1", 2, vec![head(&b.id, "temp", 1, 1, 1, trust)]),
            "device_revoked",
        );
        assert!(e.to_string().contains("was revoked"), "{e}");
    }
}

#[test]
fn a_device_has_at_most_max_streams() {
    let (mut w, a, _) = scene();
    let heads: Vec<BatchHead> = (0..MAX_STREAMS_PER_DEVICE)
        .map(|i| head(&a.id, &format!("s{i:03}"), 1, 1, 1, REG))
        .collect();
    w.ok("ops", batch("gw-1", 1, heads));
    assert_eq!(streams_of(&w.state, &a.id).unwrap().len(), MAX_STREAMS_PER_DEVICE);
    let err = w.reject("ops", batch("gw-1", 2, vec![head(&a.id, "one-more", 1, 1, 1, REG)]));
    assert_eq!(err.code(), "limit_reached", "{err}");
    // Existing streams still advance.
    w.ok("ops", batch("gw-1", 2, vec![head(&a.id, "s000", 2, 2, 1, REG)]));
}

// ---- anomalies and rebirths ----------------------------------------------------------------------

#[test]
fn every_anomaly_kind_is_recorded_per_device() {
    let (mut w, a, b) = scene();
    revoke(&mut w, &b);
    for kind in AnomalyKind::ALL {
        let evidence: Vec<[u8; 32]> = (0..kind.min_evidence() as u8).map(|i| [i + 1; 32]).collect();
        let device = if kind == AnomalyKind::RevokedDevice { b.id } else { a.id };
        let events = w.ok("ops", anomaly("gw-1", &device, kind, evidence));
        assert_eq!(
            events,
            vec![DataEvent::ChainAnomalyReported {
                device,
                stream: "temp".into(),
                kind,
                seq: 12
            }]
        );
    }
    let log = anomalies_of(&w.state, &a.id).unwrap();
    assert_eq!(log.total(), AnomalyKind::ALL.len() as u64 - 1);
    assert_eq!(
        (log.count(AnomalyKind::Fork), log.count(AnomalyKind::RevokedDevice)),
        (1, 0)
    );
    let fork = log.recent.iter().find(|e| e.kind == AnomalyKind::Fork).unwrap();
    assert_eq!(
        (fork.evidence.clone(), fork.expected_seq, fork.gateway.as_str()),
        (vec![[1; 32], [2; 32]], Some(10), "gw-1")
    );
    assert_eq!(
        anomalies_of(&w.state, &b.id).unwrap().count(AnomalyKind::RevokedDevice),
        1
    );
    // A bad signature from a key nobody registered is still recorded.
    let stranger = DeviceId([0x55; 20]);
    w.ok("ops", anomaly("gw-1", &stranger, AnomalyKind::BadSignature, vec![]));
    assert_eq!(anomalies_of(&w.state, &stranger).unwrap().total(), 1);
    // Anomalies never touch chain heads.
    assert!(get_head(&w.state, &a.id, "temp").unwrap().is_none());
}

#[test]
fn a_revoked_device_anomaly_must_name_a_revoked_device() {
    let (mut w, a, _) = scene();
    let e = w.refuse(
        "ops",
        anomaly("gw-1", &a.id, AnomalyKind::RevokedDevice, vec![]),
        "not_revoked",
    );
    assert!(e.to_string().contains("not a revoked registered device"), "{e}");
    let unknown = DeviceId([0x66; 20]);
    w.refuse(
        "ops",
        anomaly("gw-1", &unknown, AnomalyKind::RevokedDevice, vec![]),
        "not_revoked",
    );
    w.refuse(
        "ops",
        anomaly("gw-9", &a.id, AnomalyKind::Gap, vec![]),
        "unknown_gateway",
    );
}

#[test]
fn the_anomaly_record_keeps_exact_counts_and_the_latest_reports() {
    let (mut w, a, _) = scene();
    let n = MAX_DEVICE_ANOMALIES + 5;
    for i in 0..n {
        let mut p = anomaly("gw-1", &a.id, AnomalyKind::Gap, vec![]);
        if let Payload::ReportChainAnomaly(r) = &mut p {
            r.seq = i as u64;
        }
        w.ok("ops", p);
    }
    let log = anomalies_of(&w.state, &a.id).unwrap();
    assert_eq!(log.count(AnomalyKind::Gap), n as u64);
    assert_eq!(log.recent.len(), MAX_DEVICE_ANOMALIES);
    assert_eq!(log.recent.first().unwrap().seq, 5, "the oldest reports were dropped");
    assert_eq!(log.recent.last().unwrap().seq, n as u64 - 1);
}

#[test]
fn rebirth_requests_are_recorded() {
    let (mut w, a, _) = scene();
    let rebirth = |reason: &str| {
        Payload::RequestRebirth(RequestRebirth {
            gateway: "gw-1".into(),
            device: a.id,
            edge_node: "edge-7".into(),
            reason: reason.into(),
        })
    };
    let events = w.ok("ops", rebirth("gap at seq 12"));
    assert_eq!(
        events,
        vec![DataEvent::RebirthRequested {
            device: a.id,
            edge_node: "edge-7".into(),
            gateway: "gw-1".into()
        }]
    );
    w.ok("ops", rebirth("gap at seq 40"));
    let log = anomalies_of(&w.state, &a.id).unwrap();
    let last = log.last_rebirth.clone().expect("rebirth recorded");
    assert_eq!(
        (log.rebirths, last.reason.as_str(), last.edge_node.as_str()),
        (2, "gap at seq 40", "edge-7")
    );
    assert_eq!(log.total(), 0, "a rebirth is not an anomaly report");
}

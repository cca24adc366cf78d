//! Rule tests: every bad-input class gets its typed error and leaves the state unchanged;
//! governance proposals execute exactly at the threshold.

mod support;

use chipledger_state::model::*;
use chipledger_state::smt::Smt;
use chipledger_state::store::{WriteSet, update_smt};
use chipledger_state::{Event, TxError};
use chipledger_types::cbor::{DecodeError, Encode};
use chipledger_types::keys::{SigningKey, TAG_TX_V1};
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, TxHash};
use support::World;

const ORGS: [(&str, Role); 4] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("vendor", Role::Publisher),
    ("audit", Role::Auditor),
];

fn key(i: u8) -> SigningKey {
    SigningKey::ed25519_from_seed(&[i; 32])
}

fn world() -> World {
    World::new(&ORGS, 3, 0)
}

impl World {
    fn root(&self) -> [u8; 32] {
        let mut smt = Smt::default();
        let all: WriteSet = self.state.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect();
        update_smt(&mut smt, &all);
        smt.root()
    }

    /// Apply and expect an error, checking that the state did not change.
    fn reject(&mut self, bytes: &[u8]) -> TxError {
        let before = self.state.clone();
        let err = self.apply(bytes).expect_err("should be rejected");
        assert_eq!(before, self.state);
        err
    }
}

fn statement() -> Payload {
    Payload::Statement {
        topic: "hello".into(),
        body: vec![1, 2, 3],
    }
}

#[test]
fn malformed_and_oversized_inputs_are_typed_errors() {
    let mut w = world();
    let good = w.tx("city", statement());
    assert!(matches!(
        w.reject(&good[..good.len() - 1]),
        TxError::Decode(DecodeError::UnexpectedEnd(_))
    ));
    assert!(matches!(w.reject(&[0xff; 10]), TxError::Decode(_)));
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        w.reject(&trailing),
        TxError::Decode(DecodeError::TrailingBytes(1))
    ));
    let huge = vec![0u8; chipledger_types::limits::MAX_TX_BYTES + 1];
    assert!(matches!(
        w.reject(&huge),
        TxError::Decode(DecodeError::InputTooLarge { .. })
    ));
    let big_body = Payload::Statement {
        topic: "x".into(),
        body: vec![0; chipledger_types::limits::MAX_STATEMENT_BYTES + 1],
    };
    let t = w.tx("city", big_body);
    assert!(matches!(w.reject(&t), TxError::Decode(DecodeError::TooLong { .. })));
    // The good one still applies afterwards (nothing was lost).
    assert!(w.apply(&good).is_ok());
}

#[test]
fn wrong_signature_replay_expiry_chain_unknowns() {
    let mut w = world();
    let t = w.tx("city", statement());
    let mut tx = SignedTx::from_bytes(&t).unwrap();
    tx.signature = key(9).sign(TAG_TX_V1, &tx.body.to_cbor());
    assert!(matches!(w.reject(&tx.to_cbor()), TxError::BadSignature(_)));
    w.apply(&t).unwrap();
    assert!(matches!(w.reject(&t), TxError::Replay { seq: 1, last: 1, .. }));

    let mut tx = SignedTx::from_bytes(&w.tx("city", statement())).unwrap();
    tx.body.expiry_height = 0;
    let tx = SignedTx::sign(tx.body, &w.keys["city"]);
    assert!(matches!(w.reject(&tx.to_cbor()), TxError::Expired { .. }));

    let mut tx = SignedTx::from_bytes(&w.tx("city", statement())).unwrap();
    tx.body.chain_id = "other".into();
    let tx = SignedTx::sign(tx.body, &w.keys["city"]);
    assert!(matches!(w.reject(&tx.to_cbor()), TxError::WrongChain { .. }));

    w.keys.insert("nobody".into(), key(77));
    let t = w.tx("nobody", statement());
    assert!(matches!(w.reject(&t), TxError::UnknownOrg(_)));

    let mut tx = SignedTx::from_bytes(&w.tx("city", statement())).unwrap();
    tx.body.key_id = key(78).public_key().id();
    let tx = SignedTx::sign(tx.body, &key(78));
    assert!(matches!(w.reject(&tx.to_cbor()), TxError::UnknownKey { .. }));

    let unknown = TxHash([5; 32]);
    let t = w.tx("city", Payload::Approve { proposal: unknown });
    assert!(matches!(w.reject(&t), TxError::UnknownProposal(_)));
}

#[test]
fn governance_executes_at_threshold_and_rotation_keeps_old_key_until_effective() {
    let mut w = world();
    let new_key = key(42);
    let spec = OrgSpec {
        name: "buyer".into(),
        roles: vec![Role::Consumer],
        keys: vec![new_key.public_key()],
    };
    let p = w.tx("city", Payload::Propose(GovAction::AddOrg(spec)));
    let id = TxHash::of(&p);
    w.apply(&p).unwrap();
    let root_before = w.root();
    let a = w.tx("maker", Payload::Approve { proposal: id });
    let ev = w.apply(&a).unwrap();
    assert!(!ev.iter().any(|e| matches!(e, Event::ProposalExecuted { .. })));
    assert_ne!(w.root(), root_before);
    let dup = w.tx("maker", Payload::Approve { proposal: id });
    assert!(matches!(w.reject(&dup), TxError::DuplicateApproval { .. }));
    let a = w.tx("vendor", Payload::Approve { proposal: id });
    let ev = w.apply(&a).unwrap();
    assert!(ev.iter().any(|e| matches!(e, Event::ProposalExecuted { .. })));
    assert!(get_org(&w.state, "buyer").unwrap().is_some());
    let late = w.tx("audit", Payload::Approve { proposal: id });
    assert!(matches!(w.reject(&late), TxError::ProposalExecuted(_)));

    // Rotate city's key effective a few blocks ahead: the old key works until then.
    let old = w.keys["city"].public_key().id();
    let effective = w.height + 5;
    let rot = GovAction::RotateOrgKey {
        org: "city".into(),
        old,
        new: key(43).public_key(),
        effective_height: effective,
    };
    let p = w.tx("city", Payload::Propose(rot));
    let id = TxHash::of(&p);
    w.apply(&p).unwrap();
    for org in ["maker", "vendor"] {
        let t = w.tx(org, Payload::Approve { proposal: id });
        w.apply(&t).unwrap();
    }
    assert!(w.height < effective);
    let t = w.tx("city", statement());
    w.apply(&t).unwrap();
    w.height = effective;
    let t = w.tx("city", statement());
    assert!(matches!(w.reject(&t), TxError::KeyNotActive { .. }));
    w.keys.insert("city".into(), key(43));
    let t = w.tx("city", statement());
    w.apply(&t).unwrap();
}

#[test]
fn removal_cannot_lock_governance_out() {
    let mut w = world();
    // Every org runs a validator: none can be removed.
    let p = w.tx("city", Payload::Propose(GovAction::RemoveOrg { org: "audit".into() }));
    assert!(matches!(w.reject(&p), TxError::CannotRemove { .. }));
    let p = w.tx(
        "city",
        Payload::Propose(GovAction::SetThreshold {
            kind: chipledger_types::tx::ThresholdKind::Governance,
            value: 9,
        }),
    );
    assert!(matches!(w.reject(&p), TxError::BadThreshold { value: 9, orgs: 4 }));
}

#[test]
fn sequence_gap_is_typed_and_fills_in_order() {
    let mut w = world();
    let first = w.tx_seq("city", 1, statement());
    let second = w.tx_seq("city", 2, statement());
    assert!(matches!(
        w.reject(&second),
        TxError::SeqGap {
            seq: 2,
            expected: 1,
            ..
        }
    ));
    w.apply(&first).unwrap();
    w.apply(&second).unwrap();
    assert!(matches!(w.reject(&first), TxError::Replay { seq: 1, last: 2, .. }));
}

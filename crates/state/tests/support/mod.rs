//! The rule tests' shared harness: a genesis state with named organisations (one Ed25519 key
//! each, one validator each), signed transactions with the next sequence number, and `apply`,
//! which checks that a rejected transaction wrote nothing. Each test file adds its own helpers
//! (`ok`, `reject`, `govern`, …) as further `impl World` blocks.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod chip;

use std::collections::BTreeMap;

use chipledger_state::model::get_seq;
use chipledger_state::store::{WriteSet, apply_writes};
use chipledger_state::{BlockContext, Event, TxError, VerifyAll, apply_tx, genesis_writes};
use chipledger_types::cbor::Encode;
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::SigningKey as OrgKey;
use chipledger_types::tx::{OrgSpec, Payload, Role, SignedTx, TxBody, TxHash};

/// The chain id of every rule test.
pub const CHAIN_ID: &str = "test";

/// An in-memory ledger state advanced one transaction per block.
pub struct World {
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub keys: BTreeMap<String, OrgKey>,
    pub height: u64,
    /// The timestamp of height 0; block `h` is stamped `t0_ms + 1000 h`.
    pub t0_ms: u64,
}

/// The transaction key of the `i`-th organisation.
pub fn org_key(i: usize) -> OrgKey {
    OrgKey::ed25519_from_seed(&[i as u8 + 1; 32])
}

impl World {
    /// A genesis with `orgs` (one role each) and a validator per organisation.
    pub fn new(orgs: &[(&str, Role)], governance_threshold: u32, t0_ms: u64) -> World {
        let specs = orgs
            .iter()
            .enumerate()
            .map(|(i, (n, r))| OrgSpec {
                name: n.to_string(),
                roles: vec![*r],
                keys: vec![org_key(i).public_key()],
            })
            .collect();
        let validators = orgs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| ValidatorSpec {
                name: format!("v-{n}"),
                org: n.to_string(),
                consensus_key: [i as u8 + 50; 32],
                note_key: OrgKey::ed25519_from_seed(&[i as u8 + 100; 32]).public_key(),
                p2p_address: format!("127.0.0.1:{}", 9000 + i),
                api_url: format!("http://127.0.0.1:{}", 7070 + i),
            })
            .collect();
        let g = Genesis {
            chain_id: CHAIN_ID.into(),
            timestamp_ms: t0_ms,
            orgs: specs,
            validators,
            policy: Policy {
                governance_threshold,
                proposal_ttl_blocks: 100,
            },
        };
        g.validate().unwrap();
        let mut state = BTreeMap::new();
        apply_writes(&mut state, &genesis_writes(&g));
        let keys = orgs
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.to_string(), org_key(i)))
            .collect();
        World {
            state,
            keys,
            height: 1,
            t0_ms,
        }
    }

    /// A transaction of `org` with its next sequence number.
    pub fn tx(&self, org: &str, payload: Payload) -> Vec<u8> {
        let seq = get_seq(&self.state, org).unwrap() + 1;
        self.tx_seq(org, seq, payload)
    }

    /// A transaction of `org` with sequence number `seq`.
    pub fn tx_seq(&self, org: &str, seq: u64, payload: Payload) -> Vec<u8> {
        let k = &self.keys[org];
        let body = TxBody {
            chain_id: CHAIN_ID.into(),
            org: org.into(),
            key_id: k.public_key().id(),
            seq,
            expiry_height: self.height + 10,
            payload,
        };
        SignedTx::sign(body, k).to_cbor()
    }

    /// Apply one transaction as its own block; a rejected one must leave no writes.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TxError> {
        let ctx = BlockContext {
            chain_id: CHAIN_ID,
            height: self.height,
            timestamp_ms: self.t0_ms + 1000 * self.height,
        };
        let mut writes = WriteSet::new();
        let r = apply_tx(&self.state, &mut writes, &ctx, &VerifyAll, bytes);
        if r.is_err() {
            assert!(writes.is_empty(), "a rejected transaction wrote state");
        }
        apply_writes(&mut self.state, &writes);
        self.height += 1;
        r
    }

    /// Sign and apply a transaction of `org` that must succeed; its hash and events.
    pub fn apply_ok(&mut self, org: &str, payload: Payload) -> (TxHash, Vec<Event>) {
        let t = self.tx(org, payload);
        let events = self.apply(&t).expect("should apply");
        (TxHash::of(&t), events)
    }

    /// Sign and apply a transaction of `org` that must be rejected, leaving the state unchanged.
    pub fn reject_unchanged(&mut self, org: &str, payload: Payload) -> TxError {
        let t = self.tx(org, payload);
        let before = self.state.clone();
        let err = self.apply(&t).expect_err("should be rejected");
        assert_eq!(before, self.state, "a rejected transaction changed the state");
        err
    }
}

//! The genesis configuration: who the organisations and validators are, and the policy.
//! Its SHA-256 is the parent of block 0, so every block commits to it.

use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits, decode_list, encode_list};
use crate::keys::PublicKey;
use crate::limits::{MAX_ORGS, MAX_TEXT_BYTES, MAX_VALIDATORS};
use crate::tx::{OrgSpec, check_name};

/// A validator: run by an organisation, with a consensus key (fixed for the network's life in
/// this version) and a checkpoint-cosigning key (rotatable by governance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSpec {
    pub name: String,
    pub org: String,
    /// Ed25519 public key used by the BFT engine for votes and p2p authentication.
    pub consensus_key: [u8; 32],
    /// Ed25519 key that signs checkpoints (C2SP signed notes).
    pub note_key: PublicKey,
    /// `host:port` of its p2p listener.
    pub p2p_address: String,
    /// Base URL of its HTTP API.
    pub api_url: String,
}

/// Thresholds and durations that governance can change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Distinct organisations whose approval executes a governance proposal.
    pub governance_threshold: u32,
    /// Blocks after which an unexecuted proposal expires.
    pub proposal_ttl_blocks: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Genesis {
    pub chain_id: String,
    pub timestamp_ms: u64,
    pub orgs: Vec<OrgSpec>,
    pub validators: Vec<ValidatorSpec>,
    pub policy: Policy,
}

impl Genesis {
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.to_cbor()).into()
    }

    /// C2SP checkpoint origin line for this network's log.
    pub fn log_origin(&self) -> String {
        alloc::format!("chipledger.example/{}", self.chain_id)
    }

    /// Largest number of faulty validators tolerated: f with n ≥ 3f + 1.
    pub fn max_faulty(&self) -> usize {
        self.validators.len().saturating_sub(1) / 3
    }

    /// Signatures a checkpoint needs to be final: 2f + 1 (n − f for n = 3f + 1).
    pub fn quorum(&self) -> usize {
        self.validators.len() - self.max_faulty()
    }
}

impl Encode for ValidatorSpec {
    fn encode(&self, e: &mut Encoder) {
        e.array(6).text(&self.name).text(&self.org).bytes(&self.consensus_key);
        self.note_key.encode(e);
        e.text(&self.p2p_address).text(&self.api_url);
    }
}

impl Decode for ValidatorSpec {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let v = ValidatorSpec {
            name: d.string()?,
            org: d.string()?,
            consensus_key: d.fixed()?,
            note_key: PublicKey::decode(d)?,
            p2p_address: d.string()?,
            api_url: d.string()?,
        };
        check_name(&v.name)?;
        check_name(&v.org)?;
        if v.p2p_address.len() > MAX_TEXT_BYTES || v.api_url.len() > MAX_TEXT_BYTES {
            return Err(DecodeError::Invalid {
                what: "validator",
                why: "address too long",
            });
        }
        d.end();
        Ok(v)
    }
}

impl Encode for Policy {
    fn encode(&self, e: &mut Encoder) {
        e.array(2)
            .uint(self.governance_threshold as u64)
            .uint(self.proposal_ttl_blocks);
    }
}

impl Decode for Policy {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let p = Policy {
            governance_threshold: d.u32()?,
            proposal_ttl_blocks: d.uint()?,
        };
        d.end();
        Ok(p)
    }
}

impl Encode for Genesis {
    fn encode(&self, e: &mut Encoder) {
        e.array(5).text(&self.chain_id).uint(self.timestamp_ms);
        encode_list(e, &self.orgs);
        encode_list(e, &self.validators);
        self.policy.encode(e);
    }
}

impl Decode for Genesis {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let g = Genesis {
            chain_id: d.string()?,
            timestamp_ms: d.uint()?,
            orgs: decode_list(d, MAX_ORGS)?,
            validators: decode_list(d, MAX_VALIDATORS)?,
            policy: Policy::decode(d)?,
        };
        d.end();
        g.validate()?;
        Ok(g)
    }
}

impl Genesis {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_cbor(bytes, Limits::STATE)
    }

    /// Structural checks: unique names, validators belong to known orgs, thresholds reachable.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let bad = |why| Err(DecodeError::Invalid { what: "genesis", why });
        check_name(&self.chain_id)?;
        if self.validators.is_empty() {
            return bad("needs at least one validator");
        }
        for (i, o) in self.orgs.iter().enumerate() {
            if self.orgs[..i].iter().any(|p| p.name == o.name) {
                return bad("duplicate organisation name");
            }
        }
        for (i, v) in self.validators.iter().enumerate() {
            if self.validators[..i]
                .iter()
                .any(|w| w.name == v.name || w.consensus_key == v.consensus_key)
            {
                return bad("duplicate validator name or consensus key");
            }
            if !self.orgs.iter().any(|o| o.name == v.org) {
                return bad("validator's organisation is not listed");
            }
            if !matches!(v.note_key, PublicKey::Ed25519(_)) {
                return bad("validator note keys must be Ed25519 (C2SP signed notes)");
            }
        }
        let t = self.policy.governance_threshold as usize;
        if t == 0 || t > self.orgs.len() {
            return bad("governance threshold must be between 1 and the number of organisations");
        }
        Ok(())
    }
}

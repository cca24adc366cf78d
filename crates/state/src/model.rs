//! The records the state machine keeps, their keys, and their canonical encodings.
//!
//! Key layout (all ASCII prefixes, so a key says what it holds):
//! `org/<name>` → [`OrgRecord`], `seq/<name>` → last sequence number (uint),
//! `validator/<name>` → [`ValidatorRecord`], `proposal/<hex hash>` → [`ProposalRecord`],
//! `policy` → [`Policy`], `index/orgs` and `index/validators` → name lists.

use chipledger_types::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits, decode_list, encode_list};
use chipledger_types::genesis::Policy;
use chipledger_types::keys::{KeyId, PublicKey};
use chipledger_types::tx::{GovAction, Role, TxHash};

use crate::error::TxError;
use crate::store::StateRead;

pub const KEY_POLICY: &[u8] = b"policy";
pub const KEY_ORG_INDEX: &[u8] = b"index/orgs";
pub const KEY_VALIDATOR_INDEX: &[u8] = b"index/validators";

pub fn org_key(name: &str) -> Vec<u8> {
    [b"org/".as_slice(), name.as_bytes()].concat()
}
pub fn seq_key(name: &str) -> Vec<u8> {
    [b"seq/".as_slice(), name.as_bytes()].concat()
}
pub fn validator_key(name: &str) -> Vec<u8> {
    [b"validator/".as_slice(), name.as_bytes()].concat()
}
pub fn proposal_key(id: &TxHash) -> Vec<u8> {
    [b"proposal/".as_slice(), hex::encode(id.0).as_bytes()].concat()
}

/// One key of an organisation with the heights it is valid for: [from, until).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    pub key: PublicKey,
    pub from_height: u64,
    pub until_height: Option<u64>,
}

impl KeyEntry {
    pub fn active_at(&self, height: u64) -> bool {
        self.from_height <= height && self.until_height.is_none_or(|u| height < u)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRecord {
    pub name: String,
    pub roles: Vec<Role>,
    pub keys: Vec<KeyEntry>,
    pub added_height: u64,
    pub removed_height: Option<u64>,
}

impl OrgRecord {
    pub fn key(&self, id: &KeyId) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.key.id() == *id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorRecord {
    pub name: String,
    pub org: String,
    pub index: u32,
    pub consensus_key: [u8; 32],
    /// Checkpoint-cosigning keys with the height each takes effect at, oldest first.
    pub note_keys: Vec<(PublicKey, u64)>,
}

impl ValidatorRecord {
    /// The cosigning key in force at `height`.
    pub fn note_key_at(&self, height: u64) -> Option<&PublicKey> {
        self.note_keys
            .iter()
            .rev()
            .find(|(_, from)| *from <= height)
            .map(|(k, _)| k)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalRecord {
    pub action: GovAction,
    pub proposer: String,
    pub created_height: u64,
    pub expires_height: u64,
    /// Organisations that approved, sorted.
    pub approvals: Vec<String>,
    pub executed_height: Option<u64>,
}

fn opt_uint(e: &mut Encoder, v: Option<u64>) {
    match v {
        Some(v) => e.uint(v),
        None => e.null(),
    };
}

fn dec_opt_uint(d: &mut Decoder<'_>) -> Result<Option<u64>, DecodeError> {
    if d.null()? { Ok(None) } else { d.uint().map(Some) }
}

impl Encode for KeyEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(3);
        self.key.encode(e);
        e.uint(self.from_height);
        opt_uint(e, self.until_height);
    }
}
impl Decode for KeyEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let k = KeyEntry {
            key: PublicKey::decode(d)?,
            from_height: d.uint()?,
            until_height: dec_opt_uint(d)?,
        };
        d.end();
        Ok(k)
    }
}

impl Encode for OrgRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(5).text(&self.name);
        encode_list(e, &self.roles);
        encode_list(e, &self.keys);
        e.uint(self.added_height);
        opt_uint(e, self.removed_height);
    }
}
impl Decode for OrgRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let r = OrgRecord {
            name: d.string()?,
            roles: decode_list(d, 64)?,
            keys: decode_list(d, 1024)?,
            added_height: d.uint()?,
            removed_height: dec_opt_uint(d)?,
        };
        d.end();
        Ok(r)
    }
}

struct NoteKey((PublicKey, u64));
impl Encode for NoteKey {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        self.0.0.encode(e);
        e.uint(self.0.1);
    }
}
impl Decode for NoteKey {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let v = NoteKey((PublicKey::decode(d)?, d.uint()?));
        d.end();
        Ok(v)
    }
}

impl Encode for ValidatorRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(5)
            .text(&self.name)
            .text(&self.org)
            .uint(self.index as u64)
            .bytes(&self.consensus_key);
        e.array(self.note_keys.len());
        for nk in &self.note_keys {
            NoteKey(*nk).encode(e);
        }
    }
}
impl Decode for ValidatorRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let (name, org, index, consensus_key) = (d.string()?, d.string()?, d.u32()?, d.fixed()?);
        let note_keys = decode_list::<NoteKey>(d, 1024)?.into_iter().map(|n| n.0).collect();
        d.end();
        Ok(ValidatorRecord {
            name,
            org,
            index,
            consensus_key,
            note_keys,
        })
    }
}

impl Encode for ProposalRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(6);
        self.action.encode(e);
        e.text(&self.proposer)
            .uint(self.created_height)
            .uint(self.expires_height);
        e.array(self.approvals.len());
        for a in &self.approvals {
            e.text(a);
        }
        opt_uint(e, self.executed_height);
    }
}
impl Decode for ProposalRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let action = GovAction::decode(d)?;
        let (proposer, created_height, expires_height) = (d.string()?, d.uint()?, d.uint()?);
        let approvals = decode_names(d)?;
        let executed_height = dec_opt_uint(d)?;
        d.end();
        Ok(ProposalRecord {
            action,
            proposer,
            created_height,
            expires_height,
            approvals,
            executed_height,
        })
    }
}

fn decode_names(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
    let n = d.array()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(d.string()?);
    }
    d.end();
    Ok(out)
}

/// A list of names (the org and validator indexes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameList(pub Vec<String>);
impl Encode for NameList {
    fn encode(&self, e: &mut Encoder) {
        e.array(self.0.len());
        for n in &self.0 {
            e.text(n);
        }
    }
}
impl Decode for NameList {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_names(d).map(NameList)
    }
}

/// A sequence number record.
pub struct Seq(pub u64);
impl Encode for Seq {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.0);
    }
}
impl Decode for Seq {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.uint().map(Seq)
    }
}

/// Policy wrapper so the genesis type can be stored.
pub struct StoredPolicy(pub Policy);
impl Encode for StoredPolicy {
    fn encode(&self, e: &mut Encoder) {
        self.0.encode(e);
    }
}
impl Decode for StoredPolicy {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Policy::decode(d).map(StoredPolicy)
    }
}

/// Read and decode a record; a record that fails to decode is corrupt state (a bug or disk
/// damage), reported as a typed error rather than a panic.
pub fn read<T: Decode>(s: &dyn StateRead, key: &[u8]) -> Result<Option<T>, TxError> {
    match s.get(key) {
        None => Ok(None),
        Some(bytes) => T::from_cbor(&bytes, Limits::STATE)
            .map(Some)
            .map_err(|e| TxError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                why: e.to_string(),
            }),
    }
}

/// Queries used by the node and API (read-only views over any state version).
pub fn get_org(s: &dyn StateRead, name: &str) -> Result<Option<OrgRecord>, TxError> {
    read(s, &org_key(name))
}
pub fn get_validator(s: &dyn StateRead, name: &str) -> Result<Option<ValidatorRecord>, TxError> {
    read(s, &validator_key(name))
}
pub fn get_proposal(s: &dyn StateRead, id: &TxHash) -> Result<Option<ProposalRecord>, TxError> {
    read(s, &proposal_key(id))
}
pub fn get_policy(s: &dyn StateRead) -> Result<Policy, TxError> {
    read::<StoredPolicy>(s, KEY_POLICY)?
        .map(|p| p.0)
        .ok_or(TxError::Corrupt {
            key: "policy".into(),
            why: "missing".into(),
        })
}
pub fn get_seq(s: &dyn StateRead, org: &str) -> Result<u64, TxError> {
    Ok(read::<Seq>(s, &seq_key(org))?.map_or(0, |s| s.0))
}
pub fn org_names(s: &dyn StateRead) -> Result<Vec<String>, TxError> {
    Ok(read::<NameList>(s, KEY_ORG_INDEX)?.unwrap_or_default().0)
}
pub fn validator_names(s: &dyn StateRead) -> Result<Vec<String>, TxError> {
    Ok(read::<NameList>(s, KEY_VALIDATOR_INDEX)?.unwrap_or_default().0)
}

//! The records the state machine keeps, their keys, and their canonical encodings.
//!
//! Key layout (all ASCII prefixes, so a key says what it holds):
//! `org/<name>` → [`OrgRecord`], `seq/<name>` → last sequence number (uint),
//! `validator/<name>` → [`ValidatorRecord`], `proposal/<hex hash>` → [`ProposalRecord`],
//! `policy` → [`Policy`], `index/orgs` and `index/validators` → name lists; the chip-identity
//! records and their keys are listed in their own section below.

use chipledger_device::key::DevicePublicKey;
use chipledger_types::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits, decode_list, encode_list};
use chipledger_types::device_tx::{CaId, DeviceId, ModelRange, RevokeReason};
use chipledger_types::genesis::Policy;
use chipledger_types::keys::{KeyId, PublicKey};
use chipledger_types::limits::{MAX_DEVICE_HISTORY, MAX_MODEL_RANGES};
use chipledger_types::tx::{GovAction, Role, TxHash};
use chipledger_types::validator_record::decode_names;

use crate::error::TxError;
use crate::store::StateRead;

pub const KEY_POLICY: &[u8] = b"policy";
pub const KEY_ORG_INDEX: &[u8] = b"index/orgs";
pub use chipledger_types::validator_record::{KEY_VALIDATOR_INDEX, NameList, ValidatorRecord, validator_key};

pub fn org_key(name: &str) -> Vec<u8> {
    [b"org/".as_slice(), name.as_bytes()].concat()
}
pub fn seq_key(name: &str) -> Vec<u8> {
    [b"seq/".as_slice(), name.as_bytes()].concat()
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

// ---- Chip identity (issue 3) -------------------------------------------------------------
//
// `mca/<hex ca id>` → [`CaRecord`]; `index/mcas/<org>` → that organisation's CA ids;
// `index/revoked-mcas` → every revoked CA id (the revoked list; records are never deleted);
// `device/<hex id>` → [`DeviceRecord`]; `device-history/<hex id>` → [`HistoryEntry`] list;
// `index/owner/<org>` → the ids of the devices an organisation owns, sorted.

pub const KEY_REVOKED_CA_INDEX: &[u8] = b"index/revoked-mcas";

/// The revoked-device list is sharded by the first byte of the device id
/// (`index/revoked-devices/<hh>`), so it stays complete and provable as one set (every shard's
/// value or absence is proven against the state root) while each record stays bounded.
pub const REVOKED_DEVICE_SHARDS: usize = 256;

pub fn revoked_devices_shard_key(shard: u8) -> Vec<u8> {
    format!("index/revoked-devices/{shard:02x}").into_bytes()
}

/// The revoked devices whose id starts with byte `shard`, in revocation order.
pub fn revoked_devices_in_shard(s: &dyn StateRead, shard: u8) -> Result<Vec<DeviceId>, TxError> {
    Ok(read::<IdList<DeviceId>>(s, &revoked_devices_shard_key(shard))?
        .unwrap_or_default()
        .0)
}

pub fn ca_key(id: &CaId) -> Vec<u8> {
    [b"mca/".as_slice(), id.to_string().as_bytes()].concat()
}
pub fn org_cas_key(org: &str) -> Vec<u8> {
    [b"index/mcas/".as_slice(), org.as_bytes()].concat()
}
pub fn device_key(id: &DeviceId) -> Vec<u8> {
    [b"device/".as_slice(), id.to_string().as_bytes()].concat()
}
pub fn device_history_key(id: &DeviceId) -> Vec<u8> {
    [b"device-history/".as_slice(), id.to_string().as_bytes()].concat()
}
pub fn owner_index_key(org: &str) -> Vec<u8> {
    [b"index/owner/".as_slice(), org.as_bytes()].concat()
}

/// A manufacturer CA registered by governance. Revocation sets `revoked`; it is never deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaRecord {
    pub id: CaId,
    pub org: String,
    pub cert_der: Vec<u8>,
    pub models: Vec<ModelRange>,
    pub added_height: u64,
    /// `(height, reason)` once revoked.
    pub revoked: Option<(u64, String)>,
}

/// A registered device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: DeviceId,
    /// The manufacturer organisation that registered it.
    pub manufacturer: String,
    /// The CA that endorsed its DeviceID certificate.
    pub ca: CaId,
    pub model: u32,
    pub deviceid_cert_der: Vec<u8>,
    pub owner: String,
    /// A pending transfer offer: the organisation that may accept it.
    pub offered_to: Option<String>,
    pub registered_height: u64,
    pub revoked: Option<DeviceRevocation>,
    /// The latest accepted evidence.
    pub attestation: Option<Attestation>,
    /// Hash of the last transaction that changed this record: the seed of the device's
    /// attestation challenge (see `device::attest_nonce`), so accepted evidence cannot be replayed.
    pub challenge_seed: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRevocation {
    pub height: u64,
    pub reason: RevokeReason,
    pub by: String,
}

/// What the latest verified evidence said about the device's firmware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attestation {
    pub height: u64,
    pub swname: String,
    pub swversion: String,
    /// The EAT's first `measurements` entry.
    pub measurement: Vec<u8>,
    /// The Alias certificate's DiceTcbInfo SHA-256 FWID (empty if it has none).
    pub alias_fwid_sha256: Vec<u8>,
    /// The Alias key of the verified chain (CA → DeviceID → Alias) that signed the evidence:
    /// the key of the attested firmware layer, which records at trust level 2 verify under.
    /// Encoded as its canonical SPKI DER ([`DevicePublicKey::to_spki_der`]); the next accepted
    /// evidence (`Attest` or `AttestInstall`) replaces it.
    pub alias_public_key: DevicePublicKey,
}

/// What happened to a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum HistoryKind {
    /// `from` = manufacturer, `to` = first owner.
    Registered = 1,
    /// `from` = previous owner, `to` = new owner.
    Transferred = 2,
    /// `from` = the revoking organisation, `to` = the owner.
    Revoked = 3,
}

/// One entry of a device's history: `(height, kind, from, to, device_proof)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub height: u64,
    pub kind: HistoryKind,
    pub from: String,
    pub to: String,
    /// The device itself proved its presence (a transfer accepted with a valid proof signed by
    /// its DeviceID key). Always false for other kinds.
    pub device_proof: bool,
}

/// A list of identifiers (a CA or device index), bounded by the state limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdList<T>(pub Vec<T>);

impl<T> Default for IdList<T> {
    fn default() -> Self {
        IdList(Vec::new())
    }
}

impl<T: Encode> Encode for IdList<T> {
    fn encode(&self, e: &mut Encoder) {
        encode_list(e, &self.0);
    }
}
impl<T: Decode> Decode for IdList<T> {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_list(d, Limits::STATE.array_items_max).map(IdList)
    }
}

/// A list of history entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History(pub Vec<HistoryEntry>);

impl Encode for History {
    fn encode(&self, e: &mut Encoder) {
        encode_list(e, &self.0);
    }
}
impl Decode for History {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_list(d, MAX_DEVICE_HISTORY).map(History)
    }
}

fn opt_text(e: &mut Encoder, v: &Option<String>) {
    match v {
        Some(v) => e.text(v),
        None => e.null(),
    };
}

fn dec_opt_text(d: &mut Decoder<'_>) -> Result<Option<String>, DecodeError> {
    if d.null()? { Ok(None) } else { d.string().map(Some) }
}

impl Encode for CaRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(6);
        self.id.encode(e);
        e.text(&self.org).bytes(&self.cert_der);
        encode_list(e, &self.models);
        e.uint(self.added_height);
        match &self.revoked {
            Some((height, reason)) => e.array(2).uint(*height).text(reason),
            None => e.null(),
        };
    }
}
impl Decode for CaRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let (id, org, cert_der) = (CaId::decode(d)?, d.string()?, d.bytes()?.to_vec());
        let (models, added_height) = (decode_list(d, MAX_MODEL_RANGES)?, d.uint()?);
        let revoked = if d.null()? {
            None
        } else {
            d.array_of(2)?;
            let r = (d.uint()?, d.string()?);
            d.end();
            Some(r)
        };
        d.end();
        Ok(CaRecord {
            id,
            org,
            cert_der,
            models,
            added_height,
            revoked,
        })
    }
}

impl Encode for DeviceRevocation {
    fn encode(&self, e: &mut Encoder) {
        e.array(3).uint(self.height);
        self.reason.encode(e);
        e.text(&self.by);
    }
}
impl Decode for DeviceRevocation {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let r = DeviceRevocation {
            height: d.uint()?,
            reason: RevokeReason::decode(d)?,
            by: d.string()?,
        };
        d.end();
        Ok(r)
    }
}

impl Encode for Attestation {
    fn encode(&self, e: &mut Encoder) {
        e.array(6)
            .uint(self.height)
            .text(&self.swname)
            .text(&self.swversion)
            .bytes(&self.measurement)
            .bytes(&self.alias_fwid_sha256)
            .bytes(&self.alias_public_key.to_spki_der());
    }
}
impl Decode for Attestation {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let a = Attestation {
            height: d.uint()?,
            swname: d.string()?,
            swversion: d.string()?,
            measurement: d.bytes()?.to_vec(),
            alias_fwid_sha256: d.bytes()?.to_vec(),
            alias_public_key: DevicePublicKey::from_spki_der(d.bytes()?).map_err(|_| DecodeError::Invalid {
                what: "attested Alias key",
                why: "not the canonical SPKI DER of a P-256 or Ed25519 key",
            })?,
        };
        d.end();
        Ok(a)
    }
}

impl Encode for DeviceRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(11);
        self.id.encode(e);
        e.text(&self.manufacturer);
        self.ca.encode(e);
        e.uint(self.model as u64)
            .bytes(&self.deviceid_cert_der)
            .text(&self.owner);
        opt_text(e, &self.offered_to);
        e.uint(self.registered_height);
        match &self.revoked {
            Some(r) => r.encode(e),
            None => {
                e.null();
            }
        }
        match &self.attestation {
            Some(a) => a.encode(e),
            None => {
                e.null();
            }
        }
        e.bytes(&self.challenge_seed);
    }
}
impl Decode for DeviceRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(11)?;
        let (id, manufacturer, ca) = (DeviceId::decode(d)?, d.string()?, CaId::decode(d)?);
        let (model, deviceid_cert_der, owner) = (d.u32()?, d.bytes()?.to_vec(), d.string()?);
        let (offered_to, registered_height) = (dec_opt_text(d)?, d.uint()?);
        let revoked = if d.null()? {
            None
        } else {
            Some(DeviceRevocation::decode(d)?)
        };
        let attestation = if d.null()? { None } else { Some(Attestation::decode(d)?) };
        let challenge_seed = d.fixed()?;
        d.end();
        Ok(DeviceRecord {
            id,
            manufacturer,
            ca,
            model,
            deviceid_cert_der,
            owner,
            offered_to,
            registered_height,
            revoked,
            attestation,
            challenge_seed,
        })
    }
}

impl Encode for HistoryEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(5)
            .uint(self.height)
            .uint(self.kind as u64)
            .text(&self.from)
            .text(&self.to)
            .bool(self.device_proof);
    }
}
impl Decode for HistoryEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let height = d.uint()?;
        let kind = match d.uint()? {
            1 => HistoryKind::Registered,
            2 => HistoryKind::Transferred,
            3 => HistoryKind::Revoked,
            value => {
                return Err(DecodeError::UnknownVariant {
                    what: "history kind",
                    value,
                });
            }
        };
        let entry = HistoryEntry {
            height,
            kind,
            from: d.string()?,
            to: d.string()?,
            device_proof: d.bool()?,
        };
        d.end();
        Ok(entry)
    }
}

/// A manufacturer CA by id (active or revoked).
pub fn get_ca(s: &dyn StateRead, id: &CaId) -> Result<Option<CaRecord>, TxError> {
    read(s, &ca_key(id))
}
/// The ids of an organisation's manufacturer CAs (active and revoked), in registration order.
pub fn org_ca_ids(s: &dyn StateRead, org: &str) -> Result<Vec<CaId>, TxError> {
    Ok(read::<IdList<CaId>>(s, &org_cas_key(org))?.unwrap_or_default().0)
}
/// The revoked list: every revoked manufacturer CA id, in revocation order.
pub fn revoked_ca_ids(s: &dyn StateRead) -> Result<Vec<CaId>, TxError> {
    Ok(read::<IdList<CaId>>(s, KEY_REVOKED_CA_INDEX)?.unwrap_or_default().0)
}
/// A device by id.
pub fn get_device(s: &dyn StateRead, id: &DeviceId) -> Result<Option<DeviceRecord>, TxError> {
    read(s, &device_key(id))
}
/// The devices an organisation owns, sorted by id (at most `MAX_DEVICES_PER_OWNER`).
pub fn devices_by_owner(s: &dyn StateRead, org: &str) -> Result<Vec<DeviceId>, TxError> {
    Ok(read::<IdList<DeviceId>>(s, &owner_index_key(org))?
        .unwrap_or_default()
        .0)
}
/// A device's history, oldest first (empty for an unknown device).
pub fn device_history(s: &dyn StateRead, id: &DeviceId) -> Result<Vec<HistoryEntry>, TxError> {
    Ok(read::<History>(s, &device_history_key(id))?.unwrap_or_default().0)
}

//! Authorized commands and access receipts (issue 6, vertical C), ledger side and wire formats.
//!
//! **Authorizations.** Any action on a device (a diagnostic read, a config change, a reboot, a
//! firmware push) is allowed by an owner's `Authorize` transaction: who (a [`Grantee`]), which
//! devices, which actions, until when (block time, unix ms), for what purpose. Its id is the
//! transaction hash; the record lives at [`authz_key`] and is what a device is shown, proven
//! under a cosigned checkpoint ([`AuthorizationProof`]). `RevokeAuthorization` ends it.
//!
//! **Commands.** A command request is a COSE_Sign1 by the grantee's key over the canonical CBOR
//! [`CommandRequest`] (`[TAG_COMMAND_REQUEST_V1, device, authorization, action, args,
//! client_token, issued_ms]`); its identity is [`request_hash`] (SHA-256 of the COSE bytes).
//! The grantee organisation records it on the ledger (`RecordCommand`) before sending it.
//! Over MQTT the request travels with its proof as a [`CommandMessage`] on
//! [`request_topic`]; the device answers on [`accepted_topic`] or [`rejected_topic`] with a
//! receipt echoing the client token (the AWS IoT reply-topic convention).
//!
//! **Receipts.** The device signs (COSE_Sign1, its DeviceID key) a [`CommandReceipt`]
//! (`[TAG_COMMAND_RECEIPT_V1, device, request_hash, authorization, action, outcome, result,
//! client_token, device_ms]`); anyone may commit it with `AccessReceipt`. The ledger keeps per
//! request a [`CommandRecord`] at [`command_key`] and per device a [`DeviceCommands`] summary at
//! [`device_commands_key`] (commands still waiting for a receipt).
//!
//! **Names.** Actions are 1..=[`MAX_ACTION_BYTES`] of `[a-z0-9._-]` ([`check_action`]): the
//! usual vocabulary is [`KNOWN_ACTIONS`], anything else is a custom action the device decides
//! on. Client tokens are 1..=[`MAX_CLIENT_TOKEN_BYTES`] of `[A-Za-z0-9._:-]`
//! ([`check_client_token`]), safe in JSON, logs and topics.
//!
//! Payload structs follow their tag positionally in the [`crate::tx::Payload`] array
//! ([`Fields`]); every list and string is bounded by a limit in [`crate::limits`]; lists are
//! sorted and unique so every value has one encoding. Encodings are frozen by the tests below.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::access_tx::Grantee;
use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits, decode_list, encode_list};
use crate::device_tx::{DeviceId, Fields};
use crate::firmware_tx::decode_bounded_text;
use crate::keys::PublicKey;
use crate::limits::*;
use crate::merkle::Hash;
use crate::state_proof::ProvenRecord;
use crate::tx::{Role, TxHash, check_name};

/// Domain-separation tag, the first element of a [`CommandRequest`] payload.
pub const TAG_COMMAND_REQUEST_V1: &str = "chipledger/command-request/v1";
/// Domain-separation tag, the first element of a [`CommandReceipt`] payload.
pub const TAG_COMMAND_RECEIPT_V1: &str = "chipledger/command-receipt/v1";
/// Domain-separation tag, the first element of an encoded [`AuthorizationProof`].
pub const TAG_AUTHORIZATION_PROOF_V1: &str = "chipledger/authorization-proof/v1";
/// Domain-separation tag, the first element of an encoded [`CommandMessage`].
pub const TAG_COMMAND_MESSAGE_V1: &str = "chipledger/command-message/v1";
/// The usual actions (any other [`check_action`] name is a custom action).
pub const KNOWN_ACTIONS: [&str; 4] = ["config", "diagnostic", "firmware", "reboot"];
/// MQTT topic prefix of commands: `chipledger/cmd/v1/<device hex>/request[/accepted|/rejected]`
/// — outside the data namespace `chipledger/v1/…`, so gateways never receive commands.
pub const COMMAND_TOPIC_PREFIX: &str = "chipledger/cmd/v1";
/// Largest encoded authorization proof or command message (checkpoint + two state proofs).
pub const MAX_AUTHORIZATION_PROOF_BYTES: usize = 64 * 1024;

/// Decoding bounds of an [`AuthorizationProof`] / [`CommandMessage`].
pub const PROOF_LIMITS: Limits = Limits {
    input_bytes_max: MAX_AUTHORIZATION_PROOF_BYTES,
    string_bytes_max: 32 * 1024,
    array_items_max: 256,
    depth_max: 6,
};
/// Decoding bounds of request and receipt payloads.
const PAYLOAD_LIMITS: Limits = Limits {
    input_bytes_max: MAX_COMMAND_REQUEST_BYTES,
    string_bytes_max: MAX_COMMAND_ARGS_BYTES,
    array_items_max: 16,
    depth_max: 2,
};

fn invalid(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Invalid { what, why }
}

/// Check an action name: 1..=[`MAX_ACTION_BYTES`] bytes of `[a-z0-9._-]`.
pub fn check_action(action: &str) -> Result<(), DecodeError> {
    let ok = action
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if action.is_empty() || action.len() > MAX_ACTION_BYTES || !ok {
        return Err(invalid("action", "must be 1-32 chars of a-z, 0-9, '.', '_', '-'"));
    }
    Ok(())
}

/// Check a client token: 1..=[`MAX_CLIENT_TOKEN_BYTES`] bytes of `[A-Za-z0-9._:-]`.
pub fn check_client_token(token: &str) -> Result<(), DecodeError> {
    let ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if token.is_empty() || token.len() > MAX_CLIENT_TOKEN_BYTES || !ok {
        return Err(invalid(
            "client token",
            "must be 1-64 chars of A-Z, a-z, 0-9, '.', '_', ':', '-'",
        ));
    }
    Ok(())
}

fn decode_action(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_action(&s)?;
    Ok(s)
}

fn decode_token(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_client_token(&s)?;
    Ok(s)
}

fn decode_org(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

fn decode_blob(d: &mut Decoder<'_>, what: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
    let b = d.bytes()?;
    if b.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: b.len() as u64,
            max,
        });
    }
    Ok(b.to_vec())
}

fn check_sorted_unique<T: Ord>(items: &[T], what: &'static str) -> Result<(), DecodeError> {
    if items.windows(2).all(|w| w[0] < w[1]) {
        Ok(())
    } else {
        Err(invalid(what, "must be sorted with no entry twice"))
    }
}

fn decode_actions(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
    let n = d.array()?;
    if n == 0 || n > MAX_AUTHZ_ACTIONS {
        return Err(DecodeError::TooLong {
            what: "authorized actions (1 or more)",
            len: n as u64,
            max: MAX_AUTHZ_ACTIONS,
        });
    }
    let actions = (0..n).map(|_| decode_action(d)).collect::<Result<Vec<_>, _>>()?;
    d.end();
    check_sorted_unique(&actions, "authorized actions")?;
    Ok(actions)
}

fn encode_texts(e: &mut Encoder, items: &[String]) {
    e.array(items.len());
    for s in items {
        e.text(s);
    }
}

fn decode_devices(d: &mut Decoder<'_>) -> Result<Vec<DeviceId>, DecodeError> {
    let devices: Vec<DeviceId> = decode_list(d, MAX_AUTHZ_DEVICES)?;
    if devices.is_empty() {
        return Err(invalid("authorized devices", "at least one device is needed"));
    }
    check_sorted_unique(&devices, "authorized devices")?;
    Ok(devices)
}

fn encode_opt_hash(e: &mut Encoder, v: &Option<TxHash>) {
    match v {
        Some(h) => e.bytes(&h.0),
        None => e.null(),
    };
}

fn decode_opt_hash(d: &mut Decoder<'_>) -> Result<Option<TxHash>, DecodeError> {
    if d.null()? {
        Ok(None)
    } else {
        Ok(Some(TxHash(d.fixed()?)))
    }
}

fn expect_tag(d: &mut Decoder<'_>, tag: &'static str, what: &'static str) -> Result<(), DecodeError> {
    if d.text()? != tag {
        return Err(invalid(what, "the format tag is not the expected one"));
    }
    Ok(())
}

// ---- payloads --------------------------------------------------------------------------------

/// The owner authorizes a grantee to run `actions` on `devices` until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorize {
    pub grantee: Grantee,
    /// Sorted, unique, 1..=[`MAX_AUTHZ_DEVICES`].
    pub devices: Vec<DeviceId>,
    /// Sorted, unique, 1..=[`MAX_AUTHZ_ACTIONS`], each [`check_action`].
    pub actions: Vec<String>,
    /// Unix ms (block time); must be in the future when applied.
    pub expires_ms: u64,
    pub purpose: String,
}

impl Fields for Authorize {
    const ARITY: usize = 5;
    fn encode_fields(&self, e: &mut Encoder) {
        self.grantee.encode(e);
        encode_list(e, &self.devices);
        encode_texts(e, &self.actions);
        e.uint(self.expires_ms).text(&self.purpose);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Authorize {
            grantee: Grantee::decode(d)?,
            devices: decode_devices(d)?,
            actions: decode_actions(d)?,
            expires_ms: d.uint()?,
            purpose: decode_bounded_text(d, "purpose", MAX_AUTHZ_PURPOSE_BYTES)?,
        })
    }
}

/// The owner ends an authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeAuthorization {
    pub authorization: TxHash,
}

impl Fields for RevokeAuthorization {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.authorization.0);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RevokeAuthorization {
            authorization: TxHash(d.fixed()?),
        })
    }
}

/// The grantee organisation records a command before sending it to the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordCommand {
    pub authorization: TxHash,
    pub device: DeviceId,
    /// [`request_hash`] of the signed request.
    pub request_hash: Hash,
    pub action: String,
}

impl Fields for RecordCommand {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.authorization.0);
        self.device.encode(e);
        e.bytes(&self.request_hash).text(&self.action);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RecordCommand {
            authorization: TxHash(d.fixed()?),
            device: DeviceId::decode(d)?,
            request_hash: d.fixed()?,
            action: decode_action(d)?,
        })
    }
}

/// Anyone commits a device's signed receipt (COSE_Sign1 over a [`CommandReceipt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessReceipt {
    pub receipt: Vec<u8>,
}

impl Fields for AccessReceipt {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.receipt);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let receipt = decode_blob(d, "access receipt", MAX_RECEIPT_BYTES)?;
        if receipt.is_empty() {
            return Err(invalid("access receipt", "is empty"));
        }
        Ok(AccessReceipt { receipt })
    }
}

// ---- state records ---------------------------------------------------------------------------

/// `authz/<tx hex>` → [`AuthorizationRecord`].
pub fn authz_key(id: &TxHash) -> Vec<u8> {
    format!("authz/{id}").into_bytes()
}
/// `cmd/<request hash hex>` → [`CommandRecord`].
pub fn command_key(request_hash: &Hash) -> Vec<u8> {
    format!("cmd/{}", hex::encode(request_hash)).into_bytes()
}
/// `cmd/device/<device hex>` → [`DeviceCommands`].
pub fn device_commands_key(device: &DeviceId) -> Vec<u8> {
    format!("cmd/device/{device}").into_bytes()
}
/// `org/<name>`: the organisation record a device reads a grantee organisation's keys from
/// ([`OrgKeys`]); the state crate's `model::org_key`.
pub fn org_record_key(name: &str) -> Vec<u8> {
    format!("org/{name}").into_bytes()
}

/// When an authorization was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthzRevocation {
    pub height: u64,
    pub timestamp_ms: u64,
}

/// An authorization as the ledger keeps it (and a device verifies it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRecord {
    /// The `Authorize` transaction hash.
    pub id: TxHash,
    /// The owner organisation that authorized.
    pub owner: String,
    pub grantee: Grantee,
    pub devices: Vec<DeviceId>,
    pub actions: Vec<String>,
    pub expires_ms: u64,
    pub purpose: String,
    pub created_height: u64,
    pub created_ms: u64,
    pub revoked: Option<AuthzRevocation>,
}

impl AuthorizationRecord {
    const ARITY: usize = 10;

    /// Does it name `device` and `action`?
    pub fn covers(&self, device: &DeviceId, action: &str) -> bool {
        self.devices.binary_search(device).is_ok() && self.actions.iter().any(|a| a == action)
    }

    /// Not revoked and not expired at `now_ms`.
    pub fn active_at(&self, now_ms: u64) -> bool {
        self.revoked.is_none() && now_ms < self.expires_ms
    }
}

impl Encode for AuthorizationRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY).bytes(&self.id.0).text(&self.owner);
        self.grantee.encode(e);
        encode_list(e, &self.devices);
        encode_texts(e, &self.actions);
        e.uint(self.expires_ms)
            .text(&self.purpose)
            .uint(self.created_height)
            .uint(self.created_ms);
        match &self.revoked {
            Some(r) => e.array(2).uint(r.height).uint(r.timestamp_ms),
            None => e.null(),
        };
    }
}

impl Decode for AuthorizationRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = AuthorizationRecord {
            id: TxHash(d.fixed()?),
            owner: decode_org(d)?,
            grantee: Grantee::decode(d)?,
            devices: decode_devices(d)?,
            actions: decode_actions(d)?,
            expires_ms: d.uint()?,
            purpose: decode_bounded_text(d, "purpose", MAX_AUTHZ_PURPOSE_BYTES)?,
            created_height: d.uint()?,
            created_ms: d.uint()?,
            revoked: if d.null()? {
                None
            } else {
                d.array_of(2)?;
                let r = AuthzRevocation {
                    height: d.uint()?,
                    timestamp_ms: d.uint()?,
                };
                d.end();
                Some(r)
            },
        };
        d.end();
        Ok(r)
    }
}

/// Why a committed receipt was flagged (stored, not refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ReceiptAnomaly {
    /// The receipt names no authorization the ledger knows.
    NoAuthorization = 1,
    /// The authorization was revoked before the receipt was committed.
    AuthorizationRevoked = 2,
    /// The authorization had expired (block time) when the receipt was committed.
    AuthorizationExpired = 3,
    /// The authorization does not name this device and action.
    NotCovered = 4,
    /// No `RecordCommand` announced the request.
    NoRecordedCommand = 5,
    /// The receipt disagrees with the recorded command (authorization, device or action).
    CommandMismatch = 6,
}

impl ReceiptAnomaly {
    pub const ALL: [ReceiptAnomaly; 6] = [
        ReceiptAnomaly::NoAuthorization,
        ReceiptAnomaly::AuthorizationRevoked,
        ReceiptAnomaly::AuthorizationExpired,
        ReceiptAnomaly::NotCovered,
        ReceiptAnomaly::NoRecordedCommand,
        ReceiptAnomaly::CommandMismatch,
    ];
    /// The stable name used by the API, the CLI and audit summaries.
    pub fn name(self) -> &'static str {
        match self {
            ReceiptAnomaly::NoAuthorization => "no_authorization",
            ReceiptAnomaly::AuthorizationRevoked => "authorization_revoked",
            ReceiptAnomaly::AuthorizationExpired => "authorization_expired",
            ReceiptAnomaly::NotCovered => "not_covered",
            ReceiptAnomaly::NoRecordedCommand => "no_recorded_command",
            ReceiptAnomaly::CommandMismatch => "command_mismatch",
        }
    }
}

impl Encode for ReceiptAnomaly {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for ReceiptAnomaly {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        ReceiptAnomaly::ALL
            .into_iter()
            .find(|k| *k as u64 == v)
            .ok_or(DecodeError::UnknownVariant {
                what: "receipt anomaly",
                value: v,
            })
    }
}

/// A committed receipt, as its command record references it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRef {
    /// The `AccessReceipt` transaction.
    pub tx: TxHash,
    pub height: u64,
    pub outcome: Outcome,
    /// The device's clock when it answered (self-reported).
    pub device_ms: u64,
    pub anomaly: Option<ReceiptAnomaly>,
}

impl Encode for ReceiptRef {
    fn encode(&self, e: &mut Encoder) {
        e.array(5).bytes(&self.tx.0).uint(self.height);
        self.outcome.encode(e);
        e.uint(self.device_ms);
        match &self.anomaly {
            Some(a) => a.encode(e),
            None => {
                e.null();
            }
        }
    }
}

impl Decode for ReceiptRef {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let r = ReceiptRef {
            tx: TxHash(d.fixed()?),
            height: d.uint()?,
            outcome: Outcome::decode(d)?,
            device_ms: d.uint()?,
            anomaly: if d.null()? {
                None
            } else {
                Some(ReceiptAnomaly::decode(d)?)
            },
        };
        d.end();
        Ok(r)
    }
}

/// One command request as the ledger knows it: announced by `RecordCommand` and/or answered by
/// a committed receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRecord {
    pub request_hash: Hash,
    pub authorization: TxHash,
    pub device: DeviceId,
    pub action: String,
    /// The grantee organisation that recorded it (`None`: only a receipt is known).
    pub org: Option<String>,
    /// The `RecordCommand` transaction (`None`: only a receipt is known).
    pub command_tx: Option<TxHash>,
    /// Height and block time of the first transaction that named the request.
    pub height: u64,
    pub timestamp_ms: u64,
    pub receipt: Option<ReceiptRef>,
}

impl CommandRecord {
    const ARITY: usize = 9;
}

impl Encode for CommandRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY)
            .bytes(&self.request_hash)
            .bytes(&self.authorization.0);
        self.device.encode(e);
        e.text(&self.action);
        match &self.org {
            Some(o) => e.text(o),
            None => e.null(),
        };
        encode_opt_hash(e, &self.command_tx);
        e.uint(self.height).uint(self.timestamp_ms);
        match &self.receipt {
            Some(r) => r.encode(e),
            None => {
                e.null();
            }
        }
    }
}

impl Decode for CommandRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = CommandRecord {
            request_hash: d.fixed()?,
            authorization: TxHash(d.fixed()?),
            device: DeviceId::decode(d)?,
            action: decode_action(d)?,
            org: if d.null()? { None } else { Some(decode_org(d)?) },
            command_tx: decode_opt_hash(d)?,
            height: d.uint()?,
            timestamp_ms: d.uint()?,
            receipt: if d.null()? { None } else { Some(ReceiptRef::decode(d)?) },
        };
        d.end();
        Ok(r)
    }
}

/// A recorded command still waiting for its receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingCommand {
    pub request_hash: Hash,
    pub height: u64,
}

impl Encode for PendingCommand {
    fn encode(&self, e: &mut Encoder) {
        e.array(2).bytes(&self.request_hash).uint(self.height);
    }
}

impl Decode for PendingCommand {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let p = PendingCommand {
            request_hash: d.fixed()?,
            height: d.uint()?,
        };
        d.end();
        Ok(p)
    }
}

/// A device's command totals and the recorded commands still without a receipt (oldest first,
/// the newest [`MAX_PENDING_COMMANDS_PER_DEVICE`]; an older one leaves the list — counted in
/// `pending_dropped`, still in its `cmd/<hash>` record and the audit trail — so a grantee that
/// never answers cannot block the device's later commands).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceCommands {
    pub commands: u64,
    pub receipts: u64,
    /// Receipts stored with an anomaly flag.
    pub anomalies: u64,
    pub pending: Vec<PendingCommand>,
    /// Commands that left `pending` unanswered because it was full.
    pub pending_dropped: u64,
}

impl Encode for DeviceCommands {
    fn encode(&self, e: &mut Encoder) {
        e.array(5).uint(self.commands).uint(self.receipts).uint(self.anomalies);
        encode_list(e, &self.pending);
        e.uint(self.pending_dropped);
    }
}

impl Decode for DeviceCommands {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let r = DeviceCommands {
            commands: d.uint()?,
            receipts: d.uint()?,
            anomalies: d.uint()?,
            pending: decode_list(d, MAX_PENDING_COMMANDS_PER_DEVICE)?,
            pending_dropped: d.uint()?,
        };
        d.end();
        Ok(r)
    }
}

/// One key of an organisation with the heights it is valid for, `[from, until)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgKey {
    pub key: PublicKey,
    pub from_height: u64,
    pub until_height: Option<u64>,
}

impl OrgKey {
    pub fn active_at(&self, height: u64) -> bool {
        self.from_height <= height && self.until_height.is_none_or(|u| height < u)
    }
}

impl Decode for OrgKey {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        let k = OrgKey {
            key: PublicKey::decode(d)?,
            from_height: d.uint()?,
            until_height: if d.null()? { None } else { Some(d.uint()?) },
        };
        d.end();
        Ok(k)
    }
}

/// The parts of an organisation record (`org/<name>`, written by the state machine) a device
/// needs to check a grantee organisation's signature: `[name, roles, keys, added_height,
/// removed_height]`. Decode-only; the state crate's tests check it reads the real encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgKeys {
    pub name: String,
    pub roles: Vec<Role>,
    pub keys: Vec<OrgKey>,
    pub removed_height: Option<u64>,
}

impl OrgKeys {
    /// The keys active at `height` (none once the organisation is removed).
    pub fn active_keys(&self, height: u64) -> impl Iterator<Item = &PublicKey> {
        let live = self.removed_height.is_none_or(|r| height < r);
        self.keys
            .iter()
            .filter(move |k| live && k.active_at(height))
            .map(|k| &k.key)
    }
}

impl Decode for OrgKeys {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let name = decode_org(d)?;
        let roles = decode_list(d, MAX_ROLES)?;
        let keys = decode_list(d, 1024)?;
        let _added_height = d.uint()?;
        let removed_height = if d.null()? { None } else { Some(d.uint()?) };
        d.end();
        Ok(OrgKeys {
            name,
            roles,
            keys,
            removed_height,
        })
    }
}

// ---- wire formats: request, receipt, proof, message --------------------------------------------

/// SHA-256 of a signed request's COSE_Sign1 bytes: its identity on the ledger and in receipts.
pub fn request_hash(request_cose: &[u8]) -> Hash {
    Sha256::digest(request_cose).into()
}

/// What a grantee asks a device to do (the payload of the request COSE_Sign1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandRequest {
    pub device: DeviceId,
    pub authorization: TxHash,
    pub action: String,
    pub args: Vec<u8>,
    pub client_token: String,
    /// The sender's clock (unix ms).
    pub issued_ms: u64,
}

impl CommandRequest {
    /// `[TAG_COMMAND_REQUEST_V1, device, authorization, action, args, client_token, issued_ms]`.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(7).text(TAG_COMMAND_REQUEST_V1);
        self.device.encode(&mut e);
        e.bytes(&self.authorization.0)
            .text(&self.action)
            .bytes(&self.args)
            .text(&self.client_token)
            .uint(self.issued_ms);
        e.into_bytes()
    }

    /// Decode and check a payload made by [`CommandRequest::to_payload`].
    pub fn from_payload(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, PAYLOAD_LIMITS)?;
        d.array_of(7)?;
        expect_tag(&mut d, TAG_COMMAND_REQUEST_V1, "command request")?;
        let r = CommandRequest {
            device: DeviceId::decode(&mut d)?,
            authorization: TxHash(d.fixed()?),
            action: decode_action(&mut d)?,
            args: decode_blob(&mut d, "command args", MAX_COMMAND_ARGS_BYTES)?,
            client_token: decode_token(&mut d)?,
            issued_ms: d.uint()?,
        };
        d.end();
        d.finish()?;
        Ok(r)
    }
}

/// What the device did with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Refused, with the device's typed rejection code (`wrong_owner`, `expired`, …).
    Rejected(String),
}

impl Outcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, Outcome::Accepted)
    }
    /// `accepted`, or the rejection code.
    pub fn code(&self) -> &str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Rejected(c) => c,
        }
    }
}

impl Encode for Outcome {
    /// `[1]` accepted, `[2, code]` rejected.
    fn encode(&self, e: &mut Encoder) {
        match self {
            Outcome::Accepted => e.array(1).uint(1),
            Outcome::Rejected(code) => e.array(2).uint(2).text(code),
        };
    }
}

impl Decode for Outcome {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let n = d.array()?;
        let (arity, o) = match d.uint()? {
            1 => (1, Outcome::Accepted),
            2 => {
                let code = decode_bounded_text(d, "rejection code", MAX_REJECT_CODE_BYTES)?;
                if code.is_empty() {
                    return Err(invalid("rejection code", "is empty"));
                }
                (2, Outcome::Rejected(code))
            }
            value => return Err(DecodeError::UnknownVariant { what: "outcome", value }),
        };
        if n != arity {
            return Err(DecodeError::WrongArity {
                expected: arity,
                found: n,
            });
        }
        d.end();
        Ok(o)
    }
}

/// What a device signs after handling a request (the payload of the receipt COSE_Sign1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandReceipt {
    pub device: DeviceId,
    pub request_hash: Hash,
    /// As the request named it (all zero if the request could not be read).
    pub authorization: TxHash,
    /// As the request named it (`unknown` if the request could not be read).
    pub action: String,
    pub outcome: Outcome,
    pub result: Vec<u8>,
    /// Echoed from the request (`unknown` if the request could not be read).
    pub client_token: String,
    pub device_ms: u64,
}

impl CommandReceipt {
    /// `[TAG_COMMAND_RECEIPT_V1, device, request_hash, authorization, action, outcome, result,
    /// client_token, device_ms]`.
    pub fn to_payload(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(9).text(TAG_COMMAND_RECEIPT_V1);
        self.device.encode(&mut e);
        e.bytes(&self.request_hash)
            .bytes(&self.authorization.0)
            .text(&self.action);
        self.outcome.encode(&mut e);
        e.bytes(&self.result).text(&self.client_token).uint(self.device_ms);
        e.into_bytes()
    }

    /// Decode and check a payload made by [`CommandReceipt::to_payload`].
    pub fn from_payload(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut d = Decoder::new(bytes, PAYLOAD_LIMITS)?;
        d.array_of(9)?;
        expect_tag(&mut d, TAG_COMMAND_RECEIPT_V1, "command receipt")?;
        let r = CommandReceipt {
            device: DeviceId::decode(&mut d)?,
            request_hash: d.fixed()?,
            authorization: TxHash(d.fixed()?),
            action: decode_action(&mut d)?,
            outcome: Outcome::decode(&mut d)?,
            result: decode_blob(&mut d, "command result", MAX_COMMAND_RESULT_BYTES)?,
            client_token: decode_token(&mut d)?,
            device_ms: d.uint()?,
        };
        d.end();
        d.finish()?;
        Ok(r)
    }
}

/// What a device is shown with a request: a cosigned checkpoint note, the authorization record
/// proven under its state root, and — for an organisation grantee — the organisation record
/// (its keys) proven under the same root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationProof {
    /// The checkpoint as a C2SP signed note (body and cosignature lines).
    pub checkpoint: String,
    /// `authz/<id>`.
    pub authorization: ProvenRecord,
    /// `org/<grantee org>` (absent for a key grantee).
    pub grantee_org: Option<ProvenRecord>,
}

impl Encode for AuthorizationProof {
    /// `[TAG_AUTHORIZATION_PROOF_V1, checkpoint, authorization, grantee_org / null]`.
    fn encode(&self, e: &mut Encoder) {
        e.array(4).text(TAG_AUTHORIZATION_PROOF_V1).text(&self.checkpoint);
        self.authorization.encode(e);
        match &self.grantee_org {
            Some(p) => p.encode(e),
            None => {
                e.null();
            }
        }
    }
}

impl Decode for AuthorizationProof {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(4)?;
        expect_tag(d, TAG_AUTHORIZATION_PROOF_V1, "authorization proof")?;
        let p = AuthorizationProof {
            checkpoint: d.string()?,
            authorization: ProvenRecord::decode(d)?,
            grantee_org: if d.null()? {
                None
            } else {
                Some(ProvenRecord::decode(d)?)
            },
        };
        d.end();
        Ok(p)
    }
}

/// An MQTT command message: the signed request and its authorization proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandMessage {
    pub request: Vec<u8>,
    pub proof: AuthorizationProof,
}

impl Encode for CommandMessage {
    /// `[TAG_COMMAND_MESSAGE_V1, request COSE_Sign1, proof]`.
    fn encode(&self, e: &mut Encoder) {
        e.array(3).text(TAG_COMMAND_MESSAGE_V1).bytes(&self.request);
        self.proof.encode(e);
    }
}

impl Decode for CommandMessage {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(3)?;
        expect_tag(d, TAG_COMMAND_MESSAGE_V1, "command message")?;
        let m = CommandMessage {
            request: decode_blob(d, "command request", MAX_COMMAND_REQUEST_BYTES)?,
            proof: AuthorizationProof::decode(d)?,
        };
        d.end();
        Ok(m)
    }
}

// ---- MQTT topics -----------------------------------------------------------------------------

/// Which command topic a message is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandTopic {
    /// `…/request`: grantee → device.
    Request,
    /// `…/request/accepted`: device → grantee, an accepted receipt.
    Accepted,
    /// `…/request/rejected`: device → grantee, a rejected receipt.
    Rejected,
}

/// `chipledger/cmd/v1/<device hex>/request`.
pub fn request_topic(device: &DeviceId) -> String {
    format!("{COMMAND_TOPIC_PREFIX}/{device}/request")
}
/// `chipledger/cmd/v1/<device hex>/request/accepted`.
pub fn accepted_topic(device: &DeviceId) -> String {
    format!("{}/accepted", request_topic(device))
}
/// `chipledger/cmd/v1/<device hex>/request/rejected`.
pub fn rejected_topic(device: &DeviceId) -> String {
    format!("{}/rejected", request_topic(device))
}
/// The reply topic for an outcome.
pub fn reply_topic(device: &DeviceId, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Accepted => accepted_topic(device),
        Outcome::Rejected(_) => rejected_topic(device),
    }
}

/// The device and kind of a command topic; `None` for any other topic.
pub fn parse_command_topic(topic: &str) -> Option<(DeviceId, CommandTopic)> {
    let rest = topic.strip_prefix(COMMAND_TOPIC_PREFIX)?.strip_prefix('/')?;
    let (device, kind) = rest.split_once('/')?;
    let id: [u8; 20] = hex::decode(device).ok()?.try_into().ok()?;
    if hex::encode(id) != device {
        return None;
    }
    let kind = match kind {
        "request" => CommandTopic::Request,
        "request/accepted" => CommandTopic::Accepted,
        "request/rejected" => CommandTopic::Rejected,
        _ => return None,
    };
    Some((DeviceId(id), kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tx::Payload;
    use alloc::vec;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    fn rep(b: u8, n: usize) -> String {
        hex::encode(vec![b; n])
    }

    /// A CBOR text string (shorter than 256 bytes).
    fn t(s: &str) -> String {
        match s.len() {
            n @ 0..24 => format!("{:02x}{}", 0x60 + n, hex::encode(s)),
            n => format!("78{n:02x}{}", hex::encode(s)),
        }
    }

    fn round_trip(p: Payload) -> Vec<u8> {
        let bytes = p.to_cbor();
        assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut at {cut}");
        }
        bytes
    }

    fn authorize() -> Authorize {
        Authorize {
            grantee: Grantee::Org("tech".into()),
            devices: vec![DeviceId([1; 20]), DeviceId([2; 20])],
            actions: vec!["diagnostic".into(), "reboot".into()],
            expires_ms: 1000,
            purpose: "fix".into(),
        }
    }

    #[test]
    fn frozen_payload_encodings() {
        // [60, [1, "tech"], [h'01…', h'02…'], ["diagnostic", "reboot"], 1000, "fix"]
        let want = format!(
            "86 183c 82 01 {} 82 54{} 54{} 82 {} {} 1903e8 {}",
            t("tech"),
            rep(1, 20),
            rep(2, 20),
            t("diagnostic"),
            t("reboot"),
            t("fix")
        );
        assert_eq!(round_trip(Payload::Authorize(authorize())), h(&want));
        // [61, h'07…']
        let r = Payload::RevokeAuthorization(RevokeAuthorization {
            authorization: TxHash([7; 32]),
        });
        assert_eq!(round_trip(r), h(&format!("82 183d 5820{}", rep(7, 32))));
        // [62, h'07…', h'01…', h'09…', "diagnostic"]
        let c = Payload::RecordCommand(RecordCommand {
            authorization: TxHash([7; 32]),
            device: DeviceId([1; 20]),
            request_hash: [9; 32],
            action: "diagnostic".into(),
        });
        let want = format!(
            "85 183e 5820{} 54{} 5820{} {}",
            rep(7, 32),
            rep(1, 20),
            rep(9, 32),
            t("diagnostic")
        );
        assert_eq!(round_trip(c), h(&want));
        // [63, h'd2 84']
        let a = Payload::AccessReceipt(AccessReceipt {
            receipt: vec![0xd2, 0x84],
        });
        assert_eq!(round_trip(a), h("82 183f 42 d284"));
    }

    #[test]
    fn frozen_records_and_wire_formats() {
        let rec = AuthorizationRecord {
            id: TxHash([3; 32]),
            owner: "city".into(),
            grantee: Grantee::Org("tech".into()),
            devices: vec![DeviceId([1; 20])],
            actions: vec!["diagnostic".into()],
            expires_ms: 1000,
            purpose: "fix".into(),
            created_height: 4,
            created_ms: 500,
            revoked: Some(AuthzRevocation {
                height: 5,
                timestamp_ms: 600,
            }),
        };
        let want = format!(
            "8a 5820{} {} 82 01 {} 81 54{} 81 {} 1903e8 {} 04 1901f4 82 05 190258",
            rep(3, 32),
            t("city"),
            t("tech"),
            rep(1, 20),
            t("diagnostic"),
            t("fix")
        );
        assert_eq!(rec.to_cbor(), h(&want));
        assert_eq!(AuthorizationRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), rec);
        assert!(rec.covers(&DeviceId([1; 20]), "diagnostic"));
        assert!(!rec.covers(&DeviceId([1; 20]), "reboot"));
        assert!(!rec.covers(&DeviceId([2; 20]), "diagnostic"));

        let req = CommandRequest {
            device: DeviceId([1; 20]),
            authorization: TxHash([3; 32]),
            action: "diagnostic".into(),
            args: vec![0xaa],
            client_token: "tok-1".into(),
            issued_ms: 10,
        };
        let want = format!(
            "87 {} 54{} 5820{} {} 41aa {} 0a",
            t(TAG_COMMAND_REQUEST_V1),
            rep(1, 20),
            rep(3, 32),
            t("diagnostic"),
            t("tok-1")
        );
        assert_eq!(req.to_payload(), h(&want));
        assert_eq!(CommandRequest::from_payload(&h(&want)).unwrap(), req);

        let receipt = CommandReceipt {
            device: DeviceId([1; 20]),
            request_hash: [9; 32],
            authorization: TxHash([3; 32]),
            action: "diagnostic".into(),
            outcome: Outcome::Rejected("expired".into()),
            result: vec![],
            client_token: "tok-1".into(),
            device_ms: 11,
        };
        let want = format!(
            "89 {} 54{} 5820{} 5820{} {} 82 02 {} 40 {} 0b",
            t(TAG_COMMAND_RECEIPT_V1),
            rep(1, 20),
            rep(9, 32),
            rep(3, 32),
            t("diagnostic"),
            t("expired"),
            t("tok-1")
        );
        assert_eq!(receipt.to_payload(), h(&want));
        assert_eq!(CommandReceipt::from_payload(&h(&want)).unwrap(), receipt);
        let mut ok = receipt.clone();
        ok.outcome = Outcome::Accepted;
        assert_eq!(CommandReceipt::from_payload(&ok.to_payload()).unwrap(), ok);

        let cmd = CommandRecord {
            request_hash: [9; 32],
            authorization: TxHash([3; 32]),
            device: DeviceId([1; 20]),
            action: "diagnostic".into(),
            org: Some("tech".into()),
            command_tx: Some(TxHash([4; 32])),
            height: 6,
            timestamp_ms: 700,
            receipt: Some(ReceiptRef {
                tx: TxHash([5; 32]),
                height: 7,
                outcome: Outcome::Accepted,
                device_ms: 11,
                anomaly: Some(ReceiptAnomaly::NotCovered),
            }),
        };
        let want = format!(
            "89 5820{} 5820{} 54{} {} {} 5820{} 06 1902bc 85 5820{} 07 8101 0b 04",
            rep(9, 32),
            rep(3, 32),
            rep(1, 20),
            t("diagnostic"),
            t("tech"),
            rep(4, 32),
            rep(5, 32)
        );
        assert_eq!(cmd.to_cbor(), h(&want));
        assert_eq!(CommandRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), cmd);
        let dc = DeviceCommands {
            commands: 2,
            receipts: 1,
            anomalies: 0,
            pending: vec![PendingCommand {
                request_hash: [9; 32],
                height: 6,
            }],
            pending_dropped: 3,
        };
        let want = format!("85 02 01 00 81 82 5820{} 06 03", rep(9, 32));
        assert_eq!(dc.to_cbor(), h(&want));
        assert_eq!(DeviceCommands::from_cbor(&h(&want), Limits::STATE).unwrap(), dc);
        assert_eq!(
            authz_key(&TxHash([0xab; 32])),
            format!("authz/{}", rep(0xab, 32)).into_bytes()
        );
        assert_eq!(command_key(&[0xcd; 32]), format!("cmd/{}", rep(0xcd, 32)).into_bytes());
        assert_eq!(
            device_commands_key(&DeviceId([0xef; 20])),
            format!("cmd/device/{}", rep(0xef, 20)).into_bytes()
        );
    }

    fn refused(p: Authorize) -> DecodeError {
        let p = Payload::Authorize(p);
        Payload::from_cbor(&p.to_cbor(), Limits::TX).expect_err("must be refused")
    }

    #[test]
    fn bad_authorizations_are_typed_errors() {
        let with = |f: &dyn Fn(&mut Authorize)| {
            let mut a = authorize();
            f(&mut a);
            a
        };
        assert!(matches!(
            refused(with(&|a| a.devices.clear())),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(
            refused(with(&|a| a.devices.reverse())),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(
            refused(with(&|a| a.actions.clear())),
            DecodeError::TooLong { .. }
        ));
        assert!(matches!(
            refused(with(&|a| a.actions.reverse())),
            DecodeError::Invalid { .. }
        ));
        let many: Vec<String> = (0..=MAX_AUTHZ_ACTIONS).map(|i| format!("a{i:02}")).collect();
        assert!(matches!(
            refused(with(&|a| a.actions = many.clone())),
            DecodeError::TooLong { .. }
        ));
        let devices: Vec<DeviceId> = (0..=MAX_AUTHZ_DEVICES)
            .map(|i| {
                DeviceId([
                    (i / 256) as u8,
                    (i % 256) as u8,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                ])
            })
            .collect();
        assert!(matches!(
            refused(with(&|a| a.devices = devices.clone())),
            DecodeError::TooLong { .. }
        ));
        for bad in ["", "Reboot", "re boot", "a/b", &"x".repeat(MAX_ACTION_BYTES + 1)] {
            let e = refused(with(&|a| a.actions = vec![bad.into()]));
            assert!(matches!(e, DecodeError::Invalid { what: "action", .. }), "{bad}: {e}");
        }
        let custom = with(&|a| a.actions = vec!["read-temperature".into()]);
        assert!(Payload::from_cbor(&Payload::Authorize(custom).to_cbor(), Limits::TX).is_ok());
        let long = "p".repeat(MAX_AUTHZ_PURPOSE_BYTES + 1);
        assert!(matches!(
            refused(with(&|a| a.purpose = long.clone())),
            DecodeError::TooLong { .. }
        ));
        let big = Payload::AccessReceipt(AccessReceipt {
            receipt: vec![0; MAX_RECEIPT_BYTES + 1],
        });
        assert!(Payload::from_cbor(&big.to_cbor(), Limits::TX).is_err());
        let empty = Payload::AccessReceipt(AccessReceipt { receipt: vec![] });
        assert!(Payload::from_cbor(&empty.to_cbor(), Limits::TX).is_err());
    }

    #[test]
    fn tokens_and_topics() {
        for ok in ["a", "tok-1", "ABC.def_0:9", &"x".repeat(64)] {
            assert!(check_client_token(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a+b", "#", &"x".repeat(65), "é"] {
            assert!(check_client_token(bad).is_err(), "{bad}");
        }
        let d = DeviceId([0xab; 20]);
        assert_eq!(
            request_topic(&d),
            format!("chipledger/cmd/v1/{}/request", rep(0xab, 20))
        );
        assert_eq!(
            parse_command_topic(&request_topic(&d)),
            Some((d, CommandTopic::Request))
        );
        assert_eq!(
            parse_command_topic(&accepted_topic(&d)),
            Some((d, CommandTopic::Accepted))
        );
        assert_eq!(
            parse_command_topic(&rejected_topic(&d)),
            Some((d, CommandTopic::Rejected))
        );
        assert_eq!(reply_topic(&d, &Outcome::Rejected("x".into())), rejected_topic(&d));
        let upper = format!("chipledger/cmd/v1/{}/request", rep(0xab, 20).to_uppercase());
        for bad in ["chipledger/cmd/v1", "chipledger/cmd/v1/zz/request", &upper, "x/request"] {
            assert_eq!(parse_command_topic(bad), None, "{bad}");
        }
        let extra = format!("{}/other", request_topic(&d));
        assert_eq!(parse_command_topic(&extra), None);
    }

    #[test]
    fn bad_requests_and_receipts_are_refused() {
        let req = CommandRequest {
            device: DeviceId([1; 20]),
            authorization: TxHash([3; 32]),
            action: "diagnostic".into(),
            args: vec![0; MAX_COMMAND_ARGS_BYTES],
            client_token: "tok".into(),
            issued_ms: 1,
        };
        let bytes = req.to_payload();
        assert_eq!(CommandRequest::from_payload(&bytes).unwrap(), req);
        for cut in 0..bytes.len() {
            assert!(CommandRequest::from_payload(&bytes[..cut]).is_err());
        }
        let mut big = req.clone();
        big.args.push(0);
        assert!(CommandRequest::from_payload(&big.to_payload()).is_err());
        let mut token = req.clone();
        token.client_token = "a b".into();
        assert!(CommandRequest::from_payload(&token.to_payload()).is_err());
        // A receipt payload is never a request (domain tag).
        let receipt = CommandReceipt {
            device: DeviceId([1; 20]),
            request_hash: [0; 32],
            authorization: TxHash([3; 32]),
            action: "diagnostic".into(),
            outcome: Outcome::Accepted,
            result: vec![],
            client_token: "tok".into(),
            device_ms: 1,
        };
        assert!(CommandRequest::from_payload(&receipt.to_payload()).is_err());
        assert!(CommandReceipt::from_payload(&req.to_payload()).is_err());
    }
}

//! Authorized commands on the device (issue 6, `no_std` + `alloc`).
//!
//! A device runs a command only when [`verify_command`] accepts it; every refusal is a typed
//! [`CommandError`] whose [`CommandError::code`] goes back, signed, in the receipt. The checks,
//! in order:
//!
//! 1. the checkpoint note carries valid signatures of at least `quorum` (2f + 1) of the
//!    validators the device trusts (`no_quorum`) and is not older than the newest checkpoint
//!    the device has seen (`stale_checkpoint`) — the same opening as a firmware update
//!    ([`crate::update`]);
//! 2. the authorization record `authz/<id>` the request names is proven present under the
//!    checkpoint's state root (`not_proven`);
//! 3. the record's owner is the device's owner (`wrong_owner`); the request and the record
//!    name this device (`wrong_device`); the record allows the action (`action_not_allowed`);
//!    it is not revoked (`revoked`) and not expired at the device's clock (`expired`);
//! 4. the request's COSE_Sign1 verifies under the grantee's key — a person's key named in the
//!    record, or one of the grantee organisation's keys active at the checkpoint's height, read
//!    from the organisation record proven under the same root (`bad_signature`);
//! 5. the client token was not seen before, and the request was issued after every request
//!    whose token the device has since forgotten (`replayed_token`; the device remembers the
//!    last [`MAX_SEEN_CLIENT_TOKENS`] tokens and, when it forgets one, raises a floor to that
//!    request's `issued_ms`).
//!
//! So a captured request can never run twice: while its token is remembered it is refused by
//! token, and once forgotten by the floor. The floor compares the grantee's own `issued_ms`
//! values with each other, never with the device's clock (which may be unset or drift); a
//! grantee whose clock steps backwards by more than the window can have fresh requests refused
//! until its clock passes the floor. Persist the window with [`CommandTrust::seen_tokens`],
//! [`CommandTrust::issued_floor_ms`] and [`CommandTrust::restore_tokens`] across reboots.
//!
//! Verification never mutates [`CommandTrust`]; after running the command the device calls
//! [`CommandTrust::record`] (or uses [`answer_command`], which does all of it) and signs a
//! receipt with [`sign_receipt`]. The ledger checks that receipt with [`verify_receipt`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use chipledger_types::access_tx::Grantee;
use chipledger_types::cbor::Decode;
use chipledger_types::command_tx::{
    AuthorizationProof, AuthorizationRecord, CommandMessage, CommandReceipt, CommandRequest, OrgKeys, Outcome,
    PROOF_LIMITS, authz_key, org_record_key, reply_topic, request_hash,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::{PublicKey, SigningKey};
use chipledger_types::limits::{MAX_COMMAND_REQUEST_BYTES, MAX_RECEIPT_BYTES};
use chipledger_types::merkle::Hash;
use chipledger_types::tx::TxHash;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

use crate::eat::{EatError, cose_algorithm, verify_cose_sign1};
use crate::key::{DevicePublicKey, DeviceSigner};
use crate::update::{
    CheckpointTrust, QuorumCheckpoint, TrustedValidator, UpdateError, check_validator_set, open_quorum_checkpoint,
    proven_value,
};

/// Client tokens a device remembers (oldest forgotten first).
pub const MAX_SEEN_CLIENT_TOKENS: usize = 256;
/// What a receipt says for a request it could not read.
pub const UNKNOWN: &str = "unknown";

/// Why a device refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("the device's command trust configuration is invalid: {0}")]
    InvalidTrust(&'static str),
    #[error("malformed command: {0}")]
    Malformed(String),
    #[error("the checkpoint is not cosigned by a quorum of trusted validators: {0}")]
    NoQuorum(String),
    #[error("checkpoint at height {height} is older than the newest this device has seen ({last_seen})")]
    StaleCheckpoint { height: u64, last_seen: u64 },
    #[error("the authorization is not proven under the checkpoint's state root: {0}")]
    NotProven(String),
    #[error("the authorization is by '{owner}', but this device belongs to '{expected}'")]
    WrongOwner { owner: String, expected: String },
    #[error("the command or its authorization does not name this device")]
    WrongDevice,
    #[error("the authorization does not allow action '{0}'")]
    ActionNotAllowed(String),
    #[error("the authorization was revoked")]
    Revoked,
    #[error("the authorization expired at {expires_ms} (device time {now_ms})")]
    Expired { expires_ms: u64, now_ms: u64 },
    #[error("the command is not signed by the authorized grantee")]
    BadSignature,
    #[error("client token '{0}' was already used")]
    ReplayedToken(String),
}

impl CommandError {
    /// Stable machine-readable code: the receipt's rejection code.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::InvalidTrust(_) => "invalid_trust",
            CommandError::Malformed(_) => "malformed",
            CommandError::NoQuorum(_) => "no_quorum",
            CommandError::StaleCheckpoint { .. } => "stale_checkpoint",
            CommandError::NotProven(_) => "not_proven",
            CommandError::WrongOwner { .. } => "wrong_owner",
            CommandError::WrongDevice => "wrong_device",
            CommandError::ActionNotAllowed(_) => "action_not_allowed",
            CommandError::Revoked => "revoked",
            CommandError::Expired { .. } => "expired",
            CommandError::BadSignature => "bad_signature",
            CommandError::ReplayedToken(_) => "replayed_token",
        }
    }
}

/// Checkpoint failures, as a command refusal.
fn from_update(e: UpdateError) -> CommandError {
    match e {
        UpdateError::StaleCheckpoint { height, last_seen } => CommandError::StaleCheckpoint { height, last_seen },
        UpdateError::Proof { .. } | UpdateError::Malformed { .. } => CommandError::NotProven(e.to_string()),
        UpdateError::InvalidTrust(why) => CommandError::InvalidTrust(why),
        other => CommandError::NoQuorum(other.to_string()),
    }
}

/// What a device trusts and knows about itself for commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandTrust {
    /// The log origin checkpoints must name.
    pub origin: String,
    pub validators: Vec<TrustedValidator>,
    /// Signatures of distinct trusted validators a checkpoint needs (2f + 1).
    pub quorum: usize,
    pub device: DeviceId,
    /// The organisation owning the device: only its authorizations count.
    pub owner: String,
    /// Height of the newest checkpoint the device has accepted.
    pub checkpoint_height: u64,
    /// Client tokens already used, oldest first (at most [`MAX_SEEN_CLIENT_TOKENS`]), with the
    /// `issued_ms` of their requests.
    seen_tokens: Vec<(String, u64)>,
    /// The newest `issued_ms` of a request whose token was forgotten: requests issued at or
    /// before it are refused.
    issued_floor_ms: u64,
}

impl CommandTrust {
    pub fn new(origin: &str, validators: Vec<TrustedValidator>, quorum: usize, device: DeviceId, owner: &str) -> Self {
        CommandTrust {
            origin: origin.into(),
            validators,
            quorum,
            device,
            owner: owner.into(),
            checkpoint_height: 0,
            seen_tokens: Vec::new(),
            issued_floor_ms: 0,
        }
    }

    /// The client tokens remembered with their requests' `issued_ms`, oldest first (to persist
    /// across reboots, with [`CommandTrust::issued_floor_ms`]).
    pub fn seen_tokens(&self) -> &[(String, u64)] {
        &self.seen_tokens
    }

    /// Requests issued at or before this instant are refused (their tokens may be forgotten).
    pub fn issued_floor_ms(&self) -> u64 {
        self.issued_floor_ms
    }

    /// Restore a persisted window: the newest [`MAX_SEEN_CLIENT_TOKENS`] tokens are kept, and
    /// the floor rises over the ones dropped.
    pub fn restore_tokens(&mut self, mut tokens: Vec<(String, u64)>, issued_floor_ms: u64) {
        let excess = tokens.len().saturating_sub(MAX_SEEN_CLIENT_TOKENS);
        let dropped = tokens.drain(..excess).map(|(_, ms)| ms).max().unwrap_or(0);
        self.seen_tokens = tokens;
        self.issued_floor_ms = issued_floor_ms.max(dropped);
    }

    /// Would a request with `token`, issued at `issued_ms`, be a replay?
    pub fn seen(&self, token: &str, issued_ms: u64) -> bool {
        issued_ms <= self.issued_floor_ms || self.seen_tokens.iter().any(|(t, _)| t == token)
    }

    /// Remember a command the device ran: its client token, when it was issued, and the
    /// checkpoint height. Forgetting the oldest token raises the floor to its `issued_ms`.
    pub fn record(&mut self, command: &VerifiedCommand) {
        if self.seen_tokens.len() >= MAX_SEEN_CLIENT_TOKENS {
            let (_, forgotten) = self.seen_tokens.remove(0);
            self.issued_floor_ms = self.issued_floor_ms.max(forgotten);
        }
        self.seen_tokens
            .push((command.request.client_token.clone(), command.request.issued_ms));
        self.checkpoint_height = self.checkpoint_height.max(command.checkpoint_height);
    }

    fn checkpoint_trust(&self) -> CheckpointTrust<'_> {
        CheckpointTrust {
            origin: &self.origin,
            validators: &self.validators,
            quorum: self.quorum,
            last_seen_height: self.checkpoint_height,
        }
    }
}

/// A command the device may run, and what it was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedCommand {
    pub request: CommandRequest,
    pub request_hash: Hash,
    pub authorization: AuthorizationRecord,
    pub checkpoint_height: u64,
    /// Trusted validators whose signatures on the checkpoint verified.
    pub signers: usize,
}

/// The payload of a COSE_Sign1 (tagged or not), *without* verifying it: only to find out who
/// should have signed. Bounded by `max` bytes.
fn sign1_payload_unverified(bytes: &[u8], max: usize) -> Result<Vec<u8>, CommandError> {
    if bytes.len() > max {
        return Err(CommandError::Malformed(alloc::format!(
            "{} bytes; the limit is {max}",
            bytes.len()
        )));
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes)
        .or_else(|_| CoseSign1::from_slice(bytes))
        .map_err(|_| CommandError::Malformed("not a COSE_Sign1".into()))?;
    sign1
        .payload
        .ok_or_else(|| CommandError::Malformed("detached payload".into()))
}

/// The request inside a signed command, unverified (its signature is checked by
/// [`verify_command`]).
pub fn peek_request(request_cose: &[u8]) -> Result<CommandRequest, CommandError> {
    let payload = sign1_payload_unverified(request_cose, MAX_COMMAND_REQUEST_BYTES)?;
    CommandRequest::from_payload(&payload).map_err(|e| CommandError::Malformed(e.to_string()))
}

/// A ledger public key as a COSE verification key.
pub fn device_public_key(key: &PublicKey) -> Option<DevicePublicKey> {
    match key {
        PublicKey::Ed25519(b) => ed25519_dalek::VerifyingKey::from_bytes(b)
            .ok()
            .map(DevicePublicKey::Ed25519),
        PublicKey::P256(b) => p256::ecdsa::VerifyingKey::from_sec1_bytes(b)
            .ok()
            .map(DevicePublicKey::P256),
    }
}

/// An organisation's (or a person's) ledger signing key as a COSE signer.
pub fn ledger_signer(key: &SigningKey) -> DeviceSigner<'_> {
    match key {
        SigningKey::Ed25519(k) => DeviceSigner::Ed25519(k),
        SigningKey::P256(k) => DeviceSigner::P256(k),
    }
}

fn sign_payload(payload: Vec<u8>, key: DeviceSigner<'_>) -> Result<Vec<u8>, CommandError> {
    let protected = HeaderBuilder::new().algorithm(cose_algorithm(key.alg())).build();
    CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| key.sign(tbs).to_bytes().to_vec())
        .build()
        .to_tagged_vec()
        .map_err(|_| CommandError::Malformed("the COSE_Sign1 does not encode".into()))
}

/// Sign a command request (the grantee's side): a tagged COSE_Sign1, ES256 or EdDSA by the key.
pub fn sign_request<'k>(request: &CommandRequest, key: impl Into<DeviceSigner<'k>>) -> Result<Vec<u8>, CommandError> {
    let bytes = sign_payload(request.to_payload(), key.into())?;
    if bytes.len() > MAX_COMMAND_REQUEST_BYTES {
        return Err(CommandError::Malformed("the signed request is too large".into()));
    }
    Ok(bytes)
}

/// Sign a receipt with the device key (DeviceID, or the attested Alias key).
pub fn sign_receipt<'k>(receipt: &CommandReceipt, key: impl Into<DeviceSigner<'k>>) -> Result<Vec<u8>, CommandError> {
    let bytes = sign_payload(receipt.to_payload(), key.into())?;
    if bytes.len() > MAX_RECEIPT_BYTES {
        return Err(CommandError::Malformed("the signed receipt is too large".into()));
    }
    Ok(bytes)
}

/// The receipt inside a signed receipt, unverified (to find the device whose key must verify it).
pub fn peek_receipt(receipt_cose: &[u8]) -> Result<CommandReceipt, CommandError> {
    let payload = sign1_payload_unverified(receipt_cose, MAX_RECEIPT_BYTES)?;
    CommandReceipt::from_payload(&payload).map_err(|e| CommandError::Malformed(e.to_string()))
}

fn verify_sign1(bytes: &[u8], key: &DevicePublicKey) -> Result<Vec<u8>, CommandError> {
    verify_cose_sign1(bytes, key).map_err(|e| match e {
        EatError::BadSignature | EatError::AlgorithmMismatch { .. } | EatError::WrongAlgorithm => {
            CommandError::BadSignature
        }
        other => CommandError::Malformed(other.to_string()),
    })
}

/// Verify a signed receipt under the device's key; returns what it says.
pub fn verify_receipt(receipt_cose: &[u8], key: &DevicePublicKey) -> Result<CommandReceipt, CommandError> {
    if receipt_cose.len() > MAX_RECEIPT_BYTES {
        return Err(CommandError::Malformed("the receipt is too large".into()));
    }
    let payload = verify_sign1(receipt_cose, key)?;
    CommandReceipt::from_payload(&payload).map_err(|e| CommandError::Malformed(e.to_string()))
}

/// Decode an MQTT command message (request + proof), bounded by [`PROOF_LIMITS`].
pub fn decode_message(bytes: &[u8]) -> Result<CommandMessage, CommandError> {
    CommandMessage::from_cbor(bytes, PROOF_LIMITS).map_err(|e| CommandError::Malformed(e.to_string()))
}

/// Decode an authorization proof, bounded by [`PROOF_LIMITS`].
pub fn decode_proof(bytes: &[u8]) -> Result<AuthorizationProof, CommandError> {
    AuthorizationProof::from_cbor(bytes, PROOF_LIMITS).map_err(|e| CommandError::Malformed(e.to_string()))
}

/// Verify everything a device must check before running a command (see the module
/// documentation); `now_ms` is the device's clock. Never mutates `trust`.
pub fn verify_command(
    request_cose: &[u8],
    proof: &AuthorizationProof,
    trust: &CommandTrust,
    now_ms: u64,
) -> Result<VerifiedCommand, CommandError> {
    check_validator_set(&trust.validators, trust.quorum).map_err(CommandError::InvalidTrust)?;
    let request = peek_request(request_cose)?;
    let cp = open_quorum_checkpoint(&proof.checkpoint, &trust.checkpoint_trust()).map_err(from_update)?;
    let authorization = proven_authorization(proof, &cp, &request.authorization)?;
    check_authorization(&authorization, &request, trust, now_ms)?;
    check_grantee_signature(request_cose, proof, &cp, &authorization.grantee)?;
    if trust.seen(&request.client_token, request.issued_ms) {
        return Err(CommandError::ReplayedToken(request.client_token));
    }
    Ok(VerifiedCommand {
        request_hash: request_hash(request_cose),
        request,
        authorization,
        checkpoint_height: cp.height,
        signers: cp.signers,
    })
}

/// (2) The authorization record, proven present under the checkpoint's root.
fn proven_authorization(
    proof: &AuthorizationProof,
    cp: &QuorumCheckpoint,
    id: &TxHash,
) -> Result<AuthorizationRecord, CommandError> {
    let record: AuthorizationRecord =
        proven_value(&proof.authorization, &cp.state_root, &authz_key(id), "authorization")
            .map_err(from_update)?
            .ok_or_else(|| CommandError::NotProven("the authorization is proven absent".into()))?;
    if record.id != *id {
        return Err(CommandError::NotProven("the record names another authorization".into()));
    }
    Ok(record)
}

/// (3) Owner, device, action, revocation and expiry.
fn check_authorization(
    a: &AuthorizationRecord,
    request: &CommandRequest,
    trust: &CommandTrust,
    now_ms: u64,
) -> Result<(), CommandError> {
    if a.owner != trust.owner {
        return Err(CommandError::WrongOwner {
            owner: a.owner.clone(),
            expected: trust.owner.clone(),
        });
    }
    if request.device != trust.device || a.devices.binary_search(&trust.device).is_err() {
        return Err(CommandError::WrongDevice);
    }
    if !a.actions.contains(&request.action) {
        return Err(CommandError::ActionNotAllowed(request.action.clone()));
    }
    if a.revoked.is_some() {
        return Err(CommandError::Revoked);
    }
    if now_ms >= a.expires_ms {
        return Err(CommandError::Expired {
            expires_ms: a.expires_ms,
            now_ms,
        });
    }
    Ok(())
}

/// (4) The request is signed by the grantee: its key, or a key of its organisation active at
/// the checkpoint's height.
fn check_grantee_signature(
    request_cose: &[u8],
    proof: &AuthorizationProof,
    cp: &QuorumCheckpoint,
    grantee: &Grantee,
) -> Result<(), CommandError> {
    let keys: Vec<PublicKey> = match grantee {
        Grantee::Key(k) => alloc::vec![*k],
        Grantee::Org(name) => {
            let proven = proof
                .grantee_org
                .as_ref()
                .ok_or_else(|| CommandError::NotProven("the grantee organisation's record is missing".into()))?;
            let org: OrgKeys = proven_value(proven, &cp.state_root, &org_record_key(name), "grantee organisation")
                .map_err(from_update)?
                .ok_or_else(|| CommandError::NotProven("the grantee organisation is proven absent".into()))?;
            org.active_keys(cp.height).copied().collect()
        }
    };
    for key in keys.iter().filter_map(device_public_key) {
        if verify_sign1(request_cose, &key).is_ok() {
            return Ok(());
        }
    }
    Err(CommandError::BadSignature)
}

/// A device's answer to one command message: the signed receipt and the topic to publish it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandReply {
    pub receipt: CommandReceipt,
    /// The signed receipt (COSE_Sign1 by the device key).
    pub signed: Vec<u8>,
    /// `…/request/accepted` or `…/request/rejected`.
    pub topic: String,
}

/// The device side in one call: decode the message, verify it, run `execute` on success
/// (its result goes into the receipt), remember the token, and sign the receipt — accepted, or
/// rejected with the typed code.
pub fn answer_command<'k>(
    message: &[u8],
    trust: &mut CommandTrust,
    now_ms: u64,
    key: impl Into<DeviceSigner<'k>>,
    execute: impl FnOnce(&VerifiedCommand) -> Vec<u8>,
) -> Result<CommandReply, CommandError> {
    let (request_bytes, verdict) = match decode_message(message) {
        Ok(m) => {
            let v = verify_command(&m.request, &m.proof, trust, now_ms);
            (m.request, v)
        }
        Err(e) => (message.to_vec(), Err(e)),
    };
    let peeked = peek_request(&request_bytes).ok();
    let (outcome, result) = match &verdict {
        Ok(cmd) => {
            let result = execute(cmd);
            trust.record(cmd);
            (Outcome::Accepted, result)
        }
        Err(e) => (Outcome::Rejected(e.code().into()), Vec::new()),
    };
    let receipt = CommandReceipt {
        device: trust.device,
        request_hash: request_hash(&request_bytes),
        authorization: peeked.as_ref().map_or(TxHash([0; 32]), |r| r.authorization),
        action: peeked.as_ref().map_or(UNKNOWN.to_string(), |r| r.action.clone()),
        outcome,
        result,
        client_token: peeked.map_or(UNKNOWN.to_string(), |r| r.client_token),
        device_ms: now_ms,
    };
    let signed = sign_receipt(&receipt, key)?;
    let topic = reply_topic(&trust.device, &receipt.outcome);
    Ok(CommandReply { receipt, signed, topic })
}

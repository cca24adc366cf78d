//! Why a transaction was rejected. Every rejection leaves the state untouched.
//!
//! Sequence numbers are per organisation and contiguous: the next transaction of an
//! organisation must carry exactly `last + 1`. A lower number is a replay; a higher one waits
//! in the mempool until the missing ones arrive (or it expires).

use chipledger_types::cbor::DecodeError;
use chipledger_types::device_tx::{CaId, DeviceId};
use chipledger_types::keys::{KeyId, SignatureError};
use chipledger_types::tx::TxHash;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxError {
    #[error("malformed transaction: {0}")]
    Decode(#[from] DecodeError),
    #[error("transaction is for chain '{found}', this network is '{expected}'")]
    WrongChain { expected: String, found: String },
    #[error("transaction expired at height {expiry_height}; the ledger is at height {height}")]
    Expired { expiry_height: u64, height: u64 },
    #[error("expiry height {expiry_height} is more than {max_ahead} blocks ahead of height {height}")]
    ExpiryTooFar {
        expiry_height: u64,
        height: u64,
        max_ahead: u64,
    },
    #[error("unknown organisation '{0}'")]
    UnknownOrg(String),
    #[error("organisation '{0}' was removed")]
    OrgRemoved(String),
    #[error("organisation '{org}' has no key {key_id}")]
    UnknownKey { org: String, key_id: KeyId },
    #[error("key {key_id} of '{org}' is not active at height {height} (valid from {from} until {until:?})")]
    KeyNotActive {
        org: String,
        key_id: KeyId,
        height: u64,
        from: u64,
        until: Option<u64>,
    },
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    #[error("replay: '{org}' already used sequence number {last}; {seq} must be greater")]
    Replay { org: String, seq: u64, last: u64 },
    #[error(
        "sequence gap: '{org}' must use {expected} next, this transaction has {seq} (it waits for the missing ones)"
    )]
    SeqGap { org: String, seq: u64, expected: u64 },
    #[error("no proposal {0}")]
    UnknownProposal(TxHash),
    #[error("proposal {id} expired at height {expired_at}")]
    ProposalExpired { id: TxHash, expired_at: u64 },
    #[error("proposal {0} was already executed")]
    ProposalExecuted(TxHash),
    #[error("'{org}' already approved proposal {id}")]
    DuplicateApproval { org: String, id: TxHash },
    #[error("organisation '{0}' already exists")]
    OrgExists(String),
    #[error("unknown validator '{0}'")]
    UnknownValidator(String),
    #[error("cannot remove '{org}': {why}")]
    CannotRemove { org: String, why: &'static str },
    #[error("threshold {value} is not between 1 and the {orgs} active organisations")]
    BadThreshold { value: u32, orgs: u32 },
    #[error("effective height {effective_height} must be after the current height {height}")]
    EffectiveHeightPast { effective_height: u64, height: u64 },
    #[error("key already in use: {0}")]
    DuplicateKey(KeyId),
    #[error("invalid action: {0}")]
    Invalid(&'static str),
    #[error("stored state is corrupt at key {key}: {why}")]
    Corrupt { key: String, why: String },
    #[error("organisation '{0}' does not hold the manufacturer role")]
    NotManufacturer(String),
    #[error("invalid {what} certificate: {why}")]
    BadCertificate { what: &'static str, why: String },
    #[error("manufacturer CA {0} is already registered")]
    CaExists(CaId),
    #[error("no manufacturer CA {0}")]
    UnknownCa(CaId),
    #[error("manufacturer CA {0} was revoked")]
    CaRevoked(CaId),
    #[error("not endorsed by manufacturer CA {ca}: {why}")]
    Unendorsed { ca: CaId, why: String },
    #[error("model {model} is not in the ranges granted to CA {ca} of '{org}'")]
    ModelNotGranted { org: String, ca: CaId, model: u32 },
    #[error("device {0} is already registered")]
    DeviceExists(DeviceId),
    #[error("no device {0}")]
    UnknownDevice(DeviceId),
    #[error("device {0} was revoked")]
    DeviceRevoked(DeviceId),
    #[error("'{org}' may not do this to device {device}: only {who} may")]
    NotAuthorized {
        org: String,
        device: DeviceId,
        who: &'static str,
    },
    #[error("device {device} has no transfer offer to '{org}'")]
    NoTransferOffer { org: String, device: DeviceId },
    #[error("invalid evidence: {0}")]
    BadEvidence(String),
    #[error(
        "stale nonce: it names height {nonce_height}, the ledger is at {height} and accepts the last {window_blocks} heights"
    )]
    StaleNonce {
        nonce_height: u64,
        height: u64,
        window_blocks: u64,
    },
    #[error("the evidence nonce is not the device's current ledger challenge")]
    WrongNonce,
    #[error("limit reached: at most {max} {what}")]
    LimitReached { what: &'static str, max: usize },
    #[error(transparent)]
    Firmware(#[from] crate::firmware::FirmwareError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Command(#[from] crate::command::CommandError),
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    #[error(transparent)]
    Zk(#[from] crate::zk::ZkTxError),
    #[error("evidence claim {claim} is {got}, but the registered device needs {want}")]
    EvidenceMismatch {
        claim: &'static str,
        want: String,
        got: String,
    },
    #[error("invalid device proof: {0}")]
    BadDeviceProof(String),
    #[error("the device proof is not signed by the DeviceID key registered for device {0}")]
    DeviceProofWrongKey(DeviceId),
    #[error("the device proof names {field} '{got}', but this transaction needs '{want}'")]
    DeviceProofMismatch {
        field: &'static str,
        want: String,
        got: String,
    },
}

impl TxError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            TxError::Decode(_) => "malformed",
            TxError::WrongChain { .. } => "wrong_chain",
            TxError::Expired { .. } => "expired",
            TxError::ExpiryTooFar { .. } => "expiry_too_far",
            TxError::UnknownOrg(_) => "unknown_org",
            TxError::OrgRemoved(_) => "org_removed",
            TxError::UnknownKey { .. } => "unknown_key",
            TxError::KeyNotActive { .. } => "key_not_active",
            TxError::BadSignature(_) => "bad_signature",
            TxError::Replay { .. } => "replay",
            TxError::SeqGap { .. } => "seq_gap",
            TxError::UnknownProposal(_) => "unknown_proposal",
            TxError::ProposalExpired { .. } => "proposal_expired",
            TxError::ProposalExecuted(_) => "proposal_executed",
            TxError::DuplicateApproval { .. } => "duplicate_approval",
            TxError::OrgExists(_) => "org_exists",
            TxError::UnknownValidator(_) => "unknown_validator",
            TxError::CannotRemove { .. } => "cannot_remove",
            TxError::BadThreshold { .. } => "bad_threshold",
            TxError::EffectiveHeightPast { .. } => "effective_height_past",
            TxError::DuplicateKey(_) => "duplicate_key",
            TxError::Invalid(_) => "invalid",
            TxError::Corrupt { .. } => "corrupt_state",
            TxError::NotManufacturer(_) => "not_manufacturer",
            TxError::BadCertificate { .. } => "bad_certificate",
            TxError::CaExists(_) => "ca_exists",
            TxError::UnknownCa(_) => "unknown_ca",
            TxError::CaRevoked(_) => "ca_revoked",
            TxError::Unendorsed { .. } => "unendorsed",
            TxError::ModelNotGranted { .. } => "model_not_granted",
            TxError::DeviceExists(_) => "device_exists",
            TxError::UnknownDevice(_) => "unknown_device",
            TxError::DeviceRevoked(_) => "device_revoked",
            TxError::NotAuthorized { .. } => "not_authorized",
            TxError::NoTransferOffer { .. } => "no_transfer_offer",
            TxError::BadEvidence(_) => "bad_evidence",
            TxError::StaleNonce { .. } => "stale_nonce",
            TxError::WrongNonce => "wrong_nonce",
            TxError::LimitReached { .. } => "limit_reached",
            TxError::Firmware(e) => e.code(),
            TxError::Data(e) => e.code(),
            TxError::Command(e) => e.code(),
            TxError::Access(e) => e.code(),
            TxError::Zk(e) => e.code(),
            TxError::EvidenceMismatch { .. } => "evidence_mismatch",
            TxError::BadDeviceProof(_) => "bad_device_proof",
            TxError::DeviceProofWrongKey(_) => "device_proof_wrong_key",
            TxError::DeviceProofMismatch { .. } => "device_proof_mismatch",
        }
    }
}

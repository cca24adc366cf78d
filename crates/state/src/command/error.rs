//! Why an authorization, command or receipt transaction was rejected (wrapped in
//! [`crate::TxError::Command`]).

use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::TxHash;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    #[error("organisation '{0}' does not hold the owner role: only owners authorize commands")]
    NotOwner(String),
    #[error("'{org}' does not own device {device} (its owner is '{owner}')")]
    NotDeviceOwner {
        org: String,
        device: DeviceId,
        owner: String,
    },
    #[error("no organisation '{0}' to authorize")]
    UnknownGrantee(String),
    #[error("the authorization would expire at {expires_ms}, not after the block time {now_ms}")]
    ExpiryPast { expires_ms: u64, now_ms: u64 },
    #[error("no authorization {0}")]
    UnknownAuthorization(TxHash),
    #[error("authorization {id} belongs to '{owner}'; '{org}' cannot revoke it")]
    NotAuthorizationOwner { id: TxHash, org: String, owner: String },
    #[error("authorization {0} was revoked")]
    AuthorizationRevoked(TxHash),
    #[error("authorization {id} expired at {expires_ms} (block time {now_ms})")]
    AuthorizationExpired { id: TxHash, expires_ms: u64, now_ms: u64 },
    #[error("authorization {id} is for {grantee}; '{org}' cannot record commands under it")]
    NotGrantee { id: TxHash, org: String, grantee: String },
    #[error("authorization {id} does not name device {device}")]
    DeviceNotCovered { id: TxHash, device: DeviceId },
    #[error("authorization {id} does not allow action '{action}'")]
    ActionNotAllowed { id: TxHash, action: String },
    #[error("command {0} is already recorded")]
    CommandExists(String),
    #[error("invalid receipt: {0}")]
    MalformedReceipt(String),
    #[error("the receipt is not signed by a key registered for device {0}")]
    BadReceiptSignature(DeviceId),
    #[error("a receipt for request {0} is already committed")]
    ReceiptReplayed(String),
}

impl CommandError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::NotOwner(_) => "not_owner",
            CommandError::NotDeviceOwner { .. } => "not_device_owner",
            CommandError::UnknownGrantee(_) => "unknown_grantee",
            CommandError::ExpiryPast { .. } => "expiry_past",
            CommandError::UnknownAuthorization(_) => "unknown_authorization",
            CommandError::NotAuthorizationOwner { .. } => "not_authorization_owner",
            CommandError::AuthorizationRevoked(_) => "authorization_revoked",
            CommandError::AuthorizationExpired { .. } => "authorization_expired",
            CommandError::NotGrantee { .. } => "not_grantee",
            CommandError::DeviceNotCovered { .. } => "device_not_covered",
            CommandError::ActionNotAllowed { .. } => "action_not_allowed",
            CommandError::CommandExists(_) => "command_exists",
            CommandError::MalformedReceipt(_) => "malformed_receipt",
            CommandError::BadReceiptSignature(_) => "bad_receipt_signature",
            CommandError::ReceiptReplayed(_) => "receipt_replayed",
        }
    }
}

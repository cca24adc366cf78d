//! Why a range-proof transaction was rejected (wrapped in [`crate::TxError::Zk`]).

use chipledger_types::device_tx::DeviceId;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZkTxError {
    #[error("the reading statement is not a device-signed reading commitment: {0}")]
    BadStatement(String),
    #[error(
        "the reading statement is not signed by device {0}'s registered DeviceID key nor by the Alias key of its attested firmware"
    )]
    StatementSignature(DeviceId),
    #[error(
        "device {device} belongs to '{owner}': only its owner publishes range proofs over its readings, not '{org}'"
    )]
    NotDeviceOwner {
        org: String,
        device: DeviceId,
        owner: String,
    },
    #[error("invalid bounds: {0}")]
    BadBounds(String),
    #[error("the range proof is malformed: {0}")]
    ProofMalformed(String),
    #[error("the range proof does not prove that the committed {quantity} lies in [{min}, {max}]")]
    ProofInvalid { quantity: String, min: u64, max: u64 },
}

impl ZkTxError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            ZkTxError::BadStatement(_) => "bad_statement",
            ZkTxError::StatementSignature(_) => "statement_signature",
            ZkTxError::NotDeviceOwner { .. } => "not_device_owner",
            ZkTxError::BadBounds(_) => "bad_bounds",
            ZkTxError::ProofMalformed(_) => "proof_malformed",
            ZkTxError::ProofInvalid { .. } => "proof_invalid",
        }
    }
}

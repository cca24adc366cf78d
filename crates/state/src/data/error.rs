//! Why a data transaction was rejected (wrapped in [`crate::TxError::Data`]).

use chipledger_types::device_tx::DeviceId;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("organisation '{0}' does not hold the operator role: only operators run gateways")]
    NotOperator(String),
    #[error("gateway '{0}' is already registered")]
    GatewayExists(String),
    #[error("no gateway '{0}': register it with RegisterGateway first")]
    UnknownGateway(String),
    #[error("gateway '{gateway}' belongs to '{operator}'; '{org}' cannot act for it")]
    NotGatewayOperator {
        org: String,
        gateway: String,
        operator: String,
    },
    #[error("batch {seq} of gateway '{gateway}' already committed (last committed: {last})")]
    BatchReplayed { gateway: String, seq: u64, last: u64 },
    #[error("batch {seq} of gateway '{gateway}' skips ahead: batch {expected} comes next")]
    BatchSeqGap { gateway: String, seq: u64, expected: u64 },
    #[error(
        "record chain fork for device {device} stream '{stream}' at seq {seq}: the ledger has {committed}, the batch {offered}"
    )]
    ChainFork {
        device: DeviceId,
        stream: String,
        seq: u64,
        committed: String,
        offered: String,
    },
    #[error(
        "record chain of device {device} stream '{stream}' is already at seq {head}; the batch's head {seq} goes back"
    )]
    ChainRewind {
        device: DeviceId,
        stream: String,
        seq: u64,
        head: u64,
    },
    #[error("head seq {seq} of device {device} stream '{stream}' is already committed")]
    HeadAlreadyCommitted { device: DeviceId, stream: String, seq: u64 },
    #[error("device {device} stream '{stream}': {records} records cannot move the head from seq {from} to {seq}")]
    TooManyRecords {
        device: DeviceId,
        stream: String,
        records: u32,
        from: u64,
        seq: u64,
    },
    #[error(
        "device {device} is not registered: its records can only be committed as self-reported (trust 0), not {trust}"
    )]
    DeviceNotRegistered { device: DeviceId, trust: &'static str },
    #[error("device {device} was revoked at height {height}: no record of it is committed (stream '{stream}')")]
    DeviceRevoked {
        device: DeviceId,
        stream: String,
        height: u64,
    },
    #[error("device {0} has no verified attestation: its records cannot be committed at trust 2 (attested)")]
    NotAttested(DeviceId),
    #[error("a revoked_device anomaly names device {0}, which is not a revoked registered device")]
    NotRevoked(DeviceId),
}

impl DataError {
    /// Stable machine-readable code, used by the API and the CLI.
    pub fn code(&self) -> &'static str {
        match self {
            DataError::NotOperator(_) => "not_operator",
            DataError::GatewayExists(_) => "gateway_exists",
            DataError::UnknownGateway(_) => "unknown_gateway",
            DataError::NotGatewayOperator { .. } => "not_gateway_operator",
            DataError::BatchReplayed { .. } => "batch_replayed",
            DataError::BatchSeqGap { .. } => "batch_seq_gap",
            DataError::ChainFork { .. } => "chain_fork",
            DataError::ChainRewind { .. } => "chain_rewind",
            DataError::HeadAlreadyCommitted { .. } => "head_already_committed",
            DataError::TooManyRecords { .. } => "too_many_records",
            DataError::DeviceNotRegistered { .. } => "device_not_registered",
            DataError::DeviceRevoked { .. } => "device_revoked",
            DataError::NotAttested(_) => "not_attested",
            DataError::NotRevoked(_) => "not_revoked",
        }
    }
}

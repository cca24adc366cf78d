//! Configuration of a validator's consensus engine, and the limits and storage names that must
//! stay fixed across releases.

use super::block::MAX_BLOCK_BYTES;
use commonware_codec::DecodeExt;
use commonware_cryptography::{
    Signer,
    ed25519::{PrivateKey, PublicKey},
};
use commonware_utils::ordered::Set;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Prefix of every commonware storage partition this engine writes. Changing it (or any suffix
/// in `engine.rs`) orphans existing consensus state: a restarted validator would start from
/// genesis and could vote twice in a view, so it is versioned and never derived from config.
pub const PARTITION_PREFIX: &str = "chipledger-v1";

/// Why a consensus configuration was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("validator public key #{index} is not a valid ed25519 point")]
    BadPublicKey { index: usize },
    #[error("validator public key #{index} is listed twice")]
    DuplicateValidator { index: usize },
    #[error("this node's key ({public_key}) is not in the validator list")]
    NotAValidator { public_key: String },
    #[error("timeouts must satisfy 0 < leader < certification < skip and 0 < retry < skip (ms): {0:?}")]
    BadTimeouts(Timeouts),
    #[error("max_block_bytes {got} exceeds the engine limit {max}")]
    BlockLimitTooLarge { got: usize, max: usize },
    #[error("namespace must not be empty")]
    EmptyNamespace,
}

/// simplex timeouts. commonware requires `leader < certification < skip` and `retry < skip`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for the leader's proposal before voting to skip the view.
    pub leader_timeout_ms: u64,
    /// How long to wait for a notarization/certification before voting to skip the view.
    pub certification_timeout_ms: u64,
    /// How often to rebroadcast a skip vote while stuck in a view.
    pub timeout_retry_ms: u64,
    /// How long an inactive leader is tolerated before an early skip.
    pub skip_timeout_ms: u64,
    /// How long to wait for a peer to answer a fetch (certificates, blocks).
    pub fetch_timeout_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            leader_timeout_ms: 1_000,
            certification_timeout_ms: 2_000,
            timeout_retry_ms: 3_000,
            skip_timeout_ms: 6_000,
            fetch_timeout_ms: 1_000,
        }
    }
}

impl Timeouts {
    /// Checks the ordering commonware asserts on (a violation would panic inside the engine).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ordered = 0 < self.leader_timeout_ms
            && self.leader_timeout_ms < self.certification_timeout_ms
            && self.certification_timeout_ms < self.skip_timeout_ms
            && 0 < self.timeout_retry_ms
            && self.timeout_retry_ms < self.skip_timeout_ms
            && 0 < self.fetch_timeout_ms;
        if ordered {
            Ok(())
        } else {
            Err(ConfigError::BadTimeouts(*self))
        }
    }

    pub(crate) fn duration(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }
}

/// A validator as listed in genesis: consensus key and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorPeer {
    /// 32-byte ed25519 public key (also its p2p identity).
    pub public_key: [u8; 32],
    /// Socket address its p2p listener is reachable at.
    pub address: SocketAddr,
}

/// Everything a production validator's consensus engine needs.
#[derive(Clone, Debug)]
pub struct ValidatorConfig {
    /// This validator's ed25519 private key (the 32-byte seed).
    pub private_key_seed: [u8; 32],
    /// All validators (this one included), from genesis. Order does not matter.
    pub validators: Vec<ValidatorPeer>,
    /// Address the p2p listener binds to.
    pub listen: SocketAddr,
    /// Directory for commonware's storage (journals, archives). Keep it across restarts.
    pub storage_dir: PathBuf,
    /// Domain separation for votes and p2p handshakes, e.g. `b"chipledger/consensus/v1/<chain>"`.
    pub namespace: Vec<u8>,
    pub timeouts: Timeouts,
    /// Largest block accepted from the ledger or the network (≤ [`MAX_BLOCK_BYTES`]).
    pub max_block_bytes: usize,
    /// Worker threads of the tokio runtime (shared with the node's own tasks).
    pub worker_threads: usize,
    /// Accept peers on private/loopback addresses (local demos and tests).
    pub allow_private_ips: bool,
}

impl ValidatorConfig {
    /// A config with default timeouts and limits.
    pub fn new(
        private_key_seed: [u8; 32],
        validators: Vec<ValidatorPeer>,
        listen: SocketAddr,
        storage_dir: PathBuf,
        namespace: Vec<u8>,
    ) -> Self {
        Self {
            private_key_seed,
            validators,
            listen,
            storage_dir,
            namespace,
            timeouts: Timeouts::default(),
            max_block_bytes: MAX_BLOCK_BYTES,
            worker_threads: 2,
            allow_private_ips: false,
        }
    }

    /// The 32-byte public key that goes with `private_key_seed`.
    pub fn public_key(&self) -> [u8; 32] {
        public_key_bytes(&private_key(&self.private_key_seed).public_key())
    }
}

/// The engine settings shared by production and simulation.
#[derive(Clone, Debug)]
pub(crate) struct EngineSettings {
    pub signer: PrivateKey,
    pub participants: Set<PublicKey>,
    pub namespace: Vec<u8>,
    pub partition_prefix: String,
    pub timeouts: Timeouts,
    pub max_block_bytes: usize,
}

impl EngineSettings {
    /// Validates and converts the key material; `partition_prefix` names this node's storage.
    pub fn new(
        private_key_seed: &[u8; 32],
        validators: &[[u8; 32]],
        namespace: &[u8],
        partition_prefix: String,
        timeouts: Timeouts,
        max_block_bytes: usize,
    ) -> Result<Self, ConfigError> {
        timeouts.validate()?;
        if max_block_bytes > MAX_BLOCK_BYTES {
            return Err(ConfigError::BlockLimitTooLarge {
                got: max_block_bytes,
                max: MAX_BLOCK_BYTES,
            });
        }
        if namespace.is_empty() {
            return Err(ConfigError::EmptyNamespace);
        }
        let signer = private_key(private_key_seed);
        let participants = participant_set(validators)?;
        let me = signer.public_key();
        if participants.position(&me).is_none() {
            return Err(ConfigError::NotAValidator {
                public_key: hex::encode(public_key_bytes(&me)),
            });
        }
        Ok(Self {
            signer,
            participants,
            namespace: namespace.to_vec(),
            partition_prefix,
            timeouts,
            max_block_bytes,
        })
    }
}

/// Parses and orders the validator keys (commonware's participant set is sorted).
pub(crate) fn participant_set(validators: &[[u8; 32]]) -> Result<Set<PublicKey>, ConfigError> {
    let mut keys = Vec::with_capacity(validators.len());
    for (index, bytes) in validators.iter().enumerate() {
        let key = parse_public_key(bytes, index)?;
        if keys.contains(&key) {
            return Err(ConfigError::DuplicateValidator { index });
        }
        keys.push(key);
    }
    Ok(Set::from_iter_dedup(keys))
}

/// Parses validator key #`index`.
pub(crate) fn parse_public_key(bytes: &[u8; 32], index: usize) -> Result<PublicKey, ConfigError> {
    PublicKey::decode(bytes::Bytes::copy_from_slice(bytes)).map_err(|_| ConfigError::BadPublicKey { index })
}

/// The ed25519 key for a 32-byte seed (infallible: every 32-byte string is a valid seed).
pub(crate) fn private_key(seed: &[u8; 32]) -> PrivateKey {
    PrivateKey::decode(bytes::Bytes::copy_from_slice(seed)).expect("any 32 bytes decode as an ed25519 seed")
}

pub(crate) fn public_key_bytes(key: &PublicKey) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.as_ref());
    bytes
}

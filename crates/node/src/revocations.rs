//! The offline revocation snapshot: every revoked device and manufacturer CA as of a final
//! checkpoint, with sparse-Merkle proofs of each revocation-index record (or its absence)
//! against the state root that a quorum of validators cosigned in that checkpoint. A site or
//! gateway that cannot reach the ledger verifies it with the validators' keys alone.

use chipledger_state::model::{IdList, KEY_REVOKED_CA_INDEX, REVOKED_DEVICE_SHARDS, revoked_devices_shard_key};
use chipledger_state::smt::{self, SmtProof};
use chipledger_state::store::{StateRead, key_hash, value_hash};
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::device_tx::{CaId, DeviceId};
use chipledger_types::note::{NoteLimits, VerifierKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::checkpoints::state_extension;

/// Format tag of the snapshot file.
pub const SNAPSHOT_FORMAT: &str = "chipledger-revocations/v1";

/// A state record (or its absence) with its proof.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProvenValue {
    pub key: String,
    /// Hex of the value; absent if the key has no value.
    pub value: Option<String>,
    /// Sparse-Merkle siblings, root first (hex).
    pub siblings: Vec<String>,
    /// The leaf met at the end of the path: [key hash, value hash] (hex).
    pub leaf: Option<[String; 2]>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevocationSnapshot {
    pub format: String,
    /// The final checkpoint (C2SP signed note) whose `chipledger-state` line gives the root.
    pub checkpoint: String,
    pub state_height: u64,
    pub state_root: String,
    /// Convenience copies (hex); a verifier recomputes them from the proven records.
    pub revoked_devices: Vec<String>,
    pub revoked_cas: Vec<String>,
    /// One entry per shard `index/revoked-devices/00` … `ff`.
    pub device_shards: Vec<ProvenValue>,
    pub ca_index: ProvenValue,
}

/// Prove `key` in the state version whose map is `tree` and values are `state`.
pub fn prove(state: &dyn StateRead, tree: &smt::Smt, key: &[u8]) -> ProvenValue {
    let proof = tree.prove(&key_hash(key));
    ProvenValue {
        key: String::from_utf8_lossy(key).into_owned(),
        value: state.get(key).map(hex::encode),
        siblings: proof.siblings.iter().map(hex::encode).collect(),
        leaf: proof.leaf.map(|(k, v)| [hex::encode(k), hex::encode(v)]),
    }
}

fn h32(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("'{s}' is not 32 bytes of hex"))
}

/// Check one proven record against `root`; returns its value.
pub fn check_proven(root: &[u8; 32], expected_key: &[u8], p: &ProvenValue) -> Result<Option<Vec<u8>>, String> {
    if p.key.as_bytes() != expected_key {
        return Err(format!(
            "expected a proof for key '{}', found '{}'",
            String::from_utf8_lossy(expected_key),
            p.key
        ));
    }
    let value = p
        .value
        .as_deref()
        .map(hex::decode)
        .transpose()
        .map_err(|_| "value is not hex".to_string())?;
    let siblings = p.siblings.iter().map(|s| h32(s)).collect::<Result<Vec<_>, _>>()?;
    let leaf = match &p.leaf {
        Some([k, v]) => Some((h32(k)?, h32(v)?)),
        None => None,
    };
    let vh = value.as_deref().map(value_hash);
    smt::verify(root, &key_hash(expected_key), vh.as_ref(), &SmtProof { siblings, leaf })
        .map_err(|e| format!("proof for '{}' does not verify: {e}", p.key))?;
    Ok(value)
}

fn ids<T: Decode>(value: Option<Vec<u8>>) -> Result<Vec<T>, String> {
    match value {
        None => Ok(Vec::new()),
        Some(v) => IdList::<T>::from_cbor(&v, Limits::STATE)
            .map(|l| l.0)
            .map_err(|e| e.to_string()),
    }
}

/// What a verified snapshot says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRevocations {
    pub state_height: u64,
    pub signers: usize,
    pub devices: Vec<DeviceId>,
    pub cas: Vec<CaId>,
}

/// Verify a snapshot offline: the checkpoint carries ≥ `quorum` valid signatures of `known`
/// validator keys, its state line gives the root, and every shard and the CA index are proven
/// against it (so the set is complete, not just each entry genuine).
pub fn verify_snapshot(
    snap: &RevocationSnapshot,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> Result<VerifiedRevocations, String> {
    if snap.format != SNAPSHOT_FORMAT {
        return Err(format!("unknown snapshot format '{}'", snap.format));
    }
    let cp = open_checkpoint(snap.checkpoint.as_bytes(), origin, known, &NoteLimits::default())
        .map_err(|e| e.to_string())?;
    let signers = cp.note.verified.len();
    if signers < quorum {
        return Err(format!(
            "checkpoint has {signers} valid validator signatures; {quorum} needed"
        ));
    }
    let (state_height, root) = state_extension(&cp.checkpoint).ok_or("checkpoint has no chipledger-state line")?;
    if snap.device_shards.len() != REVOKED_DEVICE_SHARDS {
        return Err(format!(
            "snapshot has {} device shards, {REVOKED_DEVICE_SHARDS} expected",
            snap.device_shards.len()
        ));
    }
    let mut devices = Vec::new();
    for (i, p) in snap.device_shards.iter().enumerate() {
        let v = check_proven(&root, &revoked_devices_shard_key(i as u8), p)?;
        devices.extend(ids::<DeviceId>(v)?);
    }
    let cas = ids::<CaId>(check_proven(&root, KEY_REVOKED_CA_INDEX, &snap.ca_index)?)?;
    Ok(VerifiedRevocations {
        state_height,
        signers,
        devices,
        cas,
    })
}

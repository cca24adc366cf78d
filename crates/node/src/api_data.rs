//! Data-at-source routes (issue 5), read side: a device's record chains (head per stream,
//! counts, trust) and anomalies, a gateway's totals, and one committed batch. Registered from
//! [`crate::api`] with one line; everything comes from the finalized state at the tip.
//!
//! Every answer names the `height` it was read at. Proofs: when the newest final
//! (quorum-cosigned) checkpoint binds the tip's state root, the chain heads and the batch record
//! come with sparse-Merkle proofs against it (`proof` / `state_proof`, checkpoint included);
//! otherwise — gateways commit continuously, so the tip is often a block ahead of the newest
//! final checkpoint — those fields are absent and a client that needs them asks again. A
//! batch's `CommitBatch` transaction also comes with its RFC 9162 inclusion proof in the log
//! (against the newest final checkpoint covering it, else the tip), as `/v1/tx/{hash}` serves it.

use axum::Json;
use axum::extract::{Path, Query, State};
use chipledger_state::data::model::{
    AnomalyLog, GatewayRecord, anomalies_of, get_batch, get_gateway, get_head, streams_of,
};
use chipledger_state::model::{device_key, get_device};
use chipledger_state::store::StateRead;
use chipledger_types::block::Block;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::data_tx::{AnomalyKind, BatchHead, BatchRecord, ChainHead, TrustLevel, batch_key, head_key};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::firmware_tx::installed_key;
use chipledger_types::merkle::{hash_leaf, verify_inclusion};
use chipledger_types::note::{NoteLimits, VerifierKey};
use chipledger_types::tx::{TxHash, check_name};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody, InclusionProof, proof_for};
use crate::checkpoints::state_extension;
use crate::executor::{Executor, Inner, TxStatus};
use crate::revocations::{ProvenValue, check_proven, prove};

type ApiResult<T> = Result<T, ApiError>;

// ---- bodies ------------------------------------------------------------------------------------

/// A device+stream chain's head as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChainHeadBody {
    pub stream: String,
    /// Seq of the last committed record.
    pub seq: u64,
    /// Hex record hash (SHA-256 of the COSE_Sign1) of that record.
    pub hash: String,
    /// 0 = self-reported, 1 = registered device key, 2 = attested (DICE evidence).
    pub trust: u8,
    pub trust_name: String,
    /// Records committed on this chain.
    pub records: u64,
    /// Seqs the chain advanced past without a committed record (gaps).
    pub missing: u64,
    /// The gateway and batch that set this head, and its height.
    pub gateway: String,
    pub batch_seq: u64,
    pub height: u64,
}

impl ChainHeadBody {
    fn new(stream: &str, h: &ChainHead) -> Self {
        ChainHeadBody {
            stream: stream.into(),
            seq: h.seq,
            hash: hex::encode(h.hash),
            trust: h.trust as u8,
            trust_name: h.trust.name().into(),
            records: h.records,
            missing: h.missing,
            gateway: h.gateway.clone(),
            batch_seq: h.batch_seq,
            height: h.height,
        }
    }
}

/// One anomaly report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnomalyBody {
    /// `gap`, `duplicate`, `fork`, `replay`, `bad_signature`, `revoked_device`, `malformed`,
    /// `out_of_order`.
    pub kind: String,
    pub stream: String,
    pub seq: u64,
    pub expected_seq: Option<u64>,
    /// Hex hashes of the records involved.
    pub evidence: Vec<String>,
    pub detail: String,
    pub gateway: String,
    pub height: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RebirthBody {
    pub gateway: String,
    pub edge_node: String,
    pub reason: String,
    pub height: u64,
}

/// A device's anomalies: exact counts per kind, the latest reports, rebirth requests.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AnomaliesBody {
    pub total: u64,
    /// Kind name → reports (every kind listed, zeros included).
    pub counts: std::collections::BTreeMap<String, u64>,
    /// The latest reports, oldest first (every report stays in the log).
    pub recent: Vec<AnomalyBody>,
    pub rebirths: u64,
    pub last_rebirth: Option<RebirthBody>,
}

impl From<AnomalyLog> for AnomaliesBody {
    fn from(log: AnomalyLog) -> Self {
        AnomaliesBody {
            total: log.total(),
            counts: AnomalyKind::ALL
                .into_iter()
                .map(|k| (k.name().to_string(), log.count(k)))
                .collect(),
            recent: log
                .recent
                .into_iter()
                .map(|e| AnomalyBody {
                    kind: e.kind.name().into(),
                    stream: e.stream,
                    seq: e.seq,
                    expected_seq: e.expected_seq,
                    evidence: e.evidence.iter().map(hex::encode).collect(),
                    detail: e.detail,
                    gateway: e.gateway,
                    height: e.height,
                })
                .collect(),
            rebirths: log.rebirths,
            last_rebirth: log.last_rebirth.map(|r| RebirthBody {
                gateway: r.gateway,
                edge_node: r.edge_node,
                reason: r.reason,
                height: r.height,
            }),
        }
    }
}

/// State proofs against the root the quorum-signed `checkpoint` binds.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StateProofs {
    /// The final checkpoint (C2SP signed note) whose `chipledger-state` line is the root.
    pub checkpoint: String,
    pub state_height: u64,
    pub state_root: String,
    /// One proven key per listed record (`data/head/<device>/<stream>`, `data/batch/…`).
    pub values: Vec<ProvenValue>,
}

/// A device's record chains and anomalies.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceDataBody {
    pub device: String,
    /// The finalized height the answer was read at.
    pub height: u64,
    /// Registered on the ledger (and not revoked).
    pub registered: bool,
    pub revoked: bool,
    /// Chain heads per stream (sorted by stream), filtered by `min_trust`.
    pub streams: Vec<ChainHeadBody>,
    /// Records committed over the listed streams.
    pub records: u64,
    pub anomalies: AnomaliesBody,
    /// Proofs of the listed heads, when the newest final checkpoint binds this height's state.
    pub proof: Option<StateProofs>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchHeadBody {
    pub device: String,
    pub stream: String,
    pub seq: u64,
    pub hash: String,
    pub records: u32,
    pub trust: u8,
}

impl From<&BatchHead> for BatchHeadBody {
    fn from(h: &BatchHead) -> Self {
        BatchHeadBody {
            device: h.device.to_string(),
            stream: h.stream.clone(),
            seq: h.seq,
            hash: hex::encode(h.hash),
            records: h.records,
            trust: h.trust as u8,
        }
    }
}

/// A committed batch with its proofs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchBody {
    pub height: u64,
    pub gateway: String,
    pub seq: u64,
    pub operator: String,
    /// Hex RFC 9162 root over the batch's record hashes.
    pub root: String,
    pub record_count: u32,
    pub first_timestamp_ms: u64,
    pub last_timestamp_ms: u64,
    pub heads: Vec<BatchHeadBody>,
    /// Height of the block that committed the batch.
    pub committed_height: u64,
    /// Hex hash of the `CommitBatch` transaction.
    pub tx: String,
    /// Hex of the signed `CommitBatch` transaction (the log leaf; its hash is `tx`).
    pub tx_cbor: Option<String>,
    /// The transaction's inclusion proof in the log.
    pub tx_proof: Option<InclusionProof>,
    /// `data/batch/<gateway>/<seq>` proven, when the newest final checkpoint binds the tip.
    pub state_proof: Option<StateProofs>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GatewayBody {
    pub height: u64,
    pub name: String,
    pub operator: String,
    pub registered_height: u64,
    /// Seq of the last committed batch (0 = none).
    pub last_batch: u64,
    /// Records committed, all batches together.
    pub records: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataDeviceQuery {
    /// Only streams whose head was committed at this trust level or higher (0, 1 or 2).
    pub min_trust: Option<u8>,
}

// ---- helpers -----------------------------------------------------------------------------------

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

fn parse_device(s: &str) -> ApiResult<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| ApiError::bad("a device id is 40 hex characters"))
}

fn parse_gateway(s: &str) -> ApiResult<()> {
    check_name(s).map_err(|e| ApiError::bad(format!("gateway '{s}': {e}")))
}

/// Proofs of `keys` against the tip's state root, if the newest final checkpoint binds it.
pub(crate) fn state_proofs(inner: &Inner, s: &dyn StateRead, keys: &[Vec<u8>]) -> ApiResult<Option<StateProofs>> {
    let Some((_, note)) = inner.votes.latest_final.clone() else {
        return Ok(None);
    };
    let text = chipledger_types::note::Note::parse(note.as_bytes(), &Default::default())
        .map_err(internal)?
        .text;
    let cp = chipledger_types::checkpoint::Checkpoint::parse(&text).map_err(internal)?;
    let Some((state_height, root)) = state_extension(&cp) else {
        return Err(internal("checkpoint without state line"));
    };
    if root != inner.tip.header.state_root {
        return Ok(None);
    }
    Ok(Some(StateProofs {
        checkpoint: note,
        state_height,
        state_root: hex::encode(root),
        values: keys.iter().map(|k| prove(s, &inner.tip.smt, k)).collect(),
    }))
}

/// The encoded transaction `hash` from the block at `height`.
pub(crate) fn tx_bytes(exec: &Executor, height: u64, hash: &TxHash) -> ApiResult<Option<Vec<u8>>> {
    let raw = exec.lock().db.block(height).map_err(internal)?;
    let Some(raw) = raw else { return Ok(None) };
    let block = Block::from_bytes(&raw).map_err(internal)?;
    Ok(block.txs.into_iter().find(|t| TxHash::of(t) == *hash))
}

fn min_trust(q: &DataDeviceQuery) -> ApiResult<TrustLevel> {
    match q.min_trust {
        None => Ok(TrustLevel::SelfReported),
        Some(t) => TrustLevel::ALL
            .into_iter()
            .find(|l| *l as u8 == t)
            .ok_or_else(|| ApiError::bad("min_trust is 0, 1 or 2")),
    }
}

// ---- routes ------------------------------------------------------------------------------------

/// A device's record chains (head, counts and trust per stream) and anomalies, with state
/// proofs of the heads when the newest final checkpoint binds the current state.
#[utoipa::path(get, path = "/v1/data/devices/{id}", params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$"), DataDeviceQuery),
    responses((status = 200, description = "The device's chains and anomalies", body = DeviceDataBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "The ledger knows nothing of this device", body = ErrorBody)))]
async fn device_data(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<DataDeviceQuery>,
) -> ApiResult<Json<DeviceDataBody>> {
    let device = parse_device(&id)?;
    let min = min_trust(&q)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let record = get_device(&s, &device).map_err(internal)?;
    let anomalies = anomalies_of(&s, &device).map_err(internal)?;
    let all_streams = streams_of(&s, &device).map_err(internal)?;
    if record.is_none() && all_streams.is_empty() && anomalies == AnomalyLog::default() {
        return Err(ApiError::not_found(format!("no data of device {device}")));
    }
    let mut streams = Vec::new();
    let mut keys = Vec::new();
    for stream in all_streams {
        let Some(head) = get_head(&s, &device, &stream).map_err(internal)? else {
            continue;
        };
        if head.trust >= min {
            keys.push(head_key(&device, &stream));
            streams.push(ChainHeadBody::new(&stream, &head));
        }
    }
    let proof = state_proofs(&inner, &s, &keys)?;
    Ok(Json(DeviceDataBody {
        device: device.to_string(),
        height: inner.tip.height,
        registered: record.as_ref().is_some_and(|r| r.revoked.is_none()),
        revoked: record.as_ref().is_some_and(|r| r.revoked.is_some()),
        records: streams.iter().map(|h| h.records).sum(),
        streams,
        anomalies: anomalies.into(),
        proof,
    }))
}

/// Most chain heads `/v1/devices/{id}/proofs` proves (the first, by stream name).
pub const MAX_PROVEN_HEADS: usize = 64;

/// A device's state, proven: what a client needs to check, without trusting the node, the
/// device record (identity, owner, attestation), its installed firmware and its chain heads.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceProofsBody {
    pub device: String,
    /// The finalized height the answer was read at.
    pub height: u64,
    /// The state keys proven, in the order of `proofs.values`: `device/<id>`,
    /// `fw/installed/<id>`, then `data/head/<id>/<stream>` for up to 64 streams.
    pub keys: Vec<String>,
    /// Absent while the newest final checkpoint does not bind this height's state yet (the tip
    /// is ahead of it): ask again after `retry_after_ms`.
    pub proofs: Option<StateProofs>,
    pub retry_after_ms: Option<u64>,
}

/// How long a client should wait before asking again for proofs that were not ready.
const PROOF_RETRY_MS: u64 = 1000;

/// The device's record, installed firmware and chain heads with sparse-Merkle proofs against
/// the state root of the newest final checkpoint (included). Absent keys are proven absent.
#[utoipa::path(get, path = "/v1/devices/{id}/proofs", params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$")),
    responses((status = 200, description = "The proven keys (proofs absent while the checkpoint lags the tip)", body = DeviceProofsBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such device", body = ErrorBody)))]
async fn device_proofs(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<DeviceProofsBody>> {
    Ok(Json(device_proofs_body(&c, &id)?))
}

/// The body of `/v1/devices/{id}/proofs` (also the test hook's starting point).
pub(crate) fn device_proofs_body(c: &Ctx, id: &str) -> ApiResult<DeviceProofsBody> {
    let device = parse_device(id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    if get_device(&s, &device).map_err(internal)?.is_none() {
        return Err(ApiError::not_found(format!("no device {device}")));
    }
    let mut keys = vec![device_key(&device), installed_key(&device)];
    let streams = streams_of(&s, &device).map_err(internal)?;
    keys.extend(streams.iter().take(MAX_PROVEN_HEADS).map(|st| head_key(&device, st)));
    let proofs = state_proofs(&inner, &s, &keys)?;
    Ok(DeviceProofsBody {
        device: device.to_string(),
        height: inner.tip.height,
        keys: keys.iter().map(|k| String::from_utf8_lossy(k).into_owned()).collect(),
        retry_after_ms: proofs.is_none().then_some(PROOF_RETRY_MS),
        proofs,
    })
}

/// One committed batch: root, counts, heads, the `CommitBatch` transaction with its log
/// inclusion proof, and the batch record's state proof when a final checkpoint binds the tip.
#[utoipa::path(get, path = "/v1/data/batches/{gateway}/{seq}",
    params(("gateway" = String, Path, description = "Gateway name", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"), ("seq" = u64, Path, description = "Batch number")),
    responses((status = 200, description = "The batch with its proofs", body = BatchBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody)))]
async fn batch(State(c): State<Ctx>, Path((gateway, seq)): Path<(String, u64)>) -> ApiResult<Json<BatchBody>> {
    parse_gateway(&gateway)?;
    let (height, rec, state_proof): (u64, BatchRecord, _) = {
        let inner = c.exec.lock();
        let s = inner.db.state().map_err(internal)?;
        let rec = get_batch(&s, &gateway, seq)
            .map_err(internal)?
            .ok_or_else(|| ApiError::not_found(format!("gateway '{gateway}' has no committed batch {seq}")))?;
        let proof = state_proofs(&inner, &s, &[batch_key(&gateway, seq)])?;
        (inner.tip.height, rec, proof)
    };
    let (tx_cbor, tx_proof) = match c.exec.tx_status(&rec.tx) {
        TxStatus::Final { height, index } => (
            tx_bytes(&c.exec, height, &rec.tx)?.map(hex::encode),
            Some(proof_for(&c.exec, index)?),
        ),
        _ => (None, None),
    };
    Ok(Json(BatchBody {
        height,
        gateway: rec.gateway,
        seq: rec.seq,
        operator: rec.operator,
        root: hex::encode(rec.root),
        record_count: rec.record_count,
        first_timestamp_ms: rec.first_timestamp_ms,
        last_timestamp_ms: rec.last_timestamp_ms,
        heads: rec.heads.iter().map(Into::into).collect(),
        committed_height: rec.height,
        tx: rec.tx.to_string(),
        tx_cbor,
        tx_proof,
        state_proof,
    }))
}

/// A gateway: its operator and totals.
#[utoipa::path(get, path = "/v1/data/gateways/{name}", params(("name" = String, Path, description = "Gateway name", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")),
    responses((status = 200, description = "The gateway", body = GatewayBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such gateway", body = ErrorBody)))]
async fn gateway(State(c): State<Ctx>, Path(name): Path<String>) -> ApiResult<Json<GatewayBody>> {
    parse_gateway(&name)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let g: GatewayRecord = get_gateway(&s, &name)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no gateway '{name}'")))?;
    Ok(Json(GatewayBody {
        height: inner.tip.height,
        name: g.name,
        operator: g.operator,
        registered_height: g.registered_height,
        last_batch: g.last_batch,
        records: g.records,
    }))
}

/// The data routes (merged into [`crate::api`]'s single route list).
pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(device_data))
        .routes(routes!(device_proofs))
        .routes(routes!(batch))
        .routes(routes!(gateway))
}

// ---- client-side verification --------------------------------------------------------------------

fn h32(s: &str) -> Result<[u8; 32], String> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("'{s}' is not 32 bytes of hex"))
}

/// Open `note` as a checkpoint of `origin` with ≥ `quorum` valid signatures of `known` keys.
fn open_final(
    note: &str,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> Result<chipledger_types::checkpoint::Checkpoint, String> {
    let cp = open_checkpoint(note.as_bytes(), origin, known, &NoteLimits::default()).map_err(|e| e.to_string())?;
    let signers = cp.note.verified.len();
    if signers < quorum {
        return Err(format!(
            "checkpoint has {signers} valid validator signatures; {quorum} needed"
        ));
    }
    Ok(cp.checkpoint)
}

/// Verify a [`BatchBody`] offline: the batch record is proven against the state root a
/// quorum-signed checkpoint binds and matches what the node says (root, counts, heads, tx);
/// and, when the answer carries them, the transaction bytes hash to `tx` and their log leaf is
/// included under a quorum-signed checkpoint. Returns the proven record.
pub fn verify_batch(
    body: &BatchBody,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> Result<BatchRecord, String> {
    let sp = body.state_proof.as_ref().ok_or("the answer carries no state proof")?;
    let cp = open_final(&sp.checkpoint, origin, known, quorum)?;
    let (height, root) = state_extension(&cp).ok_or("checkpoint has no chipledger-state line")?;
    if hex::encode(root) != sp.state_root || height != sp.state_height {
        return Err("the answer's state root is not the one the checkpoint cosigns".into());
    }
    let key = batch_key(&body.gateway, body.seq);
    let proven = sp.values.first().ok_or("no proven value")?;
    let bytes = check_proven(&root, &key, proven)?.ok_or("the batch is proven absent")?;
    let rec = BatchRecord::from_cbor(&bytes, Limits::STATE).map_err(|e| e.to_string())?;
    let heads: Vec<BatchHeadBody> = rec.heads.iter().map(Into::into).collect();
    let same = hex::encode(rec.root) == body.root
        && rec.record_count == body.record_count
        && rec.tx.to_string() == body.tx
        && heads.len() == body.heads.len()
        && heads
            .iter()
            .zip(&body.heads)
            .all(|(a, b)| a.hash == b.hash && a.seq == b.seq);
    if !same {
        return Err("the node's batch differs from the proven record".into());
    }
    if let (Some(tx), Some(p)) = (&body.tx_cbor, &body.tx_proof) {
        let tx = hex::decode(tx).map_err(|_| "tx_cbor is not hex")?;
        if TxHash::of(&tx) != rec.tx {
            return Err("tx_cbor does not hash to the batch's transaction".into());
        }
        let note = p
            .checkpoint
            .as_deref()
            .ok_or("the inclusion proof is not under a final checkpoint")?;
        let log = open_final(note, origin, known, quorum)?;
        let path = p.hashes.iter().map(|s| h32(s)).collect::<Result<Vec<_>, _>>()?;
        if log.size != p.log_size {
            return Err("the inclusion proof's size is not the checkpoint's".into());
        }
        verify_inclusion(&hash_leaf(&tx), p.leaf_index, log.size, &path, &log.root).map_err(|e| e.to_string())?;
    }
    Ok(rec)
}

#[cfg(test)]
mod tests {
    /// Every data route is in the one OpenAPI document, every response has a description, and
    /// every `$ref` resolves.
    #[test]
    fn data_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&[
            "/v1/data/devices/{id}",
            "/v1/devices/{id}/proofs",
            "/v1/data/batches/{gateway}/{seq}",
            "/v1/data/gateways/{name}",
        ]);
    }
}

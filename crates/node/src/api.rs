//! The HTTP/JSON API (axum). Routes are declared once with `#[utoipa::path]`; `/openapi.json`
//! is generated from them. The API never writes state except by submitting transactions.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use chipledger_state::device::{ATTEST_NONCE_WINDOW_BLOCKS, current_challenge};
use chipledger_state::model::{
    Attestation, DeviceRecord, DeviceRevocation, HistoryKind, device_history, get_ca, get_device, get_org, get_seq,
    get_validator, org_ca_ids, org_names, validator_names,
};
use chipledger_state::store::{StateRead, key_hash};
use chipledger_types::block::Block;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_TX_BYTES;
use chipledger_types::merkle::{consistency_proof, inclusion_proof};
use chipledger_types::tx::TxHash;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::executor::{Executor, SubmitError, TxStatus};
use crate::fleet_index::{
    DEFAULT_LIST_LIMIT, DeviceFilter, DeviceStatus, DeviceSummary, FleetQueryError, FleetStats, IdPrefix, parse_cursor,
};
use crate::http_guard::{RateLimitConfig, RateLimitConfigError};

type ApiResult<T> = Result<T, ApiError>;

/// A typed API error: `{"error": code, "message": text}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code (e.g. `bad_signature`, `replay`, `not_found`).
    pub error: String,
    pub message: String,
}

pub struct ApiError(pub(crate) StatusCode, pub(crate) ErrorBody);

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError(
            status,
            ErrorBody {
                error: code.into(),
                message: message.into(),
            },
        )
    }
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let status = match &e {
            SubmitError::Mempool(crate::mempool::MempoolError::Duplicate) | SubmitError::AlreadyFinal(_) => {
                StatusCode::CONFLICT
            }
            SubmitError::Mempool(_) => StatusCode::SERVICE_UNAVAILABLE,
            SubmitError::Rejected(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) exec: Executor,
    /// The node's image store; `None` when the API runs without one (tests).
    blobs: Option<Arc<crate::blob_store::BlobStore>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// Hex SHA-256 of the encoded transaction.
    pub hash: String,
    pub status: String,
}

/// Submit one transaction: the body is the canonical CBOR envelope (`application/cbor`).
#[utoipa::path(post, path = "/v1/tx", request_body(content = Vec<u8>, content_type = "application/cbor"),
    responses((status = 202, description = "Accepted into the mempool", body = Submitted), (status = 400, description = "Bad request: a typed error", body = ErrorBody), (status = 409, description = "Already known", body = ErrorBody), (status = 413, description = "Over MAX_TX_BYTES (64 KiB)", body = ErrorBody), (status = 503, description = "Mempool full; retry later", body = ErrorBody)))]
async fn submit_tx(State(c): State<Ctx>, body: axum::body::Body) -> ApiResult<(StatusCode, Json<Submitted>)> {
    let body = crate::http_guard::read_body(body, MAX_TX_BYTES, "a transaction").await?;
    let exec = c.exec.clone();
    let hash = tokio::task::spawn_blocking(move || exec.submit(body.to_vec(), true))
        .await
        .map_err(ApiError::internal)??;
    Ok((
        StatusCode::ACCEPTED,
        Json(Submitted {
            hash: hash.to_string(),
            status: "pending".into(),
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// Hex-encoded transaction envelopes.
    pub txs: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchItem {
    pub hash: Option<String>,
    /// `pending`, or an error code.
    pub status: String,
    pub message: Option<String>,
}

/// Most transactions in one batch submission.
pub const MAX_BATCH_TXS: usize = 4096;

/// Submit many transactions at once (hex-encoded); each gets its own result.
#[utoipa::path(post, path = "/v1/txs", request_body = BatchRequest, responses((status = 200, description = "OK", body = Vec<BatchItem>), (status = 400, description = "Bad request: a typed error", body = ErrorBody),
    (status = 413, description = "Body over 16 MiB (`MAX_BATCH_BODY_BYTES`)", body = ErrorBody)))]
async fn submit_batch(State(c): State<Ctx>, body: axum::body::Body) -> ApiResult<Json<Vec<BatchItem>>> {
    let body = crate::http_guard::read_body(body, crate::http_guard::MAX_BATCH_BODY_BYTES, "a batch").await?;
    let req: BatchRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("not a batch request: {e}")))?;
    if req.txs.len() > MAX_BATCH_TXS {
        return Err(ApiError::bad(format!("at most {MAX_BATCH_TXS} transactions per batch")));
    }
    let exec = c.exec.clone();
    let items = tokio::task::spawn_blocking(move || {
        let decoded: Vec<Result<Vec<u8>, BatchItem>> = req
            .txs
            .iter()
            .map(|h| match hex::decode(h) {
                Err(_) => Err(BatchItem {
                    hash: None,
                    status: "malformed".into(),
                    message: Some("not hex".into()),
                }),
                Ok(b) if b.len() > MAX_TX_BYTES => Err(BatchItem {
                    hash: None,
                    status: "too_large".into(),
                    message: None,
                }),
                Ok(b) => Ok(b),
            })
            .collect();
        let good: Vec<Vec<u8>> = decoded.iter().filter_map(|d| d.as_ref().ok().cloned()).collect();
        let mut results = exec.submit_many(good, true).into_iter();
        decoded
            .into_iter()
            .map(|d| match d {
                Err(item) => item,
                Ok(_) => match results.next().expect("one result per decoded transaction") {
                    Ok(hash) => BatchItem {
                        hash: Some(hash.to_string()),
                        status: "pending".into(),
                        message: None,
                    },
                    Err(e) => BatchItem {
                        hash: None,
                        status: e.code().into(),
                        message: Some(e.to_string()),
                    },
                },
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Json(items))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub log_size: u64,
    pub root: String,
    /// Audit path, hex, leaf's sibling first (RFC 9162 §2.1.3).
    pub hashes: Vec<String>,
    /// The final signed checkpoint (C2SP note) this proof is against, if one covers the leaf.
    pub checkpoint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TxStatusBody {
    pub hash: String,
    /// `final`, `pending`, `rejected` or `unknown`.
    pub status: String,
    pub height: Option<u64>,
    pub reason: Option<String>,
    pub proof: Option<InclusionProof>,
}

fn parse_hash(s: &str) -> ApiResult<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad("expected 64 hex characters"))
}

/// Status of a transaction; once final, with its inclusion proof.
#[utoipa::path(get, path = "/v1/tx/{hash}", params(("hash" = String, Path, description = "hex tx hash", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "OK", body = TxStatusBody), (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn tx_status(State(c): State<Ctx>, Path(hash): Path<String>) -> ApiResult<Json<TxStatusBody>> {
    Ok(Json(tx_status_body(&c, hash)?))
}

/// The body `/v1/tx/{hash}` answers (shared with the test hook that tampers with it).
pub(crate) fn tx_status_body(c: &Ctx, hash: String) -> ApiResult<TxStatusBody> {
    let h = TxHash(parse_hash(&hash)?);
    let body = match c.exec.tx_status(&h) {
        TxStatus::Final { height, index } => {
            let proof = proof_for(&c.exec, index)?;
            TxStatusBody {
                hash,
                status: "final".into(),
                height: Some(height),
                reason: None,
                proof: Some(proof),
            }
        }
        TxStatus::Pending => TxStatusBody {
            hash,
            status: "pending".into(),
            height: None,
            reason: None,
            proof: None,
        },
        TxStatus::Rejected(why) => TxStatusBody {
            hash,
            status: "rejected".into(),
            height: None,
            reason: Some(why),
            proof: None,
        },
        TxStatus::Unknown => TxStatusBody {
            hash,
            status: "unknown".into(),
            height: None,
            reason: None,
            proof: None,
        },
    };
    Ok(body)
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TxRawBody {
    /// Hex transaction hash: SHA-256 of `cbor`.
    pub hash: String,
    /// Height of the finalized block holding it.
    pub height: u64,
    /// The encoded transaction (canonical CBOR), hex: the RFC 9162 leaf input of its log entry.
    pub cbor: String,
}

/// A final transaction's encoded bytes, so a client can check them against the hash and compute
/// the log leaf itself (read from the finalized block that holds it).
#[utoipa::path(get, path = "/v1/tx/{hash}/raw", params(("hash" = String, Path, description = "hex tx hash", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "OK", body = TxRawBody), (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "Not found: the transaction is not final", body = ErrorBody)))]
async fn tx_raw(State(c): State<Ctx>, Path(hash): Path<String>) -> ApiResult<Json<TxRawBody>> {
    let h = TxHash(parse_hash(&hash)?);
    let TxStatus::Final { height, .. } = c.exec.tx_status(&h) else {
        return Err(ApiError::not_found(format!("transaction {hash} is not final")));
    };
    let raw = c.exec.lock().db.block(height).map_err(ApiError::internal)?;
    let raw = raw.ok_or_else(|| ApiError::internal(format!("finalized block {height} is missing")))?;
    let block = Block::from_bytes(&raw).map_err(ApiError::internal)?;
    let tx = block
        .txs
        .into_iter()
        .find(|t| TxHash::of(t) == h)
        .ok_or_else(|| ApiError::internal(format!("transaction {hash} is not in block {height}")))?;
    Ok(Json(TxRawBody {
        hash: h.to_string(),
        height,
        cbor: hex::encode(tx),
    }))
}

/// Inclusion proof for a leaf against the newest final checkpoint covering it, else the tip.
pub(crate) fn proof_for(exec: &Executor, index: u64) -> ApiResult<InclusionProof> {
    let inner = exec.lock();
    let fin = inner.votes.latest_final.clone();
    let (size, root, checkpoint) = match fin.and_then(|(_, note)| parse_final(&note).map(|(s, r)| (s, r, note))) {
        Some((s, r, note)) if index < s => (s, r, Some(note)),
        _ => (inner.tip.frontier.size(), inner.tip.frontier.root(), None),
    };
    let log = inner.db.log().map_err(ApiError::internal)?;
    let hashes = inclusion_proof(&log, index, size).map_err(ApiError::internal)?;
    Ok(InclusionProof {
        leaf_index: index,
        log_size: size,
        root: hex::encode(root),
        hashes: hashes.iter().map(hex::encode).collect(),
        checkpoint,
    })
}

fn parse_final(note: &str) -> Option<(u64, [u8; 32])> {
    let n = chipledger_types::note::Note::parse(note.as_bytes(), &Default::default()).ok()?;
    let cp = chipledger_types::checkpoint::Checkpoint::parse(&n.text).ok()?;
    Some((cp.size, cp.root))
}

/// A final transaction's inclusion proof in C2SP tlog-proof form (`c2sp.org/tlog-proof@v1`),
/// against the newest final checkpoint: verifiable offline with the validators' keys.
#[utoipa::path(get, path = "/v1/tlog-proof/{hash}", params(("hash" = String, Path, description = "hex tx hash", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "OK", content_type = "text/plain", body = String), (status = 404, description = "Not found", body = ErrorBody)))]
async fn tlog_proof(State(c): State<Ctx>, Path(hash): Path<String>) -> ApiResult<Response> {
    let h = TxHash(parse_hash(&hash)?);
    let TxStatus::Final { index, .. } = c.exec.tx_status(&h) else {
        return Err(ApiError::not_found(format!("transaction {hash} is not final")));
    };
    let p = proof_for(&c.exec, index)?;
    let note = p
        .checkpoint
        .ok_or_else(|| ApiError::not_found("no final checkpoint covers this transaction yet"))?;
    let hashes = p.hashes.iter().map(|h| parse_hash(h)).collect::<ApiResult<Vec<_>>>()?;
    let text = chipledger_types::tlog_proof::TlogProof {
        extra: None,
        index,
        hashes,
        checkpoint_note: note,
    }
    .format();
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CheckpointBody {
    /// Block height whose checkpoint this is.
    pub height: u64,
    pub log_size: u64,
    pub root: String,
    pub signatures: usize,
    pub quorum: usize,
    /// Height and hex state root bound by the checkpoint's `chipledger-state` extension line.
    pub state_height: Option<u64>,
    pub state_root: Option<String>,
    /// The C2SP signed note (checkpoint body + cosignature lines).
    pub note: String,
}

/// The newest final checkpoint (signed by a quorum of validators).
#[utoipa::path(get, path = "/v1/checkpoint", responses((status = 200, description = "OK", body = CheckpointBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn checkpoint(State(c): State<Ctx>) -> ApiResult<Json<CheckpointBody>> {
    let fin = c.exec.lock().votes.latest_final.clone();
    let (height, note) = fin.ok_or_else(|| ApiError::not_found("no final checkpoint yet"))?;
    let parsed =
        chipledger_types::note::Note::parse(note.as_bytes(), &Default::default()).map_err(ApiError::internal)?;
    let (log_size, root) = parse_final(&note).ok_or_else(|| ApiError::internal("stored checkpoint unreadable"))?;
    let state = chipledger_types::checkpoint::Checkpoint::parse(&parsed.text)
        .ok()
        .and_then(|cp| crate::checkpoints::state_extension(&cp));
    Ok(Json(CheckpointBody {
        height,
        log_size,
        root: hex::encode(root),
        signatures: parsed.signatures.len(),
        quorum: c.exec.genesis_config().quorum(),
        state_height: state.map(|(h, _)| h),
        state_root: state.map(|(_, r)| hex::encode(r)),
        note,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ConsistencyQuery {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConsistencyBody {
    pub from: u64,
    pub to: u64,
    pub hashes: Vec<String>,
}

/// Consistency proof between two log sizes (RFC 9162 §2.1.4).
#[utoipa::path(get, path = "/v1/proof/consistency", params(ConsistencyQuery),
    responses((status = 200, description = "OK", body = ConsistencyBody), (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn consistency(State(c): State<Ctx>, Query(q): Query<ConsistencyQuery>) -> ApiResult<Json<ConsistencyBody>> {
    let inner = c.exec.lock();
    if q.to > inner.tip.frontier.size() {
        return Err(ApiError::bad(format!(
            "log has only {} leaves",
            inner.tip.frontier.size()
        )));
    }
    let log = inner.db.log().map_err(ApiError::internal)?;
    let hashes = consistency_proof(&log, q.from, q.to).map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(ConsistencyBody {
        from: q.from,
        to: q.to,
        hashes: hashes.iter().map(hex::encode).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct InclusionQuery {
    pub index: u64,
    pub size: u64,
}

/// Inclusion proof of leaf `index` in the log of `size` leaves.
#[utoipa::path(get, path = "/v1/proof/inclusion", params(InclusionQuery),
    responses((status = 200, description = "OK", body = InclusionProof), (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn inclusion(State(c): State<Ctx>, Query(q): Query<InclusionQuery>) -> ApiResult<Json<InclusionProof>> {
    let inner = c.exec.lock();
    if q.size > inner.tip.frontier.size() {
        return Err(ApiError::bad(format!(
            "log has only {} leaves",
            inner.tip.frontier.size()
        )));
    }
    let log = inner.db.log().map_err(ApiError::internal)?;
    let hashes = inclusion_proof(&log, q.index, q.size).map_err(|e| ApiError::bad(e.to_string()))?;
    let root = chipledger_types::merkle::root_from_store(&log, q.size).map_err(ApiError::internal)?;
    Ok(Json(InclusionProof {
        leaf_index: q.index,
        log_size: q.size,
        root: hex::encode(root),
        hashes: hashes.iter().map(hex::encode).collect(),
        checkpoint: None,
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeaderBody {
    pub height: u64,
    pub digest: String,
    pub parent: String,
    pub timestamp_ms: u64,
    pub proposer: u32,
    pub tx_count: u32,
    pub log_size: u64,
    pub log_root: String,
    pub state_root: String,
}

impl HeaderBody {
    fn of(h: &chipledger_types::block::BlockHeader) -> Self {
        HeaderBody {
            height: h.height,
            digest: hex::encode(h.digest()),
            parent: hex::encode(h.parent),
            timestamp_ms: h.timestamp_ms,
            proposer: h.proposer,
            tx_count: h.tx_count,
            log_size: h.log_size,
            log_root: hex::encode(h.log_root),
            state_root: hex::encode(h.state_root),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlockBody {
    pub header: HeaderBody,
    /// Transaction hashes in log order.
    pub tx_hashes: Vec<String>,
    /// The encoded block, hex.
    pub raw: String,
}

/// A finalized block by height.
#[utoipa::path(get, path = "/v1/blocks/{height}", params(("height" = u64, Path)),
    responses((status = 200, description = "OK", body = BlockBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn block(State(c): State<Ctx>, Path(height): Path<u64>) -> ApiResult<Json<BlockBody>> {
    let raw = c.exec.lock().db.block(height).map_err(ApiError::internal)?;
    let raw = raw.ok_or_else(|| ApiError::not_found(format!("no finalized block at height {height}")))?;
    let b = Block::from_bytes(&raw).map_err(ApiError::internal)?;
    Ok(Json(BlockBody {
        header: HeaderBody::of(&b.header),
        tx_hashes: b.txs.iter().map(|t| TxHash::of(t).to_string()).collect(),
        raw: hex::encode(&raw),
    }))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgBody {
    pub name: String,
    pub roles: Vec<String>,
    /// Keys with their validity: `key` is `ed25519:<hex>` or `p256:<hex>`.
    pub keys: Vec<KeyBody>,
    pub last_seq: u64,
    pub added_height: u64,
    pub removed_height: Option<u64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyBody {
    pub key: String,
    pub key_id: String,
    pub from_height: u64,
    pub until_height: Option<u64>,
}

/// Active organisations with their roles, keys and last used sequence number.
#[utoipa::path(get, path = "/v1/orgs", responses((status = 200, description = "OK", body = Vec<OrgBody>)))]
async fn orgs(State(c): State<Ctx>) -> ApiResult<Json<Vec<OrgBody>>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for name in org_names(&s).map_err(ApiError::internal)? {
        if let Some(o) = get_org(&s, &name).map_err(ApiError::internal)? {
            out.push(org_body(&s, o)?);
        }
    }
    Ok(Json(out))
}

fn org_body(s: &dyn StateRead, o: chipledger_state::model::OrgRecord) -> ApiResult<OrgBody> {
    Ok(OrgBody {
        last_seq: get_seq(s, &o.name).map_err(ApiError::internal)?,
        roles: o.roles.iter().map(|r| r.name().to_string()).collect(),
        keys: o
            .keys
            .iter()
            .map(|k| KeyBody {
                key: k.key.to_string(),
                key_id: hex::encode(k.key.id().0),
                from_height: k.from_height,
                until_height: k.until_height,
            })
            .collect(),
        name: o.name,
        added_height: o.added_height,
        removed_height: o.removed_height,
    })
}

/// One organisation (also removed ones).
#[utoipa::path(get, path = "/v1/orgs/{name}", params(("name" = String, Path)),
    responses((status = 200, description = "OK", body = OrgBody), (status = 404, description = "Not found", body = ErrorBody)))]
async fn org(State(c): State<Ctx>, Path(name): Path<String>) -> ApiResult<Json<OrgBody>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let o = get_org(&s, &name)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no organisation '{name}'")))?;
    Ok(Json(org_body(&s, o)?))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidatorBody {
    pub name: String,
    pub org: String,
    pub index: u32,
    pub consensus_key: String,
    /// Current checkpoint-cosigning key as a C2SP verifier key string (`name+keyid+base64`).
    pub note_verifier_key: Option<String>,
    pub p2p_address: String,
    pub api_url: String,
}

/// The validator set with each validator's current cosigning key.
#[utoipa::path(get, path = "/v1/validators", responses((status = 200, description = "OK", body = Vec<ValidatorBody>)))]
async fn validators(State(c): State<Ctx>) -> ApiResult<Json<Vec<ValidatorBody>>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let height = inner.tip.height;
    let mut out = Vec::new();
    for name in validator_names(&s).map_err(ApiError::internal)? {
        let Some(v) = get_validator(&s, &name).map_err(ApiError::internal)? else {
            continue;
        };
        let spec = c.exec.genesis_config().validators.get(v.index as usize);
        out.push(ValidatorBody {
            note_verifier_key: v
                .note_key_at(height)
                .and_then(|k| crate::checkpoints::verifier_for(&v.name, k))
                .map(|k| k.to_string()),
            org: v.org,
            index: v.index,
            consensus_key: hex::encode(v.consensus_key),
            p2p_address: spec.map(|s| s.p2p_address.clone()).unwrap_or_default(),
            api_url: spec.map(|s| s.api_url.clone()).unwrap_or_default(),
            name: v.name,
        });
    }
    out.sort_by_key(|v| v.index);
    Ok(Json(out))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatusBody {
    pub chain_id: String,
    /// Name of the validator answering.
    pub name: String,
    pub height: u64,
    pub block_digest: String,
    pub log_size: u64,
    pub log_root: String,
    pub state_root: String,
    pub final_checkpoint_height: Option<u64>,
    pub mempool_txs: usize,
    pub finality_p50_ms: Option<u64>,
    pub finality_p99_ms: Option<u64>,
}

/// This validator's view: height, log, state root, newest final checkpoint.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, description = "OK", body = StatusBody)))]
async fn status(State(c): State<Ctx>) -> Json<StatusBody> {
    let inner = c.exec.lock();
    let t = &inner.tip;
    let m = c.exec.metrics();
    Json(StatusBody {
        chain_id: c.exec.genesis_config().chain_id.clone(),
        name: c.exec.identity().name.clone(),
        height: t.height,
        block_digest: hex::encode(t.digest),
        log_size: t.frontier.size(),
        log_root: hex::encode(t.frontier.root()),
        state_root: hex::encode(t.header.state_root),
        final_checkpoint_height: inner.votes.latest_final.as_ref().map(|(h, _)| *h),
        mempool_txs: inner.mempool.len(),
        finality_p50_ms: m.finality_percentile_ms(50),
        finality_p99_ms: m.finality_percentile_ms(99),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StateQuery {
    /// The state key, as text (e.g. `org/city`).
    pub key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StateProofBody {
    pub key: String,
    pub height: u64,
    pub state_root: String,
    /// Hex of the stored value; absent if the key has no value.
    pub value: Option<String>,
    /// Sparse-Merkle siblings, root first.
    pub siblings: Vec<String>,
    /// The leaf met at the end of the path: [key hash, value hash], hex.
    pub leaf: Option<[String; 2]>,
}

/// A state value (or its absence) with a proof against the state root of the finalized tip.
#[utoipa::path(get, path = "/v1/state", params(StateQuery), responses((status = 200, description = "OK", body = StateProofBody)))]
async fn state_proof(State(c): State<Ctx>, Query(q): Query<StateQuery>) -> ApiResult<Json<StateProofBody>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let value = s.get(q.key.as_bytes());
    let proof = inner.tip.smt.prove(&key_hash(q.key.as_bytes()));
    Ok(Json(StateProofBody {
        height: inner.tip.height,
        state_root: hex::encode(inner.tip.header.state_root),
        value: value.map(hex::encode),
        siblings: proof.siblings.iter().map(hex::encode).collect(),
        leaf: proof.leaf.map(|(k, v)| [hex::encode(k), hex::encode(v)]),
        key: q.key,
    }))
}

/// The offline revocation snapshot: all revoked devices and manufacturer CAs as of the newest
/// final checkpoint, with proofs against the state root it cosigns. 503 while a newer block's
/// checkpoint is still collecting signatures (retry shortly).
#[utoipa::path(get, path = "/v1/revocations", responses(
    (status = 200, description = "OK", body = crate::revocations::RevocationSnapshot),
    (status = 503, description = "No final checkpoint matches the current state yet; retry", body = ErrorBody)))]
async fn revocations(State(c): State<Ctx>) -> ApiResult<Json<crate::revocations::RevocationSnapshot>> {
    use crate::revocations::{RevocationSnapshot, SNAPSHOT_FORMAT, prove};
    use chipledger_state::model::{
        KEY_REVOKED_CA_INDEX, REVOKED_DEVICE_SHARDS, revoked_ca_ids, revoked_devices_shard_key,
    };
    let retry = |why: &str| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "retry", why);
    let inner = c.exec.lock();
    let (_, note) = inner
        .votes
        .latest_final
        .clone()
        .ok_or_else(|| retry("no final checkpoint yet"))?;
    let text = chipledger_types::note::Note::parse(note.as_bytes(), &Default::default())
        .map_err(ApiError::internal)?
        .text;
    let cp = chipledger_types::checkpoint::Checkpoint::parse(&text).map_err(ApiError::internal)?;
    let (state_height, root) =
        crate::checkpoints::state_extension(&cp).ok_or_else(|| ApiError::internal("checkpoint without state line"))?;
    if root != inner.tip.header.state_root {
        return Err(retry("the newest block's checkpoint is not final yet"));
    }
    let s = inner.db.state().map_err(ApiError::internal)?;
    let tree = &inner.tip.smt;
    let device_shards: Vec<_> = (0..REVOKED_DEVICE_SHARDS)
        .map(|i| prove(&s, tree, &revoked_devices_shard_key(i as u8)))
        .collect();
    let mut revoked_devices = Vec::new();
    for i in 0..REVOKED_DEVICE_SHARDS {
        let ids = chipledger_state::model::revoked_devices_in_shard(&s, i as u8).map_err(ApiError::internal)?;
        revoked_devices.extend(ids.iter().map(|d| d.to_string()));
    }
    let revoked_cas = revoked_ca_ids(&s)
        .map_err(ApiError::internal)?
        .iter()
        .map(|c| c.to_string())
        .collect();
    Ok(Json(RevocationSnapshot {
        format: SNAPSHOT_FORMAT.into(),
        checkpoint: note,
        state_height,
        state_root: hex::encode(root),
        revoked_devices,
        revoked_cas,
        device_shards,
        ca_index: prove(&s, tree, KEY_REVOKED_CA_INDEX),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct BundleQuery {
    /// The organisation owning the device: the bundle carries its approval record.
    pub owner: String,
}

/// The update bundle a device verifies before installing release `id` (canonical CBOR,
/// `chipledger_device::update::UpdateBundle`): the SUIT envelope, the newest final checkpoint,
/// and the release and `owner` approval records proven against its state root. 503 while a
/// newer block's checkpoint is still collecting signatures (retry shortly).
#[utoipa::path(get, path = "/v1/firmware/releases/{id}/bundle",
    params(("id" = String, Path, description = "Release id: hex SHA-256 of the SUIT manifest", pattern = "^[0-9a-f]{64}$"), BundleQuery),
    responses(
        (status = 200, description = "The bundle", content_type = "application/cbor", body = Vec<u8>),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "Unknown release, or not approved for the owner", body = ErrorBody),
        (status = 503, description = "No final checkpoint matches the current state yet; retry", body = ErrorBody)))]
async fn release_bundle(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<BundleQuery>,
) -> ApiResult<Response> {
    use crate::firmware_bundle::{BundleError, assemble};
    let id = hex::decode(&id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(chipledger_types::firmware_tx::ReleaseId)
        .ok_or_else(|| ApiError::bad("release id must be 64 hex digits"))?;
    let inner = c.exec.lock();
    let retry = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "retry", why);
    let (_, note) = inner
        .votes
        .latest_final
        .clone()
        .ok_or_else(|| retry("no final checkpoint yet".into()))?;
    let s = inner.db.state().map_err(ApiError::internal)?;
    let bundle = assemble(&note, &s, &inner.tip.smt, &id, &q.owner).map_err(|e| match e {
        BundleError::NotFinal => retry(e.to_string()),
        BundleError::UnknownRelease(_) | BundleError::NotApproved { .. } => ApiError::not_found(e.to_string()),
        other => ApiError::internal(other),
    })?;
    Ok(([(header::CONTENT_TYPE, "application/cbor")], bundle.to_bytes()).into_response())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BlobStored {
    /// Hex SHA-256 of the blob: its name in the store.
    pub sha256: String,
    pub size: usize,
}

fn blob_error(e: crate::blob_store::BlobError) -> ApiError {
    use crate::blob_store::BlobError;
    match e {
        BlobError::TooLarge { .. } => ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string()),
        BlobError::StoreFull { .. } => ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "store_full", e.to_string()),
        BlobError::BadDigest(_) => ApiError::bad(e.to_string()),
        other => ApiError::internal(other),
    }
}

fn blob_store(c: &Ctx) -> ApiResult<&crate::blob_store::BlobStore> {
    c.blobs.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_blob_store",
            "this node keeps no blob store",
        )
    })
}

/// Store a firmware image (raw bytes, at most 16 MiB). Accepted only when a release on the
/// ledger names its SHA-256 (`fw/by-digest/<sha256>`); returns the digest, the blob's name.
#[utoipa::path(put, path = "/v1/blobs", request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = BlobStored),
        (status = 404, description = "No release on the ledger names this image", body = ErrorBody),
        (status = 413, description = "Over the blob size limit", body = ErrorBody),
        (status = 507, description = "The store is full", body = ErrorBody)))]
async fn put_blob(State(c): State<Ctx>, body: axum::body::Body) -> ApiResult<Response> {
    use crate::blob_store::{BlobError, MAX_BLOB_BYTES};
    use sha2::Digest as _;
    let store = blob_store(&c)?;
    let bytes = axum::body::to_bytes(body, MAX_BLOB_BYTES).await.map_err(|_| {
        blob_error(BlobError::TooLarge {
            len: MAX_BLOB_BYTES + 1,
            max: MAX_BLOB_BYTES,
        })
    })?;
    let digest: [u8; 32] = sha2::Sha256::digest(&bytes).into();
    let named = {
        let inner = c.exec.lock();
        let s = inner.db.state().map_err(ApiError::internal)?;
        s.get(&chipledger_types::firmware_tx::by_digest_key(&digest)).is_some()
    };
    if !named {
        return Err(ApiError::not_found(format!(
            "no release on the ledger has image digest {}",
            hex::encode(digest)
        )));
    }
    store.put(&bytes).map_err(blob_error)?;
    let stored = BlobStored {
        sha256: hex::encode(digest),
        size: bytes.len(),
    };
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// A stored blob by its hex SHA-256 (re-hashed before it is served).
#[utoipa::path(get, path = "/v1/blobs/{sha256}", params(("sha256" = String, Path, description = "Hex SHA-256 of the blob", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The blob", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody)))]
async fn get_blob(State(c): State<Ctx>, Path(sha256): Path<String>) -> ApiResult<Response> {
    let store = blob_store(&c)?;
    let digest = crate::blob_store::parse_digest(&sha256).map_err(blob_error)?;
    let bytes = store
        .get(&digest)
        .map_err(blob_error)?
        .ok_or_else(|| ApiError::not_found(format!("no blob {sha256}")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "OK", content_type = "text/plain", body = String)))]
async fn metrics(State(c): State<Ctx>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        c.exec.metrics().render(),
    )
}

// ---- chip identity (issue 3) --------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceRevocationBody {
    pub height: u64,
    /// `compromised`, `decommissioned` or `lost`.
    pub reason: String,
    /// The organisation that revoked it.
    pub by: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttestationBody {
    /// Height of the block that accepted the evidence.
    pub height: u64,
    pub swname: String,
    pub swversion: String,
    /// The EAT's first measurement, hex.
    pub measurement: String,
    /// SHA-256 FWID of the Alias certificate's DiceTcbInfo, hex (empty if none).
    pub alias_fwid_sha256: String,
    /// Algorithm of the attested Alias key: `p256` (ES256) or `ed25519` (EdDSA).
    pub alias_key_alg: String,
    /// The attested Alias public key (the verified chain's; records signed by it are trust
    /// level 2): its SubjectPublicKeyInfo, hex DER (RFC 5480 uncompressed point / RFC 8410).
    pub alias_key_spki: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceBody {
    /// Hex device id (open-dice ID of the DeviceID key).
    pub id: String,
    pub manufacturer: String,
    /// Hex id of the endorsing manufacturer CA.
    pub ca: String,
    /// Hardware model (product ID).
    pub model: u32,
    pub owner: String,
    /// Organisation a transfer is offered to, if any.
    pub offered_to: Option<String>,
    /// `active`, `revoked`, or `untrusted` (its manufacturer CA was revoked).
    pub status: String,
    pub registered_height: u64,
    pub revoked: Option<DeviceRevocationBody>,
    /// The last accepted evidence: attested firmware.
    pub attestation: Option<AttestationBody>,
    /// DeviceID certificate, hex DER.
    pub deviceid_cert: String,
}

/// One device as the node-local fleet index sees it (`/v1/devices/{id}` adds the certificate).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceSummaryBody {
    /// Hex device id.
    pub id: String,
    /// Hardware model (product ID).
    pub model: u32,
    pub owner: String,
    pub manufacturer: String,
    /// Hex id of the endorsing manufacturer CA.
    pub ca: String,
    /// `active`, `offered` (a transfer offer is pending) or `revoked`.
    pub status: String,
    /// Organisation a transfer is offered to, if any.
    pub offered_to: Option<String>,
    pub revoked: Option<DeviceRevocationBody>,
    /// Its manufacturer CA was revoked (the device record shows as `untrusted`).
    pub ca_revoked: bool,
    pub registered_height: u64,
    /// The last accepted evidence: attested firmware.
    pub attestation: Option<AttestationBody>,
}

/// A page of devices matching a query.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DevicePage {
    /// The finalized height the answer was computed at.
    pub height: u64,
    /// Devices matching the filters in all (independent of the cursor).
    pub total: usize,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<String>,
    /// At most `limit` devices, in id order.
    pub devices: Vec<DeviceSummaryBody>,
}

/// Filters of `GET /v1/devices`; every given filter must match. Pages are in device-id order.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DevicesQuery {
    /// Hardware model (product ID).
    pub model: Option<u32>,
    /// Owning organisation.
    pub owner: Option<String>,
    /// `active`, `offered` or `revoked`.
    pub status: Option<String>,
    /// Exact firmware version (`swversion`) of the latest accepted evidence.
    pub attested_version: Option<String>,
    /// The manufacturer organisation that registered the device.
    pub manufacturer: Option<String>,
    /// Hex device-id prefix (at most 40 characters).
    pub q: Option<String>,
    /// Page size, 1..=1000 (default 100).
    pub limit: Option<usize>,
    /// Cursor: the last id of the previous page (its `next_after`).
    pub after: Option<String>,
}

impl DevicesQuery {
    /// The index filter this query names, or why it is malformed.
    pub fn to_filter(&self) -> Result<DeviceFilter, FleetQueryError> {
        Ok(DeviceFilter {
            model: self.model,
            owner: self.owner.clone(),
            manufacturer: self.manufacturer.clone(),
            status: self.status.as_deref().map(DeviceStatus::parse).transpose()?,
            attested_version: self.attested_version.clone(),
            id_prefix: self.q.as_deref().map(IdPrefix::parse).transpose()?,
            after: self.after.as_deref().map(parse_cursor).transpose()?,
            limit: self.limit.unwrap_or(DEFAULT_LIST_LIMIT),
        })
    }
}

/// Device counts over the whole fleet (what an explorer's charts need).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceStatsBody {
    /// The finalized height the counts were computed at.
    pub height: u64,
    pub total: usize,
    /// Model number (decimal) → devices.
    pub by_model: BTreeMap<String, usize>,
    /// Owning organisation → devices.
    pub by_owner: BTreeMap<String, usize>,
    /// Manufacturer organisation → devices.
    pub by_manufacturer: BTreeMap<String, usize>,
    /// `active`, `offered`, `revoked` → devices (every status listed, zeros included).
    pub by_status: BTreeMap<String, usize>,
    /// Attested firmware version → devices.
    pub by_attested_version: BTreeMap<String, usize>,
    /// Devices with no accepted evidence.
    pub unattested: usize,
    /// Devices (any status) whose manufacturer CA is revoked.
    pub untrusted: usize,
}

impl From<FleetStats> for DeviceStatsBody {
    fn from(s: FleetStats) -> Self {
        let by_status = DeviceStatus::ALL
            .into_iter()
            .map(|st| (st.name().to_string(), s.by_status.get(&st).copied().unwrap_or(0)))
            .collect();
        DeviceStatsBody {
            height: s.height,
            total: s.total,
            by_model: s.by_model.into_iter().map(|(m, n)| (m.to_string(), n)).collect(),
            by_owner: s.by_owner,
            by_manufacturer: s.by_manufacturer,
            by_status,
            by_attested_version: s.by_attested_version,
            unattested: s.unattested,
            untrusted: s.untrusted,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HistoryBody {
    pub height: u64,
    /// `registered`, `transferred` or `revoked`.
    pub kind: String,
    pub from: String,
    pub to: String,
    /// The device itself proved its presence (a transfer accepted with a valid proof signed by
    /// its DeviceID key).
    #[serde(default)]
    pub device_proof: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChallengeBody {
    pub device: String,
    /// The finalized height the nonce names.
    pub height: u64,
    /// Hex nonce to put in the EAT `eat_nonce` claim.
    pub nonce: String,
    /// The evidence must be included within this many blocks of `height`.
    pub window_blocks: u64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaRevocationBody {
    pub height: u64,
    pub reason: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CaBody {
    /// Hex CA id (first 160 bits of SHA-256 of the CA key's SEC1 point).
    pub id: String,
    pub org: String,
    /// Granted model ranges, inclusive `[first, last]`.
    pub models: Vec<[u32; 2]>,
    pub added_height: u64,
    pub revoked: Option<CaRevocationBody>,
    /// CA certificate, hex DER.
    pub cert: String,
}

fn state_error(e: chipledger_state::TxError) -> ApiError {
    match e {
        chipledger_state::TxError::UnknownDevice(_) => ApiError::not_found(e.to_string()),
        chipledger_state::TxError::DeviceRevoked(_) => ApiError::new(StatusCode::GONE, e.code(), e.to_string()),
        other => ApiError::internal(other),
    }
}

fn parse_device(s: &str) -> ApiResult<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| ApiError::bad("a device id is 40 hex characters"))
}

fn device_body(s: &dyn StateRead, d: DeviceRecord) -> ApiResult<DeviceBody> {
    let ca_revoked = get_ca(s, &d.ca)
        .map_err(ApiError::internal)?
        .is_none_or(|c| c.revoked.is_some());
    let status = match (&d.revoked, ca_revoked) {
        (Some(_), _) => "revoked",
        (None, true) => "untrusted",
        (None, false) => "active",
    };
    Ok(DeviceBody {
        id: d.id.to_string(),
        manufacturer: d.manufacturer,
        ca: d.ca.to_string(),
        model: d.model,
        owner: d.owner,
        offered_to: d.offered_to,
        status: status.into(),
        registered_height: d.registered_height,
        revoked: d.revoked.map(revocation_body),
        attestation: d.attestation.map(attestation_body),
        deviceid_cert: hex::encode(d.deviceid_cert_der),
    })
}

fn revocation_body(r: DeviceRevocation) -> DeviceRevocationBody {
    DeviceRevocationBody {
        height: r.height,
        reason: r.reason.name().into(),
        by: r.by,
    }
}

fn attestation_body(a: Attestation) -> AttestationBody {
    AttestationBody {
        height: a.height,
        swname: a.swname,
        swversion: a.swversion,
        measurement: hex::encode(a.measurement),
        alias_fwid_sha256: hex::encode(a.alias_fwid_sha256),
        alias_key_alg: a.alias_public_key.alg().name().into(),
        alias_key_spki: hex::encode(a.alias_public_key.to_spki_der()),
    }
}

fn summary_body(d: DeviceSummary, ca_revoked: bool) -> DeviceSummaryBody {
    DeviceSummaryBody {
        id: d.id.to_string(),
        model: d.model,
        owner: d.owner,
        manufacturer: d.manufacturer,
        ca: d.ca.to_string(),
        status: d.status.name().into(),
        offered_to: d.offered_to,
        revoked: d.revoked.map(revocation_body),
        ca_revoked,
        registered_height: d.registered_height,
        attestation: d.attested.map(attestation_body),
    }
}

impl From<FleetQueryError> for ApiError {
    fn from(e: FleetQueryError) -> Self {
        ApiError::bad(e.to_string())
    }
}

fn find_device(s: &dyn StateRead, id: &DeviceId) -> ApiResult<DeviceRecord> {
    get_device(s, id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no device {id}")))
}

/// One device: owner, status, attested firmware, model, CA.
#[utoipa::path(get, path = "/v1/devices/{id}", params(("id" = String, Path, description = "hex device id", pattern = "^[0-9a-f]{40}$")),
    responses((status = 200, description = "The device record", body = DeviceBody), (status = 400, description = "Bad request: a typed error", body = ErrorBody), (status = 404, description = "No such device", body = ErrorBody)))]
async fn device(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<DeviceBody>> {
    let id = parse_device(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let record = find_device(&s, &id)?;
    Ok(Json(device_body(&s, record)?))
}

/// Devices by model, owner, manufacturer, status, attested version or id prefix, one bounded
/// page at a time (cursor `after`), from the node-local fleet index at a finalized height.
#[utoipa::path(get, path = "/v1/devices", params(DevicesQuery),
    responses((status = 200, description = "A page of the matching devices, with the height it was computed at", body = DevicePage), (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn devices(State(c): State<Ctx>, Query(q): Query<DevicesQuery>) -> ApiResult<Json<DevicePage>> {
    let filter = q.to_filter()?;
    let fleet = c.exec.fleet();
    let list = fleet.list(&filter)?;
    let devices = list
        .devices
        .into_iter()
        .map(|d| {
            let ca_revoked = fleet.ca_revoked(&d.ca);
            summary_body(d, ca_revoked)
        })
        .collect();
    Ok(Json(DevicePage {
        height: list.height,
        total: list.total,
        next_after: list.next_after.map(|id| id.to_string()),
        devices,
    }))
}

/// Device counts by model, owner, manufacturer, status and attested version.
#[utoipa::path(get, path = "/v1/devices/stats",
    responses((status = 200, description = "Fleet counts at a finalized height", body = DeviceStatsBody)))]
async fn device_stats(State(c): State<Ctx>) -> Json<DeviceStatsBody> {
    Json(c.exec.fleet().stats().into())
}

/// A device's full history: registration, transfers, revocation.
#[utoipa::path(get, path = "/v1/devices/{id}/history", params(("id" = String, Path, description = "hex device id", pattern = "^[0-9a-f]{40}$")),
    responses((status = 200, description = "History entries, oldest first", body = Vec<HistoryBody>), (status = 400, description = "Bad request: a typed error", body = ErrorBody), (status = 404, description = "No such device", body = ErrorBody)))]
async fn device_history_route(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<Vec<HistoryBody>>> {
    let id = parse_device(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    find_device(&s, &id)?;
    let entries = device_history(&s, &id).map_err(ApiError::internal)?;
    let kind = |k: HistoryKind| match k {
        HistoryKind::Registered => "registered",
        HistoryKind::Transferred => "transferred",
        HistoryKind::Revoked => "revoked",
    };
    Ok(Json(
        entries
            .into_iter()
            .map(|e| HistoryBody {
                height: e.height,
                kind: kind(e.kind).into(),
                from: e.from,
                to: e.to,
                device_proof: e.device_proof,
            })
            .collect(),
    ))
}

/// The device's current attestation challenge (the nonce its next EAT must carry).
#[utoipa::path(get, path = "/v1/devices/{id}/challenge", params(("id" = String, Path, description = "hex device id", pattern = "^[0-9a-f]{40}$")),
    responses((status = 200, description = "The current challenge", body = ChallengeBody), (status = 400, description = "Bad request: a typed error", body = ErrorBody), (status = 404, description = "No such device", body = ErrorBody), (status = 410, description = "The device was revoked", body = ErrorBody)))]
async fn device_challenge(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<ChallengeBody>> {
    let id = parse_device(&id)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let height = inner.tip.height;
    let chain_id = &c.exec.genesis_config().chain_id;
    let nonce = current_challenge(&s, chain_id, &id, height).map_err(state_error)?;
    Ok(Json(ChallengeBody {
        device: id.to_string(),
        height,
        nonce: hex::encode(nonce),
        window_blocks: ATTEST_NONCE_WINDOW_BLOCKS,
    }))
}

/// Manufacturer CAs, including revoked ones (never deleted).
#[utoipa::path(get, path = "/v1/cas", responses((status = 200, description = "Every manufacturer CA", body = Vec<CaBody>)))]
async fn cas(State(c): State<Ctx>) -> ApiResult<Json<Vec<CaBody>>> {
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let mut out = Vec::new();
    for org in org_names(&s).map_err(ApiError::internal)? {
        for id in org_ca_ids(&s, &org).map_err(ApiError::internal)? {
            let Some(ca) = get_ca(&s, &id).map_err(ApiError::internal)? else {
                continue;
            };
            out.push(CaBody {
                id: ca.id.to_string(),
                org: ca.org,
                models: ca.models.iter().map(|r| [r.first, r.last]).collect(),
                added_height: ca.added_height,
                revoked: ca.revoked.map(|(height, reason)| CaRevocationBody { height, reason }),
                cert: hex::encode(ca.cert_der),
            });
        }
    }
    Ok(Json(out))
}

#[derive(OpenApi)]
#[openapi(info(
    title = "chipledger validator API",
    description = "Submit transactions, read blocks, proofs, checkpoints and state."
))]
struct ApiDoc;

/// Every route, declared once: the router and the OpenAPI document both come from here.
fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(submit_tx))
        .routes(routes!(submit_batch))
        .routes(routes!(tx_status))
        .routes(routes!(tx_raw))
        .routes(routes!(checkpoint))
        .routes(routes!(tlog_proof))
        .routes(routes!(consistency))
        .routes(routes!(inclusion))
        .routes(routes!(block))
        .routes(routes!(orgs))
        .routes(routes!(org))
        .routes(routes!(validators))
        .routes(routes!(status))
        .routes(routes!(state_proof))
        .routes(routes!(revocations))
        .routes(routes!(release_bundle))
        .routes(routes!(put_blob))
        .routes(routes!(get_blob))
        .routes(routes!(metrics))
        .routes(routes!(devices))
        .routes(routes!(device_stats))
        .routes(routes!(device))
        .routes(routes!(device_history_route))
        .routes(routes!(device_challenge))
        .routes(routes!(cas))
        .merge(crate::api_firmware::routes())
        .merge(crate::api_data::routes())
        .merge(crate::api_zk::routes())
        .merge(crate::api_command::routes())
        .merge(crate::api_access::routes())
        .merge(crate::api_audit::routes())
}

/// The OpenAPI 3.1 document of the API (served at `/openapi.json`), with the answers the shared
/// guards give on every route ([`crate::http_guard::document_guards`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = routes().split_for_parts().1;
    crate::http_guard::document_guards(&mut doc);
    doc
}

/// Largest body any route reads (the outer limit; each route has its own, smaller or equal).
const MAX_ANY_BODY_BYTES: usize = {
    let (blob, batch) = (
        crate::blob_store::MAX_BLOB_BYTES,
        crate::http_guard::MAX_BATCH_BODY_BYTES,
    );
    if blob > batch { blob } else { batch }
};

/// The router and its OpenAPI document (no blob store: `/v1/blobs` answers 503).
pub fn router(exec: Executor) -> (Router, utoipa::openapi::OpenApi) {
    router_with_blobs(exec, None)
}

/// The router with the node's image store; with the test hooks ([`crate::test_hooks`]) when the
/// process's environment has `CHIPLEDGER_TEST_HOOKS=1` (read here, once per router).
pub fn router_with_blobs(
    exec: Executor,
    blobs: Option<crate::blob_store::BlobStore>,
) -> (Router, utoipa::openapi::OpenApi) {
    router_with_options(exec, blobs, crate::test_hooks::enabled_in_env())
}

/// The router with the image store `blobs`, and with the test hooks when `test_hooks` (they are
/// never in the OpenAPI document).
pub fn router_with_options(
    exec: Executor,
    blobs: Option<crate::blob_store::BlobStore>,
    test_hooks: bool,
) -> (Router, utoipa::openapi::OpenApi) {
    router_with_limits(exec, blobs, test_hooks, RateLimitConfig::default()).expect("the default rate limit is valid")
}

/// [`router_with_options`] with the per-client rate limit `rate`.
pub fn router_with_limits(
    exec: Executor,
    blobs: Option<crate::blob_store::BlobStore>,
    test_hooks: bool,
    rate: RateLimitConfig,
) -> Result<(Router, utoipa::openapi::OpenApi), RateLimitConfigError> {
    let ctx = Ctx {
        exec,
        blobs: blobs.map(Arc::new),
    };
    let hooks = test_hooks.then(|| crate::test_hooks::routes().with_state(ctx.clone()));
    let (router, mut api) = routes().with_state(ctx).split_for_parts();
    crate::http_guard::document_guards(&mut api);
    let router = match hooks {
        Some(hooks) => router.merge(hooks),
        None => router,
    };
    let doc = Arc::new(api.clone());
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { Json((*doc).clone()) }
            }),
        )
        // The explorer's page and assets: not API, so not in the OpenAPI document.
        .merge(crate::explorer::router());
    let router = crate::http_guard::guard(router, rate, MAX_ANY_BODY_BYTES)?;
    Ok((router, api))
}

/// Serve the API, with the image store `blobs` and the per-client rate limit `rate`, on
/// `listener` until the future completes.
pub async fn serve_with_blobs(
    listener: tokio::net::TcpListener,
    exec: Executor,
    blobs: crate::blob_store::BlobStore,
    rate: RateLimitConfig,
) -> std::io::Result<()> {
    let test_hooks = crate::test_hooks::enabled_in_env();
    let (router, _) = router_with_limits(exec, Some(blobs), test_hooks, rate).map_err(std::io::Error::other)?;
    crate::http_guard::serve(listener, router).await
}

/// Serve the API on `listener` until the future completes.
pub async fn serve(listener: tokio::net::TcpListener, exec: Executor) -> std::io::Result<()> {
    let (router, _) = router(exec);
    crate::http_guard::serve(listener, router).await
}

/// Checks shared by the route modules' OpenAPI tests.
#[cfg(test)]
pub(crate) mod doc_checks {
    /// Every path in `paths` is in the one OpenAPI document, every response of every operation on
    /// it has a description, and every `$ref` in the document resolves.
    pub(crate) fn assert_routes_documented(paths: &[&str]) {
        let doc = serde_json::to_value(super::openapi()).unwrap();
        for path in paths {
            let item = doc["paths"].get(*path).unwrap_or_else(|| panic!("missing path {path}"));
            for (method, op) in item.as_object().unwrap() {
                for (code, resp) in op["responses"].as_object().into_iter().flatten() {
                    let described = resp["description"].as_str().is_some_and(|d| !d.is_empty());
                    assert!(described, "{method} {path} {code} has no description");
                }
            }
        }
        let text = doc.to_string();
        let schemas = &doc["components"]["schemas"];
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.get(name).is_some(), "dangling $ref to {name}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generated document is OpenAPI 3.1, lists every route, and every `$ref` resolves.
    #[test]
    fn openapi_document_is_complete_and_self_consistent() {
        let doc = serde_json::to_value(openapi()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        doc_checks::assert_routes_documented(&[
            "/v1/tx",
            "/v1/txs",
            "/v1/tx/{hash}",
            "/v1/tx/{hash}/raw",
            "/v1/checkpoint",
            "/v1/tlog-proof/{hash}",
            "/v1/proof/consistency",
            "/v1/proof/inclusion",
            "/v1/blocks/{height}",
            "/v1/orgs",
            "/v1/validators",
            "/v1/status",
            "/v1/state",
            "/metrics",
            "/v1/devices",
            "/v1/devices/stats",
            "/v1/devices/{id}",
            "/v1/devices/{id}/history",
            "/v1/devices/{id}/challenge",
            "/v1/cas",
            "/v1/firmware/releases/{id}/bundle",
            "/v1/blobs",
            "/v1/blobs/{sha256}",
        ]);
    }
}

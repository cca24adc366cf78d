//! The gateway's record API (issue 5), served by `chipledger gateway --http ADDR`:
//!
//! - `GET /v1/records/{device}/{stream}/{seq}` → the record and its full [`RecordProofJson`]:
//!   the record's audit path in its batch (from the gateway's store) and the batch's
//!   `CommitBatch` transaction with its log inclusion proof under a final, cosigned checkpoint
//!   (from the validator API the gateway already talks to, cached per batch). `404 not_found`
//!   for a record the gateway does not hold, `409 not_final_yet` while its batch is not under a
//!   final checkpoint (retry), `502 ledger_unavailable` when the validator cannot be asked.
//! - `GET /v1/records/{device}?stream=&after=&limit=&min_trust=` → a page of the device's
//!   records (bytes, hash, trust level, batch), in store order (streams by length, then name;
//!   then seq); `next` is the
//!   `after` cursor of the following page.
//!
//! Errors are `{"error": code, "message": text}` like the validator API. The gateway is shared
//! with the ingest path behind one mutex: a request holds it only for its store reads; tree
//! building, the ledger request and JSON happen outside it, on tokio's blocking pool.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chipledger_gateway::Gateway;
use chipledger_gateway::proof::{
    BatchLeaves, BatchTrees, ListQuery, MAX_RECORDS_PAGE, RecordPage, list_records, read_record,
};
use chipledger_gateway::store::{BatchStatus, ChainKey};
use chipledger_node::api::ErrorBody;
use chipledger_node::api_data::BatchBody;
use chipledger_types::data_tx::TrustLevel;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_RECORD_BYTES;
use chipledger_types::merkle::{Hash, MAX_PROOF_HASHES};
use chipledger_types::record::{Record, check_stream, parse_sign1};
use chipledger_types::record_proof::{BatchInclusion, RecordProof, TxInclusion, check_record_proof_links};
use serde::{Deserialize, Serialize};

/// Where `chipledger gateway` serves the record API unless `--http` says otherwise.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8181";
/// `--http off` turns the record API off.
pub const HTTP_OFF: &str = "off";
/// The `format` of every [`RecordProofJson`].
pub const RECORD_PROOF_FORMAT: &str = "chipledger/record-proof/v1";
/// Batches whose ledger proof (transaction, log path, checkpoint) is kept.
pub const MAX_CACHED_TX_PROOFS: usize = 1024;
/// Timeout of one request to the validator API.
pub const LEDGER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest encoded `CommitBatch` transaction accepted from the ledger (and in a proof file).
pub const MAX_TX_BYTES: usize = 1 << 20;
/// Largest checkpoint note accepted in a proof (the note limit of `chipledger_types::note`).
pub const MAX_CHECKPOINT_NOTE_BYTES: usize = 1 << 20;

// ---- JSON bodies ---------------------------------------------------------------------------------

/// A [`RecordProof`] as JSON: hex bytes and hashes, the checkpoint note verbatim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordProofJson {
    /// Always [`RECORD_PROOF_FORMAT`].
    pub format: String,
    /// The record (tagged COSE_Sign1), hex.
    pub record: String,
    pub batch: BatchInclusionJson,
    pub log: TxInclusionJson,
}

/// The record's leaf in its batch tree (RFC 9162; leaf = SHA-256(0x00 ‖ record hash)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchInclusionJson {
    pub gateway: String,
    pub seq: u64,
    /// Hex batch root (the `CommitBatch` root).
    pub root: String,
    pub leaf_index: u64,
    pub size: u64,
    /// Hex audit path, leaf's sibling first.
    pub path: Vec<String>,
}

/// The `CommitBatch` transaction's leaf in the ledger's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInclusionJson {
    /// Hex encoded `SignedTx` (the log leaf input).
    pub tx: String,
    pub leaf_index: u64,
    pub log_size: u64,
    /// Hex audit path, leaf's sibling first.
    pub path: Vec<String>,
    /// The final checkpoint: a C2SP signed note with the validators' cosignatures.
    pub checkpoint: String,
}

fn hexes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

impl From<&RecordProof> for RecordProofJson {
    fn from(p: &RecordProof) -> Self {
        RecordProofJson {
            format: RECORD_PROOF_FORMAT.into(),
            record: hex::encode(&p.record),
            batch: BatchInclusionJson {
                gateway: p.batch.gateway.clone(),
                seq: p.batch.seq,
                root: hex::encode(p.batch.root),
                leaf_index: p.batch.leaf_index,
                size: p.batch.size,
                path: hexes(&p.batch.path),
            },
            log: TxInclusionJson {
                tx: hex::encode(&p.log.tx),
                leaf_index: p.log.leaf_index,
                log_size: p.log.log_size,
                path: hexes(&p.log.path),
                checkpoint: p.log.checkpoint.clone(),
            },
        }
    }
}

fn unhex(what: &str, s: &str, max: usize) -> Result<Vec<u8>, String> {
    if s.len() > 2 * max {
        return Err(format!("{what} is longer than {max} bytes"));
    }
    hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))
}

fn unhex_path(what: &str, path: &[String]) -> Result<Vec<Hash>, String> {
    if path.len() > MAX_PROOF_HASHES {
        return Err(format!("{what} has more than {MAX_PROOF_HASHES} hashes"));
    }
    path.iter().map(|h| unhex32(what, h)).collect()
}

fn unhex32(what: &str, s: &str) -> Result<Hash, String> {
    unhex(what, s, 32)?
        .try_into()
        .map_err(|_| format!("{what} holds a value that is not 32 bytes"))
}

impl TryFrom<&RecordProofJson> for RecordProof {
    type Error = String;

    /// Decodes the hex fields within the proof's limits; nothing is verified yet.
    fn try_from(j: &RecordProofJson) -> Result<Self, String> {
        if j.format != RECORD_PROOF_FORMAT {
            return Err(format!("format is '{}', expected '{RECORD_PROOF_FORMAT}'", j.format));
        }
        if j.log.checkpoint.len() > MAX_CHECKPOINT_NOTE_BYTES {
            return Err(format!(
                "the checkpoint is longer than {MAX_CHECKPOINT_NOTE_BYTES} bytes"
            ));
        }
        Ok(RecordProof {
            record: unhex("record", &j.record, MAX_RECORD_BYTES)?,
            batch: BatchInclusion {
                gateway: j.batch.gateway.clone(),
                seq: j.batch.seq,
                root: unhex32("batch root", &j.batch.root)?,
                leaf_index: j.batch.leaf_index,
                size: j.batch.size,
                path: unhex_path("batch path", &j.batch.path)?,
            },
            log: TxInclusion {
                tx: unhex("tx", &j.log.tx, MAX_TX_BYTES)?,
                leaf_index: j.log.leaf_index,
                log_size: j.log.log_size,
                path: unhex_path("log path", &j.log.path)?,
                checkpoint: j.log.checkpoint.clone(),
            },
        })
    }
}

/// `GET /v1/records/{device}/{stream}/{seq}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordBody {
    pub device: String,
    pub stream: String,
    pub seq: u64,
    /// Hex record hash (SHA-256 of the COSE_Sign1).
    pub hash: String,
    /// Trust level the gateway accepted the record at: 0 self-reported, 1 registered, 2 attested.
    pub trust: u8,
    pub trust_name: String,
    /// The batch the record was committed in.
    pub batch: u64,
    pub proof: RecordProofJson,
}

/// One record of a listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordSummary {
    pub stream: String,
    pub seq: u64,
    pub hash: String,
    pub trust: u8,
    pub trust_name: String,
    /// The batch it was cut into (`null`: not batched yet).
    pub batch: Option<u64>,
    /// Encryption epoch of the payload (from the record body).
    pub epoch: u32,
    pub timestamp_ms: u64,
    /// The record, hex.
    pub record: String,
}

/// `GET /v1/records/{device}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordListBody {
    pub device: String,
    pub records: Vec<RecordSummary>,
    /// Pass as `after` for the next page; absent when the listing is complete.
    pub next: Option<String>,
}

/// Query of `GET /v1/records/{device}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RecordListQuery {
    /// Only this stream.
    pub stream: Option<String>,
    /// Cursor: `STREAM:SEQ` (a page's `next`), or just `SEQ` together with `stream`.
    pub after: Option<String>,
    /// Page size, 1..=100 (default 100).
    pub limit: Option<usize>,
    /// Only records accepted at this trust level or higher (0, 1 or 2).
    pub min_trust: Option<u8>,
}

// ---- errors --------------------------------------------------------------------------------------

/// A typed refusal: HTTP status and `{"error", "message"}`.
#[derive(Debug)]
pub struct HttpError(StatusCode, ErrorBody);

impl HttpError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        HttpError(
            status,
            ErrorBody {
                error: code.into(),
                message: message.into(),
            },
        )
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    fn not_final(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "not_final_yet", message)
    }
    fn internal(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message.to_string())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

type HttpResult<T> = Result<T, HttpError>;

// ---- the ledger half of a proof ------------------------------------------------------------------

/// Where the ledger half of a record proof comes from.
pub trait TxProofSource: Send + Sync {
    /// `gateway`'s batch `seq`: its `CommitBatch` transaction and the transaction's inclusion
    /// in the log under a final (quorum-cosigned) checkpoint; `Ok(None)` while there is none.
    fn final_tx_proof(&self, gateway: &str, seq: u64) -> Result<Option<TxInclusion>, String>;
}

/// [`TxProofSource`] of a validator API: `GET /v1/data/batches/{gateway}/{seq}`. It uses the
/// async HTTP client of the runtime it was made on (a blocking client must not be made or
/// dropped inside a runtime); [`TxProofSource::final_tx_proof`] is called off the runtime's
/// worker threads (tokio's blocking pool) and waits there.
pub struct NodeTxSource {
    http: reqwest::Client,
    base: String,
    runtime: tokio::runtime::Handle,
}

impl NodeTxSource {
    /// A source for the validator at `api`; call on a tokio runtime.
    pub fn new(api: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(LEDGER_TIMEOUT).build()?,
            base: api.trim_end_matches('/').into(),
            runtime: tokio::runtime::Handle::try_current().context("the record API needs a tokio runtime")?,
        })
    }

    async fn get_batch(&self, url: &str) -> Result<Option<BatchBody>, String> {
        let resp = self.http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{url} answered HTTP {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{url}: unexpected answer: {e}"))
    }
}

impl TxProofSource for NodeTxSource {
    fn final_tx_proof(&self, gateway: &str, seq: u64) -> Result<Option<TxInclusion>, String> {
        let url = format!("{}/v1/data/batches/{gateway}/{seq}", self.base);
        let Some(body) = self.runtime.block_on(self.get_batch(&url))? else {
            return Ok(None);
        };
        let (Some(tx), Some(p)) = (body.tx_cbor, body.tx_proof) else {
            return Ok(None);
        };
        let Some(checkpoint) = p.checkpoint else {
            return Ok(None);
        };
        Ok(Some(TxInclusion {
            tx: unhex("tx_cbor", &tx, MAX_TX_BYTES)?,
            leaf_index: p.leaf_index,
            log_size: p.log_size,
            path: unhex_path("tx_proof", &p.hashes)?,
            checkpoint,
        }))
    }
}

// ---- the service ---------------------------------------------------------------------------------

/// The record API's state: the shared gateway, its batch trees and per-batch ledger proofs.
pub struct RecordApi {
    gateway: Arc<Mutex<Gateway>>,
    name: String,
    source: Arc<dyn TxProofSource>,
    trees: BatchTrees,
    tx_proofs: Mutex<BTreeMap<u64, Arc<TxInclusion>>>,
}

impl RecordApi {
    pub fn new(gateway: Arc<Mutex<Gateway>>, source: Arc<dyn TxProofSource>) -> Result<Self> {
        let name = gateway
            .lock()
            .map_err(|_| anyhow::anyhow!("gateway lock poisoned"))?
            .config()
            .name
            .clone();
        Ok(Self {
            gateway,
            name,
            source,
            trees: BatchTrees::new(),
            tx_proofs: Mutex::new(BTreeMap::new()),
        })
    }

    fn locked(&self) -> HttpResult<std::sync::MutexGuard<'_, Gateway>> {
        self.gateway
            .lock()
            .map_err(|_| HttpError::internal("gateway lock poisoned"))
    }

    /// The record at (device, stream, seq) with its full proof.
    pub fn record(&self, device: DeviceId, stream: &str, seq: u64) -> HttpResult<RecordBody> {
        let chain = ChainKey {
            device,
            stream: stream.into(),
        };
        let snapshot = read_record(&*self.locked()?, &chain, seq, &self.trees).map_err(HttpError::internal)?;
        let snap = snapshot.ok_or_else(|| HttpError::not_found(format!("no record {device}/{stream}/{seq}")))?;
        let Some((row, leaves)) = snap.batch else {
            return Err(HttpError::not_final(format!(
                "record {stream}/{seq} is stored but not in a batch yet"
            )));
        };
        let batch_seq = row.payload.batch_seq;
        if row.status == BatchStatus::Pending {
            return Err(HttpError::not_final(format!(
                "batch {batch_seq} is not on the ledger yet"
            )));
        }
        let tree = match leaves {
            BatchLeaves::Tree(tree) => tree,
            BatchLeaves::Hashes(hashes) => self.trees.insert(&row, &hashes).map_err(HttpError::internal)?,
        };
        let batch = tree
            .inclusion(&self.name, &snap.record.hash)
            .ok_or_else(|| HttpError::internal(format!("record {stream}/{seq} is not in its batch {batch_seq}")))?;
        let log = self.tx_proof(batch_seq)?;
        let proof = RecordProof {
            record: snap.record.bytes,
            batch,
            log: (*log).clone(),
        };
        if let Err(e) = check_record_proof_links(&proof) {
            self.forget_tx_proof(batch_seq);
            return Err(HttpError::internal(format!("the assembled proof does not hold: {e}")));
        }
        Ok(RecordBody {
            device: device.to_string(),
            stream: stream.into(),
            seq,
            hash: snap.record.hash.to_string(),
            trust: snap.record.trust as u8,
            trust_name: snap.record.trust.name().into(),
            batch: batch_seq,
            proof: (&proof).into(),
        })
    }

    /// Batch `seq`'s ledger proof, from the cache or the ledger.
    fn tx_proof(&self, seq: u64) -> HttpResult<Arc<TxInclusion>> {
        if let Some(p) = self.tx_proofs.lock().ok().and_then(|c| c.get(&seq).cloned()) {
            return Ok(p);
        }
        let fetched = self
            .source
            .final_tx_proof(&self.name, seq)
            .map_err(|e| HttpError::new(StatusCode::BAD_GATEWAY, "ledger_unavailable", e))?;
        let proof = Arc::new(
            fetched.ok_or_else(|| HttpError::not_final(format!("batch {seq} is not under a final checkpoint yet")))?,
        );
        if let Ok(mut cache) = self.tx_proofs.lock() {
            cache.insert(seq, proof.clone());
            while cache.len() > MAX_CACHED_TX_PROOFS {
                cache.pop_first();
            }
        }
        Ok(proof)
    }

    fn forget_tx_proof(&self, seq: u64) {
        if let Ok(mut cache) = self.tx_proofs.lock() {
            cache.remove(&seq);
        }
    }

    /// A page of `device`'s records.
    pub fn list(&self, device: DeviceId, q: &RecordListQuery) -> HttpResult<RecordListBody> {
        let query = list_query(q)?;
        let page: RecordPage = list_records(&*self.locked()?, &device, &query).map_err(HttpError::internal)?;
        let records = page
            .records
            .into_iter()
            .map(|r| {
                let body = parse_sign1(&r.bytes)
                    .ok()
                    .and_then(|p| Record::decode_body(p.body).ok());
                RecordSummary {
                    stream: r.stream,
                    seq: r.seq,
                    hash: r.hash.to_string(),
                    trust: r.trust as u8,
                    trust_name: r.trust.name().into(),
                    batch: r.batch,
                    epoch: body.as_ref().map_or(0, |b| b.epoch),
                    timestamp_ms: body.as_ref().map_or(0, |b| b.timestamp_ms),
                    record: hex::encode(&r.bytes),
                }
            })
            .collect();
        Ok(RecordListBody {
            device: device.to_string(),
            records,
            next: page.next.map(|(stream, seq)| format!("{stream}:{seq}")),
        })
    }
}

fn parse_device(s: &str) -> HttpResult<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| HttpError::bad("a device id is 40 hex characters"))
}

fn parse_stream(s: &str) -> HttpResult<()> {
    check_stream(s).map_err(|e| HttpError::bad(format!("stream '{s}': {e}")))
}

fn list_query(q: &RecordListQuery) -> HttpResult<ListQuery> {
    if let Some(s) = &q.stream {
        parse_stream(s)?;
    }
    let seq = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| HttpError::bad(format!("after: '{s}' is not a seq")))
    };
    let after = match (&q.after, &q.stream) {
        (None, _) => None,
        (Some(a), stream) => match a.split_once(':') {
            Some((s, n)) => {
                parse_stream(s)?;
                Some((s.to_string(), seq(n)?))
            }
            None => {
                let stream = stream
                    .clone()
                    .ok_or_else(|| HttpError::bad("after is STREAM:SEQ, or SEQ together with stream"))?;
                Some((stream, seq(a)?))
            }
        },
    };
    let min_trust = match q.min_trust {
        None => TrustLevel::SelfReported,
        Some(t) => TrustLevel::ALL
            .into_iter()
            .find(|l| *l as u8 == t)
            .ok_or_else(|| HttpError::bad("min_trust is 0, 1 or 2"))?,
    };
    Ok(ListQuery {
        stream: q.stream.clone(),
        after,
        limit: q.limit.unwrap_or(MAX_RECORDS_PAGE),
        min_trust,
    })
}

/// Runs `f` on tokio's blocking pool (store reads and the ledger request block).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> HttpResult<T> + Send + 'static) -> HttpResult<Json<T>> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(HttpError::internal)?
        .map(Json)
}

async fn get_record(
    State(api): State<Arc<RecordApi>>,
    Path((device, stream, seq)): Path<(String, String, u64)>,
) -> HttpResult<Json<RecordBody>> {
    let device = parse_device(&device)?;
    parse_stream(&stream)?;
    blocking(move || api.record(device, &stream, seq)).await
}

async fn get_records(
    State(api): State<Arc<RecordApi>>,
    Path(device): Path<String>,
    Query(q): Query<RecordListQuery>,
) -> HttpResult<Json<RecordListBody>> {
    let device = parse_device(&device)?;
    blocking(move || api.list(device, &q)).await
}

/// Largest request body the record API takes: its routes are all `GET` and read none.
pub const MAX_RECORD_API_BODY_BYTES: usize = 1024;

/// The record API's routes, behind the shared guards (`chipledger_node::http_guard`: typed JSON
/// refusals, URI and body bounds, the default per-client rate limit).
pub fn router(api: Arc<RecordApi>) -> axum::Router {
    let routes = axum::Router::new()
        .route("/v1/records/{device}", get(get_records))
        .route("/v1/records/{device}/{stream}/{seq}", get(get_record))
        .with_state(api);
    chipledger_node::http_guard::guard(routes, Default::default(), MAX_RECORD_API_BODY_BYTES)
        .expect("the default rate limit is valid")
}

/// Binds `addr` and serves the record API on the current tokio runtime until the runtime
/// stops; returns the bound address (useful with port 0).
pub async fn spawn(addr: SocketAddr, api: Arc<RecordApi>) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the record API to {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = chipledger_node::http_guard::serve(listener, router(api)).await {
            tracing::error!(error = %e, "record API stopped");
        }
    });
    Ok(bound)
}

/// What `--http` asks for: `None` = off; `Some((addr, explicit))`.
pub fn http_setting(flag: Option<&str>) -> Result<Option<(SocketAddr, bool)>> {
    match flag {
        Some(HTTP_OFF) => Ok(None),
        Some(a) => Ok(Some((
            a.parse().with_context(|| format!("--http {a}: not HOST:PORT"))?,
            true,
        ))),
        None => Ok(Some((DEFAULT_HTTP.parse()?, false))),
    }
}

/// Starts the record API as `--http` asks. A failure to bind the default address is only
/// logged (another gateway may hold it); a failure to bind an explicit `--http` is an error.
/// Returns the bound address.
pub async fn start(flag: Option<&str>, gateway: Arc<Mutex<Gateway>>, api_url: &str) -> Result<Option<SocketAddr>> {
    let Some((addr, explicit)) = http_setting(flag)? else {
        return Ok(None);
    };
    let source = Arc::new(NodeTxSource::new(api_url)?);
    let api = Arc::new(RecordApi::new(gateway, source)?);
    match spawn(addr, api).await {
        Ok(bound) => Ok(Some(bound)),
        Err(e) if !explicit => {
            tracing::warn!(error = %format!("{e:#}"), "record API not started (give --http ADDR or --http off)");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_cursors_parse_strictly() {
        let q = |stream: Option<&str>, after: Option<&str>| RecordListQuery {
            stream: stream.map(Into::into),
            after: after.map(Into::into),
            ..Default::default()
        };
        let ok = list_query(&q(Some("temp"), Some("7"))).unwrap();
        assert_eq!(ok.after, Some(("temp".into(), 7)));
        let ok = list_query(&q(None, Some("door:12"))).unwrap();
        assert_eq!(ok.after, Some(("door".into(), 12)));
        assert_eq!(list_query(&q(None, None)).unwrap().limit, MAX_RECORDS_PAGE);
        for (stream, after) in [
            (None, Some("7")),
            (Some("temp"), Some("x")),
            (Some("a/b"), None),
            (None, Some("a b:1")),
        ] {
            assert!(list_query(&q(stream, after)).is_err(), "{stream:?} {after:?}");
        }
        let bad_trust = RecordListQuery {
            min_trust: Some(3),
            ..Default::default()
        };
        assert!(list_query(&bad_trust).is_err());
    }

    #[test]
    fn http_flag() {
        assert_eq!(http_setting(Some("off")).unwrap(), None);
        assert_eq!(
            http_setting(None).unwrap(),
            Some((DEFAULT_HTTP.parse().unwrap(), false))
        );
        assert_eq!(
            http_setting(Some("127.0.0.1:0")).unwrap(),
            Some(("127.0.0.1:0".parse().unwrap(), true))
        );
        assert!(http_setting(Some("localhost")).is_err());
    }
}

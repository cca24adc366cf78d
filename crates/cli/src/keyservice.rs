//! `chipledger keyservice` (issue 6): the owner's key service. It holds the owner's P-256 data
//! key (the key devices wrap their epoch keys to) and its organisation key, and hands a grantee
//! the epoch keys a grant covers — each release recorded on the ledger **before** any key
//! leaves.
//!
//! `POST /v1/keys/release` ([`protocol`]), in this order:
//! 1. the request is well formed (400), signed by the grantee — one of the grantee
//!    organisation's active keys (`/v1/orgs`) or the grantee person's key — (401
//!    `bad_signature` / `unknown_signer`), issued within ±5 min of the service's clock and never
//!    seen before (401 `stale_request` / `replay`; the replay cache is bounded, 503 `busy`);
//! 2. the grant (`access/grant/<id>` from the node's `/v1/state`) is this owner's, for this
//!    grantee, not revoked, not expired and lists the device (or names tags: the ledger checks
//!    those) — 403 with the ledger's codes (`grant_revoked`, `grant_expired`, `not_covered`, …);
//! 3. the device's `_epoch-keys` records come from the gateway's record API, each proven under a
//!    quorum checkpoint and unwrapped with the owner data key; only epochs whose start lies in
//!    the grant's record window `[from_ms, until_ms)` are kept (the ledger cannot see epoch
//!    starts), the others are listed as withheld (403 `nothing_to_release` when none is left);
//! 4. the `KeyRelease` (grant, device, kept epochs, SHA-256 of the recipient key), signed by the
//!    owner organisation, is submitted and the service waits until it is in the log under a
//!    checkpoint cosigned by a quorum of the validators (the ledger's refusal → 403 with its
//!    code; unreachable, rejected or not final within `--final-wait-s` → 503, **no key**);
//! 5. only then is each kept epoch key wrapped to the recipient (a fresh ephemeral key per wrap;
//!    the device's key-wrap layout, so `unwrap_epoch_key` opens it) and returned with the
//!    release transaction.
//!
//! Step 5 can only follow step 4: see [`commit`]. The owner data key never leaves this process:
//! it is not logged, not sent, and only [`OwnerDataKey::unwrap`] uses it.

pub mod protocol;

mod commit;
mod replay;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chipledger_device::seal::{EpochGrant, SealError, unwrap_epoch_key};
use chipledger_node::api::{ErrorBody, OrgBody, StateProofBody};
use chipledger_node::config::KeyFile;
use chipledger_types::access_tx::{GrantRecord, Grantee, KeyRelease, grant_key};
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::PublicKey;
use chipledger_types::record::STREAM_EPOCH_KEYS;
use clap::Args;

use self::commit::{CommitError, FinalRelease, Ledger, wrap_released};
use self::protocol::{
    KeyRequest, MAX_REQUEST_BYTES, RELEASE_PATH, ReleaseAnswerJson, ReleaseRequestJson, SERVICE_PATH, ServiceJson,
    Signer, WithheldJson, parse_request, recipient_digest,
};
use self::replay::{Freshness, ReplayCache};
use crate::client::{Client, DEFAULT_API};
use crate::data_cmd::{FetchError, NetworkTrust, fetch_record_page, read_owner_key, record_of, wait_record_proof};
use crate::gateway_http::RecordListQuery;

/// Where the key service listens unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8282";
/// How far a request's `issued_ms` may be from the service's clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// Requests remembered within one freshness window (beyond: 503 `busy`).
pub const MAX_REPLAY_ENTRIES: usize = 100_000;
/// Releases handled at once (beyond: 503 `busy`); they queue for the owner's sequence numbers.
pub const MAX_IN_FLIGHT: usize = 32;
/// Default of `--final-wait-s`.
pub const DEFAULT_FINAL_WAIT_S: u64 = 30;
/// How long an epoch-key record's proof is awaited while its batch is not final.
const KEY_RECORD_WAIT: Duration = Duration::from_secs(10);
/// Pages of `_epoch-keys` records searched for the requested epochs.
const MAX_KEY_RECORD_PAGES: usize = 100;

/// Flags of `chipledger keyservice`.
#[derive(Debug, Args)]
pub struct KeyServiceArgs {
    /// Validator API (grants, organisations, `KeyRelease` submission).
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// The owner organisation whose devices' keys are released.
    #[arg(long)]
    pub org: String,
    /// The owner organisation's key file (signs `KeyRelease`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// The owner's P-256 data key (64 hex characters, PEM or a `keys gen --kind p256` file):
    /// what devices wrap their epoch keys to. It never leaves this process.
    #[arg(long, value_name = "FILE")]
    pub data_key: PathBuf,
    /// The gateway record API holding the devices' `_epoch-keys` records.
    #[arg(long, value_name = "URL")]
    pub records: String,
    /// HTTP listen address.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Trust anchors: the network's genesis.json (else the validator keys of --api).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// How long to wait for a `KeyRelease` to be final before refusing (503, no key).
    #[arg(long, default_value_t = DEFAULT_FINAL_WAIT_S)]
    pub final_wait_s: u64,
}

/// The owner's data key: only [`OwnerDataKey::unwrap`] uses it; `Debug` shows nothing.
struct OwnerDataKey(p256::SecretKey);

impl OwnerDataKey {
    fn unwrap(&self, wrap: &[u8]) -> Result<EpochGrant, SealError> {
        unwrap_epoch_key(wrap, &self.0)
    }
}

impl std::fmt::Debug for OwnerDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OwnerDataKey(..)")
    }
}

/// A typed refusal: HTTP status and `{"error", "message"}`. It never carries a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    #[error("{0}")]
    BadRequest(String),
    /// 401: signature, signer, freshness, replay.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: the grant does not allow this release (the ledger's codes where it has one).
    #[error("{message}")]
    Forbidden { code: String, message: String },
    /// 503: the ledger or the record API cannot answer, or the release is not final in time.
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    #[error("{0}")]
    Internal(String),
}

impl Refusal {
    fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Refusal::Forbidden {
            code: code.into(),
            message: message.into(),
        }
    }
    fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Refusal::Unavailable {
            code,
            message: message.into(),
        }
    }
    fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Refusal::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden { .. } => StatusCode::FORBIDDEN,
            Refusal::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &str {
        match self {
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Unauthorized { code, .. } | Refusal::Unavailable { code, .. } => code,
            Refusal::Forbidden { code, .. } => code,
            Refusal::Internal(_) => "internal",
        }
    }
}

impl From<Freshness> for Refusal {
    fn from(f: Freshness) -> Self {
        match f {
            Freshness::Replay => Refusal::unauthorized("replay", f.to_string()),
            Freshness::Full(_) => Refusal::unavailable("busy", f.to_string()),
            _ => Refusal::unauthorized("stale_request", f.to_string()),
        }
    }
}

impl From<CommitError> for Refusal {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Refused { code, message } => Refusal::Forbidden {
                code,
                message: format!("the ledger refused the key release: {message}"),
            },
            CommitError::Rejected { .. } => Refusal::forbidden("release_rejected", e.to_string()),
            CommitError::Unavailable(_) => Refusal::unavailable("ledger_unavailable", e.to_string()),
            CommitError::NotFinal { .. } => Refusal::unavailable("not_final", e.to_string()),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code().to_string(),
            message: self.to_string(),
        };
        (self.status(), Json(body)).into_response()
    }
}

/// The service: ledger access, the owner data key, the record API, the replay cache.
pub struct KeyService {
    ledger: Ledger,
    data_key: OwnerDataKey,
    records: String,
    replay: Mutex<ReplayCache>,
    in_flight: AtomicUsize,
}

/// The epochs kept for a release and those withheld.
struct Selection {
    kept: Vec<EpochGrant>,
    withheld: Vec<WithheldJson>,
}

impl KeyService {
    fn owner(&self) -> &str {
        &self.ledger.org
    }

    /// Handles one `POST /v1/keys/release` body at service time `now_ms` (steps in the module
    /// docs). Blocking: call it off the async runtime.
    pub fn release(&self, body: &[u8], now_ms: u64) -> Result<ReleaseAnswerJson, Refusal> {
        let json: ReleaseRequestJson =
            serde_json::from_slice(body).map_err(|e| Refusal::BadRequest(format!("not a release request: {e}")))?;
        let (request, signer, signature) = parse_request(&json).map_err(Refusal::BadRequest)?;
        self.replay_lock().check_fresh(request.issued_ms, now_ms)?;
        self.authenticate(&request, &signer, &signature)?;
        self.replay_lock()
            .check_and_insert(request.digest(), request.issued_ms, now_ms)?;
        let grant = self.grant(&request)?;
        self.check_grant(&grant, &signer, &request.device, now_ms)?;
        let selection = self.select_epochs(&request, &grant)?;
        if selection.kept.is_empty() {
            let why: Vec<String> = selection
                .withheld
                .iter()
                .map(|w| format!("epoch {}: {}", w.epoch, w.reason))
                .collect();
            return Err(Refusal::forbidden(
                "nothing_to_release",
                format!("no requested epoch can be released ({})", why.join(", ")),
            ));
        }
        let release = KeyRelease {
            grant: request.grant,
            device: request.device,
            epochs: selection.kept.iter().map(|g| g.epoch).collect(),
            recipient: recipient_digest(&request.recipient),
        };
        let done = self.ledger.commit(release)?;
        self.answer(&done, &request, &selection)
    }

    /// Step 5: wrap what `done` made final, and say so.
    fn answer(
        &self,
        done: &FinalRelease,
        request: &KeyRequest,
        selection: &Selection,
    ) -> Result<ReleaseAnswerJson, Refusal> {
        let keys =
            wrap_released(done, &request.recipient, &selection.kept).map_err(|e| Refusal::Internal(e.to_string()))?;
        tracing::info!(
            grant = %request.grant, device = %request.device, epochs = ?done.release().epochs,
            tx = %done.tx(), height = done.height(), "epoch keys released after a final KeyRelease"
        );
        Ok(ReleaseAnswerJson {
            release_tx: done.tx().to_string(),
            height: done.height(),
            grant: request.grant.to_string(),
            device: request.device.to_string(),
            keys,
            withheld: selection.withheld.clone(),
        })
    }

    fn replay_lock(&self) -> std::sync::MutexGuard<'_, ReplayCache> {
        self.replay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Step 1: the signature is the named signer's (an organisation's active key, or the key).
    fn authenticate(&self, request: &KeyRequest, signer: &Signer, signature: &[u8; 64]) -> Result<(), Refusal> {
        let keys = match signer {
            Signer::Key(k) => vec![*k],
            Signer::Org(name) => self.active_org_keys(name)?,
        };
        if keys.iter().any(|k| request.verify(k, signature)) {
            return Ok(());
        }
        Err(Refusal::unauthorized(
            "bad_signature",
            "the signature is not by the named signer's (active) key",
        ))
    }

    /// The keys of organisation `name` active at the ledger's tip.
    fn active_org_keys(&self, name: &str) -> Result<Vec<PublicKey>, Refusal> {
        let unavailable = |e: anyhow::Error| Refusal::unavailable("ledger_unavailable", format!("{e:#}"));
        let height = self.ledger.client.status().map_err(unavailable)?.height;
        let orgs: Vec<OrgBody> = self.ledger.client.get_json("/v1/orgs").map_err(unavailable)?;
        let org = orgs
            .into_iter()
            .find(|o| o.name == name && o.removed_height.is_none())
            .ok_or_else(|| Refusal::unauthorized("unknown_signer", format!("no active organisation '{name}'")))?;
        Ok(org
            .keys
            .iter()
            .filter(|k| k.from_height <= height && k.until_height.is_none_or(|u| height < u))
            .filter_map(|k| k.key.parse().ok())
            .collect())
    }

    /// Step 2: the grant as the ledger's finalized state holds it.
    fn grant(&self, request: &KeyRequest) -> Result<GrantRecord, Refusal> {
        let key = String::from_utf8(grant_key(&request.grant)).map_err(|e| Refusal::Internal(e.to_string()))?;
        let state: StateProofBody = self
            .ledger
            .client
            .get_json(&format!("/v1/state?key={key}"))
            .map_err(|e| Refusal::unavailable("ledger_unavailable", format!("{e:#}")))?;
        let value = state
            .value
            .ok_or_else(|| Refusal::forbidden("unknown_grant", format!("no grant {}", request.grant)))?;
        let bytes = hex::decode(&value).map_err(|e| Refusal::Internal(format!("state value: {e}")))?;
        GrantRecord::from_cbor(&bytes, Limits::STATE).map_err(|e| Refusal::Internal(format!("grant record: {e}")))
    }

    /// Step 2: this owner's grant, for this signer, live, covering the device (tags: the
    /// ledger decides).
    fn check_grant(&self, grant: &GrantRecord, signer: &Signer, device: &DeviceId, now_ms: u64) -> Result<(), Refusal> {
        if grant.owner != self.owner() {
            return Err(Refusal::forbidden(
                "not_owner",
                format!(
                    "grant {} was given by '{}'; this service releases the keys of '{}'",
                    grant.id,
                    grant.owner,
                    self.owner()
                ),
            ));
        }
        let is_grantee = match (&grant.grantee, signer) {
            (Grantee::Org(g), Signer::Org(s)) => g == s,
            (Grantee::Key(g), Signer::Key(s)) => g == s,
            _ => false,
        };
        if !is_grantee {
            return Err(Refusal::forbidden(
                "not_grantee",
                format!("grant {} is for {}, not the signer", grant.id, grant.grantee),
            ));
        }
        if let Some((height, _, reason)) = &grant.revoked {
            return Err(Refusal::forbidden(
                "grant_revoked",
                format!("grant {} was revoked at height {height} ({reason})", grant.id),
            ));
        }
        if now_ms >= grant.expires_ms {
            return Err(Refusal::forbidden(
                "grant_expired",
                format!("grant {} expired at {} ms", grant.id, grant.expires_ms),
            ));
        }
        if !grant.scope.devices.contains(device) && grant.scope.tags.is_empty() {
            return Err(Refusal::forbidden(
                "not_covered",
                format!("grant {} does not cover device {device}", grant.id),
            ));
        }
        Ok(())
    }

    /// Step 3: the requested epochs' keys from proven `_epoch-keys` records, split by the
    /// grant's record window.
    fn select_epochs(&self, request: &KeyRequest, grant: &GrantRecord) -> Result<Selection, Refusal> {
        let mut found = self.epoch_grants(&request.device, &request.epochs)?;
        let (from, until) = (grant.scope.from_ms, grant.scope.until_ms);
        let mut selection = Selection {
            kept: Vec::new(),
            withheld: Vec::new(),
        };
        for &epoch in &request.epochs {
            let withheld = |reason: &str| WithheldJson {
                epoch,
                reason: reason.into(),
            };
            match found.remove(&epoch) {
                Some(g) if (from..until).contains(&g.started_ms) => selection.kept.push(g),
                Some(_) => selection.withheld.push(withheld("outside_window")),
                None => selection.withheld.push(withheld("no_key_record")),
            }
        }
        Ok(selection)
    }

    /// The epoch keys of `device` for `epochs`, from its proven `_epoch-keys` records.
    fn epoch_grants(
        &self,
        device: &DeviceId,
        epochs: &[u32],
    ) -> Result<std::collections::BTreeMap<u32, EpochGrant>, Refusal> {
        let records_down = |e: FetchError| Refusal::unavailable("records_unavailable", e.to_string());
        let mut found = std::collections::BTreeMap::new();
        let mut q = RecordListQuery {
            stream: Some(STREAM_EPOCH_KEYS.into()),
            ..Default::default()
        };
        for _ in 0..MAX_KEY_RECORD_PAGES {
            let page = match fetch_record_page(&self.records, device, &q) {
                Err(FetchError::NotFound { .. }) => break,
                other => other.map_err(records_down)?,
            };
            for r in &page.records {
                if epochs.contains(&r.epoch) && !found.contains_key(&r.epoch) {
                    match self.proven_epoch_key(device, r.seq) {
                        Ok(g) => {
                            found.insert(g.epoch, g);
                        }
                        Err(KeyRecordError::Unavailable(e)) => return Err(records_down(e)),
                        Err(KeyRecordError::Unusable(why)) => {
                            tracing::warn!(%device, seq = r.seq, %why, "epoch-key record not usable");
                        }
                    }
                }
            }
            match page.next {
                Some(next) if found.len() < epochs.len() => q.after = Some(next),
                _ => break,
            }
        }
        Ok(found)
    }

    /// One `_epoch-keys` record, proven under a quorum checkpoint and unwrapped with the owner
    /// data key; its statement must name the record's device and epoch.
    fn proven_epoch_key(&self, device: &DeviceId, seq: u64) -> Result<EpochGrant, KeyRecordError> {
        let proof = match wait_record_proof(&self.records, device, STREAM_EPOCH_KEYS, seq, KEY_RECORD_WAIT) {
            Ok(p) => p,
            Err(e @ (FetchError::Transport { .. } | FetchError::Refused { .. })) => {
                return Err(KeyRecordError::Unavailable(e));
            }
            Err(e) => return Err(KeyRecordError::Unusable(e.to_string())),
        };
        let unusable = |why: String| KeyRecordError::Unusable(why);
        let proven = self.ledger.trust.verify(&proof).map_err(|e| unusable(e.to_string()))?;
        if (proven.device, proven.stream.as_str(), proven.seq) != (*device, STREAM_EPOCH_KEYS, seq) {
            return Err(unusable("the gateway proved another record".into()));
        }
        let record = record_of(&proof).map_err(|e| unusable(e.to_string()))?;
        let grant = self
            .data_key
            .unwrap(&record.payload)
            .map_err(|e| unusable(e.to_string()))?;
        if grant.device != record.device || grant.epoch != record.epoch {
            return Err(unusable("the key-wrap statement names another device or epoch".into()));
        }
        Ok(grant)
    }

    /// Counts a request in; `None` when [`MAX_IN_FLIGHT`] are already being handled.
    fn admit(self: &Arc<Self>) -> Option<InFlight> {
        let before = self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self.clone());
        (before < MAX_IN_FLIGHT).then_some(guard)
    }
}

/// Why one `_epoch-keys` record gave no key.
enum KeyRecordError {
    /// The record API cannot answer: the whole request is refused (503).
    Unavailable(FetchError),
    /// This record does not give a key (unproven, not final, not ours): skipped.
    Unusable(String),
}

/// One admitted request; decrements the count when dropped.
struct InFlight(Arc<KeyService>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

// ---- HTTP ------------------------------------------------------------------------------------

/// The key service's routes, behind the shared guards (`chipledger_node::http_guard`: typed JSON
/// refusals, URI and body bounds — `MAX_REQUEST_BYTES` — and the default per-client rate limit).
pub fn router(service: Arc<KeyService>) -> axum::Router {
    let routes = axum::Router::new()
        .route(RELEASE_PATH, post(release_route))
        .route(SERVICE_PATH, get(service_route))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(service);
    chipledger_node::http_guard::guard(routes, Default::default(), MAX_REQUEST_BYTES)
        .expect("the default rate limit is valid")
}

async fn release_route(State(service): State<Arc<KeyService>>, body: Bytes) -> Response {
    let Some(admitted) = service.admit() else {
        return Refusal::unavailable("busy", format!("{MAX_IN_FLIGHT} releases in progress; retry shortly"))
            .into_response();
    };
    let handled = tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        service.release(&body, chipledger_node::metrics::now_ms())
    })
    .await;
    match handled {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(refusal)) => {
            tracing::info!(code = refusal.code(), reason = %refusal, "release refused; no key");
            refusal.into_response()
        }
        Err(e) => Refusal::Internal(e.to_string()).into_response(),
    }
}

async fn service_route(State(service): State<Arc<KeyService>>) -> Json<ServiceJson> {
    Json(ServiceJson {
        org: service.owner().to_string(),
        now_ms: chipledger_node::metrics::now_ms(),
        skew_ms: MAX_CLOCK_SKEW_MS,
    })
}

/// Prints to stdout (progress lines a supervisor or a test reads); a closed stdout is ignored.
fn say(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `chipledger keyservice …`: serves until Ctrl-C / SIGTERM.
pub fn run(a: KeyServiceArgs) -> Result<()> {
    let key = KeyFile::read(&a.key)?;
    let data_key = OwnerDataKey(read_owner_key(&a.data_key)?);
    let trust = NetworkTrust::load(&a.api, a.genesis.as_deref())?;
    let ledger = Ledger::new(
        Client::new(&a.api)?,
        a.org.clone(),
        key,
        trust,
        Duration::from_secs(a.final_wait_s),
    );
    let started_ms = chipledger_node::metrics::now_ms();
    let service = Arc::new(KeyService {
        ledger,
        data_key,
        records: a.records.trim_end_matches('/').to_string(),
        replay: Mutex::new(ReplayCache::new(MAX_CLOCK_SKEW_MS, MAX_REPLAY_ENTRIES, started_ms)),
        in_flight: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("binding the key service to {}", a.listen))?;
        let bound = listener.local_addr()?;
        say(&format!("key service of '{}' listening on http://{bound}", a.org));
        axum::serve(
            listener,
            router(service).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(chipledger_node::run::shutdown_signal())
        .await
        .context("serving the key service")
    })
}

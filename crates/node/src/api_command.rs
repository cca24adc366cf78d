//! Authorized-command routes (issue 6), read side: an authorization (and, for a device, its
//! proof), one command with its receipt, who accessed a device, when and for what, and a
//! device's anomalies. Registered from [`crate::api`] with one line; everything comes from the
//! finalized state at the tip.
//!
//! **Device-facing proof.** `GET /v1/access/authorizations/{id}?proof=true` adds `proof`: hex
//! canonical CBOR of `chipledger_types::command_tx::AuthorizationProof` — the newest final
//! (quorum-cosigned) checkpoint and the `authz/<id>` record (plus, for an organisation grantee,
//! its `org/<name>` record: its keys) with sparse-Merkle proofs against the state root that
//! checkpoint cosigns. A device checks it with `chipledger_device::command::verify_command`;
//! the node decides nothing. 503 while a newer block's checkpoint is still collecting
//! signatures (retry shortly).
//!
//! **Accesses and anomalies.** The accesses view is the device's audit trail
//! (`chipledger_types::audit`) restricted to the command kinds (`authorization`,
//! `authorization-revoked`, `command`, `receipt`, `receipt-anomaly`). Anomalies are recorded
//! commands still without a receipt `after_blocks` (default [`DEFAULT_UNANSWERED_BLOCKS`])
//! blocks later, and receipts the ledger stored with an anomaly flag (receipts without a proper
//! authorization or without a recorded command).

use axum::Json;
use axum::extract::{Path, Query, State};
use chipledger_state::audit::{audit_count, audit_entries};
use chipledger_state::command::model::{device_commands, get_authorization, get_command};
use chipledger_state::smt::Smt;
use chipledger_state::store::StateRead;
use chipledger_types::access_tx::Grantee;
use chipledger_types::audit::{AuditEntry, AuditSubject};
use chipledger_types::cbor::Encode;
use chipledger_types::command_tx::{AuthorizationProof, AuthorizationRecord, CommandRecord, authz_key, org_record_key};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::state_proof::state_extension;
use chipledger_types::tx::TxHash;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody};
use crate::api_access::GranteeBody;
use crate::executor::Inner;
use crate::firmware_bundle::prove_record;

type ApiResult<T> = Result<T, ApiError>;

/// Audit kinds the accesses view lists.
pub const ACCESS_KINDS: [&str; 5] = [
    "authorization",
    "authorization-revoked",
    "command",
    "receipt",
    "receipt-anomaly",
];
/// Blocks after which a recorded command without a receipt counts as an anomaly by default.
pub const DEFAULT_UNANSWERED_BLOCKS: u64 = 10;
/// Most trail entries one accesses page scans.
pub const MAX_ACCESS_PAGE: u64 = 500;
/// Most trail entries one anomalies answer scans for flagged receipts (under the executor
/// lock; a trail grows with every receipt a device signs, rejections included).
pub const MAX_ANOMALY_SCAN: u64 = 10 * MAX_ACCESS_PAGE;

// ---- bodies ------------------------------------------------------------------------------------

/// When an authorization was revoked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokedBody {
    pub height: u64,
    pub timestamp_ms: u64,
}

/// An authorization as the ledger holds it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuthorizationBody {
    /// Hex hash of the `Authorize` transaction.
    pub id: String,
    pub owner: String,
    pub grantee: GranteeBody,
    /// Hex device ids.
    pub devices: Vec<String>,
    pub actions: Vec<String>,
    /// Unix ms (block time).
    pub expires_ms: u64,
    pub purpose: String,
    pub created_height: u64,
    pub created_ms: u64,
    pub revoked: Option<RevokedBody>,
    /// Height the answer was read at.
    pub height: u64,
    /// With `proof=true`: hex canonical CBOR of the device-facing `AuthorizationProof`.
    pub proof: Option<String>,
}

impl AuthorizationBody {
    fn new(a: &AuthorizationRecord, height: u64) -> Self {
        AuthorizationBody {
            id: a.id.to_string(),
            owner: a.owner.clone(),
            grantee: GranteeBody::from(&a.grantee),
            devices: a.devices.iter().map(|d| d.to_string()).collect(),
            actions: a.actions.clone(),
            expires_ms: a.expires_ms,
            purpose: a.purpose.clone(),
            created_height: a.created_height,
            created_ms: a.created_ms,
            revoked: a.revoked.map(|r| RevokedBody {
                height: r.height,
                timestamp_ms: r.timestamp_ms,
            }),
            height,
            proof: None,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuthorizationQuery {
    /// Add the device-facing proof (checkpoint + state proofs).
    pub proof: Option<bool>,
}

/// A committed receipt of a command.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReceiptBody {
    /// Hex hash of the `AccessReceipt` transaction.
    pub tx: String,
    pub height: u64,
    /// `accepted`, or the device's rejection code.
    pub outcome: String,
    /// The device's clock when it answered (self-reported).
    pub device_ms: u64,
    /// Why the ledger flagged it (`no_authorization`, `not_covered`, …), if it did.
    pub anomaly: Option<String>,
}

/// One command request as the ledger knows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommandBody {
    /// Hex SHA-256 of the signed request.
    pub request_hash: String,
    pub authorization: String,
    pub device: String,
    pub action: String,
    /// The organisation that recorded it (absent: only a receipt is known).
    pub org: Option<String>,
    /// The `RecordCommand` transaction.
    pub command_tx: Option<String>,
    pub height: u64,
    pub timestamp_ms: u64,
    pub receipt: Option<ReceiptBody>,
}

impl From<&CommandRecord> for CommandBody {
    fn from(c: &CommandRecord) -> Self {
        CommandBody {
            request_hash: hex::encode(c.request_hash),
            authorization: c.authorization.to_string(),
            device: c.device.to_string(),
            action: c.action.clone(),
            org: c.org.clone(),
            command_tx: c.command_tx.map(|t| t.to_string()),
            height: c.height,
            timestamp_ms: c.timestamp_ms,
            receipt: c.receipt.as_ref().map(|r| ReceiptBody {
                tx: r.tx.to_string(),
                height: r.height,
                outcome: r.outcome.code().into(),
                device_ms: r.device_ms,
                anomaly: r.anomaly.map(|a| a.name().into()),
            }),
        }
    }
}

/// One access-related entry of a device's audit trail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessEntryBody {
    /// Position in the device's trail.
    pub n: u64,
    /// `authorization`, `authorization-revoked`, `command`, `receipt` or `receipt-anomaly`.
    pub kind: String,
    /// Hex hash of the transaction (its log inclusion proof: `/v1/tlog-proof/{tx}`).
    pub tx: String,
    pub height: u64,
    /// Block time (unix ms).
    pub timestamp_ms: u64,
    /// The organisation that signed the transaction.
    pub actor: String,
    /// Who, what, which authorization.
    pub summary: String,
}

impl AccessEntryBody {
    fn new(n: u64, e: AuditEntry) -> Self {
        AccessEntryBody {
            n,
            kind: e.kind,
            tx: e.tx.to_string(),
            height: e.height,
            timestamp_ms: e.timestamp_ms,
            actor: e.actor,
            summary: e.summary,
        }
    }
}

/// Who accessed a device, when and for what.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccessesBody {
    pub device: String,
    /// Height the answer was read at.
    pub height: u64,
    /// Entries in the device's whole audit trail (all kinds).
    pub trail_total: u64,
    /// Commands recorded, receipts committed, receipts flagged, commands still without receipt.
    pub commands: u64,
    pub receipts: u64,
    pub anomalies: u64,
    pub pending: u64,
    /// Unanswered commands that no longer fit the pending list (see the audit trail).
    pub pending_dropped: u64,
    pub entries: Vec<AccessEntryBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AccessesQuery {
    /// First trail position to scan (default 0).
    pub from: Option<u64>,
    /// Trail entries to scan (default and maximum 500).
    pub limit: Option<u64>,
}

/// A recorded command still without a receipt.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UnansweredBody {
    pub command: CommandBody,
    /// Blocks since it was recorded.
    pub blocks_waiting: u64,
}

/// A device's command anomalies. (Named `CommandAnomaliesBody` in the OpenAPI document: the data
/// API's `AnomaliesBody` has the name there, and one would silently replace the other.)
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = CommandAnomaliesBody)]
pub struct AnomaliesBody {
    pub device: String,
    pub height: u64,
    /// The threshold used: commands recorded at least this many blocks ago.
    pub after_blocks: u64,
    /// Commands without a receipt after `after_blocks` blocks.
    pub unanswered: Vec<UnansweredBody>,
    /// Older unanswered commands that no longer fit the device's pending list (their records
    /// and `command` audit entries remain).
    pub unanswered_dropped: u64,
    /// Receipts the ledger stored with an anomaly flag (from the audit trail, oldest first).
    pub flagged_receipts: Vec<AccessEntryBody>,
    /// Trail position to pass as `from` to scan on (absent: the trail was scanned to its end).
    #[serde(default)]
    pub next_from: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AnomaliesQuery {
    /// Blocks after which a command without receipt is listed (default 10).
    pub after_blocks: Option<u64>,
    /// First trail position scanned for flagged receipts (default 0; at most 5000 are scanned).
    pub from: Option<u64>,
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

fn parse_hash(s: &str, what: &str) -> ApiResult<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::bad(format!("{what} must be 64 hex characters")))
}

/// The device-facing proof of `a` against the tip's state, which the newest final checkpoint
/// must cosign (else 503: retry).
fn authorization_proof(inner: &Inner, s: &dyn StateRead, a: &AuthorizationRecord) -> ApiResult<AuthorizationProof> {
    let retry = |why: &str| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "retry", why);
    let (_, note) = inner
        .votes
        .latest_final
        .clone()
        .ok_or_else(|| retry("no final checkpoint yet"))?;
    let text = chipledger_types::note::Note::parse(note.as_bytes(), &Default::default())
        .map_err(internal)?
        .text;
    let cp = chipledger_types::checkpoint::Checkpoint::parse(&text).map_err(internal)?;
    let (_, root) = state_extension(&cp).ok_or_else(|| internal("checkpoint without state line"))?;
    let tree: &Smt = &inner.tip.smt;
    if root != tree.root() {
        return Err(retry("the newest state is not cosigned yet; retry shortly"));
    }
    let grantee_org = match &a.grantee {
        Grantee::Org(name) => Some(prove_record(s, tree, &org_record_key(name))),
        Grantee::Key(_) => None,
    };
    Ok(AuthorizationProof {
        checkpoint: note,
        authorization: prove_record(s, tree, &authz_key(&a.id)),
        grantee_org,
    })
}

fn device_trail(s: &dyn StateRead, device: &DeviceId, from: u64, limit: u64) -> ApiResult<(u64, Vec<AccessEntryBody>)> {
    let subject = AuditSubject::Device(*device);
    let total = audit_count(s, &subject).map_err(internal)?;
    let entries = audit_entries(s, &subject, from, limit)
        .map_err(internal)?
        .into_iter()
        .filter(|(_, e)| ACCESS_KINDS.contains(&e.kind.as_str()))
        .map(|(n, e)| AccessEntryBody::new(n, e))
        .collect();
    Ok((total, entries))
}

// ---- routes ------------------------------------------------------------------------------------

/// An authorization; with `proof=true` also the proof a device verifies.
#[utoipa::path(get, path = "/v1/access/authorizations/{id}",
    params(("id" = String, Path, description = "Hex hash of the Authorize transaction", pattern = "^[0-9a-f]{64}$"), AuthorizationQuery),
    responses((status = 200, description = "The authorization", body = AuthorizationBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such authorization", body = ErrorBody),
        (status = 503, description = "Proof asked for, but no final checkpoint matches the current state yet; retry", body = ErrorBody)))]
async fn authorization(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<AuthorizationQuery>,
) -> ApiResult<Json<AuthorizationBody>> {
    let id = TxHash(parse_hash(&id, "an authorization id")?);
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let a = get_authorization(&s, &id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no authorization {id}")))?;
    let mut body = AuthorizationBody::new(&a, inner.tip.height);
    if q.proof.unwrap_or(false) {
        body.proof = Some(hex::encode(authorization_proof(&inner, &s, &a)?.to_cbor()));
    }
    Ok(Json(body))
}

/// One command request with its receipt, if committed.
#[utoipa::path(get, path = "/v1/access/commands/{hash}",
    params(("hash" = String, Path, description = "Hex SHA-256 of the signed request", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The command", body = CommandBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "The ledger knows no such request", body = ErrorBody)))]
async fn command(State(c): State<Ctx>, Path(hash): Path<String>) -> ApiResult<Json<CommandBody>> {
    let h = parse_hash(&hash, "a request hash")?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let cmd = get_command(&s, &h)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no command {hash}")))?;
    Ok(Json(CommandBody::from(&cmd)))
}

/// Who accessed a device, when and for what: its authorizations, commands and receipts, in
/// block order (a page of its audit trail).
#[utoipa::path(get, path = "/v1/access/devices/{id}/accesses",
    params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$"), AccessesQuery),
    responses((status = 200, description = "The device's accesses", body = AccessesBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn accesses(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<AccessesQuery>,
) -> ApiResult<Json<AccessesBody>> {
    let device = parse_device(&id)?;
    let limit = q.limit.unwrap_or(MAX_ACCESS_PAGE).min(MAX_ACCESS_PAGE);
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let (trail_total, entries) = device_trail(&s, &device, q.from.unwrap_or(0), limit)?;
    let dc = device_commands(&s, &device).map_err(internal)?;
    Ok(Json(AccessesBody {
        device: device.to_string(),
        height: inner.tip.height,
        trail_total,
        commands: dc.commands,
        receipts: dc.receipts,
        anomalies: dc.anomalies,
        pending: dc.pending.len() as u64,
        pending_dropped: dc.pending_dropped,
        entries,
    }))
}

/// A device's anomalies: commands without a receipt after `after_blocks` blocks, and receipts
/// stored with an anomaly flag (no or no proper authorization, no recorded command).
#[utoipa::path(get, path = "/v1/access/devices/{id}/anomalies",
    params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$"), AnomaliesQuery),
    responses((status = 200, description = "The device's command anomalies", body = AnomaliesBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn anomalies(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<AnomaliesQuery>,
) -> ApiResult<Json<AnomaliesBody>> {
    let device = parse_device(&id)?;
    let after_blocks = q.after_blocks.unwrap_or(DEFAULT_UNANSWERED_BLOCKS);
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(internal)?;
    let height = inner.tip.height;
    let mut unanswered = Vec::new();
    let dc = device_commands(&s, &device).map_err(internal)?;
    for p in dc.pending {
        let waiting = height.saturating_sub(p.height);
        if waiting < after_blocks {
            continue;
        }
        if let Some(cmd) = get_command(&s, &p.request_hash).map_err(internal)? {
            unanswered.push(UnansweredBody {
                command: CommandBody::from(&cmd),
                blocks_waiting: waiting,
            });
        }
    }
    let subject = AuditSubject::Device(device);
    let total = audit_count(&s, &subject).map_err(internal)?;
    let mut flagged_receipts = Vec::new();
    let mut from = q.from.unwrap_or(0);
    let end = total.min(from.saturating_add(MAX_ANOMALY_SCAN));
    while from < end {
        let (_, page) = device_trail(&s, &device, from, MAX_ACCESS_PAGE.min(end - from))?;
        flagged_receipts.extend(page.into_iter().filter(|e| e.kind == "receipt-anomaly"));
        from += MAX_ACCESS_PAGE;
    }
    Ok(Json(AnomaliesBody {
        device: device.to_string(),
        height,
        after_blocks,
        unanswered,
        unanswered_dropped: dc.pending_dropped,
        flagged_receipts,
        next_from: (end < total).then_some(end),
    }))
}

/// The command routes (merged into [`crate::api`]'s single route list).
pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(authorization))
        .routes(routes!(command))
        .routes(routes!(accesses))
        .routes(routes!(anomalies))
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&[
            "/v1/access/authorizations/{id}",
            "/v1/access/commands/{hash}",
            "/v1/access/devices/{id}/accesses",
            "/v1/access/devices/{id}/anomalies",
        ]);
    }
}

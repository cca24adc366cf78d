//! Audit views (issue 6): per device, per organisation and per grantee key, everything the
//! access flows recorded — grants, key releases, offers, purchases, authorizations, commands,
//! receipts, range proofs — in block order, each with the RFC 9162 inclusion proof of the
//! transaction that made it. The trails live in the authenticated state
//! (`chipledger_types::audit`), so they are the same on every validator.
//!
//! A proof is against the newest final (quorum-cosigned) checkpoint when one covers the
//! transaction, else against the tip's log root (`checkpoint` absent): a client that needs a
//! cosigned proof asks again a moment later or fetches `/v1/tlog-proof/{tx}`.

use axum::Json;
use axum::extract::{Path, Query, State};
use chipledger_state::audit::{audit_count, audit_entries};
use chipledger_types::audit::{AuditEntry, AuditSubject};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody, InclusionProof, proof_for};
use crate::executor::TxStatus;

type ApiResult<T> = Result<T, ApiError>;

/// Most entries one page returns.
pub const MAX_AUDIT_PAGE: u64 = 500;
/// Entries a page returns when `limit` is not given.
pub const DEFAULT_AUDIT_PAGE: u64 = 100;

/// One audit entry with the proof of its transaction.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryBody {
    /// Position in the subject's trail (0 = first).
    pub n: u64,
    /// `grant`, `grant-revoked`, `key-release`, `offer`, `purchase`, `authorization`, `command`,
    /// `receipt`, `receipt-anomaly`, `range-proof`, ….
    pub kind: String,
    /// Hex hash of the transaction that made the entry.
    pub tx: String,
    pub height: u64,
    /// Block time (unix ms).
    pub timestamp_ms: u64,
    /// Organisation that signed the transaction.
    pub actor: String,
    pub summary: String,
    /// Inclusion proof of the transaction's log leaf (omitted with `proofs=false`).
    pub proof: Option<InclusionProof>,
    /// The transaction itself (hex canonical CBOR), whose leaf the proof is for: a verifier
    /// checks that it hashes to `tx`, computes its leaf hash and walks the proof (omitted with
    /// `proofs=false`).
    pub tx_cbor: Option<String>,
}

/// A page of a subject's trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditBody {
    /// `device/<hex>`, `org/<name>` or `key/<hex>`.
    pub subject: String,
    /// Entries in the whole trail.
    pub total: u64,
    /// Height the trail was read at.
    pub height: u64,
    pub entries: Vec<AuditEntryBody>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// First entry (default 0).
    pub from: Option<u64>,
    /// Entries to return (default 100, at most 500).
    pub limit: Option<u64>,
    /// Only entries of this kind.
    pub kind: Option<String>,
    /// Include each transaction's inclusion proof (default true).
    pub proofs: Option<bool>,
}

fn subject(kind: &str, id: &str) -> ApiResult<AuditSubject> {
    AuditSubject::parse(&format!("{kind}/{id}"))
        .ok_or_else(|| ApiError::bad(format!("'{id}' is not a valid {kind} id")))
}

fn page(c: &Ctx, subject: AuditSubject, q: &AuditQuery) -> ApiResult<AuditBody> {
    let limit = q.limit.unwrap_or(DEFAULT_AUDIT_PAGE);
    if limit == 0 || limit > MAX_AUDIT_PAGE {
        return Err(ApiError::bad(format!("limit is 1..={MAX_AUDIT_PAGE}")));
    }
    let (total, height, entries) = {
        let inner = c.exec.lock();
        let s = inner.db.state().map_err(ApiError::internal)?;
        let total = audit_count(&s, &subject).map_err(ApiError::internal)?;
        let entries = audit_entries(&s, &subject, q.from.unwrap_or(0), limit).map_err(ApiError::internal)?;
        (total, inner.tip.height, entries)
    };
    let with_proofs = q.proofs.unwrap_or(true);
    let mut out = Vec::with_capacity(entries.len());
    for (n, e) in entries {
        if q.kind.as_deref().is_some_and(|k| k != e.kind) {
            continue;
        }
        let (proof, tx_cbor) = if with_proofs { tx_proof(c, &e)? } else { (None, None) };
        out.push(entry_body(n, e, proof, tx_cbor));
    }
    Ok(AuditBody {
        subject: subject.path(),
        total,
        height,
        entries: out,
    })
}

/// The entry's transaction and its inclusion proof. The transaction is looked up where the log
/// has it, not at the entry's height: an effect of governance (e.g. `credits-issued`) names the
/// proposal, which an earlier block holds.
fn tx_proof(c: &Ctx, e: &AuditEntry) -> ApiResult<(Option<InclusionProof>, Option<String>)> {
    match c.exec.tx_status(&e.tx) {
        TxStatus::Final { index, height } => {
            let bytes = crate::api_data::tx_bytes(&c.exec, height, &e.tx)?;
            Ok((Some(proof_for(&c.exec, index)?), bytes.map(hex::encode)))
        }
        _ => Ok((None, None)),
    }
}

fn entry_body(n: u64, e: AuditEntry, proof: Option<InclusionProof>, tx_cbor: Option<String>) -> AuditEntryBody {
    AuditEntryBody {
        n,
        kind: e.kind,
        tx: e.tx.to_string(),
        height: e.height,
        timestamp_ms: e.timestamp_ms,
        actor: e.actor,
        summary: e.summary,
        proof,
        tx_cbor,
    }
}

/// A device's audit trail: grants and key releases covering it, authorizations, commands and
/// receipts, range proofs — in block order, each with its transaction's inclusion proof.
#[utoipa::path(get, path = "/v1/audit/devices/{id}", params(("id" = String, Path, description = "Hex device id", pattern = "^[0-9a-f]{40}$"), AuditQuery),
    responses((status = 200, description = "A page of the device's trail", body = AuditBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn device_audit(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditBody>> {
    page(&c, subject("device", &id)?, &q).map(Json)
}

/// An organisation's audit trail, as owner, grantee, buyer, seller or commander.
#[utoipa::path(get, path = "/v1/audit/orgs/{name}", params(("name" = String, Path, description = "Organisation name", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"), AuditQuery),
    responses((status = 200, description = "A page of the organisation's trail", body = AuditBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn org_audit(
    State(c): State<Ctx>,
    Path(name): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditBody>> {
    page(&c, subject("org", &name)?, &q).map(Json)
}

/// The trail of a grantee known only by its key (hex SHA-256 of the key's CBOR encoding).
#[utoipa::path(get, path = "/v1/audit/keys/{hash}", params(("hash" = String, Path, description = "Hex SHA-256 of the grantee key's CBOR", pattern = "^[0-9a-f]{64}$"), AuditQuery),
    responses((status = 200, description = "A page of the grantee's trail", body = AuditBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn key_audit(
    State(c): State<Ctx>,
    Path(hash): Path<String>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditBody>> {
    page(&c, subject("key", &hash)?, &q).map(Json)
}

pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(device_audit))
        .routes(routes!(org_audit))
        .routes(routes!(key_audit))
}

#[cfg(test)]
mod tests {
    /// Every audit route is in the one OpenAPI document.
    #[test]
    fn audit_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&[
            "/v1/audit/devices/{id}",
            "/v1/audit/orgs/{name}",
            "/v1/audit/keys/{hash}",
        ]);
    }
}

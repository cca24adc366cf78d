//! Access routes (issue 6), read side: one grant (with whether a key release for a device
//! would be accepted now), grants by owner or grantee, one offer, an organisation's credits.
//! Registered from [`crate::api`] with one line; everything comes from the state at the tip.
//!
//! Every record answer carries the record's canonical CBOR (`record_cbor`, decodable with
//! `chipledger_types::access_tx`) and, when the newest final checkpoint binds the tip's state
//! root, its sparse-Merkle proof (`state_proof`). The state has no scans: grants are listed
//! from the audit trail of the organisation (or grantee key) asked about.

use axum::Json;
use axum::extract::{Path, Query, State};
use chipledger_state::access::check_release;
use chipledger_state::access::model::{credits_of, get_grant, get_offer};
use chipledger_state::audit::{audit_count, audit_entries};
use chipledger_types::access_tx::{
    AccessScope, GrantRecord, Grantee, OfferRecord, credits_key, grant_key, key_hash, offer_key,
};
use chipledger_types::audit::AuditSubject;
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::{TxHash, check_name};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody};
use crate::api_data::{StateProofs, state_proofs};

type ApiResult<T> = Result<T, ApiError>;

/// Most audit entries one grant listing reads (newest first); older grants are reached with
/// `before`.
pub const MAX_GRANT_SCAN: u64 = 1000;

// ---- bodies ------------------------------------------------------------------------------------

/// Who a grant is for: an organisation, or a person's key.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GranteeBody {
    /// The grantee organisation.
    pub org: Option<String>,
    /// Hex canonical CBOR of the grantee's public key.
    pub key: Option<String>,
    /// Hex SHA-256 of that CBOR (the key's audit subject, `/v1/audit/keys/{hash}`).
    pub key_hash: Option<String>,
}

impl From<&Grantee> for GranteeBody {
    fn from(g: &Grantee) -> Self {
        match g {
            Grantee::Org(o) => GranteeBody {
                org: Some(o.clone()),
                key: None,
                key_hash: None,
            },
            Grantee::Key(k) => GranteeBody {
                org: None,
                key: Some(hex::encode(k.to_cbor())),
                key_hash: Some(hex::encode(key_hash(k))),
            },
        }
    }
}

/// What a grant or offer covers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ScopeBody {
    /// Hex device ids.
    pub devices: Vec<String>,
    /// The owner's device tags.
    pub tags: Vec<String>,
    /// Data streams; empty = every data stream.
    pub streams: Vec<String>,
    /// Record-time window `[from_ms, until_ms)`, unix ms (enforced by the owner's key service).
    pub from_ms: u64,
    pub until_ms: u64,
}

impl From<&AccessScope> for ScopeBody {
    fn from(s: &AccessScope) -> Self {
        ScopeBody {
            devices: s.devices.iter().map(|d| d.to_string()).collect(),
            tags: s.tags.clone(),
            streams: s.streams.clone(),
            from_ms: s.from_ms,
            until_ms: s.until_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevocationBody {
    pub height: u64,
    /// Block time of the revocation (unix ms).
    pub timestamp_ms: u64,
    pub reason: String,
}

/// A grant as the ledger keeps it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantBody {
    /// Height the grant was read at.
    pub height: u64,
    /// Hex hash of the `GrantAccess` or `Purchase` transaction.
    pub id: String,
    pub owner: String,
    pub grantee: GranteeBody,
    pub scope: ScopeBody,
    pub purpose: String,
    /// Unix ms (block time) from which no key is released under it.
    pub expires_ms: u64,
    pub price: Option<u64>,
    /// Hex id of the offer it was bought from.
    pub offer: Option<String>,
    pub created_height: u64,
    pub created_ms: u64,
    pub revoked: Option<RevocationBody>,
    /// Key releases recorded under it.
    pub releases: u64,
    /// Not revoked and not expired at the tip's block time.
    pub active: bool,
    /// Hex canonical CBOR of the stored `GrantRecord`.
    pub record_cbor: String,
    /// `access/grant/<id>` proven, when the newest final checkpoint binds the tip.
    pub state_proof: Option<StateProofs>,
}

impl GrantBody {
    fn new(height: u64, now_ms: u64, g: &GrantRecord, state_proof: Option<StateProofs>) -> Self {
        GrantBody {
            height,
            id: g.id.to_string(),
            owner: g.owner.clone(),
            grantee: (&g.grantee).into(),
            scope: (&g.scope).into(),
            purpose: g.purpose.clone(),
            expires_ms: g.expires_ms,
            price: g.price,
            offer: g.offer.map(|o| o.to_string()),
            created_height: g.created_height,
            created_ms: g.created_ms,
            revoked: g.revoked.as_ref().map(|(height, ms, reason)| RevocationBody {
                height: *height,
                timestamp_ms: *ms,
                reason: reason.clone(),
            }),
            releases: g.releases,
            active: g.is_active(now_ms),
            record_cbor: hex::encode(g.to_cbor()),
            state_proof,
        }
    }
}

/// Would a `KeyRelease` under this grant for this device be accepted now (tip block time)?
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReleaseCheckBody {
    pub height: u64,
    pub grant: String,
    pub device: String,
    pub ok: bool,
    /// The ledger's refusal code (`grant_revoked`, `grant_expired`, `not_covered`, …) when not.
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Grants found in an organisation's (or grantee key's) audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantListBody {
    pub height: u64,
    /// Newest first.
    pub grants: Vec<GrantBody>,
    /// Trail position to pass as `before` for older grants (absent: the trail was read whole).
    pub next_before: Option<u64>,
}

/// An offer as the ledger keeps it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfferBody {
    pub height: u64,
    /// Hex hash of the `PublishOffer` transaction.
    pub id: String,
    pub owner: String,
    pub scope: ScopeBody,
    /// Credits.
    pub price: u64,
    /// How long a bought grant lasts.
    pub duration_ms: u64,
    pub terms: String,
    /// Unix ms (block time) until which it can be bought.
    pub expires_ms: u64,
    pub created_height: u64,
    pub created_ms: u64,
    /// `[height, unix ms]` of the withdrawal.
    pub withdrawn: Option<[u64; 2]>,
    pub purchases: u64,
    /// Not withdrawn and not expired at the tip's block time.
    pub open: bool,
    /// Hex canonical CBOR of the stored `OfferRecord`.
    pub record_cbor: String,
    pub state_proof: Option<StateProofs>,
}

impl OfferBody {
    fn new(height: u64, now_ms: u64, o: &OfferRecord, state_proof: Option<StateProofs>) -> Self {
        OfferBody {
            height,
            id: o.id.to_string(),
            owner: o.owner.clone(),
            scope: (&o.scope).into(),
            price: o.price,
            duration_ms: o.duration_ms,
            terms: o.terms.clone(),
            expires_ms: o.expires_ms,
            created_height: o.created_height,
            created_ms: o.created_ms,
            withdrawn: o.withdrawn.map(|(h, ms)| [h, ms]),
            purchases: o.purchases,
            open: o.withdrawn.is_none() && now_ms < o.expires_ms,
            record_cbor: hex::encode(o.to_cbor()),
            state_proof,
        }
    }
}

/// An organisation's credits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreditsBody {
    pub height: u64,
    pub org: String,
    pub balance: u64,
    pub state_proof: Option<StateProofs>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReleaseCheckQuery {
    /// Hex device id.
    pub device: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantListQuery {
    /// Grants this organisation made (read from its trail).
    pub owner: Option<String>,
    /// Grants to this organisation (read from its trail).
    pub grantee: Option<String>,
    /// Grants to this person key: hex SHA-256 of the key's CBOR (read from its trail).
    pub grantee_key: Option<String>,
    /// Only grants active at the tip's block time.
    pub active: Option<bool>,
    /// Read trail entries before this position (default: the end).
    pub before: Option<u64>,
}

// ---- helpers -----------------------------------------------------------------------------------

fn parse_hash(s: &str, what: &str) -> ApiResult<TxHash> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(TxHash)
        .ok_or_else(|| ApiError::bad(format!("a {what} id is 64 hex characters")))
}

fn parse_device(s: &str) -> ApiResult<DeviceId> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .map(DeviceId)
        .ok_or_else(|| ApiError::bad("a device id is 40 hex characters"))
}

fn parse_org(s: &str) -> ApiResult<()> {
    check_name(s).map_err(|e| ApiError::bad(format!("organisation '{s}': {e}")))
}

/// The trail to read and the filter for a grant listing.
fn list_subject(q: &GrantListQuery) -> ApiResult<AuditSubject> {
    match (&q.owner, &q.grantee, &q.grantee_key) {
        (Some(o), _, _) => parse_org(o).map(|()| AuditSubject::Org(o.clone())),
        (None, Some(g), _) => parse_org(g).map(|()| AuditSubject::Org(g.clone())),
        (None, None, Some(k)) => AuditSubject::parse(&format!("key/{k}"))
            .ok_or_else(|| ApiError::bad("grantee_key is 64 hex characters (SHA-256 of the key's CBOR)")),
        (None, None, None) => Err(ApiError::bad("give owner, grantee or grantee_key")),
    }
}

fn matches(q: &GrantListQuery, g: &GrantRecord, now_ms: u64) -> bool {
    let owner_ok = q.owner.as_ref().is_none_or(|o| *o == g.owner);
    let grantee_ok = q.grantee.as_ref().is_none_or(|o| g.grantee == Grantee::Org(o.clone()));
    let key_ok = q
        .grantee_key
        .as_ref()
        .is_none_or(|k| matches!(&g.grantee, Grantee::Key(pk) if hex::encode(key_hash(pk)) == *k));
    let active_ok = q.active.is_none_or(|a| a == g.is_active(now_ms));
    owner_ok && grantee_ok && key_ok && active_ok
}

// ---- routes ------------------------------------------------------------------------------------

/// One grant: owner, grantee, scope, expiry, revocation, releases so far; its record and state
/// proof.
#[utoipa::path(get, path = "/v1/access/grants/{id}", params(("id" = String, Path, description = "Hex grant id (transaction hash)", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The grant", body = GrantBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such grant", body = ErrorBody)))]
async fn grant(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<GrantBody>> {
    let id = parse_hash(&id, "grant")?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let g = get_grant(&s, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no grant {id}")))?;
    let proof = state_proofs(&inner, &s, &[grant_key(&id)])?;
    Ok(Json(GrantBody::new(
        inner.tip.height,
        inner.tip.header.timestamp_ms,
        &g,
        proof,
    )))
}

/// Whether a `KeyRelease` under the grant for `device`, signed by the grant's owner, would be
/// accepted at the tip's block time — the ledger's own rule, so a key service can ask before
/// it submits (the submitted release is still checked again when it is applied).
#[utoipa::path(get, path = "/v1/access/grants/{id}/check", params(("id" = String, Path, description = "Hex grant id", pattern = "^[0-9a-f]{64}$"), ReleaseCheckQuery),
    responses((status = 200, description = "Whether a release would be accepted, with the refusal code if not", body = ReleaseCheckBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such grant", body = ErrorBody)))]
async fn release_check(
    State(c): State<Ctx>,
    Path(id): Path<String>,
    Query(q): Query<ReleaseCheckQuery>,
) -> ApiResult<Json<ReleaseCheckBody>> {
    let id = parse_hash(&id, "grant")?;
    let device = parse_device(&q.device)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let g = get_grant(&s, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no grant {id}")))?;
    let verdict = check_release(&s, inner.tip.header.timestamp_ms, &g.owner, &id, &device);
    Ok(Json(ReleaseCheckBody {
        height: inner.tip.height,
        grant: id.to_string(),
        device: device.to_string(),
        ok: verdict.is_ok(),
        code: verdict.as_ref().err().map(|e| e.code().to_string()),
        message: verdict.err().map(|e| e.to_string()),
    }))
}

/// Grants made by `owner`, or to `grantee` / `grantee_key`, newest first, found through the
/// audit trail of that organisation or key (at most [`MAX_GRANT_SCAN`] entries per page).
#[utoipa::path(get, path = "/v1/access/grants", params(GrantListQuery),
    responses((status = 200, description = "The grants, newest first", body = GrantListBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody)))]
async fn grants(State(c): State<Ctx>, Query(q): Query<GrantListQuery>) -> ApiResult<Json<GrantListBody>> {
    let subject = list_subject(&q)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let now_ms = inner.tip.header.timestamp_ms;
    let end = audit_count(&s, &subject)
        .map_err(ApiError::internal)?
        .min(q.before.unwrap_or(u64::MAX));
    let from = end.saturating_sub(MAX_GRANT_SCAN);
    let entries = audit_entries(&s, &subject, from, end - from).map_err(ApiError::internal)?;
    let mut out: Vec<GrantBody> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, e) in entries.iter().rev() {
        if !matches!(e.kind.as_str(), "grant" | "purchase") || !seen.insert(e.tx) {
            continue;
        }
        let Some(g) = get_grant(&s, &e.tx).map_err(ApiError::internal)? else {
            continue;
        };
        if matches(&q, &g, now_ms) {
            out.push(GrantBody::new(inner.tip.height, now_ms, &g, None));
        }
    }
    Ok(Json(GrantListBody {
        height: inner.tip.height,
        grants: out,
        next_before: (from > 0).then_some(from),
    }))
}

/// One offer: scope, price, terms, expiry, withdrawal, purchases; its record and state proof.
#[utoipa::path(get, path = "/v1/access/offers/{id}", params(("id" = String, Path, description = "Hex offer id (transaction hash)", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The offer", body = OfferBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such offer", body = ErrorBody)))]
async fn offer(State(c): State<Ctx>, Path(id): Path<String>) -> ApiResult<Json<OfferBody>> {
    let id = parse_hash(&id, "offer")?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    let o = get_offer(&s, &id)
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no offer {id}")))?;
    let proof = state_proofs(&inner, &s, &[offer_key(&id)])?;
    Ok(Json(OfferBody::new(
        inner.tip.height,
        inner.tip.header.timestamp_ms,
        &o,
        proof,
    )))
}

/// An organisation's credits (0 when it never had any).
#[utoipa::path(get, path = "/v1/access/credits/{org}", params(("org" = String, Path, description = "Organisation name", pattern = "^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$")),
    responses((status = 200, description = "The balance", body = CreditsBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No such organisation", body = ErrorBody)))]
async fn credits(State(c): State<Ctx>, Path(org): Path<String>) -> ApiResult<Json<CreditsBody>> {
    parse_org(&org)?;
    let inner = c.exec.lock();
    let s = inner.db.state().map_err(ApiError::internal)?;
    if chipledger_state::model::get_org(&s, &org)
        .map_err(ApiError::internal)?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no organisation '{org}'")));
    }
    let balance = credits_of(&s, &org).map_err(ApiError::internal)?;
    let proof = state_proofs(&inner, &s, &[credits_key(&org)])?;
    Ok(Json(CreditsBody {
        height: inner.tip.height,
        org,
        balance,
        state_proof: proof,
    }))
}

/// The access routes (merged into [`crate::api`]'s single route list).
pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new()
        .routes(routes!(grant))
        .routes(routes!(release_check))
        .routes(routes!(grants))
        .routes(routes!(offer))
        .routes(routes!(credits))
}

#[cfg(test)]
mod tests {
    /// Every access route is in the one OpenAPI document.
    #[test]
    fn access_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&[
            "/v1/access/grants/{id}",
            "/v1/access/grants/{id}/check",
            "/v1/access/grants",
            "/v1/access/offers/{id}",
            "/v1/access/credits/{org}",
        ]);
    }
}

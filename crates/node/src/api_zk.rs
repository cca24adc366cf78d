//! Range-proof routes (issue 6), read side: one published range proof as the ledger recorded
//! it, with the verification facts — which device key signed the reading commitment, that the
//! proof re-verifies now (`chipledger_zk::verify_bounds`, deterministic), the
//! `PublishRangeProof` transaction with its log inclusion proof, and the record's state proof
//! when the newest final checkpoint binds the tip. Registered from [`crate::api`] with one line.
//!
//! What the answer reveals is what the ledger holds: device, stream, seq, record hash,
//! quantity, commitment, bounds, bit width, publisher, time; never the reading's value (see
//! `crates/zk/README.md`).

use axum::Json;
use axum::extract::{Path, State};
use chipledger_state::model::get_device;
use chipledger_state::zk::get_range_proof;
use chipledger_types::tx::TxHash;
use chipledger_types::zk_tx::{RangeProofRecord, range_proof_key};
use chipledger_zk::{Commitment, TRANSCRIPT_LABEL, verify_bounds};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::api::{ApiError, Ctx, ErrorBody, InclusionProof, proof_for};
use crate::api_data::{StateProofs, state_proofs, tx_bytes};
use crate::executor::TxStatus;

type ApiResult<T> = Result<T, ApiError>;

/// A published range proof and what a verifier needs to check it again.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RangeProofBody {
    /// Hex hash of the `PublishRangeProof` transaction.
    pub tx: String,
    /// The organisation that published it (the device's owner then).
    pub publisher: String,
    /// Hex device id.
    pub device: String,
    pub stream: String,
    pub seq: u64,
    /// Hex SHA-256 of the record's COSE_Sign1.
    pub record_hash: String,
    pub quantity: String,
    /// Hex Pedersen commitment (compressed Ristretto point).
    pub commitment: String,
    pub min: u64,
    pub max: u64,
    pub bits: u8,
    /// Which device key signed the reading commitment: `device-id` or `alias`.
    pub signed_by: String,
    /// Height and block time (unix ms) of publication.
    pub height: u64,
    pub timestamp_ms: u64,
    /// Hex COSE_Sign1 reading commitment, as the device signed it.
    pub statement: String,
    /// Hex Bulletproof.
    pub proof: String,
    pub proof_bytes: usize,
    /// The merlin transcript label the proof is bound to.
    pub transcript_label: String,
    /// The node re-verified the proof against the commitment and bounds just now.
    pub verified: bool,
    /// The device is revoked now (the proof was accepted before).
    pub device_revoked: bool,
    /// The finalized height the answer was read at.
    pub read_height: u64,
    /// Hex canonical CBOR of the transaction, and its log inclusion proof, once final.
    pub tx_cbor: Option<String>,
    pub tx_proof: Option<InclusionProof>,
    /// `zk/proof/<tx>` proven against the newest final checkpoint, when it binds the tip.
    pub state_proof: Option<StateProofs>,
}

impl RangeProofBody {
    fn new(r: RangeProofRecord, verified: bool, device_revoked: bool, read_height: u64) -> Self {
        RangeProofBody {
            tx: r.tx.to_string(),
            publisher: r.publisher,
            device: r.reading.device.to_string(),
            stream: r.reading.stream,
            seq: r.reading.seq,
            record_hash: hex::encode(r.reading.record_hash),
            quantity: r.reading.quantity,
            commitment: hex::encode(r.reading.commitment),
            min: r.min,
            max: r.max,
            bits: r.bits,
            signed_by: r.signed_by.name().into(),
            height: r.height,
            timestamp_ms: r.timestamp_ms,
            statement: hex::encode(&r.statement),
            proof_bytes: r.proof.len(),
            proof: hex::encode(&r.proof),
            transcript_label: String::from_utf8_lossy(TRANSCRIPT_LABEL).into_owned(),
            verified,
            device_revoked,
            read_height,
            tx_cbor: None,
            tx_proof: None,
            state_proof: None,
        }
    }
}

fn parse_tx(hex_hash: &str) -> ApiResult<TxHash> {
    hex::decode(hex_hash)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .map(TxHash)
        .ok_or_else(|| ApiError::bad(format!("'{hex_hash}' is not a 64-hex-digit transaction hash")))
}

/// One published range proof: statement, bounds, proof, who signed and published it, that it
/// re-verifies, and the transaction's log inclusion proof.
#[utoipa::path(get, path = "/v1/zk/proofs/{tx}",
    params(("tx" = String, Path, description = "Hex hash of the PublishRangeProof transaction", pattern = "^[0-9a-f]{64}$")),
    responses((status = 200, description = "The range proof with its verification facts", body = RangeProofBody),
        (status = 400, description = "Bad request: a typed error", body = ErrorBody),
        (status = 404, description = "No range proof was published by this transaction", body = ErrorBody)))]
async fn range_proof(State(c): State<Ctx>, Path(tx): Path<String>) -> ApiResult<Json<RangeProofBody>> {
    let hash = parse_tx(&tx)?;
    let (rec, revoked, read_height, state_proof) = {
        let inner = c.exec.lock();
        let s = inner.db.state().map_err(ApiError::internal)?;
        let rec = get_range_proof(&s, &hash)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("transaction {tx} published no range proof")))?;
        let device = get_device(&s, &rec.reading.device).map_err(ApiError::internal)?;
        let revoked = device.is_some_and(|d| d.revoked.is_some());
        let proof = state_proofs(&inner, &s, &[range_proof_key(&hash)])?;
        (rec, revoked, inner.tip.height, proof)
    };
    let commitment = Commitment(rec.reading.commitment);
    let verified = verify_bounds(&commitment, rec.min, rec.max, rec.bits, &rec.proof).is_ok();
    let mut body = RangeProofBody::new(rec, verified, revoked, read_height);
    body.state_proof = state_proof;
    if let TxStatus::Final { height, index } = c.exec.tx_status(&hash) {
        body.tx_cbor = tx_bytes(&c.exec, height, &hash)?.map(hex::encode);
        body.tx_proof = Some(proof_for(&c.exec, index)?);
    }
    Ok(Json(body))
}

pub(crate) fn routes() -> OpenApiRouter<Ctx> {
    OpenApiRouter::new().routes(routes!(range_proof))
}

#[cfg(test)]
mod tests {
    /// The range-proof route is in the one OpenAPI document, every response has a description,
    /// and every `$ref` resolves.
    #[test]
    fn zk_routes_are_documented() {
        crate::api::doc_checks::assert_routes_documented(&["/v1/zk/proofs/{tx}"]);
    }

    #[test]
    fn bad_hashes_are_refused() {
        assert!(super::parse_tx("zz").is_err());
        assert!(super::parse_tx(&"ab".repeat(31)).is_err());
        assert!(super::parse_tx(&"ab".repeat(32)).is_ok());
    }
}

//! Routes that exist only for tests, served when the node process's environment has
//! `CHIPLEDGER_TEST_HOOKS=1` (read once, when the router is built; see
//! [`crate::api::router_with_blobs`]). They are not API: never in the OpenAPI document.
//!
//! - `GET /v1/test/tampered-proof/{hash}`: the `/v1/tx/{hash}` body with its inclusion proof
//!   tampered with (the first byte of the first audit-path hash flipped, or of the root when the
//!   path is empty), so the explorer's browser tests can show that a bad proof fails to verify.
//! - `GET /v1/test/tampered-device-proofs/{id}`: the `/v1/devices/{id}/proofs` body with the
//!   first proven value (the device record) altered (its first byte flipped), as a node lying
//!   about a device would answer.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::api::{ApiError, Ctx, InclusionProof, TxStatusBody, tx_status_body};
use crate::api_data::{DeviceProofsBody, device_proofs_body};

/// The environment variable that turns the test hooks on (value `1`).
pub const TEST_HOOKS_ENV: &str = "CHIPLEDGER_TEST_HOOKS";
/// Path of the tampered-proof hook.
pub const TAMPERED_PROOF_PATH: &str = "/v1/test/tampered-proof/{hash}";
/// Path of the tampered device-proofs hook.
pub const TAMPERED_DEVICE_PROOFS_PATH: &str = "/v1/test/tampered-device-proofs/{id}";

/// Whether a value of [`TEST_HOOKS_ENV`] turns the hooks on: exactly `1`.
pub fn enabled(value: Option<&str>) -> bool {
    value == Some("1")
}

/// Whether this process's environment turns the hooks on.
pub fn enabled_in_env() -> bool {
    enabled(std::env::var(TEST_HOOKS_ENV).ok().as_deref())
}

/// The hook routes.
pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route(TAMPERED_PROOF_PATH, get(tampered_proof))
        .route(TAMPERED_DEVICE_PROOFS_PATH, get(tampered_device_proofs))
}

async fn tampered_device_proofs(
    State(c): State<Ctx>,
    Path(id): Path<String>,
) -> Result<Json<DeviceProofsBody>, ApiError> {
    let mut body = device_proofs_body(&c, &id)?;
    // Not ready yet (the checkpoint lags the tip): the honest "ask again" answer.
    if let Some(value) = body
        .proofs
        .as_mut()
        .and_then(|p| p.values.first_mut())
        .and_then(|v| v.value.as_mut())
    {
        *value = flip_first_byte(value).map_err(ApiError::internal)?;
    }
    Ok(Json(body))
}

async fn tampered_proof(State(c): State<Ctx>, Path(hash): Path<String>) -> Result<Json<TxStatusBody>, ApiError> {
    let mut body = tx_status_body(&c, hash)?;
    let proof = body
        .proof
        .as_mut()
        .ok_or_else(|| ApiError::not_found(format!("transaction is {}: no proof to tamper with", body.status)))?;
    tamper(proof).map_err(ApiError::internal)?;
    Ok(Json(body))
}

/// Flips the first byte of the first audit-path hash, or of the root when the path is empty.
pub fn tamper(proof: &mut InclusionProof) -> Result<(), TamperError> {
    let target = match proof.hashes.first_mut() {
        Some(first) => first,
        None => &mut proof.root,
    };
    *target = flip_first_byte(target)?;
    Ok(())
}

/// A hash the hook was to tamper with was not hex (the node wrote it, so this is a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot tamper with {0:?}: not a non-empty hex string")]
pub struct TamperError(String);

fn flip_first_byte(hex_hash: &str) -> Result<String, TamperError> {
    let mut bytes = hex::decode(hex_hash).map_err(|_| TamperError(hex_hash.to_string()))?;
    let first = bytes.first_mut().ok_or_else(|| TamperError(hex_hash.to_string()))?;
    *first ^= 0xff;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proof(root: &str, hashes: &[&str]) -> InclusionProof {
        InclusionProof {
            leaf_index: 0,
            log_size: 2,
            root: root.into(),
            hashes: hashes.iter().map(|h| h.to_string()).collect(),
            checkpoint: None,
        }
    }

    #[test]
    fn only_exactly_one_turns_the_hooks_on() {
        for (value, on) in [
            (Some("1"), true),
            (None, false),
            (Some("0"), false),
            (Some(""), false),
            (Some("true"), false),
            (Some(" 1"), false),
        ] {
            assert_eq!(enabled(value), on, "{value:?}");
        }
    }

    #[test]
    fn tampering_flips_the_first_path_hash_else_the_root() {
        let cases = [
            (proof("aa", &["0011", "2233"]), "aa", vec!["ff11", "2233"]),
            (proof("0f00", &[]), "f000", vec![]),
        ];
        for (mut p, root, hashes) in cases {
            tamper(&mut p).unwrap();
            assert_eq!(
                (p.root.as_str(), p.hashes),
                (root, hashes.iter().map(|h| h.to_string()).collect())
            );
        }
        assert!(tamper(&mut proof("", &[])).is_err());
        assert!(tamper(&mut proof("aa", &["zz"])).is_err());
    }
}

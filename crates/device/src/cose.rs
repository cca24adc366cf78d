//! A general COSE_Sign1 verifier (RFC 9052 §4.2) for auditors: `chipledger cose verify`.
//! Unlike the EAT and record verifiers, which accept only their own layouts, it accepts any
//! well-formed COSE_Sign1 signed with ES256 (alg -7, P-256) or EdDSA (alg -8, Ed25519), tagged
//! (18) or untagged, with the algorithm in the protected bucket or — as RFC 9052 allows — only
//! in the unprotected one, and an optional external AAD. It refuses: another CBOR tag, an
//! unknown or mismatching algorithm, `crit` parameters, a detached payload, and a bad
//! signature. ECDSA signatures are checked as plain ECDSA (high-S accepted, as other COSE
//! implementations produce them); Ed25519 with `verify_strict`.

use alloc::vec::Vec;

use coset::{AsCborValue, CoseSign1, TaggedCborSerializable, cbor::value::Value, iana};

use crate::key::{DeviceKeyAlg, DevicePublicKey, DeviceSignature, KeyError};

/// Largest COSE_Sign1 looked at.
pub const MAX_SIGN1_BYTES: usize = 64 * 1024;

/// Why a COSE_Sign1 does not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoseVerifyError {
    #[error("message is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("not a COSE_Sign1: {0}")]
    Malformed(&'static str),
    #[error("CBOR tag {0} is not COSE_Sign1 (18)")]
    UnexpectedTag(u64),
    #[error("algorithm {0} is not supported (ES256 = -7 or EdDSA = -8)")]
    UnsupportedAlgorithm(alloc::string::String),
    #[error("message is signed with {message} but the key is {key}")]
    AlgorithmMismatch { message: DeviceKeyAlg, key: DeviceKeyAlg },
    #[error("message marks header parameters critical that this verifier does not process")]
    UnsupportedCritical,
    #[error("signature does not verify under the key")]
    BadSignature,
}

impl CoseVerifyError {
    /// A stable machine-readable code (for `--json` output).
    pub fn code(&self) -> &'static str {
        match self {
            CoseVerifyError::TooLarge { .. } => "too_large",
            CoseVerifyError::Malformed(_) => "malformed",
            CoseVerifyError::UnexpectedTag(_) => "unexpected_tag",
            CoseVerifyError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            CoseVerifyError::AlgorithmMismatch { .. } => "algorithm_mismatch",
            CoseVerifyError::UnsupportedCritical => "unsupported_critical",
            CoseVerifyError::BadSignature => "bad_signature",
        }
    }
}

/// A verified COSE_Sign1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSign1 {
    pub alg: DeviceKeyAlg,
    /// Whether the message carried CBOR tag 18.
    pub tagged: bool,
    /// The `kid` header (protected or unprotected), if any.
    pub kid: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Verifies `bytes` as a COSE_Sign1 under `key` with `external_aad`.
pub fn verify_sign1(
    bytes: &[u8],
    key: &DevicePublicKey,
    external_aad: &[u8],
) -> Result<VerifiedSign1, CoseVerifyError> {
    if bytes.len() > MAX_SIGN1_BYTES {
        return Err(CoseVerifyError::TooLarge {
            len: bytes.len(),
            max: MAX_SIGN1_BYTES,
        });
    }
    let mut rest = bytes;
    let value: Value =
        coset::cbor::de::from_reader(&mut rest).map_err(|_| CoseVerifyError::Malformed("not a CBOR data item"))?;
    if !rest.is_empty() {
        return Err(CoseVerifyError::Malformed("trailing bytes after the CBOR data item"));
    }
    let (tagged, value) = match value {
        Value::Tag(tag, inner) if tag == CoseSign1::TAG => (true, *inner),
        Value::Tag(tag, _) => return Err(CoseVerifyError::UnexpectedTag(tag)),
        other => (false, other),
    };
    let mut sign1 =
        CoseSign1::from_cbor_value(value).map_err(|_| CoseVerifyError::Malformed("not a COSE_Sign1 array"))?;
    // An empty protected map (even if sent as h'a0') is h'' in the Sig_structure (RFC 9052 §3;
    // cose-wg sign-pass-01).
    if sign1.protected.header.is_empty() {
        sign1.protected.original_data = None;
    }
    let (protected, unprotected) = (&sign1.protected.header, &sign1.unprotected);
    if !protected.crit.is_empty() {
        return Err(CoseVerifyError::UnsupportedCritical);
    }
    let alg = match (&protected.alg, &unprotected.alg) {
        (Some(a), None) | (None, Some(a)) => key_alg(a)?,
        (Some(_), Some(_)) => return Err(CoseVerifyError::Malformed("alg in both header buckets")),
        (None, None) => return Err(CoseVerifyError::UnsupportedAlgorithm("(none)".into())),
    };
    if alg != key.alg() {
        return Err(CoseVerifyError::AlgorithmMismatch {
            message: alg,
            key: key.alg(),
        });
    }
    let payload = sign1
        .payload
        .clone()
        .ok_or(CoseVerifyError::Malformed("detached payload"))?;
    sign1.verify_signature(external_aad, |sig, tbs| {
        let sig = DeviceSignature::from_slice(alg, sig).map_err(|_| CoseVerifyError::BadSignature)?;
        key.verify(tbs, &sig).map_err(|_| CoseVerifyError::BadSignature)
    })?;
    let kid = if protected.key_id.is_empty() {
        &unprotected.key_id
    } else {
        &protected.key_id
    };
    Ok(VerifiedSign1 {
        alg,
        tagged,
        kid: kid.clone(),
        payload,
    })
}

fn key_alg(alg: &coset::Algorithm) -> Result<DeviceKeyAlg, CoseVerifyError> {
    match alg {
        coset::Algorithm::Assigned(iana::Algorithm::ES256) => Ok(DeviceKeyAlg::P256),
        coset::Algorithm::Assigned(iana::Algorithm::EdDSA) => Ok(DeviceKeyAlg::Ed25519),
        coset::Algorithm::Assigned(other) => Err(CoseVerifyError::UnsupportedAlgorithm(alloc::format!(
            "{}",
            iana::EnumI64::to_i64(other)
        ))),
        coset::Algorithm::PrivateUse(i) => Err(CoseVerifyError::UnsupportedAlgorithm(alloc::format!("{i}"))),
        coset::Algorithm::Text(t) => Err(CoseVerifyError::UnsupportedAlgorithm(alloc::format!("{t:?}"))),
    }
}

/// A public key from a DER SubjectPublicKeyInfo (P-256 or Ed25519).
pub fn public_key_from_spki_der(der: &[u8]) -> Result<DevicePublicKey, KeyError> {
    let spki = <spki::SubjectPublicKeyInfoRef<'_> as der::Decode>::from_der(der)
        .map_err(|_| KeyError::Malformed(DeviceKeyAlg::P256))?;
    DevicePublicKey::from_spki(spki)
}

/// A P-256 public key from its affine coordinates (JWK `x`, `y`; COSE_Key -2, -3).
pub fn p256_from_coordinates(x: &[u8], y: &[u8]) -> Result<DevicePublicKey, KeyError> {
    if x.len() != 32 || y.len() != 32 {
        return Err(KeyError::Malformed(DeviceKeyAlg::P256));
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
        .map(DevicePublicKey::P256)
        .map_err(|_| KeyError::Malformed(DeviceKeyAlg::P256))
}

/// An Ed25519 public key from its 32 bytes (JWK `x`).
pub fn ed25519_from_bytes(x: &[u8]) -> Result<DevicePublicKey, KeyError> {
    let x: [u8; 32] = x.try_into().map_err(|_| KeyError::Malformed(DeviceKeyAlg::Ed25519))?;
    ed25519_dalek::VerifyingKey::from_bytes(&x)
        .map(DevicePublicKey::Ed25519)
        .map_err(|_| KeyError::Malformed(DeviceKeyAlg::Ed25519))
}

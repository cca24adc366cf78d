//! Entity Attestation Tokens (RFC 9711): a CWT claims set in a COSE_Sign1 (RFC 9052), signed by
//! the device's Alias key: ES256 (alg -7) for a P-256 key, EdDSA (alg -8, Ed25519; RFC 9053
//! §2.2) for an Ed25519 key. The verifier picks the algorithm from the protected header and
//! requires it to match the Alias key's type ([`EatError::AlgorithmMismatch`]).
//!
//! Claims (keys from the IANA CWT Claims registry, values per RFC 9711 §4):
//!
//! | claim | key | value |
//! |---|---|---|
//! | `eat_nonce` | 10 | bstr .size (8..64) — binds the token to a recent ledger checkpoint |
//! | `ueid` | 256 | bstr .size (7..33) |
//! | `oemid` | 258 | PEN (int) / IEEE OUI (bstr .size 3) / random (bstr .size 16) |
//! | `hwmodel` | 259 | bstr .size (1..32) |
//! | `eat_profile` | 265 | [`EAT_PROFILE`] (our domain-separation tag; a tag URI) |
//! | `swname` | 270 | tstr |
//! | `swversion` | 271 | `[ version: tstr, ? scheme: int ]` |
//! | `measurements` | 273 | `[+ [ content-type: uint (CoAP content format), content: bstr ]]` |
//!
//! Our profile requires all of them. Unknown claims are ignored (RFC 8392 §4), duplicate claim
//! keys are rejected. Tokens are emitted as tagged COSE_Sign1 (tag 18); [`verify_eat`] accepts
//! the tagged and the untagged form and rejects any other tag. Decoding is bounded by
//! [`MAX_EAT_BYTES`] before any parsing, and by the per-claim limits below.

use alloc::{string::String, vec::Vec};

use coset::{
    AsCborValue, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable,
    cbor::value::{Integer, Value},
    iana,
};
use p256::ecdsa::VerifyingKey;

use crate::key::{DeviceKeyAlg, DevicePublicKey, DeviceSignature, DeviceSigner};

/// Largest token (tagged COSE_Sign1 bytes) that [`verify_eat`] looks at.
pub const MAX_EAT_BYTES: usize = 4096;
/// Most entries in the `measurements` claim.
pub const MAX_MEASUREMENTS: usize = 16;
/// Longest single measurement body.
pub const MAX_MEASUREMENT_BYTES: usize = 1024;
/// Longest `swname` / `swversion` text.
pub const MAX_TEXT_BYTES: usize = 128;
/// `eat_nonce` length range (RFC 9711 §4.1).
pub const NONCE_BYTES_MIN: usize = 8;
pub const NONCE_BYTES_MAX: usize = 64;
/// `ueid` length range (RFC 9711 §4.2.1).
pub const UEID_BYTES_MIN: usize = 7;
pub const UEID_BYTES_MAX: usize = 33;
/// `hwmodel` length range (RFC 9711 §4.2.4).
pub const HWMODEL_BYTES_MAX: usize = 32;

/// The `eat_profile` our tokens carry: names what is signed (domain separation) and the rules
/// above. A tag URI (RFC 4151), as RFC 9711 §4.3.2 allows.
pub const EAT_PROFILE: &str = "tag:chipledger.dev,2026:eat/v1";

/// CWT claim keys (IANA "CBOR Web Token (CWT) Claims", RFC 9711 §10.2).
pub mod claim_key {
    pub const NONCE: i64 = 10;
    pub const UEID: i64 = 256;
    pub const OEMID: i64 = 258;
    pub const HWMODEL: i64 = 259;
    pub const EAT_PROFILE: i64 = 265;
    pub const SWNAME: i64 = 270;
    pub const SWVERSION: i64 = 271;
    pub const MEASUREMENTS: i64 = 273;
}

/// CoAP content format of a raw digest / opaque measurement (`application/octet-stream`).
pub const CONTENT_FORMAT_OCTET_STREAM: u16 = 42;

/// Errors from signing or verifying an EAT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EatError {
    #[error("token is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("token is not a well-formed COSE_Sign1 EAT: {0}")]
    Malformed(&'static str),
    #[error("token carries CBOR tag {0}; expected COSE_Sign1 (18) or no tag")]
    UnexpectedTag(u64),
    #[error("token is not signed with ES256 (alg -7) or EdDSA (alg -8) in the protected header")]
    WrongAlgorithm,
    #[error("token is signed with {token:?} but the Alias key is {key:?}")]
    AlgorithmMismatch { token: DeviceKeyAlg, key: DeviceKeyAlg },
    #[error("token marks header parameters critical that this verifier does not process")]
    UnsupportedCritical,
    #[error("signature does not verify under the Alias key")]
    BadSignature,
    #[error("nonce does not match the expected checkpoint nonce (stale or replayed evidence)")]
    NonceMismatch,
    #[error("required claim {0} is missing")]
    MissingClaim(&'static str),
    #[error("claim {claim} is invalid: {reason}")]
    InvalidClaim { claim: &'static str, reason: &'static str },
    #[error("claim key {0} appears twice")]
    DuplicateClaim(i128),
    #[error("eat_profile is not {EAT_PROFILE}")]
    WrongProfile,
}

/// `oemid` (RFC 9711 §4.2.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OemId {
    /// IANA Private Enterprise Number.
    Pen(u64),
    /// IEEE OUI / MA-L, 3 bytes.
    Ieee([u8; 3]),
    /// Random, 16 bytes.
    Random([u8; 16]),
}

/// `swversion` (RFC 9711 §4.2.7): a version string and an optional CoSWID version scheme.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwVersion {
    pub version: String,
    pub scheme: Option<i64>,
}

/// One `measurements` entry (RFC 9711 §4.2.16): a CoAP content format and its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    pub content_format: u16,
    pub value: Vec<u8>,
}

/// The claims of a chipledger EAT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EatClaims {
    pub nonce: Vec<u8>,
    pub ueid: Vec<u8>,
    pub oemid: OemId,
    pub hwmodel: Vec<u8>,
    pub swname: String,
    pub swversion: SwVersion,
    pub measurements: Vec<Measurement>,
}

impl EatClaims {
    /// Checks every claim against its RFC 9711 size and our limits.
    pub fn validate(&self) -> Result<(), EatError> {
        let bad = |claim, reason| Err(EatError::InvalidClaim { claim, reason });
        if !(NONCE_BYTES_MIN..=NONCE_BYTES_MAX).contains(&self.nonce.len()) {
            return bad("eat_nonce", "must be 8..=64 bytes");
        }
        if !(UEID_BYTES_MIN..=UEID_BYTES_MAX).contains(&self.ueid.len()) {
            return bad("ueid", "must be 7..=33 bytes");
        }
        if self.hwmodel.is_empty() || self.hwmodel.len() > HWMODEL_BYTES_MAX {
            return bad("hwmodel", "must be 1..=32 bytes");
        }
        if self.swname.len() > MAX_TEXT_BYTES {
            return bad("swname", "longer than MAX_TEXT_BYTES");
        }
        if self.swversion.version.len() > MAX_TEXT_BYTES {
            return bad("swversion", "longer than MAX_TEXT_BYTES");
        }
        if self.measurements.is_empty() || self.measurements.len() > MAX_MEASUREMENTS {
            return bad("measurements", "must have 1..=MAX_MEASUREMENTS entries");
        }
        if self.measurements.iter().any(|m| m.value.len() > MAX_MEASUREMENT_BYTES) {
            return bad("measurements", "an entry is longer than MAX_MEASUREMENT_BYTES");
        }
        Ok(())
    }

    fn to_cbor_value(&self) -> Value {
        let oemid = match &self.oemid {
            OemId::Pen(pen) => Value::from(*pen),
            OemId::Ieee(oui) => Value::Bytes(oui.to_vec()),
            OemId::Random(r) => Value::Bytes(r.to_vec()),
        };
        let mut swversion = alloc::vec![Value::Text(self.swversion.version.clone())];
        if let Some(scheme) = self.swversion.scheme {
            swversion.push(Value::from(scheme));
        }
        let measurements = self
            .measurements
            .iter()
            .map(|m| {
                let entry = [Value::from(m.content_format), Value::Bytes(m.value.clone())];
                Value::Array(entry.to_vec())
            })
            .collect();
        // Keys in ascending order: the deterministic (RFC 8949 §4.2.1) order for these ints.
        let map = [
            (claim_key::NONCE, Value::Bytes(self.nonce.clone())),
            (claim_key::UEID, Value::Bytes(self.ueid.clone())),
            (claim_key::OEMID, oemid),
            (claim_key::HWMODEL, Value::Bytes(self.hwmodel.clone())),
            (claim_key::EAT_PROFILE, Value::Text(EAT_PROFILE.into())),
            (claim_key::SWNAME, Value::Text(self.swname.clone())),
            (claim_key::SWVERSION, Value::Array(swversion)),
            (claim_key::MEASUREMENTS, Value::Array(measurements)),
        ];
        Value::Map(map.into_iter().map(|(k, v)| (Value::from(k), v)).collect())
    }
}

/// The COSE algorithm of a key type: ES256 (-7) or EdDSA (-8).
pub fn cose_algorithm(alg: DeviceKeyAlg) -> iana::Algorithm {
    match alg {
        DeviceKeyAlg::P256 => iana::Algorithm::ES256,
        DeviceKeyAlg::Ed25519 => iana::Algorithm::EdDSA,
    }
}

/// The key type a protected-header `alg` names, if it is one we accept.
fn key_alg_of(alg: Option<&coset::Algorithm>) -> Option<DeviceKeyAlg> {
    match alg? {
        coset::Algorithm::Assigned(iana::Algorithm::ES256) => Some(DeviceKeyAlg::P256),
        coset::Algorithm::Assigned(iana::Algorithm::EdDSA) => Some(DeviceKeyAlg::Ed25519),
        _ => None,
    }
}

/// Signs `claims` as a tagged COSE_Sign1 with the Alias key: ES256 (deterministic RFC 6979
/// nonces) for a P-256 key, EdDSA for an Ed25519 key. `alias_key`: a P-256 or Ed25519
/// `SigningKey`, a [`crate::dice::KeyPair`] or a [`DeviceSigner`].
pub fn sign_eat<'k>(claims: &EatClaims, alias_key: impl Into<DeviceSigner<'k>>) -> Result<Vec<u8>, EatError> {
    let alias_key = alias_key.into();
    claims.validate()?;
    let payload = claims
        .to_cbor_value()
        .to_vec()
        .map_err(|_| EatError::Malformed("claims do not encode"))?;
    let protected = HeaderBuilder::new().algorithm(cose_algorithm(alias_key.alg())).build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |tbs| alias_key.sign(tbs).to_bytes().to_vec())
        .build();
    let token = sign1
        .to_tagged_vec()
        .map_err(|_| EatError::Malformed("token does not encode"))?;
    if token.len() > MAX_EAT_BYTES {
        return Err(EatError::TooLarge {
            len: token.len(),
            max: MAX_EAT_BYTES,
        });
    }
    Ok(token)
}

/// Verifies an EAT from the device whose Alias key (P-256 or Ed25519) is `alias_public` and
/// that must answer `expected_nonce`; returns its claims.
pub fn verify_eat(
    token: &[u8],
    alias_public: impl Into<DevicePublicKey>,
    expected_nonce: &[u8],
) -> Result<EatClaims, EatError> {
    let payload = verify_cose_sign1(token, &alias_public.into())?;
    let claims = decode_claims(&payload)?;
    if claims.nonce != expected_nonce {
        return Err(EatError::NonceMismatch);
    }
    Ok(claims)
}

/// [`verify_cose_sign1`] with a P-256 key: only ES256 tokens verify.
pub fn verify_cose_sign1_es256(token: &[u8], key: &VerifyingKey) -> Result<Vec<u8>, EatError> {
    verify_cose_sign1(token, &DevicePublicKey::P256(*key))
}

/// Verifies a COSE_Sign1 (tagged 18 or untagged) with an attached payload and empty external
/// AAD, signed with ES256 (P-256 `key`) or EdDSA (Ed25519 `key`) as its protected header says;
/// returns the payload. Bounded by [`MAX_EAT_BYTES`].
pub fn verify_cose_sign1(token: &[u8], key: &DevicePublicKey) -> Result<Vec<u8>, EatError> {
    if token.len() > MAX_EAT_BYTES {
        return Err(EatError::TooLarge {
            len: token.len(),
            max: MAX_EAT_BYTES,
        });
    }
    let value = read_one_value(token)?;
    let value = match value {
        Value::Tag(tag, inner) if tag == CoseSign1::TAG => *inner,
        Value::Tag(tag, _) => return Err(EatError::UnexpectedTag(tag)),
        untagged => untagged,
    };
    let sign1 = CoseSign1::from_cbor_value(value).map_err(|_| EatError::Malformed("not a COSE_Sign1 structure"))?;
    let token_alg = key_alg_of(sign1.protected.header.alg.as_ref()).ok_or(EatError::WrongAlgorithm)?;
    if token_alg != key.alg() {
        return Err(EatError::AlgorithmMismatch {
            token: token_alg,
            key: key.alg(),
        });
    }
    if !sign1.protected.header.crit.is_empty() {
        return Err(EatError::UnsupportedCritical);
    }
    if sign1.payload.is_none() {
        return Err(EatError::Malformed("detached payloads are not supported"));
    }
    sign1.verify_signature(b"", |sig, tbs| {
        let sig = DeviceSignature::from_slice(token_alg, sig).map_err(|_| EatError::BadSignature)?;
        key.verify(tbs, &sig).map_err(|_| EatError::BadSignature)
    })?;
    sign1
        .payload
        .ok_or(EatError::Malformed("detached payloads are not supported"))
}

/// Decodes exactly one CBOR data item (the caller bounds `bytes`).
fn read_one_value(mut bytes: &[u8]) -> Result<Value, EatError> {
    let value: Value =
        coset::cbor::de::from_reader(&mut bytes).map_err(|_| EatError::Malformed("not a CBOR data item"))?;
    if !bytes.is_empty() {
        return Err(EatError::Malformed("trailing bytes after the CBOR data item"));
    }
    Ok(value)
}

/// Decodes and validates a claims set (the COSE payload).
pub fn decode_claims(payload: &[u8]) -> Result<EatClaims, EatError> {
    let Value::Map(entries) = read_one_value(payload)? else {
        return Err(EatError::Malformed("claims set is not a CBOR map"));
    };
    let mut found: [Option<Value>; 8] = Default::default();
    let mut seen: Vec<i128> = Vec::new();
    for (key, value) in entries {
        // Text claim names are legal CWT; none are ours, so they are ignored like unknown keys.
        let Value::Integer(key) = key else { continue };
        let key = i128::from(key);
        if seen.contains(&key) {
            return Err(EatError::DuplicateClaim(key));
        }
        seen.push(key);
        if let Some(slot) = CLAIM_ORDER.iter().position(|k| i128::from(*k) == key) {
            found[slot] = Some(value);
        }
    }
    let [nonce, ueid, oemid, hwmodel, profile, swname, swversion, measurements] = found;
    match profile.ok_or(EatError::MissingClaim("eat_profile"))? {
        Value::Text(p) if p == EAT_PROFILE => {}
        _ => return Err(EatError::WrongProfile),
    }
    let claims = EatClaims {
        nonce: bytes_claim(nonce, "eat_nonce")?,
        ueid: bytes_claim(ueid, "ueid")?,
        oemid: oemid_claim(oemid)?,
        hwmodel: bytes_claim(hwmodel, "hwmodel")?,
        swname: text_claim(swname, "swname")?,
        swversion: swversion_claim(swversion)?,
        measurements: measurements_claim(measurements)?,
    };
    claims.validate()?;
    Ok(claims)
}

const CLAIM_ORDER: [i64; 8] = [
    claim_key::NONCE,
    claim_key::UEID,
    claim_key::OEMID,
    claim_key::HWMODEL,
    claim_key::EAT_PROFILE,
    claim_key::SWNAME,
    claim_key::SWVERSION,
    claim_key::MEASUREMENTS,
];

fn invalid(claim: &'static str, reason: &'static str) -> EatError {
    EatError::InvalidClaim { claim, reason }
}

fn bytes_claim(v: Option<Value>, claim: &'static str) -> Result<Vec<u8>, EatError> {
    match v.ok_or(EatError::MissingClaim(claim))? {
        Value::Bytes(b) => Ok(b),
        _ => Err(invalid(claim, "must be a byte string")),
    }
}

fn text_claim(v: Option<Value>, claim: &'static str) -> Result<String, EatError> {
    match v.ok_or(EatError::MissingClaim(claim))? {
        Value::Text(t) => Ok(t),
        _ => Err(invalid(claim, "must be a text string")),
    }
}

fn oemid_claim(v: Option<Value>) -> Result<OemId, EatError> {
    let reason = "must be a PEN, a 3-byte OUI or 16 random bytes";
    match v.ok_or(EatError::MissingClaim("oemid"))? {
        Value::Integer(i) => u64::try_from(i).map(OemId::Pen).map_err(|_| invalid("oemid", reason)),
        Value::Bytes(b) => match b.len() {
            3 => Ok(OemId::Ieee([b[0], b[1], b[2]])),
            16 => {
                let mut r = [0u8; 16];
                r.copy_from_slice(&b);
                Ok(OemId::Random(r))
            }
            _ => Err(invalid("oemid", reason)),
        },
        _ => Err(invalid("oemid", reason)),
    }
}

fn swversion_claim(v: Option<Value>) -> Result<SwVersion, EatError> {
    let reason = "must be [version: tstr, ? scheme: int]";
    let Value::Array(items) = v.ok_or(EatError::MissingClaim("swversion"))? else {
        return Err(invalid("swversion", reason));
    };
    let mut items = items.into_iter();
    let version = match items.next() {
        Some(Value::Text(t)) => t,
        _ => return Err(invalid("swversion", reason)),
    };
    let scheme = match items.next() {
        None => None,
        Some(Value::Integer(i)) => Some(i64::try_from(i).map_err(|_| invalid("swversion", reason))?),
        Some(_) => return Err(invalid("swversion", reason)),
    };
    if items.next().is_some() {
        return Err(invalid("swversion", reason));
    }
    Ok(SwVersion { version, scheme })
}

fn measurements_claim(v: Option<Value>) -> Result<Vec<Measurement>, EatError> {
    let reason = "must be [+ [content-format: uint, content: bstr]]";
    let Value::Array(items) = v.ok_or(EatError::MissingClaim("measurements"))? else {
        return Err(invalid("measurements", reason));
    };
    if items.len() > MAX_MEASUREMENTS {
        return Err(invalid("measurements", "more than MAX_MEASUREMENTS entries"));
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::Array(pair) => match <[Value; 2]>::try_from(pair) {
                Ok([Value::Integer(cf), Value::Bytes(value)]) => Ok(Measurement {
                    content_format: content_format(cf).ok_or(invalid("measurements", reason))?,
                    value,
                }),
                _ => Err(invalid("measurements", reason)),
            },
            _ => Err(invalid("measurements", reason)),
        })
        .collect()
}

fn content_format(i: Integer) -> Option<u16> {
    u16::try_from(i).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer};

    fn alias_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32].into()).expect("valid scalar")
    }

    fn claims() -> EatClaims {
        EatClaims {
            nonce: alloc::vec![0x5a; 32],
            ueid: [&[0x01u8][..], &[0x11; 16]].concat(),
            oemid: OemId::Random([0x22; 16]),
            hwmodel: b"streetlight-v2".to_vec(),
            swname: "lamp-fw".into(),
            swversion: SwVersion {
                version: "2.1.0".into(),
                scheme: Some(16384),
            },
            measurements: alloc::vec![Measurement {
                content_format: CONTENT_FORMAT_OCTET_STREAM,
                value: alloc::vec![0xab; 32],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let token = sign_eat(&claims(), &alias_key()).unwrap();
        assert_eq!(token[0], 0xd2, "tagged COSE_Sign1 (tag 18)");
        let got = verify_eat(&token, alias_key().verifying_key(), &[0x5a; 32]).unwrap();
        assert_eq!(got, claims());
    }

    #[test]
    fn signing_is_deterministic() {
        let a = sign_eat(&claims(), &alias_key()).unwrap();
        let b = sign_eat(&claims(), &alias_key()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn untagged_form_is_accepted_and_other_tags_are_not() {
        let token = sign_eat(&claims(), &alias_key()).unwrap();
        let untagged = &token[1..];
        assert!(verify_eat(untagged, alias_key().verifying_key(), &[0x5a; 32]).is_ok());
        let mut wrong_tag = token.clone();
        wrong_tag[0] = 0xd1; // tag 17 = COSE_Mac0
        let err = verify_eat(&wrong_tag, alias_key().verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::UnexpectedTag(17));
    }

    #[test]
    fn wrong_nonce_is_rejected() {
        let token = sign_eat(&claims(), &alias_key()).unwrap();
        let err = verify_eat(&token, alias_key().verifying_key(), &[0x5b; 32]).unwrap_err();
        assert_eq!(err, EatError::NonceMismatch);
    }

    #[test]
    fn wrong_key_is_rejected() {
        let token = sign_eat(&claims(), &alias_key()).unwrap();
        let other = SigningKey::from_bytes(&[8u8; 32].into()).unwrap();
        let err = verify_eat(&token, other.verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::BadSignature);
    }

    #[test]
    fn every_bit_flip_and_truncation_fails_without_panicking() {
        let token = sign_eat(&claims(), &alias_key()).unwrap();
        let key = alias_key();
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut bad = token.clone();
                bad[i] ^= 1 << bit;
                assert!(verify_eat(&bad, key.verifying_key(), &[0x5a; 32]).is_err(), "{i}/{bit}");
            }
        }
        for cut in 0..token.len() {
            assert!(verify_eat(&token[..cut], key.verifying_key(), &[0x5a; 32]).is_err());
        }
    }

    fn resign(payload: Value, alg: iana::Algorithm) -> Vec<u8> {
        let key = alias_key();
        CoseSign1Builder::new()
            .protected(HeaderBuilder::new().algorithm(alg).build())
            .payload(payload.to_vec().unwrap())
            .create_signature(b"", |tbs| {
                let sig: Signature = key.sign(tbs);
                sig.to_bytes().to_vec()
            })
            .build()
            .to_tagged_vec()
            .unwrap()
    }

    #[test]
    fn wrong_algorithm_is_rejected() {
        let token = resign(claims().to_cbor_value(), iana::Algorithm::ES384);
        let err = verify_eat(&token, alias_key().verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::WrongAlgorithm);
    }

    #[test]
    fn missing_and_duplicate_claims_are_typed_errors() {
        let Value::Map(mut m) = claims().to_cbor_value() else {
            unreachable!()
        };
        m.retain(|(k, _)| *k != Value::from(claim_key::SWNAME));
        let token = resign(Value::Map(m.clone()), iana::Algorithm::ES256);
        let err = verify_eat(&token, alias_key().verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::MissingClaim("swname"));

        m.push((Value::from(claim_key::UEID), Value::Bytes(alloc::vec![1; 8])));
        let token = resign(Value::Map(m), iana::Algorithm::ES256);
        let err = verify_eat(&token, alias_key().verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::DuplicateClaim(256));
    }

    #[test]
    fn oversized_token_is_rejected_before_decoding() {
        let big = alloc::vec![0u8; MAX_EAT_BYTES + 1];
        let err = verify_eat(&big, alias_key().verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(
            err,
            EatError::TooLarge {
                len: MAX_EAT_BYTES + 1,
                max: MAX_EAT_BYTES
            }
        );
    }

    #[test]
    fn hostile_length_prefixes_do_not_allocate_or_panic() {
        let key = alias_key();
        let huge = [0xffu8; 8];
        // tag 18 + array / byte string / map each declaring 2^64-1 elements or bytes.
        for head in [0x9bu8, 0x5b, 0xbb] {
            let token = [&[0xd2, head][..], &huge[..]].concat();
            assert!(verify_eat(&token, key.verifying_key(), &[0x5a; 32]).is_err());
        }
        // 3000 nested arrays: beyond the decoder's recursion limit.
        let deep = [alloc::vec![0xd2], alloc::vec![0x81; 3000], alloc::vec![0x00]].concat();
        assert!(verify_eat(&deep, key.verifying_key(), &[0x5a; 32]).is_err());
    }

    #[test]
    fn out_of_range_claims_are_refused_at_signing() {
        let mut c = claims();
        c.nonce = alloc::vec![1; 4];
        assert!(matches!(sign_eat(&c, &alias_key()), Err(EatError::InvalidClaim { .. })));
    }

    /// Known-answer test: RFC 9052 Appendix C.2.1 (= cose-wg/Examples
    /// `ecdsa-examples/ecdsa-01.json`), a COSE_Sign1 with ES256 by key "11" over
    /// "This is the content.". Values transcribed into our own fixture format.
    mod rfc9052_c21 {
        pub const KEY_X: &str = "bac5b11cad8f99f9c72b05cf4b9e26d244dc189f745228255a219a86d6a09eff";
        pub const KEY_Y: &str = "20138bf82dc1b6d562be0fa54ab7804a3a64b6d72ccfed6b6fb6ed28bbfc117e";
        pub const PAYLOAD: &[u8] = b"This is the content.";
        pub const TOKEN: &str = concat!(
            "d28445a201260300a10442313154546869732069732074686520636f6e74656e742e",
            "58406520bbaf2081d7e0ed0f95f76eb0733d667005f7467cec4b87b9381a6ba1ede8",
            "e00df29f32a37230f39a842a54821fdd223092819d7728efb9d3a0080b75380b",
        );
    }

    fn rfc9052_key() -> VerifyingKey {
        let mut sec1 = alloc::vec![0x04];
        sec1.extend(hex::decode(rfc9052_c21::KEY_X).unwrap());
        sec1.extend(hex::decode(rfc9052_c21::KEY_Y).unwrap());
        VerifyingKey::from_sec1_bytes(&sec1).unwrap()
    }

    #[test]
    fn known_answer_rfc9052_c21_sign1_es256() {
        let token = hex::decode(rfc9052_c21::TOKEN).unwrap();
        let payload = verify_cose_sign1_es256(&token, &rfc9052_key()).unwrap();
        assert_eq!(payload, rfc9052_c21::PAYLOAD);

        let mut tampered = token.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        let err = verify_cose_sign1_es256(&tampered, &rfc9052_key()).unwrap_err();
        assert_eq!(err, EatError::BadSignature);
    }

    fn ed_alias_key() -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
    }

    fn protected_alg(token: &[u8]) -> Option<coset::Algorithm> {
        CoseSign1::from_tagged_slice(token).unwrap().protected.header.alg
    }

    #[test]
    fn eddsa_round_trip_is_deterministic_and_labelled_minus_8() {
        let key = ed_alias_key();
        let token = sign_eat(&claims(), &key).unwrap();
        assert_eq!(token, sign_eat(&claims(), &key).unwrap());
        assert_eq!(
            protected_alg(&token),
            Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA))
        );
        assert_eq!(coset::iana::EnumI64::to_i64(&cose_algorithm(DeviceKeyAlg::Ed25519)), -8);
        let got = verify_eat(&token, key.verifying_key(), &[0x5a; 32]).unwrap();
        assert_eq!(got, claims());
        let p256_token = sign_eat(&claims(), &alias_key()).unwrap();
        assert_eq!(
            protected_alg(&p256_token),
            Some(coset::Algorithm::Assigned(iana::Algorithm::ES256))
        );
    }

    #[test]
    fn eddsa_wrong_key_and_wrong_nonce_are_rejected() {
        let token = sign_eat(&claims(), &ed_alias_key()).unwrap();
        let other = ed25519_dalek::SigningKey::from_bytes(&[8u8; 32]);
        let err = verify_eat(&token, other.verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::BadSignature);
        let err = verify_eat(&token, ed_alias_key().verifying_key(), &[0x5b; 32]).unwrap_err();
        assert_eq!(err, EatError::NonceMismatch);
    }

    #[test]
    fn algorithm_must_match_the_key_type() {
        let ed = sign_eat(&claims(), &ed_alias_key()).unwrap();
        let es = sign_eat(&claims(), &alias_key()).unwrap();
        // An EdDSA token checked with a P-256 key, and an ES256 token with an Ed25519 key.
        let cases: [(&[u8], DevicePublicKey, DeviceKeyAlg, DeviceKeyAlg); 2] = [
            (
                &ed,
                (*alias_key().verifying_key()).into(),
                DeviceKeyAlg::Ed25519,
                DeviceKeyAlg::P256,
            ),
            (
                &es,
                ed_alias_key().verifying_key().into(),
                DeviceKeyAlg::P256,
                DeviceKeyAlg::Ed25519,
            ),
        ];
        for (token, key, token_alg, key_alg) in cases {
            let err = verify_eat(token, key, &[0x5a; 32]).unwrap_err();
            assert_eq!(
                err,
                EatError::AlgorithmMismatch {
                    token: token_alg,
                    key: key_alg
                }
            );
        }
        // The P-256-only entry point refuses EdDSA tokens too.
        let err = verify_cose_sign1_es256(&ed, alias_key().verifying_key()).unwrap_err();
        assert!(matches!(err, EatError::AlgorithmMismatch { .. }));
    }

    #[test]
    fn relabelled_algorithm_does_not_verify() {
        // An ES256 signature under a header claiming EdDSA, checked with the Ed25519 key: the
        // header picks EdDSA, and the P-256 signature bytes do not verify as Ed25519.
        let ed = ed_alias_key();
        let relabelled = CoseSign1Builder::new()
            .protected(HeaderBuilder::new().algorithm(iana::Algorithm::EdDSA).build())
            .payload(claims().to_cbor_value().to_vec().unwrap())
            .create_signature(b"", |tbs| {
                let sig: Signature = alias_key().sign(tbs);
                sig.to_bytes().to_vec()
            })
            .build()
            .to_tagged_vec()
            .unwrap();
        let err = verify_eat(&relabelled, ed.verifying_key(), &[0x5a; 32]).unwrap_err();
        assert_eq!(err, EatError::BadSignature);
    }

    #[test]
    fn every_bit_flip_of_an_eddsa_token_fails() {
        let key = ed_alias_key();
        let token = sign_eat(&claims(), &key).unwrap();
        for i in 0..token.len() {
            let mut bad = token.clone();
            bad[i] ^= 0x01;
            assert!(verify_eat(&bad, key.verifying_key(), &[0x5a; 32]).is_err(), "{i}");
        }
    }

    /// Known-answer test: cose-wg/Examples `eddsa-examples/eddsa-sig-01.json` (commit 53c9d634),
    /// a COSE_Sign1 with EdDSA (alg -8) by the Ed25519 key "11" (the RFC 8032 §7.1 TEST 1 key)
    /// over "This is the content.", protected header `{1: -8, 3: 0}`. Values transcribed.
    mod cose_wg_eddsa_sig_01 {
        pub const KEY_D: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        pub const KEY_X: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        pub const PAYLOAD: &[u8] = b"This is the content.";
        pub const TO_BE_SIGNED: &str =
            "846a5369676e61747572653145a2012703004054546869732069732074686520636f6e74656e742e";
        pub const TOKEN: &str = concat!(
            "d28445a201270300a10442313154546869732069732074686520636f6e74656e742e",
            "58407142fd2ff96d56db85bee905a76ba1d0b7321a95c8c4d3607c5781932b7afb87",
            "11497dfa751bf40b58b3bcc32300b1487f3db34085eef013bf08f4a44d6fef0d",
        );
    }

    #[test]
    fn known_answer_cose_wg_eddsa_sig_01() {
        use cose_wg_eddsa_sig_01 as kat;
        let x: [u8; 32] = hex::decode(kat::KEY_X).unwrap().try_into().unwrap();
        let key = DevicePublicKey::Ed25519(ed25519_dalek::VerifyingKey::from_bytes(&x).unwrap());
        let token = hex::decode(kat::TOKEN).unwrap();
        assert_eq!(verify_cose_sign1(&token, &key).unwrap(), kat::PAYLOAD);

        // Ed25519 is deterministic: our signer reproduces the example's signature exactly.
        let d: [u8; 32] = hex::decode(kat::KEY_D).unwrap().try_into().unwrap();
        let signer = ed25519_dalek::SigningKey::from_bytes(&d);
        let sig = DeviceSigner::from(&signer).sign(&hex::decode(kat::TO_BE_SIGNED).unwrap());
        assert_eq!(sig.to_bytes()[..], token[token.len() - 64..]);

        let mut tampered = token.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x01;
        assert_eq!(verify_cose_sign1(&tampered, &key).unwrap_err(), EatError::BadSignature);
    }
}

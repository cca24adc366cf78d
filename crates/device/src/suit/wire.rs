//! Envelope framing: a bounded raw walk of the top-level envelope map (so digests cover the
//! bytes exactly as carried), generic bounded CBOR decoding, and the COSE_Sign1 check.

use alloc::vec::Vec;

use coset::{
    AsCborValue, CoseSign1,
    cbor::value::Value,
    iana::{self, EnumI64},
};
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};

use super::{
    COSE_SIGN1_TAG, MAX_AUTH_BLOCKS, MAX_CBOR_DEPTH, MAX_DIGEST_BYTES, MAX_ENVELOPE_BYTES, SUIT_ENVELOPE_TAG,
    SuitDigest, SuitError, key,
};

/// Most members in the envelope map (manifest, authentication, severed members, payloads).
pub const MAX_ENVELOPE_MEMBERS: usize = 32;

const MAJOR_UINT: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;

fn malformed(what: &'static str) -> SuitError {
    SuitError::Malformed { what }
}

/// The members of an envelope, as slices of the input.
#[derive(Debug, Default)]
pub(super) struct EnvelopeParts<'a> {
    /// Contents of the bstr at key 2 (the encoded `SUIT_Authentication` list).
    pub authentication: Option<&'a [u8]>,
    /// The whole encoded bstr at key 3 (head included): what the SUIT_Digest covers.
    pub manifest: Option<&'a [u8]>,
    /// Severed members (keys 16, 20, 23): the whole encoded bstr of each.
    pub severed: Vec<(u64, &'a [u8])>,
}

impl<'a> EnvelopeParts<'a> {
    /// The whole encoded bstr of severed member `key`, if the envelope carries it.
    pub fn severed(&self, key: u64) -> Option<&'a [u8]> {
        self.severed.iter().find(|(k, _)| *k == key).map(|(_, raw)| *raw)
    }
}

/// Reads one item head at `pos`: (major type, argument, position after the head).
/// Indefinite lengths and reserved additional-information values are rejected.
fn head(bytes: &[u8], pos: usize) -> Result<(u8, u64, usize), SuitError> {
    let first = *bytes.get(pos).ok_or(malformed("input ends inside a CBOR item"))?;
    let (major, info) = (first >> 5, first & 0x1f);
    let len = match info {
        0..=23 => return Ok((major, u64::from(info), pos + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return Err(malformed("indefinite-length or reserved CBOR encoding")),
    };
    let arg = bytes
        .get(pos + 1..pos + 1 + len)
        .ok_or(malformed("input ends inside a CBOR item head"))?;
    let value = arg.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    Ok((major, value, pos + 1 + len))
}

/// Position just after the item starting at `pos`.
fn skip(bytes: &[u8], pos: usize, depth: usize) -> Result<usize, SuitError> {
    if depth > MAX_CBOR_DEPTH {
        return Err(SuitError::LimitExceeded {
            what: "CBOR nesting depth",
            max: MAX_CBOR_DEPTH,
        });
    }
    let (major, arg, mut next) = head(bytes, pos)?;
    let remaining = (bytes.len() - next) as u64;
    match major {
        MAJOR_BYTES | MAJOR_TEXT => {
            if arg > remaining {
                return Err(malformed("string runs past the end of the input"));
            }
            Ok(next + arg as usize)
        }
        MAJOR_ARRAY | MAJOR_MAP => {
            let items = if major == MAJOR_MAP { arg.saturating_mul(2) } else { arg };
            if items > remaining {
                return Err(malformed("container runs past the end of the input"));
            }
            for _ in 0..items {
                next = skip(bytes, next, depth + 1)?;
            }
            Ok(next)
        }
        MAJOR_TAG => skip(bytes, next, depth + 1),
        _ => Ok(next),
    }
}

/// The contents of the encoded bstr `raw` (which must be exactly one bstr).
pub(super) fn bstr_contents(raw: &[u8]) -> Result<&[u8], SuitError> {
    let (major, len, start) = head(raw, 0)?;
    if major != MAJOR_BYTES || start as u64 + len != raw.len() as u64 {
        return Err(malformed("expected exactly one byte string"));
    }
    Ok(&raw[start..])
}

/// Splits a tagged SUIT_Envelope into its members, bounded by [`MAX_ENVELOPE_BYTES`].
pub(super) fn split_envelope(envelope: &[u8]) -> Result<EnvelopeParts<'_>, SuitError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(SuitError::TooLarge {
            len: envelope.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let (major, tag, pos) = head(envelope, 0)?;
    if major != MAJOR_TAG || tag != SUIT_ENVELOPE_TAG {
        return Err(malformed("not a SUIT_Envelope (CBOR tag 107)"));
    }
    let (major, members, mut pos) = head(envelope, pos)?;
    if major != MAJOR_MAP {
        return Err(malformed("envelope is not a map"));
    }
    if members > MAX_ENVELOPE_MEMBERS as u64 {
        return Err(SuitError::LimitExceeded {
            what: "envelope members",
            max: MAX_ENVELOPE_MEMBERS,
        });
    }
    let mut parts = EnvelopeParts::default();
    let mut seen: Vec<u64> = Vec::new();
    for _ in 0..members {
        let (key_major, key_value, _) = head(envelope, pos)?;
        let end = skip(envelope, pos, 0)?;
        let value_end = skip(envelope, end, 0)?;
        let raw_value = &envelope[end..value_end];
        pos = value_end;
        match key_major {
            MAJOR_UINT => {
                if seen.contains(&key_value) {
                    return Err(malformed("duplicate envelope key"));
                }
                seen.push(key_value);
                parts.record(key_value, raw_value)?;
            }
            // Integrated payloads (tstr keys) are fetched by URI fragment; not interpreted here.
            MAJOR_TEXT => {}
            _ => return Err(malformed("envelope key is neither uint nor tstr")),
        }
    }
    if pos != envelope.len() {
        return Err(malformed("trailing bytes after the envelope"));
    }
    Ok(parts)
}

impl<'a> EnvelopeParts<'a> {
    fn record(&mut self, member: u64, raw: &'a [u8]) -> Result<(), SuitError> {
        match member {
            key::AUTHENTICATION_WRAPPER => self.authentication = Some(bstr_contents(raw)?),
            key::MANIFEST => {
                bstr_contents(raw)?;
                self.manifest = Some(raw);
            }
            key::PAYLOAD_FETCH | key::INSTALL | key::TEXT => {
                bstr_contents(raw)?;
                self.severed.push((member, raw));
            }
            _ => {} // extensions this processor does not know
        }
        Ok(())
    }
}

/// Decodes exactly one CBOR item with a bounded nesting depth (the caller bounds the length).
pub(super) fn decode_value(mut bytes: &[u8]) -> Result<Value, SuitError> {
    let value: Value = coset::cbor::de::from_reader_with_recursion_limit(&mut bytes, MAX_CBOR_DEPTH)
        .map_err(|_| malformed("not a well-formed CBOR item"))?;
    if !bytes.is_empty() {
        return Err(malformed("trailing bytes after a CBOR item"));
    }
    Ok(value)
}

/// An integer value as i64.
pub(super) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Integer(i) => i64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

/// An integer value as u64.
pub(super) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => u64::try_from(i128::from(*i)).ok(),
        _ => None,
    }
}

/// Parses a `SUIT_Digest` value: `[alg: int, bytes: bstr, * extensions]`.
pub(super) fn parse_digest(value: &Value) -> Result<SuitDigest, SuitError> {
    let Value::Array(items) = value else {
        return Err(malformed("SUIT_Digest is not an array"));
    };
    let (Some(alg), Some(Value::Bytes(bytes))) = (items.first().and_then(as_i64), items.get(1)) else {
        return Err(malformed("SUIT_Digest is not [alg, bytes]"));
    };
    if bytes.len() > MAX_DIGEST_BYTES {
        return Err(SuitError::LimitExceeded {
            what: "digest length",
            max: MAX_DIGEST_BYTES,
        });
    }
    Ok(SuitDigest {
        alg,
        bytes: bytes.clone(),
    })
}

/// Parses the encoded `SUIT_Digest` in a bstr.
pub(super) fn parse_digest_bytes(encoded: &[u8]) -> Result<SuitDigest, SuitError> {
    parse_digest(&decode_value(encoded)?)
}

/// Verifies `SUIT_Authentication` (the contents of the key-2 bstr): some COSE_Sign1 block
/// must verify under `key` over the encoded SUIT_Digest (detached payload, empty AAD).
/// Returns the signed digest.
pub(super) fn verify_authentication(auth: &[u8], key: &VerifyingKey) -> Result<SuitDigest, SuitError> {
    let Value::Array(items) = decode_value(auth)? else {
        return Err(malformed("suit-authentication-wrapper is not an array"));
    };
    let Some((Value::Bytes(digest_bytes), blocks)) = items.split_first() else {
        return Err(malformed(
            "suit-authentication-wrapper does not start with a bstr SUIT_Digest",
        ));
    };
    if blocks.len() > MAX_AUTH_BLOCKS {
        return Err(SuitError::LimitExceeded {
            what: "authentication blocks",
            max: MAX_AUTH_BLOCKS,
        });
    }
    let digest = parse_digest_bytes(digest_bytes)?;
    let mut outcome = SuitError::NoAuthentication;
    for block in blocks {
        let Value::Bytes(block) = block else {
            return Err(malformed("authentication block is not a bstr"));
        };
        let Some(sign1) = cose_sign1(block)? else { continue };
        match verify_sign1(&sign1, digest_bytes, key) {
            Ok(()) => return Ok(digest),
            // A bad signature outranks an unsupported algorithm in what we report.
            Err(e) if outcome != SuitError::BadSignature => outcome = e,
            Err(_) => {}
        }
    }
    Err(outcome)
}

/// The COSE_Sign1 in an authentication block, or `None` for another COSE structure.
fn cose_sign1(block: &[u8]) -> Result<Option<CoseSign1>, SuitError> {
    match decode_value(block)? {
        Value::Tag(COSE_SIGN1_TAG, inner) => CoseSign1::from_cbor_value(*inner)
            .map(Some)
            .map_err(|_| malformed("authentication block is not a well-formed COSE_Sign1")),
        Value::Tag(..) => Ok(None),
        _ => Err(malformed("authentication block is not a tagged COSE structure")),
    }
}

/// Checks one COSE_Sign1: ES256, nothing critical, detached payload, signature over `payload`.
fn verify_sign1(sign1: &CoseSign1, payload: &[u8], key: &VerifyingKey) -> Result<(), SuitError> {
    let es256 = coset::Algorithm::Assigned(iana::Algorithm::ES256);
    match sign1.protected.header.alg.as_ref() {
        Some(alg) if *alg == es256 => {}
        Some(coset::Algorithm::Assigned(a)) => {
            return Err(SuitError::UnsupportedAlg {
                what: "signature",
                alg: a.to_i64(),
            });
        }
        Some(coset::Algorithm::PrivateUse(a)) => {
            return Err(SuitError::UnsupportedAlg {
                what: "signature",
                alg: *a,
            });
        }
        _ => return Err(malformed("COSE_Sign1 has no integer alg in its protected header")),
    }
    if !sign1.protected.header.crit.is_empty() {
        return Err(SuitError::UnsupportedCritical);
    }
    if sign1.payload.is_some() {
        return Err(malformed("COSE_Sign1 payload must be detached (nil)"));
    }
    sign1.verify_detached_signature(payload, b"", |sig, tbs| {
        let sig = Signature::from_slice(sig).map_err(|_| SuitError::BadSignature)?;
        key.verify(tbs, &sig).map_err(|_| SuitError::BadSignature)
    })
}

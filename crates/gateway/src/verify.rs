//! Fast record-signature verification for gateways: many records at once, on every core.
//!
//! [`verify_record`](chipledger_device::record::verify_record) is the reference: RustCrypto
//! `p256` (~3.5k ES256 verifications/s/core) and `verify_strict` one Ed25519 signature at a
//! time. A gateway verifies the same signatures with the same acceptance rules, faster:
//!
//! - **ES256** with `aws-lc-rs` (~5× RustCrypto). aws-lc accepts high-S signatures, so the
//!   low-S rule is checked here first, on the fixed-size `r ‖ s` bytes against the P-256 half
//!   order ([`P256_HALF_ORDER`]); `r` and `s` outside `1..n` are refused as `BadSignature`, as
//!   `verify_record` does (the signature does not parse there).
//! - **Ed25519** in batches of [`ED25519_BATCH_MAX`] (`ed25519_dalek::verify_batch`, one
//!   multi-scalar multiplication per batch). A batch that fails is re-checked one signature at
//!   a time with `verify_strict`, which finds the bad ones. Signatures that `verify_strict`
//!   refuses but a batch equation could accept are kept out of batches by cheap byte checks and
//!   verified alone: an `R` that is a small-order point or a non-canonical encoding, and a weak
//!   (small-order) key. What remains different is only a signature its own key holder crafts
//!   with a mixed-order `R` (a torsion component added on purpose): the batch's random
//!   coefficients refuse it with probability ≥ 1/2 per attempt, `verify_strict` always does.
//!   Nobody without the device key can produce one.
//!
//! Checks are split evenly over `available_parallelism()` scoped threads (small inputs stay on
//! the calling thread). Each thread reuses its buffers for the COSE `Sig_structure`s, so the
//! per-record work allocates nothing; per batch there is one small vector of message slices
//! (and `verify_batch`'s own).

use std::sync::LazyLock;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use chipledger_device::dice::RawPublicKey;
use chipledger_device::key::DevicePublicKey;
use chipledger_device::record::record_alg;
use chipledger_types::record::{
    Record, RecordAlg, RecordError, SIGNATURE_BYTES, Sign1Parts, parse_sign1, sig_structure,
};

/// Ed25519 signatures checked by one batch equation (DESIGN.md: ~70k/s/core at 256).
pub const ED25519_BATCH_MAX: usize = 256;
/// Fewer checks than this per extra thread are verified on the calling thread.
pub const MIN_CHECKS_PER_THREAD: usize = 32;
/// Bytes of a record before its body's bstr header: tag 18, `array(4)`, the 4-byte protected
/// bucket `h'A10126'` / `h'A10127'`, the empty unprotected map (the one layout of
/// [`parse_sign1`]).
const SIGN1_BODY_OFFSET: usize = 7;
/// Bytes of a record after its body: the signature's bstr header `0x58 0x40` and the signature.
const SIGN1_SIGNATURE_TAIL: usize = 2 + SIGNATURE_BYTES;

/// The P-256 group order n, big-endian (SEC 2 §2.4.2).
pub const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// `(n - 1) / 2` for the P-256 order: the largest `s` of a low-S signature, big-endian.
pub const P256_HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];
/// Encodings of the eight small-order Ed25519 points with the sign bit cleared (identity,
/// order 2, the order-4 pair sharing y = 0, the two order-8 pairs): an `R` among them never
/// passes `verify_strict` but can pass a batch equation.
const ED25519_SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [
        0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ],
    [
        0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
    ],
    [0; 32],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, //
        0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ],
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, //
        0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ],
];

/// `["Signature1", protected, h'', ` — the `Sig_structure` up to the body's bstr header, per
/// algorithm (derived from [`sig_structure`], the one definition).
static SIG_PREFIX: LazyLock<[Vec<u8>; 2]> =
    LazyLock::new(|| [prefix_of(RecordAlg::Es256), prefix_of(RecordAlg::EdDsa)]);

fn prefix_of(alg: RecordAlg) -> Vec<u8> {
    let mut prefix = sig_structure(alg, &[]);
    // The empty body is the one-byte bstr header 0x40; the real body's header follows instead.
    assert_eq!(prefix.pop(), Some(0x40), "Sig_structure ends with the body bstr");
    prefix
}

fn sig_prefix(alg: RecordAlg) -> &'static [u8] {
    match alg {
        RecordAlg::Es256 => &SIG_PREFIX[0],
        RecordAlg::EdDsa => &SIG_PREFIX[1],
    }
}

/// One record signature to check, borrowed from the record's bytes.
#[derive(Clone, Copy, Debug)]
pub struct SigCheck<'a> {
    alg: RecordAlg,
    /// The body as encoded in the record: its bstr header and bytes (the `Sig_structure` tail).
    encoded_body: &'a [u8],
    signature: [u8; SIGNATURE_BYTES],
    key: &'a DevicePublicKey,
}

impl<'a> SigCheck<'a> {
    /// Parses a record's framing ([`parse_sign1`]; the body is not decoded).
    pub fn new(record: &'a [u8], key: &'a DevicePublicKey) -> Result<Self, RecordError> {
        let parts = parse_sign1(record)?;
        Self::from_parts(record, &parts, key)
    }

    /// From what [`parse_sign1`] returned for `record`.
    pub fn from_parts(record: &'a [u8], parts: &Sign1Parts<'_>, key: &'a DevicePublicKey) -> Result<Self, RecordError> {
        let encoded_body = record
            .len()
            .checked_sub(SIGN1_SIGNATURE_TAIL)
            .and_then(|end| record.get(SIGN1_BODY_OFFSET..end))
            .filter(|b| b.len() > parts.body.len() && b.ends_with(parts.body))
            .ok_or(RecordError::Framing("record bytes do not match their parsed parts"))?;
        Ok(SigCheck {
            alg: parts.alg,
            encoded_body,
            signature: parts.signature,
            key,
        })
    }

    /// Appends this record's COSE `Sig_structure` (what the device signed) to `out`.
    fn write_message(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(sig_prefix(self.alg));
        out.extend_from_slice(self.encoded_body);
    }
}

/// Verifies every check on all cores; results in input order. Each result is what
/// [`verify_record`](chipledger_device::record::verify_record) decides about the signature:
/// `AlgorithmMismatch`, `HighS` or `BadSignature`.
pub fn verify_signatures(checks: &[SigCheck<'_>]) -> Vec<Result<(), RecordError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(checks.len() / MIN_CHECKS_PER_THREAD)
        .max(1);
    let per_thread = checks.len().div_ceil(threads).max(1);
    let mut chunks = checks.chunks(per_thread);
    let own = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let others: Vec<_> = chunks
            .map(|chunk| {
                let thread = std::thread::Builder::new().name("verify".into());
                (chunk, thread.spawn_scoped(scope, move || verify_chunk(chunk)))
            })
            .collect();
        let mut out = verify_chunk(own);
        for (chunk, thread) in others {
            match thread {
                Ok(handle) => out.extend(handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))),
                // No thread to be had: verify that share here.
                Err(_) => out.extend(verify_chunk(chunk)),
            }
        }
        out
    })
}

/// One thread's share, in order.
fn verify_chunk(checks: &[SigCheck<'_>]) -> Vec<Result<(), RecordError>> {
    // Fail closed: every entry is overwritten with its verdict.
    let mut out = vec![Err(RecordError::BadSignature); checks.len()];
    Scratch::default().run(checks, &mut out);
    out
}

/// [`verify_record`](chipledger_device::record::verify_record) for many records on all cores:
/// framing, algorithm, body rules, low-S, signature; the same answer for every record.
pub fn verify_records(records: &[&[u8]], keys: &[&DevicePublicKey]) -> Vec<Result<Record, RecordError>> {
    let mut results: Vec<Result<Record, RecordError>> = Vec::with_capacity(records.len());
    let mut checks = Vec::with_capacity(records.len());
    let mut checked = Vec::with_capacity(records.len());
    for (i, (record, key)) in records.iter().zip(keys).enumerate() {
        match decode_for_check(record, key) {
            Ok((decoded, check)) => {
                results.push(Ok(decoded));
                checks.push(check);
                checked.push(i);
            }
            Err(e) => results.push(Err(e)),
        }
    }
    for (i, verdict) in checked.into_iter().zip(verify_signatures(&checks)) {
        if let Err(e) = verdict {
            results[i] = Err(e);
        }
    }
    results.truncate(records.len().min(keys.len()));
    results
}

/// Everything `verify_record` checks before the signature, in its order.
fn decode_for_check<'a>(record: &'a [u8], key: &'a DevicePublicKey) -> Result<(Record, SigCheck<'a>), RecordError> {
    let parts = parse_sign1(record)?;
    let key_alg = record_alg(key.alg());
    if parts.alg != key_alg {
        return Err(RecordError::AlgorithmMismatch {
            record: parts.alg,
            key: key_alg,
        });
    }
    let decoded = Record::decode_body(parts.body)?;
    Ok((decoded, SigCheck::from_parts(record, &parts, key)?))
}

/// One thread's reusable buffers.
#[derive(Default)]
struct Scratch {
    /// One `Sig_structure` (ES256, or an Ed25519 signature verified alone).
    message: Vec<u8>,
    /// An Ed25519 batch's `Sig_structure`s back to back, and where each ends.
    arena: Vec<u8>,
    ends: Vec<usize>,
    /// The batch: indices into the thread's checks, signatures, keys.
    batch: Vec<usize>,
    signatures: Vec<ed25519_dalek::Signature>,
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

impl Scratch {
    fn run(&mut self, checks: &[SigCheck<'_>], out: &mut [Result<(), RecordError>]) {
        for (i, check) in checks.iter().enumerate() {
            match check.key {
                DevicePublicKey::P256(_) if check.alg == RecordAlg::Es256 => out[i] = self.es256(check),
                DevicePublicKey::Ed25519(key) if check.alg == RecordAlg::EdDsa => {
                    if batchable(&check.signature, key) {
                        self.batch.push(i);
                        if self.batch.len() == ED25519_BATCH_MAX {
                            self.flush(checks, out);
                        }
                    } else {
                        out[i] = self.ed25519_alone(check, key);
                    }
                }
                key => {
                    out[i] = Err(RecordError::AlgorithmMismatch {
                        record: check.alg,
                        key: record_alg(key.alg()),
                    })
                }
            }
        }
        self.flush(checks, out);
    }

    fn es256(&mut self, check: &SigCheck<'_>) -> Result<(), RecordError> {
        let RawPublicKey::P256(xy) = check.key.raw() else {
            return Err(RecordError::BadSignature);
        };
        let (r, s) = check.signature.split_at(32);
        let in_range = |v: &[u8]| v.iter().any(|&b| b != 0) && v < &P256_ORDER[..];
        if !in_range(r) || !in_range(s) {
            return Err(RecordError::BadSignature);
        }
        if s > &P256_HALF_ORDER[..] {
            return Err(RecordError::HighS);
        }
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(&xy);
        self.message.clear();
        check.write_message(&mut self.message);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &sec1)
            .verify(&self.message, &check.signature)
            .map_err(|_| RecordError::BadSignature)
    }

    fn ed25519_alone(&mut self, check: &SigCheck<'_>, key: &ed25519_dalek::VerifyingKey) -> Result<(), RecordError> {
        self.message.clear();
        check.write_message(&mut self.message);
        let signature = ed25519_dalek::Signature::from_bytes(&check.signature);
        key.verify_strict(&self.message, &signature)
            .map_err(|_| RecordError::BadSignature)
    }

    /// Verifies the queued Ed25519 batch; on failure, each of its signatures alone.
    fn flush(&mut self, checks: &[SigCheck<'_>], out: &mut [Result<(), RecordError>]) {
        if self.batch.is_empty() {
            return;
        }
        self.arena.clear();
        self.ends.clear();
        self.signatures.clear();
        self.keys.clear();
        for &i in &self.batch {
            let check = &checks[i];
            check.write_message(&mut self.arena);
            self.ends.push(self.arena.len());
            self.signatures
                .push(ed25519_dalek::Signature::from_bytes(&check.signature));
            if let DevicePublicKey::Ed25519(key) = check.key {
                self.keys.push(*key);
            }
        }
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        let messages: Vec<&[u8]> = starts.zip(&self.ends).map(|(a, &b)| &self.arena[a..b]).collect();
        let batch_ok = self.keys.len() == self.batch.len()
            && ed25519_dalek::verify_batch(&messages, &self.signatures, &self.keys).is_ok();
        for (k, &i) in self.batch.iter().enumerate() {
            let alone = |key: &ed25519_dalek::VerifyingKey| key.verify_strict(messages[k], &self.signatures[k]).is_ok();
            out[i] = match batch_ok || self.keys.get(k).is_some_and(alone) {
                true => Ok(()),
                false => Err(RecordError::BadSignature),
            };
        }
        self.batch.clear();
    }
}

/// Whether a batch equation decides this signature exactly as `verify_strict` would: `R` is a
/// canonical encoding of a point that is not of small order, and the key is not weak.
fn batchable(signature: &[u8; SIGNATURE_BYTES], key: &ed25519_dalek::VerifyingKey) -> bool {
    let mut y = [0u8; 32];
    y.copy_from_slice(&signature[..32]);
    y[31] &= 0x7f;
    canonical_y(&y) && !ED25519_SMALL_ORDER_Y.contains(&y) && !key.is_weak()
}

/// `y < p = 2^255 - 19` for a little-endian y with the sign bit cleared.
fn canonical_y(y: &[u8; 32]) -> bool {
    let at_least_p = y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed;
    !at_least_p
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_device::key::DeviceSigner;
    use chipledger_device::record::{RecordChainWriter, verify_record};
    use chipledger_types::device_tx::DeviceId;
    use chipledger_types::record::assemble_sign1;

    enum Key {
        P256(p256::ecdsa::SigningKey),
        Ed25519(ed25519_dalek::SigningKey),
    }

    impl Key {
        fn new(alg: RecordAlg, n: u8) -> Key {
            match alg {
                RecordAlg::Es256 => Key::P256(p256::ecdsa::SigningKey::from_bytes(&[n; 32].into()).unwrap()),
                RecordAlg::EdDsa => Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[n; 32])),
            }
        }

        fn signer(&self) -> DeviceSigner<'_> {
            match self {
                Key::P256(k) => k.into(),
                Key::Ed25519(k) => k.into(),
            }
        }

        fn public(&self) -> DevicePublicKey {
            self.signer().public_key()
        }
    }

    /// `count` chained records of one device signed with `key`.
    fn records(key: &Key, count: usize) -> Vec<Vec<u8>> {
        let mut w = RecordChainWriter::new(DeviceId([7; 20]), "temperature").unwrap();
        (0..count)
            .map(|i| {
                let payload = vec![0xd0, 0x83, 0x40, 0xa0, 0x41, i as u8];
                w.sign_next(key.signer(), 1_764_000_000_000 + i as u64, 1, payload)
                    .unwrap()
                    .1
                    .bytes
            })
            .collect()
    }

    /// The same record with `s` replaced by `n - s` (ES256): still a valid ECDSA signature.
    fn malleate(record: &[u8]) -> Vec<u8> {
        let parts = parse_sign1(record).unwrap();
        let sig = p256::ecdsa::Signature::from_slice(&parts.signature).unwrap();
        let (r, s) = sig.split_scalars();
        let high = p256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assemble_sign1(RecordAlg::Es256, parts.body, &high.to_bytes().into())
    }

    fn tamper_body(record: &[u8]) -> Vec<u8> {
        let mut bad = record.to_vec();
        let last_payload_byte = bad.len() - SIGN1_SIGNATURE_TAIL - 1;
        bad[last_payload_byte] ^= 0x01;
        bad
    }

    fn tamper_signature(record: &[u8]) -> Vec<u8> {
        let mut bad = record.to_vec();
        let n = bad.len();
        bad[n - 1] ^= 0x01;
        bad
    }

    /// Valid, tampered (body, signature), malleated (high-S), wrong-key and wrong-algorithm
    /// records, both algorithms, in one mixed call large enough for batches and threads: every
    /// answer equals `verify_record`'s.
    #[test]
    fn agrees_with_verify_record() {
        let mut cases: Vec<(Vec<u8>, DevicePublicKey)> = Vec::new();
        for alg in [RecordAlg::Es256, RecordAlg::EdDsa] {
            let key = Key::new(alg, 1);
            let other = Key::new(alg, 2).public();
            let wrong_alg = Key::new(
                match alg {
                    RecordAlg::Es256 => RecordAlg::EdDsa,
                    RecordAlg::EdDsa => RecordAlg::Es256,
                },
                3,
            )
            .public();
            for (i, r) in records(&key, 300).into_iter().enumerate() {
                let case = match i % 10 {
                    1 => (tamper_body(&r), key.public()),
                    2 => (tamper_signature(&r), key.public()),
                    3 if alg == RecordAlg::Es256 => (malleate(&r), key.public()),
                    4 => (r, other),
                    5 => (r, wrong_alg),
                    6 => (r[..r.len() - 1].to_vec(), key.public()),
                    _ => (r, key.public()),
                };
                cases.push(case);
            }
        }
        let bytes: Vec<&[u8]> = cases.iter().map(|(b, _)| b.as_slice()).collect();
        let keys: Vec<&DevicePublicKey> = cases.iter().map(|(_, k)| k).collect();
        let got = verify_records(&bytes, &keys);
        assert_eq!(got.len(), cases.len());
        let mut seen = std::collections::BTreeSet::new();
        for (i, ((b, k), got)) in cases.iter().zip(got).enumerate() {
            let want = verify_record(b, k);
            assert_eq!(got, want, "case {i}");
            seen.insert(match want {
                Ok(_) => "ok",
                Err(RecordError::BadSignature) => "bad_signature",
                Err(RecordError::HighS) => "high_s",
                Err(RecordError::AlgorithmMismatch { .. }) => "algorithm_mismatch",
                Err(_) => "framing",
            });
        }
        assert_eq!(seen.len(), 5, "every outcome exercised: {seen:?}");
        let high_s = cases
            .iter()
            .filter(|(b, k)| verify_record(b, k) == Err(RecordError::HighS));
        assert_eq!(high_s.count(), 30, "every malleated ES256 record is refused as high-S");
    }

    /// Low-S means s ≤ (n - 1) / 2, exactly p256's rule: the boundary and its neighbours.
    #[test]
    fn half_order_is_the_low_s_boundary() {
        use p256::elliptic_curve::ff::PrimeField;
        let half = Option::<p256::Scalar>::from(p256::Scalar::from_repr(P256_HALF_ORDER.into())).unwrap();
        let one = p256::Scalar::ONE;
        let r = p256::Scalar::from(5u64);
        for (s, high) in [(half - one, false), (half, false), (half + one, true), (-one, true)] {
            let sig = p256::ecdsa::Signature::from_scalars(r.to_bytes(), s.to_bytes()).unwrap();
            assert_eq!(sig.normalize_s() != sig, high, "p256's view of {s:?}");
            let bytes: [u8; 64] = sig.to_bytes().into();
            assert_eq!(bytes[32..] > P256_HALF_ORDER[..], high, "ours of {s:?}");
        }
        assert!(
            bool::from(p256::Scalar::from_repr(P256_ORDER.into()).is_none()),
            "n is not a scalar"
        );
        let n_minus_1 = -one;
        assert_eq!(n_minus_1.to_bytes().as_slice(), {
            let mut b = P256_ORDER;
            b[31] -= 1;
            b
        });
    }

    /// Each listed encoding (either sign) is a small-order point; ordinary keys are not.
    #[test]
    fn small_order_table_is_small_order() {
        for y in ED25519_SMALL_ORDER_Y {
            for sign in [0x00, 0x80] {
                let mut enc = y;
                enc[31] |= sign;
                if let Ok(point) = ed25519_dalek::VerifyingKey::from_bytes(&enc) {
                    assert!(point.is_weak(), "{enc:02x?}");
                }
            }
            let canonical = ed25519_dalek::VerifyingKey::from_bytes(&y).expect("decodes");
            assert!(canonical.is_weak());
        }
        let key = Key::new(RecordAlg::EdDsa, 9).public();
        let DevicePublicKey::Ed25519(key) = key else {
            unreachable!()
        };
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(key.as_bytes());
        assert!(batchable(&sig, &key));
        let mut p = [0xff; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!canonical_y(&p), "p itself");
        p[0] = 0xec;
        assert!(canonical_y(&p), "p - 1");
    }

    /// A key holder can sign with R = identity and s = k·a: that passes a batch equation but
    /// not `verify_strict`, so it must not be batched. Mixed with valid signatures.
    #[test]
    fn crafted_small_order_r_is_refused_like_verify_record() {
        use curve25519_dalek::{EdwardsPoint, Scalar};
        use sha2::{Digest, Sha512};
        let a = Scalar::from_bytes_mod_order([42; 32]);
        let public = ed25519_dalek::VerifyingKey::from_bytes(&EdwardsPoint::mul_base(&a).compress().to_bytes())
            .expect("a point");
        let key = DevicePublicKey::Ed25519(public);
        let honest = Key::new(RecordAlg::EdDsa, 1);
        let mut cases: Vec<(Vec<u8>, DevicePublicKey)> =
            records(&honest, 40).into_iter().map(|r| (r, honest.public())).collect();
        let body = parse_sign1(&cases[0].0).unwrap().body.to_vec();
        let message = sig_structure(RecordAlg::EdDsa, &body);
        let r_identity = EdwardsPoint::default().compress().to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_identity)
                .chain_update(public.as_bytes())
                .chain_update(&message)
                .finalize()
                .into(),
        );
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&r_identity);
        signature[32..].copy_from_slice(&(k * a).to_bytes());
        let crafted = assemble_sign1(RecordAlg::EdDsa, &body, &signature);
        // The batch equation alone would take it.
        let msg: &[u8] = &message;
        let batch = ed25519_dalek::verify_batch(&[msg], &[ed25519_dalek::Signature::from_bytes(&signature)], &[public]);
        assert!(batch.is_ok(), "the batch equation accepts the crafted signature");
        cases.insert(17, (crafted, key));
        let bytes: Vec<&[u8]> = cases.iter().map(|(b, _)| b.as_slice()).collect();
        let keys: Vec<&DevicePublicKey> = cases.iter().map(|(_, k)| k).collect();
        let got = verify_records(&bytes, &keys);
        for (i, ((b, k), got)) in cases.iter().zip(got).enumerate() {
            assert_eq!(got, verify_record(b, k), "case {i}");
        }
        assert_eq!(
            verify_record(&cases[17].0, &cases[17].1),
            Err(RecordError::BadSignature)
        );
    }

    #[test]
    fn sig_checks_build_the_reference_sig_structure() {
        for alg in [RecordAlg::Es256, RecordAlg::EdDsa] {
            let key = Key::new(alg, 4);
            let public = key.public();
            for record in records(&key, 3) {
                let check = SigCheck::new(&record, &public).unwrap();
                let mut message = Vec::new();
                check.write_message(&mut message);
                assert_eq!(message, sig_structure(alg, parse_sign1(&record).unwrap().body));
            }
        }
        assert!(verify_signatures(&[]).is_empty());
    }
}

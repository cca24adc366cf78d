//! Zero-knowledge range proofs over committed device readings (issue 6).
//!
//! A reading `v` (a `u64`) is committed with a Pedersen commitment on ristretto255,
//! `C = v·B + r·B̃` ([`commit`]): `B` is the ristretto255 base point, `B̃` the SHA3-512
//! hash-to-group of `B`'s encoding (the `bulletproofs` crate's [`PedersenGens::default`]), `r`
//! the [`Blinding`]. The commitment hides `v` perfectly and binds it computationally (discrete
//! logarithm of `B̃` to base `B`).
//!
//! **The statement** `min ≤ v ≤ max` is proved from the one commitment `C` ([`prove_bounds`]):
//! both parties derive `C_lo = C − min·B` (a commitment to `v − min` with blinding `r`) and
//! `C_hi = max·B − C` (to `max − v` with blinding `−r`), and one aggregated Bulletproof
//! (two parties, `bits` bits each) shows both committed values lie in `[0, 2^bits)`. Their sum
//! is `max − min < 2^bits ≤ 2^64` as an integer (no wrap modulo the group order ℓ > 2^252), so
//! `v − min ∈ [0, max − min]`, i.e. `min ≤ v ≤ max`. The verifier ([`verify_bounds`]) needs only
//! `C`, the bounds and the proof.
//!
//! **Transcript.** Prover and verifier start a merlin transcript labelled
//! [`TRANSCRIPT_LABEL`] and append, before the proof's own messages, the commitment, `min`,
//! `max` and `bits` ([`transcript`]): a proof answers exactly one statement, so it cannot be
//! moved to another commitment or other bounds.
//!
//! **Verifier randomness.** Bulletproofs verification draws one random weight that batches its
//! two final checks into one multi-scalar multiplication. The ledger's state machine must be
//! deterministic, so [`verify_bounds`] draws it from ChaCha20 seeded with SHA-256 of
//! [`TAG_VERIFY_SEED`] ‖ statement ‖ proof: the weight is fixed only after the proof is, which
//! is what its soundness needs (a prover would have to find a proof whose own hash cancels its
//! two errors).
//!
//! **Limits.** `bits` ∈ [`ALLOWED_BITS`]; `min ≤ max`; `max − min < 2^bits`; a proof is exactly
//! [`proof_len`]`(bits)` bytes (at most [`MAX_PROOF_BYTES`]). Malformed input is a typed
//! [`ZkError`], never a panic.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use bulletproofs::{BulletproofGens, PedersenGens, ProofError, RangeProof};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use hkdf::Hkdf;
use merlin::Transcript;
use rand_chacha_03::ChaCha20Rng;
use rand_core_06::{CryptoRng, OsRng, RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Label of the merlin transcript of every chipledger range proof.
pub const TRANSCRIPT_LABEL: &[u8] = b"chipledger/range-proof/v1";
/// HKDF salt of [`Blinding::derive`].
pub const BLINDING_SALT: &[u8] = b"chipledger/range-proof/blinding/v1";
/// Domain-separation tag of the verifier's deterministic RNG seed.
pub const TAG_VERIFY_SEED: &[u8] = b"chipledger/range-proof/verify-seed/v1";
/// Bit widths a proof may use (the Bulletproofs range sizes).
pub const ALLOWED_BITS: [u8; 4] = [8, 16, 32, 64];
/// Shortest secret [`Blinding::derive`] accepts, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;
/// Length of a commitment (a compressed Ristretto point), in bytes.
pub const COMMITMENT_BYTES: usize = 32;
/// Values aggregated in one proof: `v − min` and `max − v`.
pub const PARTIES: usize = 2;
/// Largest proof: 64 bits, two parties.
pub const MAX_PROOF_BYTES: usize = proof_len(64);

/// The exact length of a two-party proof over `bits` bits: 9 + 2·log2(2·bits) 32-byte
/// elements (four points, three scalars, the inner-product argument's L/R pairs and a, b).
pub const fn proof_len(bits: u8) -> usize {
    let rounds = (PARTIES * bits as usize).trailing_zeros() as usize;
    32 * (9 + 2 * rounds)
}

/// Why a commitment, proof or statement was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZkError {
    /// The bounds or the bit width do not make a statement this crate proves.
    #[error("invalid range statement: {0}")]
    InvalidStatement(&'static str),
    /// The prover's value lies outside the bounds: no proof is made.
    #[error("the value is not within [{min}, {max}]; no proof can be made")]
    OutOfBounds { min: u64, max: u64 },
    /// A derivation secret too short to hide anything.
    #[error("the blinding secret is {len} bytes; at least {min} are needed")]
    ShortSecret { len: usize, min: usize },
    /// Bytes that are not a commitment, blinding or proof of the expected shape.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A well-formed proof that does not prove the statement.
    #[error("the range proof does not verify for this commitment and these bounds")]
    VerificationFailed,
    /// The Bulletproofs prover failed (a bug: the inputs were checked).
    #[error("range proof could not be made: {0}")]
    Proving(String),
}

impl ZkError {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ZkError::InvalidStatement(_) => "invalid_statement",
            ZkError::OutOfBounds { .. } => "out_of_bounds",
            ZkError::ShortSecret { .. } => "short_secret",
            ZkError::Malformed(_) => "malformed",
            ZkError::VerificationFailed => "verification_failed",
            ZkError::Proving(_) => "proving",
        }
    }
}

/// A commitment to a reading: a compressed Ristretto point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Commitment(pub [u8; COMMITMENT_BYTES]);

impl Commitment {
    /// The commitment from its 32 bytes, checked to be a valid Ristretto encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        let arr: [u8; COMMITMENT_BYTES] = bytes.try_into().map_err(|_| ZkError::Malformed("commitment length"))?;
        let c = Commitment(arr);
        c.point()?;
        Ok(c)
    }

    fn point(&self) -> Result<RistrettoPoint, ZkError> {
        CompressedRistretto(self.0)
            .decompress()
            .ok_or(ZkError::Malformed("commitment: not a Ristretto point"))
    }
}

impl std::fmt::Display for Commitment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The blinding factor `r` of a commitment: a secret scalar, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Blinding(Scalar);

impl Blinding {
    /// `r` = HKDF-SHA256(ikm = `secret`, salt = [`BLINDING_SALT`], info = `context`) expanded to
    /// 64 bytes and reduced modulo ℓ (wide reduction: the bias is below 2^-250). Use one
    /// high-entropy secret per device and a context naming the reading (e.g. device, stream,
    /// seq, quantity), so every commitment gets its own blinding and the device can re-derive it.
    pub fn derive(secret: &[u8], context: &[u8]) -> Result<Self, ZkError> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ZkError::ShortSecret {
                len: secret.len(),
                min: MIN_SECRET_BYTES,
            });
        }
        let mut okm = [0u8; 64];
        Hkdf::<Sha256>::new(Some(BLINDING_SALT), secret)
            .expand(context, &mut okm)
            .map_err(|_| ZkError::Proving("HKDF output length".into()))?;
        let r = Scalar::from_bytes_mod_order_wide(&okm);
        okm.zeroize();
        Ok(Blinding(r))
    }

    /// A fresh uniformly random blinding from the operating system's RNG.
    pub fn random() -> Self {
        Blinding(Scalar::random(&mut OsRng))
    }

    /// A blinding from its canonical 32-byte little-endian encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ZkError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ZkError::Malformed("blinding length"))?;
        Option::from(Scalar::from_canonical_bytes(arr))
            .map(Blinding)
            .ok_or(ZkError::Malformed("blinding: not a canonical scalar"))
    }

    /// The canonical 32-byte encoding (secret: handle like a key).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for Blinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinding(<secret>)")
    }
}

/// Checked bounds of a statement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
    pub bits: u8,
}

impl Bounds {
    /// `bits` ∈ [`ALLOWED_BITS`], `min ≤ max`, `max − min < 2^bits`.
    pub fn new(min: u64, max: u64, bits: u8) -> Result<Self, ZkError> {
        if !ALLOWED_BITS.contains(&bits) {
            return Err(ZkError::InvalidStatement("bits must be 8, 16, 32 or 64"));
        }
        if min > max {
            return Err(ZkError::InvalidStatement("min is greater than max"));
        }
        if bits < 64 && max - min >= 1u64 << bits {
            return Err(ZkError::InvalidStatement("max - min does not fit in the bit width"));
        }
        Ok(Bounds { min, max, bits })
    }
}

/// The Pedersen generators (`B`, `B̃`).
pub fn pedersen_gens() -> PedersenGens {
    PedersenGens::default()
}

fn bulletproof_gens() -> &'static BulletproofGens {
    static GENS: OnceLock<BulletproofGens> = OnceLock::new();
    GENS.get_or_init(|| BulletproofGens::new(64, PARTIES))
}

/// `C = value·B + r·B̃`, compressed.
pub fn commit(value: u64, blinding: &Blinding) -> Commitment {
    let point = pedersen_gens().commit(Scalar::from(value), blinding.0);
    Commitment(point.compress().to_bytes())
}

/// The statement's transcript: label, then commitment, min, max and bits.
pub fn transcript(commitment: &Commitment, bounds: &Bounds) -> Transcript {
    let mut t = Transcript::new(TRANSCRIPT_LABEL);
    t.append_message(b"commitment", &commitment.0);
    t.append_u64(b"min", bounds.min);
    t.append_u64(b"max", bounds.max);
    t.append_u64(b"bits", u64::from(bounds.bits));
    t
}

/// `[C − min·B, max·B − C]`: commitments to `v − min` (blinding r) and `max − v` (blinding −r).
fn derived_commitments(c: &RistrettoPoint, bounds: &Bounds) -> [CompressedRistretto; PARTIES] {
    let b = pedersen_gens().B;
    let lo = c - Scalar::from(bounds.min) * b;
    let hi = Scalar::from(bounds.max) * b - c;
    [lo.compress(), hi.compress()]
}

/// Prove `min ≤ value ≤ max` for [`commit`]`(value, blinding)` without revealing `value`.
/// Refuses ([`ZkError::OutOfBounds`]) a value outside the bounds.
pub fn prove_bounds(value: u64, blinding: &Blinding, min: u64, max: u64, bits: u8) -> Result<Vec<u8>, ZkError> {
    prove_bounds_with_rng(value, blinding, min, max, bits, &mut OsRng)
}

fn prove_bounds_with_rng<R: RngCore + CryptoRng>(
    value: u64,
    blinding: &Blinding,
    min: u64,
    max: u64,
    bits: u8,
    rng: &mut R,
) -> Result<Vec<u8>, ZkError> {
    let bounds = Bounds::new(min, max, bits)?;
    if value < min || value > max {
        return Err(ZkError::OutOfBounds { min, max });
    }
    let commitment = commit(value, blinding);
    let mut t = transcript(&commitment, &bounds);
    let values = [value - min, max - value];
    let blindings = [blinding.0, -blinding.0];
    let (proof, parts) = RangeProof::prove_multiple_with_rng(
        bulletproof_gens(),
        &pedersen_gens(),
        &mut t,
        &values,
        &blindings,
        usize::from(bits),
        rng,
    )
    .map_err(|e| ZkError::Proving(format!("{e:?}")))?;
    let c = commitment.point()?;
    assert_eq!(
        parts,
        derived_commitments(&c, &bounds),
        "prover and verifier derive C_lo, C_hi alike"
    );
    let bytes = proof.to_bytes();
    assert_eq!(bytes.len(), proof_len(bits), "a two-party proof has its fixed length");
    Ok(bytes)
}

/// The verifier's RNG: ChaCha20 seeded with SHA-256 of the tag, the statement and the proof.
fn verify_rng(commitment: &Commitment, bounds: &Bounds, proof: &[u8]) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(TAG_VERIFY_SEED);
    h.update([0u8]);
    h.update(commitment.0);
    h.update(bounds.min.to_be_bytes());
    h.update(bounds.max.to_be_bytes());
    h.update([bounds.bits]);
    h.update(proof);
    ChaCha20Rng::from_seed(h.finalize().into())
}

/// Check that `proof` shows the value committed in `commitment` lies in `[min, max]`.
/// Deterministic (see the crate documentation).
pub fn verify_bounds(commitment: &Commitment, min: u64, max: u64, bits: u8, proof: &[u8]) -> Result<(), ZkError> {
    let bounds = Bounds::new(min, max, bits)?;
    if proof.len() != proof_len(bits) {
        return Err(ZkError::Malformed("proof length for this bit width"));
    }
    let c = commitment.point()?;
    let parsed = RangeProof::from_bytes(proof).map_err(|_| ZkError::Malformed("proof encoding"))?;
    let mut t = transcript(commitment, &bounds);
    let mut rng = verify_rng(commitment, &bounds, proof);
    parsed
        .verify_multiple_with_rng(
            bulletproof_gens(),
            &pedersen_gens(),
            &mut t,
            &derived_commitments(&c, &bounds),
            usize::from(bits),
            &mut rng,
        )
        .map_err(|e| match e {
            ProofError::FormatError => ZkError::Malformed("proof encoding"),
            _ => ZkError::VerificationFailed,
        })
}

#[cfg(test)]
mod tests;

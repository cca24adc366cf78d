//! C2SP tlog-proof (c2sp.org/tlog-proof): an offline-verifiable proof that a
//! leaf is in a log, made of an index, an RFC 9162 inclusion proof and a
//! signed (and optionally cosigned) checkpoint.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! [extra <base64>]
//! index <decimal>
//! <base64 hash>*
//!
//! <checkpoint note, verbatim>
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{Checkpoint, CheckpointError, parse_decimal_u64, parse_hash_b64};
use crate::merkle::{self, Hash, MAX_PROOF_HASHES, MerkleError};
use crate::note::{self, NoteLimits, VerifierKey};

/// First line of every tlog proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";
/// Largest `extra` payload accepted, decoded.
pub const MAX_EXTRA_BYTES: usize = 4 * 1024;

/// Errors of tlog-proof parsing and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    #[error("tlog proof is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed tlog proof: {0}")]
    Malformed(&'static str),
    #[error("tlog proof has more than {MAX_PROOF_HASHES} proof hashes")]
    TooManyHashes,
    #[error("threshold {threshold} is not between 1 and the {keys} given keys")]
    InvalidThreshold { threshold: usize, keys: usize },
    #[error("checkpoint has {valid} valid signatures from the given keys, {threshold} required")]
    BelowThreshold { valid: usize, threshold: usize },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("inclusion proof does not verify: {0}")]
    Inclusion(#[from] MerkleError),
}

impl From<note::NoteError> for TlogProofError {
    fn from(e: note::NoteError) -> Self {
        Self::Checkpoint(CheckpointError::Note(e))
    }
}

/// A parsed tlog proof. The checkpoint stays the verbatim signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Unauthenticated application data; never trust it implicitly.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    /// Inclusion proof, leaf's sibling first.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint_note: String,
}

/// Splits one `\n`-terminated line off `s`.
fn next_line(s: &str) -> Result<(&str, &str), TlogProofError> {
    s.split_once('\n').ok_or(TlogProofError::Malformed("unterminated line"))
}

impl TlogProof {
    /// Parses a tlog proof; the embedded note is bounded by `limits`.
    pub fn parse(text: &str, limits: &NoteLimits) -> Result<Self, TlogProofError> {
        let max = limits.note_bytes_max + MAX_EXTRA_BYTES * 2 + (MAX_PROOF_HASHES + 4) * 64;
        if text.len() > max {
            return Err(TlogProofError::TooLarge { len: text.len(), max });
        }
        let (header, mut rest) = next_line(text)?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::Malformed("first line must be c2sp.org/tlog-proof@v1"));
        }
        let (mut line, mut after) = next_line(rest)?;
        let mut extra = None;
        if let Some(b64) = line.strip_prefix("extra ") {
            let bytes = BASE64
                .decode(b64)
                .map_err(|_| TlogProofError::Malformed("extra is not base64"))?;
            if bytes.len() > MAX_EXTRA_BYTES {
                return Err(TlogProofError::Malformed("extra data is too large"));
            }
            extra = Some(bytes);
            (line, after) = next_line(after)?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal_u64)
            .ok_or(TlogProofError::Malformed("expected 'index <decimal>'"))?;
        rest = after;
        let mut hashes = Vec::new();
        loop {
            let (line, after) = next_line(rest)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if hashes.len() == MAX_PROOF_HASHES {
                return Err(TlogProofError::TooManyHashes);
            }
            hashes.push(parse_hash_b64(line).ok_or(TlogProofError::Malformed("proof line is not a base64 hash"))?);
        }
        Ok(Self {
            extra,
            index,
            hashes,
            checkpoint_note: rest.to_string(),
        })
    }

    /// The text form.
    pub fn format(&self) -> String {
        let mut out = String::from(TLOG_PROOF_HEADER);
        out.push('\n');
        if let Some(extra) = &self.extra {
            out.push_str("extra ");
            out.push_str(&BASE64.encode(extra));
            out.push('\n');
        }
        out.push_str("index ");
        out.push_str(&self.index.to_string());
        out.push('\n');
        for h in &self.hashes {
            out.push_str(&BASE64.encode(h));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint_note);
        out
    }

    /// Verifies the proof for `leaf_hash`: the checkpoint's origin is
    /// `expected_origin`, at least `threshold` distinct keys of `verifiers`
    /// signed it (Ed25519 or cosignature/v1; a known key with a bad signature
    /// rejects it), and the inclusion proof binds the leaf to its root.
    pub fn verify(
        &self,
        leaf_hash: &Hash,
        expected_origin: &str,
        verifiers: &[VerifierKey],
        threshold: usize,
        limits: &NoteLimits,
    ) -> Result<Checkpoint, TlogProofError> {
        if threshold == 0 || threshold > verifiers.len() {
            return Err(TlogProofError::InvalidThreshold {
                threshold,
                keys: verifiers.len(),
            });
        }
        let signed =
            crate::checkpoint::open_checkpoint(self.checkpoint_note.as_bytes(), expected_origin, verifiers, limits)?;
        let valid = signed.note.verified.len();
        if valid < threshold {
            return Err(TlogProofError::BelowThreshold { valid, threshold });
        }
        let cp = signed.checkpoint;
        merkle::verify_inclusion(leaf_hash, self.index, cp.size, &self.hashes, &cp.root)?;
        Ok(cp)
    }
}

//! C2SP tlog-checkpoint note bodies (c2sp.org/tlog-checkpoint):
//! `<origin>\n<decimal size>\n<base64 root>\n[<extension line>\n]*`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::merkle::Hash;
use crate::note::{self, NoteError, NoteLimits, OpenedNote, VerifierKey};

/// Largest checkpoint body accepted.
pub const MAX_CHECKPOINT_BYTES: usize = 16 * 1024;
/// Most extension lines accepted.
pub const MAX_EXTENSION_LINES: usize = 16;

/// Errors of checkpoint parsing and opening.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("checkpoint is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("checkpoint must end with a newline")]
    MissingFinalNewline,
    #[error("checkpoint needs origin, size and root lines")]
    TooFewLines,
    #[error("checkpoint origin line is empty")]
    EmptyOrigin,
    #[error("checkpoint line has a control character")]
    ControlCharacter,
    #[error("tree size {0:?} is not a decimal u64 without leading zeros")]
    InvalidSize(String),
    #[error("root hash {0:?} is not the canonical base64 of 32 bytes")]
    InvalidRoot(String),
    #[error("extension lines must be non-empty")]
    EmptyExtensionLine,
    #[error("more than {max} extension lines")]
    TooManyExtensionLines { max: usize },
    #[error("checkpoint origin {actual:?} is not the expected {expected:?}")]
    WrongOrigin { expected: String, actual: String },
    #[error(transparent)]
    Note(#[from] NoteError),
}

/// A checkpoint body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Log identity; non-empty.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 9162 root hash at `size`.
    pub root: Hash,
    /// Opaque non-empty extension lines, without newlines.
    pub extensions: Vec<String>,
}

/// Parses a decimal `u64` with no sign and no leading zeros (except `0` itself).
pub(crate) fn parse_decimal_u64(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return None;
    }
    s.parse().ok()
}

/// Decodes canonical standard base64 of exactly 32 bytes.
pub(crate) fn parse_hash_b64(s: &str) -> Option<Hash> {
    let bytes = BASE64.decode(s).ok()?;
    let hash: Hash = bytes.try_into().ok()?;
    (BASE64.encode(hash) == s).then_some(hash)
}

impl Checkpoint {
    /// Parses a checkpoint body (a note text, final newline included).
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        if text.len() > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::TooLarge {
                len: text.len(),
                max: MAX_CHECKPOINT_BYTES,
            });
        }
        let body = text.strip_suffix('\n').ok_or(CheckpointError::MissingFinalNewline)?;
        if body.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(CheckpointError::ControlCharacter);
        }
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::TooFewLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        let size = parse_decimal_u64(size).ok_or_else(|| CheckpointError::InvalidSize(size.to_string()))?;
        let root = parse_hash_b64(root).ok_or_else(|| CheckpointError::InvalidRoot(root.to_string()))?;
        let mut extensions = Vec::new();
        for line in lines {
            if line.is_empty() {
                return Err(CheckpointError::EmptyExtensionLine);
            }
            if extensions.len() == MAX_EXTENSION_LINES {
                return Err(CheckpointError::TooManyExtensionLines {
                    max: MAX_EXTENSION_LINES,
                });
            }
            extensions.push(line.to_string());
        }
        Ok(Self {
            origin: origin.to_string(),
            size,
            root,
            extensions,
        })
    }

    /// The body text, final newline included. Fails on fields that would not parse back.
    pub fn to_text(&self) -> Result<String, CheckpointError> {
        let mut out = String::new();
        out.push_str(&self.origin);
        out.push('\n');
        out.push_str(&self.size.to_string());
        out.push('\n');
        out.push_str(&BASE64.encode(self.root));
        out.push('\n');
        for ext in &self.extensions {
            out.push_str(ext);
            out.push('\n');
        }
        let parsed = Self::parse(&out)?;
        if parsed != *self {
            // Only an origin or extension containing a newline gets here.
            return Err(CheckpointError::ControlCharacter);
        }
        Ok(out)
    }
}

/// A checkpoint whose note verified under some known keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub note: OpenedNote,
}

/// Opens a signed checkpoint note: verifies signatures from `known` keys (see
/// [`note::open`]), parses the body and checks the origin.
pub fn open_checkpoint(
    msg: &[u8],
    expected_origin: &str,
    known: &[VerifierKey],
    limits: &NoteLimits,
) -> Result<SignedCheckpoint, CheckpointError> {
    let note = note::open(msg, known, limits)?;
    let checkpoint = Checkpoint::parse(&note.text)?;
    if checkpoint.origin != expected_origin {
        return Err(CheckpointError::WrongOrigin {
            expected: expected_origin.to_string(),
            actual: checkpoint.origin,
        });
    }
    Ok(SignedCheckpoint { checkpoint, note })
}

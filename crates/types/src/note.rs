//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures (type
//! 0x01) and Ed25519 checkpoint cosignatures (c2sp.org/tlog-cosignature v1,
//! type 0x04); key strings compatible with Go's `golang.org/x/mod/sumdb/note`.
//!
//! A note is `text` (ending in a newline), a blank line, then signature lines
//! `— <name> <base64(key ID ‖ signature)>`. Opening a note verifies the lines
//! from known keys (same name *and* key ID), ignores the others, and rejects
//! the note if a known key's signature fails to verify.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type byte of plain Ed25519 note signatures.
pub const SIG_TYPE_ED25519: u8 = 0x01;
/// Signature type byte of timestamped Ed25519 cosignatures (tlog-cosignature v1).
pub const SIG_TYPE_COSIGNATURE_V1: u8 = 0x04;
/// The em dash and space that start every signature line.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";
/// Header line of the cosignature/v1 signed message (domain separation).
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";
/// Prefix of signer key strings.
pub const SIGNER_KEY_PREFIX: &str = "PRIVATE+KEY+";
/// Largest cosignature timestamp the spec allows (2^63 − 1).
pub const MAX_COSIGNATURE_TIMESTAMP: u64 = i64::MAX as u64;

const ED25519_SIGNATURE_BYTES: usize = 64;
const KEY_ID_BYTES: usize = 4;
const TIMESTAMP_BYTES: usize = 8;

/// Limits applied while parsing a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteLimits {
    /// Largest accepted note, text and signature lines together.
    pub note_bytes_max: usize,
    /// Most signature lines accepted (the spec requires accepting at least 16).
    pub signatures_max: usize,
}

impl Default for NoteLimits {
    fn default() -> Self {
        // 100 lines as in Go's note package; room for post-quantum lines we ignore.
        Self {
            note_bytes_max: 1 << 20,
            signatures_max: 100,
        }
    }
}

/// Errors of note parsing, key parsing, signing and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    #[error("note is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("note has more than {max} signature lines")]
    TooManySignatures { max: usize },
    #[error("malformed note: {0}")]
    Malformed(&'static str),
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    #[error("unsupported signature type 0x{0:02x}")]
    UnsupportedType(u8),
    #[error("key ID {actual:08x} does not match the key (expected {expected:08x})")]
    KeyIdMismatch { expected: u32, actual: u32 },
    #[error("invalid key name {0:?}: must be non-empty, without spaces or '+'")]
    InvalidName(String),
    #[error("invalid signature from known key {name}+{key_id:08x}")]
    InvalidSignature { name: String, key_id: u32 },
    #[error("more than one configured key is {name}+{key_id:08x}")]
    AmbiguousKey { name: String, key_id: u32 },
    #[error("note has no valid signature from a known key")]
    NoKnownSignature,
    #[error("cosignature timestamp {0} exceeds 2^63-1")]
    TimestampOutOfRange(u64),
    #[error("signer of type 0x{0:02x} cannot produce this kind of signature")]
    WrongSignerType(u8),
}

/// Whether `name` is a valid key name: non-empty, no Unicode whitespace, no '+'.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
}

/// Key ID: the first four bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ type ‖ public key).
pub fn key_id(name: &str, sig_type: u8, public_key: &[u8]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', sig_type])
        .chain_update(public_key)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The message an Ed25519 cosignature/v1 signs over a checkpoint note text.
pub fn cosignature_v1_message(text: &str, timestamp: u64) -> String {
    format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{text}")
}

fn check_type(sig_type: u8) -> Result<(), NoteError> {
    match sig_type {
        SIG_TYPE_ED25519 | SIG_TYPE_COSIGNATURE_V1 => Ok(()),
        other => Err(NoteError::UnsupportedType(other)),
    }
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidName(name.to_string()))
    }
}

/// Splits `<hex key ID>+<base64(type ‖ key)>` into the ID and the decoded key material.
fn parse_id_and_material(rest: &str) -> Result<(u32, Vec<u8>), NoteError> {
    let (id_hex, material_b64) = rest.split_once('+').ok_or(NoteError::MalformedKey("missing '+'"))?;
    if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NoteError::MalformedKey("key ID must be 8 hex digits"));
    }
    let id = u32::from_str_radix(id_hex, 16).map_err(|_| NoteError::MalformedKey("key ID must be 8 hex digits"))?;
    let material = BASE64
        .decode(material_b64)
        .map_err(|_| NoteError::MalformedKey("key material is not standard base64"))?;
    Ok((id, material))
}

/// Splits `type ‖ 32-byte key` material.
fn split_material(material: &[u8]) -> Result<(u8, [u8; 32]), NoteError> {
    let (&sig_type, key) = material
        .split_first()
        .ok_or(NoteError::MalformedKey("empty key material"))?;
    check_type(sig_type)?;
    let key = key
        .try_into()
        .map_err(|_| NoteError::MalformedKey("Ed25519 key must be 32 bytes"))?;
    Ok((sig_type, key))
}

/// A verifier key: name, key ID, signature type and Ed25519 public key.
/// Text form (`Display`/[`VerifierKey::parse`]): `name+hexkeyid+base64(type ‖ pubkey)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: u32,
    sig_type: u8,
    public_key: VerifyingKey,
}

impl VerifierKey {
    /// A verifier key for `public_key` of type [`SIG_TYPE_ED25519`] or [`SIG_TYPE_COSIGNATURE_V1`].
    pub fn new(name: &str, sig_type: u8, public_key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        check_type(sig_type)?;
        let key_id = key_id(name, sig_type, public_key.as_bytes());
        Ok(Self {
            name: name.to_string(),
            key_id,
            sig_type,
            public_key,
        })
    }

    /// Parses `name+hexkeyid+base64(type ‖ pubkey)`, checking the key ID.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let (name, rest) = vkey
            .split_once('+')
            .ok_or(NoteError::MalformedKey("expected name+id+key"))?;
        check_name(name)?;
        let (id, material) = parse_id_and_material(rest)?;
        let expected = key_id(name, *material.first().unwrap_or(&0), material.get(1..).unwrap_or(&[]));
        let (sig_type, key) = split_material(&material)?;
        if id != expected {
            return Err(NoteError::KeyIdMismatch { expected, actual: id });
        }
        let public_key =
            VerifyingKey::from_bytes(&key).map_err(|_| NoteError::MalformedKey("invalid Ed25519 public key"))?;
        Ok(Self {
            name: name.to_string(),
            key_id: id,
            sig_type,
            public_key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    pub fn sig_type(&self) -> u8 {
        self.sig_type
    }

    pub fn public_key(&self) -> &VerifyingKey {
        &self.public_key
    }

    /// Verifies `sig` (the bytes after the key ID) over note `text`. Returns
    /// the cosignature timestamp for type 0x04, `None` for type 0x01.
    pub fn verify(&self, text: &str, sig: &[u8]) -> Result<Option<u64>, NoteError> {
        let invalid = || NoteError::InvalidSignature {
            name: self.name.clone(),
            key_id: self.key_id,
        };
        let (message, timestamp, sig) = match self.sig_type {
            SIG_TYPE_COSIGNATURE_V1 => {
                let (ts, sig) = sig.split_first_chunk::<TIMESTAMP_BYTES>().ok_or_else(invalid)?;
                let ts = u64::from_be_bytes(*ts);
                if ts > MAX_COSIGNATURE_TIMESTAMP {
                    return Err(invalid());
                }
                (cosignature_v1_message(text, ts).into_bytes(), Some(ts), sig)
            }
            _ => (text.as_bytes().to_vec(), None, sig),
        };
        let sig: [u8; ED25519_SIGNATURE_BYTES] = sig.try_into().map_err(|_| invalid())?;
        self.public_key
            .verify_strict(&message, &Signature::from_bytes(&sig))
            .map_err(|_| invalid())?;
        Ok(timestamp)
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = Vec::with_capacity(33);
        material.push(self.sig_type);
        material.extend_from_slice(self.public_key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.key_id, BASE64.encode(material))
    }
}

/// A signer key: name, signature type and Ed25519 seed.
/// Text form: `PRIVATE+KEY+name+hexkeyid+base64(type ‖ seed)` (the key ID is of the public key).
#[derive(Clone)]
pub struct SignerKey {
    verifier: VerifierKey,
    signing_key: SigningKey,
}

impl fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignerKey")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl SignerKey {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, sig_type: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        let signing_key = SigningKey::from_bytes(seed);
        let verifier = VerifierKey::new(name, sig_type, signing_key.verifying_key())?;
        Ok(Self { verifier, signing_key })
    }

    /// Parses `PRIVATE+KEY+name+hexkeyid+base64(type ‖ seed)`, checking the key ID against the derived public key.
    pub fn parse(skey: &str) -> Result<Self, NoteError> {
        let rest = skey
            .strip_prefix(SIGNER_KEY_PREFIX)
            .ok_or(NoteError::MalformedKey("signer key must start with PRIVATE+KEY+"))?;
        let (name, rest) = rest
            .split_once('+')
            .ok_or(NoteError::MalformedKey("expected name+id+key"))?;
        let (id, material) = parse_id_and_material(rest)?;
        let (sig_type, seed) = split_material(&material)?;
        let signer = Self::from_seed(name, sig_type, &seed)?;
        if signer.verifier.key_id != id {
            return Err(NoteError::KeyIdMismatch {
                expected: signer.verifier.key_id,
                actual: id,
            });
        }
        Ok(signer)
    }

    /// The matching verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.verifier
    }

    /// The signer key string. It is secret: handle it like the key itself.
    pub fn to_secret_string(&self) -> String {
        let mut material = Vec::with_capacity(33);
        material.push(self.verifier.sig_type);
        material.extend_from_slice(self.signing_key.as_bytes());
        let v = &self.verifier;
        format!(
            "{SIGNER_KEY_PREFIX}{}+{:08x}+{}",
            v.name,
            v.key_id,
            BASE64.encode(material)
        )
    }

    /// A type 0x01 signature over note `text`.
    pub fn sign(&self, text: &str) -> Result<NoteSignature, NoteError> {
        if self.verifier.sig_type != SIG_TYPE_ED25519 {
            return Err(NoteError::WrongSignerType(self.verifier.sig_type));
        }
        let sig = self.signing_key.sign(text.as_bytes()).to_bytes().to_vec();
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.key_id,
            sig,
        })
    }

    /// A type 0x04 cosignature/v1 over checkpoint note `text` at `timestamp` (POSIX seconds).
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        if self.verifier.sig_type != SIG_TYPE_COSIGNATURE_V1 {
            return Err(NoteError::WrongSignerType(self.verifier.sig_type));
        }
        if timestamp > MAX_COSIGNATURE_TIMESTAMP {
            return Err(NoteError::TimestampOutOfRange(timestamp));
        }
        let message = cosignature_v1_message(text, timestamp);
        let mut sig = timestamp.to_be_bytes().to_vec();
        sig.extend_from_slice(&self.signing_key.sign(message.as_bytes()).to_bytes());
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.key_id,
            sig,
        })
    }
}

/// One signature line: key name, key ID and the signature bytes after the ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub key_id: u32,
    pub sig: Vec<u8>,
}

impl NoteSignature {
    /// Parses one line without its newline: `— <name> <base64(keyid ‖ sig)>`.
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let rest = line.strip_prefix(SIGNATURE_LINE_PREFIX).ok_or(NoteError::Malformed(
            "signature line must start with an em dash and a space",
        ))?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or(NoteError::Malformed("signature line lacks a space"))?;
        if !is_valid_name(name) {
            return Err(NoteError::Malformed("invalid key name in signature line"));
        }
        let raw = BASE64
            .decode(b64)
            .map_err(|_| NoteError::Malformed("signature is not standard base64"))?;
        if raw.len() <= KEY_ID_BYTES {
            return Err(NoteError::Malformed("signature is too short"));
        }
        let (id, sig) = raw.split_at(KEY_ID_BYTES);
        let key_id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        Ok(Self {
            name: name.to_string(),
            key_id,
            sig: sig.to_vec(),
        })
    }

    /// Cosignature timestamp if this line has the cosignature/v1 shape (8 + 64 bytes).
    pub fn cosignature_timestamp(&self) -> Option<u64> {
        if self.sig.len() != TIMESTAMP_BYTES + ED25519_SIGNATURE_BYTES {
            return None;
        }
        let (ts, _) = self.sig.split_first_chunk::<TIMESTAMP_BYTES>()?;
        Some(u64::from_be_bytes(*ts))
    }
}

impl fmt::Display for NoteSignature {
    /// The line without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut raw = Vec::with_capacity(KEY_ID_BYTES + self.sig.len());
        raw.extend_from_slice(&self.key_id.to_be_bytes());
        raw.extend_from_slice(&self.sig);
        write!(f, "{SIGNATURE_LINE_PREFIX}{} {}", self.name, BASE64.encode(raw))
    }
}

/// A parsed (not yet verified) note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, including its final newline.
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Parses the note structure within `limits` (no signature is verified).
    pub fn parse(msg: &[u8], limits: &NoteLimits) -> Result<Self, NoteError> {
        if msg.len() > limits.note_bytes_max {
            return Err(NoteError::TooLarge {
                len: msg.len(),
                max: limits.note_bytes_max,
            });
        }
        let msg = core::str::from_utf8(msg).map_err(|_| NoteError::Malformed("not UTF-8"))?;
        if msg.bytes().any(|b| b < 0x20 && b != b'\n') {
            return Err(NoteError::Malformed("control character other than newline"));
        }
        let split = msg
            .rfind("\n\n")
            .ok_or(NoteError::Malformed("no blank line before signatures"))?;
        let (text, sigs) = (&msg[..=split], &msg[split + 2..]);
        if sigs.is_empty() || !sigs.ends_with('\n') {
            return Err(NoteError::Malformed(
                "signature block must be non-empty and end with a newline",
            ));
        }
        let mut signatures = Vec::new();
        for line in sigs[..sigs.len() - 1].split('\n') {
            if signatures.len() == limits.signatures_max {
                return Err(NoteError::TooManySignatures {
                    max: limits.signatures_max,
                });
            }
            signatures.push(NoteSignature::parse_line(line)?);
        }
        Ok(Self {
            text: text.to_string(),
            signatures,
        })
    }

    /// The encoded note: text, blank line, one line per signature.
    pub fn encode(&self) -> Result<String, NoteError> {
        if !self.text.ends_with('\n') {
            return Err(NoteError::Malformed("text must end with a newline"));
        }
        if self.signatures.is_empty() {
            return Err(NoteError::Malformed("a note needs at least one signature"));
        }
        let mut out = self.text.clone();
        out.push('\n');
        for sig in &self.signatures {
            if !is_valid_name(&sig.name) {
                return Err(NoteError::InvalidName(sig.name.clone()));
            }
            out.push_str(&sig.to_string());
            out.push('\n');
        }
        Ok(out)
    }
}

/// Signs `text` with each signer (type 0x01 signs, type 0x04 cosigns at
/// `timestamp`) and returns the encoded note.
pub fn sign_note(text: &str, signers: &[&SignerKey], timestamp: u64) -> Result<String, NoteError> {
    let mut signatures = Vec::with_capacity(signers.len());
    for signer in signers {
        signatures.push(match signer.verifier.sig_type {
            SIG_TYPE_COSIGNATURE_V1 => signer.cosign(text, timestamp)?,
            _ => signer.sign(text)?,
        });
    }
    Note {
        text: text.to_string(),
        signatures,
    }
    .encode()
}

/// A signature that verified under a known key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub name: String,
    pub key_id: u32,
    pub sig_type: u8,
    /// Cosignature timestamp (type 0x04), `None` for type 0x01.
    pub timestamp: Option<u64>,
}

/// An opened note: its text, the distinct known keys whose signatures
/// verified, and how many lines came from unknown keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    pub text: String,
    pub verified: Vec<VerifiedSignature>,
    pub unknown_signatures: usize,
}

/// Parses `msg` and verifies its signatures against `known` keys.
///
/// Lines whose (name, key ID) match no known key are ignored (counted in
/// `unknown_signatures`); a line from a known key that fails to verify
/// rejects the note; repeated lines from one key count once. At least one
/// known key must have signed ([`NoteError::NoKnownSignature`]).
pub fn open(msg: &[u8], known: &[VerifierKey], limits: &NoteLimits) -> Result<OpenedNote, NoteError> {
    let note = Note::parse(msg, limits)?;
    let mut opened = OpenedNote {
        text: note.text,
        verified: Vec::new(),
        unknown_signatures: 0,
    };
    for sig in &note.signatures {
        let mut matching = known.iter().filter(|k| k.name == sig.name && k.key_id == sig.key_id);
        let Some(key) = matching.next() else {
            opened.unknown_signatures += 1;
            continue;
        };
        if matching.any(|other| other != key) {
            return Err(NoteError::AmbiguousKey {
                name: sig.name.clone(),
                key_id: sig.key_id,
            });
        }
        if opened
            .verified
            .iter()
            .any(|v| v.name == sig.name && v.key_id == sig.key_id)
        {
            continue;
        }
        let timestamp = key.verify(&opened.text, &sig.sig)?;
        opened.verified.push(VerifiedSignature {
            name: key.name.clone(),
            key_id: key.key_id,
            sig_type: key.sig_type,
            timestamp,
        });
    }
    if opened.verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok(opened)
}

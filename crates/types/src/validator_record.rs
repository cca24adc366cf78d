//! The validator records of the state (`validator/<name>` → [`ValidatorRecord`],
//! `index/validators` → [`NameList`]) and their canonical encodings. They live here rather than
//! in `state` so a device can decode a proven validator set (`no_std`) with the same code the
//! state machine writes it with.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list};
use crate::keys::PublicKey;

/// State key of the list of validator names.
pub const KEY_VALIDATOR_INDEX: &[u8] = b"index/validators";

/// Most cosigning keys one validator record holds (rotations append one each).
pub const MAX_VALIDATOR_NOTE_KEYS: usize = 1024;

/// State key of validator `name`'s record.
pub fn validator_key(name: &str) -> Vec<u8> {
    [b"validator/".as_slice(), name.as_bytes()].concat()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorRecord {
    pub name: String,
    pub org: String,
    pub index: u32,
    pub consensus_key: [u8; 32],
    /// Checkpoint-cosigning keys with the height each takes effect at, oldest first.
    pub note_keys: Vec<(PublicKey, u64)>,
}

impl ValidatorRecord {
    /// The cosigning key in force at `height`.
    pub fn note_key_at(&self, height: u64) -> Option<&PublicKey> {
        self.note_keys
            .iter()
            .rev()
            .find(|(_, from)| *from <= height)
            .map(|(k, _)| k)
    }
}

struct NoteKey((PublicKey, u64));
impl Encode for NoteKey {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        self.0.0.encode(e);
        e.uint(self.0.1);
    }
}
impl Decode for NoteKey {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let v = NoteKey((PublicKey::decode(d)?, d.uint()?));
        d.end();
        Ok(v)
    }
}

impl Encode for ValidatorRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(5)
            .text(&self.name)
            .text(&self.org)
            .uint(self.index as u64)
            .bytes(&self.consensus_key);
        e.array(self.note_keys.len());
        for nk in &self.note_keys {
            NoteKey(*nk).encode(e);
        }
    }
}
impl Decode for ValidatorRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let (name, org, index, consensus_key) = (d.string()?, d.string()?, d.u32()?, d.fixed()?);
        let note_keys = decode_list::<NoteKey>(d, MAX_VALIDATOR_NOTE_KEYS)?
            .into_iter()
            .map(|n| n.0)
            .collect();
        d.end();
        Ok(ValidatorRecord {
            name,
            org,
            index,
            consensus_key,
            note_keys,
        })
    }
}

/// Decode an array of text strings.
pub fn decode_names(d: &mut Decoder<'_>) -> Result<Vec<String>, DecodeError> {
    let n = d.array()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(d.string()?);
    }
    d.end();
    Ok(out)
}

/// A list of names (the org and validator indexes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameList(pub Vec<String>);
impl Encode for NameList {
    fn encode(&self, e: &mut Encoder) {
        e.array(self.0.len());
        for n in &self.0 {
            e.text(n);
        }
    }
}
impl Decode for NameList {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        decode_names(d).map(NameList)
    }
}

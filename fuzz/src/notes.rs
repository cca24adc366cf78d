//! C2SP signed notes, checkpoints and tlog-proofs: what devices, auditors and the CLI read from
//! the network (update bundles, command proofs, `GET /v1/checkpoint`, `/v1/proof/tlog`).

use chipledger_types::checkpoint::{Checkpoint, open_checkpoint};
use chipledger_types::merkle::hash_leaf;
use chipledger_types::note::{self, Note, NoteLimits, NoteSignature, VerifierKey};
use chipledger_types::state_proof::state_extension;
use chipledger_types::tlog_proof::TlogProof;

use crate::fixture::{self, ORIGIN};

/// The leaf the tlog-proof seeds prove (and the target checks them for).
pub const TLOG_LEAF: &[u8] = b"fuzz tlog leaf";
/// Cosignatures a checkpoint needs in the targets (3 of the 4 fixture validators).
pub const QUORUM: usize = 3;

/// A note, its signatures, its checkpoint body: parsing, opening under the validators' keys,
/// and never under keys that signed nothing.
pub fn note(data: &[u8]) {
    let limits = NoteLimits::default();
    if let Ok(parsed) = Note::parse(data, &limits) {
        let text = parsed.encode().expect("a parsed note encodes");
        assert_eq!(
            Note::parse(text.as_bytes(), &limits).as_ref(),
            Ok(&parsed),
            "note round trip"
        );
        for sig in &parsed.signatures {
            let line = sig.to_string();
            assert_eq!(
                NoteSignature::parse_line(&line).as_ref(),
                Ok(sig),
                "signature line round trip"
            );
        }
        checkpoint_text(&parsed.text);
    }
    let known = fixture::validator_keys();
    if let Ok(opened) = note::open(data, &known, &limits) {
        assert!(!opened.verified.is_empty(), "an opened note has a verified signature");
    }
    let _ = open_checkpoint(data, ORIGIN, &known, &limits);
    assert!(
        note::open(data, &unused_verifiers(), &limits).is_err(),
        "a note opened under unused keys"
    );
    if let Ok(text) = std::str::from_utf8(data) {
        checkpoint_text(text);
        let _ = VerifierKey::parse(text.trim_end());
    }
}

/// A checkpoint body: parse → text → parse, and its state extension line.
fn checkpoint_text(text: &str) {
    let Ok(cp) = Checkpoint::parse(text) else { return };
    let again = cp.to_text().expect("a parsed checkpoint formats");
    assert_eq!(Checkpoint::parse(&again).as_ref(), Ok(&cp), "checkpoint round trip");
    let _ = state_extension(&cp);
}

/// Verifier keys with the validators' names and unused key material.
fn unused_verifiers() -> Vec<VerifierKey> {
    (0..4)
        .map(|i| {
            let seed = [0xe0 + i as u8; 32];
            let signer = note::SignerKey::from_seed(&format!("v{i}"), note::SIG_TYPE_ED25519, &seed).expect("name");
            signer.verifier().clone()
        })
        .collect()
}

/// `c2sp.org/tlog-proof@v1` text: parse → format → parse, and verification for [`TLOG_LEAF`]
/// under a quorum of the validators.
pub fn tlog_proof(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let limits = NoteLimits::default();
    let Ok(proof) = TlogProof::parse(text, &limits) else {
        return;
    };
    let formatted = proof.format();
    assert_eq!(
        TlogProof::parse(&formatted, &limits).as_ref(),
        Ok(&proof),
        "tlog-proof round trip"
    );
    let known = fixture::validator_keys();
    let leaf = hash_leaf(TLOG_LEAF);
    if let Ok(cp) = proof.verify(&leaf, ORIGIN, &known, QUORUM, &limits) {
        assert!(proof.index < cp.size, "a verified proof's index is inside the log");
    }
    let other = hash_leaf(b"a leaf nobody logged");
    assert!(
        proof.verify(&other, ORIGIN, &known, QUORUM, &limits).is_err(),
        "an unlogged leaf verified"
    );
}

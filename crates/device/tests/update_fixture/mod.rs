//! Shared fixture of the update-verifier tests: a publisher key, four validators, a SUIT
//! envelope from `build_envelope`, and a state holding the release, approval and validator
//! records in the `state` crate's sparse Merkle tree.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chipledger_device::suit::{ReleaseSpec, build_envelope, class_id_for_model, vendor_id_for_org};
use chipledger_device::update::{ImageDigest, ImageHasher, TrustedValidator, UpdateBundle, UpdateTrust};
use chipledger_state::smt::Smt;
use chipledger_types::cbor::Encode;
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::firmware_tx::{
    ApprovalRecord, COSE_ALG_SHA256, FirmwareKeyId, ReleaseId, ReleaseRecord, approval_key, release_key,
};
use chipledger_types::keys::PublicKey;
use chipledger_types::note::{SIG_TYPE_ED25519, SignerKey, sign_note};
use chipledger_types::state_proof::{ProvenRecord, key_hash, state_extension_line, value_hash};
use chipledger_types::tx::TxHash;
use chipledger_types::validator_record::{KEY_VALIDATOR_INDEX, NameList, ValidatorRecord, validator_key};
use p256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};

pub const ORIGIN: &str = "chipledger/test-net";
pub const MODEL: u32 = 0x0001_0203;
pub const OWNER: &str = "city";
pub const PUBLISHER: &str = "vendor";
pub const SECURITY_VERSION: u64 = 7;
pub const CHECKPOINT_HEIGHT: u64 = 120;
pub const IMAGE: &[u8] = b"firmware image 2.1.0 for model 0x00010203, padded to look like an image....";

pub fn p256_key(seed: u8) -> SigningKey {
    let scalar: [u8; 32] = Sha256::digest([b'p', seed]).into();
    SigningKey::from_slice(&scalar).expect("a SHA-256 output is a valid P-256 scalar")
}

pub fn validator(i: usize) -> SignerKey {
    let seed: [u8; 32] = Sha256::digest([b'v', i as u8]).into();
    SignerKey::from_seed(&format!("v{i}"), SIG_TYPE_ED25519, &seed).expect("valid name")
}

/// Validator v3's rotated cosigning key.
pub fn rotated_v3() -> SignerKey {
    let seed: [u8; 32] = Sha256::digest(b"v3 rotated").into();
    SignerKey::from_seed("v3", SIG_TYPE_ED25519, &seed).expect("valid name")
}

pub fn envelope(sequence_number: u64, image: &[u8], signer: &SigningKey) -> Vec<u8> {
    build_envelope(
        &ReleaseSpec {
            sequence_number,
            vendor_id: vendor_id_for_org(PUBLISHER),
            class_ids: vec![class_id_for_model(MODEL)],
            image_digest_sha256: Sha256::digest(image).into(),
            image_size: image.len() as u64,
            uri: Some("https://fw.example/2.1.0.bin".into()),
        },
        signer,
    )
}

pub fn release_id(envelope: &[u8], key: &SigningKey) -> ReleaseId {
    let m = chipledger_device::suit::verify_envelope(envelope, key.verifying_key()).expect("valid envelope");
    ReleaseId(m.manifest_digest.sha256().expect("SHA-256 manifest digest"))
}

pub fn release_record(id: ReleaseId) -> ReleaseRecord {
    ReleaseRecord {
        id,
        publisher: PUBLISHER.into(),
        version: "2.1.0".into(),
        security_version: SECURITY_VERSION,
        models: vec![MODEL],
        min_applicable: "1.0.0".into(),
        max_applicable: "2.0.9".into(),
        fixes: vec!["CVE-2026-1234".into()],
        image_digest_alg: COSE_ALG_SHA256,
        image_digest: Sha256::digest(IMAGE).into(),
        image_size: IMAGE.len() as u64,
        signing_key: FirmwareKeyId([7; 20]),
        published_height: 100,
        published_tx: TxHash([1; 32]),
        withdrawn: None,
    }
}

pub fn approval_record(id: ReleaseId, owner: &str) -> ApprovalRecord {
    ApprovalRecord {
        release: id,
        rollout: TxHash([2; 32]),
        owner: owner.into(),
        models: vec![MODEL],
        security_version: SECURITY_VERSION,
        image_digest: Sha256::digest(IMAGE).into(),
        approved_height: 110,
        approvers: vec!["auditor".into(), OWNER.into()],
    }
}

pub fn validator_record(i: usize, keys: &[(&SignerKey, u64)]) -> ValidatorRecord {
    ValidatorRecord {
        name: format!("v{i}"),
        org: format!("org{i}"),
        index: i as u32,
        consensus_key: [i as u8; 32],
        note_keys: keys
            .iter()
            .map(|(k, from)| (PublicKey::Ed25519(*k.verifier().public_key().as_bytes()), *from))
            .collect(),
    }
}

/// A state (key → value) with its sparse Merkle tree, as a validator holds it.
#[derive(Clone, Default)]
pub struct State {
    pub values: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl State {
    pub fn with_filler() -> Self {
        let mut s = State::default();
        for i in 0..200u32 {
            s.put(format!("org/filler-{i}").into_bytes(), i.to_be_bytes().to_vec());
        }
        s
    }
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.values.insert(key, value);
    }
    pub fn tree(&self) -> Smt {
        let mut t = Smt::default();
        for (k, v) in &self.values {
            t.update(key_hash(k), Some(value_hash(v)));
        }
        t
    }
    pub fn prove(&self, key: &[u8]) -> ProvenRecord {
        ProvenRecord {
            key: key.to_vec(),
            value: self.values.get(key).cloned(),
            proof: self.tree().prove(&key_hash(key)),
        }
    }
    /// A checkpoint for this state at `height`, cosigned by `signers`.
    pub fn checkpoint(&self, origin: &str, height: u64, signers: &[&SignerKey]) -> String {
        let text = Checkpoint {
            origin: origin.into(),
            size: 1000 + height,
            root: [9; 32],
            extensions: vec![state_extension_line(height, &self.tree().root())],
        }
        .to_text()
        .expect("valid checkpoint");
        sign_note(&text, signers, 0).expect("signed")
    }
}

/// Everything the tests vary: the publisher key, validators, envelope, state and bundle.
pub struct World {
    pub publisher: SigningKey,
    pub validators: Vec<SignerKey>,
    pub envelope: Vec<u8>,
    pub id: ReleaseId,
    pub state: State,
}

impl World {
    pub fn new() -> Self {
        let publisher = p256_key(1);
        let validators: Vec<SignerKey> = (0..4).map(validator).collect();
        let envelope = envelope(SECURITY_VERSION, IMAGE, &publisher);
        let id = release_id(&envelope, &publisher);
        let mut state = State::with_filler();
        state.put(release_key(&id), release_record(id).to_cbor());
        state.put(approval_key(&id, OWNER), approval_record(id, OWNER).to_cbor());
        let names = NameList((0..4).map(|i| format!("v{i}")).collect());
        state.put(KEY_VALIDATOR_INDEX.to_vec(), names.to_cbor());
        for (i, v) in validators.iter().enumerate() {
            state.put(
                validator_key(&format!("v{i}")),
                validator_record(i, &[(v, 0)]).to_cbor(),
            );
        }
        World {
            publisher,
            validators,
            envelope,
            id,
            state,
        }
    }

    pub fn trust(&self) -> UpdateTrust {
        UpdateTrust {
            origin: ORIGIN.into(),
            validators: self
                .validators
                .iter()
                .map(|v| TrustedValidator::new(v.verifier().clone()))
                .collect(),
            quorum: 3,
            publisher_keys: vec![*self.publisher.verifying_key()],
            model: MODEL,
            owner: OWNER.into(),
            security_version: 5,
            checkpoint_height: 100,
        }
    }

    pub fn signers(&self, n: usize) -> Vec<&SignerKey> {
        self.validators.iter().take(n).collect()
    }

    pub fn bundle(&self) -> UpdateBundle {
        UpdateBundle {
            envelope: self.envelope.clone(),
            checkpoint: self.state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &self.signers(3)),
            release: self.state.prove(&release_key(&self.id)),
            approval: self.state.prove(&approval_key(&self.id, OWNER)),
        }
    }

    /// Rebuild the bundle's proofs and checkpoint from `state`.
    pub fn bundle_from(&self, state: &State) -> UpdateBundle {
        UpdateBundle {
            envelope: self.envelope.clone(),
            checkpoint: state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &self.signers(3)),
            release: state.prove(&release_key(&self.id)),
            approval: state.prove(&approval_key(&self.id, OWNER)),
        }
    }
}

pub fn image() -> ImageDigest {
    ImageHasher::digest(IMAGE)
}

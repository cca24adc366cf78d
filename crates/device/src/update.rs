//! Verifying a firmware update before installing it (`no_std` + `alloc`).
//!
//! A device installs an image only when all of these hold; any failure is a typed
//! [`UpdateError`] and the old firmware keeps running:
//!
//! 1. the SUIT envelope's COSE_Sign1 verifies under a publisher key the device holds, and the
//!    manifest has a component for the device's model (class id [`class_id_for_model`]);
//! 2. the image (hashed by the device as it streamed in, [`ImageHasher`]) has that component's
//!    SHA-256 digest and size;
//! 3. the checkpoint note carries valid signatures of at least `quorum` (2f + 1) of the
//!    validators the device trusts, is not older than the newest checkpoint the device has
//!    seen, and its `chipledger-state` line gives the state root;
//! 4. under that root, the release record `fw/release/<manifest digest>` is proven, is not
//!    withdrawn, names the device's model and agrees with the signed manifest; and the approval
//!    record `fw/approved/<release id>/<owner>` of the device's owner is proven and names it;
//! 5. the release's security version is not below the installed one (anti-rollback).
//!
//! Validator-set changes reach a device as a [`ValidatorSetProof`]: the validator index and
//! every validator record proven under a checkpoint that the *current* set's quorum cosigned
//! ([`apply_validator_update`]). Verification never mutates [`UpdateTrust`]; the caller records
//! a completed install with [`UpdateTrust::record_install`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use chipledger_types::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits};
use chipledger_types::checkpoint::{Checkpoint, CheckpointError, open_checkpoint};
use chipledger_types::firmware_tx::{
    ApprovalRecord, COSE_ALG_SHA256, ReleaseId, ReleaseRecord, approval_key, release_key,
};
use chipledger_types::keys::PublicKey;
use chipledger_types::limits::MAX_VALIDATORS;
use chipledger_types::note::{Note, NoteError, NoteLimits, SIG_TYPE_ED25519, VerifierKey};
use chipledger_types::state_proof::{Hash, ProofError, ProvenRecord, state_extension};
use chipledger_types::validator_record::{KEY_VALIDATOR_INDEX, NameList, ValidatorRecord, validator_key};
use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};

use crate::suit::{MAX_ENVELOPE_BYTES, SuitError, SuitManifest, class_id_for_model, verify_envelope};

/// Domain-separation tag, the first element of an encoded [`UpdateBundle`].
pub const TAG_UPDATE_BUNDLE_V1: &str = "chipledger/update-bundle/v1";
/// Domain-separation tag, the first element of an encoded [`ValidatorSetProof`].
pub const TAG_VALIDATOR_SET_PROOF_V1: &str = "chipledger/validator-set-proof/v1";
/// Largest encoded update bundle: envelope, checkpoint, two records with proofs.
pub const MAX_BUNDLE_BYTES: usize = 128 * 1024;
/// Largest encoded validator-set proof: one checkpoint and up to 65 proven records.
pub const MAX_VALIDATOR_SET_PROOF_BYTES: usize = 256 * 1024;
/// Largest checkpoint note (body and signature lines) a device reads.
pub const MAX_CHECKPOINT_NOTE_BYTES: usize = 32 * 1024;
/// Most validators a device trusts at once.
pub const MAX_TRUSTED_VALIDATORS: usize = MAX_VALIDATORS;
/// Most publisher keys a device holds.
pub const MAX_PUBLISHER_KEYS: usize = 8;
/// Most cosigning keys a device keeps per validator (the one in force and scheduled ones).
pub const MAX_KEYS_PER_VALIDATOR: usize = 4;

/// Decoding bounds of bundles and validator-set proofs.
const BUNDLE_LIMITS: Limits = Limits {
    input_bytes_max: MAX_VALIDATOR_SET_PROOF_BYTES,
    string_bytes_max: MAX_ENVELOPE_BYTES,
    array_items_max: 256,
    depth_max: 4,
};
/// Decoding bounds of a proven state record's value.
const RECORD_LIMITS: Limits = Limits {
    input_bytes_max: 16 * 1024,
    string_bytes_max: 4 * 1024,
    array_items_max: 256,
    depth_max: 8,
};
/// Parsing bounds of a checkpoint note.
const NOTE_LIMITS: NoteLimits = NoteLimits {
    note_bytes_max: MAX_CHECKPOINT_NOTE_BYTES,
    signatures_max: 2 * MAX_TRUSTED_VALIDATORS,
};

/// Why an update (or a validator-set change) was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    #[error("the device's trust configuration is invalid: {0}")]
    InvalidTrust(&'static str),
    #[error("malformed {what}: {source}")]
    Malformed { what: &'static str, source: DecodeError },
    #[error("the SUIT envelope carries no signature (COSE_Sign1 authentication)")]
    UnsignedManifest,
    #[error("the SUIT manifest is not signed by any publisher key this device holds")]
    ManifestNotFromPublisher,
    #[error("the SUIT envelope is invalid: {0}")]
    Manifest(SuitError),
    #[error("the manifest has no component for this device's model {model}")]
    NotForModel { model: u32 },
    #[error("the manifest gives no SHA-256 image digest for this device's model")]
    NoImageDigest,
    #[error("image digest {actual} does not match the manifest's {expected}")]
    DigestMismatch { expected: String, actual: String },
    #[error("image is {actual} bytes; the manifest says {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("checkpoint rejected: {0}")]
    Checkpoint(CheckpointError),
    #[error("checkpoint has {valid} valid signatures of trusted validators; {quorum} required")]
    BelowQuorum { valid: usize, quorum: usize },
    #[error("checkpoint has no chipledger-state line binding a state root")]
    NoStateRoot,
    #[error("checkpoint at height {height} is older than the newest this device has seen ({last_seen})")]
    StaleCheckpoint { height: u64, last_seen: u64 },
    #[error("proof of the {record} record does not verify against the checkpoint's state root: {source}")]
    Proof { record: &'static str, source: ProofError },
    #[error("the release is not on the ledger (its record is proven absent)")]
    ReleaseNotOnLedger,
    #[error("the ledger's release record disagrees with the signed manifest: {0}")]
    ReleaseMismatch(&'static str),
    #[error("release {version} was withdrawn")]
    ReleaseWithdrawn { version: String },
    #[error("release {version} is not approved for owner {owner:?} and model {model}")]
    NotApproved { version: String, owner: String, model: u32 },
    #[error("security version {offered} is below the installed {installed} (rollback refused)")]
    Rollback { installed: u64, offered: u64 },
    #[error("validator-set proof rejected: {0}")]
    ValidatorSet(&'static str),
}

impl From<CheckpointError> for UpdateError {
    fn from(e: CheckpointError) -> Self {
        UpdateError::Checkpoint(e)
    }
}

/// One validator the device trusts: its name and cosigning keys with the heights they take
/// effect at, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedValidator {
    pub name: String,
    pub keys: Vec<(VerifierKey, u64)>,
}

impl TrustedValidator {
    /// A validator with one key, in force from height 0.
    pub fn new(key: VerifierKey) -> Self {
        Self {
            name: key.name().to_string(),
            keys: alloc::vec![(key, 0)],
        }
    }

    /// The cosigning key in force at `height`.
    pub fn key_at(&self, height: u64) -> Option<&VerifierKey> {
        self.keys.iter().rev().find(|(_, from)| *from <= height).map(|(k, _)| k)
    }
}

/// What a device trusts and knows about itself; the input of every verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateTrust {
    /// The log origin checkpoints must name.
    pub origin: String,
    pub validators: Vec<TrustedValidator>,
    /// Signatures of distinct trusted validators a checkpoint needs (2f + 1).
    pub quorum: usize,
    /// Keys SUIT manifests may be signed with (ES256).
    pub publisher_keys: Vec<VerifyingKey>,
    /// The device's hardware model number.
    pub model: u32,
    /// The organisation owning the device, whose approval an update needs.
    pub owner: String,
    /// Security version of the installed firmware.
    pub security_version: u64,
    /// Height of the newest checkpoint the device has accepted.
    pub checkpoint_height: u64,
}

/// Is a trusted validator set with this quorum usable? (1..=64 validators, 2f + 1 ≤ quorum ≤ n.)
pub(crate) fn check_validator_set(validators: &[TrustedValidator], quorum: usize) -> Result<(), &'static str> {
    let n = validators.len();
    if n == 0 || n > MAX_TRUSTED_VALIDATORS {
        return Err("between 1 and 64 validators are needed");
    }
    if quorum < quorum_for(n) || quorum > n {
        return Err("quorum must be between 2f + 1 and the number of validators");
    }
    Ok(())
}

/// What opening a checkpoint needs: the log origin, the trusted validators, the quorum and the
/// height of the newest checkpoint already seen (shared by updates and commands).
pub(crate) struct CheckpointTrust<'a> {
    pub(crate) origin: &'a str,
    pub(crate) validators: &'a [TrustedValidator],
    pub(crate) quorum: usize,
    pub(crate) last_seen_height: u64,
}

impl UpdateTrust {
    fn checkpoint_trust(&self) -> CheckpointTrust<'_> {
        CheckpointTrust {
            origin: &self.origin,
            validators: &self.validators,
            quorum: self.quorum,
            last_seen_height: self.checkpoint_height,
        }
    }

    fn check(&self) -> Result<(), UpdateError> {
        check_validator_set(&self.validators, self.quorum).map_err(UpdateError::InvalidTrust)?;
        if self.publisher_keys.is_empty() || self.publisher_keys.len() > MAX_PUBLISHER_KEYS {
            return Err(UpdateError::InvalidTrust("between 1 and 8 publisher keys are needed"));
        }
        Ok(())
    }

    /// Record an installed update: raise the security version and the newest checkpoint seen.
    pub fn record_install(&mut self, update: &VerifiedUpdate) {
        self.security_version = self.security_version.max(update.security_version);
        self.checkpoint_height = self.checkpoint_height.max(update.checkpoint_height);
    }
}

/// Quorum of a set of `n` validators: 2f + 1 with f = ⌊(n − 1) / 3⌋ (n − f for n = 3f + 1).
pub fn quorum_for(n: usize) -> usize {
    n - n.saturating_sub(1) / 3
}

/// What a device downloads with an image: the SUIT envelope, a cosigned checkpoint, and the
/// release and approval records proven against the checkpoint's state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpdateBundle {
    pub envelope: Vec<u8>,
    /// The checkpoint as a C2SP signed note (body and cosignature lines).
    pub checkpoint: String,
    pub release: ProvenRecord,
    pub approval: ProvenRecord,
}

impl UpdateBundle {
    /// `[TAG_UPDATE_BUNDLE_V1, envelope, checkpoint, release, approval]`, canonical CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(5)
            .text(TAG_UPDATE_BUNDLE_V1)
            .bytes(&self.envelope)
            .text(&self.checkpoint);
        self.release.encode(&mut e);
        self.approval.encode(&mut e);
        e.into_bytes()
    }

    /// Decode a bundle within [`MAX_BUNDLE_BYTES`] and the other bundle limits.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UpdateError> {
        let malformed = |source| UpdateError::Malformed {
            what: "update bundle",
            source,
        };
        let limits = Limits {
            input_bytes_max: MAX_BUNDLE_BYTES,
            ..BUNDLE_LIMITS
        };
        let mut d = Decoder::new(bytes, limits).map_err(malformed)?;
        let b = decode_bundle(&mut d).map_err(malformed)?;
        d.finish().map_err(malformed)?;
        Ok(b)
    }
}

fn expect_tag(d: &mut Decoder<'_>, tag: &'static str) -> Result<(), DecodeError> {
    if d.text()? != tag {
        return Err(DecodeError::Invalid {
            what: "format tag",
            why: "not the expected format",
        });
    }
    Ok(())
}

fn decode_bundle(d: &mut Decoder<'_>) -> Result<UpdateBundle, DecodeError> {
    d.array_of(5)?;
    expect_tag(d, TAG_UPDATE_BUNDLE_V1)?;
    let envelope = d.bytes()?.to_vec();
    let checkpoint = d.string()?;
    let release = ProvenRecord::decode(d)?;
    let approval = ProvenRecord::decode(d)?;
    d.end();
    Ok(UpdateBundle {
        envelope,
        checkpoint,
        release,
        approval,
    })
}

/// SHA-256 and length of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageDigest {
    pub sha256: [u8; 32],
    pub size: u64,
}

/// Hashes an image incrementally as it is written to the update slot, so the device never
/// holds the whole image in memory.
#[derive(Clone, Debug, Default)]
pub struct ImageHasher {
    sha: Sha256,
    size: u64,
}

impl ImageHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, chunk: &[u8]) {
        self.sha.update(chunk);
        self.size += chunk.len() as u64;
    }

    pub fn finish(self) -> ImageDigest {
        ImageDigest {
            sha256: self.sha.finalize().into(),
            size: self.size,
        }
    }

    /// Digest of an image held in memory.
    pub fn digest(image: &[u8]) -> ImageDigest {
        let mut h = Self::new();
        h.update(image);
        h.finish()
    }
}

/// A verified update: what the device may install, and the facts it was checked against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedUpdate {
    /// The release id: SHA-256 of the signed SUIT manifest.
    pub release_id: [u8; 32],
    pub version: String,
    pub security_version: u64,
    /// The manifest's `suit-manifest-sequence-number`.
    pub sequence_number: u64,
    pub image: ImageDigest,
    /// The checkpoint the proofs were checked under.
    pub checkpoint_height: u64,
    pub state_root: Hash,
    /// Trusted validators whose signatures on the checkpoint verified.
    pub signers: usize,
}

/// Verify everything a device must check before installing the image with digest `image`.
/// Never mutates `trust`; on success the caller installs, then calls
/// [`UpdateTrust::record_install`].
pub fn verify_update(
    bundle: &UpdateBundle,
    image: &ImageDigest,
    trust: &UpdateTrust,
) -> Result<VerifiedUpdate, UpdateError> {
    trust.check()?;
    let manifest = verify_manifest(&bundle.envelope, &trust.publisher_keys)?;
    check_image(&manifest, trust.model, image)?;
    let release_id = manifest_release_id(&manifest)?;
    let cp = open_quorum_checkpoint(&bundle.checkpoint, &trust.checkpoint_trust())?;
    let release = check_release(&bundle.release, &cp.state_root, &release_id, &manifest, image, trust)?;
    check_approval(&bundle.approval, &cp.state_root, &release_id, &release, trust)?;
    if release.security_version < trust.security_version {
        return Err(UpdateError::Rollback {
            installed: trust.security_version,
            offered: release.security_version,
        });
    }
    Ok(VerifiedUpdate {
        release_id,
        version: release.version,
        security_version: release.security_version,
        sequence_number: manifest.sequence_number,
        image: *image,
        checkpoint_height: cp.height,
        state_root: cp.state_root,
        signers: cp.signers,
    })
}

/// (a) The envelope's signature under one of the publisher keys.
fn verify_manifest(envelope: &[u8], keys: &[VerifyingKey]) -> Result<SuitManifest, UpdateError> {
    let mut refusal = UpdateError::ManifestNotFromPublisher;
    for key in keys {
        match verify_envelope(envelope, key) {
            Ok(m) => return Ok(m),
            Err(SuitError::BadSignature) => {}
            Err(SuitError::NoAuthentication) => return Err(UpdateError::UnsignedManifest),
            Err(other) => refusal = UpdateError::Manifest(other),
        }
    }
    Err(refusal)
}

/// (b) The image matches the digest and size of the component for `model`.
fn check_image(manifest: &SuitManifest, model: u32, image: &ImageDigest) -> Result<(), UpdateError> {
    let class = class_id_for_model(model);
    let params = manifest
        .components
        .iter()
        .flat_map(|c| c.alternatives.iter())
        .find(|p| p.class_id == Some(class))
        .ok_or(UpdateError::NotForModel { model })?;
    let expected = params
        .image_digest
        .as_ref()
        .and_then(|d| d.sha256())
        .ok_or(UpdateError::NoImageDigest)?;
    if expected != image.sha256 {
        return Err(UpdateError::DigestMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(image.sha256),
        });
    }
    match params.image_size {
        Some(size) if size != image.size => Err(UpdateError::SizeMismatch {
            expected: size,
            actual: image.size,
        }),
        _ => Ok(()),
    }
}

fn manifest_release_id(manifest: &SuitManifest) -> Result<[u8; 32], UpdateError> {
    manifest
        .manifest_digest
        .sha256()
        .ok_or(UpdateError::ReleaseMismatch("the manifest digest is not SHA-256"))
}

/// A checkpoint that a quorum of trusted validators cosigned.
pub(crate) struct QuorumCheckpoint {
    pub(crate) height: u64,
    pub(crate) state_root: Hash,
    pub(crate) signers: usize,
}

/// (c) Open `note` with the keys in force at its height and count distinct trusted signers.
pub(crate) fn open_quorum_checkpoint(note: &str, trust: &CheckpointTrust<'_>) -> Result<QuorumCheckpoint, UpdateError> {
    let parsed = Note::parse(note.as_bytes(), &NOTE_LIMITS).map_err(CheckpointError::from)?;
    let body = Checkpoint::parse(&parsed.text)?;
    let (height, state_root) = state_extension(&body).ok_or(UpdateError::NoStateRoot)?;
    if height < trust.last_seen_height {
        return Err(UpdateError::StaleCheckpoint {
            height,
            last_seen: trust.last_seen_height,
        });
    }
    let known: Vec<VerifierKey> = trust
        .validators
        .iter()
        .filter_map(|v| v.key_at(height).cloned())
        .collect();
    let below = |valid| UpdateError::BelowQuorum {
        valid,
        quorum: trust.quorum,
    };
    let signed = match open_checkpoint(note.as_bytes(), trust.origin, &known, &NOTE_LIMITS) {
        Err(CheckpointError::Note(NoteError::NoKnownSignature)) => return Err(below(0)),
        other => other?,
    };
    // `known` holds one key per validator and `open` counts each key once: signers are distinct.
    let signers = signed.note.verified.len();
    if signers < trust.quorum {
        return Err(below(signers));
    }
    Ok(QuorumCheckpoint {
        height,
        state_root,
        signers,
    })
}

/// Verify `proven` is the record at `key` under `root` and decode its value, if any.
pub(crate) fn proven_value<T: Decode>(
    proven: &ProvenRecord,
    root: &Hash,
    key: &[u8],
    record: &'static str,
) -> Result<Option<T>, UpdateError> {
    let value = proven
        .verify(root, key)
        .map_err(|source| UpdateError::Proof { record, source })?;
    value
        .map(|v| T::from_cbor(v, RECORD_LIMITS))
        .transpose()
        .map_err(|source| UpdateError::Malformed { what: record, source })
}

/// (c) The release record: on the ledger, not withdrawn, for this model, and saying what the
/// signed manifest says.
fn check_release(
    proven: &ProvenRecord,
    root: &Hash,
    release_id: &[u8; 32],
    manifest: &SuitManifest,
    image: &ImageDigest,
    trust: &UpdateTrust,
) -> Result<ReleaseRecord, UpdateError> {
    let id = ReleaseId(*release_id);
    let release: ReleaseRecord =
        proven_value(proven, root, &release_key(&id), "release")?.ok_or(UpdateError::ReleaseNotOnLedger)?;
    if release.id != id {
        return Err(UpdateError::ReleaseMismatch("release id"));
    }
    if release.image_digest_alg != COSE_ALG_SHA256 {
        return Err(UpdateError::ReleaseMismatch("image digest algorithm"));
    }
    if release.image_digest != image.sha256 || release.image_size != image.size {
        return Err(UpdateError::ReleaseMismatch("image digest or size"));
    }
    if release.security_version != manifest.sequence_number {
        return Err(UpdateError::ReleaseMismatch(
            "security version vs manifest sequence number",
        ));
    }
    if release.withdrawn.is_some() {
        return Err(UpdateError::ReleaseWithdrawn {
            version: release.version,
        });
    }
    if !release.models.contains(&trust.model) {
        return Err(UpdateError::NotForModel { model: trust.model });
    }
    Ok(release)
}

/// (c) The owner's approval of this release for this model.
fn check_approval(
    proven: &ProvenRecord,
    root: &Hash,
    release_id: &[u8; 32],
    release: &ReleaseRecord,
    trust: &UpdateTrust,
) -> Result<(), UpdateError> {
    let not_approved = || UpdateError::NotApproved {
        version: release.version.clone(),
        owner: trust.owner.clone(),
        model: trust.model,
    };
    let id = ReleaseId(*release_id);
    let approval: ApprovalRecord =
        proven_value(proven, root, &approval_key(&id, &trust.owner), "approval")?.ok_or_else(not_approved)?;
    let applies = approval.release == id && approval.owner == trust.owner && approval.models.contains(&trust.model);
    if !applies {
        return Err(not_approved());
    }
    if approval.security_version != release.security_version || approval.image_digest != release.image_digest {
        return Err(UpdateError::ReleaseMismatch("approval and release records disagree"));
    }
    Ok(())
}

/// A validator-set change for a device: the validator index and every validator record,
/// proven under a checkpoint cosigned by the quorum of the set the device trusts now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSetProof {
    pub checkpoint: String,
    /// `index/validators`.
    pub index: ProvenRecord,
    /// `validator/<name>` for each name of the index, in its order.
    pub validators: Vec<ProvenRecord>,
}

impl ValidatorSetProof {
    /// `[TAG_VALIDATOR_SET_PROOF_V1, checkpoint, index, [validator records]]`, canonical CBOR.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(4).text(TAG_VALIDATOR_SET_PROOF_V1).text(&self.checkpoint);
        self.index.encode(&mut e);
        e.array(self.validators.len());
        for v in &self.validators {
            v.encode(&mut e);
        }
        e.into_bytes()
    }

    /// Decode within [`MAX_VALIDATOR_SET_PROOF_BYTES`] and at most [`MAX_TRUSTED_VALIDATORS`] records.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, UpdateError> {
        let malformed = |source| UpdateError::Malformed {
            what: "validator-set proof",
            source,
        };
        let mut d = Decoder::new(bytes, BUNDLE_LIMITS).map_err(malformed)?;
        let p = decode_validator_set_proof(&mut d).map_err(malformed)?;
        d.finish().map_err(malformed)?;
        Ok(p)
    }
}

fn decode_validator_set_proof(d: &mut Decoder<'_>) -> Result<ValidatorSetProof, DecodeError> {
    d.array_of(4)?;
    expect_tag(d, TAG_VALIDATOR_SET_PROOF_V1)?;
    let checkpoint = d.string()?;
    let index = ProvenRecord::decode(d)?;
    let validators = chipledger_types::cbor::decode_list(d, MAX_TRUSTED_VALIDATORS)?;
    d.end();
    Ok(ValidatorSetProof {
        checkpoint,
        index,
        validators,
    })
}

/// What [`apply_validator_update`] changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorSetChange {
    pub checkpoint_height: u64,
    pub validators: usize,
    pub quorum: usize,
}

/// Replace the trusted validator set with the one proven in `proof`, after checking that the
/// current set's quorum cosigned its checkpoint. On any error `trust` is left unchanged.
pub fn apply_validator_update(
    trust: &mut UpdateTrust,
    proof: &ValidatorSetProof,
) -> Result<ValidatorSetChange, UpdateError> {
    trust.check()?;
    let cp = open_quorum_checkpoint(&proof.checkpoint, &trust.checkpoint_trust())?;
    let names = proven_value::<NameList>(&proof.index, &cp.state_root, KEY_VALIDATOR_INDEX, "validator index")?
        .ok_or(UpdateError::ValidatorSet("the validator index is proven absent"))?
        .0;
    if names.is_empty() || names.len() > MAX_TRUSTED_VALIDATORS {
        return Err(UpdateError::ValidatorSet(
            "the validator index must list 1 to 64 validators",
        ));
    }
    if names.len() != proof.validators.len() {
        return Err(UpdateError::ValidatorSet(
            "one proven record per listed validator is needed",
        ));
    }
    let mut validators = Vec::with_capacity(names.len());
    for (name, proven) in names.iter().zip(&proof.validators) {
        let record = proven_value::<ValidatorRecord>(proven, &cp.state_root, &validator_key(name), "validator")?
            .ok_or(UpdateError::ValidatorSet(
                "a listed validator's record is proven absent",
            ))?;
        if record.name != *name {
            return Err(UpdateError::ValidatorSet("a validator record names another validator"));
        }
        validators.push(trusted_validator(&record, cp.height)?);
    }
    let change = ValidatorSetChange {
        checkpoint_height: cp.height,
        validators: validators.len(),
        quorum: quorum_for(validators.len()),
    };
    // Everything verified: commit in one step.
    trust.validators = validators;
    trust.quorum = change.quorum;
    trust.checkpoint_height = cp.height;
    Ok(change)
}

/// The keys of `record` a device keeps: the one in force at `height` and later scheduled ones.
fn trusted_validator(record: &ValidatorRecord, height: u64) -> Result<TrustedValidator, UpdateError> {
    let first = record
        .note_keys
        .iter()
        .rposition(|(_, from)| *from <= height)
        .ok_or(UpdateError::ValidatorSet("a validator has no cosigning key in force"))?;
    let kept = &record.note_keys[first..];
    if kept.len() > MAX_KEYS_PER_VALIDATOR {
        return Err(UpdateError::ValidatorSet(
            "a validator has too many scheduled key rotations",
        ));
    }
    let mut keys = Vec::with_capacity(kept.len());
    for (key, from) in kept {
        let PublicKey::Ed25519(bytes) = key else {
            return Err(UpdateError::ValidatorSet("a cosigning key is not Ed25519"));
        };
        let vk = ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map_err(|_| UpdateError::ValidatorSet("a cosigning key is not a valid Ed25519 key"))?;
        let note_key = VerifierKey::new(&record.name, SIG_TYPE_ED25519, vk)
            .map_err(|_| UpdateError::ValidatorSet("a validator name is not a valid note key name"))?;
        keys.push((note_key, *from));
    }
    Ok(TrustedValidator {
        name: record.name.clone(),
        keys,
    })
}

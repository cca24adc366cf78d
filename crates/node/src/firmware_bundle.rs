//! The update bundle a device downloads before installing a release
//! (`GET /v1/firmware/releases/{id}/bundle?owner=ORG`): the SUIT envelope the ledger stores, the
//! newest final checkpoint, and the release and owner-approval records with sparse-Merkle
//! proofs against the state root that checkpoint cosigns. The device checks it with
//! `chipledger_device::update::verify_update`; the node decides nothing.

use chipledger_device::update::UpdateBundle;
use chipledger_state::firmware::model::get_envelope;
use chipledger_state::smt::Smt;
use chipledger_state::store::{StateRead, key_hash};
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::firmware_tx::{ReleaseId, approval_key, release_key};
use chipledger_types::note::Note;
use chipledger_types::state_proof::{Hash, ProvenRecord, state_extension};

/// Why no bundle could be assembled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    #[error("no final checkpoint covers the current state yet; retry shortly")]
    NotFinal,
    #[error("release {0} is not on the ledger")]
    UnknownRelease(ReleaseId),
    #[error("release {release} is not approved for owner '{owner}'")]
    NotApproved { release: ReleaseId, owner: String },
    #[error("stored data unreadable: {0}")]
    Internal(String),
}

/// A state record (or its absence) with its proof in `tree`.
pub fn prove_record(state: &dyn StateRead, tree: &Smt, key: &[u8]) -> ProvenRecord {
    ProvenRecord {
        key: key.to_vec(),
        value: state.get(key),
        proof: tree.prove(&key_hash(key)),
    }
}

/// The state root a final checkpoint note cosigns.
fn checkpoint_state_root(note: &str) -> Result<Hash, BundleError> {
    let internal = |e: &dyn std::fmt::Display| BundleError::Internal(e.to_string());
    let text = Note::parse(note.as_bytes(), &Default::default())
        .map_err(|e| internal(&e))?
        .text;
    let cp = Checkpoint::parse(&text).map_err(|e| internal(&e))?;
    state_extension(&cp)
        .map(|(_, root)| root)
        .ok_or_else(|| BundleError::Internal("final checkpoint without a state line".into()))
}

/// Assemble the bundle for `release` and `owner` from the state version `state` / `tree`,
/// which must be the one the final checkpoint `final_note` cosigns.
pub fn assemble(
    final_note: &str,
    state: &dyn StateRead,
    tree: &Smt,
    release: &ReleaseId,
    owner: &str,
) -> Result<UpdateBundle, BundleError> {
    if checkpoint_state_root(final_note)? != tree.root() {
        return Err(BundleError::NotFinal);
    }
    let envelope = get_envelope(state, release)
        .map_err(|e| BundleError::Internal(e.to_string()))?
        .ok_or(BundleError::UnknownRelease(*release))?;
    let approval = prove_record(state, tree, &approval_key(release, owner));
    if approval.value.is_none() {
        return Err(BundleError::NotApproved {
            release: *release,
            owner: owner.into(),
        });
    }
    Ok(UpdateBundle {
        envelope,
        checkpoint: final_note.into(),
        release: prove_record(state, tree, &release_key(release)),
        approval,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use chipledger_device::suit::{
        ReleaseSpec, build_envelope, class_id_for_model, vendor_id_for_org, verify_envelope,
    };
    use chipledger_device::update::{ImageHasher, TrustedValidator, UpdateTrust, verify_update};
    use chipledger_state::firmware::model::{Blob, envelope_key};
    use chipledger_state::store::value_hash;
    use chipledger_types::cbor::Encode;
    use chipledger_types::firmware_tx::{ApprovalRecord, COSE_ALG_SHA256, FirmwareKeyId, ReleaseRecord};
    use chipledger_types::note::{SIG_TYPE_ED25519, SignerKey, sign_note};
    use chipledger_types::state_proof::state_extension_line;
    use chipledger_types::tx::TxHash;
    use sha2::{Digest, Sha256};

    use super::*;

    const ORIGIN: &str = "chipledger/bundle-test";
    const MODEL: u32 = 42;
    const IMAGE: &[u8] = b"an image";

    struct Fixture {
        values: BTreeMap<Vec<u8>, Vec<u8>>,
        tree: Smt,
        id: ReleaseId,
        trust: UpdateTrust,
        validators: Vec<SignerKey>,
    }

    impl Fixture {
        fn new() -> Self {
            let publisher = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("valid scalar");
            let digest: [u8; 32] = Sha256::digest(IMAGE).into();
            let spec = ReleaseSpec {
                sequence_number: 3,
                vendor_id: vendor_id_for_org("vendor"),
                class_ids: vec![class_id_for_model(MODEL)],
                image_digest_sha256: digest,
                image_size: IMAGE.len() as u64,
                uri: None,
            };
            let envelope = build_envelope(&spec, &publisher);
            let manifest = verify_envelope(&envelope, publisher.verifying_key()).expect("valid");
            let id = ReleaseId(manifest.manifest_digest.sha256().expect("sha256"));
            let release = ReleaseRecord {
                id,
                publisher: "vendor".into(),
                version: "1.2.3".into(),
                security_version: 3,
                models: vec![MODEL],
                min_applicable: "1.0.0".into(),
                max_applicable: "1.2.2".into(),
                fixes: vec![],
                image_digest_alg: COSE_ALG_SHA256,
                image_digest: digest,
                image_size: IMAGE.len() as u64,
                signing_key: FirmwareKeyId([1; 20]),
                published_height: 5,
                published_tx: TxHash([2; 32]),
                withdrawn: None,
            };
            let approval = ApprovalRecord {
                release: id,
                rollout: TxHash([3; 32]),
                owner: "city".into(),
                models: vec![MODEL],
                security_version: 3,
                image_digest: digest,
                approved_height: 6,
                approvers: vec!["city".into()],
            };
            let mut values = BTreeMap::new();
            values.insert(envelope_key(&id), Blob(envelope).to_cbor());
            values.insert(release_key(&id), release.to_cbor());
            values.insert(approval_key(&id, "city"), approval.to_cbor());
            let mut tree = Smt::default();
            for (k, v) in &values {
                tree.update(key_hash(k), Some(value_hash(v)));
            }
            let validators: Vec<SignerKey> = (0..4u8)
                .map(|i| SignerKey::from_seed(&format!("v{i}"), SIG_TYPE_ED25519, &[i; 32]).expect("valid"))
                .collect();
            let trust = UpdateTrust {
                origin: ORIGIN.into(),
                validators: validators
                    .iter()
                    .map(|v| TrustedValidator::new(v.verifier().clone()))
                    .collect(),
                quorum: 3,
                publisher_keys: vec![*publisher.verifying_key()],
                model: MODEL,
                owner: "city".into(),
                security_version: 1,
                checkpoint_height: 0,
            };
            Fixture {
                values,
                tree,
                id,
                trust,
                validators,
            }
        }

        fn note(&self, root: &Hash) -> String {
            let text = Checkpoint {
                origin: ORIGIN.into(),
                size: 10,
                root: [0; 32],
                extensions: vec![state_extension_line(7, root)],
            }
            .to_text()
            .expect("valid");
            sign_note(&text, &self.validators.iter().take(3).collect::<Vec<_>>(), 0).expect("signed")
        }
    }

    #[test]
    fn an_assembled_bundle_verifies_on_the_device() {
        let f = Fixture::new();
        let note = f.note(&f.tree.root());
        let bundle = assemble(&note, &f.values, &f.tree, &f.id, "city").expect("assembled");
        let decoded = UpdateBundle::from_bytes(&bundle.to_bytes()).expect("decodes");
        let v = verify_update(&decoded, &ImageHasher::digest(IMAGE), &f.trust).expect("verifies");
        assert_eq!((v.release_id, v.security_version, v.checkpoint_height), (f.id.0, 3, 7));
    }

    #[test]
    fn refusals_are_typed() {
        let f = Fixture::new();
        let note = f.note(&f.tree.root());
        let stale = f.note(&[5; 32]);
        assert_eq!(
            assemble(&stale, &f.values, &f.tree, &f.id, "city"),
            Err(BundleError::NotFinal)
        );
        let unknown = ReleaseId([9; 32]);
        assert_eq!(
            assemble(&note, &f.values, &f.tree, &unknown, "city"),
            Err(BundleError::UnknownRelease(unknown))
        );
        assert!(matches!(
            assemble(&note, &f.values, &f.tree, &f.id, "other"),
            Err(BundleError::NotApproved { .. })
        ));
    }
}

//! The device-side update verifier against a real bundle: a SUIT envelope from
//! `build_envelope`, release and approval records in a real sparse Merkle tree (the `state`
//! crate's), and a checkpoint cosigned by 4 validators (quorum 3). Every refusal path is one
//! row of a table; each row changes one thing of an otherwise valid bundle.

mod update_fixture;

use chipledger_device::update::{
    ImageDigest, ImageHasher, UpdateBundle, UpdateError, UpdateTrust, ValidatorSetProof, apply_validator_update,
    quorum_for, verify_update,
};
use chipledger_types::cbor::{DecodeError, Encode};
use chipledger_types::checkpoint::{Checkpoint, CheckpointError};
use chipledger_types::firmware_tx::{Withdrawal, approval_key, release_key};
use chipledger_types::note::{NoteError, SignerKey, sign_note};
use chipledger_types::state_proof::ProofError;
use chipledger_types::validator_record::{KEY_VALIDATOR_INDEX, NameList, validator_key};
use update_fixture::*;

#[test]
fn a_valid_update_verifies() {
    let w = World::new();
    let bundle = UpdateBundle::from_bytes(&w.bundle().to_bytes()).expect("round trip");
    assert_eq!(bundle, w.bundle());
    // Streaming the image in chunks gives the same digest as hashing it whole.
    let mut hasher = ImageHasher::new();
    for chunk in IMAGE.chunks(7) {
        hasher.update(chunk);
    }
    assert_eq!(hasher.finish(), image());
    let v = verify_update(&bundle, &image(), &w.trust()).expect("valid update");
    assert_eq!(v.release_id, w.id.0);
    assert_eq!(v.version, "2.1.0");
    assert_eq!(v.security_version, SECURITY_VERSION);
    assert_eq!(v.sequence_number, SECURITY_VERSION);
    assert_eq!(v.checkpoint_height, CHECKPOINT_HEIGHT);
    assert_eq!(v.state_root, w.state.tree().root());
    assert_eq!(v.signers, 3);
    assert_eq!(v.image.size, IMAGE.len() as u64);
    // All four signatures verify too; recording the install raises the floors.
    let mut b4 = w.bundle();
    b4.checkpoint = w.state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &w.signers(4));
    assert_eq!(verify_update(&b4, &image(), &w.trust()).map(|v| v.signers), Ok(4));
    let mut trust = w.trust();
    trust.record_install(&v);
    assert_eq!(
        (trust.security_version, trust.checkpoint_height),
        (SECURITY_VERSION, CHECKPOINT_HEIGHT)
    );
    // Equal security version (a re-install) is allowed; the same checkpoint height too.
    assert!(verify_update(&bundle, &image(), &trust).is_ok());
}

/// The same envelope with its authentication wrapper (key 2) removed.
fn strip_authentication(envelope: &[u8]) -> Vec<u8> {
    // Tag 107 (0xd8 0x6b), map of 2 (0xa2), key 2, bstr auth, key 3, bstr manifest.
    assert_eq!(&envelope[..4], &[0xd8, 0x6b, 0xa2, 0x02]);
    let (auth_len, auth_head) = bstr_len(&envelope[4..]);
    let rest = &envelope[4 + auth_head + auth_len..];
    assert_eq!(rest[0], 0x03);
    let mut out = vec![0xd8, 0x6b, 0xa1];
    out.extend_from_slice(rest);
    out
}

/// Length and head size of the CBOR byte string at the start of `b`.
fn bstr_len(b: &[u8]) -> (usize, usize) {
    match b[0] {
        x @ 0x40..=0x57 => ((x - 0x40) as usize, 1),
        0x58 => (b[1] as usize, 2),
        0x59 => (u16::from_be_bytes([b[1], b[2]]) as usize, 3),
        other => panic!("unexpected head {other:#x}"),
    }
}

type Mutation = fn(&World, &mut UpdateBundle, &mut ImageDigest, &mut UpdateTrust);
type Expect = fn(&UpdateError) -> bool;

/// One refusal: what changes, and the error the device must report.
struct Refusal {
    name: &'static str,
    mutate: Mutation,
    expect: Expect,
}

fn with_state(w: &World, b: &mut UpdateBundle, change: impl FnOnce(&mut State)) {
    let mut s = w.state.clone();
    change(&mut s);
    *b = w.bundle_from(&s);
}

const REFUSALS: &[Refusal] = &[
    Refusal {
        name: "unsigned manifest",
        mutate: |w, b, _, _| b.envelope = strip_authentication(&w.envelope),
        expect: |e| matches!(e, UpdateError::UnsignedManifest),
    },
    Refusal {
        name: "manifest signed by another key",
        mutate: |_, b, _, _| b.envelope = envelope(SECURITY_VERSION, IMAGE, &p256_key(99)),
        expect: |e| matches!(e, UpdateError::ManifestNotFromPublisher),
    },
    Refusal {
        name: "manifest bytes tampered after signing",
        mutate: |_, b, _, _| {
            let n = b.envelope.len();
            b.envelope[n - 3] ^= 0x01;
        },
        expect: |e| matches!(e, UpdateError::Manifest(_)),
    },
    Refusal {
        name: "image digest mismatch",
        mutate: |_, _, img, _| *img = ImageHasher::digest(b"another image of some other length"),
        expect: |e| matches!(e, UpdateError::DigestMismatch { .. }),
    },
    Refusal {
        name: "image size mismatch",
        mutate: |_, _, img, _| img.size += 1,
        expect: |e| matches!(e, UpdateError::SizeMismatch { .. }),
    },
    Refusal {
        name: "manifest for another model",
        mutate: |_, _, _, t| t.model = MODEL + 1,
        expect: |e| matches!(e, UpdateError::NotForModel { model } if *model == MODEL + 1),
    },
    Refusal {
        name: "release not on the ledger",
        mutate: |w, b, _, _| with_state(w, b, |s| drop(s.values.remove(&release_key(&w.id)))),
        expect: |e| matches!(e, UpdateError::ReleaseNotOnLedger),
    },
    Refusal {
        name: "release not approved for this owner",
        mutate: |w, b, _, _| {
            with_state(w, b, |s| {
                s.values.remove(&approval_key(&w.id, OWNER));
                s.put(
                    approval_key(&w.id, "other-city"),
                    approval_record(w.id, "other-city").to_cbor(),
                );
            })
        },
        expect: |e| matches!(e, UpdateError::NotApproved { owner, .. } if owner == OWNER),
    },
    Refusal {
        name: "approval for another model only",
        mutate: |w, b, _, _| {
            with_state(w, b, |s| {
                let mut a = approval_record(w.id, OWNER);
                a.models = vec![MODEL + 1];
                s.put(approval_key(&w.id, OWNER), a.to_cbor());
            })
        },
        expect: |e| matches!(e, UpdateError::NotApproved { .. }),
    },
    Refusal {
        name: "checkpoint below quorum (2 of 4 signatures)",
        mutate: |w, b, _, _| b.checkpoint = w.state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &w.signers(2)),
        expect: |e| matches!(e, UpdateError::BelowQuorum { valid: 2, quorum: 3 }),
    },
    Refusal {
        name: "checkpoint signed only by unknown keys",
        mutate: |w, b, _, _| {
            let strangers: Vec<SignerKey> = (10..14).map(validator).collect();
            b.checkpoint = w
                .state
                .checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &strangers.iter().collect::<Vec<_>>());
        },
        expect: |e| matches!(e, UpdateError::BelowQuorum { valid: 0, quorum: 3 }),
    },
    Refusal {
        name: "checkpoint with a forged signature of a trusted validator",
        mutate: |w, b, _, _| {
            // Validator 0's line re-signed by a different key under the same name and key id.
            let good = w.state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &w.signers(3));
            let forged = w.state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT + 1, &w.signers(1));
            let forged_line = forged.lines().last().expect("signature line");
            let mut lines: Vec<&str> = good.lines().collect();
            let at = lines
                .iter()
                .position(|l| l.starts_with("\u{2014} v0 "))
                .expect("v0 signs");
            lines[at] = forged_line;
            b.checkpoint = lines.join("\n") + "\n";
        },
        expect: |e| matches!(e, UpdateError::Checkpoint(CheckpointError::Note(NoteError::InvalidSignature { name, .. })) if name == "v0"),
    },
    Refusal {
        name: "checkpoint of another log",
        mutate: |w, b, _, _| b.checkpoint = w.state.checkpoint("another/log", CHECKPOINT_HEIGHT, &w.signers(3)),
        expect: |e| matches!(e, UpdateError::Checkpoint(CheckpointError::WrongOrigin { .. })),
    },
    Refusal {
        name: "checkpoint without a state root",
        mutate: |w, b, _, _| {
            let text = Checkpoint {
                origin: ORIGIN.into(),
                size: 5,
                root: [9; 32],
                extensions: vec![],
            }
            .to_text()
            .expect("valid");
            b.checkpoint = sign_note(&text, &w.signers(4), 0).expect("signed");
        },
        expect: |e| matches!(e, UpdateError::NoStateRoot),
    },
    Refusal {
        name: "checkpoint older than the newest seen",
        mutate: |_, _, _, t| t.checkpoint_height = CHECKPOINT_HEIGHT + 1,
        expect: |e| {
            matches!(
                e,
                UpdateError::StaleCheckpoint {
                    height: CHECKPOINT_HEIGHT,
                    ..
                }
            )
        },
    },
    Refusal {
        name: "proofs for another state root",
        mutate: |w, b, _, _| {
            let mut other = w.state.clone();
            other.put(b"org/newcomer".to_vec(), b"x".to_vec());
            b.release = other.prove(&release_key(&w.id));
            b.approval = other.prove(&approval_key(&w.id, OWNER));
        },
        expect: |e| {
            matches!(
                e,
                UpdateError::Proof {
                    source: ProofError::RootMismatch,
                    ..
                }
            )
        },
    },
    Refusal {
        name: "release proof for another key",
        mutate: |w, b, _, _| b.release = w.state.prove(&approval_key(&w.id, OWNER)),
        expect: |e| {
            matches!(
                e,
                UpdateError::Proof {
                    record: "release",
                    source: ProofError::WrongKey { .. }
                }
            )
        },
    },
    Refusal {
        name: "release value swapped under a valid proof",
        mutate: |w, b, _, _| {
            let mut r = release_record(w.id);
            r.security_version = 99;
            b.release.value = Some(r.to_cbor());
        },
        expect: |e| {
            matches!(
                e,
                UpdateError::Proof {
                    source: ProofError::RootMismatch,
                    ..
                }
            )
        },
    },
    Refusal {
        name: "rollback to a lower security version",
        mutate: |_, _, _, t| t.security_version = SECURITY_VERSION + 1,
        expect: |e| {
            matches!(
                e,
                UpdateError::Rollback {
                    installed: 8,
                    offered: 7
                }
            )
        },
    },
    Refusal {
        name: "release withdrawn",
        mutate: |w, b, _, _| {
            with_state(w, b, |s| {
                let mut r = release_record(w.id);
                r.withdrawn = Some(Withdrawal {
                    height: 115,
                    reason: "bricks devices".into(),
                });
                s.put(release_key(&w.id), r.to_cbor());
            })
        },
        expect: |e| matches!(e, UpdateError::ReleaseWithdrawn { version } if version == "2.1.0"),
    },
    Refusal {
        name: "ledger record disagrees with the signed manifest",
        mutate: |w, b, _, _| {
            with_state(w, b, |s| {
                let mut r = release_record(w.id);
                r.security_version = SECURITY_VERSION + 1;
                s.put(release_key(&w.id), r.to_cbor());
            })
        },
        expect: |e| matches!(e, UpdateError::ReleaseMismatch(_)),
    },
];

#[test]
fn every_refusal_path_is_a_typed_error() {
    let w = World::new();
    for r in REFUSALS {
        let (mut bundle, mut img, mut trust) = (w.bundle(), image(), w.trust());
        (r.mutate)(&w, &mut bundle, &mut img, &mut trust);
        let before = trust.clone();
        let got = verify_update(&bundle, &img, &trust);
        match &got {
            Err(e) => assert!((r.expect)(e), "{}: unexpected error {e:?}", r.name),
            Ok(_) => panic!("{}: accepted", r.name),
        }
        assert_eq!(trust, before, "{}: trust changed", r.name);
        // Every message names what went wrong.
        assert!(!got.unwrap_err().to_string().is_empty());
    }
}

#[test]
fn malformed_bundles_are_typed_errors_not_panics() {
    let w = World::new();
    let bytes = w.bundle().to_bytes();
    for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 1] {
        assert!(
            matches!(
                UpdateBundle::from_bytes(&bytes[..cut]),
                Err(UpdateError::Malformed { .. })
            ),
            "cut at {cut}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert!(matches!(
        UpdateBundle::from_bytes(&trailing),
        Err(UpdateError::Malformed {
            source: DecodeError::TrailingBytes(1),
            ..
        })
    ));
    let mut wrong_tag = bytes.clone();
    let at = wrong_tag.windows(6).position(|x| x == b"update").expect("tag");
    wrong_tag[at] = b'U';
    assert!(matches!(
        UpdateBundle::from_bytes(&wrong_tag),
        Err(UpdateError::Malformed { .. })
    ));
    let huge = vec![0u8; chipledger_device::update::MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        UpdateBundle::from_bytes(&huge),
        Err(UpdateError::Malformed {
            source: DecodeError::InputTooLarge { .. },
            ..
        })
    ));
}

#[test]
fn invalid_trust_configuration_is_refused() {
    let w = World::new();
    type Change = fn(&mut UpdateTrust);
    let cases: [(&str, Change); 4] = [
        ("quorum 0", |t| t.quorum = 0),
        ("quorum below 2f + 1", |t| t.quorum = 2),
        ("quorum above the set", |t| t.quorum = 5),
        ("no publisher key", |t| t.publisher_keys.clear()),
    ];
    for (name, change) in cases {
        let mut t = w.trust();
        change(&mut t);
        assert!(
            matches!(
                verify_update(&w.bundle(), &image(), &t),
                Err(UpdateError::InvalidTrust(_))
            ),
            "{name}"
        );
    }
}

// ---- validator-set changes -------------------------------------------------------------------

/// The state after validator v3 rotated its cosigning key (from height 130) and v4 joined.
fn rotated_state(w: &World, new_v3: &SignerKey, v4: &SignerKey) -> State {
    let mut s = w.state.clone();
    s.put(
        validator_key("v3"),
        validator_record(3, &[(&w.validators[3], 0), (new_v3, 130)]).to_cbor(),
    );
    s.put(validator_key("v4"), validator_record(4, &[(v4, 125)]).to_cbor());
    let names = NameList((0..5).map(|i| format!("v{i}")).collect());
    s.put(KEY_VALIDATOR_INDEX.to_vec(), names.to_cbor());
    s
}

fn set_proof(s: &State, checkpoint: String) -> ValidatorSetProof {
    ValidatorSetProof {
        checkpoint,
        index: s.prove(KEY_VALIDATOR_INDEX),
        validators: (0..5).map(|i| s.prove(&validator_key(&format!("v{i}")))).collect(),
    }
}

#[test]
fn a_validator_set_change_under_the_current_quorum_is_applied() {
    let w = World::new();
    let (new_v3, v4) = (rotated_v3(), validator(4));
    let s = rotated_state(&w, &new_v3, &v4);
    let proof = set_proof(&s, s.checkpoint(ORIGIN, 125, &w.signers(3)));
    let proof = ValidatorSetProof::from_bytes(&proof.to_bytes()).expect("round trip");
    let mut trust = w.trust();
    let change = apply_validator_update(&mut trust, &proof).expect("applied");
    assert_eq!(
        (change.validators, change.quorum, change.checkpoint_height),
        (5, 4, 125)
    );
    assert_eq!(
        (trust.quorum, trust.checkpoint_height, trust.validators.len()),
        (4, 125, 5)
    );
    assert_eq!(quorum_for(4), 3);
    assert_eq!(quorum_for(7), 5);
    // v3 keeps its old key until height 130, then the new one.
    let v3 = &trust.validators[3];
    assert_eq!(v3.key_at(129), Some(w.validators[3].verifier()));
    assert_eq!(v3.key_at(130), Some(new_v3.verifier()));

    // After the change an update needs 4 signatures, with v3's new key from height 130.
    let old_v3 = &w.validators[3];
    let mut bundle = w.bundle_from(&s);
    let at = |signers: &[&SignerKey]| s.checkpoint(ORIGIN, 140, signers);
    let (v0, v1, v2) = (&w.validators[0], &w.validators[1], &w.validators[2]);
    bundle.checkpoint = at(&[v0, v1, v2, &new_v3]);
    assert_eq!(verify_update(&bundle, &image(), &trust).map(|v| v.signers), Ok(4));
    bundle.checkpoint = at(&[v0, v1, &v4, &new_v3]);
    assert!(verify_update(&bundle, &image(), &trust).is_ok());
    bundle.checkpoint = at(&[v0, v1, v2, old_v3]);
    assert!(matches!(
        verify_update(&bundle, &image(), &trust),
        Err(UpdateError::BelowQuorum { valid: 3, quorum: 4 })
    ));
}

#[test]
fn a_refused_validator_set_change_leaves_trust_unchanged() {
    let w = World::new();
    let (new_v3, v4) = (rotated_v3(), validator(4));
    let s = rotated_state(&w, &new_v3, &v4);
    let (v0, v1) = (&w.validators[0], &w.validators[1]);
    type Case<'a> = (&'static str, Box<dyn Fn() -> ValidatorSetProof + 'a>, Expect);
    let cases: Vec<Case<'_>> = vec![
        (
            "signed by 2 of the current set",
            Box::new(|| set_proof(&s, s.checkpoint(ORIGIN, 125, &[v0, v1]))),
            |e| matches!(e, UpdateError::BelowQuorum { valid: 2, quorum: 3 }),
        ),
        (
            "signed only by the keys it introduces",
            Box::new(|| set_proof(&s, s.checkpoint(ORIGIN, 131, &[&new_v3, &v4]))),
            |e| matches!(e, UpdateError::BelowQuorum { .. }),
        ),
        (
            "older than the newest checkpoint seen",
            Box::new(|| set_proof(&s, s.checkpoint(ORIGIN, 99, &w.signers(4)))),
            |e| matches!(e, UpdateError::StaleCheckpoint { height: 99, .. }),
        ),
        (
            "a record missing",
            Box::new(|| {
                let mut p = set_proof(&s, s.checkpoint(ORIGIN, 125, &w.signers(3)));
                p.validators.pop();
                p
            }),
            |e| matches!(e, UpdateError::ValidatorSet(_)),
        ),
        (
            "records in another order",
            Box::new(|| {
                let mut p = set_proof(&s, s.checkpoint(ORIGIN, 125, &w.signers(3)));
                p.validators.swap(0, 1);
                p
            }),
            |e| {
                matches!(
                    e,
                    UpdateError::Proof {
                        source: ProofError::WrongKey { .. },
                        ..
                    }
                )
            },
        ),
        (
            "a record proven against another root",
            Box::new(|| {
                let mut p = set_proof(&s, s.checkpoint(ORIGIN, 125, &w.signers(3)));
                p.validators[4] = w.state.prove(&validator_key("v4"));
                p
            }),
            |e| matches!(e, UpdateError::Proof { .. }),
        ),
        (
            "an index proven absent",
            Box::new(|| {
                let mut s2 = s.clone();
                s2.values.remove(KEY_VALIDATOR_INDEX);
                set_proof(&s2, s2.checkpoint(ORIGIN, 125, &w.signers(3)))
            }),
            |e| matches!(e, UpdateError::ValidatorSet(_)),
        ),
    ];
    for (name, proof, expect) in cases {
        let mut trust = w.trust();
        let before = trust.clone();
        let got = apply_validator_update(&mut trust, &proof());
        assert!(got.as_ref().is_err_and(expect), "{name}: {got:?}");
        assert_eq!(trust, before, "{name}: trust changed");
    }
}

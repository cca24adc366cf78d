//! SUIT known-answer tests: the signed examples of draft-ietf-suit-manifest-37 Appendix B
//! (and libcsuit's independently signed copy of Example 0) verify under the draft's public key
//! and yield what the draft states; tampered copies fail with the right typed error; our own
//! envelopes round-trip; no truncation or byte flip panics. Fixtures: `tests/fixtures/suit/`
//! (sources in its README).

use chipledger_device::suit::{
    self, COSE_ALG_SHA256, ReleaseSpec, SuitDigest, SuitError, SuitManifest, SuitVersionMatch, VersionComparison,
    build_envelope, class_id_for_model, decode_envelope_unverified, key, vendor_id_for_org, verify_envelope,
};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

const DRAFT_KEY_DER: &[u8] = include_bytes!("fixtures/suit/draft-suit-manifest-public-key.der");

/// Vendor and class ids of every draft example (fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe,
/// 1492af14-2569-5e48-bf42-9b2d51f2ab45).
const VENDOR: &str = "fa6b4a53d5ad5fdfbe9de663e4d41ffe";
const CLASS: &str = "1492af1425695e48bf429b2d51f2ab45";
/// The two sample image digests the examples use.
const DIGEST_A: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";
const DIGEST_B: &str = "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff";
const SIZE_A: u64 = 34768;
const SIZE_B: u64 = 76834;

fn draft_key() -> VerifyingKey {
    VerifyingKey::from_public_key_der(DRAFT_KEY_DER).expect("draft public key")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/suit/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn id16(h: &str) -> [u8; 16] {
    hex::decode(h).unwrap().try_into().unwrap()
}

fn sha256(h: &str) -> SuitDigest {
    SuitDigest {
        alg: COSE_ALG_SHA256,
        bytes: hex::decode(h).unwrap(),
    }
}

/// What the draft states about one component along one path.
struct Expected {
    id: &'static [u8],
    digest: &'static str,
    size: Option<u64>,
    uri: Option<&'static str>,
}

/// One example: file, sequence number, signed manifest digest, sequences, and per component
/// the alternatives (more than one for the A/B example).
struct Example {
    file: &'static str,
    sequence_number: u64,
    manifest_digest: &'static str,
    sequences: &'static [u64],
    components: &'static [&'static [Expected]],
}

const fn exp(id: &'static [u8], digest: &'static str, size: Option<u64>, uri: Option<&'static str>) -> Expected {
    Expected { id, digest, size, uri }
}

const EXAMPLES: &[Example] = &[
    Example {
        file: "example0.suit",
        sequence_number: 0,
        manifest_digest: "6658ea560262696dd1f13b782239a064da7c6c5cbaf52fded428a6fc83c7e5af",
        sequences: &[key::VALIDATE, key::INVOKE],
        components: &[&[exp(&[0], DIGEST_A, Some(SIZE_A), None)]],
    },
    Example {
        file: "libcsuit-exp0.suit",
        sequence_number: 0,
        manifest_digest: "6658ea560262696dd1f13b782239a064da7c6c5cbaf52fded428a6fc83c7e5af",
        sequences: &[key::VALIDATE, key::INVOKE],
        components: &[&[exp(&[0], DIGEST_A, Some(SIZE_A), None)]],
    },
    Example {
        file: "example1.suit",
        sequence_number: 1,
        manifest_digest: "1f2e7acca0dc2786f2fe4eb947f50873a6a3cfaa98866c5b02e621f42074daf2",
        sequences: &[key::INSTALL, key::VALIDATE],
        components: &[&[exp(&[0], DIGEST_A, Some(SIZE_A), Some("http://example.com/file.bin"))]],
    },
    Example {
        file: "example2.suit",
        sequence_number: 2,
        manifest_digest: "6a5197ed8f9dccf733d1c89a359441708e070b4c6dcb9a1c2c82c6165f609b90",
        sequences: &[key::INSTALL, key::VALIDATE, key::INVOKE],
        components: &[&[exp(
            &[0],
            DIGEST_A,
            Some(SIZE_A),
            Some("http://example.com/very/long/path/to/file/file.bin"),
        )]],
    },
    Example {
        file: "example2-severed.suit",
        sequence_number: 2,
        manifest_digest: "6a5197ed8f9dccf733d1c89a359441708e070b4c6dcb9a1c2c82c6165f609b90",
        sequences: &[key::VALIDATE, key::INVOKE],
        components: &[&[exp(&[0], DIGEST_A, Some(SIZE_A), None)]],
    },
    Example {
        file: "example3.suit",
        sequence_number: 3,
        manifest_digest: "f6d44a62ec906b392500c242e78e908e9cc5057f3f04104a06a8566200da2ee0",
        sequences: &[key::INSTALL, key::VALIDATE],
        components: &[&[
            exp(&[0], DIGEST_A, Some(SIZE_A), Some("http://example.com/file1.bin")),
            exp(&[0], DIGEST_B, Some(SIZE_B), Some("http://example.com/file2.bin")),
        ]],
    },
    Example {
        file: "example4.suit",
        sequence_number: 4,
        manifest_digest: "5b5f6586b1e6cdf19ee479a5adabf206581000bd584b0832a9bdaf4f72cdbdd6",
        sequences: &[key::PAYLOAD_FETCH, key::INSTALL, key::VALIDATE, key::LOAD, key::INVOKE],
        components: &[
            &[exp(&[0], DIGEST_A, Some(SIZE_A), None)],
            &[exp(&[2], DIGEST_A, None, Some("http://example.com/file.bin"))],
            &[exp(&[1], DIGEST_B, Some(SIZE_B), None)],
        ],
    },
    Example {
        file: "example5.suit",
        sequence_number: 5,
        manifest_digest: "15ce60f77657e4531dc329155f8b0ed78f94bdc6d165b2665473693dcc34f470",
        sequences: &[key::INSTALL, key::VALIDATE, key::INVOKE],
        components: &[
            &[exp(&[0], DIGEST_A, Some(SIZE_A), Some("http://example.com/file1.bin"))],
            &[exp(&[1], DIGEST_B, Some(SIZE_B), Some("http://example.com/file2.bin"))],
        ],
    },
];

fn check_example(ex: &Example, m: &SuitManifest) {
    let f = ex.file;
    assert_eq!(m.sequence_number, ex.sequence_number, "{f}");
    assert_eq!(m.manifest_digest, sha256(ex.manifest_digest), "{f}");
    assert_eq!(m.sequences, ex.sequences, "{f}");
    assert_eq!(m.components.len(), ex.components.len(), "{f}");
    // Every example checks the draft's vendor and class ids on component 0.
    assert_eq!(m.vendor_ids(), vec![id16(VENDOR)], "{f}");
    assert_eq!(m.class_ids(), vec![id16(CLASS)], "{f}");
    for (c, expected) in m.components.iter().zip(ex.components) {
        assert_eq!(c.id, vec![expected[0].id.to_vec()], "{f}");
        assert_eq!(c.alternatives.len(), expected.len(), "{f}: {:?}", c.alternatives);
        for (alt, e) in c.alternatives.iter().zip(expected.iter()) {
            assert_eq!(alt.image_digest, Some(sha256(e.digest)), "{f}");
            assert_eq!(alt.image_size, e.size, "{f}");
            assert_eq!(alt.uri.as_deref(), e.uri, "{f}");
        }
        if let [only] = expected {
            assert_eq!(c.image_digest, Some(sha256(only.digest)), "{f}");
            assert_eq!(c.image_size, only.size, "{f}");
        } else {
            assert_eq!(c.image_digest, None, "{f}: paths disagree, so no single digest");
        }
    }
    let c0 = &m.components[0];
    assert_eq!(
        (c0.vendor_id, c0.class_id),
        (Some(id16(VENDOR)), Some(id16(CLASS))),
        "{f}"
    );
    assert!(
        c0.alternatives
            .iter()
            .all(|a| a.vendor_id_checked && a.class_id_checked),
        "{f}"
    );
}

#[test]
fn draft_examples_verify_and_yield_the_stated_values() {
    for ex in EXAMPLES {
        let envelope = fixture(ex.file);
        let m = verify_envelope(&envelope, &draft_key()).unwrap_or_else(|e| panic!("{}: {e}", ex.file));
        check_example(ex, &m);
        assert_eq!(decode_envelope_unverified(&envelope), Ok(m), "{}", ex.file);
    }
}

/// draft-ietf-suit-update-management Example 2 ("Wait and Condition"), as libcsuit signs it
/// with the same key: a version condition `lesser [1, 0, 0]` in the shared sequence.
#[test]
fn update_management_example_yields_its_version_condition() {
    let m = verify_envelope(&fixture("libcsuit-update-management-example2.suit"), &draft_key()).unwrap();
    assert_eq!(m.sequence_number, 0);
    assert_eq!(m.sequences, [key::PAYLOAD_FETCH, key::VALIDATE]);
    let [c] = m.components.as_slice() else {
        panic!("one component")
    };
    let [path] = c.alternatives.as_slice() else {
        panic!("one path")
    };
    assert_eq!(
        path.version_conditions,
        [SuitVersionMatch {
            comparison: VersionComparison::Lesser,
            value: vec![1, 0, 0]
        }]
    );
    assert_eq!(
        c.image_digest,
        Some(sha256(
            "36921488fe6680712f734e11f58d87eeb66d4b21a8a1ad3441060814da16d50f"
        ))
    );
    assert_eq!(c.image_size, Some(30));
    assert_eq!(c.uri.as_deref(), Some("http://example.com/file.bin"));
    assert_eq!((c.vendor_id, c.class_id), (Some(id16(VENDOR)), Some(id16(CLASS))));
}

#[test]
fn version_matches_follow_the_draft_comparison_rule() {
    use VersionComparison::*;
    let m = |comparison, value: &[i64]| SuitVersionMatch {
        comparison,
        value: value.to_vec(),
    };
    let cases: &[(SuitVersionMatch, &[i64], bool)] = &[
        (m(Equal, &[1]), &[1, 2, 3], true), // "Equal [1]" matches every 1.x.y
        (m(Equal, &[1]), &[2], false),
        (m(GreaterEqual, &[1, 0]), &[1, 0, 7], true),
        (m(Lesser, &[1, 10]), &[1, 9, 9], true),
        (m(Lesser, &[1, 10]), &[1, 10, 0], false),
        (m(Lesser, &[1, 0, 0]), &[0, 9], true),
        (m(Lesser, &[1, 0, 0]), &[1], false),             // missing parts count as 0
        (m(Greater, &[1, 2]), &[1, 2, -1, 3], false),     // 1.2-rc3 is not above 1.2 at this depth
        (m(LesserEqual, &[1, 2, -1]), &[1, 2, -2], true), // beta ≤ rc
    ];
    for (condition, installed, expected) in cases {
        assert_eq!(
            condition.matches(installed),
            *expected,
            "{condition:?} vs {installed:?}"
        );
    }
}

#[test]
fn example3_ab_slots_pair_each_digest_with_its_uri() {
    let m = verify_envelope(&fixture("example3.suit"), &draft_key()).unwrap();
    let slots: Vec<_> = m.components[0].alternatives.iter().map(|a| a.slot).collect();
    assert_eq!(slots, [Some(0), Some(1)]);
    assert_eq!(m.components[0].image_digests(), [sha256(DIGEST_A), sha256(DIGEST_B)]);
}

#[test]
fn example2_severed_members_are_checked_and_decoded() {
    let m = verify_envelope(&fixture("example2.suit"), &draft_key()).unwrap();
    assert_eq!(m.reference_uri.as_deref(), Some("https://git.io/JJYoj"));
    assert!(m.severed_missing.is_empty());
    let text = m.text.expect("suit-text is carried");
    assert_eq!(text.language, "en-US");
    assert!(
        text.manifest_description
            .unwrap()
            .starts_with("## Example 2: Simultaneous Download")
    );
    assert_eq!(text.components.len(), 1);
    assert_eq!(text.components[0].id, vec![vec![0u8]]);
    assert_eq!(text.components[0].vendor_domain.as_deref(), Some("arm.com"));

    let severed = verify_envelope(&fixture("example2-severed.suit"), &draft_key()).unwrap();
    assert_eq!(severed.severed_missing, [key::INSTALL, key::TEXT]);
    assert_eq!(severed.text, None);
}

/// Position of the 64-byte ES256 signature: `f6 58 40` (nil payload, bstr(64)) precedes it.
fn signature_offset(envelope: &[u8]) -> usize {
    envelope
        .windows(3)
        .position(|w| w == [0xf6, 0x58, 0x40])
        .expect("signature")
        + 3
}

fn flipped(envelope: &[u8], at: usize) -> Vec<u8> {
    let mut out = envelope.to_vec();
    out[at] ^= 0x01;
    out
}

#[test]
fn tampered_examples_are_rejected_with_typed_errors() {
    let wrong_key = *SigningKey::from_slice(&[7u8; 32]).unwrap().verifying_key();
    for ex in EXAMPLES.iter().filter(|ex| !ex.file.starts_with("example2")) {
        let envelope = fixture(ex.file);
        let f = ex.file;
        // These envelopes end with the manifest bstr.
        let last = envelope.len() - 1;
        assert_eq!(
            verify_envelope(&flipped(&envelope, last), &draft_key()),
            Err(SuitError::ManifestDigestMismatch),
            "{f}"
        );
        let sig = signature_offset(&envelope);
        for at in [sig, sig + 31, sig + 32, sig + 63] {
            assert_eq!(
                verify_envelope(&flipped(&envelope, at), &draft_key()),
                Err(SuitError::BadSignature),
                "{f}"
            );
        }
        assert_eq!(
            verify_envelope(&envelope, &wrong_key),
            Err(SuitError::BadSignature),
            "{f}"
        );
        assert!(
            matches!(
                verify_envelope(&envelope[..last], &draft_key()),
                Err(SuitError::Malformed { .. })
            ),
            "{f}"
        );
    }
}

#[test]
fn tampered_severed_members_are_rejected() {
    let envelope = fixture("example2.suit");
    // The envelope ends with the severed text; the install bstr (`14 58 3c`) precedes it.
    let last = envelope.len() - 1;
    assert_eq!(
        verify_envelope(&flipped(&envelope, last), &draft_key()),
        Err(SuitError::SeveredDigestMismatch { key: key::TEXT })
    );
    let install = envelope.windows(3).position(|w| w == [0x14, 0x58, 0x3c]).unwrap();
    assert_eq!(
        verify_envelope(&flipped(&envelope, install + 10), &draft_key()),
        Err(SuitError::SeveredDigestMismatch { key: key::INSTALL })
    );
}

#[test]
fn an_envelope_without_a_signature_is_not_authenticated() {
    // Example 0 as the draft prints it "without COSE authentication object".
    let envelope = fixture("example0-unsigned.suit");
    assert_eq!(
        verify_envelope(&envelope, &draft_key()),
        Err(SuitError::NoAuthentication)
    );
    let m = decode_envelope_unverified(&envelope).unwrap();
    assert_eq!(m.sequence_number, 0);
}

#[test]
fn oversized_and_foreign_inputs_are_rejected() {
    let big = vec![0u8; suit::MAX_ENVELOPE_BYTES + 1];
    assert!(matches!(
        verify_envelope(&big, &draft_key()),
        Err(SuitError::TooLarge { .. })
    ));
    // A COSE_Sign1 (tag 18) is not an envelope.
    assert!(matches!(
        decode_envelope_unverified(&[0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40]),
        Err(SuitError::Malformed { .. })
    ));
    assert!(matches!(
        decode_envelope_unverified(&[]),
        Err(SuitError::Malformed { .. })
    ));
}

/// Every truncation and every single-byte change of the richest example: no panic, and a
/// change either is rejected or leaves the authenticated manifest as it was (unsigned framing,
/// such as a severed member's presence, is all that can change).
#[test]
fn no_truncation_or_byte_flip_panics_or_changes_the_manifest() {
    let envelope = fixture("example2.suit");
    let key = draft_key();
    let original = verify_envelope(&envelope, &key).unwrap();
    for len in 0..envelope.len() {
        assert!(verify_envelope(&envelope[..len], &key).is_err(), "truncated to {len}");
        let _ = decode_envelope_unverified(&envelope[..len]);
    }
    for at in 0..envelope.len() {
        for mask in [0x01, 0x80, 0xff] {
            let mut bad = envelope.clone();
            bad[at] ^= mask;
            if let Ok(m) = verify_envelope(&bad, &key) {
                if m.severed_missing.is_empty() {
                    assert_eq!(m, original, "byte {at} ^ {mask:#04x} changed the verified manifest");
                } else {
                    // Renaming a severed member's key severs it: legitimate (anyone may sever),
                    // and it only hides install / text, never alters the signed manifest.
                    assert_eq!(m.manifest_digest, original.manifest_digest, "byte {at}");
                    assert_eq!(m.components[0].image_digest, original.components[0].image_digest);
                    assert_eq!(m.class_ids(), original.class_ids());
                }
            }
            let _ = decode_envelope_unverified(&bad);
        }
    }
}

fn release(class_ids: Vec<[u8; 16]>, uri: Option<&str>) -> ReleaseSpec {
    ReleaseSpec {
        sequence_number: 20_260_101,
        vendor_id: vendor_id_for_org("vendor"),
        class_ids,
        image_digest_sha256: [0xab; 32],
        image_size: 123_456,
        uri: uri.map(String::from),
    }
}

fn signer() -> SigningKey {
    SigningKey::from_slice(&[0x11; 32]).unwrap()
}

#[test]
fn built_envelopes_round_trip() {
    let cases = [
        (vec![class_id_for_model(7)], Some("https://fw.example/v1.bin")),
        (vec![class_id_for_model(7)], None),
        (
            (1..=3).map(class_id_for_model).collect(),
            Some("https://fw.example/v2.bin"),
        ),
    ];
    for (classes, uri) in cases {
        let spec = release(classes.clone(), uri);
        let envelope = build_envelope(&spec, &signer());
        assert_eq!(envelope, build_envelope(&spec, &signer()), "deterministic");
        let m = verify_envelope(&envelope, signer().verifying_key()).unwrap();
        assert_eq!(m.sequence_number, spec.sequence_number);
        assert_eq!(m.sequences, [key::INSTALL, key::VALIDATE]);
        assert_eq!(m.vendor_ids(), [spec.vendor_id]);
        assert_eq!(m.class_ids(), classes);
        let [c] = m.components.as_slice() else {
            panic!("one component")
        };
        assert_eq!(c.alternatives.len(), classes.len());
        assert!(c.alternatives.iter().all(|a| a.vendor_id_checked && a.class_id_checked));
        assert_eq!(c.image_digest.as_ref().and_then(SuitDigest::sha256), Some([0xab; 32]));
        assert_eq!(c.image_size, Some(123_456));
        assert_eq!(c.uri.as_deref(), uri);
        let wrong = *SigningKey::from_slice(&[0x12; 32]).unwrap().verifying_key();
        assert_eq!(verify_envelope(&envelope, &wrong), Err(SuitError::BadSignature));
    }
}

/// Frozen bytes of a built envelope: a change to the layout shows in review. Regenerate with
/// `CHIPLEDGER_UPDATE_FIXTURES=1 cargo test -p chipledger-device --test suit_examples`.
#[test]
fn built_envelope_matches_the_frozen_fixture() {
    let spec = release(
        vec![class_id_for_model(1), class_id_for_model(2)],
        Some("https://fw.example/a.bin"),
    );
    let envelope = build_envelope(&spec, &signer());
    let path = format!(
        "{}/tests/fixtures/suit/chipledger-release.suit",
        env!("CARGO_MANIFEST_DIR")
    );
    if std::env::var_os("CHIPLEDGER_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, &envelope).unwrap();
    }
    assert_eq!(envelope, fixture("chipledger-release.suit"));
}

#[test]
fn ids_are_rfc9562_uuidv8_known_answers() {
    // SHA-256(tag ‖ 0x00 ‖ name)[..16] with version 8 and variant 0b10, computed independently.
    assert_eq!(class_id_for_model(7), id16("a8de0afe96a4877e9654957c7c12a7f0"));
    assert_eq!(vendor_id_for_org("vendor"), id16("25e1ca0bf29986c09ed1ec1c56a8ef1c"));
    for id in [
        class_id_for_model(0),
        class_id_for_model(u32::MAX),
        vendor_id_for_org(""),
    ] {
        assert_eq!(id[6] >> 4, 8, "version 8");
        assert_eq!(id[8] >> 6, 0b10, "RFC 9562 variant");
    }
    assert_ne!(class_id_for_model(1), class_id_for_model(2));
    assert_eq!(suit::uuid_string(&id16(VENDOR)), "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe");
}

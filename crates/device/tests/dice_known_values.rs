//! Open Profile for DICE known-answer tests: every open-dice known test value that concerns the
//! derivation (CDIs; Ed25519 and P-256 public keys and IDs; the authority key, through the
//! signature of open-dice's certificate). Fixtures: `tests/fixtures/open-dice/` (source in its
//! README).

use std::collections::BTreeMap;

use chipledger_device::dice::{
    self, Algorithm, Cdis, Config, InputValues, KeyPair, LayerKey, LayerOutput, Mode, derive_layer,
};
use der::{Decode, Encode};
use p256::ecdsa::signature::Verifier;
use sha2::{Digest, Sha512};
use x509_cert::Certificate;

const KNOWN_VALUES: &str = include_str!("fixtures/open-dice/known_values.txt");

/// One `[section]` of the fixture: key → value.
struct Section {
    name: String,
    fields: BTreeMap<String, String>,
}

impl Section {
    fn hex(&self, key: &str) -> Vec<u8> {
        let value = self
            .fields
            .get(key)
            .unwrap_or_else(|| panic!("{}: missing {key}", self.name));
        hex::decode(value).unwrap_or_else(|e| panic!("{}: {key}: {e}", self.name))
    }

    fn optional_hex(&self, key: &str) -> Option<Vec<u8>> {
        self.fields.contains_key(key).then(|| self.hex(key))
    }

    fn array<const N: usize>(&self, key: &str) -> [u8; N] {
        self.hex(key)
            .try_into()
            .unwrap_or_else(|_| panic!("{}: {key} is not {N} bytes", self.name))
    }
}

fn sections() -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in KNOWN_VALUES.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push(Section {
                name: name.to_string(),
                fields: BTreeMap::new(),
            });
            continue;
        }
        let (key, value) = line.split_once(" = ").expect("`key = value`");
        let section = sections.last_mut().expect("a field before the first section");
        section.fields.insert(key.to_string(), value.to_string());
    }
    assert_eq!(sections.len(), 3, "zero_input, hash_only_input, descriptor_input");
    sections
}

/// Owned descriptor buffers of a section, borrowed by its `InputValues`.
struct Descriptors {
    code: Option<Vec<u8>>,
    config: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
}

fn descriptors(s: &Section) -> Descriptors {
    Descriptors {
        code: s.optional_hex("code_descriptor"),
        config: s.optional_hex("config_descriptor"),
        authority: s.optional_hex("authority_descriptor"),
    }
}

fn inputs<'a>(s: &Section, d: &'a Descriptors) -> InputValues<'a> {
    let config = match &d.config {
        Some(descriptor) => Config::Descriptor(descriptor),
        None => Config::Inline(s.array("config_value")),
    };
    let mode: u8 = s.fields["mode"].parse().expect("mode byte");
    InputValues {
        code_hash: s.array("code_hash"),
        code_descriptor: d.code.as_deref(),
        config,
        authority_hash: s.array("authority_hash"),
        authority_descriptor: d.authority.as_deref(),
        mode: Mode::try_from(mode).expect("known mode"),
        hidden: s.array("hidden"),
    }
}

fn derive(s: &Section, alg: Algorithm) -> LayerOutput {
    let d = descriptors(s);
    let current = Cdis {
        cdi_attest: s.array("current_cdi_attest"),
        cdi_seal: s.array("current_cdi_seal"),
    };
    derive_layer(alg, &current, &inputs(s, &d)).expect("derivation")
}

const ALGORITHMS: [(Algorithm, &str); 2] = [(Algorithm::Ed25519, "ed25519"), (Algorithm::P256, "p256")];

#[test]
fn cdis_match_open_dice() {
    for s in sections() {
        for (alg, _) in ALGORITHMS {
            let out = derive(&s, alg);
            assert_eq!(
                hex::encode(out.next.cdi_attest),
                s.fields["next_cdi_attest"],
                "{} CDI_Attest",
                s.name
            );
            assert_eq!(
                hex::encode(out.next.cdi_seal),
                s.fields["next_cdi_seal"],
                "{} CDI_Seal",
                s.name
            );
        }
    }
}

#[test]
fn public_keys_and_ids_match_open_dice() {
    for s in sections() {
        for (alg, prefix) in ALGORITHMS {
            let out = derive(&s, alg);
            let field = |k: &str| s.fields[&format!("{prefix}.{k}")].clone();
            let what = format!("{} {prefix}", s.name);
            assert_eq!(
                hex::encode(out.subject.public_key.as_bytes()),
                field("subject_public_key"),
                "{what}"
            );
            assert_eq!(hex::encode(out.subject.id), field("subject_id"), "{what} subject id");
            assert_eq!(
                hex::encode(out.authority.id),
                field("authority_id"),
                "{what} authority id"
            );
        }
    }
}

/// The fixture's expected values are the ones in open-dice's certificate, and the authority key
/// we derive verifies that certificate's signature (open-dice publishes no authority public key
/// otherwise).
#[test]
fn open_dice_certificates_verify_with_derived_authority_keys() {
    for s in sections() {
        for (alg, prefix) in ALGORITHMS {
            let cert = Certificate::from_der(&s.hex(&format!("{prefix}.x509_certificate"))).expect("DER certificate");
            let out = derive(&s, alg);
            check_certificate_fields(&cert, &out.subject, &out.authority);
            let tbs = cert.tbs_certificate().to_der().expect("re-encode TBS");
            let signature = cert.signature().raw_bytes();
            match &out.authority.key_pair {
                KeyPair::Ed25519(key) => {
                    let sig = ed25519_dalek::Signature::from_slice(signature).expect("Ed25519 signature");
                    key.verifying_key()
                        .verify_strict(&tbs, &sig)
                        .expect("Ed25519 certificate signature");
                }
                KeyPair::P256(key) => {
                    let sig = p256::ecdsa::Signature::from_der(signature).expect("ECDSA signature");
                    key.verifying_key()
                        .verify(&tbs, &sig)
                        .expect("ES256 certificate signature");
                }
            }
        }
    }
}

fn check_certificate_fields(cert: &Certificate, subject: &LayerKey, authority: &LayerKey) {
    let tbs = cert.tbs_certificate();
    assert_eq!(tbs.serial_number().as_bytes(), subject.id);
    let spki_key = tbs.subject_public_key_info().subject_public_key.raw_bytes();
    // SPKI carries Ed25519 raw, P-256 as an uncompressed SEC1 point (0x04 ‖ x ‖ y).
    assert!(spki_key.ends_with(subject.public_key.as_bytes()));
    let issuer = tbs.issuer().to_der().expect("issuer DER");
    let authority_hex = hex::encode(authority.id);
    assert!(
        issuer.windows(40).any(|w| w == authority_hex.as_bytes()),
        "issuer serialNumber"
    );
}

/// open-dice's `DeriveFakeInputValue` (test_utils.cc): SHA-512 of the seed string is a 64-byte
/// state whose first 8 bytes are a little-endian counter; output blocks are SHA-512(state),
/// incrementing the counter after each.
fn fake_input_value(seed: &str, len: usize) -> Vec<u8> {
    let mut state: [u8; 64] = Sha512::digest(seed.as_bytes()).into();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        out.extend_from_slice(&Sha512::digest(state));
        let counter = u64::from_le_bytes(state[..8].try_into().expect("8 bytes")).wrapping_add(1);
        state[..8].copy_from_slice(&counter.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn fixture_inputs_are_open_dice_fake_inputs() {
    let expected = [
        ("current_cdi_attest", "cdi_attest", dice::CDI_SIZE),
        ("current_cdi_seal", "cdi_seal", dice::CDI_SIZE),
        ("code_hash", "code_hash", dice::HASH_SIZE),
        ("authority_hash", "authority_hash", dice::HASH_SIZE),
        ("config_value", "inline_config", dice::INLINE_CONFIG_SIZE),
        ("code_descriptor", "code_desc", 100),
        ("config_descriptor", "config_desc", 40),
        ("authority_descriptor", "authority_desc", 65),
    ];
    for s in sections().iter().filter(|s| s.name != "zero_input") {
        for (key, seed, len) in expected {
            if let Some(value) = s.optional_hex(key) {
                assert_eq!(value, fake_input_value(seed, len), "{} {key}", s.name);
            }
        }
    }
}

/// The first layer: the UDS stands in for both current CDIs.
#[test]
fn zero_uds_is_zero_input() {
    let s = sections()
        .into_iter()
        .find(|s| s.name == "zero_input")
        .expect("zero_input");
    let next = dice::derive_next(&Cdis::from_uds(&[0; dice::UDS_SIZE]), &InputValues::default()).expect("derive");
    assert_eq!(hex::encode(next.cdi_attest), s.fields["next_cdi_attest"]);
    assert_eq!(hex::encode(next.cdi_seal), s.fields["next_cdi_seal"]);
}

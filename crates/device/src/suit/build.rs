//! Building a standard single-component release envelope (what `chipledger suit make` emits).
//!
//! ```text
//! common:   components [[h'00']]
//!           shared-sequence [ override-parameters {vendor-id, (class-id,) image-digest, image-size},
//!                             condition-vendor-identifier 15,
//!                             condition-class-identifier 15            ; one class id, or
//!                             try-each [ <<[override {class-id}, condition-class-identifier 15]>>, … ] ]
//! validate: [ condition-image-match 15 ]
//! install:  [ (override {uri}, fetch 2,) condition-image-match 15 ]
//! ```
//! Keys are written in ascending order and every integer in its shortest form, so the same
//! spec and key give the same bytes (ES256 signatures are deterministic, RFC 6979).

use alloc::{boxed::Box, string::String, vec, vec::Vec};

use coset::{
    CoseSign1Builder, HeaderBuilder, TaggedCborSerializable,
    cbor::value::{Integer, Value},
    iana,
};
use p256::ecdsa::{Signature, SigningKey, signature::Signer};

use super::{COSE_ALG_SHA256, ReleaseSpec, SUIT_ENVELOPE_TAG, SUIT_MANIFEST_VERSION, SuitDigest, key};

/// The reporting policy our commands declare: send a record on success and on failure, and
/// system info on failure (bits 0, 1, 3 — what the draft's examples call Rec-Pass/Rec-Fail/Sys-Fail).
const REPORT_POLICY: u64 = 0b1011;
/// The policy the draft's examples use for fetch: a record on failure.
const REPORT_ON_FAILURE: u64 = 0b0010;

const CONDITION_VENDOR_IDENTIFIER: u64 = 1;
const CONDITION_CLASS_IDENTIFIER: u64 = 2;
const CONDITION_IMAGE_MATCH: u64 = 3;
const DIRECTIVE_TRY_EACH: u64 = 15;
const DIRECTIVE_OVERRIDE_PARAMETERS: u64 = 20;
const DIRECTIVE_FETCH: u64 = 21;
const PARAMETER_VENDOR_IDENTIFIER: u64 = 1;
const PARAMETER_CLASS_IDENTIFIER: u64 = 2;
const PARAMETER_IMAGE_DIGEST: u64 = 3;
const PARAMETER_IMAGE_SIZE: u64 = 14;
const PARAMETER_URI: u64 = 21;

/// The component our envelopes describe: `[h'00']`, as in the draft's examples.
const COMPONENT_ID: [u8; 1] = [0];

fn uint(v: u64) -> Value {
    Value::Integer(Integer::from(v))
}

/// Encodes a value; writing CBOR into a `Vec` cannot fail.
fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    coset::cbor::ser::into_writer(value, &mut out).expect("writing CBOR to a Vec cannot fail");
    out
}

fn bstr_of(value: &Value) -> Value {
    Value::Bytes(encode(value))
}

fn map(entries: Vec<(u64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (uint(k), v)).collect())
}

fn digest_value(d: &SuitDigest) -> Value {
    Value::Array(vec![
        Value::Integer(Integer::from(d.alg)),
        Value::Bytes(d.bytes.clone()),
    ])
}

fn shared_sequence(spec: &ReleaseSpec) -> Value {
    let image_digest = SuitDigest {
        alg: COSE_ALG_SHA256,
        bytes: spec.image_digest_sha256.to_vec(),
    };
    let mut params = vec![(PARAMETER_VENDOR_IDENTIFIER, Value::Bytes(spec.vendor_id.to_vec()))];
    if let [class] = spec.class_ids.as_slice() {
        params.push((PARAMETER_CLASS_IDENTIFIER, Value::Bytes(class.to_vec())));
    }
    params.push((PARAMETER_IMAGE_DIGEST, bstr_of(&digest_value(&image_digest))));
    params.push((PARAMETER_IMAGE_SIZE, uint(spec.image_size)));
    let mut seq = vec![
        uint(DIRECTIVE_OVERRIDE_PARAMETERS),
        map(params),
        uint(CONDITION_VENDOR_IDENTIFIER),
        uint(REPORT_POLICY),
    ];
    match spec.class_ids.as_slice() {
        [] => {}
        [_] => seq.extend([uint(CONDITION_CLASS_IDENTIFIER), uint(REPORT_POLICY)]),
        several => {
            let branches = several
                .iter()
                .map(|class| {
                    bstr_of(&Value::Array(vec![
                        uint(DIRECTIVE_OVERRIDE_PARAMETERS),
                        map(vec![(PARAMETER_CLASS_IDENTIFIER, Value::Bytes(class.to_vec()))]),
                        uint(CONDITION_CLASS_IDENTIFIER),
                        uint(REPORT_POLICY),
                    ]))
                })
                .collect();
            seq.extend([uint(DIRECTIVE_TRY_EACH), Value::Array(branches)]);
        }
    }
    Value::Array(seq)
}

fn install_sequence(uri: Option<&String>) -> Value {
    let mut seq = Vec::new();
    if let Some(uri) = uri {
        seq.extend([
            uint(DIRECTIVE_OVERRIDE_PARAMETERS),
            map(vec![(PARAMETER_URI, Value::Text(uri.clone()))]),
            uint(DIRECTIVE_FETCH),
            uint(REPORT_ON_FAILURE),
        ]);
    }
    seq.extend([uint(CONDITION_IMAGE_MATCH), uint(REPORT_POLICY)]);
    Value::Array(seq)
}

/// The encoded `SUIT_Manifest` map.
fn manifest(spec: &ReleaseSpec) -> Vec<u8> {
    let common = map(vec![
        (
            key::COMMON_COMPONENTS,
            Value::Array(vec![Value::Array(vec![Value::Bytes(COMPONENT_ID.to_vec())])]),
        ),
        (key::COMMON_SHARED_SEQUENCE, bstr_of(&shared_sequence(spec))),
    ]);
    let validate = Value::Array(vec![uint(CONDITION_IMAGE_MATCH), uint(REPORT_POLICY)]);
    encode(&map(vec![
        (key::MANIFEST_VERSION, uint(SUIT_MANIFEST_VERSION)),
        (key::MANIFEST_SEQUENCE_NUMBER, uint(spec.sequence_number)),
        (key::COMMON, bstr_of(&common)),
        (key::VALIDATE, bstr_of(&validate)),
        (key::INSTALL, bstr_of(&install_sequence(spec.uri.as_ref()))),
    ]))
}

/// Builds and signs (ES256) a tagged SUIT_Envelope for `spec`; see the module docs for the layout.
pub fn build_envelope(spec: &ReleaseSpec, signer: &SigningKey) -> Vec<u8> {
    let manifest = manifest(spec);
    // ciborium writes the shortest head, so this is the bstr the envelope will carry.
    let manifest_bstr = encode(&Value::Bytes(manifest.clone()));
    let digest = encode(&digest_value(&SuitDigest::sha256_of(&manifest_bstr)));
    let protected = HeaderBuilder::new().algorithm(iana::Algorithm::ES256).build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .create_detached_signature(&digest, b"", |tbs| {
            let sig: Signature = signer.sign(tbs);
            sig.to_bytes().to_vec()
        })
        .build()
        .to_tagged_vec()
        .expect("a COSE_Sign1 with a protected header encodes");
    let auth = encode(&Value::Array(vec![Value::Bytes(digest), Value::Bytes(sign1)]));
    encode(&Value::Tag(
        SUIT_ENVELOPE_TAG,
        Box::new(map(vec![
            (key::AUTHENTICATION_WRAPPER, Value::Bytes(auth)),
            (key::MANIFEST, Value::Bytes(manifest)),
        ])),
    ))
}

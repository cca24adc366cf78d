//! `chipledger cose verify` as an auditor runs it, on the cose-wg/Examples COSE_Sign1 fixtures
//! (`crates/device/tests/fixtures/cose/`, source and commit in its README): the ES256 and EdDSA
//! examples and the `sign-pass-*` tests verify (exit 0, payload hex printed), every
//! `sign-fail-*` test is refused (exit 1). Keys are given as the examples give them, as JWKs;
//! PEM keys, binary input and a chipledger device record are checked too.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::{Value, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../device/tests/fixtures/cose")
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join(name)).unwrap()).unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chipledger-cose-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn chipledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chipledger"))
        .args(args)
        .env("CHIPLEDGER_LOG", "error")
        .output()
        .expect("run chipledger")
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The example's signing key as a public JWK (the EdDSA examples give `x_hex`, not `x`).
fn public_jwk(key: &Value) -> Value {
    match key["kty"].as_str().unwrap() {
        "EC" => json!({ "kty": "EC", "crv": key["crv"], "x": key["x"], "y": key["y"] }),
        "OKP" => {
            let x = hex::decode(key["x_hex"].as_str().unwrap()).unwrap();
            json!({ "kty": "OKP", "crv": key["crv"], "x": b64url(&x) })
        }
        other => panic!("unexpected kty {other}"),
    }
}

/// Runs `cose verify --json` on an example (its key as JWK, its output as hex); returns the
/// exit code and the JSON printed.
fn verify_example(dir: &Path, name: &str) -> (i32, Value) {
    let ex = fixture(name);
    let sign0 = &ex["input"]["sign0"];
    let key = dir.join(format!("{name}.jwk"));
    std::fs::write(&key, public_jwk(&sign0["key"]).to_string()).unwrap();
    let msg = dir.join(format!("{name}.hex"));
    std::fs::write(&msg, ex["output"]["cbor"].as_str().unwrap()).unwrap();
    let aad = sign0["external"].as_str().unwrap_or("");
    let out = chipledger(&[
        "cose",
        "verify",
        "--key",
        key.to_str().unwrap(),
        msg.to_str().unwrap(),
        "--external-aad",
        aad,
        "--json",
    ]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap(), json)
}

#[test]
fn cose_wg_sign1_examples_verify_and_failing_variants_are_refused() {
    let dir = temp_dir("examples");
    let content_hex = hex::encode("This is the content.");
    let pass = [
        ("ecdsa-sig-01.json", "ES256"),
        ("eddsa-sig-01.json", "EdDSA"),
        ("sign-pass-01.json", "ES256"),
        ("sign-pass-02.json", "ES256"),
        ("sign-pass-03.json", "ES256"),
    ];
    for (name, alg) in pass {
        let (code, json) = verify_example(&dir, name);
        assert_eq!(code, 0, "{name}: {json}");
        assert_eq!(json["valid"], true);
        assert_eq!(json["alg"], alg, "{name}");
        assert_eq!(json["payload_hex"], content_hex.as_str(), "{name}");
    }
    // Each failing test with the error it must produce.
    let fail = [
        ("sign-fail-01.json", "unexpected_tag"),        // tag 998
        ("sign-fail-02.json", "bad_signature"),         // signature changed
        ("sign-fail-03.json", "malformed"),             // alg -999: unregistered, refused while parsing
        ("sign-fail-04.json", "unsupported_algorithm"), // alg "unknown"
        ("sign-fail-06.json", "bad_signature"),         // protected attribute added
        ("sign-fail-07.json", "bad_signature"),         // protected attribute removed
    ];
    for (name, code_name) in fail {
        assert_eq!(fixture(name)["fail"], true, "{name} is a failing test");
        let (code, json) = verify_example(&dir, name);
        assert_eq!(code, 1, "{name}: {json}");
        assert_eq!(json["valid"], false);
        assert_eq!(json["error_code"], code_name, "{name}");
    }
}

#[test]
fn tampered_eddsa_example_and_missing_external_aad_are_refused() {
    let dir = temp_dir("tampered");
    // cose-wg has no failing EdDSA Sign1 test: flip one payload byte of eddsa-sig-01.
    let ex = fixture("eddsa-sig-01.json");
    let key = dir.join("ed.jwk");
    std::fs::write(&key, public_jwk(&ex["input"]["sign0"]["key"]).to_string()).unwrap();
    let mut bytes = hex::decode(ex["output"]["cbor"].as_str().unwrap()).unwrap();
    bytes[20] ^= 0x01;
    let msg = dir.join("ed.cbor");
    std::fs::write(&msg, &bytes).unwrap();
    let out = chipledger(&["cose", "verify", "--key", key.to_str().unwrap(), msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature does not verify"));

    // sign-pass-02 verifies only with its external AAD.
    let ex = fixture("sign-pass-02.json");
    let key = dir.join("ec.jwk");
    std::fs::write(&key, public_jwk(&ex["input"]["sign0"]["key"]).to_string()).unwrap();
    let msg = dir.join("pass02.hex");
    std::fs::write(&msg, ex["output"]["cbor"].as_str().unwrap()).unwrap();
    let out = chipledger(&["cose", "verify", "--key", key.to_str().unwrap(), msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn pem_keys_binary_input_and_wrong_key_types() {
    use p256::pkcs8::EncodePublicKey;
    let dir = temp_dir("pem");
    let ex = fixture("ecdsa-sig-01.json");
    let jwk = &ex["input"]["sign0"]["key"];
    let coord = |n: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk[n].as_str().unwrap())
            .unwrap()
    };
    let sec1 = [&[0x04][..], &coord("x"), &coord("y")].concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let pem = dir.join("ec.pem");
    let der = key.to_public_key_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_bytes());
    std::fs::write(
        &pem,
        format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n"),
    )
    .unwrap();
    let msg = dir.join("ecdsa.cbor");
    std::fs::write(&msg, hex::decode(ex["output"]["cbor"].as_str().unwrap()).unwrap()).unwrap();
    let out = chipledger(&["cose", "verify", "--key", pem.to_str().unwrap(), msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("valid ES256 COSE_Sign1"), "{stdout}");
    assert!(stdout.contains(&hex::encode("This is the content.")));

    // The ES256 message under an Ed25519 key: refused as an algorithm mismatch.
    let ed = fixture("eddsa-sig-01.json");
    let ed_key = dir.join("ed.jwk");
    std::fs::write(&ed_key, public_jwk(&ed["input"]["sign0"]["key"]).to_string()).unwrap();
    let out = chipledger(&[
        "cose",
        "verify",
        "--key",
        ed_key.to_str().unwrap(),
        msg.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error_code"], "algorithm_mismatch");

    // Usage errors: a missing key file, a JWK of an unsupported curve.
    let out = chipledger(&["cose", "verify", "--key", "/nonexistent.pem", msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let bad = dir.join("p384.jwk");
    std::fs::write(&bad, r#"{"kty":"EC","crv":"P-384","x":"AA","y":"AA"}"#).unwrap();
    let out = chipledger(&["cose", "verify", "--key", bad.to_str().unwrap(), msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_device_record_verifies_as_a_plain_cose_sign1() {
    use chipledger_device::record::{Record, RecordHash, sign_record};
    use chipledger_types::device_tx::DeviceId;
    let dir = temp_dir("record");
    let alias = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let record = Record {
        device: DeviceId([1; 20]),
        stream: "meter".into(),
        seq: 1,
        prev: RecordHash::ZERO,
        timestamp_ms: 1,
        epoch: 0,
        payload: vec![0xd0, 0x83, 0x40, 0xa0, 0x40],
    };
    let signed = sign_record(&record, &alias).unwrap();
    let msg = dir.join("record.cbor");
    std::fs::write(&msg, &signed.bytes).unwrap();
    let key = dir.join("alias.jwk");
    let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64url(alias.verifying_key().as_bytes()) });
    std::fs::write(&key, jwk.to_string()).unwrap();
    let out = chipledger(&[
        "cose",
        "verify",
        "--key",
        key.to_str().unwrap(),
        msg.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["alg"], "EdDSA");
    assert_eq!(json["tagged"], true);
    assert_eq!(json["payload_hex"], hex::encode(record.encode_body()).as_str());
}

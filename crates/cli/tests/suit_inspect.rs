//! `chipledger suit inspect` / `suit make` as a user runs them: the draft-ietf-suit-manifest
//! examples (fixtures in `crates/device/tests/fixtures/suit/`, sources in its README) verify with
//! exit code 0, tampered copies and wrong keys exit 1 with the typed error, and an envelope we
//! make with the draft's published key inspects back to the image we gave it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chipledger_device::suit::{class_id_for_model, uuid_string, vendor_id_for_org};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../device/tests/fixtures/suit")
}

fn public_key() -> PathBuf {
    fixtures().join("draft-suit-manifest-public-key.pem")
}

fn chipledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chipledger"))
        .args(args)
        .env("CHIPLEDGER_LOG", "error")
        .output()
        .expect("run chipledger")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("chipledger-suit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn inspect_json(key: &Path, file: &Path) -> (i32, Value, String) {
    let out = chipledger(&[
        "suit",
        "inspect",
        "--key",
        key.to_str().unwrap(),
        file.to_str().unwrap(),
        "--json",
    ]);
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap(),
        json,
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn inspect_verifies_a_draft_example_and_rejects_a_tampered_copy() {
    let example = fixtures().join("example1.suit");
    let (code, json, _) = inspect_json(&public_key(), &example);
    assert_eq!(code, 0);
    assert_eq!(json["valid"], true);
    assert_eq!(json["sequence_number"], 1);
    let c = &json["components"][0];
    assert_eq!(
        c["image_digest"]["hex"],
        "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210"
    );
    assert_eq!(c["image_size"], 34768);
    assert_eq!(c["vendor_id"], "fa6b4a53-d5ad-5fdf-be9d-e663e4d41ffe");
    assert_eq!(c["class_id"], "1492af14-2569-5e48-bf42-9b2d51f2ab45");
    assert_eq!(c["uri"], "http://example.com/file.bin");

    let human = chipledger(&[
        "suit",
        "inspect",
        "--key",
        public_key().to_str().unwrap(),
        example.to_str().unwrap(),
    ]);
    assert_eq!(human.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&human.stdout).contains("sequence number: 1"));

    // Flip the last byte (inside the manifest).
    let dir = temp_dir("tamper");
    let mut bytes = std::fs::read(&example).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    let tampered = dir.join("tampered.suit");
    std::fs::write(&tampered, &bytes).unwrap();
    let (code, json, stderr) = inspect_json(&public_key(), &tampered);
    assert_eq!(code, 1);
    assert_eq!(json["valid"], false);
    assert_eq!(json["error_code"], "manifest_digest_mismatch");
    assert!(stderr.contains("does not match the signed SUIT_Digest"), "{stderr}");
}

#[test]
fn inspect_with_the_wrong_key_is_invalid_and_a_missing_file_is_a_usage_error() {
    let dir = temp_dir("wrongkey");
    // A valid P-256 SubjectPublicKeyInfo that did not sign the examples.
    let other = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEQiVI+I+3gv+17KN0RFLHKh5Vj71v\n\
        c75eSOkyMsxFxbFsTNEMTLjVuKFxOelIgsiZJXKZNCX0FBmrfpCkKklCcg==\n\
        -----END PUBLIC KEY-----\n";
    let key = dir.join("other.pem");
    std::fs::write(&key, other).unwrap();
    let (code, json, _) = inspect_json(&key, &fixtures().join("example0.suit"));
    assert_eq!(code, 1);
    assert_eq!(json["error_code"], "bad_signature");

    let out = chipledger(&[
        "suit",
        "inspect",
        "--key",
        public_key().to_str().unwrap(),
        "/nonexistent/x.suit",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn make_then_inspect_round_trips() {
    let dir = temp_dir("make");
    let image = dir.join("fw.bin");
    std::fs::write(&image, b"chipledger firmware image v1").unwrap();
    let envelope = dir.join("fw.suit");
    let private = fixtures().join("draft-suit-manifest-private-key.pem");
    let out = chipledger(&[
        "suit",
        "make",
        "--key",
        private.to_str().unwrap(),
        "--image",
        image.to_str().unwrap(),
        "--sequence",
        "42",
        "--vendor",
        "vendor",
        "--model",
        "150,151",
        "--uri",
        "https://fw.example/fw.bin",
        "--out",
        envelope.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, json, _) = inspect_json(&public_key(), &envelope);
    assert_eq!(code, 0);
    assert_eq!(json["sequence_number"], 42);
    let c = &json["components"][0];
    assert_eq!(
        c["image_digest"]["hex"],
        hex::encode(Sha256::digest(b"chipledger firmware image v1"))
    );
    assert_eq!(c["image_size"], 28);
    assert_eq!(c["uri"], "https://fw.example/fw.bin");
    let classes: Vec<&str> = c["alternatives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["class_id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = [150, 151].map(|m| uuid_string(&class_id_for_model(m))).to_vec();
    assert_eq!(classes, expected);
    assert_eq!(c["vendor_id"], uuid_string(&vendor_id_for_org("vendor")));
    assert!(
        c["alternatives"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["class_id_checked"] == true)
    );
    let _ = std::fs::remove_dir_all(dir);
}

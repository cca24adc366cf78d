//! The DICE chain `manufacturer CA → DeviceID → Alias` checked by an independent verifier
//! (`openssl verify`, `openssl x509 -text`), plus negative cases for our own `verify_chain`.
//! Both key types: P-256 throughout, and a P-256 CA endorsing an Ed25519 DeviceID key that
//! signs an Ed25519 Alias certificate (RFC 8410), as a [`SoftChip`] with Ed25519 keys makes it.

use std::path::{Path, PathBuf};
use std::process::Command;

use chipledger_device::cert::{
    CertError, CertRequest, CertRole, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert,
    issue_deviceid_cert, key_id, verify_chain,
};
use chipledger_device::chip::{Chip, Firmware, SoftChip};
use chipledger_device::dice::UDS_SIZE;
use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey};
use p256::ecdsa::SigningKey;

/// 2026-01-01T00:00:00Z: a fixed "now" so the tests do not depend on the wall clock.
const NOW_UNIX_S: u64 = 1_767_225_600;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).expect("valid scalar")
}

fn tcb(layer: u64, fw: u8) -> DiceTcbInfo {
    DiceTcbInfo {
        vendor: Some("chipledger".into()),
        model: Some("streetlight-v2".into()),
        version: Some("2.1.0".into()),
        svn: Some(3),
        layer: Some(layer),
        fwids: Some(vec![Fwid::sha256(&[fw; 32]), Fwid::sha512(&[fw; 64])]),
        ..Default::default()
    }
}

struct Chain {
    ca: Vec<u8>,
    deviceid: Vec<u8>,
    alias: Vec<u8>,
}

/// CA key seed 1; DeviceID key `device_seed`; Alias key `device_seed + 100`.
fn chain(ca_key: &SigningKey, ca: &[u8], device_seed: u8) -> Chain {
    let dev_key = key(device_seed);
    let dev_tcb = tcb(0, 0x10);
    let dev_id = key_id(dev_key.verifying_key());
    let req = CertRequest {
        subject_public_key: dev_key.verifying_key(),
        subject_id: &dev_id,
        tcb_info: &dev_tcb,
        validity: CertValidity::DICE_DEFAULT,
    };
    let deviceid = issue_deviceid_cert(ca_key, ca, &req).expect("issue DeviceID");

    let alias_key = key(device_seed + 100);
    let alias_tcb = tcb(1, 0x20);
    let alias_id = key_id(alias_key.verifying_key());
    let req = CertRequest {
        subject_public_key: alias_key.verifying_key(),
        subject_id: &alias_id,
        tcb_info: &alias_tcb,
        validity: CertValidity::DICE_DEFAULT,
    };
    let alias = issue_alias_cert(&dev_key, &deviceid, &req).expect("issue Alias");
    Chain {
        ca: ca.to_vec(),
        deviceid,
        alias,
    }
}

fn manufacturer() -> (SigningKey, Vec<u8>) {
    let ca_key = key(1);
    let ca = issue_ca_cert(&ca_key, "CN=Acme Device CA,O=Acme", 1, CertValidity::DICE_DEFAULT).expect("issue CA");
    (ca_key, ca)
}

/// A fresh directory per test (removed on drop); no shared state between tests.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chipledger-cert-openssl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Writes `der` and converts it to PEM with openssl itself; returns the PEM path.
fn write_pem(dir: &Path, name: &str, der: &[u8]) -> String {
    let der_path = dir.join(format!("{name}.der"));
    let pem_path = dir.join(format!("{name}.pem"));
    std::fs::write(&der_path, der).expect("write DER");
    let (ok, out) = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        der_path.to_str().unwrap(),
        "-out",
        pem_path.to_str().unwrap(),
    ]);
    assert!(ok, "openssl could not parse {name}: {out}");
    pem_path.to_str().unwrap().to_owned()
}

fn openssl_verify(dir: &Path, c: &Chain) -> (bool, String) {
    let ca = write_pem(dir, "ca", &c.ca);
    let deviceid = write_pem(dir, "deviceid", &c.deviceid);
    let alias = write_pem(dir, "alias", &c.alias);
    // -attime pins "now" so the result does not depend on the wall clock.
    let at = NOW_UNIX_S.to_string();
    openssl(&[
        "verify",
        "-attime",
        &at,
        "-CAfile",
        &ca,
        "-untrusted",
        &deviceid,
        &alias,
    ])
}

#[test]
fn openssl_verifies_the_chain_and_shows_dice_tcb_info() {
    let dir = TempDir::new("ok");
    let (ca_key, ca) = manufacturer();
    let c = chain(&ca_key, &ca, 2);

    let (ok, out) = openssl_verify(&dir.0, &c);
    assert!(ok, "openssl verify failed:\n{out}");
    assert!(out.contains("alias.pem: OK"), "{out}");

    for name in ["deviceid", "alias"] {
        let pem = dir.0.join(format!("{name}.pem"));
        let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", pem.to_str().unwrap()]);
        assert!(ok, "{text}");
        assert!(text.contains("2.23.133.5.4.1"), "{name} lacks DiceTcbInfo:\n{text}");
        assert!(text.contains("ecdsa-with-SHA256"), "{text}");
    }
    let alias = dir.0.join("alias.pem");
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", alias.to_str().unwrap()]);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("Digital Signature"), "{text}");
    let deviceid = dir.0.join("deviceid.pem");
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", deviceid.to_str().unwrap()]);
    assert!(text.contains("CA:TRUE, pathlen:0"), "{text}");
    assert!(text.contains("Certificate Sign"), "{text}");

    let v = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(NOW_UNIX_S)).expect("our verifier");
    assert_eq!(v.alias_public_key, *key(102).verifying_key());
    assert_eq!(v.alias_tcb_info, tcb(1, 0x20));
}

#[test]
fn tampered_alias_signature_is_rejected_by_us_and_by_openssl() {
    let dir = TempDir::new("tampered");
    let (ca_key, ca) = manufacturer();
    let mut c = chain(&ca_key, &ca, 2);
    let last = c.alias.len() - 1; // inside the signature's INTEGER s
    c.alias[last] ^= 0x01;

    let err = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(
        matches!(err, CertError::BadSignature { role: CertRole::Alias }),
        "{err}"
    );
    let (ok, out) = openssl_verify(&dir.0, &c);
    assert!(!ok, "openssl accepted a tampered certificate:\n{out}");
}

#[test]
fn alias_from_another_device_is_rejected() {
    let (ca_key, ca) = manufacturer();
    let a = chain(&ca_key, &ca, 2);
    let b = chain(&ca_key, &ca, 3);
    let err = verify_chain(&a.ca, &a.deviceid, &b.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(
        matches!(err, CertError::IssuerMismatch { role: CertRole::Alias }),
        "{err}"
    );
}

#[test]
fn deviceid_from_another_manufacturer_is_rejected() {
    let (ca_key, ca) = manufacturer();
    let c = chain(&ca_key, &ca, 2);
    let other_key = key(9);
    let other_ca =
        issue_ca_cert(&other_key, "CN=Other Device CA,O=Other", 1, CertValidity::DICE_DEFAULT).expect("issue other CA");
    let err = verify_chain(&other_ca, &c.deviceid, &c.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::IssuerMismatch {
                role: CertRole::DeviceId
            }
        ),
        "{err}"
    );
}

#[test]
fn alias_cannot_stand_in_for_deviceid() {
    let (ca_key, ca) = manufacturer();
    let c = chain(&ca_key, &ca, 2);
    let err = verify_chain(&c.ca, &c.alias, &c.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(matches!(err, CertError::IssuerMismatch { .. }), "{err}");
}

/// The chain an Ed25519 [`SoftChip`] (UDS `[uds; UDS_SIZE]`) gets: its DeviceID certificate from the
/// P-256 manufacturer CA, and the Alias certificate it issues itself when booting firmware.
fn ed25519_chip_chain(ca_key: &SigningKey, ca: &[u8], uds: u8) -> (Chain, DevicePublicKey) {
    let mut chip = SoftChip::with_alg([uds; UDS_SIZE], DeviceKeyAlg::Ed25519, "Acme", "streetlight-v2").expect("chip");
    let request = chip.deviceid_request();
    let deviceid = issue_deviceid_cert(ca_key, ca, &request.cert_request()).expect("issue DeviceID");
    chip.install_deviceid_cert(ca, &deviceid).expect("install DeviceID");
    let firmware = Firmware {
        name: "lamp-fw",
        version: "2.1.0",
        svn: 3,
        image: b"ed25519 firmware image",
    };
    let layer = chip.boot(&firmware).expect("boot");
    let chain = Chain {
        ca: ca.to_vec(),
        deviceid,
        alias: layer.alias_cert_der,
    };
    (chain, layer.alias_public_key)
}

#[test]
fn openssl_verifies_an_ed25519_chain() {
    let dir = TempDir::new("ed25519");
    let (ca_key, ca) = manufacturer();
    let (c, alias_key) = ed25519_chip_chain(&ca_key, &ca, 5);

    let (ok, out) = openssl_verify(&dir.0, &c);
    assert!(ok, "openssl verify failed:\n{out}");
    assert!(out.contains("alias.pem: OK"), "{out}");

    let text_of = |name: &str| {
        let pem = dir.0.join(format!("{name}.pem"));
        let (ok, text) = openssl(&["x509", "-noout", "-text", "-in", pem.to_str().unwrap()]);
        assert!(ok, "{text}");
        text
    };
    // DeviceID: an Ed25519 key endorsed by the P-256 CA with ecdsa-with-SHA256.
    let deviceid = text_of("deviceid");
    assert!(
        deviceid.contains("Signature Algorithm: ecdsa-with-SHA256"),
        "{deviceid}"
    );
    assert!(deviceid.contains("Public Key Algorithm: ED25519"), "{deviceid}");
    assert!(deviceid.contains("2.23.133.5.4.1"), "{deviceid}");
    // Alias: an Ed25519 key signed by the Ed25519 DeviceID key.
    let alias = text_of("alias");
    assert!(alias.contains("Signature Algorithm: ED25519"), "{alias}");
    assert!(alias.contains("Public Key Algorithm: ED25519"), "{alias}");
    assert!(!alias.contains("ecdsa"), "{alias}");
    assert!(alias.contains("2.23.133.5.4.1"), "{alias}");

    let v = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(NOW_UNIX_S)).expect("our verifier");
    assert_eq!(v.alias_public_key, alias_key);
    assert_eq!(v.deviceid_public_key.alg(), DeviceKeyAlg::Ed25519);
}

#[test]
fn tampered_ed25519_alias_signature_is_rejected_by_us_and_by_openssl() {
    let dir = TempDir::new("ed25519-tampered");
    let (ca_key, ca) = manufacturer();
    let (mut c, _) = ed25519_chip_chain(&ca_key, &ca, 5);
    let last = c.alias.len() - 1; // the last byte of the raw 64-byte Ed25519 signature (S)
    c.alias[last] ^= 0x01;

    let err = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(
        matches!(err, CertError::BadSignature { role: CertRole::Alias }),
        "{err}"
    );
    let (ok, out) = openssl_verify(&dir.0, &c);
    assert!(!ok, "openssl accepted a tampered certificate:\n{out}");
}

#[test]
fn alias_signed_with_the_other_algorithm_is_a_typed_mismatch() {
    let (ca_key, ca) = manufacturer();
    let p256 = chain(&ca_key, &ca, 2);
    let (ed, _) = ed25519_chip_chain(&ca_key, &ca, 5);
    let err = verify_chain(&ca, &ed.deviceid, &p256.alias, Some(NOW_UNIX_S)).unwrap_err();
    assert!(
        matches!(
            err,
            CertError::AlgorithmMismatch {
                role: CertRole::Alias,
                issuer_alg: DeviceKeyAlg::Ed25519,
                ..
            }
        ),
        "{err}"
    );
}

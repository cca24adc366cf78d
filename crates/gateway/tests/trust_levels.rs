//! Trust levels end to end on real DICE chips (`SoftChip`, both key algorithms): a record signed
//! by the attested Alias key is trust 2, by the registered DeviceID key trust 1, by a key an
//! unregistered device announced itself trust 0; once the attested firmware changes (a new
//! layer, so a new Alias key), the old layer's Alias key gives no trust at all. The directory is
//! a `MemoryDirectory` filled as `chipledger gateway`'s `HttpDirectory` fills it from the node
//! API (DeviceID key from the certificate, Alias key from the attestation).

use std::path::PathBuf;

use chipledger_device::cert::{CertValidity, issue_ca_cert, issue_deviceid_cert};
use chipledger_device::chip::{BootedLayer, Chip, Firmware, SoftChip};
use chipledger_device::dice::LayerKey;
use chipledger_device::key::{DeviceKeyAlg, DeviceSigner};
use chipledger_device::record::{RecordChainWriter, SignedRecord};
use chipledger_gateway::{Gateway, GatewayConfig, IngestError, MemoryDirectory};
use chipledger_types::data_tx::TrustLevel;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::record::RecordError;

/// A minimal tagged COSE_Encrypt0 (`16([h'', {}, h'00'])`): the gateway never opens payloads.
const PAYLOAD: [u8; 6] = [0xd0, 0x83, 0x40, 0xa0, 0x41, 0x00];

/// A scratch directory per test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("chipledger-trust-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn firmware(image: &[u8]) -> Firmware<'_> {
    Firmware {
        name: "lamp-fw",
        version: "2.1.0",
        svn: 1,
        image,
    }
}

/// A chip with UDS `uds` and its DeviceID certificate from a test CA (as the factory does).
fn provisioned(uds: u8, alg: DeviceKeyAlg) -> SoftChip {
    let ca_key = p256::ecdsa::SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
    let ca_der = issue_ca_cert(&ca_key, "CN=Test CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
    let mut chip = SoftChip::with_alg([uds; 32], alg, "maker", "lamp").unwrap();
    let deviceid_der = issue_deviceid_cert(&ca_key, &ca_der, &chip.deviceid_request().cert_request()).unwrap();
    chip.install_deviceid_cert(&ca_der, &deviceid_der).unwrap();
    chip
}

/// The chip's next record on `chain`, signed by its booted layer's Alias key.
fn by_alias(chip: &SoftChip, chain: &mut RecordChainWriter, t: u64) -> SignedRecord {
    chip.sign_record(chain, t, 0, PAYLOAD.to_vec()).unwrap()
}

fn by_key<'k>(key: impl Into<DeviceSigner<'k>>, chain: &mut RecordChainWriter, t: u64) -> SignedRecord {
    chain.sign_next(key, t, 0, PAYLOAD.to_vec()).unwrap().1
}

fn trust(gw: &mut Gateway, dir: &MemoryDirectory, record: &SignedRecord) -> Result<TrustLevel, IngestError> {
    gw.ingest(&record.bytes, dir).map(|a| a.trust)
}

/// Refused because no key the directory holds for the device verifies the signature.
fn no_key_verifies(outcome: Result<TrustLevel, IngestError>) -> bool {
    matches!(
        outcome,
        Err(IngestError::Record(RecordError::BadSignature) | IngestError::NoMatchingKey(_))
    )
}

/// One registered chip booted into firmware 1 and attested; a second chip with the same UDS
/// stands for the same device after it booted firmware 2 (DICE: same DeviceID key, new Alias).
struct Scene {
    id: DeviceId,
    old: SoftChip,
    new: SoftChip,
    old_layer: BootedLayer,
    new_layer: BootedLayer,
    deviceid: LayerKey,
}

fn scene(alg: DeviceKeyAlg) -> Scene {
    let uds = 21;
    let (mut old, mut new) = (provisioned(uds, alg), provisioned(uds, alg));
    let old_layer = old.boot(&firmware(b"lamp firmware 2.1.0")).unwrap();
    let new_layer = new.boot(&firmware(b"lamp firmware 2.2.0")).unwrap();
    assert_ne!(old_layer.alias_public_key, new_layer.alias_public_key);
    // The DeviceID key pair, as the chip derives it from its UDS (the test plays the chip).
    let deviceid = LayerKey::derive(alg, &[uds; 32]).unwrap();
    assert_eq!(
        DeviceSigner::from(&deviceid.key_pair).public_key(),
        old.deviceid_public_key()
    );
    Scene {
        id: DeviceId(old.device_id()),
        old,
        new,
        old_layer,
        new_layer,
        deviceid,
    }
}

#[test]
fn alias_key_is_trust_2_deviceid_key_1_self_announced_0_and_a_superseded_alias_none() {
    for alg in DeviceKeyAlg::ALL {
        let tmp = TempDir::new(alg.name());
        let mut gw = Gateway::open(&tmp.0.join("gateway.redb"), GatewayConfig::new("gw-1")).unwrap();
        let s = scene(alg);
        let mut dir = MemoryDirectory::new();
        dir.register(s.id, s.old.deviceid_public_key());

        // Registered but not attested yet: Alias-signed records verify under no key.
        let mut alias_chain = RecordChainWriter::new(s.id, "alias").unwrap();
        let early = by_alias(&s.old, &mut alias_chain.clone(), 1);
        assert!(no_key_verifies(trust(&mut gw, &dir, &early)), "{alg}");

        // The ledger accepted evidence for firmware 1: its Alias key is trust 2.
        dir.attest(s.id, s.old_layer.alias_public_key);
        for t in 1..=2 {
            let r = by_alias(&s.old, &mut alias_chain, t);
            assert_eq!(trust(&mut gw, &dir, &r).ok(), Some(TrustLevel::Attested), "{alg}");
        }
        let mut deviceid_chain = RecordChainWriter::new(s.id, "deviceid").unwrap();
        let r = by_key(&s.deviceid.key_pair, &mut deviceid_chain, 3);
        assert_eq!(trust(&mut gw, &dir, &r).ok(), Some(TrustLevel::Registered), "{alg}");

        // An unregistered device that announced its own key.
        let stranger = provisioned(22, alg);
        let stranger_id = DeviceId(stranger.device_id());
        let stranger_key = LayerKey::derive(alg, &[22; 32]).unwrap();
        dir.announce(stranger_id, stranger.deviceid_public_key());
        let mut stranger_chain = RecordChainWriter::new(stranger_id, "temp").unwrap();
        let r = by_key(&stranger_key.key_pair, &mut stranger_chain, 4);
        assert_eq!(trust(&mut gw, &dir, &r).ok(), Some(TrustLevel::SelfReported), "{alg}");

        // The batch commits each chain at the trust its records earned.
        let batch = gw.cut_batch().unwrap().expect("a batch of 4 records");
        let heads: Vec<_> = batch
            .heads
            .iter()
            .map(|h| (h.device, h.stream.as_str(), h.trust))
            .collect();
        let mut want = vec![
            (s.id, "alias", TrustLevel::Attested),
            (s.id, "deviceid", TrustLevel::Registered),
            (stranger_id, "temp", TrustLevel::SelfReported),
        ];
        want.sort();
        assert_eq!(heads, want, "{alg}");

        // Firmware 2 attested (an install with its Alias certificate): the new layer's key is
        // trust 2; the old layer's key verifies under no key any more; DeviceID stays 1.
        dir.attest(s.id, s.new_layer.alias_public_key);
        let stale = by_alias(&s.old, &mut alias_chain.clone(), 5);
        assert!(no_key_verifies(trust(&mut gw, &dir, &stale)), "{alg}");
        let r = by_alias(&s.new, &mut alias_chain, 5);
        assert_eq!(trust(&mut gw, &dir, &r).ok(), Some(TrustLevel::Attested), "{alg}");
        let r = by_key(&s.deviceid.key_pair, &mut deviceid_chain, 6);
        assert_eq!(trust(&mut gw, &dir, &r).ok(), Some(TrustLevel::Registered), "{alg}");

        // Revoked: no key counts, not even the attested one.
        dir.revoke(s.id);
        let r = by_alias(&s.new, &mut alias_chain, 7);
        assert!(
            matches!(trust(&mut gw, &dir, &r), Err(IngestError::Revoked(d)) if d == s.id),
            "{alg}"
        );
    }
}

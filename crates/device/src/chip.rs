//! A chip's identity behind a small trait, and [`SoftChip`], a software implementation for tests,
//! the demo and the CLI. A secure element or HSM implements [`Chip`] the same way: the secrets
//! (UDS, CDIs, private keys) never leave it; only public keys, certificates and signatures do.
//!
//! Layering (Open Profile for DICE; P-256 by default, Ed25519 with [`SoftChip::with_alg`]):
//!
//! - **DeviceID**: the key pair derived from the UDS as layer 0's CDI_Attest
//!   ([`LayerKey::derive`]`(alg, UDS)`; open-dice's "authority" key of the first layer). Its
//!   20-byte ID ([`dice::derive_id`]) is the ledger's device id. The manufacturer's CA certifies it
//!   from a [`DeviceIdRequest`] (the CSR equivalent: public key, ID, TCB info).
//! - **Alias**: booting a firmware layer derives the next CDIs from the UDS with the firmware's
//!   SHA-512 as code hash ([`dice::derive_next`]), and the Alias key from that CDI_Attest. The
//!   DeviceID key issues the Alias certificate, whose DiceTcbInfo carries the firmware's
//!   SHA-256 and SHA-512 FWIDs, version and security version. The Alias key signs evidence (EAT).

use alloc::string::String;
use alloc::vec::Vec;

use sha2::{Digest, Sha256, Sha512};

use crate::cert::{self, CertError, CertRequest, CertValidity, DiceTcbInfo, Fwid};
use crate::dice::{self, Cdis, DiceError, ID_SIZE, InputValues, KeyPair, LayerKey, Mode, UDS_SIZE};
use crate::eat::{self, EatClaims, EatError};
use crate::key::{DeviceKeyAlg, DevicePublicKey, DeviceSignature, DeviceSigner};
use crate::record::{RecordChainWriter, RecordError, SignedRecord};

/// Errors of a chip operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChipError {
    #[error("DICE derivation failed: {0}")]
    Dice(#[from] DiceError),
    #[error("certificate: {0}")]
    Cert(#[from] CertError),
    #[error("evidence: {0}")]
    Eat(#[from] EatError),
    #[error("the chip has no DeviceID certificate yet (the manufacturer must install one)")]
    NoDeviceIdCert,
    #[error("the DeviceID certificate does not certify this chip's DeviceID key")]
    DeviceIdCertMismatch,
    #[error("no firmware layer booted yet: boot one before signing evidence or records")]
    NotBooted,
    #[error("record: {0}")]
    Record(#[from] RecordError),
    #[error("chip file: {0}")]
    File(String),
}

/// A firmware layer as the chip measures it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Firmware<'a> {
    /// Name (the EAT `swname`, the TCB `model`).
    pub name: &'a str,
    /// Version text (the EAT `swversion`, the TCB `version`).
    pub version: &'a str,
    /// Security version number (anti-rollback).
    pub svn: u64,
    /// The firmware image; its hashes are the measurement.
    pub image: &'a [u8],
}

impl Firmware<'_> {
    /// The DICE code hash (SHA-512 of the image).
    pub fn code_hash(&self) -> [u8; 64] {
        Sha512::digest(self.image).into()
    }

    /// The firmware measurement the ledger records (SHA-256 of the image).
    pub fn measurement(&self) -> [u8; 32] {
        Sha256::digest(self.image).into()
    }
}

/// What the manufacturer CA needs to issue a DeviceID certificate (a CSR equivalent).
#[derive(Clone, Debug)]
pub struct DeviceIdRequest {
    /// The DeviceID public key (P-256 or Ed25519).
    pub public_key: DevicePublicKey,
    /// The DICE ID of the DeviceID key: the ledger's device id.
    pub id: [u8; ID_SIZE],
    pub tcb_info: DiceTcbInfo,
}

impl DeviceIdRequest {
    /// The certificate request for [`cert::issue_deviceid_cert`].
    pub fn cert_request(&self) -> CertRequest<'_, DevicePublicKey> {
        CertRequest {
            subject_public_key: &self.public_key,
            subject_id: &self.id,
            tcb_info: &self.tcb_info,
            validity: CertValidity::DICE_DEFAULT,
        }
    }
}

/// The public result of booting a firmware layer.
#[derive(Clone, Debug)]
pub struct BootedLayer {
    /// The Alias public key (same algorithm as the DeviceID key).
    pub alias_public_key: DevicePublicKey,
    /// Alias certificate (DER), signed by the DeviceID key.
    pub alias_cert_der: Vec<u8>,
    /// SHA-256 of the firmware image.
    pub measurement: [u8; 32],
}

/// A chip with a DICE identity. Implementations keep every secret inside.
pub trait Chip {
    /// The DeviceID public key.
    fn deviceid_public_key(&self) -> DevicePublicKey;
    /// Sign `message` with the DeviceID key (ES256 or Ed25519, by the key's algorithm).
    fn sign_with_deviceid(&self, message: &[u8]) -> Result<DeviceSignature, ChipError>;
    /// Measure and boot a firmware layer: derive its Alias key and certificate.
    fn boot(&mut self, firmware: &Firmware<'_>) -> Result<BootedLayer, ChipError>;
    /// Sign an EAT with the Alias key of the booted layer.
    fn sign_eat(&self, claims: &EatClaims) -> Result<Vec<u8>, ChipError>;
    /// Sign the next record of `chain` with the Alias key of the booted layer (what a gateway
    /// verifies at trust level 2 once the ledger holds evidence for this layer).
    fn sign_record(
        &self,
        chain: &mut RecordChainWriter,
        timestamp_ms: u64,
        epoch: u32,
        payload: Vec<u8>,
    ) -> Result<SignedRecord, ChipError>;
}

/// The booted layer's secret: the Alias signing key.
struct Booted {
    alias_key: KeyPair,
}

/// A software chip: the UDS in memory (or, with `std`, in a file).
pub struct SoftChip {
    uds: [u8; UDS_SIZE],
    /// Algorithm of the DeviceID and Alias keys.
    alg: DeviceKeyAlg,
    deviceid: LayerKey,
    /// Hardware vendor and model, written into the DeviceID TCB info.
    vendor: String,
    model: String,
    deviceid_cert_der: Option<Vec<u8>>,
    booted: Option<Booted>,
}

impl core::fmt::Debug for SoftChip {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SoftChip({})", hex::encode(self.deviceid.id))
    }
}

impl SoftChip {
    /// A P-256 chip with this UDS; `vendor` / `model` describe the hardware (DeviceID TCB info).
    pub fn from_uds(uds: [u8; UDS_SIZE], vendor: &str, model: &str) -> Result<Self, ChipError> {
        Self::with_alg(uds, DeviceKeyAlg::default(), vendor, model)
    }

    /// A chip with this UDS whose DeviceID and Alias keys use `alg`.
    pub fn with_alg(uds: [u8; UDS_SIZE], alg: DeviceKeyAlg, vendor: &str, model: &str) -> Result<Self, ChipError> {
        let deviceid = LayerKey::derive(alg, &uds)?;
        Ok(SoftChip {
            uds,
            alg,
            deviceid,
            vendor: vendor.into(),
            model: model.into(),
            deviceid_cert_der: None,
            booted: None,
        })
    }

    /// The DICE ID of the DeviceID key (the ledger's device id).
    pub fn device_id(&self) -> [u8; ID_SIZE] {
        self.deviceid.id
    }

    /// Algorithm of the chip's DeviceID and Alias keys.
    pub fn alg(&self) -> DeviceKeyAlg {
        self.alg
    }

    fn deviceid_signer(&self) -> DeviceSigner<'_> {
        DeviceSigner::from(&self.deviceid.key_pair)
    }

    /// The DeviceID certificate request for the manufacturer CA.
    pub fn deviceid_request(&self) -> DeviceIdRequest {
        DeviceIdRequest {
            public_key: self.deviceid_signer().public_key(),
            id: self.deviceid.id,
            tcb_info: DiceTcbInfo {
                vendor: Some(self.vendor.clone()),
                model: Some(self.model.clone()),
                layer: Some(0),
                ..Default::default()
            },
        }
    }

    /// Install the DeviceID certificate issued by the manufacturer CA (`ca_der`), after checking
    /// that the chain verifies and that it certifies this chip's key.
    pub fn install_deviceid_cert(&mut self, ca_der: &[u8], deviceid_der: &[u8]) -> Result<(), ChipError> {
        let key = cert::verify_deviceid(ca_der, deviceid_der, None)?;
        if key != self.deviceid_signer().public_key() {
            return Err(ChipError::DeviceIdCertMismatch);
        }
        self.deviceid_cert_der = Some(deviceid_der.to_vec());
        self.booted = None;
        Ok(())
    }

    /// Hardware vendor (DeviceID TCB info).
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// Hardware model name (DeviceID TCB info).
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The installed DeviceID certificate, if any.
    pub fn deviceid_cert_der(&self) -> Option<&[u8]> {
        self.deviceid_cert_der.as_deref()
    }

    /// Prove this chip's presence to the ledger when `to_org` accepts it in a transfer: a
    /// COSE_Sign1 by the DeviceID key over `[tag, device id, to_org, nonce]`
    /// ([`crate::ledger::AcceptTransferProof`]); `nonce` is the device's current ledger challenge.
    pub fn sign_accept_transfer(&self, to_org: &str, nonce: &[u8]) -> Result<Vec<u8>, ChipError> {
        let proof = crate::ledger::AcceptTransferProof {
            device_id: self.deviceid.id,
            to_org: to_org.into(),
            nonce: nonce.to_vec(),
        };
        Ok(proof.sign(self.deviceid_signer())?)
    }

    fn alias_tcb(&self, firmware: &Firmware<'_>) -> DiceTcbInfo {
        DiceTcbInfo {
            vendor: Some(self.vendor.clone()),
            model: Some(firmware.name.into()),
            version: Some(firmware.version.into()),
            svn: Some(firmware.svn),
            layer: Some(1),
            fwids: Some(alloc::vec![
                Fwid::sha256(&firmware.measurement()),
                Fwid::sha512(&firmware.code_hash()),
            ]),
            ..Default::default()
        }
    }
}

impl Chip for SoftChip {
    fn deviceid_public_key(&self) -> DevicePublicKey {
        self.deviceid_signer().public_key()
    }

    fn sign_with_deviceid(&self, message: &[u8]) -> Result<DeviceSignature, ChipError> {
        Ok(self.deviceid_signer().sign(message))
    }

    fn boot(&mut self, firmware: &Firmware<'_>) -> Result<BootedLayer, ChipError> {
        let deviceid_der = self.deviceid_cert_der.as_deref().ok_or(ChipError::NoDeviceIdCert)?;
        let inputs = InputValues {
            code_hash: firmware.code_hash(),
            mode: Mode::Normal,
            ..InputValues::default()
        };
        let next = dice::derive_next(&Cdis::from_uds(&self.uds), &inputs)?;
        let alias = LayerKey::derive(self.alg, &next.cdi_attest)?;
        let alias_public = DeviceSigner::from(&alias.key_pair).public_key();
        let tcb = self.alias_tcb(firmware);
        let request = CertRequest {
            subject_public_key: &alias_public,
            subject_id: &alias.id,
            tcb_info: &tcb,
            validity: CertValidity::DICE_DEFAULT,
        };
        let alias_cert_der = cert::issue_alias_cert(self.deviceid_signer(), deviceid_der, &request)?;
        let layer = BootedLayer {
            alias_public_key: alias_public,
            alias_cert_der,
            measurement: firmware.measurement(),
        };
        self.booted = Some(Booted {
            alias_key: alias.key_pair,
        });
        Ok(layer)
    }

    fn sign_eat(&self, claims: &EatClaims) -> Result<Vec<u8>, ChipError> {
        let booted = self.booted.as_ref().ok_or(ChipError::NotBooted)?;
        Ok(eat::sign_eat(claims, &booted.alias_key)?)
    }

    fn sign_record(
        &self,
        chain: &mut RecordChainWriter,
        timestamp_ms: u64,
        epoch: u32,
        payload: Vec<u8>,
    ) -> Result<SignedRecord, ChipError> {
        let booted = self.booted.as_ref().ok_or(ChipError::NotBooted)?;
        let (_, signed) = chain.sign_next(&booted.alias_key, timestamp_ms, epoch, payload)?;
        Ok(signed)
    }
}

#[cfg(feature = "std")]
mod file {
    //! The chip file: `chipledger-softchip v1`, then `uds <hex>`, `vendor <text>`,
    //! `model <text>`, for a non-default key algorithm `alg <name>` (`ed25519`; absent means
    //! `p256`) and, once provisioned, `deviceid-cert <hex>` lines. Written with mode 0600.

    use super::*;
    use std::path::Path;

    const HEADER: &str = "chipledger-softchip v1";
    /// Largest chip file accepted.
    const MAX_CHIP_FILE_BYTES: u64 = 16 * 1024;

    fn bad(why: impl Into<String>) -> ChipError {
        ChipError::File(why.into())
    }

    impl SoftChip {
        /// Save the UDS (a secret!) and the DeviceID certificate to `path`, mode 0600. Refuses
        /// to overwrite a different chip.
        pub fn save(&self, path: &Path) -> Result<(), ChipError> {
            let mut text = std::format!(
                "{HEADER}\nuds {}\nvendor {}\nmodel {}\n",
                hex::encode(self.uds),
                self.vendor,
                self.model
            );
            if self.alg != DeviceKeyAlg::default() {
                text.push_str(&std::format!("alg {}\n", self.alg.name()));
            }
            if let Some(der) = &self.deviceid_cert_der {
                text.push_str(&std::format!("deviceid-cert {}\n", hex::encode(der)));
            }
            if path.exists() {
                let existing = SoftChip::load(path)?;
                if existing.uds != self.uds || existing.alg != self.alg {
                    return Err(bad(std::format!("{} holds another chip", path.display())));
                }
            }
            write_private(path, text.as_bytes()).map_err(|e| bad(std::format!("writing {}: {e}", path.display())))
        }

        /// Load a chip saved with [`SoftChip::save`].
        pub fn load(path: &Path) -> Result<Self, ChipError> {
            let meta = std::fs::metadata(path).map_err(|e| bad(std::format!("{}: {e}", path.display())))?;
            if meta.len() > MAX_CHIP_FILE_BYTES {
                return Err(bad(std::format!(
                    "{} is larger than {MAX_CHIP_FILE_BYTES} bytes",
                    path.display()
                )));
            }
            let text =
                std::fs::read_to_string(path).map_err(|e| bad(std::format!("reading {}: {e}", path.display())))?;
            parse(&text).map_err(|why| bad(std::format!("{}: {why}", path.display())))
        }
    }

    fn parse(text: &str) -> Result<SoftChip, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(std::format!("not a chip file (first line must be '{HEADER}')"));
        }
        let (mut uds, mut vendor, mut model, mut cert) = (None, None, None, None);
        let mut alg = DeviceKeyAlg::default();
        for line in lines.filter(|l| !l.is_empty()) {
            let (key, value) = line.split_once(' ').ok_or("a line is not 'key value'")?;
            match key {
                "uds" => uds = Some(value),
                "vendor" => vendor = Some(value),
                "model" => model = Some(value),
                "alg" => alg = DeviceKeyAlg::from_name(value).ok_or("alg must be p256 or ed25519")?,
                "deviceid-cert" => cert = Some(hex::decode(value).map_err(|_| "deviceid-cert is not hex")?),
                other => return Err(std::format!("unknown field '{other}'")),
            }
        }
        let uds: [u8; UDS_SIZE] = hex::decode(uds.ok_or("no uds line")?)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("uds must be 64 hex characters")?;
        let mut chip =
            SoftChip::with_alg(uds, alg, vendor.unwrap_or(""), model.unwrap_or("")).map_err(|e| std::format!("{e}"))?;
        chip.deviceid_cert_der = cert;
        Ok(chip)
    }

    fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        opts.open(path)?.write_all(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dice::Algorithm;
    use crate::eat::{Measurement, OemId, SwVersion};
    use p256::ecdsa::SigningKey;

    const FW: Firmware<'static> = Firmware {
        name: "lamp-fw",
        version: "2.1.0",
        svn: 3,
        image: b"firmware image bytes",
    };

    fn provisioned(uds: u8) -> (SoftChip, Vec<u8>) {
        provisioned_with(uds, DeviceKeyAlg::P256)
    }

    fn provisioned_with(uds: u8, alg: DeviceKeyAlg) -> (SoftChip, Vec<u8>) {
        let ca_key = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let ca_der = cert::issue_ca_cert(&ca_key, "CN=Test CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
        let mut chip = SoftChip::with_alg([uds; UDS_SIZE], alg, "maker", "lamp").unwrap();
        let req = chip.deviceid_request();
        let der = cert::issue_deviceid_cert(&ca_key, &ca_der, &req.cert_request()).unwrap();
        chip.install_deviceid_cert(&ca_der, &der).unwrap();
        (chip, ca_der)
    }

    fn claims(nonce: &[u8]) -> EatClaims {
        EatClaims {
            nonce: nonce.to_vec(),
            ueid: alloc::vec![1; 21],
            oemid: OemId::Pen(1),
            hwmodel: b"lamp".to_vec(),
            swname: FW.name.into(),
            swversion: SwVersion {
                version: FW.version.into(),
                scheme: None,
            },
            measurements: alloc::vec![Measurement {
                content_format: eat::CONTENT_FORMAT_OCTET_STREAM,
                value: FW.measurement().to_vec(),
            }],
        }
    }

    #[test]
    fn deviceid_is_the_dice_layer0_key_and_the_chain_verifies() {
        let (mut chip, ca_der) = provisioned(7);
        let expected = LayerKey::derive(Algorithm::P256, &[7; UDS_SIZE]).unwrap();
        assert_eq!(chip.device_id(), expected.id);
        let layer = chip.boot(&FW).unwrap();
        let chain =
            cert::verify_chain(&ca_der, chip.deviceid_cert_der().unwrap(), &layer.alias_cert_der, None).unwrap();
        assert_eq!(chain.deviceid_public_key, chip.deviceid_public_key());
        assert_eq!(
            chain.alias_tcb_info.fwid(const_oid::db::rfc5912::ID_SHA_256),
            Some(&FW.measurement()[..])
        );
        let token = chip.sign_eat(&claims(&[5; 40])).unwrap();
        let got = eat::verify_eat(&token, layer.alias_public_key, &[5; 40]).unwrap();
        assert_eq!(got.swname, "lamp-fw");
    }

    #[test]
    fn ed25519_chip_boots_with_dice_ed25519_keys_and_signs_eddsa_evidence() {
        let (mut chip, ca_der) = provisioned_with(7, DeviceKeyAlg::Ed25519);
        let expected = LayerKey::derive(Algorithm::Ed25519, &[7; UDS_SIZE]).unwrap();
        assert_eq!(chip.alg(), DeviceKeyAlg::Ed25519);
        assert_eq!(chip.device_id(), expected.id);
        assert_eq!(chip.deviceid_public_key().raw(), expected.public_key);
        assert_ne!(chip.device_id(), provisioned(7).0.device_id());
        let layer = chip.boot(&FW).unwrap();
        assert_eq!(layer.alias_public_key.alg(), DeviceKeyAlg::Ed25519);
        let chain =
            cert::verify_chain(&ca_der, chip.deviceid_cert_der().unwrap(), &layer.alias_cert_der, None).unwrap();
        assert_eq!(chain.deviceid_public_key, chip.deviceid_public_key());
        assert_eq!(chain.alias_public_key, layer.alias_public_key);
        let token = chip.sign_eat(&claims(&[5; 40])).unwrap();
        let got = eat::verify_eat(&token, layer.alias_public_key, &[5; 40]).unwrap();
        assert_eq!(got.swname, "lamp-fw");
        let sig = chip.sign_with_deviceid(b"hello").unwrap();
        assert_eq!(chip.deviceid_public_key().verify(b"hello", &sig), Ok(()));
    }

    #[test]
    fn alias_key_depends_on_the_firmware() {
        let (mut chip, _) = provisioned(8);
        let a = chip.boot(&FW).unwrap();
        let other = Firmware {
            image: b"other image",
            ..FW
        };
        let b = chip.boot(&other).unwrap();
        assert_ne!(a.alias_public_key, b.alias_public_key);
        assert_eq!(chip.boot(&FW).unwrap().alias_public_key, a.alias_public_key);
    }

    /// Records are signed by the booted layer's Alias key (both algorithms): they verify under
    /// it, not under the DeviceID key nor a previous layer's Alias key.
    #[test]
    fn records_are_signed_by_the_booted_alias_key() {
        for alg in DeviceKeyAlg::ALL {
            let (mut chip, _) = provisioned_with(9, alg);
            let old = chip.boot(&FW).unwrap();
            let other = Firmware {
                image: b"other image",
                ..FW
            };
            let layer = chip.boot(&other).unwrap();
            let device = chipledger_types::device_tx::DeviceId(chip.device_id());
            let mut chain = RecordChainWriter::new(device, "temp").unwrap();
            let signed = chip.sign_record(&mut chain, 1, 0, alloc::vec![0xd0, 2, 3]).unwrap();
            assert_eq!(chain.next_seq(), 2);
            let record = crate::record::verify_record(&signed.bytes, &layer.alias_public_key).unwrap();
            assert_eq!(
                (record.device, record.seq, record.payload),
                (device, 1, alloc::vec![0xd0, 2, 3])
            );
            for wrong in [old.alias_public_key, chip.deviceid_public_key()] {
                assert_eq!(
                    crate::record::verify_record(&signed.bytes, &wrong),
                    Err(RecordError::BadSignature),
                    "{alg}"
                );
            }
        }
    }

    #[test]
    fn refusals_are_typed() {
        let mut chip = SoftChip::from_uds([1; UDS_SIZE], "maker", "lamp").unwrap();
        assert!(matches!(chip.boot(&FW), Err(ChipError::NoDeviceIdCert)));
        assert!(matches!(chip.sign_eat(&claims(&[5; 40])), Err(ChipError::NotBooted)));
        let mut chain = RecordChainWriter::new(chipledger_types::device_tx::DeviceId([1; 20]), "temp").unwrap();
        assert!(matches!(
            chip.sign_record(&mut chain, 1, 0, alloc::vec![]),
            Err(ChipError::NotBooted)
        ));
        let (other, ca_der) = provisioned(2);
        let wrong = other.deviceid_cert_der().unwrap();
        assert!(matches!(
            chip.install_deviceid_cert(&ca_der, wrong),
            Err(ChipError::DeviceIdCertMismatch)
        ));
    }

    #[cfg(feature = "std")]
    #[test]
    fn file_round_trip() {
        let (chip, _) = provisioned(4);
        let path = std::env::temp_dir().join(std::format!("softchip-{}.chip", std::process::id()));
        let _ = std::fs::remove_file(&path);
        chip.save(&path).unwrap();
        let loaded = SoftChip::load(&path).unwrap();
        assert_eq!(loaded.device_id(), chip.device_id());
        assert_eq!(loaded.deviceid_cert_der(), chip.deviceid_cert_der());
        assert!(
            !std::fs::read_to_string(&path).unwrap().contains("\nalg "),
            "P-256 files keep the v1 layout"
        );
        // The same UDS with Ed25519 keys is another chip: refused, then saved elsewhere and reloaded.
        let (ed, _) = provisioned_with(4, DeviceKeyAlg::Ed25519);
        assert!(matches!(ed.save(&path), Err(ChipError::File(_))));
        let ed_path = path.with_extension("ed25519.chip");
        let _ = std::fs::remove_file(&ed_path);
        ed.save(&ed_path).unwrap();
        let loaded = SoftChip::load(&ed_path).unwrap();
        assert_eq!(
            (loaded.alg(), loaded.device_id()),
            (DeviceKeyAlg::Ed25519, ed.device_id())
        );
        assert_eq!(loaded.deviceid_cert_der(), ed.deviceid_cert_der());
        let _ = std::fs::remove_file(&ed_path);
        let other = SoftChip::from_uds([5; UDS_SIZE], "maker", "lamp").unwrap();
        assert!(matches!(other.save(&path), Err(ChipError::File(_))));
        std::fs::write(&path, "garbage").unwrap();
        assert!(matches!(SoftChip::load(&path), Err(ChipError::File(_))));
        let _ = std::fs::remove_file(&path);
    }
}

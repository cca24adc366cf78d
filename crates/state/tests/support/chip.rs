//! Real DICE chips for the rule tests: a DeviceID certificate endorsed by a manufacturer CA and
//! an Alias certificate from the device SDK, registered by `maker`, and their EAT evidence.

use chipledger_device::cert::{CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_deviceid_cert};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat};
use chipledger_device::ledger::{hwmodel_of, ueid_of};
use chipledger_state::device::{attest_nonce, ca_id_of, device_id_of};
use chipledger_state::model::get_device;
use chipledger_types::device_tx::{Attest, DeviceId, RegisterDevice};
use chipledger_types::tx::Payload;
use p256::ecdsa::SigningKey;

use super::{CHAIN_ID, World};

/// A deterministic P-256 key.
pub fn p256_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

/// What kind of chip: hardware model number, the model's name in the DICE TCB info, and the
/// firmware name its evidence reports.
#[derive(Clone, Copy)]
pub struct ChipKind {
    pub model: u32,
    pub model_name: &'static str,
    pub swname: &'static str,
}

pub struct Chip {
    pub id: DeviceId,
    /// The DeviceID key.
    pub key: SigningKey,
    pub alias_key: SigningKey,
    pub alias_der: Vec<u8>,
    pub kind: ChipKind,
}

fn request<'a>(key: &'a SigningKey, subject: &'a DeviceId, tcb_info: &'a DiceTcbInfo) -> CertRequest<'a> {
    CertRequest {
        subject_public_key: key.verifying_key(),
        subject_id: &subject.0,
        tcb_info,
        validity: CertValidity::DICE_DEFAULT,
    }
}

impl World {
    /// A software chip endorsed by `ca_key`, registered by `maker` to `owner`.
    pub fn register_chip(&mut self, ca_key: &SigningKey, ca_der: &[u8], seed: u8, kind: ChipKind, owner: &str) -> Chip {
        let key = p256_key(seed);
        let id = device_id_of(key.verifying_key());
        let tcb = |layer: u64| DiceTcbInfo {
            vendor: Some("maker".into()),
            model: Some(kind.model_name.into()),
            layer: Some(layer),
            fwids: Some(vec![Fwid::sha256(&[layer as u8; 32])]),
            ..Default::default()
        };
        let (tcb0, tcb1) = (tcb(0), tcb(1));
        let deviceid_der = issue_deviceid_cert(ca_key, ca_der, &request(&key, &id, &tcb0)).unwrap();
        let alias_key = p256_key(seed.wrapping_add(100));
        let alias_id = device_id_of(alias_key.verifying_key());
        let alias_der = issue_alias_cert(&key, &deviceid_der, &request(&alias_key, &alias_id, &tcb1)).unwrap();
        let register = Payload::RegisterDevice(RegisterDevice {
            ca: ca_id_of(ca_key.verifying_key()),
            deviceid_cert_der: deviceid_der,
            model: kind.model,
            owner: owner.into(),
        });
        let t = self.tx("maker", register);
        self.apply(&t).unwrap();
        Chip {
            id,
            key,
            alias_key,
            alias_der,
            kind,
        }
    }

    /// `c`'s evidence (signed EAT answering its current challenge), submitted by its owner.
    pub fn attest_chip(&mut self, c: &Chip) {
        let record = get_device(&self.state, &c.id).unwrap().unwrap();
        let claims = EatClaims {
            nonce: attest_nonce(CHAIN_ID, &c.id, &record.challenge_seed, self.height).to_vec(),
            ueid: ueid_of(&c.id.0).to_vec(),
            oemid: OemId::Pen(12345),
            hwmodel: hwmodel_of(c.kind.model).to_vec(),
            swname: c.kind.swname.into(),
            swversion: SwVersion {
                version: "2.1.0".into(),
                scheme: None,
            },
            measurements: vec![Measurement {
                content_format: 42,
                value: vec![1; 32],
            }],
        };
        let p = Payload::Attest(Attest {
            device: c.id,
            alias_cert_der: c.alias_der.clone(),
            eat: sign_eat(&claims, &c.alias_key).unwrap(),
        });
        let t = self.tx(&record.owner, p);
        self.apply(&t).expect("attestation accepted");
    }
}

//! The keys and the world the targets verify against, and that `examples/seeds.rs` signs the
//! seed corpus with: everything is derived from fixed seeds, so a valid seed verifies in the
//! target and the fuzzer starts from the deep end of every verifier.

use std::sync::OnceLock;

use chipledger_device::cert::{CertValidity, issue_ca_cert, issue_deviceid_cert};
use chipledger_device::chip::{BootedLayer, Chip, Firmware, SoftChip};
use chipledger_device::command::CommandTrust;
use chipledger_device::dice::UDS_SIZE;
use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey};
use chipledger_device::update::{TrustedValidator, UpdateTrust};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::{PublicKey, SigningKey};
use chipledger_types::note::VerifierKey;

/// The update-verifier tests' fixture (publisher key, four validators, a SUIT envelope, a state
/// with release, approval and validator records): the same world the device crate tests use.
// A test module written for `mod update_fixture;` in a test crate (no `Default` for `World`).
#[allow(clippy::new_without_default)]
#[path = "../../crates/device/tests/update_fixture/mod.rs"]
pub mod update_fixture;

pub use update_fixture::{ORIGIN, World, p256_key, validator};

/// The device a command is for (as in `crates/device/tests/command_verify.rs`).
pub const COMMAND_DEVICE: DeviceId = DeviceId([0x11; 20]);
/// The device clock of the command target.
pub const COMMAND_NOW_MS: u64 = 1_800_000_000_000;
/// The device clock of the certificate checks (2026-11-26).
pub const NOW_UNIX_S: u64 = 1_795_651_200;
/// The nonce an EAT must answer.
pub const EAT_NONCE: &[u8] = b"fuzz-nonce-0001";
/// Firmware the chips boot.
pub const FIRMWARE: Firmware<'static> = Firmware {
    name: "lamp-fw",
    version: "2.1.0",
    svn: 3,
    image: b"fuzz firmware image",
};

/// Ledger keys (Ed25519 and P-256) that never sign anything: nothing may verify under them.
pub fn unused_ledger_keys() -> [PublicKey; 2] {
    static KEYS: OnceLock<[PublicKey; 2]> = OnceLock::new();
    *KEYS.get_or_init(|| {
        [
            SigningKey::ed25519_from_seed(&[0xee; 32]).public_key(),
            SigningKey::p256_from_bytes(&[0x5e; 32])
                .expect("valid scalar")
                .public_key(),
        ]
    })
}

/// Device keys (P-256 and Ed25519) that never sign anything.
pub fn unused_device_keys() -> [DevicePublicKey; 2] {
    [
        DevicePublicKey::P256(*p256_key(0xee).verifying_key()),
        DevicePublicKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0xee; 32]).verifying_key()),
    ]
}

/// One provisioned, booted chip.
pub struct ProvisionedChip {
    pub chip: SoftChip,
    pub deviceid_der: Vec<u8>,
    pub layer: BootedLayer,
}

/// A manufacturer CA and two chips under it (P-256 and Ed25519), booted into [`FIRMWARE`].
pub struct Fleet {
    pub ca_key: p256::ecdsa::SigningKey,
    pub ca_der: Vec<u8>,
    pub chips: Vec<ProvisionedChip>,
}

/// The fleet, built once.
pub fn fleet() -> &'static Fleet {
    static FLEET: OnceLock<Fleet> = OnceLock::new();
    FLEET.get_or_init(|| {
        let ca_key = p256_key(10);
        let ca_der =
            issue_ca_cert(&ca_key, "CN=Fuzz Device CA,O=Fuzz", 1, CertValidity::DICE_DEFAULT).expect("CA certificate");
        let chips = [(1u8, DeviceKeyAlg::P256), (2, DeviceKeyAlg::Ed25519)]
            .into_iter()
            .map(|(uds, alg)| provision(&ca_key, &ca_der, uds, alg))
            .collect();
        Fleet { ca_key, ca_der, chips }
    })
}

fn provision(ca_key: &p256::ecdsa::SigningKey, ca_der: &[u8], uds: u8, alg: DeviceKeyAlg) -> ProvisionedChip {
    let mut chip = SoftChip::with_alg([uds; UDS_SIZE], alg, "Fuzz", "streetlight-v2").expect("chip");
    let request = chip.deviceid_request();
    let deviceid_der = issue_deviceid_cert(ca_key, ca_der, &request.cert_request()).expect("DeviceID certificate");
    chip.install_deviceid_cert(ca_der, &deviceid_der)
        .expect("install DeviceID");
    let layer = chip.boot(&FIRMWARE).expect("boot");
    ProvisionedChip {
        chip,
        deviceid_der,
        layer,
    }
}

/// The update world of the device tests, built once.
pub fn world() -> &'static (World, UpdateTrust) {
    static WORLD: OnceLock<(World, UpdateTrust)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let w = World::new();
        let trust = w.trust();
        (w, trust)
    })
}

/// The validators' note keys (v0..v3).
pub fn validator_keys() -> Vec<VerifierKey> {
    (0..4).map(|i| validator(i).verifier().clone()).collect()
}

/// What the command device trusts (as `command_verify.rs`'s scene: quorum 3 of v0..v3, owner
/// `city`, newest checkpoint at height 100).
pub fn command_trust() -> CommandTrust {
    let validators = validator_keys().into_iter().map(TrustedValidator::new).collect();
    let mut trust = CommandTrust::new(ORIGIN, validators, 3, COMMAND_DEVICE, update_fixture::OWNER);
    trust.checkpoint_height = 100;
    trust
}

/// The grantee organisation's key that signs command requests in the seeds.
pub fn command_grantee_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&[7; 32])
}

/// The chip's DeviceID key (for accept-transfer proofs).
pub fn deviceid_key(chip: &ProvisionedChip) -> DevicePublicKey {
    chip.chip.deviceid_public_key()
}

/// Seed of the device keys that sign the statements a chip cannot sign through [`Chip`]
/// (reading commitments, command receipts) in the seeds.
pub const STATEMENT_KEY_SEED: u8 = 30;

/// The P-256 statement key.
pub fn statement_key_p256() -> p256::ecdsa::SigningKey {
    p256_key(STATEMENT_KEY_SEED)
}

/// The Ed25519 statement key.
pub fn statement_key_ed25519() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[STATEMENT_KEY_SEED; 32])
}

/// Every device key a valid seed may be signed with: the chips' DeviceID and Alias keys, and
/// the statement keys.
pub fn device_keys() -> Vec<DevicePublicKey> {
    let mut keys: Vec<DevicePublicKey> = fleet()
        .chips
        .iter()
        .flat_map(|c| [deviceid_key(c), c.layer.alias_public_key])
        .collect();
    keys.push(DevicePublicKey::P256(*statement_key_p256().verifying_key()));
    keys.push(DevicePublicKey::Ed25519(statement_key_ed25519().verifying_key()));
    keys
}

//! The firmware and data-access story of a run: a manufacturer CA granted by governance, one or
//! two real DICE chips registered by `maker` for `city`, two SUIT-signed releases by `vendor`, a
//! fleet policy, a certified and approved rollout, the chips' install evidence (AttestInstall),
//! and, once `buyer` exists, a grant of chip 0's data to `buyer` and a key release under it.
//! Byzantine clients try the forbidden versions: a rollout of a release never published, an
//! install under a rollout that does not exist or was never approved, a key release with no
//! grant and one for a device the grant does not cover (chip 1).
//!
//! The story is a small graph of [`Step`]s: a step runs (its transactions are submitted by the
//! workload) once every honest step it depends on is final at the chosen validator. Keys and
//! certificates come from fixed bytes; nothing here depends on the seed but the number of
//! chips registered (each then installs the release). Every chip costs each validator a few
//! P-256 verifications per application of its transactions, so the story stays this small.

use crate::invariants::Invariant;
use chipledger_device::cert::{
    CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert, issue_deviceid_cert,
};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat};
use chipledger_device::ledger::{hwmodel_of, ueid_of};
use chipledger_device::suit::{self, ReleaseSpec};
use chipledger_state::device::{attest_nonce, ca_id_of, device_id_of};
use chipledger_types::access_tx::{AccessScope, GrantAccess, Grantee, KeyRelease};
use chipledger_types::device_tx::{AddManufacturerCa, CaId, DeviceId, ModelRange, RegisterDevice};
use chipledger_types::firmware_tx::{
    ApproveRollout, AttestInstall, CertStatus, Certify, CreateRollout, PublishRelease, RegisterFirmwareKey, ReleaseId,
    SetFleetPolicy,
};
use chipledger_types::tx::{GovAction, Payload, TxHash};
use p256::ecdsa::SigningKey as P256Key;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The hardware model of the simulated chips (a street lamp), inside the CA's grant.
pub const LAMP: u32 = 150;
/// The model numbers the manufacturer CA may register.
const CA_MODELS: ModelRange = ModelRange { first: 100, last: 199 };
/// Chips the fixture makes; a run registers (and installs) one or all of them.
pub const CHIPS: usize = 2;
/// The fleet policy `city` sets: `city` and `audit` must both approve a rollout, and the
/// release must be certified.
pub const FLEET: &str = "city-lights";
const FLEET_APPROVERS: [&str; 2] = ["audit", "city"];
const FLEET_THRESHOLD: u32 = 2;
/// Certificates are valid from the Unix epoch: the simulated block clock starts there.
const VALIDITY: CertValidity = CertValidity {
    not_before_unix_s: 0,
    not_after_unix_s: None,
};
/// A grant's expiry (block time, ms): far beyond any run's virtual time.
const GRANT_EXPIRES_MS: u64 = 4_000_000_000_000;
/// The record-time window a grant covers.
const SCOPE_UNTIL_MS: u64 = 4_000_000_000_000;
/// Epoch keys a key release names.
const RELEASE_EPOCHS: [u32; 2] = [1, 2];
/// Organisations a byzantine client or the install evidence may be submitted by (anyone may
/// submit evidence). Never `audit`, whose sequence numbers the fork client reuses.
const ANY_SUBMITTER: &[&str] = &["city", "maker", "vendor"];
/// Key releases are recorded by the owner's key service.
const OWNER: &[&str] = &["city"];

/// A deterministic P-256 key (the scalar `[tag; 32]`).
pub(crate) fn p256_key(tag: u8) -> P256Key {
    P256Key::from_bytes(&[tag; 32].into()).expect("a fixed scalar below the group order")
}

/// Chip `i`'s DeviceID key (the data path's devices sign their records with it).
pub fn chip_key(i: usize) -> P256Key {
    p256_key(0x20 + i as u8)
}

/// A software DICE chip: its DeviceID key and certificate (endorsed by the manufacturer CA).
pub struct Chip {
    pub id: DeviceId,
    pub deviceid_der: Vec<u8>,
    /// The Alias layer (key, certificate) of each fixture release's image, by image digest.
    aliases: BTreeMap<[u8; 32], (P256Key, Vec<u8>)>,
}

/// A SUIT-signed firmware release (its image bytes never reach the ledger).
pub struct Release {
    pub envelope: Vec<u8>,
    pub id: ReleaseId,
    pub image: [u8; 32],
    pub version: &'static str,
}

/// Everything the story signs with: fixed keys, certificates and envelopes.
pub struct Fixture {
    pub ca_der: Vec<u8>,
    pub ca: CaId,
    pub chips: Vec<Chip>,
    pub firmware_key: P256Key,
    /// Published by `vendor`: the one rolled out and installed, and one whose rollout is never
    /// approved.
    pub releases: [Release; 2],
    /// A validly signed release never published (a byzantine rollout names it).
    pub unpublished: Release,
    /// SHA-256 of the grantee's recipient key (SEC1 uncompressed), as key releases name it.
    recipient: [u8; 32],
}

/// A DICE TCB of `layer` measuring `fwid`.
fn tcb(layer: u64, fwid: &[u8; 32]) -> DiceTcbInfo {
    DiceTcbInfo {
        vendor: Some("maker".into()),
        model: Some("lamp".into()),
        layer: Some(layer),
        fwids: Some(vec![Fwid::sha256(fwid)]),
        ..Default::default()
    }
}

fn request<'a>(key: &'a P256Key, subject: &'a DeviceId, tcb_info: &'a DiceTcbInfo) -> CertRequest<'a> {
    CertRequest {
        subject_public_key: key.verifying_key(),
        subject_id: &subject.0,
        tcb_info,
        validity: VALIDITY,
    }
}

/// The Alias layer of firmware measuring `measured` on the chip with DeviceID `key`: as with
/// DICE, its key depends on the firmware, and its certificate (issued by the DeviceID key)
/// carries `measured` as FWID.
fn alias(key: &P256Key, deviceid_der: &[u8], measured: &[u8; 32]) -> (P256Key, Vec<u8>) {
    let seed: [u8; 32] = Sha256::digest([key.to_bytes().as_slice(), measured].concat()).into();
    let alias_key = P256Key::from_bytes(&seed.into()).expect("a SHA-256 digest below the group order");
    let id = device_id_of(alias_key.verifying_key());
    let der =
        issue_alias_cert(key, deviceid_der, &request(&alias_key, &id, &tcb(1, measured))).expect("Alias certificate");
    (alias_key, der)
}

impl Chip {
    /// The chip with DeviceID `key`, endorsed by the CA, with the Alias layers of `images` (made once: each costs
    /// P-256 signatures).
    fn new(ca_key: &P256Key, ca_der: &[u8], key: P256Key, images: &[[u8; 32]]) -> Self {
        let id = device_id_of(key.verifying_key());
        let deviceid_der =
            issue_deviceid_cert(ca_key, ca_der, &request(&key, &id, &tcb(0, &[0; 32]))).expect("DeviceID certificate");
        let aliases = images
            .iter()
            .map(|image| (*image, alias(&key, &deviceid_der, image)))
            .collect();
        Self {
            id,
            deviceid_der,
            aliases,
        }
    }

    /// Install evidence: the chip booted `release`, and its Alias key signs an EAT answering
    /// the challenge `challenge_seed` named at `height`, under `rollout`.
    pub fn install(&self, rollout: TxHash, release: &Release, challenge_seed: &[u8; 32], height: u64) -> Payload {
        let (alias_key, alias_der) = &self.aliases[&release.image];
        let claims = EatClaims {
            nonce: attest_nonce(crate::world::CHAIN_ID, &self.id, challenge_seed, height).to_vec(),
            ueid: ueid_of(&self.id.0).to_vec(),
            oemid: OemId::Pen(12345),
            hwmodel: hwmodel_of(LAMP).to_vec(),
            swname: "lamp-fw".into(),
            swversion: SwVersion {
                version: release.version.into(),
                scheme: None,
            },
            measurements: vec![Measurement {
                content_format: 42,
                value: release.image.to_vec(),
            }],
        };
        Payload::AttestInstall(AttestInstall {
            device: self.id,
            rollout,
            alias_cert_der: alias_der.clone(),
            eat: sign_eat(&claims, alias_key).expect("EAT"),
        })
    }
}

impl Release {
    /// Release `n`: image `[n; 100]`, security version `4 + n`, signed by `key` for lamps.
    fn new(key: &P256Key, n: u8, version: &'static str) -> Self {
        let image: [u8; 32] = Sha256::digest([n; 100]).into();
        let spec = ReleaseSpec {
            sequence_number: 4 + u64::from(n),
            vendor_id: suit::vendor_id_for_org("vendor"),
            class_ids: vec![suit::class_id_for_model(LAMP)],
            image_digest_sha256: image,
            image_size: 100,
            uri: Some(format!("https://fw.example/{n}.bin")),
        };
        let envelope = suit::build_envelope(&spec, key);
        Self {
            id: release_id(&envelope).expect("a built envelope decodes"),
            envelope,
            image,
            version,
        }
    }

    pub fn publish(&self) -> Payload {
        Payload::PublishRelease(PublishRelease {
            envelope: self.envelope.clone(),
            version: self.version.into(),
            models: vec![LAMP],
            min_applicable: "1.0.0".into(),
            max_applicable: "2.99.0".into(),
            fixes: vec!["CVE-2024-0001".into()],
        })
    }
}

/// A release's id: the SHA-256 manifest digest of its envelope (as the ledger computes it).
pub fn release_id(envelope: &[u8]) -> Option<ReleaseId> {
    let manifest = suit::decode_envelope_unverified(envelope).ok()?;
    manifest.manifest_digest.sha256().map(ReleaseId)
}

impl Fixture {
    fn new() -> Self {
        let ca_key = p256_key(0x11);
        let ca_der = issue_ca_cert(&ca_key, "CN=Sim CA,O=maker", 1, VALIDITY).expect("CA certificate");
        let firmware_key = p256_key(0x40);
        let releases = [
            Release::new(&firmware_key, 1, "2.1.0"),
            Release::new(&firmware_key, 2, "2.2.0"),
        ];
        let unpublished = Release::new(&firmware_key, 3, "2.3.0");
        let images = [&releases[0], &releases[1], &unpublished].map(|r| r.image);
        let chips = (0..CHIPS as u8)
            .map(|i| Chip::new(&ca_key, &ca_der, chip_key(i as usize), &images))
            .collect();
        let recipient_key = p256_key(0x60).verifying_key().to_sec1_point(false);
        Self {
            ca: ca_id_of(ca_key.verifying_key()),
            ca_der,
            chips,
            firmware_key,
            releases,
            unpublished,
            recipient: Sha256::digest(recipient_key.as_bytes()).into(),
        }
    }

    /// The fixture (built once per process: it does not depend on the seed).
    pub fn get() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(Fixture::new)
    }

    pub fn propose_ca(&self) -> Payload {
        Payload::Propose(GovAction::AddManufacturerCa(AddManufacturerCa {
            org: "maker".into(),
            ca_cert_der: self.ca_der.clone(),
            models: vec![CA_MODELS],
        }))
    }

    pub fn register(&self, chip: usize) -> Payload {
        Payload::RegisterDevice(RegisterDevice {
            ca: self.ca,
            deviceid_cert_der: self.chips[chip].deviceid_der.clone(),
            model: LAMP,
            owner: "city".into(),
        })
    }

    /// A key release of `device`'s first epochs under `grant`, to the fixed recipient key.
    pub fn key_release(&self, grant: TxHash, device: DeviceId) -> Payload {
        Payload::KeyRelease(KeyRelease {
            grant,
            device,
            epochs: RELEASE_EPOCHS.to_vec(),
            recipient: self.recipient,
        })
    }

    pub fn register_firmware_key(&self) -> Payload {
        let point = self.firmware_key.verifying_key().to_sec1_point(false);
        let key_sec1 = point.as_bytes().try_into().expect("65-byte uncompressed point");
        Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1 })
    }
}

pub fn fleet_policy() -> Payload {
    Payload::SetFleetPolicy(SetFleetPolicy {
        fleet: FLEET.into(),
        approvers: FLEET_APPROVERS.iter().map(|a| a.to_string()).collect(),
        threshold: FLEET_THRESHOLD,
        require_certified: true,
    })
}

pub fn create_rollout(release: ReleaseId) -> Payload {
    Payload::CreateRollout(CreateRollout {
        fleet: FLEET.into(),
        release,
        models: Vec::new(),
        rate_devices_per_min: 60,
        wave_size: 10,
        abort_failure_pct: 20,
    })
}

pub fn certify(release: ReleaseId) -> Payload {
    Payload::Certify(Certify {
        release,
        status: CertStatus::Certified,
        note: "sim lab report".into(),
    })
}

pub fn approve_rollout(rollout: TxHash) -> Payload {
    Payload::ApproveRollout(ApproveRollout { rollout })
}

/// `city` grants `grantee` the data of `devices` (sorted) until `expires_ms`.
pub fn grant(grantee: &str, devices: &[DeviceId], expires_ms: u64) -> Payload {
    Payload::GrantAccess(GrantAccess {
        grantee: Grantee::Org(grantee.into()),
        scope: AccessScope {
            devices: devices.to_vec(),
            tags: Vec::new(),
            streams: vec!["pm25".into()],
            from_ms: 0,
            until_ms: SCOPE_UNTIL_MS,
        },
        purpose: "air-quality study".into(),
        expires_ms,
        price: None,
    })
}

// ---------------------------------------------------------------------------------------------
// The steps.
// ---------------------------------------------------------------------------------------------

/// One step of the story: honest steps submit transactions that must be accepted and become
/// final; attack steps submit one transaction that must be refused (or never become final).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    ProposeCa,
    ApproveCa,
    FirmwareKey,
    Publish,
    FleetPolicy,
    Certify,
    RegisterChips,
    CreateRollouts,
    ApproveRollout,
    Install,
    Grant,
    KeyRelease,
    /// Attack: a rollout of a release that was never published.
    RolloutOfUnpublished,
    /// Attack: install evidence under that (non-existent) rollout.
    InstallUnknownRollout,
    /// Attack: install evidence under a rollout that was never approved.
    InstallUnapproved,
    /// Attack: a key release naming a transaction that is no grant.
    ReleaseWithoutGrant,
    /// Attack: a key release under the grant for a chip the grant does not cover.
    ReleaseNotCovered,
}

/// Every step and the steps it waits for (honest ones: final at the validator the story
/// submits to; attacks: attempted).
const STEPS: [(Step, &[Step]); 17] = [
    (Step::ProposeCa, &[]),
    (Step::ApproveCa, &[Step::ProposeCa]),
    (Step::FirmwareKey, &[]),
    (Step::Publish, &[Step::FirmwareKey]),
    (Step::FleetPolicy, &[]),
    (Step::Certify, &[Step::Publish]),
    (Step::RegisterChips, &[Step::ApproveCa]),
    (Step::CreateRollouts, &[Step::Publish, Step::FleetPolicy]),
    (Step::ApproveRollout, &[Step::CreateRollouts, Step::Certify]),
    (Step::Install, &[Step::ApproveRollout, Step::RegisterChips]),
    (Step::Grant, &[Step::RegisterChips]),
    (Step::KeyRelease, &[Step::Grant]),
    (Step::RolloutOfUnpublished, &[Step::FleetPolicy]),
    (
        Step::InstallUnknownRollout,
        &[Step::RolloutOfUnpublished, Step::Install],
    ),
    (Step::InstallUnapproved, &[Step::Install]),
    (Step::ReleaseWithoutGrant, &[Step::Grant]),
    (Step::ReleaseNotCovered, &[Step::Grant]),
];

impl Step {
    pub fn is_attack(self) -> bool {
        self >= Step::RolloutOfUnpublished
    }
}

/// Who signs a transaction of a step.
#[derive(Clone, Copy, Debug)]
pub enum Signer {
    Org(&'static str),
    /// The step's submitter: the first of [`Story::submitters`] whose transactions are all
    /// final at the validator (so the submission is checked against the rules, not parked
    /// behind a sequence gap).
    Submitter,
}

/// A forbidden transaction (signed by the step's submitter) and the refusal it must meet.
pub struct Attack {
    pub payload: Payload,
    /// The error code the validator must refuse it with.
    pub expect: &'static str,
    pub invariant: Invariant,
}

/// Where the story stands.
#[derive(Debug)]
pub struct Story {
    /// Chips to register and install on (1 or [`CHIPS`], from the seed).
    installs: usize,
    /// Steps done: the transactions honest steps submitted, the (would-be) hash an attack signed.
    done: BTreeMap<Step, Vec<TxHash>>,
}

impl Story {
    pub fn new(installs: usize) -> Self {
        Self {
            installs: installs.clamp(1, CHIPS),
            done: BTreeMap::new(),
        }
    }

    /// Whether every step ran.
    pub fn done(&self) -> bool {
        self.done.len() == STEPS.len()
    }

    /// The steps still to run whose prerequisites are met: honest prerequisites final (by
    /// `is_final`), attacks attempted; [`Step::Grant`] also needs `buyer` to exist.
    pub fn ready(&self, is_final: &dyn Fn(&TxHash) -> bool, buyer: bool) -> Vec<Step> {
        let met = |s: &Step| {
            self.done
                .get(s)
                .is_some_and(|hashes| s.is_attack() || hashes.iter().all(is_final))
        };
        STEPS
            .iter()
            .filter(|(step, needs)| !self.done.contains_key(step) && needs.iter().all(met))
            .filter(|(step, _)| *step != Step::Grant || buyer)
            .map(|(step, _)| *step)
            .collect()
    }

    /// The organisations that may submit `step` (install evidence, attacks), if it has a
    /// submitter: it waits for one of them to be quiet (the caller checks, before building
    /// the step's transactions: evidence and signatures cost P-256 operations).
    pub fn submitters(step: Step) -> Option<&'static [&'static str]> {
        match step {
            Step::Install | Step::InstallUnknownRollout | Step::InstallUnapproved => Some(ANY_SUBMITTER),
            Step::RolloutOfUnpublished | Step::ReleaseWithoutGrant | Step::ReleaseNotCovered => Some(OWNER),
            _ => None,
        }
    }

    pub fn record(&mut self, step: Step, hashes: Vec<TxHash>) {
        self.done.insert(step, hashes);
    }

    fn hash(&self, step: Step, index: usize) -> TxHash {
        self.done[&step][index]
    }

    /// An honest step's transactions and who signs each. `height` is the validator's
    /// finalized height (the challenge height install evidence names).
    pub fn honest(&self, step: Step, height: u64) -> Vec<(Signer, Payload)> {
        let fx = Fixture::get();
        let by = |org| move |p: Payload| (Signer::Org(org), p);
        match step {
            Step::ProposeCa => vec![by("city")(fx.propose_ca())],
            Step::ApproveCa => {
                // The proposer's vote and these two reach the governance threshold of 3.
                let proposal = self.hash(Step::ProposeCa, 0);
                ["maker", "vendor"]
                    .map(|org| by(org)(Payload::Approve { proposal }))
                    .into()
            }
            Step::FirmwareKey => vec![by("vendor")(fx.register_firmware_key())],
            Step::Publish => fx.releases.iter().map(|r| by("vendor")(r.publish())).collect(),
            Step::FleetPolicy => vec![by("city")(fleet_policy())],
            Step::Certify => vec![by("audit")(certify(fx.releases[0].id))],
            Step::RegisterChips => (0..self.installs).map(|i| by("maker")(fx.register(i))).collect(),
            Step::CreateRollouts => fx.releases.iter().map(|r| by("city")(create_rollout(r.id))).collect(),
            Step::ApproveRollout => {
                let rollout = self.hash(Step::CreateRollouts, 0);
                FLEET_APPROVERS.map(|org| by(org)(approve_rollout(rollout))).into()
            }
            Step::Install => {
                let rollout = self.hash(Step::CreateRollouts, 0);
                (0..self.installs)
                    .map(|i| {
                        let registered = self.hash(Step::RegisterChips, i);
                        let evidence = fx.chips[i].install(rollout, &fx.releases[0], &registered.0, height);
                        (Signer::Submitter, evidence)
                    })
                    .collect()
            }
            Step::Grant => vec![by("city")(grant(
                crate::world::NEW_ORG,
                &[fx.chips[0].id],
                GRANT_EXPIRES_MS,
            ))],
            Step::KeyRelease => vec![by("city")(fx.key_release(self.hash(Step::Grant, 0), fx.chips[0].id))],
            attack => unreachable!("{attack:?} is an attack"),
        }
    }

    /// An attack step's forbidden transaction. Install evidence is otherwise valid: it answers
    /// chip 0's current challenge (its install moved it on) at `height`.
    pub fn attack(&self, step: Step, height: u64) -> Attack {
        let fx = Fixture::get();
        let chip = &fx.chips[0];
        let challenge = || self.hash(Step::Install, 0).0;
        match step {
            Step::RolloutOfUnpublished => Attack {
                payload: create_rollout(fx.unpublished.id),
                expect: "unknown_release",
                invariant: Invariant::NoInstallWithoutApprovedRelease,
            },
            Step::InstallUnknownRollout => Attack {
                payload: chip.install(
                    self.hash(Step::RolloutOfUnpublished, 0),
                    &fx.unpublished,
                    &challenge(),
                    height,
                ),
                expect: "unknown_rollout",
                invariant: Invariant::NoInstallWithoutApprovedRelease,
            },
            Step::InstallUnapproved => Attack {
                payload: chip.install(
                    self.hash(Step::CreateRollouts, 1),
                    &fx.releases[1],
                    &challenge(),
                    height,
                ),
                expect: "not_approved_for_device",
                invariant: Invariant::NoInstallWithoutApprovedRelease,
            },
            Step::ReleaseWithoutGrant => Attack {
                // A real, final transaction that is not a grant: the chip's registration.
                payload: fx.key_release(self.hash(Step::RegisterChips, 0), chip.id),
                expect: "unknown_grant",
                invariant: Invariant::NoKeyReleaseWithoutRecord,
            },
            Step::ReleaseNotCovered => Attack {
                // Chip 1 (registered to `city` or not at all): outside the grant's scope.
                payload: fx.key_release(self.hash(Step::Grant, 0), fx.chips[1].id),
                expect: "not_covered",
                invariant: Invariant::NoKeyReleaseWithoutRecord,
            },
            honest => unreachable!("{honest:?} is honest"),
        }
    }
}

//! Firmware provenance rules (issue 4): firmware keys, SUIT-signed releases, withdrawal,
//! certification, CVE reports, fleet policies, rollout approval and control, LwM2M progress
//! with auto-pause, and device-attested installs feeding the fleet version map. Every
//! rejection gets its typed error and leaves the state unchanged. Envelopes are built and
//! checked by the device SDK's SUIT module; certificates and evidence by its DICE/EAT code.

mod support;

use chipledger_device::cert::{
    CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert, issue_deviceid_cert,
};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat};
use chipledger_device::ledger::{hwmodel_of, ueid_of};
use chipledger_device::suit::{self, ReleaseSpec};
use chipledger_state::device::{attest_nonce, ca_id_of, device_id_of};
use chipledger_state::firmware::model::*;
use chipledger_state::firmware::{FirmwareError, FirmwareEvent, firmware_key_id};
use chipledger_state::model::*;
use chipledger_state::{Event, TxError};
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::*;
use chipledger_types::firmware_tx::*;
use chipledger_types::tx::{GovAction, Payload, Role, SignedTx, TxHash};
use p256::ecdsa::SigningKey;
use sha2::{Digest, Sha256};
use support::World;

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;
/// The hardware model of the test fleet's lamps, and a second model.
const LAMP: u32 = 150;
const METER: u32 = 151;

const ORGS: [(&str, Role); 6] = [
    ("maker", Role::Manufacturer),
    ("vendor", Role::Publisher),
    ("vendor2", Role::Publisher),
    ("city", Role::Owner),
    ("buyer", Role::Owner),
    ("audit", Role::Auditor),
];

fn world() -> World {
    World::new(&ORGS, 2, T0_MS)
}

impl World {
    /// Apply; return the transaction hash and the firmware events.
    fn ok_hash(&mut self, org: &str, payload: Payload) -> (TxHash, Vec<FirmwareEvent>) {
        let (hash, events) = self.apply_ok(org, payload);
        let fw = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Firmware(x) => Some(x),
                _ => None,
            })
            .collect();
        (hash, fw)
    }

    fn ok(&mut self, org: &str, payload: Payload) -> Vec<FirmwareEvent> {
        self.ok_hash(org, payload).1
    }

    /// Apply and expect an error, checking that the state did not change.
    fn reject(&mut self, org: &str, payload: Payload) -> TxError {
        let err = self.reject_unchanged(org, payload);
        assert!(!err.code().is_empty());
        err
    }

    /// Expect a firmware rejection and return it.
    fn refuse(&mut self, org: &str, payload: Payload) -> FirmwareError {
        match self.reject(org, payload) {
            TxError::Firmware(e) => e,
            other => panic!("expected a firmware error, got {other:?}"),
        }
    }

    fn govern(&mut self, action: GovAction) {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let proposal = TxHash::of(&p);
        self.apply(&self.tx("audit", Payload::Approve { proposal })).unwrap();
    }

    fn release(&self, id: &ReleaseId) -> ReleaseRecord {
        get_release(&self.state, id).unwrap().expect("release published")
    }

    fn rollout(&self, id: &TxHash) -> RolloutRecord {
        get_rollout(&self.state, id).unwrap().expect("rollout created")
    }
}

fn p256_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

// ---- devices -----------------------------------------------------------------------------------

struct Ca {
    key: SigningKey,
    der: Vec<u8>,
    id: CaId,
}

fn ca(seed: u8) -> Ca {
    let key = p256_key(seed);
    let der = issue_ca_cert(&key, "CN=CA,O=maker", seed as u64, CertValidity::DICE_DEFAULT).unwrap();
    let id = ca_id_of(key.verifying_key());
    Ca { key, der, id }
}

/// A TCB of `layer` whose SHA-256 FWID is `fwid` (the measured image; the DeviceID layer's own).
fn tcb(layer: u64, fwid: &[u8; 32]) -> DiceTcbInfo {
    DiceTcbInfo {
        vendor: Some("maker".into()),
        model: Some("lamp".into()),
        layer: Some(layer),
        fwids: Some(vec![Fwid::sha256(fwid)]),
        ..Default::default()
    }
}

struct Chip {
    id: DeviceId,
    model: u32,
    dev_key: SigningKey,
    deviceid_der: Vec<u8>,
}

/// An issued certificate for `key` (subject `subject`) with `tcb`.
fn cert(
    key: &SigningKey,
    subject: &DeviceId,
    tcb: &DiceTcbInfo,
    issue: &dyn Fn(&CertRequest<'_>) -> Vec<u8>,
) -> Vec<u8> {
    issue(&CertRequest {
        subject_public_key: key.verifying_key(),
        subject_id: &subject.0,
        tcb_info: tcb,
        validity: CertValidity::DICE_DEFAULT,
    })
}

/// A software chip endorsed by `ca`, registered by `maker` as `model` to `owner`.
fn chip(w: &mut World, ca: &Ca, seed: u8, model: u32, owner: &str) -> Chip {
    let dev_key = p256_key(seed);
    let id = device_id_of(dev_key.verifying_key());
    let deviceid_der = cert(&dev_key, &id, &tcb(0, &[0; 32]), &|r| {
        issue_deviceid_cert(&ca.key, &ca.der, r).unwrap()
    });
    let register = Payload::RegisterDevice(RegisterDevice {
        ca: ca.id,
        deviceid_cert_der: deviceid_der.clone(),
        model,
        owner: owner.into(),
    });
    let t = w.tx("maker", register);
    w.apply(&t).unwrap();
    Chip {
        id,
        model,
        dev_key,
        deviceid_der,
    }
}

impl Chip {
    /// The Alias layer of firmware measuring `measured`: as with DICE, its key depends on the
    /// firmware, and its certificate (issued by the DeviceID key) carries `measured` as FWID.
    fn alias(&self, measured: &[u8; 32]) -> (SigningKey, Vec<u8>) {
        let seed: [u8; 32] = Sha256::digest([self.dev_key.to_bytes().as_slice(), measured].concat()).into();
        let key = SigningKey::from_bytes(&seed.into()).unwrap();
        let der = cert(&key, &device_id_of(key.verifying_key()), &tcb(1, measured), &|r| {
            issue_alias_cert(&self.dev_key, &self.deviceid_der, r).unwrap()
        });
        (key, der)
    }
}

/// `chip`'s install evidence: it boots and measures `measured` and answers its current challenge.
fn install(w: &World, c: &Chip, rollout: &TxHash, measured: &[u8; 32]) -> Payload {
    let (key, der) = c.alias(measured);
    install_evidence(w, c, rollout, measured, &key, der)
}

/// Install evidence for `c` under the Alias certificate of `measured`, signed by `key` (that
/// layer's Alias key, or a forger's).
fn install_signed_by(w: &World, c: &Chip, rollout: &TxHash, measured: &[u8; 32], key: &SigningKey) -> Payload {
    install_evidence(w, c, rollout, measured, key, c.alias(measured).1)
}

/// Install evidence claiming `claimed` as measurement, signed by `key`, with `alias_der`.
fn install_evidence(
    w: &World,
    c: &Chip,
    rollout: &TxHash,
    claimed: &[u8; 32],
    key: &SigningKey,
    alias_der: Vec<u8>,
) -> Payload {
    let seed = get_device(&w.state, &c.id).unwrap().unwrap().challenge_seed;
    let claims = EatClaims {
        nonce: attest_nonce("test", &c.id, &seed, w.height).to_vec(),
        ueid: ueid_of(&c.id.0).to_vec(),
        oemid: OemId::Pen(12345),
        hwmodel: hwmodel_of(c.model).to_vec(),
        swname: "lamp-fw".into(),
        swversion: SwVersion {
            version: "2.1.0".into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: 42,
            value: claimed.to_vec(),
        }],
    };
    Payload::AttestInstall(AttestInstall {
        device: c.id,
        rollout: *rollout,
        alias_cert_der: alias_der,
        eat: sign_eat(&claims, key).unwrap(),
    })
}

// ---- releases ----------------------------------------------------------------------------------

fn sec1(key: &SigningKey) -> [u8; 65] {
    key.verifying_key().to_sec1_point(false).as_bytes().try_into().unwrap()
}

fn register_key(key: &SigningKey) -> Payload {
    Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1: sec1(key) })
}

/// The SHA-256 digest of test image `n` (its bytes never reach the ledger).
fn image(n: u8) -> [u8; 32] {
    Sha256::digest([n; 100]).into()
}

/// A SUIT envelope by `signer` for `models`, claiming vendor `vendor_org`.
fn envelope_for(signer: &SigningKey, seq: u64, class_models: &[u32], img: u8, vendor_org: &str) -> Vec<u8> {
    let spec = ReleaseSpec {
        sequence_number: seq,
        vendor_id: suit::vendor_id_for_org(vendor_org),
        class_ids: class_models.iter().map(|m| suit::class_id_for_model(*m)).collect(),
        image_digest_sha256: image(img),
        image_size: 100,
        uri: Some(format!("https://fw.example/{img}.bin")),
    };
    suit::build_envelope(&spec, signer)
}

fn envelope(signer: &SigningKey, seq: u64, models: &[u32], img: u8) -> Vec<u8> {
    envelope_for(signer, seq, models, img, "vendor")
}

fn release_id(env: &[u8]) -> ReleaseId {
    ReleaseId(
        suit::decode_envelope_unverified(env)
            .unwrap()
            .manifest_digest
            .sha256()
            .unwrap(),
    )
}

fn publish(env: &[u8], version: &str, models: &[u32]) -> Payload {
    Payload::PublishRelease(PublishRelease {
        envelope: env.to_vec(),
        version: version.into(),
        models: models.to_vec(),
        min_applicable: "1.0.0".into(),
        max_applicable: "2.99.0".into(),
        fixes: vec!["CVE-2024-0001".into()],
    })
}

fn certify(id: ReleaseId, status: CertStatus) -> Payload {
    Payload::Certify(Certify {
        release: id,
        status,
        note: "lab report 7".into(),
    })
}

fn fleet_policy(name: &str, approvers: &[&str], threshold: u32, require_certified: bool) -> Payload {
    Payload::SetFleetPolicy(SetFleetPolicy {
        fleet: name.into(),
        approvers: approvers.iter().map(|a| a.to_string()).collect(),
        threshold,
        require_certified,
    })
}

fn create_rollout(fleet: &str, release: ReleaseId, models: &[u32], abort_failure_pct: u8) -> Payload {
    Payload::CreateRollout(CreateRollout {
        fleet: fleet.into(),
        release,
        models: models.to_vec(),
        rate_devices_per_min: 60,
        wave_size: 10,
        abort_failure_pct,
    })
}

fn approve(rollout: TxHash) -> Payload {
    Payload::ApproveRollout(ApproveRollout { rollout })
}

fn control(rollout: TxHash, action: RolloutAction) -> Payload {
    Payload::ControlRollout(ControlRollout { rollout, action })
}

fn progress(rollout: TxHash, device: DeviceId, state: UpdateState, result: UpdateResult) -> Payload {
    Payload::ReportProgress(ReportProgress {
        rollout,
        device,
        state,
        result,
    })
}

/// A world with `maker`'s CA, `vendor`'s firmware key, and release 2.1.0 (sequence 5, image 1,
/// lamps and meters) published and certified.
struct Scene {
    w: World,
    ca: Ca,
    key: SigningKey,
    release: ReleaseId,
}

fn scene() -> Scene {
    let mut w = world();
    let ca = ca(1);
    w.govern(GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca.der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    }));
    let key = p256_key(40);
    w.ok("vendor", register_key(&key));
    let env = envelope(&key, 5, &[LAMP, METER], 1);
    w.ok("vendor", publish(&env, "2.1.0", &[LAMP, METER]));
    let release = release_id(&env);
    w.ok("audit", certify(release, CertStatus::Certified));
    Scene { w, ca, key, release }
}

/// `scene()` plus fleet `city-lights` (city + audit, 2 of 2, certified required) and a ready
/// rollout of the release to every city lamp and meter.
fn ready_rollout() -> (Scene, TxHash) {
    let mut s = scene();
    s.w.ok("city", fleet_policy("city-lights", &["city", "audit"], 2, true));
    let (rollout, _) = s.w.ok_hash("city", create_rollout("city-lights", s.release, &[], 20));
    s.w.ok("city", approve(rollout));
    s.w.ok("audit", approve(rollout));
    assert_eq!(s.w.rollout(&rollout).status, RolloutStatus::Ready);
    (s, rollout)
}

// ---- tests -------------------------------------------------------------------------------------

#[test]
fn firmware_keys_are_self_service_for_publishers() {
    let mut w = world();
    let key = p256_key(40);
    let id = firmware_key_id(key.verifying_key());
    let ev = w.ok("vendor", register_key(&key));
    assert_eq!(
        ev,
        vec![FirmwareEvent::KeyRegistered {
            org: "vendor".into(),
            key: id
        }]
    );
    assert!(matches!(
        w.refuse("city", register_key(&p256_key(41))),
        FirmwareError::MissingRole { role: "publisher", .. }
    ));
    // The same key again, or another publisher claiming it.
    assert!(matches!(w.refuse("vendor", register_key(&key)), FirmwareError::FirmwareKeyExists(k) if k == id));
    assert!(matches!(
        w.refuse("vendor2", register_key(&key)),
        FirmwareError::FirmwareKeyExists(_)
    ));
    // A 65-byte string starting with 0x04 that is not a curve point.
    let mut off_curve = [1u8; 65];
    off_curve[0] = 4;
    let bad = Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1: off_curve });
    assert!(matches!(w.refuse("vendor", bad), FirmwareError::BadFirmwareKey(_)));

    let revoke = |key_id| Payload::RevokeFirmwareKey(RevokeFirmwareKey { key_id });
    assert!(matches!(
        w.refuse("vendor2", revoke(id)),
        FirmwareError::UnknownFirmwareKey { .. }
    ));
    w.ok("vendor", revoke(id));
    let keys = firmware_keys(&w.state, "vendor").unwrap();
    assert_eq!(keys.len(), 1, "revoked keys stay listed");
    assert!(keys[0].revoked_height.is_some());
    assert!(matches!(
        w.refuse("vendor", revoke(id)),
        FirmwareError::FirmwareKeyRevoked(_)
    ));
    // A revoked key signs nothing new.
    let env = envelope(&key, 1, &[LAMP], 1);
    assert!(matches!(
        w.refuse("vendor", publish(&env, "1.0.0", &[LAMP])),
        FirmwareError::NoFirmwareKey(o) if o == "vendor"
    ));
}

#[test]
fn publish_stores_envelope_record_and_indexes() {
    let s = scene();
    let env = envelope(&s.key, 5, &[LAMP, METER], 1);
    let r = s.w.release(&s.release);
    let manifest = suit::verify_envelope(&env, s.key.verifying_key()).unwrap();
    assert_eq!(r.id.0.to_vec(), manifest.manifest_digest.bytes);
    assert_eq!(
        (r.publisher.as_str(), r.version.as_str(), r.security_version),
        ("vendor", "2.1.0", 5)
    );
    assert_eq!((r.image_digest, r.image_size, r.image_digest_alg), (image(1), 100, -16));
    assert_eq!(r.models, vec![LAMP, METER]);
    assert_eq!(r.signing_key, firmware_key_id(s.key.verifying_key()));
    assert_eq!(r.withdrawn, None);
    assert_eq!(get_envelope(&s.w.state, &s.release).unwrap(), Some(env));
    assert_eq!(release_by_digest(&s.w.state, &image(1)).unwrap(), Some(s.release));
    assert_eq!(releases_of_publisher(&s.w.state, "vendor").unwrap(), vec![s.release]);
    assert_eq!(releases_of_model(&s.w.state, METER).unwrap(), vec![s.release]);
    assert!(releases_of_model(&s.w.state, 152).unwrap().is_empty());
}

#[test]
fn publish_rejections() {
    let mut s = scene();
    let w = &mut s.w;
    let key = &s.key;
    // Not a publisher; a publisher without keys.
    let env = envelope(key, 6, &[LAMP], 2);
    assert!(matches!(
        w.refuse("city", publish(&env, "2.2.0", &[LAMP])),
        FirmwareError::MissingRole { .. }
    ));
    assert!(matches!(
        w.refuse("vendor2", publish(&env, "2.2.0", &[LAMP])),
        FirmwareError::NoFirmwareKey(_)
    ));
    // Signed by a key the publisher never registered.
    let wrong_key = envelope(&p256_key(41), 6, &[LAMP], 2);
    let e = w.refuse("vendor", publish(&wrong_key, "2.2.0", &[LAMP]));
    assert!(
        matches!(&e, FirmwareError::BadEnvelope { why, .. } if why.contains("signature")),
        "{e}"
    );
    // Tampered: one byte of the image digest inside the signed manifest flipped.
    let mut tampered = env.clone();
    let at = tampered
        .windows(32)
        .position(|w| w == image(2))
        .expect("digest in manifest");
    tampered[at] ^= 1;
    assert!(matches!(
        w.refuse("vendor", publish(&tampered, "2.2.0", &[LAMP])),
        FirmwareError::BadEnvelope { .. }
    ));
    // Class ids: the manifest is for lamps, the release claims meters; or it names an extra class.
    assert!(matches!(
        w.refuse("vendor", publish(&env, "2.2.0", &[METER])),
        FirmwareError::ClassIdMismatch(why) if why.contains("model 151")
    ));
    let both = envelope(key, 6, &[LAMP, METER], 2);
    assert!(matches!(
        w.refuse("vendor", publish(&both, "2.2.0", &[LAMP])),
        FirmwareError::ClassIdMismatch(why) if why.contains("not one of the listed models")
    ));
    // Another organisation's vendor id.
    let foreign = envelope_for(key, 6, &[LAMP], 2, "vendor2");
    assert!(matches!(
        w.refuse("vendor", publish(&foreign, "2.2.0", &[LAMP])),
        FirmwareError::VendorIdMismatch(_)
    ));
    // The same release again; the same version for the same model; the same image again.
    let first = envelope(key, 5, &[LAMP, METER], 1);
    assert!(matches!(
        w.refuse("vendor", publish(&first, "2.1.0", &[LAMP, METER])),
        FirmwareError::ReleaseExists(id) if id == s.release
    ));
    assert!(matches!(
        w.refuse("vendor", publish(&env, "2.1.0", &[LAMP])),
        FirmwareError::VersionExists { model: LAMP, .. }
    ));
    let same_image = envelope(key, 7, &[LAMP], 1);
    assert!(matches!(
        w.refuse("vendor", publish(&same_image, "2.3.0", &[LAMP])),
        FirmwareError::ImageExists { release, .. } if release == s.release
    ));
    // Garbage bytes are a typed envelope error, not a panic.
    assert!(matches!(
        w.refuse("vendor", publish(&[0xd8, 0x6b, 0xa0], "2.2.0", &[LAMP])),
        FirmwareError::BadEnvelope { .. }
    ));
    // And a correct one goes through, under the same key.
    let ev = w.ok("vendor", publish(&env, "2.2.0", &[LAMP]));
    assert!(matches!(
        &ev[0],
        FirmwareEvent::ReleasePublished {
            security_version: 6,
            ..
        }
    ));
}

#[test]
fn withdrawal_is_by_the_publisher_and_never_deletes() {
    let mut s = scene();
    let withdraw = |release| {
        Payload::WithdrawRelease(WithdrawRelease {
            release,
            reason: "bricks meters".into(),
        })
    };
    assert!(matches!(
        s.w.refuse("vendor2", withdraw(s.release)),
        FirmwareError::NotReleasePublisher { .. }
    ));
    assert!(matches!(
        s.w.refuse("vendor", withdraw(ReleaseId([9; 32]))),
        FirmwareError::UnknownRelease(_)
    ));
    s.w.ok("vendor", withdraw(s.release));
    let r = s.w.release(&s.release);
    assert_eq!(r.withdrawn.map(|w| w.reason), Some("bricks meters".to_string()));
    assert_eq!(
        (r.image_digest, r.image_size),
        (image(1), 100),
        "digest and size never change"
    );
    assert!(matches!(
        s.w.refuse("vendor", withdraw(s.release)),
        FirmwareError::ReleaseWithdrawn { .. }
    ));
    // Nothing new builds on a withdrawn release, but its certification may still be revoked.
    assert!(matches!(
        s.w.refuse("audit", certify(s.release, CertStatus::Certified)),
        FirmwareError::ReleaseWithdrawn { .. }
    ));
    s.w.ok("audit", certify(s.release, CertStatus::Revoked));
    s.w.ok("city", fleet_policy("f", &["city"], 1, false));
    assert!(matches!(
        s.w.refuse("city", create_rollout("f", s.release, &[], 10)),
        FirmwareError::ReleaseWithdrawn { .. }
    ));
}

#[test]
fn certification_keeps_latest_status_and_history() {
    let mut s = scene();
    assert!(matches!(
        s.w.refuse("vendor", certify(s.release, CertStatus::Certified)),
        FirmwareError::MissingRole { role: "auditor", .. }
    ));
    assert!(matches!(
        s.w.refuse("audit", certify(ReleaseId([9; 32]), CertStatus::Certified)),
        FirmwareError::UnknownRelease(_)
    ));
    s.w.ok("audit", certify(s.release, CertStatus::Revoked));
    let c = get_certification(&s.w.state, &s.release).unwrap().unwrap();
    assert_eq!(c.status, CertStatus::Revoked);
    let statuses: Vec<_> = c.history.iter().map(|e| (e.auditor.as_str(), e.status)).collect();
    assert_eq!(
        statuses,
        vec![("audit", CertStatus::Certified), ("audit", CertStatus::Revoked)]
    );
}

#[test]
fn vulnerability_reports_merge_and_keep_reporters() {
    let mut s = scene();
    let env = envelope(&s.key, 6, &[LAMP], 2);
    s.w.ok("vendor", publish(&env, "2.2.0", &[LAMP]));
    let second = release_id(&env);
    let report = |affected: Vec<ReleaseId>| {
        Payload::ReportVulnerability(ReportVulnerability {
            cve: "CVE-2024-3094".into(),
            affected,
            note: "backdoor".into(),
        })
    };
    assert!(matches!(
        s.w.refuse("city", report(vec![s.release])),
        FirmwareError::MissingRole { .. }
    ));
    assert!(matches!(
        s.w.refuse("audit", report(vec![ReleaseId([9; 32])])),
        FirmwareError::UnknownRelease(_)
    ));
    let ev = s.w.ok("vendor", report(vec![s.release]));
    assert!(matches!(&ev[0], FirmwareEvent::VulnerabilityReported { added: 1, .. }));
    let ev = s.w.ok("audit", report(vec![s.release, second]));
    assert!(matches!(&ev[0], FirmwareEvent::VulnerabilityReported { added: 1, .. }));
    let v = get_vulnerability(&s.w.state, "CVE-2024-3094").unwrap().unwrap();
    let mut both = vec![s.release, second];
    both.sort();
    assert_eq!(v.affected, both);
    let reporters: Vec<_> = v.reports.iter().map(|r| (r.org.as_str(), r.affected.len())).collect();
    assert_eq!(reporters, vec![("vendor", 1), ("audit", 1)]);
    assert_eq!(
        cves_of_release(&s.w.state, &second).unwrap(),
        vec!["CVE-2024-3094".to_string()]
    );
}

#[test]
fn rollout_needs_the_threshold_of_approvers() {
    let mut s = scene();
    let w = &mut s.w;
    assert!(matches!(
        w.refuse("vendor", fleet_policy("city-lights", &["city"], 1, false)),
        FirmwareError::MissingRole { role: "owner", .. }
    ));
    assert!(matches!(
        w.refuse("city", fleet_policy("city-lights", &["city", "nobody"], 1, false)),
        FirmwareError::UnknownApprover(a) if a == "nobody"
    ));
    w.ok("city", fleet_policy("city-lights", &["city", "audit"], 2, false));
    let fleet = get_fleet(&w.state, "city", "city-lights").unwrap().unwrap();
    assert_eq!(fleet.approvers, vec!["audit".to_string(), "city".to_string()]);

    assert!(matches!(
        w.refuse("city", create_rollout("other", s.release, &[], 10)),
        FirmwareError::UnknownFleet { .. }
    ));
    assert!(matches!(
        w.refuse("buyer", create_rollout("city-lights", s.release, &[], 10)),
        FirmwareError::UnknownFleet { .. }
    ));
    assert!(matches!(
        w.refuse("city", create_rollout("city-lights", s.release, &[152], 10)),
        FirmwareError::ModelNotInRelease { model: 152, .. }
    ));
    let (id, ev) = w.ok_hash("city", create_rollout("city-lights", s.release, &[LAMP], 10));
    assert!(matches!(&ev[0], FirmwareEvent::RolloutCreated { rollout, .. } if *rollout == id));
    let r = w.rollout(&id);
    assert_eq!(
        (r.status.name(), r.models.clone()),
        ("waiting_for_approval", vec![LAMP])
    );
    assert_eq!(rollouts_of_owner(&w.state, "city").unwrap(), vec![id]);

    assert!(matches!(
        w.refuse("vendor", approve(id)),
        FirmwareError::NotRolloutApprover { .. }
    ));
    let ev = w.ok("city", approve(id));
    assert!(matches!(
        &ev[..],
        [FirmwareEvent::RolloutApproved {
            approvals: 1,
            threshold: 2,
            ..
        }]
    ));
    assert!(matches!(
        w.refuse("city", approve(id)),
        FirmwareError::DuplicateRolloutVote { .. }
    ));
    let e = w.refuse("city", control(id, RolloutAction::Start));
    assert_eq!(
        e.to_string(),
        "firmware 2.1.0 is not approved for fleet 'city-lights': 1 of 2 approvals (missing: audit)"
    );
    assert!(get_approval(&w.state, &s.release, "city").unwrap().is_none());

    let ev = w.ok("audit", approve(id));
    assert!(matches!(ev.last(), Some(FirmwareEvent::RolloutReady { .. })));
    assert_eq!(w.rollout(&id).status, RolloutStatus::Ready);
    let a = get_approval(&w.state, &s.release, "city").unwrap().unwrap();
    assert_eq!(
        (a.rollout, a.owner.as_str(), a.models.clone(), a.security_version),
        (id, "city", vec![LAMP], 5)
    );
    assert_eq!(
        (a.image_digest, a.approvers.clone()),
        (image(1), vec!["audit".into(), "city".into()])
    );
    assert!(matches!(
        w.refuse("audit", approve(id)),
        FirmwareError::RolloutState { status: "ready", .. }
    ));

    // A second rollout of the same release for meters extends the approval record.
    let (meters, _) = w.ok_hash("city", create_rollout("city-lights", s.release, &[METER], 10));
    w.ok("audit", approve(meters));
    w.ok("city", approve(meters));
    let a = get_approval(&w.state, &s.release, "city").unwrap().unwrap();
    assert_eq!((a.rollout, a.models), (meters, vec![LAMP, METER]));
}

#[test]
fn certification_requirement_is_checked_when_the_threshold_is_reached() {
    let mut s = scene();
    let env = envelope(&s.key, 6, &[LAMP], 2);
    s.w.ok("vendor", publish(&env, "2.2.0", &[LAMP]));
    let uncertified = release_id(&env);
    s.w.ok("city", fleet_policy("city-lights", &["city", "audit"], 2, true));
    let (id, _) = s.w.ok_hash("city", create_rollout("city-lights", uncertified, &[], 10));
    s.w.ok("city", approve(id));
    assert!(matches!(
        s.w.refuse("audit", approve(id)),
        FirmwareError::NotCertified {
            status: "not certified",
            ..
        }
    ));
    s.w.ok("audit", certify(uncertified, CertStatus::Provisional));
    assert!(matches!(
        s.w.refuse("audit", approve(id)),
        FirmwareError::NotCertified {
            status: "provisional",
            ..
        }
    ));
    s.w.ok("audit", certify(uncertified, CertStatus::Certified));
    s.w.ok("audit", approve(id));
    assert_eq!(s.w.rollout(&id).status, RolloutStatus::Ready);
}

#[test]
fn one_rejection_denies_a_rollout() {
    let mut s = scene();
    s.w.ok("city", fleet_policy("city-lights", &["city", "audit"], 1, false));
    let (id, _) = s.w.ok_hash("city", create_rollout("city-lights", s.release, &[], 10));
    let reject = Payload::RejectRollout(RejectRollout {
        rollout: id,
        reason: "not in winter".into(),
    });
    assert!(matches!(
        s.w.refuse("vendor", reject.clone()),
        FirmwareError::NotRolloutApprover { .. }
    ));
    let ev = s.w.ok("audit", reject.clone());
    assert_eq!(
        ev,
        vec![FirmwareEvent::RolloutDenied {
            rollout: id,
            org: "audit".into()
        }]
    );
    let r = s.w.rollout(&id);
    assert_eq!(r.status.name(), "approval_denied");
    assert_eq!(r.rejection, Some(("audit".into(), "not in winter".into())));
    assert!(matches!(
        s.w.refuse("city", approve(id)),
        FirmwareError::RolloutState {
            status: "approval_denied",
            ..
        }
    ));
    assert!(matches!(
        s.w.refuse("city", control(id, RolloutAction::Start)),
        FirmwareError::RolloutState { .. }
    ));
    assert!(matches!(
        s.w.refuse("city", approve(TxHash([7; 32]))),
        FirmwareError::UnknownRollout(_)
    ));
    // A threshold of one: a single approval makes another rollout ready.
    let (one, _) = s.w.ok_hash("city", create_rollout("city-lights", s.release, &[], 10));
    s.w.ok("city", approve(one));
    assert_eq!(s.w.rollout(&one).status, RolloutStatus::Ready);
}

#[test]
fn owner_controls_a_rollout_through_hawkbit_states() {
    let (mut s, id) = ready_rollout();
    for i in 0..3 {
        chip(&mut s.w, &s.ca, 10 + i, LAMP, "city");
    }
    chip(&mut s.w, &s.ca, 20, 160, "city");
    chip(&mut s.w, &s.ca, 21, LAMP, "buyer");
    assert!(matches!(
        s.w.refuse("audit", control(id, RolloutAction::Start)),
        FirmwareError::NotRolloutOwner { .. }
    ));
    assert!(matches!(
        s.w.refuse("city", control(id, RolloutAction::Pause)),
        FirmwareError::RolloutState { status: "ready", .. }
    ));
    let steps = [
        (RolloutAction::Start, "running"),
        (RolloutAction::Pause, "paused"),
        (RolloutAction::Resume, "running"),
        (RolloutAction::Cancel, "stopped"),
    ];
    for (action, status) in steps {
        let ev = s.w.ok("city", control(id, action));
        assert_eq!(ev, vec![FirmwareEvent::RolloutStatusChanged { rollout: id, status }]);
    }
    // Three city lamps: the model-160 device and buyer's lamp are not targets.
    assert_eq!(s.w.rollout(&id).target_devices, 3);
    for action in [RolloutAction::Resume, RolloutAction::Start, RolloutAction::Cancel] {
        assert!(matches!(
            s.w.refuse("city", control(id, action)),
            FirmwareError::RolloutState { status: "stopped", .. }
        ));
    }
}

#[test]
fn progress_counts_and_auto_pause() {
    let (mut s, id) = ready_rollout();
    let chips: Vec<Chip> = (0..12).map(|i| chip(&mut s.w, &s.ca, 10 + i, LAMP, "city")).collect();
    let lamp = |i: usize| chips[i].id;
    use UpdateResult as R;
    use UpdateState as S;
    assert!(matches!(
        s.w.refuse("city", progress(id, lamp(0), S::Downloading, R::Initial)),
        FirmwareError::RolloutState { status: "ready", .. }
    ));
    s.w.ok("city", control(id, RolloutAction::Start));
    assert!(matches!(
        s.w.refuse("audit", progress(id, lamp(0), S::Downloading, R::Initial)),
        FirmwareError::NotRolloutOwner { .. }
    ));
    let foreign = chip(&mut s.w, &s.ca, 40, LAMP, "buyer");
    assert!(matches!(
        s.w.refuse("city", progress(id, foreign.id, S::Downloading, R::Initial)),
        FirmwareError::DeviceNotInRollout { .. }
    ));
    assert!(matches!(
        s.w.reject("city", progress(id, lamp(0), S::Downloading, R::IntegrityCheckFailure)),
        TxError::Invalid(_)
    ));
    s.w.ok("city", progress(id, lamp(0), S::Downloading, R::Initial));
    s.w.ok("city", progress(id, lamp(0), S::Downloaded, R::Initial));
    let c = s.w.rollout(&id).counts;
    assert_eq!((c.downloading, c.downloaded), (0, 1));
    assert_eq!(
        get_progress(&s.w.state, &id, &lamp(0))
            .unwrap()
            .map(|p| (p.state, p.result)),
        Some((S::Downloaded, R::Initial))
    );
    // 8 successes and 2 failures: 20 % is not above the 20 % threshold.
    for i in 0..8 {
        s.w.ok("city", progress(id, lamp(i), S::Idle, R::Success));
    }
    s.w.ok("city", progress(id, lamp(8), S::Idle, R::ConnectionLost));
    s.w.ok("city", progress(id, lamp(9), S::Downloaded, R::UpdateFailed));
    let r = s.w.rollout(&id);
    assert_eq!(
        (r.status, r.counts.succeeded, r.counts.failed, r.counts.downloaded),
        (RolloutStatus::Running, 8, 2, 0)
    );
    // A server's "success" does not move the fleet version map.
    assert_eq!(get_installed(&s.w.state, &lamp(0)).unwrap(), None);
    // The 11th final result is a failure: 3 of 11 > 20 % pauses the rollout.
    let ev = s.w.ok("city", progress(id, lamp(10), S::Idle, R::OutOfRam));
    assert_eq!(
        ev.last(),
        Some(&FirmwareEvent::RolloutAutoPaused {
            rollout: id,
            failed: 3,
            finished: 11
        })
    );
    assert_eq!(s.w.rollout(&id).status, RolloutStatus::Paused);
    // Reports still arrive while paused; a retried device moves from failed to succeeded.
    s.w.ok("city", progress(id, lamp(8), S::Idle, R::Success));
    let c = s.w.rollout(&id).counts;
    assert_eq!((c.succeeded, c.failed), (9, 2));
    // Resumed, the rollout finishes once all 12 targets have a final result.
    s.w.ok("city", control(id, RolloutAction::Resume));
    let ev = s.w.ok("city", progress(id, lamp(11), S::Idle, R::Success));
    assert_eq!(ev.last(), Some(&FirmwareEvent::RolloutFinished { rollout: id }));
    assert_eq!(s.w.rollout(&id).status.name(), "finished");
}

#[test]
fn attested_install_updates_the_fleet_version_map() {
    let (mut s, id) = ready_rollout();
    let lamp = chip(&mut s.w, &s.ca, 10, LAMP, "city");
    let ev = s.w.ok("buyer", install(&s.w, &lamp, &id, &image(1)));
    assert_eq!(
        ev,
        vec![FirmwareEvent::InstallAttested {
            device: lamp.id,
            release: s.release,
            security_version: 5
        }]
    );
    let installed = get_installed(&s.w.state, &lamp.id).unwrap().unwrap();
    assert_eq!(
        (
            installed.release,
            installed.version.as_str(),
            installed.security_version
        ),
        (s.release, "2.1.0", 5)
    );
    let tx = installed.tx;
    let history = update_history(&s.w.state, &lamp.id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].release, history[0].rollout, history[0].tx),
        (s.release, id, tx)
    );
    assert_eq!(s.w.rollout(&id).attested, 1);
    let device = get_device(&s.w.state, &lamp.id).unwrap().unwrap();
    assert_eq!(device.challenge_seed, tx.0, "accepted evidence moves the challenge on");
    assert_eq!(device.attestation.map(|a| a.measurement), Some(image(1).to_vec()));

    // Fresh evidence for the same release refreshes the entry; the same evidence again is a replay.
    let evidence = install(&s.w, &lamp, &id, &image(1));
    s.w.ok("city", evidence.clone());
    assert_eq!(
        update_history(&s.w.state, &lamp.id).unwrap().len(),
        1,
        "a refresh adds no history"
    );
    assert_eq!(s.w.rollout(&id).attested, 1);
    assert!(matches!(s.w.reject("city", evidence), TxError::WrongNonce));
}

#[test]
fn attested_install_rejections() {
    let (mut s, id) = ready_rollout();
    let lamp = chip(&mut s.w, &s.ca, 10, LAMP, "city");
    let other_model = chip(&mut s.w, &s.ca, 11, 160, "city");
    let buyers = chip(&mut s.w, &s.ca, 12, LAMP, "buyer");
    // Measuring another image.
    assert!(matches!(
        s.w.refuse("city", install(&s.w, &lamp, &id, &image(9))),
        FirmwareError::MeasurementMismatch { .. }
    ));
    // Devices outside the rollout.
    for c in [&other_model, &buyers] {
        assert!(matches!(
            s.w.refuse("city", install(&s.w, c, &id, &image(1))),
            FirmwareError::DeviceNotInRollout { .. }
        ));
    }
    assert!(matches!(
        s.w.refuse("city", install(&s.w, &lamp, &TxHash([3; 32]), &image(1))),
        FirmwareError::UnknownRollout(_)
    ));
    // Evidence signed by a key other than the device's Alias key.
    let forged = install_signed_by(&s.w, &lamp, &id, &image(1), &p256_key(99));
    assert!(matches!(s.w.reject("city", forged), TxError::BadEvidence(_)));

    // A rollout still waiting for approval: no approval record for the release yet.
    let env = envelope(&s.key, 6, &[LAMP], 2);
    s.w.ok("vendor", publish(&env, "2.2.0", &[LAMP]));
    let newer = release_id(&env);
    s.w.ok("audit", certify(newer, CertStatus::Certified));
    let (waiting, _) = s.w.ok_hash("city", create_rollout("city-lights", newer, &[], 10));
    assert!(matches!(
        s.w.refuse("city", install(&s.w, &lamp, &waiting, &image(2))),
        FirmwareError::NotApprovedForDevice { model: LAMP, .. }
    ));
    // Withdrawn after approval: devices can no longer prove it.
    s.w.ok("city", approve(waiting));
    s.w.ok("audit", approve(waiting));
    s.w.ok(
        "vendor",
        Payload::WithdrawRelease(WithdrawRelease {
            release: newer,
            reason: "recall".into(),
        }),
    );
    assert!(matches!(
        s.w.refuse("city", install(&s.w, &lamp, &waiting, &image(2))),
        FirmwareError::ReleaseWithdrawn { .. }
    ));
    // A revoked device.
    s.w.ok(
        "city",
        Payload::RevokeDevice(RevokeDevice {
            device: lamp.id,
            reason: RevokeReason::Lost,
        }),
    );
    assert!(matches!(
        s.w.reject("city", install(&s.w, &lamp, &id, &image(1))),
        TxError::DeviceRevoked(_)
    ));
}

/// The device record's attestation holds the Alias key of the installed release's layer: an
/// install of new firmware replaces it, and evidence under the previous layer's Alias
/// certificate (a key that does not belong to the new firmware) cannot carry it over, even if
/// its EAT claims the new measurement: `AliasNotForRelease`, and the old key stays attested
/// only for the old firmware.
#[test]
fn install_binds_the_alias_key_of_the_installed_release() {
    let (mut s, id) = ready_rollout();
    let lamp = chip(&mut s.w, &s.ca, 10, LAMP, "city");
    let alias_key = |w: &World| {
        get_device(&w.state, &lamp.id)
            .unwrap()
            .unwrap()
            .attestation
            .unwrap()
            .alias_public_key
    };
    s.w.ok("city", install(&s.w, &lamp, &id, &image(1)));
    let (old_key, old_der) = lamp.alias(&image(1));
    assert_eq!(alias_key(&s.w), *old_key.verifying_key());

    let up_env = envelope(&s.key, 7, &[LAMP], 5);
    s.w.ok("vendor", publish(&up_env, "2.2.0", &[LAMP]));
    let up = release_id(&up_env);
    s.w.ok("audit", certify(up, CertStatus::Certified));
    let (upr, _) = s.w.ok_hash("city", create_rollout("city-lights", up, &[LAMP], 10));
    s.w.ok("city", approve(upr));
    s.w.ok("audit", approve(upr));

    let carried_over = install_evidence(&s.w, &lamp, &upr, &image(5), &old_key, old_der);
    let e = s.w.refuse("city", carried_over);
    assert!(
        matches!(&e, FirmwareError::AliasNotForRelease { version, .. } if version == "2.2.0"),
        "{e}"
    );
    assert_eq!(e.code(), "alias_not_for_release");
    assert_eq!(
        alias_key(&s.w),
        *old_key.verifying_key(),
        "a refused install changes nothing"
    );

    s.w.ok("city", install(&s.w, &lamp, &upr, &image(5)));
    let (new_key, _) = lamp.alias(&image(5));
    assert_eq!(alias_key(&s.w), *new_key.verifying_key());
    assert_ne!(alias_key(&s.w), *old_key.verifying_key());
}

#[test]
fn anti_rollback_and_applicable_range() {
    let (mut s, id) = ready_rollout();
    let lamp = chip(&mut s.w, &s.ca, 10, LAMP, "city");
    s.w.ok("city", install(&s.w, &lamp, &id, &image(1)));
    // An older release (sequence 3) approved later: rollback refused.
    let old_env = envelope(&s.key, 3, &[LAMP], 3);
    s.w.ok("vendor", publish(&old_env, "2.0.1", &[LAMP]));
    let old = release_id(&old_env);
    s.w.ok("audit", certify(old, CertStatus::Certified));
    let (back, _) = s.w.ok_hash("city", create_rollout("city-lights", old, &[], 10));
    s.w.ok("city", approve(back));
    s.w.ok("audit", approve(back));
    assert!(matches!(
        s.w.refuse("city", install(&s.w, &lamp, &back, &image(3))),
        FirmwareError::Rollback {
            installed: 5,
            offered: 3,
            ..
        }
    ));
    // A newer release that only applies over 1.x: the lamp runs 2.1.0.
    let new_env = envelope(&s.key, 9, &[LAMP], 4);
    let mut p = publish(&new_env, "3.0.0", &[LAMP]);
    if let Payload::PublishRelease(r) = &mut p {
        r.max_applicable = "1.9.9".into();
    }
    s.w.ok("vendor", p);
    let new = release_id(&new_env);
    s.w.ok("audit", certify(new, CertStatus::Certified));
    let (fwd, _) = s.w.ok_hash("city", create_rollout("city-lights", new, &[], 10));
    s.w.ok("city", approve(fwd));
    s.w.ok("audit", approve(fwd));
    let e = s.w.refuse("city", install(&s.w, &lamp, &fwd, &image(4)));
    assert!(
        matches!(&e, FirmwareError::NotApplicable { installed, .. } if installed == "2.1.0"),
        "{e}"
    );
    // Equal or higher security version within range is fine: 2.2.0 (sequence 5 → 7).
    let up_env = envelope(&s.key, 7, &[LAMP], 5);
    s.w.ok("vendor", publish(&up_env, "2.2.0", &[LAMP]));
    let up = release_id(&up_env);
    s.w.ok("audit", certify(up, CertStatus::Certified));
    let (upr, _) = s.w.ok_hash("city", create_rollout("city-lights", up, &[LAMP], 10));
    s.w.ok("city", approve(upr));
    s.w.ok("audit", approve(upr));
    s.w.ok("city", install(&s.w, &lamp, &upr, &image(5)));
    let installed = get_installed(&s.w.state, &lamp.id).unwrap().unwrap();
    assert_eq!((installed.version.as_str(), installed.security_version), ("2.2.0", 7));
    let versions: Vec<_> = update_history(&s.w.state, &lamp.id)
        .unwrap()
        .into_iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, vec!["2.1.0".to_string(), "2.2.0".to_string()]);
}

#[test]
fn firmware_payloads_round_trip_in_signed_transactions() {
    let (s, id) = ready_rollout();
    let env = envelope(&s.key, 5, &[LAMP, METER], 1);
    for p in [
        publish(&env, "2.1.0", &[LAMP, METER]),
        certify(s.release, CertStatus::Provisional),
        approve(id),
        control(id, RolloutAction::Resume),
        progress(id, DeviceId([1; 20]), UpdateState::Idle, UpdateResult::InvalidUri),
    ] {
        let bytes = s.w.tx("city", p.clone());
        let tx = SignedTx::from_bytes(&bytes).unwrap();
        assert_eq!(tx.body.payload, p);
        assert_eq!(tx.to_cbor(), bytes);
        for cut in (0..bytes.len()).step_by(11) {
            assert!(SignedTx::from_bytes(&bytes[..cut]).is_err());
        }
    }
}

/// A SUIT fixture of the device crate (draft-ietf-suit-manifest-37 Appendix B; sources in
/// `crates/device/tests/fixtures/suit/README.md`).
fn suit_fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../device/tests/fixtures/suit/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn ietf_suit_examples_are_judged_by_the_release_rules() {
    let mut w = world();
    // The draft's example key: a P-256 SubjectPublicKeyInfo, whose last 65 bytes are the
    // uncompressed point (the BIT STRING contents).
    let der = suit_fixture("draft-suit-manifest-public-key.der");
    let key_sec1: [u8; 65] = der[der.len() - 65..].try_into().unwrap();
    w.ok("vendor", Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1 }));
    let try_publish = |w: &mut World, file: &str| w.refuse("vendor", publish(&suit_fixture(file), "1.0.0", &[LAMP]));
    // Example 0 verifies, but its class id (1492af14-…) is not our lamp's.
    assert!(matches!(
        try_publish(&mut w, "example0.suit"),
        FirmwareError::ClassIdMismatch(_)
    ));
    assert!(matches!(
        try_publish(&mut w, "libcsuit-exp0.suit"),
        FirmwareError::ClassIdMismatch(_)
    ));
    // Example 3 (A/B images): the paths disagree on the digest and size.
    let e = try_publish(&mut w, "example3.suit");
    assert!(
        matches!(&e, FirmwareError::BadManifest(why) if why.contains("every path")),
        "{e}"
    );
    // Examples 4 and 5 install several components.
    for (file, n) in [("example4.suit", 3), ("example5.suit", 2)] {
        let e = try_publish(&mut w, file);
        assert!(
            matches!(&e, FirmwareError::BadManifest(why) if why.contains(&format!("has {n}"))),
            "{e}"
        );
    }
    // Tampered: the envelope's last byte (inside the signed manifest, key 3) flipped.
    let mut tampered = suit_fixture("example0.suit");
    *tampered.last_mut().unwrap() ^= 1;
    assert!(matches!(
        w.refuse("vendor", publish(&tampered, "1.0.0", &[LAMP])),
        FirmwareError::BadEnvelope { .. }
    ));
}

//! Chip identity rules (issue 3): manufacturer CA governance, registration, two-step transfer,
//! attestation (with its `ueid` / `hwmodel` cross-check), the device's proof of presence on
//! accept, and revocation. Every rejection gets its typed error and leaves the state unchanged;
//! certificates, evidence and proofs are made with the device SDK.

mod support;

use chipledger_device::cert::{
    CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert, issue_deviceid_cert,
};
use chipledger_device::dice::{Algorithm, KeyPair, PRIVATE_KEY_SEED_SIZE};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat};
use chipledger_device::ledger::{AcceptTransferProof, hwmodel_of, ueid_of};
use chipledger_state::device::{ATTEST_NONCE_WINDOW_BLOCKS, attest_nonce, ca_id_of, device_id_of};
use chipledger_state::model::*;
use chipledger_state::{Event, TxError};
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::*;
use chipledger_types::tx::{GovAction, Payload, Role, SignedTx, TxHash};
use p256::ecdsa::SigningKey;
use support::World;

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;

const ORGS: [(&str, Role); 5] = [
    ("maker", Role::Manufacturer),
    ("maker2", Role::Manufacturer),
    ("city", Role::Owner),
    ("buyer", Role::Owner),
    ("audit", Role::Auditor),
];

fn world() -> World {
    World::new(&ORGS, 2, T0_MS)
}

impl World {
    fn ok(&mut self, org: &str, payload: Payload) -> Vec<Event> {
        let t = self.tx(org, payload);
        self.apply(&t).expect("should apply")
    }

    /// Apply and expect an error, checking that the state did not change.
    fn reject(&mut self, org: &str, payload: Payload) -> TxError {
        let t = self.tx(org, payload);
        let before = self.state.clone();
        let err = self.apply(&t).expect_err("should be rejected");
        assert_eq!(before, self.state, "a rejected transaction changed the state");
        assert!(!err.code().is_empty());
        err
    }

    /// Propose by `city`, approve by `audit` (threshold 2): the action executes. Returns the
    /// approval's events.
    fn govern(&mut self, action: GovAction) -> Vec<Event> {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let ev = self.ok(
            "audit",
            Payload::Approve {
                proposal: TxHash::of(&p),
            },
        );
        assert!(ev.iter().any(|e| matches!(e, Event::ProposalExecuted { .. })));
        ev
    }

    fn device(&self, id: &DeviceId) -> DeviceRecord {
        get_device(&self.state, id).unwrap().expect("device registered")
    }
}

fn p256_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

struct Ca {
    key: SigningKey,
    der: Vec<u8>,
    id: CaId,
}

fn ca(seed: u8) -> Ca {
    let key = p256_key(seed);
    let der = issue_ca_cert(
        &key,
        &format!("CN=CA {seed},O=maker"),
        seed as u64,
        CertValidity::DICE_DEFAULT,
    )
    .unwrap();
    let id = ca_id_of(key.verifying_key());
    Ca { key, der, id }
}

fn tcb(layer: u64, fwid: u8) -> DiceTcbInfo {
    DiceTcbInfo {
        vendor: Some("maker".into()),
        model: Some("lamp".into()),
        version: Some("1.0.0".into()),
        svn: Some(1),
        layer: Some(layer),
        fwids: Some(vec![Fwid::sha256(&[fwid; 32])]),
        ..Default::default()
    }
}

fn cert_for<'a>(key: &'a SigningKey, id: &'a [u8], tcb: &'a DiceTcbInfo) -> CertRequest<'a> {
    CertRequest {
        subject_public_key: key.verifying_key(),
        subject_id: id,
        tcb_info: tcb,
        validity: CertValidity::DICE_DEFAULT,
    }
}

/// A software chip: DeviceID key and certificate (endorsed by `ca`), one Alias layer.
struct Chip {
    id: DeviceId,
    dev_key: SigningKey,
    deviceid_der: Vec<u8>,
    alias_key: SigningKey,
    alias_der: Vec<u8>,
}

fn chip(ca: &Ca, seed: u8) -> Chip {
    let dev_key = p256_key(seed);
    let id = device_id_of(dev_key.verifying_key());
    let deviceid_der = issue_deviceid_cert(&ca.key, &ca.der, &cert_for(&dev_key, &id.0, &tcb(0, 1))).unwrap();
    let alias_key = p256_key(seed.wrapping_add(100));
    let alias_id = device_id_of(alias_key.verifying_key());
    let alias_tcb = tcb(1, 0xab);
    let alias_der = issue_alias_cert(&dev_key, &deviceid_der, &cert_for(&alias_key, &alias_id.0, &alias_tcb)).unwrap();
    Chip {
        id,
        dev_key,
        deviceid_der,
        alias_key,
        alias_der,
    }
}

/// The claims of device `id`, registered as hardware model `model`, answering `nonce`.
fn claims(id: &DeviceId, model: u32, nonce: &[u8]) -> EatClaims {
    EatClaims {
        nonce: nonce.to_vec(),
        ueid: ueid_of(&id.0).to_vec(),
        oemid: OemId::Pen(12345),
        hwmodel: hwmodel_of(model).to_vec(),
        swname: "lamp-fw".into(),
        swversion: SwVersion {
            version: "2.1.0".into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: 42,
            value: vec![0xab; 32],
        }],
    }
}

fn evidence(key: &SigningKey, claims: &EatClaims) -> Vec<u8> {
    sign_eat(claims, key).unwrap()
}

fn grant(models: &[(u32, u32)], ca: &Ca, org: &str) -> GovAction {
    GovAction::AddManufacturerCa(AddManufacturerCa {
        org: org.into(),
        ca_cert_der: ca.der.clone(),
        models: models.iter().map(|&(first, last)| ModelRange { first, last }).collect(),
    })
}

fn register(ca: &Ca, chip: &Chip, model: u32, owner: &str) -> Payload {
    Payload::RegisterDevice(RegisterDevice {
        ca: ca.id,
        deviceid_cert_der: chip.deviceid_der.clone(),
        model,
        owner: owner.into(),
    })
}

/// A world where `maker` has CA 1 granted models 100..=199, and one chip registered to `city`.
fn with_device() -> (World, Ca, Chip) {
    let mut w = world();
    let ca = ca(1);
    w.govern(grant(&[(100, 199)], &ca, "maker"));
    let c = chip(&ca, 10);
    w.ok("maker", register(&ca, &c, 150, "city"));
    (w, ca, c)
}

/// The device's current challenge at `nonce_height`.
fn nonce(w: &World, c: &Chip, nonce_height: u64) -> [u8; 40] {
    attest_nonce("test", &c.id, &w.device(&c.id).challenge_seed, nonce_height)
}

/// Good evidence answering the challenge at `nonce_height`.
fn attest(w: &World, c: &Chip, nonce_height: u64) -> Payload {
    let claims = claims(&c.id, w.device(&c.id).model, &nonce(w, c, nonce_height));
    attest_with(c, &claims)
}

fn attest_with(c: &Chip, claims: &EatClaims) -> Payload {
    Payload::Attest(Attest {
        device: c.id,
        alias_cert_der: c.alias_der.clone(),
        eat: evidence(&c.alias_key, claims),
    })
}

/// `AcceptTransfer` of `c` carrying `proof` signed by `key`.
fn accept_signed<'k>(
    c: &Chip,
    key: impl Into<chipledger_device::key::DeviceSigner<'k>>,
    proof: AcceptTransferProof,
) -> Payload {
    Payload::AcceptTransfer(AcceptTransfer {
        device: c.id,
        device_proof: Some(proof.sign(key).unwrap()),
    })
}

/// `AcceptTransfer` by `to` with the chip's proof over the challenge at `nonce_height`.
fn accept_proven(w: &World, c: &Chip, to: &str, nonce_height: u64) -> Payload {
    let proof = AcceptTransferProof {
        device_id: c.id.0,
        to_org: to.into(),
        nonce: nonce(w, c, nonce_height).to_vec(),
    };
    accept_signed(c, &c.dev_key, proof)
}

#[test]
fn manufacturer_ca_governance() {
    let mut w = world();
    let ca1 = ca(1);
    let ev = w.govern(grant(&[(100, 199)], &ca1, "maker"));
    assert!(ev.contains(&Event::ManufacturerCaAdded {
        ca: ca1.id,
        org: "maker".into()
    }));
    let rec = get_ca(&w.state, &ca1.id).unwrap().unwrap();
    assert_eq!((rec.org.as_str(), rec.revoked.clone()), ("maker", None));
    assert_eq!(org_ca_ids(&w.state, "maker").unwrap(), vec![ca1.id]);

    let dup = Payload::Propose(grant(&[(1, 2)], &ca1, "maker"));
    assert!(matches!(w.reject("city", dup), TxError::CaExists(id) if id == ca1.id));
    let not_maker = Payload::Propose(grant(&[(1, 2)], &ca(2), "city"));
    assert!(matches!(w.reject("city", not_maker), TxError::NotManufacturer(o) if o == "city"));
    let garbage = GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: vec![0x30, 0x03, 1, 2, 3],
        models: vec![ModelRange { first: 1, last: 1 }],
    });
    assert!(matches!(
        w.reject("city", Payload::Propose(garbage)),
        TxError::BadCertificate { .. }
    ));
    // A DeviceID certificate is not a self-signed CA.
    let c = chip(&ca1, 10);
    let not_ca = GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: c.deviceid_der.clone(),
        models: vec![ModelRange { first: 1, last: 1 }],
    });
    assert!(matches!(
        w.reject("city", Payload::Propose(not_ca)),
        TxError::BadCertificate { .. }
    ));

    let revoke = |ca: CaId| {
        GovAction::RevokeManufacturerCa(RevokeManufacturerCa {
            ca,
            reason: "key leaked".into(),
        })
    };
    let ev = w.govern(revoke(ca1.id));
    assert!(ev.contains(&Event::ManufacturerCaRevoked {
        ca: ca1.id,
        org: "maker".into(),
        reason: "key leaked".into()
    }));
    let rec = get_ca(&w.state, &ca1.id)
        .unwrap()
        .expect("revoked CAs are never deleted");
    assert_eq!(rec.revoked.map(|r| r.1), Some("key leaked".to_string()));
    assert_eq!(revoked_ca_ids(&w.state).unwrap(), vec![ca1.id]);
    assert!(matches!(
        w.reject("city", Payload::Propose(revoke(ca1.id))),
        TxError::CaRevoked(_)
    ));
    assert!(matches!(
        w.reject("city", Payload::Propose(revoke(CaId([7; 20])))),
        TxError::UnknownCa(_)
    ));
}

#[test]
fn registration_and_its_rejections() {
    let (mut w, ca1, c) = with_device();
    let d = w.device(&c.id);
    assert_eq!(
        (d.owner.as_str(), d.manufacturer.as_str(), d.model),
        ("city", "maker", 150)
    );
    assert_eq!(devices_by_owner(&w.state, "city").unwrap(), vec![c.id]);
    let h = device_history(&w.state, &c.id).unwrap();
    assert_eq!(
        (h[0].kind, h[0].from.as_str(), h[0].to.as_str()),
        (HistoryKind::Registered, "maker", "city")
    );

    assert!(matches!(w.reject("maker", register(&ca1, &c, 150, "city")), TxError::DeviceExists(id) if id == c.id));
    let c2 = chip(&ca1, 11);
    assert!(matches!(
        w.reject("city", register(&ca1, &c2, 150, "city")),
        TxError::NotManufacturer(_)
    ));
    assert!(matches!(
        w.reject("maker", register(&ca1, &c2, 200, "city")),
        TxError::ModelNotGranted { model: 200, .. }
    ));
    assert!(matches!(
        w.reject("maker", register(&ca1, &c2, 150, "nobody")),
        TxError::UnknownOrg(_)
    ));
    // A CA that is not registered, and a registered CA of another manufacturer.
    let ca2 = ca(2);
    assert!(matches!(
        w.reject("maker", register(&ca2, &c2, 150, "city")),
        TxError::UnknownCa(_)
    ));
    assert!(matches!(
        w.reject("maker2", register(&ca1, &c2, 150, "city")),
        TxError::Unendorsed { .. }
    ));
    // A DeviceID certificate from an unregistered CA, claimed to be from maker's CA.
    let rogue = chip(&ca2, 12);
    assert!(matches!(
        w.reject("maker", register(&ca1, &rogue, 150, "city")),
        TxError::Unendorsed { .. }
    ));
    let mut bad = c2.deviceid_der.clone();
    bad.truncate(bad.len() - 3);
    let p = Payload::RegisterDevice(RegisterDevice {
        ca: ca1.id,
        deviceid_cert_der: bad,
        model: 150,
        owner: "city".into(),
    });
    assert!(matches!(w.reject("maker", p), TxError::BadCertificate { .. }));
    w.ok("maker", register(&ca1, &c2, 199, "buyer"));
    assert_eq!(devices_by_owner(&w.state, "buyer").unwrap(), vec![c2.id]);
}

#[test]
fn transfer_is_two_step_and_kept_in_history() {
    let (mut w, _ca, c) = with_device();
    let offer = |to: &str| {
        Payload::OfferTransfer(OfferTransfer {
            device: c.id,
            to_org: to.into(),
        })
    };
    let accept = Payload::AcceptTransfer(AcceptTransfer {
        device: c.id,
        device_proof: None,
    });
    assert!(matches!(
        w.reject("buyer", offer("buyer")),
        TxError::NotAuthorized { .. }
    ));
    assert!(matches!(
        w.reject("buyer", accept.clone()),
        TxError::NoTransferOffer { .. }
    ));
    assert!(matches!(w.reject("city", offer("nobody")), TxError::UnknownOrg(_)));
    assert!(matches!(w.reject("city", offer("city")), TxError::Invalid(_)));
    let unknown = Payload::AcceptTransfer(AcceptTransfer {
        device: DeviceId([9; 20]),
        device_proof: None,
    });
    assert!(matches!(w.reject("buyer", unknown), TxError::UnknownDevice(_)));

    w.ok("city", offer("buyer"));
    // Nothing changes until accepted.
    assert_eq!(w.device(&c.id).owner, "city");
    assert_eq!(devices_by_owner(&w.state, "city").unwrap(), vec![c.id]);
    assert!(matches!(
        w.reject("audit", accept.clone()),
        TxError::NoTransferOffer { .. }
    ));

    let ev = w.ok("buyer", accept.clone());
    assert!(
        matches!(&ev[0], Event::TransferAccepted { from, to, device_proof: false, .. }
        if from == "city" && to == "buyer")
    );
    assert_eq!(w.device(&c.id).owner, "buyer");
    assert!(devices_by_owner(&w.state, "city").unwrap().is_empty());
    assert_eq!(devices_by_owner(&w.state, "buyer").unwrap(), vec![c.id]);
    let h = device_history(&w.state, &c.id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[1].kind, h[1].from.as_str(), h[1].to.as_str(), h[1].device_proof),
        (HistoryKind::Transferred, "city", "buyer", false)
    );
    assert!(matches!(w.reject("buyer", accept), TxError::NoTransferOffer { .. }));
}

#[test]
fn attestation_verifies_chain_signature_and_fresh_nonce() {
    let (mut w, ca1, c) = with_device();
    let h = w.height;
    w.ok("audit", attest(&w, &c, h - 1));
    let a = w.device(&c.id).attestation.expect("attestation recorded");
    assert_eq!((a.swname.as_str(), a.swversion.as_str()), ("lamp-fw", "2.1.0"));
    assert_eq!((a.measurement, a.alias_fwid_sha256), (vec![0xab; 32], vec![0xab; 32]));
    assert_eq!(a.alias_public_key, *c.alias_key.verifying_key());

    // The same evidence again: the challenge moved on.
    let seed_before = w.device(&c.id).challenge_seed;
    let old = attest(&w, &c, h - 1);
    w.ok("city", attest(&w, &c, w.height));
    assert_ne!(seed_before, w.device(&c.id).challenge_seed);
    assert!(matches!(w.reject("city", old), TxError::WrongNonce));

    let stale = attest(&w, &c, w.height);
    w.height += ATTEST_NONCE_WINDOW_BLOCKS + 1;
    assert!(matches!(w.reject("city", stale), TxError::StaleNonce { .. }));
    let future = attest(&w, &c, w.height + 1);
    assert!(matches!(w.reject("city", future), TxError::WrongNonce));

    // Evidence signed by a key other than the certified Alias key.
    let mut wrong_key = attest(&w, &c, w.height);
    if let Payload::Attest(a) = &mut wrong_key {
        a.eat = evidence(&p256_key(99), &claims(&c.id, 150, &nonce(&w, &c, w.height)));
    }
    assert!(matches!(w.reject("city", wrong_key), TxError::BadEvidence(_)));
    // An Alias certificate from another device's DeviceID key.
    let other = chip(&ca1, 20);
    let mut foreign = attest(&w, &c, w.height);
    if let Payload::Attest(a) = &mut foreign {
        a.alias_cert_der = other.alias_der.clone();
    }
    assert!(matches!(w.reject("city", foreign), TxError::BadCertificate { .. }));
    let unknown = Payload::Attest(Attest {
        device: other.id,
        alias_cert_der: other.alias_der.clone(),
        eat: vec![1],
    });
    assert!(matches!(w.reject("city", unknown), TxError::UnknownDevice(_)));
}

#[test]
fn revoked_device_and_revoked_ca_cannot_attest() {
    let (mut w, ca1, c) = with_device();
    let revoke = |reason| Payload::RevokeDevice(RevokeDevice { device: c.id, reason });
    assert!(matches!(
        w.reject("buyer", revoke(RevokeReason::Lost)),
        TxError::NotAuthorized { .. }
    ));
    let pending = attest(&w, &c, w.height);
    w.ok("maker", revoke(RevokeReason::Compromised));
    let d = w.device(&c.id);
    assert_eq!(
        d.revoked.map(|r| (r.reason, r.by)),
        Some((RevokeReason::Compromised, "maker".into()))
    );
    assert_eq!(device_history(&w.state, &c.id).unwrap()[1].kind, HistoryKind::Revoked);
    assert!(matches!(w.reject("city", pending), TxError::DeviceRevoked(_)));
    assert!(matches!(
        w.reject("city", attest(&w, &c, w.height)),
        TxError::DeviceRevoked(_)
    ));
    assert!(matches!(
        w.reject("city", revoke(RevokeReason::Lost)),
        TxError::DeviceRevoked(_)
    ));
    let offer = Payload::OfferTransfer(OfferTransfer {
        device: c.id,
        to_org: "buyer".into(),
    });
    assert!(matches!(w.reject("city", offer), TxError::DeviceRevoked(_)));

    // Owner revocation works too; then revoking the CA untrusts its other devices.
    let c2 = chip(&ca1, 11);
    let c3 = chip(&ca1, 12);
    w.ok("maker", register(&ca1, &c2, 150, "city"));
    w.ok("maker", register(&ca1, &c3, 150, "city"));
    w.ok(
        "city",
        Payload::RevokeDevice(RevokeDevice {
            device: c2.id,
            reason: RevokeReason::Decommissioned,
        }),
    );
    w.govern(GovAction::RevokeManufacturerCa(RevokeManufacturerCa {
        ca: ca1.id,
        reason: "compromised".into(),
    }));
    assert!(matches!(
        w.reject("city", attest(&w, &c3, w.height)),
        TxError::CaRevoked(_)
    ));
    let c4 = chip(&ca1, 13);
    assert!(matches!(
        w.reject("maker", register(&ca1, &c4, 150, "city")),
        TxError::CaRevoked(_)
    ));
}

#[test]
fn device_payloads_round_trip_and_reject_truncation() {
    let (w, ca1, c) = with_device();
    let payloads = [
        register(&ca1, &c, 150, "city"),
        attest(&w, &c, 1),
        Payload::RevokeDevice(RevokeDevice {
            device: c.id,
            reason: RevokeReason::Lost,
        }),
        Payload::Propose(grant(&[(1, 9), (20, 20)], &ca1, "maker")),
    ];
    for p in payloads {
        let bytes = w.tx("city", p.clone());
        let tx = SignedTx::from_bytes(&bytes).unwrap();
        assert_eq!(tx.body.payload, p);
        assert_eq!(tx.to_cbor(), bytes);
        for cut in (0..bytes.len()).step_by(7) {
            assert!(SignedTx::from_bytes(&bytes[..cut]).is_err());
        }
    }
}

#[test]
fn evidence_must_name_the_registered_device() {
    let (mut w, ca1, c) = with_device();
    let fresh = nonce(&w, &c, w.height - 1);
    let other = chip(&ca1, 20);
    let cases: [(EatClaims, &str, Vec<u8>, Vec<u8>); 3] = [
        // Another device's ueid.
        (
            claims(&other.id, 150, &fresh),
            "ueid",
            ueid_of(&c.id.0).to_vec(),
            ueid_of(&other.id.0).to_vec(),
        ),
        // Another model number than the registration's 150.
        (
            claims(&c.id, 151, &fresh),
            "hwmodel",
            hwmodel_of(150).to_vec(),
            hwmodel_of(151).to_vec(),
        ),
        // A model name instead of the registered number.
        (
            EatClaims {
                hwmodel: b"lamp".to_vec(),
                ..claims(&c.id, 150, &fresh)
            },
            "hwmodel",
            vec![0, 0, 0, 150],
            b"lamp".to_vec(),
        ),
    ];
    for (bad, want_claim, want_bytes, got_bytes) in cases {
        let err = w.reject("city", attest_with(&c, &bad));
        assert_eq!(
            err,
            TxError::EvidenceMismatch {
                claim: want_claim,
                want: hex::encode(want_bytes),
                got: hex::encode(got_bytes),
            }
        );
        assert_eq!(err.code(), "evidence_mismatch");
    }
    assert!(w.device(&c.id).attestation.is_none());
    w.ok("city", attest_with(&c, &claims(&c.id, 150, &fresh)));
    assert!(w.device(&c.id).attestation.is_some());
}

#[test]
fn accept_with_a_device_proof_and_its_rejections() {
    let (mut w, ca1, c) = with_device();
    // Made before the offer: the offer moved the challenge on.
    let before_offer = accept_proven(&w, &c, "buyer", w.height - 1);
    w.ok(
        "city",
        Payload::OfferTransfer(OfferTransfer {
            device: c.id,
            to_org: "buyer".into(),
        }),
    );
    assert_eq!(w.reject("buyer", before_offer), TxError::WrongNonce);

    let fresh = nonce(&w, &c, w.height - 1);
    let proof = |device_id: DeviceId, to: &str| AcceptTransferProof {
        device_id: device_id.0,
        to_org: to.into(),
        nonce: fresh.to_vec(),
    };
    // Signed by another P-256 key, and by an Ed25519 key.
    let other_key = accept_signed(&c, &p256_key(99), proof(c.id, "buyer"));
    assert_eq!(w.reject("buyer", other_key), TxError::DeviceProofWrongKey(c.id));
    let ed = KeyPair::from_seed(Algorithm::Ed25519, &[7; PRIVATE_KEY_SEED_SIZE]).unwrap();
    let ed_key = accept_signed(&c, &ed, proof(c.id, "buyer"));
    assert_eq!(w.reject("buyer", ed_key), TxError::DeviceProofWrongKey(c.id));
    // The Alias key is not the DeviceID key either.
    let alias = accept_signed(&c, &c.alias_key, proof(c.id, "buyer"));
    assert_eq!(w.reject("buyer", alias), TxError::DeviceProofWrongKey(c.id));
    // A proof the device made for another organisation.
    let for_audit = accept_signed(&c, &c.dev_key, proof(c.id, "audit"));
    assert_eq!(
        w.reject("buyer", for_audit),
        TxError::DeviceProofMismatch {
            field: "to_org",
            want: "buyer".into(),
            got: "audit".into()
        }
    );
    // A proof naming another device.
    let other = chip(&ca1, 21);
    let for_other = accept_signed(&c, &c.dev_key, proof(other.id, "buyer"));
    assert!(matches!(
        w.reject("buyer", for_other),
        TxError::DeviceProofMismatch { field: "device", .. }
    ));
    // Not a COSE_Sign1 at all.
    let garbage = Payload::AcceptTransfer(AcceptTransfer {
        device: c.id,
        device_proof: Some(vec![0xd2, 0x84, 0x40]),
    });
    assert!(matches!(w.reject("buyer", garbage), TxError::BadDeviceProof(_)));
    // A proof whose nonce has left the window.
    let stale = accept_proven(&w, &c, "buyer", w.height - 1);
    w.height += ATTEST_NONCE_WINDOW_BLOCKS + 1;
    assert!(matches!(w.reject("buyer", stale), TxError::StaleNonce { .. }));

    let ev = w.ok("buyer", accept_proven(&w, &c, "buyer", w.height - 1));
    assert_eq!(
        ev,
        vec![Event::TransferAccepted {
            device: c.id,
            from: "city".into(),
            to: "buyer".into(),
            device_proof: true,
        }]
    );
    assert_eq!(w.device(&c.id).owner, "buyer");
    let last = device_history(&w.state, &c.id).unwrap().pop().unwrap();
    assert_eq!((last.kind, last.device_proof), (HistoryKind::Transferred, true));
}

#[test]
fn a_device_under_a_revoked_ca_cannot_prove_presence() {
    let (mut w, ca1, c) = with_device();
    w.ok(
        "city",
        Payload::OfferTransfer(OfferTransfer {
            device: c.id,
            to_org: "buyer".into(),
        }),
    );
    w.govern(GovAction::RevokeManufacturerCa(RevokeManufacturerCa {
        ca: ca1.id,
        reason: "compromised".into(),
    }));
    let proven = accept_proven(&w, &c, "buyer", w.height - 1);
    assert_eq!(w.reject("buyer", proven), TxError::CaRevoked(ca1.id));
}

/// An Ed25519 chip (a `SoftChip` with Ed25519 DICE keys) endorsed by a P-256 CA: registered
/// under the open-dice ID of its raw 32-byte DeviceID key and attested with EdDSA evidence;
/// evidence by another key, or ES256 evidence against its Ed25519 Alias key, is refused.
#[test]
fn ed25519_device_registers_and_attests_with_eddsa_evidence() {
    use chipledger_device::chip::{Chip as _, Firmware, SoftChip};
    use chipledger_device::key::{DeviceKeyAlg, DevicePublicKey};

    let mut w = world();
    let ca1 = ca(1);
    w.govern(grant(&[(100, 199)], &ca1, "maker"));
    let mut chip = SoftChip::with_alg([42; 32], DeviceKeyAlg::Ed25519, "maker", "lamp").unwrap();
    let request = chip.deviceid_request();
    let deviceid_der = issue_deviceid_cert(&ca1.key, &ca1.der, &request.cert_request()).unwrap();
    chip.install_deviceid_cert(&ca1.der, &deviceid_der).unwrap();

    let id = DeviceId(chip.device_id());
    let DevicePublicKey::Ed25519(raw) = chip.deviceid_public_key() else {
        panic!("an Ed25519 chip has an Ed25519 DeviceID key")
    };
    assert_eq!(id.0, chipledger_device::dice::derive_id(raw.as_bytes()).unwrap());
    assert_eq!(device_id_of(chip.deviceid_public_key()), id);
    let register = Payload::RegisterDevice(RegisterDevice {
        ca: ca1.id,
        deviceid_cert_der: deviceid_der,
        model: 150,
        owner: "city".into(),
    });
    let ev = w.ok("maker", register);
    assert!(ev.contains(&Event::DeviceRegistered {
        device: id,
        owner: "city".into()
    }));

    let firmware = Firmware {
        name: "lamp-fw",
        version: "2.1.0",
        svn: 1,
        image: b"ed25519 lamp firmware",
    };
    let layer = chip.boot(&firmware).unwrap();
    let challenge = attest_nonce("test", &id, &w.device(&id).challenge_seed, w.height - 1);
    let good_claims = claims(&id, 150, &challenge);
    let attest = |eat: Vec<u8>| {
        Payload::Attest(Attest {
            device: id,
            alias_cert_der: layer.alias_cert_der.clone(),
            eat,
        })
    };
    // ES256 evidence against the Ed25519 Alias key, and EdDSA evidence by an uncertified key.
    let es256 = sign_eat(&good_claims, &p256_key(99)).unwrap();
    match w.reject("audit", attest(es256)) {
        TxError::BadEvidence(why) => assert!(why.contains("Ed25519"), "{why}"),
        other => panic!("expected BadEvidence, got {other:?}"),
    }
    let stranger = KeyPair::from_seed(Algorithm::Ed25519, &[99; PRIVATE_KEY_SEED_SIZE]).unwrap();
    let forged = sign_eat(&good_claims, &stranger).unwrap();
    assert!(matches!(w.reject("audit", attest(forged)), TxError::BadEvidence(_)));

    w.ok("audit", attest(chip.sign_eat(&good_claims).unwrap()));
    let a = w.device(&id).attestation.expect("attestation recorded");
    assert_eq!((a.swname.as_str(), a.swversion.as_str()), ("lamp-fw", "2.1.0"));
    assert_eq!(a.alias_fwid_sha256, layer.measurement.to_vec());
    assert_eq!(a.alias_public_key, layer.alias_public_key);
}

/// An accepted `Attest` stores exactly the Alias key of the chain it verified (read back from
/// the state, so through the record's encoding), for both key algorithms; evidence for another
/// firmware layer (with DICE, another Alias key) replaces it: the old layer's key is gone.
#[test]
fn accepted_attest_stores_the_verified_alias_key_and_a_new_layer_replaces_it() {
    use chipledger_device::chip::{Chip as _, Firmware, SoftChip};
    use chipledger_device::key::DeviceKeyAlg;

    for alg in DeviceKeyAlg::ALL {
        let mut w = world();
        let ca1 = ca(1);
        w.govern(grant(&[(100, 199)], &ca1, "maker"));
        let mut chip = SoftChip::with_alg([43; 32], alg, "maker", "lamp").unwrap();
        let deviceid_der = issue_deviceid_cert(&ca1.key, &ca1.der, &chip.deviceid_request().cert_request()).unwrap();
        chip.install_deviceid_cert(&ca1.der, &deviceid_der).unwrap();
        let id = DeviceId(chip.device_id());
        let register = Payload::RegisterDevice(RegisterDevice {
            ca: ca1.id,
            deviceid_cert_der: deviceid_der,
            model: 150,
            owner: "city".into(),
        });
        w.ok("maker", register);
        let mut attested = Vec::new();
        for (version, image) in [("2.1.0", b"lamp firmware 2.1.0"), ("2.2.0", b"lamp firmware 2.2.0")] {
            let layer = chip
                .boot(&Firmware {
                    name: "lamp-fw",
                    version,
                    svn: 1,
                    image,
                })
                .unwrap();
            let challenge = attest_nonce("test", &id, &w.device(&id).challenge_seed, w.height - 1);
            w.ok(
                "audit",
                Payload::Attest(Attest {
                    device: id,
                    alias_cert_der: layer.alias_cert_der.clone(),
                    eat: chip.sign_eat(&claims(&id, 150, &challenge)).unwrap(),
                }),
            );
            let a = w.device(&id).attestation.expect("attestation recorded");
            assert_eq!(a.alias_public_key, layer.alias_public_key, "{alg} {version}");
            assert_eq!(a.alias_fwid_sha256, layer.measurement.to_vec());
            attested.push(a.alias_public_key);
        }
        assert_ne!(attested[0], attested[1], "{alg}: a new layer has a new Alias key");
    }
}

/// The attested Alias key is stored as its canonical SPKI DER, the last item of the
/// attestation; any other bytes there make the record undecodable (never a different key).
#[test]
fn attestation_encodes_the_alias_key_as_canonical_spki() {
    use chipledger_device::key::DevicePublicKey;
    use chipledger_types::cbor::{Decode, DecodeError, Encoder, Limits};

    let (mut w, _, c) = with_device();
    let h = w.height;
    w.ok("audit", attest(&w, &c, h - 1));
    let a = w.device(&c.id).attestation.expect("attestation recorded");
    let spki = DevicePublicKey::from(c.alias_key.verifying_key()).to_spki_der();
    assert!(a.to_cbor().ends_with(&spki));
    assert_eq!(Attestation::from_cbor(&a.to_cbor(), Limits::STATE), Ok(a.clone()));
    let with_key_bytes = |key: &[u8]| {
        let mut e = Encoder::new();
        e.array(6)
            .uint(a.height)
            .text(&a.swname)
            .text(&a.swversion)
            .bytes(&a.measurement)
            .bytes(&a.alias_fwid_sha256)
            .bytes(key);
        e.into_bytes()
    };
    assert_eq!(with_key_bytes(&spki), a.to_cbor());
    let trailing = [spki.as_slice(), &[0]].concat();
    for bad in [&trailing[..], &spki[1..], &[]] {
        assert!(matches!(
            Attestation::from_cbor(&with_key_bytes(bad), Limits::STATE),
            Err(DecodeError::Invalid {
                what: "attested Alias key",
                ..
            })
        ));
    }
}

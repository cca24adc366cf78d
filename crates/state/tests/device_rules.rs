//! Chip identity rules (issue 3): manufacturer CA governance, registration, two-step transfer,
//! attestation and revocation. Every rejection gets its typed error and leaves the state
//! unchanged; certificates and evidence are made with the device SDK.

use std::collections::BTreeMap;

use chipledger_device::cert::{
    CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_alias_cert, issue_ca_cert, issue_deviceid_cert,
};
use chipledger_device::eat::{EatClaims, Measurement, OemId, SwVersion, sign_eat};
use chipledger_state::device::{ATTEST_NONCE_WINDOW_BLOCKS, attest_nonce, ca_id_of, device_id_of};
use chipledger_state::model::*;
use chipledger_state::store::{WriteSet, apply_writes};
use chipledger_state::{BlockContext, Event, TxError, VerifyAll, apply_tx, genesis_writes};
use chipledger_types::cbor::Encode;
use chipledger_types::device_tx::*;
use chipledger_types::genesis::{Genesis, Policy, ValidatorSpec};
use chipledger_types::keys::SigningKey as OrgKey;
use chipledger_types::tx::{GovAction, OrgSpec, Payload, Role, SignedTx, TxBody, TxHash};
use p256::ecdsa::SigningKey;

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;

struct World {
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    keys: BTreeMap<String, OrgKey>,
    height: u64,
}

const ORGS: [(&str, Role); 5] = [
    ("maker", Role::Manufacturer),
    ("maker2", Role::Manufacturer),
    ("city", Role::Owner),
    ("buyer", Role::Owner),
    ("audit", Role::Auditor),
];

fn org_key(i: usize) -> OrgKey {
    OrgKey::ed25519_from_seed(&[i as u8 + 1; 32])
}

fn world() -> World {
    let orgs = ORGS
        .iter()
        .enumerate()
        .map(|(i, (n, r))| OrgSpec {
            name: n.to_string(),
            roles: vec![*r],
            keys: vec![org_key(i).public_key()],
        })
        .collect();
    let validators = ORGS
        .iter()
        .enumerate()
        .map(|(i, (n, _))| ValidatorSpec {
            name: format!("v-{n}"),
            org: n.to_string(),
            consensus_key: [i as u8 + 50; 32],
            note_key: OrgKey::ed25519_from_seed(&[i as u8 + 100; 32]).public_key(),
            p2p_address: format!("127.0.0.1:{}", 9000 + i),
            api_url: format!("http://127.0.0.1:{}", 7070 + i),
        })
        .collect();
    let g = Genesis {
        chain_id: "test".into(),
        timestamp_ms: T0_MS,
        orgs,
        validators,
        policy: Policy {
            governance_threshold: 2,
            proposal_ttl_blocks: 100,
        },
    };
    g.validate().unwrap();
    let mut state = BTreeMap::new();
    apply_writes(&mut state, &genesis_writes(&g));
    let keys = ORGS
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.to_string(), org_key(i)))
        .collect();
    World { state, keys, height: 1 }
}

impl World {
    fn tx(&self, org: &str, payload: Payload) -> Vec<u8> {
        let k = &self.keys[org];
        let body = TxBody {
            chain_id: "test".into(),
            org: org.into(),
            key_id: k.public_key().id(),
            seq: get_seq(&self.state, org).unwrap() + 1,
            expiry_height: self.height + 10,
            payload,
        };
        SignedTx::sign(body, k).to_cbor()
    }

    fn apply(&mut self, bytes: &[u8]) -> Result<Vec<Event>, TxError> {
        let ctx = BlockContext {
            chain_id: "test",
            height: self.height,
            timestamp_ms: T0_MS + 1000 * self.height,
        };
        let mut writes = WriteSet::new();
        let r = apply_tx(&self.state, &mut writes, &ctx, &VerifyAll, bytes);
        if r.is_err() {
            assert!(writes.is_empty(), "a rejected transaction wrote state");
        }
        apply_writes(&mut self.state, &writes);
        self.height += 1;
        r
    }

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

    /// Propose by `city`, approve by `audit` (threshold 2): the action executes.
    fn govern(&mut self, action: GovAction) {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let ev = self.ok(
            "audit",
            Payload::Approve {
                proposal: TxHash::of(&p),
            },
        );
        assert!(ev.iter().any(|e| matches!(e, Event::ProposalExecuted { .. })));
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
        deviceid_der,
        alias_key,
        alias_der,
    }
}

fn evidence(key: &SigningKey, nonce: &[u8]) -> Vec<u8> {
    let claims = EatClaims {
        nonce: nonce.to_vec(),
        ueid: vec![1; 17],
        oemid: OemId::Pen(12345),
        hwmodel: b"lamp".to_vec(),
        swname: "lamp-fw".into(),
        swversion: SwVersion {
            version: "2.1.0".into(),
            scheme: None,
        },
        measurements: vec![Measurement {
            content_format: 42,
            value: vec![0xab; 32],
        }],
    };
    sign_eat(&claims, key).unwrap()
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

fn attest(w: &World, c: &Chip, nonce_height: u64) -> Payload {
    let seed = w.device(&c.id).challenge_seed;
    let nonce = attest_nonce("test", &c.id, &seed, nonce_height);
    Payload::Attest(Attest {
        device: c.id,
        alias_cert_der: c.alias_der.clone(),
        eat: evidence(&c.alias_key, &nonce),
    })
}

#[test]
fn manufacturer_ca_governance() {
    let mut w = world();
    let ca1 = ca(1);
    w.govern(grant(&[(100, 199)], &ca1, "maker"));
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
    w.govern(revoke(ca1.id));
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
    let accept = Payload::AcceptTransfer(AcceptTransfer { device: c.id });
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
    assert!(matches!(&ev[0], Event::TransferAccepted { from, to, .. } if from == "city" && to == "buyer"));
    assert_eq!(w.device(&c.id).owner, "buyer");
    assert!(devices_by_owner(&w.state, "city").unwrap().is_empty());
    assert_eq!(devices_by_owner(&w.state, "buyer").unwrap(), vec![c.id]);
    let h = device_history(&w.state, &c.id).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[1].kind, h[1].from.as_str(), h[1].to.as_str()),
        (HistoryKind::Transferred, "city", "buyer")
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
        let nonce = attest_nonce("test", &c.id, &w.device(&c.id).challenge_seed, w.height);
        a.eat = evidence(&p256_key(99), &nonce);
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

//! Access rules (issue 6), ledger side: grants and key releases, revocation, expiry, device
//! coverage by listing and by tag, offers and purchases with credits, credits issued by
//! governance, and the audit entries each change appends. Every rejection gets its typed error
//! code and leaves the state unchanged (the harness checks it; balance checks make it explicit).
//! Devices are real: DICE DeviceID certificates from the device SDK, registered by a manufacturer.

mod support;

use chipledger_device::cert::{CertRequest, CertValidity, DiceTcbInfo, Fwid, issue_ca_cert, issue_deviceid_cert};
use chipledger_state::access::model::*;
use chipledger_state::access::{AccessEvent, check_release};
use chipledger_state::audit::audit_entries;
use chipledger_state::device::{ca_id_of, device_id_of};
use chipledger_state::{Event, TxError};
use chipledger_types::access_tx::*;
use chipledger_types::audit::AuditSubject;
use chipledger_types::device_tx::*;
use chipledger_types::keys::SigningKey as OrgKey;
use chipledger_types::tx::{GovAction, Payload, Role, TxHash};
use p256::ecdsa::SigningKey;
use support::World;

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;
const LAMP: u32 = 150;
const DAY_MS: u64 = 86_400_000;

const ORGS: [(&str, Role); 6] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("audit", Role::Auditor),
    ("lab", Role::Consumer),
    ("lab2", Role::Consumer),
    ("town", Role::Owner),
];

impl World {
    fn now_ms(&self) -> u64 {
        self.t0_ms + 1000 * self.height
    }

    fn ok(&mut self, org: &str, payload: Payload) -> (TxHash, Vec<AccessEvent>) {
        let (hash, events) = self.apply_ok(org, payload);
        let access = events
            .into_iter()
            .filter_map(|e| match e {
                Event::Access(x) => Some(x),
                _ => None,
            })
            .collect();
        (hash, access)
    }

    /// Expect an access rejection with `code`, the state unchanged.
    fn refuse(&mut self, org: &str, payload: Payload, code: &str) {
        let e = self.reject_unchanged(org, payload);
        assert_eq!(e.code(), code, "{e}");
        assert!(matches!(e, TxError::Access(_)) || code.starts_with("unknown") || code.starts_with("device"));
    }

    fn govern(&mut self, action: GovAction) -> Vec<Event> {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let proposal = TxHash::of(&p);
        self.apply(&self.tx("audit", Payload::Approve { proposal })).unwrap()
    }

    fn credits(&self, org: &str) -> u64 {
        credits_of(&self.state, org).unwrap()
    }

    fn grant_record(&self, id: &TxHash) -> GrantRecord {
        get_grant(&self.state, id).unwrap().expect("grant")
    }

    /// The kinds of `subject`'s audit entries, oldest first.
    fn audit_kinds(&self, subject: &AuditSubject) -> Vec<String> {
        audit_entries(&self.state, subject, 0, 100)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.kind)
            .collect()
    }
}

fn p256_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32].into()).unwrap()
}

/// A software chip endorsed by `ca_key`, registered by `maker` to `owner`.
fn chip(w: &mut World, ca_key: &SigningKey, ca_der: &[u8], seed: u8, owner: &str) -> DeviceId {
    let dev_key = p256_key(seed);
    let id = device_id_of(dev_key.verifying_key());
    let tcb = DiceTcbInfo {
        vendor: Some("maker".into()),
        model: Some("lamp".into()),
        layer: Some(0),
        fwids: Some(vec![Fwid::sha256(&[0; 32])]),
        ..Default::default()
    };
    let req = CertRequest {
        subject_public_key: dev_key.verifying_key(),
        subject_id: &id.0,
        tcb_info: &tcb,
        validity: CertValidity::DICE_DEFAULT,
    };
    let register = Payload::RegisterDevice(RegisterDevice {
        ca: ca_id_of(ca_key.verifying_key()),
        deviceid_cert_der: issue_deviceid_cert(ca_key, ca_der, &req).unwrap(),
        model: LAMP,
        owner: owner.into(),
    });
    let t = w.tx("maker", register);
    w.apply(&t).unwrap();
    id
}

/// A world with lamps `a`, `b` of `city` and `t` of `town` (ids sorted a < b).
fn scene() -> (World, DeviceId, DeviceId, DeviceId) {
    let mut w = World::new(&ORGS, 2, T0_MS);
    let ca_key = p256_key(1);
    let ca_der = issue_ca_cert(&ca_key, "CN=CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
    w.govern(GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca_der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    }));
    let x = chip(&mut w, &ca_key, &ca_der, 10, "city");
    let y = chip(&mut w, &ca_key, &ca_der, 11, "city");
    let t = chip(&mut w, &ca_key, &ca_der, 12, "town");
    let (a, b) = if x < y { (x, y) } else { (y, x) };
    (w, a, b, t)
}

fn scope(devices: &[DeviceId], tags: &[&str]) -> AccessScope {
    AccessScope {
        devices: devices.to_vec(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        streams: vec!["pm25".into()],
        from_ms: T0_MS - DAY_MS,
        until_ms: T0_MS + 30 * DAY_MS,
    }
}

fn grant_to(grantee: Grantee, scope: AccessScope, expires_ms: u64) -> Payload {
    Payload::GrantAccess(GrantAccess {
        grantee,
        scope,
        purpose: "air-quality study".into(),
        expires_ms,
        price: None,
    })
}

fn lab() -> Grantee {
    Grantee::Org("lab".into())
}

fn release(grant: TxHash, device: DeviceId) -> Payload {
    Payload::KeyRelease(KeyRelease {
        grant,
        device,
        epochs: vec![1, 2],
        recipient: [9; 32],
    })
}

fn tag(t: &str, add: &[DeviceId], remove: &[DeviceId]) -> Payload {
    Payload::TagDevices(TagDevices {
        tag: t.into(),
        add: add.to_vec(),
        remove: remove.to_vec(),
    })
}

fn offer(scope: AccessScope, price: u64, expires_ms: u64) -> Payload {
    Payload::PublishOffer(PublishOffer {
        scope,
        price,
        duration_ms: 30 * DAY_MS,
        terms: "research use only".into(),
        expires_ms,
    })
}

fn buy(offer: TxHash, max_price: u64) -> Payload {
    Payload::Purchase(Purchase { offer, max_price })
}

// ---- grants and releases -----------------------------------------------------------------------

#[test]
fn grant_release_revoke_refuse() {
    let (mut w, a, b, _) = scene();
    let expires = w.now_ms() + DAY_MS;
    let (g, events) = w.ok("city", grant_to(lab(), scope(&[a], &[]), expires));
    assert_eq!(
        events,
        vec![AccessEvent::GrantCreated {
            grant: g,
            owner: "city".into(),
            grantee: lab()
        }]
    );
    let rec = w.grant_record(&g);
    assert_eq!((rec.owner.as_str(), rec.expires_ms, rec.releases), ("city", expires, 0));
    assert!(rec.revoked.is_none() && rec.offer.is_none());

    let (r, events) = w.ok("city", release(g, a));
    assert_eq!(
        events,
        vec![AccessEvent::KeysReleased {
            grant: g,
            device: a,
            epochs: 2
        }]
    );
    assert_eq!(w.grant_record(&g).releases, 1);
    // Only the grant's owner releases; the device must be in scope.
    w.refuse("lab", release(g, a), "not_owner");
    w.refuse("city", release(g, b), "not_covered");
    w.refuse("city", release(TxHash([7; 32]), a), "unknown_grant");

    let revoke = |reason: &str| {
        Payload::RevokeAccess(RevokeAccess {
            grant: g,
            reason: reason.into(),
        })
    };
    w.refuse("town", revoke("not mine"), "not_owner");
    let (rv, _) = w.ok("city", revoke("study over"));
    let rec = w.grant_record(&g);
    assert_eq!(rec.revoked.as_ref().map(|r| r.2.as_str()), Some("study over"));
    assert_eq!(rec.releases, 1, "released keys stay counted");
    w.refuse("city", release(g, a), "grant_revoked");
    w.refuse("city", revoke("again"), "grant_revoked");

    // Audit: device, owner and grantee each saw grant, release, revocation, in order.
    let want = ["grant", "key-release", "grant-revoked"];
    for s in [
        AuditSubject::Device(a),
        AuditSubject::Org("city".into()),
        AuditSubject::Org("lab".into()),
    ] {
        assert_eq!(w.audit_kinds(&s), want, "{s:?}");
    }
    assert!(w.audit_kinds(&AuditSubject::Device(b)).is_empty());
    let entries = audit_entries(&w.state, &AuditSubject::Org("lab".into()), 0, 10).unwrap();
    assert_eq!(entries.iter().map(|(_, e)| e.tx).collect::<Vec<_>>(), vec![g, r, rv]);
    assert!(
        entries[1].1.summary.contains(&a.to_string()),
        "{}",
        entries[1].1.summary
    );
    assert_eq!(entries[1].1.actor, "city");
}

#[test]
fn expired_grants_and_bad_grants() {
    let (mut w, a, b, t) = scene();
    let now = w.now_ms();
    // Expiry: block time advances 1 s per block; the grant lasts 2.5 s.
    let (g, _) = w.ok("city", grant_to(lab(), scope(&[a], &[]), now + 2500));
    w.ok("city", release(g, a));
    w.ok("city", release(g, a));
    w.refuse("city", release(g, a), "grant_expired");
    assert_eq!(w.grant_record(&g).releases, 2);

    let far = w.now_ms() + DAY_MS;
    let past = w.now_ms();
    w.refuse("city", grant_to(lab(), scope(&[a], &[]), past), "expiry_past");
    w.refuse("city", grant_to(lab(), scope(&[t], &[]), far), "not_owner");
    w.refuse(
        "city",
        grant_to(lab(), scope(&[DeviceId([0; 20])], &[]), far),
        "unknown_device",
    );
    w.refuse(
        "city",
        grant_to(Grantee::Org("city".into()), scope(&[a], &[]), far),
        "self_grant",
    );
    w.refuse(
        "city",
        grant_to(Grantee::Org("nobody".into()), scope(&[a], &[]), far),
        "unknown_org",
    );
    w.refuse("lab", grant_to(lab(), scope(&[a], &[]), far), "missing_role");
    // A person's key as grantee: its own audit trail.
    let person = OrgKey::ed25519_from_seed(&[42; 32]).public_key();
    let (g, _) = w.ok("city", grant_to(Grantee::Key(person), scope(&[a, b], &[]), far));
    w.ok("city", release(g, b));
    let key_subject = AuditSubject::Key(key_hash(&person));
    assert_eq!(Grantee::Key(person).audit_subject(), key_subject);
    assert_eq!(w.audit_kinds(&key_subject), ["grant", "key-release"]);
    assert_eq!(w.audit_kinds(&AuditSubject::Device(b)), ["grant", "key-release"]);
}

#[test]
fn coverage_follows_revocation_and_ownership() {
    let (mut w, a, b, _) = scene();
    let far = w.now_ms() + DAY_MS;
    let (g, _) = w.ok("city", grant_to(lab(), scope(&[a, b], &[]), far));
    // The device is revoked: nothing more is released for it.
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: b,
        reason: RevokeReason::Lost,
    });
    w.apply_ok("city", revoke);
    w.refuse("city", release(g, b), "not_covered");
    // The device changes hands: the old owner's grant no longer covers it.
    w.apply_ok(
        "city",
        Payload::OfferTransfer(OfferTransfer {
            device: a,
            to_org: "town".into(),
        }),
    );
    w.ok("city", release(g, a));
    w.apply_ok(
        "town",
        Payload::AcceptTransfer(AcceptTransfer {
            device: a,
            device_proof: None,
        }),
    );
    w.refuse("city", release(g, a), "not_covered");
    let e = check_release(&w.state, w.now_ms(), "city", &g, &a).unwrap_err();
    assert!(e.to_string().contains("no longer owns"), "{e}");
}

#[test]
fn tag_scoped_grant_covers_tagged_devices_only_while_tagged() {
    let (mut w, a, b, t) = scene();
    let far = w.now_ms() + DAY_MS;
    let (g, _) = w.ok("city", grant_to(lab(), scope(&[], &["north"]), far));
    w.refuse("city", release(g, a), "not_covered");
    let (_, events) = w.ok("city", tag("north", &[a], &[]));
    assert_eq!(
        events,
        vec![AccessEvent::DevicesTagged {
            owner: "city".into(),
            tag: "north".into(),
            added: 1,
            removed: 0
        }]
    );
    assert!(is_tagged(&w.state, "city", "north", &a).unwrap());
    w.ok("city", release(g, a));
    w.refuse("city", release(g, b), "not_covered");
    // Another tag does not count; tags are per owner.
    w.ok("city", tag("south", &[b], &[]));
    w.refuse("city", release(g, b), "not_covered");
    w.refuse("town", tag("north", &[a], &[]), "not_owner");
    w.refuse("city", tag("north", &[t], &[]), "not_owner");
    w.refuse("city", tag("north", &[a], &[]), "already_tagged");
    w.refuse("city", tag("north", &[], &[b]), "not_tagged");
    w.refuse("lab", tag("north", &[a], &[]), "missing_role");
    // Untagged: the grant stops covering it.
    w.ok("city", tag("north", &[], &[a]));
    assert!(!is_tagged(&w.state, "city", "north", &a).unwrap());
    assert!(
        !w.state.contains_key(&tag_key("city", "north", &a)),
        "untagging deletes the mark"
    );
    w.refuse("city", release(g, a), "not_covered");
    assert_eq!(w.grant_record(&g).releases, 1);
    // The tag-scoped grant lists no device: the device's trail has tags and the release only.
    assert_eq!(w.audit_kinds(&AuditSubject::Device(a)), ["tags", "key-release", "tags"]);
    assert_eq!(
        w.audit_kinds(&AuditSubject::Org("lab".into())),
        ["grant", "key-release"]
    );
}

// ---- credits, offers and purchases -------------------------------------------------------------

fn issue(w: &mut World, org: &str, amount: u64) -> Vec<Event> {
    w.govern(GovAction::IssueCredits {
        org: org.into(),
        amount,
    })
}

#[test]
fn credits_are_issued_by_governance_only() {
    let (mut w, ..) = scene();
    assert_eq!(w.credits("lab"), 0);
    let p = w.tx(
        "city",
        Payload::Propose(GovAction::IssueCredits {
            org: "lab".into(),
            amount: 100,
        }),
    );
    w.apply(&p).unwrap();
    assert_eq!(w.credits("lab"), 0, "one approval is below the threshold");
    let events = w
        .apply(&w.tx(
            "audit",
            Payload::Approve {
                proposal: TxHash::of(&p),
            },
        ))
        .unwrap();
    assert!(events.contains(&Event::Access(AccessEvent::CreditsIssued {
        org: "lab".into(),
        amount: 100,
        balance: 100
    })));
    assert_eq!(w.credits("lab"), 100);
    let trail = audit_entries(&w.state, &AuditSubject::Org("lab".into()), 0, 10).unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(
        (trail[0].1.kind.as_str(), trail[0].1.tx),
        ("credits-issued", TxHash::of(&p))
    );
    issue(&mut w, "lab", 50);
    assert_eq!(w.credits("lab"), 150);
    // Overflow is refused when proposed; unknown organisations too.
    issue(&mut w, "lab2", u64::MAX);
    let over = Payload::Propose(GovAction::IssueCredits {
        org: "lab2".into(),
        amount: 1,
    });
    let e = w.reject_unchanged("city", over);
    assert_eq!(e.code(), "credit_overflow");
    let nobody = Payload::Propose(GovAction::IssueCredits {
        org: "nobody".into(),
        amount: 1,
    });
    assert_eq!(w.reject_unchanged("city", nobody).code(), "unknown_org");
    assert_eq!(w.credits("lab2"), u64::MAX);
}

#[test]
fn purchase_moves_credits_and_creates_the_grant_atomically() {
    let (mut w, a, b, _) = scene();
    issue(&mut w, "lab", 100);
    let expires = w.now_ms() + DAY_MS;
    let (o, events) = w.ok("city", offer(scope(&[a, b], &[]), 30, expires));
    assert_eq!(
        events,
        vec![AccessEvent::OfferPublished {
            offer: o,
            owner: "city".into(),
            price: 30
        }]
    );
    let bought_at = w.now_ms();
    let (g, events) = w.ok("lab", buy(o, 30));
    assert_eq!(
        events,
        vec![AccessEvent::Purchased {
            offer: o,
            grant: g,
            buyer: "lab".into(),
            owner: "city".into(),
            price: 30
        }]
    );
    assert_eq!((w.credits("lab"), w.credits("city")), (70, 30));
    let rec = w.grant_record(&g);
    assert_eq!(rec.id, g);
    assert_eq!(rec.grantee, lab());
    assert_eq!(rec.owner, "city");
    assert_eq!(rec.scope, scope(&[a, b], &[]));
    assert_eq!(rec.expires_ms, bought_at + 30 * DAY_MS);
    assert_eq!((rec.price, rec.offer), (Some(30), Some(o)));
    assert_eq!(rec.purpose, "research use only");
    assert_eq!(purchase_of(&w.state, &o, "lab").unwrap(), Some(g));
    assert_eq!(get_offer(&w.state, &o).unwrap().unwrap().purchases, 1);
    // The bought grant releases keys like any other.
    w.ok("city", release(g, b));
    for s in [AuditSubject::Org("lab".into()), AuditSubject::Org("city".into())] {
        let kinds = w.audit_kinds(&s);
        assert!(
            kinds.ends_with(&["purchase".into(), "key-release".into()]),
            "{s:?}: {kinds:?}"
        );
    }
    assert_eq!(w.audit_kinds(&AuditSubject::Device(a)), ["offer", "purchase"]);
}

#[test]
fn purchase_failures_are_typed_and_change_nothing() {
    let (mut w, a, _, _) = scene();
    issue(&mut w, "lab", 100);
    issue(&mut w, "lab2", 10);
    let far = w.now_ms() + DAY_MS;
    let (o, _) = w.ok("city", offer(scope(&[a], &[]), 30, far));
    let balances = |w: &World| (w.credits("lab"), w.credits("lab2"), w.credits("city"));

    w.refuse("lab2", buy(o, 30), "insufficient_credits");
    let e = w.reject_unchanged("lab2", buy(o, 30));
    assert!(e.to_string().contains("has 10 credits, needs 30"), "{e}");
    w.refuse("lab", buy(o, 29), "price_changed");
    w.refuse("lab", buy(TxHash([5; 32]), 30), "unknown_offer");
    w.refuse("town", buy(o, 30), "missing_role");
    assert_eq!(balances(&w), (100, 10, 0));

    w.ok("lab", buy(o, 30));
    assert_eq!(balances(&w), (70, 10, 30));
    w.refuse("lab", buy(o, 30), "already_purchased");
    assert_eq!(balances(&w), (70, 10, 30));

    // Withdrawn: no one buys it any more; bought grants stay.
    let withdraw = Payload::WithdrawOffer(WithdrawOffer { offer: o });
    w.refuse("town", withdraw.clone(), "not_owner");
    w.ok("city", withdraw.clone());
    w.refuse("city", withdraw, "offer_withdrawn");
    issue(&mut w, "lab2", 100);
    w.refuse("lab2", buy(o, 30), "offer_withdrawn");
    assert_eq!(balances(&w), (70, 110, 30));

    // Expired: the offer could be bought for 2.5 s only.
    let soon = w.now_ms() + 2500;
    let (o2, _) = w.ok("city", offer(scope(&[a], &[]), 5, soon));
    w.apply_ok(
        "audit",
        Payload::Statement {
            topic: "tick".into(),
            body: vec![],
        },
    );
    w.apply_ok(
        "audit",
        Payload::Statement {
            topic: "tick".into(),
            body: vec![],
        },
    );
    w.refuse("lab2", buy(o2, 5), "offer_expired");
    let past = w.now_ms();
    w.refuse("city", offer(scope(&[a], &[]), 5, past), "expiry_past");
    assert_eq!(balances(&w), (70, 110, 30));

    // Stale: a listed device was revoked after the offer was published.
    let (o3, _) = w.ok("city", offer(scope(&[a], &[]), 5, w.now_ms() + DAY_MS));
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: a,
        reason: RevokeReason::Decommissioned,
    });
    w.apply_ok("city", revoke);
    w.refuse("lab2", buy(o3, 5), "offer_stale");
    assert_eq!(balances(&w), (70, 110, 30));
}

#[test]
fn a_grant_from_an_offer_can_be_bought_again_once_it_ended() {
    let (mut w, a, _, _) = scene();
    issue(&mut w, "lab", 100);
    let far = w.now_ms() + DAY_MS;
    let short = Payload::PublishOffer(PublishOffer {
        scope: scope(&[a], &[]),
        price: 10,
        duration_ms: 1500,
        terms: "one block".into(),
        expires_ms: far,
    });
    let (o, _) = w.ok("city", short);
    let (g1, _) = w.ok("lab", buy(o, 10));
    w.refuse("lab", buy(o, 10), "already_purchased");
    w.refuse("city", release(g1, a), "grant_expired");
    let (g2, _) = w.ok("lab", buy(o, 10));
    assert_ne!(g1, g2);
    assert_eq!(purchase_of(&w.state, &o, "lab").unwrap(), Some(g2));
    assert_eq!((w.credits("lab"), w.credits("city")), (80, 20));
}

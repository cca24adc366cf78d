use super::*;
use crate::cbor::Limits;
use crate::tx::{GovAction, Payload};
use alloc::string::ToString;
use alloc::vec;

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn rep(b: u8, n: usize) -> String {
    hex::encode(vec![b; n])
}

fn text(s: &str) -> String {
    assert!(s.len() < 24);
    format!("{:02x}{}", 0x60 + s.len(), hex::encode(s))
}

fn scope() -> AccessScope {
    AccessScope {
        devices: vec![DeviceId([1; 20])],
        tags: vec!["north".into()],
        streams: vec!["pm25".into()],
        from_ms: 10,
        until_ms: 20,
    }
}

/// `[[h'01…'], ["north"], ["pm25"], 10, 20]`
fn scope_hex() -> String {
    format!("85 81 54{} 81 {} 81 {} 0a 14", rep(1, 20), text("north"), text("pm25"))
}

fn round_trip(p: Payload) -> Vec<u8> {
    let bytes = p.to_cbor();
    assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
    for cut in 0..bytes.len() {
        assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut at {cut}");
    }
    bytes
}

fn refused(p: Payload) -> DecodeError {
    Payload::from_cbor(&p.to_cbor(), Limits::TX).expect_err("must be refused")
}

fn grant(grantee: Grantee, scope: AccessScope) -> Payload {
    Payload::GrantAccess(GrantAccess {
        grantee,
        scope,
        purpose: "study".into(),
        expires_ms: 100,
        price: None,
    })
}

#[test]
fn frozen_payload_encodings() {
    // [50, [1, "lab"], scope, "study", 100, null]
    let g = grant(Grantee::Org("lab".into()), scope());
    let want = format!(
        "86 1832 82 01 {} {} {} 1864 f6",
        text("lab"),
        scope_hex(),
        text("study")
    );
    assert_eq!(round_trip(g), h(&want));
    // [50, [2, [1, h'07…']], scope, "study", 100, 5]
    let key = PublicKey::Ed25519([7; 32]);
    let g = GrantAccess {
        grantee: Grantee::Key(key),
        scope: scope(),
        purpose: "study".into(),
        expires_ms: 100,
        price: Some(5),
    };
    let want = format!(
        "86 1832 82 02 82 01 5820{} {} {} 1864 05",
        rep(7, 32),
        scope_hex(),
        text("study")
    );
    assert_eq!(round_trip(Payload::GrantAccess(g.clone())), h(&want));
    // [51, h'03…', "done"]
    let r = Payload::RevokeAccess(RevokeAccess {
        grant: TxHash([3; 32]),
        reason: "done".into(),
    });
    assert_eq!(
        round_trip(r),
        h(&format!("83 1833 5820{} {}", rep(3, 32), text("done")))
    );
    // [52, h'03…', h'01…', [1, 2], h'09…']
    let k = Payload::KeyRelease(KeyRelease {
        grant: TxHash([3; 32]),
        device: DeviceId([1; 20]),
        epochs: vec![1, 2],
        recipient: [9; 32],
    });
    let want = format!(
        "85 1834 5820{} 54{} 82 01 02 5820{}",
        rep(3, 32),
        rep(1, 20),
        rep(9, 32)
    );
    assert_eq!(round_trip(k), h(&want));
    // [53, scope, 25, 1000, "terms", 500]
    let o = Payload::PublishOffer(PublishOffer {
        scope: scope(),
        price: 25,
        duration_ms: 1000,
        terms: "terms".into(),
        expires_ms: 500,
    });
    let want = format!("86 1835 {} 1819 1903e8 {} 1901f4", scope_hex(), text("terms"));
    assert_eq!(round_trip(o), h(&want));
    // [54, h'04…']
    let w = Payload::WithdrawOffer(WithdrawOffer { offer: TxHash([4; 32]) });
    assert_eq!(round_trip(w), h(&format!("82 1836 5820{}", rep(4, 32))));
    // [55, h'04…', 30]
    let b = Payload::Purchase(Purchase {
        offer: TxHash([4; 32]),
        max_price: 30,
    });
    assert_eq!(round_trip(b), h(&format!("83 1837 5820{} 181e", rep(4, 32))));
    // [56, "north", [h'01…'], [h'02…']]
    let t = Payload::TagDevices(TagDevices {
        tag: "north".into(),
        add: vec![DeviceId([1; 20])],
        remove: vec![DeviceId([2; 20])],
    });
    let want = format!("84 1838 {} 81 54{} 81 54{}", text("north"), rep(1, 20), rep(2, 20));
    assert_eq!(round_trip(t), h(&want));
    // [1, [8, "lab", 1000]]
    let c = Payload::Propose(GovAction::IssueCredits {
        org: "lab".into(),
        amount: 1000,
    });
    assert_eq!(round_trip(c), h(&format!("82 01 83 08 {} 1903e8", text("lab"))));
}

#[test]
fn frozen_records() {
    let mut rec = GrantRecord {
        id: TxHash([3; 32]),
        owner: "city".into(),
        grantee: Grantee::Org("lab".into()),
        scope: scope(),
        purpose: "study".into(),
        expires_ms: 100,
        price: Some(25),
        offer: Some(TxHash([4; 32])),
        created_height: 7,
        created_ms: 50,
        revoked: None,
        releases: 2,
    };
    let want = format!(
        "8c 5820{} {} 82 01 {} {} {} 1864 1819 5820{} 07 1832 f6 02",
        rep(3, 32),
        text("city"),
        text("lab"),
        scope_hex(),
        text("study"),
        rep(4, 32)
    );
    assert_eq!(rec.to_cbor(), h(&want));
    assert_eq!(GrantRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), rec);
    rec.revoked = Some((9, 60, "done".into()));
    rec.price = None;
    rec.offer = None;
    let want = format!(
        "8c 5820{} {} 82 01 {} {} {} 1864 f6 f6 07 1832 83 09 183c {} 02",
        rep(3, 32),
        text("city"),
        text("lab"),
        scope_hex(),
        text("study"),
        text("done")
    );
    assert_eq!(rec.to_cbor(), h(&want));
    assert_eq!(GrantRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), rec);
    assert!(!rec.is_active(0));

    let offer = OfferRecord {
        id: TxHash([4; 32]),
        owner: "city".into(),
        scope: scope(),
        price: 25,
        duration_ms: 1000,
        terms: "terms".into(),
        expires_ms: 500,
        created_height: 7,
        created_ms: 50,
        withdrawn: Some((8, 55)),
        purchases: 1,
    };
    let want = format!(
        "8b 5820{} {} {} 1819 1903e8 {} 1901f4 07 1832 82 08 1837 01",
        rep(4, 32),
        text("city"),
        scope_hex(),
        text("terms")
    );
    assert_eq!(offer.to_cbor(), h(&want));
    assert_eq!(OfferRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), offer);

    assert_eq!(CreditBalance(1000).to_cbor(), h("1903e8"));
    assert_eq!(TagMark { height: 7 }.to_cbor(), h("07"));
    let mark = PurchaseMark { grant: TxHash([3; 32]) };
    assert_eq!(mark.to_cbor(), h(&format!("5820{}", rep(3, 32))));
    assert_eq!(PurchaseMark::from_cbor(&mark.to_cbor(), Limits::STATE).unwrap(), mark);
}

#[test]
fn state_keys() {
    let id = TxHash([0xab; 32]);
    assert_eq!(grant_key(&id), format!("access/grant/{}", rep(0xab, 32)).into_bytes());
    assert_eq!(offer_key(&id), format!("access/offer/{}", rep(0xab, 32)).into_bytes());
    assert_eq!(
        purchase_key(&id, "lab"),
        format!("access/purchase/{}/lab", rep(0xab, 32)).into_bytes()
    );
    assert_eq!(credits_key("lab"), b"access/credits/lab".to_vec());
    assert_eq!(
        tag_key("city", "north", &DeviceId([0xcd; 20])),
        format!("access/tag/city/north/{}", rep(0xcd, 20)).into_bytes()
    );
}

#[test]
fn grantee_audit_subjects() {
    assert_eq!(
        Grantee::Org("lab".into()).audit_subject(),
        AuditSubject::Org("lab".into())
    );
    let key = PublicKey::Ed25519([7; 32]);
    let want: [u8; 32] = Sha256::digest(key.to_cbor()).into();
    assert_eq!(Grantee::Key(key).audit_subject(), AuditSubject::Key(want));
}

#[test]
fn bad_scopes_are_typed_errors() {
    let lab = || Grantee::Org("lab".into());
    let cases: Vec<(&str, AccessScope)> = vec![
        (
            "nothing covered",
            AccessScope {
                devices: vec![],
                tags: vec![],
                ..scope()
            },
        ),
        (
            "empty window",
            AccessScope {
                from_ms: 20,
                until_ms: 20,
                ..scope()
            },
        ),
        (
            "devices unsorted",
            AccessScope {
                devices: vec![DeviceId([2; 20]), DeviceId([1; 20])],
                ..scope()
            },
        ),
        (
            "device twice",
            AccessScope {
                devices: vec![DeviceId([1; 20]), DeviceId([1; 20])],
                ..scope()
            },
        ),
        (
            "tags twice",
            AccessScope {
                tags: vec!["a".into(), "a".into()],
                ..scope()
            },
        ),
        (
            "bad tag",
            AccessScope {
                tags: vec!["a/b".into()],
                ..scope()
            },
        ),
        (
            "epoch-key stream",
            AccessScope {
                streams: vec![STREAM_EPOCH_KEYS.into()],
                ..scope()
            },
        ),
        (
            "bad stream",
            AccessScope {
                streams: vec!["".into()],
                ..scope()
            },
        ),
        (
            "too many devices",
            AccessScope {
                devices: (0..=MAX_SCOPE_DEVICES as u32)
                    .map(|i| {
                        let mut id = [0u8; 20];
                        id[16..].copy_from_slice(&i.to_be_bytes());
                        DeviceId(id)
                    })
                    .collect(),
                ..scope()
            },
        ),
        (
            "too many tags",
            AccessScope {
                tags: (0..=MAX_SCOPE_TAGS).map(|i| format!("t{i:03}")).collect(),
                ..scope()
            },
        ),
    ];
    for (name, s) in cases {
        assert!(
            Payload::from_cbor(&grant(lab(), s).to_cbor(), Limits::TX).is_err(),
            "{name}"
        );
    }
    // Tags alone, devices alone and all streams are fine.
    for s in [
        AccessScope {
            devices: vec![],
            ..scope()
        },
        AccessScope {
            tags: vec![],
            streams: vec![],
            ..scope()
        },
    ] {
        round_trip(grant(lab(), s));
    }
    let long = GrantAccess {
        grantee: lab(),
        scope: scope(),
        purpose: "x".repeat(MAX_PURPOSE_BYTES + 1),
        expires_ms: 1,
        price: None,
    };
    assert!(matches!(
        refused(Payload::GrantAccess(long)),
        DecodeError::TooLong { .. }
    ));
    let bad_org = grant(Grantee::Org("Lab".into()), scope());
    assert!(matches!(refused(bad_org), DecodeError::Invalid { what: "name", .. }));
}

#[test]
fn bad_payloads_are_typed_errors() {
    let release = |epochs: Vec<u32>| {
        Payload::KeyRelease(KeyRelease {
            grant: TxHash([3; 32]),
            device: DeviceId([1; 20]),
            epochs,
            recipient: [9; 32],
        })
    };
    assert!(matches!(refused(release(vec![])), DecodeError::Invalid { .. }));
    assert!(matches!(refused(release(vec![2, 1])), DecodeError::Invalid { .. }));
    assert!(matches!(refused(release(vec![1, 1])), DecodeError::Invalid { .. }));
    let many = (1..=MAX_RELEASE_EPOCHS as u32 + 1).collect();
    assert!(matches!(refused(release(many)), DecodeError::TooLong { .. }));
    round_trip(release((1..=MAX_RELEASE_EPOCHS as u32).collect()));

    let tag = |add: Vec<DeviceId>, remove: Vec<DeviceId>| {
        Payload::TagDevices(TagDevices {
            tag: "north".into(),
            add,
            remove,
        })
    };
    let (a, b) = (DeviceId([1; 20]), DeviceId([2; 20]));
    assert!(matches!(refused(tag(vec![], vec![])), DecodeError::Invalid { .. }));
    assert!(matches!(refused(tag(vec![a], vec![a])), DecodeError::Invalid { .. }));
    assert!(matches!(refused(tag(vec![b, a], vec![])), DecodeError::Invalid { .. }));
    round_trip(tag(vec![], vec![b]));

    let offer = Payload::PublishOffer(PublishOffer {
        scope: scope(),
        price: 0,
        duration_ms: 0,
        terms: String::new(),
        expires_ms: 1,
    });
    assert!(refused(offer).to_string().contains("duration_ms"));
    let zero = Payload::Propose(GovAction::IssueCredits {
        org: "lab".into(),
        amount: 0,
    });
    assert!(matches!(refused(zero), DecodeError::Invalid { what: "credits", .. }));
    // Grantee kind 3 does not exist: [50, [3, "lab"], …].
    let bytes = grant(Grantee::Org("lab".into()), scope()).to_cbor();
    assert_eq!(bytes[4], 0x01);
    let mut unknown = bytes.clone();
    unknown[4] = 0x03;
    assert!(matches!(
        Payload::from_cbor(&unknown, Limits::TX),
        Err(DecodeError::UnknownVariant { what: "grantee", .. })
    ));
}

#[test]
fn scope_streams_and_activity() {
    let mut s = scope();
    assert!(s.covers_stream("pm25"));
    assert!(!s.covers_stream("temp"));
    s.streams.clear();
    assert!(s.covers_stream("temp"));
    assert!(!s.covers_stream(STREAM_EPOCH_KEYS));
    let rec = GrantRecord {
        id: TxHash([3; 32]),
        owner: "city".into(),
        grantee: Grantee::Org("lab".into()),
        scope: s,
        purpose: String::new(),
        expires_ms: 100,
        price: None,
        offer: None,
        created_height: 1,
        created_ms: 1,
        revoked: None,
        releases: 0,
    };
    assert!(rec.is_active(99));
    assert!(!rec.is_active(100));
}

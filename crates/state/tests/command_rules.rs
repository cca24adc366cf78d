//! Authorized-command rules (issue 6), ledger side: `Authorize`, `RevokeAuthorization`,
//! `RecordCommand` and `AccessReceipt`. Every refusal gets its typed error (and code) and leaves
//! the state unchanged (the harness checks both); receipts that verify but lack a proper
//! authorization are stored with an anomaly flag. Devices are real DICE chips registered by a
//! manufacturer; receipts are COSE_Sign1 signed with the device SDK.

mod support;

use chipledger_device::cert::{CertValidity, issue_ca_cert};
use chipledger_device::command::sign_receipt;
use chipledger_state::audit::audit_entries;
use chipledger_state::command::CommandEvent;
use chipledger_state::command::model::*;
use chipledger_state::model::{OrgRecord, get_org, org_key};
use chipledger_state::{Event, TxError};
use chipledger_types::access_tx::Grantee;
use chipledger_types::audit::AuditSubject;
use chipledger_types::cbor::{Decode, Encode, Limits};
use chipledger_types::command_tx::*;
use chipledger_types::device_tx::*;
use chipledger_types::tx::{GovAction, Payload, Role, TxHash};
use p256::ecdsa::SigningKey;
use support::World;
use support::chip::{Chip, ChipKind, p256_key};

/// 2027-01-15, well inside the DICE default validity.
const T0_MS: u64 = 1_800_000_000_000;
const LAMP: u32 = 150;
/// Blocks are 1 s apart: an authorization valid for this long outlives every test.
const LONG_MS: u64 = 3_600_000;

const ORGS: [(&str, Role); 5] = [
    ("maker", Role::Manufacturer),
    ("city", Role::Owner),
    ("audit", Role::Auditor),
    ("tech", Role::Operator),
    ("town", Role::Owner),
];

impl World {
    fn now_ms(&self) -> u64 {
        self.t0_ms + 1000 * self.height
    }

    fn ok(&mut self, org: &str, payload: Payload) -> (TxHash, CommandEvent) {
        let (hash, events) = self.apply_ok(org, payload);
        let event = events
            .into_iter()
            .find_map(|e| match e {
                Event::Command(x) => Some(x),
                _ => None,
            })
            .expect("a command event");
        (hash, event)
    }

    /// Expect a command rejection with `code`.
    fn refuse(&mut self, org: &str, payload: Payload, code: &str) {
        let e = self.reject_unchanged(org, payload);
        assert_eq!(e.code(), code, "{e}");
        if !matches!(e, TxError::UnknownDevice(_) | TxError::DeviceRevoked(_)) {
            assert!(matches!(e, TxError::Command(_)), "{e:?}");
        }
    }

    fn govern(&mut self, action: GovAction) {
        let p = self.tx("city", Payload::Propose(action));
        self.apply(&p).unwrap();
        let proposal = TxHash::of(&p);
        self.apply(&self.tx("audit", Payload::Approve { proposal })).unwrap();
    }

    fn trail(&self, subject: &AuditSubject) -> Vec<String> {
        audit_entries(&self.state, subject, 0, 100)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.kind)
            .collect()
    }

    fn command(&self, h: &[u8; 32]) -> CommandRecord {
        get_command(&self.state, h).unwrap().expect("command record")
    }
}

/// The chips of these tests.
const KIND: ChipKind = ChipKind {
    model: LAMP,
    model_name: "lamp",
    swname: "lamp-fw",
};

/// Lamps `a`, `b` of `city`, lamp `t` of `town`.
fn scene() -> (World, Chip, Chip, Chip) {
    let mut w = World::new(&ORGS, 2, T0_MS);
    let ca_key = p256_key(1);
    let ca_der = issue_ca_cert(&ca_key, "CN=CA,O=maker", 1, CertValidity::DICE_DEFAULT).unwrap();
    w.govern(GovAction::AddManufacturerCa(AddManufacturerCa {
        org: "maker".into(),
        ca_cert_der: ca_der.clone(),
        models: vec![ModelRange { first: 100, last: 199 }],
    }));
    let a = w.register_chip(&ca_key, &ca_der, 10, KIND, "city");
    let b = w.register_chip(&ca_key, &ca_der, 11, KIND, "city");
    let t = w.register_chip(&ca_key, &ca_der, 12, KIND, "town");
    (w, a, b, t)
}

fn sorted(mut devices: Vec<DeviceId>) -> Vec<DeviceId> {
    devices.sort();
    devices
}

fn authorize(w: &World, grantee: Grantee, devices: Vec<DeviceId>, actions: &[&str]) -> Payload {
    Payload::Authorize(Authorize {
        grantee,
        devices: sorted(devices),
        actions: actions.iter().map(|a| a.to_string()).collect(),
        expires_ms: w.now_ms() + LONG_MS,
        purpose: "quarterly diagnostics".into(),
    })
}

fn tech() -> Grantee {
    Grantee::Org("tech".into())
}

fn record(authorization: TxHash, device: DeviceId, request: u8, action: &str) -> Payload {
    Payload::RecordCommand(RecordCommand {
        authorization,
        device,
        request_hash: [request; 32],
        action: action.into(),
    })
}

fn receipt(c: &Chip, authorization: TxHash, request: u8, action: &str, outcome: Outcome) -> CommandReceipt {
    CommandReceipt {
        device: c.id,
        request_hash: [request; 32],
        authorization,
        action: action.into(),
        outcome,
        result: b"battery=97%".to_vec(),
        client_token: format!("tok-{request}"),
        device_ms: T0_MS,
    }
}

fn submit(r: &CommandReceipt, key: &SigningKey) -> Payload {
    Payload::AccessReceipt(AccessReceipt {
        receipt: sign_receipt(r, key).unwrap(),
    })
}

#[test]
fn authorize_needs_an_owner_of_every_live_device() {
    let (mut w, a, b, t) = scene();
    let p = authorize(&w, tech(), vec![a.id], &["diagnostic"]);
    w.refuse("tech", p, "not_owner");
    let p = authorize(&w, tech(), vec![a.id, t.id], &["diagnostic"]);
    w.refuse("city", p, "not_device_owner");
    let p = authorize(&w, tech(), vec![a.id, DeviceId([0xee; 20])], &["diagnostic"]);
    w.refuse("city", p, "unknown_device");
    let p = authorize(&w, Grantee::Org("nobody".into()), vec![a.id], &["diagnostic"]);
    w.refuse("city", p, "unknown_grantee");
    let mut past = authorize(&w, tech(), vec![a.id], &["diagnostic"]);
    if let Payload::Authorize(x) = &mut past {
        x.expires_ms = w.now_ms();
    }
    w.refuse("city", past, "expiry_past");

    let p = authorize(&w, tech(), vec![a.id, b.id], &["diagnostic", "reboot"]);
    let (id, event) = w.ok("city", p);
    assert!(matches!(event, CommandEvent::Authorized { devices: 2, .. }));
    let rec = get_authorization(&w.state, &id).unwrap().unwrap();
    assert_eq!((rec.id, rec.owner.as_str(), rec.grantee.clone()), (id, "city", tech()));
    assert!(rec.covers(&a.id, "reboot") && !rec.covers(&t.id, "reboot"));
    for s in [
        AuditSubject::Device(a.id),
        AuditSubject::Device(b.id),
        AuditSubject::Org("city".into()),
        AuditSubject::Org("tech".into()),
    ] {
        assert_eq!(w.trail(&s), ["authorization"], "{s:?}");
    }
    assert!(w.trail(&AuditSubject::Device(t.id)).is_empty());

    // A revoked device cannot be authorized.
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: b.id,
        reason: RevokeReason::Compromised,
    });
    w.apply(&w.tx("city", revoke)).unwrap();
    let p = authorize(&w, tech(), vec![b.id], &["diagnostic"]);
    w.refuse("city", p, "device_revoked");
}

#[test]
fn only_the_owner_revokes_once() {
    let (mut w, a, _, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["diagnostic"]));
    let revoke = |id| Payload::RevokeAuthorization(RevokeAuthorization { authorization: id });
    w.refuse("city", revoke(TxHash([9; 32])), "unknown_authorization");
    w.refuse("town", revoke(id), "not_authorization_owner");
    w.refuse("tech", revoke(id), "not_authorization_owner");
    let (_, event) = w.ok("city", revoke(id));
    assert_eq!(event, CommandEvent::AuthorizationRevoked { id });
    assert!(get_authorization(&w.state, &id).unwrap().unwrap().revoked.is_some());
    w.refuse("city", revoke(id), "authorization_revoked");
    assert_eq!(
        w.trail(&AuditSubject::Device(a.id)),
        ["authorization", "authorization-revoked"]
    );
    // A revoked authorization records no command.
    w.refuse("tech", record(id, a.id, 1, "diagnostic"), "authorization_revoked");
}

#[test]
fn record_command_needs_an_active_covering_authorization() {
    let (mut w, a, b, t) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["diagnostic"]));
    w.refuse(
        "tech",
        record(TxHash([9; 32]), a.id, 1, "diagnostic"),
        "unknown_authorization",
    );
    w.refuse("town", record(id, a.id, 1, "diagnostic"), "not_grantee");
    w.refuse("tech", record(id, b.id, 1, "diagnostic"), "device_not_covered");
    w.refuse("tech", record(id, t.id, 1, "diagnostic"), "device_not_covered");
    w.refuse("tech", record(id, a.id, 1, "reboot"), "action_not_allowed");

    let (_, event) = w.ok("tech", record(id, a.id, 1, "diagnostic"));
    assert!(matches!(event, CommandEvent::CommandRecorded { .. }));
    let cmd = w.command(&[1; 32]);
    assert_eq!((cmd.org.as_deref(), cmd.receipt.clone()), (Some("tech"), None));
    let dc = device_commands(&w.state, &a.id).unwrap();
    assert_eq!((dc.commands, dc.pending.len()), (1, 1));
    w.refuse("tech", record(id, a.id, 1, "diagnostic"), "command_exists");
    assert_eq!(w.trail(&AuditSubject::Org("tech".into())), ["authorization", "command"]);

    // Expiry is block time: an authorization for 2 s lapses two blocks later.
    let mut short = authorize(&w, tech(), vec![a.id], &["diagnostic"]);
    if let Payload::Authorize(x) = &mut short {
        x.expires_ms = w.now_ms() + 1500;
    }
    let (brief, _) = w.ok("city", short);
    w.apply(&w.tx("tech", record(id, a.id, 2, "diagnostic"))).unwrap();
    w.refuse("tech", record(brief, a.id, 3, "diagnostic"), "authorization_expired");
}

#[test]
fn receipts_verify_under_the_device_key_and_clear_pending_commands() {
    let (mut w, a, b, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id, b.id], &["diagnostic"]));
    w.ok("tech", record(id, a.id, 1, "diagnostic"));
    let r = receipt(&a, id, 1, "diagnostic", Outcome::Accepted);
    // Signed by another device's key, or by the grantee: refused.
    w.refuse("tech", submit(&r, &b.key), "bad_receipt_signature");
    w.refuse("tech", submit(&r, &p256_key(77)), "bad_receipt_signature");
    let garbage = Payload::AccessReceipt(AccessReceipt {
        receipt: vec![0xd2, 0x84],
    });
    w.refuse("tech", garbage, "malformed_receipt");

    let (hash, event) = w.ok("tech", submit(&r, &a.key));
    assert!(matches!(
        event,
        CommandEvent::ReceiptCommitted {
            anomaly: None,
            outcome: Outcome::Accepted,
            ..
        }
    ));
    let cmd = w.command(&[1; 32]);
    let got = cmd.receipt.expect("receipt ref");
    assert_eq!((got.tx, got.anomaly, got.outcome), (hash, None, Outcome::Accepted));
    let dc = device_commands(&w.state, &a.id).unwrap();
    assert_eq!((dc.commands, dc.receipts, dc.anomalies, dc.pending.len()), (1, 1, 0, 0));
    assert_eq!(
        w.trail(&AuditSubject::Device(a.id)),
        ["authorization", "command", "receipt"]
    );
    assert_eq!(
        w.trail(&AuditSubject::Org("city".into())),
        ["authorization", "command", "receipt"]
    );
    // The same receipt (or another one for the same request) again: replayed.
    w.refuse("city", submit(&r, &a.key), "receipt_replayed");
    let mut again = r.clone();
    again.device_ms += 1;
    w.refuse("tech", submit(&again, &a.key), "receipt_replayed");

    // The attested Alias key signs receipts too.
    w.attest_chip(&b);
    w.ok("tech", record(id, b.id, 2, "diagnostic"));
    let rb = receipt(&b, id, 2, "diagnostic", Outcome::Accepted);
    let (_, event) = w.ok("city", submit(&rb, &b.alias_key));
    assert!(matches!(event, CommandEvent::ReceiptCommitted { anomaly: None, .. }));
}

#[test]
fn an_accepted_receipt_replaces_a_rejection_committed_first() {
    // The device ran the request, and also rejected a replayed copy of it (same request hash);
    // whoever commits the rejection first must not hide the execution.
    let (mut w, a, _, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["diagnostic"]));
    w.ok("tech", record(id, a.id, 1, "diagnostic"));
    let rejected = receipt(&a, id, 1, "diagnostic", Outcome::Rejected("replayed_token".into()));
    w.ok("city", submit(&rejected, &a.key));
    let mut other_rejection = rejected.clone();
    other_rejection.device_ms += 1;
    w.refuse("city", submit(&other_rejection, &a.key), "receipt_replayed");

    let accepted = receipt(&a, id, 1, "diagnostic", Outcome::Accepted);
    let (hash, event) = w.ok("tech", submit(&accepted, &a.key));
    assert!(matches!(
        event,
        CommandEvent::ReceiptCommitted {
            anomaly: None,
            outcome: Outcome::Accepted,
            ..
        }
    ));
    let got = w.command(&[1; 32]).receipt.expect("receipt ref");
    assert_eq!((got.tx, got.outcome), (hash, Outcome::Accepted));
    let dc = device_commands(&w.state, &a.id).unwrap();
    assert_eq!((dc.commands, dc.receipts, dc.anomalies, dc.pending.len()), (1, 2, 0, 0));
    assert_eq!(
        w.trail(&AuditSubject::Device(a.id)),
        ["authorization", "command", "receipt", "receipt"]
    );
    // Once accepted, nothing replaces it.
    w.refuse("city", submit(&rejected, &a.key), "receipt_replayed");
    let mut again = accepted.clone();
    again.device_ms += 1;
    w.refuse("tech", submit(&again, &a.key), "receipt_replayed");

    // No `RecordCommand`: the record a rejection created does not announce the request, so the
    // accepted receipt that replaces it is still flagged, and described by its own fields.
    let early = receipt(&a, id, 2, "reboot", Outcome::Rejected("malformed".into()));
    w.ok("city", submit(&early, &a.key));
    let ran = receipt(&a, id, 2, "diagnostic", Outcome::Accepted);
    let (_, event) = w.ok("tech", submit(&ran, &a.key));
    assert!(matches!(
        event,
        CommandEvent::ReceiptCommitted {
            anomaly: Some(ReceiptAnomaly::NoRecordedCommand),
            ..
        }
    ));
    let cmd = w.command(&[2; 32]);
    assert_eq!((cmd.action.as_str(), cmd.command_tx), ("diagnostic", None));
}

#[test]
fn receipts_without_proper_authorization_are_stored_and_flagged() {
    let (mut w, a, b, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["diagnostic"]));
    let (gone, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["reboot"]));
    w.ok(
        "city",
        Payload::RevokeAuthorization(RevokeAuthorization { authorization: gone }),
    );
    let cases = [
        (
            receipt(&a, TxHash([9; 32]), 1, "diagnostic", Outcome::Accepted),
            &a,
            ReceiptAnomaly::NoAuthorization,
        ),
        (
            receipt(&a, gone, 2, "reboot", Outcome::Accepted),
            &a,
            ReceiptAnomaly::AuthorizationRevoked,
        ),
        (
            receipt(&a, id, 3, "reboot", Outcome::Accepted),
            &a,
            ReceiptAnomaly::NotCovered,
        ),
        (
            receipt(&b, id, 4, "diagnostic", Outcome::Accepted),
            &b,
            ReceiptAnomaly::NotCovered,
        ),
        (
            receipt(&a, id, 5, "diagnostic", Outcome::Accepted),
            &a,
            ReceiptAnomaly::NoRecordedCommand,
        ),
    ];
    for (r, chip, want) in &cases {
        let (_, event) = w.ok("tech", submit(r, &chip.key));
        let CommandEvent::ReceiptCommitted { anomaly, .. } = event else {
            panic!("receipt event")
        };
        assert_eq!(anomaly, Some(*want), "{}", want.name());
        let cmd = w.command(&r.request_hash);
        assert_eq!(cmd.receipt.unwrap().anomaly, Some(*want));
        assert_eq!((cmd.org, cmd.command_tx), (None, None));
    }
    // A recorded command answered with a receipt naming another action: mismatch.
    w.ok("tech", record(id, a.id, 6, "diagnostic"));
    let (_, event) = w.ok("tech", submit(&receipt(&a, id, 6, "config", Outcome::Accepted), &a.key));
    assert!(matches!(
        event,
        CommandEvent::ReceiptCommitted {
            anomaly: Some(ReceiptAnomaly::CommandMismatch),
            ..
        }
    ));
    // A device that *refused* a command without authorization did right: no flag.
    let refused = receipt(&a, TxHash([8; 32]), 7, "reboot", Outcome::Rejected("not_proven".into()));
    let (_, event) = w.ok("tech", submit(&refused, &a.key));
    assert!(matches!(event, CommandEvent::ReceiptCommitted { anomaly: None, .. }));
    let dc = device_commands(&w.state, &a.id).unwrap();
    assert_eq!((dc.receipts, dc.anomalies), (6, 5));
    let trail = w.trail(&AuditSubject::Device(a.id));
    assert_eq!(trail.iter().filter(|k| *k == "receipt-anomaly").count(), 5);
    assert_eq!(trail.last().map(String::as_str), Some("receipt"));
}

#[test]
fn a_transferred_device_takes_no_commands_under_the_old_owner_and_a_revoked_one_no_receipts() {
    let (mut w, a, b, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id, b.id], &["diagnostic"]));
    let offer = Payload::OfferTransfer(OfferTransfer {
        device: a.id,
        to_org: "town".into(),
    });
    w.apply(&w.tx("city", offer)).unwrap();
    let accept = Payload::AcceptTransfer(AcceptTransfer {
        device: a.id,
        device_proof: None,
    });
    w.apply(&w.tx("town", accept)).unwrap();
    w.refuse("tech", record(id, a.id, 1, "diagnostic"), "not_device_owner");

    w.ok("tech", record(id, b.id, 2, "diagnostic"));
    let revoke = Payload::RevokeDevice(RevokeDevice {
        device: b.id,
        reason: RevokeReason::Compromised,
    });
    w.apply(&w.tx("city", revoke)).unwrap();
    let r = receipt(&b, id, 2, "diagnostic", Outcome::Accepted);
    w.refuse("tech", submit(&r, &b.key), "device_revoked");
}

#[test]
fn unanswered_commands_never_block_later_ones() {
    let (mut w, a, _, _) = scene();
    let (id, _) = w.ok("city", authorize(&w, tech(), vec![a.id], &["diagnostic"]));
    let max = chipledger_types::limits::MAX_PENDING_COMMANDS_PER_DEVICE;
    for i in 0..=max {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(i as u64).to_be_bytes());
        w.ok(
            "tech",
            Payload::RecordCommand(RecordCommand {
                authorization: id,
                device: a.id,
                request_hash: h,
                action: "diagnostic".into(),
            }),
        );
    }
    let dc = device_commands(&w.state, &a.id).unwrap();
    assert_eq!(
        (dc.commands, dc.pending.len(), dc.pending_dropped),
        (max as u64 + 1, max, 1)
    );
    assert_eq!(dc.pending[0].request_hash[7], 1, "the oldest left the list");
    assert!(get_command(&w.state, &[0; 32]).unwrap().is_some(), "its record stays");
}

#[test]
fn key_grantees_are_recorded_by_the_owner_and_org_records_decode_for_devices() {
    let (mut w, a, _, _) = scene();
    let person = chipledger_types::keys::SigningKey::ed25519_from_seed(&[42; 32]).public_key();
    let (id, _) = w.ok("city", authorize(&w, Grantee::Key(person), vec![a.id], &["diagnostic"]));
    w.refuse("tech", record(id, a.id, 1, "diagnostic"), "not_grantee");
    w.ok("city", record(id, a.id, 1, "diagnostic"));
    let key_subject = Grantee::Key(person).audit_subject();
    assert_eq!(w.trail(&key_subject), ["authorization", "command"]);

    // The device reads organisation keys with `OrgKeys`: it must decode the real record.
    let org: OrgRecord = get_org(&w.state, "tech").unwrap().unwrap();
    assert_eq!(org_record_key("tech"), org_key("tech"));
    let view = OrgKeys::from_cbor(&org.to_cbor(), Limits::STATE).unwrap();
    assert_eq!(view.name, "tech");
    let keys: Vec<_> = view.active_keys(w.height).copied().collect();
    assert_eq!(keys, vec![org.keys[0].key]);
}

//! The device's command checks (`command::verify_command`) and receipts: one test per typed
//! rejection, against real ledger state (the `state` crate's sparse Merkle tree), a quorum of
//! validator cosignatures and COSE_Sign1 requests signed with the grantee organisation's key.

mod update_fixture;

use chipledger_device::command::{
    CommandError, CommandTrust, answer_command, decode_message, sign_request, verify_command, verify_receipt,
};
use chipledger_device::key::DevicePublicKey;
use chipledger_device::update::TrustedValidator;
use chipledger_state::model::{KeyEntry, OrgRecord};
use chipledger_types::access_tx::Grantee;
use chipledger_types::cbor::Encode;
use chipledger_types::command_tx::*;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::keys::SigningKey;
use chipledger_types::tx::{Role, TxHash};
use update_fixture::{CHECKPOINT_HEIGHT, ORIGIN, OWNER, State, p256_key, validator};

const NOW_MS: u64 = 1_800_000_000_000;
const DEVICE: DeviceId = DeviceId([0x11; 20]);
const AUTHZ: TxHash = TxHash([0xa0; 32]);

fn tech_key() -> SigningKey {
    SigningKey::ed25519_from_seed(&[7; 32])
}

fn authorization(grantee: Grantee) -> AuthorizationRecord {
    AuthorizationRecord {
        id: AUTHZ,
        owner: OWNER.into(),
        grantee,
        devices: vec![DeviceId([0x01; 20]), DEVICE],
        actions: vec!["diagnostic".into(), "reboot".into()],
        expires_ms: NOW_MS + 60_000,
        purpose: "diagnostics".into(),
        created_height: 100,
        created_ms: NOW_MS - 60_000,
        revoked: None,
    }
}

fn org_record(name: &str, key: &SigningKey) -> OrgRecord {
    OrgRecord {
        name: name.into(),
        roles: vec![Role::Operator],
        keys: vec![KeyEntry {
            key: key.public_key(),
            from_height: 0,
            until_height: None,
        }],
        added_height: 0,
        removed_height: None,
    }
}

/// Ledger state, the device's trust, and a request; each test changes one thing.
struct Scene {
    state: State,
    authz: AuthorizationRecord,
    signers: usize,
    trust: CommandTrust,
    request: CommandRequest,
    key: SigningKey,
}

impl Scene {
    fn new() -> Scene {
        let mut trust = CommandTrust::new(
            ORIGIN,
            (0..4)
                .map(|i| TrustedValidator::new(validator(i).verifier().clone()))
                .collect(),
            3,
            DEVICE,
            OWNER,
        );
        trust.checkpoint_height = 100;
        Scene {
            state: State::with_filler(),
            authz: authorization(Grantee::Org("tech".into())),
            signers: 3,
            trust,
            request: CommandRequest {
                device: DEVICE,
                authorization: AUTHZ,
                action: "diagnostic".into(),
                args: b"battery".to_vec(),
                client_token: "tok-1".into(),
                issued_ms: NOW_MS,
            },
            key: tech_key(),
        }
    }

    fn proof(&self) -> AuthorizationProof {
        let mut state = self.state.clone();
        state.put(authz_key(&AUTHZ), self.authz.to_cbor());
        state.put(org_record_key("tech"), org_record("tech", &tech_key()).to_cbor());
        let validators: Vec<_> = (0..4).map(validator).collect();
        let signers: Vec<_> = validators.iter().take(self.signers).collect();
        AuthorizationProof {
            checkpoint: state.checkpoint(ORIGIN, CHECKPOINT_HEIGHT, &signers),
            authorization: state.prove(&authz_key(&AUTHZ)),
            grantee_org: Some(state.prove(&org_record_key("tech"))),
        }
    }

    fn signed(&self) -> Vec<u8> {
        sign_request(&self.request, chipledger_device::command::ledger_signer(&self.key)).unwrap()
    }

    fn verify(&self) -> Result<chipledger_device::command::VerifiedCommand, CommandError> {
        verify_command(&self.signed(), &self.proof(), &self.trust, NOW_MS)
    }

    fn code(&self) -> &'static str {
        match self.verify() {
            Ok(_) => "accepted",
            Err(e) => e.code(),
        }
    }
}

#[test]
fn an_authorized_command_verifies() {
    let s = Scene::new();
    let v = s.verify().expect("accepted");
    assert_eq!(v.request, s.request);
    assert_eq!(v.request_hash, request_hash(&s.signed()));
    assert_eq!((v.checkpoint_height, v.signers), (CHECKPOINT_HEIGHT, 3));
    assert_eq!(v.authorization, s.authz);
}

/// Every typed rejection, each from one change to an otherwise valid command.
#[test]
fn each_rejection_is_typed() {
    type Change = fn(&mut Scene);
    let cases: [(&str, Change); 14] = [
        ("no_quorum", |s| s.signers = 2),
        ("stale_checkpoint", |s| {
            s.trust.checkpoint_height = CHECKPOINT_HEIGHT + 1
        }),
        ("not_proven", |s| s.request.authorization = TxHash([0xbb; 32])),
        ("wrong_owner", |s| s.authz.owner = "town".into()),
        ("wrong_owner", |s| s.trust.owner = "town".into()),
        ("wrong_device", |s| s.request.device = DeviceId([0x01; 20])),
        ("wrong_device", |s| s.authz.devices = vec![DeviceId([0x01; 20])]),
        ("action_not_allowed", |s| s.request.action = "firmware".into()),
        ("revoked", |s| {
            s.authz.revoked = Some(AuthzRevocation {
                height: 110,
                timestamp_ms: NOW_MS - 1,
            })
        }),
        ("expired", |s| s.authz.expires_ms = NOW_MS),
        ("bad_signature", |s| s.key = SigningKey::ed25519_from_seed(&[8; 32])),
        // The proof carries the record of "tech", not of the named grantee.
        ("not_proven", |s| s.authz.grantee = Grantee::Org("other".into())),
        ("bad_signature", |s| {
            s.key = SigningKey::p256_from_bytes(&[5; 32]).unwrap();
        }),
        ("accepted", |s| {
            s.authz.grantee = Grantee::Key(SigningKey::p256_from_bytes(&[5; 32]).unwrap().public_key());
            s.key = SigningKey::p256_from_bytes(&[5; 32]).unwrap();
        }),
    ];
    for (want, change) in cases {
        let mut s = Scene::new();
        change(&mut s);
        assert_eq!(s.code(), want, "{:?}", s.verify().err());
    }
}

#[test]
fn a_forged_proof_is_not_proven() {
    let s = Scene::new();
    let mut proof = s.proof();
    let mut forged = s.authz.clone();
    forged.actions = vec!["diagnostic".into(), "firmware".into(), "reboot".into()];
    proof.authorization.value = Some(forged.to_cbor());
    let err = verify_command(&s.signed(), &proof, &s.trust, NOW_MS).unwrap_err();
    assert_eq!(err.code(), "not_proven", "{err}");
    let mut other = s.proof();
    other.grantee_org = None;
    let err = verify_command(&s.signed(), &other, &s.trust, NOW_MS).unwrap_err();
    assert_eq!(err.code(), "not_proven", "{err}");
}

#[test]
fn answers_sign_receipts_and_tokens_are_not_replayed() {
    let mut s = Scene::new();
    let device_key = p256_key(42);
    let public = DevicePublicKey::P256(*device_key.verifying_key());
    let message = CommandMessage {
        request: s.signed(),
        proof: s.proof(),
    }
    .to_cbor();
    assert_eq!(decode_message(&message).unwrap().request, s.signed());
    let reply = answer_command(&message, &mut s.trust, NOW_MS, &device_key, |cmd| {
        assert_eq!(cmd.request.args, b"battery");
        b"battery=97%".to_vec()
    })
    .unwrap();
    assert_eq!(reply.topic, accepted_topic(&DEVICE));
    let r = verify_receipt(&reply.signed, &public).expect("device-signed receipt");
    assert_eq!(r, reply.receipt);
    assert_eq!(
        (r.outcome.clone(), r.client_token.as_str()),
        (Outcome::Accepted, "tok-1")
    );
    assert_eq!((r.request_hash, r.authorization), (request_hash(&s.signed()), AUTHZ));
    assert_eq!(r.result, b"battery=97%");
    assert!(s.trust.seen("tok-1", s.request.issued_ms));
    assert_eq!(s.trust.checkpoint_height, CHECKPOINT_HEIGHT);
    // The same message again: refused, signed, on the rejected topic, token echoed.
    let again = answer_command(&message, &mut s.trust, NOW_MS, &device_key, |_| panic!("must not run")).unwrap();
    assert_eq!(again.topic, rejected_topic(&DEVICE));
    assert_eq!(again.receipt.outcome, Outcome::Rejected("replayed_token".into()));
    assert_eq!(again.receipt.client_token, "tok-1");
    assert!(verify_receipt(&again.signed, &public).is_ok());
    // Another key does not verify the receipt.
    let other = DevicePublicKey::P256(*p256_key(43).verifying_key());
    assert_eq!(
        verify_receipt(&reply.signed, &other).unwrap_err().code(),
        "bad_signature"
    );
    // Garbage gets a signed `malformed` rejection.
    let junk = answer_command(b"not cbor", &mut s.trust, NOW_MS, &device_key, |_| {
        panic!("must not run")
    })
    .unwrap();
    assert_eq!(junk.receipt.outcome, Outcome::Rejected("malformed".into()));
    assert_eq!(junk.receipt.client_token, chipledger_device::command::UNKNOWN);
}

#[test]
fn the_token_window_is_bounded_and_forgotten_requests_stay_refused() {
    let mut s = Scene::new();
    let key = p256_key(42);
    let proof = s.proof();
    let issued = |i: usize| NOW_MS - 10_000 + i as u64;
    let mut first = None;
    for i in 0..=chipledger_device::command::MAX_SEEN_CLIENT_TOKENS {
        s.request.client_token = format!("t{i}");
        s.request.issued_ms = issued(i);
        let message = CommandMessage {
            request: s.signed(),
            proof: proof.clone(),
        }
        .to_cbor();
        first.get_or_insert_with(|| message.clone());
        let reply = answer_command(&message, &mut s.trust, NOW_MS, &key, |_| Vec::new()).unwrap();
        assert!(reply.receipt.outcome.is_accepted());
    }
    // t0's token is forgotten, but its request is older than the floor: a replay is refused.
    assert!(
        s.trust.seen_tokens().iter().all(|(t, _)| t != "t0"),
        "the oldest token is forgotten"
    );
    assert_eq!(s.trust.issued_floor_ms(), issued(0));
    assert!(s.trust.seen("t0", issued(0)), "a forgotten request stays refused");
    assert!(s.trust.seen("t1", issued(1)));
    assert!(!s.trust.seen("fresh", issued(1000)));
    let replay = answer_command(first.as_ref().unwrap(), &mut s.trust, NOW_MS, &key, |_| Vec::new()).unwrap();
    assert_eq!(replay.receipt.outcome, Outcome::Rejected("replayed_token".into()));

    let saved = s.trust.seen_tokens().to_vec();
    assert_eq!(saved.len(), chipledger_device::command::MAX_SEEN_CLIENT_TOKENS);
    let mut rebooted = Scene::new().trust;
    rebooted.restore_tokens(
        [vec![("old".to_string(), issued(0) + 5)], saved].concat(),
        s.trust.issued_floor_ms(),
    );
    assert!(rebooted.seen("t1", issued(1)), "restored tokens are remembered");
    assert_eq!(
        rebooted.issued_floor_ms(),
        issued(0) + 5,
        "a dropped token raises the floor"
    );
    assert!(rebooted.seen("old", issued(0) + 5) && !rebooted.seen("new", issued(2000)));
}

//! The committed seeds are valid where they should be: each verifier target starts from inputs
//! its verifier accepts under the fixture keys (else the fuzzer would start shallow).

use std::fs;
use std::path::Path;

use chipledger_device::cert::verify_chain;
use chipledger_device::command::{decode_message, verify_command};
use chipledger_device::eat::verify_eat;
use chipledger_device::record::verify_record;
use chipledger_device::suit::verify_envelope;
use chipledger_device::update::{UpdateBundle, verify_update};
use chipledger_fuzz::fixture::{self, COMMAND_NOW_MS, EAT_NONCE, NOW_UNIX_S, ORIGIN};
use chipledger_fuzz::notes::{QUORUM, TLOG_LEAF};
use chipledger_fuzz::split_framed;
use chipledger_types::merkle::hash_leaf;
use chipledger_types::note::NoteLimits;
use chipledger_types::tlog_proof::TlogProof;
use chipledger_zk::{Commitment, verify_bounds};

fn seed(target: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
        .join(format!("seed-{name}"));
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn update_and_command_seeds_verify() {
    let bundle = UpdateBundle::from_bytes(&seed("update", "bundle")).expect("bundle");
    let (_, trust) = fixture::world();
    verify_update(&bundle, &fixture::update_fixture::image(), trust).expect("bundle verifies");
    let message = decode_message(&seed("command", "message")).expect("message");
    let trust = fixture::command_trust();
    verify_command(&message.request, &message.proof, &trust, COMMAND_NOW_MS).expect("command verifies");
}

#[test]
fn chip_seeds_verify() {
    for (i, chip) in fixture::fleet().chips.iter().enumerate() {
        let chain = seed("x509", &format!("chain-chip{i}"));
        let [ca, deviceid, alias] = split_framed(&chain, 3)[..] else {
            panic!("three parts")
        };
        verify_chain(ca, deviceid, alias, Some(NOW_UNIX_S)).expect("chain verifies");
        let key = &chip.layer.alias_public_key;
        verify_eat(&seed("eat", &format!("eat-chip{i}")), *key, EAT_NONCE).expect("EAT verifies");
        verify_record(&seed("record", &format!("chip{i}-seq1")), key).expect("record verifies");
    }
}

#[test]
fn proof_seeds_verify() {
    let publisher = *fixture::world().0.publisher.verifying_key();
    verify_envelope(&seed("suit", "release"), &publisher).expect("envelope verifies");
    let text = String::from_utf8(seed("tlog_proof", "inclusion")).expect("text");
    let proof = TlogProof::parse(&text, &NoteLimits::default()).expect("tlog-proof");
    let known = fixture::validator_keys();
    proof
        .verify(&hash_leaf(TLOG_LEAF), ORIGIN, &known, QUORUM, &NoteLimits::default())
        .expect("tlog-proof verifies");
    for name in ["8-bit", "32-bit"] {
        let data = seed("range_proof", name);
        let (header, proof) = data.split_at(chipledger_fuzz::zk::HEADER_BYTES);
        let commitment = Commitment(header[..32].try_into().expect("32 bytes"));
        let min = u64::from_be_bytes(header[32..40].try_into().expect("8 bytes"));
        let max = u64::from_be_bytes(header[40..48].try_into().expect("8 bytes"));
        verify_bounds(&commitment, min, max, header[48], proof).expect("range proof verifies");
    }
}

//! The device SDK's verifiers, each as the ledger (`state`) or a device calls it: COSE_Sign1 and
//! encryption at source, SUIT envelopes, EAT evidence and accept-transfer proofs, the X.509
//! DICE chain, authorized commands and their receipts, update bundles.

use chipledger_device::cert::{decode_tcb_info, verify_ca, verify_chain, verify_deviceid};
use chipledger_device::command::{decode_message, peek_receipt, verify_command, verify_receipt};
use chipledger_device::cose::verify_sign1;
use chipledger_device::eat::{decode_claims, verify_cose_sign1, verify_eat};
use chipledger_device::ledger::AcceptTransferProof;
use chipledger_device::reading::{decode_unverified, verify_reading_commitment};
use chipledger_device::seal::{EpochKey, open_encrypt0, unwrap_epoch_key};
use chipledger_device::suit::{decode_envelope_unverified, verify_envelope};
use chipledger_device::update::{UpdateBundle, ValidatorSetProof, apply_validator_update, verify_update};
use chipledger_types::cbor::Encode;
use chipledger_types::zk_tx::ReadingCommitment;

use crate::fixture::{self, COMMAND_NOW_MS, EAT_NONCE, NOW_UNIX_S};
use crate::split_framed;

/// The epoch key the encryption seeds use.
pub const EPOCH_KEY: [u8; 16] = [0x42; 16];
/// The scalar of the owner key the key-wrap seeds are wrapped to.
pub const OWNER_KEY_SEED: u8 = 20;

/// `chipledger cose verify`, the ledger's evidence check, and the owner opening data: COSE_Sign1
/// under every chip key (never under unused keys), COSE_Encrypt0 and the epoch-key wrap.
pub fn cose(data: &[u8]) {
    for key in fixture::device_keys() {
        let general = verify_sign1(data, &key, b"");
        let evidence = verify_cose_sign1(data, &key);
        if let (Ok(g), Ok(e)) = (&general, &evidence) {
            assert_eq!(&g.payload, e, "two COSE_Sign1 verifiers disagree on the payload");
        }
    }
    for key in fixture::unused_device_keys() {
        assert!(
            verify_sign1(data, &key, b"").is_err(),
            "COSE_Sign1 verified under an unused key"
        );
        assert!(
            verify_cose_sign1(data, &key).is_err(),
            "COSE_Sign1 verified under an unused key"
        );
    }
    let _ = open_encrypt0(data, &EpochKey::from_bytes(EPOCH_KEY), b"");
    let owner = p256::SecretKey::from_bytes(&fixture::p256_key(OWNER_KEY_SEED).to_bytes()).expect("owner key");
    let _ = unwrap_epoch_key(data, &owner);
}

/// Firmware envelopes as the ledger checks a `PublishRelease` and a device an update: verified
/// under the fixture publisher key, decoded for display; both agree.
pub fn suit(data: &[u8]) {
    let publisher = *fixture::world().0.publisher.verifying_key();
    let unverified = decode_envelope_unverified(data);
    if let Ok(manifest) = verify_envelope(data, &publisher) {
        assert_eq!(
            unverified.as_ref(),
            Ok(&manifest),
            "verified and display decodings differ"
        );
    }
    assert!(
        verify_envelope(data, fixture::p256_key(0xee).verifying_key()).is_err(),
        "SUIT under an unused key"
    );
}

/// EAT evidence and the other device-signed statements the ledger reads: accept-transfer
/// proofs and reading commitments; payload decoders round-trip.
pub fn eat(data: &[u8]) {
    for chip in &fixture::fleet().chips {
        if let Ok(claims) = verify_eat(data, chip.layer.alias_public_key, EAT_NONCE) {
            assert!(claims.validate().is_ok(), "verified claims break a claim rule");
            assert_eq!(claims.nonce, EAT_NONCE);
        }
        if let Ok(payload) = verify_cose_sign1(data, &fixture::deviceid_key(chip))
            && let Ok(proof) = AcceptTransferProof::from_payload(&payload)
        {
            assert_eq!(
                proof.device_id,
                chip.chip.device_id(),
                "a proof signed by another device's key"
            );
        }
    }
    for key in fixture::device_keys() {
        if let Ok(reading) = verify_reading_commitment(data, &key) {
            assert_eq!(
                decode_unverified(data).as_ref(),
                Ok(&reading),
                "verified and unverified readings differ"
            );
        }
    }
    if let Ok(claims) = decode_claims(data) {
        assert!(claims.validate().is_ok(), "decoded claims break a claim rule");
    }
    if let Ok(proof) = AcceptTransferProof::from_payload(data) {
        assert_eq!(proof.to_payload(), data, "accept-transfer payload round trip");
    }
    if let Ok(reading) = ReadingCommitment::from_payload(data) {
        assert_eq!(reading.to_payload(), data, "reading payload round trip");
    }
    let _ = decode_unverified(data);
}

/// `CA ‖ DeviceID ‖ Alias` (2-byte length framing): what `RegisterCa`, `RegisterDevice` and
/// `Attest` check. A chain verifies only under the fixture CA, with one of its chips' keys.
pub fn x509(data: &[u8]) {
    let parts = split_framed(data, 3);
    let fleet = fixture::fleet();
    let (ca, deviceid, alias) = match parts.as_slice() {
        [ca, deviceid, alias] => (*ca, *deviceid, *alias),
        _ => (data, data, data),
    };
    if let Ok(key) = verify_ca(ca, Some(NOW_UNIX_S)) {
        assert_eq!(
            &key,
            fleet.ca_key.verifying_key(),
            "a CA certificate nobody issued verified"
        );
    }
    let deviceid_keys: Vec<_> = fleet.chips.iter().map(fixture::deviceid_key).collect();
    if let Ok(key) = verify_deviceid(ca, deviceid, Some(NOW_UNIX_S)) {
        assert!(
            deviceid_keys.contains(&key),
            "a DeviceID certificate nobody issued verified"
        );
    }
    if let Ok(chain) = verify_chain(ca, deviceid, alias, Some(NOW_UNIX_S)) {
        assert!(
            deviceid_keys.contains(&chain.deviceid_public_key),
            "a forged chain verified"
        );
    }
    let _ = verify_chain(ca, deviceid, alias, None);
    let _ = decode_tcb_info(data);
}

/// A command message as a device receives it over MQTT (`decode_message` → `verify_command`),
/// and a receipt as the ledger checks it (`RecordCommand`).
pub fn command(data: &[u8]) {
    if let Ok(message) = decode_message(data) {
        assert_eq!(message.to_cbor(), data, "a command message re-encodes to its own bytes");
        let trust = fixture::command_trust();
        if let Ok(verified) = verify_command(&message.request, &message.proof, &trust, COMMAND_NOW_MS) {
            assert_eq!(
                verified.request.device,
                fixture::COMMAND_DEVICE,
                "a command for another device"
            );
            assert_eq!(
                verified.authorization.owner, trust.owner,
                "an authorization by another owner"
            );
        }
    }
    let _ = peek_receipt(data);
    for key in fixture::device_keys() {
        let _ = verify_receipt(data, &key);
    }
    for key in fixture::unused_device_keys() {
        assert!(
            verify_receipt(data, &key).is_err(),
            "a receipt verified under an unused key"
        );
    }
}

/// An update bundle as a device downloads it (`/v1/firmware/releases/{id}/bundle`): decode,
/// round trip, `verify_update` under the fixture trust; and validator-set proofs.
pub fn update(data: &[u8]) {
    let (world, trust) = fixture::world();
    if let Ok(bundle) = UpdateBundle::from_bytes(data) {
        assert_eq!(bundle.to_bytes(), data, "an update bundle re-encodes to its own bytes");
        let image = fixture::update_fixture::image();
        if let Ok(verified) = verify_update(&bundle, &image, trust) {
            assert_eq!(
                verified.release_id, world.id.0,
                "an update for a release the ledger never held"
            );
        }
    }
    if let Ok(proof) = ValidatorSetProof::from_bytes(data) {
        assert_eq!(
            proof.to_bytes(),
            data,
            "a validator-set proof re-encodes to its own bytes"
        );
        let mut trust = trust.clone();
        let before = trust.clone();
        if apply_validator_update(&mut trust, &proof).is_err() {
            assert_eq!(trust, before, "a refused validator-set change altered the trust");
        }
    }
}

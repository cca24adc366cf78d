//! Data records end to end on the device side: signing (ES256 and EdDSA), frozen bytes, strict
//! verification (truncations, bit flips, high-S, wrong algorithm), COSE interoperability, the
//! chain checker on real signed records, and encryption at source with epoch rotation — the
//! device holding only the current epoch's key — and the owner decrypting.

use chipledger_device::key::{DevicePublicKey, DeviceSigner};
use chipledger_device::record::{
    ChainAnomaly, ChainState, Record, RecordAlg, RecordChainWriter, RecordError, RecordHash, STREAM_EPOCH_KEYS,
    record_hash, sign_record, verify_record,
};
use chipledger_device::seal::{
    EpochEntropy, EpochPolicy, SealError, SealingState, open_payload, owner_key_id, unwrap_epoch_key,
};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_RECORD_BYTES;

const DEVICE: DeviceId = DeviceId([0x11; 20]);

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
}

fn ed_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
}

fn sample() -> Record {
    Record {
        device: DEVICE,
        stream: "temperature".into(),
        seq: 1,
        prev: RecordHash::ZERO,
        timestamp_ms: 1_764_000_000_000,
        epoch: 3,
        payload: vec![0xd0, 0x83, 0x40, 0xa0, 0x41, 0x00],
    }
}

/// Frozen record bytes: a change of the record format (body, framing, signature input) shows
/// here. Both algorithms sign deterministically (RFC 6979 with low-S normalisation; RFC 8032).
const FROZEN_ES256: &str = concat!(
    "d28443a10126a0586b8874636869706c65646765722f7265636f72642f763154111111111111111111111111111111",
    "11111111116b74656d706572617475726501582000000000000000000000000000000000000000000000000000000000",
    "000000001b0000019ab697e8000346d08340a041005840e1096a334092dcc2c2619269eaa97e1f06b61ae5f65703afb3",
    "7400cb3d2ce6686a79b55111af93e3a12beda495353862941787ac82b1aa635ce804225394ee43",
);
const FROZEN_EDDSA: &str = concat!(
    "d28443a10127a0586b8874636869706c65646765722f7265636f72642f763154111111111111111111111111111111",
    "11111111116b74656d706572617475726501582000000000000000000000000000000000000000000000000000000000",
    "000000001b0000019ab697e8000346d08340a0410058406ac54d56ad15dbb99b87e5fe1afc88ecc65b09f2c955117e53",
    "8d8921f53cccb95290e0c94a71b0cbac3673d0b5d1ab20f1e44a5df405f12b4f25016c716e3900",
);

#[test]
fn record_bytes_are_frozen_for_both_algorithms() {
    let es = sign_record(&sample(), &p256_key()).unwrap();
    let ed = sign_record(&sample(), &ed_key()).unwrap();
    assert_eq!(hex::encode(&es.bytes), FROZEN_ES256);
    assert_eq!(hex::encode(&ed.bytes), FROZEN_EDDSA);
    assert_eq!(es.hash, record_hash(&es.bytes));
}

fn signers() -> Vec<(p256::ecdsa::SigningKey, ed25519_dalek::SigningKey)> {
    vec![(p256_key(), ed_key())]
}

#[test]
fn round_trip_and_coset_interoperability() {
    for (p, e) in signers() {
        for signer in [DeviceSigner::from(&p), DeviceSigner::from(&e)] {
            let signed = sign_record(&sample(), signer).unwrap();
            let public = signer.public_key();
            assert_eq!(verify_record(&signed.bytes, &public).unwrap(), sample());
            // Any COSE library reads it: coset parses the tagged COSE_Sign1 and the signature
            // verifies over coset's own Sig_structure.
            let sign1 = <coset::CoseSign1 as coset::TaggedCborSerializable>::from_tagged_slice(&signed.bytes).unwrap();
            sign1
                .verify_signature(b"", |sig, tbs| {
                    let sig = chipledger_device::key::DeviceSignature::from_slice(signer.alg(), sig)?;
                    public.verify(tbs, &sig)
                })
                .unwrap();
            assert_eq!(sign1.payload.unwrap(), sample().encode_body());
        }
    }
}

#[test]
fn every_truncation_and_bit_flip_is_rejected_without_panic() {
    for (p, e) in signers() {
        for signer in [DeviceSigner::from(&p), DeviceSigner::from(&e)] {
            let signed = sign_record(&sample(), signer).unwrap().bytes;
            let public = signer.public_key();
            for cut in 0..signed.len() {
                assert!(verify_record(&signed[..cut], &public).is_err(), "cut {cut}");
            }
            for i in 0..signed.len() {
                for bit in 0..8 {
                    let mut bad = signed.clone();
                    bad[i] ^= 1 << bit;
                    assert!(
                        verify_record(&bad, &public).is_err(),
                        "{:?} byte {i} bit {bit}",
                        signer.alg()
                    );
                }
            }
        }
    }
}

#[test]
fn high_s_copy_of_an_es256_record_is_refused() {
    let signed = sign_record(&sample(), &p256_key()).unwrap().bytes;
    let sig_at = signed.len() - 64;
    let sig = p256::ecdsa::Signature::from_slice(&signed[sig_at..]).unwrap();
    assert_eq!(sig.normalize_s(), sig, "we emit low-S");
    // (r, n - s) verifies as plain ECDSA but is a second encoding of the same record.
    let (r, s) = sig.split_scalars();
    let high = p256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    let mut malleated = signed.clone();
    malleated[sig_at..].copy_from_slice(&high.to_bytes());
    assert_eq!(
        verify_record(&malleated, &p256_key().verifying_key().into()),
        Err(RecordError::HighS)
    );
}

#[test]
fn algorithm_key_and_size_are_checked() {
    let es = sign_record(&sample(), &p256_key()).unwrap().bytes;
    let ed_public: DevicePublicKey = ed_key().verifying_key().into();
    assert_eq!(
        verify_record(&es, &ed_public),
        Err(RecordError::AlgorithmMismatch {
            record: RecordAlg::Es256,
            key: RecordAlg::EdDsa
        })
    );
    let other = p256::ecdsa::SigningKey::from_bytes(&[8u8; 32].into()).unwrap();
    assert_eq!(
        verify_record(&es, &other.verifying_key().into()),
        Err(RecordError::BadSignature)
    );
    let big = Record {
        payload: vec![0; MAX_RECORD_BYTES],
        ..sample()
    };
    assert!(matches!(
        sign_record(&big, &p256_key()),
        Err(RecordError::InvalidField { field: "payload", .. })
    ));
    let huge = vec![0xd2; MAX_RECORD_BYTES + 1];
    assert!(matches!(
        verify_record(&huge, &ed_public),
        Err(RecordError::TooLarge { .. })
    ));
}

#[test]
fn chain_writer_and_checker_agree_and_catch_a_fork() {
    let key = ed_key();
    let public: DevicePublicKey = key.verifying_key().into();
    let mut writer = RecordChainWriter::new(DEVICE, "door").unwrap();
    let mut chain = ChainState::new();
    let mut signed = Vec::new();
    for i in 0..5u64 {
        let (_, s) = writer.sign_next(&key, 1000 + i, 0, vec![0xd0, i as u8]).unwrap();
        let record = verify_record(&s.bytes, &public).unwrap();
        assert_eq!(chain.check(&record, s.hash), Ok(()));
        signed.push(s);
    }
    assert_eq!(writer.next_seq(), 6);
    // A second writer that forked after seq 3 (e.g. a cloned device or restored state).
    let mut clone = RecordChainWriter::resume(DEVICE, "door", 4, signed[2].hash).unwrap();
    let (_, forked) = clone.sign_next(&key, 9999, 0, vec![0xd0, 0xff]).unwrap();
    let record = verify_record(&forked.bytes, &public).unwrap();
    assert_eq!(
        chain.check(&record, forked.hash),
        Err(ChainAnomaly::Fork {
            seq: 4,
            accepted: signed[3].hash,
            conflicting: forked.hash
        })
    );
    let again = verify_record(&signed[1].bytes, &public).unwrap();
    assert_eq!(
        chain.check(&again, signed[1].hash),
        Err(ChainAnomaly::Duplicate { seq: 2 })
    );
}

/// A deterministic entropy source for tests (a device uses its hardware RNG).
fn entropy(n: u8) -> EpochEntropy {
    EpochEntropy {
        data_key: [n; 16],
        ephemeral_secret: [n.wrapping_add(100); 32],
    }
}

fn owner() -> p256::SecretKey {
    p256::SecretKey::from_slice(&[0x42; 32]).unwrap()
}

#[test]
fn sealed_records_open_for_the_owner_across_epochs() {
    let alias = p256_key();
    let public: DevicePublicKey = alias.verifying_key().into();
    let policy = EpochPolicy {
        records_max: 3,
        duration_ms: 60_000,
    };
    let mut sealing = SealingState::new(DEVICE, owner().public_key(), policy, 1);
    let mut keys_stream = RecordChainWriter::new(DEVICE, STREAM_EPOCH_KEYS).unwrap();
    let mut data = RecordChainWriter::new(DEVICE, "temperature").unwrap();
    let mut published = Vec::new(); // (stream, bytes) as a gateway would store them
    let mut now = 1_000u64;
    for i in 0..7u8 {
        if sealing.needs_rotation(now) {
            let start = sealing.rotate(now, entropy(i)).unwrap();
            let (_, s) = keys_stream.sign_next(&alias, now, start.epoch, start.wrap).unwrap();
            published.push(s.bytes);
        }
        let reading = [b'T', i];
        let (epoch, payload) = sealing.seal(now, data.stream(), data.next_seq(), &reading).unwrap();
        let (_, s) = data.sign_next(&alias, now, epoch, payload).unwrap();
        published.push(s.bytes);
        now += 10;
    }
    // 7 records at 3 per epoch: epochs 1, 2, 3.
    assert_eq!(sealing.held_epoch(), Some(3));

    // The owner: verify every record, unwrap each epoch key, open each payload.
    let mut keys = std::collections::BTreeMap::new();
    let mut readings = Vec::new();
    for bytes in &published {
        let record = verify_record(bytes, &public).unwrap();
        if record.stream == STREAM_EPOCH_KEYS {
            let grant = unwrap_epoch_key(&record.payload, &owner()).unwrap();
            assert_eq!((grant.device, grant.epoch), (DEVICE, record.epoch));
            keys.insert(grant.epoch, grant.key);
        } else {
            readings.push(open_payload(&record, &keys[&record.epoch]).unwrap());
        }
    }
    assert_eq!(keys.len(), 3);
    let want: Vec<Vec<u8>> = (0..7u8).map(|i| vec![b'T', i]).collect();
    assert_eq!(readings, want);
}

#[test]
fn rotation_drops_the_previous_key_and_is_due_by_time_or_count() {
    let policy = EpochPolicy {
        records_max: 2,
        duration_ms: 1_000,
    };
    let mut sealing = SealingState::new(DEVICE, owner().public_key(), policy, 7);
    assert_eq!(sealing.held_epoch(), None);
    assert_eq!(sealing.seal(0, "s", 1, b"x"), Err(SealError::RotationDue));
    let first = sealing.rotate(0, entropy(1)).unwrap();
    assert_eq!((first.epoch, sealing.held_epoch()), (7, Some(7)));
    let (epoch, old_payload) = sealing.seal(10, "s", 1, b"x").unwrap();
    assert_eq!(epoch, 7);
    assert!(!sealing.needs_rotation(999));
    assert!(sealing.needs_rotation(1_000), "by time");
    sealing.seal(20, "s", 2, b"y").unwrap();
    assert!(sealing.needs_rotation(30), "by count");
    assert_eq!(sealing.seal(30, "s", 3, b"z"), Err(SealError::RotationDue));

    let second = sealing.rotate(30, entropy(2)).unwrap();
    // The device now holds epoch 8's key only: nothing it can do decrypts epoch 7 any more,
    // and what it seals now is under the new key.
    assert_eq!((second.epoch, sealing.held_epoch()), (8, Some(8)));
    let (epoch, new_payload) = sealing.seal(40, "s", 3, b"z").unwrap();
    assert_eq!(epoch, 8);
    let k7 = unwrap_epoch_key(&first.wrap, &owner()).unwrap().key;
    let k8 = unwrap_epoch_key(&second.wrap, &owner()).unwrap().key;
    assert_ne!(k7, k8);
    let rec = |seq, epoch, payload| Record {
        stream: "s".into(),
        seq,
        epoch,
        prev: if seq == 1 {
            RecordHash::ZERO
        } else {
            RecordHash([1; 32])
        },
        payload,
        ..sample()
    };
    assert_eq!(open_payload(&rec(1, 7, old_payload.clone()), &k7).unwrap(), b"x");
    assert_eq!(open_payload(&rec(3, 8, new_payload.clone()), &k8).unwrap(), b"z");
    assert_eq!(
        open_payload(&rec(3, 8, new_payload), &k7),
        Err(SealError::DecryptFailed)
    );
    // The payload is bound to its record: moved to another seq it does not open.
    assert_eq!(
        open_payload(&rec(2, 7, old_payload), &k7),
        Err(SealError::DecryptFailed)
    );
}

#[test]
fn key_wrap_messages_are_for_the_owner_only_and_tamper_evident() {
    let mut sealing = SealingState::new(DEVICE, owner().public_key(), EpochPolicy::default(), 1);
    let start = sealing.rotate(5, entropy(9)).unwrap();
    let grant = unwrap_epoch_key(&start.wrap, &owner()).unwrap();
    assert_eq!((grant.device, grant.epoch, grant.started_ms), (DEVICE, 1, 5));
    let kid = owner_key_id(&owner().public_key());
    assert!(
        start.wrap.windows(8).any(|w| w == kid),
        "recipient kid names the owner key"
    );
    let stranger = p256::SecretKey::from_slice(&[0x43; 32]).unwrap();
    assert_eq!(unwrap_epoch_key(&start.wrap, &stranger), Err(SealError::UnwrapFailed));
    // The recipient `kid` is an unprotected hint (RFC 9052 §3.1): changing it changes nothing
    // that unwrapping depends on. Every other byte is covered by the AEAD, the KDF or the key.
    let kid_at = start.wrap.windows(8).position(|w| w == kid).unwrap();
    for i in (0..start.wrap.len()).filter(|i| !(kid_at..kid_at + 8).contains(i)) {
        let mut bad = start.wrap.clone();
        bad[i] ^= 0x01;
        assert!(unwrap_epoch_key(&bad, &owner()).is_err(), "byte {i}");
    }
    for cut in 0..start.wrap.len() {
        assert!(unwrap_epoch_key(&start.wrap[..cut], &owner()).is_err());
    }
}

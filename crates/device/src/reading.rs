//! A device's signed commitment to one reading (issue 6, range proofs): a tagged COSE_Sign1
//! (ES256 for a P-256 key, EdDSA for Ed25519; empty external AAD) over the canonical payload of
//! [`chipledger_types::zk_tx::ReadingCommitment`], whose first element is the tag
//! `chipledger/reading-commitment/v1`. The device signs with its DeviceID key, or with the Alias
//! key of its attested firmware; the ledger accepts either (`chipledger-state`, module `zk`).

use alloc::vec::Vec;

use chipledger_types::zk_tx::ReadingCommitment;
use coset::{CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

use crate::eat::{EatError, cose_algorithm, verify_cose_sign1};
use crate::key::{DevicePublicKey, DeviceSigner};

/// Largest signed reading commitment (the ledger's `MAX_READING_STATEMENT_BYTES`).
pub const MAX_READING_STATEMENT_BYTES: usize = chipledger_types::limits::MAX_READING_STATEMENT_BYTES;

/// Sign `reading` with a device key (a P-256 or Ed25519 `SigningKey`, a [`crate::dice::KeyPair`]
/// or a [`DeviceSigner`]).
pub fn sign_reading_commitment<'k>(
    reading: &ReadingCommitment,
    key: impl Into<DeviceSigner<'k>>,
) -> Result<Vec<u8>, EatError> {
    let key = key.into();
    let protected = HeaderBuilder::new().algorithm(cose_algorithm(key.alg())).build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(reading.to_payload())
        .create_signature(b"", |tbs| key.sign(tbs).to_bytes().to_vec())
        .build();
    let token = sign1
        .to_tagged_vec()
        .map_err(|_| EatError::Malformed("reading commitment does not encode"))?;
    if token.len() > MAX_READING_STATEMENT_BYTES {
        return Err(EatError::TooLarge {
            len: token.len(),
            max: MAX_READING_STATEMENT_BYTES,
        });
    }
    Ok(token)
}

/// Verify a signed reading commitment under `key` and decode it. A bad signature or another
/// key is [`EatError::BadSignature`] / [`EatError::AlgorithmMismatch`]; a payload that is not a
/// reading commitment is [`EatError::Malformed`].
pub fn verify_reading_commitment(token: &[u8], key: &DevicePublicKey) -> Result<ReadingCommitment, EatError> {
    if token.len() > MAX_READING_STATEMENT_BYTES {
        return Err(EatError::TooLarge {
            len: token.len(),
            max: MAX_READING_STATEMENT_BYTES,
        });
    }
    let payload = verify_cose_sign1(token, key)?;
    ReadingCommitment::from_payload(&payload).map_err(|_| EatError::Malformed("not a chipledger reading commitment"))
}

/// Decode a signed reading commitment *without* checking its signature: the ledger reads the
/// device id from it to find the key it must verify under, then calls
/// [`verify_reading_commitment`]. Never trust its result on its own.
pub fn decode_unverified(token: &[u8]) -> Result<ReadingCommitment, EatError> {
    if token.len() > MAX_READING_STATEMENT_BYTES {
        return Err(EatError::TooLarge {
            len: token.len(),
            max: MAX_READING_STATEMENT_BYTES,
        });
    }
    let sign1 = CoseSign1::from_tagged_slice(token)
        .or_else(|_| CoseSign1::from_slice(token))
        .map_err(|_| EatError::Malformed("not a COSE_Sign1 structure"))?;
    let payload = sign1
        .payload
        .ok_or(EatError::Malformed("detached payloads are not supported"))?;
    ReadingCommitment::from_payload(&payload).map_err(|_| EatError::Malformed("not a chipledger reading commitment"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chipledger_types::device_tx::DeviceId;

    fn reading() -> ReadingCommitment {
        ReadingCommitment {
            device: DeviceId([1; 20]),
            stream: "air".into(),
            seq: 3,
            record_hash: [2; 32],
            quantity: "no2".into(),
            commitment: [3; 32],
        }
    }

    #[test]
    fn signed_commitments_verify_under_their_key_only() {
        let p256 = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let ed = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let other = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
        let p256_pub = DevicePublicKey::P256(*p256.verifying_key());
        let ed_pub = DevicePublicKey::Ed25519(ed.verifying_key());
        let other_pub = DevicePublicKey::P256(*other.verifying_key());
        let t1 = sign_reading_commitment(&reading(), &p256).unwrap();
        let t2 = sign_reading_commitment(&reading(), &ed).unwrap();
        assert_eq!(verify_reading_commitment(&t1, &p256_pub).unwrap(), reading());
        assert_eq!(decode_unverified(&t1).unwrap(), reading());
        assert_eq!(decode_unverified(&t1[1..]).unwrap(), reading(), "untagged");
        assert!(decode_unverified(&t1[..t1.len() - 1]).is_err());
        assert_eq!(verify_reading_commitment(&t2, &ed_pub).unwrap(), reading());
        assert_eq!(verify_reading_commitment(&t1, &other_pub), Err(EatError::BadSignature));
        assert!(matches!(
            verify_reading_commitment(&t2, &p256_pub),
            Err(EatError::AlgorithmMismatch { .. })
        ));
        let mut flipped = t1.clone();
        let n = flipped.len();
        flipped[n - 1] ^= 1;
        assert_eq!(
            verify_reading_commitment(&flipped, &p256_pub),
            Err(EatError::BadSignature)
        );
        for cut in 0..t1.len() {
            assert!(verify_reading_commitment(&t1[..cut], &p256_pub).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn another_signed_payload_is_not_a_reading_commitment() {
        let key = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let proof = crate::ledger::AcceptTransferProof {
            device_id: [1; 20],
            to_org: "city".into(),
            nonce: alloc::vec![1; 40],
        }
        .sign(&key)
        .unwrap();
        let public = DevicePublicKey::P256(*key.verifying_key());
        assert!(matches!(
            verify_reading_commitment(&proof, &public),
            Err(EatError::Malformed(_))
        ));
    }
}

//! What a chip says to the ledger beyond its EAT: the encodings of its `ueid` and `hwmodel`
//! claims, and the proof of presence it signs with its DeviceID key when an organisation
//! accepts it in a transfer. The ledger's rules (`chipledger-state`, module `device`) check
//! exactly these encodings, so both sides use the functions below.
//!
//! - **ueid** (RFC 9711 §4.2.1): type byte `0x01` (RAND) followed by the 20-byte device id, the
//!   open-dice ID of the DeviceID public key ([`crate::dice::derive_id`], a KDF output over the
//!   key — RFC 9711 allows a RAND UEID built by hashing identifiers). 21 bytes.
//! - **hwmodel** (RFC 9711 §4.2.4): the hardware model number (product ID) the manufacturer
//!   registered the device with, as 4 bytes big-endian.
//! - **Accept-transfer proof**: a tagged COSE_Sign1 (ES256 for a P-256 DeviceID key, EdDSA for
//!   an Ed25519 one; empty external AAD) by the DeviceID key over the canonical CBOR array
//!   `[TAG_ACCEPT_TRANSFER_V1, device id (bstr 20), accepting org (tstr), nonce (bstr)]`, where
//!   the nonce is the device's current ledger challenge (the one an EAT would carry). The tag
//!   names what is signed, so the proof can never be mistaken for an EAT or a record.

use alloc::string::String;
use alloc::vec::Vec;

use chipledger_types::cbor::{Decoder, Encoder, Limits};
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

use crate::dice::ID_SIZE;
use crate::eat::{EatError, MAX_EAT_BYTES, NONCE_BYTES_MAX, cose_algorithm};
use crate::key::DeviceSigner;

/// Domain-separation tag, the first element of the accept-transfer proof payload.
pub const TAG_ACCEPT_TRANSFER_V1: &str = "chipledger/accept-transfer/v1";
/// The UEID type byte for RAND (RFC 9711 §4.2.1.1).
pub const UEID_TYPE_RAND: u8 = 0x01;
/// Length of our `ueid`: type byte + device id.
pub const UEID_BYTES: usize = 1 + ID_SIZE;
/// Longest organisation name a proof may carry (the ledger's `MAX_NAME_BYTES`).
pub const MAX_ORG_BYTES: usize = chipledger_types::limits::MAX_NAME_BYTES;
/// Largest accept-transfer payload we decode.
const MAX_PROOF_PAYLOAD_BYTES: usize = 256;

/// The `ueid` claim of the device with this id.
pub fn ueid_of(device_id: &[u8; ID_SIZE]) -> [u8; UEID_BYTES] {
    let mut ueid = [0u8; UEID_BYTES];
    ueid[0] = UEID_TYPE_RAND;
    ueid[1..].copy_from_slice(device_id);
    ueid
}

/// The `hwmodel` claim of a device registered with hardware model number `model`.
pub fn hwmodel_of(model: u32) -> [u8; 4] {
    model.to_be_bytes()
}

/// The signed content of an accept-transfer proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptTransferProof {
    pub device_id: [u8; ID_SIZE],
    pub to_org: String,
    pub nonce: Vec<u8>,
}

impl AcceptTransferProof {
    /// The canonical CBOR payload (see the module documentation).
    pub fn to_payload(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.array(4)
            .text(TAG_ACCEPT_TRANSFER_V1)
            .bytes(&self.device_id)
            .text(&self.to_org)
            .bytes(&self.nonce);
        e.into_bytes()
    }

    /// Decode a payload made by [`AcceptTransferProof::to_payload`]; anything else (another
    /// tag, extra fields, non-canonical CBOR, oversized fields) is refused.
    pub fn from_payload(payload: &[u8]) -> Result<Self, EatError> {
        let limits = Limits {
            input_bytes_max: MAX_PROOF_PAYLOAD_BYTES,
            string_bytes_max: MAX_PROOF_PAYLOAD_BYTES,
            array_items_max: 4,
            depth_max: 1,
        };
        let malformed = |_| EatError::Malformed("not a chipledger accept-transfer proof payload");
        let mut d = Decoder::new(payload, limits).map_err(malformed)?;
        d.array_of(4).map_err(malformed)?;
        if d.text().map_err(malformed)? != TAG_ACCEPT_TRANSFER_V1 {
            return Err(EatError::Malformed("payload tag is not chipledger/accept-transfer/v1"));
        }
        let device_id = d.fixed().map_err(malformed)?;
        let to_org = d.string().map_err(malformed)?;
        let nonce = d.bytes().map_err(malformed)?.to_vec();
        d.end();
        d.finish().map_err(malformed)?;
        let proof = AcceptTransferProof {
            device_id,
            to_org,
            nonce,
        };
        proof.validate()?;
        Ok(proof)
    }

    fn validate(&self) -> Result<(), EatError> {
        if self.to_org.is_empty() || self.to_org.len() > MAX_ORG_BYTES {
            return Err(EatError::InvalidClaim {
                claim: "to_org",
                reason: "must be 1..=MAX_ORG_BYTES bytes",
            });
        }
        if self.nonce.is_empty() || self.nonce.len() > NONCE_BYTES_MAX {
            return Err(EatError::InvalidClaim {
                claim: "nonce",
                reason: "must be 1..=64 bytes",
            });
        }
        Ok(())
    }

    /// Sign as a tagged COSE_Sign1 with the DeviceID key (a P-256 or Ed25519 `SigningKey`, a
    /// [`crate::dice::KeyPair`] or a [`DeviceSigner`]); verify with [`crate::eat::verify_cose_sign1`].
    pub fn sign<'k>(&self, deviceid_key: impl Into<DeviceSigner<'k>>) -> Result<Vec<u8>, EatError> {
        let key = deviceid_key.into();
        self.validate()?;
        let protected = HeaderBuilder::new().algorithm(cose_algorithm(key.alg())).build();
        let sign1 = CoseSign1Builder::new()
            .protected(protected)
            .payload(self.to_payload())
            .create_signature(b"", |tbs| key.sign(tbs).to_bytes().to_vec())
            .build();
        let token = sign1
            .to_tagged_vec()
            .map_err(|_| EatError::Malformed("proof does not encode"))?;
        if token.len() > MAX_EAT_BYTES {
            return Err(EatError::TooLarge {
                len: token.len(),
                max: MAX_EAT_BYTES,
            });
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eat::verify_cose_sign1_es256;
    use p256::ecdsa::SigningKey;

    fn proof() -> AcceptTransferProof {
        AcceptTransferProof {
            device_id: [7; ID_SIZE],
            to_org: "buyer".into(),
            nonce: alloc::vec![9; 40],
        }
    }

    #[test]
    fn payload_is_frozen_and_round_trips() {
        let p = proof();
        let bytes = p.to_payload();
        // [ "chipledger/accept-transfer/v1", h'07…07', "buyer", h'09…09' ]
        let mut want = alloc::vec![0x84, 0x78, 29];
        want.extend(TAG_ACCEPT_TRANSFER_V1.as_bytes());
        want.push(0x54);
        want.extend([7u8; 20]);
        want.extend([0x65, b'b', b'u', b'y', b'e', b'r', 0x58, 40]);
        want.extend([9u8; 40]);
        assert_eq!(bytes, want);
        assert_eq!(AcceptTransferProof::from_payload(&bytes).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(
                AcceptTransferProof::from_payload(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn sign_then_verify_with_the_deviceid_key_only() {
        let key = SigningKey::from_bytes(&[3u8; 32].into()).unwrap();
        let other = SigningKey::from_bytes(&[4u8; 32].into()).unwrap();
        let token = proof().sign(&key).unwrap();
        let payload = verify_cose_sign1_es256(&token, key.verifying_key()).unwrap();
        assert_eq!(AcceptTransferProof::from_payload(&payload).unwrap(), proof());
        assert_eq!(
            verify_cose_sign1_es256(&token, other.verifying_key()),
            Err(EatError::BadSignature)
        );
    }

    #[test]
    fn an_ed25519_deviceid_key_signs_eddsa() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let token = proof().sign(&key).unwrap();
        let public = crate::key::DevicePublicKey::Ed25519(key.verifying_key());
        let payload = crate::eat::verify_cose_sign1(&token, &public).unwrap();
        assert_eq!(AcceptTransferProof::from_payload(&payload).unwrap(), proof());
    }

    #[test]
    fn other_tags_and_bad_fields_are_refused() {
        let mut e = Encoder::new();
        e.array(4)
            .text("chipledger/record/v1")
            .bytes(&[7; 20])
            .text("buyer")
            .bytes(&[1; 8]);
        assert!(AcceptTransferProof::from_payload(&e.into_bytes()).is_err());
        let empty_org = AcceptTransferProof {
            to_org: String::new(),
            ..proof()
        };
        assert!(AcceptTransferProof::from_payload(&empty_org.to_payload()).is_err());
        let key = SigningKey::from_bytes(&[3u8; 32].into()).unwrap();
        assert!(empty_org.sign(&key).is_err());
    }

    #[test]
    fn claim_encodings() {
        let ueid = ueid_of(&[0xaa; ID_SIZE]);
        assert_eq!((ueid[0], ueid.len()), (0x01, 21));
        assert_eq!(hwmodel_of(150), [0, 0, 0, 150]);
    }
}

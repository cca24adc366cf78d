//! Payloads of the chip-identity flows (issue 3): manufacturer CA grants (governance), device
//! registration, two-step ownership transfer, attestation and revocation.
//!
//! Each payload is a struct whose fields follow the payload tag positionally in the
//! [`crate::tx::Payload`] (or [`crate::tx::GovAction`]) array; [`Fields`] is that contract.
//! Certificates are DER, evidence is a COSE_Sign1 EAT; both are opaque bytes here, bounded by
//! [`MAX_CERT_DER_BYTES`] / [`MAX_EAT_BYTES`], and verified by the state machine.

use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, decode_list, encode_list};
use crate::limits::*;
use crate::tx::check_name;

/// Size of a device or CA identifier, in bytes.
pub const ID_BYTES: usize = 20;

/// A device's identity: the open-dice ID of its DeviceID public key,
/// `KDF(20, raw public key, ID_SALT, "ID")` with the top bit cleared (P-256 keys raw as `x ‖ y`).
/// It is also the serial number and subject CN of a DeviceID certificate made by open-dice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub [u8; ID_BYTES]);

/// A manufacturer CA's identity: the first 160 bits of SHA-256 over the CA public key as an
/// uncompressed SEC1 point (the device SDK's `cert::key_id`, RFC 7093 §2 method 1 style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaId(pub [u8; ID_BYTES]);

crate::cbor::fixed_bytes_id!(DeviceId);
crate::cbor::fixed_bytes_id!(CaId);

/// An inclusive range of hardware model numbers (product IDs) a manufacturer may register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelRange {
    pub first: u32,
    pub last: u32,
}

impl ModelRange {
    pub fn contains(&self, model: u32) -> bool {
        self.first <= model && model <= self.last
    }
}

impl Encode for ModelRange {
    fn encode(&self, e: &mut Encoder) {
        e.array(2).uint(self.first as u64).uint(self.last as u64);
    }
}

impl Decode for ModelRange {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let range = ModelRange {
            first: d.u32()?,
            last: d.u32()?,
        };
        d.end();
        if range.first > range.last {
            return Err(DecodeError::Invalid {
                what: "model range",
                why: "first is greater than last",
            });
        }
        Ok(range)
    }
}

/// Why a device was revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum RevokeReason {
    Compromised = 1,
    Decommissioned = 2,
    Lost = 3,
}

impl RevokeReason {
    pub const ALL: [RevokeReason; 3] = [
        RevokeReason::Compromised,
        RevokeReason::Decommissioned,
        RevokeReason::Lost,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RevokeReason::Compromised => "compromised",
            RevokeReason::Decommissioned => "decommissioned",
            RevokeReason::Lost => "lost",
        }
    }
}

impl Encode for RevokeReason {
    fn encode(&self, e: &mut Encoder) {
        e.uint(*self as u64);
    }
}

impl Decode for RevokeReason {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let v = d.uint()?;
        RevokeReason::ALL
            .into_iter()
            .find(|r| *r as u64 == v)
            .ok_or(DecodeError::UnknownVariant {
                what: "revoke reason",
                value: v,
            })
    }
}

/// The positional fields of a payload, written after its tag in the payload array.
pub trait Fields: Sized {
    /// How many fields follow the tag.
    const ARITY: usize;
    fn encode_fields(&self, e: &mut Encoder);
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError>;
}

/// Encode `[tag, fields...]`.
pub fn encode_tagged<T: Fields>(e: &mut Encoder, tag: u64, value: &T) {
    e.array(1 + T::ARITY).uint(tag);
    value.encode_fields(e);
}

fn decode_org(d: &mut Decoder<'_>) -> Result<String, DecodeError> {
    let s = d.string()?;
    check_name(&s)?;
    Ok(s)
}

fn decode_blob(d: &mut Decoder<'_>, what: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
    let b = d.bytes()?;
    if b.is_empty() || b.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: b.len() as u64,
            max,
        });
    }
    Ok(b.to_vec())
}

/// Governance: register a manufacturer CA for `org` (which must hold the Manufacturer role) and
/// grant it the hardware models it may register devices of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddManufacturerCa {
    pub org: String,
    pub ca_cert_der: Vec<u8>,
    pub models: Vec<ModelRange>,
}

impl Fields for AddManufacturerCa {
    const ARITY: usize = 3;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.org).bytes(&self.ca_cert_der);
        encode_list(e, &self.models);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let org = decode_org(d)?;
        let ca_cert_der = decode_blob(d, "CA certificate", MAX_CERT_DER_BYTES)?;
        let models = decode_list(d, MAX_MODEL_RANGES)?;
        if models.is_empty() {
            return Err(DecodeError::Invalid {
                what: "model ranges",
                why: "a CA grant needs at least one model range",
            });
        }
        Ok(AddManufacturerCa {
            org,
            ca_cert_der,
            models,
        })
    }
}

/// Governance: revoke a manufacturer CA. It moves to the revoked list (never deleted); devices
/// registered under it can no longer attest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeManufacturerCa {
    pub ca: CaId,
    pub reason: String,
}

impl Fields for RevokeManufacturerCa {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        self.ca.encode(e);
        e.text(&self.reason);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let ca = CaId::decode(d)?;
        let reason = d.string()?;
        if reason.len() > MAX_TEXT_BYTES {
            return Err(DecodeError::TooLong {
                what: "reason",
                len: reason.len() as u64,
                max: MAX_TEXT_BYTES,
            });
        }
        Ok(RevokeManufacturerCa { ca, reason })
    }
}

/// Register a device: its DeviceID certificate issued by one of the signing manufacturer's CAs,
/// its hardware model (within the CA's grant) and its first owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterDevice {
    pub ca: CaId,
    pub deviceid_cert_der: Vec<u8>,
    pub model: u32,
    pub owner: String,
}

impl Fields for RegisterDevice {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        self.ca.encode(e);
        e.bytes(&self.deviceid_cert_der)
            .uint(self.model as u64)
            .text(&self.owner);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RegisterDevice {
            ca: CaId::decode(d)?,
            deviceid_cert_der: decode_blob(d, "DeviceID certificate", MAX_CERT_DER_BYTES)?,
            model: d.u32()?,
            owner: decode_org(d)?,
        })
    }
}

/// The current owner offers a device to another organisation; nothing changes until accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfferTransfer {
    pub device: DeviceId,
    pub to_org: String,
}

impl Fields for OfferTransfer {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        self.device.encode(e);
        e.text(&self.to_org);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(OfferTransfer {
            device: DeviceId::decode(d)?,
            to_org: decode_org(d)?,
        })
    }
}

/// The organisation a device was offered to accepts it and becomes its owner. It may carry the
/// device's own proof of presence: a COSE_Sign1 by the registered DeviceID key over the device
/// id, the accepting organisation and the device's current ledger challenge (the device SDK's
/// `ledger::AcceptTransferProof`); CBOR `null` when absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptTransfer {
    pub device: DeviceId,
    pub device_proof: Option<Vec<u8>>,
}

impl Fields for AcceptTransfer {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        self.device.encode(e);
        match &self.device_proof {
            Some(proof) => e.bytes(proof),
            None => e.null(),
        };
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let device = DeviceId::decode(d)?;
        let device_proof = match d.null()? {
            true => None,
            false => Some(decode_blob(d, "device proof", MAX_DEVICE_PROOF_BYTES)?),
        };
        Ok(AcceptTransfer { device, device_proof })
    }
}

/// Evidence from a device: its Alias certificate (signed by the registered DeviceID key) and an
/// EAT signed by the Alias key whose nonce is a current ledger challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    pub device: DeviceId,
    pub alias_cert_der: Vec<u8>,
    pub eat: Vec<u8>,
}

impl Fields for Attest {
    const ARITY: usize = 3;
    fn encode_fields(&self, e: &mut Encoder) {
        self.device.encode(e);
        e.bytes(&self.alias_cert_der).bytes(&self.eat);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Attest {
            device: DeviceId::decode(d)?,
            alias_cert_der: decode_blob(d, "Alias certificate", MAX_CERT_DER_BYTES)?,
            eat: decode_blob(d, "EAT", MAX_EAT_BYTES)?,
        })
    }
}

/// Revoke a device, by its owner or its manufacturer. Final.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeDevice {
    pub device: DeviceId,
    pub reason: RevokeReason,
}

impl Fields for RevokeDevice {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        self.device.encode(e);
        self.reason.encode(e);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RevokeDevice {
            device: DeviceId::decode(d)?,
            reason: RevokeReason::decode(d)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::{Decode, Limits};
    use crate::tx::{GovAction, Payload};

    fn round_trip(p: Payload) -> Vec<u8> {
        let bytes = p.to_cbor();
        assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut at {cut}");
        }
        bytes
    }

    #[test]
    fn frozen_encodings() {
        // [5, h'01…01', "buyer"]: a format change shows here.
        let offer = Payload::OfferTransfer(OfferTransfer {
            device: DeviceId([1; 20]),
            to_org: "buyer".into(),
        });
        let mut want = alloc::vec![0x83, 0x05, 0x54];
        want.extend([1u8; 20]);
        want.extend([0x65, b'b', b'u', b'y', b'e', b'r']);
        assert_eq!(round_trip(offer), want);
        // [8, h'02…02', 3]
        let revoke = Payload::RevokeDevice(RevokeDevice {
            device: DeviceId([2; 20]),
            reason: RevokeReason::Lost,
        });
        let mut want = alloc::vec![0x83, 0x08, 0x54];
        want.extend([2u8; 20]);
        want.push(0x03);
        assert_eq!(round_trip(revoke), want);
        // [6, h'01…01', null]: an accept without a device proof.
        let accept = Payload::AcceptTransfer(AcceptTransfer {
            device: DeviceId([1; 20]),
            device_proof: None,
        });
        let mut want = alloc::vec![0x83, 0x06, 0x54];
        want.extend([1u8; 20]);
        want.push(0xf6);
        assert_eq!(round_trip(accept), want);
        // [6, h'01…01', h'd2 84']: with one (the proof bytes are opaque here).
        let proven = Payload::AcceptTransfer(AcceptTransfer {
            device: DeviceId([1; 20]),
            device_proof: Some(alloc::vec![0xd2, 0x84]),
        });
        let mut want = alloc::vec![0x83, 0x06, 0x54];
        want.extend([1u8; 20]);
        want.extend([0x42, 0xd2, 0x84]);
        assert_eq!(round_trip(proven), want);
        // [1, [6, "maker", h'3000', [[1, 9]]]]
        let grant = Payload::Propose(GovAction::AddManufacturerCa(AddManufacturerCa {
            org: "maker".into(),
            ca_cert_der: alloc::vec![0x30, 0x00],
            models: alloc::vec![ModelRange { first: 1, last: 9 }],
        }));
        let want = [
            0x82, 0x01, 0x84, 0x06, 0x65, b'm', b'a', b'k', b'e', b'r', 0x42, 0x30, 0x00, 0x81, 0x82, 0x01, 0x09,
        ];
        assert_eq!(round_trip(grant), want);
    }

    #[test]
    fn every_device_payload_round_trips() {
        let device = DeviceId([3; 20]);
        round_trip(Payload::RegisterDevice(RegisterDevice {
            ca: CaId([4; 20]),
            deviceid_cert_der: alloc::vec![0x30; 10],
            model: 7,
            owner: "city".into(),
        }));
        round_trip(Payload::AcceptTransfer(AcceptTransfer {
            device,
            device_proof: None,
        }));
        round_trip(Payload::AcceptTransfer(AcceptTransfer {
            device,
            device_proof: Some(alloc::vec![7; 300]),
        }));
        round_trip(Payload::Attest(Attest {
            device,
            alias_cert_der: alloc::vec![1; 30],
            eat: alloc::vec![2; 40],
        }));
        round_trip(Payload::Propose(GovAction::RevokeManufacturerCa(
            RevokeManufacturerCa {
                ca: CaId([5; 20]),
                reason: "leaked".into(),
            },
        )));
    }

    #[test]
    fn bad_fields_are_typed_errors() {
        let decode = |bytes: &[u8]| Payload::from_cbor(bytes, Limits::TX);
        // A model range with first > last.
        let bad_range = [
            0x82, 0x01, 0x84, 0x06, 0x65, b'm', b'a', b'k', b'e', b'r', 0x42, 0x30, 0x00, 0x81, 0x82, 0x09, 0x01,
        ];
        assert!(matches!(decode(&bad_range), Err(DecodeError::Invalid { .. })));
        // No model ranges at all.
        let empty = [
            0x82, 0x01, 0x84, 0x06, 0x65, b'm', b'a', b'k', b'e', b'r', 0x42, 0x30, 0x00, 0x80,
        ];
        assert!(matches!(decode(&empty), Err(DecodeError::Invalid { .. })));
        // An unknown revoke reason.
        let mut reason = alloc::vec![0x83, 0x08, 0x54];
        reason.extend([2u8; 20]);
        reason.push(0x04);
        assert!(matches!(decode(&reason), Err(DecodeError::UnknownVariant { .. })));
        // An oversized certificate.
        let p = Payload::Attest(Attest {
            device: DeviceId([3; 20]),
            alias_cert_der: alloc::vec![0; MAX_CERT_DER_BYTES + 1],
            eat: alloc::vec![1],
        });
        assert!(matches!(decode(&p.to_cbor()), Err(DecodeError::TooLong { .. })));
        // An oversized or empty device proof, and the old one-field form of AcceptTransfer.
        for proof in [alloc::vec![0; MAX_DEVICE_PROOF_BYTES + 1], alloc::vec![]] {
            let p = Payload::AcceptTransfer(AcceptTransfer {
                device: DeviceId([3; 20]),
                device_proof: Some(proof),
            });
            assert!(matches!(decode(&p.to_cbor()), Err(DecodeError::TooLong { .. })));
        }
        let mut one_field = alloc::vec![0x82, 0x06, 0x54];
        one_field.extend([1u8; 20]);
        assert!(decode(&one_field).is_err());
    }
}

//! Device keys of either supported algorithm: **P-256** (ECDSA, ES256; the default) and
//! **Ed25519** (EdDSA, RFC 8032). One type per role, so certificates, evidence and the ledger
//! handle both without caring which one a chip uses:
//!
//! - [`DeviceKeyAlg`]: the algorithm (the same enum [`crate::dice`] derives layer keys for);
//! - [`DevicePublicKey`]: a public key, with its SPKI encoding (RFC 5480 / RFC 8410) and its
//!   open-dice ID;
//! - [`DeviceSigner`]: a borrowed private key ([`KeyPair`], or a bare P-256 / Ed25519 key);
//! - [`DeviceSignature`]: a signature, verified by [`DevicePublicKey::verify`] (ECDSA as `p256`
//!   verifies it; Ed25519 with `verify_strict`, which also rejects small-order keys and
//!   non-canonical encodings). Signing is deterministic for both (RFC 6979 / RFC 8032).
//!
//! Encodings of signatures differ per format (X.509 ECDSA is DER, COSE is `r ‖ s`), so the
//! callers in `cert` and `eat` parse them; this module only holds the keys.

use const_oid::{ObjectIdentifier, db::rfc5912::ID_EC_PUBLIC_KEY, db::rfc8410::ID_ED_25519};
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use spki::{SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};

pub use crate::dice::Algorithm as DeviceKeyAlg;
use crate::dice::{ID_SIZE, KeyPair, RawPublicKey, derive_id};

impl DeviceKeyAlg {
    /// Every supported algorithm, the default first.
    pub const ALL: [DeviceKeyAlg; 2] = [DeviceKeyAlg::P256, DeviceKeyAlg::Ed25519];

    /// The name used in files and on the command line: `p256` or `ed25519`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceKeyAlg::P256 => "p256",
            DeviceKeyAlg::Ed25519 => "ed25519",
        }
    }

    /// The algorithm called `name` (see [`DeviceKeyAlg::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }
}

impl core::fmt::Display for DeviceKeyAlg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of key handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The SPKI names an algorithm other than id-ecPublicKey (P-256) or id-Ed25519.
    #[error("public key algorithm {0} is not supported (expected P-256 or Ed25519)")]
    UnsupportedAlgorithm(ObjectIdentifier),
    /// The SPKI names a supported algorithm but the key does not decode.
    #[error("the {0:?} public key is malformed")]
    Malformed(DeviceKeyAlg),
    /// A signature of one algorithm was checked against a key of the other.
    #[error("a {signature:?} signature cannot be verified with a {key:?} key")]
    AlgorithmMismatch { signature: DeviceKeyAlg, key: DeviceKeyAlg },
    /// The signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// The bytes are not the DER SubjectPublicKeyInfo [`DevicePublicKey::to_spki_der`] makes
    /// (malformed DER, trailing bytes, or another encoding of the key, e.g. a compressed point).
    #[error("not the canonical DER SubjectPublicKeyInfo of a P-256 or Ed25519 key")]
    NonCanonicalSpki,
}

/// A device public key (DeviceID or Alias), P-256 or Ed25519.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevicePublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl DevicePublicKey {
    /// Which algorithm the key is for.
    pub fn alg(&self) -> DeviceKeyAlg {
        match self {
            DevicePublicKey::P256(_) => DeviceKeyAlg::P256,
            DevicePublicKey::Ed25519(_) => DeviceKeyAlg::Ed25519,
        }
    }

    /// The key as open-dice encodes it: 32 raw bytes (Ed25519) or `x ‖ y` (P-256).
    pub fn raw(&self) -> RawPublicKey {
        match self {
            DevicePublicKey::Ed25519(key) => RawPublicKey::Ed25519(key.to_bytes()),
            DevicePublicKey::P256(key) => {
                let point = key.to_sec1_point(false);
                let bytes = point.as_bytes();
                assert_eq!(bytes.len(), 65, "an uncompressed P-256 point is 0x04 ‖ x ‖ y");
                let mut xy = [0u8; 64];
                xy.copy_from_slice(&bytes[1..]);
                RawPublicKey::P256(xy)
            }
        }
    }

    /// The open-dice ID of the key: `KDF(20, raw key, ID_SALT, "ID")`, top bit cleared
    /// ([`derive_id`] over [`DevicePublicKey::raw`]). For a DeviceID key, the ledger's device id.
    pub fn dice_id(&self) -> [u8; ID_SIZE] {
        derive_id(self.raw().as_bytes()).expect("a 20-byte HKDF output is always available")
    }

    /// The SubjectPublicKeyInfo (RFC 5480 for P-256, RFC 8410 for Ed25519: no parameters).
    pub fn to_spki(&self) -> Result<SubjectPublicKeyInfoOwned, spki::Error> {
        match self {
            DevicePublicKey::P256(key) => SubjectPublicKeyInfoOwned::from_key(key),
            DevicePublicKey::Ed25519(key) => SubjectPublicKeyInfoOwned::from_key(key),
        }
    }

    /// Decodes a SubjectPublicKeyInfo, choosing the algorithm by its OID.
    pub fn from_spki(spki: SubjectPublicKeyInfoRef<'_>) -> Result<Self, KeyError> {
        match spki.algorithm.oid {
            ID_EC_PUBLIC_KEY => p256::ecdsa::VerifyingKey::try_from(spki)
                .map(DevicePublicKey::P256)
                .map_err(|_| KeyError::Malformed(DeviceKeyAlg::P256)),
            ID_ED_25519 => ed25519_dalek::VerifyingKey::try_from(spki)
                .map(DevicePublicKey::Ed25519)
                .map_err(|_| KeyError::Malformed(DeviceKeyAlg::Ed25519)),
            other => Err(KeyError::UnsupportedAlgorithm(other)),
        }
    }

    /// The canonical byte form of the key with its algorithm: the DER SubjectPublicKeyInfo
    /// (RFC 5480 uncompressed point for P-256, RFC 8410 for Ed25519), as certificates carry it
    /// and the ledger stores an attested Alias key. [`DevicePublicKey::from_spki_der`] inverts it.
    pub fn to_spki_der(&self) -> alloc::vec::Vec<u8> {
        let spki = self.to_spki().expect("a valid P-256 or Ed25519 key has an SPKI");
        der::Encode::to_der(&spki).expect("an SPKI encodes as DER")
    }

    /// Decodes exactly the bytes [`DevicePublicKey::to_spki_der`] makes: any other encoding
    /// of a key is [`KeyError::NonCanonicalSpki`], so bytes and key correspond one to one.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            <SubjectPublicKeyInfoRef<'_> as der::Decode>::from_der(der).map_err(|_| KeyError::NonCanonicalSpki)?;
        let key = Self::from_spki(spki)?;
        if key.to_spki_der() != der {
            return Err(KeyError::NonCanonicalSpki);
        }
        Ok(key)
    }

    /// Verifies `signature` over `message`; the signature's algorithm must be the key's.
    pub fn verify(&self, message: &[u8], signature: &DeviceSignature) -> Result<(), KeyError> {
        match (self, signature) {
            (DevicePublicKey::P256(key), DeviceSignature::P256(sig)) => {
                key.verify(message, sig).map_err(|_| KeyError::BadSignature)
            }
            (DevicePublicKey::Ed25519(key), DeviceSignature::Ed25519(sig)) => {
                key.verify_strict(message, sig).map_err(|_| KeyError::BadSignature)
            }
            _ => Err(KeyError::AlgorithmMismatch {
                signature: signature.alg(),
                key: self.alg(),
            }),
        }
    }
}

impl From<p256::ecdsa::VerifyingKey> for DevicePublicKey {
    fn from(key: p256::ecdsa::VerifyingKey) -> Self {
        DevicePublicKey::P256(key)
    }
}

impl From<&p256::ecdsa::VerifyingKey> for DevicePublicKey {
    fn from(key: &p256::ecdsa::VerifyingKey) -> Self {
        DevicePublicKey::P256(*key)
    }
}

impl From<ed25519_dalek::VerifyingKey> for DevicePublicKey {
    fn from(key: ed25519_dalek::VerifyingKey) -> Self {
        DevicePublicKey::Ed25519(key)
    }
}

impl From<&ed25519_dalek::VerifyingKey> for DevicePublicKey {
    fn from(key: &ed25519_dalek::VerifyingKey) -> Self {
        DevicePublicKey::Ed25519(*key)
    }
}

impl From<&DevicePublicKey> for DevicePublicKey {
    fn from(key: &DevicePublicKey) -> Self {
        *key
    }
}

impl PartialEq<p256::ecdsa::VerifyingKey> for DevicePublicKey {
    fn eq(&self, other: &p256::ecdsa::VerifyingKey) -> bool {
        matches!(self, DevicePublicKey::P256(key) if key == other)
    }
}

impl PartialEq<ed25519_dalek::VerifyingKey> for DevicePublicKey {
    fn eq(&self, other: &ed25519_dalek::VerifyingKey) -> bool {
        matches!(self, DevicePublicKey::Ed25519(key) if key == other)
    }
}

/// A signature by a device key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSignature {
    /// ECDSA P-256 with SHA-256 (`r`, `s`).
    P256(p256::ecdsa::Signature),
    /// Ed25519 (`R ‖ S`).
    Ed25519(ed25519_dalek::Signature),
}

impl DeviceSignature {
    /// Which algorithm made the signature.
    pub fn alg(&self) -> DeviceKeyAlg {
        match self {
            DeviceSignature::P256(_) => DeviceKeyAlg::P256,
            DeviceSignature::Ed25519(_) => DeviceKeyAlg::Ed25519,
        }
    }

    /// The fixed-size encoding: `r ‖ s` (COSE, RFC 9053 §2.1) or `R ‖ S` (RFC 8032), 64 bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        match self {
            DeviceSignature::P256(sig) => sig.to_bytes().into(),
            DeviceSignature::Ed25519(sig) => sig.to_bytes(),
        }
    }

    /// Parses the fixed-size 64-byte encoding of [`DeviceSignature::to_bytes`] for `alg`.
    pub fn from_slice(alg: DeviceKeyAlg, bytes: &[u8]) -> Result<Self, KeyError> {
        match alg {
            DeviceKeyAlg::P256 => p256::ecdsa::Signature::from_slice(bytes).map(DeviceSignature::P256),
            DeviceKeyAlg::Ed25519 => ed25519_dalek::Signature::from_slice(bytes).map(DeviceSignature::Ed25519),
        }
        .map_err(|_| KeyError::BadSignature)
    }
}

/// A borrowed device private key of either algorithm: what issues Alias certificates and signs
/// evidence. Signing is deterministic for both (RFC 6979 for ECDSA; Ed25519 by construction).
#[derive(Clone, Copy)]
pub enum DeviceSigner<'a> {
    P256(&'a p256::ecdsa::SigningKey),
    Ed25519(&'a ed25519_dalek::SigningKey),
}

impl core::fmt::Debug for DeviceSigner<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "DeviceSigner::{:?}({})",
            self.alg(),
            hex::encode(self.public_key().raw().as_bytes())
        )
    }
}

impl DeviceSigner<'_> {
    /// Which algorithm the key is for.
    pub fn alg(&self) -> DeviceKeyAlg {
        match self {
            DeviceSigner::P256(_) => DeviceKeyAlg::P256,
            DeviceSigner::Ed25519(_) => DeviceKeyAlg::Ed25519,
        }
    }

    /// The public half.
    pub fn public_key(&self) -> DevicePublicKey {
        match self {
            DeviceSigner::P256(key) => DevicePublicKey::P256(*key.verifying_key()),
            DeviceSigner::Ed25519(key) => DevicePublicKey::Ed25519(key.verifying_key()),
        }
    }

    /// Signs `message` (ES256 over SHA-256 of it, or pure Ed25519).
    pub fn sign(&self, message: &[u8]) -> DeviceSignature {
        match self {
            DeviceSigner::P256(key) => DeviceSignature::P256(key.sign(message)),
            DeviceSigner::Ed25519(key) => DeviceSignature::Ed25519(ed25519_dalek::Signer::sign(*key, message)),
        }
    }
}

impl<'a> From<&'a p256::ecdsa::SigningKey> for DeviceSigner<'a> {
    fn from(key: &'a p256::ecdsa::SigningKey) -> Self {
        DeviceSigner::P256(key)
    }
}

impl<'a> From<&'a ed25519_dalek::SigningKey> for DeviceSigner<'a> {
    fn from(key: &'a ed25519_dalek::SigningKey) -> Self {
        DeviceSigner::Ed25519(key)
    }
}

impl<'a> From<&'a KeyPair> for DeviceSigner<'a> {
    fn from(key: &'a KeyPair) -> Self {
        match key {
            KeyPair::P256(key) => DeviceSigner::P256(key),
            KeyPair::Ed25519(key) => DeviceSigner::Ed25519(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dice::LayerKey;
    use der::referenced::OwnedToRef;

    #[test]
    fn dice_id_matches_the_dice_layer_key_for_both_algorithms() {
        for alg in [DeviceKeyAlg::P256, DeviceKeyAlg::Ed25519] {
            let layer = LayerKey::derive(alg, &[3; 32]).unwrap();
            let public = DeviceSigner::from(&layer.key_pair).public_key();
            assert_eq!(public.alg(), alg);
            assert_eq!(public.raw(), layer.public_key);
            assert_eq!(public.dice_id(), layer.id);
        }
    }

    #[test]
    fn spki_round_trips_and_sign_verify_checks_the_algorithm() {
        let p = LayerKey::derive(DeviceKeyAlg::P256, &[1; 32]).unwrap().key_pair;
        let e = LayerKey::derive(DeviceKeyAlg::Ed25519, &[1; 32]).unwrap().key_pair;
        let (p, e) = (DeviceSigner::from(&p), DeviceSigner::from(&e));
        for signer in [p, e] {
            let public = signer.public_key();
            let spki = public.to_spki().unwrap();
            assert_eq!(DevicePublicKey::from_spki(spki.owned_to_ref()).unwrap(), public);
            let sig = signer.sign(b"msg");
            assert_eq!(public.verify(b"msg", &sig), Ok(()));
            assert_eq!(public.verify(b"other", &sig), Err(KeyError::BadSignature));
            let again = DeviceSignature::from_slice(signer.alg(), &sig.to_bytes()).unwrap();
            assert_eq!(again, sig);
        }
        let err = p.public_key().verify(b"msg", &e.sign(b"msg")).unwrap_err();
        assert_eq!(
            err,
            KeyError::AlgorithmMismatch {
                signature: DeviceKeyAlg::Ed25519,
                key: DeviceKeyAlg::P256
            }
        );
    }

    /// The SPKI DER form round-trips for both algorithms; other encodings of the same key (a
    /// compressed P-256 point, trailing bytes) and garbage are refused.
    #[test]
    fn spki_der_is_canonical() {
        for alg in DeviceKeyAlg::ALL {
            let pair = LayerKey::derive(alg, &[7; 32]).unwrap().key_pair;
            let public = DeviceSigner::from(&pair).public_key();
            let der = public.to_spki_der();
            assert_eq!(DevicePublicKey::from_spki_der(&der), Ok(public), "{alg}");
            let mut trailing = der.clone();
            trailing.push(0);
            assert_eq!(
                DevicePublicKey::from_spki_der(&trailing),
                Err(KeyError::NonCanonicalSpki)
            );
        }
        let p256 = LayerKey::derive(DeviceKeyAlg::P256, &[7; 32]).unwrap().key_pair;
        let DevicePublicKey::P256(key) = DeviceSigner::from(&p256).public_key() else {
            unreachable!()
        };
        // The same key with a compressed point: a valid SPKI, but not the canonical one.
        let point = key.to_sec1_point(true);
        let compressed = spki::SubjectPublicKeyInfoOwned {
            algorithm: DevicePublicKey::P256(key).to_spki().unwrap().algorithm,
            subject_public_key: der::asn1::BitString::from_bytes(point.as_bytes()).unwrap(),
        };
        let der = der::Encode::to_der(&compressed).unwrap();
        assert_eq!(DevicePublicKey::from_spki_der(&der), Err(KeyError::NonCanonicalSpki));
        assert_eq!(
            DevicePublicKey::from_spki_der(&[0x30, 0x00]),
            Err(KeyError::NonCanonicalSpki)
        );
    }

    #[test]
    fn ed25519_spki_is_rfc8410() {
        // RFC 8410 §10.1: the example Ed25519 public key in SubjectPublicKeyInfo form.
        let der =
            hex::decode("302a300506032b657003210019bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad703166e1")
                .unwrap();
        let spki = <SubjectPublicKeyInfoRef<'_> as der::Decode>::from_der(&der).unwrap();
        let key = DevicePublicKey::from_spki(spki).unwrap();
        assert_eq!(key.alg(), DeviceKeyAlg::Ed25519);
        assert_eq!(der::Encode::to_der(&key.to_spki().unwrap()).unwrap(), der);
        assert_eq!(key.to_spki_der(), der);
        assert_eq!(DevicePublicKey::from_spki_der(&der), Ok(key));
    }
}

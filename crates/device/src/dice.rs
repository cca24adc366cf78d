//! Open Profile for DICE: one layer of the derivation chain.
//!
//! Given the current CDI values (or, for the first layer, the Unique Device Secret) and the
//! measured inputs of the next layer, [`derive_next`] computes the next layer's `CDI_Attest` and
//! `CDI_Seal`; [`LayerKey::derive`] turns a `CDI_Attest` into the layer's key pair and its 20-byte
//! ID. Everything follows the profile's specification (google/open-dice,
//! `docs/specification.md`) and its reference implementation (`src/dice.c` with the BoringSSL
//! operations), and is pinned by open-dice's known test values in
//! `tests/dice_known_values.rs`.
//!
//! The primitives: `H` = SHA-512; `KDF(len, ikm, salt, info)` = HKDF-SHA512 (extract, then
//! expand). The key pair seed is `KDF(32, CDI_Attest, ASYM_SALT, "Key Pair")`; Ed25519 uses the
//! seed as its secret key, P-256 draws its scalar from an HMAC-SHA512 DRBG seeded with it (as
//! open-dice's BoringSSL and mbedTLS operations do). An ID is `KDF(20, public key, ID_SALT, "ID")`
//! with the top bit cleared, over the raw public key: 32 bytes for Ed25519, `x ‖ y` (64 bytes, no
//! SEC1 prefix) for P-256.
//!
//! Secrets are plain byte arrays; callers that keep them should overwrite them after use.

use core::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha512};

/// Size of a CDI (and of the UDS that stands in for the CDIs of the first layer).
pub const CDI_SIZE: usize = 32;
/// Size of the Unique Device Secret.
pub const UDS_SIZE: usize = CDI_SIZE;
/// Size of the code, authority and hidden inputs, and of `H`'s output (SHA-512).
pub const HASH_SIZE: usize = 64;
/// Size of an inline configuration value.
pub const INLINE_CONFIG_SIZE: usize = 64;
/// Size of the hidden input.
pub const HIDDEN_SIZE: usize = 64;
/// Size of the private key seed derived from `CDI_Attest`.
pub const PRIVATE_KEY_SEED_SIZE: usize = 32;
/// Size of a certificate ID derived from a public key.
pub const ID_SIZE: usize = 20;
/// Largest configuration, code or authority descriptor accepted (bytes).
pub const MAX_DESCRIPTOR_BYTES: usize = 64 * 1024;
/// Most P-256 scalar candidates drawn before giving up (each is rejected with probability
/// below 2^-32, so reaching this bound means a broken hash, not bad luck).
pub const MAX_P256_CANDIDATES: usize = 64;

/// `ASYM_SALT` of the profile: salt of the key pair seed derivation.
pub const ASYM_SALT: [u8; 64] = [
    0x63, 0xB6, 0xA0, 0x4D, 0x2C, 0x07, 0x7F, 0xC1, 0x0F, 0x63, 0x9F, 0x21, 0xDA, 0x79, 0x38, 0x44, 0x35, 0x6C, 0xC2,
    0xB0, 0xB4, 0x41, 0xB3, 0xA7, 0x71, 0x24, 0x03, 0x5C, 0x03, 0xF8, 0xE1, 0xBE, 0x60, 0x35, 0xD3, 0x1F, 0x28, 0x28,
    0x21, 0xA7, 0x45, 0x0A, 0x02, 0x22, 0x2A, 0xB1, 0xB3, 0xCF, 0xF1, 0x67, 0x9B, 0x05, 0xAB, 0x1C, 0xA5, 0xD1, 0xAF,
    0xFB, 0x78, 0x9C, 0xCD, 0x2B, 0x0B, 0x3B,
];
/// `ID_SALT` of the profile: salt of the ID derivation.
pub const ID_SALT: [u8; 64] = [
    0xDB, 0xDB, 0xAE, 0xBC, 0x80, 0x20, 0xDA, 0x9F, 0xF0, 0xDD, 0x5A, 0x24, 0xC8, 0x3A, 0xA5, 0xA5, 0x42, 0x86, 0xDF,
    0xC2, 0x63, 0x03, 0x1E, 0x32, 0x9B, 0x4D, 0xA1, 0x48, 0x43, 0x06, 0x59, 0xFE, 0x62, 0xCD, 0xB5, 0xB7, 0xE1, 0xE0,
    0x0F, 0xC6, 0x80, 0x30, 0x67, 0x11, 0xEB, 0x44, 0x4A, 0xF7, 0x72, 0x09, 0x35, 0x94, 0x96, 0xFC, 0xFF, 0x1D, 0xB9,
    0x52, 0x0B, 0xA5, 0x1C, 0x7B, 0x29, 0xEA,
];
/// KDF info of the attestation CDI.
pub const INFO_CDI_ATTEST: &[u8] = b"CDI_Attest";
/// KDF info of the sealing CDI.
pub const INFO_CDI_SEAL: &[u8] = b"CDI_Seal";
/// KDF info of the key pair seed.
pub const INFO_KEY_PAIR: &[u8] = b"Key Pair";
/// KDF info of an ID.
pub const INFO_ID: &[u8] = b"ID";

/// Layout of the attestation input `code ‖ config ‖ authority ‖ mode ‖ hidden`; the sealing input
/// is its tail from `AUTHORITY_OFFSET`.
const CONFIG_OFFSET: usize = HASH_SIZE;
const AUTHORITY_OFFSET: usize = CONFIG_OFFSET + INLINE_CONFIG_SIZE;
const MODE_OFFSET: usize = AUTHORITY_OFFSET + HASH_SIZE;
const HIDDEN_OFFSET: usize = MODE_OFFSET + 1;
const INPUT_SIZE: usize = HIDDEN_OFFSET + HIDDEN_SIZE;

/// Why a DICE derivation failed. Only malformed input can cause it in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiceError {
    /// A descriptor is longer than [`MAX_DESCRIPTOR_BYTES`].
    #[error("{field} descriptor is {len} bytes; at most {MAX_DESCRIPTOR_BYTES} are accepted")]
    DescriptorTooLong { field: &'static str, len: usize },
    /// A mode byte outside 0..=3.
    #[error("mode {0} is not defined by the profile (0 not-configured, 1 normal, 2 debug, 3 maintenance)")]
    UnknownMode(u8),
    /// The KDF refused an output length (cannot happen for the profile's fixed lengths).
    #[error("HKDF-SHA512 cannot produce {0} bytes")]
    KdfLength(usize),
    /// The P-256 DRBG produced no valid scalar within [`MAX_P256_CANDIDATES`] draws.
    #[error("no valid P-256 scalar after {MAX_P256_CANDIDATES} candidates")]
    P256KeyDerivation,
}

/// The mode decision input (one byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// 0: a security mechanism is not configured (also the catch-all).
    #[default]
    NotConfigured,
    /// 1: normal operation.
    Normal,
    /// 2: debug.
    Debug,
    /// 3: maintenance (called "recovery" in the specification's input list).
    Maintenance,
}

impl Mode {
    /// The byte mixed into the CDI inputs.
    pub const fn as_byte(self) -> u8 {
        match self {
            Mode::NotConfigured => 0,
            Mode::Normal => 1,
            Mode::Debug => 2,
            Mode::Maintenance => 3,
        }
    }
}

impl TryFrom<u8> for Mode {
    type Error = DiceError;

    fn try_from(byte: u8) -> Result<Self, DiceError> {
        match byte {
            0 => Ok(Mode::NotConfigured),
            1 => Ok(Mode::Normal),
            2 => Ok(Mode::Debug),
            3 => Ok(Mode::Maintenance),
            other => Err(DiceError::UnknownMode(other)),
        }
    }
}

/// The configuration input: a 64-byte value, or a descriptor whose SHA-512 is the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config<'a> {
    /// The configuration value itself.
    Inline([u8; INLINE_CONFIG_SIZE]),
    /// A descriptor; the configuration value is `H(descriptor)`.
    Descriptor(&'a [u8]),
}

/// A layer's measured inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputValues<'a> {
    /// Hash (or similar representation) of the layer's code.
    pub code_hash: [u8; HASH_SIZE],
    /// Optional descriptor of the code; certificates only, not mixed into the CDIs.
    pub code_descriptor: Option<&'a [u8]>,
    /// Configuration value or descriptor.
    pub config: Config<'a>,
    /// Hash of the verified-boot authority; all zero when there is none.
    pub authority_hash: [u8; HASH_SIZE],
    /// Optional descriptor of the authority; certificates only, not mixed into the CDIs.
    pub authority_descriptor: Option<&'a [u8]>,
    /// The mode decision.
    pub mode: Mode,
    /// Hidden input (never in a certificate); all zero when unused.
    pub hidden: [u8; HIDDEN_SIZE],
}

impl Default for InputValues<'_> {
    /// All-zero inputs with an all-zero inline configuration (open-dice's "zero input").
    fn default() -> Self {
        InputValues {
            code_hash: [0; HASH_SIZE],
            code_descriptor: None,
            config: Config::Inline([0; INLINE_CONFIG_SIZE]),
            authority_hash: [0; HASH_SIZE],
            authority_descriptor: None,
            mode: Mode::NotConfigured,
            hidden: [0; HIDDEN_SIZE],
        }
    }
}

impl InputValues<'_> {
    /// Rejects descriptors longer than [`MAX_DESCRIPTOR_BYTES`].
    pub fn check_limits(&self) -> Result<(), DiceError> {
        let descriptors = [
            ("code", self.code_descriptor),
            ("configuration", self.config_descriptor()),
            ("authority", self.authority_descriptor),
        ];
        for (field, descriptor) in descriptors {
            let len = descriptor.map_or(0, <[u8]>::len);
            if len > MAX_DESCRIPTOR_BYTES {
                return Err(DiceError::DescriptorTooLong { field, len });
            }
        }
        Ok(())
    }

    /// The configuration descriptor, if the configuration is given as one.
    pub fn config_descriptor(&self) -> Option<&[u8]> {
        match self.config {
            Config::Inline(_) => None,
            Config::Descriptor(descriptor) => Some(descriptor),
        }
    }

    /// The 64-byte configuration input: the inline value, or `H(descriptor)`.
    pub fn config_input(&self) -> [u8; INLINE_CONFIG_SIZE] {
        match self.config {
            Config::Inline(value) => value,
            Config::Descriptor(descriptor) => Sha512::digest(descriptor).into(),
        }
    }

    /// `code ‖ config ‖ authority ‖ mode ‖ hidden`, the attestation input; its tail from the
    /// authority on is the sealing input.
    fn serialize(&self) -> [u8; INPUT_SIZE] {
        let mut input = [0u8; INPUT_SIZE];
        input[..CONFIG_OFFSET].copy_from_slice(&self.code_hash);
        input[CONFIG_OFFSET..AUTHORITY_OFFSET].copy_from_slice(&self.config_input());
        input[AUTHORITY_OFFSET..MODE_OFFSET].copy_from_slice(&self.authority_hash);
        input[MODE_OFFSET] = self.mode.as_byte();
        input[HIDDEN_OFFSET..].copy_from_slice(&self.hidden);
        input
    }
}

/// A pair of CDI values: the current layer's (input of [`derive_next`]) or the next layer's
/// (its output).
#[derive(Clone, PartialEq, Eq)]
pub struct Cdis {
    /// The attestation CDI: changes with any input.
    pub cdi_attest: [u8; CDI_SIZE],
    /// The sealing CDI: depends only on authority, mode and hidden input.
    pub cdi_seal: [u8; CDI_SIZE],
}

/// The output of one DICE layer.
pub type NextLayer = Cdis;

impl Cdis {
    /// The first layer's "current CDIs": the UDS stands in for both (open-dice `DiceMainFlow`).
    pub fn from_uds(uds: &[u8; UDS_SIZE]) -> Self {
        Cdis {
            cdi_attest: *uds,
            cdi_seal: *uds,
        }
    }
}

impl fmt::Debug for Cdis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cdis { .. }")
    }
}

/// `KDF(len, ikm, salt, info)` of the profile: HKDF-SHA512 (RFC 5869, extract then expand).
pub fn kdf<const LEN: usize>(ikm: &[u8], salt: &[u8], info: &[u8]) -> Result<[u8; LEN], DiceError> {
    let mut okm = [0u8; LEN];
    Hkdf::<Sha512>::new(Some(salt), ikm)
        .expand(info, &mut okm)
        .map_err(|_| DiceError::KdfLength(LEN))?;
    Ok(okm)
}

/// One DICE layer: the next CDIs from the current ones (or [`Cdis::from_uds`]) and the inputs.
///
/// `CDI_Attest' = KDF(32, CDI_Attest, H(code ‖ config ‖ authority ‖ mode ‖ hidden), "CDI_Attest")`,
/// `CDI_Seal' = KDF(32, CDI_Seal, H(authority ‖ mode ‖ hidden), "CDI_Seal")`.
pub fn derive_next(current: &Cdis, inputs: &InputValues<'_>) -> Result<NextLayer, DiceError> {
    inputs.check_limits()?;
    let input = inputs.serialize();
    let attest_salt = Sha512::digest(input);
    let seal_salt = Sha512::digest(&input[AUTHORITY_OFFSET..]);
    Ok(Cdis {
        cdi_attest: kdf(&current.cdi_attest, &attest_salt, INFO_CDI_ATTEST)?,
        cdi_seal: kdf(&current.cdi_seal, &seal_salt, INFO_CDI_SEAL)?,
    })
}

/// The layer's private key seed: `KDF(32, CDI_Attest, ASYM_SALT, "Key Pair")` (for the first
/// layer's authority, pass the UDS).
pub fn private_key_seed(cdi_attest: &[u8; CDI_SIZE]) -> Result<[u8; PRIVATE_KEY_SEED_SIZE], DiceError> {
    kdf(cdi_attest, &ASYM_SALT, INFO_KEY_PAIR)
}

/// An ID: `KDF(20, public key, ID_SALT, "ID")` with the top bit cleared, so that it is a
/// positive 20-byte ASN.1 INTEGER (X.509 serial number).
pub fn derive_id(raw_public_key: &[u8]) -> Result<[u8; ID_SIZE], DiceError> {
    let mut id: [u8; ID_SIZE] = kdf(raw_public_key, &ID_SALT, INFO_ID)?;
    id[0] &= 0x7f;
    Ok(id)
}

/// Signature algorithm of the layer keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Ed25519: the seed is the secret key.
    Ed25519,
    /// ECDSA P-256: the scalar is drawn from an HMAC-SHA512 DRBG seeded with the seed.
    #[default]
    P256,
}

/// A layer's key pair.
#[derive(Clone)]
pub enum KeyPair {
    /// Ed25519 signing key.
    Ed25519(ed25519_dalek::SigningKey),
    /// P-256 ECDSA signing key.
    P256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyPair::{:?}({})",
            self.algorithm(),
            hex::encode(self.public_key().as_bytes())
        )
    }
}

/// A public key encoded as open-dice encodes it (and hashes it for the ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawPublicKey {
    /// The 32-byte Ed25519 public key.
    Ed25519([u8; 32]),
    /// P-256 affine coordinates `x ‖ y`, 32 bytes each, big-endian (no SEC1 prefix byte).
    P256([u8; 64]),
}

impl RawPublicKey {
    /// The encoded bytes (32 or 64).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            RawPublicKey::Ed25519(bytes) => bytes,
            RawPublicKey::P256(bytes) => bytes,
        }
    }
}

impl KeyPair {
    /// The key pair for `alg` from a private key seed.
    pub fn from_seed(alg: Algorithm, seed: &[u8; PRIVATE_KEY_SEED_SIZE]) -> Result<Self, DiceError> {
        match alg {
            Algorithm::Ed25519 => Ok(KeyPair::Ed25519(ed25519_dalek::SigningKey::from_bytes(seed))),
            Algorithm::P256 => p256_from_seed(seed).map(KeyPair::P256),
        }
    }

    /// Which algorithm this key pair is for.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            KeyPair::Ed25519(_) => Algorithm::Ed25519,
            KeyPair::P256(_) => Algorithm::P256,
        }
    }

    /// The public key, raw.
    pub fn public_key(&self) -> RawPublicKey {
        match self {
            KeyPair::Ed25519(key) => RawPublicKey::Ed25519(key.verifying_key().to_bytes()),
            KeyPair::P256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                let mut xy = [0u8; 64];
                // An uncompressed SEC1 point of a valid key is 0x04 ‖ x ‖ y (65 bytes).
                let bytes = point.as_bytes();
                assert_eq!(bytes.len(), 65, "uncompressed P-256 point");
                xy.copy_from_slice(&bytes[1..]);
                RawPublicKey::P256(xy)
            }
        }
    }
}

/// HMAC-SHA512 over the concatenation of `parts`.
fn hmac_sha512(key: &[u8; 64], parts: &[&[u8]]) -> [u8; 64] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The P-256 key open-dice derives from a seed: an HMAC_DRBG with SHA-512 (RFC 6979 §3.2 shape,
/// `V` and `K` of 64 bytes) seeded with the seed; each candidate scalar is the first 32 bytes of
/// the next `V`, taken big-endian, until one is in `[1, n)`.
fn p256_from_seed(seed: &[u8; PRIVATE_KEY_SEED_SIZE]) -> Result<p256::ecdsa::SigningKey, DiceError> {
    let mut v = [0x01u8; 64];
    let mut k = [0x00u8; 64];
    // Instantiate (HMAC_DRBG update with the seed).
    k = hmac_sha512(&k, &[&v, &[0x00], seed]);
    v = hmac_sha512(&k, &[&v]);
    k = hmac_sha512(&k, &[&v, &[0x01], seed]);
    v = hmac_sha512(&k, &[&v]);
    for _ in 0..MAX_P256_CANDIDATES {
        // Generate: V = HMAC(K, V); then update without additional input.
        v = hmac_sha512(&k, &[&v]);
        let mut candidate = p256::FieldBytes::default();
        candidate.copy_from_slice(&v[..32]);
        k = hmac_sha512(&k, &[&v, &[0x00]]);
        v = hmac_sha512(&k, &[&v]);
        if let Ok(key) = p256::ecdsa::SigningKey::from_bytes(&candidate) {
            return Ok(key);
        }
    }
    Err(DiceError::P256KeyDerivation)
}

/// A layer's key pair and ID, derived from its `CDI_Attest` (or, for the device's root key, from
/// the UDS).
#[derive(Debug, Clone)]
pub struct LayerKey {
    /// The key pair.
    pub key_pair: KeyPair,
    /// The public key as open-dice encodes it.
    pub public_key: RawPublicKey,
    /// `KDF(20, public key, ID_SALT, "ID")`, top bit cleared.
    pub id: [u8; ID_SIZE],
}

impl LayerKey {
    /// `ASYM_KDF(CDI_Attest)` for `alg`, and the ID of its public key.
    pub fn derive(alg: Algorithm, cdi_attest: &[u8; CDI_SIZE]) -> Result<Self, DiceError> {
        let seed = private_key_seed(cdi_attest)?;
        let key_pair = KeyPair::from_seed(alg, &seed)?;
        let public_key = key_pair.public_key();
        let id = derive_id(public_key.as_bytes())?;
        Ok(LayerKey {
            key_pair,
            public_key,
            id,
        })
    }
}

/// Everything one DICE layer produces: the next CDIs, the authority key (the current layer's,
/// which signs the next layer's certificate) and the subject key (the next layer's).
#[derive(Debug, Clone)]
pub struct LayerOutput {
    /// The next layer's CDIs.
    pub next: NextLayer,
    /// Key pair from the current `CDI_Attest` (the UDS for the first layer): the issuer.
    pub authority: LayerKey,
    /// Key pair from the next `CDI_Attest`: the subject.
    pub subject: LayerKey,
}

/// [`derive_next`] plus the authority and subject keys, as open-dice's main flow computes them
/// for the next layer's certificate.
pub fn derive_layer(alg: Algorithm, current: &Cdis, inputs: &InputValues<'_>) -> Result<LayerOutput, DiceError> {
    let next = derive_next(current, inputs)?;
    let authority = LayerKey::derive(alg, &current.cdi_attest)?;
    let subject = LayerKey::derive(alg, &next.cdi_attest)?;
    Ok(LayerOutput {
        next,
        authority,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bytes_round_trip() {
        for byte in 0..=3u8 {
            assert_eq!(Mode::try_from(byte).map(Mode::as_byte), Ok(byte));
        }
        assert_eq!(Mode::try_from(4), Err(DiceError::UnknownMode(4)));
    }

    #[test]
    fn descriptor_config_is_hashed() {
        let descriptor = [7u8; 40];
        let by_descriptor = InputValues {
            config: Config::Descriptor(&descriptor),
            ..InputValues::default()
        };
        let inline = InputValues {
            config: Config::Inline(Sha512::digest(descriptor).into()),
            ..InputValues::default()
        };
        let uds = Cdis::from_uds(&[1; UDS_SIZE]);
        assert_eq!(derive_next(&uds, &by_descriptor), derive_next(&uds, &inline));
    }

    #[test]
    fn sealing_cdi_ignores_code_and_config() {
        let uds = Cdis::from_uds(&[2; UDS_SIZE]);
        let a = derive_next(&uds, &InputValues::default()).unwrap();
        let changed = InputValues {
            code_hash: [9; HASH_SIZE],
            config: Config::Inline([9; INLINE_CONFIG_SIZE]),
            ..InputValues::default()
        };
        let b = derive_next(&uds, &changed).unwrap();
        assert_eq!(a.cdi_seal, b.cdi_seal);
        assert_ne!(a.cdi_attest, b.cdi_attest);
    }

    #[test]
    fn oversized_descriptor_is_a_typed_error() {
        let big = [0u8; MAX_DESCRIPTOR_BYTES + 1];
        let inputs = InputValues {
            authority_descriptor: Some(&big),
            ..InputValues::default()
        };
        let err = derive_next(&Cdis::from_uds(&[0; UDS_SIZE]), &inputs).unwrap_err();
        assert!(matches!(err, DiceError::DescriptorTooLong { field: "authority", .. }));
    }

    #[test]
    fn ids_are_positive() {
        for alg in [Algorithm::Ed25519, Algorithm::P256] {
            for byte in 0..8u8 {
                let key = LayerKey::derive(alg, &[byte; CDI_SIZE]).unwrap();
                assert_eq!(key.id[0] & 0x80, 0);
            }
        }
    }
}

//! Encryption at source (issue 5): a record's payload is a COSE_Encrypt0 (RFC 9052 §5.2) with
//! AES-128-GCM (COSE alg 1) under a per-epoch data key; at the start of each epoch the device
//! wraps that key to the owner in a COSE_Encrypt (RFC 9052 §5.1) whose one recipient uses
//! ECDH-ES + A128KW (COSE alg -29, RFC 9053 §6.3.1): an ephemeral P-256 key agreement with the
//! owner's static key, HKDF-SHA256 over the `COSE_KDF_Context` (RFC 9053 §5.2), and AES key
//! wrap (RFC 3394) of the data key. Layouts (CDDL) are in `crates/device/README.md`.
//!
//! - Device: [`SealingState`] holds **one** data key, the current epoch's; [`SealingState::rotate`]
//!   replaces it (the old key is zeroised and dropped) and returns the key-wrap message, which
//!   the device publishes as a record on [`STREAM_EPOCH_KEYS`](crate::record::STREAM_EPOCH_KEYS).
//!   The ephemeral ECDH secret lives only inside `rotate`. Randomness comes in as
//!   [`EpochEntropy`] (no RNG in this crate: hardware RNG, a seeded test generator, …).
//! - IVs are deterministic: `0x00000000 ‖ counter_be64`, counter 0 for the wrap message's own
//!   content and 1, 2, … for payloads. A data key is random per epoch and never stored, so a
//!   counter never restarts under the same key.
//! - A payload's external AAD binds it to its record: canonical CBOR
//!   `[TAG_RECORD_PAYLOAD_V1, device, stream, seq, epoch]` ([`payload_aad`]).
//! - Owner: [`unwrap_epoch_key`] then [`open_payload`]. Gateways and validators never get here.

use alloc::vec::Vec;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use aes_kw::KwAes128;
use chipledger_types::cbor::{Decoder, Encoder, Limits};
use chipledger_types::device_tx::DeviceId;
use chipledger_types::limits::MAX_RECORD_PAYLOAD_BYTES;
use chipledger_types::record::Record;
use coset::{
    CborSerializable, CoseEncrypt, CoseEncrypt0, CoseEncrypt0Builder, CoseEncryptBuilder, CoseKey, CoseKeyBuilder,
    CoseRecipient, CoseRecipientBuilder, HeaderBuilder, Label, RegisteredLabelWithPrivate, TaggedCborSerializable,
    cbor::value::Value, iana,
};
use hkdf::Hkdf;
use p256::elliptic_curve::sec1::ToSec1Point;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// Domain-separation tag of the payload AAD.
pub const TAG_RECORD_PAYLOAD_V1: &str = "chipledger/record-payload/v1";
/// Domain-separation tag of the key-wrap message's content.
pub const TAG_EPOCH_KEY_V1: &str = "chipledger/epoch-key/v1";
/// AES-128 data key length.
pub const DATA_KEY_BYTES: usize = 16;
/// AES-GCM IV length (COSE alg 1).
pub const IV_BYTES: usize = 12;
/// An RFC 3394 wrap of a 16-byte key.
pub const WRAPPED_KEY_BYTES: usize = 24;
/// GCM tag length.
pub const GCM_TAG_BYTES: usize = 16;
/// Largest key-wrap message (COSE_Encrypt) accepted.
pub const MAX_WRAP_BYTES: usize = 1024;
/// Largest plaintext that still fits a record payload after COSE_Encrypt0 framing and tag.
pub const MAX_PLAINTEXT_BYTES: usize = MAX_RECORD_PAYLOAD_BYTES - 64;
/// `keyDataLength` of A128KW in the KDF context, in bits.
const A128KW_KEY_BITS: u64 = 128;
/// COSE_Key / header labels used here (RFC 9052 §3.1, RFC 9053 §6.4.1).
const HEADER_EPHEMERAL_KEY: i64 = -1;

/// Errors of sealing and opening.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("{what} is {len} bytes; the limit is {max}")]
    TooLarge { what: &'static str, len: usize, max: usize },
    #[error("not a well-formed {0}")]
    Malformed(&'static str),
    #[error("unsupported COSE algorithm in {0} (expected A128GCM = 1, ECDH-ES+A128KW = -29)")]
    UnsupportedAlgorithm(&'static str),
    #[error("message marks header parameters critical that this receiver does not process")]
    UnsupportedCritical,
    #[error("the ephemeral key is not a P-256 point")]
    BadEphemeralKey,
    #[error("the wrapped key does not unwrap (wrong owner key, or tampered)")]
    UnwrapFailed,
    #[error("decryption failed (wrong key, wrong record context, or tampered ciphertext)")]
    DecryptFailed,
    #[error("the key-wrap content is not a chipledger epoch-key statement")]
    BadEpochStatement,
    #[error("no current epoch or the epoch policy says rotate first (call SealingState::rotate)")]
    RotationDue,
    #[error("the epoch counter is exhausted")]
    EpochsExhausted,
    #[error("the ephemeral secret from the entropy source is not a valid P-256 scalar")]
    BadEntropy,
}

/// A 128-bit data key; zeroised when dropped, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct EpochKey([u8; DATA_KEY_BYTES]);

impl EpochKey {
    pub fn from_bytes(bytes: [u8; DATA_KEY_BYTES]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; DATA_KEY_BYTES] {
        &self.0
    }
}

impl Drop for EpochKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EpochKey(..)")
    }
}

/// Fresh randomness for one epoch: the data key and the ephemeral ECDH secret. Zeroised on drop.
pub struct EpochEntropy {
    pub data_key: [u8; DATA_KEY_BYTES],
    pub ephemeral_secret: [u8; 32],
}

impl Drop for EpochEntropy {
    fn drop(&mut self) {
        self.data_key.zeroize();
        self.ephemeral_secret.zeroize();
    }
}

/// When a device starts a new epoch: after `records_max` payloads or `duration_ms`, whichever
/// comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochPolicy {
    pub records_max: u64,
    pub duration_ms: u64,
}

impl Default for EpochPolicy {
    /// 10 000 records or one hour.
    fn default() -> Self {
        Self {
            records_max: 10_000,
            duration_ms: 3_600_000,
        }
    }
}

/// What [`SealingState::rotate`] returns: the new epoch and its key-wrap message for the owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStart {
    pub epoch: u32,
    pub started_ms: u64,
    /// Tagged COSE_Encrypt (ECDH-ES + A128KW to the owner); publish it on the epoch-key stream.
    pub wrap: Vec<u8>,
}

/// What the owner learns from a key-wrap message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochGrant {
    pub device: DeviceId,
    pub epoch: u32,
    pub started_ms: u64,
    pub key: EpochKey,
}

struct ActiveEpoch {
    epoch: u32,
    key: EpochKey,
    started_ms: u64,
    /// Payloads sealed under `key` so far (= the last IV counter used).
    sealed: u64,
}

/// The device's sealing state: the owner's public key, the policy, and the current epoch's key
/// — never more than one key.
pub struct SealingState {
    device: DeviceId,
    owner: p256::PublicKey,
    policy: EpochPolicy,
    current: Option<ActiveEpoch>,
    next_epoch: u32,
}

impl SealingState {
    /// A state with no epoch yet; the first [`SealingState::rotate`] starts epoch `first_epoch`
    /// (persist the last epoch used so a rebooted device continues above it).
    pub fn new(device: DeviceId, owner: p256::PublicKey, policy: EpochPolicy, first_epoch: u32) -> Self {
        Self {
            device,
            owner,
            policy,
            current: None,
            next_epoch: first_epoch,
        }
    }

    /// The epoch whose key is held, if any: the only key the device has.
    pub fn held_epoch(&self) -> Option<u32> {
        self.current.as_ref().map(|c| c.epoch)
    }

    /// Whether a payload sealed at `now_ms` needs [`SealingState::rotate`] first.
    pub fn needs_rotation(&self, now_ms: u64) -> bool {
        match &self.current {
            None => true,
            Some(c) => {
                c.sealed >= self.policy.records_max || now_ms >= c.started_ms.saturating_add(self.policy.duration_ms)
            }
        }
    }

    /// Starts the next epoch with `entropy`: drops (zeroises) the previous key, keeps the new
    /// one, and returns the key-wrap message for the owner.
    pub fn rotate(&mut self, now_ms: u64, entropy: EpochEntropy) -> Result<EpochStart, SealError> {
        let epoch = self.next_epoch;
        let next_epoch = epoch.checked_add(1).ok_or(SealError::EpochsExhausted)?;
        let ephemeral =
            p256::NonZeroScalar::try_from(&entropy.ephemeral_secret[..]).map_err(|_| SealError::BadEntropy)?;
        let key = EpochKey::from_bytes(entropy.data_key);
        let content = epoch_statement(self.device, epoch, now_ms);
        let wrap = seal_cose_encrypt_ecdh_es_a128kw(&key, &iv_for(0), &content, &self.owner, &ephemeral)?;
        self.current = None; // the previous key is dropped (and zeroised) here
        self.current = Some(ActiveEpoch {
            epoch,
            key,
            started_ms: now_ms,
            sealed: 0,
        });
        self.next_epoch = next_epoch;
        Ok(EpochStart {
            epoch,
            started_ms: now_ms,
            wrap,
        })
    }

    /// Encrypts `plaintext` as the payload of record (`stream`, `seq`) under the current epoch's
    /// key; returns the epoch and the COSE_Encrypt0. Fails with [`SealError::RotationDue`] when
    /// the policy (or a missing epoch) calls for [`SealingState::rotate`] first.
    pub fn seal(&mut self, now_ms: u64, stream: &str, seq: u64, plaintext: &[u8]) -> Result<(u32, Vec<u8>), SealError> {
        if self.needs_rotation(now_ms) {
            return Err(SealError::RotationDue);
        }
        let device = self.device;
        let current = self.current.as_mut().ok_or(SealError::RotationDue)?;
        let counter = current.sealed.checked_add(1).ok_or(SealError::RotationDue)?;
        let aad = payload_aad(device, stream, seq, current.epoch);
        let encrypt0 = seal_encrypt0(&current.key, &iv_for(counter), plaintext, &aad)?;
        current.sealed = counter;
        Ok((current.epoch, encrypt0))
    }
}

/// The IV of the `counter`-th message under one key: `0x00000000 ‖ counter_be64`.
pub fn iv_for(counter: u64) -> [u8; IV_BYTES] {
    let mut iv = [0u8; IV_BYTES];
    iv[4..].copy_from_slice(&counter.to_be_bytes());
    iv
}

/// External AAD of a record payload: `[TAG_RECORD_PAYLOAD_V1, device, stream, seq, epoch]`.
pub fn payload_aad(device: DeviceId, stream: &str, seq: u64, epoch: u32) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(5)
        .text(TAG_RECORD_PAYLOAD_V1)
        .bytes(&device.0)
        .text(stream)
        .uint(seq)
        .uint(u64::from(epoch));
    e.into_bytes()
}

/// The owner's side: decrypts `record`'s payload with the epoch key (AAD from the record).
pub fn open_payload(record: &Record, key: &EpochKey) -> Result<Vec<u8>, SealError> {
    let aad = payload_aad(record.device, &record.stream, record.seq, record.epoch);
    open_encrypt0(&record.payload, key, &aad)
}

/// The wrap message's content: `[TAG_EPOCH_KEY_V1, device, epoch, started_ms]`.
fn epoch_statement(device: DeviceId, epoch: u32, started_ms: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(4)
        .text(TAG_EPOCH_KEY_V1)
        .bytes(&device.0)
        .uint(u64::from(epoch))
        .uint(started_ms);
    e.into_bytes()
}

fn decode_epoch_statement(bytes: &[u8], key: EpochKey) -> Result<EpochGrant, SealError> {
    let limits = Limits {
        input_bytes_max: 256,
        string_bytes_max: 64,
        array_items_max: 4,
        depth_max: 1,
    };
    let read = || -> Result<EpochGrant, chipledger_types::cbor::DecodeError> {
        let mut d = Decoder::new(bytes, limits)?;
        d.array_of(4)?;
        let tag_ok = d.text()? == TAG_EPOCH_KEY_V1;
        let grant = EpochGrant {
            device: DeviceId(d.fixed()?),
            epoch: d.u32()?,
            started_ms: d.uint()?,
            key,
        };
        d.end();
        d.finish()?;
        if !tag_ok {
            return Err(chipledger_types::cbor::DecodeError::Invalid {
                what: "tag",
                why: "not an epoch-key statement",
            });
        }
        Ok(grant)
    };
    read().map_err(|_| SealError::BadEpochStatement)
}

/// The owner's side: unwraps a device's key-wrap message with the owner's P-256 secret key and
/// checks its content; returns the device, epoch and data key.
pub fn unwrap_epoch_key(wrap: &[u8], owner_secret: &p256::SecretKey) -> Result<EpochGrant, SealError> {
    let (key, content) = open_cose_encrypt_ecdh_es_a128kw(wrap, owner_secret, &[])?;
    decode_epoch_statement(&content, key)
}

/// Domain-separation tag of a re-wrap's IV derivation ([`rewrap_iv`]).
pub const TAG_REWRAP_IV_V1: &str = "chipledger/rewrap-iv/v1";

/// The IV of a key-wrap message made by the owner's key service for a grantee
/// ([`wrap_epoch_key_for`]): the first 12 bytes of SHA-256(`TAG_REWRAP_IV_V1` ‖ 0x00 ‖ the
/// ephemeral public key, SEC1 uncompressed) with the top bit set. The device's IVs under an
/// epoch key are `0x00000000 ‖ counter`, whose first byte is 0, so a re-wrap never reuses one of
/// them; a fresh ephemeral key per re-wrap gives each re-wrap its own IV.
pub fn rewrap_iv(ephemeral_public: &p256::PublicKey) -> [u8; IV_BYTES] {
    let mut h = Sha256::new();
    h.update(TAG_REWRAP_IV_V1.as_bytes());
    h.update([0]);
    h.update(ephemeral_public.to_sec1_point(false).as_bytes());
    let digest = h.finalize();
    let mut iv = [0u8; IV_BYTES];
    iv.copy_from_slice(&digest[..IV_BYTES]);
    iv[0] |= 0x80;
    iv
}

/// The owner's key service: wraps an epoch key the owner unwrapped ([`unwrap_epoch_key`]) to
/// another P-256 key (a grantee's recipient key), in the same layout as the device's key-wrap
/// message — one ECDH-ES + A128KW recipient, the same [`TAG_EPOCH_KEY_V1`] statement of device,
/// epoch and start — so that `unwrap_epoch_key(wrap, recipient_secret)` returns `grant` exactly.
/// Only the IV differs ([`rewrap_iv`]). `ephemeral` must be fresh randomness for every call.
pub fn wrap_epoch_key_for(
    recipient: &p256::PublicKey,
    grant: &EpochGrant,
    ephemeral: &p256::NonZeroScalar,
) -> Result<Vec<u8>, SealError> {
    let iv = rewrap_iv(&p256::PublicKey::from_secret_scalar(ephemeral));
    let content = epoch_statement(grant.device, grant.epoch, grant.started_ms);
    seal_cose_encrypt_ecdh_es_a128kw(&grant.key, &iv, &content, recipient, ephemeral)
}

// ---- COSE building blocks (also checked against the cose-wg examples) -----------------------

fn a128gcm(key: &EpochKey) -> Aes128Gcm {
    Aes128Gcm::new(key.as_bytes().into())
}

fn bound(what: &'static str, len: usize, max: usize) -> Result<(), SealError> {
    if len > max {
        return Err(SealError::TooLarge { what, len, max });
    }
    Ok(())
}

/// A tagged COSE_Encrypt0: protected `{1: 1}` (A128GCM), unprotected `{5: iv}`.
pub fn seal_encrypt0(key: &EpochKey, iv: &[u8; IV_BYTES], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
    bound("plaintext", plaintext.len(), MAX_PLAINTEXT_BYTES)?;
    let cipher = a128gcm(key);
    let encrypt0 = CoseEncrypt0Builder::new()
        .protected(HeaderBuilder::new().algorithm(iana::Algorithm::A128GCM).build())
        .unprotected(HeaderBuilder::new().iv(iv.to_vec()).build())
        .try_create_ciphertext(plaintext, aad, |pt, enc| {
            cipher
                .encrypt(&Nonce::from(*iv), Payload { msg: pt, aad: enc })
                .map_err(|_| SealError::Malformed("plaintext (encryption failed)"))
        })?
        .build();
    encrypt0
        .to_tagged_vec()
        .map_err(|_| SealError::Malformed("COSE_Encrypt0 (does not encode)"))
}

/// Opens a COSE_Encrypt0 (tagged 16 or untagged) with AES-128-GCM and `external_aad`.
pub fn open_encrypt0(bytes: &[u8], key: &EpochKey, external_aad: &[u8]) -> Result<Vec<u8>, SealError> {
    bound("COSE_Encrypt0", bytes.len(), MAX_RECORD_PAYLOAD_BYTES)?;
    let encrypt0 = CoseEncrypt0::from_tagged_slice(bytes)
        .or_else(|_| CoseEncrypt0::from_slice(bytes))
        .map_err(|_| SealError::Malformed("COSE_Encrypt0"))?;
    check_content_alg(&encrypt0.protected.header, &encrypt0.unprotected, "COSE_Encrypt0")?;
    let iv = gcm_iv(&encrypt0.unprotected)?;
    let cipher = a128gcm(key);
    encrypt0.decrypt_ciphertext(
        external_aad,
        || SealError::Malformed("COSE_Encrypt0 (no ciphertext)"),
        |ct, enc| {
            cipher
                .decrypt(&Nonce::from(iv), Payload { msg: ct, aad: enc })
                .map_err(|_| SealError::DecryptFailed)
        },
    )
}

fn check_content_alg(
    protected: &coset::Header,
    unprotected: &coset::Header,
    what: &'static str,
) -> Result<(), SealError> {
    if !protected.crit.is_empty() {
        return Err(SealError::UnsupportedCritical);
    }
    if !unprotected.partial_iv.is_empty() || !unprotected.rest.is_empty() {
        return Err(SealError::Malformed(
            "content header (only alg, kid and a full IV are processed)",
        ));
    }
    match &protected.alg {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::A128GCM)) if unprotected.alg.is_none() => Ok(()),
        _ => Err(SealError::UnsupportedAlgorithm(what)),
    }
}

fn gcm_iv(unprotected: &coset::Header) -> Result<[u8; IV_BYTES], SealError> {
    <[u8; IV_BYTES]>::try_from(&unprotected.iv[..]).map_err(|_| SealError::Malformed("IV (must be 12 bytes)"))
}

/// The KEK of ECDH-ES + A128KW: HKDF-SHA256 (no salt) of the shared secret's x coordinate with
/// `COSE_KDF_Context = [-3 (A128KW), [nil, nil, nil], [nil, nil, nil], [128, protected]]`
/// (RFC 9053 §5.2, §6.3.1), `protected` being the recipient's serialized protected header.
pub fn ecdh_es_a128kw_kek(shared_x: &[u8], recipient_protected: &[u8]) -> [u8; DATA_KEY_BYTES] {
    let mut kek = [0u8; DATA_KEY_BYTES];
    Hkdf::<Sha256>::new(None, shared_x)
        .expand(&kdf_context(recipient_protected), &mut kek)
        .expect("16 bytes is a valid HKDF-SHA256 output length");
    kek
}

/// `COSE_KDF_Context` for A128KW with empty party info.
pub fn kdf_context(recipient_protected: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.array(4).int(iana::Algorithm::A128KW as i64);
    for _ in 0..2 {
        e.array(3).null().null().null();
    }
    e.array(2).uint(A128KW_KEY_BITS).bytes(recipient_protected);
    e.into_bytes()
}

/// The owner key's id carried as the recipient `kid`: the first 8 bytes of SHA-256 of its
/// compressed SEC1 encoding.
pub fn owner_key_id(owner: &p256::PublicKey) -> [u8; 8] {
    let digest = Sha256::digest(owner.to_sec1_point(true).as_bytes());
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&digest[..8]);
    kid
}

/// A tagged COSE_Encrypt of `plaintext` under `cek` (A128GCM, `iv`) with one ECDH-ES + A128KW
/// recipient for `owner`, using the ephemeral secret `ephemeral`.
pub fn seal_cose_encrypt_ecdh_es_a128kw(
    cek: &EpochKey,
    iv: &[u8; IV_BYTES],
    plaintext: &[u8],
    owner: &p256::PublicKey,
    ephemeral: &p256::NonZeroScalar,
) -> Result<Vec<u8>, SealError> {
    let recipient_protected = HeaderBuilder::new().algorithm(iana::Algorithm::ECDH_ES_A128KW).build();
    let protected_bytes = coset::ProtectedHeader {
        original_data: None,
        header: recipient_protected.clone(),
    }
    .cbor_bstr()
    .ok()
    .and_then(|v| v.into_bytes().ok())
    .ok_or(SealError::Malformed("recipient header"))?;
    let shared = p256::ecdh::diffie_hellman(ephemeral, owner.as_affine());
    let mut kek = ecdh_es_a128kw_kek(shared.raw_secret_bytes(), &protected_bytes);
    let mut wrapped = [0u8; WRAPPED_KEY_BYTES];
    let wrap = KwAes128::new(&kek.into())
        .wrap_key(cek.as_bytes(), &mut wrapped)
        .map(|w| w.to_vec());
    kek.zeroize();
    let wrapped = wrap.map_err(|_| SealError::Malformed("key wrap"))?;
    let epk = p256::PublicKey::from_secret_scalar(ephemeral).to_sec1_point(false);
    let (x, y) = (
        epk.x().ok_or(SealError::BadEntropy)?,
        epk.y().ok_or(SealError::BadEntropy)?,
    );
    let epk = CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.to_vec(), y.to_vec()).build();
    let epk = coset::AsCborValue::to_cbor_value(epk).map_err(|_| SealError::Malformed("ephemeral key"))?;
    let recipient = CoseRecipientBuilder::new()
        .protected(recipient_protected)
        .unprotected(
            HeaderBuilder::new()
                .key_id(owner_key_id(owner).to_vec())
                .value(HEADER_EPHEMERAL_KEY, epk)
                .build(),
        )
        .ciphertext(wrapped)
        .build();
    let cipher = a128gcm(cek);
    let encrypt = CoseEncryptBuilder::new()
        .protected(HeaderBuilder::new().algorithm(iana::Algorithm::A128GCM).build())
        .unprotected(HeaderBuilder::new().iv(iv.to_vec()).build())
        .try_create_ciphertext(plaintext, &[], |pt, enc| {
            cipher
                .encrypt(&Nonce::from(*iv), Payload { msg: pt, aad: enc })
                .map_err(|_| SealError::Malformed("plaintext (encryption failed)"))
        })?
        .add_recipient(recipient)
        .build();
    encrypt
        .to_tagged_vec()
        .map_err(|_| SealError::Malformed("COSE_Encrypt (does not encode)"))
}

/// Opens a COSE_Encrypt (tagged 96 or untagged) with content A128GCM and exactly one
/// ECDH-ES + A128KW recipient, using the owner's secret key; returns the CEK and plaintext.
pub fn open_cose_encrypt_ecdh_es_a128kw(
    bytes: &[u8],
    owner_secret: &p256::SecretKey,
    external_aad: &[u8],
) -> Result<(EpochKey, Vec<u8>), SealError> {
    bound("COSE_Encrypt", bytes.len(), MAX_WRAP_BYTES)?;
    let encrypt = CoseEncrypt::from_tagged_slice(bytes)
        .or_else(|_| CoseEncrypt::from_slice(bytes))
        .map_err(|_| SealError::Malformed("COSE_Encrypt"))?;
    check_content_alg(&encrypt.protected.header, &encrypt.unprotected, "COSE_Encrypt")?;
    let iv = gcm_iv(&encrypt.unprotected)?;
    let [recipient] = &encrypt.recipients[..] else {
        return Err(SealError::Malformed("COSE_Encrypt (must have exactly one recipient)"));
    };
    let cek = unwrap_recipient(recipient, owner_secret)?;
    let cipher = a128gcm(&cek);
    let plaintext = encrypt.decrypt_ciphertext(
        external_aad,
        || SealError::Malformed("COSE_Encrypt (no ciphertext)"),
        |ct, enc| {
            cipher
                .decrypt(&Nonce::from(iv), Payload { msg: ct, aad: enc })
                .map_err(|_| SealError::DecryptFailed)
        },
    )?;
    Ok((cek, plaintext))
}

fn unwrap_recipient(recipient: &CoseRecipient, owner_secret: &p256::SecretKey) -> Result<EpochKey, SealError> {
    let protected = &recipient.protected;
    if !protected.header.crit.is_empty() {
        return Err(SealError::UnsupportedCritical);
    }
    match &protected.header.alg {
        Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ECDH_ES_A128KW)) => {}
        _ => return Err(SealError::UnsupportedAlgorithm("recipient")),
    }
    let h = &recipient.unprotected;
    let only_epk = h
        .rest
        .iter()
        .all(|(label, _)| *label == Label::Int(HEADER_EPHEMERAL_KEY));
    if !only_epk || h.alg.is_some() || !h.iv.is_empty() || !h.partial_iv.is_empty() || h.content_type.is_some() {
        return Err(SealError::Malformed(
            "recipient (unprotected header may hold only kid and the ephemeral key)",
        ));
    }
    if !recipient.recipients.is_empty() {
        return Err(SealError::Malformed("recipient (nested recipients)"));
    }
    let protected_bytes = match &protected.original_data {
        Some(b) => b.clone(),
        None => Vec::new(),
    };
    let epk = ephemeral_key(&recipient.unprotected)?;
    let shared = p256::ecdh::diffie_hellman(owner_secret.to_nonzero_scalar(), epk.as_affine());
    let mut kek = ecdh_es_a128kw_kek(shared.raw_secret_bytes(), &protected_bytes);
    let wrapped = recipient.ciphertext.as_deref().unwrap_or_default();
    let mut cek = [0u8; DATA_KEY_BYTES];
    let unwrapped =
        wrapped.len() == WRAPPED_KEY_BYTES && KwAes128::new(&kek.into()).unwrap_key(wrapped, &mut cek).is_ok();
    kek.zeroize();
    if !unwrapped {
        cek.zeroize();
        return Err(SealError::UnwrapFailed);
    }
    Ok(EpochKey::from_bytes(cek))
}

/// The `-1` (ephemeral key) header: an EC2 P-256 COSE_Key with `x` and `y` byte strings.
fn ephemeral_key(unprotected: &coset::Header) -> Result<p256::PublicKey, SealError> {
    let value = unprotected
        .rest
        .iter()
        .find(|(label, _)| *label == Label::Int(HEADER_EPHEMERAL_KEY))
        .map(|(_, v)| v.clone())
        .ok_or(SealError::Malformed("recipient (no ephemeral key, header -1)"))?;
    let key = <CoseKey as coset::AsCborValue>::from_cbor_value(value).map_err(|_| SealError::BadEphemeralKey)?;
    if key.kty != coset::KeyType::Assigned(iana::KeyType::EC2) {
        return Err(SealError::BadEphemeralKey);
    }
    let param = |label: i64| key.params.iter().find(|(l, _)| *l == Label::Int(label)).map(|(_, v)| v);
    let crv_ok = matches!(param(-1), Some(Value::Integer(i)) if i128::from(*i) == iana::EllipticCurve::P_256 as i128);
    let (Some(Value::Bytes(x)), Some(Value::Bytes(y))) = (param(-2), param(-3)) else {
        return Err(SealError::BadEphemeralKey);
    };
    if !crv_ok || x.len() != 32 || y.len() != 32 {
        return Err(SealError::BadEphemeralKey);
    }
    let mut sec1 = [0u8; 65];
    sec1[0] = 0x04;
    sec1[1..33].copy_from_slice(x);
    sec1[33..].copy_from_slice(y);
    p256::PublicKey::from_sec1_bytes(&sec1).map_err(|_| SealError::BadEphemeralKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> EpochKey {
        EpochKey::from_bytes([3; 16])
    }

    fn encrypt0_with(protected: coset::Header, unprotected: coset::Header) -> Vec<u8> {
        CoseEncrypt0Builder::new()
            .protected(protected)
            .unprotected(unprotected)
            .ciphertext(alloc::vec![0; 20])
            .build()
            .to_tagged_vec()
            .unwrap()
    }

    #[test]
    fn encrypt0_headers_outside_the_profile_are_typed_errors() {
        let gcm = || HeaderBuilder::new().algorithm(iana::Algorithm::A128GCM);
        let iv = || HeaderBuilder::new().iv(alloc::vec![0; 12]);
        let cases: [(Vec<u8>, SealError); 5] = [
            (
                encrypt0_with(
                    HeaderBuilder::new().algorithm(iana::Algorithm::A256GCM).build(),
                    iv().build(),
                ),
                SealError::UnsupportedAlgorithm("COSE_Encrypt0"),
            ),
            (
                encrypt0_with(gcm().add_critical(iana::HeaderParameter::Alg).build(), iv().build()),
                SealError::UnsupportedCritical,
            ),
            (
                encrypt0_with(gcm().build(), HeaderBuilder::new().iv(alloc::vec![0; 8]).build()),
                SealError::Malformed("IV (must be 12 bytes)"),
            ),
            (
                encrypt0_with(gcm().build(), iv().partial_iv(alloc::vec![1]).build()),
                SealError::Malformed("content header (only alg, kid and a full IV are processed)"),
            ),
            (encrypt0_with(gcm().build(), iv().build()), SealError::DecryptFailed),
        ];
        for (bytes, want) in cases {
            assert_eq!(open_encrypt0(&bytes, &key(), &[]), Err(want));
        }
        let big = alloc::vec![0u8; MAX_RECORD_PAYLOAD_BYTES + 1];
        assert!(matches!(
            open_encrypt0(&big, &key(), &[]),
            Err(SealError::TooLarge { .. })
        ));
        let plaintext = alloc::vec![0u8; MAX_PLAINTEXT_BYTES + 1];
        assert!(matches!(
            seal_encrypt0(&key(), &iv_for(1), &plaintext, &[]),
            Err(SealError::TooLarge { .. })
        ));
    }

    #[test]
    fn the_largest_plaintext_fits_a_record_payload() {
        let sealed = seal_encrypt0(&key(), &iv_for(u64::MAX), &[0; MAX_PLAINTEXT_BYTES], &[0; 64]).unwrap();
        assert!(sealed.len() <= MAX_RECORD_PAYLOAD_BYTES, "{}", sealed.len());
    }

    #[test]
    fn wrap_messages_with_other_recipient_layouts_are_refused() {
        let owner = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
        let eph = p256::NonZeroScalar::try_from(&[9u8; 32][..]).unwrap();
        let wrap = seal_cose_encrypt_ecdh_es_a128kw(&key(), &iv_for(0), b"x", &owner.public_key(), &eph).unwrap();
        let mut two = CoseEncrypt::from_tagged_slice(&wrap).unwrap();
        two.recipients.push(two.recipients[0].clone());
        let two = two.to_tagged_vec().unwrap();
        assert!(matches!(
            open_cose_encrypt_ecdh_es_a128kw(&two, &owner, &[]),
            Err(SealError::Malformed(_))
        ));
        let mut direct = CoseEncrypt::from_tagged_slice(&wrap).unwrap();
        direct.recipients[0].protected = coset::ProtectedHeader {
            original_data: None,
            header: HeaderBuilder::new().algorithm(iana::Algorithm::ECDH_ES_A256KW).build(),
        };
        let direct = direct.to_tagged_vec().unwrap();
        assert_eq!(
            open_cose_encrypt_ecdh_es_a128kw(&direct, &owner, &[]),
            Err(SealError::UnsupportedAlgorithm("recipient"))
        );
        assert!(matches!(
            open_cose_encrypt_ecdh_es_a128kw(&[0u8; MAX_WRAP_BYTES + 1], &owner, &[]),
            Err(SealError::TooLarge { .. })
        ));
    }

    /// A re-wrap opens with the recipient's key only, names the same device, epoch, start and key
    /// as the device's own wrap, and never uses an IV of the device's counter space.
    #[test]
    fn an_epoch_key_rewrapped_for_a_grantee_opens_with_the_grantee_key_only() {
        let owner = p256::SecretKey::from_slice(&[0x42; 32]).unwrap();
        let grantee = p256::SecretKey::from_slice(&[0x43; 32]).unwrap();
        let mut device = SealingState::new(DeviceId([7; 20]), owner.public_key(), EpochPolicy::default(), 5);
        let entropy = EpochEntropy {
            data_key: [0x11; 16],
            ephemeral_secret: [0x21; 32],
        };
        let start = device.rotate(1_700_000_000_000, entropy).unwrap();
        let grant = unwrap_epoch_key(&start.wrap, &owner).unwrap();
        let cases = [[0x31u8; 32], [0x32; 32]];
        let mut ivs = Vec::new();
        for eph in cases {
            let eph = p256::NonZeroScalar::try_from(&eph[..]).unwrap();
            let wrap = wrap_epoch_key_for(&grantee.public_key(), &grant, &eph).unwrap();
            assert_eq!(unwrap_epoch_key(&wrap, &grantee).unwrap(), grant);
            assert_eq!(unwrap_epoch_key(&wrap, &owner), Err(SealError::UnwrapFailed));
            let iv = gcm_iv(&CoseEncrypt::from_tagged_slice(&wrap).unwrap().unprotected).unwrap();
            assert_ne!(iv[..4], [0; 4], "outside the device's 0x00000000 ‖ counter IVs");
            ivs.push(iv);
        }
        assert_ne!(ivs[0], ivs[1], "one IV per ephemeral key");
        let sealed = device.seal(1_700_000_000_001, "t", 1, b"reading").unwrap().1;
        let record_key = unwrap_epoch_key(
            &wrap_epoch_key_for(
                &grantee.public_key(),
                &grant,
                &p256::NonZeroScalar::try_from(&[0x33u8; 32][..]).unwrap(),
            )
            .unwrap(),
            &grantee,
        )
        .unwrap()
        .key;
        let aad = payload_aad(DeviceId([7; 20]), "t", 1, 5);
        assert_eq!(open_encrypt0(&sealed, &record_key, &aad).unwrap(), b"reading");
    }

    #[test]
    fn invalid_entropy_and_exhausted_epochs_are_errors() {
        let owner = p256::SecretKey::from_slice(&[0x42; 32]).unwrap().public_key();
        let mut s = SealingState::new(DeviceId([1; 20]), owner, EpochPolicy::default(), u32::MAX);
        let zero = EpochEntropy {
            data_key: [1; 16],
            ephemeral_secret: [0; 32],
        };
        assert_eq!(s.rotate(0, zero).unwrap_err(), SealError::EpochsExhausted);
        let mut s = SealingState::new(DeviceId([1; 20]), owner, EpochPolicy::default(), 0);
        let zero = EpochEntropy {
            data_key: [1; 16],
            ephemeral_secret: [0; 32],
        };
        assert_eq!(s.rotate(0, zero).unwrap_err(), SealError::BadEntropy);
        assert_eq!(s.held_epoch(), None);
    }
}

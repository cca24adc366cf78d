//! DeviceID and Alias X.509 certificates for the DICE chain, with the TCG DiceTcbInfo extension.
//!
//! The chain is `manufacturer CA → DeviceID → Alias`:
//! - the **manufacturer CA** is self-signed (tests and the demo; a real manufacturer brings its own);
//! - the **DeviceID** certificate certifies the device's DeviceID key (derived from the UDS) and is
//!   issued by the manufacturer CA: `basicConstraints CA:true, pathlen:0`, `keyUsage keyCertSign`;
//! - the **Alias** certificate certifies one firmware layer's Alias key and is issued by the DeviceID
//!   key: end entity, `keyUsage digitalSignature`.
//!
//! DeviceID and Alias carry `DiceTcbInfo` (TCG DICE Attestation Architecture, OID 2.23.133.5.4.1),
//! encoded with `der` derive types, IMPLICIT tags exactly as the TCG ASN.1 module says. The
//! extension is marked non-critical so that generic X.509 verifiers (`openssl verify`) accept the
//! chain; [`verify_chain`] processes it regardless.
//!
//! The manufacturer CA is P-256 and signs with ecdsa-with-SHA256. DeviceID and Alias keys are
//! P-256 (the default) or Ed25519 ([`crate::key`]): the DeviceID certificate's signature is the
//! CA's (ecdsa-with-SHA256), the Alias certificate's is the DeviceID key's: ecdsa-with-SHA256, or
//! id-Ed25519 (1.3.101.112, RFC 8410: no parameters, the raw 64-byte signature). A certificate
//! whose signatureAlgorithm does not match its issuer's key type is rejected
//! ([`CertError::AlgorithmMismatch`]). Certificates are built with x509-cert's builder (no
//! hand-built DER) and verified with `p256` / `ed25519-dalek`. Everything here needs `alloc` only.

use alloc::{string::String, vec::Vec};
use core::{fmt::Write as _, str::FromStr, time::Duration};

use const_oid::{
    AssociatedOid, ObjectIdentifier,
    db::rfc5280::{
        ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_BASIC_CONSTRAINTS, ID_CE_KEY_USAGE, ID_CE_SUBJECT_KEY_IDENTIFIER,
    },
    db::rfc5912::{ECDSA_WITH_SHA_256, ID_SHA_256, ID_SHA_384, ID_SHA_512},
    db::rfc8410::ID_ED_25519,
};
use der::{
    Decode, Encode, Sequence,
    asn1::{BitString, GeneralizedTime, OctetString},
    referenced::OwnedToRef,
};
use p256::ecdsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::{
    Certificate, TbsCertificate,
    builder::{Builder, CertificateBuilder, profile::BuilderProfile},
    ext::{
        Extension, ToExtension,
        pkix::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier},
    },
    name::Name,
    serial_number::SerialNumber,
    time::{Time, Validity},
};

use crate::key::{DeviceKeyAlg, DevicePublicKey, DeviceSignature, DeviceSigner};

/// `tcg-dice-TcbInfo` (TCG DICE Attestation Architecture): `{ tcg-dice 1 }` = 2.23.133.5.4.1.
pub const OID_TCG_DICE_TCB_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.23.133.5.4.1");

/// Largest certificate (DER) that [`verify_chain`] accepts.
pub const MAX_CERT_BYTES: usize = 4096;
/// Most FWIDs in one DiceTcbInfo.
pub const MAX_FWIDS: usize = 8;
/// Longest vendor / model / version string in a DiceTcbInfo.
pub const MAX_TCB_STRING_BYTES: usize = 128;
/// Longest vendorInfo / type octet string in a DiceTcbInfo.
pub const MAX_TCB_OCTETS: usize = 256;
/// Longest subject ID (rendered as hex in the subject CN, and the serial number).
pub const MAX_SUBJECT_ID_BYTES: usize = 20;
/// Path length of the manufacturer CA: one intermediate (DeviceID) may follow it.
pub const CA_PATH_LEN: u8 = 1;
/// Path length of the DeviceID certificate: only end-entity Alias certificates follow it.
pub const DEVICEID_PATH_LEN: u8 = 0;

/// Which certificate of the chain an error or a setting refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertRole {
    /// The manufacturer CA (trust anchor).
    Ca,
    /// The DeviceID certificate.
    DeviceId,
    /// The Alias certificate.
    Alias,
}

impl core::fmt::Display for CertRole {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CertRole::Ca => "manufacturer CA certificate",
            CertRole::DeviceId => "DeviceID certificate",
            CertRole::Alias => "Alias certificate",
        })
    }
}

/// Errors from issuing or verifying DICE certificates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The DER is longer than [`MAX_CERT_BYTES`].
    #[error("{role} is {len} bytes; the limit is {max}")]
    TooLarge { role: CertRole, len: usize, max: usize },
    /// The DER does not parse as an X.509 certificate.
    #[error("{role} is not a valid DER X.509 certificate: {source}")]
    Malformed { role: CertRole, source: der::Error },
    /// The certificate parses, but re-encodes differently (not DER, or trailing data).
    #[error("{role} is not canonical DER")]
    NonCanonical { role: CertRole },
    /// Signature algorithm other than ecdsa-with-SHA256 or id-Ed25519, parameters present,
    /// inconsistent algorithm fields, or a manufacturer CA that is not P-256.
    #[error("{role} is not signed with ecdsa-with-SHA256 (ES256) or Ed25519, or its algorithm fields disagree")]
    UnsupportedAlgorithm { role: CertRole },
    /// The signatureAlgorithm does not fit the issuer's key type (e.g. Ed25519 under a P-256 key).
    #[error("{role} is signed with {signature_alg} but its issuer's key is {issuer_alg:?}")]
    AlgorithmMismatch {
        role: CertRole,
        signature_alg: ObjectIdentifier,
        issuer_alg: DeviceKeyAlg,
    },
    /// The subject public key is not a valid P-256 or Ed25519 key.
    #[error("{role} does not carry a valid P-256 or Ed25519 public key")]
    BadPublicKey { role: CertRole },
    /// The signature does not verify under the issuer's key.
    #[error("{role} signature does not verify under its issuer's key")]
    BadSignature { role: CertRole },
    /// The issuer name is not the subject of the certificate above it.
    #[error("{role} issuer name does not match the subject of its issuer")]
    IssuerMismatch { role: CertRole },
    /// A DeviceID or Alias certificate whose issuer is itself (the manufacturer CA's own
    /// self-signed certificate offered as a DeviceID, say): a device certificate names the
    /// device, and its issuer is the layer below.
    #[error("{role} is self-issued (its subject is its issuer): not a device certificate")]
    SelfIssued { role: CertRole },
    /// The authority key identifier does not match the issuer's subject key identifier.
    #[error("{role} authority key identifier does not match its issuer's subject key identifier")]
    KeyIdMismatch { role: CertRole },
    /// A certificate that must be a CA lacks `basicConstraints CA:true`.
    #[error("{role} is not a CA (basicConstraints CA:true missing) but issues certificates")]
    NotCa { role: CertRole },
    /// The end-entity certificate claims to be a CA.
    #[error("{role} must be an end entity but has basicConstraints CA:true")]
    UnexpectedCa { role: CertRole },
    /// A path length constraint forbids this chain.
    #[error("{role} path length constraint is too small for this chain")]
    PathLenExceeded { role: CertRole },
    /// A key usage the role needs is not asserted.
    #[error("{role} keyUsage lacks {usage}")]
    KeyUsageMissing { role: CertRole, usage: &'static str },
    /// A critical extension this verifier does not process.
    #[error("{role} has an unrecognised critical extension {oid}")]
    UnknownCriticalExtension { role: CertRole, oid: ObjectIdentifier },
    /// An extension appears twice or does not parse.
    #[error("{role} has a duplicate or malformed extension {oid}")]
    BadExtension { role: CertRole, oid: ObjectIdentifier },
    /// DiceTcbInfo is required but absent.
    #[error("{role} has no DiceTcbInfo extension (2.23.133.5.4.1)")]
    MissingTcbInfo { role: CertRole },
    /// DiceTcbInfo parses but violates a limit or a digest length.
    #[error("{role} DiceTcbInfo is invalid: {reason}")]
    BadTcbInfo { role: CertRole, reason: &'static str },
    /// `now` is before notBefore.
    #[error("{role} is not valid yet")]
    NotYetValid { role: CertRole },
    /// `now` is after notAfter.
    #[error("{role} has expired")]
    Expired { role: CertRole },
    /// An input to issuance is out of range (subject ID length, validity, name syntax).
    #[error("invalid certificate request: {reason}")]
    InvalidRequest { reason: &'static str },
    /// The x509-cert builder failed.
    #[error("certificate builder failed: {0}")]
    Build(x509_cert::builder::Error),
}

/// A firmware ID: `FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }`.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct Fwid {
    /// Digest algorithm (id-sha256, id-sha384 or id-sha512).
    pub hash_alg: ObjectIdentifier,
    /// The digest of the measured firmware.
    pub digest: OctetString,
}

impl Fwid {
    /// A SHA-256 FWID.
    pub fn sha256(digest: &[u8; 32]) -> Self {
        Self::new(ID_SHA_256, digest)
    }

    /// A SHA-512 FWID.
    pub fn sha512(digest: &[u8; 64]) -> Self {
        Self::new(ID_SHA_512, digest)
    }

    fn new(hash_alg: ObjectIdentifier, digest: &[u8]) -> Self {
        let digest = OctetString::new(digest).expect("a 32/64-byte digest fits an OCTET STRING");
        Self { hash_alg, digest }
    }

    /// Digest length that `hash_alg` implies, if it is a supported algorithm.
    pub fn expected_len(&self) -> Option<usize> {
        match self.hash_alg {
            ID_SHA_256 => Some(32),
            ID_SHA_384 => Some(48),
            ID_SHA_512 => Some(64),
            _ => None,
        }
    }
}

/// `DiceTcbInfo` from the TCG DICE Attestation Architecture (OID 2.23.133.5.4.1):
///
/// ```text
/// DiceTcbInfo ::= SEQUENCE {
///     vendor     [0] IMPLICIT UTF8String OPTIONAL,
///     model      [1] IMPLICIT UTF8String OPTIONAL,
///     version    [2] IMPLICIT UTF8String OPTIONAL,
///     svn        [3] IMPLICIT INTEGER OPTIONAL,
///     layer      [4] IMPLICIT INTEGER OPTIONAL,
///     index      [5] IMPLICIT INTEGER OPTIONAL,
///     fwids      [6] IMPLICIT FWIDLIST OPTIONAL,
///     flags      [7] IMPLICIT OperationalFlags OPTIONAL,
///     vendorInfo [8] IMPLICIT OCTET STRING OPTIONAL,
///     type       [9] IMPLICIT OCTET STRING OPTIONAL,
///     flagsMask  [10] IMPLICIT OperationalFlagsMask OPTIONAL }
/// FWIDLIST ::= SEQUENCE SIZE (1..MAX) OF FWID
/// ```
///
/// We write vendor, model, version, svn, layer and fwids; the remaining fields are decoded (so a
/// chain from another DICE implementation parses) and kept as raw values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Sequence)]
pub struct DiceTcbInfo {
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub vendor: Option<String>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub model: Option<String>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub version: Option<String>,
    /// Security version number (anti-rollback).
    #[asn1(context_specific = "3", tag_mode = "IMPLICIT", optional = "true")]
    pub svn: Option<u64>,
    /// DICE layer (0 = the layer measured by the DICE engine / ROM).
    #[asn1(context_specific = "4", tag_mode = "IMPLICIT", optional = "true")]
    pub layer: Option<u64>,
    #[asn1(context_specific = "5", tag_mode = "IMPLICIT", optional = "true")]
    pub index: Option<u64>,
    #[asn1(context_specific = "6", tag_mode = "IMPLICIT", optional = "true")]
    pub fwids: Option<Vec<Fwid>>,
    #[asn1(context_specific = "7", tag_mode = "IMPLICIT", optional = "true")]
    pub flags: Option<BitString>,
    #[asn1(context_specific = "8", tag_mode = "IMPLICIT", optional = "true")]
    pub vendor_info: Option<OctetString>,
    #[asn1(context_specific = "9", tag_mode = "IMPLICIT", optional = "true")]
    pub tcb_type: Option<OctetString>,
    #[asn1(context_specific = "10", tag_mode = "IMPLICIT", optional = "true")]
    pub flags_mask: Option<BitString>,
}

impl AssociatedOid for DiceTcbInfo {
    const OID: ObjectIdentifier = OID_TCG_DICE_TCB_INFO;
}

impl DiceTcbInfo {
    /// Checks the limits and digest lengths; `Err` carries a reason for [`CertError::BadTcbInfo`].
    pub fn validate(&self) -> Result<(), &'static str> {
        for s in [&self.vendor, &self.model, &self.version].into_iter().flatten() {
            if s.len() > MAX_TCB_STRING_BYTES {
                return Err("a vendor/model/version string is longer than MAX_TCB_STRING_BYTES");
            }
        }
        for o in [&self.vendor_info, &self.tcb_type].into_iter().flatten() {
            if o.as_bytes().len() > MAX_TCB_OCTETS {
                return Err("vendorInfo or type is longer than MAX_TCB_OCTETS");
            }
        }
        if let Some(fwids) = &self.fwids {
            if fwids.is_empty() {
                return Err("fwids is present but empty (FWIDLIST is SIZE (1..MAX))");
            }
            if fwids.len() > MAX_FWIDS {
                return Err("more than MAX_FWIDS fwids");
            }
            for fwid in fwids {
                if fwid.expected_len() != Some(fwid.digest.as_bytes().len()) {
                    return Err("an FWID has an unsupported hash or a wrong digest length");
                }
            }
        }
        Ok(())
    }

    /// The first FWID with the given digest algorithm.
    pub fn fwid(&self, hash_alg: ObjectIdentifier) -> Option<&[u8]> {
        let fwids = self.fwids.as_ref()?;
        let fwid = fwids.iter().find(|f| f.hash_alg == hash_alg)?;
        Some(fwid.digest.as_bytes())
    }
}

/// Validity window in seconds since the Unix epoch; `not_after_unix_s: None` means "no
/// well-defined expiration" (99991231235959Z, RFC 5280 §4.1.2.5), as DICE certificates use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertValidity {
    pub not_before_unix_s: u64,
    pub not_after_unix_s: Option<u64>,
}

impl CertValidity {
    /// From 2018-03-22T00:00:00Z (open-dice's notBefore date) with no expiration.
    pub const DICE_DEFAULT: CertValidity = CertValidity {
        not_before_unix_s: 1_521_676_800,
        not_after_unix_s: None,
    };

    fn to_x509(self) -> Result<Validity, CertError> {
        let bad = |_| CertError::InvalidRequest {
            reason: "validity time out of range",
        };
        let nb = GeneralizedTime::from_unix_duration(Duration::from_secs(self.not_before_unix_s)).map_err(bad)?;
        let na = match self.not_after_unix_s {
            None => Time::INFINITY,
            Some(s) => Time::GeneralTime(GeneralizedTime::from_unix_duration(Duration::from_secs(s)).map_err(bad)?),
        };
        if na.to_unix_duration().as_secs() < self.not_before_unix_s {
            return Err(CertError::InvalidRequest {
                reason: "notAfter is before notBefore",
            });
        }
        Ok(Validity::new(Time::GeneralTime(nb), na))
    }
}

/// What the issuer certifies about a DeviceID or Alias key. `K` is the subject key's type: a
/// P-256 `VerifyingKey` (the default), an Ed25519 `VerifyingKey` or a [`DevicePublicKey`].
#[derive(Clone, Debug)]
pub struct CertRequest<'a, K = VerifyingKey> {
    /// The key being certified.
    pub subject_public_key: &'a K,
    /// Subject ID (open-dice: the 20-byte KDF of the public key; else [`key_id`]). It becomes the
    /// subject CN (hex) and the serial number. 1..=[`MAX_SUBJECT_ID_BYTES`] bytes.
    pub subject_id: &'a [u8],
    /// The layer's TCB: firmware measurement, version, security version.
    pub tcb_info: &'a DiceTcbInfo,
    pub validity: CertValidity,
}

/// A 20-byte key identifier: the first 160 bits of SHA-256 over the SEC1 uncompressed point
/// (RFC 7093 §2 method 1 style). Use it as a subject ID when no DICE ID is at hand.
pub fn key_id(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_sec1_point(false);
    let digest = Sha256::digest(point.as_bytes());
    let mut id = [0u8; 20];
    id.copy_from_slice(&digest[..20]);
    id
}

/// The certificate profile handed to x509-cert's builder: names, constraints and extensions.
struct DiceProfile<'a> {
    issuer: Name,
    subject: Name,
    role: CertRole,
    tcb_info: Option<&'a DiceTcbInfo>,
}

impl BuilderProfile for DiceProfile<'_> {
    fn get_issuer(&self, _subject: &Name) -> Name {
        self.issuer.clone()
    }

    fn get_subject(&self) -> Name {
        self.subject.clone()
    }

    fn build_extensions(
        &self,
        spk: SubjectPublicKeyInfoRef<'_>,
        issuer_spk: SubjectPublicKeyInfoRef<'_>,
        tbs: &TbsCertificate,
    ) -> x509_cert::builder::Result<Vec<Extension>> {
        let (ca, path_len, usage) = match self.role {
            CertRole::Ca => (true, Some(CA_PATH_LEN), KeyUsages::KeyCertSign | KeyUsages::CRLSign),
            CertRole::DeviceId => (true, Some(DEVICEID_PATH_LEN), KeyUsages::KeyCertSign.into()),
            CertRole::Alias => (false, None, KeyUsages::DigitalSignature.into()),
        };
        let subject = tbs.subject();
        let mut exts: Vec<Extension> = Vec::new();
        let bc = BasicConstraints {
            ca,
            path_len_constraint: path_len,
        };
        exts.push(bc.to_extension(subject, &exts)?);
        exts.push(KeyUsage(usage).to_extension(subject, &exts)?);
        exts.push(SubjectKeyIdentifier::try_from(spk)?.to_extension(subject, &exts)?);
        exts.push(AuthorityKeyIdentifier::try_from(issuer_spk)?.to_extension(subject, &exts)?);
        if let Some(tcb) = self.tcb_info {
            exts.push((OID_TCG_DICE_TCB_INFO, false, tcb).to_extension(subject, &exts)?);
        }
        Ok(exts)
    }
}

fn serial_from_id(id: &[u8]) -> Result<SerialNumber, CertError> {
    let mut bytes = [0u8; MAX_SUBJECT_ID_BYTES];
    let bytes = &mut bytes[..id.len()];
    bytes.copy_from_slice(id);
    bytes[0] &= 0x7f; // positive INTEGER of at most 20 octets (RFC 5280 §4.1.2.2)
    if bytes.iter().all(|b| *b == 0) {
        bytes[bytes.len() - 1] = 1; // serial numbers must be positive, never zero
    }
    SerialNumber::new(bytes).map_err(|_| CertError::InvalidRequest { reason: "bad serial" })
}

fn subject_name_for_id(id: &[u8]) -> Result<Name, CertError> {
    if id.is_empty() || id.len() > MAX_SUBJECT_ID_BYTES {
        return Err(CertError::InvalidRequest {
            reason: "subject ID must be 1..=20 bytes",
        });
    }
    let mut dn = String::from("CN=");
    for b in id {
        let _ = write!(dn, "{b:02x}");
    }
    Name::from_str(&dn).map_err(|_| CertError::InvalidRequest { reason: "subject name" })
}

fn build(
    profile: DiceProfile<'_>,
    serial: SerialNumber,
    validity: CertValidity,
    subject_key: &DevicePublicKey,
    signer: DeviceSigner<'_>,
) -> Result<Vec<u8>, CertError> {
    let spki = subject_key.to_spki().map_err(|_| CertError::InvalidRequest {
        reason: "subject public key encoding",
    })?;
    let builder = CertificateBuilder::new(profile, serial, validity.to_x509()?, spki).map_err(CertError::Build)?;
    let cert = match signer {
        DeviceSigner::P256(key) => builder.build::<_, DerSignature>(key),
        DeviceSigner::Ed25519(key) => builder.build::<_, ed25519_dalek::Signature>(key),
    }
    .map_err(CertError::Build)?;
    let der = cert.to_der().map_err(|e| CertError::Build(e.into()))?;
    debug_assert!(der.len() <= MAX_CERT_BYTES, "issued certificate exceeds MAX_CERT_BYTES");
    Ok(der)
}

/// Issues the self-signed manufacturer CA certificate. `ca_name` is an RFC 4514 distinguished
/// name, e.g. `"CN=Acme Device CA,O=Acme"`.
pub fn issue_ca_cert(
    ca_key: &SigningKey,
    ca_name: &str,
    serial: u64,
    validity: CertValidity,
) -> Result<Vec<u8>, CertError> {
    let name = Name::from_str(ca_name).map_err(|_| CertError::InvalidRequest {
        reason: "CA name is not an RFC 4514 DN",
    })?;
    if name.is_empty() {
        return Err(CertError::InvalidRequest {
            reason: "CA name is empty",
        });
    }
    let serial = serial_from_id(&serial.max(1).to_be_bytes())?;
    let profile = DiceProfile {
        issuer: name.clone(),
        subject: name,
        role: CertRole::Ca,
        tcb_info: None,
    };
    let public = DevicePublicKey::from(ca_key.verifying_key());
    build(profile, serial, validity, &public, DeviceSigner::P256(ca_key))
}

/// Issues a DeviceID certificate for a P-256 or Ed25519 key, signed by the (P-256)
/// manufacturer CA key with ecdsa-with-SHA256.
pub fn issue_deviceid_cert<K: Clone + Into<DevicePublicKey>>(
    ca_key: &SigningKey,
    ca_cert_der: &[u8],
    request: &CertRequest<'_, K>,
) -> Result<Vec<u8>, CertError> {
    issue_under(
        DeviceSigner::P256(ca_key),
        ca_cert_der,
        CertRole::Ca,
        CertRole::DeviceId,
        request,
    )
}

/// Issues an Alias certificate for one firmware layer, signed by the DeviceID key with its own
/// algorithm (ecdsa-with-SHA256 or Ed25519). `deviceid_key`: a P-256 or Ed25519 `SigningKey`, a
/// [`crate::dice::KeyPair`] or a [`DeviceSigner`].
pub fn issue_alias_cert<'k, K: Clone + Into<DevicePublicKey>>(
    deviceid_key: impl Into<DeviceSigner<'k>>,
    deviceid_cert_der: &[u8],
    request: &CertRequest<'_, K>,
) -> Result<Vec<u8>, CertError> {
    issue_under(
        deviceid_key.into(),
        deviceid_cert_der,
        CertRole::DeviceId,
        CertRole::Alias,
        request,
    )
}

fn issue_under<K: Clone + Into<DevicePublicKey>>(
    issuer_key: DeviceSigner<'_>,
    issuer_cert_der: &[u8],
    issuer_role: CertRole,
    role: CertRole,
    request: &CertRequest<'_, K>,
) -> Result<Vec<u8>, CertError> {
    let issuer_cert = parse(issuer_cert_der, issuer_role)?;
    let issuer_public = public_key(&issuer_cert, issuer_role)?;
    if issuer_public != issuer_key.public_key() {
        return Err(CertError::InvalidRequest {
            reason: "issuer key does not match issuer certificate",
        });
    }
    request
        .tcb_info
        .validate()
        .map_err(|reason| CertError::BadTcbInfo { role, reason })?;
    let profile = DiceProfile {
        issuer: issuer_cert.tbs_certificate().subject().clone(),
        subject: subject_name_for_id(request.subject_id)?,
        role,
        tcb_info: Some(request.tcb_info),
    };
    let serial = serial_from_id(request.subject_id)?;
    let subject_key: DevicePublicKey = request.subject_public_key.clone().into();
    build(profile, serial, request.validity, &subject_key, issuer_key)
}

/// What a verified chain tells the relying party.
#[derive(Clone, Debug)]
pub struct VerifiedChain {
    /// The Alias key: verifies the device's evidence (EAT) and records for this firmware layer.
    pub alias_public_key: DevicePublicKey,
    /// The DeviceID key (what the ledger registers as the device's identity).
    pub deviceid_public_key: DevicePublicKey,
    /// TCB of the layer the Alias certificate describes.
    pub alias_tcb_info: DiceTcbInfo,
    /// TCB in the DeviceID certificate, if present.
    pub deviceid_tcb_info: Option<DiceTcbInfo>,
}

/// Verifies `manufacturer CA → DeviceID → Alias` (all DER) and extracts the keys and DiceTcbInfo.
///
/// Checks: size limits and canonical DER; a P-256 CA; each signature's algorithm
/// (ecdsa-with-SHA256 or Ed25519) matches its issuer's key, and verifies; issuer/subject name linkage and authority/subject key identifiers; basicConstraints and
/// path lengths; keyUsage; no unrecognised critical extension; DiceTcbInfo well-formed and
/// present in the Alias certificate; and, when `now_unix_s` is given, every validity window.
pub fn verify_chain(
    ca_der: &[u8],
    deviceid_der: &[u8],
    alias_der: &[u8],
    now_unix_s: Option<u64>,
) -> Result<VerifiedChain, CertError> {
    let ca = parse(ca_der, CertRole::Ca)?;
    let deviceid = parse(deviceid_der, CertRole::DeviceId)?;
    let alias = parse(alias_der, CertRole::Alias)?;

    let ca_key = ca_public_key(&ca)?;
    let deviceid_key = public_key(&deviceid, CertRole::DeviceId)?;
    let alias_key = public_key(&alias, CertRole::Alias)?;

    let ca_ext = check_extensions(&ca, CertRole::Ca)?;
    let deviceid_ext = check_extensions(&deviceid, CertRole::DeviceId)?;
    let alias_ext = check_extensions(&alias, CertRole::Alias)?;

    let ca_issuer = Issuer {
        cert: &ca,
        exts: &ca_ext,
        key: &ca_key,
    };
    let deviceid_issuer = Issuer {
        cert: &deviceid,
        exts: &deviceid_ext,
        key: &deviceid_key,
    };
    check_link(&ca, &ca_ext, &ca_issuer, CertRole::Ca)?;
    check_link(&deviceid, &deviceid_ext, &ca_issuer, CertRole::DeviceId)?;
    check_link(&alias, &alias_ext, &deviceid_issuer, CertRole::Alias)?;

    check_issuer_role(&ca_ext, CertRole::Ca, 1)?;
    check_issuer_role(&deviceid_ext, CertRole::DeviceId, 0)?;
    check_end_entity(&alias_ext)?;

    if let Some(now) = now_unix_s {
        check_time(&ca, CertRole::Ca, now)?;
        check_time(&deviceid, CertRole::DeviceId, now)?;
        check_time(&alias, CertRole::Alias, now)?;
    }
    let alias_tcb_info = alias_ext
        .tcb_info
        .ok_or(CertError::MissingTcbInfo { role: CertRole::Alias })?;
    Ok(VerifiedChain {
        alias_public_key: alias_key,
        deviceid_public_key: deviceid_key,
        alias_tcb_info,
        deviceid_tcb_info: deviceid_ext.tcb_info,
    })
}

/// Verifies a self-signed manufacturer CA certificate on its own, with the CA checks of
/// [`verify_chain`]; returns its public key. The ledger runs this before registering a CA.
pub fn verify_ca(ca_der: &[u8], now_unix_s: Option<u64>) -> Result<VerifyingKey, CertError> {
    match checked_ca(ca_der, now_unix_s)? {
        (_, _, DevicePublicKey::P256(key)) => Ok(key),
        _ => Err(CertError::UnsupportedAlgorithm { role: CertRole::Ca }),
    }
}

/// Verifies `manufacturer CA → DeviceID` (the first link of [`verify_chain`], with the same
/// checks); returns the DeviceID public key (P-256 or Ed25519). The ledger runs this when a
/// device is registered.
pub fn verify_deviceid(
    ca_der: &[u8],
    deviceid_der: &[u8],
    now_unix_s: Option<u64>,
) -> Result<DevicePublicKey, CertError> {
    let (ca, ca_ext, ca_key) = checked_ca(ca_der, now_unix_s)?;
    let deviceid = parse(deviceid_der, CertRole::DeviceId)?;
    let deviceid_key = public_key(&deviceid, CertRole::DeviceId)?;
    let deviceid_ext = check_extensions(&deviceid, CertRole::DeviceId)?;
    let issuer = Issuer {
        cert: &ca,
        exts: &ca_ext,
        key: &ca_key,
    };
    check_link(&deviceid, &deviceid_ext, &issuer, CertRole::DeviceId)?;
    check_issuer_role(&deviceid_ext, CertRole::DeviceId, 0)?;
    if let Some(now) = now_unix_s {
        check_time(&deviceid, CertRole::DeviceId, now)?;
    }
    Ok(deviceid_key)
}

/// A parsed manufacturer CA certificate that passed the CA checks of [`verify_chain`].
fn checked_ca(ca_der: &[u8], now_unix_s: Option<u64>) -> Result<(Certificate, Exts, DevicePublicKey), CertError> {
    let ca = parse(ca_der, CertRole::Ca)?;
    let ca_key = ca_public_key(&ca)?;
    let ca_ext = check_extensions(&ca, CertRole::Ca)?;
    let issuer = Issuer {
        cert: &ca,
        exts: &ca_ext,
        key: &ca_key,
    };
    check_link(&ca, &ca_ext, &issuer, CertRole::Ca)?;
    check_issuer_role(&ca_ext, CertRole::Ca, 1)?;
    if let Some(now) = now_unix_s {
        check_time(&ca, CertRole::Ca, now)?;
    }
    Ok((ca, ca_ext, ca_key))
}

/// Parses one certificate, bounded and strict: the DER must re-encode byte-identically, so the
/// re-encoded TBS is exactly what the issuer signed.
fn parse(der: &[u8], role: CertRole) -> Result<Certificate, CertError> {
    if der.len() > MAX_CERT_BYTES {
        return Err(CertError::TooLarge {
            role,
            len: der.len(),
            max: MAX_CERT_BYTES,
        });
    }
    let cert = Certificate::from_der(der).map_err(|source| CertError::Malformed { role, source })?;
    match cert.to_der() {
        Ok(again) if again == der => Ok(cert),
        _ => Err(CertError::NonCanonical { role }),
    }
}

/// The subject key of a DeviceID or Alias certificate: P-256 or Ed25519, by the SPKI OID.
fn public_key(cert: &Certificate, role: CertRole) -> Result<DevicePublicKey, CertError> {
    let spki: SubjectPublicKeyInfoRef<'_> = cert.tbs_certificate().subject_public_key_info().owned_to_ref();
    DevicePublicKey::from_spki(spki).map_err(|_| CertError::BadPublicKey { role })
}

/// The manufacturer CA key, which must be P-256.
fn ca_public_key(cert: &Certificate) -> Result<DevicePublicKey, CertError> {
    let role = CertRole::Ca;
    match public_key(cert, role)? {
        key @ DevicePublicKey::P256(_) => Ok(key),
        DevicePublicKey::Ed25519(_) => Err(CertError::UnsupportedAlgorithm { role }),
    }
}

/// The extensions the verifier understands, decoded once.
struct Exts {
    basic: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    ski: Option<SubjectKeyIdentifier>,
    aki: Option<AuthorityKeyIdentifier>,
    tcb_info: Option<DiceTcbInfo>,
}

fn check_extensions(cert: &Certificate, role: CertRole) -> Result<Exts, CertError> {
    let mut exts = Exts {
        basic: None,
        key_usage: None,
        ski: None,
        aki: None,
        tcb_info: None,
    };
    let Some(list) = cert.tbs_certificate().extensions() else {
        return Ok(exts);
    };
    for ext in list {
        let oid = ext.extn_id;
        let bad = || CertError::BadExtension { role, oid };
        let value = ext.extn_value.as_bytes();
        match oid {
            ID_CE_BASIC_CONSTRAINTS => set_once(&mut exts.basic, value, bad)?,
            ID_CE_KEY_USAGE => set_once(&mut exts.key_usage, value, bad)?,
            ID_CE_SUBJECT_KEY_IDENTIFIER => set_once(&mut exts.ski, value, bad)?,
            ID_CE_AUTHORITY_KEY_IDENTIFIER => set_once(&mut exts.aki, value, bad)?,
            OID_TCG_DICE_TCB_INFO => {
                set_once(&mut exts.tcb_info, value, bad)?;
                if let Some(tcb) = &exts.tcb_info {
                    tcb.validate()
                        .map_err(|reason| CertError::BadTcbInfo { role, reason })?;
                }
            }
            _ if ext.critical => return Err(CertError::UnknownCriticalExtension { role, oid }),
            _ => {}
        }
    }
    Ok(exts)
}

fn set_once<'a, T: Decode<'a>>(
    slot: &mut Option<T>,
    der: &'a [u8],
    bad: impl Fn() -> CertError,
) -> Result<(), CertError> {
    if slot.is_some() {
        return Err(bad());
    }
    *slot = Some(T::from_der(der).map_err(|_| bad())?);
    Ok(())
}

/// The certificate above the one being checked.
struct Issuer<'a> {
    cert: &'a Certificate,
    exts: &'a Exts,
    key: &'a DevicePublicKey,
}

/// Signature, algorithm, name linkage and key identifiers of `cert` against its issuer.
fn check_link(cert: &Certificate, exts: &Exts, issuer: &Issuer<'_>, role: CertRole) -> Result<(), CertError> {
    let alg = cert.signature_algorithm();
    let known = alg.oid == ECDSA_WITH_SHA_256 || alg.oid == ID_ED_25519;
    if !known || alg.parameters.is_some() || cert.tbs_certificate().signature() != alg {
        return Err(CertError::UnsupportedAlgorithm { role });
    }
    let issuer_alg = issuer.key.alg();
    if alg.oid != signature_oid(issuer_alg) {
        return Err(CertError::AlgorithmMismatch {
            role,
            signature_alg: alg.oid,
            issuer_alg,
        });
    }
    if cert.tbs_certificate().issuer() != issuer.cert.tbs_certificate().subject() {
        return Err(CertError::IssuerMismatch { role });
    }
    // Found by fuzzing (fuzz/corpus/x509, crash-4f6524c3): the CA certificate verified as its own
    // DeviceID.
    if role != CertRole::Ca && cert.tbs_certificate().subject() == cert.tbs_certificate().issuer() {
        return Err(CertError::SelfIssued { role });
    }
    if let (Some(aki), Some(ski)) = (&exts.aki, &issuer.exts.ski)
        && aki.key_identifier.as_ref() != Some(&ski.0)
    {
        return Err(CertError::KeyIdMismatch { role });
    }
    let tbs = cert
        .tbs_certificate()
        .to_der()
        .map_err(|source| CertError::Malformed { role, source })?;
    let sig_bytes = cert.signature().as_bytes().ok_or(CertError::BadSignature { role })?;
    let sig = match issuer_alg {
        DeviceKeyAlg::P256 => Signature::from_der(sig_bytes).map(DeviceSignature::P256).ok(),
        DeviceKeyAlg::Ed25519 => DeviceSignature::from_slice(issuer_alg, sig_bytes).ok(),
    }
    .ok_or(CertError::BadSignature { role })?;
    issuer
        .key
        .verify(&tbs, &sig)
        .map_err(|_| CertError::BadSignature { role })
}

/// The X.509 signatureAlgorithm OID of a key type: ecdsa-with-SHA256 (RFC 5758) or id-Ed25519
/// (RFC 8410).
pub fn signature_oid(alg: DeviceKeyAlg) -> ObjectIdentifier {
    match alg {
        DeviceKeyAlg::P256 => ECDSA_WITH_SHA_256,
        DeviceKeyAlg::Ed25519 => ID_ED_25519,
    }
}

/// An issuing certificate: CA:true, keyCertSign, and a path length that allows
/// `intermediates_below` further CA certificates.
fn check_issuer_role(exts: &Exts, role: CertRole, intermediates_below: u8) -> Result<(), CertError> {
    let bc = exts.basic.as_ref().ok_or(CertError::NotCa { role })?;
    if !bc.ca {
        return Err(CertError::NotCa { role });
    }
    if bc.path_len_constraint.is_some_and(|n| n < intermediates_below) {
        return Err(CertError::PathLenExceeded { role });
    }
    match &exts.key_usage {
        Some(ku) if !ku.key_cert_sign() => Err(CertError::KeyUsageMissing {
            role,
            usage: "keyCertSign",
        }),
        _ => Ok(()),
    }
}

fn check_end_entity(exts: &Exts) -> Result<(), CertError> {
    let role = CertRole::Alias;
    if exts.basic.as_ref().is_some_and(|bc| bc.ca) {
        return Err(CertError::UnexpectedCa { role });
    }
    match &exts.key_usage {
        Some(ku) if ku.digital_signature() => Ok(()),
        _ => Err(CertError::KeyUsageMissing {
            role,
            usage: "digitalSignature",
        }),
    }
}

fn check_time(cert: &Certificate, role: CertRole, now_unix_s: u64) -> Result<(), CertError> {
    let validity = cert.tbs_certificate().validity();
    if now_unix_s < validity.not_before.to_unix_duration().as_secs() {
        return Err(CertError::NotYetValid { role });
    }
    if now_unix_s > validity.not_after.to_unix_duration().as_secs() {
        return Err(CertError::Expired { role });
    }
    Ok(())
}

/// Decodes a DiceTcbInfo extension value (DER), with the limits of [`DiceTcbInfo::validate`].
pub fn decode_tcb_info(der: &[u8]) -> Result<DiceTcbInfo, CertError> {
    let role = CertRole::Alias;
    let tcb = DiceTcbInfo::from_der(der).map_err(|source| CertError::Malformed { role, source })?;
    tcb.validate()
        .map_err(|reason| CertError::BadTcbInfo { role, reason })?;
    Ok(tcb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).expect("valid scalar")
    }

    fn tcb(layer: u64) -> DiceTcbInfo {
        DiceTcbInfo {
            vendor: Some("chipledger".into()),
            model: Some("soft-chip".into()),
            version: Some("1.2.3".into()),
            svn: Some(7),
            layer: Some(layer),
            fwids: Some(alloc::vec![Fwid::sha256(&[0xab; 32]), Fwid::sha512(&[0xcd; 64])]),
            ..Default::default()
        }
    }

    struct Chain {
        ca: Vec<u8>,
        deviceid: Vec<u8>,
        alias: Vec<u8>,
    }

    fn chain() -> Chain {
        let (ca_key, dev_key, alias_key) = (key(1), key(2), key(3));
        let ca = issue_ca_cert(&ca_key, "CN=Test Device CA,O=chipledger", 1, CertValidity::DICE_DEFAULT).unwrap();
        let dev_tcb = tcb(0);
        let dev_id = key_id(dev_key.verifying_key());
        let req = CertRequest {
            subject_public_key: dev_key.verifying_key(),
            subject_id: &dev_id,
            tcb_info: &dev_tcb,
            validity: CertValidity::DICE_DEFAULT,
        };
        let deviceid = issue_deviceid_cert(&ca_key, &ca, &req).unwrap();
        let alias_tcb = tcb(1);
        let alias_id = key_id(alias_key.verifying_key());
        let req = CertRequest {
            subject_public_key: alias_key.verifying_key(),
            subject_id: &alias_id,
            tcb_info: &alias_tcb,
            validity: CertValidity::DICE_DEFAULT,
        };
        let alias = issue_alias_cert(&dev_key, &deviceid, &req).unwrap();
        Chain { ca, deviceid, alias }
    }

    #[test]
    fn chain_verifies_and_yields_tcb_info() {
        let c = chain();
        let v = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(1_800_000_000)).unwrap();
        assert_eq!(v.alias_public_key, *key(3).verifying_key());
        assert_eq!(v.deviceid_public_key, *key(2).verifying_key());
        assert_eq!(v.alias_tcb_info, tcb(1));
        assert_eq!(v.deviceid_tcb_info, Some(tcb(0)));
        assert_eq!(v.alias_tcb_info.fwid(ID_SHA_256), Some(&[0xab; 32][..]));
    }

    #[test]
    fn tcb_info_uses_implicit_context_tags() {
        let t = DiceTcbInfo {
            vendor: Some("v".into()),
            svn: Some(1),
            ..Default::default()
        };
        // SEQUENCE { [0] IMPLICIT UTF8String "v", [3] IMPLICIT INTEGER 1 }
        assert_eq!(t.to_der().unwrap(), [0x30, 0x06, 0x80, 0x01, b'v', 0x83, 0x01, 0x01]);
        let f = DiceTcbInfo {
            fwids: Some(alloc::vec![Fwid::sha256(&[0; 32])]),
            ..Default::default()
        };
        let der = f.to_der().unwrap();
        assert_eq!(der[2], 0xa6, "fwids is [6] IMPLICIT, constructed");
        assert_eq!(decode_tcb_info(&der).unwrap(), f);
    }

    #[test]
    fn ca_and_deviceid_verify_alone() {
        let c = chain();
        assert_eq!(verify_ca(&c.ca, Some(1_800_000_000)).unwrap(), *key(1).verifying_key());
        let dev = verify_deviceid(&c.ca, &c.deviceid, Some(1_800_000_000)).unwrap();
        assert_eq!(dev, *key(2).verifying_key());
        assert!(matches!(
            verify_ca(&c.deviceid, None),
            Err(CertError::IssuerMismatch { .. })
        ));
        let other_ca = issue_ca_cert(&key(9), "CN=Other CA", 2, CertValidity::DICE_DEFAULT).unwrap();
        assert!(matches!(
            verify_deviceid(&other_ca, &c.deviceid, None),
            Err(CertError::IssuerMismatch { .. })
        ));
        assert!(matches!(
            verify_deviceid(&c.ca, &c.deviceid, Some(1_000_000_000)),
            Err(CertError::NotYetValid { .. })
        ));
        // The CA's own certificate is not a device (a fuzzing finding).
        assert!(matches!(
            verify_deviceid(&c.ca, &c.ca, None),
            Err(CertError::SelfIssued {
                role: CertRole::DeviceId
            })
        ));
        assert!(matches!(
            verify_chain(&c.ca, &c.deviceid, &c.deviceid, None),
            Err(CertError::IssuerMismatch { .. } | CertError::SelfIssued { .. })
        ));
    }

    #[test]
    fn wrong_issuer_key_is_rejected() {
        let c = chain();
        let other_ca = issue_ca_cert(&key(9), "CN=Test Device CA,O=chipledger", 1, CertValidity::DICE_DEFAULT).unwrap();
        let err = verify_chain(&other_ca, &c.deviceid, &c.alias, None).unwrap_err();
        assert!(
            matches!(
                err,
                CertError::KeyIdMismatch {
                    role: CertRole::DeviceId
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn swapped_order_is_rejected() {
        let c = chain();
        assert!(verify_chain(&c.ca, &c.alias, &c.deviceid, None).is_err());
        assert!(verify_chain(&c.deviceid, &c.deviceid, &c.alias, None).is_err());
    }

    #[test]
    fn validity_window_is_enforced() {
        let c = chain();
        let err = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(1_000_000_000)).unwrap_err();
        assert!(matches!(err, CertError::NotYetValid { role: CertRole::Ca }), "{err}");
    }

    #[test]
    fn every_truncation_and_bit_flip_is_a_typed_error_not_a_panic() {
        let c = chain();
        for cut in 0..c.alias.len() {
            assert!(verify_chain(&c.ca, &c.deviceid, &c.alias[..cut], None).is_err());
        }
        for i in 0..c.alias.len() {
            let mut bad = c.alias.clone();
            bad[i] ^= 0x01;
            assert!(verify_chain(&c.ca, &c.deviceid, &bad, None).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn oversized_input_is_rejected_before_parsing() {
        let c = chain();
        let big = alloc::vec![0u8; MAX_CERT_BYTES + 1];
        let err = verify_chain(&c.ca, &big, &c.alias, None).unwrap_err();
        assert!(matches!(err, CertError::TooLarge { .. }));
    }

    #[test]
    fn issuing_with_a_key_that_does_not_match_the_issuer_cert_fails() {
        let c = chain();
        let t = tcb(1);
        let id = [1u8; 20];
        let subject = key(4);
        let req = CertRequest {
            subject_public_key: subject.verifying_key(),
            subject_id: &id,
            tcb_info: &t,
            validity: CertValidity::DICE_DEFAULT,
        };
        assert!(issue_alias_cert(&key(5), &c.deviceid, &req).is_err());
    }

    fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    /// P-256 CA → Ed25519 DeviceID → Ed25519 Alias (subject IDs: open-dice IDs of the keys).
    fn ed_chain() -> Chain {
        let ca_key = key(1);
        let ca = issue_ca_cert(&ca_key, "CN=Test Device CA,O=chipledger", 1, CertValidity::DICE_DEFAULT).unwrap();
        let (dev_key, alias_key) = (ed_key(2), ed_key(3));
        let (dev_pub, alias_pub) = (dev_key.verifying_key(), alias_key.verifying_key());
        let (dev_tcb, alias_tcb) = (tcb(0), tcb(1));
        let dev_id = DevicePublicKey::from(dev_pub).dice_id();
        let req = CertRequest {
            subject_public_key: &dev_pub,
            subject_id: &dev_id,
            tcb_info: &dev_tcb,
            validity: CertValidity::DICE_DEFAULT,
        };
        let deviceid = issue_deviceid_cert(&ca_key, &ca, &req).unwrap();
        let alias_id = DevicePublicKey::from(alias_pub).dice_id();
        let req = CertRequest {
            subject_public_key: &alias_pub,
            subject_id: &alias_id,
            tcb_info: &alias_tcb,
            validity: CertValidity::DICE_DEFAULT,
        };
        let alias = issue_alias_cert(&dev_key, &deviceid, &req).unwrap();
        Chain { ca, deviceid, alias }
    }

    #[test]
    fn ed25519_chain_verifies_with_rfc8410_algorithm_identifiers() {
        let c = ed_chain();
        let v = verify_chain(&c.ca, &c.deviceid, &c.alias, Some(1_800_000_000)).unwrap();
        assert_eq!(v.deviceid_public_key, ed_key(2).verifying_key());
        assert_eq!(v.alias_public_key, ed_key(3).verifying_key());
        assert_eq!(v.alias_tcb_info, tcb(1));
        let dev = verify_deviceid(&c.ca, &c.deviceid, Some(1_800_000_000)).unwrap();
        assert_eq!(dev, ed_key(2).verifying_key());

        // DeviceID: signed by the P-256 CA, Ed25519 subject key without parameters (RFC 8410 §4).
        let deviceid = Certificate::from_der(&c.deviceid).unwrap();
        assert_eq!(deviceid.signature_algorithm().oid, ECDSA_WITH_SHA_256);
        let spki = deviceid.tbs_certificate().subject_public_key_info();
        assert_eq!(
            (spki.algorithm.oid, spki.algorithm.parameters.is_none()),
            (ID_ED_25519, true)
        );
        // Alias: signed by the Ed25519 DeviceID key, id-Ed25519 without parameters, 64-byte
        // signature (RFC 8410 §6).
        let alias = Certificate::from_der(&c.alias).unwrap();
        let alg = alias.signature_algorithm();
        assert_eq!((alg.oid, alg.parameters.is_none()), (ID_ED_25519, true));
        assert_eq!(alias.signature().as_bytes().map(<[u8]>::len), Some(64));
    }

    #[test]
    fn signature_algorithm_must_match_the_issuer_key() {
        let (p, e) = (chain(), ed_chain());
        let err = verify_chain(&p.ca, &p.deviceid, &e.alias, None).unwrap_err();
        assert!(
            matches!(
                err,
                CertError::AlgorithmMismatch {
                    role: CertRole::Alias,
                    signature_alg: ID_ED_25519,
                    issuer_alg: DeviceKeyAlg::P256
                }
            ),
            "{err}"
        );
        let err = verify_chain(&e.ca, &e.deviceid, &p.alias, None).unwrap_err();
        assert!(
            matches!(
                err,
                CertError::AlgorithmMismatch {
                    role: CertRole::Alias,
                    signature_alg: ECDSA_WITH_SHA_256,
                    issuer_alg: DeviceKeyAlg::Ed25519
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn ed25519_manufacturer_ca_is_refused() {
        let ca_key = ed_key(1);
        let name = Name::from_str("CN=Ed CA").unwrap();
        let profile = DiceProfile {
            issuer: name.clone(),
            subject: name,
            role: CertRole::Ca,
            tcb_info: None,
        };
        let public = DevicePublicKey::from(ca_key.verifying_key());
        let serial = serial_from_id(&[1]).unwrap();
        let ca = build(profile, serial, CertValidity::DICE_DEFAULT, &public, (&ca_key).into()).unwrap();
        let err = verify_ca(&ca, None).unwrap_err();
        assert!(
            matches!(err, CertError::UnsupportedAlgorithm { role: CertRole::Ca }),
            "{err}"
        );
    }

    #[test]
    fn every_bit_flip_of_an_ed25519_alias_is_a_typed_error() {
        let c = ed_chain();
        for i in 0..c.alias.len() {
            let mut bad = c.alias.clone();
            bad[i] ^= 0x01;
            assert!(verify_chain(&c.ca, &c.deviceid, &bad, None).is_err(), "flip at {i}");
        }
    }
}

//! SUIT manifests (draft-ietf-suit-manifest-37, the CBOR format of the RFC 9124 information
//! model) in the `suit-sha256-es256-ecdh-a128ctr` profile of draft-ietf-suit-mti: SHA-256
//! digests (COSE alg -16) and ES256 (COSE alg -7) COSE_Sign1 authentication.
//!
//! ```text
//! SUIT_Envelope_Tagged = #6.107({
//!     2: bstr .cbor [ bstr .cbor SUIT_Digest, * bstr .cbor COSE_Sign1_Tagged ],   ; authentication
//!     3: bstr .cbor SUIT_Manifest,                                                 ; manifest
//!     ? 16 / 20 / 23: bstr,                                  ; severed payload-fetch / install / text
//!     * tstr => bstr,                                        ; integrated payloads (ignored)
//! })
//! ```
//!
//! - The SUIT_Digest covers the *whole encoded bstr* at key 3 (head included), exactly as the
//!   envelope carries it (draft §8.3).
//! - Each COSE_Sign1 signs with a detached payload: the Sig_structure payload is the encoded
//!   SUIT_Digest (the contents of the first bstr of the authentication list), external AAD empty.
//! - A severed member is replaced in the manifest by the SUIT_Digest of the whole encoded bstr
//!   the envelope carries at the same key (draft §8.4.12).
//!
//! Verification order: bound the input, walk the envelope, verify a COSE_Sign1 over the digest,
//! compare the digest with the manifest bytes, and only then parse the manifest (which an
//! attacker cannot have chosen). The command sequences are evaluated symbolically (see
//! [`SuitComponent::alternatives`]) to extract vendor / class ids, image digest, size and URI.
//! Every count, length and depth is bounded by a named limit; no input panics.

mod build;
mod interp;
mod wire;

use alloc::{string::String, vec::Vec};

use p256::ecdsa::VerifyingKey;
use sha2::{Digest, Sha256};

pub use build::build_envelope;

/// CBOR tag of a SUIT_Envelope.
pub const SUIT_ENVELOPE_TAG: u64 = 107;
/// CBOR tag of a COSE_Sign1 (RFC 9052).
pub const COSE_SIGN1_TAG: u64 = 18;
/// COSE algorithm id of SHA-256 (the only digest of our profile).
pub const COSE_ALG_SHA256: i64 = -16;
/// COSE algorithm id of ES256 (ECDSA P-256 with SHA-256).
pub const COSE_ALG_ES256: i64 = -7;
/// The only manifest format version (`suit-manifest-version`).
pub const SUIT_MANIFEST_VERSION: u64 = 1;

/// Largest envelope looked at (integrated payloads included).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Most COSE authentication blocks after the digest.
pub const MAX_AUTH_BLOCKS: usize = 4;
/// Most components in `suit-components`.
pub const MAX_COMPONENTS: usize = 16;
/// Most byte strings in one component identifier.
pub const MAX_COMPONENT_ID_SEGMENTS: usize = 8;
/// Longest component identifier segment.
pub const MAX_COMPONENT_ID_SEGMENT_BYTES: usize = 64;
/// Longest digest value.
pub const MAX_DIGEST_BYTES: usize = 64;
/// Longest URI (`suit-parameter-uri`, `suit-reference-uri`).
pub const MAX_URI_BYTES: usize = 1024;
/// Longest text string in `suit-text`.
pub const MAX_TEXT_BYTES: usize = 4096;
/// Most commands (condition / directive pairs) in one command sequence.
pub const MAX_SEQUENCE_COMMANDS: usize = 128;
/// Most commands evaluated over all sequences and paths of one manifest.
pub const MAX_COMMANDS_EVALUATED: usize = 4096;
/// Deepest nesting of `try-each` / `run-sequence`.
pub const MAX_SEQUENCE_DEPTH: usize = 4;
/// Most integers in a version (`suit-parameter-version`).
pub const MAX_VERSION_PARTS: usize = 8;
/// Most simultaneous paths through `try-each` alternatives.
pub const MAX_PATHS: usize = 16;
/// CBOR nesting depth accepted by the generic decoder.
pub const MAX_CBOR_DEPTH: usize = 16;

/// Domain-separation tag of [`class_id_for_model`].
pub const TAG_SUIT_CLASS_ID_V1: &str = "chipledger/suit-class-id/v1";
/// Domain-separation tag of [`vendor_id_for_org`].
pub const TAG_SUIT_VENDOR_ID_V1: &str = "chipledger/suit-vendor-id/v1";

/// Envelope and manifest keys (draft-ietf-suit-manifest-37 §11 IANA registries).
pub mod key {
    pub const AUTHENTICATION_WRAPPER: u64 = 2;
    pub const MANIFEST: u64 = 3;
    pub const MANIFEST_VERSION: u64 = 1;
    pub const MANIFEST_SEQUENCE_NUMBER: u64 = 2;
    pub const COMMON: u64 = 3;
    pub const REFERENCE_URI: u64 = 4;
    pub const VALIDATE: u64 = 7;
    pub const LOAD: u64 = 8;
    pub const INVOKE: u64 = 9;
    pub const PAYLOAD_FETCH: u64 = 16;
    pub const INSTALL: u64 = 20;
    pub const TEXT: u64 = 23;
    pub const COMMON_COMPONENTS: u64 = 2;
    pub const COMMON_SHARED_SEQUENCE: u64 = 4;
}

/// A `SUIT_Digest`: a COSE hash algorithm id and the digest bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuitDigest {
    /// COSE algorithm id; [`COSE_ALG_SHA256`] (-16) in our profile.
    pub alg: i64,
    pub bytes: Vec<u8>,
}

impl SuitDigest {
    /// The SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        Self {
            alg: COSE_ALG_SHA256,
            bytes: Sha256::digest(data).to_vec(),
        }
    }

    /// The digest as 32 bytes when it is a SHA-256 digest.
    pub fn sha256(&self) -> Option<[u8; 32]> {
        match self.alg {
            COSE_ALG_SHA256 => self.bytes.as_slice().try_into().ok(),
            _ => None,
        }
    }
}

/// How `suit-condition-version` compares the installed version with a [`SuitVersionMatch`]
/// (draft-ietf-suit-update-management).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum VersionComparison {
    Greater,
    GreaterEqual,
    Equal,
    LesserEqual,
    Lesser,
}

impl VersionComparison {
    /// The comparison for its registered number (1 greater … 5 lesser).
    pub fn from_id(id: u64) -> Option<Self> {
        Some(match id {
            1 => Self::Greater,
            2 => Self::GreaterEqual,
            3 => Self::Equal,
            4 => Self::LesserEqual,
            5 => Self::Lesser,
            _ => return None,
        })
    }
}

/// A `suit-parameter-version` value that a `suit-condition-version` checked: the installed
/// version must compare to `value` as `comparison` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuitVersionMatch {
    pub comparison: VersionComparison,
    /// Version as a list of integers (1.2.3 = [1, 2, 3]; 1.2-rc3 = [1, 2, -1, 3]).
    pub value: Vec<i64>,
}

impl SuitVersionMatch {
    /// Whether an installed version satisfies this condition. As the draft says, integers are
    /// compared in sequence and the comparison stops when `value` is consumed (so `Equal [1]`
    /// matches every 1.x.y); a missing installed integer counts as 0.
    pub fn matches(&self, installed: &[i64]) -> bool {
        let installed = self
            .value
            .iter()
            .enumerate()
            .map(|(i, _)| installed.get(i).copied().unwrap_or(0));
        let ordering = installed.cmp(self.value.iter().copied());
        match self.comparison {
            VersionComparison::Greater => ordering.is_gt(),
            VersionComparison::GreaterEqual => ordering.is_ge(),
            VersionComparison::Equal => ordering.is_eq(),
            VersionComparison::LesserEqual => ordering.is_le(),
            VersionComparison::Lesser => ordering.is_lt(),
        }
    }
}

/// The parameters of one component along one path through the command sequences.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuitParameters {
    /// The vendor id the path checks (`condition-vendor-identifier`), else the one it sets.
    /// A PEN vendor id (`#6.112(bstr)`) is not represented.
    pub vendor_id: Option<[u8; 16]>,
    /// True when `condition-vendor-identifier` ran on this path for this component.
    pub vendor_id_checked: bool,
    /// The class id the path checks (`condition-class-identifier`), else the one it sets.
    pub class_id: Option<[u8; 16]>,
    /// True when `condition-class-identifier` ran on this path for this component.
    pub class_id_checked: bool,
    pub image_digest: Option<SuitDigest>,
    pub image_size: Option<u64>,
    pub uri: Option<String>,
    /// The slot the path checks (`condition-component-slot`), else the one it sets.
    pub slot: Option<u64>,
    /// Every `suit-condition-version` this path checks (all must hold), in order.
    pub version_conditions: Vec<SuitVersionMatch>,
}

/// One component of the manifest and what the command sequences say about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuitComponent {
    /// The `SUIT_Component_Identifier` (a list of byte strings).
    pub id: Vec<Vec<u8>>,
    /// The value every path agrees on (`None` when unset or when paths differ), likewise below.
    pub vendor_id: Option<[u8; 16]>,
    pub class_id: Option<[u8; 16]>,
    pub image_digest: Option<SuitDigest>,
    pub image_size: Option<u64>,
    pub uri: Option<String>,
    /// The distinct parameter sets of the feasible paths through `try-each` alternatives
    /// (A/B slots, several class ids): at least one entry; exactly one when nothing branches.
    pub alternatives: Vec<SuitParameters>,
}

impl SuitComponent {
    /// The distinct class ids over all alternatives (what a device of each class would see).
    pub fn class_ids(&self) -> Vec<[u8; 16]> {
        distinct(self.alternatives.iter().filter_map(|p| p.class_id))
    }

    /// The distinct vendor ids over all alternatives.
    pub fn vendor_ids(&self) -> Vec<[u8; 16]> {
        distinct(self.alternatives.iter().filter_map(|p| p.vendor_id))
    }

    /// The distinct image digests over all alternatives.
    pub fn image_digests(&self) -> Vec<SuitDigest> {
        distinct(self.alternatives.iter().filter_map(|p| p.image_digest.clone()))
    }
}

fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Text for one component (`SUIT_Text_Component_Keys`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuitComponentText {
    pub id: Vec<Vec<u8>>,
    pub vendor_name: Option<String>,
    pub model_name: Option<String>,
    pub vendor_domain: Option<String>,
    pub model_info: Option<String>,
    pub description: Option<String>,
    pub version: Option<String>,
}

/// The human-readable `suit-text` of one language (the first the map lists).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuitText {
    /// RFC 5646 language tag (e.g. `en-US`).
    pub language: String,
    pub manifest_description: Option<String>,
    pub update_description: Option<String>,
    pub components: Vec<SuitComponentText>,
}

/// A decoded (and, from [`verify_envelope`], authenticated) SUIT manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuitManifest {
    /// `suit-manifest-sequence-number`: the anti-rollback counter.
    pub sequence_number: u64,
    /// SHA-256 of the encoded manifest bstr (what the signature covers).
    pub manifest_digest: SuitDigest,
    pub components: Vec<SuitComponent>,
    /// `suit-reference-uri`.
    pub reference_uri: Option<String>,
    /// `suit-text`, when present inline or as a severed member carried by the envelope.
    pub text: Option<SuitText>,
    /// Keys of the command sequences present (and evaluated): a subset of
    /// [`key::PAYLOAD_FETCH`], [`key::INSTALL`], [`key::VALIDATE`], [`key::LOAD`], [`key::INVOKE`].
    pub sequences: Vec<u64>,
    /// Keys of severed members whose digest the manifest holds but whose body the envelope lacks.
    pub severed_missing: Vec<u64>,
}

impl SuitManifest {
    /// The distinct class ids over all components and alternatives.
    pub fn class_ids(&self) -> Vec<[u8; 16]> {
        distinct(self.components.iter().flat_map(|c| c.class_ids()))
    }

    /// The distinct vendor ids over all components and alternatives.
    pub fn vendor_ids(&self) -> Vec<[u8; 16]> {
        distinct(self.components.iter().flat_map(|c| c.vendor_ids()))
    }
}

/// Why an envelope was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SuitError {
    #[error("envelope is {len} bytes; the limit is {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed SUIT envelope: {what}")]
    Malformed { what: &'static str },
    #[error("{what} exceeds the limit of {max}")]
    LimitExceeded { what: &'static str, max: usize },
    #[error("unsupported manifest version {0} (only 1 is defined)")]
    UnsupportedVersion(u64),
    #[error("unsupported {what} algorithm {alg} (profile suit-sha256-es256: SHA-256 = -16, ES256 = -7)")]
    UnsupportedAlg { what: &'static str, alg: i64 },
    #[error("the envelope has no COSE_Sign1 authentication block")]
    NoAuthentication,
    #[error("a COSE_Sign1 marks header parameters critical that this verifier does not process")]
    UnsupportedCritical,
    #[error("no COSE_Sign1 signature verifies under the given key")]
    BadSignature,
    #[error("the manifest does not match the signed SUIT_Digest")]
    ManifestDigestMismatch,
    #[error("severed member {key} does not match its digest in the manifest")]
    SeveredDigestMismatch { key: u64 },
}

impl SuitError {
    /// A stable snake_case name for the error kind (for JSON output and API error codes).
    pub fn code(&self) -> &'static str {
        match self {
            SuitError::TooLarge { .. } => "too_large",
            SuitError::Malformed { .. } => "malformed",
            SuitError::LimitExceeded { .. } => "limit_exceeded",
            SuitError::UnsupportedVersion(_) => "unsupported_version",
            SuitError::UnsupportedAlg { .. } => "unsupported_alg",
            SuitError::NoAuthentication => "no_authentication",
            SuitError::UnsupportedCritical => "unsupported_critical",
            SuitError::BadSignature => "bad_signature",
            SuitError::ManifestDigestMismatch => "manifest_digest_mismatch",
            SuitError::SeveredDigestMismatch { .. } => "severed_digest_mismatch",
        }
    }
}

/// Verifies an envelope's ES256 COSE_Sign1 under `key` and its manifest digest, then decodes
/// the manifest. Severed members the envelope carries are checked against their digests.
pub fn verify_envelope(envelope: &[u8], key: &VerifyingKey) -> Result<SuitManifest, SuitError> {
    let parts = wire::split_envelope(envelope)?;
    let auth = parts.authentication.ok_or(SuitError::NoAuthentication)?;
    let signed_digest = wire::verify_authentication(auth, key)?;
    let manifest_bstr = parts.manifest.ok_or(SuitError::Malformed {
        what: "no suit-manifest (key 3)",
    })?;
    if signed_digest.alg != COSE_ALG_SHA256 {
        return Err(SuitError::UnsupportedAlg {
            what: "manifest digest",
            alg: signed_digest.alg,
        });
    }
    if SuitDigest::sha256_of(manifest_bstr) != signed_digest {
        return Err(SuitError::ManifestDigestMismatch);
    }
    interp::decode_manifest(manifest_bstr, &parts)
}

/// Decodes an envelope *without* checking any signature or digest: for display only, never
/// for a decision. `manifest_digest` is computed from the manifest bytes.
pub fn decode_envelope_unverified(envelope: &[u8]) -> Result<SuitManifest, SuitError> {
    let parts = wire::split_envelope(envelope)?;
    let manifest_bstr = parts.manifest.ok_or(SuitError::Malformed {
        what: "no suit-manifest (key 3)",
    })?;
    interp::decode_manifest(manifest_bstr, &parts)
}

/// What a release manifest built by [`build_envelope`] says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseSpec {
    pub sequence_number: u64,
    pub vendor_id: [u8; 16],
    /// The device classes the image is for; one `condition-class-identifier` each (in a
    /// `try-each` when there are several). At most [`MAX_PATHS`] for the result to verify.
    pub class_ids: Vec<[u8; 16]>,
    pub image_digest_sha256: [u8; 32],
    pub image_size: u64,
    /// Where to fetch the image (`suit-parameter-uri` in the install sequence).
    pub uri: Option<String>,
}

/// An RFC 9562 UUIDv8 class id for a chip model:
/// `SHA-256(TAG_SUIT_CLASS_ID_V1 ‖ 0x00 ‖ model as u32 BE)[..16]` with version and variant set.
pub fn class_id_for_model(model: u32) -> [u8; 16] {
    uuid_v8(TAG_SUIT_CLASS_ID_V1, &model.to_be_bytes())
}

/// An RFC 9562 UUIDv8 vendor id for an organisation:
/// `SHA-256(TAG_SUIT_VENDOR_ID_V1 ‖ 0x00 ‖ org UTF-8)[..16]` with version and variant set.
pub fn vendor_id_for_org(org: &str) -> [u8; 16] {
    uuid_v8(TAG_SUIT_VENDOR_ID_V1, org.as_bytes())
}

fn uuid_v8(tag: &str, name: &[u8]) -> [u8; 16] {
    let hash = Sha256::new()
        .chain_update(tag.as_bytes())
        .chain_update([0u8])
        .chain_update(name)
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash[..16]);
    id[6] = (id[6] & 0x0f) | 0x80; // version 8 (RFC 9562 §5.8)
    id[8] = (id[8] & 0x3f) | 0x80; // variant 0b10 (RFC 9562 §4.1)
    id
}

/// Formats a 16-byte id as an RFC 9562 UUID string (`8-4-4-4-12` lowercase hex).
pub fn uuid_string(id: &[u8; 16]) -> String {
    let h = hex::encode(id);
    alloc::format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

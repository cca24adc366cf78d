//! Firmware provenance (issue 4): the payloads of the firmware flows and the records a device
//! proves against the state root.
//!
//! **Releases.** A release is a SUIT envelope (RFC 9124) signed by one of the publisher's
//! registered firmware keys. Its id is the SUIT manifest digest (SHA-256 of the manifest bstr),
//! its security version the manifest sequence number; the ledger keeps the envelope and a
//! [`ReleaseRecord`]. Images never enter transactions.
//!
//! **Records the device-side verifier decodes.** [`ReleaseRecord`], [`ApprovalRecord`] and
//! [`InstalledFirmware`] are stored under [`release_key`], [`approval_key`] and
//! [`installed_key`] in canonical CBOR (positional arrays), so a `no_std` device can decode
//! them from a state proof. Their encodings are frozen by the tests below.
//!
//! **Vocabulary.** Rollout controls follow Eclipse hawkBit; device progress uses the LwM2M
//! Firmware Update object (object 5): [`UpdateState`] is resource `/5/0/3`, [`UpdateResult`]
//! is resource `/5/0/5` (OMA LwM2M registry, object 5 version 1.0).
//!
//! Payload structs follow their tag positionally in the [`crate::tx::Payload`] array
//! ([`Fields`]); every list and string is bounded by a limit in [`crate::limits`].

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder};
use crate::device_tx::{DeviceId, Fields};
use crate::limits::*;
use crate::tx::{TxHash, check_name};

/// COSE algorithm id of SHA-256 (RFC 9054), the only image digest this profile accepts.
pub const COSE_ALG_SHA256: i64 = -16;
/// Length of an uncompressed SEC1 P-256 public key: `0x04 ‖ x ‖ y`.
pub const P256_SEC1_UNCOMPRESSED_BYTES: usize = 65;

/// A release's identity: the SUIT manifest digest (SHA-256 of the manifest bstr).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseId(pub [u8; 32]);

/// A firmware-signing key's identity: the first 160 bits of SHA-256 over the uncompressed
/// SEC1 point (the same construction as a manufacturer CA id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FirmwareKeyId(pub [u8; 20]);

crate::cbor::fixed_bytes_id!(ReleaseId);
crate::cbor::fixed_bytes_id!(FirmwareKeyId);

/// A small enum encoded as an unsigned integer: `ALL`, `name()`, and the codec.
macro_rules! uint_enum {
    ($t:ident, $what:literal, [$($v:ident = $n:literal => $name:literal),+ $(,)?]) => {
        impl $t {
            pub const ALL: &'static [$t] = &[$($t::$v),+];
            /// The stable name used by the API, the CLI and in messages.
            pub fn name(self) -> &'static str {
                match self {
                    $($t::$v => $name),+
                }
            }
            pub fn from_name(name: &str) -> Option<$t> {
                Self::ALL.iter().copied().find(|v| v.name() == name)
            }
        }
        impl Encode for $t {
            fn encode(&self, e: &mut Encoder) {
                e.uint(*self as u64);
            }
        }
        impl Decode for $t {
            fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
                match d.uint()? {
                    $($n => Ok($t::$v),)+
                    value => Err(DecodeError::UnknownVariant { what: $what, value }),
                }
            }
        }
    };
}

/// An auditor's verdict on a release (as the Matter DCL's certification states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CertStatus {
    Certified = 1,
    Provisional = 2,
    /// The certification was revoked.
    Revoked = 3,
}
uint_enum!(CertStatus, "certification status", [
    Certified = 1 => "certified",
    Provisional = 2 => "provisional",
    Revoked = 3 => "revoked",
]);

/// What a fleet owner does to a rollout (hawkBit: start, pause, resume, cancel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum RolloutAction {
    Start = 1,
    Pause = 2,
    Resume = 3,
    Cancel = 4,
}
uint_enum!(RolloutAction, "rollout action", [
    Start = 1 => "start",
    Pause = 2 => "pause",
    Resume = 3 => "resume",
    Cancel = 4 => "cancel",
]);

/// LwM2M Firmware Update `/5/0/3` State.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum UpdateState {
    Idle = 0,
    Downloading = 1,
    Downloaded = 2,
    Updating = 3,
}
uint_enum!(UpdateState, "LwM2M update state", [
    Idle = 0 => "Idle",
    Downloading = 1 => "Downloading",
    Downloaded = 2 => "Downloaded",
    Updating = 3 => "Updating",
]);

/// LwM2M Firmware Update `/5/0/5` Update Result (object 5 version 1.0 defines 0..=9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum UpdateResult {
    Initial = 0,
    Success = 1,
    NotEnoughFlash = 2,
    OutOfRam = 3,
    ConnectionLost = 4,
    IntegrityCheckFailure = 5,
    UnsupportedPackageType = 6,
    InvalidUri = 7,
    UpdateFailed = 8,
    UnsupportedProtocol = 9,
}
uint_enum!(UpdateResult, "LwM2M update result", [
    Initial = 0 => "Initial value",
    Success = 1 => "Firmware updated successfully",
    NotEnoughFlash = 2 => "Not enough flash memory for the new firmware package",
    OutOfRam = 3 => "Out of RAM during downloading process",
    ConnectionLost = 4 => "Connection lost during downloading process",
    IntegrityCheckFailure = 5 => "Integrity check failure for new downloaded package",
    UnsupportedPackageType = 6 => "Unsupported package type",
    InvalidUri = 7 => "Invalid URI",
    UpdateFailed = 8 => "Firmware update failed",
    UnsupportedProtocol = 9 => "Unsupported protocol",
]);

impl UpdateResult {
    /// A final result: the update attempt ended (successfully or not).
    pub fn is_final(self) -> bool {
        self != UpdateResult::Initial
    }
    /// A final result other than success.
    pub fn is_failure(self) -> bool {
        !matches!(self, UpdateResult::Initial | UpdateResult::Success)
    }
}

// ---- validated text --------------------------------------------------------------------------

fn invalid(what: &'static str, why: &'static str) -> DecodeError {
    DecodeError::Invalid { what, why }
}

fn too_long(what: &'static str, len: usize, max: usize) -> DecodeError {
    DecodeError::TooLong {
        what,
        len: len as u64,
        max,
    }
}

/// A Semantic Versioning 2.0.0 version (semver.org): `MAJOR.MINOR.PATCH[-PRE][+BUILD]`.
/// Ordered by precedence (§11); build metadata does not take part.
#[derive(Clone, Debug)]
pub struct SemVer<'a> {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// Pre-release identifiers (empty for a release version).
    pub pre: Vec<&'a str>,
    pub build: Option<&'a str>,
}

fn numeric(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

fn identifier_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl<'a> SemVer<'a> {
    /// Parse `text`; rejects leading zeros, empty identifiers and anything semver.org forbids.
    pub fn parse(text: &'a str) -> Result<Self, DecodeError> {
        const WHY: &str = "must be a semantic version MAJOR.MINOR.PATCH[-PRE][+BUILD] (semver.org 2.0.0)";
        if text.len() > MAX_SEMVER_BYTES {
            return Err(too_long("version", text.len(), MAX_SEMVER_BYTES));
        }
        let (rest, build) = match text.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (text, None),
        };
        if build.is_some_and(|b| !b.split('.').all(identifier_ok)) {
            return Err(invalid("version", WHY));
        }
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, p.split('.').collect::<Vec<_>>()),
            None => (rest, Vec::new()),
        };
        let pre_ok = pre
            .iter()
            .all(|p| identifier_ok(p) && (!p.bytes().all(|b| b.is_ascii_digit()) || numeric(p).is_some()));
        let mut parts = core.split('.').map(numeric);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) if pre_ok => Ok(SemVer {
                major,
                minor,
                patch,
                pre,
                build,
            }),
            _ => Err(invalid("version", WHY)),
        }
    }
}

fn cmp_identifier(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

impl Ord for SemVer<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        let core = (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        let pre = match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let mut pairs = self.pre.iter().zip(&other.pre);
                pairs
                    .find_map(|(a, b)| Some(cmp_identifier(a, b)).filter(|o| o.is_ne()))
                    .unwrap_or(self.pre.len().cmp(&other.pre.len()))
            }
        };
        core.then(pre)
    }
}
impl PartialOrd for SemVer<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for SemVer<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SemVer<'_> {}

/// Compare two version strings by semver precedence (both must parse).
pub fn semver_cmp(a: &str, b: &str) -> Result<Ordering, DecodeError> {
    Ok(SemVer::parse(a)?.cmp(&SemVer::parse(b)?))
}

/// Check a CVE id: `CVE-YYYY-NNNN…` (year ≥ 1999; a sequence of 4 digits, or more without a
/// leading zero, as the CVE ID syntax of 2014 defines).
pub fn check_cve(id: &str) -> Result<(), DecodeError> {
    const WHY: &str = "must look like CVE-YYYY-NNNN (4 or more digits)";
    if id.len() > MAX_CVE_ID_BYTES {
        return Err(too_long("CVE id", id.len(), MAX_CVE_ID_BYTES));
    }
    let mut parts = id.split('-');
    let (prefix, year, seq) = (parts.next(), parts.next(), parts.next());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = match (prefix, year, seq, parts.next()) {
        (Some("CVE"), Some(y), Some(n), None) => {
            digits(y)
                && y.len() == 4
                && y >= "1999"
                && digits(n)
                && (n.len() == 4 || (n.len() > 4 && !n.starts_with('0')))
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(invalid("CVE id", WHY)) }
}

// ---- codec helpers (shared with the state crate's firmware records) ----------------------------

/// Encode a list of `u32` (hardware models).
pub fn encode_u32s(e: &mut Encoder, items: &[u32]) {
    e.array(items.len());
    for m in items {
        e.uint(*m as u64);
    }
}

/// Decode at most `max` `u32`s.
pub fn decode_u32s(d: &mut Decoder<'_>, max: usize) -> Result<Vec<u32>, DecodeError> {
    let n = d.array()?;
    if n > max {
        return Err(too_long("list", n, max));
    }
    let out = (0..n).map(|_| d.u32()).collect::<Result<Vec<_>, _>>()?;
    d.end();
    Ok(out)
}

/// Encode a list of text strings.
pub fn encode_texts(e: &mut Encoder, items: &[String]) {
    e.array(items.len());
    for s in items {
        e.text(s);
    }
}

/// Decode at most `max` strings, each checked by `check`.
pub fn decode_texts(
    d: &mut Decoder<'_>,
    max: usize,
    check: fn(&str) -> Result<(), DecodeError>,
) -> Result<Vec<String>, DecodeError> {
    let n = d.array()?;
    if n > max {
        return Err(too_long("list", n, max));
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = d.string()?;
        check(&s)?;
        out.push(s);
    }
    d.end();
    Ok(out)
}

/// Decode a text of at most `max` bytes.
pub fn decode_bounded_text(d: &mut Decoder<'_>, what: &'static str, max: usize) -> Result<String, DecodeError> {
    let s = d.string()?;
    if s.len() > max {
        return Err(too_long(what, s.len(), max));
    }
    Ok(s)
}

fn check_semver(s: &str) -> Result<(), DecodeError> {
    SemVer::parse(s).map(|_| ())
}

fn no_duplicates<T: Ord + Clone>(items: &[T], what: &'static str) -> Result<(), DecodeError> {
    let mut sorted = items.to_vec();
    sorted.sort();
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid(what, "lists an entry twice"));
    }
    Ok(())
}

fn decode_tx_hash(d: &mut Decoder<'_>) -> Result<TxHash, DecodeError> {
    d.fixed().map(TxHash)
}

// ---- payloads --------------------------------------------------------------------------------

/// A publisher registers a P-256 key that signs its SUIT envelopes (self-service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterFirmwareKey {
    /// Uncompressed SEC1 point `0x04 ‖ x ‖ y`.
    pub key_sec1: [u8; P256_SEC1_UNCOMPRESSED_BYTES],
}

impl Fields for RegisterFirmwareKey {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.key_sec1);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let key_sec1: [u8; P256_SEC1_UNCOMPRESSED_BYTES] = d.fixed()?;
        if key_sec1[0] != 0x04 {
            return Err(invalid(
                "firmware key",
                "must be an uncompressed SEC1 P-256 point (0x04 ‖ x ‖ y)",
            ));
        }
        Ok(RegisterFirmwareKey { key_sec1 })
    }
}

/// A publisher revokes one of its firmware keys; it stays listed as revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeFirmwareKey {
    pub key_id: FirmwareKeyId,
}

impl Fields for RevokeFirmwareKey {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        self.key_id.encode(e);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RevokeFirmwareKey {
            key_id: FirmwareKeyId::decode(d)?,
        })
    }
}

/// Publish a release: a SUIT envelope plus what the manifest does not say in our terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishRelease {
    pub envelope: Vec<u8>,
    /// Semantic version of the release.
    pub version: String,
    /// Hardware models it is for (no duplicates).
    pub models: Vec<u32>,
    /// Lowest installed version it may be applied over (semver, ≤ `max_applicable`).
    pub min_applicable: String,
    /// Highest installed version it may be applied over.
    pub max_applicable: String,
    /// CVE ids it fixes (no duplicates).
    pub fixes: Vec<String>,
}

impl Fields for PublishRelease {
    const ARITY: usize = 6;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.envelope).text(&self.version);
        encode_u32s(e, &self.models);
        e.text(&self.min_applicable).text(&self.max_applicable);
        encode_texts(e, &self.fixes);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let envelope = d.bytes()?;
        if envelope.is_empty() || envelope.len() > MAX_SUIT_ENVELOPE_BYTES {
            return Err(too_long("SUIT envelope", envelope.len(), MAX_SUIT_ENVELOPE_BYTES));
        }
        let p = PublishRelease {
            envelope: envelope.to_vec(),
            version: decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?,
            models: decode_u32s(d, MAX_RELEASE_MODELS)?,
            min_applicable: decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?,
            max_applicable: decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?,
            fixes: decode_texts(d, MAX_RELEASE_FIXES, check_cve)?,
        };
        check_semver(&p.version)?;
        if semver_cmp(&p.min_applicable, &p.max_applicable)? == Ordering::Greater {
            return Err(invalid("applicable range", "min_applicable is above max_applicable"));
        }
        if p.models.is_empty() {
            return Err(invalid("models", "a release names at least one hardware model"));
        }
        no_duplicates(&p.models, "models")?;
        no_duplicates(&p.fixes, "fixes")?;
        Ok(p)
    }
}

/// The publisher withdraws a release: marked invalid, never deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawRelease {
    pub release: ReleaseId,
    pub reason: String,
}

impl Fields for WithdrawRelease {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        self.release.encode(e);
        e.text(&self.reason);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(WithdrawRelease {
            release: ReleaseId::decode(d)?,
            reason: decode_bounded_text(d, "reason", MAX_TEXT_BYTES)?,
        })
    }
}

/// An auditor records a certification verdict on a release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certify {
    pub release: ReleaseId,
    pub status: CertStatus,
    pub note: String,
}

impl Fields for Certify {
    const ARITY: usize = 3;
    fn encode_fields(&self, e: &mut Encoder) {
        self.release.encode(e);
        self.status.encode(e);
        e.text(&self.note);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Certify {
            release: ReleaseId::decode(d)?,
            status: CertStatus::decode(d)?,
            note: decode_bounded_text(d, "note", MAX_TEXT_BYTES)?,
        })
    }
}

/// A publisher or auditor reports releases affected by a CVE; reports of one CVE merge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportVulnerability {
    pub cve: String,
    pub affected: Vec<ReleaseId>,
    pub note: String,
}

impl Fields for ReportVulnerability {
    const ARITY: usize = 3;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.cve);
        crate::cbor::encode_list(e, &self.affected);
        e.text(&self.note);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let cve = decode_bounded_text(d, "CVE id", MAX_CVE_ID_BYTES)?;
        check_cve(&cve)?;
        let affected: Vec<ReleaseId> = crate::cbor::decode_list(d, MAX_VULN_AFFECTED)?;
        if affected.is_empty() {
            return Err(invalid("affected releases", "a report names at least one release"));
        }
        no_duplicates(&affected, "affected releases")?;
        Ok(ReportVulnerability {
            cve,
            affected,
            note: decode_bounded_text(d, "note", MAX_TEXT_BYTES)?,
        })
    }
}

/// An owner sets the rollout policy of one of its fleets (its devices, by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetFleetPolicy {
    pub fleet: String,
    /// Organisations whose approvals count (no duplicates).
    pub approvers: Vec<String>,
    /// Approvals needed: 1..=approvers.
    pub threshold: u32,
    /// Only a release whose latest certification is `Certified` can become ready.
    pub require_certified: bool,
}

impl Fields for SetFleetPolicy {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.fleet);
        encode_texts(e, &self.approvers);
        e.uint(self.threshold as u64).bool(self.require_certified);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let fleet = d.string()?;
        check_name(&fleet)?;
        let p = SetFleetPolicy {
            fleet,
            approvers: decode_texts(d, MAX_FLEET_APPROVERS, check_name)?,
            threshold: d.u32()?,
            require_certified: d.bool()?,
        };
        no_duplicates(&p.approvers, "approvers")?;
        if p.threshold == 0 || p.threshold as usize > p.approvers.len() {
            return Err(invalid(
                "fleet threshold",
                "must be between 1 and the number of approvers",
            ));
        }
        Ok(p)
    }
}

/// The fleet owner proposes to roll a release out to (part of) its fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRollout {
    pub fleet: String,
    pub release: ReleaseId,
    /// A subset of the release's models; empty means all of them.
    pub models: Vec<u32>,
    pub rate_devices_per_min: u32,
    pub wave_size: u32,
    /// Pause the rollout when more than this percentage of finished devices failed.
    pub abort_failure_pct: u8,
}

impl Fields for CreateRollout {
    const ARITY: usize = 6;
    fn encode_fields(&self, e: &mut Encoder) {
        e.text(&self.fleet);
        self.release.encode(e);
        encode_u32s(e, &self.models);
        e.uint(self.rate_devices_per_min as u64)
            .uint(self.wave_size as u64)
            .uint(self.abort_failure_pct as u64);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let fleet = d.string()?;
        check_name(&fleet)?;
        let p = CreateRollout {
            fleet,
            release: ReleaseId::decode(d)?,
            models: decode_u32s(d, MAX_RELEASE_MODELS)?,
            rate_devices_per_min: d.u32()?,
            wave_size: d.u32()?,
            abort_failure_pct: u8::try_from(d.uint()?).unwrap_or(u8::MAX),
        };
        no_duplicates(&p.models, "models")?;
        if p.rate_devices_per_min == 0 || p.wave_size == 0 {
            return Err(invalid("rollout", "rate and wave size must be at least 1"));
        }
        if p.abort_failure_pct > 100 {
            return Err(invalid("abort_failure_pct", "must be a percentage 0..=100"));
        }
        Ok(p)
    }
}

/// An approver of the fleet's policy approves a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApproveRollout {
    pub rollout: TxHash,
}

impl Fields for ApproveRollout {
    const ARITY: usize = 1;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.rollout.0);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(ApproveRollout {
            rollout: decode_tx_hash(d)?,
        })
    }
}

/// An approver of the fleet's policy rejects a rollout (one rejection denies it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectRollout {
    pub rollout: TxHash,
    pub reason: String,
}

impl Fields for RejectRollout {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.rollout.0).text(&self.reason);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RejectRollout {
            rollout: decode_tx_hash(d)?,
            reason: decode_bounded_text(d, "reason", MAX_TEXT_BYTES)?,
        })
    }
}

/// The fleet owner starts, pauses, resumes or cancels a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlRollout {
    pub rollout: TxHash,
    pub action: RolloutAction,
}

impl Fields for ControlRollout {
    const ARITY: usize = 2;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.rollout.0);
        self.action.encode(e);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(ControlRollout {
            rollout: decode_tx_hash(d)?,
            action: RolloutAction::decode(d)?,
        })
    }
}

/// The fleet owner reports a device's LwM2M update state and result within a rollout. A report
/// moves the rollout's counters only; the fleet version map changes only by `AttestInstall`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportProgress {
    pub rollout: TxHash,
    pub device: DeviceId,
    pub state: UpdateState,
    pub result: UpdateResult,
}

impl Fields for ReportProgress {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        e.bytes(&self.rollout.0);
        self.device.encode(e);
        self.state.encode(e);
        self.result.encode(e);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(ReportProgress {
            rollout: decode_tx_hash(d)?,
            device: DeviceId::decode(d)?,
            state: UpdateState::decode(d)?,
            result: UpdateResult::decode(d)?,
        })
    }
}

/// A device proves, with fresh evidence after reboot, that it runs a rollout's release.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestInstall {
    pub device: DeviceId,
    pub rollout: TxHash,
    pub alias_cert_der: Vec<u8>,
    pub eat: Vec<u8>,
}

impl Fields for AttestInstall {
    const ARITY: usize = 4;
    fn encode_fields(&self, e: &mut Encoder) {
        self.device.encode(e);
        e.bytes(&self.rollout.0).bytes(&self.alias_cert_der).bytes(&self.eat);
    }
    fn decode_fields(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let device = DeviceId::decode(d)?;
        let rollout = decode_tx_hash(d)?;
        let blob = |d: &mut Decoder<'_>, what, max| {
            let b = d.bytes()?;
            if b.is_empty() || b.len() > max {
                return Err(too_long(what, b.len(), max));
            }
            Ok(b.to_vec())
        };
        Ok(AttestInstall {
            device,
            rollout,
            alias_cert_der: blob(d, "Alias certificate", MAX_CERT_DER_BYTES)?,
            eat: blob(d, "EAT", MAX_EAT_BYTES)?,
        })
    }
}

// ---- records a device proves -----------------------------------------------------------------

/// `fw/release/<hex release id>` → [`ReleaseRecord`].
pub fn release_key(id: &ReleaseId) -> Vec<u8> {
    format!("fw/release/{id}").into_bytes()
}
/// `fw/approved/<hex release id>/<owner>` → [`ApprovalRecord`].
pub fn approval_key(release: &ReleaseId, owner: &str) -> Vec<u8> {
    format!("fw/approved/{release}/{owner}").into_bytes()
}
/// `fw/installed/<hex device id>` → [`InstalledFirmware`] (the fleet version map).
pub fn installed_key(device: &DeviceId) -> Vec<u8> {
    format!("fw/installed/{device}").into_bytes()
}
/// `fw/by-digest/<hex SHA-256 image digest>` → the [`ReleaseId`] publishing that image.
pub fn by_digest_key(image_digest: &[u8; 32]) -> Vec<u8> {
    format!("fw/by-digest/{}", hex::encode(image_digest)).into_bytes()
}

/// When and why a release was withdrawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub height: u64,
    pub reason: String,
}

/// A published release. Digest, size and algorithm never change; `withdrawn` is set once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRecord {
    pub id: ReleaseId,
    pub publisher: String,
    pub version: String,
    /// The SUIT manifest sequence number: the anti-rollback counter.
    pub security_version: u64,
    /// Sorted hardware models.
    pub models: Vec<u32>,
    pub min_applicable: String,
    pub max_applicable: String,
    /// Sorted CVE ids it fixes.
    pub fixes: Vec<String>,
    /// COSE algorithm id of the image digest (always [`COSE_ALG_SHA256`] today).
    pub image_digest_alg: i64,
    pub image_digest: [u8; 32],
    pub image_size: u64,
    /// The firmware key the envelope verified under.
    pub signing_key: FirmwareKeyId,
    pub published_height: u64,
    pub published_tx: TxHash,
    pub withdrawn: Option<Withdrawal>,
}

impl ReleaseRecord {
    const ARITY: usize = 15;
}

impl Encode for ReleaseRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY);
        self.id.encode(e);
        e.text(&self.publisher).text(&self.version).uint(self.security_version);
        encode_u32s(e, &self.models);
        e.text(&self.min_applicable).text(&self.max_applicable);
        encode_texts(e, &self.fixes);
        e.int(self.image_digest_alg)
            .bytes(&self.image_digest)
            .uint(self.image_size);
        self.signing_key.encode(e);
        e.uint(self.published_height).bytes(&self.published_tx.0);
        match &self.withdrawn {
            Some(w) => e.array(2).uint(w.height).text(&w.reason),
            None => e.null(),
        };
    }
}

impl Decode for ReleaseRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let (id, publisher) = (
            ReleaseId::decode(d)?,
            decode_bounded_text(d, "publisher", MAX_NAME_BYTES)?,
        );
        let version = decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?;
        let (security_version, models) = (d.uint()?, decode_u32s(d, MAX_RELEASE_MODELS)?);
        let min_applicable = decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?;
        let max_applicable = decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?;
        let fixes = decode_texts(d, MAX_RELEASE_FIXES, check_cve)?;
        let (image_digest_alg, image_digest, image_size) = (d.int()?, d.fixed()?, d.uint()?);
        let (signing_key, published_height) = (FirmwareKeyId::decode(d)?, d.uint()?);
        let published_tx = decode_tx_hash(d)?;
        let withdrawn = if d.null()? {
            None
        } else {
            d.array_of(2)?;
            let w = Withdrawal {
                height: d.uint()?,
                reason: decode_bounded_text(d, "reason", MAX_TEXT_BYTES)?,
            };
            d.end();
            Some(w)
        };
        d.end();
        Ok(ReleaseRecord {
            id,
            publisher,
            version,
            security_version,
            models,
            min_applicable,
            max_applicable,
            fixes,
            image_digest_alg,
            image_digest,
            image_size,
            signing_key,
            published_height,
            published_tx,
            withdrawn,
        })
    }
}

/// Written when a rollout becomes ready: the release is approved for `owner`'s devices of
/// `models`. A device proves this record (and the [`ReleaseRecord`]) before installing.
/// A later ready rollout of the same release for the same owner adds its models and names
/// itself as `rollout`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub release: ReleaseId,
    /// The rollout (its creating transaction's hash) that last became ready.
    pub rollout: TxHash,
    pub owner: String,
    /// Sorted models approved.
    pub models: Vec<u32>,
    pub security_version: u64,
    pub image_digest: [u8; 32],
    pub approved_height: u64,
    /// Sorted organisations whose approvals reached the threshold.
    pub approvers: Vec<String>,
}

impl ApprovalRecord {
    const ARITY: usize = 8;
}

impl Encode for ApprovalRecord {
    fn encode(&self, e: &mut Encoder) {
        e.array(Self::ARITY);
        self.release.encode(e);
        e.bytes(&self.rollout.0).text(&self.owner);
        encode_u32s(e, &self.models);
        e.uint(self.security_version)
            .bytes(&self.image_digest)
            .uint(self.approved_height);
        encode_texts(e, &self.approvers);
    }
}

impl Decode for ApprovalRecord {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(Self::ARITY)?;
        let r = ApprovalRecord {
            release: ReleaseId::decode(d)?,
            rollout: decode_tx_hash(d)?,
            owner: decode_bounded_text(d, "owner", MAX_NAME_BYTES)?,
            models: decode_u32s(d, MAX_RELEASE_MODELS)?,
            security_version: d.uint()?,
            image_digest: d.fixed()?,
            approved_height: d.uint()?,
            approvers: decode_texts(d, MAX_FLEET_APPROVERS, check_name)?,
        };
        d.end();
        Ok(r)
    }
}

/// A device's entry in the fleet version map: what its latest accepted install evidence proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledFirmware {
    pub release: ReleaseId,
    pub version: String,
    pub security_version: u64,
    pub height: u64,
    /// The `AttestInstall` transaction carrying the evidence.
    pub tx: TxHash,
}

impl Encode for InstalledFirmware {
    fn encode(&self, e: &mut Encoder) {
        e.array(5);
        self.release.encode(e);
        e.text(&self.version)
            .uint(self.security_version)
            .uint(self.height)
            .bytes(&self.tx.0);
    }
}

impl Decode for InstalledFirmware {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(5)?;
        let r = InstalledFirmware {
            release: ReleaseId::decode(d)?,
            version: decode_bounded_text(d, "version", MAX_SEMVER_BYTES)?,
            security_version: d.uint()?,
            height: d.uint()?,
            tx: decode_tx_hash(d)?,
        };
        d.end();
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Limits;
    use crate::tx::Payload;
    use alloc::vec;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    /// `n` copies of the byte `b`, as hex.
    fn rep(b: u8, n: usize) -> String {
        hex::encode(vec![b; n])
    }

    fn round_trip(p: Payload) -> Vec<u8> {
        let bytes = p.to_cbor();
        assert_eq!(Payload::from_cbor(&bytes, Limits::TX).unwrap(), p);
        for cut in 0..bytes.len() {
            assert!(Payload::from_cbor(&bytes[..cut], Limits::TX).is_err(), "cut at {cut}");
        }
        bytes
    }

    #[test]
    fn semver_precedence_follows_semver_org_section_11() {
        // The two example chains of semver.org 2.0.0 §11.
        let chains: [&[&str]; 2] = [
            &["1.0.0", "2.0.0", "2.1.0", "2.1.1"],
            &[
                "1.0.0-alpha",
                "1.0.0-alpha.1",
                "1.0.0-alpha.beta",
                "1.0.0-beta",
                "1.0.0-beta.2",
                "1.0.0-beta.11",
                "1.0.0-rc.1",
                "1.0.0",
            ],
        ];
        for chain in chains {
            for pair in chain.windows(2) {
                assert_eq!(semver_cmp(pair[0], pair[1]), Ok(Ordering::Less), "{pair:?}");
                assert_eq!(semver_cmp(pair[1], pair[0]), Ok(Ordering::Greater), "{pair:?}");
            }
        }
        // Build metadata does not take part in precedence (§10).
        assert_eq!(semver_cmp("1.0.0+a", "1.0.0+b"), Ok(Ordering::Equal));
    }

    #[test]
    fn semver_syntax() {
        // Valid examples quoted in semver.org 2.0.0 §9 and §10.
        for ok in [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x.7.z.92",
            "1.0.0-x-y-z.--",
            "1.0.0-alpha+001",
            "1.0.0+20130313144700",
            "1.0.0-beta+exp.sha.5114f85",
            "1.0.0+21AF26D3----117B344092BD",
        ] {
            assert!(SemVer::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.01.0",
            "1.0.01",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0+",
            "1.0.0-a..b",
            "v1.0.0",
            "1.0.0-α",
            "1.0.0 ",
            "-1.0.0",
            "1.0.99999999999999999999",
        ] {
            assert!(SemVer::parse(bad).is_err(), "{bad}");
        }
        assert!(SemVer::parse(&alloc::format!("1.0.0-{}", "a".repeat(MAX_SEMVER_BYTES))).is_err());
    }

    #[test]
    fn cve_ids() {
        for ok in ["CVE-1999-0067", "CVE-2014-0001", "CVE-2024-12345", "CVE-2024-1234567"] {
            assert!(check_cve(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "CVE-2014-001",
            "CVE-2014-01234",
            "cve-2014-0001",
            "CVE-1998-0001",
            "CVE-20141-0001",
            "CVE-2014-0001-1",
            "CVE-2014-",
            "CVE-2O14-0001",
            "CVE-2024-123456789012345678901234",
        ] {
            assert!(check_cve(bad).is_err(), "{bad}");
        }
    }

    fn release_record() -> ReleaseRecord {
        ReleaseRecord {
            id: ReleaseId([1; 32]),
            publisher: "vendor".into(),
            version: "2.1.0".into(),
            security_version: 3,
            models: vec![5],
            min_applicable: "1.0.0".into(),
            max_applicable: "2.0.0".into(),
            fixes: vec!["CVE-2024-0001".into()],
            image_digest_alg: COSE_ALG_SHA256,
            image_digest: [4; 32],
            image_size: 1024,
            signing_key: FirmwareKeyId([5; 20]),
            published_height: 10,
            published_tx: TxHash([6; 32]),
            withdrawn: None,
        }
    }

    #[test]
    fn frozen_release_record() {
        let mut r = release_record();
        // [h'01…', "vendor", "2.1.0", 3, [5], "1.0.0", "2.0.0", ["CVE-2024-0001"], -16, h'04…',
        //  1024, h'05…', 10, h'06…', null]
        let want = format!(
            "8f 5820{} 66{} 65{} 03 8105 65{} 65{} 81 6d{} 2f 5820{} 190400 54{} 0a 5820{} f6",
            rep(1, 32),
            hex::encode("vendor"),
            hex::encode("2.1.0"),
            hex::encode("1.0.0"),
            hex::encode("2.0.0"),
            hex::encode("CVE-2024-0001"),
            rep(4, 32),
            rep(5, 20),
            rep(6, 32),
        );
        assert_eq!(r.to_cbor(), h(&want));
        assert_eq!(ReleaseRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), r);
        r.withdrawn = Some(Withdrawal {
            height: 11,
            reason: "no".into(),
        });
        let withdrawn = want.replace(" f6", &format!(" 82 0b 62{}", hex::encode("no")));
        assert_eq!(r.to_cbor(), h(&withdrawn));
        assert_eq!(ReleaseRecord::from_cbor(&h(&withdrawn), Limits::STATE).unwrap(), r);
    }

    #[test]
    fn frozen_approval_and_installed_records() {
        let a = ApprovalRecord {
            release: ReleaseId([1; 32]),
            rollout: TxHash([2; 32]),
            owner: "city".into(),
            models: vec![5, 6],
            security_version: 3,
            image_digest: [3; 32],
            approved_height: 10,
            approvers: vec!["audit".into(), "city".into()],
        };
        // [h'01…', h'02…', "city", [5, 6], 3, h'03…', 10, ["audit", "city"]]
        let want = format!(
            "88 5820{} 5820{} 64{} 820506 03 5820{} 0a 82 65{} 64{}",
            rep(1, 32),
            rep(2, 32),
            hex::encode("city"),
            rep(3, 32),
            hex::encode("audit"),
            hex::encode("city"),
        );
        assert_eq!(a.to_cbor(), h(&want));
        assert_eq!(ApprovalRecord::from_cbor(&h(&want), Limits::STATE).unwrap(), a);
        let i = InstalledFirmware {
            release: ReleaseId([1; 32]),
            version: "1.2.3".into(),
            security_version: 7,
            height: 9,
            tx: TxHash([2; 32]),
        };
        let want = format!(
            "85 5820{} 65{} 07 09 5820{}",
            rep(1, 32),
            hex::encode("1.2.3"),
            rep(2, 32)
        );
        assert_eq!(i.to_cbor(), h(&want));
        assert_eq!(InstalledFirmware::from_cbor(&h(&want), Limits::STATE).unwrap(), i);
        assert_eq!(
            approval_key(&ReleaseId([0xab; 32]), "city"),
            format!("fw/approved/{}/city", rep(0xab, 32)).into_bytes()
        );
        assert_eq!(
            installed_key(&DeviceId([0xcd; 20])),
            format!("fw/installed/{}", rep(0xcd, 20)).into_bytes()
        );
    }

    #[test]
    fn frozen_payload_encodings() {
        // [22, h'a0', "1.0.0", [5], "0.0.0", "0.9.9", []]
        let publish = Payload::PublishRelease(PublishRelease {
            envelope: vec![0xa0],
            version: "1.0.0".into(),
            models: vec![5],
            min_applicable: "0.0.0".into(),
            max_applicable: "0.9.9".into(),
            fixes: vec![],
        });
        let want = format!(
            "87 16 41a0 65{} 8105 65{} 65{} 80",
            hex::encode("1.0.0"),
            hex::encode("0.0.0"),
            hex::encode("0.9.9")
        );
        assert_eq!(round_trip(publish), h(&want));
        // [30, h'07…', 2]
        let control = Payload::ControlRollout(ControlRollout {
            rollout: TxHash([7; 32]),
            action: RolloutAction::Pause,
        });
        assert_eq!(round_trip(control), h(&format!("83 181e 5820{} 02", rep(7, 32))));
        // [31, h'07…', h'08…', 3, 0]
        let progress = Payload::ReportProgress(ReportProgress {
            rollout: TxHash([7; 32]),
            device: DeviceId([8; 20]),
            state: UpdateState::Updating,
            result: UpdateResult::Initial,
        });
        assert_eq!(
            round_trip(progress),
            h(&format!("85 181f 5820{} 54{} 03 00", rep(7, 32), rep(8, 20)))
        );
    }

    fn every_payload() -> Vec<Payload> {
        let mut key = [7u8; 65];
        key[0] = 4;
        vec![
            Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1: key }),
            Payload::RevokeFirmwareKey(RevokeFirmwareKey {
                key_id: FirmwareKeyId([1; 20]),
            }),
            Payload::WithdrawRelease(WithdrawRelease {
                release: ReleaseId([2; 32]),
                reason: "bricks lamps".into(),
            }),
            Payload::Certify(Certify {
                release: ReleaseId([2; 32]),
                status: CertStatus::Provisional,
                note: "lab 7".into(),
            }),
            Payload::ReportVulnerability(ReportVulnerability {
                cve: "CVE-2024-3094".into(),
                affected: vec![ReleaseId([2; 32]), ReleaseId([3; 32])],
                note: String::new(),
            }),
            Payload::SetFleetPolicy(SetFleetPolicy {
                fleet: "city-lights".into(),
                approvers: vec!["city".into(), "audit".into()],
                threshold: 2,
                require_certified: true,
            }),
            Payload::CreateRollout(CreateRollout {
                fleet: "city-lights".into(),
                release: ReleaseId([2; 32]),
                models: vec![5],
                rate_devices_per_min: 60,
                wave_size: 10,
                abort_failure_pct: 20,
            }),
            Payload::ApproveRollout(ApproveRollout {
                rollout: TxHash([4; 32]),
            }),
            Payload::RejectRollout(RejectRollout {
                rollout: TxHash([4; 32]),
                reason: "not in winter".into(),
            }),
            Payload::AttestInstall(AttestInstall {
                device: DeviceId([5; 20]),
                rollout: TxHash([4; 32]),
                alias_cert_der: vec![0x30; 9],
                eat: vec![0xd2; 11],
            }),
        ]
    }

    #[test]
    fn every_firmware_payload_round_trips() {
        for p in every_payload() {
            round_trip(p);
        }
        for r in UpdateResult::ALL {
            assert_eq!(UpdateResult::from_name(r.name()), Some(*r));
        }
        assert_eq!(
            UpdateResult::IntegrityCheckFailure.name(),
            "Integrity check failure for new downloaded package"
        );
        assert!(UpdateResult::ConnectionLost.is_failure() && !UpdateResult::Success.is_failure());
        assert!(!UpdateResult::Initial.is_final() && UpdateResult::Success.is_final());
    }

    /// Re-encode `p` after `mutate` and expect the decoder to refuse it.
    fn refused(mut p: Payload, mutate: impl FnOnce(&mut Payload)) -> DecodeError {
        mutate(&mut p);
        Payload::from_cbor(&p.to_cbor(), Limits::TX).expect_err("must be refused")
    }

    #[test]
    fn bad_fields_are_typed_errors() {
        let publish = Payload::PublishRelease(PublishRelease {
            envelope: vec![0xa0],
            version: "1.0.0".into(),
            models: vec![5],
            min_applicable: "0.1.0".into(),
            max_applicable: "0.9.0".into(),
            fixes: vec!["CVE-2024-0001".into()],
        });
        let edit = |f: fn(&mut PublishRelease)| {
            refused(publish.clone(), |p| {
                if let Payload::PublishRelease(p) = p {
                    f(p)
                }
            })
        };
        assert!(matches!(
            edit(|p| p.version = "1.0".into()),
            DecodeError::Invalid { what: "version", .. }
        ));
        assert!(matches!(
            edit(|p| p.min_applicable = "1.0.0".into()),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(
            edit(|p| p.models = vec![5, 5]),
            DecodeError::Invalid { what: "models", .. }
        ));
        assert!(matches!(
            edit(|p| p.models.clear()),
            DecodeError::Invalid { what: "models", .. }
        ));
        assert!(matches!(
            edit(|p| p.fixes = vec!["CVE-24-1".into()]),
            DecodeError::Invalid { .. }
        ));
        assert!(matches!(edit(|p| p.envelope.clear()), DecodeError::TooLong { .. }));
        let big = edit(|p| p.envelope = vec![0; MAX_SUIT_ENVELOPE_BYTES + 1]);
        assert!(matches!(big, DecodeError::TooLong { .. }));

        let mut compressed = [7u8; 65];
        compressed[0] = 2;
        let key = Payload::RegisterFirmwareKey(RegisterFirmwareKey { key_sec1: compressed });
        assert!(matches!(
            Payload::from_cbor(&key.to_cbor(), Limits::TX),
            Err(DecodeError::Invalid { .. })
        ));
        let policy = |threshold, approvers: &[&str]| {
            Payload::SetFleetPolicy(SetFleetPolicy {
                fleet: "f".into(),
                approvers: approvers.iter().map(|a| a.to_string()).collect(),
                threshold,
                require_certified: false,
            })
        };
        for p in [
            policy(3, &["a", "b"]),
            policy(0, &["a"]),
            policy(1, &["a", "a"]),
            policy(1, &["A"]),
        ] {
            assert!(Payload::from_cbor(&p.to_cbor(), Limits::TX).is_err(), "{p:?}");
        }
        let rollout = |pct, rate| {
            Payload::CreateRollout(CreateRollout {
                fleet: "f".into(),
                release: ReleaseId([1; 32]),
                models: vec![],
                rate_devices_per_min: rate,
                wave_size: 1,
                abort_failure_pct: pct,
            })
        };
        assert!(Payload::from_cbor(&rollout(100, 1).to_cbor(), Limits::TX).is_ok());
        for p in [rollout(101, 1), rollout(5, 0)] {
            assert!(Payload::from_cbor(&p.to_cbor(), Limits::TX).is_err(), "{p:?}");
        }
        // An LwM2M update result beyond 9 (object 5 v1.0) and a state beyond 3.
        let r = format!("85 181f 5820{} 54{} 03 0a", rep(7, 32), rep(8, 20));
        assert!(matches!(
            Payload::from_cbor(&h(&r), Limits::TX),
            Err(DecodeError::UnknownVariant { .. })
        ));
        let s = format!("85 181f 5820{} 54{} 04 00", rep(7, 32), rep(8, 20));
        assert!(matches!(
            Payload::from_cbor(&h(&s), Limits::TX),
            Err(DecodeError::UnknownVariant { .. })
        ));
    }
}

//! Audit trails (issue 6): per subject, an append-only list of what happened to it — grants,
//! key releases, purchases, authorizations, commands, receipts, range proofs — in block order.
//!
//! The lists live in the authenticated state, so an entry (or the length of a list) is
//! provable against a cosigned state root, and every entry names the transaction that made it,
//! whose log leaf proves it under a checkpoint (`/v1/tlog-proof/{tx}`). Keys:
//!
//! - `audit/<subject>/count` → [`AuditCount`] (entries so far);
//! - `audit/<subject>/<n>` (n = 0, 1, … as 16 lower-case hex digits, so keys sort in order) →
//!   [`AuditEntry`].
//!
//! A subject is a device (`device/<40 hex>`), an organisation (`org/<name>`) or a grantee that
//! is a person's key (`key/<64 hex of SHA-256 of the key's CBOR encoding>`); see
//! [`AuditSubject`]. Entries are written only by `apply`, never edited or removed.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder};
use crate::device_tx::DeviceId;
use crate::tx::{TxHash, check_name};

/// Longest entry kind (`grant`, `key-release`, `receipt`, …).
pub const MAX_AUDIT_KIND_BYTES: usize = 32;
/// Longest entry summary.
pub const MAX_AUDIT_SUMMARY_BYTES: usize = 256;

/// Whose trail an entry belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuditSubject {
    Device(DeviceId),
    Org(String),
    /// A grantee known only by its key: SHA-256 of the key's canonical CBOR.
    Key([u8; 32]),
}

impl AuditSubject {
    /// The path segment of the subject's keys (`device/<hex>`, `org/<name>`, `key/<hex>`).
    pub fn path(&self) -> String {
        match self {
            AuditSubject::Device(d) => format!("device/{}", hex::encode(d.0)),
            AuditSubject::Org(o) => format!("org/{o}"),
            AuditSubject::Key(k) => format!("key/{}", hex::encode(k)),
        }
    }

    /// Parses [`AuditSubject::path`] back; `None` when it is not one.
    pub fn parse(path: &str) -> Option<AuditSubject> {
        let (kind, rest) = path.split_once('/')?;
        match kind {
            "device" => {
                let b: [u8; 20] = hex::decode(rest).ok()?.try_into().ok()?;
                Some(AuditSubject::Device(DeviceId(b)))
            }
            "org" => check_name(rest).ok().map(|()| AuditSubject::Org(rest.into())),
            "key" => {
                let b: [u8; 32] = hex::decode(rest).ok()?.try_into().ok()?;
                Some(AuditSubject::Key(b))
            }
            _ => None,
        }
    }
}

/// State key of the number of entries of `subject`.
pub fn audit_count_key(subject: &AuditSubject) -> Vec<u8> {
    format!("audit/{}/count", subject.path()).into_bytes()
}

/// State key of entry `n` of `subject`.
pub fn audit_entry_key(subject: &AuditSubject, n: u64) -> Vec<u8> {
    format!("audit/{}/{n:016x}", subject.path()).into_bytes()
}

/// How many entries a subject has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuditCount(pub u64);

impl Encode for AuditCount {
    fn encode(&self, e: &mut Encoder) {
        e.uint(self.0);
    }
}

impl Decode for AuditCount {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(AuditCount(d.uint()?))
    }
}

/// One thing that happened to a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened: `grant`, `grant-revoked`, `key-release`, `offer`, `purchase`,
    /// `authorization`, `authorization-revoked`, `command`, `receipt`, `range-proof`, ….
    pub kind: String,
    /// The transaction that did it.
    pub tx: TxHash,
    pub height: u64,
    /// Block time.
    pub timestamp_ms: u64,
    /// The organisation that signed the transaction.
    pub actor: String,
    /// One human-readable line (who, what, which devices, until when).
    pub summary: String,
}

impl Encode for AuditEntry {
    fn encode(&self, e: &mut Encoder) {
        e.array(6)
            .text(&self.kind)
            .bytes(&self.tx.0)
            .uint(self.height)
            .uint(self.timestamp_ms)
            .text(&self.actor)
            .text(&self.summary);
    }
}

impl Decode for AuditEntry {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(6)?;
        let kind = bounded(d, "audit kind", MAX_AUDIT_KIND_BYTES)?;
        let tx = TxHash(d.fixed()?);
        let (height, timestamp_ms) = (d.uint()?, d.uint()?);
        let actor = d.string()?;
        let summary = bounded(d, "audit summary", MAX_AUDIT_SUMMARY_BYTES)?;
        d.end();
        Ok(AuditEntry {
            kind,
            tx,
            height,
            timestamp_ms,
            actor,
            summary,
        })
    }
}

fn bounded(d: &mut Decoder<'_>, what: &'static str, max: usize) -> Result<String, DecodeError> {
    let s = d.string()?;
    if s.len() > max {
        return Err(DecodeError::TooLong {
            what,
            len: s.len() as u64,
            max,
        });
    }
    Ok(s)
}

/// A unix-ms instant as `YYYY-MM-DD hh:mm:ss UTC` (proleptic Gregorian; Howard Hinnant's
/// civil-from-days), for summaries a person reads. Pure: the same text on every validator.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Cuts `s` to at most [`MAX_AUDIT_SUMMARY_BYTES`] on a character boundary.
pub fn clip_summary(s: &str) -> String {
    if s.len() <= MAX_AUDIT_SUMMARY_BYTES {
        return s.into();
    }
    let mut end = MAX_AUDIT_SUMMARY_BYTES - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cbor::Limits;

    #[test]
    fn subjects_round_trip_and_keys_sort_in_order() {
        for s in [
            AuditSubject::Device(DeviceId([0xab; 20])),
            AuditSubject::Org("city".into()),
            AuditSubject::Key([7; 32]),
        ] {
            assert_eq!(AuditSubject::parse(&s.path()), Some(s.clone()));
            assert!(audit_entry_key(&s, 9) < audit_entry_key(&s, 10));
            assert!(audit_entry_key(&s, 0xff) < audit_entry_key(&s, 0x100));
        }
        for bad in ["", "device/zz", "org/", "org/a b", "key/00", "nope/x"] {
            assert_eq!(AuditSubject::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_764_028_800_123), "2025-11-25 00:00:00 UTC");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn entries_round_trip_and_are_bounded() {
        let e = AuditEntry {
            kind: "grant".into(),
            tx: TxHash([3; 32]),
            height: 12,
            timestamp_ms: 1_700_000_000_000,
            actor: "city".into(),
            summary: clip_summary(&"é".repeat(400)),
        };
        assert!(e.summary.len() <= MAX_AUDIT_SUMMARY_BYTES);
        let bytes = e.to_cbor();
        assert_eq!(AuditEntry::from_cbor(&bytes, Limits::STATE).unwrap(), e);
        let mut long = e.clone();
        long.summary = "x".repeat(MAX_AUDIT_SUMMARY_BYTES + 1);
        assert!(AuditEntry::from_cbor(&long.to_cbor(), Limits::STATE).is_err());
    }
}

//! Appending to the audit trails (`chipledger_types::audit`): every issue-6 flow records what
//! it did for each subject it touched — the device, the organisations on both sides, a grantee
//! key — in the same transaction as the change itself.

use chipledger_types::audit::{AuditCount, AuditEntry, AuditSubject, audit_count_key, audit_entry_key, clip_summary};
use chipledger_types::tx::TxHash;

use crate::apply::{BlockContext, TxState};
use crate::error::TxError;
use crate::model::read;
use crate::store::StateRead;

/// What a transaction appends: the same entry goes to every subject named.
pub(crate) struct AuditNote<'a> {
    pub kind: &'a str,
    pub tx: &'a TxHash,
    pub actor: &'a str,
    pub summary: String,
}

/// Appends `note` to the trail of each subject (a subject named twice gets one entry).
pub(crate) fn append(
    st: &mut TxState<'_>,
    ctx: &BlockContext<'_>,
    subjects: &[AuditSubject],
    note: &AuditNote<'_>,
) -> Result<(), TxError> {
    let entry = AuditEntry {
        kind: note.kind.into(),
        tx: *note.tx,
        height: ctx.height,
        timestamp_ms: ctx.timestamp_ms,
        actor: note.actor.into(),
        summary: clip_summary(&note.summary),
    };
    let mut seen: Vec<&AuditSubject> = Vec::new();
    for subject in subjects {
        if seen.contains(&subject) {
            continue;
        }
        seen.push(subject);
        let n = audit_count(&st.view(), subject)?;
        st.put(audit_entry_key(subject, n), &entry);
        st.put(audit_count_key(subject), &AuditCount(n + 1));
    }
    Ok(())
}

/// How many entries `subject` has.
pub fn audit_count(s: &dyn StateRead, subject: &AuditSubject) -> Result<u64, TxError> {
    Ok(read::<AuditCount>(s, &audit_count_key(subject))?.unwrap_or_default().0)
}

/// Entries `from..from + limit` of `subject` (fewer at the end), oldest first.
pub fn audit_entries(
    s: &dyn StateRead,
    subject: &AuditSubject,
    from: u64,
    limit: u64,
) -> Result<Vec<(u64, AuditEntry)>, TxError> {
    let end = audit_count(s, subject)?.min(from.saturating_add(limit));
    let mut out = Vec::new();
    for n in from..end {
        let entry = read::<AuditEntry>(s, &audit_entry_key(subject, n))?.ok_or_else(|| TxError::Corrupt {
            key: String::from_utf8_lossy(&audit_entry_key(subject, n)).into_owned(),
            why: "audit entry below the count is missing".into(),
        })?;
        out.push((n, entry));
    }
    Ok(out)
}

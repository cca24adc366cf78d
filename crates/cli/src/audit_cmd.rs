//! `chipledger audit`: the audit trail of a device, an organisation or a grantee key (issue
//! 6) — grants, key releases, offers, purchases, authorizations, commands, receipts, range
//! proofs — in block order, and with `--verify` each entry's transaction checked offline:
//! the transaction hashes to the entry's id, its RFC 9162 leaf is included in the log under a
//! checkpoint that a quorum of the validators cosigned ([`NetworkTrust`]).
//!
//! [`fetch_audit`] and [`verify_entry`] are what tests and the demo call.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chipledger_node::api_audit::{AuditBody, AuditEntryBody};
use chipledger_types::audit::AuditSubject;
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::merkle::{hash_leaf, verify_inclusion};
use chipledger_types::note::NoteLimits;
use chipledger_types::tx::TxHash;
use clap::Args;

use crate::client::{Client, DEFAULT_API};
use crate::data_cmd::{NetworkTrust, parse_device};

macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).args(["device", "org", "key"])))]
pub struct AuditArgs {
    /// Node API.
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// A device's trail (hex device id).
    #[arg(long)]
    pub device: Option<String>,
    /// An organisation's trail.
    #[arg(long)]
    pub org: Option<String>,
    /// A grantee key's trail (hex SHA-256 of the key's CBOR).
    #[arg(long)]
    pub key: Option<String>,
    /// Only entries of this kind (grant, key-release, purchase, command, receipt, …).
    #[arg(long)]
    pub kind: Option<String>,
    /// Check every entry's inclusion proof offline against a quorum-cosigned checkpoint.
    #[arg(long)]
    pub verify: bool,
    /// Trust anchors for `--verify` (default: the node's `/v1/validators`).
    #[arg(long, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
    /// Print the raw JSON page instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What `--verify` established for one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryCheck {
    /// Included under a checkpoint with `signers` valid validator signatures (≥ quorum).
    Cosigned { signers: usize, log_size: u64 },
    /// Final, but no cosigned checkpoint covers it yet: only the tip's root (not verified).
    NotYetCosigned,
}

/// The subject the arguments name.
pub fn subject_of(a: &AuditArgs) -> Result<AuditSubject> {
    if let Some(d) = &a.device {
        return Ok(AuditSubject::Device(parse_device(d)?));
    }
    if let Some(o) = &a.org {
        return AuditSubject::parse(&format!("org/{o}")).with_context(|| format!("'{o}' is not an organisation name"));
    }
    if let Some(k) = &a.key {
        return AuditSubject::parse(&format!("key/{k}")).with_context(|| format!("'{k}' is not 64 hex characters"));
    }
    bail!("name --device, --org or --key")
}

/// One page (up to 500 entries from `from`) of `subject`'s trail, with proofs.
pub fn fetch_audit(client: &Client, subject: &AuditSubject, kind: Option<&str>, from: u64) -> Result<AuditBody> {
    let (what, id) = subject
        .path()
        .split_once('/')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .unwrap_or_default();
    let collection = match what.as_str() {
        "device" => "devices",
        "org" => "orgs",
        _ => "keys",
    };
    let mut path = format!("/v1/audit/{collection}/{id}?from={from}&limit=500");
    if let Some(k) = kind {
        path.push_str(&format!("&kind={k}"));
    }
    client.get_json(&path)
}

/// The whole trail of `subject` (all pages).
pub fn fetch_all(client: &Client, subject: &AuditSubject, kind: Option<&str>) -> Result<Vec<AuditEntryBody>> {
    let mut entries = Vec::new();
    let mut from = 0;
    loop {
        let page = fetch_audit(client, subject, kind, from)?;
        let total = page.total;
        from += 500;
        entries.extend(page.entries);
        if from >= total {
            return Ok(entries);
        }
    }
}

/// Checks one entry offline: its transaction hashes to `tx`, and its leaf is included in the
/// log under a checkpoint a quorum of `trust`'s validators cosigned.
pub fn verify_entry(e: &AuditEntryBody, trust: &NetworkTrust) -> Result<EntryCheck> {
    let tx = hex::decode(
        e.tx_cbor
            .as_deref()
            .context("the entry carries no transaction (proofs=false?)")?,
    )
    .context("tx_cbor is not hex")?;
    if TxHash::of(&tx).to_string() != e.tx {
        bail!("entry {}: the transaction does not hash to {}", e.n, e.tx);
    }
    let proof = e
        .proof
        .as_ref()
        .with_context(|| format!("entry {}: no inclusion proof", e.n))?;
    let Some(note) = &proof.checkpoint else {
        return Ok(EntryCheck::NotYetCosigned);
    };
    let cp = open_checkpoint(note.as_bytes(), &trust.origin, &trust.keys, &NoteLimits::default())
        .map_err(|err| anyhow::anyhow!("entry {}: checkpoint refused: {err}", e.n))?;
    let signers = cp.note.verified.len();
    if signers < trust.quorum {
        bail!(
            "entry {}: checkpoint has {signers} valid validator signatures, {} needed",
            e.n,
            trust.quorum
        );
    }
    if cp.checkpoint.size != proof.log_size {
        bail!(
            "entry {}: the proof is for a log of {} leaves, the checkpoint has {}",
            e.n,
            proof.log_size,
            cp.checkpoint.size
        );
    }
    let path = proof
        .hashes
        .iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .context("proof hash is not 32 hex bytes")
        })
        .collect::<Result<Vec<[u8; 32]>>>()?;
    verify_inclusion(
        &hash_leaf(&tx),
        proof.leaf_index,
        proof.log_size,
        &path,
        &cp.checkpoint.root,
    )
    .map_err(|err| anyhow::anyhow!("entry {}: inclusion proof fails: {err}", e.n))?;
    Ok(EntryCheck::Cosigned {
        signers,
        log_size: proof.log_size,
    })
}

/// Block time as `YYYY-MM-DD hh:mm:ss UTC`.
pub fn utc(ms: u64) -> String {
    chipledger_types::audit::utc(ms)
}

pub fn run(a: AuditArgs) -> Result<()> {
    let client = Client::new(&a.api)?;
    let subject = subject_of(&a)?;
    let entries = fetch_all(&client, &subject, a.kind.as_deref())?;
    if a.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&entries.iter().map(entry_json).collect::<Vec<_>>())?
        );
        return Ok(());
    }
    let trust = if a.verify {
        Some(NetworkTrust::load(&a.api, a.genesis.as_deref())?)
    } else {
        None
    };
    out!("audit trail of {}: {} entries", subject.path(), entries.len());
    let (mut cosigned, mut waiting) = (0, 0);
    for e in &entries {
        let check = match &trust {
            Some(t) => match verify_entry(e, t)? {
                c @ EntryCheck::Cosigned { .. } => {
                    cosigned += 1;
                    format!("  [{}]", describe(&c))
                }
                c => {
                    waiting += 1;
                    format!("  [{}]", describe(&c))
                }
            },
            None => String::new(),
        };
        out!(
            "#{:<4} {}  h{:<7} {:<22} {:<12} {}  tx {}{}",
            e.n,
            utc(e.timestamp_ms),
            e.height,
            e.kind,
            e.actor,
            e.summary,
            &e.tx[..16],
            check
        );
    }
    if trust.is_some() {
        out!("verified: {cosigned} entries under quorum-cosigned checkpoints; {waiting} final but not yet cosigned");
    }
    Ok(())
}

fn describe(c: &EntryCheck) -> String {
    match c {
        EntryCheck::Cosigned { signers, log_size } => format!("proof ok, {signers} cosigners, log {log_size}"),
        EntryCheck::NotYetCosigned => "final, checkpoint pending".into(),
    }
}

fn entry_json(e: &AuditEntryBody) -> serde_json::Value {
    serde_json::json!({
        "n": e.n, "kind": e.kind, "tx": e.tx, "height": e.height, "timestamp_ms": e.timestamp_ms,
        "actor": e.actor, "summary": e.summary, "proof": e.proof.as_ref().map(|p| serde_json::json!({
            "leaf_index": p.leaf_index, "log_size": p.log_size, "root": p.root, "hashes": p.hashes,
            "checkpoint": p.checkpoint })),
    })
}

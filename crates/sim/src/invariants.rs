//! The invariants, checked after every phase (on the running validators) and at the end (on
//! every validator's database, after all of them stopped).

use crate::VALIDATORS;
use crate::provenance;
use crate::workload::{Workload, is_final};
use crate::world::{World, identity};
use chipledger_node::checkpoints::verifier_for;
use chipledger_node::consensus::Ledger;
use chipledger_node::db::Db;
use chipledger_node::executor::{Executor, TxStatus};
use chipledger_types::block::Block;
use chipledger_types::cbor::{Decode, Limits};
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::genesis::Genesis;
use chipledger_types::merkle::{MemoryStore, consistency_proof, verify_consistency};
use chipledger_types::note::{NoteLimits, VerifierKey};
use chipledger_types::tx::{SignedTx, TxHash};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

/// Key prefix of the fleet version map (`chipledger_types::firmware_tx::installed_key`).
const INSTALLED_PREFIX: &[u8] = b"fw/installed/";

/// The invariant a failure violates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invariant {
    /// Same block (digest, state root, log root) at every height on every validator.
    Agreement,
    /// Parent links, heights and log roots of each validator's chain.
    HashChain,
    /// Final checkpoints: quorum-cosigned, matching the header, consistent with each other.
    Checkpoints,
    /// The state root changes only in blocks with transactions; replaying the blocks into a
    /// fresh executor reproduces every header.
    NoStateChangeWithoutTx,
    /// Each transaction at most once in the log; sequence numbers strictly increase per org;
    /// at most one side of each fork final.
    NoDoubleApply,
    /// Every accepted transaction is final on every validator.
    NoLostTx,
    /// Validators make progress when a quorum of honest validators can talk.
    Liveness,
    /// A validator reopens from its directory after a crash (or a disk fault).
    Restart,
    /// Every finalized block applies on every validator whose disk works.
    Apply,
    /// The honest workload was refused (a transaction every validator should accept).
    Workload,
    /// Every final `AttestInstall` follows, in the log, the publication of its release and a
    /// rollout of it approved up to its threshold; the fleet version map names only logged
    /// releases and installs; an install under an unknown or unapproved rollout never becomes
    /// final.
    NoInstallWithoutApprovedRelease,
    /// Every final `KeyRelease` follows, in the log, a grant in force for it (not revoked, not
    /// expired, by the releasing owner, covering the device); one without never becomes final.
    NoKeyReleaseWithoutRecord,
    /// Every device record the gateway acknowledged survives the gateway's crash and ends up in
    /// a batch final on every validator (roots reproduced from the gateway's stored hashes;
    /// the ledger's chain heads are the gateway's).
    NoLostRecord,
    /// A replayed record is never acknowledged as new; a forked, wrongly signed or malformed
    /// record, or an unknown device's, is never acknowledged nor committed; forks show on the
    /// ledger as anomaly reports.
    RecordIntegrity,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::Agreement => "agreement",
            Invariant::HashChain => "hash chain",
            Invariant::Checkpoints => "checkpoints",
            Invariant::NoStateChangeWithoutTx => "no state change without a final transaction",
            Invariant::NoDoubleApply => "no double apply",
            Invariant::Apply => "every finalized block applies",
            Invariant::NoLostTx => "no accepted transaction lost",
            Invariant::Liveness => "liveness",
            Invariant::Restart => "restart from disk",
            Invariant::Workload => "workload accepted",
            Invariant::NoInstallWithoutApprovedRelease => "no firmware install without a logged approved release",
            Invariant::NoKeyReleaseWithoutRecord => "no key release without a ledger record",
            Invariant::NoLostRecord => "no acknowledged record lost",
            Invariant::RecordIntegrity => "record integrity (replays, forks, bad records)",
        };
        f.write_str(name)
    }
}

/// A violated invariant and what was seen.
pub type Violation = (Invariant, String);

fn check(ok: bool, invariant: Invariant, detail: impl FnOnce() -> String) -> Result<(), Violation> {
    if ok { Ok(()) } else { Err((invariant, detail())) }
}

/// Agreement on the running validators: at every height finalized by two or more of them,
/// the headers' digest, state root and log root are identical.
pub fn agreement(world: &World) -> Result<(), Violation> {
    if let Some(e) = world.apply_errors() {
        return Err((Invariant::Apply, e));
    }
    let running = world.running();
    for height in 0..=world.max_height() {
        let headers: Vec<_> = running
            .iter()
            .filter_map(|&i| world.exec(i).header_at(height).map(|h| (i, h)))
            .collect();
        let Some((first, reference)) = headers.first() else {
            continue;
        };
        for (i, h) in &headers[1..] {
            let same = h.digest() == reference.digest()
                && h.state_root == reference.state_root
                && h.log_root == reference.log_root;
            check(same, Invariant::Agreement, || {
                format!("validators {first} and {i} disagree at height {height}")
            })?;
        }
    }
    Ok(())
}

/// Whether every accepted transaction is final on every validator.
pub fn all_accepted_final(world: &World, load: &Workload) -> bool {
    (0..VALIDATORS).all(|i| load.accepted.keys().all(|h| is_final(world, i, h)))
}

/// No accepted transaction lost, and at most one transaction of each fork final.
pub fn nothing_lost(world: &World, load: &Workload) -> Result<(), Violation> {
    let mut lost = Vec::new();
    for (hash, (what, to, _)) in &load.accepted {
        for i in 0..VALIDATORS {
            let status = world.exec(i).tx_status(hash);
            if !matches!(status, TxStatus::Final { .. }) {
                lost.push(format!("{what} (submitted to {to}) is {status:?} on validator {i}"));
            }
        }
    }
    check(lost.is_empty(), Invariant::NoLostTx, || {
        format!("{} not final: {:?}", lost.len(), &lost[..lost.len().min(5)])
    })?;
    for bad in &load.admitted {
        let finals: Vec<usize> = (0..VALIDATORS).filter(|&i| is_final(world, i, &bad.hash)).collect();
        check(finals.is_empty(), bad.invariant, || {
            format!("forbidden {} became final on validators {finals:?}", bad.what)
        })?;
    }
    for (n, fork) in load.forks.iter().enumerate() {
        let finals = fork.iter().filter(|h| is_final(world, 0, h)).count();
        check(finals <= 1, Invariant::NoDoubleApply, || {
            format!(
                "fork {n}: {finals} of its {} accepted transactions are final",
                fork.len()
            )
        })?;
    }
    Ok(())
}

/// Forks of which no side became final (allowed: a client that signs two transactions with
/// the same sequence number is promised neither; counted so the summary shows how often).
pub fn forks_dropped(world: &World, load: &Workload) -> u64 {
    let dropped = load
        .forks
        .iter()
        .filter(|fork| !fork.iter().any(|h| is_final(world, 0, h)));
    dropped.count() as u64
}

fn verifiers(genesis: &Genesis) -> Vec<VerifierKey> {
    genesis
        .validators
        .iter()
        .map(|v| verifier_for(&v.name, &v.note_key).expect("ed25519 note key"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// End of run: every validator's database, read after all validators stopped.
// ---------------------------------------------------------------------------------------------

/// What the end-of-run checks counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChainStats {
    pub height: u64,
    pub txs: u64,
    pub checkpoints: u64,
    /// Final firmware installs and key releases (each checked against the log).
    pub installs: u64,
    pub key_releases: u64,
}

/// Every validator's stored chain: identical blocks, linked, log roots right, no transaction
/// twice, sequence numbers increasing, state unchanged by empty blocks, checkpoints consistent,
/// every install and key release backed by earlier log records ([`provenance`]) and the fleet
/// version map by logged installs; then validator 0's blocks replayed into a fresh executor
/// reproduce every header.
pub fn final_chains(genesis: &Genesis, dirs: &[&Path], replay_dir: &Path) -> Result<ChainStats, Violation> {
    let chains: Vec<Vec<Block>> = dirs.iter().map(|d| read_chain(d)).collect::<Result<_, _>>()?;
    let longest = chains.iter().map(Vec::len).max().unwrap_or(0);
    for height in 0..longest {
        let blocks: Vec<_> = chains.iter().filter_map(|c| c.get(height)).collect();
        let digest = blocks[0].digest();
        check(
            blocks.iter().all(|b| b.digest() == digest),
            Invariant::Agreement,
            || format!("stored blocks differ at height {height}"),
        )?;
    }
    let mut stats = ChainStats::default();
    let mut certs = provenance::CertCache::default();
    for (i, chain) in chains.iter().enumerate() {
        stats = chain_links(i, chain)?;
        let dir = dirs[i];
        stats.checkpoints = checkpoints(genesis, i, chain, dir)?;
        let log = provenance::check_chain(i, chain, certs)?;
        log.check_installed(i, &installed_entries(dir)?)?;
        stats.installs = log.installs;
        stats.key_releases = log.key_releases;
        certs = log.into_certs();
    }
    replay(genesis, &chains[0], replay_dir)?;
    Ok(stats)
}

/// The story left installs and key releases final (settle waits for it), so the two
/// provenance invariants were not checked vacuously.
pub fn story_final(chain: &ChainStats) -> Result<(), Violation> {
    let detail = || {
        format!(
            "the story left {} installs and {} key releases final",
            chain.installs, chain.key_releases
        )
    };
    check(chain.installs > 0, Invariant::NoInstallWithoutApprovedRelease, detail)?;
    check(chain.key_releases > 0, Invariant::NoKeyReleaseWithoutRecord, detail)
}

/// The stored fleet version map: every `fw/installed/…` state entry.
fn installed_entries(dir: &Path) -> Result<provenance::Entries, Violation> {
    let fail = |e: String| (Invariant::Restart, format!("{}: {e}", dir.display()));
    let db = Db::open(&dir.join("ledger.redb")).map_err(|e| fail(e.to_string()))?;
    let mut entries = Vec::new();
    db.for_each_state_prefixes(&[INSTALLED_PREFIX], |k, v| entries.push((k.to_vec(), v.to_vec())))
        .map_err(|e| fail(e.to_string()))?;
    Ok(entries)
}

fn read_chain(dir: &Path) -> Result<Vec<Block>, Violation> {
    let fail = |e: String| (Invariant::Restart, format!("{}: {e}", dir.display()));
    let db = Db::open(&dir.join("ledger.redb")).map_err(|e| fail(e.to_string()))?;
    let tip = db.height().map_err(|e| fail(e.to_string()))?.unwrap_or(0);
    (0..=tip)
        .map(|h| {
            let bytes = db.block(h).map_err(|e| fail(e.to_string()))?;
            let bytes = bytes.ok_or_else(|| (Invariant::HashChain, format!("block {h} missing")))?;
            Block::from_bytes(&bytes).map_err(|e| (Invariant::HashChain, format!("block {h}: {e}")))
        })
        .collect()
}

/// Links, heights, log roots, no double apply, no state change without a transaction.
fn chain_links(index: usize, chain: &[Block]) -> Result<ChainStats, Violation> {
    let mut log = MemoryStore::new();
    let mut seen = BTreeSet::new();
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    for pair in chain.windows(2) {
        let (parent, block) = (&pair[0].header, &pair[1].header);
        check(
            block.parent == parent.digest() && block.height == parent.height + 1,
            Invariant::HashChain,
            || format!("validator {index}: block {} does not link to its parent", block.height),
        )?;
        check(
            !pair[1].txs.is_empty() || block.state_root == parent.state_root,
            Invariant::NoStateChangeWithoutTx,
            || format!("validator {index}: empty block {} changes the state root", block.height),
        )?;
        for tx in &pair[1].txs {
            let hash = TxHash::of(tx);
            check(seen.insert(hash), Invariant::NoDoubleApply, || {
                format!(
                    "validator {index}: a transaction appears twice (again at {})",
                    block.height
                )
            })?;
            let signed = SignedTx::from_cbor(tx, Limits::TX).map_err(|e| (Invariant::HashChain, e.to_string()))?;
            let last = last_seq.insert(signed.body.org.clone(), signed.body.seq).unwrap_or(0);
            check(signed.body.seq > last, Invariant::NoDoubleApply, || {
                format!(
                    "{}: seq {} after {last} at height {}",
                    signed.body.org, signed.body.seq, block.height
                )
            })?;
            log.append(tx);
        }
        let root = log
            .root(log.size())
            .map_err(|e| (Invariant::HashChain, e.to_string()))?;
        check(
            log.size() == block.log_size && root == block.log_root,
            Invariant::HashChain,
            || {
                format!(
                    "validator {index}: log root of block {} is not the root of its leaves",
                    block.height
                )
            },
        )?;
    }
    Ok(ChainStats {
        height: chain.len() as u64 - 1,
        txs: log.size(),
        ..ChainStats::default()
    })
}

/// Every stored final checkpoint: quorum of valid cosignatures, equal to the header at its
/// height, and each one RFC 9162-consistent with the previous one. Returns how many.
fn checkpoints(genesis: &Genesis, index: usize, chain: &[Block], dir: &Path) -> Result<u64, Violation> {
    let fail = |e: String| (Invariant::Checkpoints, format!("validator {index}: {e}"));
    let db = Db::open(&dir.join("ledger.redb")).map_err(|e| fail(e.to_string()))?;
    let known = verifiers(genesis);
    let leaves = chain.iter().flat_map(|b| b.txs.iter());
    let log = MemoryStore::from_leaves(leaves);
    let mut found = Vec::new();
    let mut at = Some(chain.len() as u64 - 1);
    while let Some((height, note)) = db.checkpoint_at_or_below(at).map_err(|e| fail(e.to_string()))? {
        let opened = open_checkpoint(note.as_bytes(), &genesis.log_origin(), &known, &NoteLimits::default())
            .map_err(|e| fail(format!("checkpoint {height} does not open: {e}")))?;
        let header = &chain[height as usize].header;
        check(
            opened.note.verified.len() >= genesis.quorum(),
            Invariant::Checkpoints,
            || {
                format!(
                    "validator {index}: checkpoint {height} has {} cosignatures",
                    opened.note.verified.len()
                )
            },
        )?;
        check(
            (opened.checkpoint.size, opened.checkpoint.root) == (header.log_size, header.log_root),
            Invariant::Checkpoints,
            || format!("validator {index}: checkpoint {height} does not match its block"),
        )?;
        found.push((opened.checkpoint.size, opened.checkpoint.root));
        at = height.checked_sub(1);
        if at.is_none() {
            break;
        }
    }
    check(!found.is_empty(), Invariant::Checkpoints, || {
        format!("validator {index} has no final checkpoint")
    })?;
    found.reverse();
    for pair in found.windows(2) {
        let ((size1, root1), (size2, root2)) = (pair[0], pair[1]);
        if size1 == 0 || size1 == size2 {
            continue;
        }
        let proof = consistency_proof(&log, size1, size2).map_err(|e| fail(e.to_string()))?;
        verify_consistency(size1, size2, &proof, &root1, &root2).map_err(|e| {
            fail(format!(
                "checkpoints at sizes {size1} and {size2} are inconsistent: {e}"
            ))
        })?;
    }
    Ok(found.len() as u64)
}

/// Replays `chain` into a fresh executor: every block must verify against its parent and
/// reproduce its header (state root, log root) — state changes come only from the blocks'
/// transactions.
fn replay(genesis: &Genesis, chain: &[Block], dir: &Path) -> Result<(), Violation> {
    let fail = |e: String| (Invariant::NoStateChangeWithoutTx, e);
    let exec = Executor::open(dir, genesis.clone(), identity(0)).map_err(|e| fail(format!("{e:#}")))?;
    let encoded: Vec<Vec<u8>> = chain.iter().map(chipledger_types::cbor::Encode::to_cbor).collect();
    for (height, pair) in encoded.windows(2).enumerate() {
        let height = height + 1;
        check(
            exec.verify(&pair[0], &pair[1], u64::MAX / 2),
            Invariant::NoStateChangeWithoutTx,
            || format!("replay: block {height} does not verify in a fresh executor"),
        )?;
        exec.finalized(&pair[1], &[]);
        let header = exec.header_at(height as u64);
        check(
            header.as_ref() == Some(&chain[height].header),
            Invariant::NoStateChangeWithoutTx,
            || format!("replay: block {height} does not reproduce its header"),
        )?;
    }
    Ok(())
}

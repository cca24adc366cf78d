//! Checkpoint cosigning: after each finalized block every validator signs the C2SP checkpoint
//! `<origin>\n<log size>\n<base64 root>\n` as a signed note (Ed25519, type 0x01) and gossips its
//! signature; a checkpoint is *final* once it carries signatures of a quorum (2f + 1) of
//! validators, each checked against the validator's cosigning key in force at that height.
//! Also carries transaction gossip, on the same channel.

use std::collections::BTreeMap;

use anyhow::Result;
use chipledger_state::model::get_validator;
use chipledger_types::block::BlockHeader;
use chipledger_types::cbor::{Decoder, Encoder, Limits};
use chipledger_types::checkpoint::Checkpoint;
use chipledger_types::keys::PublicKey;
use chipledger_types::note::{Note, NoteSignature, SIG_TYPE_ED25519, SignerKey, VerifierKey};
use tracing::{debug, warn};

use crate::db::Db;
use crate::executor::Executor;

const MSG_CHECKPOINT_SIG: u64 = 1;
const MSG_TXS: u64 = 2;
/// Heights below the tip for which cosignatures are still collected.
const VOTE_WINDOW: u64 = 256;
/// Blocks between cosigned checkpoints when the log does not grow (a liveness heartbeat).
pub const CHECKPOINT_HEARTBEAT_BLOCKS: u64 = 32;
/// Transactions per gossip message (bounded by the gossip size limit too).
const TXS_PER_GOSSIP_MAX: usize = 256;

#[derive(Default)]
struct HeightVotes {
    /// The checkpoint text, once this node has finalized the height.
    body: Option<String>,
    /// Verified signatures by validator index.
    sigs: BTreeMap<u32, NoteSignature>,
    /// Signatures that arrived before this node finalized the height.
    early: BTreeMap<u32, [u8; 64]>,
}

/// Cosignatures being collected, and the newest final checkpoint.
pub struct Votes {
    by_height: BTreeMap<u64, HeightVotes>,
    /// (height, note) of the newest final checkpoint.
    pub latest_final: Option<(u64, String)>,
}

impl Votes {
    pub fn new(db: &Db) -> Result<Votes> {
        Ok(Votes {
            by_height: BTreeMap::new(),
            latest_final: db.checkpoint_at_or_below(None)?,
        })
    }
}

/// The state extension line (`chipledger-state <height> <base64 state root>`) is defined once,
/// in `chipledger_types::state_proof`, so a device parses exactly what validators cosign.
pub use chipledger_types::state_proof::{STATE_EXTENSION_PREFIX, state_extension};

/// The checkpoint body for a block: origin, log size, log root, and the state extension line.
pub fn checkpoint_text(origin: &str, header: &BlockHeader) -> String {
    let state = chipledger_types::state_proof::state_extension_line(header.height, &header.state_root);
    Checkpoint {
        origin: origin.into(),
        size: header.log_size,
        root: header.log_root,
        extensions: vec![state],
    }
    .to_text()
    .expect("origin is a valid checkpoint origin")
}

/// The note verifier key of validator `name` for an Ed25519 cosigning key.
pub fn verifier_for(name: &str, key: &PublicKey) -> Option<VerifierKey> {
    let PublicKey::Ed25519(k) = key else { return None };
    let vk = ed25519_dalek::VerifyingKey::from_bytes(k).ok()?;
    VerifierKey::new(name, SIG_TYPE_ED25519, vk).ok()
}

/// Sign our checkpoint for a just-finalized block, gossip the signature, and count it.
pub(crate) fn on_finalized(exec: &Executor, header: &BlockHeader) {
    // Empty blocks leave the log unchanged: cosign them only as a periodic heartbeat.
    if header.tx_count == 0 && !header.height.is_multiple_of(CHECKPOINT_HEARTBEAT_BLOCKS) {
        return;
    }
    let shared = &exec.shared;
    let body = checkpoint_text(&shared.genesis.log_origin(), header);
    let me = &shared.me;
    let mut inner = exec.lock();
    let Ok(state) = inner.db.state() else { return };
    let record = get_validator(&state, &me.name).ok().flatten();
    let key_now = record.as_ref().and_then(|r| r.note_key_at(header.height)).copied();
    let signer = me.note_seeds.iter().find_map(|seed| {
        let s = SignerKey::from_seed(&me.name, SIG_TYPE_ED25519, seed).ok()?;
        (Some(PublicKey::Ed25519(*s.verifier().public_key().as_bytes())) == key_now).then_some(s)
    });
    let floor = header.height.saturating_sub(VOTE_WINDOW);
    inner.votes.by_height.retain(|h, _| *h >= floor);
    inner.votes.by_height.entry(header.height).or_default().body = Some(body.clone());
    let mine = signer.and_then(|s| s.sign(&body).ok());
    if let Some(sig) = &mine {
        inner
            .votes
            .by_height
            .entry(header.height)
            .or_default()
            .sigs
            .insert(me.index, sig.clone());
    } else {
        warn!(
            height = header.height,
            "no cosigning key matches this validator's key on the ledger; not signing"
        );
    }
    let early = std::mem::take(&mut inner.votes.by_height.entry(header.height).or_default().early);
    for (index, sig) in early {
        accept(exec, &mut inner, header.height, index, &sig);
    }
    try_finalize(exec, &mut inner, header.height);
    drop(inner);
    if let (Some(sig), Some(engine)) = (mine, shared.engine.get()) {
        let mut e = Encoder::new();
        e.array(4)
            .uint(MSG_CHECKPOINT_SIG)
            .uint(header.height)
            .uint(me.index as u64)
            .bytes(&sig.sig);
        if let Err(err) = engine.gossip(e.into_bytes()) {
            debug!(%err, "checkpoint signature not gossiped");
        }
    }
}

/// Verify a cosignature from validator `index` and record it.
fn accept(exec: &Executor, inner: &mut crate::executor::Inner, height: u64, index: u32, sig: &[u8; 64]) {
    let Some(v) = exec.shared.genesis.validators.get(index as usize) else {
        return;
    };
    let Some(body) = inner.votes.by_height.get(&height).and_then(|hv| hv.body.clone()) else {
        return;
    };
    let Ok(state) = inner.db.state() else { return };
    let Some(key) = get_validator(&state, &v.name)
        .ok()
        .flatten()
        .and_then(|r| r.note_key_at(height).copied())
    else {
        return;
    };
    let Some(verifier) = verifier_for(&v.name, &key) else {
        return;
    };
    if verifier.verify(&body, sig).is_err() {
        warn!(validator = %v.name, height, "invalid checkpoint cosignature ignored");
        return;
    }
    let line = NoteSignature {
        name: v.name.clone(),
        key_id: verifier.key_id(),
        sig: sig.to_vec(),
    };
    inner
        .votes
        .by_height
        .entry(height)
        .or_default()
        .sigs
        .insert(index, line);
}

fn try_finalize(exec: &Executor, inner: &mut crate::executor::Inner, height: u64) {
    let quorum = exec.shared.genesis.quorum();
    let Some(hv) = inner.votes.by_height.get(&height) else {
        return;
    };
    let (Some(body), true) = (&hv.body, hv.sigs.len() >= quorum) else {
        return;
    };
    if inner.votes.latest_final.as_ref().is_some_and(|(h, _)| *h >= height) {
        return;
    }
    let note = Note {
        text: body.clone(),
        signatures: hv.sigs.values().cloned().collect(),
    };
    let Ok(text) = note.encode() else { return };
    if let Err(e) = inner.db.put_checkpoint(height, &text) {
        warn!(error = %e, "storing final checkpoint failed");
        return;
    }
    exec.shared.metrics.set_final_checkpoint(height);
    inner.votes.latest_final = Some((height, text));
}

/// Handle a gossip message from another validator.
pub(crate) fn on_gossip(exec: &Executor, from: [u8; 32], message: &[u8]) {
    let limits = Limits {
        input_bytes_max: 64 * 1024,
        string_bytes_max: 64 * 1024,
        array_items_max: TXS_PER_GOSSIP_MAX,
        depth_max: 4,
    };
    let Ok(mut d) = Decoder::new(message, limits) else {
        return;
    };
    let parsed = (|| -> Result<(), chipledger_types::cbor::DecodeError> {
        let n = d.array()?;
        match d.uint()? {
            MSG_CHECKPOINT_SIG if n == 4 => {
                let (height, index, sig) = (d.uint()?, d.u32()?, d.fixed::<64>()?);
                on_checkpoint_sig(exec, from, height, index, sig);
            }
            MSG_TXS if n == 2 => {
                let count = d.array()?;
                let mut txs = Vec::with_capacity(count);
                for _ in 0..count {
                    txs.push(d.bytes()?.to_vec());
                }
                exec.submit_many(txs, false);
            }
            _ => {}
        }
        Ok(())
    })();
    if let Err(e) = parsed {
        debug!(error = %e, "malformed gossip ignored");
    }
}

fn on_checkpoint_sig(exec: &Executor, from: [u8; 32], height: u64, index: u32, sig: [u8; 64]) {
    // The sender must be the validator whose index it claims (p2p authenticates `from`).
    let Some(v) = exec.shared.genesis.validators.get(index as usize) else {
        return;
    };
    if v.consensus_key != from {
        return;
    }
    let mut inner = exec.lock();
    let tip = inner.tip.height;
    if height + VOTE_WINDOW < tip || height > tip + VOTE_WINDOW {
        return;
    }
    let hv = inner.votes.by_height.entry(height).or_default();
    if hv.body.is_none() {
        hv.early.insert(index, sig);
        return;
    }
    accept(exec, &mut inner, height, index, &sig);
    try_finalize(exec, &mut inner, height);
}

/// Forward transactions to the other validators (best effort; each also stays in our mempool).
pub(crate) fn gossip_txs(exec: &Executor, txs: &[&[u8]]) {
    let Some(engine) = exec.shared.engine.get() else { return };
    for chunk in txs.chunks(TXS_PER_GOSSIP_MAX) {
        let mut batch = Vec::new();
        let mut size = 16;
        for tx in chunk {
            if size + tx.len() + 8 > crate::consensus::MAX_GOSSIP_BYTES {
                send_batch(engine, &batch);
                batch.clear();
                size = 16;
            }
            size += tx.len() + 8;
            batch.push(*tx);
        }
        send_batch(engine, &batch);
    }
}

fn send_batch(engine: &crate::consensus::EngineHandle, batch: &[&[u8]]) {
    if batch.is_empty() {
        return;
    }
    let mut e = Encoder::new();
    e.array(2).uint(MSG_TXS).array(batch.len());
    for tx in batch {
        e.bytes(tx);
    }
    if let Err(err) = engine.gossip(e.into_bytes()) {
        debug!(%err, "transaction gossip dropped");
    }
}

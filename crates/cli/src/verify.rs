//! `chipledger verify …`: check what a node serves without trusting it. Exit 0 = valid,
//! 1 = invalid, 2 = usage error (or the node could not be reached).

use std::path::PathBuf;

use anyhow::{Context, Result};
use chipledger_node::config::GenesisFile;
use chipledger_types::checkpoint::open_checkpoint;
use chipledger_types::merkle::{verify_consistency, verify_inclusion};
use chipledger_types::note::{NoteLimits, VerifierKey};
use chipledger_types::tlog_proof::TlogProof;
use clap::{Args, Subcommand};

use crate::client::{Client, DEFAULT_API};

const EXIT_VALID: i32 = 0;
const EXIT_INVALID: i32 = 1;
const EXIT_USAGE: i32 = 2;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(subcommand)]
    pub command: VerifyCommand,
    /// Validator API to read from.
    #[arg(long, global = true, default_value = DEFAULT_API)]
    pub api: String,
    /// Trust anchors: the network's genesis.json (validator names and cosigning keys). Without
    /// it, keys are read from the node, which then must be trusted for them.
    #[arg(long, global = true, value_name = "FILE")]
    pub genesis: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// The newest final checkpoint: a quorum (2f+1) of validator signatures.
    Checkpoint {
        /// Read the signed checkpoint note from a file instead of the node.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// A transaction's inclusion in the log under a final, quorum-signed checkpoint: from the
    /// node (`--tx`), or offline from a C2SP tlog-proof file (`--tlog-proof` with `--tx-file`
    /// holding the encoded transaction, or `--leaf-hash`).
    Inclusion {
        /// Hex transaction hash (asks the node for the proof).
        #[arg(long, required_unless_present = "tlog_proof")]
        tx: Option<String>,
        /// A `c2sp.org/tlog-proof@v1` file (from `GET /v1/tlog-proof/{hash}`).
        #[arg(long, value_name = "FILE", requires = "leaf")]
        tlog_proof: Option<PathBuf>,
        /// The encoded transaction the proof is for.
        #[arg(long, value_name = "FILE", group = "leaf")]
        tx_file: Option<PathBuf>,
        /// Hex RFC 9162 leaf hash the proof is for.
        #[arg(long, value_name = "HEX", group = "leaf")]
        leaf_hash: Option<String>,
    },
    /// An offline revocation snapshot (`chipledger device revocations --out FILE`): quorum
    /// signatures, and every revocation record proven against the cosigned state root.
    Revocations {
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the revoked device and CA ids.
        #[arg(long)]
        list: bool,
    },
    /// A record proof file (`chipledger data get … --out FILE`): the record is in its gateway
    /// batch, the batch is the signed `CommitBatch` in the log, under a quorum-signed checkpoint.
    Record {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// That the log at `--from` leaves is a prefix of the log at `--to` leaves.
    Consistency {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
    },
}

pub fn run(a: VerifyArgs) -> i32 {
    match check(&a) {
        Ok(Ok(msg)) => {
            println!("valid: {msg}");
            EXIT_VALID
        }
        Ok(Err(why)) => {
            eprintln!("invalid: {why}");
            EXIT_INVALID
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_USAGE
        }
    }
}

/// Outer error: could not check; inner error: checked and found invalid.
type Checked = Result<std::result::Result<String, String>>;

fn keys(a: &VerifyArgs, client: &Client) -> Result<(Vec<VerifierKey>, String, usize)> {
    if let Some(path) = &a.genesis {
        let g = GenesisFile::read(path)?;
        let keys = g
            .validators
            .iter()
            .filter_map(|v| chipledger_node::checkpoints::verifier_for(&v.name, &v.note_key))
            .collect();
        return Ok((keys, g.log_origin(), g.quorum()));
    }
    let vs = client.validators()?;
    let keys = vs
        .iter()
        .filter_map(|v| v.note_verifier_key.as_deref())
        .map(VerifierKey::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("node served a bad verifier key: {e}"))?;
    let status = client.status()?;
    let n = vs.len();
    Ok((
        keys,
        format!("chipledger.example/{}", status.chain_id),
        n - (n.saturating_sub(1)) / 3,
    ))
}

fn check(a: &VerifyArgs) -> Checked {
    let client = Client::new(&a.api)?;
    let (known, origin, quorum) = keys(a, &client)?;
    match &a.command {
        VerifyCommand::Checkpoint { file } => {
            let note = match file {
                Some(f) => std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
                None => client.checkpoint()?.note,
            };
            Ok(check_note(&note, &origin, &known, quorum).map(|(size, n)| {
                format!(
                    "checkpoint of {size} leaves signed by {n} of {} validators (quorum {quorum})",
                    known.len()
                )
            }))
        }
        VerifyCommand::Inclusion {
            tlog_proof: Some(file),
            tx_file,
            leaf_hash,
            ..
        } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let leaf = match (tx_file, leaf_hash) {
                (Some(f), _) => chipledger_types::merkle::hash_leaf(
                    &std::fs::read(f).with_context(|| format!("reading {}", f.display()))?,
                ),
                (None, Some(h)) => parse32(h)?,
                (None, None) => anyhow::bail!("give --tx-file or --leaf-hash with --tlog-proof"),
            };
            let proof = match TlogProof::parse(&text, &NoteLimits::default()) {
                Ok(p) => p,
                Err(e) => return Ok(Err(e.to_string())),
            };
            Ok(proof
                .verify(&leaf, &origin, &known, quorum, &NoteLimits::default())
                .map(|cp| {
                    format!(
                        "leaf {} of {} under a checkpoint signed by a quorum of {quorum}",
                        proof.index, cp.size
                    )
                })
                .map_err(|e| e.to_string()))
        }
        VerifyCommand::Inclusion { tx, .. } => {
            let tx = tx.as_deref().context("give --tx HASH or --tlog-proof FILE")?;
            let s = client.tx(tx)?;
            let Some(p) = s.proof else {
                return Ok(Err(format!("transaction is {}, not final", s.status)));
            };
            let Some(note) = p.checkpoint else {
                return Ok(Err(
                    "no final checkpoint covers this transaction yet; retry shortly".into()
                ));
            };
            let (size, signers) = match check_note(&note, &origin, &known, quorum) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            let root = parse32(&p.root)?;
            let cp = chipledger_types::checkpoint::Checkpoint::parse(&note_text(&note)?)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if cp.size != p.log_size || cp.root != root {
                return Ok(Err("proof is not against the checkpoint it came with".into()));
            }
            let leaf = leaf_hash_of_tx(&client, tx, s.height.unwrap_or(0))?;
            let path = p.hashes.iter().map(|h| parse32(h)).collect::<Result<Vec<_>>>()?;
            Ok(verify_inclusion(&leaf, p.leaf_index, size, &path, &root)
                .map(|_| {
                    format!(
                        "leaf {} of {size} under a checkpoint signed by {signers} validators",
                        p.leaf_index
                    )
                })
                .map_err(|e| e.to_string()))
        }
        VerifyCommand::Revocations { file, list } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let snap: chipledger_node::revocations::RevocationSnapshot = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a revocation snapshot", file.display()))?;
            Ok(
                chipledger_node::revocations::verify_snapshot(&snap, &origin, &known, quorum).map(|v| {
                    if *list {
                        v.devices.iter().for_each(|d| println!("device {d}"));
                        v.cas.iter().for_each(|c| println!("ca {c}"));
                    }
                    format!(
                        "{} revoked devices and {} revoked CAs as of height {}, under a checkpoint signed by {} validators",
                        v.devices.len(),
                        v.cas.len(),
                        v.state_height,
                        v.signers
                    )
                }),
            )
        }
        VerifyCommand::Record { file } => {
            let trust = chipledger_cli::data_cmd::NetworkTrust {
                keys: known,
                origin,
                quorum,
            };
            chipledger_cli::data_cmd::verify_record_file(file, &trust)
        }
        VerifyCommand::Consistency { from, to } => {
            let root_at = |size: u64| -> Result<[u8; 32]> {
                let p: chipledger_node::api::InclusionProof =
                    client.get_json(&format!("/v1/proof/inclusion?index=0&size={size}"))?;
                parse32(&p.root)
            };
            let (r1, r2) = (root_at(*from)?, root_at(*to)?);
            let proof: chipledger_node::api::ConsistencyBody =
                client.get_json(&format!("/v1/proof/consistency?from={from}&to={to}"))?;
            let path = proof.hashes.iter().map(|h| parse32(h)).collect::<Result<Vec<_>>>()?;
            Ok(verify_consistency(*from, *to, &path, &r1, &r2)
                .map(|_| format!("log of {from} leaves is a prefix of the log of {to}"))
                .map_err(|e| e.to_string()))
        }
    }
}

/// The RFC 9162 leaf hash of a transaction, computed locally from the block's raw bytes.
fn leaf_hash_of_tx(client: &Client, tx: &str, height: u64) -> Result<[u8; 32]> {
    let b: chipledger_node::api::BlockBody = client.get_json(&format!("/v1/blocks/{height}"))?;
    let raw = hex::decode(&b.raw).context("block raw is not hex")?;
    let block =
        chipledger_types::block::Block::from_bytes(&raw).map_err(|e| anyhow::anyhow!("block does not decode: {e}"))?;
    let want = parse32(tx)?;
    let t = block
        .txs
        .iter()
        .find(|t| chipledger_types::tx::TxHash::of(t).0 == want)
        .context("transaction is not in the block the node named")?;
    Ok(chipledger_types::merkle::hash_leaf(t))
}

fn note_text(note: &str) -> Result<String> {
    Ok(
        chipledger_types::note::Note::parse(note.as_bytes(), &NoteLimits::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .text,
    )
}

fn check_note(
    note: &str,
    origin: &str,
    known: &[VerifierKey],
    quorum: usize,
) -> std::result::Result<(u64, usize), String> {
    let cp = open_checkpoint(note.as_bytes(), origin, known, &NoteLimits::default()).map_err(|e| e.to_string())?;
    let signers = cp.note.verified.len();
    if signers < quorum {
        return Err(format!("only {signers} valid validator signatures; {quorum} needed"));
    }
    Ok((cp.checkpoint.size, signers))
}

fn parse32(s: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("'{s}' is not 64 hex characters"))
}

//! `chipledger zk …` (issue 6): zero-knowledge range proofs over committed device readings
//! (`chipledger_zk`; what is hidden and revealed: `crates/zk/README.md`).
//!
//! - `zk prove`: commit to a value with a blinding derived from `--blinding-secret` and
//!   `--context`, prove `min ≤ value ≤ max`; prints the commitment and the proof (hex).
//! - `zk verify`: check a proof against a commitment and bounds (offline).
//! - `zk publish`: as a simulated device (the `fleet simulate` key of `--sim-seed`/`--sim-index`,
//!   registered as its DeviceID key), sign a reading commitment for one record
//!   (`ReadingCommitment`) and publish the proof as the device's owner (`PublishRangeProof`).
//! - `zk show TX`: a published proof as the ledger recorded it (`/v1/zk/proofs/{tx}`).
//!
//! `chipledger bench rangeproof` ([`bench_rangeproof`]) measures proof size and prove/verify
//! time for 32- and 64-bit bounds.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chipledger_device::key::DeviceKeyAlg;
use chipledger_device::reading::sign_reading_commitment;
use chipledger_node::api_zk::RangeProofBody;
use chipledger_node::config::KeyFile;
use chipledger_types::device_tx::DeviceId;
use chipledger_types::tx::Payload;
use chipledger_types::zk_tx::{PublishRangeProof, ReadingCommitment};
use chipledger_zk::{Blinding, Commitment, commit, prove_bounds, verify_bounds};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::client::{Client, DEFAULT_API};
use crate::simulate::SimKey;
use crate::txcmd::{build, wait_final};

/// Blocks a published proof stays valid in the mempool.
const PUBLISH_EXPIRY_BLOCKS: u64 = 100;
/// How long `zk publish --wait` waits for finality.
const PUBLISH_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Args)]
pub struct ZkArgs {
    #[command(subcommand)]
    pub command: ZkCommand,
}

/// The statement every subcommand proves or checks.
#[derive(Debug, Clone, Args)]
pub struct BoundsArgs {
    /// Lower bound (inclusive).
    #[arg(long)]
    pub min: u64,
    /// Upper bound (inclusive).
    #[arg(long)]
    pub max: u64,
    /// Bit width of the proof: 8, 16, 32 or 64 (max − min must fit).
    #[arg(long, default_value_t = 32)]
    pub bits: u8,
}

#[derive(Debug, Subcommand)]
pub enum ZkCommand {
    /// Commit to a value and prove it lies within bounds; prints commitment and proof (hex).
    Prove {
        #[arg(long)]
        value: u64,
        /// Secret the blinding is derived from (hex, ≥ 16 bytes; HKDF-SHA256).
        #[arg(long)]
        blinding_secret: String,
        /// Derivation context naming the reading (e.g. `<device>/<stream>/<seq>/<quantity>`).
        #[arg(long, default_value = "")]
        context: String,
        #[command(flatten)]
        bounds: BoundsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Verify a proof against a commitment and bounds (offline).
    Verify {
        /// The commitment (64 hex characters).
        #[arg(long)]
        commitment: String,
        #[command(flatten)]
        bounds: BoundsArgs,
        /// The proof (hex).
        #[arg(long)]
        proof: String,
        #[arg(long)]
        json: bool,
    },
    /// As a simulated device, commit to a reading of one record and publish its range proof.
    Publish(PublishArgs),
    /// A published range proof as the ledger recorded it.
    Show {
        /// The `PublishRangeProof` transaction hash.
        tx: String,
        #[arg(long, default_value = DEFAULT_API)]
        api: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[arg(long, default_value = DEFAULT_API)]
    pub api: String,
    /// The device owner organisation that publishes (signs the transaction).
    #[arg(long)]
    pub org: String,
    /// The owner's transaction key file.
    #[arg(long)]
    pub key: PathBuf,
    /// Seed of the simulated fleet whose device signs the reading commitment.
    #[arg(long)]
    pub sim_seed: u64,
    /// Index of the simulated device in its fleet.
    #[arg(long)]
    pub sim_index: u64,
    /// Key algorithm of the simulated device.
    #[arg(long, default_value = "p256", value_parser = ["p256", "ed25519"])]
    pub sim_alg: String,
    /// Stream of the record the reading belongs to.
    #[arg(long)]
    pub stream: String,
    /// Seq of the record in its stream.
    #[arg(long)]
    pub seq: u64,
    /// SHA-256 of the record's COSE_Sign1 (64 hex characters).
    #[arg(long)]
    pub record_hash: String,
    /// Which reading of the record (`no2`, `co2_ppm`).
    #[arg(long)]
    pub quantity: String,
    #[arg(long)]
    pub value: u64,
    /// Secret the blinding is derived from (hex, ≥ 16 bytes); the context is
    /// `<device>/<stream>/<seq>/<quantity>`.
    #[arg(long)]
    pub blinding_secret: String,
    #[command(flatten)]
    pub bounds: BoundsArgs,
    /// Wait until the transaction is final (or refused).
    #[arg(long)]
    pub wait: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: ZkArgs) -> Result<()> {
    match a.command {
        ZkCommand::Prove {
            value,
            blinding_secret,
            context,
            bounds,
            json,
        } => prove(value, &blinding_secret, &context, &bounds, json),
        ZkCommand::Verify {
            commitment,
            bounds,
            proof,
            json,
        } => verify(&commitment, &bounds, &proof, json),
        ZkCommand::Publish(p) => publish(p),
        ZkCommand::Show { tx, api, json } => show(&tx, &api, json),
    }
}

fn blinding(secret_hex: &str, context: &str) -> Result<Blinding> {
    let secret = hex::decode(secret_hex).context("--blinding-secret must be hex")?;
    Ok(Blinding::derive(&secret, context.as_bytes())?)
}

fn prove(value: u64, secret: &str, context: &str, b: &BoundsArgs, json_out: bool) -> Result<()> {
    let r = blinding(secret, context)?;
    let commitment = commit(value, &r);
    let proof = prove_bounds(value, &r, b.min, b.max, b.bits)?;
    if json_out {
        let out = json!({"commitment": commitment.to_string(), "min": b.min, "max": b.max, "bits": b.bits,
                         "proof": hex::encode(&proof), "proof_bytes": proof.len()});
        println!("{out}");
    } else {
        println!("commitment {commitment}");
        println!("proof      {}", hex::encode(&proof));
        println!(
            "({} bytes; proves {} ≤ value ≤ {} in {} bits)",
            proof.len(),
            b.min,
            b.max,
            b.bits
        );
    }
    Ok(())
}

fn verify(commitment_hex: &str, b: &BoundsArgs, proof_hex: &str, json_out: bool) -> Result<()> {
    let c = Commitment::from_bytes(&hex::decode(commitment_hex).context("--commitment must be hex")?)?;
    let proof = hex::decode(proof_hex).context("--proof must be hex")?;
    let result = verify_bounds(&c, b.min, b.max, b.bits, &proof);
    if json_out {
        let out = match &result {
            Ok(()) => json!({"valid": true}),
            Err(e) => json!({"valid": false, "code": e.code(), "message": e.to_string()}),
        };
        println!("{out}");
    }
    match result {
        Ok(()) => {
            if !json_out {
                println!("valid: the committed value lies in [{}, {}]", b.min, b.max);
            }
            Ok(())
        }
        Err(e) => bail!("invalid ({}): {e}", e.code()),
    }
}

/// The signed statement and the payload `zk publish` submits.
pub fn publish_payload(p: &PublishArgs) -> Result<(DeviceId, Payload)> {
    let alg = DeviceKeyAlg::from_name(&p.sim_alg).ok_or_else(|| anyhow!("unknown key algorithm {}", p.sim_alg))?;
    let key = SimKey::derive(alg, p.sim_seed, p.sim_index);
    let device = key.device_id();
    let record_hash: [u8; 32] = hex::decode(&p.record_hash)
        .ok()
        .and_then(|b| b.try_into().ok())
        .context("--record-hash must be 64 hex characters")?;
    let r = blinding(
        &p.blinding_secret,
        &format!("{device}/{}/{}/{}", p.stream, p.seq, p.quantity),
    )?;
    let reading = ReadingCommitment {
        device,
        stream: p.stream.clone(),
        seq: p.seq,
        record_hash,
        quantity: p.quantity.clone(),
        commitment: commit(p.value, &r).0,
    };
    let proof = prove_bounds(p.value, &r, p.bounds.min, p.bounds.max, p.bounds.bits)?;
    let statement = sign_reading_commitment(&reading, key.signer()).map_err(|e| anyhow!("signing: {e}"))?;
    let payload = Payload::PublishRangeProof(PublishRangeProof {
        statement,
        min: p.bounds.min,
        max: p.bounds.max,
        bits: p.bounds.bits,
        proof,
    });
    Ok((device, payload))
}

fn publish(p: PublishArgs) -> Result<()> {
    let client = Client::new(&p.api)?;
    let key = KeyFile::read(&p.key)?;
    let (device, payload) = publish_payload(&p)?;
    let tx = build(&client, &p.org, &key, None, PUBLISH_EXPIRY_BLOCKS, payload)?;
    let submitted = match client.try_submit(&tx)? {
        Ok(s) => s,
        Err(e) => bail!("refused ({}): {}", e.error, e.message),
    };
    let status = if p.wait {
        let s = wait_final(&client, &submitted.hash, PUBLISH_WAIT)?;
        if s.status != "final" {
            bail!(
                "range proof {} was {}: {}",
                s.hash,
                s.status,
                s.reason.unwrap_or_default()
            );
        }
        s.status
    } else {
        submitted.status
    };
    if p.json {
        println!(
            "{}",
            json!({"tx": submitted.hash, "status": status, "device": device.to_string()})
        );
    } else {
        println!("{} {status} (device {device})", submitted.hash);
    }
    Ok(())
}

fn show(tx: &str, api: &str, json_out: bool) -> Result<()> {
    let body: RangeProofBody = Client::new(api)?.get_json(&format!("/v1/zk/proofs/{tx}"))?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!("range proof {}", body.tx);
    println!("  device     {} ({} key)", body.device, body.signed_by);
    println!("  record     {}#{} ({})", body.stream, body.seq, body.record_hash);
    println!(
        "  statement  {} in [{}, {}] ({} bits)",
        body.quantity, body.min, body.max, body.bits
    );
    println!("  commitment {}", body.commitment);
    println!("  published  by {} at height {}", body.publisher, body.height);
    println!(
        "  verified   {}",
        if body.verified {
            "yes (re-checked by the node)"
        } else {
            "NO"
        }
    );
    Ok(())
}

// ---- bench -------------------------------------------------------------------------------------

/// Prove and verify `n` proofs over `bits`: (size, prove ms/proof, verify ms/proof, verify
/// proofs/s on all cores).
fn bench_width(bits: u8, n: usize) -> Result<serde_json::Value> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let mut items = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let r = Blinding::random();
        let value = (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) & max;
        items.push((commit(value, &r), prove_bounds(value, &r, 0, max, bits)?));
    }
    let prove_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (c, proof) in &items {
        verify_bounds(c, 0, max, bits, proof)?;
    }
    let verify_s = started.elapsed().as_secs_f64();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| s.spawn(move || part.iter().all(|(c, p)| verify_bounds(c, 0, max, bits, p).is_ok())))
            .collect();
        handles.into_iter().all(|h| h.join().unwrap_or(false))
    })
    .then_some(())
    .ok_or_else(|| anyhow!("a proof failed to verify in the parallel batch"))?;
    let batch_s = started.elapsed().as_secs_f64();
    Ok(json!({
        "bits": bits, "proofs": n, "proof_bytes": items[0].1.len(),
        "prove_ms_per_proof": 1e3 * prove_s / n as f64,
        "verify_ms_per_proof": 1e3 * verify_s / n as f64,
        "verify_proofs_per_s_one_core": n as f64 / verify_s,
        "verify_proofs_per_s_all_cores": n as f64 / batch_s, "threads": threads,
    }))
}

/// `chipledger bench rangeproof`: proof size, prove and verify time per proof for 32- and
/// 64-bit bounds, and batch verification throughput (one core, all cores). Build with
/// `--release`: debug builds are ~10× slower.
pub fn bench_rangeproof(n: usize, json_out: bool) -> Result<()> {
    if n == 0 {
        bail!("--proofs must be at least 1");
    }
    let rows = [bench_width(32, n)?, bench_width(64, n)?];
    if json_out {
        println!("{}", json!({"rangeproof": rows, "release": !cfg!(debug_assertions)}));
        return Ok(());
    }
    println!(
        "{:<6} {:>8} {:>12} {:>12} {:>16} {:>16}",
        "bits", "bytes", "prove ms", "verify ms", "verify/s (1)", "verify/s (all)"
    );
    for r in &rows {
        println!(
            "{:<6} {:>8} {:>12.2} {:>12.2} {:>16.0} {:>16.0}",
            r["bits"].as_u64().unwrap_or(0),
            r["proof_bytes"].as_u64().unwrap_or(0),
            r["prove_ms_per_proof"].as_f64().unwrap_or(0.0),
            r["verify_ms_per_proof"].as_f64().unwrap_or(0.0),
            r["verify_proofs_per_s_one_core"].as_f64().unwrap_or(0.0),
            r["verify_proofs_per_s_all_cores"].as_f64().unwrap_or(0.0),
        );
    }
    if cfg!(debug_assertions) {
        eprintln!("note: debug build; measure with --release");
    }
    Ok(())
}

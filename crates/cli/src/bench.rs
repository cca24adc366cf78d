//! `chipledger bench …`: measured figures, printed as a table or one JSON object.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use chipledger_node::config::KeyFile;
use chipledger_types::cbor::Encode;
use chipledger_types::merkle::{Frontier, hash_leaf};
use chipledger_types::tx::{Payload, SignedTx, TxBody};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::client::Client;
use crate::net::LocalNet;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Finalized tx/s and finality latency of 4 local validator processes; Merkle append rate.
    Ledger {
        /// Transactions to push through the network.
        #[arg(long, default_value_t = 20_000)]
        txs: usize,
        /// Leaves appended in the Merkle benchmark.
        #[arg(long, default_value_t = 2_000_000)]
        leaves: u64,
        /// Base port of the benchmark network (API P..P+3, p2p P+100..).
        #[arg(long, default_value_t = 7470)]
        base_port: u16,
        #[arg(long)]
        json: bool,
    },
    /// Device registrations/s and ES256 evidence verifications/s, with the ratio to raw P-256 verify.
    Identity {
        /// Devices to register and attest.
        #[arg(long, default_value_t = 1000)]
        devices: usize,
        #[arg(long)]
        json: bool,
    },
    /// Gateway ingest: records/s end to end (devices → MQTT → gateway → final batches on 4
    /// validators) against the bound (signature verification on all cores), ES256 and Ed25519.
    Ingest(crate::bench_ingest::IngestArgs),
    /// Range proofs (Bulletproofs, two aggregated values): proof size, prove and verify time
    /// per proof for 32- and 64-bit bounds, batch verification throughput. Use --release.
    Rangeproof {
        /// Proofs made and verified per bit width.
        #[arg(long, default_value_t = 64)]
        proofs: usize,
        #[arg(long)]
        json: bool,
    },
    /// The explorer's fleet page over N registered devices on 4 local validators: API p50/p95
    /// and, in headless Chromium, navigation → page ready (needs chromium, chromium-driver).
    Explorer(crate::bench_explorer::ExplorerArgs),
    /// CVE exposure query (p50/p99 ms) over a fleet version map of N devices; fails over 50 ms.
    Exposure {
        /// Devices in the fleet.
        #[arg(long, default_value_t = 10_000)]
        devices: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(a: BenchArgs) -> Result<()> {
    match a.command {
        BenchCommand::Ledger {
            txs,
            leaves,
            base_port,
            json,
        } => ledger(txs, leaves, base_port, json),
        BenchCommand::Identity { devices, json } => crate::bench_identity::identity(devices, json),
        BenchCommand::Exposure { devices, json } => crate::bench_exposure::exposure(devices, json),
        BenchCommand::Ingest(args) => crate::bench_ingest::ingest(args),
        BenchCommand::Explorer(args) => crate::bench_explorer::explorer(args),
        BenchCommand::Rangeproof { proofs, json } => chipledger_cli::zk_cmd::bench_rangeproof(proofs, json),
    }
}

/// Leaves per second appended to a frontier (SHA-256 leaf hash + O(log n) node hashes).
pub fn merkle_append_rate(leaves: u64) -> f64 {
    let mut f = Frontier::new();
    let start = Instant::now();
    let mut data = [0u8; 32];
    for i in 0..leaves {
        data[..8].copy_from_slice(&i.to_le_bytes());
        f.append_leaf_hash(hash_leaf(&data), |_| {});
    }
    std::hint::black_box(f.root());
    leaves as f64 / start.elapsed().as_secs_f64()
}

fn ledger(n: usize, leaves: u64, base_port: u16, json_out: bool) -> Result<()> {
    let append = merkle_append_rate(leaves);
    eprintln!("merkle append: {append:.0} leaves/s");
    let dir = std::env::temp_dir().join(format!("chipledger-bench-{}", std::process::id()));
    let exe = std::env::current_exe()?;
    let mut net = LocalNet::prepare(&dir, &exe, base_port, "chipledger-bench")?;
    net.start_all_ready(Duration::from_secs(60))?;
    let result = drive(&net, n);
    net.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
    let (tx_per_s, p50, p99, elapsed) = result?;
    let figures = json!({
        "validators": 4, "txs": n, "elapsed_s": elapsed,
        "finalized_tx_per_s": tx_per_s.round(), "finality_p50_ms": p50, "finality_p99_ms": p99,
        "merkle_append_leaves_per_s": append.round(),
        "target_finalized_tx_per_s": 5000, "target_finality_p50_ms": 300, "target_merkle_append_leaves_per_s": 300_000,
    });
    if json_out {
        println!("{figures}");
    } else {
        println!("{:<32} {:>14} {:>10} {:>8}", "figure", "measured", "target", "ratio");
        println!(
            "{:<32} {:>14.0} {:>10} {:>8.2}",
            "finalized_tx_per_s",
            tx_per_s,
            5000,
            tx_per_s / 5000.0
        );
        println!(
            "{:<32} {:>14} {:>10} {:>8.2}",
            "finality_p50_ms",
            p50,
            "≤300",
            300.0 / p50.max(1) as f64
        );
        println!("{:<32} {:>14} {:>10} {:>8}", "finality_p99_ms", p99, "-", "-");
        println!(
            "{:<32} {:>14.0} {:>10} {:>8.2}",
            "merkle_append_leaves_per_s",
            append,
            300_000,
            append / 300_000.0
        );
    }
    Ok(())
}

/// Sign `n` statements spread over the four organisations, submit them in batches across the
/// validators, and wait until all are final. Returns (tx/s, p50, p99, seconds).
fn drive(net: &LocalNet, n: usize) -> Result<(f64, u64, u64, f64)> {
    let client = Client::new(&net.apis[0])?;
    let status = client.status()?;
    let orgs = ["maker", "city", "vendor", "audit"];
    let keys = orgs
        .iter()
        .map(|o| KeyFile::read(&net.dir.join("orgs").join(format!("{o}.key"))))
        .collect::<Result<Vec<_>>>()?;
    let txs: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let (o, k) = (i % 4, &keys[i % 4]);
            let body = TxBody {
                chain_id: status.chain_id.clone(),
                org: orgs[o].into(),
                key_id: k.public_key().id(),
                seq: (i / 4 + 1) as u64,
                expiry_height: status.height + 100_000,
                payload: Payload::Statement {
                    topic: "bench".into(),
                    body: (i as u64).to_be_bytes().to_vec(),
                },
            };
            SignedTx::sign(body, k).to_cbor()
        })
        .collect();
    let start = Instant::now();
    let clients = net.apis.iter().map(|a| Client::new(a)).collect::<Result<Vec<_>>>()?;
    for (i, chunk) in txs.chunks(1000).enumerate() {
        let items = clients[i % clients.len()].submit_batch(chunk)?;
        if let Some(bad) = items.iter().find(|it| it.status != "pending") {
            bail!(
                "benchmark transaction refused: {} {}",
                bad.status,
                bad.message.as_deref().unwrap_or("")
            );
        }
    }
    let target = status.log_size + n as u64;
    loop {
        if client.status()?.log_size >= target {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!(
                "only {} of {n} transactions final after 600 s",
                client.status()?.log_size - status.log_size
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let s = client.status()?;
    Ok((
        n as f64 / elapsed,
        s.finality_p50_ms.unwrap_or(0),
        s.finality_p99_ms.unwrap_or(0),
        elapsed,
    ))
}

//! `node run`: one validator process — executor + consensus engine + HTTP API — until Ctrl-C
//! or SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;

use anyhow::{Context, Result};
use tracing::{error, info};

use crate::config;
use crate::consensus::{self, ValidatorConfig, ValidatorPeer};
use crate::executor::{Executor, Identity};

/// How often, and after how long a wait, pending transactions are gossiped again.
const REGOSSIP_EVERY: std::time::Duration = std::time::Duration::from_secs(3);
/// Most transactions re-gossiped per round.
const REGOSSIP_MAX_TXS: usize = 4096;

/// Consensus namespace for a chain: votes of one network never count on another.
pub fn namespace(chain_id: &str) -> Vec<u8> {
    format!("chipledger/consensus/v1/{chain_id}").into_bytes()
}

fn resolve(addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))
}

/// Run the validator configured in `dir` (see [`config`]) until a shutdown signal.
pub fn run(dir: &Path) -> Result<()> {
    let loaded = config::load(dir)?;
    let g = &loaded.genesis;
    let me = Identity {
        index: loaded.index as u32,
        name: loaded.node.name.clone(),
        note_seeds: loaded.note_seeds.clone(),
    };
    let exec = Executor::open(&dir.join("data/ledger"), g.clone(), me)?;
    let blobs = crate::blob_store::BlobStore::open(&dir.join("data/blobs"))?;
    let peers = g
        .validators
        .iter()
        .map(|v| {
            Ok(ValidatorPeer {
                public_key: v.consensus_key,
                address: resolve(&v.p2p_address)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut cfg = ValidatorConfig::new(
        loaded.consensus_seed,
        peers,
        loaded.node.p2p_listen,
        dir.join("data/consensus"),
        namespace(&g.chain_id),
    );
    cfg.allow_private_ips = loaded.node.allow_private_ips;
    let api_listen = loaded.node.api_listen;
    let rate_limit = loaded.node.rate_limit;
    let name = loaded.node.name.clone();
    info!(validator = %name, api = %api_listen, p2p = %loaded.node.p2p_listen, "starting validator");
    consensus::start(cfg, exec.clone(), move |handle| async move {
        exec.attach_engine(handle);
        let listener = match tokio::net::TcpListener::bind(api_listen).await {
            Ok(l) => l,
            Err(e) => {
                error!(error = %e, addr = %api_listen, "cannot bind the API address");
                return;
            }
        };
        let regossip = {
            let exec = exec.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(REGOSSIP_EVERY);
                loop {
                    tick.tick().await;
                    let exec = exec.clone();
                    let _ = tokio::task::spawn_blocking(move || exec.regossip_stale(REGOSSIP_EVERY, REGOSSIP_MAX_TXS))
                        .await;
                }
            })
        };
        tokio::select! {
            r = crate::api::serve_with_blobs(listener, exec, blobs, rate_limit) => if let Err(e) = r { error!(error = %e, "API server stopped") },
            _ = shutdown_signal() => info!(validator = %name, "shutdown signal received; stopping"),
        }
        regossip.abort();
    })
    .map_err(|e| anyhow::anyhow!("validator stopped: {e}"))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("installing SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}

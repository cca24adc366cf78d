//! A production validator: commonware's **tokio** runtime, **authenticated lookup** p2p (fixed
//! peer list from genesis, encrypted and authenticated with the validators' ed25519 keys) and
//! on-disk storage under [`ValidatorConfig::storage_dir`].
//!
//! # Runtime coexistence
//!
//! The commonware tokio runtime *is* the process's tokio runtime: [`start`] builds it (a
//! multi-threaded tokio runtime with all drivers enabled), runs the engine on it and runs the
//! node's own future (`node`) as one more task on it. Inside `node`, plain tokio works:
//! `tokio::spawn`, `tokio::net::TcpListener`, `axum::serve(...)`, `tokio::time`. So the node
//! binary must not also use `#[tokio::main]`; it calls [`start`] from a plain `fn main`.
//!
//! For code that already runs inside its own tokio runtime (a `#[tokio::main]` binary, an
//! integration test), [`spawn`] runs [`start`] on a dedicated OS thread (a second, separate tokio
//! runtime) and hands back the [`EngineHandle`]; both runtimes then share the machine's cores.

use super::{
    EngineHandle, Ledger,
    config::{ConfigError, EngineSettings, PARTITION_PREFIX, ValidatorConfig, parse_public_key},
    engine::{self, Channels},
};
use commonware_cryptography::{ChaCha20Poly1305, Signer, ed25519::PrivateKey};
use commonware_p2p::{Address, AddressableManager, authenticated::lookup};
use commonware_runtime::{Runner, Spawner, Supervisor, tokio};
use commonware_stream::{
    SakeCups,
    cups::{self, Cups},
    sake::{self, Sake},
};
use commonware_utils::{NZUsize, ordered::Map};
use futures::future::{Either, select};
use std::{future::Future, time::Duration};
use tracing::{error, info};

/// Why a validator could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error("invalid consensus configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("consensus storage under {dir} could not be opened: {reason}")]
    Storage { dir: String, reason: String },
    #[error("the consensus thread panicked")]
    Panicked,
}

/// p2p handshake clock-skew tolerance and maximum age of a handshake message.
const HANDSHAKE_SYNCHRONY_BOUND: Duration = Duration::from_secs(5);
const HANDSHAKE_MAX_AGE: Duration = Duration::from_secs(10);
/// Capacity of the p2p actors' mailboxes.
const P2P_MAILBOX_SIZE: usize = 1024;

/// Runs a validator until the engine stops or `node` returns (blocking the calling thread).
///
/// `node` receives the [`EngineHandle`] and runs on the same tokio runtime as the engine (see
/// the module docs): spawn the HTTP API, mempool, etc. from it.
pub fn start<L, F, Fut>(config: ValidatorConfig, ledger: L, node: F) -> Result<(), StartError>
where
    L: Ledger,
    F: FnOnce(EngineHandle) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let keys: Vec<[u8; 32]> = config.validators.iter().map(|v| v.public_key).collect();
    let settings = EngineSettings::new(
        &config.private_key_seed,
        &keys,
        &config.namespace,
        PARTITION_PREFIX.to_string(),
        config.timeouts,
        config.max_block_bytes,
    )?;
    let runtime = tokio::Config::new()
        .with_worker_threads(config.worker_threads.max(1))
        .with_storage_directory(config.storage_dir.clone());
    let storage_dir = config.storage_dir.display().to_string();
    tokio::Runner::new(runtime).start(|context| async move {
        let (channels, oracle) = start_network(&context, &config, &settings)?;
        let (handle, outbox) = EngineHandle::new(&settings.signer.public_key());
        let node_task = context.child("node").spawn(move |_| node(handle));
        let engine_task = context
            .child("engine")
            .spawn(move |context| engine::run(context, settings, ledger, oracle.clone(), oracle, channels, outbox));
        match select(node_task, engine_task).await {
            Either::Left((_, _)) => {
                info!("node stopped; shutting down consensus");
                Ok(())
            }
            Either::Right((Ok(Ok(())), _)) => Ok(()),
            Either::Right((Ok(Err(err)), _)) => Err(StartError::Storage {
                dir: storage_dir,
                reason: err.to_string(),
            }),
            Either::Right((Err(err), _)) => {
                error!(%err, "consensus engine task failed");
                Err(StartError::Panicked)
            }
        }
    })
}

/// Runs [`start`] on a dedicated thread and returns once the engine handle exists.
///
/// The returned join handle yields [`start`]'s result when the validator stops.
pub fn spawn<L: Ledger>(
    config: ValidatorConfig,
    ledger: L,
) -> Result<(EngineHandle, std::thread::JoinHandle<Result<(), StartError>>), StartError> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("consensus".into())
        .spawn(move || {
            start(config, ledger, move |handle| async move {
                let _ = sender.send(handle);
                // Keep the runtime alive until the engine itself stops.
                std::future::pending::<()>().await;
            })
        })
        .map_err(|_| StartError::Panicked)?;
    match receiver.recv() {
        Ok(handle) => Ok((handle, thread)),
        // The thread ended before handing out a handle: report why.
        Err(_) => Err(thread
            .join()
            .map_err(|_| StartError::Panicked)?
            .err()
            .unwrap_or(StartError::Panicked)),
    }
}

type LookupSender = lookup::Sender<commonware_cryptography::ed25519::PublicKey, tokio::Context>;
type LookupReceiver = lookup::Receiver<commonware_cryptography::ed25519::PublicKey>;

/// Starts the authenticated p2p network with the genesis peer list and registers the channels.
fn start_network(
    context: &tokio::Context,
    config: &ValidatorConfig,
    settings: &EngineSettings,
) -> Result<
    (
        Channels<LookupSender, LookupReceiver>,
        lookup::Oracle<commonware_cryptography::ed25519::PublicKey>,
    ),
    StartError,
> {
    let p2p = p2p_config(config, settings.signer.clone());
    let (mut network, mut oracle) = lookup::Network::new(context.child("p2p"), p2p);
    let mut peers = Vec::with_capacity(config.validators.len());
    for (index, peer) in config.validators.iter().enumerate() {
        peers.push((parse_public_key(&peer.public_key, index)?, Address::from(peer.address)));
    }
    let peers: Map<_, Address> = Map::from_iter_dedup(peers);
    let _ = oracle.track(0, peers);
    let channels = Channels {
        votes: network.register(engine::CHANNEL_VOTES, engine::QUOTA_CONSENSUS),
        certificates: network.register(engine::CHANNEL_CERTIFICATES, engine::QUOTA_CONSENSUS),
        resolver: network.register(engine::CHANNEL_RESOLVER, engine::QUOTA_FETCH),
        backfill: network.register(engine::CHANNEL_BACKFILL, engine::QUOTA_FETCH),
        blocks: network.register(engine::CHANNEL_BLOCKS, engine::QUOTA_FETCH),
        gossip: network.register(engine::CHANNEL_GOSSIP, engine::QUOTA_GOSSIP),
    };
    network.start();
    Ok((channels, oracle))
}

/// lookup p2p settings: `recommended` (or `local` when private IPs are allowed).
fn p2p_config(config: &ValidatorConfig, signer: PrivateKey) -> lookup::Config<SakeCups<PrivateKey, ChaCha20Poly1305>> {
    let handshake = Cups::<_, ChaCha20Poly1305>::new(
        Sake {
            signer,
            synchrony_bound: HANDSHAKE_SYNCHRONY_BOUND,
            max_handshake_age: HANDSHAKE_MAX_AGE,
            version: sake::Version::V1,
        },
        cups::Version::V1,
    );
    let mut namespace = config.namespace.clone();
    namespace.extend_from_slice(b"/p2p");
    let max_message = engine::max_message_bytes(config.validators.len(), config.max_block_bytes);
    let build = if config.allow_private_ips {
        lookup::Config::local
    } else {
        lookup::Config::recommended
    };
    build(
        handshake,
        &namespace,
        config.listen,
        NZUsize!(config.validators.len().max(1)),
        max_message,
        NZUsize!(P2P_MAILBOX_SIZE),
    )
}

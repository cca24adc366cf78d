//! The wiring shared by production and simulation: simplex (ed25519, round-robin leaders) +
//! marshal (ordered finalized blocks, backfill) + buffered block broadcast + the gossip channel,
//! generic over the commonware runtime and the p2p network.

use super::{
    Ledger,
    app::{Finalizer, LedgerApp, MarshalMailbox, deliver},
    block::{BlockCodec, LedgerBlock},
    config::{EngineSettings, Timeouts},
    gossip::{receive_gossip, send_gossip},
    storage::{MarshalParts, init_marshal},
};
use bytes::Bytes;
use commonware_consensus::{
    marshal::{self, standard::Inline},
    simplex::{
        self,
        config::{ForwardPolicy, SkipBudget, SkipPolicy},
        elector::RoundRobin,
        scheme::ed25519::Scheme,
    },
    types::{Epoch, FixedEpocher, ViewDelta},
};
use commonware_cryptography::{Digested, Digestible, Signer, ed25519::PublicKey};
use commonware_p2p::{Blocker, Channel, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{
    Clock, Handle, Metrics, Quota, Spawner, Storage,
    buffer::paged::{CacheRef, page_size},
};
use commonware_utils::{NZDuration, NZU32, NZU64, NZUsize, channel::mpsc};
use futures::future::select_all;
use rand::CryptoRng;
use std::num::{NonZeroU16, NonZeroU64, NonZeroUsize};
use tracing::{error, info};

/// p2p channel numbers. Part of the wire protocol: never renumber.
pub(crate) const CHANNEL_VOTES: Channel = 0;
pub(crate) const CHANNEL_CERTIFICATES: Channel = 1;
pub(crate) const CHANNEL_RESOLVER: Channel = 2;
pub(crate) const CHANNEL_BACKFILL: Channel = 3;
pub(crate) const CHANNEL_BLOCKS: Channel = 4;
pub(crate) const CHANNEL_GOSSIP: Channel = 5;

/// Messages per second accepted from (and sent to) each peer, per channel.
pub(crate) const QUOTA_CONSENSUS: Quota = Quota::per_second(NZU32!(512));
pub(crate) const QUOTA_FETCH: Quota = Quota::per_second(NZU32!(256));
pub(crate) const QUOTA_GOSSIP: Quota = Quota::per_second(NZU32!(64));

/// Capacity of every actor mailbox inside the engine.
pub(crate) const MAILBOX_SIZE: NonZeroUsize = NZUsize!(1024);
/// Blocks remembered per peer by the broadcast buffer.
pub(crate) const BROADCAST_DEQUE_SIZE: usize = 16;
/// Views kept behind the finalized tip (votes in simplex, unfinalized blocks in marshal).
pub(crate) const VIEW_RETENTION: ViewDelta = ViewDelta::new(256);
/// Missing finalized heights fetched in parallel while catching up.
pub(crate) const MAX_REPAIR: NonZeroUsize = NZUsize!(32);
/// Finalized blocks handed to the ledger before it must acknowledge the first of them.
pub(crate) const MAX_PENDING_ACKS: NonZeroUsize = NZUsize!(16);
/// Items per section of marshal's prunable cache and immutable archives.
pub(crate) const PRUNABLE_ITEMS_PER_SECTION: NonZeroU64 = NZU64!(4_096);
pub(crate) const IMMUTABLE_ITEMS_PER_SECTION: NonZeroU64 = NZU64!(262_144);
/// Journal page size: a storage format constant (changing it is a destructive migration).
const PAGE_SIZE: NonZeroU16 = page_size(4_096);
const PAGE_CACHE_PAGES: NonZeroUsize = NZUsize!(2_048);
pub(crate) const REPLAY_BUFFER: NonZeroUsize = NZUsize!(1024 * 1024);
pub(crate) const WRITE_BUFFER: NonZeroUsize = NZUsize!(64 * 1024);
/// One epoch for the whole chain (validator-set changes are not supported yet).
const EPOCH_LENGTH: NonZeroU64 = NZU64!(u64::MAX);
/// Delay before retrying an unanswered simplex fetch.
const FETCH_RETRY_DELAY_MS: u64 = 100;
/// Lower bound of the p2p message limit (votes, certificates, gossip).
const MIN_MESSAGE_BYTES: usize = 128 * 1024;

/// What a commonware runtime must provide to run the engine (tokio and deterministic both do).
pub trait Runtime: Clock + CryptoRng + Spawner + Storage + Metrics + Send + Sync + 'static {}
impl<T> Runtime for T where T: Clock + CryptoRng + Spawner + Storage + Metrics + Send + Sync + 'static {}

/// The six p2p channels, as (sender, receiver) pairs of one network.
pub(crate) struct Channels<S, R> {
    pub votes: (S, R),
    pub certificates: (S, R),
    pub resolver: (S, R),
    pub backfill: (S, R),
    pub blocks: (S, R),
    pub gossip: (S, R),
}

/// Largest message the network must carry: a backfilled block with its certificate.
pub(crate) fn max_message_bytes(participants: usize, max_block_bytes: usize) -> u32 {
    let participants = u32::try_from(participants).expect("validator count fits u32");
    let cfg = BlockCodec::bounds_only(max_block_bytes);
    let blocks = marshal::max_payload_size::<marshal::standard::Standard<LedgerBlock>, Scheme>(participants, &cfg);
    u32::try_from(blocks.max(MIN_MESSAGE_BYTES)).expect("message limit fits u32")
}

/// marshal's wrapper around [`LedgerApp`]: simplex's automaton, relay and reporter.
type Wrapped<E, L> = Inline<E, Scheme, LedgerApp<L>, LedgerBlock, FixedEpocher>;
type Digest = commonware_cryptography::sha256::Digest;
type Engine<E, L, B> =
    simplex::Engine<E, Scheme, RoundRobin, B, Digest, Wrapped<E, L>, Wrapped<E, L>, Wrapped<E, L>, Sequential>;
type SimplexConfig<E, L, B> =
    simplex::config::Config<Scheme, RoundRobin, B, Digest, Wrapped<E, L>, Wrapped<E, L>, Wrapped<E, L>, Sequential>;

/// The ledger's genesis as a block (a ledger whose genesis is malformed is a bug).
fn genesis_block<L: Ledger>(codec: &BlockCodec, ledger: &L) -> Digested<LedgerBlock> {
    let genesis = codec
        .block(Bytes::from(ledger.genesis()))
        .expect("Ledger::genesis must describe() as a block within max_block_bytes");
    assert_eq!(genesis.info().height, 0, "genesis block must have height 0");
    let digest = genesis.digest();
    Digested::precomputed(genesis, digest)
}

/// Runs one validator until any of its actors stops (or the context is stopped/aborted).
///
/// Everything is spawned as a child of `context`: aborting the task that runs this future
/// crashes the whole validator, which is how simulations model a crash.
pub(crate) async fn run<E, L, B, P, S, R>(
    context: E,
    settings: EngineSettings,
    ledger: L,
    blocker: B,
    peers: P,
    channels: Channels<S, R>,
    gossip_outbox: mpsc::Receiver<Bytes>,
) -> Result<(), commonware_storage::archive::Error>
where
    E: Runtime,
    L: Ledger,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let codec = BlockCodec::new(ledger.clone(), settings.max_block_bytes);
    let genesis = genesis_block(&codec, &ledger);
    let genesis_digest = genesis.digest();
    let scheme = Scheme::signer(
        &settings.namespace,
        settings.participants.clone(),
        settings.signer.clone(),
    )
    .expect("settings were validated: signer is a participant");
    let page_cache = CacheRef::new(PAGE_SIZE, PAGE_CACHE_PAGES);
    let epocher = FixedEpocher::new(EPOCH_LENGTH);
    let me = settings.signer.public_key();

    let parts = MarshalParts {
        settings: &settings,
        codec: &codec,
        scheme: &scheme,
        page_cache: &page_cache,
        epocher: &epocher,
        genesis,
        blocker: blocker.clone(),
        peers,
    };
    let (marshal, marshal_mailbox, buffer, resolver) =
        init_marshal(&context, parts, channels.backfill, channels.blocks).await?;
    let inline = Inline::new(
        context.child("inline"),
        LedgerApp::new(ledger.clone(), codec),
        marshal_mailbox.clone(),
        epocher,
    );
    let (finalizer, finalized) = Finalizer::new();
    let mut handles = vec![
        marshal.start(finalizer, buffer, resolver),
        spawn_delivery(&context, ledger.clone(), marshal_mailbox, finalized),
    ];

    let engine: Engine<E, L, B> = simplex::Engine::new(
        context.child("simplex"),
        simplex_config(&settings, scheme, blocker, inline, page_cache, genesis_digest),
    );
    handles.push(engine.start(channels.votes, channels.certificates, channels.resolver));
    handles.extend(spawn_gossip(&context, ledger, gossip_outbox, channels.gossip));
    info!(validator = %me, "consensus engine started");
    supervise(handles).await;
    Ok(())
}

/// Starts the gossip sender (draining [`EngineHandle`](super::EngineHandle)'s queue) and receiver.
fn spawn_gossip<E: Runtime, L: Ledger>(
    context: &E,
    ledger: L,
    outbox: mpsc::Receiver<Bytes>,
    (sender, receiver): (impl Sender<PublicKey = PublicKey>, impl Receiver<PublicKey = PublicKey>),
) -> [Handle<()>; 2] {
    [
        context.child("gossip_out").spawn(move |_| send_gossip(outbox, sender)),
        context
            .child("gossip_in")
            .spawn(move |_| receive_gossip(ledger, receiver)),
    ]
}

/// Waits until any actor stops; returning then aborts all the others (they are our children).
async fn supervise(handles: Vec<Handle<()>>) {
    let (result, index, _) = select_all(handles).await;
    match result {
        Ok(()) => info!(actor = index, "consensus actor stopped"),
        Err(err) => error!(actor = index, %err, "consensus actor failed"),
    }
}

fn spawn_delivery<E: Runtime, L: Ledger>(
    context: &E,
    ledger: L,
    marshal: MarshalMailbox,
    finalized: mpsc::UnboundedReceiver<super::app::Delivery>,
) -> Handle<()> {
    context
        .child("deliver")
        .spawn(move |_| deliver(ledger, marshal, finalized))
}

fn simplex_config<E, L, B>(
    settings: &EngineSettings,
    scheme: Scheme,
    blocker: B,
    inline: Wrapped<E, L>,
    page_cache: CacheRef,
    genesis_digest: Digest,
) -> SimplexConfig<E, L, B>
where
    E: Runtime,
    L: Ledger,
    B: Blocker<PublicKey = PublicKey>,
{
    let t: Timeouts = settings.timeouts;
    simplex::config::Config {
        scheme,
        elector: RoundRobin::default(),
        blocker,
        automaton: inline.clone(),
        relay: inline.clone(),
        reporter: inline,
        track_historical_votes: false,
        strategy: Sequential,
        partition: format!("{}-simplex", settings.partition_prefix),
        mailbox_size: MAILBOX_SIZE,
        epoch: Epoch::zero(),
        floor: simplex::config::Floor::Genesis(genesis_digest),
        replay_buffer: REPLAY_BUFFER,
        write_buffer: WRITE_BUFFER,
        page_cache,
        leader_timeout: Timeouts::duration(t.leader_timeout_ms),
        certification_timeout: Timeouts::duration(t.certification_timeout_ms),
        timeout_retry: Timeouts::duration(t.timeout_retry_ms),
        view_retention: VIEW_RETENTION,
        skip: SkipPolicy::Enabled {
            timeout: Timeouts::duration(t.skip_timeout_ms),
            budget: SkipBudget::Participants,
        },
        fetch_timeout: NZDuration!(Timeouts::duration(t.fetch_timeout_ms)),
        fetch_retry_delay: Timeouts::duration(FETCH_RETRY_DELAY_MS),
        forward: ForwardPolicy::SilentVoters,
    }
}

//! marshal and its on-disk archives. Partition names here are a storage format: they must stay
//! stable across restarts and releases (see [`PARTITION_PREFIX`](super::config::PARTITION_PREFIX)).

use super::{
    app::MarshalMailbox,
    block::{BlockCodec, LedgerBlock},
    config::{EngineSettings, Timeouts},
    engine::Runtime,
};
use commonware_broadcast::buffered;
use commonware_codec::Codec;
use commonware_consensus::{
    marshal::{self, Start, core::Actor, resolver::p2p as marshal_resolver, standard::Standard},
    simplex::scheme::ed25519::Scheme,
    types::FixedEpocher,
};
use commonware_cryptography::{
    Digested, Signer,
    certificate::{ConstantProvider, Verifier as _},
    ed25519::PublicKey,
    sha256::Digest,
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_storage::archive::immutable;
use commonware_utils::NZDuration;
use std::sync::Arc;

use super::engine::{
    BROADCAST_DEQUE_SIZE, IMMUTABLE_ITEMS_PER_SECTION, MAILBOX_SIZE, MAX_PENDING_ACKS, MAX_REPAIR,
    PRUNABLE_ITEMS_PER_SECTION, REPLAY_BUFFER, VIEW_RETENTION, WRITE_BUFFER,
};

const FREEZER_TABLE_INITIAL_SIZE: u32 = 65_536;
const FREEZER_TABLE_RESIZE_FREQUENCY: u8 = 4;
const FREEZER_TABLE_RESIZE_CHUNK_SIZE: u32 = 1 << 16;
const FREEZER_VALUE_TARGET_SIZE: u64 = 256 * 1024 * 1024;
const FETCH_RETRY_DELAY_MS: u64 = 100;

/// The marshal actor type for our block, archives and epoch layout.
pub(crate) type MarshalActor<E> = Actor<
    E,
    Standard<LedgerBlock>,
    ConstantProvider<Scheme, commonware_consensus::types::Epoch>,
    immutable::Archive<E, Digest, commonware_consensus::simplex::types::Finalization<Scheme, Digest>>,
    immutable::Archive<E, Digest, Arc<LedgerBlock>>,
    FixedEpocher,
    Sequential,
>;

/// marshal's resolver (backfill) endpoint: handler receiver + fetch mailbox.
pub(crate) type MarshalResolver = (
    marshal::resolver::handler::Receiver<Digest>,
    marshal_resolver::Mailbox<Digest, PublicKey>,
);

/// The marshal actor (not started), its mailbox, the block broadcast buffer and the resolver.
pub(crate) type MarshalInit<E> = (
    MarshalActor<E>,
    MarshalMailbox,
    buffered::Mailbox<PublicKey, LedgerBlock>,
    MarshalResolver,
);

/// What [`init_marshal`] needs beyond the runtime context.
pub(crate) struct MarshalParts<'a, B, P> {
    pub settings: &'a EngineSettings,
    pub codec: &'a BlockCodec,
    pub scheme: &'a Scheme,
    pub page_cache: &'a CacheRef,
    pub epocher: &'a FixedEpocher,
    pub genesis: Digested<LedgerBlock>,
    pub blocker: B,
    pub peers: P,
}

/// The marshal actor (not started), its mailbox, the block broadcast buffer (started on the
/// `blocks` channel) and the backfill resolver (started on the `backfill` channel).
pub(crate) async fn init_marshal<E, B, P, S, R>(
    context: &E,
    parts: MarshalParts<'_, B, P>,
    backfill: (S, R),
    blocks: (S, R),
) -> Result<MarshalInit<E>, commonware_storage::archive::Error>
where
    E: Runtime,
    B: Blocker<PublicKey = PublicKey>,
    P: Provider<PublicKey = PublicKey>,
    S: Sender<PublicKey = PublicKey>,
    R: Receiver<PublicKey = PublicKey>,
{
    let me = parts.settings.signer.public_key();
    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: me.clone(),
            peer_provider: parts.peers.clone(),
            blocker: parts.blocker.clone(),
            mailbox_size: MAILBOX_SIZE,
            fetch_timeout: NZDuration!(Timeouts::duration(parts.settings.timeouts.fetch_timeout_ms)),
            fetch_retry_delay: Timeouts::duration(FETCH_RETRY_DELAY_MS),
            priority_requests: false,
            priority_responses: false,
        },
        backfill,
    );
    let (broadcast, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: me,
            mailbox_size: MAILBOX_SIZE,
            deque_size: BROADCAST_DEQUE_SIZE,
            priority: false,
            codec_config: parts.codec.clone(),
            peer_provider: parts.peers.clone(),
            strategy: Sequential,
        },
    );
    broadcast.start(blocks);

    let prefix = &parts.settings.partition_prefix;
    let finalizations = archive(
        context.child("finalizations_by_height"),
        prefix,
        "finalizations",
        parts.page_cache,
        parts.scheme.certificate_codec_config(),
    )
    .await?;
    let finalized_blocks = archive(
        context.child("finalized_blocks"),
        prefix,
        "blocks",
        parts.page_cache,
        parts.codec.clone(),
    )
    .await?;
    let config = marshal_config(&parts, prefix);
    let (actor, mailbox, _floor) = Actor::init(context.child("marshal"), finalizations, finalized_blocks, config).await;
    Ok((actor, mailbox, buffer, resolver))
}

fn marshal_config<B, P>(
    parts: &MarshalParts<'_, B, P>,
    prefix: &str,
) -> marshal::Config<
    ConstantProvider<Scheme, commonware_consensus::types::Epoch>,
    FixedEpocher,
    Sequential,
    LedgerBlock,
    Digested<LedgerBlock>,
> {
    marshal::Config {
        provider: ConstantProvider::new(parts.scheme.clone()),
        epocher: parts.epocher.clone(),
        start: Start::Genesis(parts.genesis.clone()),
        partition_prefix: format!("{prefix}-marshal"),
        mailbox_size: MAILBOX_SIZE,
        view_retention: VIEW_RETENTION,
        prunable_items_per_section: PRUNABLE_ITEMS_PER_SECTION,
        page_cache: parts.page_cache.clone(),
        replay_buffer: REPLAY_BUFFER,
        key_write_buffer: WRITE_BUFFER,
        value_write_buffer: WRITE_BUFFER,
        block_codec_config: parts.codec.clone(),
        max_repair: MAX_REPAIR,
        max_pending_acks: MAX_PENDING_ACKS,
        strategy: Sequential,
    }
}

/// Opens (or creates) the immutable archive `<prefix>-<name>-*`.
async fn archive<E, V>(
    context: E,
    prefix: &str,
    name: &str,
    page_cache: &CacheRef,
    codec_config: V::Cfg,
) -> Result<immutable::Archive<E, Digest, V>, commonware_storage::archive::Error>
where
    E: Runtime,
    V: Codec + Send + Sync,
{
    let partition = |part: &str| format!("{prefix}-{name}-{part}");
    immutable::Archive::init(
        context,
        immutable::Config {
            metadata_partition: partition("metadata"),
            freezer_table_partition: partition("freezer-table"),
            freezer_table_initial_size: FREEZER_TABLE_INITIAL_SIZE,
            freezer_table_resize_frequency: FREEZER_TABLE_RESIZE_FREQUENCY,
            freezer_table_resize_chunk_size: FREEZER_TABLE_RESIZE_CHUNK_SIZE,
            freezer_key_partition: partition("freezer-key"),
            freezer_key_page_cache: page_cache.clone(),
            freezer_key_write_buffer: WRITE_BUFFER,
            freezer_value_partition: partition("freezer-value"),
            freezer_value_write_buffer: WRITE_BUFFER,
            freezer_value_target_size: FREEZER_VALUE_TARGET_SIZE,
            freezer_value_compression: None,
            ordinal_partition: partition("ordinal"),
            ordinal_write_buffer: WRITE_BUFFER,
            items_per_section: IMMUTABLE_ITEMS_PER_SECTION,
            codec_config,
            replay_buffer: REPLAY_BUFFER,
        },
    )
    .await
}

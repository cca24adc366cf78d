//! The two places where commonware calls into the [`Ledger`]:
//!
//! - [`LedgerApp`] is marshal's [`Application`]: it builds and verifies blocks. marshal's
//!   [`Inline`](commonware_consensus::marshal::standard::Inline) wrapper turns it into the
//!   automaton, relay and reporter that simplex needs (fetching parents, linking heights).
//! - [`Finalizer`] receives marshal's ordered finalized blocks and a task ([`deliver`]) hands
//!   them to [`Ledger::finalized`] gap-free, acknowledging each only after the ledger applied it.

use super::{Ledger, block::BlockCodec, block::LedgerBlock};
use bytes::Bytes;
use commonware_actor::Feedback;
use commonware_codec::Encode;
use commonware_consensus::{
    Application, Heightable, Reporter,
    marshal::{Update, ancestry::Ancestry, core::Mailbox, standard::Standard},
    simplex::{scheme::ed25519::Scheme, types::Context},
    types::Height,
};
use commonware_cryptography::{Digested, Digestible, ed25519::PublicKey, sha256};
use commonware_runtime::Clock;
use commonware_utils::{Acknowledgement, acknowledgement::Exact, channel::mpsc};
use futures::StreamExt;
use std::time::UNIX_EPOCH;
use tracing::{debug, error, warn};

/// simplex's per-proposal context in this engine (digest type, validator key type).
pub(crate) type ConsensusContext = Context<sha256::Digest, PublicKey>;

/// marshal's mailbox for our block type.
pub(crate) type MarshalMailbox = Mailbox<Scheme, Standard<LedgerBlock>>;

/// The runtime clock in milliseconds since the Unix epoch (simulated time under the
/// deterministic runtime).
pub(crate) fn now_ms(clock: &impl Clock) -> u64 {
    let since = clock.current().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// marshal [`Application`] over a [`Ledger`].
#[derive(Clone)]
pub(crate) struct LedgerApp<L> {
    ledger: L,
    codec: BlockCodec,
}

impl<L: Ledger> LedgerApp<L> {
    pub(crate) fn new(ledger: L, codec: BlockCodec) -> Self {
        Self { ledger, codec }
    }

    /// Asks the ledger for a child of `parent` and checks that it really is one.
    fn build(&self, parent: &Digested<LedgerBlock>, now_ms: u64) -> Option<Digested<LedgerBlock>> {
        let bytes = self.ledger.propose(parent.inner().bytes(), now_ms)?;
        let Some(block) = self.codec.block(Bytes::from(bytes)) else {
            error!("ledger proposed a block that its own describe() rejects or that is too large");
            return None;
        };
        let (info, parent_info) = (block.info(), parent.inner().info());
        if info.parent != parent_info.digest || info.height != parent_info.height + 1 {
            error!(
                height = info.height,
                parent_height = parent_info.height,
                "ledger proposed a block that does not extend the requested parent"
            );
            return None;
        }
        let digest = block.digest();
        Some(Digested::precomputed(block, digest))
    }
}

impl<E, L> Application<E> for LedgerApp<L>
where
    E: Clock,
    L: Ledger,
{
    type SigningScheme = Scheme;
    type Context = ConsensusContext;
    type Block = LedgerBlock;
    type Input = ();

    async fn propose(
        &mut self,
        (runtime, _context): (E, ConsensusContext),
        mut ancestry: impl Ancestry<LedgerBlock>,
        _input: (),
    ) -> Option<Digested<LedgerBlock>> {
        // The ancestry starts at the parent we are asked to extend.
        let parent = ancestry.next().await?;
        let started = runtime.current();
        while !self.ledger.has_pending_txs()
            && runtime.current().duration_since(started).unwrap_or_default() < super::IDLE_PROPOSE_DELAY
        {
            runtime.sleep(super::IDLE_POLL).await;
        }
        self.build(&parent, now_ms(&runtime))
    }

    async fn verify(
        &mut self,
        (runtime, _context): (E, ConsensusContext),
        mut ancestry: impl Ancestry<LedgerBlock>,
    ) -> bool {
        // The ancestry starts at the candidate, followed by its parent (both already fetched by
        // marshal, which also checked parent digest and height linkage).
        let (Some(block), Some(parent)) = (ancestry.next().await, ancestry.next().await) else {
            // Not a verdict: the data may still arrive; consensus cancels us when it moves on.
            return std::future::pending().await;
        };
        self.ledger
            .verify(parent.inner().bytes(), block.inner().bytes(), now_ms(&runtime))
    }
}

/// A finalized block from marshal and the acknowledgement that releases the next one.
pub(crate) type Delivery = (Digested<LedgerBlock>, Exact);

/// marshal's application reporter: forwards finalized blocks to the [`deliver`] task.
///
/// The channel is unbounded but marshal never has more than `max_pending_acks` blocks
/// unacknowledged, which bounds it.
#[derive(Clone)]
pub(crate) struct Finalizer {
    sender: mpsc::UnboundedSender<Delivery>,
}

impl Finalizer {
    pub(crate) fn new() -> (Self, mpsc::UnboundedReceiver<Delivery>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (Self { sender }, receiver)
    }
}

impl Reporter for Finalizer {
    type Activity = Update<LedgerBlock>;

    fn report(&mut self, activity: Update<LedgerBlock>) -> Feedback {
        match activity {
            Update::Block(block, ack) => match self.sender.send((block, ack)) {
                Ok(()) => Feedback::Ok,
                Err(_) => Feedback::Closed,
            },
            Update::Tip(round, height, _) => {
                debug!(%round, %height, "finalized tip");
                Feedback::Ok
            }
        }
    }
}

/// The encoded finalization certificate for `height`, or empty if marshal holds none (a block
/// finalized only through a descendant's certificate, e.g. one obtained by backfill).
async fn certificate(marshal: &MarshalMailbox, height: u64) -> Vec<u8> {
    match marshal.get_finalization(Height::new(height)).await {
        Some(finalization) => finalization.encode().to_vec(),
        None => Vec::new(),
    }
}

/// Applies stored finalized blocks `ledger.last_finalized_height()+1 ..= to` from marshal's
/// archive. Used when the ledger is behind marshal's processed height (e.g. its database was
/// restored from an older backup while commonware's storage was kept).
async fn replay<L: Ledger>(ledger: &L, marshal: &MarshalMailbox, to: u64) {
    let from = ledger.last_finalized_height() + 1;
    for height in from..=to {
        let Some(block) = marshal.get_block(Height::new(height)).await else {
            // marshal's archive must hold every processed block; a hole is a storage bug.
            panic!("finalized block {height} missing from marshal's archive during replay");
        };
        let certificate = certificate(marshal, height).await;
        ledger.finalized(block.inner().bytes(), &certificate);
    }
}

/// Hands marshal's finalized blocks to the ledger in height order, without gaps, and
/// acknowledges each after [`Ledger::finalized`] returned (so marshal's processed height never
/// runs ahead of the ledger's durable height).
pub(crate) async fn deliver<L: Ledger>(
    ledger: L,
    marshal: MarshalMailbox,
    mut blocks: mpsc::UnboundedReceiver<Delivery>,
) {
    if let Some(processed) = marshal.get_processed().await {
        let processed = processed.height().get();
        if processed > ledger.last_finalized_height() {
            warn!(
                processed,
                ledger = ledger.last_finalized_height(),
                "ledger behind consensus storage, replaying"
            );
            replay(&ledger, &marshal, processed).await;
        }
    }
    while let Some((block, ack)) = blocks.recv().await {
        let height = block.height().get();
        if height > ledger.last_finalized_height() + 1 {
            replay(&ledger, &marshal, height - 1).await;
        }
        if height > ledger.last_finalized_height() {
            let certificate = certificate(&marshal, height).await;
            ledger.finalized(block.inner().bytes(), &certificate);
        }
        ack.acknowledge();
    }
}

//! The ledger's own gossip channel and [`EngineHandle`], what the rest of the node holds.

use super::Ledger;
use bytes::Bytes;
use commonware_cryptography::ed25519::PublicKey;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_utils::channel::mpsc;
use tracing::{debug, warn};

/// Largest gossip message, in bytes (checkpoint cosignatures and the like are far smaller).
pub const MAX_GOSSIP_BYTES: usize = 64 * 1024;

/// Gossip messages queued for sending before [`EngineHandle::gossip`] reports backpressure.
pub const GOSSIP_QUEUE_MAX: usize = 1024;

/// Why a gossip message was not queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum GossipError {
    #[error("gossip message is {len} bytes, above the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("gossip queue is full ({GOSSIP_QUEUE_MAX} messages); retry later")]
    Backlogged,
    #[error("the consensus engine has stopped")]
    Stopped,
}

/// What the application may ask of the running engine. Cheap to clone; usable from any thread
/// (sync methods only, so callers need no particular async runtime).
#[derive(Clone, Debug)]
pub struct EngineHandle {
    public_key: [u8; 32],
    outbox: mpsc::Sender<Bytes>,
}

impl EngineHandle {
    /// A handle and the receiving end of its gossip queue (drained by [`send_gossip`]).
    pub(crate) fn new(public_key: &PublicKey) -> (Self, mpsc::Receiver<Bytes>) {
        let (outbox, receiver) = mpsc::channel(GOSSIP_QUEUE_MAX);
        let mut key = [0u8; 32];
        key.copy_from_slice(public_key.as_ref());
        (
            Self {
                public_key: key,
                outbox,
            },
            receiver,
        )
    }

    /// This validator's 32-byte ed25519 consensus public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Best-effort broadcast of `message` to every other validator, delivered to their
    /// [`Ledger::on_gossip`]. Messages can be lost (offline peer, rate limit): gossip that must
    /// arrive needs an application-level retry.
    pub fn gossip(&self, message: impl Into<Bytes>) -> Result<(), GossipError> {
        let message = message.into();
        if message.len() > MAX_GOSSIP_BYTES {
            return Err(GossipError::TooLarge {
                len: message.len(),
                max: MAX_GOSSIP_BYTES,
            });
        }
        self.outbox.try_send(message).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => GossipError::Backlogged,
            mpsc::error::TrySendError::Closed(_) => GossipError::Stopped,
        })
    }
}

/// Sends queued gossip to all peers. Never returns: once every [`EngineHandle`] is dropped it
/// idles (the engine's supervisor treats a returning actor as an engine stop).
pub(crate) async fn send_gossip(mut outbox: mpsc::Receiver<Bytes>, mut sender: impl Sender<PublicKey = PublicKey>) {
    while let Some(message) = outbox.recv().await {
        let sent_to = sender.send(Recipients::All, message, false);
        debug!(peers = sent_to.len(), "gossip sent");
    }
    std::future::pending::<()>().await;
}

/// Hands gossip from peers to [`Ledger::on_gossip`] until the network closes.
pub(crate) async fn receive_gossip<L: Ledger>(ledger: L, mut receiver: impl Receiver<PublicKey = PublicKey>) {
    loop {
        let (from, message) = match receiver.recv().await {
            Ok(received) => received,
            Err(err) => {
                warn!(%err, "gossip channel closed");
                return;
            }
        };
        let mut key = [0u8; 32];
        key.copy_from_slice(from.as_ref());
        ledger.on_gossip(key, message.as_ref());
    }
}

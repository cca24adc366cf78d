//! [`LedgerBlock`]: the ledger's opaque encoded block, dressed in the traits commonware needs.
//!
//! The engine never looks inside a block. Digest, height and parent come from
//! [`Ledger::describe`](super::Ledger::describe), computed once when the block is built or decoded
//! and carried alongside the bytes.

use super::{BlockInfo, Ledger};
use bytes::{BufMut, Bytes};
use commonware_codec::{Buf, EncodeSize, Error as CodecError, RangeCfg, Read, Write};
use commonware_consensus::{Block, BoundedBlock, Heightable, types::Height};
use commonware_cryptography::{Digestible, sha256};
use std::{fmt, sync::Arc};

/// Largest encoded block the engine accepts, in bytes (the ledger's own limit must not exceed it).
pub const MAX_BLOCK_BYTES: usize = chipledger_types::limits::MAX_BLOCK_BYTES;

/// How the codec recognises a block: the byte limit and the ledger's `describe`.
///
/// This is the `Read::Cfg` of [`LedgerBlock`], so every decode (network, storage) goes through
/// the ledger's own parser and is bounded by `max_block_bytes`.
#[derive(Clone)]
pub struct BlockCodec {
    max_block_bytes: usize,
    describe: Arc<Describe>,
}

/// [`Ledger::describe`], type-erased so the block type need not be generic over the ledger.
type Describe = dyn Fn(&[u8]) -> Option<BlockInfo> + Send + Sync;

impl BlockCodec {
    /// A codec that parses blocks with `ledger.describe`, rejecting blocks over `max_block_bytes`.
    pub fn new<L: Ledger>(ledger: L, max_block_bytes: usize) -> Self {
        assert!(max_block_bytes <= MAX_BLOCK_BYTES, "block limit above MAX_BLOCK_BYTES");
        Self {
            max_block_bytes,
            describe: Arc::new(move |bytes| ledger.describe(bytes)),
        }
    }

    /// A codec that only knows the size bound (for computing message limits; decodes nothing).
    pub(crate) fn bounds_only(max_block_bytes: usize) -> Self {
        Self {
            max_block_bytes,
            describe: Arc::new(|_| None),
        }
    }

    /// Wraps encoded bytes as a block, or `None` if too large or not a block.
    pub fn block(&self, bytes: Bytes) -> Option<LedgerBlock> {
        if bytes.len() > self.max_block_bytes {
            return None;
        }
        let info = (self.describe)(&bytes)?;
        Some(LedgerBlock { bytes, info })
    }
}

impl fmt::Debug for BlockCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockCodec")
            .field("max_block_bytes", &self.max_block_bytes)
            .finish_non_exhaustive()
    }
}

/// An encoded ledger block plus what [`Ledger::describe`] said about it.
///
/// Wire form: `varint(len) || bytes` (commonware's canonical `Bytes` encoding), so
/// `encode(decode(x)) == x` holds as marshal requires.
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerBlock {
    bytes: Bytes,
    info: BlockInfo,
}

impl LedgerBlock {
    /// The ledger's encoded block.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Digest, height and parent as the ledger described them.
    pub fn info(&self) -> BlockInfo {
        self.info
    }
}

impl fmt::Debug for LedgerBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LedgerBlock")
            .field("height", &self.info.height)
            .field("digest", &hex::encode(self.info.digest))
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Write for LedgerBlock {
    fn write(&self, buf: &mut impl BufMut) {
        self.bytes.write(buf);
    }
}

impl EncodeSize for LedgerBlock {
    fn encode_size(&self) -> usize {
        self.bytes.encode_size()
    }
}

impl Read for LedgerBlock {
    type Cfg = BlockCodec;

    fn read_cfg(buf: &mut impl Buf, cfg: &Self::Cfg) -> Result<Self, CodecError> {
        let range: RangeCfg<usize> = (0..=cfg.max_block_bytes).into();
        let bytes = Bytes::read_cfg(buf, &range)?;
        cfg.block(bytes)
            .ok_or(CodecError::Invalid("LedgerBlock", "ledger rejected block bytes"))
    }
}

impl Digestible for LedgerBlock {
    type Digest = sha256::Digest;

    fn digest(&self) -> sha256::Digest {
        sha256::Digest(self.info.digest)
    }
}

impl Heightable for LedgerBlock {
    fn height(&self) -> Height {
        Height::new(self.info.height)
    }
}

impl Block for LedgerBlock {
    fn parent(&self) -> sha256::Digest {
        sha256::Digest(self.info.parent)
    }
}

impl BoundedBlock for LedgerBlock {
    fn max_encode_size(cfg: &Self::Cfg) -> usize {
        cfg.max_block_bytes.encode_size() + cfg.max_block_bytes
    }
}

//! Blocks: a header committing to its parent, the log and the state after the block, and the
//! encoded transactions in log order.

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

use crate::cbor::{Decode, DecodeError, Decoder, Encode, Encoder, Limits};
use crate::keys::{TAG_BLOCK_V1, signed_message};
use crate::limits::{MAX_BLOCK_TXS, MAX_TX_BYTES};

/// Block format version written by this code.
pub const BLOCK_VERSION: u32 = 1;

/// What a block commits to. The digest of a block is SHA-256(TAG_BLOCK_V1 ‖ 0x00 ‖ CBOR(header)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub version: u32,
    pub height: u64,
    /// Digest of the parent block; for genesis (height 0), SHA-256 of the encoded genesis config.
    pub parent: [u8; 32],
    /// Proposer's clock, milliseconds since the Unix epoch; strictly greater than the parent's.
    pub timestamp_ms: u64,
    /// Index of the proposing validator in the genesis validator list.
    pub proposer: u32,
    /// Number of transactions in the block (each is one log leaf).
    pub tx_count: u32,
    /// RFC 9162 log size after this block's transactions were appended.
    pub log_size: u64,
    /// RFC 9162 log root after this block.
    pub log_root: [u8; 32],
    /// Authenticated state root after this block.
    pub state_root: [u8; 32],
}

impl BlockHeader {
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(signed_message(TAG_BLOCK_V1, &self.to_cbor())).into()
    }
}

impl Encode for BlockHeader {
    fn encode(&self, e: &mut Encoder) {
        e.array(9)
            .uint(self.version as u64)
            .uint(self.height)
            .bytes(&self.parent)
            .uint(self.timestamp_ms)
            .uint(self.proposer as u64)
            .uint(self.tx_count as u64)
            .uint(self.log_size)
            .bytes(&self.log_root)
            .bytes(&self.state_root);
    }
}

impl Decode for BlockHeader {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(9)?;
        let h = BlockHeader {
            version: d.u32()?,
            height: d.uint()?,
            parent: d.fixed()?,
            timestamp_ms: d.uint()?,
            proposer: d.u32()?,
            tx_count: d.u32()?,
            log_size: d.uint()?,
            log_root: d.fixed()?,
            state_root: d.fixed()?,
        };
        d.end();
        if h.version != BLOCK_VERSION {
            return Err(DecodeError::Invalid {
                what: "block header",
                why: "unsupported version",
            });
        }
        Ok(h)
    }
}

/// A block: header plus the encoded transactions (each exactly as signed and logged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub header: BlockHeader,
    pub txs: Vec<Vec<u8>>,
}

impl Block {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b = Self::from_cbor(bytes, Limits::BLOCK)?;
        if b.txs.len() != b.header.tx_count as usize {
            return Err(DecodeError::Invalid {
                what: "block",
                why: "tx_count does not match the transactions",
            });
        }
        Ok(b)
    }

    pub fn digest(&self) -> [u8; 32] {
        self.header.digest()
    }
}

impl Encode for Block {
    fn encode(&self, e: &mut Encoder) {
        e.array(2);
        self.header.encode(e);
        e.array(self.txs.len());
        for tx in &self.txs {
            e.bytes(tx);
        }
    }
}

impl Decode for Block {
    fn decode(d: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        d.array_of(2)?;
        let header = BlockHeader::decode(d)?;
        let n = d.array()?;
        if n > MAX_BLOCK_TXS {
            return Err(DecodeError::TooLong {
                what: "block transactions",
                len: n as u64,
                max: MAX_BLOCK_TXS,
            });
        }
        let mut txs = Vec::with_capacity(n);
        for _ in 0..n {
            let tx = d.bytes()?;
            if tx.len() > MAX_TX_BYTES {
                return Err(DecodeError::TooLong {
                    what: "transaction",
                    len: tx.len() as u64,
                    max: MAX_TX_BYTES,
                });
            }
            txs.push(tx.to_vec());
        }
        d.end();
        d.end();
        Ok(Block { header, txs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_count_check() {
        let header = BlockHeader {
            version: BLOCK_VERSION,
            height: 3,
            parent: [1; 32],
            timestamp_ms: 1_700_000_000_000,
            proposer: 2,
            tx_count: 2,
            log_size: 10,
            log_root: [2; 32],
            state_root: [3; 32],
        };
        let block = Block {
            header: header.clone(),
            txs: alloc::vec![alloc::vec![1, 2], alloc::vec![3]],
        };
        let bytes = block.to_cbor();
        assert_eq!(Block::from_bytes(&bytes).unwrap(), block);
        let mut lying = block.clone();
        lying.header.tx_count = 3;
        assert!(Block::from_bytes(&lying.to_cbor()).is_err());
        let mut other = header.clone();
        other.state_root[0] ^= 1;
        assert_ne!(other.digest(), header.digest());
    }
}

//! Transactions, blocks and the canonical CBOR codec under them.

use chipledger_types::block::Block;
use chipledger_types::cbor::{DecodeError, Decoder, Encode, Encoder, Limits};
use chipledger_types::tx::SignedTx;

use crate::fixture;

/// `POST /v1/tx` and gossip: the mempool's first step (`executor::submit` → `SignedTx::from_bytes`).
/// An accepted envelope has exactly one encoding, and no signature verifies under keys nobody
/// signed with.
pub fn tx(data: &[u8]) {
    let Ok(tx) = SignedTx::from_bytes(data) else { return };
    let bytes = tx.to_cbor();
    assert_eq!(bytes, data, "an accepted transaction re-encodes to its own bytes");
    assert_eq!(SignedTx::from_bytes(&bytes).as_ref(), Ok(&tx));
    for key in fixture::unused_ledger_keys() {
        assert!(
            tx.verify_with(&key).is_err(),
            "a signature verified under an unused key"
        );
    }
}

/// Blocks from peers (`executor` verify / finalize → `Block::from_bytes`), and every transaction
/// inside them.
pub fn block(data: &[u8]) {
    let Ok(block) = Block::from_bytes(data) else { return };
    let bytes = block.to_cbor();
    assert_eq!(bytes, data, "an accepted block re-encodes to its own bytes");
    assert_eq!(Block::from_bytes(&bytes).as_ref(), Ok(&block));
    assert_eq!(block.txs.len(), block.header.tx_count as usize);
    for tx in &block.txs {
        self::tx(tx);
    }
}

/// The strict decoder itself, walking any item tree with the transaction limits: whatever it
/// accepts re-encodes byte for byte (one encoding per value).
pub fn cbor(data: &[u8]) {
    let Ok(mut d) = Decoder::new(data, Limits::TX) else {
        return;
    };
    let mut e = Encoder::new();
    if walk(&mut d, &mut e).is_ok() && d.finish().is_ok() {
        assert_eq!(e.into_bytes(), data, "canonical CBOR re-encodes to its own bytes");
    }
}

/// Copies one item from `d` to `e`.
fn walk(d: &mut Decoder<'_>, e: &mut Encoder) -> Result<(), DecodeError> {
    match d.next_major()? {
        0 => {
            e.uint(d.uint()?);
        }
        1 => {
            e.int(d.int()?);
        }
        2 => {
            e.bytes(d.bytes()?);
        }
        3 => {
            e.text(d.text()?);
        }
        4 => {
            let n = d.array()?;
            e.array(n);
            for _ in 0..n {
                walk(d, e)?;
            }
            d.end();
        }
        _ if d.null()? => {
            e.null();
        }
        _ => {
            e.bool(d.bool()?);
        }
    }
    Ok(())
}

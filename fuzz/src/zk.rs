//! Range proofs as every validator checks a `PublishRangeProof` (`state::zk` →
//! `chipledger_zk::verify_bounds`).

use chipledger_zk::{COMMITMENT_BYTES, Commitment, verify_bounds};

/// Bytes before the proof: commitment, min, max (u64 BE each), bits.
pub const HEADER_BYTES: usize = COMMITMENT_BYTES + 8 + 8 + 1;

/// `commitment (32) ‖ min (8) ‖ max (8) ‖ bits (1) ‖ proof`: the statement's commitment and the
/// transaction's fields. Verification is deterministic, and a proof for `[min, max]` never
/// verifies for a range it does not cover.
pub fn range_proof(data: &[u8]) {
    let Some((header, proof)) = data.split_first_chunk::<HEADER_BYTES>() else {
        return;
    };
    let (commitment, rest) = header.split_at(COMMITMENT_BYTES);
    let min = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
    let max = u64::from_be_bytes(rest[8..16].try_into().expect("8 bytes"));
    let bits = rest[16];
    // As `state::zk`: the statement's 32 bytes, unchecked (verify_bounds decompresses them).
    let commitment = Commitment(commitment.try_into().expect("32 bytes"));
    let _ = Commitment::from_bytes(&commitment.0);
    let verdict = verify_bounds(&commitment, min, max, bits, proof);
    assert_eq!(
        verify_bounds(&commitment, min, max, bits, proof),
        verdict,
        "verification is not deterministic"
    );
    if verdict.is_ok() && min > 0 {
        // The statement binds its range: the same proof for a wider range is a different statement.
        assert!(
            verify_bounds(&commitment, min - 1, max, bits, proof).is_err(),
            "a proof verified for another range"
        );
    }
}

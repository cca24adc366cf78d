//! RFC 9162 inclusion / consistency proofs (the API's `/v1/proof/*` with client-chosen
//! parameters, and every client verifying them) and sparse-Merkle state proofs (`/v1/state`,
//! update bundles, command proofs).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use chipledger_state::smt::Smt;
use chipledger_types::cbor::{Decode, Encode, Limits};
use chipledger_types::merkle::{
    Hash, MemoryStore, consistency_proof, hash_leaf, inclusion_proof, root_from_store, verify_consistency,
    verify_inclusion,
};
use chipledger_types::state_proof::{ProvenRecord, key_hash, value_hash};

/// Largest log the merkle target builds (leaves are `i.to_be_bytes()`).
pub const MERKLE_LEAVES_MAX: u16 = 300;

/// What the merkle target reads: a log size, the API's query parameters, a client's proof.
#[derive(Arbitrary, Debug)]
struct MerkleInput {
    leaves: u16,
    index: u64,
    size: u64,
    size2: u64,
    flip: (u8, u8),
    proof: Vec<[u8; 32]>,
}

/// Proofs the node serves for any query (never a panic), that verify, that stop verifying when
/// one bit flips; and client verification of arbitrary proofs accepts only the one true proof.
pub fn merkle(data: &[u8]) {
    let Ok(input) = MerkleInput::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let n = u64::from(input.leaves % (MERKLE_LEAVES_MAX + 1));
    let store = MemoryStore::from_leaves((0..n).map(u64::to_be_bytes));
    // The node answers `/v1/proof/inclusion?index=&size=` for any index once size <= its log.
    let size = input.size % (n + 1);
    let index = input.index % (n + 2);
    if let Ok(proof) = inclusion_proof(&store, index, size) {
        let root = root_from_store(&store, size).expect("root of a stored size");
        let leaf = hash_leaf(&index.to_be_bytes());
        assert!(
            verify_inclusion(&leaf, index, size, &proof, &root).is_ok(),
            "served inclusion proof fails"
        );
        if let Some(tampered) = flip(&proof, input.flip) {
            assert!(
                verify_inclusion(&leaf, index, size, &tampered, &root).is_err(),
                "tampered proof verified"
            );
        }
    }
    let size2 = input.size2 % (n + 1);
    if let Ok(proof) = consistency_proof(&store, size, size2) {
        let (r1, r2) = (root_from_store(&store, size), root_from_store(&store, size2));
        let (r1, r2) = (r1.expect("root"), r2.expect("root"));
        assert!(
            verify_consistency(size, size2, &proof, &r1, &r2).is_ok(),
            "served consistency proof fails"
        );
        if let Some(tampered) = flip(&proof, input.flip) {
            assert!(
                verify_consistency(size, size2, &tampered, &r1, &r2).is_err(),
                "tampered proof verified"
            );
        }
    }
    client_side(&store, n, &input);
}

/// A client verifying a proof it was handed for a leaf it knows, against a root it trusts.
fn client_side(store: &MemoryStore, n: u64, input: &MerkleInput) {
    let (index, size) = (input.index, input.size);
    let root = root_from_store(store, size.min(n)).expect("root");
    let leaf = hash_leaf(&index.to_be_bytes());
    if verify_inclusion(&leaf, index, size, &input.proof, &root).is_ok() {
        assert!(index < size, "inclusion verified outside the tree");
        if size <= n {
            let truth = inclusion_proof(store, index, size).expect("proof");
            assert_eq!(truth, input.proof, "a second inclusion proof verified");
        }
    }
    let (size1, size2) = (input.size2, size);
    let root1 = root_from_store(store, size1.min(n)).expect("root");
    if verify_consistency(size1, size2, &input.proof, &root1, &root).is_ok() && size1 <= n && size2 <= n {
        let truth = consistency_proof(store, size1, size2).unwrap_or_default();
        assert_eq!(truth, input.proof, "a second consistency proof verified");
    }
}

/// `proof` with bit `at.1 % 8` of byte `at.0 % 32` of hash `at.0 % len` flipped.
fn flip(proof: &[Hash], at: (u8, u8)) -> Option<Vec<Hash>> {
    if proof.is_empty() {
        return None;
    }
    let mut out = proof.to_vec();
    let i = usize::from(at.0) % out.len();
    out[i][usize::from(at.0) % 32] ^= 1 << (at.1 % 8);
    Some(out)
}

/// The state the state-proof target proves against: the update world's key-value state.
struct ProvenState {
    values: BTreeMap<Vec<u8>, Vec<u8>>,
    root: Hash,
}

fn proven_state() -> &'static ProvenState {
    static STATE: OnceLock<ProvenState> = OnceLock::new();
    STATE.get_or_init(|| {
        let values = crate::fixture::world().0.state.values.clone();
        let mut tree = Smt::default();
        for (k, v) in &values {
            tree.update(key_hash(k), Some(value_hash(v)));
        }
        ProvenState {
            root: tree.root(),
            values,
        }
    })
}

/// A `ProvenRecord` as bundles and proofs carry it (canonical CBOR): it round-trips, and it
/// verifies only when it tells the truth about the state.
pub fn state_proof(data: &[u8]) {
    let Ok(record) = ProvenRecord::from_cbor(data, Limits::STATE) else {
        return;
    };
    assert_eq!(
        record.to_cbor(),
        data,
        "an accepted state proof re-encodes to its own bytes"
    );
    let state = proven_state();
    if let Ok(value) = record.verify(&state.root, &record.key) {
        let truth = state.values.get(&record.key).map(Vec::as_slice);
        assert_eq!(value, truth, "a state proof verified a value the state does not hold");
    }
}

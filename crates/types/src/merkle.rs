//! RFC 9162 §2 Merkle tree: hashing, a compact frontier for appends, proof
//! generation from a store of perfect-subtree hashes, and the proof verifiers
//! of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
//!
//! Node addressing: `(level, index)` names the perfect subtree of `2^level`
//! leaves starting at leaf `index << level`. Level 0 holds the leaf hashes.
//! A perfect subtree never changes once complete, so a store only ever
//! appends.

use alloc::vec::Vec;
use sha2::{Digest, Sha256};

/// A SHA-256 tree hash.
pub type Hash = [u8; 32];

/// Domain-separation prefix of a leaf hash (RFC 9162 §2.1.1).
pub const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 9162 §2.1.1).
pub const NODE_PREFIX: u8 = 0x01;
/// Levels a tree of `u64` leaves can have above the leaves.
pub const MAX_LEVELS: usize = 64;
/// Longest possible inclusion or consistency proof for a `u64`-sized tree.
pub const MAX_PROOF_HASHES: usize = 64;
/// Encoded size of a frontier's header (big-endian `u64` tree size).
const FRONTIER_HEADER_BYTES: usize = 8;

/// Errors of Merkle proof generation and verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {actual} hashes, expected {expected} for these tree sizes")]
    WrongProofLength { expected: usize, actual: usize },
    /// The recomputed root differs from the expected root.
    #[error("recomputed root does not match the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the first root.
    #[error("consistency proof does not reproduce the first root")]
    FirstRootMismatch,
    /// The consistency proof does not reproduce the second root.
    #[error("consistency proof does not reproduce the second root")]
    SecondRootMismatch,
    /// The first tree is larger than the second.
    #[error("first tree size {size1} is larger than second tree size {size2}")]
    SizesOutOfOrder { size1: u64, size2: u64 },
    /// A consistency proof from the empty tree is meaningless (RFC 9162 §2.1.4.1 requires 0 < first).
    #[error("consistency proof from an empty tree is meaningless")]
    EmptyFirstTree,
    /// The store lacks a perfect-subtree hash needed for a proof.
    #[error("node store has no hash at level {level} index {index}")]
    MissingNode { level: u8, index: u64 },
    /// The range is not a subtree (see [`is_subtree`]).
    #[error("[{start}, {end}) is not a subtree")]
    InvalidSubtree { start: u64, end: u64 },
    /// A serialised frontier is malformed.
    #[error("malformed frontier: {0}")]
    MalformedFrontier(&'static str),
}

/// `SHA-256(0x00 || data)`: the hash of a leaf with input `data`.
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`: the hash of an interior node.
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Storage of perfect-subtree hashes, addressed by `(level, index)`.
pub trait NodeStore {
    /// The hash of the perfect subtree at `(level, index)`, if stored.
    fn node(&self, level: u8, index: u64) -> Option<Hash>;
}

/// A perfect-subtree hash completed by an append: persist it under `(level, index)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedNode {
    pub level: u8,
    pub index: u64,
    pub hash: Hash,
}

/// The right edge of a tree: the roots of its perfect subtrees, largest first
/// (one per set bit of `size`). Appends and roots cost O(log n).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a frontier from its parts; `hashes` must hold one hash per set bit of `size`, largest subtree first.
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, MerkleError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(MerkleError::MalformedFrontier(
                "hash count does not match the tree size",
            ));
        }
        Ok(Self { size, hashes })
    }

    /// Reads the frontier of a tree of `size` leaves from a store (O(log n) reads).
    pub fn from_store<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Self, MerkleError> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for (level, index) in perfect_subtrees(0, size) {
            hashes.push(read_node(store, level, index)?);
        }
        Ok(Self { size, hashes })
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Roots of the perfect subtrees, largest first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf input (hashed with [`hash_leaf`]).
    pub fn append(&mut self, data: &[u8]) {
        self.append_leaf_hash(hash_leaf(data), |_| {});
    }

    /// Appends a leaf hash and reports, through `on_node`, every perfect-subtree
    /// node this append completes, starting with the leaf itself at level 0.
    ///
    /// # Panics
    /// If the tree already holds `u64::MAX` leaves (an invariant, not input).
    pub fn append_leaf_hash(&mut self, leaf_hash: Hash, mut on_node: impl FnMut(CompletedNode)) {
        assert!(self.size < u64::MAX, "Merkle tree is full");
        let mut hash = leaf_hash;
        let mut index = self.size;
        let mut level: u8 = 0;
        on_node(CompletedNode { level, index, hash });
        while index & 1 == 1 {
            let left = self.hashes.pop().expect("frontier holds one hash per set bit of size");
            hash = hash_children(&left, &hash);
            index >>= 1;
            level += 1;
            on_node(CompletedNode { level, index, hash });
        }
        self.hashes.push(hash);
        self.size += 1;
        debug_assert_eq!(self.hashes.len(), self.size.count_ones() as usize);
    }

    /// The tree root (RFC 9162 MTH); the empty root for size 0.
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| hash_children(left, &acc))
    }

    /// Serialises as big-endian `u64` size followed by the hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FRONTIER_HEADER_BYTES + 32 * self.hashes.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for h in &self.hashes {
            out.extend_from_slice(h);
        }
        out
    }

    /// Parses the encoding of [`Frontier::to_bytes`]; the length must be exact.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MerkleError> {
        let (header, rest) = bytes
            .split_first_chunk::<FRONTIER_HEADER_BYTES>()
            .ok_or(MerkleError::MalformedFrontier("shorter than its 8-byte size header"))?;
        let size = u64::from_be_bytes(*header);
        if rest.len() != 32 * size.count_ones() as usize {
            return Err(MerkleError::MalformedFrontier("length does not match the tree size"));
        }
        let hashes = rest
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunks_exact yields 32-byte chunks"))
            .collect();
        Ok(Self { size, hashes })
    }
}

/// An in-memory [`NodeStore`]: `levels[l]` holds every complete node of level `l`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    levels: Vec<Vec<Hash>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding the tree of these leaf inputs.
    pub fn from_leaves<D: AsRef<[u8]>>(leaves: impl IntoIterator<Item = D>) -> Self {
        let mut store = Self::new();
        for leaf in leaves {
            store.append(leaf.as_ref());
        }
        store
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends a leaf input.
    pub fn append(&mut self, data: &[u8]) {
        self.append_leaf_hash(hash_leaf(data));
    }

    /// Appends a leaf hash, completing parents as they fill.
    pub fn append_leaf_hash(&mut self, leaf_hash: Hash) {
        let mut hash = leaf_hash;
        let mut level = 0;
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            if row.len() % 2 == 1 {
                return;
            }
            hash = hash_children(&row[row.len() - 2], &row[row.len() - 1]);
            level += 1;
        }
    }

    /// Stores one completed node (e.g. reported by [`Frontier::append_leaf_hash`]).
    /// Nodes of a level must arrive in index order; others are ignored and reported as `false`.
    pub fn insert(&mut self, node: CompletedNode) -> bool {
        let level = usize::from(node.level);
        while self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        let row = &mut self.levels[level];
        if row.len() as u64 != node.index {
            return false;
        }
        row.push(node.hash);
        true
    }

    /// Root of the tree of its first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, MerkleError> {
        root_from_store(self, size)
    }
}

impl NodeStore for MemoryStore {
    fn node(&self, level: u8, index: u64) -> Option<Hash> {
        let row = self.levels.get(usize::from(level))?;
        row.get(usize::try_from(index).ok()?).copied()
    }
}

fn read_node<S: NodeStore + ?Sized>(store: &S, level: u8, index: u64) -> Result<Hash, MerkleError> {
    store
        .node(level, index)
        .ok_or(MerkleError::MissingNode { level, index })
}

/// The perfect subtrees covering `[start, start + len)`, largest first, as
/// `(level, index)`. `start` must be a multiple of the largest power of two
/// `<= len` (true for every range in the RFC 9162 recursion).
fn perfect_subtrees(start: u64, len: u64) -> impl Iterator<Item = (u8, u64)> {
    let mut offset = start;
    (0..64u8).rev().filter(move |l| (len >> l) & 1 == 1).map(move |level| {
        let node = (level, offset >> level);
        offset += 1 << level;
        node
    })
}

/// MTH of leaves `[start, start + len)`, `len >= 1`, from perfect subtrees (O(log n) reads).
fn range_root<S: NodeStore + ?Sized>(store: &S, start: u64, len: u64) -> Result<Hash, MerkleError> {
    let mut nodes = [(0u8, 0u64); MAX_LEVELS];
    let mut count = 0;
    for node in perfect_subtrees(start, len) {
        nodes[count] = node;
        count += 1;
    }
    let (last_level, last_index) = nodes[count - 1];
    let mut acc = read_node(store, last_level, last_index)?;
    for &(level, index) in nodes[..count - 1].iter().rev() {
        acc = hash_children(&read_node(store, level, index)?, &acc);
    }
    Ok(acc)
}

/// Root of the tree of the first `size` leaves held by `store` (O(log n) reads).
pub fn root_from_store<S: NodeStore + ?Sized>(store: &S, size: u64) -> Result<Hash, MerkleError> {
    if size == 0 {
        return Ok(empty_root());
    }
    range_root(store, 0, size)
}

/// Largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Inclusion proof `PATH(index, D[0:size])` of RFC 9162 §2.1.3.1, leaf's
/// sibling first, read from `store` with O(log n) reads.
pub fn inclusion_proof<S: NodeStore + ?Sized>(store: &S, index: u64, size: u64) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    range_inclusion_proof(store, index, 0, size)
}

/// Whether `[start, end)` is a subtree in the sense of
/// draft-ietf-plants-merkle-tree-certs: `start` is 0 or a multiple of the
/// smallest power of two `>= end - start` (empty ranges are subtrees).
pub fn is_subtree(start: u64, end: u64) -> bool {
    if start > end {
        return false;
    }
    let len = end - start;
    if start == 0 || len == 0 {
        return true;
    }
    len.checked_next_power_of_two()
        .is_some_and(|ceil| start.is_multiple_of(ceil))
}

/// MTH of the leaves `[start, end)` of a subtree (see [`is_subtree`]); the
/// empty root for an empty range. O(log n) reads.
pub fn subtree_root<S: NodeStore + ?Sized>(store: &S, start: u64, end: u64) -> Result<Hash, MerkleError> {
    if !is_subtree(start, end) {
        return Err(MerkleError::InvalidSubtree { start, end });
    }
    if start == end {
        return Ok(empty_root());
    }
    range_root(store, start, end - start)
}

/// Inclusion proof of leaf `index` in the subtree `[start, end)`: the RFC 9162
/// path of `index - start` in the tree `D[start:end]`.
pub fn subtree_inclusion_proof<S: NodeStore + ?Sized>(
    store: &S,
    index: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, MerkleError> {
    if !is_subtree(start, end) {
        return Err(MerkleError::InvalidSubtree { start, end });
    }
    if index < start || index >= end {
        return Err(MerkleError::IndexOutOfRange { index, size: end });
    }
    range_inclusion_proof(store, index, start, end)
}

/// `PATH(index - start, D[start:end])` for a subtree range containing `index`.
fn range_inclusion_proof<S: NodeStore + ?Sized>(
    store: &S,
    index: u64,
    start: u64,
    end: u64,
) -> Result<Vec<Hash>, MerkleError> {
    let (mut m, mut start, mut n) = (index - start, start, end - start);
    let mut top_down = Vec::with_capacity(MAX_PROOF_HASHES);
    while n > 1 {
        let k = split_point(n);
        if m < k {
            top_down.push(range_root(store, start + k, n - k)?);
            n = k;
        } else {
            top_down.push(range_root(store, start, k)?);
            (m, start, n) = (m - k, start + k, n - k);
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// Consistency proof `PROOF(size1, D[0:size2])` of RFC 9162 §2.1.4.1 with
/// O(log n) reads. Sizes must satisfy `0 < size1 <= size2`; equal sizes give
/// the empty proof.
pub fn consistency_proof<S: NodeStore + ?Sized>(store: &S, size1: u64, size2: u64) -> Result<Vec<Hash>, MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyFirstTree);
    }
    let (mut m, mut start, mut n, mut whole) = (size1, 0u64, size2, true);
    let mut top_down = Vec::with_capacity(MAX_PROOF_HASHES);
    while m != n {
        let k = split_point(n);
        if m <= k {
            top_down.push(range_root(store, start + k, n - k)?);
            n = k;
        } else {
            top_down.push(range_root(store, start, k)?);
            (m, start, n, whole) = (m - k, start + k, n - k, false);
        }
    }
    if !whole {
        top_down.push(range_root(store, start, n)?);
    }
    top_down.reverse();
    Ok(top_down)
}

/// Expected inclusion proof length for `index < size` (the RFC algorithm's
/// path length: inner levels below the fork with `size - 1`, plus border levels).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = 64 - (index ^ (size - 1)).leading_zeros();
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Expected consistency proof length for `0 < size1 < size2`.
fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let shift = size1.trailing_zeros();
    let seed = usize::from(!size1.is_power_of_two());
    seed + inclusion_proof_len(size1 - 1, size2) - shift as usize
}

/// RFC 9162 §2.1.3.2: verifies that `leaf_hash` is the leaf at `index` of the
/// tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed != *root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

/// Steps 1–5 of RFC 9162 §2.1.3.2 without the final root comparison: the root
/// the proof implies.
pub fn root_from_inclusion_proof(leaf_hash: &Hash, index: u64, size: u64, proof: &[Hash]) -> Result<Hash, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = hash_children(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = hash_children(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    Ok(r)
}

/// RFC 9162 §2.1.4.2: verifies that the tree of `size2` leaves with root
/// `root2` extends the tree of `size1` leaves with root `root1`.
///
/// Sizes must satisfy `0 < size1 <= size2`. Equal sizes are consistent exactly
/// when the proof is empty and the roots are equal (the RFC defines proofs
/// only for `size1 < size2`).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), MerkleError> {
    if size1 > size2 {
        return Err(MerkleError::SizesOutOfOrder { size1, size2 });
    }
    if size1 == 0 {
        return Err(MerkleError::EmptyFirstTree);
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(MerkleError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        return if root1 == root2 {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let expected = consistency_proof_len(size1, size2);
    if proof.len() != expected {
        return Err(MerkleError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let (fr, sr) = consistency_roots(size1, size2, proof, root1).ok_or(MerkleError::WrongProofLength {
        expected,
        actual: proof.len(),
    })?;
    if fr != *root1 {
        return Err(MerkleError::FirstRootMismatch);
    }
    if sr != *root2 {
        return Err(MerkleError::SecondRootMismatch);
    }
    Ok(())
}

/// Steps 1–7 of RFC 9162 §2.1.4.2 for `0 < size1 < size2`: `(fr, sr)`, or
/// `None` when the path is empty, runs past the root, or stops short of it.
fn consistency_roots(size1: u64, size2: u64, proof: &[Hash], root1: &Hash) -> Option<(Hash, Hash)> {
    let (first, rest) = if size1.is_power_of_two() {
        (root1, proof)
    } else {
        proof.split_first()?
    };
    let (mut fn_, mut sn) = (size1 - 1, size2 - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = hash_children(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some((fr, sr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Vec<u8>> {
        (0..n).map(|i| i.to_be_bytes().to_vec()).collect()
    }

    #[test]
    fn empty_tree_root_is_sha256_of_nothing() {
        assert_eq!(
            hex::encode(Frontier::new().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_matches_store_and_roundtrips() {
        let mut frontier = Frontier::new();
        let mut store = MemoryStore::new();
        let mut rebuilt = MemoryStore::new();
        for (i, leaf) in leaves(37).iter().enumerate() {
            frontier.append_leaf_hash(hash_leaf(leaf), |node| assert!(rebuilt.insert(node)));
            store.append(leaf);
            let size = i as u64 + 1;
            assert_eq!(frontier.root(), store.root(size).unwrap());
            assert_eq!(Frontier::from_store(&store, size).unwrap(), frontier);
            assert_eq!(Frontier::from_bytes(&frontier.to_bytes()).unwrap(), frontier);
        }
        assert_eq!(rebuilt, store);
    }

    #[test]
    fn frontier_from_bytes_rejects_bad_lengths() {
        assert!(Frontier::from_bytes(&[0; 7]).is_err());
        assert!(Frontier::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 1]).is_err());
        let mut bytes = Frontier::new().to_bytes();
        bytes.push(0);
        assert!(Frontier::from_bytes(&bytes).is_err());
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
    }

    #[test]
    fn missing_node_is_an_error_not_a_panic() {
        let store = MemoryStore::from_leaves(leaves(3));
        assert_eq!(
            inclusion_proof(&store, 0, 8),
            Err(MerkleError::MissingNode { level: 2, index: 1 })
        );
        assert!(matches!(
            consistency_proof(&store, 2, 9),
            Err(MerkleError::MissingNode { .. })
        ));
    }

    #[test]
    fn hostile_sizes_do_not_panic() {
        let h = [7u8; 32];
        let long = [h; 70];
        for &(i, n) in &[(0, 0), (u64::MAX, u64::MAX), (u64::MAX - 1, u64::MAX), (0, u64::MAX)] {
            for len in [0, 1, 63, 64, 70] {
                let _ = verify_inclusion(&h, i, n, &long[..len], &h);
            }
        }
        for &(a, b) in &[
            (0, 0),
            (1, 0),
            (u64::MAX, u64::MAX),
            (1, u64::MAX),
            (u64::MAX - 1, u64::MAX),
        ] {
            for len in [0, 1, 63, 64, 70] {
                let _ = verify_consistency(a, b, &long[..len], &h, &h);
            }
        }
    }
}

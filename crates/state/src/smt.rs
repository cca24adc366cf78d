//! The authenticated state map: a sparse Merkle tree over SHA-256(key) with single-leaf
//! subtrees collapsed (as in Diem's Jellyfish tree), persistent (path-copying, `Arc`-shared), so
//! every speculative block can hold its own version of the tree at O(1) cost.
//!
//! Hashes: empty subtree = 32 zero bytes; leaf = SHA-256(0x00 ‖ key_hash ‖ value_hash);
//! branch = SHA-256(0x01 ‖ left ‖ right). A subtree holding exactly one leaf is that leaf, at
//! whatever depth, so the root is independent of insertion order and a proof is short.
//!
//! Proof *verification* (and the hash functions) live in `chipledger_types::state_proof`, the
//! one definition a device, a client and this tree share; they are re-exported here.

use std::sync::Arc;

use chipledger_types::state_proof::key_bit as bit;
pub use chipledger_types::state_proof::{EMPTY_ROOT, Hash, ProofError, SmtProof, branch_hash, leaf_hash, verify};

#[derive(Debug)]
enum Node {
    Empty,
    Leaf {
        key: Hash,
        value: Hash,
        hash: Hash,
    },
    Branch {
        left: Arc<Node>,
        right: Arc<Node>,
        hash: Hash,
    },
}

impl Node {
    fn hash(&self) -> Hash {
        match self {
            Node::Empty => EMPTY_ROOT,
            Node::Leaf { hash, .. } | Node::Branch { hash, .. } => *hash,
        }
    }
}

fn leaf(key: Hash, value: Hash) -> Arc<Node> {
    Arc::new(Node::Leaf {
        key,
        value,
        hash: leaf_hash(&key, &value),
    })
}

fn branch(left: Arc<Node>, right: Arc<Node>) -> Arc<Node> {
    // Canonical form: a branch whose only non-empty child is a leaf collapses to that leaf.
    match (&*left, &*right) {
        (Node::Empty, Node::Empty) => Arc::new(Node::Empty),
        (Node::Leaf { .. }, Node::Empty) => left,
        (Node::Empty, Node::Leaf { .. }) => right,
        _ => {
            let hash = branch_hash(&left.hash(), &right.hash());
            Arc::new(Node::Branch { left, right, hash })
        }
    }
}

/// A version of the map. Cloning is O(1); updates copy only the touched path.
#[derive(Clone, Debug)]
pub struct Smt {
    root: Arc<Node>,
    len: u64,
}

impl Default for Smt {
    fn default() -> Self {
        Smt {
            root: Arc::new(Node::Empty),
            len: 0,
        }
    }
}

impl Smt {
    pub fn root(&self) -> Hash {
        self.root.hash()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set `key_hash` to `value_hash` (None removes it).
    pub fn update(&mut self, key_hash: Hash, value_hash: Option<Hash>) {
        let (root, delta) = match value_hash {
            Some(v) => insert(&self.root, key_hash, v, 0),
            None => remove(&self.root, &key_hash, 0),
        };
        self.root = root;
        self.len = (self.len as i64 + delta) as u64;
    }

    /// Value hash stored under `key_hash`.
    pub fn get(&self, key_hash: &Hash) -> Option<Hash> {
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match &**node {
                Node::Empty => return None,
                Node::Leaf { key, value, .. } => return (key == key_hash).then_some(*value),
                Node::Branch { left, right, .. } => {
                    node = if bit(key_hash, depth) { right } else { left };
                    depth += 1;
                }
            }
        }
    }

    /// Proof of the value (or absence) of `key_hash`.
    pub fn prove(&self, key_hash: &Hash) -> SmtProof {
        let mut siblings = Vec::new();
        let mut node = &self.root;
        let mut depth = 0;
        loop {
            match &**node {
                Node::Empty => return SmtProof { siblings, leaf: None },
                Node::Leaf { key, value, .. } => {
                    return SmtProof {
                        siblings,
                        leaf: Some((*key, *value)),
                    };
                }
                Node::Branch { left, right, .. } => {
                    let (next, sib) = if bit(key_hash, depth) {
                        (right, left)
                    } else {
                        (left, right)
                    };
                    siblings.push(sib.hash());
                    node = next;
                    depth += 1;
                }
            }
        }
    }
}

fn insert(node: &Arc<Node>, key: Hash, value: Hash, depth: usize) -> (Arc<Node>, i64) {
    match &**node {
        Node::Empty => (leaf(key, value), 1),
        Node::Leaf { key: k, value: v, .. } if *k == key => {
            if *v == value {
                (node.clone(), 0)
            } else {
                (leaf(key, value), 0)
            }
        }
        Node::Leaf { key: other, .. } => (split(node.clone(), other, leaf(key, value), &key, depth), 1),
        Node::Branch { left, right, .. } => {
            if bit(&key, depth) {
                let (r, d) = insert(right, key, value, depth + 1);
                (branch(left.clone(), r), d)
            } else {
                let (l, d) = insert(left, key, value, depth + 1);
                (branch(l, right.clone()), d)
            }
        }
    }
}

/// Two leaves with different keys under one subtree at `depth`: branch until their bits differ.
fn split(a: Arc<Node>, a_key: &Hash, b: Arc<Node>, b_key: &Hash, depth: usize) -> Arc<Node> {
    // Distinct SHA-256 values differ in some bit below 256.
    assert!(depth < 256, "two distinct keys must differ within 256 bits");
    let (ab, bb) = (bit(a_key, depth), bit(b_key, depth));
    if ab == bb {
        let inner = split(a, a_key, b, b_key, depth + 1);
        let empty = Arc::new(Node::Empty);
        let hash_inner = inner.hash();
        let (l, r) = if ab { (empty, inner) } else { (inner, empty) };
        let hash = if ab {
            branch_hash(&EMPTY_ROOT, &hash_inner)
        } else {
            branch_hash(&hash_inner, &EMPTY_ROOT)
        };
        Arc::new(Node::Branch {
            left: l,
            right: r,
            hash,
        })
    } else if ab {
        branch(b, a)
    } else {
        branch(a, b)
    }
}

fn remove(node: &Arc<Node>, key: &Hash, depth: usize) -> (Arc<Node>, i64) {
    match &**node {
        Node::Empty => (node.clone(), 0),
        Node::Leaf { key: k, .. } => {
            if k == key {
                (Arc::new(Node::Empty), -1)
            } else {
                (node.clone(), 0)
            }
        }
        Node::Branch { left, right, .. } => {
            let (l, r, d) = if bit(key, depth) {
                let (r, d) = remove(right, key, depth + 1);
                (left.clone(), r, d)
            } else {
                let (l, d) = remove(left, key, depth + 1);
                (l, right.clone(), d)
            };
            if d == 0 {
                return (node.clone(), 0);
            }
            (branch(l, r), d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn h(i: u64) -> Hash {
        Sha256::digest(i.to_be_bytes()).into()
    }

    /// Reference: root computed from scratch from a sorted set of (key, value) pairs.
    fn reference(items: &[(Hash, Hash)], depth: usize) -> Hash {
        match items.len() {
            0 => EMPTY_ROOT,
            1 => leaf_hash(&items[0].0, &items[0].1),
            _ => {
                let split = items.iter().position(|(k, _)| bit(k, depth)).unwrap_or(items.len());
                branch_hash(
                    &reference(&items[..split], depth + 1),
                    &reference(&items[split..], depth + 1),
                )
            }
        }
    }

    #[test]
    fn matches_reference_and_is_order_independent() {
        let mut a = Smt::default();
        let mut b = Smt::default();
        let mut items: Vec<(Hash, Hash)> = (0..300).map(|i| (h(i), h(i + 1000))).collect();
        for (k, v) in &items {
            a.update(*k, Some(*v));
        }
        for (k, v) in items.iter().rev() {
            b.update(*k, Some(*v));
        }
        items.sort();
        assert_eq!(a.root(), reference(&items, 0));
        assert_eq!(a.root(), b.root());
        assert_eq!(a.len(), 300);
        // Remove half: equals a tree built from the rest.
        let mut c = Smt::default();
        for (i, (k, v)) in items.iter().enumerate() {
            if i % 2 == 0 {
                a.update(*k, None)
            } else {
                c.update(*k, Some(*v))
            }
        }
        assert_eq!(a.root(), c.root());
        assert_eq!(a.len(), 150);
    }

    #[test]
    fn proofs_of_presence_and_absence() {
        let mut t = Smt::default();
        for i in 0..100 {
            t.update(h(i), Some(h(i + 7)));
        }
        let root = t.root();
        for i in 0..100 {
            let p = t.prove(&h(i));
            assert_eq!(verify(&root, &h(i), Some(&h(i + 7)), &p), Ok(()));
            assert!(verify(&root, &h(i), Some(&h(i + 8)), &p).is_err());
            assert!(verify(&root, &h(i), None, &p).is_err());
        }
        for i in 100..200 {
            let p = t.prove(&h(i));
            assert_eq!(verify(&root, &h(i), None, &p), Ok(()));
            assert!(verify(&root, &h(i), Some(&h(1)), &p).is_err());
        }
        let mut p = t.prove(&h(5));
        p.siblings[0][0] ^= 1;
        assert_eq!(verify(&root, &h(5), Some(&h(12)), &p), Err(ProofError::RootMismatch));
    }

    #[test]
    fn versions_are_independent() {
        let mut a = Smt::default();
        a.update(h(1), Some(h(2)));
        let snapshot = a.clone();
        a.update(h(3), Some(h(4)));
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot.get(&h(3)), None);
        assert_eq!(a.get(&h(3)), Some(h(4)));
    }
}

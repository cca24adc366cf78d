//! Key–value access for the state machine. The node backs [`StateRead`] with redb plus the
//! write sets of not-yet-finalized blocks; tests back it with a `BTreeMap`.

use std::collections::BTreeMap;

use crate::smt::Smt;

/// Pending writes: `None` deletes the key. Ordered, so applying them is deterministic.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Read access to a version of the state.
pub trait StateRead {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
}

impl StateRead for BTreeMap<Vec<u8>, Vec<u8>> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        BTreeMap::get(self, key).cloned()
    }
}

/// A write set layered over a base version.
pub struct Overlay<'a> {
    pub base: &'a dyn StateRead,
    pub writes: &'a WriteSet,
}

impl StateRead for Overlay<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.writes.get(key) {
            Some(v) => v.clone(),
            None => self.base.get(key),
        }
    }
}

/// Fold `writes` into the authenticated map.
pub fn update_smt(smt: &mut Smt, writes: &WriteSet) {
    for (k, v) in writes {
        smt.update(key_hash(k), v.as_ref().map(|v| value_hash(v)));
    }
}

pub use chipledger_types::state_proof::{key_hash, value_hash};

/// Apply `writes` to an in-memory map (tests, simulation, genesis).
pub fn apply_writes(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, writes: &WriteSet) {
    for (k, v) in writes {
        match v {
            Some(v) => map.insert(k.clone(), v.clone()),
            None => map.remove(k),
        };
    }
}

//! Freshness and the replay cache of the key service: a request is accepted once, and only
//! within `skew_ms` of the service's clock. Entries older than the window are dropped (such a
//! request is refused as stale anyway), so the cache holds at most the requests of one window;
//! when even that exceeds its capacity the service refuses new requests (`busy`) rather than
//! forget one that could still be replayed.

use std::collections::{BTreeSet, HashSet};

/// Why a request is not fresh.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Freshness {
    #[error("issued at {issued_ms} ms, {delta_ms} ms away from the service's clock (limit {skew_ms} ms)")]
    Stale {
        issued_ms: u64,
        delta_ms: u64,
        skew_ms: u64,
    },
    #[error("issued at {issued_ms} ms, before the key service started ({started_ms} ms): sign a new request")]
    BeforeStart { issued_ms: u64, started_ms: u64 },
    #[error("this signed request was already used")]
    Replay,
    #[error("{0} requests are in the replay window; retry shortly")]
    Full(usize),
}

/// Requests seen within the freshness window, by digest.
pub struct ReplayCache {
    skew_ms: u64,
    capacity: usize,
    /// Requests issued before this are refused: the cache does not survive a restart.
    started_ms: u64,
    seen: HashSet<[u8; 32]>,
    by_time: BTreeSet<(u64, [u8; 32])>,
}

impl ReplayCache {
    pub fn new(skew_ms: u64, capacity: usize, started_ms: u64) -> Self {
        Self {
            skew_ms,
            capacity,
            started_ms,
            seen: HashSet::new(),
            by_time: BTreeSet::new(),
        }
    }

    /// Accepts (and remembers) request `digest` issued at `issued_ms`, checked at `now_ms`.
    /// Call it only once the request's signature verified, so nobody fills the cache for free.
    pub fn check_and_insert(&mut self, digest: [u8; 32], issued_ms: u64, now_ms: u64) -> Result<(), Freshness> {
        self.check_fresh(issued_ms, now_ms)?;
        self.expire(now_ms);
        if self.seen.contains(&digest) {
            return Err(Freshness::Replay);
        }
        if self.seen.len() >= self.capacity {
            return Err(Freshness::Full(self.seen.len()));
        }
        self.seen.insert(digest);
        self.by_time.insert((issued_ms, digest));
        debug_assert_eq!(self.seen.len(), self.by_time.len());
        Ok(())
    }

    /// Whether a request issued at `issued_ms` is fresh at `now_ms` (nothing remembered).
    pub fn check_fresh(&self, issued_ms: u64, now_ms: u64) -> Result<(), Freshness> {
        let delta_ms = issued_ms.abs_diff(now_ms);
        if delta_ms > self.skew_ms {
            return Err(Freshness::Stale {
                issued_ms,
                delta_ms,
                skew_ms: self.skew_ms,
            });
        }
        if issued_ms < self.started_ms {
            return Err(Freshness::BeforeStart {
                issued_ms,
                started_ms: self.started_ms,
            });
        }
        Ok(())
    }

    /// Drops entries that would be refused as stale at `now_ms`.
    fn expire(&mut self, now_ms: u64) {
        let oldest_fresh = now_ms.saturating_sub(self.skew_ms);
        while let Some(&(issued, digest)) = self.by_time.first() {
            if issued >= oldest_fresh {
                break;
            }
            self.by_time.pop_first();
            self.seen.remove(&digest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKEW: u64 = 300_000;
    const T0: u64 = 1_700_000_000_000;

    #[test]
    fn fresh_requests_pass_once_and_stale_ones_never() {
        let mut c = ReplayCache::new(SKEW, 3, T0);
        // (digest byte, issued, now, expected)
        let cases: [(u8, u64, u64, Result<(), Freshness>); 7] = [
            (1, T0, T0, Ok(())),
            (1, T0, T0 + 1, Err(Freshness::Replay)),
            (2, T0 + SKEW, T0, Ok(())),
            (
                3,
                T0 + SKEW + 1,
                T0,
                Err(Freshness::Stale {
                    issued_ms: T0 + SKEW + 1,
                    delta_ms: SKEW + 1,
                    skew_ms: SKEW,
                }),
            ),
            (
                4,
                T0 - 1,
                T0,
                Err(Freshness::BeforeStart {
                    issued_ms: T0 - 1,
                    started_ms: T0,
                }),
            ),
            (5, T0 + 10, T0 + 10, Ok(())),
            (6, T0 + 11, T0 + 11, Err(Freshness::Full(3))),
        ];
        for (byte, issued, now, want) in cases {
            assert_eq!(c.check_and_insert([byte; 32], issued, now), want, "{byte}");
        }
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn entries_leave_the_cache_once_they_would_be_stale_anyway() {
        let mut c = ReplayCache::new(SKEW, 2, T0);
        c.check_and_insert([1; 32], T0, T0).unwrap();
        c.check_and_insert([2; 32], T0 + 5, T0 + 5).unwrap();
        // At T0 + SKEW + 1, request 1 is stale (and dropped), request 2 is still remembered.
        let now = T0 + SKEW + 1;
        c.check_and_insert([3; 32], now, now).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.check_and_insert([2; 32], T0 + 5, now), Err(Freshness::Replay));
        assert!(matches!(
            c.check_and_insert([1; 32], T0, now),
            Err(Freshness::Stale { .. })
        ));
    }
}

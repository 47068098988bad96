//! Memory of the proofs already used, so a captured proof cannot be sent twice (RFC 9449 §11.1).
//!
//! Bounded: when it is full of entries that have not expired it refuses new proofs instead of
//! forgetting live ones, because forgetting would let a replay through. It must never hold more
//! than its capacity, and never say "new" for a `jti_digest` it still remembers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// Why a proof was refused by the [`ReplayCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This proof was already used.
    #[error("DPoP proof replayed")]
    Replayed,
    /// The cache is full of proofs still inside their window; room comes back in
    /// `retry_after_secs`, when the first of them expires.
    #[error("DPoP replay cache full")]
    Full {
        /// Seconds until the earliest remembered proof is forgotten (at least 1).
        retry_after_secs: u64,
    },
}

impl ReplayError {
    /// The public error code: a replayed proof is an invalid proof (RFC 9449 §7.1). A full cache
    /// is the server's trouble; the caller answers 503 and uses no DPoP code for it.
    pub fn code(&self) -> &'static str {
        match self {
            ReplayError::Replayed => "invalid_dpop_proof",
            ReplayError::Full { .. } => "temporarily_unavailable",
        }
    }
}

/// The `jti_digest`s of proofs seen within the accepted window, shared by every request handler.
///
/// An entry lives until `iat + window_secs + 1`, just past the last second its proof could pass. **`window_secs` must be at least the
/// `max_age_secs` given to [`verify`](super::verify)**, or a proof could be accepted again after
/// its entry expired.
pub struct ReplayCache {
    capacity: usize,
    window_secs: u64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    expiry_of: HashMap<[u8; 32], u64>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

impl ReplayCache {
    /// An empty cache that remembers at most `capacity` proofs, each for `window_secs`.
    pub fn new(capacity: usize, window_secs: u64) -> ReplayCache {
        ReplayCache {
            capacity,
            window_secs,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Records a proof as used. Refuses it if the same `jti_digest` is still remembered, or if
    /// the cache is full of unexpired entries. `now` is seconds since the Unix epoch.
    pub fn check_and_remember(
        &self,
        jti_digest: [u8; 32],
        iat: u64,
        now: u64,
    ) -> Result<(), ReplayError> {
        let mut entries = self.lock();
        entries.forget_expired(now);

        if entries.expiry_of.contains_key(&jti_digest) {
            return Err(ReplayError::Replayed);
        }
        if entries.expiry_of.len() >= self.capacity {
            let earliest = entries.by_expiry.peek().map_or(now, |Reverse((at, _))| *at);
            return Err(ReplayError::Full {
                retry_after_secs: earliest.saturating_sub(now).max(1),
            });
        }

        // `verify` accepts a proof while `now - iat <= max_age_secs`, and entries are purged once
        // `expiry <= now`: kept until one second past the last moment the proof could pass.
        let expiry = iat.saturating_add(self.window_secs).saturating_add(1);
        entries.expiry_of.insert(jti_digest, expiry);
        entries.by_expiry.push(Reverse((expiry, jti_digest)));
        Ok(())
    }

    /// How many proofs are remembered, expired ones included until the next call purges them.
    pub fn len(&self) -> usize {
        self.lock().expiry_of.len()
    }

    /// Whether no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // Nothing panics while the lock is held, and the maps stay consistent between statements.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Entries {
    fn forget_expired(&mut self, now: u64) {
        while let Some(Reverse((expiry, digest))) = self.by_expiry.peek().copied() {
            if expiry > now {
                break;
            }
            self.by_expiry.pop();
            self.expiry_of.remove(&digest);
        }
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &self.capacity)
            .field("window_secs", &self.window_secs)
            .field("len", &self.len())
            .finish()
    }
}

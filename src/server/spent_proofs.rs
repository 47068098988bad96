//! Where the server remembers spent DPoP proofs (RFC 9449 §11.1): in this process, or in the
//! database that several servers share, so a proof spent on one server is a replay on all.
//!
//! It must never say "fresh" for a proof it still remembers, and never keeps the `jti` itself:
//! only its digest.

use blindfold_actors::crypto::dpop::{ReplayCache, ReplayError};
use blindfold_events::ProofReplayTable;

/// The memory of spent proofs a server checks every proof against.
pub enum SpentProofs {
    /// In this process only: right for one server on the embedded store.
    InMemory(ReplayCache),
    /// In the shared database: right for several servers on one PostgreSQL store.
    Shared(ProofReplayTable),
}

/// Why a proof could not be spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpendError {
    /// The proof was spent before.
    Replayed,
    /// The memory is full of live proofs, or the database did not answer: try again in
    /// `retry_after_secs`.
    Unavailable {
        /// Seconds until there is room again (1 when the database did not answer).
        retry_after_secs: u64,
    },
}

impl SpentProofs {
    /// Remembers the proof as spent; refuses one already spent and not yet expired. `iat` and
    /// `now` are Unix seconds.
    pub(crate) fn spend(&self, jti_digest: [u8; 32], iat: u64, now: u64) -> Result<(), SpendError> {
        match self {
            SpentProofs::InMemory(cache) => match cache.check_and_remember(jti_digest, iat, now) {
                Ok(()) => Ok(()),
                Err(ReplayError::Replayed) => Err(SpendError::Replayed),
                Err(ReplayError::Full { retry_after_secs }) => {
                    tracing::warn!("dpop.replay_cache_full");
                    Err(SpendError::Unavailable { retry_after_secs })
                }
            },
            SpentProofs::Shared(table) => match table.spend(jti_digest, iat, now) {
                Ok(true) => Ok(()),
                Ok(false) => Err(SpendError::Replayed),
                Err(error) => {
                    tracing::error!(%error, "dpop.replay_table_failed");
                    Err(SpendError::Unavailable {
                        retry_after_secs: 1,
                    })
                }
            },
        }
    }
}

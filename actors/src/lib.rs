//! blindfold's supervised actors and the cryptography they run.
//!
//! `crypto` is plain functions and types with no actor or runtime in sight, so tests and fuzzers
//! call it directly. The actors own the keys and the expensive work: key derivation
//! ([`kdf`]), token sealing ([`sealer`]) and the single writer of the event log ([`ledger`]),
//! all started and restarted by the [`supervisor`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crypto;
pub mod kdf;
pub mod ledger;
pub mod sealer;
mod slot;
pub mod supervisor;

pub use supervisor::{ActorSetup, Actors, Role};

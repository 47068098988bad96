//! blindfold's supervised actors and the cryptography they run.
//!
//! `crypto` is plain functions and types with no actor or runtime in sight, so tests and fuzzers
//! call it directly. The actors own the keys and the expensive work: key derivation, sealing and
//! the single writer of the event log.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crypto;

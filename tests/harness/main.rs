//! Hostile-input harness: the real `blindfold` binary as a child process, driven over HTTP with
//! DPoP. Checks that the operator sees nothing a user owns (audit), that no acknowledged write
//! is lost to SIGKILL (crash), that a log-in flood is shed without running out of memory
//! (flood), and that two servers on one PostgreSQL database serve one set of accounts
//! (shared_store).

mod audit;
mod crash;
mod flood;
#[path = "../shared/rfc6238.rs"]
mod rfc6238;
mod shared_store;
mod support;

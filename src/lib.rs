//! blindfold: a login and user-data server that its own operator cannot read.
//!
//! This crate is the server's HTTP front end ([`server`]), the operator commands
//! ([`operator`]) and the command-line client ([`client`]). The cryptography and the actors live
//! in `blindfold-actors`, the event log in `blindfold-events`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod client;
pub mod inspect;
pub mod loadgen;
pub mod operator;
pub mod probe;
pub mod server;

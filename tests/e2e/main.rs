//! End-to-end tests: a real server on a real socket, real DPoP proofs, a real fjall directory.

mod blindness;
mod connections;
mod journey;
mod rejections;
mod resilience;
#[path = "../shared/rfc6238.rs"]
mod rfc6238;
mod second_factor;
mod support;

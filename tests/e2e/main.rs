//! End-to-end tests: a real server on a real socket, real DPoP proofs, a real fjall directory.

mod blindness;
mod journey;
mod rejections;
mod resilience;
mod second_factor;
mod support;

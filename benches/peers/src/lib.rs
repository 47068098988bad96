//! Nothing to link: this crate exists for its benchmark, `benches/tokens.rs`.

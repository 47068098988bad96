//! The embedded store on fjall.

/// The embedded event store.
pub struct FjallStore;

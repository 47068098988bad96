//! A stable place to find an actor that may be restarted under a new reference.

use std::sync::RwLock;

use ractor::{ActorId, ActorRef};

/// Holds the current reference of one supervised actor. The supervisor swaps it on restart;
/// callers read it for each message, so they always reach the live actor.
pub(crate) struct Slot<M: ractor::Message> {
    current: RwLock<Option<ActorRef<M>>>,
}

impl<M: ractor::Message> Slot<M> {
    pub(crate) fn empty() -> Self {
        Self {
            current: RwLock::new(None),
        }
    }

    /// The live actor, if one is running.
    pub(crate) fn get(&self) -> Option<ActorRef<M>> {
        self.current
            .read()
            .map(|guard| guard.clone())
            .unwrap_or(None)
    }

    pub(crate) fn set(&self, actor: ActorRef<M>) {
        if let Ok(mut guard) = self.current.write() {
            *guard = Some(actor);
        }
    }

    /// Whether `id` is the actor this slot holds.
    pub(crate) fn holds(&self, id: ActorId) -> bool {
        self.get().is_some_and(|actor| actor.get_id() == id)
    }
}

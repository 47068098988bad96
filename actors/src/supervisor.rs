//! The supervisor: starts the key-derivation workers, the sealer and the ledger, and restarts any
//! of them that fails. (ractor reports a failure to the supervisor; restarting is ours to do.)
//!
//! A restarted actor gets the same arguments it started with and is put back in its [`Slot`],
//! so the next request reaches it. Messages in a failed actor's mailbox are lost; their callers
//! get an "unavailable" answer, never a hang.

use std::sync::Arc;

use blindfold_events::{EventStore, KdfParams};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::crypto::password::Pepper;
use crate::kdf::{KdfMessage, KdfPool, KdfWorker};
use crate::ledger::{Ledger, LedgerActor, LedgerMessage};
use crate::sealer::{Sealer, SealerActor, SealerKeys, SealerMessage};

/// The actors a request handler talks to. Cheap to share (`Arc`).
pub struct Actors {
    /// The key-derivation pool.
    pub kdf: KdfPool,
    /// The sealer.
    pub sealer: Sealer,
    /// The ledger.
    pub ledger: Ledger,
    supervisor: std::sync::OnceLock<ActorRef<()>>,
    restarts: std::sync::atomic::AtomicU64,
}

/// Which actor, for restarts and for fault injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Key-derivation worker number n.
    KdfWorker(usize),
    /// The sealer.
    Sealer,
    /// The ledger.
    Ledger,
}

/// What the actors need to start.
pub struct ActorSetup {
    /// Key-derivation workers (one per core is a good default).
    pub kdf_workers: usize,
    /// Derivations that may wait beyond the running ones before requests are refused.
    pub kdf_queue: usize,
    /// Argon2 parameters new passwords get; sizes each worker's buffer.
    pub kdf_params: KdfParams,
    /// The Argon2 pepper.
    pub pepper: Pepper,
    /// The decoy-salt key.
    pub decoy: crate::crypto::keys::DecoyKey,
    /// The sealer's keys.
    pub sealer_keys: SealerKeys,
    /// The event store the ledger writes.
    pub store: Arc<dyn EventStore>,
}

struct Supervisor;

struct SupervisorState {
    actors: Arc<Actors>,
    pepper: Arc<Pepper>,
    kdf_params: KdfParams,
    sealer_keys: Arc<SealerKeys>,
    store: Arc<dyn EventStore>,
}

impl Actors {
    /// Starts the supervisor and every actor under it.
    pub async fn start(setup: ActorSetup) -> Result<Arc<Actors>, ActorProcessingErr> {
        let pepper = Arc::new(setup.pepper);
        let actors = Arc::new(Actors {
            kdf: KdfPool::new(
                setup.kdf_workers,
                setup.kdf_queue,
                Arc::clone(&pepper),
                setup.decoy,
            ),
            sealer: Sealer {
                slot: crate::slot::Slot::empty(),
            },
            ledger: Ledger {
                slot: crate::slot::Slot::empty(),
            },
            supervisor: std::sync::OnceLock::new(),
            restarts: std::sync::atomic::AtomicU64::new(0),
        });
        let state = SupervisorState {
            actors: Arc::clone(&actors),
            pepper,
            kdf_params: setup.kdf_params,
            sealer_keys: Arc::new(setup.sealer_keys),
            store: setup.store,
        };
        let (supervisor, _join) = Actor::spawn(None, Supervisor, state).await?;
        let _ = actors.supervisor.set(supervisor);
        Ok(actors)
    }

    /// Makes one actor fail, as a crash would. For tests of supervision.
    #[doc(hidden)]
    pub fn fail(&self, role: Role) {
        let _ = match role {
            Role::KdfWorker(n) => self
                .kdf
                .workers
                .get(n)
                .and_then(|s| s.get())
                .map(|a| a.send_message(KdfMessage::Fail).is_ok()),
            Role::Sealer => self
                .sealer
                .slot
                .get()
                .map(|a| a.send_message(SealerMessage::Fail).is_ok()),
            Role::Ledger => self
                .ledger
                .slot
                .get()
                .map(|a| a.send_message(LedgerMessage::Fail).is_ok()),
        };
    }

    /// How many times the supervisor has restarted a failed actor.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stops every actor.
    pub fn stop(&self) {
        if let Some(supervisor) = self.supervisor.get() {
            supervisor.stop(None);
        }
    }
}

impl Actor for Supervisor {
    type Msg = ();
    type State = SupervisorState;
    type Arguments = SupervisorState;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        for n in 0..state.actors.kdf.workers.len() {
            start(&myself, &state, Role::KdfWorker(n)).await?;
        }
        start(&myself, &state, Role::Sealer).await?;
        start(&myself, &state, Role::Ledger).await?;
        Ok(state)
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let cell = match event {
            SupervisionEvent::ActorFailed(cell, _) => cell,
            SupervisionEvent::ActorTerminated(cell, _, _) => cell,
            _ => return Ok(()),
        };
        let Some(role) = role_of(&cell, &state.actors) else {
            return Ok(());
        };

        start(&myself, state, role).await?;
        state
            .actors
            .restarts
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        tracing::warn!(actor = ?role, "actor.restarted");
        Ok(())
    }
}

/// Which role the actor in `cell` plays, if it is one of ours.
fn role_of(cell: &ActorCell, actors: &Actors) -> Option<Role> {
    let id = cell.get_id();
    if actors.sealer.slot.holds(id) {
        return Some(Role::Sealer);
    }
    if actors.ledger.slot.holds(id) {
        return Some(Role::Ledger);
    }
    actors
        .kdf
        .workers
        .iter()
        .position(|slot| slot.holds(id))
        .map(Role::KdfWorker)
}

/// Starts (or restarts) the actor of `role`, linked to the supervisor, and publishes it.
async fn start(
    supervisor: &ActorRef<()>,
    state: &SupervisorState,
    role: Role,
) -> Result<(), ActorProcessingErr> {
    let link = supervisor.get_cell();
    match role {
        Role::KdfWorker(n) => {
            let args = (Arc::clone(&state.pepper), state.kdf_params);
            let (actor, _) = Actor::spawn_linked(None, KdfWorker, args, link).await?;
            if let Some(slot) = state.actors.kdf.workers.get(n) {
                slot.set(actor);
            }
        }
        Role::Sealer => {
            let args = Arc::clone(&state.sealer_keys);
            let (actor, _) = Actor::spawn_linked(None, SealerActor, args, link).await?;
            state.actors.sealer.slot.set(actor);
        }
        Role::Ledger => {
            let args = Arc::clone(&state.store);
            let (actor, _) = Actor::spawn_linked(None, LedgerActor, args, link).await?;
            state.actors.ledger.slot.set(actor);
        }
    }
    Ok(())
}

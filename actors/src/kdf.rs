//! The key-derivation pool: a fixed number of workers, each running Argon2id off the async
//! runtime with a memory buffer it keeps, behind a bounded queue.
//!
//! **Memory bound:** at most `workers` derivations run at once, each in its worker's own buffer,
//! so Argon2 memory never exceeds `workers × m_cost` however many logins arrive. Past
//! `workers + queue` outstanding jobs a request is refused at once with [`KdfError::Overloaded`]
//! (the HTTP layer answers 503 with `Retry-After`). The pool holds the pepper and the decoy-salt
//! key and never lets either out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Block;
use blindfold_events::{Handle, KdfParams};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::crypto::keys::DecoyKey;
use crate::crypto::password::{self, Password, Pepper, WrappingKey};
use crate::crypto::recovery::RecoveryKey;
use crate::crypto::user_key::WRAPPED_USER_KEY_LEN;
use crate::slot::Slot;

/// Why a derivation did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KdfError {
    /// Every worker is busy and the queue is full: try again shortly.
    #[error("key derivation queue is full")]
    Overloaded,
    /// The worker failed while deriving; it is being restarted.
    #[error("key derivation worker unavailable")]
    Unavailable,
    /// The parameters were refused by Argon2.
    #[error("key derivation failed")]
    Failed,
}

/// One derivation asked of a worker.
pub struct DeriveJob {
    /// The password, wiped when the job is dropped.
    pub password: Password,
    /// The account's salt (or the decoy salt of a name without an account).
    pub salt: [u8; 16],
    /// The account's Argon2 parameters.
    pub params: KdfParams,
}

/// Messages of a key-derivation worker.
pub enum KdfMessage {
    /// Derive a password key.
    Derive(DeriveJob, RpcReplyPort<Result<WrappingKey, KdfError>>),
    /// Fail on purpose, so supervision can be exercised.
    #[doc(hidden)]
    Fail,
}

/// A worker: derives one key at a time in a blocking thread with a buffer it reuses.
pub(crate) struct KdfWorker;

/// A worker's state: the pepper and its Argon2 memory, sized for the default parameters.
pub(crate) struct WorkerState {
    pepper: Arc<Pepper>,
    memory: Vec<Block>,
}

impl Actor for KdfWorker {
    type Msg = KdfMessage;
    type State = WorkerState;
    type Arguments = (Arc<Pepper>, KdfParams);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (pepper, params): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let memory = vec![Block::default(); password::memory_blocks(&params)];
        Ok(WorkerState { pepper, memory })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (job, reply) = match message {
            KdfMessage::Derive(job, reply) => (job, reply),
            KdfMessage::Fail => return Err("injected failure".into()),
        };

        let pepper = Arc::clone(&state.pepper);
        let mut memory = std::mem::take(&mut state.memory);
        let (memory, result) = tokio::task::spawn_blocking(move || {
            let needed = password::memory_blocks(&job.params);
            if memory.len() < needed {
                memory.resize(needed, Block::default());
            }
            let result = password::derive_password_key_with_memory(
                &job.password,
                &job.salt,
                &job.params,
                &pepper,
                &mut memory,
            );
            (memory, result.map_err(|_| KdfError::Failed))
        })
        .await?;

        state.memory = memory;
        // The caller may have gone away (client disconnected); nothing to do then.
        let _ = reply.send(result);
        Ok(())
    }
}

/// Counts a job as outstanding until it is dropped, whatever path it leaves by.
struct Outstanding<'a>(&'a AtomicUsize, &'a AtomicUsize);

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The pool's front: admission control and dispatch to the least-loaded worker.
pub struct KdfPool {
    pub(crate) workers: Vec<Slot<KdfMessage>>,
    loads: Vec<AtomicUsize>,
    outstanding: AtomicUsize,
    capacity: usize,
    pepper: Arc<Pepper>,
    decoy: DecoyKey,
}

impl KdfPool {
    pub(crate) fn new(workers: usize, queue: usize, pepper: Arc<Pepper>, decoy: DecoyKey) -> Self {
        Self {
            workers: (0..workers).map(|_| Slot::empty()).collect(),
            loads: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            outstanding: AtomicUsize::new(0),
            capacity: workers + queue,
            pepper,
            decoy,
        }
    }

    /// Derives a password's wrapping key, or refuses at once when the pool is full.
    pub async fn derive(&self, job: DeriveJob) -> Result<WrappingKey, KdfError> {
        if self.outstanding.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(KdfError::Overloaded);
        }
        let index = self.least_loaded();
        let (Some(load), Some(slot)) = (self.loads.get(index), self.workers.get(index)) else {
            self.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(KdfError::Unavailable);
        };
        load.fetch_add(1, Ordering::AcqRel);
        let _outstanding = Outstanding(&self.outstanding, load);

        let worker = slot.get().ok_or(KdfError::Unavailable)?;
        match worker
            .call(|reply| KdfMessage::Derive(job, reply), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => result,
            _ => Err(KdfError::Unavailable),
        }
    }

    /// Jobs running or queued right now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The recovery key's wrapping key (HKDF with the pepper: cheap, so not queued).
    pub fn recovery_wrapping_key(&self, recovery_key: &RecoveryKey) -> WrappingKey {
        recovery_key.wrapping_key(&self.pepper)
    }

    /// The stable fake recovery wrap of a name without an account: as long as a real one, and
    /// opened by no recovery key.
    pub fn decoy_recovery_wrap(&self, handle: &Handle) -> [u8; WRAPPED_USER_KEY_LEN] {
        self.decoy.wrapped_user_key_for(handle)
    }

    /// The stable fake salt of a name without an account.
    pub fn decoy_salt(&self, handle: &Handle) -> [u8; 16] {
        self.decoy.salt_for(handle)
    }

    fn least_loaded(&self) -> usize {
        let mut best = (0, usize::MAX);
        for (index, load) in self.loads.iter().enumerate() {
            let load = load.load(Ordering::Acquire);
            if load < best.1 {
                best = (index, load);
            }
        }
        best.0
    }
}

//! The ledger: the single writer of the event log, with group commit.
//!
//! ```text
//!   request A ─┐                     ┌─> reply A
//!   request B ─┼─> mailbox ─> batch ─┼─> reply B      one write batch, one fsync
//!   request C ─┘                     └─> reply C
//! ```
//!
//! An append waits in `pending` until the next `Flush`. The first append after a flush sends the
//! ledger a `Flush` message, which lands behind every append already in the mailbox; while one
//! batch is being made durable, new appends queue up and go out together in the next one. So
//! one fsync serves as many requests as arrived during the previous one, and no append waits for
//! more than one batch ahead of it. **A reply is sent only after the batch is durable.**

use std::sync::Arc;

use blindfold_events::{Append, EventStore, Handle, StoreError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::slot::Slot;

/// Messages of the ledger.
pub enum LedgerMessage {
    /// Append events to one stream; answered once durable.
    Append(Append, RpcReplyPort<Result<u64, StoreError>>),
    /// Commit everything pending.
    Flush,
    /// Delete a stream durably, after every append already received.
    Delete(Handle, RpcReplyPort<Result<(), StoreError>>),
    /// Fail on purpose, so supervision can be exercised.
    #[doc(hidden)]
    Fail,
}

pub(crate) struct LedgerActor;

/// Appends waiting for the next commit.
pub(crate) struct LedgerState {
    store: Arc<dyn EventStore>,
    pending: Vec<(Append, RpcReplyPort<Result<u64, StoreError>>)>,
    flush_scheduled: bool,
}

impl Actor for LedgerActor {
    type Msg = LedgerMessage;
    type State = LedgerState;
    type Arguments = Arc<dyn EventStore>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        store: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(LedgerState {
            store,
            pending: Vec::new(),
            flush_scheduled: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            LedgerMessage::Append(append, reply) => {
                state.pending.push((append, reply));
                if !state.flush_scheduled {
                    state.flush_scheduled = true;
                    myself.send_message(LedgerMessage::Flush)?;
                }
            }
            LedgerMessage::Flush => flush(state).await?,
            LedgerMessage::Delete(handle, reply) => {
                flush(state).await?;
                let store = Arc::clone(&state.store);
                let result =
                    tokio::task::spawn_blocking(move || store.delete_stream(&handle)).await?;
                let _ = reply.send(result);
            }
            LedgerMessage::Fail => return Err("injected failure".into()),
        }
        Ok(())
    }
}

/// Writes every pending append in one durable batch, then answers each.
async fn flush(state: &mut LedgerState) -> Result<(), ActorProcessingErr> {
    state.flush_scheduled = false;
    let (appends, replies): (Vec<_>, Vec<_>) =
        std::mem::take(&mut state.pending).into_iter().unzip();
    if appends.is_empty() {
        return Ok(());
    }

    let store = Arc::clone(&state.store);
    let results = tokio::task::spawn_blocking(move || store.append_batch(appends)).await?;

    tracing::debug!(batch = replies.len(), "ledger.committed");
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
    Ok(())
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The store refused or failed the append.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger failed before answering; it is being restarted. The append may or may not have
    /// been committed: callers re-read before retrying.
    #[error("ledger unavailable")]
    Unavailable,
}

/// The front of the ledger, used by request handlers.
pub struct Ledger {
    pub(crate) slot: Slot<LedgerMessage>,
}

impl Ledger {
    /// Appends durably: returns the stream's new version once the batch holding it is on disk.
    pub async fn append(&self, append: Append) -> Result<u64, LedgerError> {
        let actor = self.slot.get().ok_or(LedgerError::Unavailable)?;
        match actor
            .call(|reply| LedgerMessage::Append(append, reply), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => Ok(result?),
            _ => Err(LedgerError::Unavailable),
        }
    }

    /// Deletes a stream (an account) durably: its key, its events and its projections.
    pub async fn delete(&self, handle: Handle) -> Result<(), LedgerError> {
        let actor = self.slot.get().ok_or(LedgerError::Unavailable)?;
        match actor
            .call(|reply| LedgerMessage::Delete(handle, reply), None)
            .await
        {
            Ok(ractor::rpc::CallResult::Success(result)) => Ok(result?),
            _ => Err(LedgerError::Unavailable),
        }
    }
}

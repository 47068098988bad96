//! The sealer: the one actor that holds the index key and the token keys. It turns usernames into
//! blind handles and seals and opens tokens; the keys never leave it.

use std::sync::Arc;

use blindfold_events::Handle;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::crypto::keys::IndexKey;
use crate::crypto::token::{TokenClaims, TokenError, TokenKeys};
use crate::crypto::username::Username;
use crate::slot::Slot;

/// The keys the sealer holds.
pub struct SealerKeys {
    /// Turns normalized usernames into handles.
    pub index: IndexKey,
    /// Seals and opens tokens.
    pub tokens: TokenKeys,
}

/// Messages of the sealer.
pub enum SealerMessage {
    /// The blind handle of a normalized username.
    Handle(Username, RpcReplyPort<Handle>),
    /// Seal a token.
    Seal(Box<TokenClaims>, RpcReplyPort<Result<String, TokenError>>),
    /// Open a token at time `now`.
    Open(
        String,
        u64,
        RpcReplyPort<Result<Box<TokenClaims>, TokenError>>,
    ),
    /// Fail on purpose, so supervision can be exercised.
    #[doc(hidden)]
    Fail,
}

pub(crate) struct SealerActor;

impl Actor for SealerActor {
    type Msg = SealerMessage;
    type State = Arc<SealerKeys>;
    type Arguments = Arc<SealerKeys>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        keys: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(keys)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        keys: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Replies to callers that went away are dropped on purpose.
        match message {
            SealerMessage::Handle(username, reply) => {
                let _ = reply.send(keys.index.handle(&username));
            }
            SealerMessage::Seal(claims, reply) => {
                let _ = reply.send(keys.tokens.seal(&claims));
            }
            SealerMessage::Open(token, now, reply) => {
                let _ = reply.send(keys.tokens.open(&token, now).map(Box::new));
            }
            SealerMessage::Fail => return Err("injected failure".into()),
        }
        Ok(())
    }
}

/// Why the sealer could not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealer unavailable")]
pub struct SealerUnavailable;

/// The front of the sealer, used by request handlers.
pub struct Sealer {
    pub(crate) slot: Slot<SealerMessage>,
}

impl Sealer {
    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> SealerMessage,
    ) -> Result<T, SealerUnavailable> {
        let actor = self.slot.get().ok_or(SealerUnavailable)?;
        match actor.call(build, None).await {
            Ok(ractor::rpc::CallResult::Success(value)) => Ok(value),
            _ => Err(SealerUnavailable),
        }
    }

    /// The blind handle of a normalized username.
    pub async fn handle(&self, username: Username) -> Result<Handle, SealerUnavailable> {
        self.ask(|reply| SealerMessage::Handle(username, reply))
            .await
    }

    /// Seals a token.
    pub async fn seal(
        &self,
        claims: TokenClaims,
    ) -> Result<Result<String, TokenError>, SealerUnavailable> {
        self.ask(|reply| SealerMessage::Seal(Box::new(claims), reply))
            .await
    }

    /// Opens a token, refusing it if expired at `now`.
    pub async fn open(
        &self,
        token: String,
        now: u64,
    ) -> Result<Result<Box<TokenClaims>, TokenError>, SealerUnavailable> {
        self.ask(|reply| SealerMessage::Open(token, now, reply))
            .await
    }
}

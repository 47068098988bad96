//! The event schema. Events are postcard-encoded inside a versioned frame, then sealed.
//!
//! **Compatibility rule:** variants and fields are only ever appended at the end of an enum;
//! a stored event must decode with every later build. Every `Vec<u8>` named `sealed_*` or
//! `wrapped_*` is already ciphertext under a user-held key when it reaches this crate.

use serde::{Deserialize, Serialize};

use crate::ItemId;

/// Argon2id cost parameters, stored per account so they can be raised without locking anyone out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// m = 19 MiB, t = 2, p = 1: the OWASP minimum for Argon2id.
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// The user key wrapped under a key derived from the password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordWrap {
    /// Argon2id salt, 16 random bytes.
    pub salt: [u8; 16],
    /// Argon2id parameters the wrapping key was derived with.
    pub params: KdfParams,
    /// `nonce ‖ AES-256-GCM-SIV(kek, user_key)`, bound to the handle and the method.
    #[serde(with = "serde_bytes")]
    pub wrapped_user_key: Vec<u8>,
}

/// One change to an account. Appended to the account's stream, never rewritten.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The account was created.
    AccountCreated {
        /// The username as the user typed it, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_username: Vec<u8>,
        /// The profile JSON, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_profile: Vec<u8>,
        /// The user key wrapped for password login.
        password: PasswordWrap,
        /// The user key wrapped under the recovery key.
        #[serde(with = "serde_bytes")]
        wrapped_user_key_recovery: Vec<u8>,
    },
    /// The profile was replaced.
    ProfileReplaced {
        /// The new profile JSON, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_profile: Vec<u8>,
    },
    /// The password changed (or its Argon2 parameters were upgraded). Bumps the epoch only when
    /// `revoke_sessions` is set.
    PasswordChanged {
        /// The user key wrapped under the new password.
        password: PasswordWrap,
        /// Whether every older token stops working (a real change: yes; a parameter upgrade: no).
        revoke_sessions: bool,
    },
    /// Every session was ended ("log out everywhere"): the epoch goes up by one.
    SessionsRevoked,
    /// The recovery key was used: new password, new recovery key, epoch up by one.
    Recovered {
        /// The user key wrapped under the new password.
        password: PasswordWrap,
        /// The user key wrapped under the new recovery key.
        #[serde(with = "serde_bytes")]
        wrapped_user_key_recovery: Vec<u8>,
    },
    /// An item was written (created or replaced).
    ItemPut {
        /// The item's blind id.
        item_id: ItemId,
        /// The item name, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_name: Vec<u8>,
        /// The item value, sealed under the user key, bound to this event's stream version.
        #[serde(with = "serde_bytes")]
        sealed_value: Vec<u8>,
        /// Length of the plaintext value in bytes.
        size: u64,
    },
    /// An item was deleted.
    ItemDeleted {
        /// The item's blind id.
        item_id: ItemId,
    },
    /// TOTP was turned on, with a fresh set of backup codes.
    TotpEnabled {
        /// The TOTP secret, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_secret: Vec<u8>,
        /// Digests of the backup codes (HMAC under a key from the user key).
        backup_codes: Vec<[u8; 32]>,
        /// The step of the code that confirmed it: that code is spent.
        step: u64,
    },
    /// TOTP was turned off; the backup codes go with it.
    TotpDisabled,
    /// A TOTP code was accepted: it and every earlier one are spent.
    TotpStepUsed {
        /// The step of the accepted code.
        step: u64,
    },
    /// The backup codes were regenerated: the old set stops working.
    BackupCodesReplaced {
        /// Digests of the new codes.
        backup_codes: Vec<[u8; 32]>,
    },
    /// A backup code was used and is spent.
    BackupCodeUsed {
        /// The digest of the spent code.
        digest: [u8; 32],
    },
    /// An entry of the user's security log, sealed under the user key.
    SecurityLogged {
        /// `{at, event, device}` as JSON, sealed under the user key.
        #[serde(with = "serde_bytes")]
        sealed_entry: Vec<u8>,
    },
}

impl Event {
    /// A short, stable name of the event's kind, safe to show an operator.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::AccountCreated { .. } => "account_created",
            Event::ProfileReplaced { .. } => "profile_replaced",
            Event::PasswordChanged { .. } => "password_changed",
            Event::SessionsRevoked => "sessions_revoked",
            Event::Recovered { .. } => "recovered",
            Event::ItemPut { .. } => "item_put",
            Event::ItemDeleted { .. } => "item_deleted",
            Event::TotpEnabled { .. } => "totp_enabled",
            Event::TotpDisabled => "totp_disabled",
            Event::TotpStepUsed { .. } => "totp_step_used",
            Event::BackupCodesReplaced { .. } => "backup_codes_replaced",
            Event::BackupCodeUsed { .. } => "backup_code_used",
            Event::SecurityLogged { .. } => "security_logged",
        }
    }
}

/// An event as it was recorded: its place in the stream and the time it was appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Stream version of this event (the first event of a stream is version 1).
    pub version: u64,
    /// Unix time in seconds when it was appended.
    pub at: u64,
    /// The event itself.
    pub event: Event,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_fields_encode_as_a_length_and_the_raw_bytes() {
        // Pins the stored format: postcard writes a byte string as varint length + bytes, the
        // same bytes a sequence of u8 gives, so events written before and after decode alike.
        let event = Event::ProfileReplaced {
            sealed_profile: vec![7, 8, 9],
        };
        assert_eq!(postcard::to_allocvec(&event).unwrap(), [1, 3, 7, 8, 9]);
        assert_eq!(
            postcard::from_bytes::<Event>(&[1, 3, 7, 8, 9]).unwrap(),
            event
        );
    }
}

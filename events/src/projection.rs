//! Projections: current state derived from the log. Pure functions of the events, so a rebuild
//! from the log reproduces them exactly.

use serde::{Deserialize, Serialize};

use crate::{Event, ItemId, PasswordWrap, RecordedEvent};

/// The current state of one account, as the events of its stream leave it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Version of the last event applied.
    pub version: u64,
    /// Revocation epoch: tokens carrying an older epoch are refused.
    pub epoch: u64,
    /// Unix seconds of the first event.
    pub created_at: u64,
    /// The username, sealed under the user key.
    #[serde(with = "serde_bytes")]
    pub sealed_username: Vec<u8>,
    /// The profile, sealed under the user key.
    #[serde(with = "serde_bytes")]
    pub sealed_profile: Vec<u8>,
    /// The user key wrapped for password login.
    pub password: PasswordWrap,
    /// The user key wrapped under the recovery key.
    #[serde(with = "serde_bytes")]
    pub wrapped_user_key_recovery: Vec<u8>,
    /// The second factor, when it is on.
    pub totp: Option<TotpState>,
    /// Digests of the unspent backup codes.
    pub backup_codes: Vec<[u8; 32]>,
    /// The most recent security-log entries, sealed under the user key, oldest first.
    pub security_log: Vec<Vec<u8>>,
}

/// The state of an account's TOTP second factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpState {
    /// The TOTP secret, sealed under the user key.
    #[serde(with = "serde_bytes")]
    pub sealed_secret: Vec<u8>,
    /// The last step whose code was accepted; that code and every earlier one are spent.
    pub last_used_step: u64,
}

/// Security-log entries an account record keeps; older ones drop off.
pub const SECURITY_LOG_LEN: usize = 100;

/// One entry of an account's item index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemEntry {
    /// The item's blind id.
    pub item_id: ItemId,
    /// The item name, sealed under the user key.
    #[serde(with = "serde_bytes")]
    pub sealed_name: Vec<u8>,
    /// Plaintext size of the value in bytes.
    pub size: u64,
    /// Unix seconds of the last write.
    pub updated_at: u64,
    /// Stream version of the `ItemPut` event that holds the value.
    pub version: u64,
}

/// What one event does to the projections.
#[derive(Debug)]
pub enum ItemChange {
    /// Insert or replace this entry.
    Put(ItemEntry),
    /// Remove the entry with this id.
    Delete(ItemId),
}

/// Applies one event to an account record. `record` is `None` before the first event.
///
/// The epoch starts at 0 and goes up by one on `SessionsRevoked`, on `Recovered`, and on
/// `PasswordChanged` with `revoke_sessions` set. `version` becomes the event's version.
///
/// Returns `None` when the event cannot follow `record` (a corrupt stream): the first event is
/// not `AccountCreated` at version 1, `AccountCreated` comes a second time, or the event's
/// version is not the next one.
pub fn apply(record: Option<AccountRecord>, recorded: &RecordedEvent) -> Option<AccountRecord> {
    match record {
        None => created(recorded),
        Some(record) if recorded.version == record.version.checked_add(1)? => {
            changed(record, recorded)
        }
        Some(_) => None,
    }
}

/// Whether `event` changes an account record in more than its `version`. Item events do not:
/// they change only the item index, so a store may leave the rest of the record untouched.
pub(crate) fn changes_record(event: &Event) -> bool {
    !matches!(event, Event::ItemPut { .. } | Event::ItemDeleted { .. })
}

/// The record a stream's first event makes, if that event is `AccountCreated` at version 1.
fn created(recorded: &RecordedEvent) -> Option<AccountRecord> {
    let Event::AccountCreated {
        sealed_username,
        sealed_profile,
        password,
        wrapped_user_key_recovery,
    } = &recorded.event
    else {
        return None;
    };
    if recorded.version != 1 {
        return None;
    }
    Some(AccountRecord {
        version: 1,
        epoch: 0,
        created_at: recorded.at,
        sealed_username: sealed_username.clone(),
        sealed_profile: sealed_profile.clone(),
        password: password.clone(),
        wrapped_user_key_recovery: wrapped_user_key_recovery.clone(),
        totp: None,
        backup_codes: Vec::new(),
        security_log: Vec::new(),
    })
}

/// `record` after a later event of its stream.
fn changed(mut record: AccountRecord, recorded: &RecordedEvent) -> Option<AccountRecord> {
    record.version = recorded.version;
    match &recorded.event {
        Event::AccountCreated { .. } => return None,
        Event::ProfileReplaced { sealed_profile } => {
            record.sealed_profile.clone_from(sealed_profile);
        }
        Event::PasswordChanged {
            password,
            revoke_sessions,
        } => {
            record.password = password.clone();
            if *revoke_sessions {
                record.epoch = record.epoch.saturating_add(1);
            }
        }
        Event::SessionsRevoked => record.epoch = record.epoch.saturating_add(1),
        Event::Recovered {
            password,
            wrapped_user_key_recovery,
        } => {
            record.password = password.clone();
            record
                .wrapped_user_key_recovery
                .clone_from(wrapped_user_key_recovery);
            record.epoch = record.epoch.saturating_add(1);
        }
        Event::ItemPut { .. } | Event::ItemDeleted { .. } => {}
        Event::TotpEnabled {
            sealed_secret,
            backup_codes,
            step,
        } => {
            record.totp = Some(TotpState {
                sealed_secret: sealed_secret.clone(),
                last_used_step: *step,
            });
            record.backup_codes.clone_from(backup_codes);
        }
        Event::TotpDisabled => {
            record.totp = None;
            record.backup_codes.clear();
        }
        Event::TotpStepUsed { step } => {
            if let Some(totp) = record.totp.as_mut() {
                totp.last_used_step = totp.last_used_step.max(*step);
            }
        }
        Event::BackupCodesReplaced { backup_codes } => record.backup_codes.clone_from(backup_codes),
        Event::BackupCodeUsed { digest } => record.backup_codes.retain(|code| code != digest),
        Event::SecurityLogged { sealed_entry } => {
            record.security_log.push(sealed_entry.clone());
            let excess = record.security_log.len().saturating_sub(SECURITY_LOG_LEN);
            record.security_log.drain(..excess);
        }
    }
    Some(record)
}

/// The change one event makes to the item index: `ItemPut` puts an entry stamped with the
/// event's time and version, `ItemDeleted` removes one, every other event changes nothing.
pub fn item_change(recorded: &RecordedEvent) -> Option<ItemChange> {
    match &recorded.event {
        Event::ItemPut {
            item_id,
            sealed_name,
            size,
            ..
        } => Some(ItemChange::Put(ItemEntry {
            item_id: *item_id,
            sealed_name: sealed_name.clone(),
            size: *size,
            updated_at: recorded.at,
            version: recorded.version,
        })),
        Event::ItemDeleted { item_id } => Some(ItemChange::Delete(*item_id)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KdfParams;

    fn wrap(byte: u8) -> PasswordWrap {
        PasswordWrap {
            salt: [byte; 16],
            params: KdfParams::default(),
            wrapped_user_key: vec![byte],
        }
    }

    fn at(version: u64, event: Event) -> RecordedEvent {
        RecordedEvent {
            version,
            at: 100 + version,
            event,
        }
    }

    fn created() -> RecordedEvent {
        at(
            1,
            Event::AccountCreated {
                sealed_username: vec![1],
                sealed_profile: vec![2],
                password: wrap(1),
                wrapped_user_key_recovery: vec![3],
            },
        )
    }

    fn replay(events: &[RecordedEvent]) -> Option<AccountRecord> {
        events
            .iter()
            .try_fold(None, |record, event| apply(record, event).map(Some))?
    }

    #[test]
    fn the_epoch_rises_on_revocation_recovery_and_a_revoking_password_change_only() {
        let record = replay(&[
            created(),
            at(
                2,
                Event::PasswordChanged {
                    password: wrap(2),
                    revoke_sessions: false,
                },
            ),
            at(
                3,
                Event::ProfileReplaced {
                    sealed_profile: vec![9],
                },
            ),
            at(4, Event::SessionsRevoked),
            at(
                5,
                Event::PasswordChanged {
                    password: wrap(3),
                    revoke_sessions: true,
                },
            ),
            at(
                6,
                Event::Recovered {
                    password: wrap(4),
                    wrapped_user_key_recovery: vec![7],
                },
            ),
        ])
        .unwrap();
        assert_eq!(
            (record.version, record.epoch, record.created_at),
            (6, 3, 101)
        );
        assert_eq!(record.password, wrap(4));
        assert_eq!(
            (record.sealed_profile, record.wrapped_user_key_recovery),
            (vec![9], vec![7])
        );
    }

    #[test]
    fn a_stream_that_does_not_start_with_its_creation_is_corrupt() {
        assert_eq!(apply(None, &at(1, Event::SessionsRevoked)), None);
        let mut late = created();
        late.version = 2;
        assert_eq!(apply(None, &late), None);
    }

    #[test]
    fn a_second_creation_or_a_skipped_version_is_corrupt() {
        let record = apply(None, &created());
        let mut again = created();
        again.version = 2;
        assert_eq!(apply(record.clone(), &again), None);
        assert_eq!(apply(record, &at(3, Event::SessionsRevoked)), None);
    }

    #[test]
    fn item_events_change_the_index_and_nothing_else_does() {
        let id = ItemId([5; 32]);
        let put = at(
            4,
            Event::ItemPut {
                item_id: id,
                sealed_name: vec![1],
                sealed_value: vec![2],
                size: 3,
            },
        );
        let Some(ItemChange::Put(entry)) = item_change(&put) else {
            panic!("not a put")
        };
        assert_eq!(
            (entry.item_id, entry.size, entry.updated_at, entry.version),
            (id, 3, 104, 4)
        );
        assert!(matches!(
            item_change(&at(5, Event::ItemDeleted { item_id: id })),
            Some(ItemChange::Delete(deleted)) if deleted == id
        ));
        assert!(item_change(&at(6, Event::SessionsRevoked)).is_none());
    }

    #[test]
    fn an_event_said_to_change_only_the_version_changes_nothing_else() {
        let base = apply(None, &created()).unwrap();
        let events = [
            Event::ItemPut {
                item_id: ItemId([5; 32]),
                sealed_name: vec![1],
                sealed_value: vec![2],
                size: 3,
            },
            Event::ItemDeleted {
                item_id: ItemId([5; 32]),
            },
        ];
        for event in events {
            assert!(!changes_record(&event));
            let mut after = apply(Some(base.clone()), &at(2, event)).unwrap();
            assert_eq!(after.version, 2);
            after.version = base.version;
            assert_eq!(after, base);
        }
        assert!(changes_record(&Event::SessionsRevoked));
        assert!(changes_record(&Event::TotpStepUsed { step: 1 }));
    }
}

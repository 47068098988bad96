//! A rebuilt projection is byte for byte the live one.

use std::collections::BTreeMap;

use blindfold_events::{Append, Event, EventStore, ItemId};
use proptest::prelude::*;

use crate::{created, handle, item_put, open, wrap};

/// One change a user could make to account `account`.
#[derive(Clone, Debug)]
enum Op {
    Put { account: u8, item: u8, size: u64 },
    Delete { account: u8, item: u8 },
    Profile { account: u8, byte: u8 },
    Password { account: u8, revoke: bool },
    Revoke { account: u8 },
    Recover { account: u8 },
    DeleteAccount { account: u8 },
    SecondFactor { account: u8, kind: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let account = 1u8..4;
    prop_oneof![
        4 => (account.clone(), 0u8..4, 0u64..64)
            .prop_map(|(account, item, size)| Op::Put { account, item, size }),
        2 => (account.clone(), 0u8..4).prop_map(|(account, item)| Op::Delete { account, item }),
        1 => (account.clone(), any::<u8>()).prop_map(|(account, byte)| Op::Profile { account, byte }),
        1 => (account.clone(), any::<bool>())
            .prop_map(|(account, revoke)| Op::Password { account, revoke }),
        1 => account.clone().prop_map(|account| Op::Revoke { account }),
        1 => account.clone().prop_map(|account| Op::Recover { account }),
        1 => account.clone().prop_map(|account| Op::DeleteAccount { account }),
        2 => (account, 0u8..6).prop_map(|(account, kind)| Op::SecondFactor { account, kind }),
    ]
}

impl Op {
    fn account(&self) -> u8 {
        match self {
            Op::Put { account, .. }
            | Op::Delete { account, .. }
            | Op::Profile { account, .. }
            | Op::Password { account, .. }
            | Op::Revoke { account }
            | Op::Recover { account }
            | Op::DeleteAccount { account }
            | Op::SecondFactor { account, .. } => *account,
        }
    }

    /// The event, or `None` for an account deletion.
    fn event(&self) -> Option<Event> {
        Some(match *self {
            Op::Put { item, size, .. } => item_put(item, size),
            Op::Delete { item, .. } => Event::ItemDeleted {
                item_id: ItemId([item; 32]),
            },
            Op::Profile { byte, .. } => Event::ProfileReplaced {
                sealed_profile: vec![byte; 50],
            },
            Op::Password { revoke, .. } => Event::PasswordChanged {
                password: wrap(7),
                revoke_sessions: revoke,
            },
            Op::Revoke { .. } => Event::SessionsRevoked,
            Op::Recover { .. } => Event::Recovered {
                password: wrap(8),
                wrapped_user_key_recovery: vec![8; 60],
            },
            Op::DeleteAccount { .. } => return None,
            Op::SecondFactor { kind, .. } => second_factor_event(kind),
        })
    }
}

/// One of the second-factor and security-log events, by number.
fn second_factor_event(kind: u8) -> Event {
    match kind {
        0 => Event::TotpEnabled {
            sealed_secret: vec![kind; 48],
            backup_codes: vec![[1; 32], [2; 32]],
            step: 7,
        },
        1 => Event::TotpDisabled,
        2 => Event::TotpStepUsed { step: 9 },
        3 => Event::BackupCodesReplaced {
            backup_codes: vec![[3; 32]; 10],
        },
        4 => Event::BackupCodeUsed { digest: [1; 32] },
        _ => Event::SecurityLogged {
            sealed_entry: vec![kind; 90],
        },
    }
}

/// What a simple model expects of one account.
#[derive(Default)]
struct Model {
    version: u64,
    epoch: u64,
    items: BTreeMap<u8, u64>,
}

impl Model {
    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Put { item, size, .. } => drop(self.items.insert(item, size)),
            Op::Delete { item, .. } => drop(self.items.remove(&item)),
            Op::Password { revoke: true, .. } | Op::Revoke { .. } | Op::Recover { .. } => {
                self.epoch += 1
            }
            _ => {}
        }
        self.version += 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_rebuild_reproduces_every_projection_byte_for_byte(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..12)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut models: BTreeMap<u8, Model> = BTreeMap::new();

        for batch in batches {
            let mut appends = Vec::new();
            for op in &batch {
                let account = op.account();
                let Some(event) = op.event() else {
                    // A deletion goes after the appends gathered before it.
                    for result in store.append_batch(std::mem::take(&mut appends)) {
                        prop_assert!(result.is_ok());
                    }
                    if models.remove(&account).is_some() {
                        store.delete_stream(&handle(account)).unwrap();
                    }
                    continue;
                };
                let model = models.entry(account).or_default();
                let mut events = Vec::new();
                if model.version == 0 {
                    events.push(created());
                    model.version = 1;
                }
                let expected = model.version - events.len() as u64;
                events.push(event);
                model.apply(op);
                appends.push(Append { handle: handle(account), expected_version: expected, at: 5, events });
            }
            for result in store.append_batch(appends) {
                prop_assert!(result.is_ok());
            }
        }

        for (account, model) in &models {
            let record = store.account(&handle(*account)).unwrap().unwrap();
            prop_assert_eq!((record.version, record.epoch), (model.version, model.epoch));
            let items: Vec<_> = store.items(&handle(*account)).unwrap()
                .iter().map(|i| (i.item_id.0[0], i.size)).collect();
            prop_assert_eq!(items, model.items.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>());
        }

        let live = store.projection_snapshot().unwrap();
        let report = store.rebuild().unwrap();
        prop_assert_eq!(report.corrupt_streams, 0);
        prop_assert_eq!(report.accounts, models.len() as u64);
        prop_assert_eq!(store.projection_snapshot().unwrap(), live);
    }
}

//! A rebuilt projection is byte for byte the live one.

use std::collections::BTreeMap;

use blindfold_events::{Append, Event, EventStore, ItemId};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::backend::{self, Backend, for_each_store};
use crate::{append, append_one, created, handle, item_put, wrap};

for_each_store!(
    a_stream_missing_events_its_meta_records_is_skipped_as_corrupt,
    item_appends_keep_the_sealed_account_record_and_move_its_version,
);

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

/// Runs a random sequence of batches and deletions, checks the projections against a model,
/// then rebuilds and compares the projections byte for byte.
fn rebuild_reproduces_the_projections<B: Backend>(
    backend: B,
    batches: Vec<Vec<Op>>,
) -> Result<(), TestCaseError> {
    let store = backend.open();
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
            appends.push(Append {
                handle: handle(account),
                expected_version: expected,
                at: 5,
                events,
            });
        }
        for result in store.append_batch(appends) {
            prop_assert!(result.is_ok());
        }
    }

    for (account, model) in &models {
        let record = store.account(&handle(*account)).unwrap().unwrap();
        prop_assert_eq!((record.version, record.epoch), (model.version, model.epoch));
        let items: Vec<_> = store
            .items(&handle(*account))
            .unwrap()
            .iter()
            .map(|i| (i.item_id.0[0], i.size))
            .collect();
        prop_assert_eq!(
            items,
            model
                .items
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>()
        );
    }

    let live = B::snapshot(&store);
    let report = store.rebuild().unwrap();
    prop_assert_eq!(report.corrupt_streams, 0);
    prop_assert_eq!(report.accounts, models.len() as u64);
    prop_assert_eq!(B::snapshot(&store), live);
    Ok(())
}

fn batches() -> impl Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..5), 1..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn a_rebuild_reproduces_every_projection_byte_for_byte_in_fjall(batches in batches()) {
        rebuild_reproduces_the_projections(backend::Fjall::fresh().unwrap(), batches)?;
    }

    #[test]
    fn a_rebuild_reproduces_every_projection_byte_for_byte_in_postgres(batches in batches()) {
        if let Some(backend) = backend::Postgres::fresh() {
            rebuild_reproduces_the_projections(backend, batches)?;
        }
    }
}

/// Removes `key` from the raw keyspace `name` of the store in `dir` (the store must be closed).
fn remove_raw(dir: &std::path::Path, name: &str, key: &[u8]) {
    let db = ::fjall::Database::builder(dir).open().unwrap();
    let keyspace = db
        .keyspace(name, ::fjall::KeyspaceCreateOptions::default)
        .unwrap();
    keyspace.remove(key).unwrap();
    db.persist(::fjall::PersistMode::SyncAll).unwrap();
}

/// In fjall the feed is a keyspace of its own, which a rebuild does not need. (In PostgreSQL
/// the feed is a column of the events: it cannot be lost without them.)
#[test]
fn a_stream_whose_feed_entries_are_gone_is_still_rebuilt_from_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let store = crate::open(dir.path());
        append_one(&store, append(1, 0, vec![created(), item_put(1, 3)]));
        append_one(&store, append(2, 0, vec![created()]));
        append_one(
            &store,
            append(1, 2, vec![item_put(2, 4), Event::SessionsRevoked]),
        );
        let positions: Vec<_> = store
            .feed(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.position)
            .collect();
        assert_eq!(positions.len(), 5);
        (store.projection_snapshot().unwrap(), positions)
    };
    for position in &live.1 {
        remove_raw(dir.path(), "feed", &position.to_be_bytes());
    }

    let store = crate::open(dir.path());
    let report = store.rebuild().unwrap();
    assert_eq!(
        (report.accounts, report.events, report.corrupt_streams),
        (2, 5, 0)
    );
    assert_eq!(store.projection_snapshot().unwrap(), live.0);
    assert_eq!(store.account(&handle(1)).unwrap().unwrap().version, 4);
}

fn a_stream_missing_events_its_meta_records_is_skipped_as_corrupt<B: Backend>(backend: B) {
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created(), item_put(1, 3)]));
    append_one(&store, append(2, 0, vec![created(), item_put(2, 3)]));
    append_one(&store, append(3, 0, vec![created()]));
    append_one(&store, append(4, 0, vec![created()]));
    let store = backend.remove_event(store, &handle(1), 2);
    let store = backend.remove_event(store, &handle(3), 1);

    let report = store.rebuild().unwrap();
    assert_eq!(
        (report.accounts, report.events, report.corrupt_streams),
        (2, 4, 2)
    );
    assert!(store.account(&handle(1)).unwrap().is_none());
    assert!(store.account(&handle(4)).unwrap().is_some());
    assert!(store.items(&handle(1)).unwrap().is_empty());
    assert!(store.account(&handle(3)).unwrap().is_none());
    assert_eq!(store.items(&handle(2)).unwrap().len(), 1);
}

fn item_appends_keep_the_sealed_account_record_and_move_its_version<B: Backend>(backend: B) {
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created()]));
    let before = B::snapshot(&store);

    append_one(&store, append(1, 1, vec![item_put(1, 3)]));
    append_one(
        &store,
        append(
            1,
            2,
            vec![Event::ItemDeleted {
                item_id: ItemId([1; 32]),
            }],
        ),
    );
    let after = B::snapshot(&store);
    assert_eq!(after, before);
    assert_eq!(store.account(&handle(1)).unwrap().unwrap().version, 3);

    append_one(&store, append(1, 3, vec![Event::SessionsRevoked]));
    let record = store.account(&handle(1)).unwrap().unwrap();
    assert_eq!((record.version, record.epoch), (4, 1));
    assert_ne!(B::snapshot(&store), before);
}

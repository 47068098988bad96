//! Several servers on one PostgreSQL database: two stores on one schema appending to the same
//! streams at once lose no update, tear no append, and each sees what the other wrote.

use std::sync::{Arc, Barrier};

use blindfold_events::{Event, EventStore, PostgresStore, StoreError};

use crate::backend::{Backend, Postgres};
use crate::{append, append_one, created, handle, item_put, storage_key};

/// Writers per store.
const WRITERS: usize = 4;
/// Successful appends each writer makes.
const APPENDS_PER_WRITER: u64 = 25;

/// Appends to stream 1 until `APPENDS_PER_WRITER` have succeeded, re-reading the version after
/// every conflict; returns the version each success was given.
fn append_with_retries(store: &PostgresStore, writer: u8) -> Vec<u64> {
    let mut versions = Vec::new();
    while (versions.len() as u64) < APPENDS_PER_WRITER {
        let seen = store.account(&handle(1)).unwrap().unwrap().version;
        let events = vec![Event::SessionsRevoked, item_put(writer, seen)];
        match store
            .append_batch(vec![append(1, seen, events)])
            .pop()
            .unwrap()
        {
            Ok(version) => versions.push(version),
            Err(StoreError::Conflict { expected, actual }) => {
                assert_eq!(expected, seen);
                assert!(actual > seen, "a conflict must name a newer version");
            }
            Err(error) => panic!("append failed: {error}"),
        }
    }
    versions
}

#[test]
fn two_servers_appending_to_one_stream_lose_no_update() {
    let Some(backend) = Postgres::fresh() else {
        return;
    };
    let servers = [Arc::new(backend.open()), Arc::new(backend.open())];
    append_one(&*servers[0], append(1, 0, vec![created()]));

    let start = Arc::new(Barrier::new(2 * WRITERS));
    let writers: Vec<_> = (0..2 * WRITERS)
        .map(|writer| {
            let store = Arc::clone(&servers[writer % 2]);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                append_with_retries(&store, writer as u8)
            })
        })
        .collect();
    let mut versions: Vec<u64> = writers
        .into_iter()
        .flat_map(|writer| writer.join().unwrap())
        .collect();

    // Every success got its own two versions, and together they are the whole stream.
    versions.sort_unstable();
    let total = 2 * WRITERS as u64 * APPENDS_PER_WRITER;
    assert_eq!(versions, (1..=total).map(|n| 1 + 2 * n).collect::<Vec<_>>());
    for server in &servers {
        let events = server.read_stream(&handle(1)).unwrap();
        assert_eq!(events.len() as u64, 1 + 2 * total);
        let record = server.account(&handle(1)).unwrap().unwrap();
        assert_eq!((record.version, record.epoch), (1 + 2 * total, total));
        assert_eq!(server.items(&handle(1)).unwrap().len(), 2 * WRITERS);
    }

    // The projections the racing appends left are the ones a replay makes.
    let live = Postgres::snapshot(&servers[1]);
    assert_eq!(servers[1].rebuild().unwrap().corrupt_streams, 0);
    assert_eq!(Postgres::snapshot(&servers[0]), live);
}

#[test]
fn two_servers_creating_one_stream_at_once_create_it_once() {
    let Some(backend) = Postgres::fresh() else {
        return;
    };
    for round in 1..=20u8 {
        let start = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let store = backend.open_with(storage_key()).unwrap();
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    let batch = vec![append(round, 0, vec![created(), item_put(1, 1)])];
                    store.append_batch(batch).pop().unwrap()
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();

        let won = results.iter().filter(|r| matches!(r, Ok(2))).count();
        let lost = results
            .iter()
            .filter(|r| {
                matches!(
                    r,
                    Err(StoreError::Conflict {
                        expected: 0,
                        actual: 2
                    })
                )
            })
            .count();
        assert_eq!((won, lost), (1, 1), "round {round}: {results:?}");
        let store = backend.open();
        assert_eq!(store.read_stream(&handle(round)).unwrap().len(), 2);
    }
}

#[test]
fn a_proof_spent_on_one_server_is_a_replay_on_the_other() {
    let Some(backend) = Postgres::fresh() else {
        return;
    };
    let (one, other) = (backend.open(), backend.open());
    let (one, other) = (one.replay_table(60), other.replay_table(60));
    let now = 1_700_000_000;

    assert!(one.spend([7; 32], now, now).unwrap());
    assert!(!other.spend([7; 32], now, now + 30).unwrap());
    assert!(!one.spend([7; 32], now, now + 60).unwrap());
    assert!(other.spend([8; 32], now, now).unwrap());

    // Past its window a digest is forgotten (the proof itself would be refused as too old).
    assert!(other.spend([7; 32], now + 100, now + 62).unwrap());
}

#[test]
fn the_store_opens_and_answers_inside_async_code_on_either_runtime() {
    let Some(backend) = Postgres::fresh() else {
        return;
    };
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for (n, runtime) in [(1, current), (2, multi)] {
        let store = runtime.block_on(async { backend.open() });
        let version = runtime.block_on(async {
            tokio::spawn(async move {
                append_one(&store, append(n, 0, vec![created()]));
                store.account(&handle(n)).unwrap().unwrap().version
            })
            .await
            .unwrap()
        });
        assert_eq!(version, 1);
    }
}

/// Copies every row of stream `account` from `from` into `to` inside one transaction, which is
/// held open until `release` says so: another server creating the stream, caught mid-commit.
fn create_behind_the_back(from: &Postgres, to: &Postgres, account: u8) -> CreatingServer {
    let mut source = from.connect();
    let meta: Vec<u8> = source
        .query_one(
            "SELECT meta FROM blindfold_streams WHERE handle = $1",
            &[&&handle(account).0[..]],
        )
        .unwrap()
        .get(0);
    let record: Vec<u8> = source
        .query_one(
            "SELECT record FROM blindfold_accounts WHERE handle = $1",
            &[&&handle(account).0[..]],
        )
        .unwrap()
        .get(0);
    let events: Vec<(i64, i64, Vec<u8>)> = source
        .query(
            "SELECT version, position, envelope FROM blindfold_events WHERE handle = $1",
            &[&&handle(account).0[..]],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();

    let mut target = to.connect();
    let (inserted, inserted_rx) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let handle = &handle(account).0[..];
        let mut tx = target.transaction().unwrap();
        let insert = "INSERT INTO blindfold_streams (handle, meta) VALUES ($1, $2)";
        tx.execute(insert, &[&handle, &meta]).unwrap();
        let insert = "INSERT INTO blindfold_accounts (handle, record) VALUES ($1, $2)";
        tx.execute(insert, &[&handle, &record]).unwrap();
        for (version, position, envelope) in &events {
            tx.execute(
                "INSERT INTO blindfold_events (handle, version, position, envelope) \
                 VALUES ($1, $2, $3, $4)",
                &[&handle, version, position, envelope],
            )
            .unwrap();
        }
        inserted.send(()).unwrap();
        release_rx.recv().unwrap();
        tx.commit().unwrap();
    });
    inserted_rx.recv().unwrap();
    CreatingServer { release, thread }
}

/// A creation held open by [`create_behind_the_back`].
struct CreatingServer {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

#[test]
fn an_append_that_loses_the_race_to_create_a_stream_leaves_the_winners_stream_whole() {
    let (Some(backend), Some(elsewhere)) = (Postgres::fresh(), Postgres::fresh()) else {
        return;
    };
    // The winner's stream, sealed under the same storage key as this store's.
    append_one(&elsewhere.open(), append(1, 0, vec![created()]));
    let store = Arc::new(backend.open());
    let winner = create_behind_the_back(&elsewhere, &backend, 1);

    // This batch does not see the uncommitted stream, so it creates one (with a key of its
    // own), and waits on the winner's row to claim it; then it goes on on the winner's stream.
    let racing = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            store.append_batch(vec![
                append(1, 0, vec![created()]),
                append(1, 1, vec![Event::SessionsRevoked]),
            ])
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    winner.release.send(()).unwrap();
    winner.thread.join().unwrap();
    let results = racing.join().unwrap();

    assert!(
        matches!(
            results[..],
            [
                Err(StoreError::Conflict {
                    expected: 0,
                    actual: 1
                }),
                Ok(2)
            ]
        ),
        "{results:?}"
    );
    let events = store.read_stream(&handle(1)).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(store.account(&handle(1)).unwrap().unwrap().epoch, 1);
}

#[test]
fn a_database_that_holds_a_read_up_answers_with_an_error_in_seconds_not_never() {
    let Some(backend) = Postgres::fresh() else {
        return;
    };
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created()]));

    // Another session takes the accounts table and keeps it, as a stuck migration or a
    // runaway transaction would.
    let mut blocker = backend.connect();
    let mut hold = blocker.transaction().unwrap();
    hold.batch_execute("LOCK TABLE blindfold_accounts IN ACCESS EXCLUSIVE MODE")
        .unwrap();

    let started = std::time::Instant::now();
    let read = store.account(&handle(1));
    let waited = started.elapsed();
    assert!(matches!(read, Err(StoreError::Backend(_))), "got {read:?}");
    assert!(
        waited < std::time::Duration::from_secs(9),
        "waited {waited:?}"
    );

    hold.rollback().unwrap();
    assert!(store.account(&handle(1)).unwrap().is_some());
}

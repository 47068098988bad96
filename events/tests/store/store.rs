//! Appends, reads, conflicts, corruption and keys.

use blindfold_events::{Event, EventStore, FjallStore, ItemId, StorageKey, StoreError};

use crate::{append, append_one, created, handle, item_put, open, storage_key};

#[test]
fn an_append_with_a_stale_expected_version_is_a_conflict_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(
        append_one(&store, append(1, 0, vec![created(), item_put(1, 5)])),
        2
    );

    let stale = store.append_batch(vec![append(1, 1, vec![Event::SessionsRevoked])]);
    assert!(matches!(
        stale[..],
        [Err(StoreError::Conflict {
            expected: 1,
            actual: 2
        })]
    ));
    assert_eq!(store.read_stream(&handle(1)).unwrap().len(), 2);
    assert_eq!(store.account(&handle(1)).unwrap().unwrap().epoch, 0);
}

#[test]
fn creating_an_existing_stream_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append_one(&store, append(1, 0, vec![created()]));

    let again = store.append_batch(vec![append(1, 0, vec![created()])]);
    assert!(matches!(
        again[..],
        [Err(StoreError::Conflict {
            expected: 0,
            actual: 1
        })]
    ));
}

#[test]
fn a_stream_must_begin_with_its_creation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let result = store.append_batch(vec![append(1, 0, vec![Event::SessionsRevoked])]);
    assert!(matches!(result[..], [Err(StoreError::NotFound)]));
    assert!(matches!(
        store.read_stream(&handle(1)),
        Err(StoreError::NotFound)
    ));
}

#[test]
fn two_appends_to_one_stream_in_one_batch_apply_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let results = store.append_batch(vec![
        append(1, 0, vec![created()]),
        append(2, 0, vec![created()]),
        append(1, 1, vec![item_put(7, 3), Event::SessionsRevoked]),
        append(1, 1, vec![Event::SessionsRevoked]),
        append(
            1,
            3,
            vec![Event::ItemDeleted {
                item_id: ItemId([7; 32]),
            }],
        ),
    ]);

    let versions: Vec<_> = results.iter().map(|r| r.as_ref().ok().copied()).collect();
    assert_eq!(versions, [Some(1), Some(1), Some(3), None, Some(4)]);
    let record = store.account(&handle(1)).unwrap().unwrap();
    assert_eq!((record.version, record.epoch), (4, 1));
    assert!(store.items(&handle(1)).unwrap().is_empty());

    let feed = store.feed(0, 100).unwrap();
    let order: Vec<_> = feed.iter().map(|e| (e.handle, e.version)).collect();
    assert_eq!(
        order,
        [
            (handle(1), 1),
            (handle(2), 1),
            (handle(1), 2),
            (handle(1), 3),
            (handle(1), 4)
        ]
    );
    assert!(feed.windows(2).all(|w| w[0].position < w[1].position));
}

#[test]
fn everything_appended_reads_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        append_one(
            &store,
            append(1, 0, vec![created(), item_put(2, 10), item_put(1, 4)]),
        );
    }
    let store = open(dir.path());
    let events = store.read_stream(&handle(1)).unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        store.read_event(&handle(1), 2).unwrap().event,
        item_put(2, 10)
    );

    let items = store.items(&handle(1)).unwrap();
    assert_eq!(
        items.iter().map(|i| i.item_id).collect::<Vec<_>>(),
        [ItemId([1; 32]), ItemId([2; 32])]
    );
    assert_eq!(
        store
            .item(&handle(1), &ItemId([2; 32]))
            .unwrap()
            .unwrap()
            .size,
        10
    );
    let head = store.feed(0, 10).unwrap().last().unwrap().position;

    append_one(&store, append(1, 3, vec![Event::SessionsRevoked]));
    assert!(store.feed(0, 10).unwrap().last().unwrap().position > head);
}

#[test]
fn no_stored_byte_contains_what_was_appended() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"plainly-visible-marker".to_vec();
    {
        let store = open(dir.path());
        let event = Event::ProfileReplaced {
            sealed_profile: marker.clone(),
        };
        append_one(&store, append(1, 0, vec![created(), event]));
    }
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(entry).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_slice()));
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

#[test]
fn a_corrupted_envelope_fails_only_its_own_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append_one(&store, append(1, 0, vec![created(), item_put(1, 3)]));
    append_one(&store, append(2, 0, vec![created(), item_put(2, 3)]));
    store
        .tamper_with_envelope_for_tests(&handle(1), 2, |bytes| bytes[20] ^= 0x55)
        .unwrap();
    drop(store);

    let store = open(dir.path());
    assert!(matches!(
        store.read_stream(&handle(1)),
        Err(StoreError::Corrupt)
    ));
    assert!(matches!(
        store.read_event(&handle(1), 2),
        Err(StoreError::Corrupt)
    ));
    assert_eq!(store.read_stream(&handle(2)).unwrap().len(), 2);

    let report = store.rebuild().unwrap();
    assert_eq!(
        (report.corrupt_streams, report.accounts, report.events),
        (1, 1, 3)
    );
    assert!(store.account(&handle(1)).unwrap().is_none());
    assert!(store.items(&handle(1)).unwrap().is_empty());
    assert_eq!(store.items(&handle(2)).unwrap().len(), 1);
}

#[test]
fn a_truncated_envelope_is_corrupt_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append_one(&store, append(1, 0, vec![created()]));
    for len in [0, 1, 9, 20] {
        store
            .tamper_with_envelope_for_tests(&handle(1), 1, |bytes| bytes.truncate(len))
            .unwrap();
        assert!(matches!(
            store.read_stream(&handle(1)),
            Err(StoreError::Corrupt)
        ));
    }
}

#[test]
fn a_wrong_storage_key_opens_nothing_and_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        append_one(&store, append(1, 0, vec![created()]));
    }
    let wrong = FjallStore::open(dir.path(), StorageKey::from_bytes([0x43; 32]));
    assert!(matches!(wrong, Err(StoreError::Corrupt)));

    let store = FjallStore::open(dir.path(), storage_key()).unwrap();
    assert_eq!(store.read_stream(&handle(1)).unwrap().len(), 1);
}

#[test]
fn a_deleted_stream_leaves_nothing_behind_and_rebuild_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append_one(&store, append(1, 0, vec![created(), item_put(1, 3)]));
    append_one(&store, append(2, 0, vec![created()]));
    append_one(&store, append(1, 2, vec![item_put(2, 3)]));

    store.delete_stream(&handle(1)).unwrap();
    assert!(matches!(
        store.read_stream(&handle(1)),
        Err(StoreError::NotFound)
    ));
    assert!(store.account(&handle(1)).unwrap().is_none());
    assert!(store.items(&handle(1)).unwrap().is_empty());
    assert!(
        store
            .feed(0, 10)
            .unwrap()
            .iter()
            .all(|e| e.handle == handle(2))
    );
    assert_eq!(store.stats().unwrap().streams, 1);
    assert!(matches!(
        store.delete_stream(&handle(1)),
        Err(StoreError::NotFound)
    ));

    let live = store.projection_snapshot().unwrap();
    let report = store.rebuild().unwrap();
    assert_eq!(
        (report.accounts, report.events, report.corrupt_streams),
        (1, 1, 0)
    );
    assert_eq!(store.projection_snapshot().unwrap(), live);

    assert_eq!(append_one(&store, append(1, 0, vec![created()])), 1);
}

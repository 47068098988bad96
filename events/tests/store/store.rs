//! Appends, reads, conflicts, corruption and keys, against every store.

use blindfold_events::{Event, EventStore, ItemId, StorageKey, StoreError};

use crate::backend::{Backend, for_each_store};
use crate::{append, append_one, created, handle, item_put};

for_each_store!(
    an_append_with_a_stale_expected_version_is_a_conflict_and_writes_nothing,
    creating_an_existing_stream_is_a_conflict,
    a_stream_must_begin_with_its_creation,
    two_appends_to_one_stream_in_one_batch_apply_in_order,
    a_failed_append_in_a_batch_writes_nothing_and_the_others_commit,
    everything_appended_reads_back_after_reopening,
    no_stored_byte_contains_what_was_appended,
    a_corrupted_envelope_fails_only_its_own_stream,
    a_truncated_envelope_is_corrupt_not_a_panic,
    a_wrong_storage_key_opens_nothing_and_does_not_panic,
    a_deleted_stream_leaves_nothing_behind_and_rebuild_skips_it,
);

fn an_append_with_a_stale_expected_version_is_a_conflict_and_writes_nothing<B: Backend>(
    backend: B,
) {
    let store = backend.open();
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

fn creating_an_existing_stream_is_a_conflict<B: Backend>(backend: B) {
    let store = backend.open();
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

fn a_stream_must_begin_with_its_creation<B: Backend>(backend: B) {
    let store = backend.open();
    let result = store.append_batch(vec![append(1, 0, vec![Event::SessionsRevoked])]);
    assert!(matches!(result[..], [Err(StoreError::NotFound)]));
    assert!(matches!(
        store.read_stream(&handle(1)),
        Err(StoreError::NotFound)
    ));
}

fn two_appends_to_one_stream_in_one_batch_apply_in_order<B: Backend>(backend: B) {
    let store = backend.open();
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

fn a_failed_append_in_a_batch_writes_nothing_and_the_others_commit<B: Backend>(backend: B) {
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created()]));
    let results = store.append_batch(vec![
        append(1, 1, vec![item_put(1, 3)]),
        // Its first event is fine, its second cannot follow: none of it may be written.
        append(1, 2, vec![item_put(2, 3), created()]),
        append(2, 0, vec![created(), item_put(3, 3)]),
    ]);

    assert!(matches!(
        results[..],
        [Ok(2), Err(StoreError::Conflict { .. }), Ok(2)]
    ));
    assert_eq!(store.read_stream(&handle(1)).unwrap().len(), 2);
    let items: Vec<_> = store.items(&handle(1)).unwrap();
    assert_eq!(
        items.iter().map(|i| i.item_id).collect::<Vec<_>>(),
        [ItemId([1; 32])]
    );
    assert_eq!(store.account(&handle(2)).unwrap().unwrap().version, 2);
    assert_eq!(store.feed(0, 100).unwrap().len(), 4);
}

fn everything_appended_reads_back_after_reopening<B: Backend>(backend: B) {
    {
        let store = backend.open();
        append_one(
            &store,
            append(1, 0, vec![created(), item_put(2, 10), item_put(1, 4)]),
        );
    }
    let store = backend.open();
    let events = store.read_stream(&handle(1)).unwrap();
    assert_eq!(
        events.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        store.read_event(&handle(1), 2).unwrap().event,
        item_put(2, 10)
    );
    assert!(matches!(
        store.read_event(&handle(1), 4),
        Err(StoreError::NotFound)
    ));

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
    assert_eq!(store.stats().unwrap().events, 4);
}

fn no_stored_byte_contains_what_was_appended<B: Backend>(backend: B) {
    let marker = b"plainly-visible-marker".to_vec();
    {
        let store = backend.open();
        let event = Event::ProfileReplaced {
            sealed_profile: marker.clone(),
        };
        append_one(&store, append(1, 0, vec![created(), event]));
        append_one(&store, append(1, 2, vec![item_put(1, 3)]));
    }
    let stored = backend.stored_bytes();
    assert!(stored.len() > 1, "the store kept nothing");
    for bytes in stored {
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_slice()));
    }
}

fn a_corrupted_envelope_fails_only_its_own_stream<B: Backend>(backend: B) {
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created(), item_put(1, 3)]));
    append_one(&store, append(2, 0, vec![created(), item_put(2, 3)]));
    B::tamper(&store, &handle(1), 2, |bytes| bytes[20] ^= 0x55);
    drop(store);

    let store = backend.open();
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

fn a_truncated_envelope_is_corrupt_not_a_panic<B: Backend>(backend: B) {
    let store = backend.open();
    append_one(&store, append(1, 0, vec![created()]));
    let truncations: [fn(&mut Vec<u8>); 4] = [
        |bytes| bytes.truncate(20),
        |bytes| bytes.truncate(9),
        |bytes| bytes.truncate(1),
        |bytes| bytes.truncate(0),
    ];
    for truncate in truncations {
        B::tamper(&store, &handle(1), 1, truncate);
        assert!(matches!(
            store.read_stream(&handle(1)),
            Err(StoreError::Corrupt)
        ));
    }
}

fn a_wrong_storage_key_opens_nothing_and_does_not_panic<B: Backend>(backend: B) {
    {
        let store = backend.open();
        append_one(&store, append(1, 0, vec![created()]));
    }
    let wrong = backend.open_with(StorageKey::from_bytes([0x43; 32]));
    assert!(matches!(wrong, Err(StoreError::Corrupt)));

    let store = backend.open();
    assert_eq!(store.read_stream(&handle(1)).unwrap().len(), 1);
}

fn a_deleted_stream_leaves_nothing_behind_and_rebuild_skips_it<B: Backend>(backend: B) {
    let store = backend.open();
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

    let live = B::snapshot(&store);
    let report = store.rebuild().unwrap();
    assert_eq!(
        (report.accounts, report.events, report.corrupt_streams),
        (1, 1, 0)
    );
    assert_eq!(B::snapshot(&store), live);

    assert_eq!(append_one(&store, append(1, 0, vec![created()])), 1);
}

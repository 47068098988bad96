//! A SIGKILL in the middle of concurrent appends loses no acknowledged append and tears no
//! event. The test binary runs itself again as the child that gets killed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use blindfold_events::{Event, EventStore, FjallStore, StoreError};

use crate::{append, created, handle, item_put, open};

/// Set in the child's environment to the store directory; its absence makes the child a no-op.
const CHILD_DIR: &str = "BLINDFOLD_EVENTS_CRASH_CHILD_DIR";
const WRITERS: u8 = 8;
const STREAMS_PER_WRITER: u8 = 4;
const ROUNDS: usize = 6;

#[test]
fn child_appends_until_killed() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let store = std::sync::Arc::new(open(Path::new(&dir)));
    println!("ready");

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            std::thread::spawn(move || append_until_killed(&store, writer))
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
}

/// Appends to this writer's own streams, two streams per call, and prints each acknowledged
/// `(stream, version)` once `append_batch` has returned it.
fn append_until_killed(store: &FjallStore, writer: u8) {
    let first = 1 + writer * STREAMS_PER_WRITER;
    let mut versions = [0u64; STREAMS_PER_WRITER as usize];
    let deadline = Instant::now() + Duration::from_secs(20);

    for round in 0u64.. {
        if Instant::now() > deadline {
            return;
        }
        let picks = [
            round as usize % versions.len(),
            (round as usize + 1) % versions.len(),
        ];
        let appends = picks
            .iter()
            .map(|&i| {
                let events = match (versions[i], round % 3) {
                    (0, _) => vec![created(), item_put(1, 10)],
                    (_, 0) => vec![Event::SessionsRevoked],
                    _ => vec![item_put((round % 5) as u8, round % 100), item_put(9, 1)],
                };
                append(first + i as u8, versions[i], events)
            })
            .collect();

        for (&i, result) in picks.iter().zip(store.append_batch(appends)) {
            let version = result.unwrap();
            versions[i] = version;
            println!("ack {} {version}", first + i as u8);
        }
    }
}

#[test]
fn every_acknowledged_append_survives_a_sigkill() {
    let exe = std::env::current_exe().unwrap();
    let mut total_acks = 0;
    for _ in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let acks = run_child_and_kill(&exe, dir.path());
        total_acks += acks.len();
        check_after_crash(&open(dir.path()), &acks);
    }
    assert!(total_acks > 0, "the child never acknowledged an append");
}

/// Runs the child, kills it after a random short time, and returns the highest acknowledged
/// version of each stream.
fn run_child_and_kill(exe: &Path, dir: &Path) -> BTreeMap<u8, u64> {
    let mut child = Command::new(exe)
        .args([
            "crash::child_appends_until_killed",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.ends_with("ready") {
                let _ = ready_tx.send(());
            }
            lines.push(line);
        }
        lines
    });

    ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_millis(50 + random_below(500)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut acks = BTreeMap::new();
    for line in reader.join().unwrap() {
        // A line torn by the kill does not parse and is not an acknowledgement.
        let mut words = line.split(' ');
        if let (Some("ack"), Some(stream), Some(version), None) =
            (words.next(), words.next(), words.next(), words.next())
            && let (Ok(stream), Ok(version)) = (stream.parse::<u8>(), version.parse::<u64>())
        {
            let highest = acks.entry(stream).or_insert(0);
            *highest = version.max(*highest);
        }
    }
    acks
}

fn check_after_crash(store: &FjallStore, acks: &BTreeMap<u8, u64>) {
    for stream in 1..=WRITERS * STREAMS_PER_WRITER {
        let acked = acks.get(&stream).copied().unwrap_or(0);
        match store.read_stream(&handle(stream)) {
            Ok(events) => {
                assert!(
                    events.len() as u64 >= acked,
                    "an acknowledged append was lost"
                );
                let record = store.account(&handle(stream)).unwrap().unwrap();
                assert_eq!(
                    record.version,
                    events.len() as u64,
                    "projection and log disagree"
                );
            }
            Err(StoreError::NotFound) => assert_eq!(acked, 0, "an acknowledged stream was lost"),
            Err(error) => panic!("a stream did not read back after the crash: {error}"),
        }
    }

    let live = store.projection_snapshot().unwrap();
    let report = store.rebuild().unwrap();
    assert_eq!(report.corrupt_streams, 0);
    assert_eq!(store.projection_snapshot().unwrap(), live);
}

fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % bound
}

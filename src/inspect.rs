//! `blindfold inspect`: what an operator holding every key can learn from the data directory.
//!
//! It reports counts, sizes on disk, and for each account an opaque tag (a short hash of its
//! handle) with the kinds and times of its events. That is everything the store reveals without
//! a user's password; this command must never print a handle, a sealed byte, or anything opened
//! under a user key, and it never writes to the data directory.

use std::fmt;
use std::path::Path;

use blindfold_events::{EventStore, Handle, StoreError, StoreStats};
use sha2::{Digest, Sha256};

use crate::operator::{self, OperatorError, StoreArgs};

/// Feed entries read per page while listing accounts.
const FEED_PAGE: usize = 1024;

/// Hex digits of an account tag: enough to tell accounts apart in one report, too few to serve
/// as the handle.
const TAG_HEX_DIGITS: usize = 12;

/// What the operator sees: counts, sizes and, per account, the kinds and times of its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The store's own counts and size.
    pub stats: StoreStats,
    /// Bytes of every file under the data directory (the embedded store only).
    pub directory_bytes: Option<u64>,
    /// One entry per account, in the order their first event entered the feed.
    pub accounts: Vec<AccountView>,
}

/// One account as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountView {
    /// A short hash of the handle; never the handle itself.
    pub tag: String,
    /// Each event's kind and Unix time, in stream order.
    pub events: Vec<(&'static str, u64)>,
}

/// `blindfold inspect`: prints the [`Inspection`] of the data directory. Refuses to create a
/// keyring or a data directory that is not there.
pub fn run(args: StoreArgs) -> Result<(), OperatorError> {
    if args.store_url.is_none() && !args.data.is_dir() {
        return Err(OperatorError::Store("no data directory there".into()));
    }
    if std::env::var_os("BLINDFOLD_MASTER_KEY").is_none() && !args.keyring.is_file() {
        return Err(OperatorError::Keyring("no keyring there".into()));
    }
    let keys = operator::load_keys(&args)?;
    let store = operator::open_store(&args, &keys)?;
    let data = matches!(store, operator::OpenedStore::Embedded(_)).then_some(args.data.as_path());
    let inspection =
        inspect(&*store.events(), data).map_err(|e| OperatorError::Store(e.to_string()))?;
    print!("{inspection}");
    Ok(())
}

/// Reads what an operator may see from `store`, whose files (if it keeps them itself) are under
/// `data`.
pub fn inspect(store: &dyn EventStore, data: Option<&Path>) -> Result<Inspection, StoreError> {
    let stats = store.stats()?;
    let accounts = handles_in_feed(store)?
        .iter()
        .map(|handle| account_view(store, handle))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Inspection {
        stats,
        directory_bytes: data.map(directory_bytes),
        accounts,
    })
}

/// Every handle in the feed, once, in the order of its first event.
fn handles_in_feed(store: &dyn EventStore) -> Result<Vec<Handle>, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut handles = Vec::new();
    let mut from = 0;
    loop {
        let page = store.feed(from, FEED_PAGE)?;
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for entry in page {
            if seen.insert(entry.handle) {
                handles.push(entry.handle);
            }
        }
    }
    Ok(handles)
}

/// One account's tag and the kinds and times of its events.
fn account_view(store: &dyn EventStore, handle: &Handle) -> Result<AccountView, StoreError> {
    let events = match store.read_stream(handle) {
        Ok(events) => events.iter().map(|e| (e.event.kind(), e.at)).collect(),
        // A deleted stream leaves no events behind; it shows as an account with none.
        Err(StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(AccountView {
        tag: tag(handle),
        events,
    })
}

/// A short hash of the handle, for telling accounts apart in a report.
pub fn tag(handle: &Handle) -> String {
    let digest = Sha256::new_with_prefix(b"blindfold/v1/inspect-tag")
        .chain_update(handle.0)
        .finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex.chars().take(TAG_HEX_DIGITS).collect()
}

/// Bytes of every regular file under `dir` (0 for what cannot be read).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            Ok(kind) if kind.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "accounts        {}", self.stats.streams)?;
        writeln!(f, "events          {}", self.stats.events)?;
        writeln!(f, "store on disk   {} bytes", self.stats.disk_bytes)?;
        if let Some(bytes) = self.directory_bytes {
            writeln!(f, "data directory  {bytes} bytes")?;
        }
        for account in &self.accounts {
            writeln!(f)?;
            writeln!(
                f,
                "account {} ({} events)",
                account.tag,
                account.events.len()
            )?;
            for (kind, at) in &account.events {
                writeln!(f, "  {}  {kind}", utc(*at))?;
            }
        }
        Ok(())
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn utc(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let seconds = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z")
}

/// Year, month and day of a count of days since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * shifted_month + 2) / 5 + 1) as u32;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn a_tag_is_short_and_differs_between_handles() {
        let a = tag(&Handle([1; 32]));
        assert_eq!(a.len(), TAG_HEX_DIGITS);
        assert_ne!(a, tag(&Handle([2; 32])));
    }
}

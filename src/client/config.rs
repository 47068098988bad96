//! The client's config directory: the device key and the stored session.
//!
//! ```text
//! $XDG_CONFIG_HOME/blindfold/     mode 0700
//!   device.key                    mode 0600  the device's private DPoP key
//!   session.json                  mode 0600  server URL, access token, expiries (unix seconds)
//! ```
//!
//! Every file is written whole or not at all: into a temporary file in the same directory with
//! mode 0600, fsync, then renamed over the old one (and the directory fsynced), so a crash leaves
//! either the old file or the new one. This module must never print or log what it stores, and
//! never read a private file that other users of the machine could have read or replaced.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::ClientError;

/// The file holding the device's private key.
pub(crate) const DEVICE_KEY_FILE: &str = "device.key";
/// The file holding the current session.
pub(crate) const SESSION_FILE: &str = "session.json";
/// An access token with fewer seconds than this left is refreshed before it is used.
pub(crate) const REFRESH_MARGIN_SECONDS: u64 = 60;

const DIRECTORY_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// The default config directory: `$XDG_CONFIG_HOME/blindfold`, else `$HOME/.config/blindfold`.
/// `XDG_CONFIG_HOME` counts only when it is an absolute path, as the XDG spec says.
pub(crate) fn default_config_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let xdg = env("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| {
        let home = env("HOME").map(PathBuf::from).filter(|p| p.is_absolute())?;
        Some(home.join(".config"))
    })?;
    Some(base.join("blindfold"))
}

/// An open config directory, created with mode 0700 if it did not exist.
#[derive(Debug)]
pub(crate) struct ConfigDir {
    path: PathBuf,
}

impl ConfigDir {
    /// Opens (creating if needed) the directory at `path`. An existing directory that other
    /// users could enter is tightened to 0700.
    pub(crate) fn open(path: PathBuf) -> Result<ConfigDir, ClientError> {
        DirBuilder::new()
            .recursive(true)
            .mode(DIRECTORY_MODE)
            .create(&path)
            .map_err(ClientError::file(&path))?;

        let mode = fs::metadata(&path)
            .map_err(ClientError::file(&path))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(&path, Permissions::from_mode(DIRECTORY_MODE))
                .map_err(ClientError::file(&path))?;
        }
        Ok(ConfigDir { path })
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The stored device key bytes, or, when there are none yet, the bytes `generate` makes,
    /// stored first. If another process stores a key at the same moment, its key wins and is
    /// returned, so every process ends up with the key on disk.
    pub(crate) fn device_key_bytes(
        &self,
        generate: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, ClientError>,
    ) -> Result<Zeroizing<Vec<u8>>, ClientError> {
        if let Some(bytes) = self.read_private(DEVICE_KEY_FILE)? {
            return Ok(bytes);
        }

        let fresh = generate()?;
        let stored = write_new(&self.path, DEVICE_KEY_FILE, &fresh)
            .map_err(ClientError::file(self.path.join(DEVICE_KEY_FILE)))?;
        if stored {
            return Ok(fresh);
        }
        self.read_private(DEVICE_KEY_FILE)?
            .ok_or_else(|| ClientError::DeviceKey {
                path: self.path.join(DEVICE_KEY_FILE),
            })
    }

    /// The stored session, or `None` when there is none.
    pub(crate) fn load_session(&self) -> Result<Option<Session>, ClientError> {
        let Some(bytes) = self.read_private(SESSION_FILE)? else {
            return Ok(None);
        };
        let stored: StoredSession = serde_json::from_slice(&bytes).map_err(|_| {
            ClientError::Usage(format!(
                "{} is damaged; remove it and log in again",
                self.path.join(SESSION_FILE).display()
            ))
        })?;
        Ok(Some(Session {
            server: stored.server,
            access_token: Zeroizing::new(stored.access_token),
            expires_at: stored.expires_at,
            session_expires_at: stored.session_expires_at,
        }))
    }

    /// Replaces the stored session with `session`, atomically.
    pub(crate) fn save_session(&self, session: &Session) -> Result<(), ClientError> {
        let stored = StoredSessionRef {
            server: &session.server,
            access_token: &session.access_token,
            expires_at: session.expires_at,
            session_expires_at: session.session_expires_at,
        };
        // Sized up front so the buffer holding the token is never reallocated (and so copied).
        let mut bytes = Zeroizing::new(Vec::with_capacity(256 + session.access_token.len()));
        serde_json::to_writer(&mut *bytes, &stored)
            .map_err(|_| ClientError::Protocol("the session cannot be encoded".into()))?;
        write_atomic(&self.path, SESSION_FILE, &bytes)
            .map_err(ClientError::file(self.path.join(SESSION_FILE)))
    }

    /// Removes the stored session; not having one is fine.
    pub(crate) fn remove_session(&self) -> Result<(), ClientError> {
        let path = self.path.join(SESSION_FILE);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ClientError::file(path)(e)),
            _ => Ok(()),
        }
    }

    /// Reads a private file whole, refusing it when other users could read or write it.
    fn read_private(&self, name: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ClientError> {
        let path = self.path.join(name);
        let mut file = match OpenOptions::new().read(true).open(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            opened => opened.map_err(ClientError::file(&path))?,
        };

        let metadata = file.metadata().map_err(ClientError::file(&path))?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ClientError::Permissions {
                path,
                mode,
                want: FILE_MODE,
            });
        }

        let mut bytes = Zeroizing::new(Vec::with_capacity(metadata.len() as usize + 1));
        file.read_to_end(&mut bytes)
            .map_err(ClientError::file(&path))?;
        Ok(Some(bytes))
    }
}

/// A logged-in session as the client keeps it. Its `Debug` never shows the token.
pub(crate) struct Session {
    /// The server URL the token was issued by.
    pub(crate) server: String,
    /// The DPoP-bound access token.
    pub(crate) access_token: Zeroizing<String>,
    /// When the access token expires, in unix seconds.
    pub(crate) expires_at: u64,
    /// When the session ends for good, in unix seconds; refreshing never extends it.
    pub(crate) session_expires_at: u64,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("server", &self.server)
            .field("access_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("session_expires_at", &self.session_expires_at)
            .finish()
    }
}

/// What to do with a stored session before using it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// The token has at least a minute left: use it.
    Fresh,
    /// The token has less than a minute left (or none): refresh it first.
    RefreshDue,
    /// The session's absolute expiry has passed: only a new login helps.
    Expired,
}

impl Session {
    /// Decides, at unix time `now`, whether the token can be used as it is.
    pub(crate) fn freshness(&self, now: u64) -> Freshness {
        if now >= self.session_expires_at {
            Freshness::Expired
        } else if self.expires_at.saturating_sub(now) < REFRESH_MARGIN_SECONDS {
            Freshness::RefreshDue
        } else {
            Freshness::Fresh
        }
    }
}

#[derive(Deserialize)]
struct StoredSession {
    server: String,
    access_token: String,
    expires_at: u64,
    session_expires_at: u64,
}

#[derive(Serialize)]
struct StoredSessionRef<'a> {
    server: &'a str,
    access_token: &'a str,
    expires_at: u64,
    session_expires_at: u64,
}

/// Writes `bytes` to `dir/name` atomically with mode 0600, replacing any old file.
///
/// Durability: the data and the rename are both fsynced before this returns, so a crash after
/// it returns keeps the new file; a crash before leaves the old one (and perhaps a stray
/// `.name.*.tmp` file, which is never read).
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = write_temporary(dir, name, bytes)?;
    if let Err(e) = fs::rename(&temporary, dir.join(name)) {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    sync_directory(dir)
}

/// Writes `bytes` to `dir/name` with mode 0600 only if no such file exists, atomically.
/// Returns `false`, writing nothing, when the file already exists.
pub(crate) fn write_new(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let temporary = write_temporary(dir, name, bytes)?;

    // IMPORTANT: a hard link, unlike a rename, fails when the target exists, so two processes
    // creating a device key at once cannot overwrite each other's.
    let linked = fs::hard_link(&temporary, dir.join(name));
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => sync_directory(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn write_temporary(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<PathBuf> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|_| io::Error::other("no randomness available"))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let temporary = dir.join(format!(".{name}.{suffix}.tmp"));

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&temporary)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(e);
    }
    Ok(temporary)
}

fn sync_directory(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn session(expires_at: u64, session_expires_at: u64) -> Session {
        Session {
            server: "http://127.0.0.1:8080".into(),
            access_token: Zeroizing::new("v1.secret-token".into()),
            expires_at,
            session_expires_at,
        }
    }

    #[test]
    fn a_new_config_directory_is_created_with_mode_0700() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("nested").join("blindfold");
        let config = ConfigDir::open(path.clone()).unwrap();
        assert_eq!(config.path(), path);
        assert_eq!(mode_of(&path), 0o700);
    }

    #[test]
    fn an_existing_config_directory_open_to_others_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        fs::set_permissions(root.path(), Permissions::from_mode(0o755)).unwrap();
        ConfigDir::open(root.path().to_path_buf()).unwrap();
        assert_eq!(mode_of(root.path()), 0o700);
    }

    #[test]
    fn the_device_key_is_made_once_with_mode_0600_and_then_reused() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        let first = config
            .device_key_bytes(|| Ok(Zeroizing::new(vec![1, 2, 3])))
            .unwrap();
        let second = config
            .device_key_bytes(|| panic!("a stored key must not be made again"))
            .unwrap();
        assert_eq!(*first, vec![1, 2, 3]);
        assert_eq!(*second, vec![1, 2, 3]);
        assert_eq!(mode_of(&root.path().join(DEVICE_KEY_FILE)), 0o600);
    }

    #[test]
    fn a_device_key_readable_by_others_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        let path = root.path().join(DEVICE_KEY_FILE);
        fs::write(&path, [7u8; 4]).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        let refused = config
            .device_key_bytes(|| Ok(Zeroizing::new(vec![1])))
            .unwrap_err();
        assert!(matches!(
            refused,
            ClientError::Permissions { mode: 0o644, .. }
        ));
    }

    #[test]
    fn a_key_created_by_another_process_first_is_the_one_kept() {
        let root = tempfile::tempdir().unwrap();
        assert!(write_new(root.path(), DEVICE_KEY_FILE, b"theirs").unwrap());
        assert!(!write_new(root.path(), DEVICE_KEY_FILE, b"ours").unwrap());
        assert_eq!(
            fs::read(root.path().join(DEVICE_KEY_FILE)).unwrap(),
            b"theirs"
        );
    }

    #[test]
    fn a_saved_session_reads_back_whole_with_mode_0600() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        assert!(config.load_session().unwrap().is_none());

        config.save_session(&session(1_000, 2_000)).unwrap();
        let loaded = config.load_session().unwrap().unwrap();
        assert_eq!(loaded.server, "http://127.0.0.1:8080");
        assert_eq!(loaded.access_token.as_str(), "v1.secret-token");
        assert_eq!(
            (loaded.expires_at, loaded.session_expires_at),
            (1_000, 2_000)
        );
        assert_eq!(mode_of(&root.path().join(SESSION_FILE)), 0o600);
    }

    #[test]
    fn an_atomic_write_replaces_the_file_and_leaves_no_temporary_behind() {
        let root = tempfile::tempdir().unwrap();
        write_atomic(root.path(), "f", b"old").unwrap();
        write_atomic(root.path(), "f", b"new").unwrap();
        assert_eq!(fs::read(root.path().join("f")).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("f")]);
    }

    #[test]
    fn an_atomic_write_into_a_missing_directory_fails_and_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert!(write_atomic(&root.path().join("absent"), "f", b"x").is_err());
        assert_eq!(fs::read_dir(root.path()).unwrap().count(), 0);
    }

    #[test]
    fn removing_a_session_that_is_not_there_succeeds() {
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        config.remove_session().unwrap();
        config.save_session(&session(1, 2)).unwrap();
        config.remove_session().unwrap();
        assert!(config.load_session().unwrap().is_none());
    }

    #[test]
    fn a_token_with_a_minute_or_more_left_is_used_as_it_is() {
        assert_eq!(session(1_060, 5_000).freshness(1_000), Freshness::Fresh);
    }

    #[test]
    fn a_token_with_less_than_a_minute_left_is_refreshed_first() {
        assert_eq!(
            session(1_059, 5_000).freshness(1_000),
            Freshness::RefreshDue
        );
    }

    #[test]
    fn an_expired_token_inside_its_session_is_refreshed() {
        assert_eq!(session(900, 5_000).freshness(1_000), Freshness::RefreshDue);
    }

    #[test]
    fn a_session_past_its_absolute_expiry_needs_a_new_login() {
        assert_eq!(session(6_000, 5_000).freshness(5_000), Freshness::Expired);
        assert_eq!(session(900, 950).freshness(1_000), Freshness::Expired);
    }

    #[test]
    fn a_session_debug_print_never_shows_the_token() {
        let printed = format!("{:?}", session(1, 2));
        assert!(!printed.contains("secret-token"));
    }

    #[test]
    fn the_default_directory_follows_xdg_config_home_then_home() {
        let env = |xdg: Option<&str>, home: Option<&str>| {
            let (xdg, home) = (xdg.map(OsString::from), home.map(OsString::from));
            default_config_dir(move |name| match name {
                "XDG_CONFIG_HOME" => xdg.clone(),
                "HOME" => home.clone(),
                _ => None,
            })
        };
        assert_eq!(
            env(Some("/x"), Some("/h")),
            Some(PathBuf::from("/x/blindfold"))
        );
        assert_eq!(
            env(Some("rel"), Some("/h")),
            Some(PathBuf::from("/h/.config/blindfold"))
        );
        assert_eq!(
            env(None, Some("/h")),
            Some(PathBuf::from("/h/.config/blindfold"))
        );
        assert_eq!(env(None, None), None);
    }
}

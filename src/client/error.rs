//! The ways a client command can fail, worded for the person at the terminal.
//!
//! A `ClientError` must never carry a password, recovery key, token or item value: its `Display`
//! goes straight to the terminal and its `Debug` may reach a log. The server's refusals keep the
//! stable problem `code` and `title` the server sent, nothing else from the response.

use std::fmt;
use std::path::PathBuf;

/// Why a client command failed. `Display` is one sentence fit to show the user; no variant holds
/// a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an RFC 9457 problem; `code` is its stable error code.
    #[error("server refused ({status} {code}): {title}")]
    Server {
        /// The HTTP status of the refusal.
        status: u16,
        /// The problem's stable machine-readable code, e.g. `invalid_credentials`.
        code: String,
        /// The problem's human-readable title.
        title: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("cannot reach the server at {server}: {reason}")]
    Unreachable {
        /// The server URL that was tried.
        server: String,
        /// What went wrong, without any request content.
        reason: String,
    },
    /// The server answered something this client does not understand.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// No session is stored for this server.
    #[error("not logged in to {server}; run `blindfold login USERNAME` first")]
    NotLoggedIn {
        /// The server URL the command was meant for.
        server: String,
    },
    /// The session's absolute expiry has passed, or the server would not renew it.
    #[error("session expired, log in again")]
    SessionExpired,
    /// A password or key was needed and no way to read it was available.
    #[error("no {what} given: set {variable}, pass --password-stdin, or run on a terminal")]
    MissingSecret {
        /// What was asked for, e.g. "password".
        what: &'static str,
        /// The environment variable that would have supplied it.
        variable: &'static str,
    },
    /// The command line or an input was not acceptable.
    #[error("{0}")]
    Usage(String),
    /// A local file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A private file is open to other users of this machine.
    #[error(
        "{} is open to other users (mode {mode:03o}); run `chmod {want:o}` on it",
        path.display()
    )]
    Permissions {
        /// The file or directory concerned.
        path: PathBuf,
        /// Its permission bits as found.
        mode: u32,
        /// The permission bits it should have.
        want: u32,
    },
    /// The stored device key cannot be read back as a key.
    #[error(
        "{} is not a valid device key; remove it to make a new one (and log in again)",
        path.display()
    )]
    DeviceKey {
        /// The device key file.
        path: PathBuf,
    },
}

/// The exit status classes of the client, so scripts can tell failures apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitClass {
    /// The server refused the request (exit status 1).
    Refused,
    /// The command line or an input was wrong, or a secret was missing (exit status 2).
    Usage,
    /// There is no usable session: log in (exit status 3).
    LoginNeeded,
    /// The server was unreachable or answered nonsense (exit status 4).
    Transport,
    /// A local file, directory or key is unusable (exit status 5).
    Local,
}

impl ExitClass {
    /// The process exit status for this class; never 0.
    pub fn code(self) -> u8 {
        match self {
            ExitClass::Refused => 1,
            ExitClass::Usage => 2,
            ExitClass::LoginNeeded => 3,
            ExitClass::Transport => 4,
            ExitClass::Local => 5,
        }
    }
}

impl fmt::Display for ExitClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl ClientError {
    /// Which class of failure this is; its `code()` is the process exit status to use.
    pub fn exit_class(&self) -> ExitClass {
        match self {
            ClientError::Server { .. } => ExitClass::Refused,
            ClientError::MissingSecret { .. } | ClientError::Usage(_) => ExitClass::Usage,
            ClientError::NotLoggedIn { .. } | ClientError::SessionExpired => ExitClass::LoginNeeded,
            ClientError::Unreachable { .. } | ClientError::Protocol(_) => ExitClass::Transport,
            ClientError::File { .. }
            | ClientError::Permissions { .. }
            | ClientError::DeviceKey { .. } => ExitClass::Local,
        }
    }

    pub(crate) fn file(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ClientError {
        let path = path.into();
        move |source| ClientError::File { path, source }
    }
}

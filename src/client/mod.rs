//! The `blindfold` command-line client: sign up, log in and keep secrets on a blindfold server,
//! in the manner of the `vault` CLI.
//!
//! ```text
//! blindfold [--server URL] [--config-dir DIR] [--password-stdin] <command>
//!   signup USERNAME [--email E] [--profile JSON]    login USERNAME [--totp CODE]
//!   whoami    logout-all    password    recover USERNAME [--totp CODE]
//!   items put NAME [FILE|-]    items get NAME [-o FILE]    items ls    items rm NAME
//!   totp enable    totp disable    backup-codes    security-log    delete-account --yes
//! ```
//!
//! The client holds a device key (DPoP, RFC 9449) and one session in its config directory; every
//! request is signed with the key, and tokens are refreshed before they run out. Passwords and
//! recovery keys come from `--password-stdin`, then `BLINDFOLD_PASSWORD`,
//! `BLINDFOLD_NEW_PASSWORD` or `BLINDFOLD_RECOVERY_KEY`, then a prompt without echo; one-time
//! and backup codes the same way, from `BLINDFOLD_TOTP`. This module must never print or log a
//! password, a token or the device key; the recovery key, the TOTP secret and the backup codes
//! are printed once, when the server makes them.

mod commands;
mod config;
mod device;
mod error;
mod http;
mod secrets;
#[cfg(test)]
mod testing;

use std::fmt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

pub use error::{ClientError, ExitClass};

/// Heading of the client's options in every `--help`. They are global, so they show under every
/// command, `serve` included; the heading says that the operator commands ignore them.
pub const CLIENT_OPTIONS_HEADING: &str = "Client options (ignored by serve, rebuild and inspect)";

/// Options every client command shares.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = CLIENT_OPTIONS_HEADING)]
pub struct ClientArgs {
    /// The blindfold server's public URL; proofs are signed for URLs under it.
    #[arg(
        long,
        global = true,
        env = "BLINDFOLD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,

    /// Where the device key and session live
    /// [default: $XDG_CONFIG_HOME/blindfold or $HOME/.config/blindfold].
    #[arg(long, global = true, env = "BLINDFOLD_CONFIG_DIR", value_name = "DIR")]
    pub config_dir: Option<PathBuf>,

    /// Read passwords and recovery keys from standard input, one a line, instead of the
    /// environment or a prompt.
    #[arg(long, global = true)]
    pub password_stdin: bool,
}

/// The client's commands. Each prints a short result and fails with a [`ClientError`].
#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Create an account and log in; prints the recovery key once.
    ///
    /// The password comes from --password-stdin, BLINDFOLD_PASSWORD or a prompt (typed twice).
    Signup {
        /// The account's username.
        username: String,
        /// An email address, kept (encrypted) in the profile as "email".
        #[arg(long)]
        email: Option<String>,
        /// The profile, a JSON object, kept encrypted.
        #[arg(long, value_name = "JSON")]
        profile: Option<String>,
    },
    /// Log in and keep the session for later commands.
    ///
    /// The password comes from --password-stdin, BLINDFOLD_PASSWORD or a prompt. When the
    /// account has TOTP turned on and --totp is not given, a code (one-time or backup) is asked
    /// for after the server demands it: the next stdin line, BLINDFOLD_TOTP or a prompt.
    Login {
        /// The account's username.
        username: String,
        /// The current one-time code or a backup code, when the account has TOTP turned on.
        #[arg(long, value_name = "CODE")]
        totp: Option<String>,
    },
    /// Show the logged-in account's username and profile.
    Whoami,
    /// Store, read, list and remove items (the account's secrets, raw bytes).
    #[command(subcommand)]
    Items(ItemsCommand),
    /// Log out on every device, this one included.
    LogoutAll,
    /// Change the password; other devices are logged out.
    ///
    /// With --password-stdin: the current password on the first line, the new one on the
    /// second. Otherwise BLINDFOLD_PASSWORD and BLINDFOLD_NEW_PASSWORD, or prompts.
    Password,
    /// Set a new password with the recovery key; prints the new recovery key once.
    ///
    /// With --password-stdin: the recovery key on the first line, the new password on the
    /// second. Otherwise BLINDFOLD_RECOVERY_KEY and BLINDFOLD_NEW_PASSWORD, or prompts.
    ///
    /// When the account has TOTP turned on and --totp is not given, a code (one-time or backup)
    /// is asked for after the server demands it: the third line with --password-stdin, else
    /// BLINDFOLD_TOTP or a prompt.
    Recover {
        /// The account's username.
        username: String,
        /// The current one-time code or a backup code, when the account has TOTP turned on.
        #[arg(long, value_name = "CODE")]
        totp: Option<String>,
    },
    /// Turn the second factor (TOTP) on or off.
    #[command(subcommand)]
    Totp(TotpCommand),
    /// Replace the backup codes with a new set and print it once; the old set stops working.
    ///
    /// Asks a current one-time code or a backup code (--password-stdin, BLINDFOLD_TOTP or a
    /// prompt).
    BackupCodes,
    /// Delete the account and everything in it, for good; needs --yes.
    ///
    /// Asks the password (--password-stdin, BLINDFOLD_PASSWORD or a prompt) and, when the
    /// account has TOTP turned on, a code (the next stdin line, BLINDFOLD_TOTP or a prompt).
    DeleteAccount {
        /// Confirm that the account, its profile and every item are to be destroyed.
        #[arg(long)]
        yes: bool,
    },
    /// Show the account's security log, newest first: time (UTC), event and device.
    SecurityLog,
}

/// The `totp` commands.
#[derive(Debug, clap::Subcommand)]
pub enum TotpCommand {
    /// Turn TOTP on: prints the secret and its otpauth URI, asks the authenticator's current
    /// code, and prints the backup codes once.
    ///
    /// The code comes from --password-stdin, BLINDFOLD_TOTP or a prompt.
    Enable,
    /// Turn TOTP off, the backup codes with it.
    ///
    /// Asks a current one-time code or a backup code (--password-stdin, BLINDFOLD_TOTP or a
    /// prompt).
    Disable,
}

/// The `items` commands.
#[derive(Debug, clap::Subcommand)]
pub enum ItemsCommand {
    /// Store an item's value, read from FILE or standard input.
    Put {
        /// The item's name.
        name: String,
        /// The file holding the value; `-` or nothing for standard input.
        file: Option<PathBuf>,
    },
    /// Write an item's value to standard output or a file.
    Get {
        /// The item's name.
        name: String,
        /// Write to this file (mode 0600) instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// List items: name, size and last update.
    Ls,
    /// Remove an item.
    Rm {
        /// The item's name.
        name: String,
    },
}

impl fmt::Debug for ClientCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCommand::Signup { .. } => f.write_str("Signup"),
            ClientCommand::Login { totp, .. } => f
                .debug_struct("Login")
                .field("totp", &totp.as_ref().map(|_| "…"))
                .finish(),
            ClientCommand::Whoami => f.write_str("Whoami"),
            ClientCommand::Items(items) => f.debug_tuple("Items").field(items).finish(),
            ClientCommand::LogoutAll => f.write_str("LogoutAll"),
            ClientCommand::Password => f.write_str("Password"),
            ClientCommand::Recover { totp, .. } => f
                .debug_struct("Recover")
                .field("totp", &totp.as_ref().map(|_| "…"))
                .finish(),
            ClientCommand::Totp(totp) => f.debug_tuple("Totp").field(totp).finish(),
            ClientCommand::BackupCodes => f.write_str("BackupCodes"),
            ClientCommand::DeleteAccount { yes } => {
                f.debug_struct("DeleteAccount").field("yes", yes).finish()
            }
            ClientCommand::SecurityLog => f.write_str("SecurityLog"),
        }
    }
}

/// Runs one client command against `args.server`, printing its result to standard output.
///
/// Makes the config directory (0700) and the device key (0600) on first use. On failure nothing
/// has been printed to standard output but what completed; the error's `Display` is the message
/// for the user and [`ClientError::exit_class`] the exit status.
pub async fn run(args: ClientArgs, command: ClientCommand) -> Result<(), ClientError> {
    let directory = match args.config_dir {
        Some(directory) => directory,
        None => config::default_config_dir(|name| std::env::var_os(name)).ok_or_else(|| {
            ClientError::Usage("no config directory: set --config-dir or HOME".into())
        })?,
    };
    let server = http::ServerUrl::parse(&args.server)?;
    let config = config::ConfigDir::open(directory)?;
    let key = device::load_or_create(&config)?;

    let clock: &dyn Fn() -> u64 = &unix_now;
    let mut ctx = commands::Context {
        api: http::Api::new(server, &key, clock)?,
        config,
        secrets: secrets::SecretSource::from_process(args.password_stdin),
        clock,
    };
    let stdout = std::io::stdout();
    commands::execute(&mut ctx, command, &mut stdout.lock()).await
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

//! What each client command does: the requests it sends, the session it keeps, what it prints.
//!
//! Results go to the given writer (standard output) as short human lines; an item's value goes
//! there raw. Nothing here prints a password, a token or the device key; the only secrets ever
//! printed are the ones the user must see once, right after the server made them: a fresh
//! recovery key, a TOTP secret being set up, and a new set of backup codes.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::config::{ConfigDir, Freshness, Session, write_atomic};
use super::error::ClientError;
use super::http::{Api, Body, Reply, TokenResponse, item_path};
use super::secrets::{SecretKind, SecretSource};
use super::{ClientCommand, ItemsCommand, TotpCommand};

/// The problem code a server uses when the request must carry a second factor.
const SECOND_FACTOR_REQUIRED: &str = "second_factor_required";
/// What a wrong code while turning TOTP on means and what to do about it.
const WRONG_SETUP_CODE: &str = "the code does not match the secret (is the app's clock right?); \
     TOTP stays off, run `blindfold totp enable` again";

/// Everything a command works with.
pub(crate) struct Context<'k> {
    pub(crate) api: Api<'k>,
    pub(crate) config: ConfigDir,
    pub(crate) secrets: SecretSource,
    pub(crate) clock: &'k dyn Fn() -> u64,
}

/// Runs one command, writing its result to `out`.
pub(crate) async fn execute(
    ctx: &mut Context<'_>,
    command: ClientCommand,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    match command {
        ClientCommand::Signup {
            username,
            email,
            profile,
        } => signup(ctx, &username, email, profile.as_deref(), out).await,
        ClientCommand::Login { username, totp } => login(ctx, &username, totp, out).await,
        ClientCommand::Whoami => whoami(ctx, out).await,
        ClientCommand::Items(ItemsCommand::Put { name, file }) => {
            put_item(ctx, &name, file.as_deref(), out).await
        }
        ClientCommand::Items(ItemsCommand::Get { name, output }) => {
            get_item(ctx, &name, output.as_deref(), out).await
        }
        ClientCommand::Items(ItemsCommand::Ls) => list_items(ctx, out).await,
        ClientCommand::Items(ItemsCommand::Rm { name }) => remove_item(ctx, &name, out).await,
        ClientCommand::LogoutAll => logout_all(ctx, out).await,
        ClientCommand::Password => change_password(ctx, out).await,
        ClientCommand::Recover { username, totp } => recover(ctx, &username, totp, out).await,
        ClientCommand::Totp(TotpCommand::Enable) => enable_totp(ctx, out).await,
        ClientCommand::Totp(TotpCommand::Disable) => disable_totp(ctx, out).await,
        ClientCommand::BackupCodes => replace_backup_codes(ctx, out).await,
        ClientCommand::DeleteAccount { yes } => delete_account(ctx, yes, out).await,
        ClientCommand::SecurityLog => security_log(ctx, out).await,
    }
}

#[derive(Serialize)]
struct SignupRequest<'a> {
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a Map<String, Value>>,
}

async fn signup(
    ctx: &mut Context<'_>,
    username: &str,
    email: Option<String>,
    profile: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let profile = build_profile(email, profile)?;
    let password = ctx.secrets.read(SecretKind::ChosenPassword)?;

    let request = SignupRequest {
        username,
        password: &password,
        profile: profile.as_ref(),
    };
    let reply = ctx
        .api
        .call(Method::POST, "/v1/accounts", None, &json_body(&request)?)
        .await?;
    let tokens = TokenResponse::parse(&reply.body)?;
    store_session(ctx, &tokens)?;

    say(
        out,
        format_args!("account created; logged in as {username}"),
    )?;
    show_recovery_key(out, tokens.recovery_key.as_deref().map(String::as_str))
}

#[derive(Serialize)]
struct LoginRequest<'a> {
    username: &'a str,
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    totp: Option<&'a str>,
}

async fn login(
    ctx: &mut Context<'_>,
    username: &str,
    totp: Option<String>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let password = ctx.secrets.read(SecretKind::Password)?;
    let given = totp.map(Zeroizing::new);

    let request = |totp: Option<&str>| {
        json_body(&LoginRequest {
            username,
            password: &password,
            totp,
        })
    };
    let reply =
        send_with_second_factor(ctx, Method::POST, "/v1/sessions", None, given, request).await?;
    store_session(ctx, &TokenResponse::parse(&reply.body)?)?;
    say(out, format_args!("logged in as {username}"))
}

#[derive(Deserialize)]
struct Me {
    username: String,
    #[serde(default)]
    profile: Value,
}

async fn whoami(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let reply = ctx
        .api
        .call(Method::GET, "/v1/me", Some(&token), &Body::Empty)
        .await?;
    let me: Me = serde_json::from_slice(&reply.body)
        .map_err(|_| ClientError::Protocol("the account answer is not readable".into()))?;

    let profile = match &me.profile {
        Value::Null => "{}".to_string(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    say(
        out,
        format_args!("username: {}\nprofile: {profile}", me.username),
    )
}

async fn put_item(
    ctx: &mut Context<'_>,
    name: &str,
    file: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = item_path(name)?;
    let value = read_value(file)?;
    let size = value.len();

    let token = access_token(ctx).await?;
    ctx.api
        .call(Method::PUT, &path, Some(&token), &Body::Bytes(value))
        .await?;
    say(
        out,
        format_args!("stored {} ({size} bytes)", printable_name(name)),
    )
}

async fn get_item(
    ctx: &mut Context<'_>,
    name: &str,
    output: Option<&Path>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = item_path(name)?;
    let token = access_token(ctx).await?;
    let reply = ctx
        .api
        .call(Method::GET, &path, Some(&token), &Body::Empty)
        .await?;

    let Some(output) = output else {
        let stdout_failed = |e| ClientError::file("<stdout>")(e);
        return out
            .write_all(&reply.body)
            .and_then(|()| out.flush())
            .map_err(stdout_failed);
    };
    write_value(output, &reply.body)?;
    say(
        out,
        format_args!("wrote {} bytes to {}", reply.body.len(), output.display()),
    )
}

#[derive(Deserialize)]
struct ItemList {
    items: Vec<ItemEntry>,
}

#[derive(Deserialize)]
struct ItemEntry {
    name: String,
    size: u64,
    #[serde(default)]
    updated_at: Value,
}

async fn list_items(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let reply = ctx
        .api
        .call(Method::GET, "/v1/me/items", Some(&token), &Body::Empty)
        .await?;
    let list: ItemList = serde_json::from_slice(&reply.body)
        .map_err(|_| ClientError::Protocol("the item list is not readable".into()))?;
    say(out, format_args!("{}", item_table(&list.items)))
}

async fn remove_item(
    ctx: &mut Context<'_>,
    name: &str,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let path = item_path(name)?;
    let token = access_token(ctx).await?;
    ctx.api
        .call(Method::DELETE, &path, Some(&token), &Body::Empty)
        .await?;
    say(out, format_args!("removed {}", printable_name(name)))
}

async fn logout_all(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    ctx.api
        .call(Method::DELETE, "/v1/sessions", Some(&token), &Body::Empty)
        .await?;
    ctx.config.remove_session()?;
    say(out, format_args!("logged out on every device"))
}

#[derive(Serialize)]
struct PasswordChange<'a> {
    current_password: &'a str,
    new_password: &'a str,
}

async fn change_password(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let current = ctx.secrets.read(SecretKind::Password)?;
    let new = ctx.secrets.read(SecretKind::NewPassword)?;
    let token = access_token(ctx).await?;

    let request = PasswordChange {
        current_password: &current,
        new_password: &new,
    };
    let body = json_body(&request)?;
    let reply = ctx
        .api
        .call(Method::PUT, "/v1/me/password", Some(&token), &body)
        .await?;
    store_session(ctx, &TokenResponse::parse(&reply.body)?)?;
    say(
        out,
        format_args!("password changed; every other device is logged out"),
    )
}

#[derive(Serialize)]
struct RecoveryRequest<'a> {
    username: &'a str,
    recovery_key: &'a str,
    new_password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    totp: Option<&'a str>,
}

async fn recover(
    ctx: &mut Context<'_>,
    username: &str,
    totp: Option<String>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let recovery_key = ctx.secrets.read(SecretKind::RecoveryKey)?;
    let new_password = ctx.secrets.read(SecretKind::NewPassword)?;
    let given = totp.map(Zeroizing::new);

    let request = |totp: Option<&str>| {
        json_body(&RecoveryRequest {
            username,
            recovery_key: recovery_key.trim(),
            new_password: &new_password,
            totp,
        })
    };
    let reply =
        send_with_second_factor(ctx, Method::POST, "/v1/recovery", None, given, request).await?;
    let tokens = TokenResponse::parse(&reply.body)?;
    store_session(ctx, &tokens)?;

    say(
        out,
        format_args!(
            "password reset; logged in as {username}; the old recovery key no longer works"
        ),
    )?;
    show_recovery_key(out, tokens.recovery_key.as_deref().map(String::as_str))
}

/// The answer to `POST /v1/me/totp`: a TOTP secret not yet in force.
#[derive(Deserialize)]
struct TotpEnrollmentWire {
    secret: String,
    otpauth_uri: String,
    enrollment: String,
}

/// A TOTP secret being set up, wiped when dropped; `enrollment` is the server's sealed copy.
struct TotpEnrollment {
    secret: Zeroizing<String>,
    otpauth_uri: Zeroizing<String>,
    enrollment: String,
}

impl TotpEnrollment {
    fn parse(body: &[u8]) -> Result<TotpEnrollment, ClientError> {
        let wire: TotpEnrollmentWire = serde_json::from_slice(body)
            .map_err(|_| ClientError::Protocol("the TOTP set-up answer is not readable".into()))?;
        Ok(TotpEnrollment {
            secret: Zeroizing::new(wire.secret),
            otpauth_uri: Zeroizing::new(wire.otpauth_uri),
            enrollment: wire.enrollment,
        })
    }
}

#[derive(Serialize)]
struct TotpConfirmation<'a> {
    enrollment: &'a str,
    code: &'a str,
}

#[derive(Serialize)]
struct CodeRequest<'a> {
    code: &'a str,
}

/// A new set of backup codes, wiped when dropped.
struct BackupCodes(Zeroizing<Vec<String>>);

#[derive(Deserialize)]
struct BackupCodesWire {
    backup_codes: Vec<String>,
}

impl BackupCodes {
    /// Reads a `{backup_codes}` answer; an empty set is refused, since it could never be used.
    fn parse(body: &[u8]) -> Result<BackupCodes, ClientError> {
        let wire: BackupCodesWire = serde_json::from_slice(body)
            .map_err(|_| ClientError::Protocol("the backup codes are not readable".into()))?;
        let codes = Zeroizing::new(wire.backup_codes);
        if codes.is_empty() {
            return Err(ClientError::Protocol(
                "the server sent no backup codes".into(),
            ));
        }
        Ok(BackupCodes(codes))
    }
}

async fn enable_totp(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let begun = ctx
        .api
        .call(Method::POST, "/v1/me/totp", Some(&token), &Body::Empty)
        .await
        .map_err(|e| retitled(e, "conflict", "TOTP is already on for this account"))?;
    let begun = TotpEnrollment::parse(&begun.body)?;
    say(
        out,
        format_args!(
            "TOTP secret: {}\notpauth URI: {}\n\n\
             Add the secret to an authenticator app (type it in, or make a QR code of the URI),\n\
             then give the six-digit code the app shows.",
            begun.secret.as_str(),
            begun.otpauth_uri.as_str()
        ),
    )?;
    out.flush().map_err(ClientError::file("<stdout>"))?;

    let code = ctx.secrets.read(SecretKind::SecondFactor)?;
    // Setting up the app may take longer than the token has left.
    let token = access_token(ctx).await?;
    let request = TotpConfirmation {
        enrollment: &begun.enrollment,
        code: code.trim(),
    };
    let body = json_body(&request)?;
    let reply = ctx
        .api
        .call(Method::POST, "/v1/me/totp/confirm", Some(&token), &body)
        .await
        .map_err(|e| retitled(e, "invalid_second_factor", WRONG_SETUP_CODE))?;
    let codes = BackupCodes::parse(&reply.body)?;

    say(
        out,
        format_args!("\nTOTP is on: logging in now takes a code from the app as well."),
    )?;
    show_backup_codes(out, &codes)
}

async fn disable_totp(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let code = ctx.secrets.read(SecretKind::SecondFactor)?;

    let body = json_body(&CodeRequest { code: code.trim() })?;
    ctx.api
        .call(Method::DELETE, "/v1/me/totp", Some(&token), &body)
        .await
        .map_err(|e| retitled(e, "not_found", "TOTP is not on for this account"))?;
    say(
        out,
        format_args!("TOTP is off; the backup codes no longer work"),
    )
}

async fn replace_backup_codes(
    ctx: &mut Context<'_>,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let code = ctx.secrets.read(SecretKind::SecondFactor)?;

    let body = json_body(&CodeRequest { code: code.trim() })?;
    let reply = ctx
        .api
        .call(Method::POST, "/v1/me/backup-codes", Some(&token), &body)
        .await?;
    let codes = BackupCodes::parse(&reply.body)?;
    say(
        out,
        format_args!("new backup codes made; the old ones no longer work"),
    )?;
    show_backup_codes(out, &codes)
}

#[derive(Serialize)]
struct DeleteAccountRequest<'a> {
    password: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    totp: Option<&'a str>,
}

async fn delete_account(
    ctx: &mut Context<'_>,
    yes: bool,
    out: &mut dyn Write,
) -> Result<(), ClientError> {
    if !yes {
        return Err(ClientError::Usage(
            "deleting the account cannot be undone: the profile, every item and the recovery \
             key become unreadable for good, on every device. Run `blindfold delete-account \
             --yes` to go ahead"
                .into(),
        ));
    }
    let token = access_token(ctx).await?;
    let password = ctx.secrets.read(SecretKind::Password)?;

    let request = |totp: Option<&str>| {
        json_body(&DeleteAccountRequest {
            password: &password,
            totp,
        })
    };
    send_with_second_factor(ctx, Method::DELETE, "/v1/me", Some(&token), None, request).await?;
    ctx.config.remove_session()?;
    say(
        out,
        format_args!(
            "account deleted; nobody can read its data any more. The local session is removed \
             (the device key is kept)."
        ),
    )
}

#[derive(Deserialize)]
struct SecurityLog {
    entries: Vec<SecurityEntry>,
}

#[derive(Deserialize)]
struct SecurityEntry {
    #[serde(default)]
    at: Value,
    event: String,
    #[serde(default)]
    device: String,
}

async fn security_log(ctx: &mut Context<'_>, out: &mut dyn Write) -> Result<(), ClientError> {
    let token = access_token(ctx).await?;
    let reply = ctx
        .api
        .call(
            Method::GET,
            "/v1/me/security-log",
            Some(&token),
            &Body::Empty,
        )
        .await?;
    let log: SecurityLog = serde_json::from_slice(&reply.body)
        .map_err(|_| ClientError::Protocol("the security log is not readable".into()))?;
    say(out, format_args!("{}", security_table(&log.entries)))
}

/// Sends a request whose body may carry a second factor (`build` makes the body with or without
/// one). A code given up front goes with the first request. Otherwise the request goes without
/// one and, only when the server answers `second_factor_required`, once more with a code read
/// from the user.
async fn send_with_second_factor(
    ctx: &mut Context<'_>,
    method: Method,
    path: &str,
    access_token: Option<&str>,
    given: Option<Zeroizing<String>>,
    build: impl Fn(Option<&str>) -> Result<Body, ClientError>,
) -> Result<Reply, ClientError> {
    if let Some(code) = given {
        let body = build(Some(code.trim()))?;
        return ctx.api.call(method, path, access_token, &body).await;
    }

    let first = ctx
        .api
        .call(method.clone(), path, access_token, &build(None)?)
        .await;
    match first {
        Err(ClientError::Server { ref code, .. }) if code == SECOND_FACTOR_REQUIRED => {
            let code = ctx.secrets.read(SecretKind::SecondFactor)?;
            let body = build(Some(code.trim()))?;
            ctx.api.call(method, path, access_token, &body).await
        }
        other => other,
    }
}

/// A server refusal with problem code `code` given a title that names its cause in this
/// command; every other error unchanged.
fn retitled(error: ClientError, code: &str, title: &str) -> ClientError {
    match error {
        ClientError::Server {
            status,
            code: refused,
            ..
        } if refused == code => ClientError::Server {
            status,
            code: refused,
            title: title.into(),
        },
        other => other,
    }
}

/// The stored token for this server, refreshed first when less than a minute is left.
async fn access_token(ctx: &mut Context<'_>) -> Result<Zeroizing<String>, ClientError> {
    let server = ctx.api.server().as_str().to_string();
    let session = ctx.config.load_session()?.filter(|s| s.server == server);
    let Some(session) = session else {
        return Err(ClientError::NotLoggedIn { server });
    };

    match session.freshness((ctx.clock)()) {
        Freshness::Fresh => Ok(session.access_token),
        Freshness::Expired => Err(ClientError::SessionExpired),
        Freshness::RefreshDue => refresh(ctx, &session).await,
    }
}

async fn refresh(
    ctx: &mut Context<'_>,
    session: &Session,
) -> Result<Zeroizing<String>, ClientError> {
    let old = Some(session.access_token.as_str());
    let reply = match ctx
        .api
        .call(Method::POST, "/v1/sessions/refresh", old, &Body::Empty)
        .await
    {
        Err(ClientError::Server { status: 401, .. }) => return Err(ClientError::SessionExpired),
        other => other?,
    };
    let tokens = TokenResponse::parse(&reply.body)?;
    let renewed = store_session(ctx, &tokens)?;
    Ok(renewed.access_token)
}

/// Stores the session a token answer starts (or continues) and returns it.
fn store_session(ctx: &Context<'_>, tokens: &TokenResponse) -> Result<Session, ClientError> {
    let now = (ctx.clock)();
    let session = Session {
        server: ctx.api.server().as_str().to_string(),
        access_token: tokens.access_token.clone(),
        expires_at: now.saturating_add(tokens.expires_in),
        session_expires_at: now.saturating_add(tokens.session_expires_in),
    };
    ctx.config.save_session(&session)?;
    Ok(session)
}

/// The profile to send at sign-up: the `--profile` object, with `--email` set as "email".
pub(crate) fn build_profile(
    email: Option<String>,
    profile: Option<&str>,
) -> Result<Option<Map<String, Value>>, ClientError> {
    let mut object = match profile {
        None => None,
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(object)) => Some(object),
            _ => return Err(ClientError::Usage("--profile must be a JSON object".into())),
        },
    };
    if let Some(email) = email {
        object
            .get_or_insert_with(Map::new)
            .insert("email".into(), Value::String(email));
    }
    Ok(object)
}

fn json_body<T: Serialize>(value: &T) -> Result<Body, ClientError> {
    // Sized up front so a buffer holding a password is not reallocated (and so copied) while
    // it is written.
    let mut bytes = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *bytes, value)
        .map_err(|_| ClientError::Usage("the request cannot be encoded".into()))?;
    Ok(Body::Json(bytes))
}

/// The value to store: the file's bytes, or standard input's when the file is absent or `-`.
fn read_value(file: Option<&Path>) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let mut value = Zeroizing::new(Vec::new());
    match file {
        None => read_all(io::stdin().lock(), &mut value, Path::new("<stdin>"))?,
        Some(path) if path == Path::new("-") => {
            read_all(io::stdin().lock(), &mut value, Path::new("<stdin>"))?
        }
        Some(path) => {
            let file = fs::File::open(path).map_err(ClientError::file(path))?;
            read_all(file, &mut value, path)?
        }
    }
    Ok(value)
}

/// The largest value the client reads before refusing (the server's default item limit; a
/// server configured higher still gets at most this much from the CLI).
const MAX_VALUE_BYTES: u64 = 1024 * 1024;

fn read_all(from: impl Read, into: &mut Vec<u8>, path: &Path) -> Result<(), ClientError> {
    // Read one byte past the limit, so an endless source (`/dev/zero`) stops at once.
    from.take(MAX_VALUE_BYTES + 1)
        .read_to_end(into)
        .map_err(ClientError::file(path))?;
    if into.len() as u64 > MAX_VALUE_BYTES {
        return Err(ClientError::Usage(format!(
            "{} is larger than the {} KiB an item may hold",
            path.display(),
            MAX_VALUE_BYTES / 1024
        )));
    }
    Ok(())
}

/// Writes an item's value to `path` atomically with mode 0600: it may be a secret.
fn write_value(path: &Path, value: &[u8]) -> Result<(), ClientError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ClientError::Usage(format!("{} is not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    write_atomic(&dir, name, value).map_err(ClientError::file(path))
}

fn show_recovery_key(out: &mut dyn Write, key: Option<&str>) -> Result<(), ClientError> {
    let Some(key) = key else {
        return Err(ClientError::Protocol(
            "the server sent no recovery key".into(),
        ));
    };
    say(
        out,
        format_args!(
            "\nRecovery key:\n\n    {key}\n\n\
             Write it down and keep it somewhere safe, offline. It is shown only this once,\n\
             and without it a forgotten password means the account's data is lost for good."
        ),
    )
}

fn show_backup_codes(out: &mut dyn Write, codes: &BackupCodes) -> Result<(), ClientError> {
    let mut listed = Zeroizing::new(String::new());
    for code in codes.0.iter() {
        listed.push_str("\n    ");
        listed.push_str(code);
    }
    say(
        out,
        format_args!(
            "\nBackup codes (each works once, in place of a code from the app):\n{}\n\n\
             Store them somewhere safe, offline and apart from this device. They are shown only\n\
             this once, and with both the app and these codes lost, neither login nor recovery\n\
             is possible any more.",
            listed.as_str()
        ),
    )
}

/// A table of security-log entries in the order given: time (UTC), event, device.
fn security_table(entries: &[SecurityEntry]) -> String {
    if entries.is_empty() {
        return "no entries".into();
    }
    let times: Vec<String> = entries.iter().map(|e| readable_time(&e.at)).collect();
    let time_width = times
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let event_width = entries
        .iter()
        .map(|e| e.event.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    let mut table = format!("{:<time_width$}  {:<event_width$}  DEVICE", "TIME", "EVENT");
    for (entry, time) in entries.iter().zip(&times) {
        let line = format!(
            "{time:<time_width$}  {:<event_width$}  {}",
            entry.event, entry.device
        );
        table.push('\n');
        table.push_str(line.trim_end());
    }
    table
}

/// A time the server sent: unix seconds as a UTC date, text as it is, anything else as `-`.
fn readable_time(value: &Value) -> String {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(format_unix_time)
            .unwrap_or_else(|| n.to_string()),
        Value::String(s) => s.clone(),
        _ => "-".into(),
    }
}

/// A table of items: name (control characters escaped), size in bytes, last update.
fn item_table(items: &[ItemEntry]) -> String {
    if items.is_empty() {
        return "no items".into();
    }
    let names: Vec<String> = items.iter().map(|i| printable_name(&i.name)).collect();
    let width = names
        .iter()
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut table = format!("{:<width$}  {:>10}  UPDATED", "NAME", "SIZE");
    for (item, name) in items.iter().zip(&names) {
        let updated = readable_time(&item.updated_at);
        table.push_str(&format!("\n{name:<width$}  {:>10}  {updated}", item.size));
    }
    table
}

/// An item name safe to print on a terminal: control characters (which the server refuses
/// now, but older data may hold) are shown as Rust escapes (`\n`, `\u{1b}`), the rest as is.
fn printable_name(name: &str) -> String {
    let mut shown = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            shown.extend(c.escape_debug());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn format_unix_time(seconds: u64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn say(out: &mut dyn Write, line: std::fmt::Arguments<'_>) -> Result<(), ClientError> {
    writeln!(out, "{line}").map_err(ClientError::file("<stdout>"))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{RecordingSigner, Seen, answer, fake_server, ok, problem};
    use super::*;

    const NOW: u64 = 1_700_000_000;
    const CLOCK: &dyn Fn() -> u64 = &|| NOW;

    fn token_answer(token: &str, recovery_key: Option<&str>) -> String {
        let mut answer = serde_json::json!({
            "access_token": token,
            "token_type": "DPoP",
            "expires_in": 900,
            "session_expires_in": 43_000,
        });
        if let Some(key) = recovery_key {
            answer["recovery_key"] = Value::from(key);
        }
        ok(&answer.to_string(), None)
    }

    /// Runs one command against a scripted server with `env` as the environment; returns what
    /// it printed, what the server saw and the config directory.
    async fn run_against(
        responses: Vec<String>,
        stored: Option<(&str, u64, u64)>,
        env: &'static [(&'static str, &'static str)],
        command: ClientCommand,
    ) -> (Result<String, ClientError>, Vec<Seen>, tempfile::TempDir) {
        run_with_stdin(responses, stored, env, None, command).await
    }

    /// As `run_against`, with `stdin` standing for standard input under --password-stdin.
    async fn run_with_stdin(
        responses: Vec<String>,
        stored: Option<(&str, u64, u64)>,
        env: &'static [(&'static str, &'static str)],
        stdin: Option<&'static [u8]>,
        command: ClientCommand,
    ) -> (Result<String, ClientError>, Vec<Seen>, tempfile::TempDir) {
        let (server, seen) = fake_server(responses).await;
        let root = tempfile::tempdir().unwrap();
        let config = ConfigDir::open(root.path().to_path_buf()).unwrap();
        if let Some((token, expires_at, session_expires_at)) = stored {
            let session = Session {
                server: server.as_str().to_string(),
                access_token: Zeroizing::new(token.to_string()),
                expires_at,
                session_expires_at,
            };
            config.save_session(&session).unwrap();
        }

        let signer = RecordingSigner::default();
        let lookup = |name: &str| {
            env.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let mut ctx = Context {
            api: Api::new(server, &signer, CLOCK).unwrap(),
            config,
            secrets: SecretSource::new(Box::new(lookup), stdin.map(stdin_of), None),
            clock: CLOCK,
        };
        let mut out = Vec::new();
        let result = execute(&mut ctx, command, &mut out).await;
        let printed = result.map(|()| String::from_utf8(out).unwrap());
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        (printed, seen, root)
    }

    fn stdin_of(bytes: &'static [u8]) -> Box<dyn io::BufRead> {
        Box::new(io::Cursor::new(bytes))
    }

    fn sent(seen: &Seen) -> Value {
        serde_json::from_slice(&seen.body).unwrap()
    }

    fn no_content() -> String {
        answer("204 No Content", "", "text/plain", "")
    }

    const LOGGED_IN: Option<(&str, u64, u64)> = Some(("v1.tok", NOW + 600, NOW + 1_000));

    const BACKUP_CODES: &str = r#"{"backup_codes":["AAAA-BBBB","CCCC-DDDD","EEEE-FFFF"]}"#;

    fn stored_session(root: &tempfile::TempDir) -> Option<Session> {
        ConfigDir::open(root.path().to_path_buf())
            .unwrap()
            .load_session()
            .unwrap()
    }

    #[tokio::test]
    async fn a_token_with_less_than_a_minute_left_is_refreshed_before_the_request() {
        let responses = vec![
            token_answer("v1.new", None),
            ok(r#"{"username":"alice","profile":{"city":"Lyon"}}"#, None),
        ];
        let stored = Some(("v1.old", NOW + 59, NOW + 1_000));
        let (printed, seen, root) =
            run_against(responses, stored, &[], ClientCommand::Whoami).await;

        assert!(printed.unwrap().starts_with("username: alice\nprofile: {"));
        assert_eq!(seen[0].line, "POST /v1/sessions/refresh HTTP/1.1");
        assert_eq!(seen[0].header("authorization"), Some("DPoP v1.old"));
        assert_eq!(seen[1].line, "GET /v1/me HTTP/1.1");
        assert_eq!(seen[1].header("authorization"), Some("DPoP v1.new"));

        let session = stored_session(&root).unwrap();
        assert_eq!(session.access_token.as_str(), "v1.new");
        assert_eq!(session.expires_at, NOW + 900);
    }

    #[tokio::test]
    async fn a_fresh_token_is_used_without_a_refresh() {
        let responses = vec![ok(r#"{"items":[]}"#, None)];
        let stored = Some(("v1.tok", NOW + 600, NOW + 1_000));
        let command = ClientCommand::Items(ItemsCommand::Ls);
        let (printed, seen, _root) = run_against(responses, stored, &[], command).await;
        assert_eq!(printed.unwrap(), "no items\n");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].line, "GET /v1/me/items HTTP/1.1");
    }

    #[tokio::test]
    async fn a_session_past_its_expiry_says_log_in_again_without_asking_the_server() {
        let stored = Some(("v1.tok", NOW - 10, NOW));
        let (printed, seen, _root) = run_against(vec![], stored, &[], ClientCommand::Whoami).await;
        let refused = printed.unwrap_err();
        assert_eq!(refused.to_string(), "session expired, log in again");
        assert!(seen.is_empty());
    }

    #[tokio::test]
    async fn a_refresh_the_server_refuses_says_log_in_again() {
        let responses = vec![problem("401 Unauthorized", "token_expired", None)];
        let stored = Some(("v1.old", NOW - 1, NOW + 1_000));
        let (printed, _, _root) = run_against(responses, stored, &[], ClientCommand::Whoami).await;
        assert!(matches!(printed, Err(ClientError::SessionExpired)));
    }

    #[tokio::test]
    async fn without_a_session_the_user_is_told_to_log_in() {
        let (printed, seen, _root) = run_against(vec![], None, &[], ClientCommand::Whoami).await;
        assert!(matches!(printed, Err(ClientError::NotLoggedIn { .. })));
        assert!(seen.is_empty());
    }

    #[tokio::test]
    async fn signup_sends_the_profile_stores_the_session_and_prints_the_recovery_key_once() {
        let responses = vec![token_answer("v1.first", Some("ABCD-EFGH-JKMN"))];
        let env = &[("BLINDFOLD_PASSWORD", "correct horse")];
        let command = ClientCommand::Signup {
            username: "alice".into(),
            email: Some("alice@example.org".into()),
            profile: None,
        };
        let (printed, seen, root) = run_against(responses, None, env, command).await;

        let printed = printed.unwrap();
        assert_eq!(printed.matches("ABCD-EFGH-JKMN").count(), 1);
        assert!(!printed.contains("correct horse") && !printed.contains("v1.first"));

        let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
        let expected = serde_json::json!({
            "username": "alice",
            "password": "correct horse",
            "profile": {"email": "alice@example.org"},
        });
        assert_eq!(sent, expected);
        assert_eq!(seen[0].line, "POST /v1/accounts HTTP/1.1");
        assert!(seen[0].header("dpop").is_some());
        assert!(seen[0].header("authorization").is_none());
        assert_eq!(
            stored_session(&root).unwrap().access_token.as_str(),
            "v1.first"
        );
    }

    #[tokio::test]
    async fn a_password_change_stores_the_new_token_in_place_of_the_dead_one() {
        let responses = vec![token_answer("v1.after", None)];
        let stored = Some(("v1.before", NOW + 600, NOW + 1_000));
        let env = &[
            ("BLINDFOLD_PASSWORD", "old pw"),
            ("BLINDFOLD_NEW_PASSWORD", "new pw"),
        ];
        let (printed, seen, root) =
            run_against(responses, stored, env, ClientCommand::Password).await;

        printed.unwrap();
        let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
        let expected = serde_json::json!({"current_password": "old pw", "new_password": "new pw"});
        assert_eq!(sent, expected);
        assert_eq!(seen[0].header("authorization"), Some("DPoP v1.before"));
        assert_eq!(
            stored_session(&root).unwrap().access_token.as_str(),
            "v1.after"
        );
    }

    #[tokio::test]
    async fn logging_out_everywhere_forgets_the_local_session() {
        let responses = vec![answer("204 No Content", "", "text/plain", "")];
        let stored = Some(("v1.tok", NOW + 600, NOW + 1_000));
        let (printed, seen, root) =
            run_against(responses, stored, &[], ClientCommand::LogoutAll).await;
        printed.unwrap();
        assert_eq!(seen[0].line, "DELETE /v1/sessions HTTP/1.1");
        assert!(stored_session(&root).is_none());
    }

    #[tokio::test]
    async fn a_refused_item_read_prints_nothing_and_carries_the_servers_code() {
        let responses = vec![problem("404 Not Found", "item_not_found", None)];
        let stored = Some(("v1.tok", NOW + 600, NOW + 1_000));
        let command = ClientCommand::Items(ItemsCommand::Get {
            name: "x y".into(),
            output: None,
        });
        let (printed, seen, _root) = run_against(responses, stored, &[], command).await;
        let refused = printed.unwrap_err();
        assert!(refused.to_string().contains("item_not_found"));
        assert_eq!(refused.exit_class().code(), 1);
        assert_eq!(seen[0].line, "GET /v1/me/items/x%20y HTTP/1.1");
    }

    #[tokio::test]
    async fn login_asks_for_a_code_only_after_the_server_demands_one() {
        let responses = vec![
            problem("401 Unauthorized", "second_factor_required", None),
            token_answer("v1.second", None),
        ];
        let env = &[("BLINDFOLD_PASSWORD", "pw"), ("BLINDFOLD_TOTP", " 123456 ")];
        let command = ClientCommand::Login {
            username: "alice".into(),
            totp: None,
        };
        let (printed, seen, root) = run_against(responses, None, env, command).await;

        assert_eq!(printed.unwrap(), "logged in as alice\n");
        let first = serde_json::json!({"username": "alice", "password": "pw"});
        let second = serde_json::json!({"username": "alice", "password": "pw", "totp": "123456"});
        assert_eq!((sent(&seen[0]), sent(&seen[1])), (first, second));
        assert_eq!(seen[1].line, "POST /v1/sessions HTTP/1.1");
        assert_eq!(
            stored_session(&root).unwrap().access_token.as_str(),
            "v1.second"
        );
    }

    #[tokio::test]
    async fn a_code_given_with_totp_goes_with_the_first_login_request() {
        let responses = vec![token_answer("v1.tok", None)];
        let env = &[("BLINDFOLD_PASSWORD", "pw"), ("BLINDFOLD_TOTP", "999999")];
        let command = ClientCommand::Login {
            username: "alice".into(),
            totp: Some("654321".into()),
        };
        let (printed, seen, _root) = run_against(responses, None, env, command).await;
        printed.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(sent(&seen[0])["totp"], "654321");
    }

    #[tokio::test]
    async fn a_login_with_no_way_to_give_the_demanded_code_says_where_it_may_come_from() {
        let responses = vec![problem("401 Unauthorized", "second_factor_required", None)];
        let env = &[("BLINDFOLD_PASSWORD", "pw")];
        let command = ClientCommand::Login {
            username: "alice".into(),
            totp: None,
        };
        let (printed, seen, root) = run_against(responses, None, env, command).await;
        let refused = printed.unwrap_err();
        assert!(matches!(
            refused,
            ClientError::MissingSecret {
                variable: "BLINDFOLD_TOTP",
                ..
            }
        ));
        assert_eq!(seen.len(), 1);
        assert!(stored_session(&root).is_none());
    }

    #[tokio::test]
    async fn a_wrong_code_at_login_is_not_asked_again_and_keeps_the_servers_code() {
        let responses = vec![
            problem("401 Unauthorized", "second_factor_required", None),
            problem("401 Unauthorized", "invalid_second_factor", None),
        ];
        let env = &[("BLINDFOLD_PASSWORD", "pw"), ("BLINDFOLD_TOTP", "000000")];
        let command = ClientCommand::Login {
            username: "alice".into(),
            totp: None,
        };
        let (printed, seen, _root) = run_against(responses, None, env, command).await;
        let refused = printed.unwrap_err();
        assert!(refused.to_string().contains("invalid_second_factor"));
        assert_eq!(refused.exit_class().code(), 1);
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test]
    async fn recovery_reads_the_demanded_code_from_the_third_stdin_line() {
        let answer = serde_json::json!({
            "access_token": "v1.rec",
            "token_type": "DPoP",
            "expires_in": 900,
            "session_expires_in": 43_000,
            "recovery_key": "NEW-RECOVERY-KEY",
        });
        let responses = vec![
            problem("401 Unauthorized", "second_factor_required", None),
            ok(&answer.to_string(), None),
        ];
        let stdin: &[u8] = b"OLD-KEY\nnew password\nAAAA-BBBB\n";
        let command = ClientCommand::Recover {
            username: "alice".into(),
            totp: None,
        };
        let (printed, seen, _root) =
            run_with_stdin(responses, None, &[], Some(stdin), command).await;

        assert_eq!(printed.unwrap().matches("NEW-RECOVERY-KEY").count(), 1);
        let expected = serde_json::json!({
            "username": "alice",
            "recovery_key": "OLD-KEY",
            "new_password": "new password",
            "totp": "AAAA-BBBB",
        });
        assert_eq!(sent(&seen[1]), expected);
        assert!(sent(&seen[0]).get("totp").is_none());
    }

    #[tokio::test]
    async fn enabling_totp_shows_the_secret_then_confirms_the_code_and_prints_the_backup_codes_once()
     {
        let begun = r#"{"secret":"JBSWY3DPEHPK3PXP","otpauth_uri":"otpauth://totp/blindfold:alice?secret=JBSWY3DPEHPK3PXP","enrollment":"sealed-blob"}"#;
        let responses = vec![ok(begun, None), ok(BACKUP_CODES, None)];
        let env = &[("BLINDFOLD_TOTP", "123456\n")];
        let command = ClientCommand::Totp(TotpCommand::Enable);
        let (printed, seen, _root) = run_against(responses, LOGGED_IN, env, command).await;

        let printed = printed.unwrap();
        assert!(printed.starts_with("TOTP secret: JBSWY3DPEHPK3PXP\notpauth URI: otpauth://"));
        for code in ["AAAA-BBBB", "CCCC-DDDD", "EEEE-FFFF"] {
            assert_eq!(printed.matches(code).count(), 1, "{code}");
        }
        assert!(printed.contains("shown only\nthis once"));
        assert!(!printed.contains("v1.tok") && !printed.contains("sealed-blob"));

        assert_eq!(seen[0].line, "POST /v1/me/totp HTTP/1.1");
        assert!(seen[0].body.is_empty());
        assert_eq!(seen[1].line, "POST /v1/me/totp/confirm HTTP/1.1");
        assert_eq!(seen[1].header("authorization"), Some("DPoP v1.tok"));
        let expected = serde_json::json!({"enrollment": "sealed-blob", "code": "123456"});
        assert_eq!(sent(&seen[1]), expected);
    }

    #[tokio::test]
    async fn enabling_totp_when_it_is_on_says_so_without_asking_a_code() {
        let responses = vec![problem("409 Conflict", "conflict", None)];
        let command = ClientCommand::Totp(TotpCommand::Enable);
        let (printed, seen, _root) = run_against(responses, LOGGED_IN, &[], command).await;
        let refused = printed.unwrap_err();
        assert_eq!(
            refused.to_string(),
            "server refused (409 conflict): TOTP is already on for this account"
        );
        assert_eq!(seen.len(), 1);
    }

    #[tokio::test]
    async fn a_wrong_code_while_enabling_totp_prints_no_backup_codes() {
        let begun = r#"{"secret":"JBSWY3DPEHPK3PXP","otpauth_uri":"otpauth://x","enrollment":"e"}"#;
        let responses = vec![
            ok(begun, None),
            problem("401 Unauthorized", "invalid_second_factor", None),
        ];
        let env = &[("BLINDFOLD_TOTP", "000000")];
        let command = ClientCommand::Totp(TotpCommand::Enable);
        let (printed, _, _root) = run_against(responses, LOGGED_IN, env, command).await;
        let refused = printed.unwrap_err().to_string();
        assert!(refused.contains("invalid_second_factor") && refused.contains("TOTP stays off"));
    }

    #[tokio::test]
    async fn disabling_totp_sends_the_code_and_says_when_totp_was_off() {
        let env = &[("BLINDFOLD_TOTP", "AAAA-BBBB")];
        let command = || ClientCommand::Totp(TotpCommand::Disable);
        let (printed, seen, _root) =
            run_against(vec![no_content()], LOGGED_IN, env, command()).await;
        assert_eq!(
            printed.unwrap(),
            "TOTP is off; the backup codes no longer work\n"
        );
        assert_eq!(seen[0].line, "DELETE /v1/me/totp HTTP/1.1");
        assert_eq!(sent(&seen[0]), serde_json::json!({"code": "AAAA-BBBB"}));

        let responses = vec![problem("404 Not Found", "not_found", None)];
        let (printed, _, _root) = run_against(responses, LOGGED_IN, env, command()).await;
        assert!(printed.unwrap_err().to_string().contains("TOTP is not on"));
    }

    #[tokio::test]
    async fn new_backup_codes_are_asked_with_a_code_and_printed_once() {
        let responses = vec![ok(BACKUP_CODES, None)];
        let stdin: &[u8] = b"123456\n";
        let command = ClientCommand::BackupCodes;
        let (printed, seen, _root) =
            run_with_stdin(responses, LOGGED_IN, &[], Some(stdin), command).await;
        let printed = printed.unwrap();
        assert!(printed.starts_with("new backup codes made; the old ones no longer work\n"));
        assert_eq!(printed.matches("CCCC-DDDD").count(), 1);
        assert_eq!(seen[0].line, "POST /v1/me/backup-codes HTTP/1.1");
        assert_eq!(sent(&seen[0]), serde_json::json!({"code": "123456"}));
    }

    #[tokio::test]
    async fn an_empty_set_of_backup_codes_is_not_taken_as_success() {
        let responses = vec![ok(r#"{"backup_codes":[]}"#, None)];
        let env = &[("BLINDFOLD_TOTP", "123456")];
        let (printed, _, _root) =
            run_against(responses, LOGGED_IN, env, ClientCommand::BackupCodes).await;
        assert!(matches!(printed, Err(ClientError::Protocol(_))));
    }

    #[tokio::test]
    async fn account_deletion_without_yes_explains_and_sends_nothing() {
        let env = &[("BLINDFOLD_PASSWORD", "pw")];
        let command = ClientCommand::DeleteAccount { yes: false };
        let (printed, seen, root) = run_against(vec![], LOGGED_IN, env, command).await;
        let refused = printed.unwrap_err();
        assert_eq!(refused.exit_class().code(), 2);
        assert!(refused.to_string().contains("cannot be undone"));
        assert!(refused.to_string().contains("--yes"));
        assert!(seen.is_empty());
        assert!(stored_session(&root).is_some());
    }

    #[tokio::test]
    async fn account_deletion_sends_the_password_then_the_demanded_code_and_forgets_the_session() {
        let responses = vec![
            problem("401 Unauthorized", "second_factor_required", None),
            no_content(),
        ];
        let stdin: &[u8] = b"my password\nEEEE-FFFF\n";
        let command = ClientCommand::DeleteAccount { yes: true };
        let (printed, seen, root) =
            run_with_stdin(responses, LOGGED_IN, &[], Some(stdin), command).await;

        let printed = printed.unwrap();
        assert!(printed.starts_with("account deleted"));
        assert!(!printed.contains("my password"));
        assert_eq!(seen[0].line, "DELETE /v1/me HTTP/1.1");
        assert_eq!(
            sent(&seen[0]),
            serde_json::json!({"password": "my password"})
        );
        let with_code = serde_json::json!({"password": "my password", "totp": "EEEE-FFFF"});
        assert_eq!(sent(&seen[1]), with_code);
        assert_eq!(seen[1].header("authorization"), Some("DPoP v1.tok"));
        assert!(stored_session(&root).is_none());
    }

    #[tokio::test]
    async fn a_refused_account_deletion_keeps_the_session() {
        let responses = vec![problem("401 Unauthorized", "invalid_credentials", None)];
        let env = &[
            ("BLINDFOLD_PASSWORD", "wrong"),
            ("BLINDFOLD_TOTP", "123456"),
        ];
        let command = ClientCommand::DeleteAccount { yes: true };
        let (printed, seen, root) = run_against(responses, LOGGED_IN, env, command).await;
        assert!(
            printed
                .unwrap_err()
                .to_string()
                .contains("invalid_credentials")
        );
        assert_eq!(seen.len(), 1);
        assert!(stored_session(&root).is_some());
    }

    #[tokio::test]
    async fn the_security_log_prints_as_a_table_newest_first() {
        let log = r#"{"entries":[
            {"at":1700000000,"event":"totp_enabled","device":"k3J9x2"},
            {"at":951782400,"event":"login","device":"Qw7pLm"}]}"#;
        let responses = vec![ok(log, None)];
        let (printed, seen, _root) =
            run_against(responses, LOGGED_IN, &[], ClientCommand::SecurityLog).await;
        let printed = printed.unwrap();
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines[0], "TIME                     EVENT         DEVICE");
        assert_eq!(lines[1], "2023-11-14 22:13:20 UTC  totp_enabled  k3J9x2");
        assert_eq!(lines[2], "2000-02-29 00:00:00 UTC  login         Qw7pLm");
        assert_eq!(seen[0].line, "GET /v1/me/security-log HTTP/1.1");
    }

    #[test]
    fn an_empty_security_log_says_so() {
        assert_eq!(security_table(&[]), "no entries");
    }

    #[test]
    fn the_email_goes_into_the_profile_object() {
        let profile = build_profile(Some("a@b.example".into()), Some(r#"{"name":"A"}"#)).unwrap();
        let profile = Value::Object(profile.unwrap());
        assert_eq!(
            profile,
            serde_json::json!({"name": "A", "email": "a@b.example"})
        );
        assert_eq!(build_profile(None, None).unwrap(), None);
        let only_email = build_profile(Some("e@x".into()), None).unwrap().unwrap();
        assert_eq!(
            Value::Object(only_email),
            serde_json::json!({"email": "e@x"})
        );
    }

    #[test]
    fn a_profile_that_is_not_a_json_object_is_refused() {
        for bad in ["[1]", "\"x\"", "{", "null"] {
            assert!(
                matches!(build_profile(None, Some(bad)), Err(ClientError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unix_times_print_as_utc_dates() {
        assert_eq!(format_unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    }

    #[test]
    fn the_item_table_lines_up_names_sizes_and_times() {
        let items = vec![
            ItemEntry {
                name: "a".into(),
                size: 3,
                updated_at: Value::from(0u64),
            },
            ItemEntry {
                name: "longer-name".into(),
                size: 12_345,
                updated_at: Value::from("yesterday"),
            },
        ];
        let table = item_table(&items);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "NAME               SIZE  UPDATED");
        assert_eq!(lines[1], "a                     3  1970-01-01 00:00:00 UTC");
        assert_eq!(lines[2], "longer-name       12345  yesterday");
        assert_eq!(item_table(&[]), "no items");
    }

    #[test]
    fn item_names_with_control_characters_print_escaped() {
        let items = vec![ItemEntry {
            name: "evil\u{1b}[2J\nname\u{7f}".into(),
            size: 1,
            updated_at: Value::from(0u64),
        }];
        let table = item_table(&items);
        assert_eq!(table.lines().count(), 2);
        assert!(table.contains("evil\\u{1b}[2J\\nname\\u{7f}"));
        assert!(!table.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(printable_name("plain été"), "plain été");
    }

    #[test]
    fn an_item_value_is_written_to_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("out.bin");
        write_value(&path, b"\x00value").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"\x00value");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

#[cfg(test)]
mod value_limits {
    use super::*;

    #[test]
    fn an_endless_value_source_is_refused_after_the_item_limit() {
        let mut value = Vec::new();
        let endless = io::repeat(0);
        let refused = read_all(endless, &mut value, Path::new("/dev/zero"));
        assert!(matches!(refused, Err(ClientError::Usage(_))));
        assert_eq!(value.len() as u64, MAX_VALUE_BYTES + 1);
    }
}

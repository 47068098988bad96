//! The second factor (TOTP and backup codes) and the user's own security log.
//!
//! The server keeps nothing between enrolment and confirmation: `POST /v1/me/totp` hands the
//! client the new secret sealed under the user key with an expiry (the `enrollment` blob), and
//! `POST /v1/me/totp/confirm` opens it again. A TOTP code is spent once accepted, together with
//! every earlier code; a backup code is spent when used. Security-log entries are sealed under
//! the user key, so only the user can read them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blindfold_actors::crypto::backup_codes::BackupCode;
use blindfold_actors::crypto::data::Purpose;
use blindfold_actors::crypto::token::Methods;
use blindfold_actors::crypto::totp::TotpSecret;
use blindfold_actors::crypto::user_key::UserKey;
use blindfold_events::{AccountRecord, Event, Handle};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::App;
use super::accounts::internal;
use super::auth::Session;
use super::problem::ApiError;
use super::router::{Request, json, no_content, parse_json};

/// How long an enrolment blob stays good, in seconds.
const ENROLLMENT_TTL: u64 = 10 * 60;
/// Binding of the TOTP secret inside the account.
const SECRET_BINDING: &[u8] = b"secret";
/// Binding of the TOTP secret inside an enrolment blob.
const ENROLLMENT_BINDING: &[u8] = b"enrollment";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Confirm {
    enrollment: String,
    code: SecretString,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeOnly {
    code: SecretString,
}

/// A second factor that checked out, and what spending it writes.
pub(crate) enum SecondFactor {
    /// A TOTP code of this step.
    Totp(u64),
    /// The backup code with this digest.
    BackupCode([u8; 32]),
}

impl SecondFactor {
    /// The event that spends it.
    pub(crate) fn spend(&self) -> Event {
        match self {
            SecondFactor::Totp(step) => Event::TotpStepUsed { step: *step },
            SecondFactor::BackupCode(digest) => Event::BackupCodeUsed { digest: *digest },
        }
    }

    /// The login method it adds to a token.
    pub(crate) fn method(&self) -> Methods {
        match self {
            SecondFactor::Totp(_) => Methods::TOTP,
            SecondFactor::BackupCode(_) => Methods::BACKUP_CODE,
        }
    }
}

/// `POST /v1/me/totp` → `{secret, otpauth_uri, enrollment}`.
pub(crate) async fn begin(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    if session.record.totp.is_some() {
        return Err(ApiError::Conflict);
    }
    let user_key = &session.claims.user_key;
    let username = user_key
        .open(
            Purpose::Username,
            session.handle(),
            &[],
            &session.record.sealed_username,
        )
        .map_err(internal)?;

    let secret = TotpSecret::generate().map_err(internal)?;
    let expires_at = app.now() + ENROLLMENT_TTL;
    let sealed = user_key
        .seal(
            Purpose::TotpSecret,
            session.handle(),
            &[ENROLLMENT_BINDING, &expires_at.to_be_bytes()],
            secret.expose(),
        )
        .map_err(internal)?;
    let mut blob = expires_at.to_be_bytes().to_vec();
    blob.extend_from_slice(&sealed);

    let body = serde_json::json!({
        "secret": secret.to_base32().as_str(),
        "otpauth_uri": secret.otpauth_uri(&String::from_utf8_lossy(&username)).as_str(),
        "enrollment": URL_SAFE_NO_PAD.encode(blob),
    });
    Ok(json(StatusCode::OK, &body))
}

/// `POST /v1/me/totp/confirm {enrollment, code}` → `{backup_codes}`: TOTP is on.
pub(crate) async fn confirm(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let body: Confirm = parse_json(req)?;
    if session.record.totp.is_some() {
        return Err(ApiError::Conflict);
    }
    let secret = open_enrollment(app, &session, &body.enrollment)?;
    let step = secret
        .verify(body.code.expose_secret(), app.now(), 0)
        .ok_or(ApiError::InvalidSecondFactor)?;

    let user_key = &session.claims.user_key;
    let handle = *session.handle();
    let sealed_secret = user_key
        .seal(
            Purpose::TotpSecret,
            &handle,
            &[SECRET_BINDING],
            secret.expose(),
        )
        .map_err(internal)?;
    let (codes, digests) = backup_code_set(user_key, &handle)?;
    let device = device_of(&session);
    app.append_with_retry(&session, |_| {
        Ok(vec![
            Event::TotpEnabled {
                sealed_secret: sealed_secret.clone(),
                backup_codes: digests.clone(),
                step,
            },
            app.security_entry(&handle, user_key, "totp_enabled", &device)?,
        ])
    })
    .await?;
    tracing::info!("totp.enabled");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "backup_codes": codes }),
    ))
}

/// `DELETE /v1/me/totp {code}`: TOTP is off, the backup codes with it.
pub(crate) async fn disable(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let body: CodeOnly = parse_json(req)?;
    if session.record.totp.is_none() {
        return Err(ApiError::NotFound);
    }
    let handle = *session.handle();
    let user_key = &session.claims.user_key;
    let device = device_of(&session);
    app.spend_second_factor(&session, body.code.expose_secret(), &device, |_| {
        Ok(vec![
            Event::TotpDisabled,
            app.security_entry(&handle, user_key, "totp_disabled", &device)?,
        ])
    })
    .await?;
    tracing::info!("totp.disabled");
    Ok(no_content())
}

/// `POST /v1/me/backup-codes {code}` → `{backup_codes}`: a new set; the old one stops working.
pub(crate) async fn regenerate(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let body: CodeOnly = parse_json(req)?;
    if session.record.totp.is_none() {
        return Err(ApiError::NotFound);
    }
    let handle = *session.handle();
    let user_key = &session.claims.user_key;
    let (codes, digests) = backup_code_set(user_key, &handle)?;
    let device = device_of(&session);
    app.spend_second_factor(&session, body.code.expose_secret(), &device, |_| {
        Ok(vec![
            Event::BackupCodesReplaced {
                backup_codes: digests.clone(),
            },
            app.security_entry(&handle, user_key, "backup_codes_replaced", &device)?,
        ])
    })
    .await?;
    tracing::info!("backup_codes.replaced");
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "backup_codes": codes }),
    ))
}

/// `GET /v1/me/security-log` → `{entries: [{at, event, device}]}`, newest first.
pub(crate) async fn security_log(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let user_key = &session.claims.user_key;
    let mut entries = Vec::with_capacity(session.record.security_log.len());
    for sealed in session.record.security_log.iter().rev() {
        let entry = user_key
            .open(Purpose::SecurityLog, session.handle(), &[], sealed)
            .map_err(internal)?;
        entries.push(serde_json::from_slice::<serde_json::Value>(&entry).map_err(internal)?);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "entries": entries }),
    ))
}

impl App {
    /// Checks a TOTP or backup code against the account's second factor. `None` when the code
    /// is wrong, spent, or TOTP is off.
    pub(crate) fn check_second_factor(
        &self,
        handle: &Handle,
        record: &AccountRecord,
        user_key: &UserKey,
        code: &str,
    ) -> Option<SecondFactor> {
        let totp = record.totp.as_ref()?;
        if let Ok(backup_code) = BackupCode::parse(code) {
            return backup_code
                .find_in(user_key, handle, &record.backup_codes)
                .map(SecondFactor::BackupCode);
        }
        let secret = user_key
            .open(
                Purpose::TotpSecret,
                handle,
                &[SECRET_BINDING],
                &totp.sealed_secret,
            )
            .ok()?;
        let secret = TotpSecret::from_bytes(&secret).ok()?;
        secret
            .verify(code, self.now(), totp.last_used_step)
            .map(SecondFactor::Totp)
    }

    /// A security-log entry `{at, event, device}` sealed under the user key.
    pub(crate) fn security_entry(
        &self,
        handle: &Handle,
        user_key: &UserKey,
        event: &str,
        device: &str,
    ) -> Result<Event, ApiError> {
        let entry =
            serde_json::json!({ "at": self.now(), "event": event, "device": device }).to_string();
        let sealed_entry = user_key
            .seal(Purpose::SecurityLog, handle, &[], entry.as_bytes())
            .map_err(internal)?;
        Ok(Event::SecurityLogged { sealed_entry })
    }

    /// Records a failed second factor after a correct password. Best effort: the refusal stands
    /// whether or not the entry lands.
    pub(crate) async fn log_failed_second_factor(
        &self,
        handle: &Handle,
        record: &AccountRecord,
        user_key: &UserKey,
        device: &str,
    ) {
        tracing::info!("second_factor.failed");
        if let Ok(entry) = self.security_entry(handle, user_key, "second_factor_failed", device) {
            let _ = self.append(handle, record.version, vec![entry]).await;
        }
    }

    /// Spends a second factor of the signed-in account and appends `events` with it, re-checking
    /// the code against the current record if a concurrent change wins the race (so one code
    /// is never accepted twice).
    async fn spend_second_factor(
        &self,
        session: &Session,
        code: &str,
        device: &str,
        build: impl Fn(u64) -> Result<Vec<Event>, ApiError>,
    ) -> Result<u64, ApiError> {
        let handle = session.handle();
        // Guessing codes through a session is a credential attempt like any other.
        self.limit_handle(handle)?;
        let user_key = &session.claims.user_key;
        let mut record = session.record.clone();
        for _ in 0..4 {
            let Some(factor) = self.check_second_factor(handle, &record, user_key, code) else {
                self.log_failed_second_factor(handle, &record, user_key, device)
                    .await;
                return Err(ApiError::InvalidSecondFactor);
            };
            let mut events = vec![factor.spend()];
            events.extend(build(record.version + 1)?);
            match self.append(handle, record.version, events).await {
                Err(ApiError::Conflict) => {
                    record = self.account(handle)?.ok_or(ApiError::TokenRevoked)?;
                    if record.epoch != session.claims.epoch {
                        return Err(ApiError::TokenRevoked);
                    }
                }
                other => return other,
            }
        }
        Err(ApiError::Conflict)
    }
}

/// The short thumbprint of the device a session is bound to.
pub(crate) fn device_of(session: &Session) -> String {
    blindfold_actors::crypto::dpop::Thumbprint(session.claims.jkt).short()
}

/// A new set of backup codes: what the user is shown, and what the server keeps.
fn backup_code_set(
    user_key: &UserKey,
    handle: &Handle,
) -> Result<(Vec<String>, Vec<[u8; 32]>), ApiError> {
    let codes = BackupCode::generate_set().map_err(internal)?;
    let digests = codes
        .iter()
        .map(|code| code.digest(user_key, handle))
        .collect();
    let shown = codes
        .iter()
        .map(|code| code.display().to_string())
        .collect();
    Ok((shown, digests))
}

/// The TOTP secret inside an enrolment blob, if it is this account's and not expired.
fn open_enrollment(app: &App, session: &Session, blob: &str) -> Result<TotpSecret, ApiError> {
    let refused = ApiError::InvalidRequest("The enrollment is invalid or expired; start again.");
    let blob = URL_SAFE_NO_PAD.decode(blob).map_err(|_| refused.clone())?;
    let (expiry, sealed) = blob.split_at_checked(8).ok_or(refused.clone())?;
    let expires_at = u64::from_be_bytes(expiry.try_into().map_err(|_| refused.clone())?);
    if app.now() > expires_at {
        return Err(refused);
    }
    let secret = session
        .claims
        .user_key
        .open(
            Purpose::TotpSecret,
            session.handle(),
            &[ENROLLMENT_BINDING, expiry],
            sealed,
        )
        .map_err(|_| refused.clone())?;
    TotpSecret::from_bytes(&secret).map_err(|_| refused)
}

//! The signed-in user's account: who they are, their profile, their password, their sessions.

use blindfold_actors::crypto::data::Purpose;
use blindfold_actors::crypto::password::Password;
use blindfold_actors::crypto::user_key::LoginMethod;
use blindfold_events::Event;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use warp::http::StatusCode;
use warp::reply::Response;

use super::App;
use super::accounts::{Grant, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES, checked_profile, internal};
use super::auth::Session;
use super::problem::ApiError;
use super::router::{Request, json, json_text, no_content, parse_json};
use super::second_factor::device_of;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteAccount {
    password: SecretString,
    #[serde(default)]
    totp: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePassword {
    current_password: SecretString,
    new_password: SecretString,
}

/// `GET /v1/me` → `{username, profile}`, opened with the user key the token carries.
pub(crate) async fn get(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let user_key = &session.claims.user_key;
    let handle = session.handle();

    let username = user_key
        .open(
            Purpose::Username,
            handle,
            &[],
            &session.record.sealed_username,
        )
        .map_err(internal)?;
    let profile = user_key
        .open(
            Purpose::Profile,
            handle,
            &[],
            &session.record.sealed_profile,
        )
        .map_err(internal)?;
    let username = String::from_utf8_lossy(&username);
    let profile: &serde_json::value::RawValue =
        serde_json::from_slice(&profile).map_err(internal)?;
    // Serialized from the raw profile text, so it comes back exactly as it was written.
    #[derive(serde::Serialize)]
    struct Me<'a> {
        username: &'a str,
        profile: &'a serde_json::value::RawValue,
    }
    let body = serde_json::to_string(&Me {
        username: &username,
        profile,
    })
    .map_err(internal)?;
    Ok(json_text(StatusCode::OK, body))
}

/// `PUT /v1/me/profile` with a JSON object.
pub(crate) async fn put_profile(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let raw: Box<serde_json::value::RawValue> = parse_json(req)?;
    let profile = checked_profile(&raw)?;
    let sealed_profile = session
        .claims
        .user_key
        .seal(Purpose::Profile, session.handle(), &[], profile.as_bytes())
        .map_err(internal)?;

    app.append_with_retry(&session, |_| {
        Ok(vec![Event::ProfileReplaced {
            sealed_profile: sealed_profile.clone(),
        }])
    })
    .await?;
    tracing::info!("profile.replaced");
    Ok(no_content())
}

/// `PUT /v1/me/password`: re-wraps the user key under the new password (no data is
/// re-encrypted), ends every other session, and answers with a token for this device.
pub(crate) async fn change_password(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let body: ChangePassword = parse_json(req)?;
    let proof_jkt = session.claims.jkt;
    let handle = *session.handle();
    if body.new_password.expose_secret().len() < MIN_PASSWORD_BYTES
        || body.new_password.expose_secret().len() > MAX_PASSWORD_BYTES
    {
        return Err(ApiError::InvalidRequest(
            "The new password must be 8 to 1024 bytes long.",
        ));
    }

    app.limit_handle(&handle)?;
    let current = Password::from(body.current_password.expose_secret());
    if app
        .check_password(&handle, Some(&session.record), &current)
        .await?
        .is_none()
    {
        tracing::info!("password_change.failed");
        return Err(ApiError::InvalidCredentials);
    }
    let user_key = &session.claims.user_key;
    let wrap = app
        .new_password_wrap(
            &handle,
            user_key,
            Password::from(body.new_password.expose_secret()),
        )
        .await?;
    let device = device_of(&session);
    let events = vec![
        Event::PasswordChanged {
            password: wrap,
            revoke_sessions: true,
        },
        app.security_entry(&handle, user_key, "password_changed", &device)?,
    ];
    app.append(&handle, session.record.version, events).await?;

    tracing::info!("password.changed");
    let grant = Grant {
        handle,
        user_key: blindfold_actors::crypto::user_key::UserKey::from_bytes(*user_key.expose()),
        epoch: session.record.epoch + 1,
        jkt: proof_jkt,
        methods: LoginMethod::Password.into(),
        session_expires_at: app.now() + app.config.session_ttl,
    };
    Ok(json(StatusCode::OK, &app.issue(grant).await?))
}

/// `DELETE /v1/me {password, totp?}`: crypto-shreds the account. Its stream key, events and
/// projections are deleted; every token stops working; the username is free again.
pub(crate) async fn delete_account(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let body: DeleteAccount = parse_json(req)?;
    let handle = *session.handle();

    app.limit_handle(&handle)?;
    let password = Password::from(body.password.expose_secret());
    if app
        .check_password(&handle, Some(&session.record), &password)
        .await?
        .is_none()
    {
        tracing::info!("account_deletion.failed");
        return Err(ApiError::InvalidCredentials);
    }
    if session.record.totp.is_some() {
        let code = body.totp.as_ref().ok_or(ApiError::SecondFactorRequired)?;
        let user_key = &session.claims.user_key;
        if app
            .check_second_factor(&handle, &session.record, user_key, code.expose_secret())
            .is_none()
        {
            app.log_failed_second_factor(&handle, &session.record, user_key, &device_of(&session))
                .await;
            return Err(ApiError::InvalidSecondFactor);
        }
    }

    app.actors
        .ledger
        .delete(handle)
        .await
        .map_err(|error| match error {
            blindfold_actors::ledger::LedgerError::Unavailable => {
                ApiError::Overloaded(std::time::Duration::from_secs(1))
            }
            blindfold_actors::ledger::LedgerError::Store(error) => internal(error),
        })?;
    tracing::info!("account.deleted");
    Ok(no_content())
}

/// `DELETE /v1/sessions`: log out everywhere. Every token issued so far stops working.
pub(crate) async fn log_out_everywhere(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let device = device_of(&session);
    let (handle, user_key) = (session.handle(), &session.claims.user_key);
    app.append_with_retry(&session, |_| {
        Ok(vec![
            Event::SessionsRevoked,
            app.security_entry(handle, user_key, "sessions_revoked", &device)?,
        ])
    })
    .await?;
    tracing::info!("sessions.revoked");
    Ok(no_content())
}

impl App {
    /// Appends events built against the account's current version, re-reading and rebuilding
    /// them if a concurrent change to the same account won the race. Stops at a revocation:
    /// a token made stale in the meantime gets nothing written.
    pub(crate) async fn append_with_retry(
        &self,
        session: &Session,
        mut build: impl FnMut(u64) -> Result<Vec<Event>, ApiError>,
    ) -> Result<u64, ApiError> {
        let mut version = session.record.version;
        for _ in 0..4 {
            match self
                .append(session.handle(), version, build(version + 1)?)
                .await
            {
                Err(ApiError::Conflict) => {
                    let record = self
                        .account(session.handle())?
                        .ok_or(ApiError::TokenRevoked)?;
                    if record.epoch != session.claims.epoch {
                        return Err(ApiError::TokenRevoked);
                    }
                    version = record.version;
                }
                other => return other,
            }
        }
        Err(ApiError::Conflict)
    }
}

//! Getting a token: sign-up, log-in, refresh and recovery, and the steps they share.
//!
//! **Enumeration:** an unknown username and a wrong password take the same path: one Argon2
//! derivation (against a decoy salt that is stable per name when there is no account), then one
//! `invalid_credentials` answer with the same body. Empty and oversized passwords derive too.
//! Recovery does the same with its cheaper key: an unknown name derives the recovery wrapping key
//! and tries a decoy wrap, as a known name with a wrong recovery key does.

use std::time::Duration;

use blindfold_actors::crypto::data::Purpose;
use blindfold_actors::crypto::dpop::VerifiedProof;
use blindfold_actors::crypto::password::{self, Password, WrappingKey};
use blindfold_actors::crypto::recovery::RecoveryKey;
use blindfold_actors::crypto::token::{Methods, TokenClaims};
use blindfold_actors::crypto::user_key::{self, LoginMethod, UserKey};
use blindfold_actors::crypto::username;
use blindfold_actors::kdf::{DeriveJob, KdfError};
use blindfold_actors::ledger::LedgerError;
use blindfold_events::{AccountRecord, Append, Event, Handle, KdfParams, PasswordWrap, StoreError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use warp::http::StatusCode;
use warp::reply::Response;

use super::App;
use super::problem::ApiError;
use super::router::{Request, json, parse_json};

/// Shortest password accepted at sign-up, change and recovery (NIST SP 800-63B).
pub(crate) const MIN_PASSWORD_BYTES: usize = 8;
/// Longest password derived; longer ones are refused at sign-up and fail at log-in.
pub(crate) const MAX_PASSWORD_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignUp {
    username: String,
    password: SecretString,
    #[serde(default)]
    profile: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogIn {
    username: String,
    password: SecretString,
    #[serde(default)]
    totp: Option<SecretString>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recover {
    username: String,
    recovery_key: SecretString,
    new_password: SecretString,
    #[serde(default)]
    totp: Option<SecretString>,
}

/// `POST /v1/accounts`
pub(crate) async fn sign_up(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: SignUp = parse_json(req)?;
    app.limit_address(req)?;
    let proof = app.device_proof(req)?;

    let username = username::normalize(&body.username)
        .map_err(|_| ApiError::InvalidRequest("The username is not valid."))?;
    let password = checked_new_password(body.password.expose_secret())?;
    let profile = match &body.profile {
        Some(raw) => checked_profile(raw)?,
        None => "{}",
    };

    let handle = app.handle(username).await?;
    app.limit_handle(&handle)?;
    // LIMITATION: sign-up necessarily says whether a name is taken, so it is the one place an
    // online attacker can test names; it is held to the same per-address and per-name limits
    // as log-in. Invitation- or email-bound sign-up would close it.
    if app.account(&handle)?.is_some() {
        return Err(ApiError::UsernameTaken);
    }

    let user_key = UserKey::generate().map_err(internal)?;
    let password_wrap = app.new_password_wrap(&handle, &user_key, password).await?;
    let recovery_key = RecoveryKey::generate().map_err(internal)?;
    let recovery_wrap = app.recovery_wrap(&handle, &user_key, &recovery_key)?;

    let event = Event::AccountCreated {
        sealed_username: user_key
            .seal(Purpose::Username, &handle, &[], body.username.as_bytes())
            .map_err(internal)?,
        sealed_profile: user_key
            .seal(Purpose::Profile, &handle, &[], profile.as_bytes())
            .map_err(internal)?,
        password: password_wrap,
        wrapped_user_key_recovery: recovery_wrap,
    };
    let created = app.security_entry(
        &handle,
        &user_key,
        "account_created",
        &proof.thumbprint.short(),
    )?;
    match app.append(&handle, 0, vec![event, created]).await {
        Err(ApiError::Conflict) => return Err(ApiError::UsernameTaken),
        other => other?,
    };

    tracing::info!("signup.succeeded");
    let grant = Grant::fresh(
        app,
        handle,
        &user_key,
        0,
        &proof,
        LoginMethod::Password.into(),
    );
    let mut body = app.issue(grant).await?;
    body["recovery_key"] = serde_json::Value::String(recovery_key.display().to_string());
    Ok(json(StatusCode::CREATED, &body))
}

/// `POST /v1/sessions`
pub(crate) async fn log_in(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: LogIn = parse_json(req)?;
    app.limit_address(req)?;
    let proof = app.device_proof(req)?;

    let handle = app.login_handle(&body.username).await?;
    app.limit_handle(&handle)?;
    let record = app.account(&handle)?;

    let password = Password::from(body.password.expose_secret());
    let unwrapped = app
        .check_password(&handle, record.as_ref(), &password)
        .await?;
    let (Some(record), Some(user_key)) = (record, unwrapped) else {
        tracing::info!("login.failed");
        return Err(ApiError::InvalidCredentials);
    };

    let device = proof.thumbprint.short();
    let code = body.totp.as_ref().map(|code| code.expose_secret());
    let signed_in = app
        .complete_sign_in(
            &SignIn {
                handle: &handle,
                user_key: &user_key,
                code,
                device: &device,
            },
            record,
            Vec::new(),
            "login",
        )
        .await?;

    if signed_in.record.password.params != app.config.kdf_params {
        app.upgrade_params(&handle, &signed_in.record, &user_key, password)
            .await;
    }

    tracing::info!("login.succeeded");
    let methods = Methods::from(LoginMethod::Password).with(signed_in.second_factor);
    let grant = Grant::fresh(
        app,
        handle,
        &user_key,
        signed_in.record.epoch,
        &proof,
        methods,
    );
    Ok(json(StatusCode::OK, &app.issue(grant).await?))
}

/// `POST /v1/sessions/refresh`: a new token for the same device and session, never past the
/// session's absolute expiry.
pub(crate) async fn refresh(app: &App, req: &Request) -> Result<Response, ApiError> {
    let session = app.authenticate(req).await?;
    let claims = &session.claims;
    if app.now() >= claims.session_expires_at {
        return Err(ApiError::TokenExpired);
    }
    let grant = Grant {
        handle: claims.handle,
        user_key: UserKey::from_bytes(*claims.user_key.expose()),
        epoch: session.record.epoch,
        jkt: claims.jkt,
        methods: claims.methods,
        session_expires_at: claims.session_expires_at,
    };
    tracing::info!("token.refreshed");
    Ok(json(StatusCode::OK, &app.issue(grant).await?))
}

/// `POST /v1/recovery`: the recovery key replaces the password; every session ends and a new
/// recovery key replaces the old one.
pub(crate) async fn recover(app: &App, req: &Request) -> Result<Response, ApiError> {
    let body: Recover = parse_json(req)?;
    app.limit_address(req)?;
    let proof = app.device_proof(req)?;

    let handle = app.login_handle(&body.username).await?;
    app.limit_recovery_handle(&handle)?;
    // A malformed recovery key or new password is refused here, before the account is looked
    // up, so that answer is the same, at the same cost, for known and unknown names.
    let recovery_key = RecoveryKey::parse(body.recovery_key.expose_secret())
        .map_err(|_| ApiError::InvalidRequest("The recovery key is not in the expected format."))?;
    let new_password = checked_new_password(body.new_password.expose_secret())?;

    let record = app.account(&handle)?;
    let unwrapped = app.check_recovery_key(&handle, record.as_ref(), &recovery_key);
    let (Some(record), Some(user_key)) = (record, unwrapped) else {
        tracing::info!("recovery.failed");
        return Err(ApiError::InvalidCredentials);
    };

    // Checked before the derivation so a missing second factor costs no Argon2 run; checked
    // again, and spent, when the recovery is recorded.
    let code = body.totp.as_ref().map(|code| code.expose_secret());
    let device = proof.thumbprint.short();
    if record.totp.is_some() {
        let code = code.ok_or(ApiError::SecondFactorRequired)?;
        if app
            .check_second_factor(&handle, &record, &user_key, code)
            .is_none()
        {
            app.log_failed_second_factor(&handle, &record, &user_key, &device)
                .await;
            return Err(ApiError::InvalidSecondFactor);
        }
    }

    let password = app
        .new_password_wrap(&handle, &user_key, new_password)
        .await?;
    let next_recovery_key = RecoveryKey::generate().map_err(internal)?;
    let event = Event::Recovered {
        password,
        wrapped_user_key_recovery: app.recovery_wrap(&handle, &user_key, &next_recovery_key)?,
    };
    let signed_in = app
        .complete_sign_in(
            &SignIn {
                handle: &handle,
                user_key: &user_key,
                code,
                device: &device,
            },
            record,
            vec![event],
            "recovery",
        )
        .await?;

    tracing::info!("recovery.succeeded");
    let methods = Methods::from(LoginMethod::Recovery).with(signed_in.second_factor);
    let grant = Grant::fresh(
        app,
        handle,
        &user_key,
        signed_in.record.epoch,
        &proof,
        methods,
    );
    let mut body = app.issue(grant).await?;
    body["recovery_key"] = serde_json::Value::String(next_recovery_key.display().to_string());
    Ok(json(StatusCode::OK, &body))
}

/// A sign-in whose first factor checked out, on its way to being recorded.
#[derive(Clone, Copy)]
pub(crate) struct SignIn<'a> {
    pub handle: &'a Handle,
    pub user_key: &'a UserKey,
    /// The TOTP or backup code the request carried, if any.
    pub code: Option<&'a str>,
    /// The short thumbprint of the signing-in device, for the security log.
    pub device: &'a str,
}

/// A sign-in as recorded: the account after it, and the second factor it used.
pub(crate) struct SignedIn {
    pub record: AccountRecord,
    pub second_factor: Methods,
}

/// What a new token carries.
pub(crate) struct Grant {
    pub handle: Handle,
    pub user_key: UserKey,
    pub epoch: u64,
    pub jkt: [u8; 32],
    pub methods: Methods,
    pub session_expires_at: u64,
}

impl Grant {
    /// A grant opening a new session for the device that made `proof`.
    pub(crate) fn fresh(
        app: &App,
        handle: Handle,
        user_key: &UserKey,
        epoch: u64,
        proof: &VerifiedProof,
        methods: Methods,
    ) -> Grant {
        Grant {
            handle,
            user_key: UserKey::from_bytes(*user_key.expose()),
            epoch,
            jkt: *proof.thumbprint.as_bytes(),
            methods,
            session_expires_at: app.now() + app.config.session_ttl,
        }
    }
}

impl App {
    /// Seals a token for `grant` and renders the token response.
    pub(crate) async fn issue(&self, grant: Grant) -> Result<serde_json::Value, ApiError> {
        let now = self.now();
        let expires_at = (now + self.config.token_ttl).min(grant.session_expires_at);
        let mut token_id = [0u8; 16];
        getrandom::fill(&mut token_id).map_err(internal)?;
        let claims = TokenClaims {
            handle: grant.handle,
            user_key: grant.user_key,
            epoch: grant.epoch,
            jkt: grant.jkt,
            issued_at: now,
            expires_at,
            session_expires_at: grant.session_expires_at,
            methods: grant.methods,
            token_id,
        };
        let token = match self.actors.sealer.seal(claims).await {
            Ok(Ok(token)) => token,
            Ok(Err(error)) => return Err(internal(error)),
            Err(_) => return Err(ApiError::Overloaded(Duration::from_secs(1))),
        };
        self.metrics
            .tokens_issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(serde_json::json!({
            "access_token": token,
            "token_type": "DPoP",
            "expires_in": expires_at.saturating_sub(now),
            "session_expires_in": grant.session_expires_at.saturating_sub(now),
        }))
    }

    /// The handle of a normalized username, from the sealer.
    pub(crate) async fn handle(&self, username: username::Username) -> Result<Handle, ApiError> {
        self.actors
            .sealer
            .handle(username)
            .await
            .map_err(|_| ApiError::Overloaded(Duration::from_secs(1)))
    }

    /// The handle a log-in attempt is counted and derived under. A name that does not normalize
    /// cannot have an account; it gets a handle of its own no account can have, so it costs and
    /// answers exactly like an unknown name.
    pub(crate) async fn login_handle(&self, raw: &str) -> Result<Handle, ApiError> {
        match username::normalize(raw) {
            Ok(username) => self.handle(username).await,
            Err(_) => {
                let digest = Sha256::new()
                    .chain_update(b"blindfold/v1/invalid-username")
                    .chain_update(raw.as_bytes())
                    .finalize();
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&digest);
                Ok(Handle(bytes))
            }
        }
    }

    /// Derives once, whatever the account and the password, and unwraps the user key if both
    /// are right.
    pub(crate) async fn check_password(
        &self,
        handle: &Handle,
        record: Option<&AccountRecord>,
        password: &Password,
    ) -> Result<Option<UserKey>, ApiError> {
        let (salt, params) = match record {
            Some(record) => (record.password.salt, record.password.params),
            None => (self.actors.kdf.decoy_salt(handle), self.config.kdf_params),
        };
        let acceptable = (1..=MAX_PASSWORD_BYTES).contains(&password.len());
        let derived = if acceptable {
            password.clone()
        } else {
            Password::from(&password.expose()[..password.len().min(MAX_PASSWORD_BYTES)])
        };
        let wrapping_key = self.derive(derived, salt, params).await?;

        let unwrapped = record.filter(|_| acceptable).and_then(|record| {
            user_key::unwrap_user_key(
                &wrapping_key,
                &record.password.wrapped_user_key,
                handle,
                LoginMethod::Password,
            )
            .ok()
        });
        Ok(unwrapped)
    }

    /// Derives the recovery wrapping key and tries one unwrap, whatever the account: a name
    /// without one tries its decoy wrap (as long as a real wrap, bound to the handle), which no
    /// recovery key opens, so it fails the way a wrong recovery key does.
    ///
    /// LIMITATION: only the key work is made equal. Before it, the store read of a known name
    /// opens its sealed account record (one more lookup and an AES-GCM-SIV open of the record),
    /// while an unknown name finds nothing; that difference stays, a few microseconds at most.
    /// A decoy record opened for unknown names would close it.
    pub(crate) fn check_recovery_key(
        &self,
        handle: &Handle,
        record: Option<&AccountRecord>,
        recovery_key: &RecoveryKey,
    ) -> Option<UserKey> {
        let decoy = self.actors.kdf.decoy_recovery_wrap(handle);
        let wrapped = match record {
            Some(record) => record.wrapped_user_key_recovery.as_slice(),
            None => decoy.as_slice(),
        };
        let wrapping_key = self.actors.kdf.recovery_wrapping_key(recovery_key);
        let unwrapped =
            user_key::unwrap_user_key(&wrapping_key, wrapped, handle, LoginMethod::Recovery).ok();

        // IMPORTANT: a decoy wrap never yields a user key, even in the (2^-128) event it opened.
        record.and(unwrapped)
    }

    /// One Argon2 derivation through the pool.
    pub(crate) async fn derive(
        &self,
        password: Password,
        salt: [u8; 16],
        params: KdfParams,
    ) -> Result<WrappingKey, ApiError> {
        self.actors
            .kdf
            .derive(DeriveJob {
                password,
                salt,
                params,
            })
            .await
            .map_err(|error| match error {
                KdfError::Overloaded => {
                    self.metrics
                        .kdf_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!("kdf.overloaded");
                    ApiError::Overloaded(Duration::from_secs(1))
                }
                KdfError::Unavailable => ApiError::Overloaded(Duration::from_secs(1)),
                KdfError::Failed => internal(error),
            })
    }

    /// The user key wrapped under a new password with a fresh salt and the current parameters.
    pub(crate) async fn new_password_wrap(
        &self,
        handle: &Handle,
        user_key: &UserKey,
        password: Password,
    ) -> Result<PasswordWrap, ApiError> {
        let salt = password::new_salt().map_err(internal)?;
        let params = self.config.kdf_params;
        let wrapping_key = self.derive(password, salt, params).await?;
        let wrapped_user_key =
            user_key::wrap_user_key(&wrapping_key, user_key, handle, LoginMethod::Password)
                .map_err(internal)?;
        Ok(PasswordWrap {
            salt,
            params,
            wrapped_user_key,
        })
    }

    /// The user key wrapped under a recovery key.
    fn recovery_wrap(
        &self,
        handle: &Handle,
        user_key: &UserKey,
        recovery_key: &RecoveryKey,
    ) -> Result<Vec<u8>, ApiError> {
        let wrapping_key = self.actors.kdf.recovery_wrapping_key(recovery_key);
        user_key::wrap_user_key(&wrapping_key, user_key, handle, LoginMethod::Recovery)
            .map_err(internal)
    }

    /// Finishes a sign-in whose first factor checked out: demands and spends the second factor
    /// when the account has one, and durably records `leading` events with a security-log entry
    /// named `entry`. A concurrent change makes it re-read the account and check again, so a
    /// code is never accepted twice.
    pub(crate) async fn complete_sign_in(
        &self,
        sign_in: &SignIn<'_>,
        mut record: AccountRecord,
        leading: Vec<Event>,
        entry: &str,
    ) -> Result<SignedIn, ApiError> {
        let SignIn {
            handle,
            user_key,
            code,
            device,
        } = *sign_in;
        for _ in 0..4 {
            let mut events = leading.clone();
            let mut second_factor = Methods::NONE;
            if record.totp.is_some() {
                let Some(code) = code else {
                    return Err(ApiError::SecondFactorRequired);
                };
                let Some(factor) = self.check_second_factor(handle, &record, user_key, code) else {
                    self.log_failed_second_factor(handle, &record, user_key, device)
                        .await;
                    return Err(ApiError::InvalidSecondFactor);
                };
                events.push(factor.spend());
                second_factor = factor.method();
            }
            events.push(self.security_entry(handle, user_key, entry, device)?);

            match self.append(handle, record.version, events).await {
                Ok(version) => {
                    let record = self
                        .account(handle)?
                        .filter(|r| r.version >= version)
                        .ok_or(ApiError::Conflict)?;
                    return Ok(SignedIn {
                        record,
                        second_factor,
                    });
                }
                Err(ApiError::Conflict) => {
                    record = self.account(handle)?.ok_or(ApiError::InvalidCredentials)?
                }
                Err(error) => return Err(error),
            }
        }
        Err(ApiError::Conflict)
    }

    /// Re-wraps the user key under the current Argon2 parameters after a log-in with older ones.
    /// Best effort: the log-in succeeds whether or not the upgrade lands.
    async fn upgrade_params(
        &self,
        handle: &Handle,
        record: &AccountRecord,
        user_key: &UserKey,
        password: Password,
    ) {
        let Ok(wrap) = self.new_password_wrap(handle, user_key, password).await else {
            return;
        };
        let event = Event::PasswordChanged {
            password: wrap,
            revoke_sessions: false,
        };
        if self
            .append(handle, record.version, vec![event])
            .await
            .is_ok()
        {
            tracing::info!("kdf.params_upgraded");
        }
    }

    /// Appends events durably through the ledger.
    pub(crate) async fn append(
        &self,
        handle: &Handle,
        expected_version: u64,
        events: Vec<Event>,
    ) -> Result<u64, ApiError> {
        let append = Append {
            handle: *handle,
            expected_version,
            at: self.now(),
            events,
        };
        self.actors
            .ledger
            .append(append)
            .await
            .map_err(|error| match error {
                LedgerError::Store(StoreError::Conflict { .. }) => ApiError::Conflict,
                LedgerError::Unavailable => ApiError::Overloaded(Duration::from_secs(1)),
                LedgerError::Store(error) => internal(error),
            })
    }
}

/// A new password, checked against the length policy.
fn checked_new_password(raw: &str) -> Result<Password, ApiError> {
    if raw.len() < MIN_PASSWORD_BYTES {
        return Err(ApiError::InvalidRequest(
            "The password must be at least 8 bytes long.",
        ));
    }
    if raw.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::InvalidRequest(
            "The password must be at most 1024 bytes long.",
        ));
    }
    Ok(Password::from(raw.as_bytes()))
}

/// Deepest nesting of objects and arrays a profile may have, the profile object itself counted.
pub(crate) const MAX_PROFILE_DEPTH: usize = 32;

/// A profile as the client wrote it, if it is a JSON object nested at most
/// [`MAX_PROFILE_DEPTH`] deep. Kept as text, so numbers and strings come back exactly as they
/// were sent.
pub(crate) fn checked_profile(raw: &serde_json::value::RawValue) -> Result<&str, ApiError> {
    let text = raw.get();
    if !text.starts_with('{') {
        return Err(ApiError::InvalidRequest(
            "The profile must be a JSON object.",
        ));
    }
    if nesting_depth(text) > MAX_PROFILE_DEPTH {
        return Err(ApiError::InvalidRequest(
            "The profile must be nested at most 32 levels deep.",
        ));
    }
    Ok(text)
}

/// The deepest nesting of objects and arrays in `json`, which **must already be valid JSON**.
/// One pass over the bytes with a counter, no recursion: brackets inside strings (escaped quotes
/// included) do not count.
fn nesting_depth(json: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Logs an internal failure once and answers without detail.
pub(crate) fn internal(error: impl std::fmt::Display) -> ApiError {
    tracing::error!(%error, "request.internal_error");
    ApiError::Internal
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(text: &str) -> Box<serde_json::value::RawValue> {
        serde_json::value::RawValue::from_string(text.to_owned()).unwrap()
    }

    fn nested(depth: usize) -> String {
        format!("{}{}", r#"{"a":"#.repeat(depth), "}".repeat(depth)).replacen(":}", ":1}", 1)
    }

    #[test]
    fn a_profile_nested_32_deep_is_accepted_and_33_deep_is_refused() {
        assert_eq!(nesting_depth(&nested(32)), 32);
        assert!(checked_profile(&profile(&nested(32))).is_ok());
        assert!(matches!(
            checked_profile(&profile(&nested(33))),
            Err(ApiError::InvalidRequest(_))
        ));
    }

    #[test]
    fn arrays_count_as_levels_and_brackets_inside_strings_do_not() {
        let deep_arrays = format!(r#"{{"a":{}1{}}}"#, "[".repeat(32), "]".repeat(32));
        assert_eq!(nesting_depth(&deep_arrays), 33);
        assert!(checked_profile(&profile(&deep_arrays)).is_err());

        let brackets_in_strings = r#"{"a":"[[[{{{\"[[[","b":["]]]{"]}"#;
        assert_eq!(nesting_depth(brackets_in_strings), 2);
        assert!(checked_profile(&profile(brackets_in_strings)).is_ok());
    }

    #[test]
    fn a_profile_ten_thousand_levels_deep_is_refused_without_overflowing_the_stack() {
        assert!(checked_profile(&profile(&nested(10_000))).is_err());
    }
}

//! The login check: user name + password from a peer address -> [`User`] or
//! [`AuthError::Refused`], with lockout counters kept in the index.
//!
//! Every refusal looks the same from outside: the same error, after the same path. The
//! argon2 check always runs (against a dummy hash for unknown names, and also for a
//! locked peer or account, a disabled account, or a user of another facility), and
//! the answer is held back until the failure delay, counted from the start of the
//! check, has passed: the work done before refusing (how many index look-ups, which
//! hash) does not show in the timing as long as it takes less than the delay. The
//! delay depends only on the peer's failure count, never on anything about the user
//! named, so a right password of another facility's user answers exactly like a
//! wrong one.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use argon2::password_hash::PasswordVerifier;
use argon2::{Argon2, PasswordHash};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::{debug, instrument, warn};

use super::{AuthError, AuthSettings, Password, User, Username, hash_password, peer_key};
use crate::db::users::{Credentials, StoredHash};
use crate::db::{Index, now_millis};
use crate::domain::FacilityId;

/// Checks user names and passwords against the index. Cheap to clone; clones share
/// the bound on concurrent argon2 checks.
#[derive(Clone)]
pub struct Authenticator {
    index: Index,
    settings: Arc<AuthSettings>,
    dummy_hash: Arc<str>,
    hashing: Arc<Semaphore>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Validates `settings` and prepares the dummy hash that unknown user names are
    /// checked against (same cost as new hashes, so their timing matches).
    pub async fn new(index: Index, settings: AuthSettings) -> Result<Authenticator, AuthError> {
        settings.validate().map_err(AuthError::Settings)?;
        let settings = Arc::new(settings);
        let for_hash = settings.clone();
        let dummy_hash = tokio::task::spawn_blocking(move || {
            let mut random = [0u8; 24];
            rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
            hash_password(&for_hash, &Password::new(hex::encode(random)))
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))??;
        let parallel = std::thread::available_parallelism().map_or(4, |n| n.get());
        Ok(Authenticator {
            index,
            settings,
            dummy_hash: dummy_hash.into(),
            hashing: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// The settings in effect.
    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// The user a failed login named, if the name is an existing user's: what an
    /// audit event may record. Anything else typed as a user name (a mistyped name,
    /// or a password entered in the wrong field) is never recorded.
    pub async fn known_user(&self, name: &str) -> Option<User> {
        let name = Username::parse(name).ok()?;
        let account = self.index.user_by_name(&name).await.ok()??;
        Some(account.user)
    }

    /// Checks `username` and `password` presented by `peer`, for any facility. Every
    /// kind of refusal is the same [`AuthError::Refused`], answered after the failure
    /// delay; only index failures differ ([`AuthError::Database`]).
    pub async fn verify(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, AuthError> {
        self.verify_for(username, password, peer, None).await
    }

    /// [`Authenticator::verify`], admitting only a user of `facility` when given: a
    /// user of another facility is refused like a wrong password (same path, same
    /// delay, and counted as a failure), whether its password was right or not.
    #[instrument(skip_all, fields(%peer), err(level = "debug"))]
    pub async fn verify_for(
        &self,
        username: &str,
        password: &str,
        peer: IpAddr,
        facility: Option<FacilityId>,
    ) -> Result<User, AuthError> {
        let started = Instant::now();
        let peer = peer_key(peer);
        let peer_lock = self
            .index
            .peer_failures(&peer)
            .await?
            .filter(|count| count.locked_at(now_millis()));
        let credentials = match Username::parse(username) {
            Ok(name) => self.index.credentials(&name).await?,
            Err(_) => None,
        };
        let hash = credentials
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |c| stored(&c.hash));
        // Always run, whatever is already known to be wrong.
        let matches = self.check(hash, Password::new(password)).await?;
        if let Some(count) = peer_lock {
            debug!("peer is locked out");
            return self.refuse(count.failed_count, started).await;
        }
        let now = now_millis();
        if let Some(Credentials { account, .. }) = &credentials {
            let locked = account.locked_until.is_some_and(|until| until > now);
            let ours = facility.is_none_or(|f| f == account.user.facility);
            if matches && ours && !account.disabled && !locked {
                if account.failed_count != 0 || account.locked_until.is_some() {
                    self.index.reset_user_failures(account.user.id).await?;
                }
                return Ok(account.user.clone());
            }
        }
        self.record_failure(&peer, credentials.as_ref(), now, started)
            .await
    }

    /// Counts a failure for the peer and the user (if it exists and is not locked),
    /// then refuses.
    async fn record_failure(
        &self,
        peer: &str,
        credentials: Option<&Credentials>,
        now: i64,
        started: Instant,
    ) -> Result<User, AuthError> {
        let s = &self.settings;
        let lockout_ms = (s.lockout_secs * 1000) as i64;
        let by_peer = self
            .index
            .record_peer_failure(peer, s.peer_max_failures, lockout_ms, now)
            .await?;
        if by_peer.locked_at(now) && by_peer.failed_count == i64::from(s.peer_max_failures) {
            warn!(
                failures = by_peer.failed_count,
                lockout_secs = s.lockout_secs,
                "peer locked out after repeated failed logins"
            );
        }
        if let Some(Credentials { account, .. }) = credentials {
            let by_user = self
                .index
                .record_user_failure(account.user.id, s.max_failures, now + lockout_ms, now)
                .await?;
            if let Some(by_user) = by_user
                && by_user.locked_at(now)
                && by_user.failed_count % i64::from(s.max_failures) == 0
            {
                warn!(
                    user = %account.user.username,
                    failures = by_user.failed_count,
                    lockout_secs = s.lockout_secs,
                    "account locked after repeated failed logins"
                );
            }
        }
        // The peer's count only: the user's would tell whether the name exists.
        self.refuse(by_peer.failed_count, started).await
    }

    /// Refuses once the failure delay for the peer's `consecutive`-th failure has
    /// passed since `started`.
    async fn refuse(&self, consecutive: i64, started: Instant) -> Result<User, AuthError> {
        tokio::time::sleep_until(started + self.settings.failure_delay(consecutive)).await;
        Err(AuthError::Refused)
    }

    /// Runs the argon2 check on a blocking thread, at most one per CPU at a time.
    async fn check(&self, hash: Arc<str>, password: Password) -> Result<bool, AuthError> {
        let permit = self
            .hashing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_hash(&hash, &password)
        })
        .await
        .map_err(|e| AuthError::Hashing(e.to_string()))
    }
}

fn stored(hash: &StoredHash) -> Arc<str> {
    hash.as_phc().into()
}

fn verify_hash(phc: &str, password: &Password) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.expose().as_bytes(), &parsed)
            .is_ok(),
        Err(_) => {
            warn!("a stored password hash is not a valid PHC string; refusing the login");
            false
        }
    }
}

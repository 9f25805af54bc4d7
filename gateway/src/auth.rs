//! Users and passwords: who may query and retrieve, and the password check that lets
//! them in.
//!
//! Owns the validated [`Username`], the [`Role`]s, the redacted [`Password`] wrapper,
//! the `[auth]` settings, argon2id hashing ([`hash_password`]) and the
//! [`Authenticator`], which checks a user name and password from a peer against the
//! index with lockout. It must not decide what a user may see (the Q/R service scopes
//! by [`User::facility`]), and it must never put a password, or anything that tells
//! which part of a login was wrong, into an error, a log line or a `Debug` output.

mod authenticator;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Deserialize;
use zeroize::Zeroizing;

pub use authenticator::Authenticator;

use crate::db::DbError;
use crate::domain::FacilityId;

/// Fewest characters a new password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Most characters a new password may have.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// The OWASP minimum argon2id memory cost, in KiB (19 MiB).
pub const MIN_ARGON2_M_KIB: u32 = 19 * 1024;

/// What a user may do. Every role is bound to its facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Queries and retrieves the facility's studies.
    Clinician,
    /// Manages the facility's users, devices and rules.
    FacilityAdmin,
    /// Runs the gateway.
    Operator,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Clinician, Role::FacilityAdmin, Role::Operator];

    /// The name stored in the index and used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Clinician => "clinician",
            Role::FacilityAdmin => "facility-admin",
            Role::Operator => "operator",
        }
    }

    /// Parses a role name.
    pub fn parse(name: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| {
                format!("unknown role {name:?}: use clinician, facility-admin or operator")
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A user name: 1 to 64 characters of `A-Z a-z 0-9 . _ @ -`. Unique across
/// facilities and case-sensitive. Safe in SQL parameters and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Username(String);

impl Username {
    /// Validates a user name.
    pub fn parse(name: &str) -> Result<Username, String> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-');
        if name.is_empty() || name.len() > 64 || !name.chars().all(ok_char) {
            let shown: String = name
                .chars()
                .take(70)
                .filter(|c| c.is_ascii_graphic())
                .collect();
            return Err(format!(
                "invalid user name {shown:?}: use 1 to 64 letters, digits, '.', '_', '@' or '-'"
            ));
        }
        Ok(Username(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// An authenticated user: everything its requests are scoped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Row id.
    pub id: i64,
    /// The only facility whose data the user may see.
    pub facility: FacilityId,
    /// User name.
    pub username: Username,
    /// Role.
    pub role: Role,
}

/// A plaintext password, wiped from memory when dropped. It has no `Display`, and
/// its `Debug` prints `[redacted]`.
pub struct Password(Zeroizing<String>);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(Zeroizing::new(password.into()))
    }

    /// The plaintext, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the policy for new passwords: [`MIN_PASSWORD_CHARS`] to
    /// [`MAX_PASSWORD_CHARS`] characters.
    pub fn check_policy(&self) -> Result<(), AuthError> {
        let chars = self.0.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(AuthError::PasswordTooShort);
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(AuthError::PasswordTooLong);
        }
        Ok(())
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// `[auth]`: password hashing cost and lockout.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// argon2id memory cost `m` of new hashes, in KiB; at least 19456 (19 MiB).
    pub argon2_m_kib: u32,
    /// argon2id iterations `t` of new hashes; at least 2.
    pub argon2_t: u32,
    /// argon2id parallelism `p` of new hashes; at least 1.
    pub argon2_p: u32,
    /// Consecutive failed logins of one user that lock it.
    pub max_failures: u32,
    /// Failed logins from one peer address (any user names) that lock the peer.
    pub peer_max_failures: u32,
    /// How long a lock lasts, in seconds.
    pub lockout_secs: u64,
    /// Delay before answering the first failure, in ms; doubles with each
    /// consecutive failure.
    pub failure_delay_ms: u64,
    /// Longest delay before answering a failure, in ms.
    pub failure_delay_max_ms: u64,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            argon2_m_kib: MIN_ARGON2_M_KIB,
            argon2_t: 2,
            argon2_p: 1,
            max_failures: 5,
            peer_max_failures: 20,
            lockout_secs: 300,
            failure_delay_ms: 250,
            failure_delay_max_ms: 2000,
        }
    }
}

impl AuthSettings {
    /// Refuses settings weaker than the OWASP minimum or that make no sense.
    pub fn validate(&self) -> Result<(), String> {
        if !(MIN_ARGON2_M_KIB..=4 * 1024 * 1024).contains(&self.argon2_m_kib) {
            return Err(format!(
                "auth.argon2_m_kib must be between {MIN_ARGON2_M_KIB} (19 MiB) and 4194304 (4 GiB)"
            ));
        }
        if !(2..=100).contains(&self.argon2_t) {
            return Err("auth.argon2_t must be between 2 and 100".into());
        }
        if !(1..=64).contains(&self.argon2_p) {
            return Err("auth.argon2_p must be between 1 and 64".into());
        }
        if self.max_failures == 0 || self.peer_max_failures == 0 {
            return Err("auth.max_failures and auth.peer_max_failures must be at least 1".into());
        }
        if !(1..=7 * 86400).contains(&self.lockout_secs) {
            return Err("auth.lockout_secs must be between 1 and 604800 (a week)".into());
        }
        if self.failure_delay_max_ms > 60_000 || self.failure_delay_ms > self.failure_delay_max_ms {
            return Err(
                "auth.failure_delay_ms must not exceed auth.failure_delay_max_ms, which must not exceed 60000"
                    .into(),
            );
        }
        Ok(())
    }

    fn hasher(&self) -> Result<Argon2<'static>, AuthError> {
        let params = Params::new(self.argon2_m_kib, self.argon2_t, self.argon2_p, None)
            .map_err(|e| AuthError::Settings(format!("argon2 parameters: {e}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// How long to wait before answering the `consecutive`-th failure in a row:
    /// `failure_delay_ms` doubled per earlier failure, at most `failure_delay_max_ms`.
    pub fn failure_delay(&self, consecutive: i64) -> Duration {
        let doublings = consecutive.clamp(1, 21) as u32 - 1;
        let ms = self
            .failure_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.failure_delay_max_ms);
        Duration::from_millis(ms)
    }
}

/// Failures of user management and of the login check.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The login is refused. Every reason (unknown user, wrong password, disabled
    /// account, locked account or peer) gives this same error.
    #[error(
        "authentication failed: wrong user name or password, or too many failed attempts (try again later)"
    )]
    Refused,
    /// A new password is too short.
    #[error("password too short: use at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    /// A new password is too long.
    #[error("password too long: use at most {MAX_PASSWORD_CHARS} characters")]
    PasswordTooLong,
    /// The `[auth]` settings cannot be used.
    #[error("invalid auth settings: {0}")]
    Settings(String),
    /// Hashing could not run.
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The index could not be read or written.
    #[error("cannot check credentials: {0}")]
    Database(#[from] DbError),
}

/// Hashes a new password with argon2id, the configured cost and a random salt, after
/// checking the password policy. Returns the PHC string. CPU-heavy: call it from a
/// blocking thread, not an async worker.
pub fn hash_password(settings: &AuthSettings, password: &Password) -> Result<String, AuthError> {
    password.check_policy()?;
    let salt = SaltString::generate(&mut rand_core::OsRng);
    settings
        .hasher()?
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// The key under which failures from `ip` are counted: the IPv4 address, or the /64
/// prefix of an IPv6 address (one host usually owns a whole /64).
pub fn peer_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked() {
        for good in ["alice", "dr.bob_2@st-mary", &"a".repeat(64)] {
            assert!(Username::parse(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a b", "a/b", "ü", "a'--", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn passwords_never_show_in_debug() {
        let password = Password::new("correct horse battery staple");
        assert_eq!(format!("{password:?}"), "Password([redacted])");
    }

    #[test]
    fn password_policy() {
        assert!(matches!(
            Password::new("elevenchars").check_policy(),
            Err(AuthError::PasswordTooShort)
        ));
        assert!(Password::new("twelve chars").check_policy().is_ok());
        // Characters, not bytes.
        assert!(Password::new("ääääääääääää").check_policy().is_ok());
        assert!(Password::new("äääääääääää").check_policy().is_err());
    }

    #[test]
    fn roles_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert!(Role::parse("admin").is_err());
    }

    #[test]
    fn settings_below_the_owasp_minimum_are_refused() {
        assert!(AuthSettings::default().validate().is_ok());
        for weak in [
            AuthSettings {
                argon2_m_kib: 19455,
                ..AuthSettings::default()
            },
            AuthSettings {
                argon2_t: 1,
                ..AuthSettings::default()
            },
            AuthSettings {
                argon2_p: 0,
                ..AuthSettings::default()
            },
            AuthSettings {
                max_failures: 0,
                ..AuthSettings::default()
            },
        ] {
            assert!(weak.validate().is_err(), "{weak:?}");
        }
    }

    #[test]
    fn failure_delay_grows_and_is_capped() {
        let s = AuthSettings::default();
        let ms = |n| s.failure_delay(n).as_millis();
        assert_eq!((ms(0), ms(1), ms(2), ms(3)), (250, 250, 500, 1000));
        assert_eq!((ms(4), ms(5), ms(1000)), (2000, 2000, 2000));
    }

    #[test]
    fn peers_are_keyed_by_address_or_ipv6_prefix() {
        let key = |s: &str| peer_key(s.parse().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2::9"), key("2001:db8:1:2:ffff::1"));
    }
}

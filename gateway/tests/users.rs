//! Users and the password check, as the Q/R service relies on them: argon2id hashes
//! with the configured cost, one generic refusal for every kind of wrong login, and
//! lockouts (per user and per peer address) shared by every gateway process on the
//! database. Runs on SQLite and, with `PACS_TEST_DATABASE_URL`, on PostgreSQL.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use gateway::auth::{
    AuthError, AuthSettings, Authenticator, Password, Role, User, Username, hash_password,
};
use gateway::db::Index;
use gateway::domain::FacilityName;

use common::{Backend, Options, Setup};

const PASSWORD: &str = "correct horse battery";
const PEER: &str = "192.0.2.10";

/// Small, fast settings: lock after 3 failures for 2 s, 10 ms base delay.
fn settings() -> AuthSettings {
    AuthSettings {
        argon2_m_kib: 19456,
        argon2_t: 2,
        argon2_p: 1,
        max_failures: 3,
        peer_max_failures: 5,
        lockout_secs: 2,
        failure_delay_ms: 10,
        failure_delay_max_ms: 40,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

async fn add_user(index: &Index, setup: &Setup, name: &str, password: &str) -> User {
    let hash = hash_password(&settings(), &Password::new(password)).unwrap();
    index
        .create_user(
            setup.facility.id,
            &Username::parse(name).unwrap(),
            Role::Clinician,
            &hash,
        )
        .await
        .unwrap()
}

async fn start(backend: Backend) -> (Setup, Index, Authenticator) {
    let setup = Setup::new(backend, &Options::default()).await;
    let index = setup.index().await;
    let auth = Authenticator::new(index.clone(), settings()).await.unwrap();
    (setup, index, auth)
}

/// The refusal, as its text (the same for every reason).
async fn refusal(auth: &Authenticator, user: &str, password: &str, peer: &str) -> String {
    match auth.verify(user, password, ip(peer)).await {
        Err(e @ AuthError::Refused) => e.to_string(),
        other => panic!("{user}/{peer}: expected a refusal, got {other:?}"),
    }
}

async fn failed_count(index: &Index, name: &str) -> i64 {
    let account = index
        .user_by_name(&Username::parse(name).unwrap())
        .await
        .unwrap()
        .unwrap();
    account.failed_count
}

both_backends!(hashes_are_argon2id_with_the_configured_cost);
async fn hashes_are_argon2id_with_the_configured_cost(backend: Backend) {
    let (setup, index, _auth) = start(backend).await;
    add_user(&index, &setup, "alice", PASSWORD).await;
    let stored = index
        .credentials(&Username::parse("alice").unwrap())
        .await
        .unwrap()
        .unwrap();
    let phc = stored.hash.as_phc().to_string();
    assert!(
        !format!("{stored:?}").contains(&phc),
        "Debug shows the hash"
    );
    let parsed = argon2::PasswordHash::new(&phc).expect("a PHC string");
    assert_eq!(parsed.algorithm.as_str(), "argon2id");
    assert_eq!(parsed.version, Some(0x13));
    let param = |name: &str| parsed.params.get_decimal(name);
    assert_eq!(
        (param("m"), param("t"), param("p")),
        (Some(19456), Some(2), Some(1))
    );
    assert!(parsed.salt.is_some_and(|s| s.len() >= 16), "random salt");
    assert!(!phc.contains(PASSWORD));

    let stronger = AuthSettings {
        argon2_m_kib: 32768,
        argon2_t: 3,
        ..settings()
    };
    let other = hash_password(&stronger, &Password::new(PASSWORD)).unwrap();
    let parsed = argon2::PasswordHash::new(&other).unwrap();
    assert_eq!(parsed.params.get_decimal("m"), Some(32768));
    assert_eq!(parsed.params.get_decimal("t"), Some(3));
    assert_ne!(other, phc, "each hash has its own salt");

    assert!(matches!(
        hash_password(&settings(), &Password::new("short")),
        Err(AuthError::PasswordTooShort)
    ));
    let weak = AuthSettings {
        argon2_m_kib: 4096,
        ..settings()
    };
    assert!(Authenticator::new(index, weak).await.is_err());
}

both_backends!(right_password_logs_in_and_every_refusal_looks_the_same);
async fn right_password_logs_in_and_every_refusal_looks_the_same(backend: Backend) {
    let (setup, index, auth) = start(backend).await;
    let alice = add_user(&index, &setup, "alice", PASSWORD).await;
    let bob = add_user(&index, &setup, "bob", PASSWORD).await;
    index.set_disabled(bob.id, true).await.unwrap();

    let user = auth.verify("alice", PASSWORD, ip(PEER)).await.unwrap();
    assert_eq!(user, alice);
    assert_eq!(user.facility, setup.facility.id);
    assert_eq!(user.role, Role::Clinician);

    let wrong = refusal(&auth, "alice", "correct horse battery!", PEER).await;
    let unknown = refusal(&auth, "mallory", PASSWORD, PEER).await;
    let disabled = refusal(&auth, "bob", PASSWORD, PEER).await;
    let invalid = refusal(&auth, "no such/user'--", PASSWORD, PEER).await;
    let case = refusal(&auth, "Alice", PASSWORD, PEER).await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, disabled);
    assert_eq!(wrong, invalid);
    assert_eq!(wrong, case, "user names are case-sensitive");
    for leak in [
        "alice", "bob", "mallory", "disabled", "unknown", "exist", PASSWORD,
    ] {
        assert!(!wrong.contains(leak), "{wrong:?} mentions {leak:?}");
    }

    // Five failures from PEER: it is now locked out (peer_max_failures = 5).
    index.set_disabled(bob.id, false).await.unwrap();
    refusal(&auth, "bob", PASSWORD, PEER).await;
    assert_eq!(
        auth.verify("bob", PASSWORD, ip("192.0.2.12"))
            .await
            .unwrap(),
        bob
    );

    // A password change takes effect at once.
    let hash = hash_password(&settings(), &Password::new("a brand new passphrase")).unwrap();
    index.set_password(alice.id, &hash, None).await.unwrap();
    refusal(&auth, "alice", PASSWORD, "192.0.2.11").await;
    auth.verify("alice", "a brand new passphrase", ip("192.0.2.11"))
        .await
        .unwrap();
}

both_backends!(repeated_failures_lock_the_account_for_the_configured_time);
async fn repeated_failures_lock_the_account_for_the_configured_time(backend: Backend) {
    let (setup, index, auth) = start(backend).await;
    let alice = add_user(&index, &setup, "alice", PASSWORD).await;
    let wrong = "not the password at all";

    // Failures are answered after a growing delay (10, 20, 40 ms).
    let started = Instant::now();
    for _ in 0..3 {
        refusal(&auth, "alice", wrong, PEER).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(70));
    assert_eq!(failed_count(&index, "alice").await, 3);
    let locked_at = Instant::now();

    // Locked: even the right password is refused, with the same error, and a second
    // gateway process on the same database sees the same lock.
    let generic = refusal(&auth, "alice", wrong, "192.0.2.99").await;
    assert_eq!(refusal(&auth, "alice", PASSWORD, PEER).await, generic);
    let other_process = Authenticator::new(setup.index().await, settings())
        .await
        .unwrap();
    assert_eq!(
        refusal(&other_process, "alice", PASSWORD, "192.0.2.50").await,
        generic
    );
    assert_eq!(
        failed_count(&index, "alice").await,
        3,
        "a lock is not extended"
    );

    // After the lock, the right password is accepted and the counter is reset.
    tokio::time::sleep(Duration::from_millis(2100).saturating_sub(locked_at.elapsed())).await;
    let user = other_process
        .verify("alice", PASSWORD, ip("192.0.2.51"))
        .await
        .unwrap();
    assert_eq!(user, alice);
    let account = index.user_by_name(&alice.username).await.unwrap().unwrap();
    assert_eq!((account.failed_count, account.locked_until), (0, None));

    // Reset means a fresh count: two more failures do not lock.
    for _ in 0..2 {
        refusal(&auth, "alice", wrong, "192.0.2.52").await;
    }
    auth.verify("alice", PASSWORD, ip("192.0.2.52"))
        .await
        .unwrap();

    // An administrator's new password also lifts a lock.
    for _ in 0..3 {
        refusal(&auth, "alice", wrong, "192.0.2.53").await;
    }
    refusal(&auth, "alice", PASSWORD, "192.0.2.53").await;
    let hash = hash_password(&settings(), &Password::new(PASSWORD)).unwrap();
    index.set_password(alice.id, &hash, None).await.unwrap();
    auth.verify("alice", PASSWORD, ip("192.0.2.53"))
        .await
        .unwrap();
}

both_backends!(one_peer_guessing_many_user_names_is_locked_out);
async fn one_peer_guessing_many_user_names_is_locked_out(backend: Backend) {
    let (setup, index, auth) = start(backend).await;
    add_user(&index, &setup, "alice", PASSWORD).await;
    add_user(&index, &setup, "carol", PASSWORD).await;
    let attacker = "2001:db8:7:7::1";

    // Five failures over different names (none reaches a user's own limit of 3).
    for name in ["alice", "bob", "carol", "dave", "erin"] {
        refusal(&auth, name, "guess guess guess", attacker).await;
    }
    assert_eq!(failed_count(&index, "alice").await, 1);

    // The peer (its whole IPv6 /64) is locked, whatever the user and password, and
    // so it is for another process on the same database.
    let generic = refusal(&auth, "carol", PASSWORD, attacker).await;
    assert_eq!(
        refusal(&auth, "alice", PASSWORD, "2001:db8:7:7:ffff::2").await,
        generic
    );
    let other_process = Authenticator::new(setup.index().await, settings())
        .await
        .unwrap();
    refusal(&other_process, "alice", PASSWORD, attacker).await;

    // Other peers are not affected, and the users are not locked.
    auth.verify("alice", PASSWORD, ip("192.0.2.20"))
        .await
        .unwrap();
    auth.verify("carol", PASSWORD, ip("::ffff:192.0.2.21"))
        .await
        .unwrap();

    // After the lock, the peer starts over.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    auth.verify("alice", PASSWORD, ip(attacker)).await.unwrap();
}

both_backends!(users_are_listed_per_facility_and_names_are_unique);
async fn users_are_listed_per_facility_and_names_are_unique(backend: Backend) {
    let (setup, index, _auth) = start(backend).await;
    let other = index
        .create_facility(&FacilityName::parse("st-john").unwrap(), false)
        .await
        .unwrap();
    add_user(&index, &setup, "alice", PASSWORD).await;
    let hash = hash_password(&settings(), &Password::new(PASSWORD)).unwrap();
    let dave = Username::parse("dave").unwrap();
    index
        .create_user(other.id, &dave, Role::FacilityAdmin, &hash)
        .await
        .unwrap();
    let again = index
        .create_user(
            other.id,
            &Username::parse("alice").unwrap(),
            Role::Clinician,
            &hash,
        )
        .await;
    assert!(
        again.unwrap_err().to_string().contains("already exists"),
        "user names are unique across facilities"
    );

    let all = index.list_users(None).await.unwrap();
    let names: Vec<_> = all.iter().map(|a| a.user.username.as_str()).collect();
    assert_eq!(names, ["dave", "alice"], "by facility name, then user name");
    let only = index.list_users(Some(other.id)).await.unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].user.role, Role::FacilityAdmin);
    assert_eq!(only[0].facility_name.as_str(), "st-john");
}

//! Uniform timing of refused logins on a real gateway (DICOM User Identity
//! Negotiation on the plain port): eight kinds of failure, from an unknown user name
//! to the right password of another facility's user, each tried 20 times in
//! interleaved rounds; the median answer times must lie within 10% of each other, so
//! that the answer tells nothing about which part of the login was wrong.
//!
//! The failure delay is fixed (400 ms, not doubling) so that the rounds are
//! comparable; lockouts are set up directly in the index.

mod common;

use std::time::{Duration, Instant};

use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::{Credentials, Proposal, ScuAssociation};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password, peer_key};
use gateway::db::{Index, now_millis};
use gateway::domain::FacilityId;

use common::peers::plain_options;
use common::{Backend, Options, Setup, TestGateway};

const PASSWORD: &str = "correct horse battery";
const WRONG: &str = "wrong password!!";
const ROUNDS: usize = 20;
const DELAY_MS: u64 = 400;

fn settings() -> AuthSettings {
    AuthSettings {
        // Never locked by the attempts themselves: locks are set up explicitly.
        max_failures: 1_000_000,
        peer_max_failures: 1_000_000,
        failure_delay_ms: DELAY_MS,
        failure_delay_max_ms: DELAY_MS,
        ..AuthSettings::default()
    }
}

async fn add_user(index: &Index, facility: FacilityId, name: &str) -> i64 {
    let hash = hash_password(&settings(), &Password::new(PASSWORD)).unwrap();
    index
        .create_user(
            facility,
            &Username::parse(name).unwrap(),
            Role::Clinician,
            &hash,
        )
        .await
        .unwrap()
        .id
}

/// One query/retrieve association attempt as `user`/`password`; returns how long the
/// refusal took, and panics if it was admitted.
async fn attempt(gw: &TestGateway, user: &str, password: &str) -> Duration {
    let mut options = plain_options();
    options.credentials = Some(Credentials::UsernamePassword {
        username: user.into(),
        password: password.into(),
    });
    let started = Instant::now();
    let result = ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.plain_port),
        &options,
        &[Proposal::query(STUDY_ROOT_FIND)],
    )
    .await;
    let took = started.elapsed();
    match result {
        Err(dimse::DimseError::Rejected(_)) => took,
        Err(e) => panic!("{user}: expected a rejection, got {e}"),
        Ok(_) => panic!("{user}/{password}: admitted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_kind_of_refused_login_takes_the_same_time() {
    let mut setup = Setup::new(Backend::Sqlite, &Options::default()).await;
    setup.config.auth = settings();
    let other = {
        let index = setup.index().await;
        let other = index
            .create_facility(
                &gateway::domain::FacilityName::parse("other-clinic").unwrap(),
                true,
            )
            .await
            .unwrap();
        add_user(&index, setup.facility.id, "doc-a").await;
        add_user(&index, other.id, "doc-b").await;
        let off = add_user(&index, setup.facility.id, "doc-off").await;
        index.set_disabled(off, true).await.unwrap();
        let locked = add_user(&index, setup.facility.id, "doc-locked").await;
        let now = now_millis();
        let until = now + 3_600_000;
        index
            .record_user_failure(locked, 1, until, now)
            .await
            .unwrap()
            .expect("lock doc-locked");
        index.close().await;
        other
    };
    assert_ne!(other.id, setup.facility.id);
    let gw = TestGateway::start(setup).await;
    let index = gw.index().await;
    // The right password does get in (so the refusals below are about the kinds).
    let mut options = plain_options();
    options.credentials = Some(Credentials::UsernamePassword {
        username: "doc-a".into(),
        password: PASSWORD.into(),
    });
    let admitted = ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.plain_port),
        &options,
        &[Proposal::query(STUDY_ROOT_FIND)],
    )
    .await
    .expect("doc-a with the right password is admitted");
    admitted.release().await.unwrap();

    let kinds: [(&str, &str, &str); 8] = [
        ("unknown user", "nobody-here", PASSWORD),
        ("invalid user name", "no such/user'--", PASSWORD),
        ("wrong password", "doc-a", WRONG),
        ("other facility, right password", "doc-b", PASSWORD),
        ("other facility, wrong password", "doc-b", WRONG),
        ("disabled, right password", "doc-off", PASSWORD),
        ("locked, right password", "doc-locked", PASSWORD),
        ("locked peer, right password", "doc-a", PASSWORD),
    ];
    let peer = peer_key("127.0.0.1".parse().unwrap());
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for _ in 0..ROUNDS {
        for (k, (what, user, password)) in kinds.iter().enumerate() {
            let locked_peer = *what == "locked peer, right password";
            if locked_peer {
                index
                    .record_peer_failure(&peer, 1, 3_600_000, now_millis())
                    .await
                    .unwrap();
            }
            times[k].push(attempt(&gw, user, password).await);
            if locked_peer {
                // A lock that ended a millisecond ago.
                index
                    .record_peer_failure(&peer, 1, -1, now_millis())
                    .await
                    .unwrap();
            }
        }
    }
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            (t[ROUNDS / 2 - 1] + t[ROUNDS / 2]) / 2
        })
        .collect();
    let report: Vec<String> = kinds
        .iter()
        .zip(&medians)
        .map(|((what, _, _), m)| format!("{what}: {m:?}"))
        .collect();
    println!("median refusal time of 20 per kind: {}", report.join("; "));
    let fastest = medians.iter().min().unwrap().as_secs_f64();
    let slowest = medians.iter().max().unwrap().as_secs_f64();
    assert!(
        fastest >= Duration::from_millis(DELAY_MS).as_secs_f64(),
        "a refusal came before the failure delay: {}",
        report.join("; ")
    );
    assert!(
        slowest <= fastest * 1.10,
        "refusal times differ by more than 10% between kinds: {}",
        report.join("; ")
    );
}

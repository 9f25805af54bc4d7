//! The admin API in the audit trail: every changing request, answered or refused,
//! becomes an event of the right kind and facility (never with a password or a
//! request body), and `GET .../audit` shows a facility its own events only, filtered
//! and paged.

mod common;
mod http_support;

use axum::http::{Method, StatusCode};
use common::Backend;
use http_support::{A, ADMIN_A, ADMIN_B, Api, OTHER, PASSWORD};
use serde_json::{Value, json};

const NEW_PASSWORD: &str = "a brand new long password";

/// Every event of `facility` as `token` sees it, newest first (all pages).
async fn all_events(api: &Api, facility: &str, token: &str, query: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = Api::path(facility, &format!("/audit?limit=2{query}"));
        if let Some(id) = before {
            path += &format!("&before_id={id}");
        }
        let reply = api.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let page = reply.body["events"].as_array().expect("events").clone();
        assert!(page.len() <= 2, "limit honoured");
        events.extend(page);
        match reply.body["next_before_id"].as_i64() {
            Some(id) => before = Some(id),
            None => break,
        }
    }
    events
}

fn find<'a>(events: &'a [Value], kind: &str, detail: &str) -> Option<&'a Value> {
    events
        .iter()
        .find(|e| e["kind"] == kind && e["detail"].as_str().is_some_and(|d| d.contains(detail)))
}

async fn changes_are_audited(backend: Backend) {
    let api = Api::new(backend).await;
    let wrong = api.try_login(ADMIN_A, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let typed = api.try_login("Typed-Secret.2026", PASSWORD).await;
    assert_eq!(typed.status, StatusCode::UNAUTHORIZED);
    let token = api.login(ADMIN_A).await;
    let created = api
        .call(
            Method::POST,
            &Api::path(A, "/users"),
            Some(&token),
            Some(json!({"username": "new-doc", "role": "clinician", "password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let disabled = api
        .call(
            Method::POST,
            &Api::path(A, "/users/new-doc/disable"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT);
    // A probe of another facility: refused, and shown to the prober's facility only.
    let probe = api
        .call(
            Method::POST,
            &Api::path(OTHER, "/users/admin-b/disable"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(probe.status, StatusCode::NOT_FOUND);
    let bad = api
        .call(
            Method::GET,
            &Api::path(A, "/audit?kind=bogus"),
            Some(&token),
            None,
        )
        .await;
    bad.assert_error(StatusCode::BAD_REQUEST, "bad_request", "unknown kind");
    let sql = api
        .call(
            Method::GET,
            &Api::path(A, "/audit?user=x'%20OR%20'1'='1"),
            Some(&token),
            None,
        )
        .await;
    sql.assert_error(StatusCode::BAD_REQUEST, "bad_request", "SQL-looking user");
    api.state.audit.flush().await;

    let events = all_events(&api, A, &token, "").await;
    let failure = find(
        &events,
        "authentication-failure",
        "POST /api/v1/login -> 401",
    )
    .expect("failed login recorded for the user's facility");
    assert_eq!(failure["username"], ADMIN_A);
    assert_eq!(failure["outcome"], "minor-failure");
    assert_eq!(failure["protocol"], "https");
    let login = find(&events, "login", "POST /api/v1/login -> 200").expect("login recorded");
    assert_eq!(login["username"], ADMIN_A);
    assert_eq!(login["outcome"], "success");
    let change = find(
        &events,
        "admin-change",
        &format!("POST /api/v1/facilities/{A}/users -> 201"),
    )
    .expect("user creation recorded");
    assert_eq!(change["username"], ADMIN_A);
    let disable = find(
        &events,
        "admin-change",
        &format!("POST /api/v1/facilities/{A}/users/new-doc/disable -> 204"),
    )
    .expect("a successful change names its object");
    assert_eq!(disable["username"], ADMIN_A);
    let refused = find(&events, "admin-change", "/users/{username}/disable -> 404")
        .expect("the refused probe is in the prober's own trail");
    assert_eq!(refused["outcome"], "minor-failure");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no page overlap: {ids:?}"
    );

    // Filters.
    let logins = all_events(&api, A, &token, "&kind=login").await;
    assert!(!logins.is_empty() && logins.iter().all(|e| e["kind"] == "login"));
    let failures = all_events(&api, A, &token, "&outcome=minor-failure").await;
    assert!(failures.len() >= 2 && failures.iter().all(|e| e["outcome"] == "minor-failure"));
    let future = all_events(&api, A, &token, "&from=2100-01-01T00:00:00Z").await;
    assert!(future.is_empty());

    // No password or body in the trail.
    let text = serde_json::to_string(&events).unwrap();
    for secret in [PASSWORD, NEW_PASSWORD, "not the password"] {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked into the audit trail"
        );
    }

    // A name that is no user's (perhaps a password in the wrong field) is nowhere.
    let rows: Vec<(Option<String>, String)> =
        sqlx::query_as("SELECT username, detail FROM audit_events")
            .fetch_all(&api.pool)
            .await
            .unwrap();
    assert!(
        rows.iter()
            .any(|(u, d)| u.is_none() && d.contains("unknown user name"))
    );
    assert!(
        rows.iter().all(|(u, d)| !d.contains("Typed-Secret")
            && !u.as_deref().is_some_and(|u| u.contains("Typed-Secret"))),
        "{rows:?}"
    );

    // The other facility's trail has none of A's actions.
    let token_b = api.login(ADMIN_B).await;
    api.state.audit.flush().await;
    let theirs = all_events(&api, OTHER, &token_b, "").await;
    assert!(
        theirs.iter().all(|e| e["username"] != ADMIN_A),
        "A's actions leaked into B's trail: {theirs:?}"
    );
    // And A cannot read B's trail.
    let cross = api
        .call(Method::GET, &Api::path(OTHER, "/audit"), Some(&token), None)
        .await;
    cross.assert_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "another facility's audit",
    );
    api.stop().await;
}

both_backends!(changes_are_audited);

//! Facility scoping and hostile input on the admin API: a facility administrator of
//! one facility naming another facility (or its users, destinations, certificates and
//! studies) gets 404 and never data; clinicians get 403; malformed, oversized,
//! unknown-field, wrong-type and SQL-looking input gets a clean 4xx JSON error and
//! changes nothing.

mod common;
mod http_support;

use axum::http::{Method, StatusCode};
use common::Backend;
use http_support::{A, ADMIN_A, ADMIN_B, Api, DOC_A, DOC_B, OTHER, Reply};
use serde_json::{Value, json};

/// Everything the API can show about both facilities, read as the operator.
async fn snapshot(api: &Api, op: &str) -> Value {
    let mut out = serde_json::Map::new();
    for facility in [A, OTHER] {
        for rest in [
            "/users",
            "/destinations",
            "/certificates",
            "/usage",
            "/studies?limit=1000",
        ] {
            let reply = api
                .call(Method::GET, &Api::path(facility, rest), Some(op), None)
                .await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{facility}{rest}: {:?}",
                reply.body
            );
            out.insert(format!("{facility}{rest}"), reply.body);
        }
    }
    let facilities = api
        .call(Method::GET, "/api/v1/facilities", Some(op), None)
        .await;
    out.insert("facilities".into(), facilities.body);
    Value::Object(out)
}

/// Every facility-scoped request, with `facility` in the path and the given ids.
fn scoped_requests(
    facility: &str,
    user: &str,
    ae: &str,
    cert: i64,
    study: &str,
) -> Vec<(Method, String, Option<Value>)> {
    let p = |rest: &str| Api::path(facility, rest);
    vec![
        (Method::GET, p("/users"), None),
        (
            Method::POST,
            p("/users"),
            Some(json!({"username": "intruder", "role": "clinician", "password": "twelve chars+"})),
        ),
        (Method::POST, p(&format!("/users/{user}/disable")), None),
        (Method::POST, p(&format!("/users/{user}/enable")), None),
        (
            Method::PUT,
            p(&format!("/users/{user}/password")),
            Some(json!({"password": "taken over now!"})),
        ),
        (Method::GET, p("/destinations"), None),
        (
            Method::POST,
            p("/destinations"),
            Some(json!({"ae_title": "EVIL", "host": "10.6.6.6", "port": 104, "tls": false})),
        ),
        (Method::DELETE, p(&format!("/destinations/{ae}")), None),
        (Method::GET, p("/certificates"), None),
        (Method::POST, p("/certificates"), Some(json!({}))),
        (
            Method::POST,
            p(&format!("/certificates/{cert}/revoke")),
            None,
        ),
        (Method::GET, p("/usage"), None),
        (
            Method::PUT,
            p("/quota"),
            Some(json!({"quota_bytes": 1, "quota_warn_percent": 50})),
        ),
        (Method::GET, p("/studies"), None),
        (Method::DELETE, p(&format!("/studies/{study}")), None),
    ]
}

fn assert_no_data_of(reply: &Reply, secrets: &[&str], what: &str) {
    let text = reply.body.to_string();
    for secret in secrets {
        assert!(!text.contains(secret), "{what} leaked {secret}: {text}");
    }
}

async fn cross_facility_isolation(backend: Backend) {
    let api = Api::new(backend).await;
    let (_, theirs) = api.store_samples().await;
    let op = api.login(http_support::OPERATOR).await;
    let admin_a = api.login(ADMIN_A).await;
    let admin_b = api.login(ADMIN_B).await;
    // B's ids: a destination, a certificate, a study, a user.
    let dest = api
        .call(
            Method::POST,
            &Api::path(OTHER, "/destinations"),
            Some(&admin_b),
            Some(json!({"ae_title": "B_VIEWER", "host": "10.2.2.2", "port": 104, "tls": false})),
        )
        .await;
    assert_eq!(dest.status, StatusCode::CREATED);
    let cert = api
        .call(
            Method::POST,
            &Api::path(OTHER, "/certificates"),
            Some(&admin_b),
            Some(json!({})),
        )
        .await;
    assert_eq!(cert.status, StatusCode::CREATED);
    let cert_id = cert.body["id"].as_i64().unwrap();
    let study = theirs[0].study_uid.clone();
    let before = snapshot(&api, &op).await;
    let secrets = [
        theirs[0].patient_id.as_str(),
        study.as_str(),
        "B_VIEWER",
        ADMIN_B,
        DOC_B,
    ];
    // A's admin naming B (and a facility that does not exist) with B's ids: 404.
    for facility in [OTHER, "no-such-facility"] {
        for (method, path, body) in scoped_requests(facility, ADMIN_B, "B_VIEWER", cert_id, &study)
        {
            let reply = api.call(method.clone(), &path, Some(&admin_a), body).await;
            reply.assert_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("{method} {path}"),
            );
            assert_no_data_of(&reply, &secrets, &path);
        }
    }
    // A's admin naming A but with B's ids: 404 (or, for creating, A's own rows).
    for (method, path, body) in scoped_requests(A, ADMIN_B, "B_VIEWER", cert_id, &study) {
        let reply = api.call(method.clone(), &path, Some(&admin_a), body).await;
        assert_no_data_of(&reply, &secrets, &path);
        let by_id = path.contains(ADMIN_B)
            || path.contains("B_VIEWER")
            || path.contains(&format!("/{cert_id}/"))
            || path.contains(&study);
        if by_id {
            reply.assert_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("{method} {path}"),
            );
        }
    }
    // Clinicians: 403 everywhere, even on their own facility.
    let doc_a = api.login(DOC_A).await;
    for (method, path, body) in scoped_requests(A, DOC_A, "X", 1, &study) {
        api.call(method.clone(), &path, Some(&doc_a), body)
            .await
            .assert_error(
                StatusCode::FORBIDDEN,
                "forbidden",
                &format!("clinician {method} {path}"),
            );
    }
    api.call(Method::GET, "/api/v1/facilities", Some(&doc_a), None)
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "clinician lists facilities",
        );
    // Without a token: 401 everywhere.
    for (method, path, body) in scoped_requests(A, DOC_A, "X", 1, &study) {
        api.call(method.clone(), &path, None, body)
            .await
            .assert_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                &format!("anonymous {method} {path}"),
            );
    }
    // B's data is untouched (A's side changed only by A's own creations above).
    let after = snapshot(&api, &op).await;
    for rest in [
        "/users",
        "/destinations",
        "/certificates",
        "/usage",
        "/studies?limit=1000",
    ] {
        let key = format!("{OTHER}{rest}");
        assert_eq!(before[&key], after[&key], "{key} changed");
    }
    assert_eq!(before["facilities"], after["facilities"]);
    // B's admin still works.
    let b_users = api
        .call(
            Method::GET,
            &Api::path(OTHER, "/users"),
            Some(&admin_b),
            None,
        )
        .await;
    assert_eq!(b_users.status, StatusCode::OK);
    api.stop().await;
}
both_backends!(cross_facility_isolation);

const SQLISH: [&str; 5] = [
    "' OR '1'='1",
    "x'; DROP TABLE users; --",
    "1 UNION SELECT password_hash FROM users",
    "%27%20OR%201%3D1--",
    "\\\"; DELETE FROM studies; --",
];

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn bad_input_changes_nothing(backend: Backend) {
    let api = Api::new(backend).await;
    let (mine, _) = api.store_samples().await;
    let op = api.login(http_support::OPERATOR).await;
    let admin = api.login(ADMIN_A).await;
    let before = snapshot(&api, &op).await;
    let body_routes: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/api/v1/login".into(), ""),
        (Method::PUT, "/api/v1/me/password".into(), ""),
        (Method::POST, Api::path(A, "/users"), ""),
        (
            Method::PUT,
            Api::path(A, &format!("/users/{DOC_A}/password")),
            "",
        ),
        (Method::POST, Api::path(A, "/destinations"), ""),
        (Method::POST, Api::path(A, "/certificates"), ""),
        (Method::PUT, Api::path(A, "/quota"), ""),
    ];
    let oversized = format!("{{\"password\": \"{}\"}}", "x".repeat(70 * 1024)).into_bytes();
    for (method, path, _) in &body_routes {
        let token = if path.ends_with("/quota") {
            &op
        } else {
            &admin
        };
        let what = |k: &str| format!("{k} on {method} {path}");
        let malformed = api
            .call_raw(method.clone(), path, token, b"{\"username\": ".to_vec())
            .await;
        assert!(
            matches!(malformed.status.as_u16(), 400 | 422),
            "{}: {:?}",
            what("malformed"),
            malformed
        );
        assert!(
            malformed.body["error"]["code"].is_string(),
            "{}",
            what("malformed")
        );
        api.call_raw(method.clone(), path, token, oversized.clone())
            .await
            .assert_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &what("oversized"),
            );
        let unknown = api
            .call_raw(method.clone(), path, token, b"{\"surprise\": 1}".to_vec())
            .await;
        assert!(
            matches!(unknown.status.as_u16(), 400 | 422),
            "{}: {:?}",
            what("unknown field"),
            unknown
        );
        assert!(unknown.body["error"]["code"].is_string());
        let wrong = api
            .call_raw(method.clone(), path, token, b"[1, 2, 3]".to_vec())
            .await;
        assert!(
            matches!(wrong.status.as_u16(), 400 | 422),
            "{}: {:?}",
            what("wrong type"),
            wrong
        );
        assert!(wrong.body["error"]["code"].is_string());
    }
    // Wrong types field by field.
    for (path, body) in [
        (
            Api::path(A, "/users"),
            json!({"username": 5, "role": "clinician", "password": "twelve chars+"}),
        ),
        (
            Api::path(A, "/destinations"),
            json!({"ae_title": "X", "host": "h", "port": "104", "tls": false}),
        ),
        (
            Api::path(A, "/destinations"),
            json!({"ae_title": "X", "host": "h", "port": 104, "tls": "yes"}),
        ),
    ] {
        api.call(Method::POST, &path, Some(&admin), Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", &path);
    }
    // SQL-looking values in every body field that names something.
    for s in SQLISH {
        for (path, body) in [
            (
                Api::path(A, "/users"),
                json!({"username": s, "role": "clinician", "password": "twelve chars+"}),
            ),
            (
                Api::path(A, "/users"),
                json!({"username": "ok", "role": s, "password": "twelve chars+"}),
            ),
            (
                Api::path(A, "/destinations"),
                json!({"ae_title": s, "host": "h", "port": 104, "tls": false}),
            ),
            (
                Api::path(A, "/destinations"),
                json!({"ae_title": "X", "host": s, "port": 104, "tls": false}),
            ),
        ] {
            api.call(Method::POST, &path, Some(&admin), Some(body))
                .await
                .assert_error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "unprocessable",
                    &format!("{path} {s}"),
                );
        }
        api.try_login(s, s).await.assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "sql login",
        );
    }
    // SQL-looking strings in every filter and path parameter.
    for s in SQLISH {
        let e = encode(s);
        for key in [
            "patient_id",
            "modality",
            "date_from",
            "date_to",
            "accession_number",
            "limit",
            "offset",
        ] {
            let path = Api::path(A, &format!("/studies?{key}={e}"));
            api.call(Method::GET, &path, Some(&admin), None)
                .await
                .assert_error(StatusCode::BAD_REQUEST, "bad_request", &path);
        }
        for (method, path) in [
            (Method::GET, Api::path(&e, "/users")),
            (Method::POST, Api::path(A, &format!("/users/{e}/disable"))),
            (Method::POST, Api::path(A, &format!("/users/{e}/enable"))),
            (Method::DELETE, Api::path(A, &format!("/destinations/{e}"))),
            (
                Method::POST,
                Api::path(A, &format!("/certificates/{e}/revoke")),
            ),
            (Method::DELETE, Api::path(A, &format!("/studies/{e}"))),
        ] {
            let reply = api.call(method.clone(), &path, Some(&admin), None).await;
            assert!(reply.status.is_client_error(), "{method} {path}: {reply:?}");
            assert!(
                reply.body["error"]["code"].is_string(),
                "{method} {path}: {reply:?}"
            );
        }
        let reset = Api::path(A, &format!("/users/{e}/password"));
        let reply = api
            .call(
                Method::PUT,
                &reset,
                Some(&admin),
                Some(json!({"password": "twelve chars+"})),
            )
            .await;
        reply.assert_error(StatusCode::NOT_FOUND, "not_found", &reset);
    }
    // Other bad filters.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=-1",
        "offset=-5",
        "date_from=20241301",
        "date_to=2024-01-01",
        "unknown=1",
        "modality=ct",
    ] {
        let path = Api::path(A, &format!("/studies?{query}"));
        api.call(Method::GET, &path, Some(&admin), None)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request", &path);
    }
    let after = snapshot(&api, &op).await;
    assert_eq!(before, after, "bad input changed something");
    // And the good values still work.
    let ok = api
        .call(
            Method::GET,
            &Api::path(A, &format!("/studies?patient_id={}", mine[0].patient_id)),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(!ok.body["studies"].as_array().unwrap().is_empty());
    api.stop().await;
}
both_backends!(bad_input_changes_nothing);

//! The admin API through its router (`tower::ServiceExt::oneshot`): every route's
//! happy path and refusals, login/lockout/expiry/logout, roles, and facility scoping.

mod common;
mod http_support;

use axum::http::{Method, StatusCode};
use common::Backend;
use gateway::db::now_millis;
use gateway::http::session::token_hash;
use http_support::{
    A, ADMIN_A, ADMIN_B, Api, DOC_A, MAX_FAILURES, METRICS_TOKEN, OPERATOR, OTHER, PASSWORD,
};
use serde_json::json;

async fn login_me_logout(backend: Backend) {
    let api = Api::new(backend).await;
    for (user, facility, role) in [
        (OPERATOR, A, "operator"),
        (ADMIN_A, A, "facility-admin"),
        (DOC_A, A, "clinician"),
        (ADMIN_B, OTHER, "facility-admin"),
    ] {
        let reply = api.try_login(user, PASSWORD).await;
        assert_eq!(reply.status, StatusCode::OK, "{user}: {:?}", reply.body);
        let token = reply.body["token"].as_str().unwrap().to_string();
        assert_eq!(token.len(), 43, "32 bytes base64url without padding");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        let expires = reply.body["expires_at"].as_str().unwrap();
        let expires =
            time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339 expiry");
        let in_secs = expires.unix_timestamp() - now_millis() / 1000;
        assert!((3590..=3601).contains(&in_secs), "expires in {in_secs}s");
        let me = json!({"username": user, "facility": facility, "role": role});
        assert_eq!(reply.body["user"], me);
        let got = api
            .call(Method::GET, "/api/v1/me", Some(&token), None)
            .await;
        assert_eq!((got.status, &got.body), (StatusCode::OK, &me));
        // Only the hash is stored.
        let stored: Option<String> = sqlx::query_scalar::<_, String>(
            "SELECT token_hash FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash(&token))
        .fetch_optional(&api.pool)
        .await
        .unwrap();
        assert_eq!(stored, Some(token_hash(&token)));
        let raw: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE token_hash = $1")
            .bind(&token)
            .fetch_one(&api.pool)
            .await
            .unwrap();
        assert_eq!(raw, 0, "the token itself is never stored");
        let out = api
            .call(Method::POST, "/api/v1/logout", Some(&token), None)
            .await;
        assert_eq!(out.status, StatusCode::NO_CONTENT);
        api.call(Method::GET, "/api/v1/me", Some(&token), None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "after logout");
        api.call(Method::POST, "/api/v1/logout", Some(&token), None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "second logout");
    }
    // Every refusal is the same.
    let wrong = api.try_login(ADMIN_A, "not the password!").await;
    let unknown = api.try_login("nobody", PASSWORD).await;
    let bad_name = api.try_login("a b'; --", PASSWORD).await;
    for reply in [&wrong, &unknown, &bad_name] {
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "refused login");
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, bad_name.body);
    // Missing, malformed and made-up tokens.
    for header in [
        None,
        Some("x"),
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        api.call(Method::GET, "/api/v1/me", header, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "bad token");
    }
    api.stop().await;
}
both_backends!(login_me_logout);

async fn lockout_expiry_and_disabled_users(backend: Backend) {
    let api = Api::new(backend).await;
    let admin = api.login(ADMIN_A).await;
    for _ in 0..MAX_FAILURES {
        api.try_login(DOC_A, "wrong password!!").await.assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong password",
        );
    }
    api.try_login(DOC_A, PASSWORD).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "right password while locked",
    );
    let users = api
        .call(Method::GET, &Api::path(A, "/users"), Some(&admin), None)
        .await;
    let doc = users
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == DOC_A)
        .unwrap();
    assert!(doc["locked_until"].is_string(), "lock shown: {doc}");
    // Enabling lifts the lock.
    let enable = api
        .call(
            Method::POST,
            &Api::path(A, &format!("/users/{DOC_A}/enable")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(enable.status, StatusCode::NO_CONTENT);
    let doc_token = api.login(DOC_A).await;
    // Disabling refuses new logins and stops existing tokens.
    let disable = api
        .call(
            Method::POST,
            &Api::path(A, &format!("/users/{DOC_A}/disable")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(disable.status, StatusCode::NO_CONTENT);
    api.call(Method::GET, "/api/v1/me", Some(&doc_token), None)
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "token of a disabled user",
        );
    api.try_login(DOC_A, PASSWORD).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "disabled login",
    );
    // Expiry: move it into the past.
    api.index
        .set_token_expiry(&token_hash(&admin), now_millis() - 1)
        .await
        .unwrap();
    api.call(Method::GET, "/api/v1/me", Some(&admin), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "expired token");
    api.stop().await;
}
both_backends!(lockout_expiry_and_disabled_users);

async fn short_token_lifetime(backend: Backend) {
    let api = Api::with_ttl(backend, std::time::Duration::from_secs(1)).await;
    let token = api.login(OPERATOR).await;
    let ok = api
        .call(Method::GET, "/api/v1/me", Some(&token), None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    api.call(Method::GET, "/api/v1/me", Some(&token), None)
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "token after its ttl",
        );
    api.stop().await;
}
both_backends!(short_token_lifetime);

/// The status of `GET /api/v1/me` with `token`.
async fn me(api: &Api, token: &str) -> StatusCode {
    api.call(Method::GET, "/api/v1/me", Some(token), None)
        .await
        .status
}

async fn own_password_change(backend: Backend) {
    let api = Api::new(backend).await;
    let token = api.login(DOC_A).await;
    let other_session = api.login(DOC_A).await;
    let path = "/api/v1/me/password";
    let body =
        |current: &str, new: &str| Some(json!({"current_password": current, "new_password": new}));
    api.call(
        Method::PUT,
        path,
        Some(&token),
        body("wrong password!!", "a brand new password"),
    )
    .await
    .assert_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "wrong current password",
    );
    api.call(Method::PUT, path, Some(&token), body(PASSWORD, "short"))
        .await
        .assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
            "short new password",
        );
    api.call(
        Method::PUT,
        path,
        None,
        body(PASSWORD, "a brand new password"),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "no token");
    let done = api
        .call(
            Method::PUT,
            path,
            Some(&token),
            body(PASSWORD, "a brand new password"),
        )
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{:?}", done.body);
    assert_eq!(
        me(&api, &token).await,
        StatusCode::OK,
        "this session goes on"
    );
    assert_eq!(
        me(&api, &other_session).await,
        StatusCode::UNAUTHORIZED,
        "every other session ends"
    );
    api.try_login(DOC_A, PASSWORD).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "old password",
    );
    let new = api.try_login(DOC_A, "a brand new password").await;
    assert_eq!(new.status, StatusCode::OK);
    api.stop().await;
}
both_backends!(own_password_change);

async fn users_routes(backend: Backend) {
    let api = Api::new(backend).await;
    let admin = api.login(ADMIN_A).await;
    let op = api.login(OPERATOR).await;
    let users = Api::path(A, "/users");
    let list = api.call(Method::GET, &users, Some(&admin), None).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, [ADMIN_A, DOC_A, OPERATOR]);
    let new = json!({"username": "nurse.joy", "role": "clinician", "password": "twelve chars+"});
    let created = api
        .call(Method::POST, &users, Some(&admin), Some(new.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["username"], "nurse.joy");
    assert_eq!(created.body["role"], "clinician");
    assert_eq!(created.body["disabled"], false);
    assert!(created.body["locked_until"].is_null());
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));
    api.call(Method::POST, &users, Some(&admin), Some(new))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict", "same name again");
    // The name is unique across facilities.
    let taken = json!({"username": ADMIN_B, "role": "clinician", "password": "twelve chars+"});
    api.call(Method::POST, &users, Some(&admin), Some(taken))
        .await
        .assert_error(
            StatusCode::CONFLICT,
            "conflict",
            "name of another facility's user",
        );
    let operator = json!({"username": "op2", "role": "operator", "password": "twelve chars+"});
    api.call(Method::POST, &users, Some(&admin), Some(operator.clone()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "admin creates operator");
    let by_op = api
        .call(Method::POST, &users, Some(&op), Some(operator))
        .await;
    assert_eq!(by_op.status, StatusCode::CREATED);
    // A facility admin cannot disable an operator.
    api.call(
        Method::POST,
        &Api::path(A, "/users/op2/disable"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "admin disables operator",
    );
    for (body, what) in [
        (
            json!({"username": "x y", "role": "clinician", "password": "twelve chars+"}),
            "bad name",
        ),
        (
            json!({"username": "ok", "role": "root", "password": "twelve chars+"}),
            "bad role",
        ),
        (
            json!({"username": "ok", "role": "clinician", "password": "short"}),
            "short password",
        ),
    ] {
        api.call(Method::POST, &users, Some(&admin), Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", what);
    }
    // Reset by admin: the user's sessions end.
    let nurse = api.try_login("nurse.joy", "twelve chars+").await;
    assert_eq!(nurse.status, StatusCode::OK);
    let nurse = nurse.body["token"].as_str().unwrap().to_string();
    assert_eq!(me(&api, &nurse).await, StatusCode::OK);
    let reset = api
        .call(
            Method::PUT,
            &Api::path(A, "/users/nurse.joy/password"),
            Some(&admin),
            Some(json!({"password": "reset by the admin"})),
        )
        .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(&api, &nurse).await,
        StatusCode::UNAUTHORIZED,
        "a reset revokes the user's tokens"
    );
    let nurse = api.try_login("nurse.joy", "reset by the admin").await;
    assert_eq!(nurse.status, StatusCode::OK);
    let nurse = nurse.body["token"].as_str().unwrap().to_string();
    let disabled = api
        .call(
            Method::POST,
            &Api::path(A, "/users/nurse.joy/disable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(disabled.status, StatusCode::NO_CONTENT);
    let enabled = api
        .call(
            Method::POST,
            &Api::path(A, "/users/nurse.joy/enable"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(enabled.status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(&api, &nurse).await,
        StatusCode::UNAUTHORIZED,
        "disabling revokes the user's tokens for good"
    );
    assert_eq!(
        api.try_login("nurse.joy", "reset by the admin")
            .await
            .status,
        StatusCode::OK
    );
    api.call(
        Method::PUT,
        &Api::path(A, "/users/nurse.joy/password"),
        Some(&admin),
        Some(json!({"password": "tiny"})),
    )
    .await
    .assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "short reset",
    );
    for action in ["disable", "enable"] {
        api.call(
            Method::POST,
            &Api::path(A, &format!("/users/nobody/{action}")),
            Some(&admin),
            None,
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "unknown user");
    }
    api.stop().await;
}
both_backends!(users_routes);

async fn destination_routes(backend: Backend) {
    let api = Api::new(backend).await;
    let admin = api.login(ADMIN_A).await;
    let path = Api::path(A, "/destinations");
    let empty = api.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!((empty.status, empty.body), (StatusCode::OK, json!([])));
    let viewer = json!({"ae_title": "VIEWER", "host": "10.1.2.3", "port": 104, "tls": false});
    let added = api
        .call(Method::POST, &path, Some(&admin), Some(viewer.clone()))
        .await;
    assert_eq!((added.status, &added.body), (StatusCode::CREATED, &viewer));
    api.call(Method::POST, &path, Some(&admin), Some(viewer.clone()))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict", "same AE again");
    let list = api.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(list.body, json!([viewer]));
    for (body, what) in [
        (
            json!({"ae_title": "", "host": "h", "port": 104, "tls": false}),
            "empty AE",
        ),
        (
            json!({"ae_title": "WAY_TOO_LONG_AE_TITLE", "host": "h", "port": 104, "tls": false}),
            "long AE",
        ),
        (
            json!({"ae_title": "X", "host": "bad host!", "port": 104, "tls": false}),
            "bad host",
        ),
        (
            json!({"ae_title": "X", "host": "h", "port": 0, "tls": false}),
            "port 0",
        ),
        (
            json!({"ae_title": "X", "host": "h", "port": 70000, "tls": false}),
            "port too big",
        ),
        (
            json!({"ae_title": "X", "host": "h", "port": 104}),
            "missing tls",
        ),
    ] {
        api.call(Method::POST, &path, Some(&admin), Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", what);
    }
    let gone = api
        .call(
            Method::DELETE,
            &format!("{path}/VIEWER"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    api.call(
        Method::DELETE,
        &format!("{path}/VIEWER"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "deleted twice");
    api.stop().await;
}
both_backends!(destination_routes);

async fn certificate_routes(backend: Backend) {
    let api = Api::new(backend).await;
    let admin = api.login(ADMIN_A).await;
    let path = Api::path(A, "/certificates");
    let before = api.call(Method::GET, &path, Some(&admin), None).await;
    assert_eq!(before.status, StatusCode::OK);
    assert_eq!(
        before.body.as_array().unwrap().len(),
        1,
        "the harness's certificate"
    );
    let issued = api
        .call(Method::POST, &path, Some(&admin), Some(json!({})))
        .await;
    assert_eq!(issued.status, StatusCode::CREATED, "{:?}", issued.body);
    let b = &issued.body;
    assert!(
        b["certificate_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(
        b["private_key_pem"]
            .as_str()
            .unwrap()
            .contains("PRIVATE KEY-----")
    );
    assert!(
        b["ca_pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(b["subject"], format!("CN={A}"));
    let der = dimse::tls::load_certs(b["certificate_pem"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(b["fingerprint"], gateway::pki::fingerprint(&der[0]));
    let id = b["id"].as_i64().unwrap();
    // Enrolled: the certificate maps to the facility.
    let owner = api
        .index
        .facility_by_certificate(b["fingerprint"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(owner.map(|f| f.id), Some(api.a.id));
    // Empty body works too.
    let again = api.call(Method::POST, &path, Some(&admin), None).await;
    assert_eq!(again.status, StatusCode::CREATED);
    let revoke = api
        .call(
            Method::POST,
            &format!("{path}/{id}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT);
    let list = api.call(Method::GET, &path, Some(&admin), None).await;
    let row = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string(), "{row}");
    assert!(
        api.index
            .facility_by_certificate(b["fingerprint"].as_str().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let twice = api
        .call(
            Method::POST,
            &format!("{path}/{id}/revoke"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        twice.status,
        StatusCode::NO_CONTENT,
        "revoking is idempotent"
    );
    api.call(
        Method::POST,
        &format!("{path}/999999/revoke"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "unknown certificate");
    api.call(
        Method::POST,
        &path,
        Some(&admin),
        Some(json!({"cn": "evil"})),
    )
    .await
    .assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable",
        "unknown field",
    );
    api.stop().await;
}
both_backends!(certificate_routes);

async fn certificates_need_the_ca_key(backend: Backend) {
    let mut api = Api::new(backend).await;
    let mut state = api.state.clone();
    state.tls_files = None;
    api.router = gateway::http::router(state, 64 * 1024);
    let admin = api.login(ADMIN_A).await;
    let reply = api
        .call(
            Method::POST,
            &Api::path(A, "/certificates"),
            Some(&admin),
            Some(json!({})),
        )
        .await;
    reply.assert_error(StatusCode::CONFLICT, "conflict", "no CA key");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("CA key")
    );
    api.stop().await;
}
both_backends!(certificates_need_the_ca_key);

async fn facilities_quota_usage_and_studies(backend: Backend) {
    let api = Api::new(backend).await;
    let (mine, _) = api.store_samples().await;
    let op = api.login(OPERATOR).await;
    let admin = api.login(ADMIN_A).await;
    let all = api
        .call(Method::GET, "/api/v1/facilities", Some(&op), None)
        .await;
    let names: Vec<&str> = all
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [OTHER, A]);
    let own = api
        .call(Method::GET, "/api/v1/facilities", Some(&admin), None)
        .await;
    assert_eq!(own.body.as_array().unwrap().len(), 1);
    assert_eq!(own.body[0]["name"], A);
    assert_eq!(own.body[0]["quota_bytes"], serde_json::Value::Null);
    assert_eq!(own.body[0]["quota_warn_percent"], 90);
    // Quota: operators only.
    let quota = Api::path(A, "/quota");
    let body = json!({"quota_bytes": 1_000_000, "quota_warn_percent": 80});
    api.call(Method::PUT, &quota, Some(&admin), Some(body.clone()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden", "admin sets quota");
    assert_eq!(
        api.call(Method::PUT, &quota, Some(&op), Some(body))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let own = api
        .call(Method::GET, "/api/v1/facilities", Some(&admin), None)
        .await;
    assert_eq!(
        (
            own.body[0]["quota_bytes"].clone(),
            own.body[0]["quota_warn_percent"].clone()
        ),
        (json!(1_000_000), json!(80))
    );
    for (body, what) in [
        (
            json!({"quota_bytes": -1, "quota_warn_percent": 80}),
            "negative",
        ),
        (
            json!({"quota_bytes": 5, "quota_warn_percent": 0}),
            "0 percent",
        ),
        (
            json!({"quota_bytes": 5, "quota_warn_percent": 101}),
            "101 percent",
        ),
        (
            json!({"quota_bytes": "5", "quota_warn_percent": 50}),
            "string",
        ),
    ] {
        api.call(Method::PUT, &quota, Some(&op), Some(body))
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable", what);
    }
    let unlimited = api
        .call(
            Method::PUT,
            &quota,
            Some(&op),
            Some(json!({"quota_bytes": null, "quota_warn_percent": 95})),
        )
        .await;
    assert_eq!(unlimited.status, StatusCode::NO_CONTENT);
    // Usage.
    let usage = api
        .call(Method::GET, &Api::path(A, "/usage"), Some(&admin), None)
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{:?}", usage.body);
    let u = &usage.body;
    let studies: std::collections::BTreeSet<&str> =
        mine.iter().map(|s| s.study_uid.as_str()).collect();
    assert_eq!(u["studies"], studies.len());
    assert_eq!(u["series"], 4);
    assert_eq!(u["instances"], 4);
    assert_eq!(u["quota_bytes"], serde_json::Value::Null);
    assert_eq!(u["quota_warn_percent"], 95);
    assert!(u["last_ingest_at"].as_str().unwrap().ends_with('Z'));
    let sizes: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(size_bytes) AS BIGINT) FROM instances WHERE facility_id = $1",
    )
    .bind(api.a.id.0)
    .fetch_one(&api.pool)
    .await
    .unwrap();
    let modalities = u["by_modality"].as_array().unwrap();
    assert_eq!(
        modalities
            .iter()
            .map(|m| m["modality"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["CT", "MR"]
    );
    assert_eq!(
        modalities
            .iter()
            .map(|m| m["instances"].as_i64().unwrap())
            .sum::<i64>(),
        4
    );
    assert_eq!(
        modalities
            .iter()
            .map(|m| m["bytes"].as_i64().unwrap())
            .sum::<i64>(),
        sizes
    );
    let month = time::OffsetDateTime::now_utc();
    let month = format!("{:04}-{:02}", month.year(), u8::from(month.month()));
    assert_eq!(
        u["by_month"],
        json!([{"month": month, "instances": 4, "bytes": sizes}])
    );
    // Studies: filters and paging.
    let list = |query: &str| {
        let path = Api::path(A, &format!("/studies{query}"));
        let token = admin.clone();
        let api = &api;
        async move { api.call(Method::GET, &path, Some(&token), None).await }
    };
    let all = list("").await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    assert_eq!(all.body["studies"].as_array().unwrap().len(), studies.len());
    assert_eq!(all.body["next_offset"], serde_json::Value::Null);
    let first = &all.body["studies"][0];
    for key in [
        "study_uid",
        "patient_id",
        "study_date",
        "accession_number",
        "study_description",
        "modalities",
        "series",
        "instances",
        "updated_at",
    ] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    let page = list("?limit=1").await;
    assert_eq!(page.body["studies"].as_array().unwrap().len(), 1);
    assert_eq!(page.body["next_offset"], 1);
    let page2 = list("?limit=1&offset=1").await;
    assert_ne!(
        page2.body["studies"][0]["study_uid"],
        page.body["studies"][0]["study_uid"]
    );
    let ct = list("?modality=CT").await;
    for s in ct.body["studies"].as_array().unwrap() {
        assert!(
            s["modalities"].as_array().unwrap().contains(&json!("CT")),
            "{s}"
        );
    }
    let by_patient = list(&format!("?patient_id={}", mine[0].patient_id)).await;
    let expected = mine
        .iter()
        .filter(|s| s.patient_id == mine[0].patient_id)
        .map(|s| s.study_uid.clone())
        .collect::<std::collections::BTreeSet<_>>();
    let got = by_patient.body["studies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["study_uid"].as_str().unwrap().to_string())
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(got, expected);
    let by_accession = list(&format!("?accession_number={}", mine[1].accession)).await;
    assert_eq!(
        by_accession.body["studies"][0]["study_uid"],
        mine[1].study_uid
    );
    let dated = list(&format!(
        "?date_from={d}&date_to={d}",
        d = mine[0].study_date
    ))
    .await;
    for s in dated.body["studies"].as_array().unwrap() {
        assert_eq!(s["study_date"], mine[0].study_date);
    }
    assert!(!dated.body["studies"].as_array().unwrap().is_empty());
    let none = list("?date_from=20990101").await;
    assert_eq!(none.body["studies"], json!([]));
    // Soft delete.
    let uid = &mine[0].study_uid;
    let del = api
        .call(
            Method::DELETE,
            &Api::path(A, &format!("/studies/{uid}")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    api.call(
        Method::DELETE,
        &Api::path(A, &format!("/studies/{uid}")),
        Some(&admin),
        None,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", "deleted twice");
    let after = list("").await;
    assert!(
        after.body["studies"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["study_uid"] != json!(uid))
    );
    assert_eq!(
        after.body["studies"].as_array().unwrap().len(),
        studies.len() - 1
    );
    let usage = api
        .call(Method::GET, &Api::path(A, "/usage"), Some(&admin), None)
        .await;
    assert_eq!(usage.body["studies"], studies.len() - 1);
    api.stop().await;
}
both_backends!(facilities_quota_usage_and_studies);

async fn health_and_metrics(backend: Backend) {
    let api = Api::new(backend).await;
    let health = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        health.body["commit"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );
    let _ = api.call(Method::GET, "/api/v1/me", None, None).await;
    // On the admin port /metrics needs its own bearer token (not a login token).
    let anonymous = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let admin = api.login(ADMIN_A).await;
    let wrong = api.call(Method::GET, "/metrics", Some(&admin), None).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let metrics = api
        .call(Method::GET, "/metrics", Some(METRICS_TOKEN), None)
        .await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body.as_str().unwrap().to_string();
    assert!(
        text.contains(
            "pacs_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/v1/me\",status=\"401\"} 1"),
        "{text}"
    );
    let unknown = api.call(Method::GET, "/nope", None, None).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "not_found", "unknown path");
    let wrong_method = api.call(Method::DELETE, "/api/v1/me", None, None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    // The database gone: 503.
    api.index.close().await;
    api.pool.close().await;
    let down = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.body["status"], "unavailable");
    api.gw.stop().await;
}
both_backends!(health_and_metrics);

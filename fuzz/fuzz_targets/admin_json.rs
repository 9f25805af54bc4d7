//! The admin API's request bodies and query strings as its handlers receive them:
//! through the `ApiJson` / `ApiQuery` extractors (every failure a 400, 413 or 422,
//! never a panic or a 500), then the validated newtypes the handlers build from the
//! fields (user names, roles, facility names, AE titles, UIDs, the password policy);
//! and DICOMweb's query strings and `Accept` headers (QIDO-RS search parameters into a
//! C-FIND identifier and the relational parse, rendering parameters): a 400 or 406,
//! never a panic.

#![no_main]

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use gateway::http::error::{ApiError, ApiJson, ApiQuery};
use gateway::http::{audit, devices, facilities, session, users};
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

fn request(body: &[u8], query: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(format!("/api/v1/x?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .expect("request")
}

/// The status an extractor failure answers with; only client errors are allowed.
fn rejected(error: ApiError) {
    let status = error.into_response().status();
    assert!(
        [
            StatusCode::BAD_REQUEST,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNPROCESSABLE_ENTITY
        ]
        .contains(&status),
        "extractor failure answered {status}"
    );
}

async fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    match ApiJson::<T>::from_request(request(body, ""), &()).await {
        Ok(ApiJson(value)) => Some(value),
        Err(e) => {
            rejected(e);
            None
        }
    }
}

async fn query<T: serde::de::DeserializeOwned>(raw: &[u8]) -> Option<T> {
    let text = String::from_utf8_lossy(raw).replace(['#', ' ', '\n', '\r'], "%20");
    let Ok(request) = Request::builder()
        .uri(format!("/api/v1/x?{text}"))
        .body(Body::empty())
    else {
        return None;
    };
    let (mut parts, _) = request.into_parts();
    match ApiQuery::<T>::from_request_parts(&mut parts, &()).await {
        Ok(ApiQuery(value)) => Some(value),
        Err(e) => {
            rejected(e);
            None
        }
    }
}

/// The checks handlers apply to free-text fields.
fn validators(text: &str) {
    let _ = gateway::auth::Username::parse(text);
    let _ = gateway::auth::Role::parse(text);
    let _ = gateway::domain::FacilityName::parse(text);
    let _ = gateway::domain::AeTitle::parse(text);
    let _ = gateway::domain::Uid::parse(text);
    let _ = gateway::auth::Password::new(text).check_policy();
}

/// A DICOMweb query string and Accept header, as the handlers take them.
fn dicomweb(raw: &[u8]) {
    use gateway::web::{accept, qido, rendered};
    let text = String::from_utf8_lossy(raw);
    let (query, accept_value) = text.split_once('\n').unwrap_or((&text, "*/*"));
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = axum::http::HeaderValue::from_str(accept_value) {
        headers.insert(axum::http::header::ACCEPT, value);
    }
    let ranges = accept::parse(&headers);
    let _ = rendered::presentation(query, &ranges);
    if let Ok(search) = qido::parse_query(query) {
        for level in [
            gateway::qr::Level::Study,
            gateway::qr::Level::Series,
            gateway::qr::Level::Image,
        ] {
            let object = qido::identifier(level, &[], &search);
            let _ = gateway::qr::parse_relational(gateway::qr::Model::StudyRoot, &object);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    RUNTIME.block_on(async {
        match choice % 10 {
            0 => drop(json::<session::LoginRequest>(body).await),
            1 => drop(json::<session::PasswordChange>(body).await),
            2 => drop(json::<users::NewUser>(body).await),
            3 => drop(json::<users::PasswordReset>(body).await),
            4 => {
                if let Some(d) = json::<devices::DestinationItem>(body).await {
                    validators(&d.ae_title);
                    validators(&d.host);
                }
            }
            5 => drop(json::<facilities::QuotaRequest>(body).await),
            6 => drop(query::<audit::AuditQuery>(body).await),
            7 => drop(query::<facilities::StudiesQuery>(body).await),
            8 => dicomweb(body),
            _ => {
                if let Some(text) = json::<String>(body).await {
                    validators(&text);
                }
            }
        }
    });
});

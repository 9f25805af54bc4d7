//! Harness of the HTTPS API tests: a gateway (real DICOM listeners, for storing test
//! instances and for certificate checks) plus the admin API router on the same index,
//! called in-process with `tower::ServiceExt::oneshot`; two facilities and a user of
//! every role.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gateway::auth::{AuthSettings, Authenticator, Password, Role, Username, hash_password};
use gateway::db::{Facility, Index};
use gateway::http::ApiState;
use gateway::metrics::Metrics;
use serde_json::Value;
use tower::ServiceExt as _;

pub mod contract;

use crate::common::data::{self, Spec};
use crate::common::{
    Backend, FACILITY, GATEWAY_AE, Options, PLAIN_AE, Setup, TestGateway, args, dcmtk_async,
};

/// The second facility.
pub const OTHER: &str = "other-clinic";
/// Its AE title on the plain port.
pub const OTHER_AE: &str = "MODALITY2";
/// Every test user's password.
pub const PASSWORD: &str = "correct horse battery";
/// Operator (belongs to FACILITY).
pub const OPERATOR: &str = "op";
/// Facility admin of FACILITY.
pub const ADMIN_A: &str = "admin-a";
/// Facility admin of OTHER.
pub const ADMIN_B: &str = "admin-b";
/// Clinician of FACILITY.
pub const DOC_A: &str = "doc-a";
/// Clinician of OTHER.
pub const DOC_B: &str = "doc-b";
/// Consecutive failures that lock an account in these tests.
pub const MAX_FAILURES: u32 = 3;
/// The bearer token `/metrics` answers to on this router.
pub const METRICS_TOKEN: &str = "metrics-token-0123456789";

/// Auth settings with tiny delays.
pub fn fast_auth() -> AuthSettings {
    AuthSettings {
        failure_delay_ms: 1,
        failure_delay_max_ms: 1,
        max_failures: MAX_FAILURES,
        ..AuthSettings::default()
    }
}

/// A running gateway and the API router on its index.
pub struct Api {
    /// The gateway (DICOM listeners).
    pub gw: TestGateway,
    /// The index.
    pub index: Index,
    /// The API state.
    pub state: ApiState,
    /// The router under test.
    pub router: Router,
    /// FACILITY.
    pub a: Facility,
    /// OTHER.
    pub b: Facility,
    /// A raw pool on the index, for assertions in SQL.
    pub pool: sqlx::AnyPool,
}

/// A response: status and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Body.
    pub body: Value,
}

impl Reply {
    /// Asserts an error reply with this status and code.
    pub fn assert_error(&self, status: StatusCode, code: &str, what: &str) {
        assert_eq!(self.status, status, "{what}: {:?}", self.body);
        assert_eq!(
            self.body["error"]["code"], code,
            "{what}: error code in {:?}",
            self.body
        );
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{what}: message {message:?}"
        );
    }
}

async fn add_user(index: &Index, facility: &Facility, name: &str, role: Role) {
    let hash = hash_password(&fast_auth(), &Password::new(PASSWORD)).expect("hash");
    index
        .create_user(facility.id, &Username::parse(name).unwrap(), role, &hash)
        .await
        .expect("create user");
}

impl Api {
    /// Gateway with two facilities and five users; `token_ttl` for new tokens.
    pub async fn new(backend: Backend) -> Api {
        Self::with_ttl(backend, Duration::from_secs(3600)).await
    }

    /// Same, with another token lifetime.
    pub async fn with_ttl(backend: Backend, token_ttl: Duration) -> Api {
        let mut setup = Setup::new(backend, &Options::default()).await;
        let b = setup.add_plain_facility(OTHER, OTHER_AE).await;
        let a = setup.facility.clone();
        let gw = TestGateway::start(setup).await;
        let index = gw.index().await;
        add_user(&index, &a, OPERATOR, Role::Operator).await;
        add_user(&index, &a, ADMIN_A, Role::FacilityAdmin).await;
        add_user(&index, &b, ADMIN_B, Role::FacilityAdmin).await;
        add_user(&index, &a, DOC_A, Role::Clinician).await;
        add_user(&index, &b, DOC_B, Role::Clinician).await;
        let files = gateway::app::TlsFiles::resolve(&gw.setup.config).expect("tls files");
        let state = ApiState {
            index: index.clone(),
            auth: Authenticator::new(index.clone(), fast_auth())
                .await
                .expect("authenticator"),
            metrics: Arc::new(Metrics::new()),
            token_ttl,
            tls_files: Some(Arc::new(files)),
            audit: gateway::app::start_audit(&gw.setup.config, &index).expect("audit trail"),
            metrics_access: gateway::http::MetricsAccess::bearer(METRICS_TOKEN),
            dicomweb: None,
            lifecycle: None,
        };
        let router = gateway::http::router(state.clone(), 64 * 1024);
        let pool = sqlx::AnyPool::connect(&gw.setup.config.database_url())
            .await
            .expect("raw pool");
        Api {
            pool,
            gw,
            index,
            state,
            router,
            a,
            b,
        }
    }

    /// Sends a request as built; the reply is checked against the OpenAPI document
    /// ([`contract::check`]).
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let (method, path) = (request.method().to_string(), request.uri().to_string());
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        contract::check(&method, &path, status.as_u16(), &body);
        Reply { status, body }
    }

    /// `method path` with an optional bearer token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        };
        self.send(request.expect("request")).await
    }

    /// `method path` with a raw body (content type application/json).
    pub async fn call_raw(&self, method: Method, path: &str, token: &str, body: Vec<u8>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("request");
        self.send(request).await
    }

    /// Logs in; panics unless it succeeds. Returns the token.
    pub async fn login(&self, username: &str) -> String {
        let reply = self.try_login(username, PASSWORD).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "login {username}: {:?}",
            reply.body
        );
        reply.body["token"].as_str().expect("token").to_string()
    }

    /// Tries to log in.
    pub async fn try_login(&self, username: &str, password: &str) -> Reply {
        let body = serde_json::json!({"username": username, "password": password});
        self.call(Method::POST, "/api/v1/login", None, Some(body))
            .await
    }

    /// Stores `n` instances for FACILITY (study UIDs ...10.1.x) and for OTHER (study
    /// UIDs ...20.1.x, patient IDs OTHER...) over the plain port with storescu.
    pub async fn store_samples(&self) -> (Vec<Spec>, Vec<Spec>) {
        let dir = self.gw.setup.dir.path().join("samples");
        std::fs::create_dir_all(&dir).unwrap();
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        let mut files_a = Vec::new();
        let mut files_b = Vec::new();
        for n in 0..4u32 {
            let modality = if n % 2 == 0 { "CT" } else { "MR" };
            let class = if n % 2 == 0 { data::CT } else { data::MR };
            let spec = Spec::new(class, modality, n);
            files_a.push(data::write(&dir.join(format!("a{n}.dcm")), &spec));
            mine.push(spec);
            let mut other = Spec::new(data::US, "US", n + 10);
            other.patient_id = format!("OTHER{n}");
            other.study_uid = format!("1.2.826.0.1.3680043.20.1.{}", n + 1);
            other.series_uid = format!("1.2.826.0.1.3680043.20.2.{}", n + 1);
            other.sop_uid = format!("1.2.826.0.1.3680043.20.3.{}", n + 1);
            other.accession = format!("OACC{n}");
            files_b.push(data::write(&dir.join(format!("b{n}.dcm")), &other));
            theirs.push(other);
        }
        self.store(PLAIN_AE, &files_a).await;
        self.store(OTHER_AE, &files_b).await;
        (mine, theirs)
    }

    async fn store(&self, ae: &str, files: &[PathBuf]) {
        let mut list = args(&[
            "-aet",
            ae,
            "-aec",
            GATEWAY_AE,
            "127.0.0.1",
            &self.gw.plain_port.to_string(),
        ]);
        list.extend(files.iter().map(|f| f.display().to_string()));
        let out = dcmtk_async("storescu", list).await;
        assert!(
            out.status.success(),
            "storescu failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Path of a facility-scoped route.
    pub fn path(facility: &str, rest: &str) -> String {
        format!("/api/v1/facilities/{facility}{rest}")
    }

    /// Stops the gateway.
    pub async fn stop(self) {
        self.pool.close().await;
        self.index.close().await;
        self.gw.stop().await;
    }
}

/// Name of the facility every harness enrolls first.
pub const A: &str = FACILITY;

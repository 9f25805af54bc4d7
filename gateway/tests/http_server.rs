//! The real HTTPS server of `Application`: an ephemeral port, TLS with the dev
//! server certificate, HTTP/2 and HTTP/1.1 by ALPN, a reqwest client trusting the dev
//! CA; garbage on the port; metrics of DICOM traffic; and a certificate revoked
//! through the API refused by a real DCMTK DICOM TLS association.

mod common;
mod http_support;

use std::path::PathBuf;

use common::{Backend, GATEWAY_AE, Options, Setup, args, data, dcmtk_async};
use gateway::app::Application;
use http_support::{ADMIN_A, PASSWORD, fast_auth};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

struct Running {
    setup: Setup,
    https_port: u16,
    tls_port: u16,
    plain_port: u16,
    metrics_port: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start(backend: Backend) -> Running {
    start_with(backend, |_| {}).await
}

async fn start_with(
    backend: Backend,
    adjust: impl FnOnce(&mut gateway::config::Config),
) -> Running {
    let mut setup = Setup::new(backend, &Options::default()).await;
    setup.config.auth = fast_auth();
    adjust(&mut setup.config);
    let index = setup.index().await;
    let hash = gateway::auth::hash_password(&fast_auth(), &gateway::auth::Password::new(PASSWORD))
        .unwrap();
    index
        .create_user(
            setup.facility.id,
            &gateway::auth::Username::parse(ADMIN_A).unwrap(),
            gateway::auth::Role::FacilityAdmin,
            &hash,
        )
        .await
        .unwrap();
    index.close().await;
    let app = Application::build(setup.config.clone())
        .await
        .expect("build");
    let https_port = app.https_port().expect("https port");
    let tls_port = app.tls_port().unwrap();
    let plain_port = app.plain_port().unwrap();
    let metrics_port = app.metrics_port().expect("metrics port");
    let (stop, rx) = oneshot::channel();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        setup,
        https_port,
        tls_port,
        plain_port,
        metrics_port,
        stop,
        task,
    }
}

fn client(setup: &Setup, http1_only: bool) -> reqwest::Client {
    let ca = std::fs::read(&setup.cert.ca).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

async fn json_of(response: reqwest::Response) -> (StatusCode, reqwest::Version, Value) {
    let status = response.status();
    let version = response.version();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, version, body)
}

async fn https_login_call_logout(backend: Backend) {
    let gw = start(backend).await;
    let base = format!("https://localhost:{}", gw.https_port);
    for http1_only in [false, true] {
        let client = client(&gw.setup, http1_only);
        let expected = if http1_only {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        let (status, version, body) = json_of(
            client
                .post(format!("{base}/api/v1/login"))
                .json(&json!({"username": ADMIN_A, "password": PASSWORD}))
                .send()
                .await
                .expect("login over TLS"),
        )
        .await;
        assert_eq!((status, version), (StatusCode::OK, expected), "{body}");
        let token = body["token"].as_str().unwrap().to_string();
        let (status, _, me) = json_of(
            client
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            me,
            json!({"username": ADMIN_A, "facility": common::FACILITY, "role": "facility-admin"})
        );
        let (status, _, _) = json_of(
            client
                .post(format!("{base}/api/v1/logout"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _, body) = json_of(
            client
                .get(format!("{base}/api/v1/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    // Garbage and plain HTTP on the TLS port: the connection dies, the server lives.
    for junk in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0][..],
        &[0u8; 4096][..],
    ] {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.https_port))
            .await
            .unwrap();
        let _ = stream.write_all(junk).await;
        let mut buf = [0u8; 64];
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await;
    }
    let client = client(&gw.setup, false);
    let (status, _, body) =
        json_of(client.get(format!("{base}/healthz")).send().await.unwrap()).await;
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(status, StatusCode::OK);
    // Without [metrics] bearer_token_file the admin port does not serve /metrics.
    let (status, _, _) = json_of(client.get(format!("{base}/metrics")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Metrics count DICOM traffic: one stored instance on the plain port, one refused association.
    let dir = gw.setup.dir.path().join("m");
    std::fs::create_dir_all(&dir).unwrap();
    let file = data::write(&dir.join("1.dcm"), &data::Spec::new(data::CT, "CT", 1));
    let store = |aet: &str| {
        args(&[
            "-aet",
            aet,
            "-aec",
            GATEWAY_AE,
            "127.0.0.1",
            &gw.plain_port.to_string(),
            file.to_str().unwrap(),
        ])
    };
    assert!(
        dcmtk_async("storescu", store(common::PLAIN_AE))
            .await
            .status
            .success()
    );
    assert!(
        !dcmtk_async("storescu", store("STRANGER"))
            .await
            .status
            .success()
    );
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/metrics", gw.metrics_port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let size = std::fs::metadata(&file).unwrap().len();
    for line in [
        "pacs_gateway_dicom_associations_total{listener=\"plain\",outcome=\"accepted\"} 1".to_string(),
        "pacs_gateway_dicom_associations_total{listener=\"plain\",outcome=\"refused\"} 1".to_string(),
        "pacs_gateway_instances_received_total 1".to_string(),
        "pacs_gateway_http_requests_total{method=\"POST\",route=\"/api/v1/login\",status=\"200\"} 2".to_string(),
        "pacs_gateway_http_requests_total{method=\"GET\",route=\"/api/v1/me\",status=\"401\"} 2".to_string(),
        // storescu had its answer, so its instance is no longer waiting for the index.
        "pacs_gateway_index_queue_instances 0".to_string(),
        "# TYPE pacs_gateway_audit_queue_events gauge".to_string(),
        "# TYPE pacs_gateway_syslog_dropped_messages counter".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    let bytes_line = text
        .lines()
        .find(|l| l.starts_with("pacs_gateway_received_bytes_total"))
        .unwrap();
    let bytes: u64 = bytes_line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        bytes > 0 && bytes < size,
        "data set bytes {bytes} (file {size} with meta header)"
    );
    let _ = gw.stop.send(());
    gw.task.await.unwrap().unwrap();
}
both_backends!(https_login_call_logout);

async fn revoked_certificate_is_refused(backend: Backend) {
    let gw = start(backend).await;
    let base = format!("https://localhost:{}", gw.https_port);
    let client = client(&gw.setup, false);
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"username": ADMIN_A, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = login.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let certs = format!("{base}/api/v1/facilities/{}/certificates", common::FACILITY);
    let (status, _, issued) = json_of(
        client
            .post(&certs)
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let dir = gw.setup.dir.path().join("api-cert");
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, key: &str| -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, issued[key].as_str().unwrap()).unwrap();
        path
    };
    let cert = common::FacilityCert {
        cert: write("facility.crt", "certificate_pem"),
        key: write("facility.key", "private_key_pem"),
        ca: write("ca.crt", "ca_pem"),
    };
    let file = data::write(&dir.join("1.dcm"), &data::Spec::new(data::CT, "CT", 7));
    let store = || {
        let mut list = common::dcmtk_tls_args(&cert);
        list.extend(args(&[
            "-aet",
            "API_CERT",
            "-aec",
            GATEWAY_AE,
            "127.0.0.1",
            &gw.tls_port.to_string(),
            file.to_str().unwrap(),
        ]));
        list
    };
    let ok = dcmtk_async("storescu", store()).await;
    assert!(
        ok.status.success(),
        "store with the issued certificate: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let id = issued["id"].as_i64().unwrap();
    let (status, _, _) = json_of(
        client
            .post(format!("{certs}/{id}/revoke"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let refused = dcmtk_async("storescu", store()).await;
    assert!(
        !refused.status.success(),
        "a revoked certificate must be refused"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        text.contains("Rejected") || text.contains("rejected") || text.contains("Association"),
        "{text}"
    );
    // The harness's own certificate still works.
    let mut list = common::dcmtk_tls_args(&gw.setup.cert);
    list.extend(args(&[
        "-aet",
        "HARNESS",
        "-aec",
        GATEWAY_AE,
        "127.0.0.1",
        &gw.tls_port.to_string(),
        file.to_str().unwrap(),
    ]));
    assert!(dcmtk_async("storescu", list).await.status.success());
    let _ = gw.stop.send(());
    gw.task.await.unwrap().unwrap();
}
both_backends!(revoked_certificate_is_refused);

/// `https.max_connections`: at the limit, a newcomer is still served, and the
/// connection that has sent nothing is closed to make room for it.
async fn a_connection_beyond_the_limit_sheds_an_idle_one(backend: Backend) {
    let gw = start_with(backend, |c| c.https.max_connections = 1).await;
    let url = format!("https://localhost:{}/healthz", gw.https_port);
    // A client that connects and says nothing holds the only place.
    let mut idle = tokio::net::TcpStream::connect(("127.0.0.1", gw.https_port))
        .await
        .unwrap();
    // Give the listener a moment to accept it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let response = client(&gw.setup, true)
        .get(&url)
        .send()
        .await
        .expect("a newcomer is served at the limit");
    assert_eq!(response.status(), StatusCode::OK);
    // The idle connection was closed for it (long before the first-byte timeout).
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(2), idle.read(&mut byte))
        .await
        .expect("the idle connection is closed at once");
    assert!(
        matches!(closed, Ok(0) | Err(_)),
        "the idle connection got data: {closed:?}"
    );
    let _ = gw.stop.send(());
    gw.task.await.unwrap().unwrap();
}
both_backends!(a_connection_beyond_the_limit_sheds_an_idle_one);

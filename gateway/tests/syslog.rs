//! Syslog export of the audit trail to a collector started by the test: RFC 5425
//! (octet-counted RFC 5424 messages over mutual TLS) and RFC 6587 over plain TCP.
//! The frames are parsed back: PRI, VERSION, timestamp, HOSTNAME, APP-NAME, PROCID,
//! MSGID and the structured data, with `"`, `\` and `]` escaped. A collector that is
//! not there never holds up DICOM traffic, and the database still has every event.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::data::{self, Spec};
use common::peers::{Via, ct_association, dataset_bytes, store_bytes, tls_options};
use common::{Backend, GATEWAY_AE, Options, Setup, TestGateway, add_clinician};
use dimse::Status;
use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::{Credentials, Proposal, ScuAssociation, ScuOptions};
use gateway::audit::{AuditFilter, EventKind, search};
use gateway::config::{SyslogConfig, SyslogTransport};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A user name full of characters RFC 5424 says to escape in a PARAM-VALUE.
const ODD_USER: &str = r#"a"b\c]d"#;
const KNOWN_USER: &str = "dr.a-b_c@x";
/// A calling AE title with two of them (AE titles cannot hold a backslash).
const ODD_AE: &str = r#"EVIL"]AE"#;

/// One parsed RFC 5424 message.
#[derive(Debug, Clone)]
struct Message {
    raw: String,
    pri: u16,
    version: String,
    timestamp: String,
    hostname: String,
    app_name: String,
    procid: String,
    msgid: String,
    sd_id: String,
    params: HashMap<String, String>,
}

/// Parses `<PRI>VERSION TS HOST APP PROCID MSGID [SD-ID name="value" ...]`.
fn parse(raw: &str) -> Message {
    let rest = raw.strip_prefix('<').expect("PRI starts with <");
    let (pri, rest) = rest.split_once('>').expect("PRI ends with >");
    let mut fields = rest.splitn(7, ' ');
    let mut next = || fields.next().expect("header field").to_string();
    let (version, timestamp, hostname, app_name, procid, msgid, sd) =
        (next(), next(), next(), next(), next(), next(), next());
    let sd = sd.strip_prefix('[').expect("structured data starts with [");
    let (sd_id, mut body) = sd.split_once(' ').expect("SD-ID then params");
    let mut params = HashMap::new();
    loop {
        let (name, after) = body.split_once("=\"").expect("PARAM-NAME=\"");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next().expect("unterminated PARAM-VALUE");
            match c {
                '\\' => value.push(chars.next().expect("escaped char").1),
                '"' => break i,
                ']' => panic!("unescaped ] inside a PARAM-VALUE: {raw}"),
                c => value.push(c),
            }
        };
        params.insert(name.to_string(), value);
        let tail = &after[end + 1..];
        if tail == "]" {
            break;
        }
        body = tail.strip_prefix(' ').expect("space between params");
    }
    Message {
        raw: raw.to_string(),
        pri: pri.parse().expect("PRI is a number"),
        version,
        timestamp,
        hostname,
        app_name,
        procid,
        msgid,
        sd_id: sd_id.to_string(),
        params,
    }
}

/// Reads octet-counted frames (`LEN SP MSG`) until the stream ends.
async fn read_frames(mut stream: impl AsyncRead + Unpin, out: mpsc::UnboundedSender<Message>) {
    loop {
        let mut len = Vec::new();
        loop {
            let mut b = [0u8; 1];
            if stream.read_exact(&mut b).await.is_err() {
                return;
            }
            if b[0] == b' ' {
                break;
            }
            assert!(
                b[0].is_ascii_digit(),
                "MSG-LEN must be digits, got {:?}",
                b[0] as char
            );
            len.push(b[0]);
        }
        let len: usize = String::from_utf8(len).unwrap().parse().unwrap();
        let mut message = vec![0u8; len];
        stream
            .read_exact(&mut message)
            .await
            .expect("a whole frame");
        let _ = out.send(parse(&String::from_utf8(message).expect("UTF-8")));
    }
}

/// A TLS syslog collector requiring a client certificate from `ca`.
async fn tls_collector(ca: &gateway::pki::Ca) -> (u16, mpsc::UnboundedReceiver<Message>) {
    let server = ca.issue_server(&[]).unwrap();
    let chain = dimse::tls::load_certs(server.cert_pem.as_bytes()).unwrap();
    let key = dimse::tls::load_private_key(server.key_pem.expose_secret().as_bytes()).unwrap();
    let config = dimse::tls::server_config(chain, key, vec![ca.cert_der()]).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(stream) = acceptor.accept(socket).await {
                    read_frames(stream, tx).await;
                }
            });
        }
    });
    (port, rx)
}

async fn tcp_collector() -> (u16, mpsc::UnboundedReceiver<Message>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(read_frames(socket, tx.clone()));
        }
    });
    (port, rx)
}

/// A UDP collector: one message per datagram, no framing (RFC 5426).
async fn udp_collector() -> (u16, mpsc::UnboundedReceiver<Message>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = socket.recv(&mut buf).await {
            let text = std::str::from_utf8(&buf[..n]).expect("UTF-8 datagram");
            assert!(
                !text.starts_with(|c: char| c.is_ascii_digit()),
                "no octet count over UDP: {text}"
            );
            let _ = tx.send(parse(text));
        }
    });
    (port, rx)
}

fn syslog_config(address: String, transport: SyslogTransport) -> SyslogConfig {
    SyslogConfig {
        address,
        transport,
        ca_file: None,
        client_cert: None,
        client_key: None,
        app_name: "pacs-test".into(),
        hostname: Some("gw-test".into()),
        facility: 10,
        buffer: 64,
    }
}

/// Receives messages until `want` kinds have all been seen (or 15 s pass).
async fn collect(rx: &mut mpsc::UnboundedReceiver<Message>, want: &[&str]) -> Vec<Message> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got: Vec<Message> = Vec::new();
    // Every kind as many times as `want` names it.
    let count = |list: &[&str], k: &str| list.iter().filter(|w| **w == k).count();
    while !want
        .iter()
        .all(|k| got.iter().filter(|m| m.msgid == *k).count() >= count(want, k))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => panic!("collector did not get {want:?}; got {got:#?}"),
        }
    }
    got
}

fn check_header(m: &Message, severity: u16) {
    assert_eq!(m.pri, 10 * 8 + severity, "{}", m.raw);
    assert_eq!(m.version, "1");
    let t =
        time::OffsetDateTime::parse(&m.timestamp, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("timestamp {}: {e}", m.timestamp));
    assert!((time::OffsetDateTime::now_utc() - t).abs() < time::Duration::minutes(5));
    assert_eq!(m.hostname, "gw-test");
    assert_eq!(m.app_name, "pacs-test");
    assert_eq!(
        m.procid,
        std::process::id().to_string(),
        "in-process gateway"
    );
    assert_eq!(m.sd_id, "pacsAudit@32473");
    assert_eq!(m.params["kind"], m.msgid);
    assert_eq!(m.params["protocol"], "dicom");
}

async fn store_one(gw: &TestGateway, n: u32) {
    let spec = Spec::new(data::CT, "CT", n);
    let mut scu = ct_association(gw, Via::Plain).await;
    let rsp = store_bytes(&mut scu, &spec.sop_uid, &dataset_bytes(&spec)).await;
    assert_eq!(rsp.status, Status::Success);
    scu.release().await.unwrap();
}

async fn exported_over_tls_with_escaping(backend: Backend) {
    let mut setup = Setup::new(backend, &Options::default()).await;
    let ca = gateway::pki::Ca::create("Syslog Test CA").unwrap();
    let (port, mut rx) = tls_collector(&ca).await;
    let dir = setup.dir.path().join("syslog-client");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca
        .issue_client("pacs-gateway", None)
        .unwrap()
        .write(&dir, "client")
        .unwrap();
    let ca_file: PathBuf = dir.join("ca.crt");
    std::fs::write(&ca_file, ca.cert_pem()).unwrap();
    let mut syslog = syslog_config(format!("localhost:{port}"), SyslogTransport::Tls);
    syslog.ca_file = Some(ca_file);
    syslog.client_cert = Some(cert);
    syslog.client_key = Some(key);
    setup.config.audit.syslog = Some(syslog);
    let gw = TestGateway::start(setup).await;
    let facility = gw.setup.facility.id;

    add_clinician(&gw, facility, KNOWN_USER, "the-right-one").await;
    // An unknown user name might be a password typed into the wrong field:
    // it is not exported. A known user with a wrong password is.
    for username in [ODD_USER, KNOWN_USER] {
        let mut options = tls_options(&gw.setup.cert);
        options.credentials = Some(Credentials::UsernamePassword {
            username: username.into(),
            password: "whatever".into(),
        });
        let refused = ScuAssociation::connect(
            &format!("127.0.0.1:{}", gw.tls_port),
            &options,
            &[Proposal::query(STUDY_ROOT_FIND)],
        )
        .await;
        assert!(refused.is_err());
    }
    let stranger = ScuAssociation::connect(
        &format!("127.0.0.1:{}", gw.plain_port),
        &ScuOptions::new(ODD_AE, GATEWAY_AE),
        &[common::peers::ct_proposal()],
    )
    .await;
    assert!(stranger.is_err());
    store_one(&gw, 10).await;

    let got = collect(
        &mut rx,
        &[
            "authentication-failure",
            "authentication-failure",
            "security-alert",
            "instances-transferred",
        ],
    )
    .await;
    let by_kind = |k: &str| got.iter().find(|m| m.msgid == k).unwrap().clone();

    let failures: Vec<&Message> = got
        .iter()
        .filter(|m| m.msgid == "authentication-failure")
        .collect();
    assert!(
        failures
            .iter()
            .all(|m| !m.raw.contains("a\\\"b") && !m.raw.contains(ODD_USER)),
        "the unknown name is not exported: {failures:#?}"
    );
    let unknown = failures
        .iter()
        .find(|m| !m.params.contains_key("user"))
        .expect("a failure without a user name");
    check_header(unknown, 5);
    let failure = (*failures
        .iter()
        .find(|m| m.params.get("user").map(String::as_str) == Some(KNOWN_USER))
        .expect("a failure naming the known user"))
    .clone();
    check_header(&failure, 5);
    assert!(
        failure.raw.contains(r#"user="dr.a-b_c@x""#),
        "{}",
        failure.raw
    );
    assert_eq!(failure.params["outcome"], "minor-failure");
    assert_eq!(failure.params["outcomeCode"], "4");
    assert_eq!(failure.params["facility"], facility.0.to_string());
    assert_eq!(failure.params["peer"], "127.0.0.1");

    let alert = by_kind("security-alert");
    check_header(&alert, 4);
    assert!(
        alert.params["detail"].contains(ODD_AE),
        "{:?}",
        alert.params
    );
    assert!(alert.raw.contains(r#"EVIL\"\]AE"#), "{}", alert.raw);
    assert!(
        !alert.params.contains_key("facility"),
        "no facility for an unknown AE"
    );

    let stored = by_kind("instances-transferred");
    check_header(&stored, 6);
    assert_eq!(stored.params["count"], "1");
    assert_eq!(stored.params["outcome"], "success");

    let index = gw.index().await;
    let setup = gw.stop().await;
    let events = search(&index, &AuditFilter::default()).await.unwrap();
    for m in [&failure, &alert, &stored] {
        let id: i64 = m.params["eventId"].parse().unwrap();
        let row = events
            .iter()
            .find(|e| e.id == id)
            .expect("same event id as the database");
        assert_eq!(row.event.kind.as_str(), m.msgid);
        assert_eq!(row.event.detail, m.params["detail"]);
    }
    index.close().await;
    drop(setup);
}

both_backends!(exported_over_tls_with_escaping);

async fn exported_over_tcp_in_order(backend: Backend) {
    let mut setup = Setup::new(backend, &Options::default()).await;
    let (port, mut rx) = tcp_collector().await;
    setup.config.audit.syslog = Some(syslog_config(
        format!("127.0.0.1:{port}"),
        SyslogTransport::Tcp,
    ));
    let gw = TestGateway::start(setup).await;
    for n in 10..13 {
        store_one(&gw, n).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = Vec::new();
    while got.len() < 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => panic!("expected three messages, got {got:#?}"),
        }
    }
    for m in &got {
        check_header(m, 6);
        assert_eq!(m.msgid, "instances-transferred");
        assert_eq!(
            m.params["detail"],
            "C-STORE from MODALITY1: stored 1, refused 0"
        );
    }
    let ids: Vec<i64> = got
        .iter()
        .map(|m| m.params["eventId"].parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    gw.stop().await;
}

both_backends!(exported_over_tcp_in_order);

async fn exported_over_udp(backend: Backend) {
    let mut setup = Setup::new(backend, &Options::default()).await;
    let (port, mut rx) = udp_collector().await;
    setup.config.audit.syslog = Some(syslog_config(
        format!("127.0.0.1:{port}"),
        SyslogTransport::Udp,
    ));
    let gw = TestGateway::start(setup).await;
    store_one(&gw, 10).await;
    let got = collect(&mut rx, &["instances-transferred"]).await;
    let stored = got
        .iter()
        .find(|m| m.msgid == "instances-transferred")
        .unwrap();
    check_header(stored, 6);
    assert_eq!(stored.params["count"], "1");
    assert_eq!(
        stored.params["detail"],
        "C-STORE from MODALITY1: stored 1, refused 0"
    );
    let metrics = gw.metrics.clone();
    gw.stop().await;
    assert!(
        metrics
            .encode()
            .contains("pacs_gateway_syslog_dropped_messages_total 0"),
        "nothing dropped with a collector listening"
    );
}

both_backends!(exported_over_udp);

async fn a_missing_collector_never_holds_up_dicom(backend: Backend) {
    let mut setup = Setup::new(backend, &Options::default()).await;
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut syslog = syslog_config(format!("127.0.0.1:{port}"), SyslogTransport::Tcp);
    syslog.buffer = 2;
    setup.config.audit.syslog = Some(syslog);
    let gw = Arc::new(TestGateway::start(setup).await);
    // Every store is answered while the collector is missing (a blocked export
    // would hang here).
    for n in 10..20 {
        store_one(&gw, n).await;
    }
    let index = gw.index().await;
    let metrics = gw.metrics.clone();
    let Ok(gw) = Arc::try_unwrap(gw) else {
        panic!("shared")
    };
    let setup = gw.stop().await;
    let events = search(
        &index,
        &AuditFilter {
            kind: Some(EventKind::InstancesTransferred),
            ..AuditFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(events.len(), 10, "the database has every event");
    assert_eq!(index.instances(setup.facility.id).await.unwrap().len(), 10);
    // Ten events through a buffer of two to nowhere: some were dropped, and
    // /metrics says how many.
    let text = metrics.encode();
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("pacs_gateway_syslog_dropped_messages_total "))
        .unwrap_or_else(|| panic!("no dropped counter in\n{text}"))
        .parse()
        .unwrap();
    assert!(dropped > 0, "{text}");
    assert!(
        text.contains("pacs_gateway_syslog_queue_messages 0"),
        "stopped export holds nothing: {text}"
    );
    index.close().await;
    drop(setup);
}

both_backends!(a_missing_collector_never_holds_up_dicom);

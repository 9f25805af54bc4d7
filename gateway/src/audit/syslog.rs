//! Export of stored audit events as RFC 5424 syslog messages to a collector: over TLS
//! (RFC 5425), plain TCP (RFC 6587 octet counting) or UDP (RFC 5426).
//!
//! A background task owns the connection and reconnects with backoff; events wait in
//! a bounded buffer. When the buffer is full or the collector is gone, messages are
//! dropped, counted and logged: DICOM traffic never waits for the collector. The
//! database is the record; syslog is a copy.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use rustls::pki_types::ServerName;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::{EventKind, Outcome, StoredEvent};
use crate::config::{SyslogConfig, SyslogTransport};

/// SD-ID of the structured data element (32473 is the private enterprise number
/// RFC 5612 reserves for documentation and examples).
pub const SD_ID: &str = "pacsAudit@32473";
/// How long a connect or a write may take before the collector counts as gone.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Fixed header fields of every message.
#[derive(Debug, Clone)]
pub struct Header {
    /// Syslog facility code (0 to 23).
    pub facility: u8,
    /// HOSTNAME field.
    pub hostname: String,
    /// APP-NAME field.
    pub app_name: String,
    /// PROCID field.
    pub procid: String,
}

/// Keeps printable US-ASCII (as RFC 5424 header fields require), at most `max`
/// characters; `-` (the nil value) when nothing is left.
fn header_field(value: &str, max: usize) -> String {
    let kept: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() { "-".into() } else { kept }
}

/// Escapes a PARAM-VALUE: `"`, `\` and `]` get a backslash (RFC 5424 6.3.3).
pub fn escape_param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn severity(kind: EventKind, outcome: Outcome) -> u8 {
    match (kind, outcome) {
        (EventKind::SecurityAlert, _) => 4, // warning
        (_, Outcome::Success) => 6,         // informational
        (_, Outcome::MinorFailure) => 5,    // notice
        (_, Outcome::SeriousFailure) => 4,  // warning
        (_, Outcome::MajorFailure) => 3,    // error
    }
}

fn timestamp(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// The RFC 5424 message for a stored event (without transport framing).
pub fn format_message(header: &Header, stored: &StoredEvent) -> String {
    let e = &stored.event;
    let pri = u16::from(header.facility.min(23)) * 8 + u16::from(severity(e.kind, e.outcome));
    let mut sd = format!("[{SD_ID}");
    let mut param = |name: &str, value: &str| {
        sd.push_str(&format!(" {name}=\"{}\"", escape_param_value(value)));
    };
    param("eventId", &stored.id.to_string());
    param("kind", e.kind.as_str());
    param("outcome", e.outcome.as_str());
    param("outcomeCode", &e.outcome.code().to_string());
    if let Some(f) = e.facility_id {
        param("facility", &f.0.to_string());
    }
    if let Some(user) = &e.username {
        param("user", user);
    }
    if let Some(peer) = &e.peer {
        param("peer", peer);
    }
    param("protocol", e.protocol.as_str());
    param("count", &e.object_count.to_string());
    param("detail", &e.detail);
    sd.push(']');
    format!(
        "<{pri}>1 {} {} {} {} {} {sd}",
        timestamp(stored.occurred_at),
        header_field(&header.hostname, 255),
        header_field(&header.app_name, 48),
        header_field(&header.procid, 128),
        header_field(e.kind.as_str(), 32),
    )
}

/// RFC 6587 / RFC 5425 octet-counting frame: `LEN SP MSG`.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// The export: a bounded buffer in front of the sending task.
#[derive(Debug)]
pub struct SyslogExport {
    header: Header,
    queue: std::sync::Mutex<Option<mpsc::Sender<String>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    dropped: Arc<AtomicU64>,
}

impl SyslogExport {
    /// Prepares the connection settings (reads CA and client certificate files) and
    /// starts the sending task; it connects on the first message.
    pub fn start(config: &SyslogConfig) -> anyhow::Result<SyslogExport> {
        let target = Target::new(config)?;
        let (tx, rx) = mpsc::channel(config.buffer.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(send_loop(target, rx, dropped.clone()));
        let hostname = config.hostname.clone().unwrap_or_else(local_hostname);
        Ok(SyslogExport {
            header: Header {
                facility: config.facility,
                hostname,
                app_name: config.app_name.clone(),
                procid: std::process::id().to_string(),
            },
            queue: std::sync::Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
            dropped,
        })
    }

    /// Queues a stored event; never waits. A full buffer drops it (counted).
    pub fn offer(&self, stored: &StoredEvent) {
        let message = format_message(&self.header, stored);
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        let sent = match queue {
            Some(queue) => queue.try_send(message).is_ok(),
            None => false,
        };
        if !sent {
            self.count_drop(1, "syslog buffer full or export stopped");
        }
    }

    fn count_drop(&self, n: u64, why: &str) {
        count_drop(&self.dropped, n, why);
    }

    /// Messages waiting in the buffer (0 once the export is stopped).
    pub fn queued(&self) -> usize {
        let queue = self.queue.lock().ok().and_then(|q| q.clone());
        queue.map_or(0, |q| q.max_capacity() - q.capacity())
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Stops taking messages and waits up to `grace` for the buffer to be sent; what
    /// is left after that is dropped (counted).
    pub async fn drain(&self, grace: Duration) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        let Some(mut task) = self.task.lock().await.take() else {
            return;
        };
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            warn!("syslog collector did not take the remaining audit messages in time");
        }
    }
}

fn count_drop(counter: &AtomicU64, n: u64, why: &str) {
    let before = counter.fetch_add(n, Ordering::Relaxed);
    // Log the first drop and then every hundredth, not every message.
    if before == 0 || (before + n) / 100 > before / 100 {
        warn!(
            dropped_total = before + n,
            reason = why,
            "audit messages not exported to syslog (they are in the database)"
        );
    }
}

fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into())
}

/// Where and how to connect.
struct Target {
    address: String,
    transport: SyslogTransport,
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl Target {
    fn new(config: &SyslogConfig) -> anyhow::Result<Target> {
        let tls = match config.transport {
            SyslogTransport::Tls => Some(tls_settings(config)?),
            _ => None,
        };
        Ok(Target {
            address: config.address.clone(),
            transport: config.transport,
            tls,
        })
    }
}

fn tls_settings(
    config: &SyslogConfig,
) -> anyhow::Result<(Arc<rustls::ClientConfig>, ServerName<'static>)> {
    let ca = config
        .ca_file
        .as_deref()
        .context("audit.syslog.ca_file is required with transport = \"tls\"")?;
    let roots = dimse::tls::load_certs_file(ca)?;
    let identity = match (&config.client_cert, &config.client_key) {
        (Some(cert), Some(key)) => Some(load_identity(cert, key)?),
        _ => None,
    };
    let client = dimse::tls::client_config(roots, identity)?;
    let host = host_of(&config.address);
    let name = ServerName::try_from(host.to_string()).with_context(|| {
        format!("audit.syslog.address: {host:?} is not a valid TLS server name")
    })?;
    Ok((client, name))
}

type Identity = (
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

fn load_identity(cert: &Path, key: &Path) -> anyhow::Result<Identity> {
    Ok((
        dimse::tls::load_certs_file(cert)?,
        dimse::tls::load_private_key_file(key)?,
    ))
}

/// The host part of `host:port` or `[v6]:port`.
pub(crate) fn host_of(address: &str) -> &str {
    if let Some(rest) = address.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    address.rsplit_once(':').map_or(address, |(h, _)| h)
}

enum Connection {
    Stream(Box<dyn AsyncWrite + Unpin + Send>),
    Datagram(UdpSocket),
}

impl Connection {
    async fn send(&mut self, message: &str) -> std::io::Result<()> {
        match self {
            Connection::Stream(stream) => {
                stream.write_all(&frame(message)).await?;
                stream.flush().await
            }
            Connection::Datagram(socket) => socket.send(message.as_bytes()).await.map(|_| ()),
        }
    }
}

async fn connect(target: &Target) -> anyhow::Result<Connection> {
    if target.transport == SyslogTransport::Udp {
        let socket = UdpSocket::bind(if target.address.starts_with('[') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })
        .await?;
        socket.connect(&target.address).await?;
        return Ok(Connection::Datagram(socket));
    }
    let tcp = TcpStream::connect(&target.address).await?;
    let _ = tcp.set_nodelay(true);
    match &target.tls {
        None => Ok(Connection::Stream(Box::new(tcp))),
        Some((config, name)) => {
            let tls = tokio_rustls::TlsConnector::from(config.clone())
                .connect(name.clone(), tcp)
                .await?;
            Ok(Connection::Stream(Box::new(tls)))
        }
    }
}

async fn send_loop(target: Target, mut rx: mpsc::Receiver<String>, dropped: Arc<AtomicU64>) {
    let mut connection: Option<Connection> = None;
    let mut backoff = Duration::from_millis(500);
    while let Some(message) = rx.recv().await {
        // Each message gets one reconnection attempt; while the collector stays away,
        // the sender waits out the backoff and the buffer fills (then drops).
        for attempt in 0..2 {
            if connection.is_none() {
                match tokio::time::timeout(IO_TIMEOUT, connect(&target)).await {
                    Ok(Ok(c)) => {
                        info!(address = %target.address, "connected to the syslog collector");
                        connection = Some(c);
                        backoff = Duration::from_millis(500);
                    }
                    Ok(Err(e)) => {
                        warn!(address = %target.address, error = %format!("{e:#}"), "cannot connect to the syslog collector")
                    }
                    Err(_) => {
                        warn!(address = %target.address, "syslog collector connect timed out")
                    }
                }
            }
            let Some(c) = connection.as_mut() else {
                if attempt == 1 {
                    count_drop(&dropped, 1, "syslog collector unreachable");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                continue;
            };
            match tokio::time::timeout(IO_TIMEOUT, c.send(&message)).await {
                Ok(Ok(())) => break,
                Ok(Err(e)) => warn!(error = %e, "syslog send failed; reconnecting"),
                Err(_) => warn!("syslog send timed out; reconnecting"),
            }
            connection = None;
            if attempt == 1 {
                count_drop(&dropped, 1, "syslog send failed");
            }
        }
    }
    if let Some(Connection::Stream(mut stream)) = connection {
        let _ = tokio::time::timeout(IO_TIMEOUT, stream.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, Protocol};
    use crate::domain::FacilityId;

    #[test]
    fn messages_follow_rfc_5424() {
        let header = Header {
            facility: 10,
            hostname: "gw 1".into(),
            app_name: "pacs-gateway".into(),
            procid: "42".into(),
        };
        let event = AuditEvent::new(
            EventKind::SecurityAlert,
            Outcome::SeriousFailure,
            Protocol::Dicom,
        )
        .facility(FacilityId(3))
        .peer("127.0.0.1")
        .detail(r#"unknown AE "A]B\C""#);
        let stored = StoredEvent {
            id: 7,
            occurred_at: 1_700_000_000_123,
            event,
        };
        let message = format_message(&header, &stored);
        assert_eq!(
            message,
            "<84>1 2023-11-14T22:13:20.123Z gw1 pacs-gateway 42 security-alert \
             [pacsAudit@32473 eventId=\"7\" kind=\"security-alert\" outcome=\"serious-failure\" \
             outcomeCode=\"8\" facility=\"3\" peer=\"127.0.0.1\" protocol=\"dicom\" count=\"0\" \
             detail=\"unknown AE \\\"A\\]B\\\\C\\\"\"]"
        );
        assert_eq!(frame("abc"), b"3 abc");
        assert_eq!(frame("é"), "2 é".as_bytes(), "length in octets");
    }

    #[test]
    fn hosts_are_split_from_ports() {
        assert_eq!(
            host_of("collector.example.org:6514"),
            "collector.example.org"
        );
        assert_eq!(host_of("[::1]:6514"), "::1");
        assert_eq!(host_of("10.0.0.1:514"), "10.0.0.1");
    }
}

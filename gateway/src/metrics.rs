//! Prometheus metrics of the gateway: one [`Metrics`] registry per process, held in an
//! `Arc` by the [`crate::app::Application`] and served as text at `/metrics`.
//!
//! The DICOM side is measured at the boundary, by wrapping the admission policies
//! ([`MeteredPolicy`]: associations accepted or refused, by listener) and the DIMSE
//! service ([`MeteredService`]: instances received or rejected, bytes received,
//! C-FIND/C-GET/C-MOVE counts and query latency), so that the protocol and ingest code
//! stays free of metric calls. The HTTPS side counts requests by route and status
//! ([`crate::http`]). The background queues (index writer, audit writer, syslog
//! export) are sampled at every scrape ([`Metrics::watch_queues`]), and so are the
//! standard `process_*` metrics (`process`) and the stored bytes per facility and
//! tier (read from the index by the `/metrics` handler). `pacs_gateway_build_info`
//! carries the version and commit. [`Metrics::encode_as`] writes OpenMetrics or the
//! classic text format (`exposition`). No label ever carries a user name, an AE title,
//! a UID or any other value from a request: only fixed names, and facility names
//! (chosen by the operator).

mod exposition;
mod process;
pub mod sweep;
pub mod thumbnails;

pub use exposition::Format;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimse::Status;
use dimse::assoc::{AcceptedContext, AssociateRequest, Capabilities, Rejection};
use dimse::command::{CFindRq, CStoreRq};
use dimse::qr::{FindResult, MoveDestination, Retrieval, RetrieveRequest};
use dimse::scp::{AssociationInfo, DataSink, Service, StoreOutcome};
use dimse::server::Policy;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use crate::audit::{AuditProbe, AuditTrail};
use crate::db::writer::{IndexWriter, PendingProbe};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AssociationLabels {
    listener: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    facility: String,
    tier: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

/// The gateway's metrics and the registry that exposes them.
pub struct Metrics {
    registry: Registry,
    /// Unprefixed: the standard `process_*` names.
    process: Registry,
    associations: Family<AssociationLabels, Counter>,
    connections_refused: Family<RefusalLabels, Counter>,
    instances_received: Counter,
    instances_rejected: Counter,
    bytes_received: Counter,
    operations: Family<OperationLabels, Counter>,
    query_seconds: Histogram,
    http_requests: Family<HttpLabels, Counter>,
    /// The blob sweep's metrics.
    pub sweep: sweep::SweepMetrics,
    /// Thumbnails' metrics.
    pub thumbnails: thumbnails::ThumbnailMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every gateway metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("pacs_gateway");
        let associations = Family::<AssociationLabels, Counter>::default();
        registry.register(
            "dicom_associations",
            "DICOM association requests, by listener (tls, plain) and outcome (accepted, refused)",
            associations.clone(),
        );
        let connections_refused = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused, shed or timed out before being served, by listener (tls, plain, https) and reason (shed, first-byte-timeout, handshake-timeout, slow-body, handshake-failed, closed-early, busy, rejected, over-limit)",
            connections_refused.clone(),
        );
        let instances_received = Counter::default();
        registry.register(
            "instances_received",
            "C-STORE instances stored (success status)",
            instances_received.clone(),
        );
        let instances_rejected = Counter::default();
        registry.register(
            "instances_rejected",
            "C-STORE instances refused, failed or abandoned (any non-success status)",
            instances_rejected.clone(),
        );
        let bytes_received = Counter::default();
        registry.register(
            "received_bytes",
            "Data set bytes received by C-STORE",
            bytes_received.clone(),
        );
        let operations = Family::<OperationLabels, Counter>::default();
        registry.register(
            "dimse_operations",
            "Query/retrieve requests, by operation (find, get, move)",
            operations.clone(),
        );
        let query_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "query_duration_seconds",
            "Time to run a C-FIND query against the index",
            query_seconds.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTPS requests, by method, route template and status",
            http_requests.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: crate::telemetry::VERSION,
                commit: crate::telemetry::COMMIT,
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the labels say which version and git commit is running",
            build,
        );
        let sweep = sweep::SweepMetrics::register(&mut registry);
        let thumbnails = thumbnails::ThumbnailMetrics::register(&mut registry);
        let mut process = Registry::default();
        process.register_collector(Box::new(process::ProcessCollector));
        Metrics {
            sweep,
            thumbnails,
            registry,
            process,
            associations,
            connections_refused,
            instances_received,
            instances_rejected,
            bytes_received,
            operations,
            query_seconds,
            http_requests,
        }
    }

    /// Reports the depth of the background queues at every scrape: instances waiting
    /// for the index `writer`, events waiting for the `audit` writer and for its
    /// syslog export, and the syslog messages dropped so far.
    /// The probes hold no handle that would keep those writers running.
    pub fn watch_queues(&mut self, writer: &IndexWriter, audit: &AuditTrail) {
        self.registry.register_collector(Box::new(QueueCollector {
            writer: writer.pending_probe(),
            audit: audit.probe(),
        }));
    }

    /// Counts an association request on `listener`.
    pub fn association(&self, listener: &'static str, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.associations
            .get_or_create(&AssociationLabels { listener, outcome })
            .inc();
    }

    /// Counts a connection on `listener` refused, shed or timed out for `reason`.
    pub fn connection_refused(&self, listener: &'static str, reason: dimse::admission::Refusal) {
        self.connections_refused
            .get_or_create(&RefusalLabels {
                listener,
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts the outcome of one C-STORE.
    pub fn instance(&self, stored: bool) {
        if stored {
            self.instances_received.inc();
        } else {
            self.instances_rejected.inc();
        }
    }

    /// Counts received data set bytes.
    pub fn bytes_received(&self, bytes: usize) {
        self.bytes_received.inc_by(bytes as u64);
    }

    /// Counts a query/retrieve request (`find`, `get`, `move`).
    pub fn operation(&self, operation: &'static str) {
        self.operations
            .get_or_create(&OperationLabels { operation })
            .inc();
    }

    /// Records how long a C-FIND query took.
    pub fn query_latency(&self, took: Duration) {
        self.query_seconds.observe(took.as_secs_f64());
    }

    /// Counts an HTTPS request by method, matched route template and status.
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_string(),
                route: route.to_string(),
                status,
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every metric (without stored bytes).
    pub fn encode(&self) -> String {
        self.encode_as(Format::OpenMetrics, &[])
    }

    /// Every metric in `format`, with `stored` = (facility name, bytes stored in the
    /// primary tier) as `pacs_gateway_stored_bytes{facility,tier}`.
    pub fn encode_as(&self, format: Format, stored: &[(String, i64)]) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut extra = Registry::with_prefix("pacs_gateway");
        let family = Family::<StoredLabels, Gauge>::default();
        for (facility, bytes) in stored {
            family
                .get_or_create(&StoredLabels {
                    facility: facility.clone(),
                    tier: "primary",
                })
                .set(*bytes);
        }
        extra.register(
            "stored_bytes",
            "Bytes of instances stored, by facility and storage tier",
            family,
        );
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode_registry(&mut out, &self.registry)
            .and_then(|()| encode_registry(&mut out, &extra))
            .and_then(|()| encode_registry(&mut out, &self.process))
            .and_then(|()| encode_eof(&mut out));
        match format {
            Format::OpenMetrics => out,
            Format::Classic => exposition::to_classic(&out),
        }
    }
}

/// Samples the background queues when `/metrics` is read.
#[derive(Debug)]
struct QueueCollector {
    writer: PendingProbe,
    audit: AuditProbe,
}

fn encode_gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> fmt::Result {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)
}

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_gauge(
            &mut encoder,
            "index_queue_instances",
            "Received instances waiting to be indexed (queued for the index writer or in the batch it is committing)",
            self.writer.pending(),
        )?;
        encode_gauge(
            &mut encoder,
            "audit_queue_events",
            "Audit events queued for the database writer",
            self.audit.queued(),
        )?;
        encode_gauge(
            &mut encoder,
            "syslog_queue_messages",
            "Audit messages waiting in the syslog export's buffer",
            self.audit.syslog_queued(),
        )?;
        let dropped = ConstCounter::new(self.audit.syslog_dropped());
        dropped.encode(encoder.encode_descriptor(
            "syslog_dropped_messages",
            "Audit messages the syslog export dropped (full buffer, unreachable collector); the database still has them",
            None,
            dropped.metric_type(),
        )?)
    }
}

/// A [`Policy`] that counts what the wrapped policy decides.
#[derive(Debug, Clone)]
pub struct MeteredPolicy<P> {
    /// The policy deciding.
    pub inner: P,
    /// Where to count.
    pub metrics: Arc<Metrics>,
    /// Listener label: `tls` or `plain`.
    pub listener: &'static str,
}

impl<P: Policy> Policy for MeteredPolicy<P> {
    type Session = P::Session;

    async fn admit(&self, request: &AssociateRequest<'_>) -> Result<P::Session, Rejection> {
        let decided = self.inner.admit(request).await;
        self.metrics.association(self.listener, decided.is_ok());
        decided
    }

    fn describe(&self, session: &P::Session) -> Option<String> {
        self.inner.describe(session)
    }

    fn refused(&self, reason: dimse::admission::Refusal) {
        self.metrics.connection_refused(self.listener, reason);
        self.inner.refused(reason);
    }
}

/// A [`Service`] that counts instances, bytes and query/retrieve requests, and times
/// C-FIND queries, of the wrapped service.
#[derive(Debug)]
pub struct MeteredService<S> {
    /// The service answering.
    pub inner: Arc<S>,
    /// Where to count.
    pub metrics: Arc<Metrics>,
}

impl<S: Capabilities> Capabilities for MeteredService<S> {
    fn supports_abstract_syntax(&self, uid: &str) -> bool {
        self.inner.supports_abstract_syntax(uid)
    }

    fn supports_transfer_syntax(&self, uid: &str) -> bool {
        self.inner.supports_transfer_syntax(uid)
    }

    fn sends_storage(&self) -> bool {
        self.inner.sends_storage()
    }
}

impl<Sess, S> Service<Sess> for MeteredService<S>
where
    Sess: Send + Sync + 'static,
    S: Service<Sess>,
{
    type Sink = MeteredSink<S::Sink>;

    async fn echo(&self, session: &Sess, association: &AssociationInfo) -> Status {
        self.inner.echo(session, association).await
    }

    async fn begin_store(
        &self,
        session: &Sess,
        association: &AssociationInfo,
        request: &CStoreRq,
        context: &AcceptedContext,
    ) -> Result<Self::Sink, StoreOutcome> {
        match self
            .inner
            .begin_store(session, association, request, context)
            .await
        {
            Ok(inner) => Ok(MeteredSink {
                inner,
                metrics: self.metrics.clone(),
            }),
            Err(refused) => {
                self.metrics.instance(false);
                Err(refused)
            }
        }
    }

    async fn find(
        &self,
        session: &Sess,
        association: &AssociationInfo,
        request: &CFindRq,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<mpsc::Receiver<FindResult>, StoreOutcome> {
        self.metrics.operation("find");
        let started = Instant::now();
        let answer = self
            .inner
            .find(session, association, request, context, identifier)
            .await;
        self.metrics.query_latency(started.elapsed());
        answer
    }

    async fn retrieve(
        &self,
        session: &Sess,
        association: &AssociationInfo,
        request: &RetrieveRequest,
        context: &AcceptedContext,
        identifier: Vec<u8>,
    ) -> Result<Retrieval, StoreOutcome> {
        self.metrics.operation(match request {
            RetrieveRequest::Get(_) => "get",
            RetrieveRequest::Move(_) => "move",
        });
        self.inner
            .retrieve(session, association, request, context, identifier)
            .await
    }

    async fn move_destination(
        &self,
        session: &Sess,
        association: &AssociationInfo,
        ae_title: &str,
    ) -> Option<MoveDestination> {
        self.inner
            .move_destination(session, association, ae_title)
            .await
    }
}

/// A [`DataSink`] that counts the bytes written through it and the outcome.
#[derive(Debug)]
pub struct MeteredSink<K> {
    inner: K,
    metrics: Arc<Metrics>,
}

impl<K: DataSink> DataSink for MeteredSink<K> {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), StoreOutcome> {
        self.metrics.bytes_received(chunk.len());
        self.inner.write(chunk).await
    }

    async fn finish(self) -> StoreOutcome {
        let outcome = self.inner.finish().await;
        self.metrics.instance(outcome.status.is_success());
        outcome
    }

    async fn discard(self) {
        self.metrics.instance(false);
        self.inner.discard().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_in_the_text_exposition() {
        let m = Metrics::new();
        m.association("tls", true);
        m.association("plain", false);
        m.instance(true);
        m.bytes_received(1234);
        m.operation("find");
        m.query_latency(Duration::from_millis(3));
        m.http_request("GET", "/healthz", 200);
        let text = m.encode();
        for line in [
            "pacs_gateway_dicom_associations_total{listener=\"tls\",outcome=\"accepted\"} 1",
            "pacs_gateway_dicom_associations_total{listener=\"plain\",outcome=\"refused\"} 1",
            "pacs_gateway_instances_received_total 1",
            "pacs_gateway_received_bytes_total 1234",
            "pacs_gateway_dimse_operations_total{operation=\"find\"} 1",
            "pacs_gateway_query_duration_seconds_count 1",
            "pacs_gateway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn both_formats_carry_build_process_and_stored_bytes() {
        let m = Metrics::new();
        m.instance(true);
        let stored = [("st-mary".to_string(), 1234)];
        let om = m.encode_as(Format::OpenMetrics, &stored);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(om.contains("# TYPE pacs_gateway_instances_received counter"));
        let classic = m.encode_as(Format::Classic, &stored);
        assert!(!classic.contains("# EOF"), "{classic}");
        assert!(classic.contains("# TYPE pacs_gateway_instances_received_total counter"));
        for text in [&om, &classic] {
            let build = format!(
                "pacs_gateway_build_info{{version=\"{}\",commit=\"{}\"}} 1",
                crate::telemetry::VERSION,
                crate::telemetry::COMMIT
            );
            assert!(text.contains(&build), "{text}");
            assert!(
                text.contains(
                    "pacs_gateway_stored_bytes{facility=\"st-mary\",tier=\"primary\"} 1234"
                ),
                "{text}"
            );
            assert!(text.contains("pacs_gateway_instances_received_total 1"));
            #[cfg(target_os = "linux")]
            for name in [
                "process_cpu_seconds_total ",
                "process_resident_memory_bytes ",
                "process_open_fds ",
                "process_start_time_seconds ",
            ] {
                assert!(text.contains(name), "no {name} in {text}");
            }
            // Every sample line is `name{labels} value` with a number for the value.
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let value = line.rsplit(' ').next().unwrap();
                assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
            }
        }
    }

    /// The value of the sample line `name` in the exposition.
    fn sample(text: &str, name: &str) -> i64 {
        let line = text
            .lines()
            .find(|l| l.split(' ').next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    async fn temp_index() -> (tempfile::TempDir, String, crate::db::Index) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
        let index = crate::db::Index::open(&url).await.unwrap();
        (dir, url, index)
    }

    fn event() -> crate::audit::AuditEvent {
        crate::audit::AuditEvent::new(
            crate::audit::EventKind::Query,
            crate::audit::Outcome::Success,
            crate::audit::Protocol::Dicom,
        )
    }

    // On a current-thread runtime the audit writer cannot run before this test
    // awaits, so what `record_detached` queued is still queued when sampled.
    #[tokio::test(flavor = "current_thread")]
    async fn audit_queue_depth_is_sampled_at_each_scrape() {
        let (_dir, _url, index) = temp_index().await;
        let audit = AuditTrail::start(index.clone(), 16, None);
        let writer = IndexWriter::spawn(index.clone());
        let mut m = Metrics::new();
        m.watch_queues(&writer, &audit);
        assert_eq!(sample(&m.encode(), "pacs_gateway_audit_queue_events"), 0);
        for _ in 0..3 {
            audit.record_detached(event());
        }
        let text = m.encode();
        assert_eq!(sample(&text, "pacs_gateway_audit_queue_events"), 3);
        assert_eq!(sample(&text, "pacs_gateway_syslog_queue_messages"), 0);
        assert_eq!(
            sample(&text, "pacs_gateway_syslog_dropped_messages_total"),
            0
        );
        assert!(text.contains("# TYPE pacs_gateway_audit_queue_events gauge"));
        audit.flush().await;
        assert_eq!(sample(&m.encode(), "pacs_gateway_audit_queue_events"), 0);
        let stored = crate::audit::search(&index, &crate::audit::AuditFilter::default())
            .await
            .unwrap();
        assert_eq!(stored.len(), 3);
        // The probe does not keep the trail alive.
        drop(audit);
        assert_eq!(sample(&m.encode(), "pacs_gateway_audit_queue_events"), 0);
        index.close().await;
    }

    // Another connection holds the database's write lock, so the instance handed to
    // the index writer stays pending until it lets go.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn index_writer_backlog_is_sampled_at_each_scrape() {
        use sqlx::{Connection, Executor};
        let (_dir, url, index) = temp_index().await;
        let name = crate::domain::FacilityName::parse("f").unwrap();
        let facility = index.create_facility(&name, true).await.unwrap().id;
        let audit = AuditTrail::start(index.clone(), 16, None);
        let writer = IndexWriter::spawn(index.clone());
        let mut m = Metrics::new();
        m.watch_queues(&writer, &audit);
        assert_eq!(sample(&m.encode(), "pacs_gateway_index_queue_instances"), 0);

        let mut locker = sqlx::SqliteConnection::connect(&url).await.unwrap();
        locker.execute("BEGIN EXCLUSIVE").await.unwrap();
        let uid = |s: &str| crate::domain::Uid::parse(s).unwrap();
        let record = crate::db::instances::InstanceRecord {
            facility,
            sop_instance_uid: uid("1.2.3.4"),
            sop_class_uid: uid("1.2.840.10008.5.1.4.1.1.2"),
            study_uid: uid("1.2.3"),
            series_uid: uid("1.2.3.1"),
            transfer_syntax: uid("1.2.840.10008.1.2.1"),
            instance_number: Some(1),
            number_of_frames: None,
            size_bytes: 10,
            sha256: "00".repeat(32),
            blob_key: "k".into(),
            calling_ae: "CT".into(),
            received_at: 0,
            study: Default::default(),
            series: Default::default(),
        };
        let w = writer.clone();
        let insert = tokio::spawn(async move { w.insert(record).await });
        let probe = writer.pending_probe();
        let deadline = Instant::now() + Duration::from_secs(10);
        while probe.pending() == 0 {
            assert!(Instant::now() < deadline, "the insert never started");
            tokio::task::yield_now().await;
        }
        assert_eq!(sample(&m.encode(), "pacs_gateway_index_queue_instances"), 1);
        assert!(!insert.is_finished(), "the lock holds the insert");
        locker.execute("ROLLBACK").await.unwrap();
        insert
            .await
            .unwrap()
            .expect("indexed once the lock is gone");
        assert_eq!(sample(&m.encode(), "pacs_gateway_index_queue_instances"), 0);
        index.close().await;
    }
}

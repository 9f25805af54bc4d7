//! Wiring and lifecycle: from a [`Config`] to bound listeners, an open index and blob
//! store, and the DICOM and HTTPS servers running until shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use dimse::server::{Policy, ServerOptions, serve};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::audit::AuditTrail;
use crate::audit::syslog::SyslogExport;
use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db::Index;
use crate::domain::FacilityName;
use crate::http::ApiState;
use crate::ingest::Ingest;
use crate::metrics::{MeteredPolicy, MeteredService, Metrics};
use crate::pki;
use crate::scp::{AeAllowList, CertificatePolicy, GatewayService};

/// Certificates in effect: configured, or the dev PKI in `data_dir/certs`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Server certificate chain.
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// CA that issues facility certificates.
    pub ca_cert: PathBuf,
    /// That CA's key, if available here.
    pub ca_key: Option<PathBuf>,
}

impl TlsFiles {
    /// Resolves the certificate files, creating the dev PKI on first use.
    pub fn resolve(config: &Config) -> anyhow::Result<TlsFiles> {
        let tls = &config.tls;
        if let (Some(cert), Some(key), Some(ca)) = (&tls.cert, &tls.key, &tls.ca_cert) {
            return Ok(TlsFiles {
                server_cert: cert.clone(),
                server_key: key.clone(),
                ca_cert: ca.clone(),
                ca_key: tls.ca_key.clone(),
            });
        }
        let dir = config.data_dir.join("certs");
        let dev = pki::ensure_dev_pki(&dir, &tls.dev_hostnames)?;
        if dev.created {
            info!(dir = %dir.display(), "created a development CA and server certificate; replace them for production");
        }
        if let Some(names) = &dev.reissued_for {
            warn!(
                cert = %dev.server_cert.display(),
                names = %names.join(","),
                "[tls] dev_hostnames changed: issued the dev server certificate again for these names (the old one is kept as server.crt.replaced); clients keep working, they trust the same CA"
            );
        }
        Ok(TlsFiles {
            server_cert: dev.server_cert,
            server_key: dev.server_key,
            ca_cert: dev.ca_cert,
            ca_key: Some(dir.join("ca.key")),
        })
    }

    /// The CA, for issuing facility certificates.
    pub fn load_ca(&self) -> anyhow::Result<pki::Ca> {
        let Some(key) = &self.ca_key else {
            bail!(
                "tls.ca_key is not configured: the CA key is needed to issue facility certificates"
            );
        };
        Ok(pki::Ca::load(&self.ca_cert, key)?)
    }

    fn server_config(&self) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let hint = |e: dimse::tls::TlsError| {
            anyhow::anyhow!(
                "{e}; check `cert`, `key` and `ca_cert` in the [tls] section of the config"
            )
        };
        let chain = dimse::tls::load_certs_file(&self.server_cert).map_err(hint)?;
        let key = dimse::tls::load_private_key_file(&self.server_key).map_err(hint)?;
        let roots = dimse::tls::load_certs_file(&self.ca_cert).map_err(hint)?;
        dimse::tls::server_config(chain, key, roots).map_err(hint)
    }

    /// TLS client settings for calling C-MOVE destinations: their certificates must
    /// be issued by our CA; the gateway presents no client certificate.
    fn move_client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let roots = dimse::tls::load_certs_file(&self.ca_cert)?;
        Ok(dimse::tls::client_config(roots, None)?)
    }
}

/// Opens the index named by the config, creating the data dir.
/// The data dir is made 0700 and an SQLite index's files 0600 (also existing ones).
pub async fn open_index(config: &Config) -> anyhow::Result<Index> {
    crate::at_rest::private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let url = config.database_url();
    let index = Index::open(&url).await?;
    for file in crate::at_rest::sqlite_files(&url) {
        crate::at_rest::private_file(&file)
            .with_context(|| format!("cannot restrict the permissions of {}", file.display()))?;
    }
    Ok(index)
}

/// Refuses (or warns about, per `[tls] key_permissions`) private key files that
/// group or others may read: the TLS server key, the CA key, the syslog client key.
fn check_private_keys(config: &Config, files: Option<&TlsFiles>) -> anyhow::Result<()> {
    let policy = config.tls.key_permissions;
    let mut keys: Vec<&Path> = Vec::new();
    if let Some(files) = files {
        keys.push(&files.server_key);
        keys.extend(files.ca_key.as_deref());
    }
    if let Some(syslog) = &config.audit.syslog {
        keys.extend(syslog.client_key.as_deref());
    }
    for key in keys {
        crate::at_rest::check_private_key(key, policy)
            .map_err(|e| crate::config::ConfigError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// A built gateway, listeners bound, ready to run.
#[derive(Debug)]
pub struct Application {
    index: Index,
    ingest: Arc<Ingest>,
    options: ServerOptions,
    ae_title: String,
    allow_list: HashMap<String, FacilityName>,
    tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
    plain: Option<TcpListener>,
    auth: crate::auth::Authenticator,
    move_tls: Option<Arc<rustls::ClientConfig>>,
    audit: AuditTrail,
    https: Option<HttpsServer>,
    metrics_http: Option<(TcpListener, ApiState)>,
    metrics: Arc<Metrics>,
    sweep: SweepTimes,
    thumbnails: crate::render::Thumbnails,
    /// The lifecycle job and how often it runs (`None`: `[lifecycle] enabled = false`).
    lifecycle: Option<(crate::lifecycle::Lifecycle, Duration)>,
}

/// When the blob sweep runs and what it may delete.
#[derive(Debug, Clone, Copy)]
struct SweepTimes {
    interval: Duration,
    min_age: Duration,
}

/// Sweeps the blob store at start and then every `times.interval`, until `stop`.
async fn sweep_blobs(
    ingest: Arc<Ingest>,
    metrics: Arc<Metrics>,
    times: SweepTimes,
    stop: CancellationToken,
) {
    loop {
        let sweep = crate::ingest::sweep::sweep(&ingest.index, &ingest.blobs, times.min_age);
        let report = tokio::select! {
            report = sweep => report,
            _ = stop.cancelled() => return,
        };
        metrics.sweep.record(&report);
        tokio::select! {
            _ = tokio::time::sleep(times.interval) => {}
            _ = stop.cancelled() => return,
        }
    }
}

/// Starts the audit trail (and its syslog export, if configured) on `index`.
pub fn start_audit(config: &Config, index: &Index) -> anyhow::Result<AuditTrail> {
    let syslog = match &config.audit.syslog {
        Some(s) => Some(SyslogExport::start(s).context("cannot set up the syslog export")?),
        None => None,
    };
    Ok(AuditTrail::start(index.clone(), config.audit.queue, syslog))
}

/// The bound HTTPS listener and what it serves.
#[derive(Debug)]
struct HttpsServer {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    state: ApiState,
    max_body_bytes: usize,
    limits: crate::http::server::HttpsLimits,
}

async fn bind(addr: &str, what: &str) -> anyhow::Result<Option<TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for {what} on {addr}"))?;
    Ok(Some(listener))
}

impl Application {
    /// [`Application::build`], first logging the start banner and warnings about
    /// settings that can never work; `config_file` is named in the banner.
    pub async fn build_from(
        config: Config,
        config_file: Option<&Path>,
    ) -> anyhow::Result<Application> {
        crate::startup::banner(&config, config_file);
        let app = Application::build(config.clone()).await?;
        crate::startup::warn_unusable(&config, &app.index).await;
        Ok(app)
    }

    /// Opens storage, resolves certificates and binds the listeners.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let index = open_index(&config).await?;
        let blobs = BlobStore::open(&config.data_dir.join("blobs"))?;
        let audit = start_audit(&config, &index)?;
        let ingest = Ingest::new(
            index.clone(),
            blobs,
            config.ingest.duplicate_policy,
            audit.clone(),
        );
        let mut allow_list = HashMap::new();
        for (ae, facility) in &config.dicom.plain_ae {
            let name = FacilityName::parse(facility).map_err(anyhow::Error::msg)?;
            allow_list.insert(ae.trim().to_string(), name);
        }
        // Without a TLS listener there is no CA in use, and C-MOVE destinations
        // registered with --tls are refused.
        let tls_listener = bind(&config.dicom.tls_listen, "DICOM TLS").await?;
        let https_listener = match config.https.enabled {
            true => bind(&config.https.listen, "HTTPS").await?,
            false => None,
        };
        let files = match tls_listener.is_some() || https_listener.is_some() {
            true => Some(Arc::new(TlsFiles::resolve(&config)?)),
            false => None,
        };
        check_private_keys(&config, files.as_deref())?;
        let (tls, move_tls) = match (tls_listener, &files) {
            (Some(listener), Some(files)) => {
                let server = files.server_config()?;
                (Some((listener, server)), Some(files.move_client_config()?))
            }
            _ => (None, None),
        };
        let plain = bind(&config.dicom.plain_listen, "plain DICOM").await?;
        let auth = crate::auth::Authenticator::new(index.clone(), config.auth.clone()).await?;
        let mut metrics = Metrics::new();
        metrics.watch_queues(&ingest.writer, &audit);
        let metrics = Arc::new(metrics);
        let thumbnails = start_thumbnails(&config, &ingest, &metrics)?;
        let lifecycle = crate::lifecycle::Lifecycle::new(
            index.clone(),
            ingest.blobs.clone(),
            audit.clone(),
            Arc::new(crate::lifecycle::SystemClock),
        );
        let state = ApiState {
            index: index.clone(),
            auth: auth.clone(),
            metrics: metrics.clone(),
            token_ttl: Duration::from_secs(config.https.token_ttl_secs),
            tls_files: files.clone(),
            audit: audit.clone(),
            metrics_access: metrics_access(&config)?,
            dicomweb: Some(crate::web::WebState::new(
                ingest.clone(),
                thumbnails.clone(),
                config.thumbnails.size,
            )),
            lifecycle: Some(lifecycle.clone()),
        };
        let metrics_http = bind(&config.metrics.listen, "metrics (HTTP)")
            .await?
            .map(|listener| (listener, state.clone()));
        let https = match (https_listener, &files) {
            (Some(listener), Some(files)) => Some(HttpsServer {
                listener,
                tls: crate::http::server::tls_config(&files.server_cert, &files.server_key)?,
                state,
                max_body_bytes: config.https.max_body_bytes,
                limits: config.https.limits(),
            }),
            _ => None,
        };
        let d = &config.dicom;
        let options = ServerOptions {
            max_pdu: d.max_pdu,
            handshake_timeout: Duration::from_secs(d.handshake_timeout_secs),
            read_timeout: Duration::from_secs(d.read_timeout_secs),
            max_associations: d.max_associations,
            admission: d.admission(),
            ..ServerOptions::default()
        };
        Ok(Application {
            index,
            ingest,
            options,
            ae_title: d.ae_title.trim().to_string(),
            allow_list,
            tls,
            plain,
            auth,
            move_tls,
            audit,
            https,
            metrics_http,
            metrics,
            thumbnails,
            lifecycle: config.lifecycle.enabled.then(|| {
                (
                    lifecycle,
                    Duration::from_secs(config.lifecycle.interval_secs.max(1)),
                )
            }),
            sweep: SweepTimes {
                interval: Duration::from_secs(config.ingest.sweep_interval_secs),
                min_age: Duration::from_secs(config.ingest.orphan_min_age_secs),
            },
        })
    }

    /// Rendering and thumbnails of stored instances (for the DICOMweb handlers).
    pub fn thumbnails(&self) -> &crate::render::Thumbnails {
        &self.thumbnails
    }

    /// Port of the plain-HTTP metrics listener.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_http
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Port of the HTTPS listener.
    pub fn https_port(&self) -> Option<u16> {
        self.https
            .as_ref()
            .and_then(|h| h.listener.local_addr().ok())
            .map(|a| a.port())
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The audit trail (for the HTTPS handlers, which record through it too).
    pub fn audit(&self) -> &AuditTrail {
        &self.audit
    }

    /// Port of the DICOM TLS listener.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// Port of the plain DICOM listener.
    pub fn plain_port(&self) -> Option<u16> {
        self.plain
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Blob store root.
    pub fn blob_root(&self) -> &Path {
        self.ingest.blobs.root()
    }

    /// Serves until `shutdown` completes, then drains running associations.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        let service = Arc::new(MeteredService {
            inner: Arc::new(GatewayService {
                ingest: self.ingest.clone(),
                move_tls: self.move_tls.clone(),
            }),
            metrics: self.metrics.clone(),
        });
        let mut tasks = tokio::task::JoinSet::new();
        if let Some((listener, config)) = self.tls {
            info!(addr = %listener.local_addr()?, ae_title = %self.ae_title, "DICOM TLS listening");
            let policy = MeteredPolicy {
                inner: CertificatePolicy {
                    index: self.index.clone(),
                    ae_title: self.ae_title.clone(),
                    auth: self.auth.clone(),
                    audit: self.audit.clone(),
                },
                metrics: self.metrics.clone(),
                listener: "tls",
            };
            let options = ServerOptions {
                tls: Some(config),
                ..self.options.clone()
            };
            tasks.spawn(run_server(
                listener,
                options,
                policy,
                service.clone(),
                stop.clone(),
            ));
        }
        if let Some(listener) = self.plain {
            info!(addr = %listener.local_addr()?, allowed_aes = self.allow_list.len(), "plain DICOM listening");
            let policy = MeteredPolicy {
                inner: AeAllowList {
                    index: self.index.clone(),
                    ae_title: self.ae_title.clone(),
                    allowed: self.allow_list,
                    auth: self.auth.clone(),
                    audit: self.audit.clone(),
                },
                metrics: self.metrics.clone(),
                listener: "plain",
            };
            tasks.spawn(run_server(
                listener,
                self.options.clone(),
                policy,
                service.clone(),
                stop.clone(),
            ));
        }
        if let Some(https) = self.https {
            info!(addr = %https.listener.local_addr()?, "HTTPS listening");
            let router = crate::http::router(https.state, https.max_body_bytes);
            let stop = stop.clone();
            tasks.spawn(crate::http::server::serve(
                https.listener,
                https.tls,
                router,
                https.limits,
                self.metrics.clone(),
                async move { stop.cancelled().await },
            ));
        }
        if let Some((listener, state)) = self.metrics_http {
            info!(addr = %listener.local_addr()?, "metrics (HTTP: /metrics, /healthz) listening");
            let router = crate::http::metrics_router(state);
            let stop = stop.clone();
            tasks.spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
                if let Err(e) = served {
                    warn!(error = %e, "the metrics listener stopped");
                }
            });
        }
        if tasks.is_empty() {
            bail!("no listener configured: set dicom.tls_listen or dicom.plain_listen");
        }
        tasks.spawn(sweep_blobs(
            self.ingest.clone(),
            self.metrics.clone(),
            self.sweep,
            stop.clone(),
        ));
        if let Some((job, every)) = self.lifecycle.clone() {
            tasks.spawn(crate::lifecycle::run(job, every, stop.clone()));
        }
        shutdown.await;
        info!("shutting down");
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        // Every association has ended: their events are queued; write them all.
        self.audit.shutdown(Duration::from_secs(5)).await;
        self.index.close().await;
        Ok(())
    }
}

/// The rendering and thumbnail service, and (with `[thumbnails] enabled`) the
/// background thumbnailer fed by the ingest path.
fn start_thumbnails(
    config: &Config,
    ingest: &Ingest,
    metrics: &Metrics,
) -> anyhow::Result<crate::render::Thumbnails> {
    let risk = crate::render::RiskPolicy::from_config(&config.rendering)
        .map_err(|e| crate::config::ConfigError::Invalid(format!("rendering: {e}")))?;
    let service = crate::render::Thumbnails::new(
        ingest.index.clone(),
        ingest.blobs.clone(),
        risk,
        metrics.thumbnails.clone(),
    );
    let t = &config.thumbnails;
    if t.enabled {
        let queue = crate::render::queue::ThumbnailQueue::spawn(
            service.clone(),
            t.spec(),
            t.queue,
            Duration::from_millis(t.delay_ms),
            metrics.thumbnails.clone(),
        );
        let _ = ingest.thumbnails.set(queue);
    }
    Ok(service)
}

/// Who may read `/metrics` on the HTTPS port: holders of the token in
/// `[metrics] bearer_token_file`, or nobody.
fn metrics_access(config: &Config) -> anyhow::Result<crate::http::MetricsAccess> {
    let Some(path) = &config.metrics.bearer_token_file else {
        return Ok(crate::http::MetricsAccess::Closed);
    };
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read [metrics] bearer_token_file {}", path.display()))?;
    if token.trim().len() < 16 {
        return Err(crate::config::ConfigError::Invalid(format!(
            "[metrics] bearer_token_file {} must hold a token of at least 16 characters",
            path.display()
        ))
        .into());
    }
    Ok(crate::http::MetricsAccess::bearer(&token))
}

async fn run_server<P>(
    listener: TcpListener,
    options: ServerOptions,
    policy: P,
    service: Arc<MeteredService<GatewayService>>,
    stop: CancellationToken,
) where
    P: Policy<Session = crate::scp::Session>,
{
    serve(listener, options, policy, service, async move {
        stop.cancelled().await
    })
    .await;
}

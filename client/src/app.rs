//! Wiring: the edge SCP, the forwarder, the DICOMweb proxy and the thumbnail sync of
//! `pacs-client serve`, and the import path of `pacs-client send`, which feeds files
//! through the same spool pipeline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dimse::command::{CStoreRq, Priority};
use dimse::scp::{DataSink, StoreOutcome};
use dimse::server::{ServerOptions, serve};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clinician::viewer::{ViewerAccess, ViewerProxy};
use crate::clinician::web::WebProxy;
use crate::config::Config;
use crate::edge::{EdgeService, ModalityPolicy};
use crate::intake::forward::Forwarder;
use crate::intake::spool::{Spool, SpoolSink};
use crate::outbox::Outbox;

/// The running client: edge SCP + forwarder.
#[derive(Debug)]
pub struct Client {
    listener: TcpListener,
    options: ServerOptions,
    policy: ModalityPolicy,
    service: Arc<EdgeService>,
    forwarder: Arc<Forwarder>,
    outbox: Outbox,
    retention: crate::config::RetentionConfig,
    /// The DICOMweb proxy's listener, when `[web]` turns it on.
    web: Option<(TcpListener, Arc<WebProxy>)>,
    /// The thumbnail sync, when `[sync] out` is set, and its interval.
    sync: Option<(crate::clinician::sync::Syncer, Duration)>,
    _lock: crate::datadir::DataDirLock,
}

impl Client {
    /// Loads the key, opens the outbox and spool, binds the edge listener.
    pub async fn build(config: &Config) -> anyhow::Result<Client> {
        // Held for as long as the client runs: one serve per data dir.
        let lock = crate::datadir::lock(&config.data_dir)?;
        crate::gateway::check_certificate_facility(config)?;
        let key = crate::keyfile::load(&config.key_file())?;
        let outbox = crate::outbox::open(config).await?;
        let spool = Spool::open(config, outbox.clone(), true).context("cannot open the spool")?;
        let forwarder = Forwarder::new(config, outbox.clone(), key.ring())?;
        let listener = TcpListener::bind(&config.edge.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.edge.listen))?;
        let options = ServerOptions {
            max_pdu: config.edge.max_pdu,
            read_timeout: Duration::from_secs(config.edge.read_timeout_secs),
            handshake_timeout: Duration::from_secs(config.edge.handshake_timeout_secs),
            admission: config.edge.admission(),
            tls: edge_tls(config)?,
            ..ServerOptions::default()
        };
        let viewers = viewer_access(config)?;
        let proxy =
            (!viewers.is_empty()).then(|| Arc::new(ViewerProxy::new(config.clone(), key.ring())));
        let web = match config.web_listen() {
            Some(address) => Some((
                crate::clinician::web::bind(address).await?,
                Arc::new(WebProxy::new(config.clone(), key.ring())?),
            )),
            None => None,
        };
        let sync = match config.sync_settings() {
            Some(settings) => {
                let login = crate::credentials::for_service(
                    "[sync]",
                    settings.user.as_deref(),
                    config.credentials.file.as_deref(),
                )?;
                let options = crate::clinician::sync::SyncOptions {
                    out: settings.out.clone().unwrap_or_default(),
                    include_local: settings.include_local,
                    progress: false,
                };
                let syncer = crate::clinician::sync::Syncer::new(
                    config,
                    key.ring(),
                    login,
                    options,
                    outbox.clone(),
                );
                Some((syncer, Duration::from_secs(settings.interval_secs.max(1))))
            }
            None => None,
        };
        let policy = ModalityPolicy {
            ae_title: config.edge.ae_title.clone(),
            rules: spool.rules.clone(),
            viewers,
        };
        Ok(Client {
            listener,
            options,
            policy,
            service: Arc::new(EdgeService { spool, proxy }),
            forwarder,
            outbox,
            retention: config.retention.clone(),
            web,
            sync,
            _lock: lock,
        })
    }

    /// Follows the modalities and sharing rules of the config file at `path` (the
    /// one this client was built from): a change applies to the next association.
    pub fn watch_config(&self, path: &Path) {
        self.policy.rules.watch(path);
    }

    /// The edge port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The DICOMweb proxy's port, when it is on.
    pub fn web_port(&self) -> Option<u16> {
        let (listener, _) = self.web.as_ref()?;
        listener.local_addr().ok().map(|a| a.port())
    }

    /// Serves until `shutdown`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let stop = CancellationToken::new();
        info!(addr = %self.listener.local_addr()?, "edge SCP listening");
        let forwarder = tokio::spawn(self.forwarder.clone().run(stop.clone()));
        let retention = tokio::spawn(crate::intake::retention::run(
            self.outbox.clone(),
            self.retention.clone(),
            stop.clone(),
        ));
        let web = self.web.map(|(listener, proxy)| {
            tokio::spawn(crate::clinician::web::serve(listener, proxy, stop.clone()))
        });
        let sync = self.sync.map(|(syncer, every)| {
            tokio::spawn(crate::clinician::sync::run(syncer, every, stop.clone()))
        });
        let edge_stop = stop.clone();
        let edge = tokio::spawn(serve(
            self.listener,
            self.options,
            self.policy,
            self.service,
            async move { edge_stop.cancelled().await },
        ));
        shutdown.await;
        info!("shutting down");
        stop.cancel();
        let _ = edge.await;
        let _ = forwarder.await;
        let _ = retention.await;
        if let Some(web) = web {
            let _ = web.await;
        }
        if let Some(sync) = sync {
            let _ = sync.await;
        }
        self.outbox.close().await;
        Ok(())
    }
}

/// The configured viewers with the gateway login of the user mapped to each.
fn viewer_access(config: &Config) -> anyhow::Result<Vec<ViewerAccess>> {
    let file = config.credentials.file.as_deref();
    let shared = Arc::new(config.clone());
    config
        .edge
        .viewers
        .iter()
        .map(|v| {
            let login = crate::credentials::for_viewer(&v.ae_title, &v.user, file)?;
            Ok(ViewerAccess {
                ae_title: v.ae_title.trim().to_string(),
                host: v.host.clone(),
                login: Arc::new(login),
                character_set: v.character_set(),
                config: shared.clone(),
            })
        })
        .collect()
}

/// DICOM TLS on the edge, when configured.
fn edge_tls(config: &Config) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let e = &config.edge;
    match (&e.tls_cert, &e.tls_key, &e.tls_ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => {
            let chain = dimse::tls::load_certs_file(cert)?;
            let key = dimse::tls::load_private_key_file(key)?;
            let roots = dimse::tls::load_certs_file(ca)?;
            Ok(Some(dimse::tls::server_config(chain, key, roots)?))
        }
        _ => anyhow::bail!(
            "edge.tls_cert, edge.tls_key and edge.tls_ca go together: set all three or none"
        ),
    }
}

/// Every file under `paths` (files, or folders walked recursively), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        walk(path, &mut out);
    }
    out.sort();
    out
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            walk(&entry.path(), out);
        }
    } else if path.is_file() {
        out.push(path.to_path_buf());
    }
}

/// An imported file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Original SOP Instance UID.
    pub sop_instance_uid: String,
    /// The outbox row holding these bytes (a new one, or the identical latest version).
    pub row_id: i64,
    /// The same instance, with the same bytes, had already been delivered.
    pub already_delivered: bool,
}

/// Imports one Part-10 file through the spool pipeline (as if a modality with AE
/// `calling_ae` had sent it).
pub async fn import_file(
    spool: Arc<Spool>,
    path: &Path,
    calling_ae: &str,
) -> Result<Imported, StoreOutcome> {
    let not_dicom =
        |e: dimse::DimseError| StoreOutcome::with(dimse::Status::CannotUnderstand, e.to_string());
    let meta = dimse::scu::read_file_meta(path).await.map_err(not_dicom)?;
    let request = CStoreRq {
        message_id: 1,
        affected_sop_class_uid: meta.sop_class_uid.clone(),
        affected_sop_instance_uid: meta.sop_instance_uid.clone(),
        priority: Priority::Medium,
        move_originator_ae_title: None,
        move_originator_message_id: None,
    };
    let latest = |outbox: crate::outbox::Outbox, uid: String| async move {
        outbox.latest(&uid).await.ok().flatten()
    };
    let outbox = spool.outbox.clone();
    let before = latest(outbox.clone(), meta.sop_instance_uid.clone()).await;
    let mut sink = SpoolSink::begin(spool, calling_ae, &request, &meta.transfer_syntax).await?;
    let read_error = |e: std::io::Error| {
        StoreOutcome::with(dimse::Status::CannotUnderstand, format!("cannot read: {e}"))
    };
    let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
    let mut skip = vec![0u8; meta.dataset_offset];
    file.read_exact(&mut skip).await.map_err(read_error)?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                sink.discard().await;
                return Err(read_error(e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(refused) = sink.write(&buf[..n]).await {
            sink.discard().await;
            return Err(refused);
        }
    }
    let outcome = sink.finish().await;
    if !outcome.status.is_success() {
        return Err(outcome);
    }
    let Some((row_id, state)) = latest(outbox, meta.sop_instance_uid.clone()).await else {
        return Err(StoreOutcome::with(
            dimse::Status::ProcessingFailure,
            "the outbox lost track of the imported instance",
        ));
    };
    let already_delivered = state == "delivered"
        && before.is_some_and(|(id, state)| id == row_id && state == "delivered");
    Ok(Imported {
        sop_instance_uid: meta.sop_instance_uid,
        row_id,
        already_delivered,
    })
}

//! The two ends of a measured query: a gateway running in this process on a loaded
//! index (plain DICOM port on loopback, one clinician of the big facility), and a
//! C-FIND requestor that keeps one association open and times each query until its
//! final response.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dimse::qr::STUDY_ROOT_FIND;
use dimse::scu::{Credentials, Proposal, ScuAssociation, ScuOptions};
use gateway::app::Application;
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use gateway::config::Config;
use gateway::db::Index;
use gateway::domain::FacilityId;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::queries::{Find, Kind, match_uid};

/// The gateway's AE title.
pub const GATEWAY_AE: &str = "PACS_GATEWAY";
/// Our calling AE title (allow-listed on the plain port for the big facility).
pub const CALLING_AE: &str = "FINDBENCH";
/// The clinician the benchmark queries as.
pub const USER: &str = "bench.clinician";
/// Its password.
pub const PASSWORD: &str = "find bench password 1";

/// Adds [`USER`] as a clinician of `facility` (argon2id with the default cost).
pub async fn add_clinician(url: &str, facility: FacilityId) -> Result<()> {
    let hash = tokio::task::spawn_blocking(|| {
        hash_password(&AuthSettings::default(), &Password::new(PASSWORD))
    })
    .await??;
    let index = Index::open(url).await?;
    let username = Username::parse(USER).map_err(anyhow::Error::msg)?;
    index
        .create_user(facility, &username, Role::Clinician, &hash)
        .await?;
    index.close().await;
    Ok(())
}

/// A gateway serving an index from this process.
pub struct BenchGateway {
    /// Its plain DICOM port (127.0.0.1).
    pub port: u16,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<()>>>,
}

impl BenchGateway {
    /// Starts a gateway on the index at `url` (data dir `data_dir`), admitting
    /// [`CALLING_AE`] on the plain port as facility `facility`.
    pub async fn start(url: &str, facility: &str, data_dir: &Path) -> Result<BenchGateway> {
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            database_url: Some(url.to_string()),
            ..Config::default()
        };
        config.dicom.ae_title = GATEWAY_AE.into();
        config.dicom.tls_listen = String::new();
        config.dicom.plain_listen = "127.0.0.1:0".into();
        config.https.enabled = false;
        config.metrics.listen = String::new();
        config
            .dicom
            .plain_ae
            .insert(CALLING_AE.into(), facility.into());
        let app = Application::build(config)
            .await
            .context("start the gateway")?;
        let port = app.plain_port().context("plain port")?;
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Ok(BenchGateway {
            port,
            stop: Some(tx),
            task: Some(task),
        })
    }

    /// Stops the gateway and waits for it.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

/// One association on which C-FINDs are timed.
pub struct Requestor {
    assoc: ScuAssociation,
    transfer_syntax: String,
}

/// Latency figures of one kind of query.
#[derive(Debug, Clone)]
pub struct Stats {
    /// Queries timed.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile (nearest rank).
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
    /// Matches per query, in order.
    pub matches: Vec<usize>,
}

impl Stats {
    /// Figures of `times`, one per query, and the matches each returned.
    pub fn from_samples(mut times: Vec<Duration>, matches: Vec<usize>) -> Stats {
        times.sort_unstable();
        let rank = |p: f64| {
            let k = ((p * times.len() as f64).ceil() as usize).clamp(1, times.len().max(1));
            times.get(k - 1).copied().unwrap_or_default()
        };
        Stats {
            count: times.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: times.last().copied().unwrap_or_default(),
            matches,
        }
    }

    /// Mean matches per query.
    pub fn mean_matches(&self) -> f64 {
        self.matches.iter().sum::<usize>() as f64 / self.matches.len().max(1) as f64
    }
}

impl Requestor {
    /// Associates with `addr` (Study Root C-FIND only), with `credentials` if given.
    pub async fn connect(
        addr: &str,
        called_ae: &str,
        credentials: Option<(&str, &str)>,
    ) -> Result<Requestor> {
        let mut options = ScuOptions::new(CALLING_AE, called_ae);
        options.credentials = credentials.map(|(u, p)| Credentials::UsernamePassword {
            username: u.into(),
            password: p.into(),
        });
        options.read_timeout = Duration::from_secs(300);
        let assoc = ScuAssociation::connect(addr, &options, &[Proposal::query(STUDY_ROOT_FIND)])
            .await
            .with_context(|| format!("associate with {called_ae} at {addr}"))?;
        let transfer_syntax = assoc
            .contexts()
            .iter()
            .find(|c| c.abstract_syntax == STUDY_ROOT_FIND)
            .map(|c| c.transfer_syntax.clone())
            .context("Study Root C-FIND not accepted")?;
        Ok(Requestor {
            assoc,
            transfer_syntax,
        })
    }

    fn encode(&self, object: &InMemDicomObject) -> Result<Vec<u8>> {
        let ts = TransferSyntaxRegistry
            .get(&self.transfer_syntax)
            .context("accepted transfer syntax unknown")?;
        let mut out = Vec::new();
        object.write_dataset_with_ts(&mut out, ts)?;
        Ok(out)
    }

    /// Runs one C-FIND; returns the raw matches. Fails unless the final status is
    /// success.
    async fn run(&mut self, identifier: &[u8], keep: bool) -> Result<(usize, Vec<Vec<u8>>)> {
        let mut count = 0;
        let mut kept = Vec::new();
        let response = self
            .assoc
            .find_with(STUDY_ROOT_FIND, identifier, |m| {
                count += 1;
                if keep {
                    kept.push(m);
                }
                ControlFlow::Continue(())
            })
            .await?;
        if !response.status.is_success() {
            bail!("C-FIND failed: {:?}", response);
        }
        Ok((count, kept))
    }

    /// The unique keys of the matches of `find`, sorted.
    pub async fn uids(&mut self, find: &Find) -> Result<Vec<String>> {
        let identifier = self.encode(&find.identifier())?;
        let (_, matches) = self.run(&identifier, true).await?;
        let ts = TransferSyntaxRegistry
            .get(&self.transfer_syntax)
            .context("accepted transfer syntax unknown")?;
        let mut out = Vec::new();
        for m in matches {
            let object = InMemDicomObject::read_dataset_with_ts(m.as_slice(), ts)?;
            out.push(match_uid(&object, find.kind()).context("match without its unique key")?);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Runs the first `warmup` of `finds` untimed, then times each of `finds`.
    pub async fn measure(&mut self, finds: &[Find], warmup: usize) -> Result<Stats> {
        let identifiers = finds
            .iter()
            .map(|f| self.encode(&f.identifier()))
            .collect::<Result<Vec<_>>>()?;
        for identifier in identifiers.iter().take(warmup) {
            self.run(identifier, false).await?;
        }
        let (mut times, mut matches) = (Vec::new(), Vec::new());
        for identifier in &identifiers {
            let start = Instant::now();
            let (count, _) = self.run(identifier, false).await?;
            times.push(start.elapsed());
            matches.push(count);
        }
        Ok(Stats::from_samples(times, matches))
    }

    /// Releases the association.
    pub async fn release(self) -> Result<()> {
        Ok(self.assoc.release().await?)
    }
}

/// How many picks a kind gets: the universal query is the same every time and
/// returns up to 10,000 matches, so it runs a tenth as often (at least 5).
pub fn picks_for(kind: Kind, picks: usize) -> usize {
    match kind {
        Kind::Universal => (picks / 10).max(5),
        _ => picks,
    }
}

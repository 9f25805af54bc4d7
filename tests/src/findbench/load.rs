//! Bulk loader: migrates an index with the gateway's own [`Index::open`], creates the
//! facilities through it, then writes the generated studies, study modalities, series
//! and instances over one direct connection, in one transaction per chunk of studies,
//! with multi-row `INSERT`s of bound parameters (as many rows per statement as the
//! backend's parameter limit allows).

use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use gateway::db::Index;
use gateway::domain::{FacilityId, FacilityName};
use sqlx::query_builder::Separated;
use sqlx::{Connection, Database, Executor, PgConnection, QueryBuilder, SqliteConnection};

use super::data::{Dataset, Spec};

/// Studies per transaction.
const STUDIES_PER_CHUNK: usize = 1000;
/// Length of the stand-in sealed-identity envelopes.
const ENVELOPE_LEN: usize = 160;
/// `received_at` of the first instance (2025-01-01, ms since the epoch).
const RECEIVED_AT: i64 = 1_735_689_600_000;

/// What a load did.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Row ids of the facilities, in [`Dataset::facilities`] order.
    pub facility_ids: Vec<FacilityId>,
    /// Rows written (studies + study modalities + series + instances).
    pub rows: u64,
    /// Instances written.
    pub instances: u64,
    /// Wall time of the row inserts (migration excluded).
    pub elapsed: Duration,
}

impl LoadReport {
    /// Rows per second.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// [`Dataset::generate`] with a line saying what was generated and how fast.
pub fn generate_reporting(spec: Spec) -> Dataset {
    let started = Instant::now();
    let data = Dataset::generate(spec);
    println!(
        "generated {} instances, {} studies, {} patients, {} facilities in {:.1} s",
        data.instance_count(),
        data.studies.len(),
        data.patients.len(),
        data.facilities.len(),
        started.elapsed().as_secs_f64()
    );
    data
}

/// [`load`] with a progress line every tenth of the instances and a summary line
/// (rows/s, instances/s).
pub async fn load_reporting(url: &str, data: &Dataset) -> Result<LoadReport> {
    let total = data.instance_count();
    let step = (total / 10).max(1);
    let mut next = step;
    let start = Instant::now();
    let report = load(url, data, |done| {
        if done >= next {
            println!(
                "  {done} / {total} instances ({:.0} inst/s)",
                done as f64 / start.elapsed().as_secs_f64()
            );
            next += step;
        }
    })
    .await?;
    println!(
        "loaded {} rows ({} instances) in {:.1} s: {:.0} rows/s, {:.0} instances/s",
        report.rows,
        report.instances,
        report.elapsed.as_secs_f64(),
        report.rows_per_sec(),
        report.instances as f64 / report.elapsed.as_secs_f64()
    );
    Ok(report)
}

/// A fresh (dropped and recreated) `database` on the server of
/// `PACS_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
/// its URL. Fails when the server does not answer within 5 s.
pub async fn fresh_postgres(database: &str) -> Result<String> {
    let base = std::env::var("PACS_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let connect = PgConnection::connect(&base);
    let mut conn = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .context("PostgreSQL does not answer within 5 s")?
        .context("cannot connect to PostgreSQL")?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut conn)
        .await?;
    let (prefix, _) = base
        .rsplit_once('/')
        .context("PostgreSQL URL without a database path")?;
    Ok(format!("{prefix}/{database}"))
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Migrates the (empty) index at `url`, creates the facilities and loads `data`.
/// `progress` is called after each chunk with the instances written so far.
pub async fn load(url: &str, data: &Dataset, mut progress: impl FnMut(u64)) -> Result<LoadReport> {
    let index = Index::open(url)
        .await
        .context("open and migrate the index")?;
    let mut facility_ids = Vec::new();
    for f in &data.facilities {
        let name = FacilityName::parse(&f.name).map_err(anyhow::Error::msg)?;
        let created = index
            .create_facility(&name, false)
            .await
            .with_context(|| format!("create facility {} (is the index empty?)", f.name))?;
        facility_ids.push(created.id);
    }
    index.close().await;
    let start = Instant::now();
    let (rows, instances) = if is_postgres(url) {
        let mut conn = PgConnection::connect(url).await?;
        conn.execute("SET synchronous_commit = off").await?;
        let counts =
            write_all_postgres(&mut conn, 65_535, data, &facility_ids, &mut progress).await?;
        // What autovacuum reaches soon after a bulk insert: statistics, hint bits
        // and the visibility map (index-only scans), so that the first timed
        // queries do not pay for setting hint bits on freshly loaded pages.
        conn.execute("VACUUM ANALYZE").await?;
        counts
    } else {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
        let mut conn = SqliteConnection::connect_with(&options).await?;
        conn.execute("PRAGMA synchronous = OFF").await?;
        conn.execute("PRAGMA cache_size = -262144").await?;
        let counts =
            write_all_sqlite(&mut conn, 32_766, data, &facility_ids, &mut progress).await?;
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        counts
    };
    Ok(LoadReport {
        facility_ids,
        rows,
        instances,
        elapsed: start.elapsed(),
    })
}

/// One instance row, owned, ready to bind.
struct InstanceRow {
    facility: i64,
    sop: String,
    series: String,
    study: String,
    sop_class: &'static str,
    number: i64,
    frames: Option<i64>,
    size: i64,
    sha256: String,
    blob_key: String,
    received_at: i64,
    sealed: Vec<u8>,
    patient_id: String,
}

macro_rules! backend_writer {
    ($write_all:ident, $insert_rows:ident, $db:ty) => {
/// Writes every study of `data`; returns (rows, instances).
async fn $write_all(
    conn: &mut <$db as Database>::Connection,
    max_params: usize,
    data: &Dataset,
    ids: &[FacilityId],
    progress: &mut impl FnMut(u64),
) -> Result<(u64, u64)> {
    let (mut rows, mut instances) = (0u64, 0u64);
    for (chunk_no, chunk) in data.studies.chunks(STUDIES_PER_CHUNK).enumerate() {
        let first = chunk_no * STUDIES_PER_CHUNK;
        let fid = |f: usize| ids[f].0;
        let mut tx = conn.begin().await?;
        let sealed: Vec<Vec<u8>> = (0..chunk.len())
            .map(|i| data.envelope(0, (first + i) as u64, ENVELOPE_LEN))
            .collect();
        rows += $insert_rows(
            &mut *tx,
            max_params / 15,
            "INSERT INTO studies (facility_id, study_uid, patient_id, study_date, study_time, \
             accession_number, study_description, modalities, num_series, num_instances, updated_at, \
             patient_name, name_blind_index, sealed_identity, sealed_sop_instance_uid)",
            chunk.len(),
            &|b, i| {
                let s = &chunk[i];
                let p = &data.patients[s.patient];
                b.push_bind(fid(s.facility))
                    .push_bind(s.uid.as_str())
                    .push_bind(p.id.as_str())
                    .push_bind(s.date.as_str())
                    .push_bind(s.time.as_str())
                    .push_bind(s.accession.as_str())
                    .push_bind(s.description)
                    .push_bind(s.modalities().join("\\"))
                    .push_bind(s.series.len() as i64)
                    .push_bind(s.instances() as i64)
                    .push_bind(RECEIVED_AT)
                    .push_bind(p.name.as_str())
                    .push_bind(p.blind_index.as_str())
                    .push_bind(sealed[i].as_slice())
                    .push_bind(data.instance(&s.series[0], 0).uid);
            },
        )
        .await?;
        rows += $insert_rows(
            &mut *tx,
            max_params / 10,
            "INSERT INTO study_patients (facility_id, study_uid, patient_key, patient_id, patient_name, \
             name_blind_index, sealed_identity, sealed_sop_instance_uid, num_instances, first_seen)",
            chunk.len(),
            &|b, i| {
                let s = &chunk[i];
                let p = &data.patients[s.patient];
                b.push_bind(fid(s.facility))
                    .push_bind(s.uid.as_str())
                    .push_bind(p.id.as_str())
                    .push_bind(p.id.as_str())
                    .push_bind(p.name.as_str())
                    .push_bind(p.blind_index.as_str())
                    .push_bind(sealed[i].as_slice())
                    .push_bind(data.instance(&s.series[0], 0).uid)
                    .push_bind(s.instances() as i64)
                    .push_bind(RECEIVED_AT);
            },
        )
        .await?;
        let modalities: Vec<(usize, &'static str)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.modalities().into_iter().map(move |m| (i, m)))
            .collect();
        rows += $insert_rows(
            &mut *tx,
            max_params / 4,
            "INSERT INTO study_modalities (facility_id, study_uid, modality, study_date)",
            modalities.len(),
            &|b, k| {
                let (i, m) = modalities[k];
                let s = &chunk[i];
                b.push_bind(fid(s.facility))
                    .push_bind(s.uid.as_str())
                    .push_bind(m)
                    .push_bind(s.date.as_str());
            },
        )
        .await?;
        let series: Vec<(usize, usize)> = chunk
            .iter()
            .enumerate()
            .flat_map(|(i, s)| (0..s.series.len()).map(move |k| (i, k)))
            .collect();
        rows += $insert_rows(
            &mut *tx,
            max_params / 10,
            "INSERT INTO series (facility_id, series_uid, study_uid, modality, series_description, \
             series_number, num_instances, sealed_identity, sealed_sop_instance_uid, patient_id)",
            series.len(),
            &|b, k| {
                let (i, j) = series[k];
                let (study, r) = (&chunk[i], &chunk[i].series[j]);
                b.push_bind(fid(study.facility))
                    .push_bind(r.uid.as_str())
                    .push_bind(study.uid.as_str())
                    .push_bind(r.modality)
                    .push_bind(r.description.as_str())
                    .push_bind(r.number)
                    .push_bind(r.instances as i64)
                    .push_bind(sealed[i].as_slice())
                    .push_bind(data.instance(r, 0).uid)
                    .push_bind(data.patients[study.patient].id.as_str());
            },
        )
        .await?;
        let rows_i = instance_rows(data, chunk, ids);
        rows += $insert_rows(
            &mut *tx,
            max_params / 15,
            "INSERT INTO instances (facility_id, sop_instance_uid, series_uid, study_uid, sop_class_uid, \
             transfer_syntax, instance_number, number_of_frames, size_bytes, sha256, blob_key, calling_ae, \
             received_at, sealed_identity, patient_id)",
            rows_i.len(),
            &|b, k| {
                let r = &rows_i[k];
                b.push_bind(r.facility)
                    .push_bind(r.sop.as_str())
                    .push_bind(r.series.as_str())
                    .push_bind(r.study.as_str())
                    .push_bind(r.sop_class)
                    .push_bind("1.2.840.10008.1.2.1")
                    .push_bind(r.number)
                    .push_bind(r.frames)
                    .push_bind(r.size)
                    .push_bind(r.sha256.as_str())
                    .push_bind(r.blob_key.as_str())
                    .push_bind("BENCH_FWD")
                    .push_bind(r.received_at)
                    .push_bind(r.sealed.as_slice())
                    .push_bind(r.patient_id.as_str());
            },
        )
        .await?;
        tx.commit().await?;
        instances += rows_i.len() as u64;
        progress(instances);
    }
    Ok((rows, instances))
}

/// Inserts `count` rows, `rows_per` per statement, each row's values pushed by `push`.
async fn $insert_rows<'a>(
    conn: &mut <$db as Database>::Connection,
    rows_per: usize,
    head: &str,
    count: usize,
    push: &dyn Fn(&mut Separated<'_, 'a, $db, &'static str>, usize),
) -> Result<u64> {
    let mut done = 0;
    while done < count {
        let n = rows_per.min(count - done);
        let mut qb = QueryBuilder::<'a, $db>::new(head);
        qb.push(" VALUES ");
        for k in 0..n {
            if k > 0 {
                qb.push(", ");
            }
            qb.push("(");
            push(&mut qb.separated(", "), done + k);
            qb.push(")");
        }
        qb.build().execute(&mut *conn).await?;
        done += n;
    }
    Ok(count as u64)
}

    };
}

backend_writer!(write_all_sqlite, insert_rows_sqlite, sqlx::Sqlite);
backend_writer!(write_all_postgres, insert_rows_postgres, sqlx::Postgres);

fn instance_rows(
    data: &Dataset,
    chunk: &[super::data::Study],
    ids: &[FacilityId],
) -> Vec<InstanceRow> {
    let mut out = Vec::new();
    for study in chunk {
        let facility = ids[study.facility].0;
        for series in &study.series {
            for k in 0..series.instances {
                let i = data.instance(series, k);
                let n = series.first_instance + k;
                out.push(InstanceRow {
                    facility,
                    blob_key: format!(
                        "f{facility}/{}/{}.{}.dcm",
                        study.uid,
                        i.uid,
                        &i.sha256[..16]
                    ),
                    sop: i.uid,
                    series: series.uid.clone(),
                    study: study.uid.clone(),
                    sop_class: i.sop_class,
                    number: i.number,
                    frames: (series.modality == "XA").then_some(30),
                    size: i.size,
                    sha256: i.sha256,
                    received_at: RECEIVED_AT + n as i64,
                    sealed: data.envelope(2, n, 96),
                    patient_id: data.patients[study.patient].id.clone(),
                });
            }
        }
    }
    out
}

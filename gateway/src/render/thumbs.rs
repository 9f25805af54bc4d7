//! Thumbnails cached as blobs, and rendering of stored instances by UID: the
//! service the DICOMweb handlers (`/rendered`, `/thumbnail`) and the background
//! thumbnailer ([`super::queue`]) call.
//!
//! A thumbnail's key ([`BlobKey::thumbnail`]) names the instance, its content hash
//! (a replaced instance gets a new thumbnail), the facility's burned-in risk classes
//! (a thumbnail made under one set is never served under another), the size and the
//! format; it lives under `thumbnails/` in the blob store, which the blob sweep
//! leaves alone. A series is represented by the first of its instances a Key Object
//! Selection document names, else its middle instance by Instance Number; a study by
//! the first of its series (by Series Number) that renders.

use std::sync::Arc;

use super::{RenderError, RenderOptions, Rendered, RiskPolicy, Viewport};
use crate::blobs::{BlobKey, BlobStore};
use crate::db::{DbError, Facility, Index};
use crate::domain::Uid;
use crate::metrics::thumbnails::ThumbnailMetrics;

use super::output::Format;
use super::queue::LowPriority;

/// Series of a study tried, in order, for the study's thumbnail.
const STUDY_SERIES_TRIED: usize = 8;
/// Key Object Selection documents of a study read for a series' key image.
const KEY_OBJECTS_READ: i64 = 4;

/// Size and format of a thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ThumbnailSpec {
    /// Largest side in pixels (never upscaled).
    pub size: u32,
    /// Encoding.
    pub format: Format,
}

impl Default for ThumbnailSpec {
    fn default() -> Self {
        ThumbnailSpec {
            size: 128,
            format: Format::Jpeg { quality: 85 },
        }
    }
}

/// A thumbnail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// The encoded image.
    pub bytes: Vec<u8>,
    /// Its media type.
    pub mime: &'static str,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// Why a thumbnail or rendering could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// No such instance, series or study in the facility (or nothing renderable).
    #[error("{0} not found")]
    NotFound(String),
    /// The instance could not be rendered (or may not be).
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] DbError),
    /// The blob store failed (or the instance's blob is missing).
    #[error("blob store: {0}")]
    Storage(String),
}

/// Rendering and thumbnails of stored instances (cheap to clone).
#[derive(Debug, Clone)]
pub struct Thumbnails {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    index: Index,
    blobs: BlobStore,
    risk: RiskPolicy,
    metrics: ThumbnailMetrics,
}

impl Thumbnails {
    /// The service over `index` and `blobs`, refusing what `risk` says.
    pub fn new(
        index: Index,
        blobs: BlobStore,
        risk: RiskPolicy,
        metrics: ThumbnailMetrics,
    ) -> Thumbnails {
        Thumbnails {
            inner: Arc::new(Inner {
                index,
                blobs,
                risk,
                metrics,
            }),
        }
    }

    /// Renders instance `sop` of `facility` (DICOMweb `/rendered`; not cached).
    pub async fn render(
        &self,
        facility: &Facility,
        sop: &Uid,
        options: RenderOptions,
    ) -> Result<Rendered, ThumbnailError> {
        let stored = self.stored(facility, sop).await?;
        let path = self
            .inner
            .blobs
            .path_of(&BlobKey::from_index(stored.blob_key));
        let risk = self.inner.risk.for_facility(&facility.name).clone();
        blocking(move || {
            let bytes = read_blob(&path)?;
            Ok(super::render_instance(&bytes, &options, &risk)?)
        })
        .await
    }

    /// The thumbnail of instance `sop` of `facility`: from the cache, or rendered
    /// (frame: the middle one) and stored.
    pub async fn instance(
        &self,
        facility: &Facility,
        sop: &Uid,
        spec: ThumbnailSpec,
    ) -> Result<Thumbnail, ThumbnailError> {
        self.instance_on(facility, sop, spec, Runner::Pool).await
    }

    /// [`Thumbnails::instance`], its CPU-bound work run by `runner`.
    async fn instance_on(
        &self,
        facility: &Facility,
        sop: &Uid,
        spec: ThumbnailSpec,
        runner: Runner<'_>,
    ) -> Result<Thumbnail, ThumbnailError> {
        let stored = self.stored(facility, sop).await?;
        let study = Uid::parse(&stored.study_uid)
            .map_err(|e| ThumbnailError::Storage(format!("indexed study UID: {e}")))?;
        let risk = self.inner.risk.for_facility(&facility.name).clone();
        let variant = format!("{}.{}.{}", risk.fingerprint(), spec.size, spec.format.tag());
        let key = BlobKey::thumbnail(facility.id, &study, sop, &stored.sha256, &variant);
        let blobs = self.inner.blobs.clone();
        let instance = blobs.path_of(&BlobKey::from_index(stored.blob_key));
        let metrics = self.inner.metrics.clone();
        let result = runner
            .run(move || {
                match std::fs::read(blobs.path_of(&key)) {
                    Ok(bytes) => {
                        return Ok(Thumbnail {
                            bytes,
                            mime: spec.format.mime(),
                            cached: true,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ThumbnailError::Storage(e.to_string())),
                }
                let options = RenderOptions {
                    frame: None,
                    format: spec.format,
                    viewport: Viewport::square(spec.size),
                    window: None,
                };
                let rendered = super::render_instance(&read_blob(&instance)?, &options, &risk)?;
                blobs
                    .put_cache_blocking(&key, &rendered.bytes)
                    .map_err(|e| ThumbnailError::Storage(e.to_string()))?;
                Ok(Thumbnail {
                    bytes: rendered.bytes,
                    mime: rendered.mime,
                    cached: false,
                })
            })
            .await;
        match &result {
            Ok(t) if t.cached => metrics.cache_hits.inc(),
            Ok(_) => metrics.made.inc(),
            Err(ThumbnailError::Render(RenderError::Refused(_))) => metrics.refused.inc(),
            Err(_) => metrics.failed.inc(),
        };
        result
    }

    /// The thumbnail of series `series`: that of its representative instance.
    pub async fn series(
        &self,
        facility: &Facility,
        series: &Uid,
        spec: ThumbnailSpec,
    ) -> Result<Thumbnail, ThumbnailError> {
        self.series_on(facility, series, spec, Runner::Pool).await
    }

    /// [`Thumbnails::series`], rendering on `background` (the background
    /// thumbnailer's low-priority thread).
    pub(crate) async fn series_in_background(
        &self,
        facility: &Facility,
        series: &Uid,
        spec: ThumbnailSpec,
        background: &LowPriority,
    ) -> Result<Thumbnail, ThumbnailError> {
        self.series_on(facility, series, spec, Runner::Low(background))
            .await
    }

    async fn series_on(
        &self,
        facility: &Facility,
        series: &Uid,
        spec: ThumbnailSpec,
        runner: Runner<'_>,
    ) -> Result<Thumbnail, ThumbnailError> {
        let sop = self
            .representative(facility, series)
            .await?
            .ok_or_else(|| ThumbnailError::NotFound(format!("series {series}")))?;
        self.instance_on(facility, &sop, spec, runner).await
    }

    /// The thumbnail of study `study`: that of the first of its series (by Series
    /// Number) whose representative instance renders.
    pub async fn study(
        &self,
        facility: &Facility,
        study: &Uid,
        spec: ThumbnailSpec,
    ) -> Result<Thumbnail, ThumbnailError> {
        let series = self
            .inner
            .index
            .study_series(facility.id, study.as_str())
            .await?;
        let mut last = ThumbnailError::NotFound(format!("study {study}"));
        for uid in series.iter().take(STUDY_SERIES_TRIED) {
            let Ok(uid) = Uid::parse(uid) else { continue };
            match self.series(facility, &uid, spec).await {
                Ok(thumbnail) => return Ok(thumbnail),
                Err(e @ (ThumbnailError::Index(_) | ThumbnailError::Storage(_))) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The representative instance of `series`: the first one a Key Object
    /// Selection document of the study names in it (the newest documents first),
    /// else the middle one by Instance Number.
    pub async fn representative(
        &self,
        facility: &Facility,
        series: &Uid,
    ) -> Result<Option<Uid>, ThumbnailError> {
        let index = &self.inner.index;
        let members = index.series_members(facility.id, series.as_str()).await?;
        if members.is_empty() {
            return Ok(None);
        }
        if let Some(named) = self.key_image(facility, series, &members).await? {
            return Ok(Some(named));
        }
        let middle = members
            .get(members.len() / 2)
            .and_then(|m| Uid::parse(&m.sop_instance_uid).ok());
        Ok(middle)
    }

    /// The first instance of `members` a Key Object Selection document names.
    async fn key_image(
        &self,
        facility: &Facility,
        series: &Uid,
        members: &[crate::db::render::SeriesMember],
    ) -> Result<Option<Uid>, ThumbnailError> {
        let index = &self.inner.index;
        let Some(study) = index.study_of_series(facility.id, series.as_str()).await? else {
            return Ok(None);
        };
        let documents = index
            .key_objects(facility.id, &study, KEY_OBJECTS_READ)
            .await?;
        if documents.is_empty() {
            return Ok(None);
        }
        let paths: Vec<_> = documents
            .into_iter()
            .map(|key| self.inner.blobs.path_of(&BlobKey::from_index(key)))
            .collect();
        let series_uid = series.as_str().to_string();
        let named: Vec<String> = blocking(move || {
            Ok(paths
                .iter()
                .filter_map(|path| std::fs::read(path).ok())
                .flat_map(|bytes| super::kos::named_in(&bytes, &series_uid))
                .collect())
        })
        .await?;
        Ok(named
            .iter()
            .find(|uid| members.iter().any(|m| &m.sop_instance_uid == *uid))
            .and_then(|uid| Uid::parse(uid).ok()))
    }

    async fn stored(
        &self,
        facility: &Facility,
        sop: &Uid,
    ) -> Result<crate::db::instances::StoredInstance, ThumbnailError> {
        self.inner
            .index
            .find_instance(facility.id, sop)
            .await?
            .ok_or_else(|| ThumbnailError::NotFound(format!("instance {sop}")))
    }
}

/// The largest stored instance rendered (it is read whole into memory).
pub const MAX_RENDERED_BLOB_BYTES: u64 = 1 << 30;

fn read_blob(path: &std::path::Path) -> Result<Vec<u8>, ThumbnailError> {
    let storage = |e: std::io::Error| {
        ThumbnailError::Storage(format!("cannot read the instance's blob: {e}"))
    };
    let size = std::fs::metadata(path).map_err(storage)?.len();
    if size > MAX_RENDERED_BLOB_BYTES {
        return Err(RenderError::TooLarge(format!(
            "the instance is {size} bytes (at most {MAX_RENDERED_BLOB_BYTES} are rendered)"
        ))
        .into());
    }
    std::fs::read(path).map_err(storage)
}

/// Where a thumbnail's CPU-bound work (read, decode, render, encode) runs.
#[derive(Debug, Clone, Copy)]
enum Runner<'a> {
    /// Tokio's blocking pool: on-demand thumbnails, which a user waits for.
    Pool,
    /// The background thumbnailer's low-priority thread.
    Low(&'a LowPriority),
}

impl Runner<'_> {
    async fn run<T: Send + 'static>(
        self,
        job: impl FnOnce() -> Result<T, ThumbnailError> + Send + 'static,
    ) -> Result<T, ThumbnailError> {
        match self {
            Runner::Pool => blocking(job).await,
            Runner::Low(thread) => thread.run(job).await.unwrap_or_else(|| {
                Err(ThumbnailError::Storage(
                    "background rendering thread failed".into(),
                ))
            }),
        }
    }
}

/// Runs CPU-bound work on the blocking pool.
async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, ThumbnailError> + Send + 'static,
) -> Result<T, ThumbnailError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| ThumbnailError::Storage(format!("rendering task failed: {e}")))?
}

//! Rendered resources and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.4 `thumbnail`):
//! consumer-ready JPEG or PNG images made by [`crate::render`] from the stored pixel
//! data, for browsers, worklists and the facility client's thumbnail sync.
//!
//! - `.../instances/{i}/rendered` and `.../instances/{i}/frames/{f}/rendered`: the
//!   instance (its middle frame unless one is named) with the data set's window, or
//!   the `window=center,width[,function]` asked for, fitted into `viewport=w,h`,
//!   `quality=1..100` for JPEG.
//! - `.../series/{se}/rendered` answers with the representative image of the series
//!   (the image a Key Object Selection names, else the middle instance), not every
//!   instance; a study is rendered through its thumbnail.
//! - `thumbnail` at study, series and instance level: the cached thumbnail of the
//!   representative image (made in the background after ingest, or now), `viewport`
//!   giving its size.
//!
//! Media type from `Accept` (`image/jpeg` by default, or `image/png`; anything else
//! 406). Instances of the facility's burned-in risk classes are refused (403) unless
//! they say Burned In Annotation = NO. Each answer is a Begin Transferring audit event.

use axum::extract::FromRequestParts;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::accept;
use super::auth::{WebRejection, WebUser};
use crate::domain::Uid;
use crate::http::error::ApiPath;
use crate::http::{ApiError, ApiState};
use crate::render::{
    Format, RenderError, RenderOptions, ThumbnailError, ThumbnailSpec, Thumbnails, Viewport,
    VoiFunction, Window,
};

/// Largest viewport side accepted.
pub const MAX_VIEWPORT: u32 = 4096;

/// Query parameters of a rendered or thumbnail request, and the chosen format.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    /// JPEG (with quality) or PNG.
    pub format: Format,
    /// `viewport=w,h`.
    pub viewport: Option<(u32, u32)>,
    /// `window=center,width[,function]`.
    pub window: Option<Window>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

/// Parses the query string and the `Accept` ranges.
pub fn presentation(query: &str, ranges: &[accept::MediaRange]) -> Result<Presentation, ApiError> {
    let mut format = None;
    for range in ranges {
        format = match range.essence.as_str() {
            "image/jpeg" | "image/*" | "*/*" => Some(Format::Jpeg { quality: 85 }),
            "image/png" => Some(Format::Png),
            _ => continue,
        };
        break;
    }
    let mut format = format
        .ok_or_else(|| ApiError::not_acceptable("rendered images are image/jpeg or image/png"))?;
    let mut viewport = None;
    let mut window = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "viewport" => {
                let sides: Vec<u32> = value
                    .split(',')
                    .take(2)
                    .map(|v| v.trim().parse::<u32>())
                    .collect::<Result<_, _>>()
                    .map_err(|_| bad("viewport is two positive integers: width,height"))?;
                match sides[..] {
                    [w, h]
                        if (1..=MAX_VIEWPORT).contains(&w) && (1..=MAX_VIEWPORT).contains(&h) =>
                    {
                        viewport = Some((w, h));
                    }
                    _ => {
                        return Err(bad(format!(
                            "viewport is width,height, each 1 to {MAX_VIEWPORT}"
                        )));
                    }
                }
            }
            "window" => {
                let parts: Vec<&str> = value.split(',').map(str::trim).collect();
                let number = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
                let parsed = match parts[..] {
                    [c, w] => number(c)
                        .zip(number(w))
                        .map(|(c, w)| (c, w, VoiFunction::Linear)),
                    [c, w, f] => number(c)
                        .zip(number(w))
                        .zip(VoiFunction::parse(f))
                        .map(|((c, w), f)| (c, w, f)),
                    _ => None,
                };
                let (center, width, function) =
                    parsed.filter(|(_, w, _)| *w > 0.0).ok_or_else(|| {
                        bad("window is center,width[,LINEAR|LINEAR_EXACT|SIGMOID], width > 0")
                    })?;
                window = Some(Window {
                    center,
                    width,
                    function,
                });
            }
            "quality" => {
                let q: u8 = value
                    .parse()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| bad("quality is 1 to 100"))?;
                if let Format::Jpeg { .. } = format {
                    format = Format::Jpeg { quality: q };
                }
            }
            // Accepted and ignored: annotations are never burned in by this server.
            "annotation" | "charset" | "iccprofile" => {}
            other => return Err(bad(format!("{other}: not a rendering parameter"))),
        }
    }
    Ok(Presentation {
        format,
        viewport,
        window,
    })
}

/// What every rendered/thumbnail handler takes.
pub struct Rendering {
    state: ApiState,
    user: WebUser,
    presentation: Presentation,
}

impl FromRequestParts<ApiState> for Rendering {
    type Rejection = WebRejection;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, WebRejection> {
        let user = WebUser::from_request_parts(parts, state).await?;
        let presentation = presentation(
            parts.uri.query().unwrap_or(""),
            &accept::parse(&parts.headers),
        )?;
        Ok(Rendering {
            state: state.clone(),
            user,
            presentation,
        })
    }
}

fn failure(e: ThumbnailError) -> ApiError {
    match e {
        ThumbnailError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
        ThumbnailError::Render(e) => match e {
            RenderError::NoPixelData | RenderError::NoSuchFrame { .. } => {
                ApiError::not_found(e.to_string())
            }
            RenderError::Refused(_) => ApiError::forbidden(e.to_string()),
            RenderError::Unsupported(_) => ApiError::not_acceptable(e.to_string()),
            RenderError::Corrupt(_) | RenderError::TooLarge(_) => {
                ApiError::unprocessable(e.to_string())
            }
            RenderError::Encode(_) => ApiError::internal(&e),
        },
        ThumbnailError::Index(e) => ApiError::unavailable(format!("the index failed: {e}")),
        ThumbnailError::Storage(e) => ApiError::unavailable(format!("the blob store failed: {e}")),
    }
}

fn image(bytes: Vec<u8>, mime: &'static str) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    response
}

fn uid(value: &str) -> Result<Uid, ApiError> {
    Uid::parse(value).map_err(|_| bad(format!("{value:.64} is not a valid UID")))
}

impl Rendering {
    fn service(&self) -> Result<&Thumbnails, ApiError> {
        Ok(&super::web_state(&self.state)?.thumbnails)
    }

    async fn audit(&self, what: &str) {
        super::audit_transfer(&self.state, &self.user, format!("DICOMweb {what}"), 1).await;
    }

    /// Renders one instance (checked to be where the path says).
    async fn instance(
        &self,
        path: [&str; 3],
        frame: Option<u32>,
        viewport: Viewport,
    ) -> Result<Response, ApiError> {
        let target = super::wado::targets(&self.state, &self.user, &path)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found("no such instance"))?;
        let p = &self.presentation;
        let options = RenderOptions {
            frame,
            format: p.format,
            viewport,
            window: p.window,
        };
        let sop = uid(&target.sop_instance_uid)?;
        let rendered = self
            .service()?
            .render(&self.user.facility, &sop, options)
            .await
            .map_err(failure)?;
        self.audit("rendered instance").await;
        Ok(image(rendered.bytes, rendered.mime))
    }

    fn viewport(&self) -> Viewport {
        match self.presentation.viewport {
            Some((w, h)) => Viewport {
                max_width: Some(w),
                max_height: Some(h),
                upscale: false,
            },
            None => Viewport::default(),
        }
    }

    fn thumbnail_spec(&self) -> Result<ThumbnailSpec, ApiError> {
        let default = super::web_state(&self.state)?.thumbnail_size;
        let size = self
            .presentation
            .viewport
            .map_or(default, |(w, h)| w.max(h));
        Ok(ThumbnailSpec {
            size,
            format: self.presentation.format,
        })
    }
}

/// `GET .../instances/{instance}/rendered`.
pub async fn instance_rendered(
    ApiPath((study, series, instance)): ApiPath<(String, String, String)>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    Ok(r.instance([&study, &series, &instance], None, r.viewport())
        .await?)
}

/// `GET .../instances/{instance}/frames/{frame}/rendered` (one frame).
pub async fn frame_rendered(
    ApiPath((study, series, instance, frame)): ApiPath<(String, String, String, String)>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    let frame: u32 = frame
        .trim()
        .parse()
        .ok()
        .filter(|f| *f >= 1)
        .ok_or_else(|| bad("one frame number (1-based) is rendered at a time"))?;
    Ok(
        r.instance([&study, &series, &instance], Some(frame), r.viewport())
            .await?,
    )
}

/// `GET .../instances/{instance}/thumbnail`.
pub async fn instance_thumbnail(
    ApiPath((study, series, instance)): ApiPath<(String, String, String)>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    super::wado::targets(&r.state, &r.user, &[&study, &series, &instance]).await?;
    let thumb = r
        .service()?
        .instance(&r.user.facility, &uid(&instance)?, r.thumbnail_spec()?)
        .await
        .map_err(failure)?;
    r.audit("thumbnail of an instance").await;
    Ok(image(thumb.bytes, thumb.mime))
}

/// `GET .../series/{series}/thumbnail`.
pub async fn series_thumbnail(
    ApiPath((study, series)): ApiPath<(String, String)>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    super::wado::targets(&r.state, &r.user, &[&study, &series]).await?;
    let thumb = r
        .service()?
        .series(&r.user.facility, &uid(&series)?, r.thumbnail_spec()?)
        .await
        .map_err(failure)?;
    r.audit("thumbnail of a series").await;
    Ok(image(thumb.bytes, thumb.mime))
}

/// `GET .../studies/{study}/thumbnail`.
pub async fn study_thumbnail(
    ApiPath(study): ApiPath<String>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    super::wado::targets(&r.state, &r.user, &[&study]).await?;
    let thumb = r
        .service()?
        .study(&r.user.facility, &uid(&study)?, r.thumbnail_spec()?)
        .await
        .map_err(failure)?;
    r.audit("thumbnail of a study").await;
    Ok(image(thumb.bytes, thumb.mime))
}

/// `GET .../series/{series}/rendered`: the representative image of the series.
pub async fn series_rendered(
    ApiPath((study, series)): ApiPath<(String, String)>,
    r: Rendering,
) -> Result<Response, WebRejection> {
    let service = r.service()?;
    super::wado::targets(&r.state, &r.user, &[&study, &series]).await?;
    let sop = service
        .representative(&r.user.facility, &uid(&series)?)
        .await
        .map_err(failure)?
        .ok_or_else(|| ApiError::not_found("the series has no image to render"))?
        .to_string();
    Ok(r.instance([&study, &series, &sop], None, r.viewport())
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use axum::http::header::ACCEPT;

    fn p(query: &str, accept_value: Option<&str>) -> Result<Presentation, ApiError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept_value {
            headers.insert(ACCEPT, HeaderValue::from_str(a).unwrap());
        }
        presentation(query, &accept::parse(&headers))
    }

    #[test]
    fn parameters() {
        let got = p("viewport=256,128&window=40,400,SIGMOID&quality=70", None).unwrap();
        assert_eq!(got.format, Format::Jpeg { quality: 70 });
        assert_eq!(got.viewport, Some((256, 128)));
        assert_eq!(
            got.window,
            Some(Window {
                center: 40.0,
                width: 400.0,
                function: VoiFunction::Sigmoid
            })
        );
        assert_eq!(p("", Some("image/png")).unwrap().format, Format::Png);
        assert_eq!(
            p("", Some("text/html, image/png;q=0.5")).unwrap().format,
            Format::Png
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            p("", Some("application/dicom")).unwrap_err().status,
            StatusCode::NOT_ACCEPTABLE
        );
        for q in [
            "viewport=0,10",
            "viewport=a",
            "window=1,0",
            "window=1",
            "quality=0",
            "zoom=2",
        ] {
            assert_eq!(
                p(q, None).unwrap_err().status,
                StatusCode::BAD_REQUEST,
                "{q}"
            );
        }
    }
}

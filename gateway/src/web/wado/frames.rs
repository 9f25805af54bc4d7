//! Frames and bulk data of one instance (PS3.18 10.4.1.1.4-5):
//! `.../instances/{instance}/frames/{list}` and `.../instances/{instance}/bulk/{tag}`
//! (the Bulk Data URIs the metadata hands out).
//!
//! Representation, from the `Accept` header: native little-endian pixels
//! (`application/octet-stream`, what viewers decode themselves; compressed instances
//! are decompressed with [`dimse::transcode`]), or the stored compressed frames as
//! they are (`image/jpeg`, `image/jls`, `image/jp2`, `image/dicom-rle`, or
//! `application/octet-stream; transfer-syntax=*`). `*/*` gives the stored form.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex as _;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

use super::super::accept::{self, MediaRange};
use super::super::auth::{WebRejection, WebUser};
use super::{blobs, path_of, targets};
use crate::http::error::ApiPath;
use crate::http::{ApiError, ApiState};

/// Most frames one request may list.
pub const MAX_FRAMES: usize = 4096;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";

/// The media type of a compressed frame in `syntax` (PS3.18 Table 8.7.3-2).
pub fn frame_media_type(syntax: &str) -> Option<&'static str> {
    Some(match syntax {
        "1.2.840.10008.1.2.4.50"
        | "1.2.840.10008.1.2.4.51"
        | "1.2.840.10008.1.2.4.57"
        | "1.2.840.10008.1.2.4.70" => "image/jpeg",
        "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "image/jls",
        "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" => "image/jp2",
        "1.2.840.10008.1.2.5" => "image/dicom-rle",
        _ => return None,
    })
}

/// What the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Native little-endian pixels.
    Native,
    /// The stored frames as they are (compressed ones in their own media type).
    Stored,
    /// The stored compressed frames labelled application/octet-stream.
    StoredOctets,
}

fn choose(ranges: &[MediaRange], stored: &str) -> Result<Form, ApiError> {
    let compressed = frame_media_type(stored);
    for range in ranges {
        let part = match range.essence.as_str() {
            "*/*" | "multipart/*" => return Ok(Form::Stored),
            "multipart/related" => range.part_type(),
            _ => continue,
        };
        match part.as_deref() {
            None | Some("*/*") => return Ok(Form::Stored),
            Some("image/*") if compressed.is_some() => return Ok(Form::Stored),
            Some("application/octet-stream" | "application/*") => {
                return Ok(match range.param("transfer-syntax") {
                    Some("*") if compressed.is_some() => Form::StoredOctets,
                    _ => Form::Native,
                });
            }
            Some(t) if Some(t) == compressed => return Ok(Form::Stored),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(format!(
        "acceptable here: multipart/related; type=\"application/octet-stream\"{}",
        compressed
            .map(|t| format!(" or type=\"{t}\""))
            .unwrap_or_default()
    )))
}

fn parse_list(list: &str) -> Result<Vec<usize>, ApiError> {
    let frames: Vec<usize> = list
        .split(',')
        .map(|f| f.trim().parse::<usize>().ok().filter(|n| *n >= 1))
        .collect::<Option<_>>()
        .ok_or_else(|| ApiError::bad_request("frames are listed as 1-based numbers: 1,2,5"))?;
    if frames.is_empty() || frames.len() > MAX_FRAMES {
        return Err(ApiError::bad_request(format!(
            "list between 1 and {MAX_FRAMES} frames"
        )));
    }
    Ok(frames)
}

fn int(object: &InMemDicomObject, tag: Tag) -> Option<usize> {
    object.get(tag)?.to_str().ok()?.trim().parse::<usize>().ok()
}

/// The frames of a decoded (native little-endian) data set.
fn native_frames(object: &InMemDicomObject) -> Result<Vec<Vec<u8>>, String> {
    let rows = int(object, tags::ROWS).ok_or("no Rows")?;
    let columns = int(object, tags::COLUMNS).ok_or("no Columns")?;
    let samples = int(object, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    let bits = int(object, tags::BITS_ALLOCATED).ok_or("no Bits Allocated")?;
    let count = int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let bits_per_frame = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(samples))
        .and_then(|n| n.checked_mul(bits))
        .ok_or("absurd image dimensions")?;
    if bits_per_frame % 8 != 0 {
        return Err(
            "frames of this pixel data do not start on byte boundaries; ask for the bulk data"
                .into(),
        );
    }
    let size = bits_per_frame / 8;
    let data = object
        .get(tags::PIXEL_DATA)
        .ok_or("no Pixel Data")?
        .to_bytes()
        .map_err(|e| e.to_string())?;
    (0..count)
        .map(|i| {
            data.get(i * size..(i + 1) * size)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("Pixel Data holds fewer than {count} frames"))
        })
        .collect()
}

/// The compressed frames of an encapsulated data set, as stored.
fn stored_frames(object: &InMemDicomObject) -> Result<Vec<Vec<u8>>, String> {
    let count = int(object, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1);
    let Value::PixelSequence(sequence) =
        object.get(tags::PIXEL_DATA).ok_or("no Pixel Data")?.value()
    else {
        return Err("Pixel Data is not encapsulated".into());
    };
    let fragments = sequence.fragments();
    if count == 1 {
        return Ok(vec![fragments.iter().flatten().copied().collect()]);
    }
    if fragments.len() == count {
        return Ok(fragments.iter().map(|f| f.to_vec()).collect());
    }
    let table = sequence.offset_table();
    if table.len() != count {
        return Err("cannot tell which fragments make which frame (no Basic Offset Table)".into());
    }
    // Offsets count from the first fragment's item tag; each item has an 8-byte header.
    let mut starts = Vec::with_capacity(fragments.len());
    let mut at = 0u64;
    for f in fragments.iter() {
        starts.push(at);
        at += 8 + f.len() as u64;
    }
    let mut frames = vec![Vec::new(); count];
    for (start, fragment) in starts.iter().zip(fragments.iter()) {
        let frame = table
            .iter()
            .rposition(|o| u64::from(*o) <= *start)
            .unwrap_or(0);
        frames[frame].extend_from_slice(fragment);
    }
    Ok(frames)
}

/// Reads the instance at `path` stored in `syntax` and returns its frames in `form`,
/// with the part Content-Type.
fn load(
    path: &std::path::Path,
    syntax: &str,
    form: Form,
) -> Result<(Vec<Vec<u8>>, String), String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let meta = dimse::part10::parse_meta(&bytes).map_err(|e| e.to_string())?;
    let data = bytes.get(meta.dataset_offset..).unwrap_or_default();
    let read = |data: &[u8], ts: &str| {
        let ts = TransferSyntaxRegistry
            .get(ts)
            .ok_or("unknown transfer syntax")?;
        InMemDicomObject::read_dataset_with_ts(data, ts).map_err(|e| e.to_string())
    };
    match form {
        Form::Native if syntax == EXPLICIT_LE || syntax == IMPLICIT_LE => Ok((
            native_frames(&read(data, syntax)?)?,
            format!("application/octet-stream; transfer-syntax={EXPLICIT_LE}"),
        )),
        Form::Stored if frame_media_type(syntax).is_none() => load(path, syntax, Form::Native),
        Form::Native => {
            let converted = dimse::transcode::transcode(data, syntax, EXPLICIT_LE)
                .map_err(|e| e.to_string())?;
            Ok((
                native_frames(&read(&converted, EXPLICIT_LE)?)?,
                format!("application/octet-stream; transfer-syntax={EXPLICIT_LE}"),
            ))
        }
        Form::Stored | Form::StoredOctets => {
            let frames = stored_frames(&read(data, syntax)?)?;
            let media = if form == Form::Stored {
                frame_media_type(syntax).unwrap_or("application/octet-stream")
            } else {
                "application/octet-stream"
            };
            Ok((frames, format!("{media}; transfer-syntax={syntax}")))
        }
    }
}

async fn answer(
    state: &ApiState,
    user: &WebUser,
    uids: [&str; 3],
    list: Option<Vec<usize>>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let blobs = blobs(state)?;
    let target = targets(state, user, &uids)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("no such instance"))?;
    let form = choose(&accept::parse(headers), &target.transfer_syntax)?;
    let path = path_of(&blobs, &target);
    let syntax = target.transfer_syntax.clone();
    let (frames, content_type) = tokio::task::spawn_blocking(move || load(&path, &syntax, form))
        .await
        .map_err(|e| ApiError::internal(&e))?
        .map_err(ApiError::unprocessable)?;
    let chosen: Vec<Vec<u8>> = match list {
        None => frames,
        Some(list) => {
            if let Some(bad) = list.iter().find(|n| **n > frames.len()) {
                return Err(ApiError::not_found(format!(
                    "frame {bad} does not exist: the instance has {} frame(s)",
                    frames.len()
                )));
            }
            list.iter().map(|n| frames[n - 1].clone()).collect()
        }
    };
    let what = format!("WADO-RS {} frame(s) of 1 instance", chosen.len());
    super::super::audit_transfer(state, user, what, 1).await;
    let part_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    let (mut parts, response) = super::super::multipart::response(&part_type);
    tokio::spawn(async move {
        for frame in chosen {
            if !parts
                .part(
                    &[("Content-Type", content_type.as_str())],
                    Bytes::from(frame),
                )
                .await
            {
                return;
            }
        }
        parts.finish().await;
    });
    Ok(response)
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}`.
pub async fn frames(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series, instance, list)): ApiPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebRejection> {
    let list = parse_list(&list)?;
    Ok(answer(
        &state,
        &user,
        [&study, &series, &instance],
        Some(list),
        &headers,
    )
    .await?)
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{tag}`:
/// the Pixel Data (every frame, in the representation asked for) or another bulk
/// value (`application/octet-stream`, as stored).
pub async fn bulk(
    State(state): State<ApiState>,
    user: WebUser,
    ApiPath((study, series, instance, tag)): ApiPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, WebRejection> {
    let (tag, _) = super::super::qido::attribute(&tag)?;
    if tag == tags::PIXEL_DATA {
        return Ok(answer(&state, &user, [&study, &series, &instance], None, &headers).await?);
    }
    let blobs = blobs(&state)?;
    let target = targets(&state, &user, &[&study, &series, &instance])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found("no such instance"))?;
    let path = path_of(&blobs, &target);
    let value = tokio::task::spawn_blocking(move || -> Result<Option<Vec<u8>>, String> {
        let object = dicom_object::OpenFileOptions::new()
            .open_file(&path)
            .map_err(|e| e.to_string())?;
        Ok(object
            .get(tag)
            .and_then(|e| e.to_bytes().ok())
            .map(|b| b.into_owned()))
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(ApiError::unprocessable)?
    .ok_or_else(|| ApiError::not_found("the instance has no such bulk data"))?;
    super::super::audit_transfer(&state, &user, "WADO-RS bulk data of 1 instance".into(), 1).await;
    let (mut parts, response) = super::super::multipart::response("application/octet-stream");
    tokio::spawn(async move {
        if parts
            .part(
                &[("Content-Type", "application/octet-stream")],
                Bytes::from(value),
            )
            .await
        {
            parts.finish().await;
        }
    });
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use axum::http::header::ACCEPT;

    fn form(accept: &str, stored: &str) -> Result<Form, ApiError> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(accept).unwrap());
        choose(&accept::parse(&headers), stored)
    }

    #[test]
    fn representation_follows_accept() {
        let jpeg = "1.2.840.10008.1.2.4.50";
        assert_eq!(form("*/*", jpeg).unwrap(), Form::Stored);
        assert_eq!(
            form("multipart/related; type=\"image/jpeg\"", jpeg).unwrap(),
            Form::Stored
        );
        assert_eq!(
            form("multipart/related; type=\"application/octet-stream\"", jpeg).unwrap(),
            Form::Native
        );
        assert_eq!(
            form(
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                jpeg
            )
            .unwrap(),
            Form::StoredOctets
        );
        assert_eq!(
            form(
                "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
                EXPLICIT_LE
            )
            .unwrap(),
            Form::Native
        );
        assert!(form("multipart/related; type=\"image/jp2\"", jpeg).is_err());
        // dicomweb-client's default: any part type.
        assert_eq!(
            form("multipart/related; type=\"*/*\"", jpeg).unwrap(),
            Form::Stored
        );
        assert_eq!(
            form("multipart/related; type=\"image/*\"", jpeg).unwrap(),
            Form::Stored
        );
        assert!(form("multipart/related; type=\"image/*\"", EXPLICIT_LE).is_err());
    }

    #[test]
    fn frame_lists() {
        assert_eq!(parse_list("1,3, 2").unwrap(), vec![1, 3, 2]);
        assert!(parse_list("0").is_err());
        assert!(parse_list("a").is_err());
        assert!(parse_list("").is_err());
    }
}

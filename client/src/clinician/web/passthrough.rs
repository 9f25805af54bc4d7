//! Pixels passed through to the gateway's own DICOMweb: frames, and rendered images
//! (of an instance, one frame or a series) and thumbnails where the gateway serves
//! them. These carry no identifiers (the intake cleans burned-in text before
//! anything leaves the facility), so the proxy only maps the original UIDs of the
//! path to the gateway's pseudonymous ones (`phi::pseudonym::uid`, as the viewer
//! proxy does), forwards the caller's Basic credentials, `Accept` and query string
//! to `[gateway] admin_url` over HTTPS (the gateway CA only), and streams the answer
//! back with its status and type.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use phi::keys::KeyRing;

use super::auth::Caller;
use super::{WebError, WebProxy};

/// The HTTPS client towards the gateway, trusting only `[gateway] ca`.
pub(super) fn https(config: &crate::config::Config) -> anyhow::Result<reqwest::Client> {
    crate::gateway::https(config)
}

/// The gateway's path for `segments` of original UIDs (the UID positions mapped)
/// followed by `tail` (`frames/1,2`, `rendered`, `thumbnail`).
fn gateway_path(ring: &KeyRing, uids: &[(&str, &str)], tail: &str) -> String {
    let mut path = String::from("/dicom-web");
    for (level, uid) in uids {
        path.push('/');
        path.push_str(level);
        path.push('/');
        path.push_str(&phi::pseudonym::uid(ring, uid));
    }
    if !tail.is_empty() {
        path.push('/');
        path.push_str(tail);
    }
    path
}

/// Forwards a GET of `path` (with `query`) as the caller and streams the answer.
async fn forward(
    proxy: &WebProxy,
    headers: &HeaderMap,
    path: String,
    query: Option<String>,
) -> Result<Response, WebError> {
    let http = match proxy.https.get() {
        Some(http) => http.clone(),
        None => {
            let made = https(&proxy.config).map_err(|e| WebError::gateway(&e))?;
            proxy.https.get_or_init(|| made).clone()
        }
    };
    let mut url = format!("{}{path}", proxy.config.gateway.admin_url());
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        url.push('?');
        url.push_str(&query);
    }
    let mut request = http.get(url);
    for name in [AUTHORIZATION, ACCEPT] {
        if let Some(value) = headers.get(&name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request
        .send()
        .await
        .map_err(|e| WebError::gateway(&e.into()))?;
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = answer.headers().get(CONTENT_TYPE.as_str()).cloned();
    // The body as it comes (reqwest's `chunk`), without buffering it whole.
    let stream = futures::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(answer))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(e)), None)),
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = status;
    if let Some(value) = content_type.and_then(|v| v.to_str().ok().map(str::to_string))
        && let Ok(value) = axum::http::HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(WebError::new(status, "the gateway refused the credentials"));
    }
    Ok(response)
}

type Proxy = State<Arc<WebProxy>>;

/// `GET /studies/{study}/series/{series}/instances/{instance}/frames/{frames}`
pub(super) async fn frames(
    State(proxy): Proxy,
    _caller: Caller,
    headers: HeaderMap,
    Path((study, series, instance, frames)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    if !frames.bytes().all(|b| b.is_ascii_digit() || b == b',') {
        return Err(WebError::bad_request(
            "frames: a comma-separated list of numbers",
        ));
    }
    let uids = [
        ("studies", study.as_str()),
        ("series", series.as_str()),
        ("instances", instance.as_str()),
    ];
    let path = gateway_path(&proxy.ring, &uids, &format!("frames/{frames}"));
    forward(&proxy, &headers, path, query).await
}

/// `GET .../instances/{instance}/frames/{frame}/rendered`: one frame, rendered.
pub(super) async fn frame_rendered(
    State(proxy): Proxy,
    _caller: Caller,
    headers: HeaderMap,
    Path((study, series, instance, frame)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, WebError> {
    if frame.is_empty() || !frame.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WebError::bad_request(
            "one frame number (1-based) is rendered at a time",
        ));
    }
    let uids = [
        ("studies", study.as_str()),
        ("series", series.as_str()),
        ("instances", instance.as_str()),
    ];
    let path = gateway_path(&proxy.ring, &uids, &format!("frames/{frame}/rendered"));
    forward(&proxy, &headers, path, query).await
}

/// `GET .../rendered` and `.../thumbnail` at study, series or instance level: the
/// path's UIDs in order, then the last segment.
pub(super) async fn pixels(
    State(proxy): Proxy,
    _caller: Caller,
    headers: HeaderMap,
    Path(segments): Path<Vec<(String, String)>>,
    RawQuery(query): RawQuery,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let tail = match uri.path().rsplit('/').next() {
        Some("rendered") => "rendered",
        Some("thumbnail") => "thumbnail",
        _ => return Err(WebError::not_found()),
    };
    let levels = ["studies", "series", "instances"];
    let uids: Vec<(&str, &str)> = levels
        .iter()
        .zip(segments.iter())
        .map(|(level, (_, uid))| (*level, uid.as_str()))
        .collect();
    let path = gateway_path(&proxy.ring, &uids, tail);
    forward(&proxy, &headers, path, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_gateway_uids() {
        let ring = phi::keys::FacilityKey::from_bytes([7u8; 32]).ring();
        let path = gateway_path(
            &ring,
            &[("studies", "1.2.3"), ("series", "1.2.3.4")],
            "thumbnail",
        );
        assert_eq!(
            path,
            format!(
                "/dicom-web/studies/{}/series/{}/thumbnail",
                phi::pseudonym::uid(&ring, "1.2.3"),
                phi::pseudonym::uid(&ring, "1.2.3.4")
            )
        );
        assert!(!path.contains("/1.2.3/"));
    }
}

//! The changes feed and STOW-RS: instances stored through `POST /dicom-web/studies`
//! (the C-STORE ingest path) write the same events as a C-STORE, and the feed then
//! reads them over HTTPS with the same user's bearer token.

mod common;
mod http_support;
mod web_support;

use common::data::{self, CT, Spec};
use common::{Backend, Options};
use http_support::{DOC_A, PASSWORD};
use reqwest::StatusCode;
use serde_json::Value;
use web_support::{json, start};

fn multipart_body(files: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for file in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

async fn stow_writes_feed_events(backend: Backend) {
    let gw = start(backend, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = gw.client();
    // Two series of one study in one request.
    let specs: Vec<Spec> = [0u32, 3]
        .into_iter()
        .map(|n| Spec {
            deidentified: true,
            ..Spec::new(CT, "CT", n)
        })
        .collect();
    assert_eq!(specs[0].study_uid, specs[1].study_uid);
    let files: Vec<Vec<u8>> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| std::fs::read(data::write(&dir.path().join(format!("{i}.dcm")), s)).unwrap())
        .collect();
    let boundary = "feed-boundary-42";
    let response = client
        .post(format!("{}/studies", gw.base()))
        .basic_auth(DOC_A, Some(PASSWORD))
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .body(multipart_body(&files, boundary))
        .send()
        .await
        .unwrap();
    let (status, answer) = json(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let api = format!("https://localhost:{}/api/v1", gw.https_port);
    let login = client
        .post(format!("{api}/login"))
        .json(&serde_json::json!({"username": DOC_A, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let (status, login) = json(login).await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let token = login["token"].as_str().unwrap();
    let page = client
        .get(format!("{api}/changes"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, page) = json(page).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let changes = page["changes"].as_array().unwrap();
    let study = specs[0].study_uid.as_str();
    // Stored in one transaction or two: a `stored` first, then at most a new series.
    assert_eq!(changes[0]["kind"], "stored", "{page}");
    assert_eq!(changes[0]["study_uid"], study);
    let last = changes.last().unwrap();
    assert_eq!(
        (last["instances"].as_i64(), last["series"].as_i64()),
        (Some(2), Some(2))
    );
    for c in &changes[1..] {
        assert_eq!(c["kind"], "series-added", "{page}");
        assert_eq!(c["series_uid"], Value::from(specs[1].series_uid.as_str()));
    }
    gw.stop().await;
}
both_backends!(stow_writes_feed_events);

//! DICOMweb on the real HTTPS server (`Application`): QIDO-RS against C-FIND's engine,
//! WADO-RS bytes against the stored blobs, metadata with bulk data, frames, STOW-RS
//! admission and refusals, HTTP Basic with lockout, bearer tokens, and facility scope.
//! The Python `dicomweb-client` package is driven against the same server in
//! `dicomweb_client.rs`.

mod common;
mod http_support;
mod web_support;

use common::data::{self, CT, Spec};
use common::{Backend, Options};
use http_support::{DOC_A, DOC_B, MAX_FAILURES, PASSWORD};
use reqwest::StatusCode;
use serde_json::Value;
use web_support::{fixtures, get, json, parts, start, value};

async fn search_retrieve_and_scope(backend: Backend) {
    let gw = start(backend, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let files = fixtures(dir.path());
    gw.store(&files.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>())
        .await;
    let client = gw.client();
    let base = gw.base();
    let study = files[0].0.study_uid.clone();

    // QIDO: both studies, with counts and Retrieve URLs; a patient filter narrows.
    let (status, studies) = json(get(&client, &format!("{base}/studies"), DOC_A, None).await).await;
    assert_eq!(status, StatusCode::OK, "{studies}");
    let studies = studies.as_array().unwrap();
    assert_eq!(studies.len(), 2, "{studies:?}");
    let first = studies
        .iter()
        .find(|s| value(s, "0020000D").and_then(Value::as_str) == Some(&study))
        .expect("study 1 listed");
    assert_eq!(
        value(first, "00201208"),
        Some(&Value::from(2)),
        "instances in study: {first}"
    );
    assert_eq!(
        value(first, "00081190").and_then(Value::as_str),
        Some(format!("{base}/studies/{study}").as_str())
    );
    assert!(
        first.get("00080052").is_none(),
        "no Query/Retrieve Level in QIDO answers"
    );
    let url = format!("{base}/studies?PatientID={}", files[0].0.patient_id);
    let (_, narrowed) = json(get(&client, &url, DOC_A, None).await).await;
    assert_eq!(narrowed.as_array().unwrap().len(), 1);
    let url = format!("{base}/studies?StudyDate=20240101-20240102&includefield=StudyDescription");
    let (status, ranged) = json(get(&client, &url, DOC_A, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ranged.as_array().unwrap().len(), 2, "{ranged}");
    // Parity with C-FIND on the same index: the same study UIDs.
    let index = gw.setup.index().await;
    let mut identifier = dicom_object::InMemDicomObject::new_empty();
    identifier.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::QUERY_RETRIEVE_LEVEL,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("STUDY"),
    ));
    identifier.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
        dicom_core::VR::UI,
        dicom_core::PrimitiveValue::Empty,
    ));
    let query = gateway::qr::parse(gateway::qr::Model::StudyRoot, &identifier).unwrap();
    let found = gateway::qr::find(&index, gw.setup.facility.id, &query, 100)
        .await
        .unwrap();
    let mut by_cfind: Vec<String> = found
        .iter()
        .map(|o| {
            o.get(dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches('\0')
                .to_string()
        })
        .collect();
    let mut by_qido: Vec<String> = studies
        .iter()
        .map(|s| value(s, "0020000D").unwrap().as_str().unwrap().to_string())
        .collect();
    by_cfind.sort();
    by_qido.sort();
    assert_eq!(by_cfind, by_qido);

    // Relational series search, limit/offset with a Warning when cut.
    let (status, series) =
        json(get(&client, &format!("{base}/series?Modality=CT"), DOC_A, None).await).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    assert_eq!(series.as_array().unwrap().len(), 3);
    let response = get(&client, &format!("{base}/series?limit=2"), DOC_A, None).await;
    assert!(
        response.headers().get("warning").is_some(),
        "a cut answer says so"
    );
    let (_, page) = json(response).await;
    assert_eq!(page.as_array().unwrap().len(), 2);
    let (_, rest) = json(
        get(
            &client,
            &format!("{base}/series?limit=2&offset=2"),
            DOC_A,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(rest.as_array().unwrap().len(), 1);
    let (status, e) = json(
        get(
            &client,
            &format!("{base}/studies?NoSuchThing=1"),
            DOC_A,
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NoSuchThing")
    );

    // WADO-RS: the study as stored, byte for byte.
    let response = get(&client, &format!("{base}/studies/{study}"), DOC_A, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ct = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        ct.starts_with("multipart/related; type=\"application/dicom\""),
        "{ct}"
    );
    let body = response.bytes().await.unwrap();
    let got = parts(&ct, &body);
    assert_eq!(got.len(), 2);
    let mut stored: Vec<Vec<u8>> = gw
        .setup
        .blob_files()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    for (headers, part) in &got {
        assert!(
            headers.contains("transfer-syntax=1.2.840.10008.1.2.1"),
            "{headers}"
        );
        let at = stored
            .iter()
            .position(|s| s == part)
            .expect("a part equals a stored blob");
        stored.remove(at);
    }
    // One instance, bare application/dicom, and converted to Implicit VR LE on request.
    let (spec, _) = &files[0];
    let url = format!(
        "{base}/studies/{}/series/{}/instances/{}",
        spec.study_uid, spec.series_uid, spec.sop_uid
    );
    let response = get(&client, &url, DOC_A, Some("application/dicom")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let single = response.bytes().await.unwrap();
    assert_eq!(&single[128..132], b"DICM");
    let response = get(
        &client,
        &url,
        DOC_A,
        Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2"),
    )
    .await;
    let ct = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    let got = parts(&ct, &body);
    assert_eq!(got.len(), 1);
    let meta = dimse::part10::parse_meta(&got[0].1).unwrap();
    assert_eq!(meta.transfer_syntax, "1.2.840.10008.1.2");
    let response = get(&client, &url, DOC_A, Some("text/html")).await;
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);

    // Metadata: the header, pixel data by Bulk Data URI; the bulk data and frame 1
    // are the pixels as written.
    let (status, metadata) =
        json(get(&client, &format!("{url}/metadata"), DOC_A, None).await).await;
    assert_eq!(status, StatusCode::OK, "{metadata}");
    let item = &metadata[0];
    assert_eq!(
        value(item, "00080018").and_then(Value::as_str),
        Some(spec.sop_uid.as_str())
    );
    let bulk = item["7FE00010"]["BulkDataURI"]
        .as_str()
        .expect("pixel data by URI")
        .to_string();
    let pixels = data::pixels(spec);
    let response = get(&client, &bulk, DOC_A, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ct = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    let got = parts(&ct, &body);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, pixels);
    let response = get(
        &client,
        &format!("{url}/frames/1"),
        DOC_A,
        Some("multipart/related; type=\"application/octet-stream\""),
    )
    .await;
    let ct = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = response.bytes().await.unwrap();
    assert_eq!(parts(&ct, &body)[0].1, pixels);
    let response = get(&client, &format!("{url}/frames/2"), DOC_A, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Another facility's user sees nothing of it.
    let (status, none) = json(get(&client, &format!("{base}/studies"), DOC_B, None).await).await;
    assert_eq!((status, none), (StatusCode::OK, Value::Array(vec![])));
    let response = get(&client, &format!("{base}/studies/{study}"), DOC_B, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = get(&client, &format!("{url}/metadata"), DOC_B, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    index.close().await;
    // Searches and retrievals are audited like their DIMSE counterparts.
    let setup = gw.stop().await; // flushes the audit trail
    let index = setup.index().await;
    let filter = gateway::audit::AuditFilter {
        facility_id: Some(setup.facility.id),
        limit: Some(1000),
        ..Default::default()
    };
    let events = gateway::audit::search(&index, &filter).await.unwrap();
    let has = |kind: gateway::audit::EventKind, text: &str| {
        events
            .iter()
            .any(|e| e.event.kind == kind && e.event.detail.contains(text))
    };
    assert!(
        has(gateway::audit::EventKind::Query, "QIDO-RS"),
        "{events:?}"
    );
    assert!(
        has(gateway::audit::EventKind::BeginTransferring, "WADO-RS"),
        "{events:?}"
    );
    index.close().await;
}

both_backends!(search_retrieve_and_scope);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn basic_credentials_lockout_and_bearer() {
    let gw = start(Backend::Sqlite, Options::default()).await;
    let client = gw.client();
    let base = gw.base();
    let response = client.get(format!("{base}/studies")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic realm="), "{challenge}");
    // Right password: served (twice: the second from the remembered check).
    for _ in 0..2 {
        assert_eq!(
            get(&client, &format!("{base}/studies"), DOC_A, None)
                .await
                .status(),
            StatusCode::OK
        );
    }
    // Wrong passwords lock the account; then even the right one is refused.
    for _ in 0..MAX_FAILURES {
        let response = client
            .get(format!("{base}/studies"))
            .basic_auth(DOC_A, Some("wrong password"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        get(&client, &format!("{base}/studies"), DOC_A, None)
            .await
            .status(),
        StatusCode::UNAUTHORIZED,
        "a locked account is refused even with a remembered password"
    );
    // A bearer token from the admin login works for DICOMweb.
    let login = client
        .post(format!("https://localhost:{}/api/v1/login", gw.https_port))
        .json(&serde_json::json!({"username": DOC_B, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = login.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let response = client
        .get(format!("{base}/studies"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    gw.stop().await;
}

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

async fn stow(client: &reqwest::Client, url: &str, files: &[Vec<u8>]) -> (StatusCode, Value) {
    let boundary = "stow-boundary-1234";
    let response = client
        .post(url)
        .basic_auth(DOC_A, Some(PASSWORD))
        .header(
            "Content-Type",
            format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .body(multipart_body(files, boundary))
        .send()
        .await
        .unwrap();
    json(response).await
}

async fn stow_admission(backend: Backend) {
    // The facility accepts only de-identified instances here.
    let options = Options {
        accept_identified: false,
        ..Options::default()
    };
    let gw = start(backend, options).await;
    let dir = tempfile::tempdir().unwrap();
    let client = gw.client();
    let base = gw.base();
    let mut sealed = Spec::new(CT, "CT", 7);
    sealed.deidentified = true;
    let sealed_bytes = std::fs::read(data::write(&dir.path().join("sealed.dcm"), &sealed)).unwrap();
    let identified = Spec::new(CT, "CT", 8);
    let identified_bytes =
        std::fs::read(data::write(&dir.path().join("identified.dcm"), &identified)).unwrap();

    let (status, answer) = stow(
        &client,
        &format!("{base}/studies"),
        &[sealed_bytes.clone(), identified_bytes.clone()],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let referenced = answer["00081199"]["Value"].as_array().unwrap();
    assert_eq!(referenced.len(), 1);
    assert_eq!(
        value(&referenced[0], "00081155").and_then(Value::as_str),
        Some(sealed.sop_uid.as_str())
    );
    let url = value(&referenced[0], "00081190")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(
        url.ends_with(&format!("/instances/{}", sealed.sop_uid)),
        "{url}"
    );
    let failed = answer["00081198"]["Value"].as_array().unwrap();
    assert_eq!(
        value(&failed[0], "00081155").and_then(Value::as_str),
        Some(identified.sop_uid.as_str())
    );
    // Refused: not authorized (0x0124), as C-STORE answers an identified instance.
    assert_eq!(value(&failed[0], "00081197"), Some(&Value::from(0x0124)));

    // The stored one retrieves byte-exact (data set after the meta header).
    let response = get(&client, &url, DOC_A, Some("application/dicom")).await;
    let back = response.bytes().await.unwrap();
    let offset = |b: &[u8]| dimse::part10::parse_meta(b).unwrap().dataset_offset;
    assert_eq!(back[offset(&back)..], sealed_bytes[offset(&sealed_bytes)..]);

    // A re-send of the same bytes is an identical duplicate (stored, not failed); an
    // instance of another study posted to a study's URL is refused and not stored.
    let (status, answer) = stow(
        &client,
        &format!("{base}/studies"),
        std::slice::from_ref(&sealed_bytes),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut other = Spec::new(CT, "CT", 9);
    other.deidentified = true;
    let other_bytes = std::fs::read(data::write(&dir.path().join("other.dcm"), &other)).unwrap();
    let (status, answer) = stow(
        &client,
        &format!("{base}/studies/1.2.3.999"),
        &[other_bytes],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(
        value(&answer["00081198"]["Value"][0], "00081197"),
        Some(&Value::from(0xA900))
    );
    let index = gw.setup.index().await;
    let uid = gateway::domain::Uid::parse(&other.sop_uid).unwrap();
    assert!(
        index
            .find_instance(gw.setup.facility.id, &uid)
            .await
            .unwrap()
            .is_none()
    );

    // Not multipart: 415; garbage part: failed with 0xC000-class reason.
    let response = client
        .post(format!("{base}/studies"))
        .basic_auth(DOC_A, Some(PASSWORD))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, answer) = stow(
        &client,
        &format!("{base}/studies"),
        &[b"not dicom at all".to_vec()],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    index.close().await;
    gw.stop().await;
}

both_backends!(stow_admission);

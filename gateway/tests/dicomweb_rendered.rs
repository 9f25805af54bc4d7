//! Rendered images and thumbnails over DICOMweb on the real HTTPS server: a native and
//! a JPEG-LS CT instance render to JPEG and PNG that decode at the size asked for, a
//! window changes the picture, series and study thumbnails come from the cache or are
//! made now, an ultrasound instance (a burned-in risk class by default) is refused,
//! and another facility's user gets nothing.

mod common;
mod http_support;
mod web_support;

use common::data::{self, CT, Spec, US};
use common::{Backend, Options};
use http_support::{DOC_A, DOC_B};
use reqwest::StatusCode;
use web_support::{get, start};

async fn image_of(response: reqwest::Response, mime: &str) -> image::DynamicImage {
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], mime);
    let bytes = response.bytes().await.unwrap();
    image::load_from_memory(&bytes).expect("the answer decodes as an image")
}

fn mean(image: &image::DynamicImage) -> f64 {
    let gray = image.to_luma8();
    gray.pixels().map(|p| f64::from(p.0[0])).sum::<f64>() / gray.pixels().len() as f64
}

async fn rendered_and_thumbnails(backend: Backend) {
    let gw = start(backend, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let native = Spec::new(CT, "CT", 50);
    gw.store(&[data::write(&dir.path().join("native.dcm"), &native)])
        .await;
    let ls = Spec::new(CT, "CT", 51);
    let ls_file = data::convert(
        "dcmcjpls",
        &["+el"],
        &data::write(&dir.path().join("ls-native.dcm"), &ls),
        &dir.path().join("ls.dcm"),
    );
    gw.store_with(&[ls_file], &["-R", "-xt"]).await;
    let us = Spec::new(US, "US", 52);
    gw.store(&[data::write(&dir.path().join("us.dcm"), &us)])
        .await;
    let client = gw.client();
    let base = gw.base();
    let url = |s: &Spec| {
        format!(
            "{base}/studies/{}/series/{}/instances/{}",
            s.study_uid, s.series_uid, s.sop_uid
        )
    };

    for spec in [&native, &ls] {
        let jpeg = image_of(
            get(&client, &format!("{}/rendered", url(spec)), DOC_A, None).await,
            "image/jpeg",
        )
        .await;
        assert_eq!((jpeg.width(), jpeg.height()), (64, 64));
        let png = image_of(
            get(
                &client,
                &format!("{}/rendered?viewport=32,32", url(spec)),
                DOC_A,
                Some("image/png"),
            )
            .await,
            "image/png",
        )
        .await;
        assert_eq!((png.width(), png.height()), (32, 32));
        // A narrow window around a low value makes the picture brighter than a wide one.
        let narrow = image_of(
            get(
                &client,
                &format!("{}/rendered?window=100,50", url(spec)),
                DOC_A,
                Some("image/png"),
            )
            .await,
            "image/png",
        )
        .await;
        let wide = image_of(
            get(
                &client,
                &format!("{}/rendered?window=30000,70000", url(spec)),
                DOC_A,
                Some("image/png"),
            )
            .await,
            "image/png",
        )
        .await;
        assert!(
            mean(&narrow) > mean(&wide),
            "{} vs {}",
            mean(&narrow),
            mean(&wide)
        );
        let thumb = image_of(
            get(
                &client,
                &format!("{}/thumbnail?viewport=16,16", url(spec)),
                DOC_A,
                None,
            )
            .await,
            "image/jpeg",
        )
        .await;
        assert_eq!((thumb.width(), thumb.height()), (16, 16));
    }
    let series = format!(
        "{base}/studies/{}/series/{}",
        native.study_uid, native.series_uid
    );
    image_of(
        get(&client, &format!("{series}/thumbnail"), DOC_A, None).await,
        "image/jpeg",
    )
    .await;
    image_of(
        get(&client, &format!("{series}/rendered"), DOC_A, None).await,
        "image/jpeg",
    )
    .await;
    let study = format!("{base}/studies/{}/thumbnail", native.study_uid);
    image_of(get(&client, &study, DOC_A, None).await, "image/jpeg").await;

    // Burned-in risk: ultrasound is not rendered.
    let response = get(&client, &format!("{}/rendered", url(&us)), DOC_A, None).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Bad parameters and formats.
    let response = get(
        &client,
        &format!("{}/rendered?viewport=0,0", url(&native)),
        DOC_A,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = get(
        &client,
        &format!("{}/rendered", url(&native)),
        DOC_A,
        Some("image/gif"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_ACCEPTABLE);
    let response = get(
        &client,
        &format!("{}/frames/2/rendered", url(&native)),
        DOC_A,
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // Another facility.
    let response = get(&client, &format!("{}/rendered", url(&native)), DOC_B, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = get(&client, &study, DOC_B, None).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    gw.stop().await;
}

both_backends!(rendered_and_thumbnails);

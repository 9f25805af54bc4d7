//! WADO-RS frames and conversions of compressed and multi-frame instances: stored
//! JPEG-LS, RLE (made with DCMTK) and a three-frame native instance; frames come back
//! decompressed pixel-exact as `application/octet-stream`, or as stored in their own
//! media type when asked; a whole instance converts to Explicit VR Little Endian.

mod common;
mod http_support;
mod web_support;

use common::data::{self, CT, Spec, XA};
use common::{Backend, Options};
use http_support::DOC_A;
use reqwest::StatusCode;
use web_support::{get, parts, start};

const OCTETS: &str = "multipart/related; type=\"application/octet-stream\"";

async fn frames_of_compressed_and_multiframe(backend: Backend) {
    let gw = start(backend, Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (n, tool, flags, media, propose) in [
        (40u32, "dcmcjpls", &["+el"][..], "image/jls", "-xt"),
        (41, "dcmcrle", &[][..], "image/dicom-rle", "-xr"),
    ] {
        let spec = Spec::new(CT, "CT", n);
        let native = data::write(&dir.path().join(format!("{n}-native.dcm")), &spec);
        let packed = data::convert(tool, flags, &native, &dir.path().join(format!("{n}.dcm")));
        gw.store_with(&[packed], &["-R", propose]).await;
        specs.push((spec, Some(media)));
    }
    let mut multi = Spec::new(XA, "XA", 42);
    multi.frames = 3;
    multi.bits = 8;
    gw.store(&[data::write(&dir.path().join("multi.dcm"), &multi)])
        .await;
    specs.push((multi, None));
    let client = gw.client();
    let base = gw.base();

    for (spec, media) in &specs {
        let url = format!(
            "{base}/studies/{}/series/{}/instances/{}",
            spec.study_uid, spec.series_uid, spec.sop_uid
        );
        let pixels = data::pixels(spec);
        let frame_len = pixels.len() / spec.frames as usize;
        // Native little-endian frames, decompressed where stored compressed.
        let list = (1..=spec.frames)
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let response = get(
            &client,
            &format!("{url}/frames/{list}"),
            DOC_A,
            Some(OCTETS),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        let ct = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.bytes().await.unwrap();
        let got = parts(&ct, &body);
        assert_eq!(got.len(), spec.frames as usize);
        for (i, (headers, frame)) in got.iter().enumerate() {
            assert!(headers.contains("application/octet-stream"), "{headers}");
            assert_eq!(
                frame[..],
                pixels[i * frame_len..(i + 1) * frame_len],
                "frame {} of {}",
                i + 1,
                spec.sop_uid
            );
        }
        // The middle frame alone.
        if spec.frames == 3 {
            let response = get(&client, &format!("{url}/frames/2"), DOC_A, Some(OCTETS)).await;
            let ct = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let body = response.bytes().await.unwrap();
            assert_eq!(parts(&ct, &body)[0].1, pixels[frame_len..2 * frame_len]);
        }
        if let Some(media) = media {
            // As stored, in the syntax's own media type: compressed bytes.
            let accept = format!("multipart/related; type=\"{media}\"");
            let response = get(&client, &format!("{url}/frames/1"), DOC_A, Some(&accept)).await;
            assert_eq!(response.status(), StatusCode::OK);
            let ct = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let body = response.bytes().await.unwrap();
            let got = parts(&ct, &body);
            assert!(got[0].0.contains(media), "{}", got[0].0);
            assert_ne!(got[0].1, pixels, "stored frames are compressed");
            assert!(got[0].1.len() < pixels.len());
            // The whole instance converted to Explicit VR Little Endian.
            let response = get(
                &client,
                &url,
                DOC_A,
                Some("multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1"),
            )
            .await;
            let ct = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_string();
            let body = response.bytes().await.unwrap();
            let got = parts(&ct, &body);
            let meta = dimse::part10::parse_meta(&got[0].1).unwrap();
            assert_eq!(meta.transfer_syntax, "1.2.840.10008.1.2.1");
            let object = dicom_object::from_reader(&got[0].1[128..]).unwrap();
            let value = object
                .element(dicom_dictionary_std::tags::PIXEL_DATA)
                .unwrap();
            assert_eq!(value.to_bytes().unwrap().as_ref(), pixels.as_slice());
        }
    }
    gw.stop().await;
}

both_backends!(frames_of_compressed_and_multiframe);

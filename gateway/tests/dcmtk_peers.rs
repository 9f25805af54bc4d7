//! DCMTK peers (`echoscu`, `storescu`) against the gateway on both ports: who is let in,
//! what lands in the index and the blob store, and what survives a restart.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, Options, PLAIN_AE, Setup, TestGateway, dcmtk_async};
use gateway::db::read::InstanceRow;

/// The calling AE title our TLS sends use (any title: TLS admits by certificate).
const TLS_AE: &str = "ST_MARY_FWD";

/// stdout and stderr of a tool, for assertion messages.
fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", output_text(out));
}

fn assert_refused(out: &Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what} was expected to fail but exited 0:\n{}",
        output_text(out)
    );
}

/// Arguments for a DCMTK SCU: `tls` options, AE titles, `extra` flags, peer, files.
fn scu_args(
    tls: &[String],
    aet: &str,
    aec: &str,
    extra: &[&str],
    port: u16,
    files: &[PathBuf],
) -> Vec<String> {
    let mut list = tls.to_vec();
    list.extend(["-aet", aet, "-aec", aec].map(String::from));
    list.extend(extra.iter().map(|s| s.to_string()));
    list.push("127.0.0.1".into());
    list.push(port.to_string());
    list.extend(files.iter().map(|f| f.display().to_string()));
    list
}

/// `storescu` over TLS with the facility certificate.
async fn store_tls(gw: &TestGateway, extra: &[&str], files: &[PathBuf]) -> Output {
    let tls = gw.dcmtk_tls_args();
    let list = scu_args(&tls, TLS_AE, GATEWAY_AE, extra, gw.tls_port, files);
    dcmtk_async("storescu", list).await
}

/// `storescu` on the plain port as `aet`, calling `aec`.
async fn store_plain(gw: &TestGateway, aet: &str, aec: &str, files: &[PathBuf]) -> Output {
    let list = scu_args(&[], aet, aec, &[], gw.plain_port, files);
    dcmtk_async("storescu", list).await
}

/// Transfer syntax named in a Part-10 file's meta header.
fn file_transfer_syntax(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    dimse::part10::parse_meta(&bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .transfer_syntax
}

async fn rows(gw: &TestGateway) -> Vec<InstanceRow> {
    let index = gw.index().await;
    let rows = index.instances(gw.setup.facility.id).await.unwrap();
    index.close().await;
    rows
}

/// The single index row for `sop_uid` (fails if there are none or several).
fn row_of<'a>(rows: &'a [InstanceRow], sop_uid: &str) -> &'a InstanceRow {
    let found: Vec<_> = rows.iter().filter(|r| r.sop_instance_uid == sop_uid).collect();
    assert_eq!(found.len(), 1, "index rows for {sop_uid}: {found:#?}");
    found[0]
}

/// The stored blob holds exactly the data set of `sent`, in its transfer syntax.
fn assert_blob_matches(setup: &Setup, row: &InstanceRow, sent: &Path) {
    let blob = setup.blob_root().join(&row.blob_key);
    assert!(blob.is_file(), "blob {} is missing", blob.display());
    assert_eq!(
        common::dataset_sha256(&blob),
        common::dataset_sha256(sent),
        "blob data set of {} differs from the file sent",
        row.sop_instance_uid
    );
    assert_eq!(file_transfer_syntax(&blob), file_transfer_syntax(sent));
}

async fn plain_and_tls_echo_and_store(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let plain_file = data::write(&dir.path().join("a.dcm"), &Spec::new(data::CT, "CT", 0));
    let tls_file = data::write(&dir.path().join("b.dcm"), &Spec::new(data::MR, "MR", 1));
    let tls = gw.dcmtk_tls_args();
    let echo_plain = scu_args(&[], PLAIN_AE, GATEWAY_AE, &[], gw.plain_port, &[]);
    assert_ok(&dcmtk_async("echoscu", echo_plain).await, "plain echoscu");
    let echo_tls = scu_args(&tls, TLS_AE, GATEWAY_AE, &[], gw.tls_port, &[]);
    assert_ok(&dcmtk_async("echoscu", echo_tls).await, "TLS echoscu");
    let out = store_plain(&gw, PLAIN_AE, GATEWAY_AE, std::slice::from_ref(&plain_file)).await;
    assert_ok(&out, "plain storescu");
    assert_ok(&store_tls(&gw, &[], std::slice::from_ref(&tls_file)).await, "TLS storescu");

    let rows = rows(&gw).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (file, uid, ae) in [(&plain_file, "1.2.826.0.1.3680043.10.3.1", PLAIN_AE), (&tls_file, "1.2.826.0.1.3680043.10.3.2", TLS_AE)] {
        let row = row_of(&rows, uid);
        assert_eq!(row.calling_ae, ae);
        assert_eq!(row.sha256, common::dataset_sha256(file));
        assert_blob_matches(&gw.setup, row, file);
    }
    gw.stop().await;
}

both_backends!(plain_and_tls_echo_and_store);

async fn refused_peers_store_nothing(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = [data::write(&dir.path().join("a.dcm"), &Spec::new(data::CT, "CT", 0))];
    let ca = gw.setup.cert.ca.display().to_string();
    let anonymous = ["+tla".to_string(), "+cf".into(), ca];
    let foreign = common::dcmtk_tls_args(&gw.setup.foreign_cert());
    let attempts = [
        ("TLS without a client certificate", anonymous.to_vec(), PLAIN_AE, GATEWAY_AE, gw.tls_port),
        ("TLS with a foreign CA's certificate", foreign, TLS_AE, GATEWAY_AE, gw.tls_port),
        ("plain TCP to the TLS port", vec![], PLAIN_AE, GATEWAY_AE, gw.tls_port),
        ("unknown calling AE", vec![], "STRANGER", GATEWAY_AE, gw.plain_port),
        ("wrong called AE", vec![], PLAIN_AE, "NOTUS", gw.plain_port),
    ];
    for (what, tls, aet, aec, port) in attempts {
        let out = dcmtk_async("storescu", scu_args(&tls, aet, aec, &[], port, &files)).await;
        assert_refused(&out, what);
    }
    let index = gw.index().await;
    assert_eq!(index.count_instances().await.unwrap(), 0);
    index.close().await;
    assert_eq!(gw.setup.blob_files(), Vec::<PathBuf>::new());
    assert_eq!(gw.setup.temp_files(), Vec::<PathBuf>::new());

    let out = store_plain(&gw, PLAIN_AE, GATEWAY_AE, &files).await;
    assert_ok(&out, "good store after the refusals");
    assert_eq!(rows(&gw).await.len(), 1);
    gw.stop().await;
}

both_backends!(refused_peers_store_nothing);

/// A generated file and the storescu flags that can send it.
struct Sample {
    spec: Spec,
    file: PathBuf,
    flags: &'static [&'static str],
}

/// One instance per transfer-syntax family; the study date is per study.
fn varied_set(dir: &Path) -> Vec<Sample> {
    let spec = |class, modality, n: u32| {
        let mut s = Spec::new(class, modality, n);
        s.study_date = format!("202402{:02}", n % 3 + 1);
        s
    };
    let native = |s: &Spec, name: &str| data::write(&dir.join(format!("{name}.native.dcm")), s);
    let convert = |tool, flags: &[&str], s: &Spec, name: &str| {
        data::convert(tool, flags, &native(s, name), &dir.join(format!("{name}.dcm")))
    };
    let ct = spec(data::CT, "CT", 0);
    let mr = spec(data::MR, "MR", 1);
    let cr = spec(data::CR, "CR", 2);
    let us = spec(data::US, "US", 3);
    let sc = Spec { bits: 8, ..spec(data::SC, "OT", 4) };
    let rle = spec(data::CT, "CT", 5);
    let xa = Spec { frames: 10, ..spec(data::XA, "XA", 6) };
    vec![
        Sample { file: native(&ct, "ct"), spec: ct, flags: &["-R"] },
        Sample { file: convert("dcmconv", &["+ti"], &mr, "mr"), spec: mr, flags: &["-R"] },
        Sample { file: convert("dcmconv", &["+tb"], &cr, "cr"), spec: cr, flags: &["-R", "-xb"] },
        Sample { file: convert("dcmconv", &["+td"], &us, "us"), spec: us, flags: &["-R", "-xd"] },
        Sample { file: convert("dcmcjpeg", &["+eb"], &sc, "sc"), spec: sc, flags: &["-R", "-xy"] },
        Sample { file: convert("dcmcrle", &[], &rle, "rle"), spec: rle, flags: &["-R", "-xr"] },
        Sample { file: native(&xa, "xa"), spec: xa, flags: &["-R"] },
    ]
}

/// What the study rows must say, derived from the specs.
#[derive(Debug, Default)]
struct ExpectedStudy {
    patient_id: String,
    study_date: String,
    modalities: BTreeSet<String>,
    series: BTreeSet<String>,
    instances: i64,
}

fn expected_studies(samples: &[Sample]) -> BTreeMap<String, ExpectedStudy> {
    let mut map = BTreeMap::<String, ExpectedStudy>::new();
    for Sample { spec, .. } in samples {
        let study = map.entry(spec.study_uid.clone()).or_default();
        study.patient_id = spec.patient_id.clone();
        study.study_date = spec.study_date.clone();
        study.modalities.insert(spec.modality.to_string());
        study.series.insert(spec.series_uid.clone());
        study.instances += 1;
    }
    map
}

async fn assert_studies(gw: &TestGateway, samples: &[Sample]) {
    let index = gw.index().await;
    let studies = index.studies(gw.setup.facility.id).await.unwrap();
    index.close().await;
    let expected = expected_studies(samples);
    assert_eq!(studies.len(), expected.len(), "{studies:#?}");
    for row in &studies {
        let want = &expected[&row.study_uid];
        let modalities: Vec<_> = want.modalities.iter().map(String::as_str).collect();
        assert_eq!(row.modalities, modalities.join("\\"), "{}", row.study_uid);
        assert_eq!(row.num_instances, want.instances, "{}", row.study_uid);
        assert_eq!(row.num_series, want.series.len() as i64, "{}", row.study_uid);
        assert_eq!(row.patient_id.as_deref(), Some(want.patient_id.as_str()));
        assert_eq!(row.study_date.as_deref(), Some(want.study_date.as_str()));
    }
}

async fn varied_set_lands_once_with_exact_bytes(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let samples = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || varied_set(&dir)
    })
    .await
    .unwrap();
    let families: BTreeSet<_> = samples.iter().map(|s| s.flags).collect();
    for flags in families {
        let files: Vec<_> = samples.iter().filter(|s| s.flags == flags).map(|s| s.file.clone()).collect();
        assert_ok(&store_tls(&gw, flags, &files).await, &format!("storescu {flags:?}"));
    }

    let rows = rows(&gw).await;
    assert_eq!(rows.len(), samples.len(), "{rows:#?}");
    for Sample { spec, file, .. } in &samples {
        let row = row_of(&rows, &spec.sop_uid);
        assert_eq!(row.transfer_syntax, file_transfer_syntax(file), "{}", spec.modality);
        assert_eq!(row.sha256, common::dataset_sha256(file), "{}", spec.modality);
        assert_blob_matches(&gw.setup, row, file);
        let frames = (spec.frames > 1).then_some(i64::from(spec.frames));
        assert_eq!(row.number_of_frames, frames, "{}", spec.sop_uid);
    }
    assert_studies(&gw, &samples).await;
    gw.stop().await;
}

both_backends!(varied_set_lands_once_with_exact_bytes);

async fn identified_instances_are_refused_unless_allowed(backend: Backend) {
    let options = Options {
        accept_identified: false,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let dir = tempfile::tempdir().unwrap();
    let identified = Spec::new(data::CT, "CT", 0);
    let deidentified = Spec { deidentified: true, ..Spec::new(data::CT, "CT", 1) };
    let identified_file = data::write(&dir.path().join("id.dcm"), &identified);
    let deidentified_file = data::write(&dir.path().join("deid.dcm"), &deidentified);

    let out = store_tls(&gw, &["-v"], &[identified_file]).await;
    let text = output_text(&out);
    assert!(
        text.contains("0124") || text.contains("Not Authorized") || text.contains("NotAuthorized"),
        "storescu did not report Not Authorized:\n{text}"
    );
    assert_eq!(rows(&gw).await, vec![], "an identified instance was stored");

    let out = store_tls(&gw, &[], std::slice::from_ref(&deidentified_file)).await;
    assert_ok(&out, "storing a de-identified instance");
    let rows = rows(&gw).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].sop_instance_uid, deidentified.sop_uid);
    assert_eq!(rows[0].sha256, common::dataset_sha256(&deidentified_file));
    gw.stop().await;
}

both_backends!(identified_instances_are_refused_unless_allowed);

async fn restart_keeps_everything(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..3)
        .map(|n| data::write(&dir.path().join(format!("{n}.dcm")), &Spec::new(data::CT, "CT", n)))
        .collect();
    assert_ok(&store_tls(&gw, &[], &files).await, "first store");
    let before = rows(&gw).await;
    assert_eq!(before.len(), 3, "{before:#?}");
    let blobs_before = gw.setup.blob_files();
    assert_eq!(blobs_before.len(), 3, "{blobs_before:#?}");

    let setup = gw.stop().await;
    let gw = TestGateway::start(setup).await;
    let after = rows(&gw).await;
    assert_eq!(after, before, "index changed across the restart");
    for (row, file) in after.iter().zip(&files) {
        assert_eq!(row.sha256, common::dataset_sha256(file));
        assert_blob_matches(&gw.setup, row, file);
    }

    assert_ok(&store_tls(&gw, &[], &files[..1]).await, "storing a duplicate");
    assert_eq!(rows(&gw).await, before, "a duplicate changed the index");
    assert_eq!(gw.setup.blob_files(), blobs_before, "a duplicate added a blob");
    gw.stop().await;
}

both_backends!(restart_keeps_everything);

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
    list.extend(["-v", "-aet", aet, "-aec", aec].map(String::from));
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

/// Writes `Spec::new(class, modality, n)` as `dir/n.dcm`.
fn write_spec(dir: &Path, class: &'static str, modality: &'static str, n: u32) -> PathBuf {
    data::write(
        &dir.join(format!("{n}.dcm")),
        &Spec::new(class, modality, n),
    )
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
    let found: Vec<_> = rows
        .iter()
        .filter(|r| r.sop_instance_uid == sop_uid)
        .collect();
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
    let plain_file = write_spec(dir.path(), data::CT, "CT", 0);
    let tls_file = write_spec(dir.path(), data::MR, "MR", 1);
    let tls = gw.dcmtk_tls_args();
    let echo_plain = scu_args(&[], PLAIN_AE, GATEWAY_AE, &[], gw.plain_port, &[]);
    assert_ok(&dcmtk_async("echoscu", echo_plain).await, "plain echoscu");
    let echo_tls = scu_args(&tls, TLS_AE, GATEWAY_AE, &[], gw.tls_port, &[]);
    assert_ok(&dcmtk_async("echoscu", echo_tls).await, "TLS echoscu");
    let out = store_plain(&gw, PLAIN_AE, GATEWAY_AE, std::slice::from_ref(&plain_file)).await;
    assert_ok(&out, "plain storescu");
    assert_ok(
        &store_tls(&gw, &[], std::slice::from_ref(&tls_file)).await,
        "TLS storescu",
    );

    let rows = rows(&gw).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    for (file, uid, ae) in [
        (&plain_file, "1.2.826.0.1.3680043.10.3.1", PLAIN_AE),
        (&tls_file, "1.2.826.0.1.3680043.10.3.2", TLS_AE),
    ] {
        let row = row_of(&rows, uid);
        assert_eq!(row.calling_ae, ae);
        assert_eq!(row.sha256, common::dataset_sha256(file));
        assert_blob_matches(&gw.setup, row, file);
    }
    gw.stop().await;
}

both_backends!(plain_and_tls_echo_and_store);

/// Runs storescu with `list` and checks it was turned away, for the reason `says`
/// (so that it did not fail for some other reason, such as a bad argument).
async fn assert_turned_away(what: &str, list: Vec<String>, says: &str) {
    let out = dcmtk_async("storescu", list).await;
    assert_refused(&out, what);
    let text = output_text(&out);
    assert!(text.contains(says), "{what}: expected {says:?} in:\n{text}");
}

async fn refused_peers_store_nothing(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files = [write_spec(dir.path(), data::CT, "CT", 0)];
    let anonymous = vec![
        "+tla".into(),
        "+cf".into(),
        gw.setup.cert.ca.display().to_string(),
    ];
    let foreign = common::dcmtk_tls_args(&gw.setup.foreign_cert());
    let unenrolled = common::dcmtk_tls_args(&gw.setup.unenrolled_cert());
    let list = scu_args(&unenrolled, TLS_AE, GATEWAY_AE, &[], gw.tls_port, &files);
    assert_turned_away(
        "a CA-signed certificate never enrolled",
        list,
        "Calling AE Title Not Recognized",
    )
    .await;
    for (what, tls) in [
        ("TLS without a client certificate", anonymous),
        ("TLS with another CA's certificate", foreign),
        ("plain TCP to the TLS port", vec![]),
    ] {
        let list = scu_args(&tls, TLS_AE, GATEWAY_AE, &[], gw.tls_port, &files);
        assert_turned_away(what, list, "Association Request Failed").await;
    }
    for (aet, aec, says) in [
        ("STRANGER", GATEWAY_AE, "Calling AE Title Not Recognized"),
        (PLAIN_AE, "NOTUS", "Called AE Title Not Recognized"),
    ] {
        let list = scu_args(&[], aet, aec, &[], gw.plain_port, &files);
        assert_turned_away(&format!("plain {aet} -> {aec}"), list, says).await;
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

/// A generated file and the storescu flags that send it unchanged.
struct Sample {
    spec: Spec,
    file: PathBuf,
    flags: &'static [&'static str],
}

/// Writes `spec`, converts it with `tool[0]` and flags `tool[1..]` (if any) and pairs
/// it with the storescu flags that send it.
fn sample(dir: &Path, spec: Spec, tool: &[&str], flags: &'static [&'static str]) -> Sample {
    let name = spec.sop_uid.rsplit('.').next().unwrap().to_string();
    let native = data::write(&dir.join(format!("{name}.native.dcm")), &spec);
    let file = match tool.split_first() {
        Some((tool, args)) => data::convert(tool, args, &native, &dir.join(format!("{name}.dcm"))),
        None => native,
    };
    Sample { spec, file, flags }
}

/// One instance per transfer-syntax family, in three studies (instance n in study
/// n % 3); the study date is made per study so that the study row's date is defined.
///
/// storescu sends an uncompressed file in whatever uncompressed syntax the gateway
/// accepts, and the gateway takes Explicit VR Little Endian whenever it is proposed;
/// so implicit VR goes with `-xi` (propose only it) and big endian with `-xb`.
fn varied_set(dir: &Path) -> Vec<Sample> {
    let s = |class, modality, n: u32| Spec {
        study_date: format!("202402{:02}", n % 3 + 1),
        ..Spec::new(class, modality, n)
    };
    let mut sc = s(data::SC, "OT", 4);
    sc.bits = 8;
    let mut xa = s(data::XA, "XA", 6);
    xa.frames = 10;
    vec![
        sample(dir, s(data::CT, "CT", 0), &[], &["-R"]),
        sample(
            dir,
            s(data::MR, "MR", 1),
            &["dcmconv", "+ti"],
            &["-R", "-xi"],
        ),
        sample(
            dir,
            s(data::CR, "CR", 2),
            &["dcmconv", "+tb"],
            &["-R", "-xb"],
        ),
        sample(
            dir,
            s(data::US, "US", 3),
            &["dcmconv", "+td"],
            &["-R", "-xd"],
        ),
        // +un keeps the SOP Instance UID (lossy JPEG gets a new one by default).
        sample(dir, sc, &["dcmcjpeg", "+eb", "+un"], &["-R", "-xy"]),
        sample(dir, s(data::CT, "CT", 5), &["dcmcrle"], &["-R", "-xr"]),
        sample(dir, xa, &[], &["-R"]),
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
        assert_eq!(
            row.num_series,
            want.series.len() as i64,
            "{}",
            row.study_uid
        );
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
        let files: Vec<_> = samples
            .iter()
            .filter(|s| s.flags == flags)
            .map(|s| s.file.clone())
            .collect();
        assert_ok(
            &store_tls(&gw, flags, &files).await,
            &format!("storescu {flags:?}"),
        );
    }

    let rows = rows(&gw).await;
    assert_eq!(rows.len(), samples.len(), "{rows:#?}");
    for Sample { spec, file, .. } in &samples {
        let row = row_of(&rows, &spec.sop_uid);
        let ts = file_transfer_syntax(file);
        assert_eq!(row.transfer_syntax, ts, "{}", spec.sop_uid);
        assert_eq!(row.sha256, common::dataset_sha256(file), "{ts}");
        assert_blob_matches(&gw.setup, row, file);
        let frames = (spec.frames > 1).then_some(i64::from(spec.frames));
        assert_eq!(row.number_of_frames, frames, "{}", spec.sop_uid);
    }
    assert_studies(&gw, &samples).await;
    gw.stop().await;
}

both_backends!(varied_set_lands_once_with_exact_bytes);

/// `spec` written so that its data set is byte for byte what storescu sends: DCMTK
/// re-encodes sequences with explicit lengths on the wire, dicom-object writes them
/// with undefined lengths, so the file goes through `dcmconv` (explicit by default).
async fn dcmtk_encoded(dir: &Path, name: &str, spec: &Spec) -> PathBuf {
    let native = data::write(&dir.join(format!("{name}.native.dcm")), spec);
    let out = dir.join(format!("{name}.dcm"));
    tokio::task::spawn_blocking(move || data::convert("dcmconv", &[], &native, &out))
        .await
        .unwrap()
}

async fn identified_instances_are_refused_unless_allowed(backend: Backend) {
    let options = Options {
        accept_identified: false,
        ..Options::default()
    };
    let gw = TestGateway::spawn_with(backend, options).await;
    let dir = tempfile::tempdir().unwrap();
    let deidentified = Spec {
        deidentified: true,
        ..Spec::new(data::CT, "CT", 1)
    };
    let identified_file = write_spec(dir.path(), data::CT, "CT", 0);
    let deidentified_file = dcmtk_encoded(dir.path(), "deid", &deidentified).await;

    // DCMTK 3.6.7 does not name 0124 for C-STORE: "Unknown Status: 0x124".
    let text = output_text(&store_tls(&gw, &[], &[identified_file]).await);
    let lower = text.to_ascii_lowercase();
    assert!(
        ["0x124", "0124", "not authorized", "notauthorized"]
            .iter()
            .any(|s| lower.contains(s)),
        "storescu did not report status 0124 (Not Authorized):\n{text}"
    );
    assert_eq!(rows(&gw).await, vec![], "an identified instance was stored");
    assert_eq!(gw.setup.blob_files(), Vec::<PathBuf>::new());
    assert_eq!(gw.setup.temp_files(), Vec::<PathBuf>::new());

    let out = store_tls(&gw, &[], std::slice::from_ref(&deidentified_file)).await;
    assert_ok(&out, "storing a de-identified instance");
    let rows = rows(&gw).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].sop_instance_uid, deidentified.sop_uid);
    assert_eq!(rows[0].sha256, common::dataset_sha256(&deidentified_file));
    let index = gw.index().await;
    let studies = index.studies(gw.setup.facility.id).await.unwrap();
    assert_eq!(
        studies[0].name_blind_index.as_deref(),
        Some(data::BLIND_INDEX),
        "blind index indexed"
    );
    index.close().await;
    gw.stop().await;
}

both_backends!(identified_instances_are_refused_unless_allowed);

async fn restart_keeps_everything(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..3)
        .map(|n| write_spec(dir.path(), data::CT, "CT", n))
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
    for (n, file) in (0..3).zip(&files) {
        let row = row_of(&after, &Spec::new(data::CT, "CT", n).sop_uid);
        assert_eq!(row.sha256, common::dataset_sha256(file));
        assert_blob_matches(&gw.setup, row, file);
    }

    assert_ok(
        &store_tls(&gw, &[], &files[..1]).await,
        "storing a duplicate",
    );
    assert_eq!(rows(&gw).await, before, "a duplicate changed the index");
    assert_eq!(
        gw.setup.blob_files(),
        blobs_before,
        "a duplicate added a blob"
    );
    gw.stop().await;
}

both_backends!(restart_keeps_everything);

//! The client's re-identifying DICOMweb proxy end to end: DCMTK storescu (modality)
//! -> client -> gateway, then the Python `dicomweb-client` package (and plain HTTP
//! for the raw bytes) against the proxy with a clinician's gateway credentials: real
//! names and original UIDs in QIDO-RS, name search by the real name, WADO-RS
//! instances re-identified equal to what the modality sent, the local-only study
//! from the spool, frames, rendered images and thumbnails passed through to the
//! gateway's DICOMweb (decoded here: the stored gradient, at the asked viewport), 401
//! for a wrong password, nothing for another facility's user. Then Debian's headless
//! Chromium showing a `/rendered` URL of the proxy, and the proxy over HTTPS with the
//! edge certificate (`[web] tls`).
//!
//! Needs `python3` with dicomweb-client, site-wide or in `target/python`, and
//! `chromium` (`scripts/install-deps.sh`; the browser test says SKIPPED without it).

mod common;

use std::path::Path;
use std::time::Duration;

use client::app::Client;
use client::config::{Config as ClientConfig, Destination, Rule, WebConfig};
use common::{
    GatewaySide, IMAGE_SIZE, RunningGateway, UID_ROOT, client_config, free_port, patient, python,
    storescu, write_image_instance, write_instance,
};
use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use gateway::auth::{AuthSettings, Password, Role, Username, hash_password};
use gateway::domain::FacilityName;
use tokio::sync::oneshot;

const PASSWORD: &str = "correct horse battery";
const OTHER_PASSWORD: &str = "another facility's pass";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/web_proxy/client.py");

fn read_object(path: &Path) -> InMemDicomObject {
    OpenFileOptions::new().open_file(path).unwrap().into_inner()
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// A rendered image decoded, after checking that its first bytes are what
/// `content_type` says (PNG or JPEG).
fn decoded(content_type: &str, body: &[u8]) -> image::DynamicImage {
    let format = match content_type {
        "image/png" => {
            assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
            image::ImageFormat::Png
        }
        "image/jpeg" => {
            assert!(body.starts_with(&[0xFF, 0xD8, 0xFF]), "not a JPEG");
            image::ImageFormat::Jpeg
        }
        other => panic!("{other} is not a rendered image type"),
    };
    image::load_from_memory_with_format(body, format).expect("a decodable image")
}

/// `picture` is the fixtures' gradient: black on the left, white on the right,
/// rising steadily, the same on every row (JPEG's small errors allowed).
fn assert_gradient(picture: &image::DynamicImage, what: &str) {
    let grey = picture.to_luma8();
    let (width, height) = grey.dimensions();
    for y in [0, height / 2, height - 1] {
        let at = |x: u32| i32::from(grey.get_pixel(x, y)[0]);
        assert!(at(0) < 24, "{what}: the left is not black ({})", at(0));
        assert!(
            at(width - 1) > 231,
            "{what}: the right is not white ({})",
            at(width - 1)
        );
        let quarters: Vec<i32> = (0..=4).map(|q| at((width - 1) * q / 4)).collect();
        assert!(
            quarters.windows(2).all(|w| w[1] > w[0] + 40),
            "{what}: row {y} does not rise left to right: {quarters:?}"
        );
    }
}

/// The bodies of the parts of a `multipart/related` answer.
fn parts(content_type: &str, body: &[u8]) -> Vec<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("a boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut out = Vec::new();
    let mut at = 0;
    let find = |from: usize, needle: &[u8]| {
        text[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    while let Some(start) = find(at, delimiter.as_bytes()) {
        let after = start + delimiter.len();
        if text[after..].starts_with(b"--") {
            break;
        }
        let head_end = find(after, b"\r\n\r\n").expect("part headers") + 4;
        let next = find(head_end, format!("\r\n{delimiter}").as_bytes()).expect("a closing");
        out.push(text[head_end..next].to_vec());
        at = next + 2;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dicomweb_client_sees_real_names_through_the_proxy() {
    let gw = GatewaySide::prepare().await;
    let running = gw.start().await;
    let dir = tempfile::tempdir().unwrap();
    let edge = free_port();
    let mut config = client_config(dir.path(), &gw, edge);
    config.gateway.admin_url = Some(format!("https://{}", gw.config.https.listen));
    config.web = Some(WebConfig {
        listen: "127.0.0.1:0".into(),
        ..WebConfig::default()
    });
    config.sharing.rules.push(Rule {
        calling_ae: None,
        modality: None,
        study_description: Some("*research*".into()),
        action: Destination::Local,
    });
    client::keyfile::create(&config.key_file()).unwrap();

    let index = gw.index().await;
    let settings = AuthSettings::default();
    let hash = |p: &str| hash_password(&settings, &Password::new(p)).unwrap();
    index
        .create_user(
            gw.facility_id,
            &Username::parse("dr.house").unwrap(),
            Role::Clinician,
            &hash(PASSWORD),
        )
        .await
        .unwrap();
    let other = index
        .create_facility(&FacilityName::parse("elsewhere").unwrap(), false)
        .await
        .unwrap();
    index
        .create_user(
            other.id,
            &Username::parse("dr.other").unwrap(),
            Role::Clinician,
            &hash(OTHER_PASSWORD),
        )
        .await
        .unwrap();
    index.close().await;

    let app = Client::build(&config).await.unwrap();
    let web = app.web_port().expect("[web] listen turns the proxy on");
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));

    let (p1, p2) = (patient(1), patient(2));
    let mut files = Vec::new();
    for i in 1..=2 {
        files.push(write_instance(dir.path(), &p1, 1, i, "CT chest"));
    }
    files.push(write_instance(dir.path(), &p2, 2, 1, "CT head"));
    // Kept local-only by the sharing rule: found and served from the client's store.
    files.push(write_instance(dir.path(), &p2, 3, 1, "Trial RESEARCH arm"));
    storescu(edge, files.clone()).await;
    assert_eq!(gw.wait_for(3, Duration::from_secs(30)).await, 3);

    let base = format!("http://127.0.0.1:{web}/dicom-web");
    let script_base = base.clone();
    let name = p1.name.clone();
    let out = tokio::task::spawn_blocking(move || {
        python()
            .args([
                SCRIPT,
                &script_base,
                "dr.house",
                PASSWORD,
                &name,
                "dr.other",
                OTHER_PASSWORD,
            ])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client.py failed:\n{stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    let study = |n: u32| format!("{UID_ROOT}.1.{n}");
    let url = |n: u32| format!("{base}/studies/{}", study(n));
    assert_eq!(
        seen["studies"],
        serde_json::json!([
            [p1.name, p1.id, study(1), 2, url(1)],
            [p2.name, p2.id, study(2), 1, url(2)],
            [p2.name, p2.id, study(3), 1, url(3)],
        ]),
        "QIDO-RS shows real names and original UIDs, local-only study included"
    );
    assert_eq!(seen["by_name"], serde_json::json!([study(1)]));
    assert_eq!(seen["by_wildcard"], serde_json::json!([study(1)]));
    assert_eq!(seen["paged"], 1);
    assert_eq!(
        seen["series"],
        serde_json::json!([format!("{UID_ROOT}.2.1")])
    );
    assert_eq!(
        seen["instances"],
        serde_json::json!([format!("{UID_ROOT}.3.1.1"), format!("{UID_ROOT}.3.1.2")])
    );
    assert_eq!(
        seen["instance"],
        serde_json::json!([p1.name, p1.id, study(1), format!("{UID_ROOT}.3.1.1"), false])
    );
    assert_eq!(seen["study_retrieved"], seen["instances"]);
    assert_eq!(
        seen["metadata"],
        serde_json::json!([
            [p1.name, format!("{UID_ROOT}.3.1.1"), false],
            [p1.name, format!("{UID_ROOT}.3.1.2"), false],
        ])
    );
    assert_eq!(seen["wrong_password"], 401, "{seen}");
    assert!(
        seen["wrong_password_challenge"]
            .as_str()
            .is_some_and(|c| c.starts_with("Basic")),
        "{seen}"
    );
    // The gateway refuses a user of another facility on this facility's certificate.
    assert_eq!(
        seen["other_facility"], 401,
        "another facility's user sees nothing: {seen}"
    );

    // The raw bytes: each part re-identified equals what the modality sent (the
    // gateway's study), or is the spooled original (the local-only study).
    let http = reqwest::Client::new();
    for (n, originals) in [(1, &files[..2]), (3, &files[3..])] {
        let response = http
            .get(url(n))
            .basic_auth("dr.house", Some(PASSWORD))
            .header("Accept", "multipart/related; type=\"application/dicom\"")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.bytes().await.unwrap();
        let got = parts(&content_type, &body);
        assert_eq!(got.len(), originals.len(), "study {n}");
        for (k, part) in got.iter().enumerate() {
            let path = dir.path().join(format!("got-{n}-{k}.dcm"));
            std::fs::write(&path, part).unwrap();
            let received = read_object(&path);
            let sop = text(&received, tags::SOP_INSTANCE_UID);
            let original = originals
                .iter()
                .map(|p| read_object(p))
                .find(|o| text(o, tags::SOP_INSTANCE_UID) == sop)
                .unwrap_or_else(|| panic!("{sop} is not an original SOP Instance UID"));
            assert_eq!(received, original, "{sop} is restored exactly");
        }
    }
    // Frames are passed through to the gateway's DICOMweb (UIDs mapped): the pixels
    // the modality sent.
    let frame = http
        .get(format!(
            "{}/series/{UID_ROOT}.2.1/instances/{UID_ROOT}.3.1.2/frames/1",
            url(1)
        ))
        .basic_auth("dr.house", Some(PASSWORD))
        .header(
            "Accept",
            "multipart/related; type=\"application/octet-stream\"",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(frame.status(), 200);
    let content_type = frame.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = frame.bytes().await.unwrap();
    assert_eq!(parts(&content_type, &body), vec![vec![2u8; 512]]);
    // Rendered images and thumbnails are the gateway's, passed through with the UIDs
    // mapped (a wrong mapping would be 404): a renderable image (study 4) comes back
    // as the stored gradient, in the asked format and viewport.
    let image = write_image_instance(dir.path(), &p1, 4, 1, "CT abdomen");
    storescu(edge, vec![image]).await;
    assert_eq!(gw.wait_for(4, Duration::from_secs(30)).await, 4);
    let (columns, rows) = (u32::from(IMAGE_SIZE.0), u32::from(IMAGE_SIZE.1));
    let series4 = format!("{}/series/{UID_ROOT}.2.4", url(4));
    let instance4 = format!("{series4}/instances/{UID_ROOT}.3.4.1");
    for (target, accept, size) in [
        // Whole size when no viewport is asked for, PNG or JPEG as Accept says.
        (
            format!("{instance4}/rendered"),
            "image/png",
            (columns, rows),
        ),
        (
            format!("{instance4}/rendered"),
            "image/jpeg",
            (columns, rows),
        ),
        // `viewport` is honoured, the aspect ratio kept.
        (
            format!("{instance4}/rendered?viewport=64,64"),
            "image/jpeg",
            (64, 32),
        ),
        (
            format!("{instance4}/frames/1/rendered?viewport=128,128"),
            "image/png",
            (128, 64),
        ),
        (
            format!("{series4}/rendered?viewport=100,200"),
            "image/png",
            (100, 50),
        ),
        (
            format!("{instance4}/thumbnail?viewport=64,64"),
            "image/png",
            (64, 32),
        ),
        (
            format!("{series4}/thumbnail?viewport=64,64"),
            "image/jpeg",
            (64, 32),
        ),
        (
            format!("{}/thumbnail?viewport=32,32", url(4)),
            "image/png",
            (32, 16),
        ),
    ] {
        let answer = http
            .get(&target)
            .basic_auth("dr.house", Some(PASSWORD))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{target}");
        let content_type = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(content_type, accept, "{target}");
        let picture = decoded(&content_type, &answer.bytes().await.unwrap());
        assert_eq!(
            (picture.width(), picture.height()),
            size,
            "{target}: the viewport"
        );
        assert_gradient(&picture, &target);
    }
    // Without credentials the proxy asks for them; it does not pass the request on.
    let anonymous = http
        .get(format!("{instance4}/rendered"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    // The gateway's refusal reaches the viewer as it was said: the fixtures of studies
    // 1 to 3 carry no Photometric Interpretation, so the gateway finds the instance
    // and answers that it cannot render it (422).
    let refused = http
        .get(format!(
            "{}/series/{UID_ROOT}.2.1/instances/{UID_ROOT}.3.1.2/rendered",
            url(1)
        ))
        .basic_auth("dr.house", Some(PASSWORD))
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("cannot render"), "{text}");

    let missing = http
        .get(format!("{base}/studies/1.2.3.4.404"))
        .basic_auth("dr.house", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let anonymous = http.get(format!("{base}/studies")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // With the gateway gone, credentials cannot be judged: 502, not 401.
    running.stop().await;
    let down = http
        .get(format!("{base}/studies"))
        .basic_auth("dr.house", Some("not checked yet"))
        .send()
        .await
        .unwrap();
    assert_eq!(down.status(), 502);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}

/// A gateway with the clinician `dr.house` ([`PASSWORD`]), and a client with the proxy
/// on (after `edit` changed its config), serving.
struct Serving {
    gw: GatewaySide,
    gateway: RunningGateway,
    dir: tempfile::TempDir,
    config: ClientConfig,
    /// The proxy's port.
    web: u16,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Serving {
    async fn start(edit: impl FnOnce(&mut ClientConfig, &Path)) -> Serving {
        let gw = GatewaySide::prepare().await;
        let gateway = gw.start().await;
        let dir = tempfile::tempdir().unwrap();
        let mut config = client_config(dir.path(), &gw, free_port());
        config.gateway.admin_url = Some(format!("https://{}", gw.config.https.listen));
        config.web = Some(WebConfig {
            listen: "127.0.0.1:0".into(),
            ..WebConfig::default()
        });
        edit(&mut config, dir.path());
        client::keyfile::create(&config.key_file()).unwrap();
        let index = gw.index().await;
        let hash = hash_password(&AuthSettings::default(), &Password::new(PASSWORD)).unwrap();
        index
            .create_user(
                gw.facility_id,
                &Username::parse("dr.house").unwrap(),
                Role::Clinician,
                &hash,
            )
            .await
            .unwrap();
        index.close().await;
        let app = Client::build(&config).await.unwrap();
        let web = app.web_port().expect("[web] listen turns the proxy on");
        let (stop, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Serving {
            gw,
            gateway,
            dir,
            config,
            web,
            stop,
            task,
        }
    }

    /// The edge port (where modalities store).
    fn edge_port(&self) -> u16 {
        let (_, port) = self.config.edge.listen.rsplit_once(':').unwrap();
        port.parse().unwrap()
    }

    async fn finish(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        self.gateway.stop().await;
    }
}

/// A process group (a browser and its helpers) killed when dropped.
struct Group(Option<rustix::process::Pid>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            // Gone already once the browser has exited; nothing to do then.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Debian's `chromium`, if installed.
fn chromium() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("chromium"))
        .find(|p| p.is_file())
}

/// The issue's browser check: headless Chromium opens a `/rendered` URL of the proxy
/// (credentials in the URL, sent when the proxy's 401 asks for them) and shows the
/// image: its screenshot holds the stored gradient at the image's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn headless_chromium_shows_a_rendered_image_through_the_proxy() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED headless_chromium_shows_a_rendered_image_through_the_proxy: chromium is not installed (scripts/install-deps.sh)"
        );
        return;
    };
    let serving = Serving::start(|_, _| {}).await;
    let image = write_image_instance(serving.dir.path(), &patient(1), 4, 1, "CT abdomen");
    storescu(serving.edge_port(), vec![image]).await;
    assert_eq!(serving.gw.wait_for(1, Duration::from_secs(30)).await, 1);

    let mut url = reqwest::Url::parse(&format!(
        "http://127.0.0.1:{}/dicom-web/studies/{UID_ROOT}.1.4/series/{UID_ROOT}.2.4/instances/{UID_ROOT}.3.4.1/rendered",
        serving.web
    ))
    .unwrap();
    url.set_username("dr.house").unwrap();
    url.set_password(Some(PASSWORD)).unwrap();
    let profile = serving.dir.path().join("chromium-profile");
    let screenshot = serving.dir.path().join("screenshot.png");
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-dev-shm-usage",
            "--disable-extensions",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=640,480",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let child = command.spawn().expect("chromium starts");
    let _group = Group(
        child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
    );
    // Generous: a cold start on a loaded machine; nothing is timed beyond this bound.
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("chromium finished within 3 minutes")
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "chromium failed:\n{log}");
    let shot = image::open(&screenshot)
        .unwrap_or_else(|e| panic!("no screenshot ({e}):\n{log}"))
        .to_luma8();
    assert_eq!(shot.dimensions(), (640, 480), "the window size");

    // Rows crossed by the image are a ramp: many grey levels; the page around it is
    // one colour (an error page would be text on a plain background).
    let (columns, rows) = (u32::from(IMAGE_SIZE.0), u32::from(IMAGE_SIZE.1));
    let ramp_rows: Vec<u32> = (0..shot.height())
        .filter(|&y| {
            let mut levels = [false; 256];
            for x in 0..shot.width() {
                levels[usize::from(shot.get_pixel(x, y)[0])] = true;
            }
            levels.iter().filter(|l| **l).count() >= 100
        })
        .collect();
    assert!(
        ramp_rows.len().abs_diff(rows as usize) <= 2,
        "{} rows show the gradient, the image has {rows}",
        ramp_rows.len()
    );
    // Along the middle such row: away from the background, a steady rise from left
    // to right over about the image's width.
    let y = ramp_rows[ramp_rows.len() / 2];
    let at = |x: u32| i32::from(shot.get_pixel(x, y)[0]);
    let background = at(0);
    let image_columns: Vec<u32> = (0..shot.width())
        .filter(|&x| (at(x) - background).abs() > 24)
        .collect();
    let (first, last) = (image_columns[0], image_columns[image_columns.len() - 1]);
    assert_eq!(
        image_columns.len() as u32,
        last - first + 1,
        "the image is one block on row {y}"
    );
    assert!(
        (160..=columns).contains(&(last - first + 1)),
        "{} columns of the image on row {y}, of {columns}",
        last - first + 1
    );
    assert!(
        (first..=last - 8)
            .step_by(8)
            .all(|x| at(x + 8) >= at(x) - 4),
        "row {y} does not rise left to right"
    );
    assert!(at(last) - at(first) > 120, "row {y} is not a ramp");
    serving.finish().await;
}

/// `[web] tls = true`: the proxy answers HTTPS with the edge certificate (a caller
/// trusting the edge CA searches, and Retrieve URLs say https), and plain HTTP to
/// that port gets no answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_proxy_serves_https_with_the_edge_certificate() {
    let ca = gateway::pki::Ca::create("Facility edge CA").unwrap();
    let serving = Serving::start(|config, dir| {
        let certs = dir.join("edge-certs");
        std::fs::create_dir_all(&certs).unwrap();
        let (crt, key) = ca
            .issue_server(&["localhost".to_string()])
            .unwrap()
            .write(&certs, "edge")
            .unwrap();
        let ca_file = certs.join("ca.crt");
        std::fs::write(&ca_file, ca.cert_pem()).unwrap();
        config.edge.tls_cert = Some(crt);
        config.edge.tls_key = Some(key);
        config.edge.tls_ca = Some(ca_file);
        config.web.as_mut().unwrap().tls = true;
    })
    .await;
    let (modality_key, modality_crt) = {
        let certs = serving.dir.path().join("edge-certs");
        let (crt, key) = ca
            .issue_client(common::MODALITY_AE, None)
            .unwrap()
            .write(&certs, "modality")
            .unwrap();
        (key, crt)
    };
    // One study, stored over the edge's DICOM TLS.
    let file = write_image_instance(serving.dir.path(), &patient(7), 7, 1, "CT");
    let edge = serving.edge_port().to_string();
    let ca_file = serving.config.edge.tls_ca.clone().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(common::dcmtk_path("storescu"))
            .env("TCP_NODELAY", "1")
            .arg("+tls")
            .args([&modality_key, &modality_crt])
            .arg("+cf")
            .arg(&ca_file)
            .args(["-aet", common::MODALITY_AE, "-aec", "PACS_CLIENT"])
            .args(["localhost", &edge])
            .arg(file)
            .output()
            .expect("storescu")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "storescu over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(serving.gw.wait_for(1, Duration::from_secs(30)).await, 1);

    let trusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}/dicom-web", serving.web);
    let found = trusting
        .get(format!("{base}/studies?PatientID={}", patient(7).id))
        .basic_auth("dr.house", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    let studies: serde_json::Value = found.json().await.unwrap();
    let study = format!("{UID_ROOT}.1.7");
    assert_eq!(
        studies[0]["0020000D"]["Value"][0], study,
        "the original Study Instance UID: {studies}"
    );
    assert_eq!(
        studies[0]["00081190"]["Value"][0],
        format!("{base}/studies/{study}"),
        "the Retrieve URL names the proxy over https"
    );
    assert_eq!(studies.as_array().map(Vec::len), Some(1));
    // Pixels through HTTPS too.
    let rendered = trusting
        .get(format!(
            "{base}/studies/{study}/series/{UID_ROOT}.2.7/instances/{UID_ROOT}.3.7.1/rendered"
        ))
        .basic_auth("dr.house", Some(PASSWORD))
        .header("Accept", "image/png")
        .send()
        .await
        .unwrap();
    assert_eq!(rendered.status(), 200);
    let picture = decoded("image/png", &rendered.bytes().await.unwrap());
    assert_gradient(&picture, "rendered over https");

    // A caller that does not trust the edge CA does not get through.
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .unwrap();
    let refused = untrusting
        .get(format!("{base}/studies"))
        .basic_auth("dr.house", Some(PASSWORD))
        .send()
        .await;
    assert!(refused.is_err(), "an unknown certificate was trusted");
    // Plain HTTP to the HTTPS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/dicom-web/studies",
            serving.web
        ))
        .basic_auth("dr.house", Some(PASSWORD))
        .timeout(Duration::from_secs(60))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP was answered: {:?}",
        plain.map(|r| r.status())
    );
    serving.finish().await;
}

//! Orthanc as the comparison peer: started from its Debian package with its default
//! SQLite index and C-FIND open to any AE (and, when asked, its DICOMweb plugin from
//! Debian's `orthanc-dicomweb`), loaded through `POST /instances` with small DICOM
//! files (no pixel data) carrying the same logical data as the index.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use futures::StreamExt;

use super::data::{Dataset, Series, Study};
use crate::bench::{free_port, wait_for_port};

/// Orthanc's AE title.
pub const ORTHANC_AE: &str = "ORTHANC";
/// Uploads in flight at once.
const CONCURRENT_UPLOADS: usize = 4;
/// Where Debian's `orthanc-dicomweb` installs the plugin.
pub const DICOMWEB_PLUGIN: &str = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

/// A running Orthanc.
pub struct Orthanc {
    child: Child,
    /// DICOM port.
    pub dicom_port: u16,
    /// HTTP (REST) port.
    pub http_port: u16,
    _dir: tempfile::TempDir,
}

impl Orthanc {
    /// Starts Orthanc in a fresh directory under `work`, with the DICOMweb plugin
    /// (under `/dicom-web/` on the HTTP port) when `dicomweb`; `None` when the
    /// `Orthanc` binary is not installed.
    pub fn start(work: &Path, dicomweb: bool) -> Result<Option<Orthanc>> {
        let installed = Command::new("Orthanc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            return Ok(None);
        }
        let dir = tempfile::tempdir_in(work)?;
        let (dicom_port, http_port) = (free_port()?, free_port()?);
        let storage = dir.path().join("storage");
        let config = dir.path().join("orthanc.json");
        let plugins = if dicomweb {
            if !Path::new(DICOMWEB_PLUGIN).exists() {
                bail!("{DICOMWEB_PLUGIN} missing: apt-get install -y orthanc-dicomweb");
            }
            format!("{DICOMWEB_PLUGIN:?}")
        } else {
            String::new()
        };
        std::fs::write(
            &config,
            format!(
                r#"{{"Name":"findbench","StorageDirectory":{storage:?},"IndexDirectory":{storage:?},
"DicomAet":"{ORTHANC_AE}","DicomPort":{dicom_port},"HttpPort":{http_port},"RemoteAccessAllowed":false,
"AuthenticationEnabled":false,"DicomCheckCalledAet":false,"DicomAlwaysAllowFind":true,
"DicomAlwaysAllowEcho":true,"StorageCompression":false,"LimitFindResults":0,
"LimitFindInstances":0,"SaveJobs":false,"Plugins":[{plugins}]}}"#
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("orthanc.log"))?;
        let child = Command::new("Orthanc")
            .env("TCP_NODELAY", "1")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("start Orthanc")?;
        let mut orthanc = Orthanc {
            child,
            dicom_port,
            http_port,
            _dir: dir,
        };
        if let Err(e) = wait_for_port(dicom_port).and_then(|()| wait_for_port(http_port)) {
            let _ = orthanc.child.kill();
            return Err(e.context("Orthanc did not start"));
        }
        Ok(Some(orthanc))
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// [`Orthanc::load`] with a progress line every 5,000 instances and a summary
    /// line; returns the instances sent.
    pub async fn load_reporting(&self, data: &Dataset) -> Result<u64> {
        let (sent, took) = self
            .load(data, |n| {
                if n % 5000 == 0 {
                    println!("  Orthanc: {n} instances");
                }
            })
            .await?;
        println!(
            "Orthanc loaded {sent} instances through POST /instances in {:.1} s ({:.0} inst/s)",
            took.as_secs_f64(),
            sent as f64 / took.as_secs_f64().max(1e-9)
        );
        Ok(sent)
    }

    /// Uploads every instance of `data` (facility 0 only, so that Orthanc holds
    /// exactly what the benchmark user of the gateway can see); returns the instances
    /// sent and the wall time.
    pub async fn load(
        &self,
        data: &Dataset,
        mut progress: impl FnMut(u64),
    ) -> Result<(u64, Duration)> {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/instances", self.http_port);
        let start = Instant::now();
        let items = data
            .studies
            .iter()
            .filter(|s| s.facility == 0)
            .flat_map(|s| s.series.iter().map(move |r| (s, r)))
            .flat_map(|(s, r)| (0..r.instances).map(move |k| (s, r, k)));
        let mut uploads = futures::stream::iter(items)
            .map(|(s, r, k)| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let body = instance_file(data, s, r, k)?;
                    let rsp = client.post(&url).body(body).send().await?;
                    if !rsp.status().is_success() {
                        bail!("Orthanc refused an instance: {}", rsp.status());
                    }
                    Ok(())
                }
            })
            .buffer_unordered(CONCURRENT_UPLOADS);
        let mut sent = 0;
        while let Some(done) = uploads.next().await {
            done?;
            sent += 1;
            if sent % 1000 == 0 {
                progress(sent);
            }
        }
        Ok((sent, start.elapsed()))
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Part-10 file (Explicit VR Little Endian, no pixel data) for instance `k` of
/// `series` in `study`.
pub fn instance_file(data: &Dataset, study: &Study, series: &Series, k: u64) -> Result<Vec<u8>> {
    let patient = &data.patients[study.patient];
    let instance = data.instance(series, k);
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let obj = InMemDicomObject::from_element_iter([
        text(tags::SOP_CLASS_UID, VR::UI, instance.sop_class),
        text(tags::SOP_INSTANCE_UID, VR::UI, &instance.uid),
        text(tags::STUDY_DATE, VR::DA, &study.date),
        text(tags::STUDY_TIME, VR::TM, &study.time),
        text(tags::ACCESSION_NUMBER, VR::SH, &study.accession),
        text(tags::MODALITY, VR::CS, series.modality),
        text(tags::STUDY_DESCRIPTION, VR::LO, study.description),
        text(tags::SERIES_DESCRIPTION, VR::LO, &series.description),
        text(tags::PATIENT_NAME, VR::PN, &patient.name),
        text(tags::PATIENT_ID, VR::LO, &patient.id),
        text(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &study.uid),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series.uid),
        text(tags::SERIES_NUMBER, VR::IS, &series.number.to_string()),
        text(tags::INSTANCE_NUMBER, VR::IS, &instance.number.to_string()),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(instance.sop_class)
        .media_storage_sop_instance_uid(instance.uid.as_str())
        .transfer_syntax("1.2.840.10008.1.2.1");
    let mut out = Vec::with_capacity(1024);
    obj.with_meta(meta)?.write_all(&mut out)?;
    Ok(out)
}

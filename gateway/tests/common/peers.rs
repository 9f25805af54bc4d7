//! Our own DIMSE requestor (`dimse::scu`) pointed at a test gateway: associations over
//! DICOM TLS with the facility certificate or over plain TCP with [`PLAIN_AE`], data
//! sets as raw bytes (to cut, pad or mislabel them), and polling for cleanup that
//! happens asynchronously.

use std::path::Path;
use std::time::{Duration, Instant};

use dimse::command::CStoreRsp;
use dimse::scu::{ClientTls, Proposal, ScuAssociation, ScuOptions};
use dimse::{DimseError, Status};
use rustls::pki_types::ServerName;

use super::data::{self, Spec};
use super::{FacilityCert, GATEWAY_AE, PLAIN_AE, TestGateway};

/// Which of the gateway's DICOM ports to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// DICOM TLS with the facility's client certificate.
    Tls,
    /// Plain DICOM, calling as [`PLAIN_AE`].
    Plain,
}

/// CT Image Storage in Explicit VR Little Endian (what [`data::write`] produces).
pub fn ct_proposal() -> Proposal {
    Proposal {
        abstract_syntax: data::CT.into(),
        transfer_syntaxes: vec![data::EXPLICIT_LE.into()],
    }
}

/// A de-identified 64x64 CT instance with UIDs made unique by `n`.
pub fn deidentified_ct(n: u32) -> Spec {
    Spec {
        deidentified: true,
        ..Spec::new(data::CT, "CT", n)
    }
}

/// Requestor options for DICOM TLS with `cert` (server name `localhost`).
pub fn tls_options(cert: &FacilityCert) -> ScuOptions {
    let roots = dimse::tls::load_certs_file(&cert.ca).expect("gateway CA");
    let chain = dimse::tls::load_certs_file(&cert.cert).expect("facility certificate");
    let key = dimse::tls::load_private_key_file(&cert.key).expect("facility key");
    let config = dimse::tls::client_config(roots, Some((chain, key))).expect("TLS client config");
    ScuOptions {
        tls: Some(ClientTls {
            config,
            server_name: ServerName::try_from("localhost").expect("name").to_owned(),
        }),
        ..ScuOptions::new("FACILITY_FWD", GATEWAY_AE)
    }
}

/// Requestor options for the plain port, calling as [`PLAIN_AE`].
pub fn plain_options() -> ScuOptions {
    ScuOptions::new(PLAIN_AE, GATEWAY_AE)
}

/// `host:port` of one of the gateway's DICOM ports.
pub fn addr(gw: &TestGateway, via: Via) -> String {
    match via {
        Via::Tls => format!("127.0.0.1:{}", gw.tls_port),
        Via::Plain => format!("127.0.0.1:{}", gw.plain_port),
    }
}

/// The default options for `via`.
pub fn options(gw: &TestGateway, via: Via) -> ScuOptions {
    match via {
        Via::Tls => tls_options(&gw.setup.cert),
        Via::Plain => plain_options(),
    }
}

/// Associates with the gateway, proposing `proposals`.
pub async fn connect(
    gw: &TestGateway,
    via: Via,
    proposals: &[Proposal],
) -> Result<ScuAssociation, DimseError> {
    ScuAssociation::connect(&addr(gw, via), &options(gw, via), proposals).await
}

/// Associates for CT storage and panics if that fails.
pub async fn ct_association(gw: &TestGateway, via: Via) -> ScuAssociation {
    connect(gw, via, &[ct_proposal()])
        .await
        .unwrap_or_else(|e| panic!("cannot associate over {via:?}: {e}"))
}

/// The data set of `spec` (the bytes after the Part-10 meta header), Explicit VR LE.
pub fn dataset_bytes(spec: &Spec) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = data::write(&dir.path().join("instance.dcm"), spec);
    file_dataset(&path)
}

/// The data set bytes of a Part-10 file.
pub fn file_dataset(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read DICOM file");
    let meta = dimse::part10::parse_meta(&bytes).expect("meta header");
    bytes[meta.dataset_offset..].to_vec()
}

/// Sends `dataset` as a CT C-STORE whose request names `sop_instance`.
pub async fn store_bytes(
    scu: &mut ScuAssociation,
    sop_instance: &str,
    dataset: &[u8],
) -> CStoreRsp {
    scu.store(data::CT, sop_instance, data::EXPLICIT_LE, dataset)
        .await
        .unwrap_or_else(|e| panic!("C-STORE of {sop_instance} got no response: {e}"))
}

/// Stores a fresh de-identified instance (`deidentified_ct(n)`) on a new association
/// and asserts success: proof that the gateway still serves normally.
pub async fn store_good(gw: &TestGateway, via: Via, n: u32) {
    let spec = deidentified_ct(n);
    let mut scu = ct_association(gw, via).await;
    let rsp = store_bytes(&mut scu, &spec.sop_uid, &dataset_bytes(&spec)).await;
    assert_eq!(
        rsp.status,
        Status::Success,
        "a normal store over {via:?} must still succeed: {rsp:?}"
    );
    scu.release().await.expect("release");
}

/// Polls `check` every 50 ms until it holds or `within` has passed; returns the last
/// result.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

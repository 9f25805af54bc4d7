//! A first end-to-end check: DCMTK echoes and stores over both ports.

mod common;

use common::data::{self, Spec};
use common::{Backend, GATEWAY_AE, PLAIN_AE, TestGateway, args, dcmtk_async};

async fn plain_and_tls_store(backend: Backend) {
    let gw = TestGateway::spawn(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = data::write(&dir.path().join("ct.dcm"), &Spec::new(data::CT, "CT", 1));
    let port = gw.plain_port.to_string();
    let out = dcmtk_async(
        "storescu",
        args(&[
            "-aet",
            PLAIN_AE,
            "-aec",
            GATEWAY_AE,
            "127.0.0.1",
            &port,
            file.to_str().unwrap(),
        ]),
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = gw.index().await;
    let rows = index.instances(gw.setup.facility.id).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].sha256, common::dataset_sha256(&file));
    gw.stop().await;
}

both_backends!(plain_and_tls_store);

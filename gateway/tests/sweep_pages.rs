//! The blob sweep's paging through the index ([`Index::blob_keys_after`]): small
//! pages, resumed after the last row of each, return every instance row exactly once
//! in primary-key order (facility, then SOP Instance UID as text), across facilities,
//! on both backends.

mod common;

use common::Backend;
use gateway::db::Index;
use gateway::domain::FacilityId;

/// (facility, SOP Instance UID) rows, deliberately not in key order.
const ROWS: [(i64, &str); 9] = [
    (2, "1.2.9"),
    (1, "1.2.10"),
    (3, "0.9"),
    (1, "1.2.9"),
    (2, "1.1"),
    (1, "1.3"),
    (1, "1.10"),
    (3, "2.1"),
    (2, "1.2.10"),
];

async fn open(backend: Backend, dir: &std::path::Path) -> (Index, String) {
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.join("index.db").display()),
        Backend::Postgres => common::fresh_postgres_database().await,
    };
    let index = Index::open(&url).await.expect("open the index");
    (index, url)
}

async fn insert(url: &str) {
    let pool = {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(url).await.expect("connect")
    };
    for (facility, sop) in ROWS {
        sqlx::query(
            "INSERT INTO instances (facility_id, sop_instance_uid, series_uid, study_uid, \
             sop_class_uid, transfer_syntax, size_bytes, sha256, blob_key, calling_ae, received_at) \
             VALUES ($1, $2, '1.9', '1.8', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.1.2.1', \
             1, 'x', $3, 'AE', 0)",
        )
        .bind(facility)
        .bind(sop)
        .bind(format!("f{facility}/1.8/{sop}.dcm"))
        .execute(&pool)
        .await
        .expect("insert an instance row");
    }
    pool.close().await;
}

async fn pages_return_every_row_once_in_key_order(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let (index, url) = open(backend, dir.path()).await;
    insert(&url).await;
    let mut expected: Vec<(i64, String)> = ROWS.iter().map(|(f, s)| (*f, s.to_string())).collect();
    expected.sort();
    for limit in [1, 2, 4, 100] {
        let mut seen: Vec<(i64, String)> = Vec::new();
        let mut after: Option<(FacilityId, String)> = None;
        loop {
            let page = index
                .blob_keys_after(after.as_ref().map(|(f, s)| (*f, s.as_str())), limit)
                .await
                .expect("a page");
            assert!(page.len() as i64 <= limit, "page longer than {limit}");
            let Some(last) = page.last() else { break };
            after = Some((last.facility, last.sop_instance_uid.clone()));
            for row in page {
                assert_eq!(
                    row.blob_key,
                    format!("f{}/1.8/{}.dcm", row.facility.0, row.sop_instance_uid)
                );
                seen.push((row.facility.0, row.sop_instance_uid));
            }
        }
        assert_eq!(seen, expected, "pages of {limit}");
    }
    index.close().await;
}

both_backends!(pages_return_every_row_once_in_key_order);

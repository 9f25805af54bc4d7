use dicom_core::VR;
use dicom_dictionary_std::tags;

use super::*;
use crate::qr::query::tests::identifier;
use crate::qr::{Model, parse};

#[test]
fn like_patterns_escape_the_values_own_metacharacters() {
    assert_eq!(like_pattern("100%*"), "100!%%");
    assert_eq!(like_pattern("ACC_?"), "ACC!__");
    assert_eq!(like_pattern("a!b*"), "a!!b%");
    assert_eq!(like_pattern("*' OR 1=1 --"), "%' OR 1=1 --");
    assert_eq!(glob_pattern("[ab]*?"), "[[]ab]*?");
    assert_eq!(glob_pattern("100%_*"), "100%_*");
}

#[test]
fn values_are_bound_never_spliced() {
    let evil = "' OR 1=1 --";
    let id = identifier(
        "STUDY",
        &[
            (tags::PATIENT_NAME, VR::PN, "*'; DROP TABLE studies; --*"),
            (tags::PATIENT_ID, VR::LO, evil),
            (tags::ACCESSION_NUMBER, VR::SH, "x\\y"),
            (tags::MODALITIES_IN_STUDY, VR::CS, "C?"),
            (tags::STUDY_DATE, VR::DA, "20240101-"),
        ],
    );
    let query = parse(Model::StudyRoot, &id).unwrap();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let st = find(&query, FacilityId(7), 10, backend);
        for bad in ["OR 1=1", "DROP", "x", "2024", "C?", "C_"] {
            assert!(!st.text.contains(bad), "{bad:?} spliced into {}", st.text);
        }
        assert_eq!(st.binds[0], Bind::Int(7), "facility is $1");
        assert!(st.text.contains("s.facility_id = $1"), "{}", st.text);
        assert!(st.text.contains("m.facility_id = $1"), "{}", st.text);
        assert!(st.binds.contains(&Bind::Text(evil.into())));
        let placeholders = st.text.matches('$').count();
        assert!(placeholders >= st.binds.len(), "{}", st.text);
    }
}

/// An index in a temp dir with one facility and studies whose descriptions hold
/// LIKE/GLOB metacharacters and case variants.
async fn index_with(descriptions: &[&str]) -> (tempfile::TempDir, Index, FacilityId) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("i.db").display());
    let index = Index::open(&url).await.unwrap();
    let name = crate::domain::FacilityName::parse("f").unwrap();
    let facility = index.create_facility(&name, true).await.unwrap().id;
    for (n, d) in descriptions.iter().enumerate() {
        sqlx::query(
            "INSERT INTO studies (facility_id, study_uid, study_description, patient_name, updated_at) \
             VALUES ($1, $2, $3, $4, 0)",
        )
        .bind(facility.0)
        .bind(format!("1.2.{}", n + 1))
        .bind(*d)
        .bind(d.to_ascii_uppercase())
        .execute(&index.pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO study_patients (facility_id, study_uid, patient_key, patient_name, first_seen) \
             VALUES ($1, $2, '', $3, 0)",
        )
        .bind(facility.0)
        .bind(format!("1.2.{}", n + 1))
        .bind(d.to_ascii_uppercase())
        .execute(&index.pool)
        .await
        .unwrap();
    }
    (dir, index, facility)
}

async fn descriptions(
    index: &Index,
    facility: FacilityId,
    key: dicom_core::Tag,
    value: &str,
) -> Vec<String> {
    let vr = if key == tags::PATIENT_NAME {
        VR::PN
    } else {
        VR::LO
    };
    let mut keys = vec![(tags::STUDY_DESCRIPTION, VR::LO, "")];
    if key != tags::STUDY_DESCRIPTION {
        keys.push((key, vr, value));
    } else {
        keys[0].2 = value;
    }
    let id = identifier("STUDY", &keys);
    let query = parse(Model::StudyRoot, &id).unwrap();
    let found = crate::qr::find(index, facility, &query, 100).await.unwrap();
    found
        .iter()
        .map(|o| {
            o.get(tags::STUDY_DESCRIPTION)
                .unwrap()
                .to_str()
                .unwrap()
                .into_owned()
        })
        .collect()
}

#[tokio::test]
async fn wildcards_match_metacharacters_literally_on_sqlite() {
    let all = [
        "100% sure",
        "100X sure",
        "a_b",
        "axb",
        "a!b",
        "[x]",
        "x",
        "Chest",
        "chest",
    ];
    let (_dir, index, f) = index_with(&all).await;
    let d = tags::STUDY_DESCRIPTION;
    assert_eq!(descriptions(&index, f, d, "100%*").await, ["100% sure"]);
    assert_eq!(descriptions(&index, f, d, "a_?").await, ["a_b"]);
    assert_eq!(descriptions(&index, f, d, "a!*").await, ["a!b"]);
    assert_eq!(descriptions(&index, f, d, "[*").await, ["[x]"]);
    assert_eq!(
        descriptions(&index, f, d, "a?b").await,
        ["a_b", "axb", "a!b"]
    );
    assert_eq!(
        descriptions(&index, f, d, "c*").await,
        ["chest"],
        "LO is case-sensitive"
    );
    assert_eq!(descriptions(&index, f, d, "chest").await, ["chest"]);
    let name = tags::PATIENT_NAME;
    assert_eq!(
        descriptions(&index, f, name, "ches?").await,
        ["Chest", "chest"],
        "PN ignores case"
    );
    assert_eq!(
        descriptions(&index, f, name, "CHEST").await,
        ["Chest", "chest"]
    );
    assert_eq!(descriptions(&index, f, d, "*").await.len(), all.len());
    index.close().await;
}

/// Studies of several patients each (mis-registered acquisitions): a capped
/// Study-level answer still holds `limit` distinct studies.
#[tokio::test]
async fn a_capped_study_answer_counts_studies_not_patients() {
    let (_dir, index, facility) = index_with(&["a", "b", "c", "d"]).await;
    for study in 1..=4 {
        for patient in ["P1", "P2", "P3"] {
            sqlx::query(
                "INSERT INTO study_patients (facility_id, study_uid, patient_key, patient_id, \
                 patient_name, first_seen) VALUES ($1, $2, $3, $3, 'X', 0)",
            )
            .bind(facility.0)
            .bind(format!("1.2.{study}"))
            .bind(patient)
            .execute(&index.pool)
            .await
            .unwrap();
        }
    }
    let id = identifier(
        "STUDY",
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, ""),
            (tags::STUDY_DESCRIPTION, VR::LO, ""),
            (tags::PATIENT_ID, VR::LO, "P*"),
        ],
    );
    let query = parse(Model::StudyRoot, &id).unwrap();
    for limit in [1, 2, 3, 4, 10] {
        let found = crate::qr::find(&index, facility, &query, limit)
            .await
            .unwrap();
        let studies: Vec<String> = found
            .iter()
            .map(|o| {
                o.get(tags::STUDY_INSTANCE_UID)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .into_owned()
            })
            .collect();
        let mut distinct = studies.clone();
        distinct.dedup();
        assert_eq!(distinct, studies, "each study once");
        assert_eq!(studies.len(), limit.min(4), "limit {limit}");
    }
}

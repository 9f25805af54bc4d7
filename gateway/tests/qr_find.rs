//! The C-FIND query engine (`gateway::qr`) against an index filled through a running
//! gateway by DCMTK's `storescu`, for two facilities: both information models, all four
//! levels, the standard matching rules, return keys and counts, facility isolation,
//! injection-looking values, refused identifiers, `limit`, and the retrieve lists.

mod common;
#[path = "qr_find/fixture.rs"]
mod fixture;

use common::Backend;
use common::data;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use fixture::{ENVELOPE, Fixture, column, find, fixture, identifier, studies, studies_where, uid};
use gateway::domain::FacilityId;
use gateway::qr::{self, Level, Model, QueryError};

async fn universal_study_query_returns_every_key(fx: &Fixture) {
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
        (tags::PATIENT_NAME, VR::PN, ""),
        (tags::PATIENT_ID, VR::LO, ""),
        (tags::STUDY_DATE, VR::DA, ""),
        (tags::STUDY_TIME, VR::TM, ""),
        (tags::ACCESSION_NUMBER, VR::SH, ""),
        (tags::STUDY_DESCRIPTION, VR::LO, ""),
        (tags::MODALITIES_IN_STUDY, VR::CS, ""),
        (tags::NUMBER_OF_STUDY_RELATED_SERIES, VR::IS, ""),
        (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        (tags::STUDY_ID, VR::SH, ""),
        (tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
    ];
    let query = qr::parse(Model::StudyRoot, &identifier("STUDY", &keys)).unwrap();
    assert!(!query.has_unsupported_keys(), "{query:?}");
    let found = qr::find(&fx.index, fx.mine, &query, 100).await.unwrap();
    assert_eq!(studies(&found), ["101", "102", "103", "104"]);
    let col = |tag| column(&found, tag);
    assert_eq!(
        col(tags::PATIENT_ID),
        ["PSEUDO0001", "PSEUDO0001", "PSEUDO0002", "PSEUDO0003"]
    );
    assert_eq!(
        col(tags::PATIENT_NAME),
        ["Alpha^Anna", "Alpha^Anna", "Beta^Bob", "alpha^carl"]
    );
    assert_eq!(
        col(tags::STUDY_DATE),
        ["20240105", "20240220", "20231231", "20240301"]
    );
    assert_eq!(
        col(tags::STUDY_TIME),
        ["083000", "141500", "235959", "090000"]
    );
    assert_eq!(
        col(tags::ACCESSION_NUMBER),
        ["ACC101", "ACC102", "ACC_103", "ACC104"]
    );
    assert_eq!(
        col(tags::STUDY_DESCRIPTION),
        ["CT Chest", "MR Brain", "100% CT", "ct chest"]
    );
    assert_eq!(
        col(tags::MODALITIES_IN_STUDY),
        ["CT", "MR\\OT", "CT\\XA", "MR"]
    );
    assert_eq!(
        col(tags::NUMBER_OF_STUDY_RELATED_SERIES),
        ["2", "2", "2", "1"]
    );
    assert_eq!(
        col(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
        ["4", "3", "2", "1"]
    );
    assert_eq!(
        col(tags::STUDY_ID),
        ["", "", "", ""],
        "unknown keys come back empty"
    );
    assert_eq!(col(tags::REFERRING_PHYSICIAN_NAME), ["", "", "", ""]);
    assert_eq!(col(tags::QUERY_RETRIEVE_LEVEL), ["STUDY"; 4]);
    assert_eq!(col(tags::SPECIFIC_CHARACTER_SET), ["ISO_IR 192"; 4]);
    let modalities = found[1].get(tags::MODALITIES_IN_STUDY).unwrap();
    assert_eq!(
        modalities.value().multiplicity(),
        2,
        "ModalitiesInStudy is multi-valued"
    );
}

async fn single_values_and_wildcards(fx: &Fixture) {
    let (pn, lo, sh) = (VR::PN, VR::LO, VR::SH);
    let cases: &[(Tag, VR, &str, &[&str])] = &[
        (tags::PATIENT_ID, lo, "PSEUDO0001", &["101", "102"]),
        (tags::PATIENT_ID, lo, "pseudo0001", &[]),
        (
            tags::PATIENT_ID,
            lo,
            "PSEUDO000?",
            &["101", "102", "103", "104"],
        ),
        (tags::PATIENT_NAME, pn, "ALPHA^ANNA", &["101", "102"]),
        (tags::PATIENT_NAME, pn, "alpha*", &["101", "102", "104"]),
        (tags::PATIENT_NAME, pn, "?eta^B*", &["103"]),
        (tags::STUDY_DESCRIPTION, lo, "CT*", &["101"]),
        (tags::STUDY_DESCRIPTION, lo, "ct*", &["104"]),
        (tags::STUDY_DESCRIPTION, lo, "*CT*", &["101", "103"]),
        (tags::STUDY_DESCRIPTION, lo, "100%*", &["103"]),
        (tags::STUDY_DESCRIPTION, lo, "*%*", &["103"]),
        (tags::ACCESSION_NUMBER, sh, "ACC_*", &["103"]),
        (tags::ACCESSION_NUMBER, sh, "ACC10?", &["101", "102", "104"]),
        (tags::ACCESSION_NUMBER, sh, "ACC102", &["102"]),
        (
            tags::ACCESSION_NUMBER,
            sh,
            "*",
            &["101", "102", "103", "104"],
        ),
    ];
    for (tag, vr, value, want) in cases {
        let got = studies_where(fx, *tag, *vr, value).await;
        assert_eq!(got, *want, "{tag} = {value:?}");
    }
}

async fn date_time_and_uid_matching(fx: &Fixture) {
    let (da, tm, ui, cs) = (VR::DA, VR::TM, VR::UI, VR::CS);
    let two = format!("{}\\{}\\{}", uid(1, 101), uid(1, 103), uid(1, 999));
    let cases: &[(Tag, VR, &str, &[&str])] = &[
        (tags::STUDY_DATE, da, "20240105", &["101"]),
        (tags::STUDY_DATE, da, "20240101-20240229", &["101", "102"]),
        (tags::STUDY_DATE, da, "20240201-", &["102", "104"]),
        (tags::STUDY_DATE, da, "-20231231", &["103"]),
        (tags::STUDY_TIME, tm, "0800-0900", &["101", "104"]),
        (tags::STUDY_TIME, tm, "1400-", &["102", "103"]),
        (tags::STUDY_TIME, tm, "141500", &["102"]),
        (tags::STUDY_INSTANCE_UID, ui, two.as_str(), &["101", "103"]),
        (tags::MODALITIES_IN_STUDY, cs, "XA", &["103"]),
        (tags::MODALITIES_IN_STUDY, cs, "OT\\XA", &["102", "103"]),
        (tags::MODALITIES_IN_STUDY, cs, "M?", &["102", "104"]),
        (tags::MODALITIES_IN_STUDY, cs, "ct", &[]),
    ];
    for (tag, vr, value, want) in cases {
        let keys = [(tags::STUDY_INSTANCE_UID, VR::UI, ""), (*tag, *vr, *value)];
        let keys = if *tag == tags::STUDY_INSTANCE_UID {
            &keys[1..]
        } else {
            &keys[..]
        };
        let got = studies(&find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", keys).await);
        assert_eq!(got, *want, "{tag} = {value:?}");
    }
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
        (tags::STUDY_DATE, VR::DA, "20240101-"),
        (tags::MODALITIES_IN_STUDY, VR::CS, "MR"),
    ];
    let got = studies(&find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await);
    assert_eq!(got, ["102", "104"], "date range and modality together");
}

async fn patient_level_counts(fx: &Fixture) {
    let keys = [
        (tags::PATIENT_ID, VR::LO, ""),
        (tags::PATIENT_NAME, VR::PN, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_STUDIES, VR::IS, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_SERIES, VR::IS, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, ""),
    ];
    let found = find(&fx.index, fx.mine, Model::PatientRoot, "PATIENT", &keys).await;
    let col = |tag| column(&found, tag);
    assert_eq!(
        col(tags::PATIENT_ID),
        ["PSEUDO0001", "PSEUDO0002", "PSEUDO0003"]
    );
    assert_eq!(
        col(tags::PATIENT_NAME),
        ["Alpha^Anna", "Beta^Bob", "alpha^carl"]
    );
    assert_eq!(
        col(tags::NUMBER_OF_PATIENT_RELATED_STUDIES),
        ["2", "1", "1"]
    );
    assert_eq!(col(tags::NUMBER_OF_PATIENT_RELATED_SERIES), ["4", "2", "1"]);
    assert_eq!(
        col(tags::NUMBER_OF_PATIENT_RELATED_INSTANCES),
        ["7", "2", "1"]
    );
    assert_eq!(col(tags::QUERY_RETRIEVE_LEVEL), ["PATIENT"; 3]);
    let keys = [
        (tags::PATIENT_ID, VR::LO, ""),
        (tags::PATIENT_NAME, VR::PN, "BETA*"),
    ];
    let found = find(&fx.index, fx.mine, Model::PatientRoot, "PATIENT", &keys).await;
    assert_eq!(column(&found, tags::PATIENT_ID), ["PSEUDO0002"]);

    let keys = [
        (tags::PATIENT_ID, VR::LO, "PSEUDO0001"),
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
    ];
    let found = find(&fx.index, fx.mine, Model::PatientRoot, "STUDY", &keys).await;
    assert_eq!(studies(&found), ["101", "102"], "Patient Root STUDY level");
}

async fn series_level_in_both_models(fx: &Fixture) {
    let study = uid(1, 101);
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, study.as_str()),
        (tags::SERIES_INSTANCE_UID, VR::UI, ""),
        (tags::MODALITY, VR::CS, ""),
        (tags::SERIES_NUMBER, VR::IS, ""),
        (tags::SERIES_DESCRIPTION, VR::LO, ""),
        (tags::NUMBER_OF_SERIES_RELATED_INSTANCES, VR::IS, ""),
    ];
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "SERIES", &keys).await;
    let col = |tag| column(&found, tag);
    assert_eq!(col(tags::SERIES_INSTANCE_UID), [uid(2, 201), uid(2, 202)]);
    assert_eq!(col(tags::MODALITY), ["CT", "CT"]);
    assert_eq!(col(tags::SERIES_NUMBER), ["1", "2"]);
    assert_eq!(col(tags::SERIES_DESCRIPTION), ["Generated series"; 2]);
    assert_eq!(col(tags::NUMBER_OF_SERIES_RELATED_INSTANCES), ["3", "1"]);
    assert_eq!(col(tags::STUDY_INSTANCE_UID), [study.clone(), study]);

    let series = |model, keys: Vec<(Tag, VR, String)>| async move {
        let keys: Vec<_> = keys.iter().map(|(t, v, s)| (*t, *v, s.as_str())).collect();
        let found = find(&fx.index, fx.mine, model, "SERIES", &keys).await;
        column(&found, tags::SERIES_INSTANCE_UID)
    };
    let k = |t, v, s: &str| (t, v, s.to_string());
    let of = |n| k(tags::STUDY_INSTANCE_UID, VR::UI, &uid(1, n));
    let any_series = k(tags::SERIES_INSTANCE_UID, VR::UI, "");
    let got = series(
        Model::StudyRoot,
        vec![of(102), any_series.clone(), k(tags::MODALITY, VR::CS, "OT")],
    )
    .await;
    assert_eq!(got, [uid(2, 204)]);
    let got = series(
        Model::StudyRoot,
        vec![
            of(102),
            any_series.clone(),
            k(tags::SERIES_NUMBER, VR::IS, "1"),
        ],
    )
    .await;
    assert_eq!(got, [uid(2, 203)]);
    let patient = |id: &str| k(tags::PATIENT_ID, VR::LO, id);
    let got = series(
        Model::PatientRoot,
        vec![patient("PSEUDO0002"), of(103), any_series.clone()],
    )
    .await;
    assert_eq!(got, [uid(2, 205), uid(2, 206)], "Patient Root SERIES level");
    let got = series(
        Model::PatientRoot,
        vec![patient("PSEUDO0001"), of(103), any_series],
    )
    .await;
    assert!(got.is_empty(), "study 103 is not PSEUDO0001's: {got:?}");
}

async fn image_level_in_both_models(fx: &Fixture) {
    let (study, series) = (uid(1, 101), uid(2, 201));
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, study.as_str()),
        (tags::SERIES_INSTANCE_UID, VR::UI, series.as_str()),
        (tags::SOP_INSTANCE_UID, VR::UI, ""),
        (tags::SOP_CLASS_UID, VR::UI, ""),
        (tags::INSTANCE_NUMBER, VR::IS, ""),
        (tags::NUMBER_OF_FRAMES, VR::IS, ""),
    ];
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "IMAGE", &keys).await;
    let col = |tag| column(&found, tag);
    assert_eq!(
        col(tags::SOP_INSTANCE_UID),
        [uid(3, 1), uid(3, 2), uid(3, 3)]
    );
    assert_eq!(col(tags::SOP_CLASS_UID), [data::CT; 3]);
    assert_eq!(col(tags::INSTANCE_NUMBER), ["1", "2", "3"]);
    assert_eq!(
        col(tags::NUMBER_OF_FRAMES),
        ["", "", ""],
        "single-frame: no value"
    );

    let two = format!("{}\\{}", uid(3, 1), uid(3, 3));
    let mut keys = keys.to_vec();
    keys[2].2 = two.as_str();
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "IMAGE", &keys).await;
    assert_eq!(
        column(&found, tags::SOP_INSTANCE_UID),
        [uid(3, 1), uid(3, 3)],
        "UID list"
    );
    keys[2].2 = "";
    keys[4].2 = "2";
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "IMAGE", &keys).await;
    assert_eq!(
        column(&found, tags::SOP_INSTANCE_UID),
        [uid(3, 2)],
        "InstanceNumber"
    );

    let (study, series) = (uid(1, 103), uid(2, 206));
    let keys = [
        (tags::PATIENT_ID, VR::LO, "PSEUDO0002"),
        (tags::STUDY_INSTANCE_UID, VR::UI, study.as_str()),
        (tags::SERIES_INSTANCE_UID, VR::UI, series.as_str()),
        (tags::SOP_INSTANCE_UID, VR::UI, ""),
        (tags::NUMBER_OF_FRAMES, VR::IS, ""),
        (tags::SOP_CLASS_UID, VR::UI, ""),
    ];
    let found = find(&fx.index, fx.mine, Model::PatientRoot, "IMAGE", &keys).await;
    assert_eq!(
        column(&found, tags::NUMBER_OF_FRAMES),
        ["3"],
        "Patient Root IMAGE level"
    );
    assert_eq!(column(&found, tags::SOP_CLASS_UID), [data::XA]);
}

async fn blind_index_and_sealed_identity(fx: &Fixture) {
    let creator = (
        Tag(0x0013, 0x0010),
        VR::LO,
        dimse::scan::PRODUCT_PRIVATE_CREATOR,
    );
    let blind = |v| (Tag(0x0013, 0x1010), VR::LO, v);
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
        creator,
        blind("be3f"),
    ];
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await;
    assert_eq!(studies(&found), ["101", "102"]);
    assert_eq!(column(&found, Tag(0x0013, 0x1010)), ["be3f", "be3f"]);
    assert_eq!(
        column(&found, Tag(0x0013, 0x0010)),
        [dimse::scan::PRODUCT_PRIVATE_CREATOR; 2]
    );
    let keys = [(tags::STUDY_INSTANCE_UID, VR::UI, ""), creator, blind("")];
    let found = find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await;
    assert_eq!(
        column(&found, Tag(0x0013, 0x1010)),
        ["be3f", "be3f", "", "0a1c"]
    );

    let mut id = identifier("STUDY", &[(tags::STUDY_INSTANCE_UID, VR::UI, "")]);
    id.put(DataElement::new(
        tags::ENCRYPTED_ATTRIBUTES_SEQUENCE,
        VR::SQ,
        dicom_core::value::DataSetSequence::<InMemDicomObject>::empty(),
    ));
    let query = qr::parse(Model::StudyRoot, &id).unwrap();
    let found = qr::find(&fx.index, fx.mine, &query, 100).await.unwrap();
    let items = |n: usize| {
        found[n]
            .get(tags::ENCRYPTED_ATTRIBUTES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .to_vec()
    };
    let sealed = items(0);
    assert_eq!(sealed.len(), 1, "study 101 has a sealed identity");
    let content = sealed[0]
        .get(tags::ENCRYPTED_CONTENT)
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(&*content, &ENVELOPE);
    let ts = sealed[0]
        .get(tags::ENCRYPTED_CONTENT_TRANSFER_SYNTAX_UID)
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(ts, data::EXPLICIT_LE);
    assert!(items(1).is_empty(), "study 102 has none: an empty sequence");
}

async fn limit_and_unsupported_keys(fx: &Fixture) {
    let id = identifier(
        "STUDY",
        &[
            (tags::STUDY_INSTANCE_UID, VR::UI, ""),
            (tags::PATIENT_BIRTH_DATE, VR::DA, "19700101"),
        ],
    );
    let query = qr::parse(Model::StudyRoot, &id).unwrap();
    assert_eq!(query.unsupported_keys(), [tags::PATIENT_BIRTH_DATE]);
    let all = qr::find(&fx.index, fx.mine, &query, 100).await.unwrap();
    assert_eq!(
        studies(&all),
        ["101", "102", "103", "104"],
        "an unsupported key does not filter"
    );
    assert_eq!(column(&all, tags::PATIENT_BIRTH_DATE), ["", "", "", ""]);
    let two = qr::find(&fx.index, fx.mine, &query, 2).await.unwrap();
    assert_eq!(studies(&two), ["101", "102"]);
    assert!(
        qr::find(&fx.index, fx.mine, &query, 0)
            .await
            .unwrap()
            .is_empty()
    );
    let keys = [
        (tags::PATIENT_ID, VR::LO, "PSEUDO0001"),
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
    ];
    let id = identifier("IMAGE", &keys);
    assert!(
        qr::parse(Model::PatientRoot, &id).is_err(),
        "IMAGE level without Series UID"
    );
}

async fn find_matches_the_standard_keys(backend: Backend) {
    let fx = fixture(backend).await;
    universal_study_query_returns_every_key(&fx).await;
    single_values_and_wildcards(&fx).await;
    date_time_and_uid_matching(&fx).await;
    patient_level_counts(&fx).await;
    series_level_in_both_models(&fx).await;
    image_level_in_both_models(&fx).await;
    blind_index_and_sealed_identity(&fx).await;
    limit_and_unsupported_keys(&fx).await;
    fx.stop().await;
}

both_backends!(find_matches_the_standard_keys);

async fn each_facility_sees_only_its_own(fx: &Fixture) {
    let keys = [
        (tags::STUDY_INSTANCE_UID, VR::UI, ""),
        (tags::PATIENT_ID, VR::LO, ""),
        (tags::NUMBER_OF_STUDY_RELATED_INSTANCES, VR::IS, ""),
        (tags::MODALITIES_IN_STUDY, VR::CS, ""),
    ];
    let theirs = find(&fx.index, fx.theirs, Model::StudyRoot, "STUDY", &keys).await;
    assert_eq!(studies(&theirs), ["101", "105"]);
    assert_eq!(
        column(&theirs, tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
        ["2", "1"]
    );
    let mine = find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await;
    assert_eq!(studies(&mine), ["101", "102", "103", "104"]);
    assert_eq!(
        column(&mine, tags::NUMBER_OF_STUDY_RELATED_INSTANCES)[0],
        "4"
    );
    let nobody = find(
        &fx.index,
        FacilityId(9999),
        Model::StudyRoot,
        "STUDY",
        &keys,
    )
    .await;
    assert!(nobody.is_empty());

    assert!(
        studies_where(fx, tags::PATIENT_ID, VR::LO, "PSEUDO0009")
            .await
            .is_empty()
    );
    assert!(
        studies_where(fx, tags::STUDY_INSTANCE_UID, VR::UI, &uid(1, 105))
            .await
            .is_empty()
    );
    assert!(studies_where(fx, tags::MODALITIES_IN_STUDY, VR::CS, "CT").await == ["101", "103"]);
    let patients = [
        (tags::PATIENT_ID, VR::LO, ""),
        (tags::NUMBER_OF_PATIENT_RELATED_INSTANCES, VR::IS, ""),
    ];
    let found = find(
        &fx.index,
        fx.theirs,
        Model::PatientRoot,
        "PATIENT",
        &patients,
    )
    .await;
    assert_eq!(
        column(&found, tags::PATIENT_ID),
        ["PSEUDO0001", "PSEUDO0009"]
    );
    assert_eq!(
        column(&found, tags::NUMBER_OF_PATIENT_RELATED_INSTANCES),
        ["2", "1"]
    );
    let study = uid(1, 101);
    let series = [
        (tags::STUDY_INSTANCE_UID, VR::UI, study.as_str()),
        (tags::SERIES_INSTANCE_UID, VR::UI, ""),
    ];
    let found = find(&fx.index, fx.theirs, Model::StudyRoot, "SERIES", &series).await;
    assert_eq!(column(&found, tags::SERIES_INSTANCE_UID), [uid(2, 301)]);
}

async fn injection_looking_values_match_nothing(fx: &Fixture) {
    let before = (
        fx.index.studies(fx.mine).await.unwrap(),
        fx.index.count_instances().await.unwrap(),
    );
    let cases = [
        (tags::PATIENT_ID, VR::LO, "' OR 1=1 --"),
        (tags::PATIENT_NAME, VR::PN, "*' OR 1=1 --*"),
        (tags::STUDY_DESCRIPTION, VR::LO, "x' OR '1'='1"),
        (tags::ACCESSION_NUMBER, VR::SH, "'; DELETE FROM studies; --"),
        (tags::MODALITIES_IN_STUDY, VR::CS, "CT' OR 'a'='a"),
        (
            Tag(0x0013, 0x1010),
            VR::LO,
            "' OR name_blind_index IS NULL --",
        ),
    ];
    for (tag, vr, value) in cases {
        let creator = (
            Tag(0x0013, 0x0010),
            VR::LO,
            dimse::scan::PRODUCT_PRIVATE_CREATOR,
        );
        let keys = [
            (tags::STUDY_INSTANCE_UID, VR::UI, ""),
            creator,
            (tag, vr, value),
        ];
        let found = find(&fx.index, fx.mine, Model::StudyRoot, "STUDY", &keys).await;
        assert!(
            found.is_empty(),
            "{tag} = {value:?} matched {:?}",
            studies(&found)
        );
    }
    let bad_uid = identifier(
        "STUDY",
        &[(tags::STUDY_INSTANCE_UID, VR::UI, "1.2' OR '1'='1")],
    );
    assert!(matches!(
        qr::parse(Model::StudyRoot, &bad_uid),
        Err(QueryError::Invalid(_))
    ));
    let after = (
        fx.index.studies(fx.mine).await.unwrap(),
        fx.index.count_instances().await.unwrap(),
    );
    assert_eq!(before, after, "a query changed the index");
}

async fn retrieve_lists_the_stored_instances(fx: &Fixture) {
    let targets = |facility, level: &'static str, keys: Vec<(Tag, VR, String)>| async move {
        let keys: Vec<_> = keys.iter().map(|(t, v, s)| (*t, *v, s.as_str())).collect();
        let query = qr::parse(Model::StudyRoot, &identifier(level, &keys)).unwrap();
        qr::instances_for_retrieve(&fx.index, facility, &query).await
    };
    let k = |t, s: String| (t, VR::UI, s);
    let mine = targets(
        fx.mine,
        "STUDY",
        vec![k(tags::STUDY_INSTANCE_UID, uid(1, 101))],
    )
    .await
    .unwrap();
    let sops: Vec<_> = mine.iter().map(|t| t.sop_instance_uid.clone()).collect();
    assert_eq!(sops, [uid(3, 1), uid(3, 2), uid(3, 3), uid(3, 4)]);
    for t in &mine {
        assert_eq!(t.transfer_syntax, data::EXPLICIT_LE);
        assert_eq!(t.sop_class_uid, data::CT);
        assert!(
            fx.gw.setup.blob_root().join(&t.blob_key).is_file(),
            "{}",
            t.blob_key
        );
    }
    let theirs = targets(
        fx.theirs,
        "STUDY",
        vec![k(tags::STUDY_INSTANCE_UID, uid(1, 101))],
    )
    .await
    .unwrap();
    let sops: Vec<_> = theirs.iter().map(|t| t.sop_instance_uid.clone()).collect();
    assert_eq!(
        sops,
        [uid(3, 100), uid(3, 101)],
        "same study UID, the other facility's instances"
    );
    assert!(
        mine.iter()
            .all(|m| theirs.iter().all(|t| t.blob_key != m.blob_key))
    );

    let series = vec![
        k(tags::STUDY_INSTANCE_UID, uid(1, 103)),
        k(tags::SERIES_INSTANCE_UID, uid(2, 206)),
    ];
    let xa = targets(fx.mine, "SERIES", series.clone()).await.unwrap();
    assert_eq!(xa.len(), 1);
    assert_eq!(xa[0].sop_class_uid, data::XA);
    assert!(
        targets(fx.theirs, "SERIES", series)
            .await
            .unwrap()
            .is_empty()
    );
    let mut image = vec![
        k(tags::STUDY_INSTANCE_UID, uid(1, 101)),
        k(tags::SERIES_INSTANCE_UID, uid(2, 201)),
    ];
    image.push(k(
        tags::SOP_INSTANCE_UID,
        format!("{}\\{}", uid(3, 2), uid(3, 3)),
    ));
    let two = targets(fx.mine, "IMAGE", image).await.unwrap();
    assert_eq!(
        two.iter()
            .map(|t| t.sop_instance_uid.clone())
            .collect::<Vec<_>>(),
        [uid(3, 2), uid(3, 3)]
    );
    let missing = targets(
        fx.mine,
        "STUDY",
        vec![k(tags::STUDY_INSTANCE_UID, String::new())],
    )
    .await;
    assert!(
        matches!(missing, Err(QueryError::MissingKey(_))),
        "{missing:?}"
    );
}

async fn facilities_and_values_stay_separate(backend: Backend) {
    let fx = fixture(backend).await;
    each_facility_sees_only_its_own(&fx).await;
    injection_looking_values_match_nothing(&fx).await;
    retrieve_lists_the_stored_instances(&fx).await;
    fx.stop().await;
}

both_backends!(facilities_and_values_stay_separate);

#[test]
fn malformed_identifiers_are_refused() {
    let refused = |model, level, keys: &[(Tag, VR, &str)]| {
        qr::parse(model, &identifier(level, keys)).expect_err("must be refused")
    };
    let err = refused(
        Model::StudyRoot,
        "PATIENT",
        &[(tags::PATIENT_ID, VR::LO, "")],
    );
    assert!(
        matches!(err, QueryError::UnsupportedLevel { .. }),
        "{err:?}"
    );
    let err = refused(
        Model::StudyRoot,
        "STUDY",
        &[(tags::STUDY_DATE, VR::DA, "20240230-2023")],
    );
    assert!(matches!(err, QueryError::Invalid(_)), "{err:?}");
    let err = refused(
        Model::StudyRoot,
        "STUDY",
        &[(tags::STUDY_DATE, VR::DA, "20240301-20240101")],
    );
    assert!(matches!(err, QueryError::Invalid(_)), "{err:?}");
    let err = refused(
        Model::StudyRoot,
        "SERIES",
        &[(tags::SERIES_INSTANCE_UID, VR::UI, "")],
    );
    assert!(matches!(err, QueryError::MissingKey(_)), "{err:?}");
    let mut no_level = identifier("STUDY", &[]);
    no_level.remove_element(tags::QUERY_RETRIEVE_LEVEL);
    let err = qr::parse(Model::StudyRoot, &no_level).unwrap_err();
    assert!(matches!(err, QueryError::MissingLevel), "{err:?}");
    assert_eq!(Level::parse("IMAGE"), Some(Level::Image));
}

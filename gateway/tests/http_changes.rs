//! `GET /api/v1/changes` through the admin API router: every user of a facility reads
//! their own facility's feed (an operator names one), paging with `after`/`limit`,
//! bad parameters refused, another facility's user sees none of it and cannot name
//! it, and a soft delete through the API shows up as `deleted`.

mod common;
mod http_support;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::Backend;
use http_support::{A, ADMIN_A, ADMIN_B, Api, DOC_A, DOC_B, OPERATOR, OTHER};
use serde_json::Value;

fn studies_of(page: &Value) -> BTreeSet<String> {
    page["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["study_uid"].as_str().unwrap().to_string())
        .collect()
}

async fn the_feed_is_per_facility_and_paged(backend: Backend) {
    let api = Api::new(backend).await;
    let (mine, theirs) = api.store_samples().await;
    let my_studies: BTreeSet<String> = mine.iter().map(|s| s.study_uid.clone()).collect();
    let their_studies: BTreeSet<String> = theirs.iter().map(|s| s.study_uid.clone()).collect();
    let doc = api.login(DOC_A).await;
    let admin = api.login(ADMIN_A).await;
    let operator = api.login(OPERATOR).await;
    let doc_b = api.login(DOC_B).await;
    let admin_b = api.login(ADMIN_B).await;

    // A clinician and the facility administrator read their own facility's feed.
    let all = api
        .call(Method::GET, "/api/v1/changes", Some(&doc), None)
        .await;
    assert_eq!(all.status, StatusCode::OK, "{:?}", all.body);
    assert_eq!(all.body["facility"], A);
    assert_eq!(studies_of(&all.body), my_studies);
    let changes = all.body["changes"].as_array().unwrap();
    let seqs: Vec<i64> = changes.iter().map(|c| c["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(all.body["last"], seqs.len());
    assert_eq!(all.body["latest"], seqs.len());
    assert_eq!(all.body["more"], false);
    // Each study's first event is `stored`; the only other kind here is a new series.
    let mut seen = BTreeSet::new();
    for c in changes {
        let study = c["study_uid"].as_str().unwrap();
        let kind = c["kind"].as_str().unwrap();
        if seen.insert(study) {
            assert_eq!(kind, "stored", "{c}");
        } else {
            assert_eq!(kind, "series-added", "{c}");
        }
        assert!(c["at"].as_str().unwrap().ends_with('Z'));
    }
    let by_admin = api
        .call(
            Method::GET,
            &format!("/api/v1/changes?facility={A}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(by_admin.body, all.body);

    // Pages of one.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = api
            .call(
                Method::GET,
                &format!("/api/v1/changes?after={after}&limit=1"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        paged.extend(page.body["changes"].as_array().unwrap().iter().cloned());
        after = page.body["last"].as_i64().unwrap();
        if page.body["more"] == false {
            break;
        }
    }
    assert_eq!(&paged, changes);
    let end = api
        .call(
            Method::GET,
            &format!("/api/v1/changes?after={after}"),
            Some(&doc),
            None,
        )
        .await;
    assert_eq!(end.body["changes"], serde_json::json!([]));
    assert_eq!(end.body["last"], after, "the cursor stays");

    // The other facility's users see their own studies only, and cannot name ours.
    for token in [&doc_b, &admin_b] {
        let theirs_page = api
            .call(Method::GET, "/api/v1/changes", Some(token), None)
            .await;
        assert_eq!(theirs_page.body["facility"], OTHER);
        assert_eq!(studies_of(&theirs_page.body), their_studies);
        api.call(
            Method::GET,
            &format!("/api/v1/changes?facility={A}"),
            Some(token),
            None,
        )
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "naming another facility",
        );
        api.call(
            Method::GET,
            "/api/v1/changes?facility=nowhere",
            Some(token),
            None,
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "naming no facility");
    }

    // An operator names the facility, and must.
    let op = api
        .call(
            Method::GET,
            &format!("/api/v1/changes?facility={OTHER}"),
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(studies_of(&op.body), their_studies);
    api.call(Method::GET, "/api/v1/changes", Some(&operator), None)
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "operator without facility",
        );
    api.call(
        Method::GET,
        "/api/v1/changes?facility=nowhere",
        Some(&operator),
        None,
    )
    .await
    .assert_error(
        StatusCode::NOT_FOUND,
        "not_found",
        "operator, unknown facility",
    );

    // Bad parameters and no token.
    for query in [
        "after=-1",
        "after=x",
        "limit=0",
        "limit=1001",
        "limit=1;DROP",
        "sort=seq",
    ] {
        api.call(
            Method::GET,
            &format!("/api/v1/changes?{query}"),
            Some(&doc),
            None,
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request", query);
    }
    api.call(Method::GET, "/api/v1/changes", None, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", "no token");

    // A soft delete through the API is the next event.
    let gone = mine[0].study_uid.clone();
    let deleted = api
        .call(
            Method::DELETE,
            &Api::path(A, &format!("/studies/{gone}")),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let next = api
        .call(
            Method::GET,
            &format!("/api/v1/changes?after={after}"),
            Some(&doc),
            None,
        )
        .await;
    let event = &next.body["changes"][0];
    assert_eq!(event["seq"], after + 1);
    assert_eq!(event["kind"], "deleted");
    assert_eq!(event["study_uid"], gone.as_str());
    assert!(event["instances"].as_i64().unwrap() >= 1);
    let theirs_after = api
        .call(Method::GET, "/api/v1/changes", Some(&doc_b), None)
        .await;
    assert_eq!(
        studies_of(&theirs_after.body),
        their_studies,
        "nothing leaks"
    );
    api.stop().await;
}
both_backends!(the_feed_is_per_facility_and_paged);

//! schemas/admin-api.openapi.yaml is a valid OpenAPI 3.1 document (read by a real
//! parser, the oas3 crate), matches the router route for route, and gives every
//! operation a unique operationId and declared tags. That the API's actual responses
//! match the document's schemas is checked on every reply of the HTTP tests
//! (http_support/contract.rs); this file also checks that checker.

mod common;
mod http_support;

use std::collections::BTreeSet;

use serde_json::json;

const TEXT: &str = include_str!("../../schemas/admin-api.openapi.yaml");

fn spec() -> oas3::OpenApiV3Spec {
    oas3::from_yaml(TEXT).expect("schemas/admin-api.openapi.yaml is not a valid OpenAPI document")
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    let spec = spec();
    let version = spec.validate_version().expect("openapi version");
    assert_eq!((version.major, version.minor), (3, 1));
    // Every $ref of every response resolves.
    for (path, method, op) in spec.operations() {
        for (status, response) in op.responses.iter().flatten() {
            response
                .resolve(&spec)
                .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
        }
    }
}

#[test]
fn openapi_matches_the_router() {
    let documented: BTreeSet<(String, String)> = spec()
        .operations()
        .map(|(path, method, _)| (method.as_str().to_string(), path))
        .collect();
    let coded: BTreeSet<(String, String)> = gateway::http::route_table()
        .into_iter()
        .map(|(m, p)| (m.as_str().to_string(), p.to_string()))
        .collect();
    assert!(coded.len() >= 20, "route table looks empty: {coded:?}");
    let undocumented: Vec<_> = coded.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&coded).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from schemas/admin-api.openapi.yaml: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "documented routes the router does not have: {missing:?}"
    );
}

#[test]
fn every_operation_has_a_unique_id_and_declared_tags() {
    let spec = spec();
    let declared: BTreeSet<String> = spec.tags.iter().map(|t| t.name.clone()).collect();
    let mut ids = BTreeSet::new();
    for (path, method, op) in spec.operations() {
        let id = op
            .operation_id
            .clone()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        assert!(ids.insert(id.clone()), "operationId {id} is used twice");
        assert!(!op.tags.is_empty(), "{method} {path} has no tags");
        for tag in &op.tags {
            assert!(
                declared.contains(tag),
                "{method} {path}: tag {tag} is not declared"
            );
        }
    }
    assert_eq!(ids.len(), gateway::http::route_table().len());
}

#[test]
fn the_contract_checker_catches_what_it_must() {
    use http_support::contract::{check, validate};
    let health = json!({"$ref": "#/components/schemas/Health"});
    let ok = json!({"status": "ok", "version": "0.1.0", "commit": "abc"});
    validate(&health, &ok, "$").unwrap();
    assert!(
        validate(&health, &json!({"status": "ok"}), "$").is_err(),
        "missing required"
    );
    let extra = json!({"status": "ok", "version": "1", "commit": "c", "x": 1});
    assert!(
        validate(&health, &extra, "$").is_err(),
        "undocumented property"
    );
    let wrong = json!({"status": "fine", "version": "1", "commit": "c"});
    assert!(validate(&health, &wrong, "$").is_err(), "not in the enum");
    let nullable = json!({"type": ["integer", "null"]});
    validate(&nullable, &json!(null), "$").unwrap();
    assert!(validate(&nullable, &json!("1"), "$").is_err());
    check("GET", "/healthz", 200, &ok);
    check(
        "GET",
        "/api/v1/facilities/st-mary/users",
        401,
        &json!({"error": {"code": "unauthorized", "message": "x"}}),
    );
    let undocumented = std::panic::catch_unwind(|| check("GET", "/healthz", 418, &ok));
    assert!(undocumented.is_err(), "an undocumented status must fail");
}

//! schemas/admin-api.openapi.yaml as a contract the tests hold every response to:
//! the status must be documented for the operation, and a JSON body must match the
//! documented schema (types, required and unknown properties, enums, items, `$ref`).
//! [`check`] runs on every reply `Api::send` gets, so each HTTP test checks the
//! contract for every route it calls.

use std::sync::OnceLock;

use serde_json::Value;

/// The OpenAPI document as JSON.
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        yaml_serde::from_str(include_str!("../../../schemas/admin-api.openapi.yaml"))
            .expect("the OpenAPI document is valid YAML")
    })
}

/// Follows `$ref`s within the document.
fn resolve(mut node: &Value) -> &Value {
    while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
        let pointer = reference.strip_prefix('#').expect("local $ref");
        node = spec()
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {reference} does not resolve"));
    }
    node
}

/// The documented path template matching a concrete path.
fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    spec()["paths"].as_object()?.keys().find_map(|template| {
        let t: Vec<&str> = template.split('/').collect();
        let same = t.len() == parts.len()
            && t.iter()
                .zip(&parts)
                .all(|(t, p)| (t.starts_with('{') && !p.is_empty()) || t == p);
        same.then_some(template.as_str())
    })
}

/// Holds a reply to `method path` to the contract; panics with what differs.
/// Paths and methods the document does not have are not checked here (the route
/// table test covers them).
pub fn check(method: &str, path: &str, status: u16, body: &Value) {
    let Some(template) = template_of(path) else {
        return;
    };
    let Some(operation) = spec()["paths"][template].get(method.to_ascii_lowercase()) else {
        return;
    };
    let responses = &operation["responses"];
    let Some(response) = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
    else {
        panic!(
            "{method} {template} answered {status}, which the OpenAPI document does not list: {body}"
        );
    };
    let response = resolve(response);
    let schema = response
        .get("content")
        .and_then(|c| c.get("application/json"))
        .and_then(|m| m.get("schema"));
    match schema {
        Some(schema) => {
            if let Err(e) = validate(schema, body, "$") {
                panic!("{method} {template} {status}: {e}\nbody: {body}");
            }
        }
        None if response.get("content").is_none() => assert!(
            body.is_null(),
            "{method} {template} {status} is documented without a body, got {body}"
        ),
        None => {}
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        other => panic!("unknown schema type {other}"),
    }
}

/// Checks `value` against `schema`; the error names the JSON path.
pub fn validate(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            validate(s, value, at)?;
        }
    }
    if let Some(any) = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
        && !any.iter().any(|s| validate(s, value, at).is_ok())
    {
        return Err(format!("{at}: matches none of the alternatives"));
    }
    if let Some(t) = schema.get("type") {
        let names: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|n| type_matches(n, value)) {
            return Err(format!("{at}: expected {names:?}, got {value}"));
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array)
        && !value.is_null()
        && !values.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {values:?}"));
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !object.contains_key(name) {
                return Err(format!("{at}: required property {name} is missing"));
            }
        }
        for (name, v) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(s) => validate(s, v, &format!("{at}.{name}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: property {name} is not documented"));
                    }
                    Some(s @ Value::Object(_)) => validate(s, v, &format!("{at}.{name}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, v) in array.iter().enumerate() {
            validate(items, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

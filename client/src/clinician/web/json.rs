//! DICOM JSON answers (PS3.18 F.2), as the gateway writes them: `application/dicom+json`
//! with IS and DS values as JSON numbers.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use dicom_object::InMemDicomObject;

use super::WebError;

/// An `application/dicom+json` array of `objects`.
pub(crate) fn answer(objects: &[InMemDicomObject]) -> Result<Response, WebError> {
    let mut value = dicom_json::to_value(objects).map_err(|e| {
        WebError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write DICOM JSON: {e}"),
        )
    })?;
    numbers(&mut value);
    let mut response = (StatusCode::OK, value.to_string()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    Ok(response)
}

fn number(text: &str) -> Option<serde_json::Value> {
    let f = text.trim().parse::<f64>().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(serde_json::Value::from(f as i64))
    } else {
        serde_json::Number::from_f64(f).map(Into::into)
    }
}

fn numbers(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(numbers),
        serde_json::Value::Object(map) => {
            let numeric = matches!(map.get("vr").and_then(|v| v.as_str()), Some("IS" | "DS"));
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::Array(items) if numeric && key == "Value" => {
                        for item in items.iter_mut() {
                            if let Some(n) = item.as_str().and_then(number) {
                                *item = n;
                            }
                        }
                    }
                    _ => numbers(v),
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_and_ds_become_numbers() {
        let mut v = serde_json::json!([{
            "00201208": {"vr": "IS", "Value": ["12"]},
            "00280030": {"vr": "DS", "Value": ["0.5", "x"]},
            "00100020": {"vr": "LO", "Value": ["12"]}
        }]);
        numbers(&mut v);
        assert_eq!(v[0]["00201208"]["Value"][0], serde_json::json!(12));
        assert_eq!(v[0]["00280030"]["Value"][0], serde_json::json!(0.5));
        assert_eq!(v[0]["00280030"]["Value"][1], serde_json::json!("x"));
        assert_eq!(v[0]["00100020"]["Value"][0], serde_json::json!("12"));
    }
}

//! The `Accept` header of a WADO-RS request (PS3.18 8.7): media ranges with their
//! parameters (`type`, `transfer-syntax`) in order of preference.

use axum::http::HeaderMap;
use axum::http::header::ACCEPT;

/// One media range.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaRange {
    /// `type/subtype`, lower case (`*/*`, `multipart/related`, `application/dicom`).
    pub essence: String,
    /// Parameters, names lower case, values unquoted.
    pub params: Vec<(String, String)>,
    /// Quality, 0.0-1.0.
    pub q: f32,
}

impl MediaRange {
    /// A parameter's value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The media type of the parts a `multipart/related` range asks for (its `type`
    /// parameter, lower case).
    pub fn part_type(&self) -> Option<String> {
        self.param("type").map(str::to_ascii_lowercase)
    }
}

/// The ranges of every `Accept` header, best first (stable for equal quality);
/// ranges with `q=0` are dropped. No header at all is `*/*`.
pub fn parse(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = Vec::new();
    let mut any = false;
    for value in headers.get_all(ACCEPT) {
        any = true;
        let Ok(text) = value.to_str() else { continue };
        for item in split_outside_quotes(text, ',') {
            if let Some(range) = parse_range(&item) {
                ranges.push(range);
            }
        }
    }
    if !any {
        ranges.push(MediaRange {
            essence: "*/*".into(),
            params: Vec::new(),
            q: 1.0,
        });
    }
    ranges.retain(|r| r.q > 0.0);
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    ranges
}

fn parse_range(item: &str) -> Option<MediaRange> {
    let mut pieces = split_outside_quotes(item, ';').into_iter();
    let essence = pieces.next()?.trim().to_ascii_lowercase();
    if essence.is_empty() || !essence.contains('/') {
        return None;
    }
    let mut params = Vec::new();
    let mut q = 1.0;
    for piece in pieces {
        let Some((name, value)) = piece.split_once('=') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().trim_matches('"').to_string();
        if name == "q" {
            q = value.parse::<f32>().unwrap_or(1.0).clamp(0.0, 1.0);
        } else {
            params.push((name, value));
        }
    }
    Some(MediaRange { essence, params, q })
}

/// Splits at `sep` where it is not inside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            c if c == sep && !quoted => out.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ranges(value: &str) -> Vec<MediaRange> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        parse(&headers)
    }

    #[test]
    fn multipart_with_quoted_type_and_syntax() {
        let r = ranges(
            "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.1",
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].essence, "multipart/related");
        assert_eq!(r[0].part_type().as_deref(), Some("application/dicom"));
        assert_eq!(r[0].param("transfer-syntax"), Some("1.2.840.10008.1.2.1"));
    }

    #[test]
    fn quality_orders_and_zero_drops() {
        let r = ranges("application/json;q=0.5, application/dicom+json, image/png;q=0");
        let names: Vec<_> = r.iter().map(|r| r.essence.as_str()).collect();
        assert_eq!(names, ["application/dicom+json", "application/json"]);
    }

    #[test]
    fn no_header_is_anything() {
        let r = parse(&HeaderMap::new());
        assert_eq!(r[0].essence, "*/*");
    }

    #[test]
    fn a_comma_inside_quotes_does_not_split() {
        let r = ranges("multipart/related; type=\"a/b,c\", */*;q=0.1");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].part_type().as_deref(), Some("a/b,c"));
    }
}

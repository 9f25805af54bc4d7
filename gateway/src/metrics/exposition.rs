//! The two text formats a Prometheus scraper may ask for: OpenMetrics 1.0 (what the
//! registry writes; the default) and the classic Prometheus text format 0.0.4 (when
//! the `Accept` header prefers `text/plain`), chosen by the header's q-values.

/// A `/metrics` output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`.
    Classic,
}

impl Format {
    /// The Content-Type of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// The format an `Accept` header asks for: classic only when `text/plain` is
    /// preferred over (or offered without) `application/openmetrics-text`.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::OpenMetrics;
        };
        let (mut openmetrics, mut text) = (None::<f32>, None::<f32>);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/openmetrics-text" => &mut openmetrics,
                "text/plain" => &mut text,
                _ => continue,
            };
            *slot = Some(slot.map_or(q, |old| old.max(q)));
        }
        match (openmetrics, text) {
            (None, Some(t)) if t > 0.0 => Format::Classic,
            (Some(o), Some(t)) if t > o => Format::Classic,
            _ => Format::OpenMetrics,
        }
    }
}

/// Rewrites an OpenMetrics exposition in the classic 0.0.4 format: no `# EOF` and
/// no `# UNIT` lines, and counter families named as their `_total` samples (0.0.4
/// has no family/sample distinction).
pub(super) fn to_classic(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        match rewritten {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scraper_chooses() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some(
                "text/plain; version=0.0.4; q=0.9, application/openmetrics-text; q=0.2"
            )),
            Format::Classic
        );
        assert_eq!(Format::negotiate(Some("*/*")), Format::OpenMetrics);
        assert_eq!(Format::negotiate(None), Format::OpenMetrics);
    }

    #[test]
    fn counters_are_renamed_and_eof_dropped() {
        let om = "# HELP x_requests Requests.\n# TYPE x_requests counter\nx_requests_total 3\n\
                  # HELP x_depth Depth.\n# TYPE x_depth gauge\nx_depth 1\n# UNIT x_s seconds\n# EOF\n";
        let classic = to_classic(om);
        assert_eq!(
            classic,
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\nx_requests_total 3\n\
             # HELP x_depth Depth.\n# TYPE x_depth gauge\nx_depth 1\n"
        );
    }
}

//! Sharing rules (DESIGN.md Ingest step 3): whether an instance is forwarded to the
//! gateway or stays local-only. A per-study flag set by an administrator wins;
//! otherwise the first matching rule; otherwise the configured default.

use crate::config::{Destination, Rule, SharingConfig};

/// What the rules look at.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// Calling AE title of the sender.
    pub calling_ae: &'a str,
    /// Modality.
    pub modality: Option<&'a str>,
    /// Study Description.
    pub study_description: Option<&'a str>,
}

/// Decides where an instance goes.
pub fn route(config: &SharingConfig, study_flag: Option<bool>, facts: Facts<'_>) -> Destination {
    match study_flag {
        Some(true) => return Destination::Forward,
        Some(false) => return Destination::Local,
        None => {}
    }
    config
        .rules
        .iter()
        .find(|rule| matches(rule, facts))
        .map_or(config.default, |rule| rule.action)
}

fn matches(rule: &Rule, facts: Facts<'_>) -> bool {
    let same = |want: &Option<String>, have: Option<&str>| match want {
        None => true,
        Some(want) => have.is_some_and(|have| want.trim().eq_ignore_ascii_case(have.trim())),
    };
    let described = match &rule.study_description {
        None => true,
        Some(pattern) => facts
            .study_description
            .is_some_and(|d| glob(&pattern.to_lowercase(), &d.to_lowercase())),
    };
    same(&rule.calling_ae, Some(facts.calling_ae))
        && same(&rule.modality, facts.modality)
        && described
}

/// `*` and `?` wildcard match over characters.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        ae: Option<&str>,
        modality: Option<&str>,
        desc: Option<&str>,
        action: Destination,
    ) -> Rule {
        Rule {
            calling_ae: ae.map(Into::into),
            modality: modality.map(Into::into),
            study_description: desc.map(Into::into),
            action,
        }
    }

    #[test]
    fn first_match_wins_and_the_study_flag_overrides() {
        let config = SharingConfig {
            default: Destination::Forward,
            rules: vec![
                rule(None, None, Some("*research*"), Destination::Local),
                rule(Some("US_2"), Some("US"), None, Destination::Local),
            ],
        };
        let facts = |ae, modality, desc| Facts {
            calling_ae: ae,
            modality,
            study_description: desc,
        };
        assert_eq!(
            route(&config, None, facts("CT_1", Some("CT"), Some("Chest"))),
            Destination::Forward
        );
        assert_eq!(
            route(
                &config,
                None,
                facts("CT_1", Some("CT"), Some("Brain RESEARCH arm"))
            ),
            Destination::Local
        );
        assert_eq!(
            route(&config, None, facts("US_2", Some("US"), None)),
            Destination::Local
        );
        assert_eq!(
            route(&config, None, facts("US_2", Some("CT"), None)),
            Destination::Forward
        );
        assert_eq!(
            route(&config, Some(true), facts("US_2", Some("US"), None)),
            Destination::Forward
        );
        assert_eq!(
            route(&config, Some(false), facts("CT_1", Some("CT"), None)),
            Destination::Local
        );
    }

    #[test]
    fn glob_matches_like_a_person_expects() {
        assert!(glob("*research*", "my research study"));
        assert!(glob("ct?", "ct1"));
        assert!(!glob("ct?", "ct12"));
        assert!(glob("*", ""));
        assert!(!glob("a*b", "acd"));
    }
}

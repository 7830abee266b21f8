//! Which resources enforcement may touch: chosen only by tags, behind a hard deny-list that no
//! configuration can lift (anything tagged production or critical is never touched).

use std::collections::BTreeMap;

/// The tag that marks a node group or database as fair game.
pub const CRITICALITY_TAG: &str = "breakwater:criticality";
/// The tag that sets a node group's floor (default 0).
pub const FLOOR_TAG: &str = "breakwater:budget-floor";
/// The tag that records a node group's sizes before enforcement.
pub const BEFORE_TAG: &str = "breakwater:budget-before";

const ENVIRONMENT_TAGS: &[&str] = &["environment", "Environment", "env", "Env", "stage", "Stage"];
const PRODUCTION: &[&str] = &["prod", "production", "live", "prd"];
const NON_PRODUCTION: &[&str] = &[
    "dev",
    "development",
    "test",
    "testing",
    "qa",
    "staging",
    "stage",
    "sandbox",
    "demo",
];

/// Why a resource is protected, if it is.
pub fn protection(tags: &BTreeMap<String, String>) -> Option<String> {
    if let Some(value) = tags
        .get(CRITICALITY_TAG)
        .filter(|v| v.eq_ignore_ascii_case("critical"))
    {
        return Some(format!("{CRITICALITY_TAG}={value}"));
    }
    ENVIRONMENT_TAGS.iter().find_map(|key| {
        let value = tags.get(*key)?;
        PRODUCTION
            .iter()
            .any(|p| value.eq_ignore_ascii_case(p))
            .then(|| format!("{key}={value}"))
    })
}

/// Whether a node group may be scaled down: tagged non-critical and not protected.
pub fn node_group_eligible(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(reason) = protection(tags) {
        return Err(format!("protected ({reason})"));
    }
    match tags.get(CRITICALITY_TAG) {
        Some(v) if v.eq_ignore_ascii_case("non-critical") => Ok(()),
        _ => Err(format!("not tagged {CRITICALITY_TAG}=non-critical")),
    }
}

/// Whether a database may be stopped: tagged non-production (or non-critical) and not protected.
pub fn database_eligible(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(reason) = protection(tags) {
        return Err(format!("protected ({reason})"));
    }
    let non_production = ENVIRONMENT_TAGS
        .iter()
        .filter_map(|key| tags.get(*key))
        .any(|v| NON_PRODUCTION.iter().any(|n| v.eq_ignore_ascii_case(n)));
    let non_critical = tags
        .get(CRITICALITY_TAG)
        .is_some_and(|v| v.eq_ignore_ascii_case("non-critical"));
    if non_production || non_critical {
        Ok(())
    } else {
        Err("not tagged as non-production".to_string())
    }
}

/// A node group's floor from its tag (0 when absent or unreadable).
pub fn floor(tags: &BTreeMap<String, String>) -> i32 {
    tags.get(FLOOR_TAG)
        .and_then(|v| v.trim().parse().ok())
        .filter(|f: &i32| *f >= 0)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn production_or_critical_is_never_eligible_whatever_else_it_says() {
        let cases = [
            tags(&[
                (CRITICALITY_TAG, "non-critical"),
                ("environment", "production"),
            ]),
            tags(&[(CRITICALITY_TAG, "critical"), ("environment", "dev")]),
            tags(&[(CRITICALITY_TAG, "non-critical"), ("Env", "PROD")]),
        ];
        for t in &cases {
            assert!(
                node_group_eligible(t).unwrap_err().starts_with("protected"),
                "{t:?}"
            );
            assert!(
                database_eligible(t).unwrap_err().starts_with("protected"),
                "{t:?}"
            );
        }
    }

    #[test]
    fn only_tagged_resources_are_eligible() {
        assert!(node_group_eligible(&tags(&[(CRITICALITY_TAG, "non-critical")])).is_ok());
        assert!(node_group_eligible(&tags(&[("environment", "dev")])).is_err());
        assert!(node_group_eligible(&tags(&[])).is_err());
        assert!(database_eligible(&tags(&[("environment", "staging")])).is_ok());
        assert!(database_eligible(&tags(&[])).is_err());
    }

    #[test]
    fn floors_come_from_the_tag() {
        assert_eq!(floor(&tags(&[(FLOOR_TAG, "2")])), 2);
        assert_eq!(floor(&tags(&[(FLOOR_TAG, "-1")])), 0);
        assert_eq!(floor(&tags(&[])), 0);
    }
}

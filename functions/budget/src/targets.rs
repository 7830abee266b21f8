//! Which resources enforcement may touch: chosen only by tags, behind a hard deny-list that no
//! configuration can lift (anything tagged production or critical is never touched).

use std::collections::BTreeMap;

/// The tag that marks a node group or database as fair game.
pub const CRITICALITY_TAG: &str = "breakwater:criticality";
/// The tag that sets a node group's floor (default 0).
pub const FLOOR_TAG: &str = "breakwater:budget-floor";
/// The tag that records a node group's sizes before enforcement.
pub const BEFORE_TAG: &str = "breakwater:budget-before";

/// A tag condition exactly as IAM evaluates `StringEquals` on `aws:ResourceTag/<key>` (or
/// `rds:db-tag/<key>`): the key matches whatever its case — "Context key names are not
/// case-sensitive" (IAM User Guide, "IAM JSON policy elements: Condition") — and the value must be
/// one of `values` exactly, case included ("Case-sensitivity of context key values depends on the
/// condition operator": `StringEquals` is case-sensitive). The budget role's IAM conditions in
/// `template.yaml` say the same rule; a test reads them and fails when they drift apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagRule {
    /// The tag key (matched case-insensitively, as IAM does).
    pub key: &'static str,
    /// The values that make a resource eligible (matched exactly).
    pub values: &'static [&'static str],
}

/// Node groups enforcement may scale: `breakwater:criticality=non-critical`.
pub const NODE_GROUP_RULE: TagRule = TagRule {
    key: CRITICALITY_TAG,
    values: &["non-critical"],
};

/// Databases enforcement may stop: `environment` = one of the non-production values, lowercase.
pub const DATABASE_RULE: TagRule = TagRule {
    key: "environment",
    values: &[
        "dev",
        "development",
        "test",
        "testing",
        "qa",
        "staging",
        "stage",
        "sandbox",
        "demo",
    ],
};

/// The values of [`DATABASE_RULE`]'s key that mark production (compared ignoring case, as the
/// role's `NeverProduction` deny does with `StringEqualsIgnoreCase`).
pub const PRODUCTION: &[&str] = &["prod", "production", "live", "prd"];

/// Keys that may carry an environment; a production value under any of them protects the
/// resource (the deny-list is wider than the allow rule on purpose: it only ever refuses).
const PROTECTING_KEYS: &[&str] = &["environment", "env", "stage"];

impl TagRule {
    /// `Ok` when the tags satisfy the rule as IAM would; otherwise why not.
    pub fn check(&self, tags: &BTreeMap<String, String>) -> Result<(), String> {
        let found: Vec<(&String, &String)> = tags
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(self.key))
            .collect();
        match found.as_slice() {
            [] => Err(format!("not tagged {}={}", self.key, self.values.join("|"))),
            [(_, value)] if self.values.contains(&value.as_str()) => Ok(()),
            [(key, value)] => Err(format!(
                "{key}={value} is not one of {} (compared exactly, case included, as IAM does)",
                self.values.join("|")
            )),
            // Keys that differ only by case: which one IAM reads is not documented.
            many => Err(format!(
                "tagged {} more than once ({}); ambiguous",
                self.key,
                many.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// Why a resource is protected, if it is.
pub fn protection(tags: &BTreeMap<String, String>) -> Option<String> {
    tags.iter().find_map(|(key, value)| {
        let critical =
            key.eq_ignore_ascii_case(CRITICALITY_TAG) && value.eq_ignore_ascii_case("critical");
        let production = PROTECTING_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
            && PRODUCTION.iter().any(|p| value.eq_ignore_ascii_case(p));
        (critical || production).then(|| format!("{key}={value}"))
    })
}

/// Whether a node group may be scaled down: not protected, and [`NODE_GROUP_RULE`] holds.
pub fn node_group_eligible(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(reason) = protection(tags) {
        return Err(format!("protected ({reason})"));
    }
    NODE_GROUP_RULE.check(tags)
}

/// Whether a database may be stopped: not protected, and [`DATABASE_RULE`] holds.
pub fn database_eligible(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(reason) = protection(tags) {
        return Err(format!("protected ({reason})"));
    }
    DATABASE_RULE.check(tags)
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
    fn eligibility_matches_the_tag_key_in_any_case_and_the_value_exactly_as_iam_does() {
        // GIVEN databases tagged the ways people tag them
        // WHEN eligibility is decided
        // THEN it is what IAM's StringEquals on rds:db-tag/environment allows: any key case,
        // exact lowercase value, and nothing else (no env/stage keys, no criticality alone)
        for ok in [
            tags(&[("environment", "dev")]),
            tags(&[("Environment", "staging")]),
            tags(&[("ENVIRONMENT", "qa"), ("owner", "data")]),
        ] {
            assert_eq!(database_eligible(&ok), Ok(()), "{ok:?}");
        }
        for refused in [
            tags(&[("environment", "Dev")]),
            tags(&[("env", "dev")]),
            tags(&[("stage", "test")]),
            tags(&[(CRITICALITY_TAG, "non-critical")]),
            tags(&[("environment", "dev"), ("Environment", "staging")]),
        ] {
            assert!(database_eligible(&refused).is_err(), "{refused:?}");
        }
        // AND node groups the same way for breakwater:criticality=non-critical
        assert_eq!(
            node_group_eligible(&tags(&[("Breakwater:Criticality", "non-critical")])),
            Ok(())
        );
        let why = node_group_eligible(&tags(&[(CRITICALITY_TAG, "Non-Critical")])).unwrap_err();
        assert!(why.contains("case included"), "{why}");
    }

    #[test]
    fn floors_come_from_the_tag() {
        assert_eq!(floor(&tags(&[(FLOOR_TAG, "2")])), 2);
        assert_eq!(floor(&tags(&[(FLOOR_TAG, "-1")])), 0);
        assert_eq!(floor(&tags(&[])), 0);
    }
}

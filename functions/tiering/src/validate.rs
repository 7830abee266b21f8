//! Everything S3 would refuse with `MalformedXML` or `InvalidArgument`, checked before writing.

use std::collections::BTreeSet;

use breakwater::lifecycle::{LifecycleConfiguration, LifecycleRule, RuleFilter};

/// S3's limit on rules per configuration.
pub const MAX_RULES: usize = 1000;

fn is_infrequent(class: &str) -> bool {
    matches!(class, "STANDARD_IA" | "ONEZONE_IA")
}

/// The first problem S3 would refuse, naming the rule.
pub fn validate(config: &LifecycleConfiguration) -> Result<(), String> {
    if config.rules.len() > MAX_RULES {
        return Err(format!(
            "{} rules; S3 takes at most {MAX_RULES}",
            config.rules.len()
        ));
    }
    let legacy = config
        .rules
        .iter()
        .filter(|r| r.legacy_prefix.is_some())
        .count();
    if legacy > 0 && legacy < config.rules.len() {
        return Err("rules with the legacy Prefix element and rules with Filter cannot share a configuration".into());
    }
    let mut ids = BTreeSet::new();
    for rule in &config.rules {
        let name = rule.id.clone().unwrap_or_else(|| "(no id)".into());
        if let Some(id) = &rule.id {
            if id.is_empty() || id.chars().count() > 255 {
                return Err(format!("rule {name:?}: an ID must be 1 to 255 characters"));
            }
            if !ids.insert(id.clone()) {
                return Err(format!("rule {name:?}: the ID is used twice"));
            }
        }
        validate_rule(rule).map_err(|why| format!("rule {name:?}: {why}"))?;
    }
    Ok(())
}

fn validate_rule(rule: &LifecycleRule) -> Result<(), String> {
    match (&rule.filter, &rule.legacy_prefix) {
        (None, None) => return Err("needs a Filter".into()),
        (Some(_), Some(_)) => return Err("has both Filter and the legacy Prefix".into()),
        _ => {}
    }
    if let Some(RuleFilter::And {
        size_greater_than: Some(gt),
        size_less_than: Some(lt),
        ..
    }) = &rule.filter
    {
        if gt >= lt {
            return Err(format!(
                "ObjectSizeGreaterThan {gt} is not below ObjectSizeLessThan {lt}"
            ));
        }
    }
    let sizes = match &rule.filter {
        Some(RuleFilter::SizeGreaterThan { bytes } | RuleFilter::SizeLessThan { bytes }) => {
            vec![*bytes]
        }
        Some(RuleFilter::And {
            size_greater_than,
            size_less_than,
            ..
        }) => size_greater_than
            .iter()
            .chain(size_less_than)
            .copied()
            .collect(),
        _ => Vec::new(),
    };
    if sizes.iter().any(|b| *b < 0) {
        return Err("an object size bound is negative".into());
    }
    let has_action = !rule.transitions.is_empty()
        || !rule.noncurrent_transitions.is_empty()
        || rule.expiration.is_some()
        || rule.noncurrent_expiration.is_some()
        || rule.abort_incomplete_multipart_days.is_some();
    if !has_action {
        return Err("has no action".into());
    }
    let uses_days = rule.transitions.iter().any(|t| t.days.is_some())
        || rule.expiration.as_ref().is_some_and(|e| e.days.is_some());
    let uses_dates = rule.transitions.iter().any(|t| t.date.is_some())
        || rule.expiration.as_ref().is_some_and(|e| e.date.is_some());
    if uses_days && uses_dates {
        return Err("mixes Days and Date".into());
    }
    for t in &rule.transitions {
        if t.days.is_some() == t.date.is_some() {
            return Err(format!(
                "transition to {} needs exactly one of Days and Date",
                t.storage_class
            ));
        }
        if t.days.is_some_and(|d| d < 0) {
            return Err(format!(
                "transition to {} has negative days",
                t.storage_class
            ));
        }
    }
    let mut classes = BTreeSet::new();
    for t in &rule.transitions {
        if !classes.insert(&t.storage_class) {
            return Err(format!("two transitions to {}", t.storage_class));
        }
    }
    let infrequent_days = rule
        .transitions
        .iter()
        .filter(|t| is_infrequent(&t.storage_class))
        .filter_map(|t| t.days)
        .min();
    for t in &rule.transitions {
        let Some(days) = t.days else { continue };
        if is_infrequent(&t.storage_class) && days < 30 {
            return Err(format!(
                "transition to {} after {days} days; S3 needs at least 30",
                t.storage_class
            ));
        }
        if let Some(ia) = infrequent_days {
            if !is_infrequent(&t.storage_class) && days < ia + 30 {
                return Err(format!("transition to {} after {days} days is less than 30 days after the move to infrequent access ({ia})", t.storage_class));
            }
        }
    }
    for t in &rule.noncurrent_transitions {
        match t.noncurrent_days {
            Some(d) if is_infrequent(&t.storage_class) && d < 30 => {
                return Err(format!(
                    "noncurrent transition to {} after {d} days; S3 needs at least 30",
                    t.storage_class
                ))
            }
            Some(d) if d < 0 => return Err("a noncurrent transition has negative days".into()),
            None => {
                return Err(format!(
                    "noncurrent transition to {} needs NoncurrentDays",
                    t.storage_class
                ))
            }
            _ => {}
        }
    }
    if let Some(e) = &rule.expiration {
        if e.days.is_some_and(|d| d <= 0) {
            return Err("expiration days must be positive".into());
        }
        if e.expired_object_delete_marker.is_some() && (e.days.is_some() || e.date.is_some()) {
            return Err("ExpiredObjectDeleteMarker cannot be combined with Days or Date".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater::lifecycle::{Expiration, Transition};

    fn rule(id: &str, transitions: &[(&str, i32)]) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.into()),
            enabled: true,
            filter: Some(RuleFilter::Empty),
            transitions: transitions
                .iter()
                .map(|(c, d)| Transition {
                    days: Some(*d),
                    date: None,
                    storage_class: c.to_string(),
                })
                .collect(),
            ..LifecycleRule::default()
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> LifecycleConfiguration {
        LifecycleConfiguration {
            rules,
            transition_default_minimum_object_size: None,
        }
    }

    #[test]
    fn refuses_what_s3_refuses_naming_the_rule() {
        let cases: Vec<(LifecycleConfiguration, &str)> = vec![
            (
                config(vec![rule("a", &[("STANDARD_IA", 10)])]),
                "at least 30",
            ),
            (
                config(vec![rule("a", &[("STANDARD_IA", 30), ("GLACIER", 40)])]),
                "less than 30 days after",
            ),
            (
                config(vec![
                    rule("a", &[("GLACIER", 1)]),
                    rule("a", &[("GLACIER", 2)]),
                ]),
                "used twice",
            ),
            (
                config(vec![LifecycleRule {
                    filter: None,
                    ..rule("a", &[("GLACIER", 1)])
                }]),
                "needs a Filter",
            ),
            (config(vec![rule("a", &[])]), "no action"),
            (
                config(vec![LifecycleRule {
                    expiration: Some(Expiration {
                        days: None,
                        date: Some("2027-01-01T00:00:00Z".into()),
                        expired_object_delete_marker: None,
                    }),
                    ..rule("a", &[("GLACIER", 1)])
                }]),
                "mixes Days and Date",
            ),
            (
                config(vec![
                    LifecycleRule {
                        filter: None,
                        legacy_prefix: Some("logs/".into()),
                        ..rule("a", &[("GLACIER", 1)])
                    },
                    rule("b", &[("GLACIER", 1)]),
                ]),
                "legacy Prefix",
            ),
            (
                config(
                    (0..1001)
                        .map(|i| rule(&format!("r{i}"), &[("GLACIER", 1)]))
                        .collect(),
                ),
                "at most 1000",
            ),
        ];
        for (c, expected) in cases {
            let err = validate(&c).unwrap_err();
            assert!(err.contains(expected), "{err} (expected {expected})");
        }
        assert_eq!(
            validate(&config(vec![rule(
                "a",
                &[("STANDARD_IA", 30), ("GLACIER", 60), ("DEEP_ARCHIVE", 150)]
            )])),
            Ok(())
        );
    }
}

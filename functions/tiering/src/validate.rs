//! Everything S3 would refuse with `MalformedXML`, `InvalidArgument` or `InvalidRequest`, checked
//! before writing. Sources: the S3 API reference (`PutBucketLifecycleConfiguration`,
//! `LifecycleRule`, `LifecycleRuleFilter`, `LifecycleRuleAndOperator`, `LifecycleExpiration`) and
//! the S3 user guide ("Lifecycle configuration elements", "Transitioning objects"). A rule's
//! `Status` (required) and a `Filter` holding more than one top-level predicate (refused) cannot
//! be expressed in [`LifecycleRule`]: `enabled` is always written, and [`RuleFilter`] holds one
//! predicate or one `And`.

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
        prefix,
        tags,
        size_greater_than,
        size_less_than,
    }) = &rule.filter
    {
        // "a logical AND to two or more predicates" (LifecycleRuleAndOperator); S3 answers
        // MalformedXML to an And holding one (terraform-provider-aws #23882).
        let predicates = usize::from(prefix.is_some())
            + tags.len()
            + usize::from(size_greater_than.is_some())
            + usize::from(size_less_than.is_some());
        if predicates < 2 {
            return Err(format!(
                "an And filter needs two or more predicates, this one has {predicates} (S3 answers MalformedXML; a single predicate goes in the Filter itself)"
            ));
        }
        let keys: BTreeSet<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        if keys.len() < tags.len() {
            return Err("an And filter names a tag key twice".into());
        }
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
    let less_than = match &rule.filter {
        Some(RuleFilter::SizeLessThan { bytes }) => Some(*bytes),
        Some(RuleFilter::And { size_less_than, .. }) => *size_less_than,
        _ => None,
    };
    if less_than.is_some_and(|b| b < 1) {
        return Err("ObjectSizeLessThan must be at least 1".into());
    }
    let tag_filtered = match &rule.filter {
        Some(RuleFilter::Tag { .. }) => true,
        Some(RuleFilter::And { tags, .. }) => !tags.is_empty(),
        _ => false,
    };
    let size_filtered = !sizes.is_empty();
    if rule
        .expiration
        .as_ref()
        .is_some_and(|e| e.expired_object_delete_marker.is_some())
        && (tag_filtered || size_filtered)
    {
        // S3 user guide, lifecycle configuration elements: not with a tag-based filter;
        // aws/aws-cli #8239: MalformedXML with an object-size filter.
        return Err(
            "ExpiredObjectDeleteMarker cannot be used in a rule filtered by tags or object size"
                .into(),
        );
    }
    if tag_filtered && rule.abort_incomplete_multipart_days.is_some() {
        // S3: "AbortIncompleteMultipartUpload cannot be specified with Tags" (InvalidRequest).
        return Err(
            "AbortIncompleteMultipartUpload cannot be used in a rule filtered by tags".into(),
        );
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
    let dates = rule
        .transitions
        .iter()
        .filter_map(|t| t.date.as_deref())
        .chain(rule.expiration.as_ref().and_then(|e| e.date.as_deref()));
    for date in dates {
        // "The date value must conform to the ISO 8601 format. The time is always midnight UTC."
        if !is_midnight_utc(date) {
            return Err(format!("date {date:?} is not midnight UTC"));
        }
    }
    let mut classes = BTreeSet::new();
    for t in &rule.transitions {
        if !classes.insert(&t.storage_class) {
            return Err(format!("two transitions to {}", t.storage_class));
        }
    }
    let mut noncurrent_classes = BTreeSet::new();
    for t in &rule.noncurrent_transitions {
        if !noncurrent_classes.insert(&t.storage_class) {
            return Err(format!("two noncurrent transitions to {}", t.storage_class));
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
    let noncurrent_infrequent = rule
        .noncurrent_transitions
        .iter()
        .filter(|t| is_infrequent(&t.storage_class))
        .filter_map(|t| t.noncurrent_days)
        .min();
    if let Some(ia) = noncurrent_infrequent {
        for t in &rule.noncurrent_transitions {
            match t.noncurrent_days {
                Some(d) if !is_infrequent(&t.storage_class) && d < ia + 30 => {
                    return Err(format!("noncurrent transition to {} after {d} days is less than 30 days after the move to infrequent access ({ia})", t.storage_class));
                }
                _ => {}
            }
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

/// Whether an ISO 8601 date-time is midnight UTC (`2027-01-01T00:00:00Z`, fractions allowed).
fn is_midnight_utc(date: &str) -> bool {
    date.split_once('T').is_some_and(|(_, time)| {
        let time = time.trim_end_matches('Z');
        let time = time.split_once('.').map_or(time, |(whole, fraction)| {
            if fraction.chars().all(|c| c == '0') {
                whole
            } else {
                "not midnight"
            }
        });
        matches!(time, "00:00:00" | "00:00") && date.ends_with('Z')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater::lifecycle::{Expiration, NoncurrentTransition, Tag, Transition};

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

    fn filtered(filter: RuleFilter) -> LifecycleRule {
        LifecycleRule {
            filter: Some(filter),
            ..rule("a", &[("GLACIER", 1)])
        }
    }

    fn and(prefix: Option<&str>, tags: &[&str], gt: Option<i64>, lt: Option<i64>) -> RuleFilter {
        RuleFilter::And {
            prefix: prefix.map(str::to_string),
            tags: tags
                .iter()
                .map(|k| Tag {
                    key: k.to_string(),
                    value: "v".into(),
                })
                .collect(),
            size_greater_than: gt,
            size_less_than: lt,
        }
    }

    #[test]
    fn refuses_filters_and_actions_s3_refuses_although_each_element_is_well_formed() {
        // GIVEN rules S3 answers MalformedXML / InvalidRequest / InvalidArgument to
        let marker = Some(Expiration {
            days: None,
            date: None,
            expired_object_delete_marker: Some(true),
        });
        let cases: Vec<(LifecycleRule, &str)> = vec![
            // a one-predicate And (S3 API reference, LifecycleRuleAndOperator: "two or more")
            (
                filtered(and(None, &[], Some(1_677_722), None)),
                "two or more predicates",
            ),
            (
                filtered(and(Some("logs/"), &[], None, None)),
                "two or more predicates",
            ),
            (
                filtered(and(None, &[], None, None)),
                "two or more predicates",
            ),
            (
                filtered(and(None, &["team", "team"], None, None)),
                "tag key twice",
            ),
            (
                LifecycleRule {
                    filter: Some(RuleFilter::SizeGreaterThan { bytes: 1024 }),
                    expiration: marker.clone(),
                    transitions: Vec::new(),
                    ..rule("a", &[])
                },
                "ExpiredObjectDeleteMarker",
            ),
            (
                LifecycleRule {
                    filter: Some(RuleFilter::Tag {
                        tag: Tag {
                            key: "team".into(),
                            value: "x".into(),
                        },
                    }),
                    expiration: marker,
                    transitions: Vec::new(),
                    ..rule("a", &[])
                },
                "ExpiredObjectDeleteMarker",
            ),
            (
                LifecycleRule {
                    abort_incomplete_multipart_days: Some(7),
                    ..filtered(and(Some("logs/"), &["team"], None, None))
                },
                "AbortIncompleteMultipartUpload",
            ),
            (
                filtered(RuleFilter::SizeLessThan { bytes: 0 }),
                "at least 1",
            ),
            (
                LifecycleRule {
                    transitions: vec![Transition {
                        days: None,
                        date: Some("2027-01-01T12:00:00Z".into()),
                        storage_class: "GLACIER".into(),
                    }],
                    ..rule("a", &[])
                },
                "midnight UTC",
            ),
            (
                LifecycleRule {
                    noncurrent_transitions: vec![
                        NoncurrentTransition {
                            noncurrent_days: Some(30),
                            newer_noncurrent_versions: None,
                            storage_class: "STANDARD_IA".into(),
                        },
                        NoncurrentTransition {
                            noncurrent_days: Some(45),
                            newer_noncurrent_versions: None,
                            storage_class: "GLACIER".into(),
                        },
                    ],
                    ..rule("a", &[])
                },
                "less than 30 days after",
            ),
        ];
        // WHEN each is validated THEN it is refused with the reason
        for (r, expected) in cases {
            let err = validate(&config(vec![r.clone()])).unwrap_err();
            assert!(err.contains(expected), "{r:?}: {err} (expected {expected})");
        }
        // AND the shapes S3 takes pass: a two-predicate And, a lone size bound, a midnight date
        for ok in [
            filtered(and(Some("logs/"), &[], Some(1_677_722), None)),
            filtered(and(None, &[], Some(524_288), Some(1_677_723))),
            filtered(RuleFilter::SizeGreaterThan { bytes: 1_677_722 }),
            LifecycleRule {
                transitions: vec![Transition {
                    days: None,
                    date: Some("2027-01-01T00:00:00Z".into()),
                    storage_class: "GLACIER".into(),
                }],
                ..rule("a", &[])
            },
        ] {
            assert_eq!(validate(&config(vec![ok.clone()])), Ok(()), "{ok:?}");
        }
    }
}

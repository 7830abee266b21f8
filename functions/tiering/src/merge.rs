//! The merge that never clobbers: foreign rules are copied through unchanged, managed rules
//! (under [`MANAGED_PREFIX`]) are replaced by what the policy asks for, a managed rule that would
//! change what a foreign rule does to its objects stops the merge, and a merged configuration
//! equal to the current one is a true no-op.
//!
//! Overlap is judged as S3 resolves it: where several rules apply to one object, the cheapest
//! storage class reached wins and an expiration beats a transition. A managed rule changes a
//! foreign rule's behaviour when, for objects both select, it would move them to a class cheaper
//! than the foreign rule has them in at that age, before the foreign rule expires them.

use breakwater::lifecycle::{LifecycleConfiguration, LifecycleRule, RuleFilter, Scope, Tag};

use crate::policy::{Policy, MANAGED_PREFIX};
use crate::validate::validate;

/// What the merge decided for one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merge {
    /// The merged configuration equals the current one: nothing to write.
    Unchanged,
    /// Write this configuration.
    Write(LifecycleConfiguration),
    /// Leave the bucket alone, for this reason (reported).
    Skip(String),
}

/// Whether a rule is Breakwater's.
pub fn is_managed(rule: &LifecycleRule) -> bool {
    rule.id
        .as_deref()
        .is_some_and(|id| id.starts_with(MANAGED_PREFIX))
}

/// Merges the policy's managed rules into `current`.
pub fn merge(current: &LifecycleConfiguration, policy: &Policy) -> Merge {
    let foreign: Vec<&LifecycleRule> = current.rules.iter().filter(|r| !is_managed(r)).collect();
    if foreign.iter().any(|r| r.legacy_prefix.is_some()) {
        return Merge::Skip(
            "foreign rules use the legacy rule-level Prefix; S3 refuses a configuration that mixes it with Filter rules".into(),
        );
    }
    let managed = policy.managed_rules();
    for f in foreign.iter().filter(|f| f.enabled) {
        for m in &managed {
            if let Some(why) = changes_behaviour(f, m) {
                return Merge::Skip(format!(
                    "managed rule {} would change what foreign rule {:?} does: {why}; scope tiering away with the breakwater:tiering-prefixes tag",
                    m.id.as_deref().unwrap_or_default(),
                    f.id.as_deref().unwrap_or("(no id)")
                ));
            }
        }
    }
    let merged = LifecycleConfiguration {
        rules: foreign.into_iter().cloned().chain(managed).collect(),
        transition_default_minimum_object_size: current
            .transition_default_minimum_object_size
            .clone(),
    };
    if let Err(why) = validate(&merged) {
        return Merge::Skip(format!(
            "the merged configuration would be refused by S3: {why}"
        ));
    }
    if canonical(&merged) == canonical(current) {
        Merge::Unchanged
    } else {
        Merge::Write(merged)
    }
}

/// Storage classes from dearest to cheapest to store.
fn rank(class: &str) -> u8 {
    match class {
        "STANDARD" => 0,
        "INTELLIGENT_TIERING" => 1,
        "STANDARD_IA" => 2,
        "ONEZONE_IA" => 3,
        "GLACIER_IR" => 4,
        "GLACIER" => 5,
        "DEEP_ARCHIVE" => 6,
        _ => 0,
    }
}

/// Why managed rule `m` would change what foreign rule `f` does to the objects both select.
fn changes_behaviour(f: &LifecycleRule, m: &LifecycleRule) -> Option<String> {
    if !f.scope().overlaps(&m.scope()) {
        return None;
    }
    // The age of an object on a given date is unknown: a dated action may always be affected.
    if f.transitions.iter().any(|t| t.date.is_some())
        || f.expiration.as_ref().is_some_and(|e| e.date.is_some())
    {
        return Some("it acts on a date, and which objects are how old then is unknown".into());
    }
    let current = steps(
        f.transitions
            .iter()
            .map(|t| (t.days, t.storage_class.as_str())),
    );
    let expiry = f.expiration.as_ref().and_then(|e| e.days);
    if let Some(why) = first_change(
        &current,
        expiry,
        &steps(
            m.transitions
                .iter()
                .map(|t| (t.days, t.storage_class.as_str())),
        ),
        "current versions",
    ) {
        return Some(why);
    }
    let noncurrent = steps(
        f.noncurrent_transitions
            .iter()
            .map(|t| (t.noncurrent_days, t.storage_class.as_str())),
    );
    let noncurrent_expiry = f
        .noncurrent_expiration
        .as_ref()
        .and_then(|e| e.noncurrent_days);
    let managed_noncurrent = steps(
        m.noncurrent_transitions
            .iter()
            .map(|t| (t.noncurrent_days, t.storage_class.as_str())),
    );
    first_change(
        &noncurrent,
        noncurrent_expiry,
        &managed_noncurrent,
        "noncurrent versions",
    )
}

fn steps<'a>(items: impl Iterator<Item = (Option<i32>, &'a str)>) -> Vec<(i32, u8, &'a str)> {
    let mut out: Vec<(i32, u8, &str)> = items
        .filter_map(|(days, class)| days.map(|d| (d, rank(class), class)))
        .collect();
    out.sort();
    out
}

/// The first managed step that moves objects somewhere cheaper than the foreign rule has them at
/// that age, before the foreign rule expires them.
fn first_change(
    foreign: &[(i32, u8, &str)],
    expiry: Option<i32>,
    managed: &[(i32, u8, &str)],
    which: &str,
) -> Option<String> {
    for (day, rank, class) in managed {
        if expiry.is_some_and(|e| e <= *day) {
            return None;
        }
        let held = foreign
            .iter()
            .filter(|(d, _, _)| d <= day)
            .map(|(_, r, _)| *r)
            .max()
            .unwrap_or(0);
        if *rank > held {
            return Some(format!("{which} would move to {class} at day {day}"));
        }
    }
    None
}

/// Whether two configurations do the same thing (rule order and filter shapes aside): what a
/// read-back after a write must show.
pub fn equivalent(a: &LifecycleConfiguration, b: &LifecycleConfiguration) -> bool {
    canonical(a) == canonical(b)
}

/// A rule reduced to what S3 does with it, for comparison: filter shape, empty strings and
/// element order do not matter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CanonicalRule {
    id: String,
    enabled: bool,
    legacy: bool,
    scope: (String, Vec<Tag>, Option<i64>, Option<i64>),
    transitions: Vec<(Option<i32>, Option<String>, String)>,
    noncurrent: Vec<(Option<i32>, Option<i32>, String)>,
    expiration: Option<(Option<i32>, Option<String>, Option<bool>)>,
    noncurrent_expiration: Option<(Option<i32>, Option<i32>)>,
    abort_days: Option<i32>,
}

fn canonical(config: &LifecycleConfiguration) -> (Vec<CanonicalRule>, Option<String>) {
    let mut rules: Vec<CanonicalRule> = config
        .rules
        .iter()
        .map(|r| {
            let s: Scope = r.scope();
            let mut transitions: Vec<_> = r
                .transitions
                .iter()
                .map(|t| (t.days, t.date.clone(), t.storage_class.clone()))
                .collect();
            transitions.sort();
            let mut noncurrent: Vec<_> = r
                .noncurrent_transitions
                .iter()
                .map(|t| {
                    (
                        t.noncurrent_days,
                        t.newer_noncurrent_versions,
                        t.storage_class.clone(),
                    )
                })
                .collect();
            noncurrent.sort();
            CanonicalRule {
                id: r.id.clone().unwrap_or_default(),
                enabled: r.enabled,
                legacy: r.legacy_prefix.is_some() && !matches!(r.filter, Some(RuleFilter::Empty)),
                scope: (s.prefix, s.tags, s.size_greater_than, s.size_less_than),
                transitions,
                noncurrent,
                expiration: r
                    .expiration
                    .as_ref()
                    .map(|e| (e.days, e.date.clone(), e.expired_object_delete_marker)),
                noncurrent_expiration: r
                    .noncurrent_expiration
                    .as_ref()
                    .map(|e| (e.noncurrent_days, e.newer_noncurrent_versions)),
                abort_days: r.abort_incomplete_multipart_days,
            }
        })
        .collect();
    rules.sort();
    // Unset means S3's default for configurations that do not say: 128 KiB for every class.
    let size_default = config
        .transition_default_minimum_object_size
        .clone()
        .unwrap_or_else(|| "all_storage_classes_128K".into());
    (rules, Some(size_default))
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater::lifecycle::{Expiration, Transition};

    fn foreign(
        id: &str,
        prefix: &str,
        transitions: &[(&str, i32)],
        expire: Option<i32>,
    ) -> LifecycleRule {
        LifecycleRule {
            id: Some(id.into()),
            enabled: true,
            filter: Some(RuleFilter::Prefix {
                prefix: prefix.into(),
            }),
            transitions: transitions
                .iter()
                .map(|(c, d)| Transition {
                    days: Some(*d),
                    date: None,
                    storage_class: c.to_string(),
                })
                .collect(),
            expiration: expire.map(|d| Expiration {
                days: Some(d),
                date: None,
                expired_object_delete_marker: None,
            }),
            ..LifecycleRule::default()
        }
    }

    fn config(rules: Vec<LifecycleRule>) -> LifecycleConfiguration {
        LifecycleConfiguration {
            rules,
            transition_default_minimum_object_size: Some("varies_by_storage_class".into()),
        }
    }

    #[test]
    fn an_empty_bucket_gets_the_bands_and_a_second_merge_is_a_no_op() {
        let Merge::Write(merged) = merge(&LifecycleConfiguration::default(), &Policy::default())
        else {
            panic!()
        };
        assert_eq!(merged.rules.len(), 2);
        assert_eq!(merge(&merged, &Policy::default()), Merge::Unchanged);
    }

    #[test]
    fn a_foreign_rule_that_expires_first_coexists_and_is_kept_as_it_was() {
        // logs/ are deleted after 7 days: tiering at 30 days never touches them.
        let logs = foreign("expire-logs", "logs/", &[], Some(7));
        let current = config(vec![logs.clone()]);
        let Merge::Write(merged) = merge(&current, &Policy::default()) else {
            panic!()
        };
        assert_eq!(merged.rules[0], logs);
        assert_eq!(
            merged.transition_default_minimum_object_size.as_deref(),
            Some("varies_by_storage_class")
        );
    }

    #[test]
    fn a_foreign_rule_whose_objects_would_move_sooner_stops_the_merge() {
        // data/ goes to IA at 60 days; the managed band would move it at 30.
        let current = config(vec![foreign(
            "data-ia",
            "data/",
            &[("STANDARD_IA", 60)],
            None,
        )]);
        let Merge::Skip(why) = merge(&current, &Policy::default()) else {
            panic!()
        };
        assert!(
            why.contains("data-ia") && why.contains("STANDARD_IA at day 30"),
            "{why}"
        );
        // Scoped away to another prefix, tiering proceeds.
        let scoped = Policy {
            prefixes: vec!["exports/".into()],
            ..Policy::default()
        };
        assert!(matches!(merge(&current, &scoped), Merge::Write(_)));
    }

    #[test]
    fn a_foreign_rule_already_cheaper_and_sooner_is_not_changed() {
        let current = config(vec![foreign("deep", "", &[("DEEP_ARCHIVE", 1)], None)]);
        assert!(matches!(
            merge(&current, &Policy::default()),
            Merge::Write(_)
        ));
    }

    #[test]
    fn stale_managed_rules_are_replaced_and_filter_shapes_do_not_count_as_changes() {
        let mut old = Policy::default().managed_rules();
        old[0].transitions[0].days = Some(45);
        let Merge::Write(merged) = merge(&config(old), &Policy::default()) else {
            panic!()
        };
        assert_eq!(merged.rules[0].transitions[0].days, Some(30));
        // The same rules with the empty filter written as <Filter><Prefix/></Filter>: no write.
        let mut equivalent = merged.clone();
        equivalent.rules.push(LifecycleRule {
            id: Some("x".into()),
            enabled: true,
            filter: Some(RuleFilter::Empty),
            transitions: vec![Transition {
                days: Some(1),
                date: None,
                storage_class: "GLACIER".into(),
            }],
            ..LifecycleRule::default()
        });
        let mut rewritten = equivalent.clone();
        rewritten.rules.last_mut().unwrap().filter = Some(RuleFilter::Prefix {
            prefix: String::new(),
        });
        rewritten.rules.reverse();
        assert_eq!(canonical(&equivalent), canonical(&rewritten));
    }

    #[test]
    fn a_foreign_rule_acting_on_a_date_is_never_overridden() {
        let dated = LifecycleRule {
            transitions: vec![Transition {
                days: None,
                date: Some("2027-01-01T00:00:00Z".into()),
                storage_class: "GLACIER".into(),
            }],
            ..foreign("dated", "", &[], None)
        };
        assert!(
            matches!(merge(&config(vec![dated]), &Policy::default()), Merge::Skip(why) if why.contains("date"))
        );
    }

    #[test]
    fn legacy_prefix_configurations_are_skipped_not_rewritten() {
        let legacy = LifecycleRule {
            filter: None,
            legacy_prefix: Some("tmp/".into()),
            ..foreign("old", "", &[], Some(1))
        };
        assert!(
            matches!(merge(&config(vec![legacy]), &Policy::default()), Merge::Skip(why) if why.contains("legacy"))
        );
    }
}

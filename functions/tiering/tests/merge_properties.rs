//! Properties of the merge over generated configurations and policies: foreign rules come out
//! identical and in order, merging twice equals merging once, every merged configuration passes
//! the validator, and the small-object setting is written back as read.

use breakwater::lifecycle::{
    Expiration, LifecycleConfiguration, LifecycleRule, RuleFilter, Tag, Transition,
};
use proptest::prelude::*;
use tiering::merge::{is_managed, merge, Merge};
use tiering::policy::Policy;
use tiering::validate::validate;

fn filter() -> impl Strategy<Value = Option<RuleFilter>> {
    let prefix = prop::sample::select(vec!["", "logs/", "logs/app/", "data/", "exports/", "tmp"]);
    prop_oneof![
        Just(Some(RuleFilter::Empty)),
        prefix.clone().prop_map(|p| Some(RuleFilter::Prefix {
            prefix: p.to_string()
        })),
        Just(Some(RuleFilter::Tag {
            tag: Tag {
                key: "team".into(),
                value: "data".into()
            }
        })),
        (0i64..4_000_000).prop_map(|b| Some(RuleFilter::SizeGreaterThan { bytes: b })),
        (prefix, 0i64..1_000_000, 1_000_001i64..8_000_000).prop_map(|(p, gt, lt)| Some(
            RuleFilter::And {
                prefix: Some(p.to_string()),
                tags: vec![],
                size_greater_than: Some(gt),
                size_less_than: Some(lt),
            }
        )),
    ]
}

fn foreign_rule(i: usize) -> impl Strategy<Value = LifecycleRule> {
    let class = prop::sample::select(vec!["STANDARD_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE"]);
    (
        filter(),
        any::<bool>(),
        prop::option::of((class, 0i32..800)),
        prop::option::of(1i32..2000),
        prop::option::of(1i32..30),
    )
        .prop_map(move |(filter, enabled, transition, expire, abort)| {
            let mut rule = LifecycleRule {
                id: Some(format!("team-rule-{i}")),
                enabled,
                filter,
                transitions: transition
                    .map(|(c, d)| Transition {
                        days: Some(if c == "STANDARD_IA" { d.max(30) } else { d }),
                        date: None,
                        storage_class: c.to_string(),
                    })
                    .into_iter()
                    .collect(),
                expiration: expire.map(|d| Expiration {
                    days: Some(d),
                    date: None,
                    expired_object_delete_marker: None,
                }),
                abort_incomplete_multipart_days: abort,
                ..LifecycleRule::default()
            };
            if rule.transitions.is_empty()
                && rule.expiration.is_none()
                && rule.abort_incomplete_multipart_days.is_none()
            {
                rule.abort_incomplete_multipart_days = Some(7);
            }
            rule
        })
}

fn configuration() -> impl Strategy<Value = LifecycleConfiguration> {
    (0usize..6)
        .prop_flat_map(|n| (0..n).map(foreign_rule).collect::<Vec<_>>())
        .prop_flat_map(|rules| {
            let size = prop::option::of(prop::sample::select(vec![
                "all_storage_classes_128K",
                "varies_by_storage_class",
            ]));
            (Just(rules), size, any::<bool>())
        })
        .prop_map(|(mut rules, size, with_stale_managed)| {
            if with_stale_managed {
                // An older version of Breakwater's own rules, with other days.
                let mut stale = Policy::default().managed_rules();
                stale[0].transitions[0].days = Some(60);
                rules.extend(stale);
            }
            LifecycleConfiguration {
                rules,
                transition_default_minimum_object_size: size.map(str::to_string),
            }
        })
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        30i32..120,
        30i32..200,
        90i32..800,
        prop::sample::subsequence(vec!["logs/", "data/", "exports/"], 0..3),
        any::<bool>(),
    )
        .prop_map(|(warm, gap, archive_gap, prefixes, versioned)| Policy {
            warm_days: warm,
            cold_days: warm + gap,
            archive_days: warm + gap + archive_gap,
            prefixes: prefixes.into_iter().map(str::to_string).collect(),
            versioned,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn foreign_rules_are_identical_and_in_order_after_a_merge(current in configuration(), policy in policy()) {
        if let Merge::Write(merged) = merge(&current, &policy) {
            let before: Vec<&LifecycleRule> = current.rules.iter().filter(|r| !is_managed(r)).collect();
            let after: Vec<&LifecycleRule> = merged.rules.iter().filter(|r| !is_managed(r)).collect();
            prop_assert_eq!(before, after);
            let managed: Vec<LifecycleRule> = merged.rules.iter().filter(|r| is_managed(r)).cloned().collect();
            prop_assert_eq!(managed, policy.managed_rules());
        }
    }

    #[test]
    fn merging_twice_equals_merging_once(current in configuration(), policy in policy()) {
        match merge(&current, &policy) {
            Merge::Write(merged) => prop_assert_eq!(merge(&merged, &policy), Merge::Unchanged),
            Merge::Unchanged => prop_assert_eq!(merge(&current, &policy), Merge::Unchanged),
            Merge::Skip(_) => {}
        }
    }

    #[test]
    fn every_merged_configuration_passes_the_validator(current in configuration(), policy in policy()) {
        if let Merge::Write(merged) = merge(&current, &policy) {
            prop_assert_eq!(validate(&merged), Ok(()));
        }
    }

    #[test]
    fn the_small_object_setting_is_written_back_as_read(current in configuration(), policy in policy()) {
        if let Merge::Write(merged) = merge(&current, &policy) {
            prop_assert_eq!(merged.transition_default_minimum_object_size, current.transition_default_minimum_object_size);
        }
    }

    #[test]
    fn an_empty_bucket_is_always_written(policy in policy()) {
        // Guards the properties above against vacuity: an empty bucket is always written.
        prop_assert!(matches!(merge(&LifecycleConfiguration::default(), &policy), Merge::Write(_)));
    }
}

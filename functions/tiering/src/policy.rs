//! The tiering policy of a bucket, from its tags, and the managed rules it calls for: hot →
//! warm (Standard-IA) → cold (Glacier) → archive (Deep Archive), in object-size bands so that
//! each hop only moves objects that pay for it.

use std::collections::BTreeMap;

use breakwater::lifecycle::{LifecycleRule, NoncurrentTransition, RuleFilter, Transition};

/// Managed rules carry this id prefix; every other rule is foreign and never edited.
pub const MANAGED_PREFIX: &str = "breakwater-tiering-";
/// `on` opts a bucket in, `off` out.
pub const OPT_IN_TAG: &str = "breakwater:tiering";
/// `warm:cold:archive` days, e.g. `30:90:365`.
pub const DAYS_TAG: &str = "breakwater:tiering-days";
/// Space-separated key prefixes to tier instead of the whole bucket, e.g. `logs/ exports/`.
pub const PREFIXES_TAG: &str = "breakwater:tiering-prefixes";

/// Below this size, Standard → Standard-IA costs more than it saves (~0.5 MiB; IA bills
/// 128 KiB minimum per object and charges per transition).
pub const WARM_MIN_BYTES: i64 = 512 * 1024;
/// Below this size, Glacier → Deep Archive does not pay back within a year (~1.6 MiB: both add
/// 40 KiB of overhead per object, and the transition costs $0.05 per 1,000).
pub const ARCHIVE_MIN_BYTES: i64 = 1_677_722;

/// A bucket's tiering policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Days to Standard-IA.
    pub warm_days: i32,
    /// Days to Glacier Flexible Retrieval.
    pub cold_days: i32,
    /// Days to Deep Archive.
    pub archive_days: i32,
    /// Prefixes to tier (empty: the whole bucket).
    pub prefixes: Vec<String>,
    /// Whether the bucket keeps versions (noncurrent versions get the same schedule).
    pub versioned: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            warm_days: 30,
            cold_days: 90,
            archive_days: 365,
            prefixes: Vec::new(),
            versioned: false,
        }
    }
}

/// Why a bucket is not tiered, or what is wrong with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyDecision {
    /// Tier it with this policy.
    Tier(Policy),
    /// Not opted in, or opted out.
    NotOptedIn(String),
    /// A tag is malformed (named), nothing is changed.
    BadTag(String),
}

impl Policy {
    /// The policy a bucket's tags ask for.
    pub fn from_tags(tags: &BTreeMap<String, String>, versioned: bool) -> PolicyDecision {
        match tags.get(OPT_IN_TAG).map(|v| v.trim().to_ascii_lowercase()) {
            Some(v) if v == "on" => {}
            Some(v) if v == "off" => {
                return PolicyDecision::NotOptedIn(format!("{OPT_IN_TAG}=off"))
            }
            Some(v) => {
                return PolicyDecision::BadTag(format!("{OPT_IN_TAG}={v:?}: expected on or off"))
            }
            None => return PolicyDecision::NotOptedIn(format!("no {OPT_IN_TAG} tag")),
        }
        let mut policy = Policy {
            versioned,
            ..Policy::default()
        };
        if let Some(days) = tags.get(DAYS_TAG) {
            let parts: Vec<Option<i32>> = days.split(':').map(|d| d.trim().parse().ok()).collect();
            let [Some(warm), Some(cold), Some(archive)] = parts[..] else {
                return PolicyDecision::BadTag(format!(
                    "{DAYS_TAG}={days:?}: expected warm:cold:archive days, e.g. 30:90:365"
                ));
            };
            if warm < 30 || cold < warm + 30 || archive < cold + 90 {
                return PolicyDecision::BadTag(format!(
                    "{DAYS_TAG}={days:?}: S3 needs warm ≥ 30, cold ≥ warm + 30 and archive ≥ cold + 90 days"
                ));
            }
            (policy.warm_days, policy.cold_days, policy.archive_days) = (warm, cold, archive);
        }
        if let Some(prefixes) = tags.get(PREFIXES_TAG) {
            policy.prefixes = prefixes.split_whitespace().map(str::to_string).collect();
            policy.prefixes.sort();
            policy.prefixes.dedup();
            if policy.prefixes.iter().any(|p| p.len() > 200) {
                return PolicyDecision::BadTag(format!(
                    "{PREFIXES_TAG}: a prefix is longer than 200 characters"
                ));
            }
        }
        PolicyDecision::Tier(policy)
    }

    /// The managed rules: per prefix (or the whole bucket), one band for objects worth moving
    /// to warm and cold but not to archive, and one for objects worth every hop. Objects of
    /// 512 KiB or less stay where they are.
    pub fn managed_rules(&self) -> Vec<LifecycleRule> {
        let scopes: Vec<Option<&str>> = if self.prefixes.is_empty() {
            vec![None]
        } else {
            self.prefixes.iter().map(|p| Some(p.as_str())).collect()
        };
        let mut rules = Vec::new();
        for (i, prefix) in scopes.into_iter().enumerate() {
            let suffix = if prefix.is_some() {
                format!("-p{i}")
            } else {
                String::new()
            };
            let band = |name: &str,
                        greater_than: i64,
                        less_than: Option<i64>,
                        classes: &[(&str, i32)]| LifecycleRule {
                id: Some(format!("{MANAGED_PREFIX}{name}{suffix}")),
                enabled: true,
                legacy_prefix: None,
                filter: Some(band_filter(prefix, greater_than, less_than)),
                transitions: classes
                    .iter()
                    .map(|(class, days)| Transition {
                        days: Some(*days),
                        date: None,
                        storage_class: class.to_string(),
                    })
                    .collect(),
                noncurrent_transitions: if self.versioned {
                    classes
                        .iter()
                        .map(|(class, days)| NoncurrentTransition {
                            noncurrent_days: Some(*days),
                            newer_noncurrent_versions: None,
                            storage_class: class.to_string(),
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                expiration: None,
                noncurrent_expiration: None,
                abort_incomplete_multipart_days: None,
            };
            rules.push(band(
                "warm-cold",
                WARM_MIN_BYTES,
                Some(ARCHIVE_MIN_BYTES + 1),
                &[("STANDARD_IA", self.warm_days), ("GLACIER", self.cold_days)],
            ));
            rules.push(band(
                "archive",
                ARCHIVE_MIN_BYTES,
                None,
                &[
                    ("STANDARD_IA", self.warm_days),
                    ("GLACIER", self.cold_days),
                    ("DEEP_ARCHIVE", self.archive_days),
                ],
            ));
        }
        rules
    }
}

/// The filter of one band. S3 takes `And` only over two or more predicates ("a logical AND to
/// two or more predicates", S3 API reference, `LifecycleRuleAndOperator`) and answers
/// `MalformedXML` to an `And` holding one; a lone size bound is written as the `Filter`'s own
/// `ObjectSizeGreaterThan` ("A Filter can have exactly one of Prefix, Tag,
/// ObjectSizeGreaterThan, ObjectSizeLessThan, or And", `LifecycleRuleFilter`).
fn band_filter(prefix: Option<&str>, greater_than: i64, less_than: Option<i64>) -> RuleFilter {
    if prefix.is_none() && less_than.is_none() {
        return RuleFilter::SizeGreaterThan {
            bytes: greater_than,
        };
    }
    RuleFilter::And {
        prefix: prefix.map(str::to_string),
        tags: Vec::new(),
        size_greater_than: Some(greater_than),
        size_less_than: less_than,
    }
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
    fn only_opted_in_buckets_are_tiered_and_bad_tags_are_named() {
        assert!(matches!(
            Policy::from_tags(&tags(&[]), false),
            PolicyDecision::NotOptedIn(_)
        ));
        assert!(matches!(
            Policy::from_tags(&tags(&[(OPT_IN_TAG, "off")]), false),
            PolicyDecision::NotOptedIn(_)
        ));
        assert_eq!(
            Policy::from_tags(&tags(&[(OPT_IN_TAG, "On")]), true),
            PolicyDecision::Tier(Policy {
                versioned: true,
                ..Policy::default()
            })
        );
        for (k, v) in [
            (OPT_IN_TAG, "yes"),
            (DAYS_TAG, "10:90:365"),
            (DAYS_TAG, "30:40:365"),
            (DAYS_TAG, "30-90-365"),
        ] {
            let decision = Policy::from_tags(&tags(&[(OPT_IN_TAG, "on"), (k, v)]), false);
            assert!(
                matches!(&decision, PolicyDecision::BadTag(m) if m.contains(k)),
                "{k}={v}: {decision:?}"
            );
        }
    }

    #[test]
    fn bands_leave_small_objects_and_archive_only_large_ones() {
        let policy = match Policy::from_tags(
            &tags(&[
                (OPT_IN_TAG, "on"),
                (PREFIXES_TAG, "logs/ data/"),
                (DAYS_TAG, "45:120:400"),
            ]),
            false,
        ) {
            PolicyDecision::Tier(p) => p,
            other => panic!("{other:?}"),
        };
        let rules = policy.managed_rules();
        assert_eq!(rules.len(), 4);
        let warm = &rules[0];
        assert_eq!(warm.id.as_deref(), Some("breakwater-tiering-warm-cold-p0"));
        assert_eq!(warm.scope().prefix, "data/");
        assert_eq!(warm.scope().size_greater_than, Some(WARM_MIN_BYTES));
        assert!(warm
            .transitions
            .iter()
            .all(|t| t.storage_class != "DEEP_ARCHIVE"));
        let archive = &rules[1];
        assert_eq!(
            archive
                .transitions
                .last()
                .map(|t| (t.storage_class.as_str(), t.days)),
            Some(("DEEP_ARCHIVE", Some(400)))
        );
        assert!(
            rules
                .iter()
                .all(|r| r.expiration.is_none() && r.noncurrent_expiration.is_none()),
            "tiering never expires"
        );
    }

    #[test]
    fn the_whole_bucket_archive_band_is_a_lone_size_filter_not_a_one_predicate_and() {
        // GIVEN a bucket opted in without prefixes (the default policy)
        let policy = Policy::default();
        // WHEN its managed rules are built
        let rules = policy.managed_rules();
        // THEN the archive band filters on size alone, the way S3 takes one predicate, and
        // every And carries at least two predicates
        assert_eq!(
            rules[1].filter,
            Some(RuleFilter::SizeGreaterThan {
                bytes: ARCHIVE_MIN_BYTES
            })
        );
        assert_eq!(
            rules[0].filter,
            Some(RuleFilter::And {
                prefix: None,
                tags: Vec::new(),
                size_greater_than: Some(WARM_MIN_BYTES),
                size_less_than: Some(ARCHIVE_MIN_BYTES + 1),
            })
        );
        let config = breakwater::lifecycle::LifecycleConfiguration {
            rules,
            transition_default_minimum_object_size: None,
        };
        assert_eq!(crate::validate::validate(&config), Ok(()));
    }
}

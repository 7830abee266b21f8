//! In-memory S3 buckets: the fake of [`Buckets`], with tags, facts and lifecycle configurations
//! as S3 keeps them, the calls made, and knobs to make a call fail.
//!
//! It refuses what S3 refuses with 400 `MalformedXML` (and the sandbox's moto patch with it,
//! sandbox/moto_s3_fidelity.py): an `And` with fewer than two predicates (S3 API reference,
//! LifecycleRuleAndOperator: "a logical AND to two or more predicates",
//! https://docs.aws.amazon.com/AmazonS3/latest/API/API_LifecycleRuleAndOperator.html), and an
//! `ExpiredObjectDeleteMarker` in a rule filtered by object size. An unknown bucket is
//! `NoSuchBucket`, which the adapter reports as [`Error::NotFound`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::fakes::calls::Calls;
use crate::lifecycle::{LifecycleConfiguration, LifecycleRule, RuleFilter};
use crate::ports::{BucketFacts, Buckets};

#[derive(Debug, Clone, Default)]
struct Bucket {
    tags: BTreeMap<String, String>,
    facts: BucketFacts,
    lifecycle: LifecycleConfiguration,
}

/// The buckets of one account.
#[derive(Debug, Default)]
pub struct MemoryBuckets {
    buckets: Mutex<BTreeMap<String, Bucket>>,
    calls: Calls,
}

/// The minimum object size for transitions S3 applies when a configuration names none.
const DEFAULT_MINIMUM_SIZE: &str = "all_storage_classes_128K";

/// The operations that change nothing.
const READS: &[&str] = &["list", "tags", "facts", "lifecycle"];

impl MemoryBuckets {
    /// No buckets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates `bucket` (no tags, no lifecycle, default facts); an existing one is kept.
    pub fn create(&self, bucket: &str) {
        self.lock().entry(bucket.to_string()).or_default();
    }

    /// Replaces the tags of `bucket` (PutBucketTagging replaces the whole set), creating it.
    pub fn set_tags(&self, bucket: &str, tags: &[(&str, &str)]) {
        self.lock().entry(bucket.to_string()).or_default().tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    }

    /// Sets the facts of `bucket` (versioning, Object Lock, …), creating it.
    pub fn set_facts(&self, bucket: &str, facts: BucketFacts) {
        self.lock().entry(bucket.to_string()).or_default().facts = facts;
    }

    /// Sets the lifecycle configuration of `bucket` as found (no check), creating it.
    pub fn set_lifecycle(&self, bucket: &str, config: LifecycleConfiguration) {
        self.lock().entry(bucket.to_string()).or_default().lifecycle = config;
    }

    /// The next call of `operation` (`list`, `tags`, `facts`, `lifecycle`, `put_lifecycle`)
    /// fails with `error` (see [`crate::fakes::calls::throttled`]).
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.calls.fail_next(operation, error);
    }

    /// Every call, in order, as `operation bucket`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.all()
    }

    /// The lifecycle writes asked for, in order (refused ones included).
    pub fn changes(&self) -> Vec<String> {
        self.calls.changes(READS)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read<T>(&self, op: &'static str, bucket: &str, f: impl Fn(&Bucket) -> T) -> Result<T> {
        self.calls.record(op, bucket)?;
        self.lock()
            .get(bucket)
            .map(f)
            .ok_or_else(|| no_such_bucket(op, bucket))
    }
}

fn no_such_bucket(op: &str, bucket: &str) -> Error {
    Error::NotFound(format!("{op} of bucket {bucket}: NoSuchBucket (fake)"))
}

/// Why S3 answers `MalformedXML` to this rule, or `None`.
fn refusal(rule: &LifecycleRule) -> Option<&'static str> {
    let size_filtered = match &rule.filter {
        Some(RuleFilter::And {
            prefix,
            tags,
            size_greater_than,
            size_less_than,
        }) => {
            let predicates = usize::from(prefix.is_some())
                + tags.len()
                + usize::from(size_greater_than.is_some())
                + usize::from(size_less_than.is_some());
            if predicates < 2 {
                return Some("an And with fewer than two predicates");
            }
            size_greater_than.is_some() || size_less_than.is_some()
        }
        Some(RuleFilter::SizeGreaterThan { .. } | RuleFilter::SizeLessThan { .. }) => true,
        _ => false,
    };
    let marker = rule
        .expiration
        .as_ref()
        .is_some_and(|e| e.expired_object_delete_marker.is_some());
    (marker && size_filtered).then_some("ExpiredObjectDeleteMarker in a rule filtered by size")
}

impl Buckets for MemoryBuckets {
    async fn list(&self) -> Result<Vec<String>> {
        self.calls.record("list", "")?;
        Ok(self.lock().keys().cloned().collect())
    }

    async fn tags(&self, bucket: &str) -> Result<BTreeMap<String, String>> {
        self.read("tags", bucket, |b| b.tags.clone())
    }

    async fn facts(&self, bucket: &str) -> Result<BucketFacts> {
        self.read("facts", bucket, |b| b.facts)
    }

    async fn lifecycle(&self, bucket: &str) -> Result<LifecycleConfiguration> {
        self.read("lifecycle", bucket, |b| b.lifecycle.clone())
    }

    async fn put_lifecycle(&self, bucket: &str, config: &LifecycleConfiguration) -> Result<()> {
        self.calls.record("put_lifecycle", bucket)?;
        let what = format!("write the lifecycle of bucket {bucket}");
        let mut buckets = self.lock();
        let Some(found) = buckets.get_mut(bucket) else {
            return Err(no_such_bucket("put_lifecycle", bucket));
        };
        if let Some(why) = config.rules.iter().find_map(refusal) {
            return Err(Error::Aws(format!(
                "{what}: S3 refused the configuration as malformed (MalformedXML: {why}) (fake)"
            )));
        }
        found.lifecycle = if config.rules.is_empty() {
            LifecycleConfiguration::default()
        } else {
            // S3 answers with the minimum size it applies, `all_storage_classes_128K` unless the
            // request named another (S3 API reference, PutBucketLifecycleConfiguration,
            // x-amz-transition-default-minimum-object-size).
            let size = config
                .transition_default_minimum_object_size
                .clone()
                .unwrap_or_else(|| DEFAULT_MINIMUM_SIZE.to_string());
            LifecycleConfiguration {
                transition_default_minimum_object_size: Some(size),
                ..config.clone()
            }
        };
        Ok(())
    }
}

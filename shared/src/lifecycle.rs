//! S3 lifecycle configurations as plain data: every element S3 accepts, so that a configuration
//! read and written back through this model is the configuration that was read (foreign rules
//! must survive a round trip unchanged). The S3 adapter converts to and from the SDK's types.

use serde::{Deserialize, Serialize};

/// A bucket's whole lifecycle configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LifecycleConfiguration {
    /// The rules, in the order S3 returned them.
    pub rules: Vec<LifecycleRule>,
    /// `x-amz-transition-default-minimum-object-size` as read (`all_storage_classes_128K`,
    /// `varies_by_storage_class`); must be written back as read.
    pub transition_default_minimum_object_size: Option<String>,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LifecycleRule {
    /// `ID` (at most 255 characters).
    pub id: Option<String>,
    /// `Status`: `Enabled` (true) or `Disabled`.
    pub enabled: bool,
    /// The deprecated rule-level `Prefix` (S3 refuses a configuration mixing it with `Filter`).
    pub legacy_prefix: Option<String>,
    /// `Filter`.
    pub filter: Option<RuleFilter>,
    /// `Transition` elements.
    pub transitions: Vec<Transition>,
    /// `NoncurrentVersionTransition` elements.
    pub noncurrent_transitions: Vec<NoncurrentTransition>,
    /// `Expiration`.
    pub expiration: Option<Expiration>,
    /// `NoncurrentVersionExpiration`.
    pub noncurrent_expiration: Option<NoncurrentExpiration>,
    /// `AbortIncompleteMultipartUpload.DaysAfterInitiation`.
    pub abort_incomplete_multipart_days: Option<i32>,
}

/// A rule's `Filter`, in the shape it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleFilter {
    /// `<Filter/>`: the whole bucket.
    Empty,
    /// `<Prefix>`.
    Prefix {
        /// The key prefix.
        prefix: String,
    },
    /// `<Tag>`.
    Tag {
        /// The tag.
        tag: Tag,
    },
    /// `<ObjectSizeGreaterThan>` (bytes, exclusive).
    SizeGreaterThan {
        /// Bytes.
        bytes: i64,
    },
    /// `<ObjectSizeLessThan>` (bytes, exclusive).
    SizeLessThan {
        /// Bytes.
        bytes: i64,
    },
    /// `<And>`.
    And {
        /// The prefix.
        prefix: Option<String>,
        /// Tags, all of which must match.
        tags: Vec<Tag>,
        /// Exclusive lower size bound.
        size_greater_than: Option<i64>,
        /// Exclusive upper size bound.
        size_less_than: Option<i64>,
    },
}

/// An object tag in a filter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Tag {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// A `Transition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Transition {
    /// `Days` after creation.
    pub days: Option<i32>,
    /// `Date` (ISO 8601), the alternative to `Days`.
    pub date: Option<String>,
    /// `StorageClass`.
    pub storage_class: String,
}

/// A `NoncurrentVersionTransition`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NoncurrentTransition {
    /// `NoncurrentDays`.
    pub noncurrent_days: Option<i32>,
    /// `NewerNoncurrentVersions`.
    pub newer_noncurrent_versions: Option<i32>,
    /// `StorageClass`.
    pub storage_class: String,
}

/// An `Expiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiration {
    /// `Days`.
    pub days: Option<i32>,
    /// `Date`.
    pub date: Option<String>,
    /// `ExpiredObjectDeleteMarker`.
    pub expired_object_delete_marker: Option<bool>,
}

/// A `NoncurrentVersionExpiration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoncurrentExpiration {
    /// `NoncurrentDays`.
    pub noncurrent_days: Option<i32>,
    /// `NewerNoncurrentVersions`.
    pub newer_noncurrent_versions: Option<i32>,
}

/// Which objects a rule applies to: its filter reduced to one shape.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Scope {
    /// The key prefix (empty: every key).
    pub prefix: String,
    /// Tags that must all match (sorted).
    pub tags: Vec<Tag>,
    /// Exclusive lower size bound.
    pub size_greater_than: Option<i64>,
    /// Exclusive upper size bound.
    pub size_less_than: Option<i64>,
}

impl LifecycleRule {
    /// The objects the rule applies to.
    pub fn scope(&self) -> Scope {
        let mut scope = Scope {
            prefix: self.legacy_prefix.clone().unwrap_or_default(),
            ..Scope::default()
        };
        match &self.filter {
            None | Some(RuleFilter::Empty) => {}
            Some(RuleFilter::Prefix { prefix }) => scope.prefix = prefix.clone(),
            Some(RuleFilter::Tag { tag }) => scope.tags = vec![tag.clone()],
            Some(RuleFilter::SizeGreaterThan { bytes }) => scope.size_greater_than = Some(*bytes),
            Some(RuleFilter::SizeLessThan { bytes }) => scope.size_less_than = Some(*bytes),
            Some(RuleFilter::And {
                prefix,
                tags,
                size_greater_than,
                size_less_than,
            }) => {
                scope.prefix = prefix.clone().unwrap_or_default();
                scope.tags = tags.clone();
                scope.tags.sort();
                scope.size_greater_than = *size_greater_than;
                scope.size_less_than = *size_less_than;
            }
        }
        scope
    }
}

impl Scope {
    /// Whether some object could match both scopes.
    pub fn overlaps(&self, other: &Scope) -> bool {
        let prefixes =
            self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix);
        let lower = self
            .size_greater_than
            .max(other.size_greater_than)
            .unwrap_or(-1);
        let upper = match (self.size_less_than, other.size_less_than) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Integers strictly between `lower` and `upper` must exist.
        let sizes = upper.is_none_or(|u| u - lower > 1);
        let tags = self.tags.iter().all(|t| {
            other
                .tags
                .iter()
                .all(|o| o.key != t.key || o.value == t.value)
        });
        prefixes && sizes && tags
    }
}

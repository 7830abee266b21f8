//! The S3 adapter for bucket-level work: tags, facts, lifecycle configurations. Every call names
//! the expected bucket owner, so another account's bucket is refused by S3 itself.

use std::collections::BTreeMap;

use aws_sdk_s3::types as s3;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::DateTime;

use crate::aws::http_status;
use crate::error::{Error, Result};
use crate::lifecycle::{
    Expiration, LifecycleConfiguration, LifecycleRule, NoncurrentExpiration, NoncurrentTransition,
    RuleFilter, Tag, Transition,
};
use crate::ports::{BucketFacts, Buckets};

/// [`Buckets`] over S3.
#[derive(Debug, Clone)]
pub struct S3Buckets {
    client: aws_sdk_s3::Client,
    owner: String,
}

impl S3Buckets {
    /// The adapter over `client` for buckets owned by `owner` (an account id).
    pub fn new(client: aws_sdk_s3::Client, owner: impl Into<String>) -> Self {
        S3Buckets {
            client,
            owner: owner.into(),
        }
    }
}

/// `Some(code)` when an SDK error is a service error with that code.
fn code<E: aws_smithy_types::error::metadata::ProvideErrorMetadata, R>(
    err: &aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

impl Buckets for S3Buckets {
    async fn list(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .list_buckets()
            .max_buckets(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_sdk("list buckets", &e))?;
            names.extend(page.buckets().iter().filter_map(|b| b.name.clone()));
        }
        Ok(names)
    }

    async fn tags(&self, bucket: &str) -> Result<BTreeMap<String, String>> {
        match self
            .client
            .get_bucket_tagging()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => Ok(r
                .tag_set()
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect()),
            Err(e) if code(&e) == Some("NoSuchTagSet") => Ok(BTreeMap::new()),
            Err(e) => Err(Error::from_sdk(&format!("tags of bucket {bucket}"), &e)),
        }
    }

    async fn facts(&self, bucket: &str) -> Result<BucketFacts> {
        let what = |w: &str| format!("{w} of bucket {bucket}");
        let versioning = self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&what("versioning"), &e))?;
        let object_lock = match self
            .client
            .get_object_lock_configuration()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => r
                .object_lock_configuration()
                .and_then(|c| c.object_lock_enabled())
                .is_some_and(|e| *e == s3::ObjectLockEnabled::Enabled),
            Err(e) if code(&e) == Some("ObjectLockConfigurationNotFoundError") => false,
            Err(e) => return Err(Error::from_sdk(&what("object lock"), &e)),
        };
        let replication_source = match self
            .client
            .get_bucket_replication()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => r
                .replication_configuration()
                .is_some_and(|c| !c.rules().is_empty()),
            Err(e) if code(&e) == Some("ReplicationConfigurationNotFoundError") => false,
            Err(e) => return Err(Error::from_sdk(&what("replication"), &e)),
        };
        let requester_pays = match self
            .client
            .get_bucket_request_payment()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => r.payer() == Some(&s3::Payer::Requester),
            Err(e) => return Err(Error::from_sdk(&what("request payment"), &e)),
        };
        let log_delivery_target = match self
            .client
            .get_bucket_policy()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => r
                .policy()
                .is_some_and(|p| p.contains("logging.s3.amazonaws.com")),
            Err(e) if code(&e) == Some("NoSuchBucketPolicy") => false,
            Err(e) => return Err(Error::from_sdk(&what("policy"), &e)),
        };
        Ok(BucketFacts {
            versioned: matches!(
                versioning.status(),
                Some(s3::BucketVersioningStatus::Enabled | s3::BucketVersioningStatus::Suspended)
            ),
            object_lock,
            replication_source,
            requester_pays,
            log_delivery_target,
        })
    }

    async fn lifecycle(&self, bucket: &str) -> Result<LifecycleConfiguration> {
        let response = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) if code(&e) == Some("NoSuchLifecycleConfiguration") => {
                return Ok(LifecycleConfiguration::default())
            }
            Err(e) => {
                return Err(Error::from_sdk(
                    &format!("lifecycle of bucket {bucket}"),
                    &e,
                ))
            }
        };
        Ok(LifecycleConfiguration {
            rules: response.rules().iter().map(rule_from_sdk).collect(),
            transition_default_minimum_object_size: response
                .transition_default_minimum_object_size()
                .map(|t| t.as_str().to_string()),
        })
    }

    async fn put_lifecycle(&self, bucket: &str, config: &LifecycleConfiguration) -> Result<()> {
        let what = format!("write the lifecycle of bucket {bucket}");
        if config.rules.is_empty() {
            self.client
                .delete_bucket_lifecycle()
                .bucket(bucket)
                .expected_bucket_owner(&self.owner)
                .send()
                .await
                .map_err(|e| Error::from_sdk(&what, &e))?;
            return Ok(());
        }
        let rules = config
            .rules
            .iter()
            .map(rule_to_sdk)
            .collect::<Result<Vec<_>>>()?;
        let configuration = s3::BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| Error::Aws(format!("{what}: {e}")))?;
        let mut request = self
            .client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .expected_bucket_owner(&self.owner)
            .lifecycle_configuration(configuration);
        if let Some(size) = &config.transition_default_minimum_object_size {
            request = request.transition_default_minimum_object_size(
                s3::TransitionDefaultMinimumObjectSize::from(size.as_str()),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if http_status(&e) == Some(400) && code(&e) == Some("MalformedXML") => {
                Err(Error::Aws(format!(
                    "{what}: S3 refused the configuration as malformed ({})",
                    crate::aws::describe_sdk_error(&e)
                )))
            }
            Err(e) => Err(Error::from_sdk(&what, &e)),
        }
    }
}

fn date_text(d: &DateTime) -> String {
    d.fmt(Format::DateTime).unwrap_or_default()
}

fn parse_date(text: &str) -> Result<DateTime> {
    DateTime::from_str(text, Format::DateTime)
        .map_err(|e| Error::Aws(format!("lifecycle date {text:?}: {e}")))
}

fn tag_from_sdk(t: &s3::Tag) -> Tag {
    Tag {
        key: t.key.clone(),
        value: t.value.clone(),
    }
}

fn tag_to_sdk(t: &Tag) -> Result<s3::Tag> {
    s3::Tag::builder()
        .key(&t.key)
        .value(&t.value)
        .build()
        .map_err(|e| Error::Aws(format!("tag {}: {e}", t.key)))
}

fn filter_from_sdk(f: &s3::LifecycleRuleFilter) -> RuleFilter {
    if let Some(and) = &f.and {
        return RuleFilter::And {
            prefix: and.prefix.clone(),
            tags: and.tags().iter().map(tag_from_sdk).collect(),
            size_greater_than: and.object_size_greater_than,
            size_less_than: and.object_size_less_than,
        };
    }
    if let Some(prefix) = &f.prefix {
        RuleFilter::Prefix {
            prefix: prefix.clone(),
        }
    } else if let Some(tag) = &f.tag {
        RuleFilter::Tag {
            tag: tag_from_sdk(tag),
        }
    } else if let Some(bytes) = f.object_size_greater_than {
        RuleFilter::SizeGreaterThan { bytes }
    } else if let Some(bytes) = f.object_size_less_than {
        RuleFilter::SizeLessThan { bytes }
    } else {
        RuleFilter::Empty
    }
}

fn filter_to_sdk(f: &RuleFilter) -> Result<s3::LifecycleRuleFilter> {
    let b = s3::LifecycleRuleFilter::builder();
    Ok(match f {
        RuleFilter::Empty => b.build(),
        RuleFilter::Prefix { prefix } => b.prefix(prefix).build(),
        RuleFilter::Tag { tag } => b.tag(tag_to_sdk(tag)?).build(),
        RuleFilter::SizeGreaterThan { bytes } => b.object_size_greater_than(*bytes).build(),
        RuleFilter::SizeLessThan { bytes } => b.object_size_less_than(*bytes).build(),
        RuleFilter::And {
            prefix,
            tags,
            size_greater_than,
            size_less_than,
        } => {
            let and = s3::LifecycleRuleAndOperator::builder()
                .set_prefix(prefix.clone())
                .set_tags(if tags.is_empty() {
                    None
                } else {
                    Some(tags.iter().map(tag_to_sdk).collect::<Result<Vec<_>>>()?)
                })
                .set_object_size_greater_than(*size_greater_than)
                .set_object_size_less_than(*size_less_than)
                .build();
            b.and(and).build()
        }
    })
}

// The rule-level `Prefix` is deprecated, but foreign rules that use it must be read and written
// back exactly as they are.
#[allow(deprecated)]
fn rule_from_sdk(r: &s3::LifecycleRule) -> LifecycleRule {
    LifecycleRule {
        id: r.id.clone(),
        enabled: r.status == s3::ExpirationStatus::Enabled,
        legacy_prefix: r.prefix.clone(),
        filter: r.filter.as_ref().map(filter_from_sdk),
        transitions: r
            .transitions()
            .iter()
            .map(|t| Transition {
                days: t.days,
                date: t.date.as_ref().map(date_text),
                storage_class: t
                    .storage_class
                    .as_ref()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        noncurrent_transitions: r
            .noncurrent_version_transitions()
            .iter()
            .map(|t| NoncurrentTransition {
                noncurrent_days: t.noncurrent_days,
                newer_noncurrent_versions: t.newer_noncurrent_versions,
                storage_class: t
                    .storage_class
                    .as_ref()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        expiration: r.expiration.as_ref().map(|e| Expiration {
            days: e.days,
            date: e.date.as_ref().map(date_text),
            expired_object_delete_marker: e.expired_object_delete_marker,
        }),
        noncurrent_expiration: r.noncurrent_version_expiration.as_ref().map(|e| {
            NoncurrentExpiration {
                noncurrent_days: e.noncurrent_days,
                newer_noncurrent_versions: e.newer_noncurrent_versions,
            }
        }),
        abort_incomplete_multipart_days: r
            .abort_incomplete_multipart_upload
            .as_ref()
            .and_then(|a| a.days_after_initiation),
    }
}

#[allow(deprecated)]
fn rule_to_sdk(r: &LifecycleRule) -> Result<s3::LifecycleRule> {
    let transitions = r
        .transitions
        .iter()
        .map(|t| {
            Ok(s3::Transition::builder()
                .set_days(t.days)
                .set_date(t.date.as_deref().map(parse_date).transpose()?)
                .storage_class(s3::TransitionStorageClass::from(t.storage_class.as_str()))
                .build())
        })
        .collect::<Result<Vec<_>>>()?;
    let noncurrent: Vec<s3::NoncurrentVersionTransition> = r
        .noncurrent_transitions
        .iter()
        .map(|t| {
            s3::NoncurrentVersionTransition::builder()
                .set_noncurrent_days(t.noncurrent_days)
                .set_newer_noncurrent_versions(t.newer_noncurrent_versions)
                .storage_class(s3::TransitionStorageClass::from(t.storage_class.as_str()))
                .build()
        })
        .collect();
    let expiration = r
        .expiration
        .as_ref()
        .map(|e| -> Result<s3::LifecycleExpiration> {
            Ok(s3::LifecycleExpiration::builder()
                .set_days(e.days)
                .set_date(e.date.as_deref().map(parse_date).transpose()?)
                .set_expired_object_delete_marker(e.expired_object_delete_marker)
                .build())
        })
        .transpose()?;
    s3::LifecycleRule::builder()
        .set_id(r.id.clone())
        .status(if r.enabled {
            s3::ExpirationStatus::Enabled
        } else {
            s3::ExpirationStatus::Disabled
        })
        .set_prefix(r.legacy_prefix.clone())
        .set_filter(r.filter.as_ref().map(filter_to_sdk).transpose()?)
        .set_transitions((!transitions.is_empty()).then_some(transitions))
        .set_noncurrent_version_transitions((!noncurrent.is_empty()).then_some(noncurrent))
        .set_expiration(expiration)
        .set_noncurrent_version_expiration(r.noncurrent_expiration.as_ref().map(|e| {
            s3::NoncurrentVersionExpiration::builder()
                .set_noncurrent_days(e.noncurrent_days)
                .set_newer_noncurrent_versions(e.newer_noncurrent_versions)
                .build()
        }))
        .set_abort_incomplete_multipart_upload(r.abort_incomplete_multipart_days.map(|d| {
            s3::AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(d)
                .build()
        }))
        .build()
        .map_err(|e| Error::Aws(format!("rule {:?}: {e}", r.id)))
}

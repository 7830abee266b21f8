//! Where each bucket lives. `ListBuckets` names every bucket of the account whatever its region,
//! but S3 serves a bucket only through its own region's endpoint: a request sent elsewhere is
//! answered `301 PermanentRedirect` with the region in `x-amz-bucket-region` (S3 user guide,
//! "Billing for Amazon S3 error responses"), and the Rust SDK does not follow it
//! (awslabs/aws-sdk-rust #183). Each deployment of tiering therefore tiers the buckets of its own
//! region and names the others with the region whose deployment tiers them.
//!
//! The region comes from `ListBuckets` itself: "BucketRegion indicates the Amazon Web Services
//! region where the bucket is located. If the request contains at least one valid parameter, it
//! is included in the response" (S3 API reference, `ListBuckets` / `Bucket`). The listing always
//! sends `max-buckets`, so no `GetBucketLocation` call (nor its IAM grant) is needed, and one
//! bucket is found with the `prefix` parameter.

use std::future::Future;
use std::sync::Arc;

use breakwater::aws::Aws;
use breakwater::{Error, Result};

/// A bucket of the account and the region S3 says it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocatedBucket {
    /// The bucket's name.
    pub name: String,
    /// Its region (`None`: S3 did not say).
    pub region: Option<String>,
}

/// The account's buckets with their regions.
pub trait BucketRegions: Send + Sync {
    /// Every bucket whose name starts with `prefix` (every bucket: `None`), with its region.
    fn located(
        &self,
        prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<LocatedBucket>>> + Send;
}

/// [`BucketRegions`] over S3 `ListBuckets` (IAM: `s3:ListAllMyBuckets`).
#[derive(Debug, Clone)]
pub struct S3BucketRegions {
    aws: Arc<Aws>,
}

impl S3BucketRegions {
    /// The listing through `aws`'s home-region S3 client (`ListBuckets` answers in every region).
    pub fn new(aws: Arc<Aws>) -> Self {
        S3BucketRegions { aws }
    }
}

impl BucketRegions for S3BucketRegions {
    async fn located(&self, prefix: Option<&str>) -> Result<Vec<LocatedBucket>> {
        let mut found = Vec::new();
        let mut pages = self
            .aws
            .s3()
            .list_buckets()
            .max_buckets(1000)
            .set_prefix(prefix.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::from_sdk("list buckets", &e))?;
            found.extend(page.buckets().iter().filter_map(|b| {
                Some(LocatedBucket {
                    name: b.name()?.to_string(),
                    region: b.bucket_region().map(str::to_string),
                })
            }));
        }
        Ok(found)
    }
}

/// Why a bucket is not this deployment's to tier (`None`: it is, being in `home`).
pub fn elsewhere(bucket: &LocatedBucket, home: &str) -> Option<String> {
    match bucket.region.as_deref() {
        Some(region) if region == home => None,
        Some(region) => Some(format!(
            "the bucket is in {region}: S3 serves it only through {region}'s endpoint (a request from {home} is answered 301 PermanentRedirect), so the tiering deployed in {region} tiers it"
        )),
        None => Some(
            "S3 did not say which region the bucket is in (no BucketRegion in ListBuckets)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(region: Option<&str>) -> LocatedBucket {
        LocatedBucket {
            name: "b".into(),
            region: region.map(str::to_string),
        }
    }

    #[test]
    fn only_a_bucket_of_the_home_region_is_this_deployments_and_the_others_say_where_they_are() {
        // GIVEN buckets in the home region, in another one, and of unknown region
        // WHEN each is placed THEN only the home one is this deployment's, and the reason for
        // each other names where it is
        assert_eq!(elsewhere(&at(Some("us-east-1")), "us-east-1"), None);
        let away = elsewhere(&at(Some("eu-west-1")), "us-east-1").unwrap();
        assert!(
            away.contains("eu-west-1") && away.contains("PermanentRedirect"),
            "{away}"
        );
        let unknown = elsewhere(&at(None), "us-east-1").unwrap();
        assert!(unknown.contains("BucketRegion"), "{unknown}");
    }
}

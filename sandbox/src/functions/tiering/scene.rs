//! The tiering scene's AWS side that moto cannot derive: the S3 daily storage metrics in
//! CloudWatch, and the bucket tags that opt a bucket in.

use aws_config::SdkConfig;

use crate::seed::regional;
use crate::SandboxError;

/// Publishes one day-old S3 daily storage datapoint for `bucket` (what S3 sends CloudWatch once a
/// day; moto has no objects' sizes to derive it from): the bytes of each storage type given and
/// the object count.
pub async fn s3_storage_metrics(
    config: &SdkConfig,
    region: &str,
    bucket: &str,
    bytes_by_storage_type: &[(&str, f64)],
    objects: f64,
    now_ms: u64,
) -> Result<(), SandboxError> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let at = aws_sdk_cloudwatch::primitives::DateTime::from_millis(now_ms as i64 - 86_400_000);
    let datum = |metric: &str, storage_type: &str, value: f64| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("BucketName")
                    .value(bucket)
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("StorageType")
                    .value(storage_type)
                    .build(),
            )
            .timestamp(at)
            .value(value)
            .build()
    };
    let data = bytes_by_storage_type
        .iter()
        .map(|(storage_type, bytes)| datum("BucketSizeBytes", storage_type, *bytes))
        .chain([datum("NumberOfObjects", "AllStorageTypes", objects)]);
    aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .put_metric_data()
        .namespace("AWS/S3")
        .set_metric_data(Some(data.collect()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| SandboxError::aws("put storage metrics", &e))
}

/// Replaces the tags of `bucket` (how a team opts a bucket in).
pub async fn tag_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tags: &[(&str, &str)],
) -> Result<(), SandboxError> {
    use aws_sdk_s3::types::{Tag, Tagging};
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(SandboxError::estate)?;
    Ok(())
}

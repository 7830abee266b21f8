//! The CloudWatch adapters: S3's free daily storage metrics, read with one `GetMetricData` call,
//! and alarms (state and tags).

use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, Metric, MetricDataQuery, MetricStat, ScanBy,
};
use aws_smithy_types::DateTime;

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::ports::{
    AlarmState, Alarms, BucketStorage, Changed, MetricReader, MetricSwitches, StorageMetrics,
    SwitchMetric,
};

/// The storage types the savings report prices.
pub const STORAGE_TYPES: &[&str] = &[
    "StandardStorage",
    "StandardIAStorage",
    "GlacierInstantRetrievalStorage",
    "GlacierStorage",
    "DeepArchiveStorage",
];

/// [`StorageMetrics`] over CloudWatch (S3 publishes them in the bucket's region).
#[derive(Debug, Clone)]
pub struct CloudWatchStorage {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchStorage {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchStorage { client }
    }
}

fn query(id: &str, bucket: &str, metric: &str, storage_type: &str) -> MetricDataQuery {
    let metric = Metric::builder()
        .namespace("AWS/S3")
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
        .build();
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(metric)
                .period(86_400)
                .stat("Average")
                .build(),
        )
        .return_data(true)
        .build()
}

impl StorageMetrics for CloudWatchStorage {
    async fn bucket_storage(&self, bucket: &str, now_ms: u64) -> Result<BucketStorage> {
        // The metrics are daily and arrive a day late: three days back always holds the latest.
        let end = DateTime::from_millis(now_ms as i64);
        let start = DateTime::from_millis(now_ms as i64 - 3 * 86_400_000);
        let mut request = self
            .client
            .get_metric_data()
            .start_time(start)
            .end_time(end)
            .scan_by(ScanBy::TimestampDescending);
        for (i, storage_type) in STORAGE_TYPES.iter().enumerate() {
            request = request.metric_data_queries(query(
                &format!("bytes{i}"),
                bucket,
                "BucketSizeBytes",
                storage_type,
            ));
        }
        request = request.metric_data_queries(query(
            "objects",
            bucket,
            "NumberOfObjects",
            "AllStorageTypes",
        ));
        let response = request
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("storage metrics of bucket {bucket}"), &e))?;
        let mut storage = BucketStorage::default();
        for result in response.metric_data_results() {
            let Some(latest) = result.values().first().copied() else {
                continue;
            };
            match result.id() {
                Some("objects") => storage.objects = Some(latest),
                Some(id) => {
                    if let Some(storage_type) = id
                        .strip_prefix("bytes")
                        .and_then(|n| n.parse::<usize>().ok())
                        .and_then(|n| STORAGE_TYPES.get(n))
                    {
                        storage
                            .bytes_by_storage_type
                            .insert(storage_type.to_string(), latest);
                    }
                }
                None => {}
            }
        }
        Ok(storage)
    }
}

/// [`MetricReader`] over CloudWatch `GetMetricData` (one query, newest first).
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchMetrics {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchMetrics { client }
    }
}

impl CloudWatchMetrics {
    /// The newest one-minute `Maximum` from `start_ms` to `end_ms` (exclusive): one
    /// `GetMetricData` query, newest first.
    async fn newest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        start_ms: u64,
        end_ms: u64,
    ) -> Result<Option<(f64, u64)>> {
        let mut m = Metric::builder().namespace(namespace).metric_name(metric);
        for (name, value) in dimensions {
            m = m.dimensions(Dimension::builder().name(*name).value(*value).build());
        }
        let query = MetricDataQuery::builder()
            .id("m")
            .metric_stat(
                MetricStat::builder()
                    .metric(m.build())
                    .period(60)
                    .stat("Maximum")
                    .build(),
            )
            .return_data(true)
            .build();
        let response = self
            .client
            .get_metric_data()
            .start_time(DateTime::from_millis(start_ms as i64))
            .end_time(DateTime::from_millis(end_ms as i64))
            .scan_by(ScanBy::TimestampDescending)
            .metric_data_queries(query)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("read {namespace}/{metric}"), &e))?;
        Ok(response.metric_data_results().first().and_then(|r| {
            let value = r.values().first().copied()?;
            let at = r
                .timestamps()
                .first()
                .map(|t| t.to_millis().unwrap_or(0).max(0) as u64)?;
            Some((value, at))
        }))
    }
}

impl MetricReader for CloudWatchMetrics {
    async fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        now_ms: u64,
        lookback_ms: u64,
    ) -> Result<Option<(f64, u64)>> {
        self.newest(
            namespace,
            metric,
            dimensions,
            now_ms.saturating_sub(lookback_ms),
            now_ms + 60_000,
        )
        .await
    }

    /// Whole minutes only: start and end on a minute boundary, the end exclusive ("EndTime: The
    /// time stamp indicating the latest data to be returned. The value specified is exclusive;
    /// results include data points up to the specified time stamp", GetMetricData, Amazon
    /// CloudWatch API Reference,
    /// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricData.html>),
    /// so every one-minute period returned ended at or before `at_ms`.
    async fn at_or_before(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        at_ms: u64,
        lookback_ms: u64,
    ) -> Result<Option<(f64, u64)>> {
        let end = at_ms - at_ms % 60_000;
        let start = end.saturating_sub(lookback_ms.div_ceil(60_000) * 60_000);
        if start >= end {
            return Ok(None);
        }
        self.newest(namespace, metric, dimensions, start, end).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn reads_the_latest_bytes_per_storage_type_and_the_object_count() {
        // GIVEN CloudWatch answering for one bucket, newest value first
        let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|req| {
                let queries = req.metric_data_queries();
                queries.len() == STORAGE_TYPES.len() + 1
                    && queries.iter().all(|q| {
                        let metric = q.metric_stat().and_then(|s| s.metric());
                        metric.is_some_and(|m| m.namespace() == Some("AWS/S3"))
                            && metric.is_some_and(|m| {
                                m.dimensions().iter().any(|d| {
                                    d.name() == Some("BucketName")
                                        && d.value() == Some("analytics-raw")
                                })
                            })
                            && q.metric_stat().and_then(|s| s.period()) == Some(86_400)
                    })
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("bytes0")
                            .values(5.0e12)
                            .values(4.9e12)
                            .build(),
                    )
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("bytes3")
                            .values(1.0e11)
                            .build(),
                    )
                    .metric_data_results(MetricDataResult::builder().id("bytes1").build())
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("objects")
                            .values(2.0e6)
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        // WHEN the adapter reads the bucket's storage
        let storage = CloudWatchStorage::new(client)
            .bucket_storage("analytics-raw", 1_795_381_516_123)
            .await
            .unwrap();
        // THEN it keeps the newest value of each series and skips empty ones
        assert_eq!(
            storage.bytes_by_storage_type.get("StandardStorage"),
            Some(&5.0e12)
        );
        assert_eq!(
            storage.bytes_by_storage_type.get("GlacierStorage"),
            Some(&1.0e11)
        );
        assert!(!storage
            .bytes_by_storage_type
            .contains_key("StandardIAStorage"));
        assert_eq!(storage.objects, Some(2.0e6));
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_throttled_read_is_a_retryable_error() {
        let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_error(|| {
            aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        let err = CloudWatchStorage::new(client)
            .bucket_storage("b", 1_795_381_516_123)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Retryable", "{err}");
    }
}

/// [`Alarms`] over CloudWatch: `DescribeAlarms` by name and `ListTagsForResource`.
#[derive(Debug, Clone)]
pub struct CloudWatchAlarms {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchAlarms {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchAlarms { client }
    }
}

impl Alarms for CloudWatchAlarms {
    /// Both kinds are asked for: CloudWatch API reference, DescribeAlarms, `AlarmTypes`: "If you
    /// omit this parameter, only metric alarms are returned, even if composite alarms exist in
    /// the account" — a firing composite alarm would read as gone. (Composite alarms are returned
    /// only to a `cloudwatch:DescribeAlarms` permission scoped to `*`.)
    async fn state(&self, name: &str) -> Result<Option<AlarmState>> {
        let out = self
            .client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("DescribeAlarms {name}"), &e))?;
        let found = out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| {
                (
                    a.state_value().map(|s| s.as_str().to_string()),
                    a.state_updated_timestamp().map(|t| t.to_millis()),
                    a.state_reason(),
                )
            })
            .or_else(|| {
                out.composite_alarms()
                    .iter()
                    .find(|a| a.alarm_name() == Some(name))
                    .map(|a| {
                        (
                            a.state_value().map(|s| s.as_str().to_string()),
                            a.state_updated_timestamp().map(|t| t.to_millis()),
                            a.state_reason(),
                        )
                    })
            });
        Ok(found.map(|(value, since, reason)| AlarmState {
            value: value.unwrap_or_else(|| "INSUFFICIENT_DATA".into()),
            since_ms: since
                .and_then(|ms| ms.ok())
                .and_then(|ms| u64::try_from(ms).ok()),
            reason: reason.unwrap_or_default().to_string(),
        }))
    }

    async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        let out = match self
            .client
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
        {
            Ok(out) => out,
            // An alarm that does not exist (any more) names no workload.
            Err(e) => match Error::from_sdk(&format!("ListTagsForResource {arn}"), &e) {
                Error::NotFound(_) => return Ok(BTreeMap::new()),
                other => return Err(other),
            },
        };
        Ok(out
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod alarm_tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{CompositeAlarm, StateValue};
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_composite_alarm_in_alarm_is_read_as_firing_because_both_alarm_types_are_asked_for() {
        // GIVEN CloudWatch holding a composite alarm in ALARM, answering composite alarms only
        // when AlarmTypes asks for them (as the API reference says it does)
        let rule = mock!(aws_sdk_cloudwatch::Client::describe_alarms)
            .match_requests(|req| {
                req.alarm_names() == ["web-health"]
                    && req.alarm_types().contains(&AlarmType::CompositeAlarm)
                    && req.alarm_types().contains(&AlarmType::MetricAlarm)
            })
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .composite_alarms(
                        CompositeAlarm::builder()
                            .alarm_name("web-health")
                            .alarm_rule("ALARM(web-p95) OR ALARM(web-5xx)")
                            .state_value(StateValue::Alarm)
                            .state_reason("web-p95 is in ALARM")
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        // WHEN the adapter reads the alarm's state
        let state = CloudWatchAlarms::new(client).state("web-health").await;
        // THEN it is found, and in ALARM
        let state = state.unwrap().expect("the composite alarm is found");
        assert_eq!(state.value, "ALARM");
        assert_eq!(state.reason, "web-p95 is in ALARM");
        assert_eq!(rule.num_calls(), 1);
    }
}

#[cfg(test)]
mod metric_tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_sample_at_or_before_a_time_is_read_from_whole_minutes_that_ended_by_then() {
        // GIVEN a time 40 s into a minute, and CloudWatch answering one-minute Maximums
        let minute = 1_795_406_400_000u64;
        let at = minute + 40_000;
        let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(move |req| {
                let stat = req.metric_data_queries()[0].metric_stat().unwrap();
                // the request ends (exclusive) at the start of the minute `at` falls in, and
                // begins five whole minutes earlier
                req.end_time().and_then(|t| t.to_millis().ok()) == Some(minute as i64)
                    && req.start_time().and_then(|t| t.to_millis().ok())
                        == Some(minute as i64 - 300_000)
                    && stat.period() == Some(60)
                    && stat.stat() == Some("Maximum")
                    && stat.metric().and_then(|m| m.metric_name()) == Some("ReplicaLag")
            })
            .then_output(move || {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("m")
                            .values(2.0)
                            .timestamps(DateTime::from_millis(minute as i64 - 60_000))
                            .values(3.0)
                            .timestamps(DateTime::from_millis(minute as i64 - 120_000))
                            .build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        // WHEN the reader asks for the sample at or before that time
        let read = CloudWatchMetrics::new(client)
            .at_or_before(
                "AWS/RDS",
                "ReplicaLag",
                &[("DBInstanceIdentifier", "orders-replica")],
                at,
                300_000,
            )
            .await
            .unwrap();
        // THEN it is the newest whole minute before it, stamped at its start
        assert_eq!(read, Some((2.0, minute - 60_000)));
        assert_eq!(rule.num_calls(), 1);
    }
}

/// [`MetricSwitches`] over CloudWatch in the secondary region: `PutMetricData` (one
/// standard-resolution datum, no timestamp: CloudWatch stamps it on receipt) and
/// `DescribeAlarms` of metric alarms by name.
#[derive(Debug, Clone)]
pub struct CloudWatchSwitches {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchSwitches {
    /// The adapter over `client` (the secondary region's).
    pub fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        CloudWatchSwitches { client }
    }
}

impl MetricSwitches for CloudWatchSwitches {
    /// `StorageResolution` 60, said explicitly: a Route 53 health check reads alarms on
    /// standard-resolution metrics only ("Standard-resolution metrics. High-resolution metrics
    /// aren't supported", Route 53 API Reference, AlarmIdentifier,
    /// <https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html>), and
    /// "Setting this to 60 specifies this metric as a regular-resolution metric" (MetricDatum,
    /// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>).
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<Changed> {
        use aws_sdk_cloudwatch::operation::RequestId;
        use aws_sdk_cloudwatch::types::{MetricDatum, StandardUnit};
        let (name, dimension) = &metric.dimension;
        let what = format!(
            "PutMetricData {}/{} {name}={dimension} = {value}",
            metric.namespace, metric.metric
        );
        let out = self
            .client
            .put_metric_data()
            .namespace(&metric.namespace)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(&metric.metric)
                    .dimensions(Dimension::builder().name(name).value(dimension).build())
                    .value(value)
                    .unit(StandardUnit::None)
                    .storage_resolution(60)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk(&what, &e))?;
        Ok(Changed {
            request_id: out.request_id().map(str::to_string),
            started: None,
        })
    }

    /// Metric alarms only (`AlarmTypes` `MetricAlarm`, as an omitted parameter means too): the
    /// switch alarms are metric alarms, and a `DescribeAlarms` grant scoped to their ARNs is
    /// enough for them (composite alarms need one on `*`).
    async fn alarm(&self, name: &str) -> Result<Option<AlarmState>> {
        let out = self
            .client
            .describe_alarms()
            .alarm_names(name)
            .alarm_types(AlarmType::MetricAlarm)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("DescribeAlarms {name}"), &e))?;
        Ok(out
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| AlarmState {
                value: a
                    .state_value()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "INSUFFICIENT_DATA".into()),
                since_ms: a
                    .state_updated_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .and_then(|ms| u64::try_from(ms).ok()),
                reason: a.state_reason().unwrap_or_default().to_string(),
            }))
    }
}

#[cfg(test)]
mod switch_tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
    use aws_smithy_mocks::{mock, mock_client};

    #[tokio::test]
    async fn a_switch_value_is_one_standard_resolution_datum_of_the_sides_metric() {
        // GIVEN CloudWatch taking one datum, standard resolution, no timestamp
        let rule = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
            .match_requests(|req| {
                let [d] = req.metric_data() else { return false };
                req.namespace() == Some("Breakwater/Traffic")
                    && d.metric_name() == Some("RegionActive")
                    && d.value() == Some(0.0)
                    && d.storage_resolution() == Some(60)
                    && d.timestamp().is_none()
                    && d.dimensions().len() == 1
                    && d.dimensions()[0].name() == Some("Region")
                    && d.dimensions()[0].value() == Some("us-east-1")
            })
            .then_output(|| PutMetricDataOutput::builder().build());
        let client = mock_client!(aws_sdk_cloudwatch, [&rule]);
        let metric = SwitchMetric {
            namespace: "Breakwater/Traffic".into(),
            metric: "RegionActive".into(),
            dimension: ("Region".into(), "us-east-1".into()),
        };
        // WHEN the primary's side is switched off
        CloudWatchSwitches::new(client)
            .put(&metric, 0.0)
            .await
            .unwrap();
        // THEN exactly that request was made
        assert_eq!(rule.num_calls(), 1);
    }
}

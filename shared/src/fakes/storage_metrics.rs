//! In-memory S3 storage metrics: the fake of [`StorageMetrics`], holding the daily datapoints S3
//! sends CloudWatch and answering as the adapter's `GetMetricData` query does, with the calls made
//! and a knob for a failed call.
//!
//! S3 publishes `BucketSizeBytes` per `StorageType` and `NumberOfObjects` (`AllStorageTypes`)
//! once a day (S3 user guide, "Metrics and dimensions",
//! https://docs.aws.amazon.com/AmazonS3/latest/userguide/metrics-dimensions.html). The adapter
//! asks for the `Average` over one-day periods from three days before `now_ms`, newest first, for
//! the storage types it prices ([`STORAGE_TYPES`]); the fake takes the same window and periods.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::aws::cloudwatch::STORAGE_TYPES;
use crate::error::{Error, Result};
use crate::fakes::calls::Calls;
use crate::ports::{BucketStorage, StorageMetrics};

const DAY_MS: u64 = 86_400_000;

/// One datapoint: metric, storage type, time (ms), value.
type Datapoint = (String, String, u64, f64);

/// The S3 storage metrics of one region.
#[derive(Debug, Default)]
pub struct MemoryStorageMetrics {
    data: Mutex<BTreeMap<String, Vec<Datapoint>>>,
    calls: Calls,
}

impl MemoryStorageMetrics {
    /// No datapoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes one day's datapoints of `bucket` at `at_ms`, as S3 does: the bytes of each
    /// storage type given (`BucketSizeBytes`) and the object count (`NumberOfObjects`).
    pub fn publish(
        &self,
        bucket: &str,
        bytes_by_storage_type: &[(&str, f64)],
        objects: f64,
        at_ms: u64,
    ) {
        let mut data = self.lock();
        let points = data.entry(bucket.to_string()).or_default();
        for (storage_type, bytes) in bytes_by_storage_type {
            points.push((
                "BucketSizeBytes".into(),
                storage_type.to_string(),
                at_ms,
                *bytes,
            ));
        }
        points.push((
            "NumberOfObjects".into(),
            "AllStorageTypes".into(),
            at_ms,
            objects,
        ));
    }

    /// The next call fails with `error` (see [`crate::fakes::calls::throttled`]).
    pub fn fail_next(&self, error: Error) {
        self.calls.fail_next("bucket_storage", error);
    }

    /// The buckets asked about, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.all()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Datapoint>>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The average of the newest one-day period (from `start`) holding datapoints of `metric` and
/// `storage_type` before `end`, as `GetMetricData` with `Average`, period 86400 and
/// `TimestampDescending` reports first.
fn latest(
    points: &[Datapoint],
    metric: &str,
    storage_type: &str,
    start: u64,
    end: u64,
) -> Option<f64> {
    let mut periods: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for (m, t, at, value) in points {
        if m == metric && t == storage_type && (start..end).contains(at) {
            periods
                .entry((at - start) / DAY_MS)
                .or_default()
                .push(*value);
        }
    }
    let (_, values) = periods.into_iter().next_back()?;
    Some(values.iter().sum::<f64>() / values.len() as f64)
}

impl StorageMetrics for MemoryStorageMetrics {
    async fn bucket_storage(&self, bucket: &str, now_ms: u64) -> Result<BucketStorage> {
        self.calls.record("bucket_storage", bucket)?;
        let data = self.lock();
        let points = data.get(bucket).map(Vec::as_slice).unwrap_or_default();
        let start = now_ms.saturating_sub(3 * DAY_MS);
        let mut storage = BucketStorage::default();
        for storage_type in STORAGE_TYPES {
            if let Some(bytes) = latest(points, "BucketSizeBytes", storage_type, start, now_ms) {
                storage
                    .bytes_by_storage_type
                    .insert(storage_type.to_string(), bytes);
            }
        }
        storage.objects = latest(points, "NumberOfObjects", "AllStorageTypes", start, now_ms);
        Ok(storage)
    }
}

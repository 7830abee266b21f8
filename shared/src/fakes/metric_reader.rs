//! A fake of [`MetricReader`]: CloudWatch datapoints in memory, read as the adapter reads them
//! (the latest one-minute `Maximum` in the look-back), plus steady metrics that read the same
//! value at any time (a replica lag that holds for the whole test).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::Calls;
use crate::error::Result;
use crate::ports::MetricReader;

type Key = (String, String, Vec<(String, String)>);

fn key(namespace: &str, metric: &str, dimensions: &[(&str, &str)]) -> Key {
    let mut dims: Vec<(String, String)> = dimensions
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    dims.sort();
    (namespace.into(), metric.into(), dims)
}

#[derive(Debug, Default)]
struct State {
    points: BTreeMap<Key, Vec<(u64, f64)>>,
    steady: BTreeMap<Key, f64>,
}

/// [`MetricReader`] in memory.
#[derive(Debug, Default)]
pub struct FakeMetricReader {
    state: Mutex<State>,
    /// The calls made (`latest`, `at_or_before`), and failures to answer with.
    pub calls: Calls,
}

impl FakeMetricReader {
    /// No metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// A datapoint `value` at `at_ms`.
    pub fn put(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        value: f64,
        at_ms: u64,
    ) {
        self.state
            .lock()
            .unwrap()
            .points
            .entry(key(namespace, metric, dimensions))
            .or_default()
            .push((at_ms, value));
    }

    /// The metric reads `value`, as of the time asked, whenever it is read.
    pub fn steady(
        self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        value: f64,
    ) -> Self {
        self.state
            .lock()
            .unwrap()
            .steady
            .insert(key(namespace, metric, dimensions), value);
        self
    }
}

impl MetricReader for FakeMetricReader {
    async fn latest(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        now_ms: u64,
        lookback_ms: u64,
    ) -> Result<Option<(f64, u64)>> {
        self.calls
            .record("latest", &format!("{namespace}/{metric} {dimensions:?}"))?;
        let state = self.state.lock().unwrap();
        let k = key(namespace, metric, dimensions);
        if let Some(v) = state.steady.get(&k) {
            return Ok(Some((*v, now_ms)));
        }
        // The adapter asks for one-minute periods from now − look-back to now + 1 min, newest
        // first, and takes the first: the newest minute's Maximum, stamped at the minute's start.
        let from = now_ms.saturating_sub(lookback_ms);
        let minute = |t: u64| t - t % 60_000;
        let points: Vec<(u64, f64)> = state
            .get_points(&k)
            .iter()
            .copied()
            .filter(|(t, _)| *t >= minute(from) && *t < now_ms + 60_000)
            .collect();
        let Some(newest) = points.iter().map(|(t, _)| minute(*t)).max() else {
            return Ok(None);
        };
        let max = points
            .iter()
            .filter(|(t, _)| minute(*t) == newest)
            .map(|(_, v)| *v)
            .fold(f64::MIN, f64::max);
        Ok(Some((max, newest)))
    }

    async fn at_or_before(
        &self,
        namespace: &str,
        metric: &str,
        dimensions: &[(&str, &str)],
        at_ms: u64,
        lookback_ms: u64,
    ) -> Result<Option<(f64, u64)>> {
        self.calls.record(
            "at_or_before",
            &format!("{namespace}/{metric} {dimensions:?} at {at_ms}"),
        )?;
        let state = self.state.lock().unwrap();
        let k = key(namespace, metric, dimensions);
        // As the adapter asks: whole minutes from (the minute of at − look-back) up to the
        // minute `at_ms` falls in, exclusive; the newest minute's Maximum, stamped at its start.
        let minute = |t: u64| t - t % 60_000;
        let end = minute(at_ms);
        let start = end.saturating_sub(lookback_ms.div_ceil(60_000) * 60_000);
        if start >= end {
            return Ok(None);
        }
        if let Some(v) = state.steady.get(&k) {
            return Ok(Some((*v, end - 60_000)));
        }
        let points: Vec<(u64, f64)> = state
            .get_points(&k)
            .iter()
            .copied()
            .filter(|(t, _)| *t >= start && *t < end)
            .collect();
        let Some(newest) = points.iter().map(|(t, _)| minute(*t)).max() else {
            return Ok(None);
        };
        let max = points
            .iter()
            .filter(|(t, _)| minute(*t) == newest)
            .map(|(_, v)| *v)
            .fold(f64::MIN, f64::max);
        Ok(Some((max, newest)))
    }
}

impl State {
    fn get_points(&self, k: &Key) -> &[(u64, f64)] {
        self.points.get(k).map(Vec::as_slice).unwrap_or_default()
    }
}

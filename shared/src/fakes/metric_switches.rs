//! A fake of [`MetricSwitches`]: CloudWatch metrics and the switch alarms on them, in memory,
//! each alarm evaluated on every datum written to its metric as the template's switch alarms
//! are ([`SWITCH_ALARM`]): `Maximum` over 60-second periods aligned to the minute, one period, one
//! datapoint to alarm, `LessThanThreshold` 1, `TreatMissingData` `ignore` (a period without data
//! keeps the alarm's state). As the sandbox's CloudWatch does, the alarm is evaluated at once on
//! the period the datum falls in; CloudWatch evaluates it when the period has passed.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::Calls;
use crate::error::Result;
use crate::ports::{AlarmState, Changed, MetricSwitches, SwitchMetric};

/// The switch alarm the fake models, as template.yaml creates it.
pub const SWITCH_ALARM: &str =
    "Maximum over 60 s, 1 of 1 datapoints, LessThanThreshold 1, TreatMissingData ignore";

/// The period of the switch alarms (s): standard resolution, the least CloudWatch evaluates it
/// with on a standard-resolution metric.
pub const PERIOD_MS: u64 = 60_000;

#[derive(Debug)]
struct Alarm {
    metric: SwitchMetric,
    state: AlarmState,
}

#[derive(Debug, Default)]
struct State {
    alarms: BTreeMap<String, Alarm>,
    data: BTreeMap<SwitchMetric, Vec<(u64, f64)>>,
    requests: u64,
}

/// [`MetricSwitches`] in memory.
#[derive(Debug)]
pub struct FakeMetricSwitches {
    state: Mutex<State>,
    base_ms: u64,
    start: tokio::time::Instant,
    /// The calls made (`put`, `alarm`), and failures to answer with.
    pub calls: Calls,
}

/// The reads of [`FakeMetricSwitches`].
pub const READS: &[&str] = &["alarm"];

impl Default for FakeMetricSwitches {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeMetricSwitches {
    /// CloudWatch without alarms. Its clock is tokio's (paused in stories), started at the wall
    /// time of its creation.
    pub fn new() -> Self {
        let base_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        FakeMetricSwitches {
            state: Mutex::new(State::default()),
            base_ms,
            start: tokio::time::Instant::now(),
            calls: Calls::default(),
        }
    }

    /// A switch alarm on `metric` in `state` (`OK`, `ALARM` or `INSUFFICIENT_DATA`: a new
    /// alarm's state before any datum).
    pub fn with_alarm(self, name: &str, metric: SwitchMetric, state: &str) -> Self {
        self.state.lock().unwrap().alarms.insert(
            name.into(),
            Alarm {
                metric,
                state: AlarmState {
                    value: state.into(),
                    since_ms: Some(self.now_ms()),
                    reason: "created".into(),
                },
            },
        );
        self
    }

    /// The fake's clock (ms since the epoch): tokio's time since its creation.
    pub fn now_ms(&self) -> u64 {
        self.base_ms + self.start.elapsed().as_millis() as u64
    }

    /// The alarm's state now, without counting a call.
    pub fn peek(&self, name: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state.alarms.get(name).map(|a| a.state.value.clone())
    }

    /// Every value written to `metric`, in order.
    pub fn values(&self, metric: &SwitchMetric) -> Vec<f64> {
        let state = self.state.lock().unwrap();
        state
            .data
            .get(metric)
            .map(|d| d.iter().map(|(_, v)| *v).collect())
            .unwrap_or_default()
    }
}

impl MetricSwitches for FakeMetricSwitches {
    async fn put(&self, metric: &SwitchMetric, value: f64) -> Result<Changed> {
        let (name, dimension) = &metric.dimension;
        self.calls.record(
            "put",
            &format!(
                "{}/{} {name}={dimension} {value}",
                metric.namespace, metric.metric
            ),
        )?;
        let now = self.now_ms();
        let state = &mut *self.state.lock().unwrap();
        let data = state.data.entry(metric.clone()).or_default();
        data.push((now, value));
        let period = now - now % PERIOD_MS;
        let max = data
            .iter()
            .filter(|(at, _)| *at >= period && *at < period + PERIOD_MS)
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        for alarm in state.alarms.values_mut().filter(|a| &a.metric == metric) {
            let next = if max < 1.0 { "ALARM" } else { "OK" };
            if alarm.state.value != next {
                alarm.state = AlarmState {
                    value: next.into(),
                    since_ms: Some(now),
                    reason: format!(
                        "Threshold Crossed: 1 out of the last 1 datapoints [{max:?}] was {}less \
                         than the threshold (1.0)",
                        if next == "OK" { "not " } else { "" }
                    ),
                };
            }
        }
        state.requests += 1;
        Ok(Changed {
            request_id: Some(format!("fake-cloudwatch-{}", state.requests)),
            started: None,
        })
    }

    async fn alarm(&self, name: &str) -> Result<Option<AlarmState>> {
        self.calls.record("alarm", name)?;
        let state = self.state.lock().unwrap();
        Ok(state.alarms.get(name).map(|a| a.state.clone()))
    }
}

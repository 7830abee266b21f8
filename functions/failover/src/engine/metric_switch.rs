//! Traffic through CloudWatch-metric switches, the second choice for accounts without a Route 53
//! ARC cluster: per side, a metric the function writes with `PutMetricData` in the secondary
//! region (1: the side takes traffic, 0: it does not) and an alarm on it there, which the side's
//! Route 53 health check of type `CLOUDWATCH_METRIC` watches (OK: healthy, ALARM: unhealthy).
//! The switch is moved by data-plane writes in the secondary region only, and read back through
//! `DescribeAlarms` there: the state CloudWatch derives from the data stream Route 53's checker
//! follows (the checker reads the metric data itself and, with insufficient data, keeps the last
//! status — `InsufficientDataHealthStatus: LastKnownStatus`, which `TreatMissingData: ignore`
//! mirrors on the alarm). The new side is switched on before the old one off: failover records
//! cannot route to nobody, so there is no separate fence.
//!
//! The alarms (template.yaml, `FailoverMetricSwitches: create`) are `Maximum` over 60 s, one
//! datapoint of one period, `LessThanThreshold` 1, with `TreatMissingData: ignore`: "The current
//! alarm state is maintained" when data is missing (Amazon CloudWatch User Guide, "Configuring
//! how CloudWatch alarms treat missing data",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html#alarms-and-missing-data>),
//! so a switch keeps its position between writes without the function writing every minute.
//! The metric is standard resolution: a Route 53 health check supports alarms on
//! "Standard-resolution metrics. High-resolution metrics aren't supported" (Route 53 API
//! Reference, AlarmIdentifier,
//! <https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html>), so the
//! 10-second high-resolution alarm is not open to us and the period is 60 s.
//!
//! **RTO cost on AWS.** CloudWatch evaluates a 60-s period after it has passed: a datum written
//! now changes the alarm about 1–2 minutes later (the rest of its minute, then the evaluation);
//! Route 53's checkers then follow the alarm, and resolvers the record's TTL. Against ARC's
//! routing controls (seconds + TTL) that is roughly one to two minutes more — the plan's `plan`
//! mode counts 120 s for it. The sandbox's CloudWatch evaluates at once on the write.
//!
//! Two writes of opposite values in one period leave one `Maximum` for both: the alarm reads 1.
//! A switch whose alarms have not moved [`REWRITE_AFTER_MS`] after the last write is written
//! again (its period has passed, the new period holds only the new value).

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{
    AlarmState, Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::{MetricSwitchPlan, MetricSwitchSide};

use super::*;

/// The switch alarms' period (ms): standard resolution, the least Route 53 can watch.
pub const SWITCH_PERIOD_MS: u64 = 60_000;

/// A value is written again when its alarm has not moved this long after the last write: its
/// period (60 s) has passed and CloudWatch has had half a minute to evaluate it.
pub const REWRITE_AFTER_MS: u64 = SWITCH_PERIOD_MS + 30_000;

/// How long the traffic step (and a drill's clean-up) waits for the alarms before it fails:
/// five periods, as the verify step waits for the estate.
pub const SWITCH_FOR_MS: u64 = 5 * SWITCH_PERIOD_MS;

/// The alarm state that says a side takes traffic (`OK`: its health check is healthy) or not
/// (`ALARM`: unhealthy).
pub(crate) fn alarm_for(on: bool) -> &'static str {
    if on {
        "OK"
    } else {
        "ALARM"
    }
}

/// One side as written: `<namespace>/<metric> <dimension>=<value> = 0|1`.
pub(super) fn describe_write(ms: &MetricSwitchPlan, side: &MetricSwitchSide, on: bool) -> String {
    format!(
        "{}/{} {}={} = {}",
        ms.namespace,
        ms.metric,
        ms.dimension,
        side.dimension_value,
        u8::from(on)
    )
}

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
    > Engine<'_, R, N, D, M, C, W, K, P>
{
    /// Keeps the switch alarms' states from before the first change (a drill puts them back),
    /// saved at once in a drill.
    async fn remember_switches(
        &self,
        shared: &Mutex<Execution>,
        ms: &MetricSwitchPlan,
    ) -> Result<()> {
        if !shared.lock().await.before.metric_switches.is_empty() {
            return Ok(());
        }
        let mut seen = std::collections::BTreeMap::new();
        for side in [&ms.primary, &ms.secondary] {
            let state = self.ports.metric_switches.alarm(&side.alarm).await?;
            seen.insert(
                side.alarm.clone(),
                state.map_or_else(|| "missing".to_string(), |s| s.value),
            );
        }
        let mut exec = shared.lock().await;
        if exec.before.metric_switches.is_empty() {
            exec.before.metric_switches = seen;
            if exec.mode == Mode::Drill {
                self.save(&exec).await?;
            }
        }
        Ok(())
    }

    /// Moves the switch toward one side: the side traffic goes to written 1 and the side it
    /// leaves 0 (each only while its alarm does not already say so), then both alarms read
    /// back until the new side's is OK and the old side's ALARM, for up to [`SWITCH_FOR_MS`]
    /// from `since_ms`. A value whose alarm has not moved [`REWRITE_AFTER_MS`] after its last
    /// write is written again.
    pub(super) async fn flip_metric(
        &self,
        shared: &Mutex<Execution>,
        ms: &MetricSwitchPlan,
        wanted: &[(&MetricSwitchSide, bool)],
        remember: bool,
        since_ms: u64,
        deadline: Instant,
    ) -> Result<Progress> {
        loop {
            let mut states: Vec<AlarmState> = Vec::new();
            for (side, _) in wanted {
                let state = match self
                    .observe(&side.alarm, deadline, || {
                        self.ports.metric_switches.alarm(&side.alarm)
                    })
                    .await?
                {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        return Ok(Progress::Failed(format!(
                            "alarm {} does not exist in {} (the switch of that side's \
                             CLOUDWATCH_METRIC health check)",
                            side.alarm, self.plan.plan.secondary_region
                        )))
                    }
                    Err(waiting) => return Ok(waiting),
                };
                states.push(state);
            }
            let pending: Vec<(&MetricSwitchSide, bool)> = wanted
                .iter()
                .zip(&states)
                .filter(|((_, on), state)| state.value != alarm_for(*on))
                .map(|((side, on), _)| (*side, *on))
                .collect();
            if pending.is_empty() {
                return Ok(Progress::Done);
            }
            if remember {
                self.remember_switches(shared, ms).await?;
            }
            let now = self.now();
            for (side, on) in &pending {
                let target = describe_write(ms, side, *on);
                let last = shared
                    .lock()
                    .await
                    .actions
                    .iter()
                    .filter(|a| a.operation == "PutMetricData" && a.target == target)
                    .map(|a| a.at_ms)
                    .max();
                if last.is_some_and(|at| now.saturating_sub(at) < REWRITE_AFTER_MS) {
                    continue;
                }
                match self
                    .ports
                    .metric_switches
                    .put(&ms.metric_of(side), if *on { 1.0 } else { 0.0 })
                    .await
                {
                    Ok(changed) => {
                        self.acted(shared, "PutMetricData", &target, &changed)
                            .await?
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "PutMetricData refused for now; trying again");
                    }
                    Err(e) => return Ok(Progress::Failed(format!("PutMetricData {target}: {e}"))),
                }
            }
            if self.now() >= since_ms + SWITCH_FOR_MS {
                let said: Vec<String> = wanted
                    .iter()
                    .zip(&states)
                    .map(|((side, on), s)| {
                        format!(
                            "{} is {} (expected {})",
                            side.alarm,
                            s.value,
                            alarm_for(*on)
                        )
                    })
                    .collect();
                return Ok(Progress::Failed(format!(
                    "the switch alarms did not move within {} s: {}",
                    SWITCH_FOR_MS / 1000,
                    said.join("; ")
                )));
            }
            if !self.sleep(deadline).await {
                let said: Vec<String> = pending
                    .iter()
                    .map(|(side, on)| format!("{} not yet {}", side.alarm, alarm_for(*on)))
                    .collect();
                return Ok(Progress::Waiting(format!(
                    "waiting for CloudWatch to evaluate the switch alarms: {}",
                    said.join("; ")
                )));
            }
        }
    }
}

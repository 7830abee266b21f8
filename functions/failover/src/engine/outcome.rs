//! The outcome of an execution: the report, the measured figures (RTO, recovery time), the
//! metrics and the final notification.

use breakwater::kube::capacity::Capacity;
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::report::picture::RtoTimeline;
use breakwater::report::{Action, Phase, Picture, Report};
use breakwater::Result;
use tokio::sync::Mutex;

use crate::plan::LoadedPlan;

use super::*;

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
    pub(super) async fn report(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        if self.begin(shared, StepName::Report).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let mut exec = shared.lock().await.clone();
        exec.outcome = "succeeded".into();
        exec.finished_ms = Some(self.now());
        if let Some(step) = exec.steps.get_mut(&StepName::Report) {
            step.state = StepState::Done;
            step.finished_ms = exec.finished_ms;
            step.detail = "report written".into();
        }
        let figures = figures(&exec);
        let summary = format!(
            "{} of plan {} succeeded. RTO {} (target {} s){}.",
            exec.mode.as_str(),
            exec.plan,
            figures.rto,
            self.plan.plan.targets.rto_seconds,
            exec.lag_seconds
                .map(|l| format!("; replica lag at promotion {l} s"))
                .unwrap_or_default()
        );
        self.finish(&mut exec, &summary, "info").await?;
        *shared.lock().await = exec;
        Ok(Progress::Done)
    }

    /// Writes the report, saves the ended execution, releases the plan and notifies.
    pub(super) async fn finish(
        &self,
        exec: &mut Execution,
        summary: &str,
        severity: &str,
    ) -> Result<()> {
        execution_metrics(exec, self.plan).emit(exec.finished_ms.unwrap_or_default());
        let report = build_report(exec, self.plan);
        let location = report.write(&self.toolkit.store).await?;
        exec.report_key = Some(location.json_key.clone());
        self.save(exec).await?;
        let plan_key = crate::plan_state::plan_key(&exec.plan);
        let id = exec.id.clone();
        let finished = exec.finished_ms.unwrap_or_default();
        self.toolkit
            .store
            .update::<crate::plan_state::PlanState, _>(&plan_key, |state| {
                if state.active.as_deref() == Some(id.as_str()) {
                    state.active = None;
                    state.last_finished_ms = Some(finished);
                    true
                } else {
                    false
                }
            })
            .await?;
        self.notify(
            &exec.id,
            "finished",
            format!(
                "{summary} Report: s3://{}/{} (in the console: {})",
                location.bucket,
                location.markdown_key,
                location.console_url(&self.toolkit.settings.region)
            ),
            severity,
        )
        .await
    }
}

/// The measured figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Detected → healthy, formatted.
    pub rto: String,
    /// Detected → healthy (ms).
    pub rto_ms: Option<u64>,
    /// Decided → traffic moved (ms): what AWS's own latencies bound.
    pub recovery_ms: Option<u64>,
}

/// RTO and recovery time of an execution.
pub fn figures(exec: &Execution) -> Figures {
    let done = |s: StepName| exec.steps.get(&s).and_then(|s| s.finished_ms);
    let healthy = done(StepName::Verify);
    let rto_ms = healthy.map(|h| h.saturating_sub(exec.detected_ms));
    let recovery_ms = done(StepName::Traffic).map(|t| t.saturating_sub(exec.started_ms));
    Figures {
        rto: rto_ms
            .map(|ms| format!("{}.{:03} s", ms / 1000, ms % 1000))
            .unwrap_or_else(|| "not reached".into()),
        rto_ms,
        recovery_ms,
    }
}

/// The metrics of an ended execution, for the dashboard: the `Outcome` dimension is the mode
/// (`drill`, `failover`, …) so that "the last drill's RTO" is one metric; the result is in
/// `ExecutionsSucceeded` / `ExecutionsFailed`.
pub fn execution_metrics(exec: &Execution, plan: &LoadedPlan) -> Metrics {
    let f = figures(exec);
    let mut m = Metrics::new("failover", exec.mode.as_str());
    m.property("Plan", exec.plan.clone())
        .property("Execution", exec.id.clone())
        .property("Result", exec.outcome.clone());
    let succeeded = exec.outcome == "succeeded";
    m.add(
        "ExecutionsSucceeded",
        f64::from(u8::from(succeeded)),
        Unit::Count,
    )
    .add(
        "ExecutionsFailed",
        f64::from(u8::from(!succeeded)),
        Unit::Count,
    )
    .add(
        "RtoTargetSeconds",
        plan.plan.targets.rto_seconds as f64,
        Unit::Seconds,
    );
    if let Some(ms) = f.rto_ms {
        m.add("RtoSeconds", ms as f64 / 1000.0, Unit::Seconds);
    }
    if let Some(ms) = f.recovery_ms {
        m.add("RecoveryMilliseconds", ms as f64, Unit::Milliseconds);
    }
    m
}

/// The report of an execution.
pub fn build_report(exec: &Execution, plan: &LoadedPlan) -> Report {
    let mut report = Report::new(
        "failover",
        &exec.id,
        &format!("{} of plan {}", exec.mode.as_str(), exec.plan),
        &exec.outcome,
    );
    if exec.detected_ms < exec.started_ms {
        report.phases.push(Phase {
            name: "detected → decided".into(),
            started_at_ms: exec.detected_ms,
            finished_at_ms: exec.started_ms,
            detail: exec
                .quorum
                .as_ref()
                .map(|q| q.to_string())
                .unwrap_or_else(|| exec.trigger.clone()),
        });
    }
    let mut critical: Vec<String> = report.phases.iter().map(|p| p.name.clone()).collect();
    let finished = |step: &StepName| exec.steps.get(step).and_then(|s| s.finished_ms);
    for step in exec.mode.steps() {
        let Some(s) = exec.steps.get(step) else {
            continue;
        };
        if let (Some(start), Some(end)) = (s.started_ms, s.finished_ms) {
            let name = format!(
                "{} ({})",
                step.as_str(),
                serde_json::to_value(s.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            );
            // The RTO's chain runs to verify; of database and nodes (run together) the one
            // that ended last held traffic back.
            let on_path = match step {
                StepName::Cleanup | StepName::Report => false,
                StepName::Database => finished(&StepName::Nodes) <= Some(end),
                StepName::Nodes => finished(&StepName::Database) < Some(end),
                _ => true,
            };
            if on_path {
                critical.push(name.clone());
            }
            report.phases.push(Phase {
                name,
                started_at_ms: start,
                finished_at_ms: end,
                detail: s.detail.clone(),
            });
        }
    }
    report.actions = exec
        .actions
        .iter()
        .map(|a| Action {
            operation: a.operation.clone(),
            target: a.target.clone(),
            request_id: a.request_id.clone(),
        })
        .collect();
    let f = figures(exec);
    report.picture = Some(Picture::Timeline(RtoTimeline {
        from_ms: exec.detected_ms,
        to_ms: f.rto_ms.map(|ms| exec.detected_ms + ms),
        target_ms: plan.plan.targets.rto_seconds * 1000,
        critical,
    }));
    let facts = &mut report.facts;
    facts.insert(
        "rto".into(),
        format!("{} (target {} s)", f.rto, plan.plan.targets.rto_seconds),
    );
    if let Some(ms) = f.rto_ms {
        facts.insert(
            "rto_within_target".into(),
            (ms <= plan.plan.targets.rto_seconds * 1000).to_string(),
        );
    }
    if let Some(ms) = f.recovery_ms {
        facts.insert(
            "decided_to_traffic_moved".into(),
            format!("{}.{:03} s", ms / 1000, ms % 1000),
        );
    }
    facts.insert(
        "replica_lag_at_promotion".into(),
        exec.lag_seconds
            .map(|l| format!("{l} s (RPO {} s)", plan.plan.targets.rpo_seconds))
            .unwrap_or_else(|| "not read".into()),
    );
    if let Some(a) = exec.accept_data_loss_seconds {
        facts.insert("accepted_data_loss_window".into(), format!("{a} s"));
    }
    facts.insert("plan_hash".into(), exec.plan_hash.clone());
    facts.insert("promotion_epoch".into(), exec.epoch.to_string());
    facts.insert("trigger".into(), exec.trigger.clone());
    report.notes = exec.notes.clone();
    report
}

//! What the team is told: the drain's notification (what blocked, what was forced, what to
//! escalate) and the on-demand failover's.

use breakwater::kube::nodes::Clusters;
use breakwater::notify::Notification;
use breakwater::ports::{InstanceInfo, Instances, NodeGroups};
use breakwater::Result;
use serde_json::Value;

use crate::drain;
use crate::on_demand::{FailoverAction, Pool};
use crate::record::InstanceRecord;
use crate::SpotFunction;

impl<I: Instances, G: NodeGroups, K: Clusters> SpotFunction<I, G, K> {
    pub(crate) async fn notify_drain(
        &self,
        record: &InstanceRecord,
        info: &InstanceInfo,
        failover: Option<&FailoverAction>,
    ) -> Result<()> {
        let Some(report) = &record.report else {
            return Ok(());
        };
        let node = record.node.clone().unwrap_or_default();
        let mut text = format!(
            "Spot instance {} ({}, {}, node group {}) is being reclaimed. Node {node} was cordoned and drained in {:.1} s: {} pods evicted, {} forced past their budgets{}.\n",
            info.id,
            info.instance_type,
            info.az,
            info.node_group.as_deref().unwrap_or("-"),
            report.took_ms as f64 / 1000.0,
            report.evicted(),
            report.forced(),
            if report.deadline_missed { " — THE DEADLINE WAS MISSED" } else { "" }
        );
        let mut blocking = Vec::new();
        for p in &report.pods {
            match p {
                drain::PodOutcome::Forced {
                    pod,
                    grace_s,
                    blocked_by,
                    policy,
                } => blocking.push(format!(
                    "- {pod}: deleted with {grace_s} s grace ({policy:?}); blocked by: {}",
                    blocked_by.as_deref().unwrap_or("nothing (delete-now)")
                )),
                drain::PodOutcome::Blocked { pod, reason } => {
                    blocking.push(format!("- {pod}: NOT evicted: {reason}"))
                }
                drain::PodOutcome::Evicted { pod, refusals } if *refusals > 0 => {
                    blocking.push(format!("- {pod}: evicted after {refusals} budget refusals"))
                }
                _ => {}
            }
        }
        if !blocking.is_empty() {
            text.push_str("\nPods that blocked:\n");
            text.push_str(&blocking.join("\n"));
            text.push('\n');
        }
        for e in &report.escalations {
            text.push_str(&format!("\nESCALATE: {e}\n"));
        }
        if !report.still_terminating.is_empty() {
            text.push_str(&format!(
                "\nStill terminating at the deadline: {}\n",
                report.still_terminating.join(", ")
            ));
        }
        text.push_str(&format!(
            "\nLeft alone: {}\n",
            if report.left_alone.is_empty() {
                "nothing".into()
            } else {
                report.left_alone.join("; ")
            }
        ));
        if let Some(FailoverAction::ScaledUp {
            on_demand, after, ..
        }) = failover
        {
            text.push_str(&format!(
                "\nFailover: on-demand node group {on_demand} raised to {after}.\n"
            ));
        }
        let note = Notification::new(
            format!(
                "Spot: drained {node} ({}) — {} evicted, {} forced",
                info.id,
                report.evicted(),
                report.forced()
            ),
            text,
        )
        .attribute("function", "spot")
        .attribute(
            "outcome",
            if report.deadline_missed {
                "deadline-missed"
            } else {
                "drained"
            },
        )
        .details(serde_json::to_value(report).unwrap_or(Value::Null));
        self.toolkit.notifier.publish(&note).await.map(drop)
    }

    /// Tells the team that the pool's interruptions raised the on-demand node group.
    pub(crate) async fn notify_failover(&self, pool: &Pool, action: &FailoverAction) -> Result<()> {
        if let FailoverAction::ScaledUp {
            on_demand,
            before,
            after,
            count,
        } = action
        {
            tracing::warn!(%on_demand, %before, %after, count, "failed over to on-demand");
            let note = Notification::new(
                format!("Spot: {} interruptions in {}/{} — on-demand {on_demand} raised", count, pool.node_group, pool.az),
                format!(
                    "{count} spot interruptions in pool {}/{}/{}/{} within {} min (threshold {}).\n\
                     Raised on-demand node group {on_demand}: {before} → {after}.\n\
                     It returns to {before} after {} min without interruptions, unless someone resizes it.\n",
                    pool.cluster, pool.node_group, pool.instance_type, pool.az,
                    self.settings.window_ms / 60_000, self.settings.failover_threshold,
                    self.settings.stable_ms / 60_000
                ),
            )
            .attribute("function", "spot")
            .attribute("outcome", "failover");
            self.toolkit.notifier.publish(&note).await?;
        }
        Ok(())
    }
}

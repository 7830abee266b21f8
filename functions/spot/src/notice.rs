//! What the team is told: the drain's notification (what blocked, what was forced, what to
//! escalate) and the on-demand failover's.

use breakwater::kube::nodes::Clusters;
use breakwater::notify::Notification;
use breakwater::ports::{InstanceInfo, Instances, LifecycleHooks, NodeGroups, TargetGroups};
use breakwater::Result;
use serde_json::Value;

use breakwater::report::picture::DrainLanes;
use breakwater::report::{Action, Phase, Picture, Report};

use crate::drain::{self, DrainReport, PodOutcome};
use crate::on_demand::{FailoverAction, Pool};
use crate::record::InstanceRecord;
use crate::SpotFunction;

impl<I: Instances, G: NodeGroups, K: Clusters, T: TargetGroups, L: LifecycleHooks>
    SpotFunction<I, G, K, T, L>
{
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
        // The report first (written again, the same, if the notification is retried), so that
        // the notification can link it; a report that cannot be written holds no notice back.
        let location = match self
            .drain_report(record, info, report)
            .write(&self.toolkit.store)
            .await
        {
            Ok(location) => Some(location),
            Err(e) => {
                tracing::warn!(error = %e, error_type = e.error_type(), "the drain's report was not written");
                None
            }
        };
        let cause = report.cause.as_deref().unwrap_or("is being reclaimed");
        let mut text = format!(
            "{} instance {} ({}, {}, node group {}) {cause}. Node {node} was cordoned and drained in {:.1} s: {} pods evicted, {} forced past their budgets{}.\n",
            if report.cause.is_some() { "EC2" } else { "Spot" },
            info.id,
            info.instance_type,
            info.az,
            info.node_group.as_deref().unwrap_or("-"),
            report.took_ms as f64 / 1000.0,
            report.evicted(),
            report.forced(),
            match (report.deadline_missed, report.cause.is_some()) {
                (true, false) => " — THE DEADLINE WAS MISSED",
                // A scheduled change's or a termination hook's drain ends at its own window.
                (true, true) => " — pods still blocked at the end of the drain (the node stays cordoned)",
                _ => "",
            }
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
                drain::PodOutcome::Evicted { pod, refusals, .. } if *refusals > 0 => {
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
        if let Some(lb) = &report.load_balancers {
            text.push_str(&format!("\nLoad balancers: {}.\n", lb.summary()));
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
        if let Some(location) = location {
            text.push_str(&format!(
                "\nThe drain, a lane per pod against the deadline: {}\n(breakwater report --function spot {})\n",
                location.console_url(&self.toolkit.settings.region),
                info.id
            ));
        }
        let note = Notification::new(
            format!(
                "{}: drained {node} ({}) — {} evicted, {} forced",
                if report.cause.is_some() {
                    "EC2"
                } else {
                    "Spot"
                },
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

    /// The drain's report: the phases, the figures, and the picture of a lane per pod against
    /// the deadline.
    fn drain_report(
        &self,
        record: &InstanceRecord,
        info: &InstanceInfo,
        d: &DrainReport,
    ) -> Report {
        let node = record.node.as_deref().unwrap_or("?");
        // A warning's deadline is its time + 120 s − the margin; a rebalance's is counted the
        // same way from when it was handled, with no reclaim to come.
        let margin_ms = self.settings.safety_margin_s * 1000;
        let warned_ms = (d.deadline_ms + margin_ms).saturating_sub(120_000);
        let reclaimed_ms = (!d.rebalance && d.cause.is_none()).then_some(d.deadline_ms + margin_ms);
        let blocked = d
            .pods
            .iter()
            .filter(|p| matches!(p, PodOutcome::Blocked { .. }))
            .count();
        let outcome = if d.deadline_missed {
            "deadline-missed"
        } else {
            "drained"
        };
        let mut report = Report::new(
            "spot",
            &info.id,
            &format!("Spot drain of node {node} ({})", info.id),
            outcome,
        );
        report.phases.push(Phase {
            name: if d.cause.is_some() {
                "notice → drain".into()
            } else if d.rebalance {
                "rebalance recommendation → drain".into()
            } else {
                "warning → drain".into()
            },
            started_at_ms: warned_ms.min(d.started_ms),
            finished_at_ms: d
                .load_balancers
                .as_ref()
                .map_or(d.started_ms, |lb| lb.started_ms),
            detail: format!("cordoned {node}"),
        });
        report.phases.push(Phase {
            name: "drain".into(),
            started_at_ms: d.started_ms,
            finished_at_ms: d.started_ms + d.took_ms,
            detail: format!(
                "{} evicted, {} forced, {blocked} still there, drained in {:.1} s of the {:.0} s to the deadline",
                d.evicted(),
                d.forced(),
                d.took_ms as f64 / 1000.0,
                d.deadline_ms.saturating_sub(warned_ms) as f64 / 1000.0
            ),
        });
        for (k, v) in [
            ("instance", info.id.clone()),
            ("instance_type", info.instance_type.clone()),
            ("availability_zone", info.az.clone()),
            ("node", node.to_string()),
            ("cluster", record.cluster.clone().unwrap_or_default()),
            ("deadline", breakwater::clock::rfc3339(d.deadline_ms)),
            ("pods_evicted", d.evicted().to_string()),
            ("pods_forced", d.forced().to_string()),
            ("pods_still_there", blocked.to_string()),
            ("deadline_missed", d.deadline_missed.to_string()),
        ] {
            report.facts.insert(k.into(), v);
        }
        report.actions.push(Action {
            operation: "cordon (taint, unschedulable)".into(),
            target: format!("node/{node}"),
            request_id: None,
        });
        if let Some(lb) = &d.load_balancers {
            report.phases.push(Phase {
                name: "load balancers".into(),
                started_at_ms: lb.started_ms,
                finished_at_ms: lb.ended_ms,
                detail: lb.summary(),
            });
            // Phases are listed in time order: this one falls between the cordon and the drain.
            report.phases.sort_by_key(|p| p.started_at_ms);
            for t in &lb.targets {
                report.actions.push(Action {
                    operation: format!(
                        "elasticloadbalancing:DeregisterTargets (delay {} s)",
                        t.delay_s
                    ),
                    target: format!("{} {}", t.target_group, t.target),
                    request_id: None,
                });
            }
        }
        for p in &d.pods {
            let operation = match p {
                PodOutcome::Evicted { .. } => "create pods/eviction",
                PodOutcome::Forced { .. } => "delete pod (over its budget)",
                _ => continue,
            };
            report.actions.push(Action {
                operation: operation.into(),
                target: format!("pod/{}", p.pod()),
                request_id: None,
            });
        }
        report
            .notes
            .extend(d.escalations.iter().map(|e| format!("escalate: {e}")));
        report.notes.extend(
            d.still_terminating
                .iter()
                .map(|p| format!("{p}: still terminating at the deadline")),
        );
        report
            .notes
            .extend(d.left_alone.iter().map(|l| format!("left alone: {l}")));
        report.picture = Some(Picture::Drain(DrainLanes {
            warned_ms,
            deadline_ms: d.deadline_ms,
            reclaimed_ms,
            lanes: d.lanes(),
        }));
        report
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

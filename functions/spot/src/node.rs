//! One instance's node: which managed cluster it is in, the cordon (at once), the Event on the
//! node, the drain inside the deadline with the on-demand accounting beside it, and the end of
//! the story when the node is already gone.

use std::time::Instant;

use breakwater::kube::nodes::{Clusters, NodeEvent, NodeWrite, Nodes};
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{InstanceInfo, Instances, LifecycleHooks, NodeGroups, TargetGroups};
use breakwater::Result;
use serde_json::{json, Value};

use crate::drain::{choose, namespace_policies, namespaces_of, pods_on, Drainer, Policy};
use crate::events::SpotEvent;
use crate::on_demand::{self as failover, FailoverAction, Pool};
use crate::record::{record_key, InstanceRecord, Phase};
use crate::settings::RebalancePolicy;
use crate::{reason_of, SpotFunction};
use breakwater::state::KeptLease;

/// The least a scheduled change's drain is given, when the change has begun or is about to.
const SCHEDULED_LEAST_MS: u64 = 30_000;

impl<I: Instances, G: NodeGroups, K: Clusters, T: TargetGroups, L: LifecycleHooks>
    SpotFunction<I, G, K, T, L>
{
    /// The managed cluster an instance belongs to: its `eks:cluster-name` tag (managed node
    /// groups), or — for a node without it — the managed cluster whose API server has a node
    /// with the instance's `providerID`. Karpenter v1 tags its instances
    /// `kubernetes.io/cluster/<name>: owned`, `eks:eks-cluster-name` (which replaced
    /// `karpenter.sh/managed-by`, Karpenter's v1 upgrade guide) and `karpenter.sh/nodepool`, as
    /// its controller policy's `aws:RequestTag` conditions require; self-managed groups carry
    /// the first; neither has `eks:cluster-name` or a node-group tag. Such a node is drained
    /// like any other, and no node group is raised for it. An instance of another EKS cluster
    /// is foreign without a look.
    pub(crate) async fn cluster_of(
        &self,
        info: &InstanceInfo,
        instance: &str,
    ) -> Result<Option<String>> {
        match &info.cluster {
            Some(c) if self.settings.clusters.contains(c) => return Ok(Some(c.clone())),
            Some(_) => return Ok(None),
            None => {}
        }
        let now = self.toolkit.store.clock().now_ms();
        for cluster in &self.settings.clusters {
            let client = self.kube.cluster(&self.toolkit.aws, cluster, now).await?;
            if client
                .find_by_provider_id(&info.id, info.private_dns.as_deref())
                .await?
                .is_some()
            {
                tracing::info!(instance, %cluster, "a node of the cluster without a node-group tag (Karpenter or self-managed)");
                return Ok(Some(cluster.clone()));
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn handle_instance(
        &self,
        event: SpotEvent,
        time_ms: u64,
        info: &InstanceInfo,
        cluster: &str,
        started: Instant,
        lease: &KeptLease,
    ) -> Result<Value> {
        let store = &self.toolkit.store;
        let clock = store.clock().clone();
        let now = clock.now_ms();
        let key = record_key(&info.id);
        // Re-read under the lease: a concurrent invocation may have finished the work (a
        // scheduled change or a termination hook drains again: see `on_event`).
        let existing = store.get::<InstanceRecord>(&key).await?;
        let drains_anew = matches!(
            event,
            SpotEvent::Scheduled { .. } | SpotEvent::Lifecycle { .. }
        );
        if let Some(r) = existing.as_ref().filter(|_| !drains_anew) {
            if matches!(r.value.phase, Phase::Drained) {
                if !r.value.notified {
                    self.notify_drain(&r.value, info, None).await?;
                    let mut done = r.value.clone();
                    done.notified = true;
                    lease.check().await?;
                    store.replace(&key, &done, &r.etag).await?;
                }
                return Ok(json!({"outcome": "already-drained", "instance": info.id}));
            }
        }
        let client = self.kube.cluster(&self.toolkit.aws, cluster, now).await?;
        let Some(node) = client
            .find_by_provider_id(&info.id, info.private_dns.as_deref())
            .await?
        else {
            return self.node_gone(&event, info, cluster, lease).await;
        };
        let dry_run = self.toolkit.dry_run();
        let (deadline_ms, rebalance) = match &event {
            SpotEvent::Warning { .. } => (
                (time_ms + 120_000).saturating_sub(self.settings.safety_margin_s * 1000),
                None,
            ),
            SpotEvent::Rebalance { .. } => {
                let policy = self
                    .settings
                    .rebalance_for(cluster, info.node_group.as_deref());
                (
                    now + 120_000 - self.settings.safety_margin_s * 1000,
                    Some(policy),
                )
            }
            // A scheduled change is drained at once (aws-node-termination-handler does the
            // same: "Begin drain immediately for scheduled change events to avoid disruptions in
            // cases such as degraded hardware"), for `scheduled_drain_ms`; its deadline is the
            // change's start, less the margin, when that is sooner.
            SpotEvent::Scheduled { start_ms, .. } => {
                let window = now + self.settings.scheduled_drain_ms;
                let start = start_ms
                    .map(|s| s.saturating_sub(self.settings.safety_margin_s * 1000))
                    .unwrap_or(u64::MAX);
                // A change that has begun (or is about to) still gets a short drain, not none.
                let least = now + SCHEDULED_LEAST_MS.min(self.settings.scheduled_drain_ms);
                (window.min(start).max(least), None)
            }
            // An Auto Scaling termination waits on its hook until the action is completed (or
            // the hook's heartbeat timeout passes): the drain runs as a scheduled change's does,
            // and the instance goes right after it, so the policies act at its deadline.
            SpotEvent::Lifecycle { .. } => (now + self.settings.scheduled_drain_ms, None),
            SpotEvent::StateChange { .. } => {
                return Ok(json!({"outcome": "ignored", "instance": info.id}))
            }
        };
        // Nothing is forced over its budget before a scheduled change is near: the window ends
        // long before the instance goes, and what is still blocked then is reported (the node
        // stays cordoned).
        let far = matches!(&event, SpotEvent::Scheduled { start_ms, .. }
            if start_ms.is_none_or(|s| s.saturating_sub(self.settings.safety_margin_s * 1000) > deadline_ms));
        if rebalance == Some(RebalancePolicy::Ignore) {
            return Ok(
                json!({"outcome": "ignored", "instance": info.id, "reason": "rebalance policy ignore"}),
            );
        }
        if dry_run {
            let pods = pods_on(&client, &node).await?;
            let policies = namespace_policies(&client, &namespaces_of(&pods)).await;
            let (candidates, left_alone) = choose(&pods, &policies, self.settings.default_policy);
            return Ok(
                json!({"outcome": "dry-run", "instance": info.id, "node": node,
                "would_cordon": true, "would_evict": candidates.iter().map(|c| format!("{}/{}", c.namespace, c.name)).collect::<Vec<_>>(),
                "left_alone": left_alone, "deadline": breakwater::clock::rfc3339(deadline_ms)}),
            );
        }
        // 1. Cordon at once: our taint added to the node's own (read, edit, write under its
        // resourceVersion), unschedulable, out of load balancers.
        lease.check().await?;
        if client.cordon(&node, reason_of(&event)).await? == NodeWrite::Gone {
            return self.node_gone(&event, info, cluster, lease).await;
        }
        let cordon_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(node = %node, cordon_ms, "cordoned");
        node_event(&client, &node, &info.id, &event, deadline_ms, now).await;
        let mut record = InstanceRecord {
            instance_id: info.id.clone(),
            cluster: Some(cluster.to_string()),
            node: Some(node.clone()),
            phase: Phase::Draining,
            report: None,
            notified: false,
            history: existing
                .as_ref()
                .map(|r| r.value.history.clone())
                .unwrap_or_default(),
        };
        if rebalance == Some(RebalancePolicy::Cordon) {
            record.phase = Phase::Cordoned {
                uncordon_at_ms: now + self.settings.uncordon_after_ms,
            };
            record.history.push(format!(
                "{}: cordoned on a rebalance recommendation",
                breakwater::clock::rfc3339(now)
            ));
            self.save(&key, &record, lease).await?;
            self.index_cordoned(&info.id, true).await?;
            let mut m = Metrics::new("spot", "cordoned");
            m.add("TimeToCordon", cordon_ms, Unit::Milliseconds);
            m.emit(clock.now_ms());
            return Ok(
                json!({"outcome": "cordoned", "instance": info.id, "node": node,
                "uncordon_at": breakwater::clock::rfc3339(now + self.settings.uncordon_after_ms), "cordon_ms": cordon_ms}),
            );
        }
        record.history.push(format!(
            "{}: cordoned; draining until {}",
            breakwater::clock::rfc3339(now),
            breakwater::clock::rfc3339(deadline_ms)
        ));
        self.save(&key, &record, lease).await?;
        self.index_cordoned(&info.id, false).await?;
        // 2. Out of the load balancers: the node's targets deregistered, and drained before the
        // first eviction (bounded; `targets.rs`). Its failure is reported, never raised.
        let load_balancers = lease
            .keep_while(crate::targets::leave_load_balancers(
                &self.target_groups,
                clock.as_ref(),
                info,
                deadline_ms,
                self.settings.lb_wait_max_ms,
            ))
            .await?;
        if let Some(lb) = &load_balancers {
            record.history.push(format!(
                "{}: load balancers: {}",
                breakwater::clock::rfc3339(lb.ended_ms),
                lb.summary()
            ));
        }
        // 3. The pods, read after the cordon so that none lands in between.
        let pods = pods_on(&client, &node).await?;
        let policies = namespace_policies(&client, &namespaces_of(&pods)).await;
        let (mut candidates, left_alone) = choose(&pods, &policies, self.settings.default_policy);
        if far {
            for c in &mut candidates {
                if c.policy == Policy::OverrideAtDeadline {
                    c.policy = Policy::RespectPdb;
                }
            }
        }
        // 4. Drain, the lease renewed while it runs. The on-demand accounting (a warning only)
        // runs beside it and never holds it up: its errors are reported, not raised.
        let drainer = Drainer {
            client,
            clock: clock.clone(),
            deadline_ms,
        };
        let drain = Box::pin(lease.keep_while(drainer.drain(candidates, left_alone)));
        let accounting = Box::pin(async {
            if matches!(event, SpotEvent::Warning { .. }) {
                self.count_reported(info, cluster).await
            } else {
                (None, None)
            }
        });
        let (report, (failover, failover_error)) = tokio::join!(drain, accounting);
        let mut report = report?;
        report.rebalance = rebalance.is_some();
        report.cause = match &event {
            SpotEvent::Scheduled { code, start_ms, .. } => Some(format!(
                "has an AWS Health scheduled change ({code}, from {})",
                start_ms.map_or("an unknown time".into(), breakwater::clock::rfc3339)
            )),
            SpotEvent::Lifecycle { action, .. } => Some(format!(
                "is being terminated by Auto Scaling group {} (lifecycle hook {})",
                action.group, action.hook
            )),
            _ => None,
        };
        report.load_balancers = load_balancers;
        record.phase = Phase::Drained;
        record.history.push(format!(
            "{}: drained in {} ms: {} evicted, {} forced",
            breakwater::clock::rfc3339(clock.now_ms()),
            report.took_ms,
            report.evicted(),
            report.forced()
        ));
        if let Some(e) = &failover_error {
            record.history.push(format!(
                "{}: on-demand accounting failed: {e}",
                breakwater::clock::rfc3339(clock.now_ms())
            ));
        }
        record.report = Some(report.clone());
        let etag = self.save(&key, &record, lease).await?;
        self.notify_drain(&record, info, failover.as_ref()).await?;
        record.notified = true;
        lease.check().await?;
        store.replace(&key, &record, &etag).await?;
        let mut m = Metrics::new(
            "spot",
            if report.deadline_missed {
                "deadline-missed"
            } else {
                "drained"
            },
        );
        m.add("TimeToCordon", cordon_ms, Unit::Milliseconds)
            .add("PodsEvicted", report.evicted() as f64, Unit::Count)
            .add("PodsForced", report.forced() as f64, Unit::Count)
            .add(
                "DeadlineMisses",
                f64::from(u8::from(report.deadline_missed)),
                Unit::Count,
            )
            .add(
                "DrainMilliseconds",
                report.took_ms as f64,
                Unit::Milliseconds,
            )
            .add(
                "FailoverErrors",
                f64::from(u8::from(failover_error.is_some())),
                Unit::Count,
            );
        m.emit(clock.now_ms());
        Ok(
            json!({"outcome": "drained", "instance": info.id, "node": node, "cordon_ms": cordon_ms,
            "deadline": breakwater::clock::rfc3339(deadline_ms), "report": report, "failover": failover,
            "failover_error": failover_error}),
        )
    }

    /// The node is already gone: success. A warning still counts in its pool.
    pub(crate) async fn node_gone(
        &self,
        event: &SpotEvent,
        info: &InstanceInfo,
        cluster: &str,
        lease: &KeptLease,
    ) -> Result<Value> {
        if matches!(event, SpotEvent::Warning { .. }) {
            self.count_reported(info, cluster).await;
        }
        lease.check().await?;
        self.end(&info.id, "its Kubernetes node is already gone")
            .await
    }

    /// [`Self::count`], its error logged and counted instead of raised (it must never stop a
    /// drain): the action, or the error's text.
    pub(crate) async fn count_reported(
        &self,
        info: &InstanceInfo,
        cluster: &str,
    ) -> (Option<FailoverAction>, Option<String>) {
        match self.count(info, cluster).await {
            Ok(action) => (action, None),
            Err(e) => {
                tracing::error!(error = %e, "on-demand accounting failed; the drain goes on");
                (None, Some(e.to_string()))
            }
        }
    }

    pub(crate) async fn count(
        &self,
        info: &InstanceInfo,
        cluster: &str,
    ) -> Result<Option<FailoverAction>> {
        let Some(node_group) = info.node_group.clone() else {
            return Ok(None);
        };
        if info.capacity != "spot" {
            return Ok(None);
        }
        let pool = Pool {
            cluster: cluster.to_string(),
            node_group,
            instance_type: info.instance_type.clone(),
            az: info.az.clone(),
        };
        let action = failover::count_interruption(
            &self.toolkit.store,
            &self.node_groups,
            &self.settings,
            &pool,
            &info.id,
            self.toolkit.dry_run(),
        )
        .await?;
        self.notify_failover(&pool, &action).await?;
        Ok(Some(action))
    }
}

/// A Kubernetes Event on the node (what `kubectl describe node` shows); best effort.
async fn node_event<N: Nodes>(
    nodes: &N,
    node: &str,
    instance: &str,
    event: &SpotEvent,
    deadline_ms: u64,
    now: u64,
) {
    let (reason, message) = match event {
        SpotEvent::Warning { action, .. } => (
            "SpotInterruption",
            format!("Breakwater: spot instance {instance} gets {action} at about {}; cordoned, draining until {}",
                breakwater::clock::rfc3339(deadline_ms + 10_000), breakwater::clock::rfc3339(deadline_ms)),
        ),
        SpotEvent::Scheduled { code, start_ms, .. } => (
            "ScheduledChange",
            format!("Breakwater: AWS Health scheduled change {code} for {instance} from {}; cordoned, draining until {}",
                start_ms.map_or("an unknown time".into(), breakwater::clock::rfc3339), breakwater::clock::rfc3339(deadline_ms)),
        ),
        SpotEvent::Lifecycle { action, .. } => (
            "AutoScalingTermination",
            format!("Breakwater: Auto Scaling group {} terminates {instance} (lifecycle hook {}); cordoned, draining until {}",
                action.group, action.hook, breakwater::clock::rfc3339(deadline_ms)),
        ),
        _ => ("RebalanceRecommendation", format!("Breakwater: rebalance recommendation for {instance}; cordoned")),
    };
    let event = NodeEvent {
        node: node.to_string(),
        reason: reason.to_string(),
        message,
        component: "breakwater-spot".to_string(),
        at_ms: now,
    };
    if let Err(err) = nodes.record_event(&event).await {
        tracing::warn!(error = %err, "could not record a Kubernetes event on the node");
    }
}

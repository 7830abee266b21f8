//! `spot`: drain interrupted spot nodes inside the 2-minute warning, and fail over to on-demand.
//!
//! EventBridge delivers the interruption warning, the rebalance recommendation and the state
//! change (at least once, in any order). One record per instance in the state store, a lease per
//! instance and idempotency on the event id merge them into one handling: find the node by its
//! `providerID`, cordon it at once (taint, unschedulable, out of load balancers), drain it by
//! tiers within the deadline while counting the interruption in its pool's sliding window
//! (failing over to on-demand past the threshold; a failure there never stops the drain), and
//! say which pod and which budget blocked. The instance's lease is renewed while the work runs
//! and checked before every write.

pub mod drain;
pub mod events;
pub mod failover;
pub mod lease;
pub mod settings;

use std::time::Instant;

use breakwater::events::{Routes, Trigger};
use breakwater::kube::ops::{cordon, uncordon, NodeWrite};
use breakwater::kube::{from_kube, KubeClients};
use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::ports::{InstanceInfo, Instances, NodeGroups};
use breakwater::state::{key_segment, Acquisition, Idempotent};
use breakwater::{Error, Result, Toolkit};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::drain::{choose, namespace_policies, pods_on, DrainReport, Drainer};
use crate::events::SpotEvent;
use crate::failover::{FailoverAction, Pool};
use crate::lease::HeldLease;
use crate::settings::{RebalancePolicy, SpotSettings};

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.ec2", events::WARNING),
    ("aws.ec2", events::REBALANCE),
    ("aws.ec2", events::STATE_CHANGE),
    ("aws.events", "Scheduled Event"),
];
const COMMANDS: &[&str] = &["status"];

/// The key of the cordoned-by-rebalance index (the schedule uncordons from it).
const CORDONED_KEY: &str = "spot/cordoned.json";

/// The lease owner prefix of the schedule's uncordons.
const SCHEDULE_OWNER: &str = "schedule:";

/// How long a warning waits for an instance lease the schedule holds.
const SCHEDULE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Where an instance's handling stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// Cordoned on a rebalance recommendation; uncordoned at this time if no warning follows.
    Cordoned {
        /// When to uncordon (ms).
        uncordon_at_ms: u64,
    },
    /// A drain is running.
    Draining,
    /// Drained.
    Drained,
    /// Uncordoned: the rebalance came to nothing.
    Uncordoned,
    /// The instance stopped or terminated, or its node is gone.
    Ended {
        /// Why.
        why: String,
    },
}

/// One instance's story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub instance_id: String,
    /// Its cluster, once known.
    pub cluster: Option<String>,
    /// Its node, once found.
    pub node: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// The drain, once done.
    pub report: Option<DrainReport>,
    /// Whether the drain's notification went out.
    pub notified: bool,
    /// What happened, oldest first.
    pub history: Vec<String>,
}

fn record_key(instance: &str) -> String {
    format!("spot/instances/{}.json", key_segment(instance))
}

/// The function: its toolkit, settings, ports and Kubernetes access.
#[derive(Debug)]
pub struct SpotFunction<I, G> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// The spot settings.
    pub settings: SpotSettings,
    /// EC2 instances.
    pub instances: I,
    /// EKS node groups (the on-demand failover).
    pub node_groups: G,
    /// Kubernetes clients per cluster.
    pub kube: KubeClients,
}

impl<I: Instances, G: NodeGroups> SpotFunction<I, G> {
    fn routes(&self) -> Routes {
        Routes {
            function: "spot",
            eventbridge: EVENTBRIDGE,
            alarm_actions: false,
            sns: false,
            commands: COMMANDS,
            account: None,
            regions: vec![self.toolkit.settings.region.clone()],
        }
    }

    /// Handles one invocation. Malformed events, unknown and foreign instances are answered (and
    /// counted) without an error: a retry would not change them, and nothing was changed.
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let started = Instant::now();
        let trigger = match self.routes().route(event) {
            Ok(t) => t,
            Err(Error::InvalidEvent(reason)) => return Ok(self.rejected(&reason)),
            Err(e) => return Err(e),
        };
        match trigger {
            Trigger::EventBridge(e) if e.detail_type == "Scheduled Event" => {
                self.on_schedule(owner).await
            }
            Trigger::EventBridge(e) => {
                let parsed = match events::parse(&e.detail_type, &e.detail) {
                    Ok(p) => p,
                    Err(Error::InvalidEvent(reason)) => return Ok(self.rejected(&reason)),
                    Err(other) => return Err(other),
                };
                let time_ms = e
                    .time
                    .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
                    .unwrap_or_else(|| self.toolkit.store.clock().now_ms());
                let id = e.id.clone().unwrap_or_else(|| owner.to_string());
                let span =
                    tracing::info_span!("spot", instance = parsed.instance_id(), event_id = %id);
                let _entered = span.enter();
                let ttl = self.toolkit.settings.idempotency_ttl;
                match self
                    .toolkit
                    .store
                    .once("spot", &id, owner, ttl, || {
                        // Boxed: the handling's future is large, and debug builds copy it on
                        // the stack of every caller.
                        Box::pin(self.on_event(parsed, time_ms, owner, started))
                    })
                    .await
                {
                    Ok(Idempotent::Fresh(v)) => Ok(v),
                    Ok(Idempotent::Repeat(mut v)) => {
                        v["repeat"] = json!(true);
                        Ok(v)
                    }
                    Err(Error::Conflict(why)) => {
                        tracing::info!(%why, "the same event is being handled by another invocation");
                        Ok(json!({"outcome": "in-progress", "reason": why}))
                    }
                    Err(e) => Err(e),
                }
            }
            Trigger::Command { body, .. } => {
                let instance = body["instance_id"].as_str().unwrap_or_default();
                events::check_instance_id(instance)?;
                let record = self
                    .toolkit
                    .store
                    .get::<InstanceRecord>(&record_key(instance))
                    .await?;
                Ok(json!({"outcome": "status", "record": record.map(|r| r.value)}))
            }
            _ => Err(Error::InvalidEvent("not a spot event".into())),
        }
    }

    fn rejected(&self, reason: &str) -> Value {
        tracing::error!(
            reason,
            "rejected a malformed or unexpected event; nothing changed"
        );
        let mut m = Metrics::new("spot", "rejected");
        m.add("EventsRejected", 1.0, Unit::Count);
        m.emit(self.toolkit.store.clock().now_ms());
        json!({"outcome": "rejected", "reason": reason})
    }

    fn dropped(&self, outcome: &str, reason: String) -> Value {
        tracing::warn!(outcome, %reason, "acknowledged and dropped");
        let mut m = Metrics::new("spot", outcome);
        m.add("EventsDropped", 1.0, Unit::Count);
        m.emit(self.toolkit.store.clock().now_ms());
        json!({"outcome": outcome, "reason": reason})
    }

    async fn on_event(
        &self,
        event: SpotEvent,
        time_ms: u64,
        owner: &str,
        started: Instant,
    ) -> Result<Value> {
        let store = &self.toolkit.store;
        let instance = event.instance_id().to_string();
        let key = record_key(&instance);
        if event.ends() {
            return self
                .end(&instance, &format!("instance {}", state_of(&event)))
                .await;
        }
        if let SpotEvent::StateChange { state, .. } = &event {
            // `pending` / `running`: a new instance whose node may not be registered yet. Nothing
            // to do — and it must not end a story that has not started.
            return Ok(
                json!({"outcome": "ignored", "instance": instance, "reason": format!("state {state}")}),
            );
        }
        if let Some(existing) = store.get::<InstanceRecord>(&key).await? {
            match (&existing.value.phase, &event) {
                (Phase::Ended { why }, _) => {
                    return Ok(
                        json!({"outcome": "already-ended", "instance": instance, "reason": why}),
                    )
                }
                (Phase::Drained, _) if existing.value.notified => {
                    return Ok(json!({"outcome": "already-drained", "instance": instance}))
                }
                (
                    Phase::Cordoned { .. } | Phase::Draining | Phase::Drained,
                    SpotEvent::Rebalance { .. },
                ) => return Ok(json!({"outcome": "already-handled", "instance": instance})),
                _ => {}
            }
        }
        let Some(info) = self.instances.describe(&instance).await? else {
            return Ok(self.dropped("unknown-instance", format!("EC2 does not know {instance}")));
        };
        let Some(cluster) = self.cluster_of(&info, event.instance_id()).await? else {
            return Ok(self.dropped(
                "foreign-instance",
                format!(
                    "{instance} belongs to {}, not to a cluster this deployment manages ({})",
                    info.cluster.as_deref().unwrap_or("no EKS cluster"),
                    self.settings.clusters.join(", ")
                ),
            ));
        };
        let ttl = self.toolkit.settings.lease_ttl;
        let lease = match self.acquire(&instance, owner, &event).await? {
            Acquisition::Acquired(lease) => HeldLease::new(store.clone(), lease, ttl),
            Acquisition::Held { owner: other, .. } => {
                return Ok(json!({"outcome": "in-progress", "instance": instance, "by": other}))
            }
        };
        let result =
            Box::pin(self.handle_instance(event, time_ms, &info, &cluster, started, &lease)).await;
        lease.release().await;
        result
    }

    /// The instance's lease. A warning that finds it held by the schedule (which only uncordons,
    /// in well under a second) waits for it a little: it must not be dropped as a duplicate.
    async fn acquire(&self, instance: &str, owner: &str, event: &SpotEvent) -> Result<Acquisition> {
        let store = &self.toolkit.store;
        let ttl = self.toolkit.settings.lease_ttl;
        let mut waited = std::time::Duration::ZERO;
        loop {
            let got = store.acquire_lease("spot", instance, owner, ttl).await?;
            match &got {
                Acquisition::Held { owner: other, .. }
                    if other.starts_with(SCHEDULE_OWNER)
                        && matches!(event, SpotEvent::Warning { .. })
                        && waited < SCHEDULE_WAIT =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    waited += std::time::Duration::from_millis(200);
                }
                _ => return Ok(got),
            }
        }
    }

    /// The managed cluster an instance belongs to: its `eks:cluster-name` tag (managed node
    /// groups), or — for a node without it — the managed cluster whose API server has a node
    /// with the instance's `providerID`. Karpenter v1 tags its instances
    /// `kubernetes.io/cluster/<name>: owned`, `eks:eks-cluster-name` (which replaced
    /// `karpenter.sh/managed-by`, Karpenter's v1 upgrade guide) and `karpenter.sh/nodepool`, as
    /// its controller policy's `aws:RequestTag` conditions require; self-managed groups carry
    /// the first; neither has `eks:cluster-name` or a node-group tag. Such a node is drained
    /// like any other, and no node group is raised for it. An instance of another EKS cluster
    /// is foreign without a look.
    async fn cluster_of(&self, info: &InstanceInfo, instance: &str) -> Result<Option<String>> {
        match &info.cluster {
            Some(c) if self.settings.clusters.contains(c) => return Ok(Some(c.clone())),
            Some(_) => return Ok(None),
            None => {}
        }
        let now = self.toolkit.store.clock().now_ms();
        for cluster in &self.settings.clusters {
            let client = self.kube.client(&self.toolkit.aws, cluster, now).await?;
            if find_node(&client, info).await?.is_some() {
                tracing::info!(instance, %cluster, "a node of the cluster without a node-group tag (Karpenter or self-managed)");
                return Ok(Some(cluster.clone()));
            }
        }
        Ok(None)
    }

    #[allow(clippy::too_many_arguments)]
    async fn handle_instance(
        &self,
        event: SpotEvent,
        time_ms: u64,
        info: &InstanceInfo,
        cluster: &str,
        started: Instant,
        lease: &HeldLease,
    ) -> Result<Value> {
        let store = &self.toolkit.store;
        let clock = store.clock().clone();
        let now = clock.now_ms();
        let key = record_key(&info.id);
        // Re-read under the lease: a concurrent invocation may have finished the work.
        let existing = store.get::<InstanceRecord>(&key).await?;
        if let Some(r) = &existing {
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
        let client = self.kube.client(&self.toolkit.aws, cluster, now).await?;
        let Some(node) = find_node(&client, info).await? else {
            return self.node_gone(&event, info, cluster, lease).await;
        };
        let dry_run = self.toolkit.settings.dry_run;
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
            SpotEvent::StateChange { .. } => {
                return Ok(json!({"outcome": "ignored", "instance": info.id}))
            }
        };
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
        if cordon(&client, &node, reason_of(&event)).await? == NodeWrite::Gone {
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
        // 2. The pods, read after the cordon so that none lands in between.
        let pods = pods_on(&client, &node).await?;
        let policies = namespace_policies(&client, &namespaces_of(&pods)).await;
        let (candidates, left_alone) = choose(&pods, &policies, self.settings.default_policy);
        // 3. Drain, the lease renewed while it runs. The on-demand accounting (a warning only)
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
        let report = report?;
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
    async fn node_gone(
        &self,
        event: &SpotEvent,
        info: &InstanceInfo,
        cluster: &str,
        lease: &HeldLease,
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
    async fn count_reported(
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

    async fn count(&self, info: &InstanceInfo, cluster: &str) -> Result<Option<FailoverAction>> {
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
            self.toolkit.settings.dry_run,
        )
        .await?;
        if let FailoverAction::ScaledUp {
            on_demand,
            before,
            after,
            count,
        } = &action
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
        Ok(Some(action))
    }

    /// Writes the instance record while holding its lease (checked, renewed if low, first).
    async fn save(&self, key: &str, record: &InstanceRecord, lease: &HeldLease) -> Result<String> {
        lease.check().await?;
        self.toolkit.store.put(key, record).await
    }

    async fn end(&self, instance: &str, why: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let key = record_key(instance);
        let now = store.clock().now_ms();
        let mut record = store
            .get::<InstanceRecord>(&key)
            .await?
            .map(|r| r.value)
            .unwrap_or_else(|| InstanceRecord {
                instance_id: instance.to_string(),
                cluster: None,
                node: None,
                phase: Phase::Draining,
                report: None,
                notified: false,
                history: Vec::new(),
            });
        if matches!(record.phase, Phase::Ended { .. }) {
            return Ok(json!({"outcome": "already-ended", "instance": instance}));
        }
        record.phase = Phase::Ended {
            why: why.to_string(),
        };
        record
            .history
            .push(format!("{}: ended: {why}", breakwater::clock::rfc3339(now)));
        self.toolkit.store.put(&key, &record).await?;
        self.index_cordoned(instance, false).await?;
        Ok(json!({"outcome": "ended", "instance": instance, "reason": why}))
    }

    async fn index_cordoned(&self, instance: &str, add: bool) -> Result<()> {
        let store = &self.toolkit.store;
        store
            .update::<Vec<String>, _>(CORDONED_KEY, |ids| {
                let present = ids.iter().any(|i| i == instance);
                if present == add {
                    return false;
                }
                if add {
                    ids.push(instance.to_string());
                } else {
                    ids.retain(|i| i != instance);
                }
                true
            })
            .await
            .map(|_| ())
    }

    /// The schedule: uncordon nodes whose rebalance came to nothing, return stable failovers.
    /// Each uncordon holds the instance's lease and re-reads the record under it, so that a node
    /// a warning has started to drain is never uncordoned.
    async fn on_schedule(&self, owner: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let now = store.clock().now_ms();
        let dry_run = self.toolkit.settings.dry_run;
        let mut lines = Vec::new();
        let cordoned = store
            .get::<Vec<String>>(CORDONED_KEY)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        for instance in cordoned {
            let key = record_key(&instance);
            let Some(r) = store.get::<InstanceRecord>(&key).await? else {
                continue;
            };
            let Phase::Cordoned { uncordon_at_ms } = r.value.phase else {
                self.index_cordoned(&instance, false).await?;
                continue;
            };
            if now < uncordon_at_ms {
                continue;
            }
            let (Some(cluster), Some(node)) = (r.value.cluster.clone(), r.value.node.clone())
            else {
                continue;
            };
            if dry_run {
                lines.push(format!(
                    "would uncordon {node} ({instance}): no warning followed the rebalance"
                ));
                continue;
            }
            let ttl = self.toolkit.settings.lease_ttl;
            let lease = match store
                .acquire_lease("spot", &instance, &format!("{SCHEDULE_OWNER}{owner}"), ttl)
                .await?
            {
                Acquisition::Acquired(lease) => HeldLease::new(store.clone(), lease, ttl),
                Acquisition::Held { owner: other, .. } => {
                    lines.push(format!(
                        "{node} ({instance}) is being handled by {other}; not uncordoned"
                    ));
                    continue;
                }
            };
            let done = self
                .uncordon_under_lease(&instance, &cluster, &node, now, &lease)
                .await;
            lease.release().await;
            // One node that cannot be uncordoned now (the next tick tries again) must not keep
            // the others, or the on-demand return, from running.
            match done {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%node, %instance, error = %e, "could not uncordon; the next tick tries again");
                    lines.push(format!("could not uncordon {node} ({instance}) yet: {e}"));
                }
            }
        }
        lines.extend(
            failover::return_stable(store, &self.node_groups, &self.settings, dry_run).await?,
        );
        if lines
            .iter()
            .any(|l| l.starts_with("returned") || l.contains("left as it is"))
        {
            let note = Notification::new("Spot: on-demand failover ended", lines.join("\n"))
                .attribute("function", "spot")
                .attribute("outcome", "return");
            self.toolkit.notifier.publish(&note).await?;
        }
        Ok(json!({"outcome": "evaluated", "actions": lines}))
    }

    /// Uncordons `node` if its record, read again under the lease, is still a due rebalance
    /// cordon; the record is moved on by compare-and-swap.
    async fn uncordon_under_lease(
        &self,
        instance: &str,
        cluster: &str,
        node: &str,
        now: u64,
        lease: &HeldLease,
    ) -> Result<Option<String>> {
        let store = &self.toolkit.store;
        let key = record_key(instance);
        let Some(r) = store.get::<InstanceRecord>(&key).await? else {
            return Ok(None);
        };
        if !matches!(r.value.phase, Phase::Cordoned { uncordon_at_ms } if uncordon_at_ms <= now) {
            return Ok(None);
        }
        let client = self.kube.client(&self.toolkit.aws, cluster, now).await?;
        lease.check().await?;
        uncordon(&client, node).await?;
        let mut done = r.value.clone();
        done.phase = Phase::Uncordoned;
        done.history.push(format!(
            "{}: uncordoned: no warning followed the rebalance",
            breakwater::clock::rfc3339(now)
        ));
        lease.check().await?;
        store.replace(&key, &done, &r.etag).await?;
        self.index_cordoned(instance, false).await?;
        Ok(Some(format!(
            "uncordoned {node} ({instance}): no warning followed the rebalance"
        )))
    }

    async fn notify_drain(
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
}

/// The namespaces of `pods`, sorted, once each.
fn namespaces_of(pods: &[Pod]) -> Vec<String> {
    let mut ns: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.namespace.clone())
        .collect();
    ns.sort();
    ns.dedup();
    ns
}

fn state_of(event: &SpotEvent) -> &str {
    match event {
        SpotEvent::StateChange { state, .. } => state,
        _ => "",
    }
}

fn reason_of(event: &SpotEvent) -> &'static str {
    match event {
        SpotEvent::Warning { .. } => "spot-interruption",
        _ => "rebalance-recommendation",
    }
}

/// A Kubernetes Event on the node (what `kubectl describe node` shows); best effort.
async fn node_event(
    client: &kube::Client,
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
        _ => ("RebalanceRecommendation", format!("Breakwater: rebalance recommendation for {instance}; cordoned")),
    };
    let at = breakwater::clock::rfc3339(now);
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{node}."), "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": node},
        "reason": reason, "message": message, "type": "Warning",
        "source": {"component": "breakwater-spot"}, "firstTimestamp": at, "lastTimestamp": at, "count": 1,
    });
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    match serde_json::from_value::<k8s_openapi::api::core::v1::Event>(body) {
        Ok(e) => {
            if let Err(err) = events.create(&kube::api::PostParams::default(), &e).await {
                tracing::warn!(error = %err, "could not record a Kubernetes event on the node");
            }
        }
        Err(err) => tracing::warn!(error = %err, "could not build the node event"),
    }
}

/// The node of an instance: by `spec.providerID`, trying the private DNS name first (a hint only).
pub async fn find_node(client: &kube::Client, info: &InstanceInfo) -> Result<Option<String>> {
    let nodes: Api<Node> = Api::all(client.clone());
    let matches = |n: &Node| {
        n.spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .is_some_and(|p| p.rsplit('/').next() == Some(info.id.as_str()))
    };
    if let Some(dns) = info.private_dns.as_deref().filter(|d| !d.is_empty()) {
        if let Ok(Some(n)) = breakwater::kube::read_with_retries(|| nodes.get_opt(dns)).await {
            if matches(&n) {
                return Ok(n.metadata.name);
            }
        }
    }
    let params = kube::api::ListParams::default();
    let all = breakwater::kube::read_with_retries(|| nodes.list(&params))
        .await
        .map_err(|e| from_kube("list nodes", &e))?;
    Ok(all
        .items
        .iter()
        .find(|n| matches(n))
        .and_then(|n| n.metadata.name.clone()))
}

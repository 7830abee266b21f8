//! `spot`: drain interrupted spot nodes inside the 2-minute warning, and fail over to on-demand;
//! drain nodes whose instances AWS Health schedules for retirement or maintenance.
//!
//! EventBridge delivers the interruption warning, the rebalance recommendation, the state
//! change and AWS Health's scheduled changes (at least once, in any order). One record per instance in the state store, a lease per
//! instance and idempotency on the event id merge them into one handling: find the node by its
//! `providerID`, cordon it at once (taint, unschedulable, out of load balancers), deregister its
//! ELBv2 targets and wait for them to drain (bounded), drain it by
//! tiers within the deadline while counting the interruption in its pool's sliding window
//! (failing over to on-demand past the threshold; a failure there never stops the drain), and
//! say which pod and which budget blocked. The instance's lease is renewed while the work runs
//! and checked before every write.

pub mod drain;
pub mod events;
mod node;
mod notice;
pub mod on_demand;
pub mod record;
mod schedule;
pub mod settings;
pub mod targets;

use std::sync::Arc;
use std::time::{Duration, Instant};

use breakwater::aws::autoscaling::AsgLifecycle;
use breakwater::aws::elbv2::ElbTargetGroups;
use breakwater::events::{Routes, Trigger};
use breakwater::invocation::{self, LeaseTerms, Leased, Patience};
use breakwater::kube::nodes::Clusters;
use breakwater::kube::KubeClients;
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{Instances, LifecycleHooks, NodeGroups, TargetGroups};
use breakwater::state::KeptLease;
use breakwater::{Error, Result, Toolkit};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::events::SpotEvent;
use crate::record::record_key;
pub use crate::record::{InstanceRecord, Phase};
use crate::schedule::{SCHEDULE_OWNER, SCHEDULE_WAIT};
use crate::settings::SpotSettings;

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.ec2", events::WARNING),
    ("aws.ec2", events::REBALANCE),
    ("aws.ec2", events::STATE_CHANGE),
    ("aws.health", events::HEALTH),
    ("aws.autoscaling", events::LIFECYCLE),
    ("aws.events", "Scheduled Event"),
];
const COMMANDS: &[&str] = &["status"];
/// How long a termination hook's event waits for another drain of its instance.
const LIFECYCLE_LEASE_WAIT: Duration = Duration::from_secs(120);

/// The function: its toolkit, settings, ports and Kubernetes access.
#[derive(Debug)]
pub struct SpotFunction<I, G, K = KubeClients, T = ElbTargetGroups, L = AsgLifecycle> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// The spot settings.
    pub settings: SpotSettings,
    /// EC2 instances.
    pub instances: I,
    /// EKS node groups (the on-demand failover).
    pub node_groups: G,
    /// The managed clusters' nodes and pods.
    pub kube: K,
    /// The load balancers' target groups (the node leaves them before the first eviction).
    pub target_groups: T,
    /// Auto Scaling's lifecycle actions (completed once a terminating node is drained).
    pub lifecycle: L,
}

impl<I: Instances, G: NodeGroups, K: Clusters, T: TargetGroups, L: LifecycleHooks>
    SpotFunction<I, G, K, T, L>
{
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

    /// Handles one invocation inside its event span. Malformed events are an `InvalidEvent` error
    /// (counted; nothing was changed); unknown and foreign instances are answered without one.
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let started = Instant::now();
        let trigger = match self.routes().route(event) {
            Ok(t) => t,
            Err(Error::InvalidEvent(reason)) => return Err(self.rejected(&reason)),
            Err(e) => return Err(e),
        };
        let span = invocation::event_span("spot", trigger.event_id().as_deref());
        invocation::in_span(span, self.handle_trigger(trigger, owner, started)).await
    }

    async fn handle_trigger(
        &self,
        trigger: Trigger,
        owner: &str,
        started: Instant,
    ) -> Result<Value> {
        match trigger {
            Trigger::EventBridge(e) if e.detail_type == "Scheduled Event" => {
                self.on_schedule(owner).await
            }
            Trigger::EventBridge(e) => {
                // The delivery's id and time (the handling's clock when the event has none).
                let id = e.id.clone().unwrap_or_else(|| owner.to_string());
                let time_ms = e
                    .time
                    .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
                    .unwrap_or_else(|| self.toolkit.store.clock().now_ms());
                let answer = match e.detail_type.as_str() {
                    events::HEALTH => match events::parse_health(&e.detail) {
                        Ok(Ok(scheduled)) => {
                            self.on_scheduled(scheduled, &id, time_ms, owner, started)
                                .await
                        }
                        Ok(Err(why)) => Ok(self.dropped("not-a-scheduled-change", why)),
                        Err(e) => Err(e),
                    },
                    events::LIFECYCLE => match events::parse_lifecycle(&e.detail) {
                        Ok(Ok(SpotEvent::Lifecycle { action, .. }))
                            if !self.settings.lifecycle_hooks.contains(&action.hook) =>
                        {
                            Ok(self.dropped("not-our-hook", format!(
                                "lifecycle hook {} of group {} is not one of BREAKWATER_SPOT_LIFECYCLE_HOOKS ({}): another handler's (EKS managed node groups have their own)",
                                action.hook, action.group, self.settings.lifecycle_hooks.join(", ")
                            )))
                        }
                        Ok(Ok(event)) => {
                            self.on_lifecycle(event, &id, time_ms, owner, started).await
                        }
                        Ok(Err(why)) => Ok(self.dropped("not-a-termination", why)),
                        Err(e) => Err(e),
                    },
                    detail_type => match events::parse(detail_type, &e.detail) {
                        Ok(parsed) => self.once(parsed, &id, time_ms, owner, started).await,
                        Err(e) => Err(e),
                    },
                };
                match answer {
                    Err(Error::InvalidEvent(reason)) => Err(self.rejected(&reason)),
                    other => other,
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
            _ => Err(self.rejected("not a spot event")),
        }
    }

    /// One instance's event, handled once per delivery id (`id`).
    async fn once(
        &self,
        parsed: SpotEvent,
        id: &str,
        time_ms: u64,
        owner: &str,
        started: Instant,
    ) -> Result<Value> {
        // The invocation span already carries the event id; this one adds the instance.
        let span = tracing::info_span!("spot", instance = parsed.instance_id());
        let ttl = self.toolkit.settings.idempotency_ttl;
        // The span follows the future (`.instrument`), not the thread: a guard held across an
        // `.await` would tag other tasks' lines and miss this one's.
        match self
            .toolkit
            .store
            .once("spot", id, owner, ttl, || {
                // Boxed: the handling's future is large, and debug builds copy it on the stack
                // of every caller.
                Box::pin(self.on_event(parsed, time_ms, owner, started))
            })
            .instrument(span)
            .await
        {
            Ok(done) => Ok(invocation::mark_repeat(done)),
            Err(Error::Conflict(why)) => {
                tracing::info!(%why, "the same event is being handled by another invocation");
                Ok(json!({"outcome": "in-progress", "reason": why}))
            }
            Err(e) => Err(e),
        }
    }

    /// An AWS Health scheduled change: each affected instance handled once, in turn (one
    /// Health event can name several), under an id of its own.
    async fn on_scheduled(
        &self,
        scheduled: Vec<SpotEvent>,
        id: &str,
        time_ms: u64,
        owner: &str,
        started: Instant,
    ) -> Result<Value> {
        // At once, side by side: one after another, a few instances would outlast the
        // function's timeout, and the retry comes too late to be delivered.
        let ids: Vec<String> = scheduled
            .iter()
            .map(|e| format!("{id}:{}", e.instance_id()))
            .collect();
        let answers = futures_util::future::join_all(
            scheduled
                .into_iter()
                .zip(&ids)
                .map(|(event, id)| self.once(event, id, time_ms, owner, started)),
        )
        .await;
        let answers: Vec<Value> = answers.into_iter().collect::<Result<_>>()?;
        Ok(json!({"outcome": "scheduled-change", "instances": answers}))
    }

    /// A termination lifecycle action: the node drained (once per delivery), then the action
    /// completed with `CONTINUE` — also when the drain was done by an earlier delivery or the
    /// node is gone, so that a retry after a failed completion still lets the instance go. An
    /// instance this deployment does not manage is left to whoever does (its action is not
    /// completed).
    async fn on_lifecycle(
        &self,
        event: SpotEvent,
        id: &str,
        time_ms: u64,
        owner: &str,
        started: Instant,
    ) -> Result<Value> {
        let SpotEvent::Lifecycle { action, .. } = &event else {
            return Err(Error::Internal("not a lifecycle event".into()));
        };
        let action = action.clone();
        let mut answer = self.once(event, id, time_ms, owner, started).await?;
        let outcome = answer["outcome"].as_str().unwrap_or_default();
        if matches!(
            outcome,
            "foreign-instance" | "unknown-instance" | "in-progress" | "dry-run"
        ) {
            return Ok(answer);
        }
        let waiting = self.lifecycle.complete(&action).await?;
        tracing::info!(group = %action.group, hook = %action.hook, instance = %action.instance_id,
            waiting, "lifecycle action completed (CONTINUE)");
        answer["lifecycle"] = json!(if waiting {
            "continued"
        } else {
            "no-longer-waiting"
        });
        Ok(answer)
    }

    /// Bad input: logged, counted (`EventsRejected`) and answered with an `InvalidEvent` error;
    /// nothing was changed.
    fn rejected(&self, reason: &str) -> Error {
        tracing::error!(
            reason,
            "rejected a malformed or unexpected event; nothing changed"
        );
        let mut m = Metrics::new("spot", "rejected");
        m.add("EventsRejected", 1.0, Unit::Count);
        m.emit(self.toolkit.store.clock().now_ms());
        invocation::invalid_event(reason)
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
        // A scheduled change or a termination hook always drains (the cordon and the drain are
        // idempotent): an earlier drain may have been cut short, run far from the change, or
        // belong to an earlier life of the instance (rebooted, stopped and started).
        let drains_anew = matches!(
            event,
            SpotEvent::Scheduled { .. } | SpotEvent::Lifecycle { .. }
        );
        if let Some(existing) = store
            .get::<InstanceRecord>(&key)
            .await?
            .filter(|_| !drains_anew)
        {
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
        // A warning that finds the lease held by the schedule (which only uncordons, in well
        // under a second) waits for it a little: it must not be dropped as a duplicate.
        let patience = match event {
            SpotEvent::Warning { .. } => Patience::up_to(SCHEDULE_WAIT, Duration::from_millis(200))
                .for_holders(SCHEDULE_OWNER),
            // A termination hook's action must be completed by this delivery: it waits for
            // another drain of the instance (a warning's, a scheduled change's) to end, then
            // drains what is left.
            SpotEvent::Lifecycle { .. } => {
                Patience::up_to(LIFECYCLE_LEASE_WAIT, Duration::from_millis(500))
            }
            _ => Patience::NONE,
        };
        let terms = LeaseTerms {
            scope: "spot",
            id: &instance,
            owner,
            ttl: self.toolkit.settings.lease_ttl,
            patience,
        };
        let work = |lease: Arc<KeptLease>| async move {
            Box::pin(self.handle_instance(event, time_ms, &info, &cluster, started, &lease)).await
        };
        match invocation::with_kept_lease(store, terms, work).await? {
            Leased::Done(value) => Ok(value),
            Leased::Held { owner: other, .. } => {
                Ok(json!({"outcome": "in-progress", "instance": instance, "by": other}))
            }
        }
    }
}

fn state_of(event: &SpotEvent) -> &str {
    match event {
        SpotEvent::StateChange { state, .. } => state,
        _ => "",
    }
}

pub(crate) fn reason_of(event: &SpotEvent) -> &'static str {
    match event {
        SpotEvent::Warning { .. } => "spot-interruption",
        SpotEvent::Scheduled { .. } => "scheduled-change",
        SpotEvent::Lifecycle { .. } => "asg-termination",
        _ => "rebalance-recommendation",
    }
}

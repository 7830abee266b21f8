//! `failover`: regional failover and DR drills. Detection is a quorum of independent signals
//! evaluated in the secondary region; an execution is a durable record reconciled step by step
//! (RPO guard, then fence → database ∥ node groups → traffic → verify → report) by whichever invocation holds
//! the plan's lease — the trigger, a repeat of it, an RDS event or the one-minute tick.
//!
//! Automatic triggers only ever start `failover` (or, in dry-run, a `plan`). The manual modes
//! that change anything need `confirm` equal to the plan's name.

mod commands;
pub mod dependencies;
mod detect;
pub mod engine;
mod estate;
pub mod plan;
pub mod plan_state;
mod readiness;
pub mod signals;

use std::time::{Duration, Instant};

use breakwater::aws::cloudwatch::CloudWatchAlarms;
use breakwater::config::{ConfigError, Env};
use breakwater::events::{alarm_from_action, alarm_from_eventbridge, Routes, Trigger};
use breakwater::invocation::{self, Leased};
use breakwater::kube::capacity::Capacity;
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{
    Alarms, Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::{HttpProbe, Probe};
use breakwater::{Error, Result, Toolkit};
use serde_json::{json, Value};

use crate::engine::{Engine, Execution, Mode, Pace, Ports, StepName};
use crate::plan::{Database, LoadedPlan};
use crate::plan_state::board_key;
pub use crate::plan_state::{plan_key, PlanState};
use crate::signals::{Board, Observation};

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    ("aws.events", "Scheduled Event"),
    ("aws.rds", "RDS DB Instance Event"),
    ("aws.rds", "RDS DB Cluster Event"),
    ("aws.eks", "AWS API Call via CloudTrail"),
    ("aws.s3", "Object Created"),
];
const COMMANDS: &[&str] = &[
    "plan",
    "precheck",
    "drill",
    "switchover",
    "failover",
    "failback",
    "status",
];

/// The failover function's settings.
#[derive(Debug, Clone)]
pub struct FailoverSettings {
    /// `BREAKWATER_FAILOVER_PLAN_KEY`: the plan document in the state bucket (default
    /// `failover/plan.json`).
    pub plan_key: String,
    /// `BREAKWATER_FAILOVER_POLL_MS`: between two observations of something in progress
    /// (default 5000).
    pub poll: Duration,
    /// `BREAKWATER_FAILOVER_WAIT_SECONDS`: how long one invocation waits before it checkpoints
    /// and leaves the rest to the next tick (default 600; keep it below the Lambda timeout).
    pub budget: Duration,
    /// `BREAKWATER_PRIMARY_REGION` and `BREAKWATER_SECONDARY_REGION`: the
    /// estate's regions; a plan naming others is refused.
    pub regions: (String, String),
}

impl FailoverSettings {
    /// Reads the settings; the error names the variable.
    pub fn from_env(env: &Env) -> std::result::Result<Self, ConfigError> {
        let poll = env.whole_number("BREAKWATER_FAILOVER_POLL_MS", 5000, 10..=60_000)?;
        Ok(FailoverSettings {
            plan_key: env
                .optional("BREAKWATER_FAILOVER_PLAN_KEY")
                .unwrap_or_else(|| "failover/plan.json".into()),
            poll: Duration::from_millis(poll as u64),
            budget: env.seconds("BREAKWATER_FAILOVER_WAIT_SECONDS", 600, 0..=840)?,
            regions: (
                env.required("BREAKWATER_PRIMARY_REGION")?,
                env.required("BREAKWATER_SECONDARY_REGION")?,
            ),
        })
    }
}

/// The events the function accepts: from the deployment's two regions (alarms and RDS events
/// about the primary come from the primary region, the tick from the function's own).
pub fn routes(regions: &(String, String)) -> Routes {
    Routes {
        function: "failover",
        eventbridge: EVENTBRIDGE,
        alarm_actions: true,
        sns: false,
        commands: COMMANDS,
        account: None,
        regions: vec![regions.0.clone(), regions.1.clone()],
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidEvent(reason.into())
}

/// The function.
#[derive(Debug)]
pub struct FailoverFunction<R, N, D, M, C, W, K, P = HttpProbe, A = CloudWatchAlarms> {
    /// Clients, store, notifier, shared settings.
    pub toolkit: Toolkit,
    /// The AWS ports.
    pub ports: Ports<R, N, D, M, C, W, K, P>,
    /// CloudWatch alarms in the primary region: a firing alarm signal is read again on each
    /// tick, so that a lost `OK` event cannot leave it firing.
    pub alarms: A,
    /// Its settings.
    pub settings: FailoverSettings,
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
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    fn now(&self) -> u64 {
        self.toolkit.store.clock().now_ms()
    }

    async fn stored_plan(&self) -> Result<LoadedPlan> {
        let key = &self.settings.plan_key;
        let bytes = self.toolkit.store.get_document(key).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "plan s3://{}/{key} (upload it, or name another key in BREAKWATER_FAILOVER_PLAN_KEY)",
                self.toolkit.store.bucket()
            ))
        })?;
        let plan = plan::load(&bytes).map_err(|e| Error::CorruptRecord {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        self.check_regions(&plan)?;
        Ok(plan)
    }

    fn check_regions(&self, plan: &LoadedPlan) -> Result<()> {
        let (primary, secondary) = &self.settings.regions;
        if &plan.plan.primary_region != primary || &plan.plan.secondary_region != secondary {
            return Err(Error::Config(ConfigError {
                variable: "BREAKWATER_PRIMARY_REGION",
                reason: format!(
                    "plan {} names {} → {}, this deployment serves {primary} → {secondary}",
                    plan.plan.name, plan.plan.primary_region, plan.plan.secondary_region
                ),
            }));
        }
        Ok(())
    }

    /// Handles one event.
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let started = Instant::now();
        let trigger = routes(&self.settings.regions).route(event)?;
        // Every line of this invocation carries the event's id (the shared invocation span).
        let span = invocation::event_span("failover", trigger.event_id().as_deref());
        let work = async {
            let result = match trigger {
                Trigger::Command { command, body } => {
                    Box::pin(self.command(&command, &body, owner)).await
                }
                Trigger::AlarmAction(_) | Trigger::EventBridge(_) => {
                    Box::pin(self.automatic(trigger, owner)).await
                }
                Trigger::Sns(_) => Err(invalid("failover is not subscribed to SNS")),
            };
            tracing::info!(
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                ok = result.is_ok(),
                request_id = owner,
                "handled"
            );
            result
        };
        invocation::in_span(span, work).await
    }

    async fn plan_state(&self, plan: &str) -> Result<PlanState> {
        Ok(self
            .toolkit
            .store
            .get::<PlanState>(&plan_key(plan))
            .await?
            .map(|v| v.value)
            .unwrap_or_default())
    }

    /// The region an execution activates must be this copy's region.
    fn check_region(&self, plan: &LoadedPlan, mode: Mode) -> Result<()> {
        let here = &self.toolkit.settings.region;
        let target = if mode == Mode::Failback {
            &plan.plan.primary_region
        } else {
            &plan.plan.secondary_region
        };
        if here != target {
            return Err(invalid(format!(
                "{} activates {target}; this copy runs in {here} — invoke the copy in {target}",
                mode.as_str()
            )));
        }
        Ok(())
    }

    /// Starts an execution unless one runs (then joins it) or, for automatic triggers, the
    /// cool-down forbids it; exactly one of racing starters wins (compare-and-swap).
    async fn start(
        &self,
        plan: &LoadedPlan,
        exec: Execution,
        owner: &str,
        manual: bool,
    ) -> Result<Value> {
        let id = exec.id.clone();
        let now = self.now();
        let cooldown = plan.plan.detection.cooldown_seconds * 1000;
        // Create-once: two triggers in the same millisecond name the same execution, and the
        // second must not overwrite the first's progress.
        self.toolkit
            .store
            .create(&Execution::key(&id), &exec)
            .await?;
        let mine = id.clone();
        let state: PlanState = self
            .toolkit
            .store
            .update(&plan_key(&plan.plan.name), move |s: &mut PlanState| {
                let cooling = !manual && s.last_started_ms.is_some_and(|l| now < l + cooldown);
                if s.active.is_some() || cooling {
                    return false;
                }
                s.active = Some(mine.clone());
                s.last = Some(mine.clone());
                s.last_started_ms = Some(now);
                true
            })
            .await?;
        if state.active.as_deref() != Some(id.as_str()) {
            // Lost the race: this record was never the plan's execution.
            let _ = self.toolkit.store.delete(&Execution::key(&id)).await;
            return match state.active {
                Some(active) => {
                    let result = self.resume(plan, &active, owner).await?;
                    Ok(json!({"outcome": "joined", "execution": result}))
                }
                None => Ok(
                    json!({"outcome": "not-acting", "reason": "cool-down: another trigger started and ended an execution"}),
                ),
            };
        }
        tracing::warn!(execution = %id, mode = exec.mode.as_str(), trigger = %exec.trigger, "execution started");
        let result = Box::pin(self.resume(plan, &id, owner)).await?;
        Ok(json!({"outcome": "started", "execution": result}))
    }

    /// Reconciles the execution under the plan's lease; a held lease means another invocation
    /// is at it (this one joins and returns).
    async fn resume(&self, plan: &LoadedPlan, id: &str, owner: &str) -> Result<Value> {
        let ttl = self.settings.budget + Duration::from_secs(120);
        let store = &self.toolkit.store;
        let work = || async {
            let exec = self
                .toolkit
                .store
                .get::<Execution>(&Execution::key(id))
                .await?
                .ok_or_else(|| Error::NotFound(format!("execution record {}", Execution::key(id))))?
                .value;
            if exec.plan_hash != plan.hash {
                tracing::warn!(execution = id, recorded = %exec.plan_hash, now = %plan.hash, "the plan changed during the execution; going on with the plan as it is now");
            }
            if exec.finished() {
                return Ok(exec);
            }
            let engine = Engine {
                toolkit: &self.toolkit,
                ports: &self.ports,
                plan,
                pace: Pace {
                    poll: self.settings.poll,
                    budget: self.settings.budget,
                },
                owner,
                notices: Default::default(),
            };
            Box::pin(engine.reconcile(exec)).await
        };
        match invocation::with_lease(store, "failover", &plan.plan.name, owner, ttl, work).await? {
            Leased::Done(exec) => Ok(summary(&exec)),
            Leased::Held { owner: holder, .. } => {
                Ok(json!({"id": id, "state": "running", "reconciled_by": holder}))
            }
        }
    }
}

/// What an invocation returns about an execution.
pub fn summary(exec: &Execution) -> Value {
    let steps: serde_json::Map<String, Value> = exec
        .steps
        .iter()
        .map(|(name, s)| {
            (
                name.as_str().to_string(),
                json!({"state": s.state, "detail": s.detail}),
            )
        })
        .collect();
    json!({
        "id": exec.id, "mode": exec.mode, "outcome": exec.outcome, "plan_hash": exec.plan_hash,
        "steps": steps, "actions": exec.actions.len(), "report": exec.report_key,
        "waiting": !exec.finished() && exec.state(StepName::Report) != engine::StepState::Done,
    })
}

//! `failover`: regional failover and DR drills. Detection is a quorum of independent signals
//! evaluated in the secondary region; an execution is a durable record reconciled step by step
//! (fence → database ∥ node groups → traffic → verify → report) by whichever invocation holds
//! the plan's lease — the trigger, a repeat of it, an RDS event or the one-minute tick.
//!
//! Automatic triggers only ever start `failover` (or, in dry-run, a `plan`). The manual modes
//! that change anything need `confirm` equal to the plan's name.

pub mod dependencies;
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
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::{Alarms, Dns, MetricReader, NodeGroups, Replicas, RoutingControls};
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
pub struct FailoverFunction<R, N, D, M, C, P = HttpProbe, A = CloudWatchAlarms> {
    /// Clients, store, notifier, shared settings.
    pub toolkit: Toolkit,
    /// The AWS ports.
    pub ports: Ports<R, N, D, M, C, P>,
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
        P: Probe,
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, P, A>
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

    async fn automatic(&self, trigger: Trigger, owner: &str) -> Result<Value> {
        if let Trigger::EventBridge(event) = &trigger {
            if event.source == "aws.s3" {
                return self.plan_changed(&event.detail).await;
            }
        }
        // The event is parsed in full before anything is changed (the plan is only read).
        let mut observations_of = None;
        let mut what = String::new();
        let plan = self.stored_plan().await?;
        match trigger {
            Trigger::AlarmAction(action) => {
                let payload = serde_json::to_value(&*action).map_err(|e| invalid(e.to_string()))?;
                let alarm = alarm_from_action(&payload)?;
                what = format!("alarm {} → {}", alarm.name, alarm.state);
                observations_of = Some(signals::from_alarm(&plan.plan, &alarm));
            }
            Trigger::EventBridge(event) => {
                match (event.source.as_str(), event.detail_type.as_str()) {
                    ("aws.cloudwatch", _) => {
                        let alarm = alarm_from_eventbridge(
                            &event.detail,
                            event.resources.as_ref().and_then(|r| r.first()),
                        )?;
                        what = format!("alarm {} → {}", alarm.name, alarm.state);
                        observations_of = Some(signals::from_alarm(&plan.plan, &alarm));
                    }
                    ("aws.rds", _) => {
                        let at = event
                            .time
                            .map(|t| t.timestamp_millis().max(0) as u64)
                            .unwrap_or_else(|| self.now());
                        what = format!(
                            "{} {}",
                            event.detail["EventID"].as_str().unwrap_or("RDS event"),
                            event.detail["SourceIdentifier"]
                                .as_str()
                                .unwrap_or_default()
                        );
                        observations_of =
                            Some(signals::from_rds_event(&plan.plan, &event.detail, at));
                    }
                    ("aws.events", _)
                        if event.region.as_deref() == Some(&plan.plan.primary_region)
                            && self.toolkit.settings.region != plan.plan.primary_region =>
                    {
                        // The primary region's heartbeat, forwarded to this region's bus (the
                        // copy in the primary region takes its own ticks as ticks).
                        let at = event
                            .time
                            .map(|t| t.timestamp_millis().max(0) as u64)
                            .unwrap_or_else(|| self.now());
                        what = format!("heartbeat from {}", plan.plan.primary_region);
                        let beats = signals::from_heartbeat(&plan.plan, at);
                        // A plan without a heartbeat signal takes it as a tick.
                        observations_of = (!beats.is_empty()).then_some(beats);
                    }
                    (source, _) => what = format!("{source} {}", event.detail_type),
                }
            }
            _ => {}
        }
        let unrelated = observations_of.as_ref().is_some_and(Vec::is_empty);
        let tick = observations_of.is_none();
        let mut observations = observations_of.unwrap_or_default();
        // Resume a running execution first: every automatic trigger re-enters it.
        let state = self.plan_state(&plan.plan.name).await?;
        if let Some(active) = state.active {
            let result = self.resume(&plan, &active, owner).await?;
            return Ok(json!({"outcome": "joined", "trigger": what, "execution": result}));
        }
        // An alarm that is none of the plan's signals, an RDS event about another instance: no
        // probe, no write (while an execution runs, any event is a tick for it, above).
        if unrelated {
            let reason = format!("{what}: not one of the signals of plan {}", plan.plan.name);
            tracing::info!(trigger = %what, plan = %plan.plan.name, "not a signal of the plan");
            // An alarm the plan does not know is bad input; another event is only ignored.
            if what.starts_with("alarm ") {
                return Err(invocation::invalid_event(reason));
            }
            return Ok(json!({"outcome": "ignored", "trigger": what, "reason": reason}));
        }
        // The probes run on every automatic trigger (a tick included): from this region.
        for signal in signals::probes(&plan.plan) {
            let url = signal.url.clone().unwrap_or_default();
            let timeout = Duration::from_millis(signal.timeout_ms.unwrap_or(2000));
            let at_ms = self.now();
            let (firing, detail) = match self.ports.probe.get(&url, timeout).await {
                Ok(status) => (false, format!("{url} answered {status}")),
                Err(e) => (true, format!("{url}: {e}")),
            };
            observations.push(Observation {
                signal: signal.name.clone(),
                firing,
                at_ms,
                detail,
            });
        }
        // A tick re-reads the alarm signals the board has firing: an `OK` whose event was lost
        // (a delivery is at least once, not exactly once) must not leave one firing forever.
        // An alarm that cannot be read (its region down) or does not exist keeps its state.
        if tick {
            let board: Option<Board> = self
                .toolkit
                .store
                .get(&board_key(&plan.plan.name))
                .await?
                .map(|v| v.value);
            for signal in signals::of_kind(&plan.plan, "alarm") {
                let firing = board
                    .as_ref()
                    .and_then(|b| b.signals.get(&signal.name))
                    .is_some_and(|s| s.firing);
                let Some(name) = signal.alarm.as_deref().filter(|_| firing) else {
                    continue;
                };
                match self.alarms.state(name).await {
                    Ok(Some(state)) if state.value != "ALARM" => observations.push(Observation {
                        signal: signal.name.clone(),
                        firing: false,
                        at_ms: state.since_ms.unwrap_or_else(|| self.now()),
                        detail: format!(
                            "alarm {name} read again: {} ({})",
                            state.value, state.reason
                        ),
                    }),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::info!(alarm = name, error = %e, "alarm not read again; its signal keeps its state")
                    }
                }
            }
        }
        // The replica's lag, read here in the secondary region: a signal that needs nothing of
        // the primary region.
        for signal in signals::of_kind(&plan.plan, "replica-lag") {
            let sample = self.replica_lag_sample(&plan).await?;
            observations.extend(signals::from_replica_lag(signal, sample));
        }
        let p = plan.plan.clone();
        let obs = observations.clone();
        let now = self.now();
        let board: Board = self
            .toolkit
            .store
            .update(&board_key(&plan.plan.name), move |board: &mut Board| {
                // Every observation is applied (no short-circuit).
                let mut changed = false;
                for o in &obs {
                    changed |= board.apply(&p, o);
                }
                // A heartbeat that stopped arriving fires on whatever trigger comes next.
                for o in board.stale_heartbeats(&p, now) {
                    changed |= board.apply(&p, &o);
                }
                changed
            })
            .await?;
        let quorum = board.quorum(&plan.plan, now);
        tracing::info!(trigger = %what, quorum = %quorum, "signals evaluated");
        if !quorum.met {
            return Ok(json!({"outcome": "watching", "trigger": what, "quorum": quorum}));
        }
        if let Some(window) = plan.plan.detection.maintenance_at(now) {
            return self
                .not_acting(
                    &plan,
                    &format!(
                        "maintenance window {} – {} suppresses automatic failover",
                        window.start, window.end
                    ),
                    &quorum,
                )
                .await;
        }
        if let Some(last) = state.last_started_ms {
            let cooldown = plan.plan.detection.cooldown_seconds * 1000;
            if now < last + cooldown {
                return self
                    .not_acting(
                        &plan,
                        &format!(
                            "cool-down: the last execution began {} s ago (cool-down {} s)",
                            (now - last) / 1000,
                            cooldown / 1000
                        ),
                        &quorum,
                    )
                    .await;
            }
        }
        if self.toolkit.settings.dry_run {
            let planned = self.plan_mode(&plan).await?;
            return self
                .not_acting(
                    &plan,
                    "dry-run: the plan is returned, nothing is changed",
                    &quorum,
                )
                .await
                .map(|mut v| {
                    v["plan"] = planned;
                    v
                });
        }
        self.check_region(&plan, Mode::Failover)?;
        let mut exec = Execution::new(
            &plan,
            Mode::Failover,
            format!("quorum: {quorum}"),
            quorum.since_ms.unwrap_or(now),
            now,
            owner,
        );
        exec.quorum = Some(quorum);
        self.start(&plan, exec, owner, false).await
    }

    async fn not_acting(
        &self,
        plan: &LoadedPlan,
        reason: &str,
        quorum: &signals::Quorum,
    ) -> Result<Value> {
        tracing::warn!(plan = %plan.plan.name, reason, "quorum met, not acting");
        let mut m = Metrics::new("failover", "not-acting");
        m.add("FailoverSuppressed", 1.0, Unit::Count);
        m.emit(self.now());
        // One notification per quorum formation.
        let notifier = self.toolkit.notifier.clone();
        let note = breakwater::notify::Notification::new(
            format!("Failover {}: quorum met, not acting", plan.plan.name),
            format!("{quorum}. Not acting: {reason}."),
        )
        .attribute("function", "failover")
        .attribute("outcome", "not-acting");
        let _ = self
            .toolkit
            .store
            .once(
                "failover-not-acting",
                &format!("{}/{}", plan.plan.name, quorum.since_ms.unwrap_or(0)),
                "failover",
                Duration::from_secs(900),
                || async move { notifier.publish(&note).await.map(|_| ()) },
            )
            .await?;
        Ok(json!({"outcome": "not-acting", "reason": reason, "quorum": quorum}))
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

    /// The replica's latest lag in seconds, read in the secondary region, with the sample's
    /// time: RDS `ReplicaLag` (seconds) of the replica; Aurora `AuroraGlobalDBReplicationLag`
    /// (milliseconds) of the secondary cluster ("Monitoring Amazon Aurora global databases",
    /// Aurora User Guide). The last five minutes; `None` when there is no sample.
    async fn replica_lag_sample(&self, plan: &LoadedPlan) -> Result<Option<(f64, u64)>> {
        let now = self.now();
        let metrics = &self.ports.metrics;
        Ok(match &plan.database {
            Database::Rds { replica, .. } => {
                metrics
                    .latest(
                        "AWS/RDS",
                        "ReplicaLag",
                        &[("DBInstanceIdentifier", replica)],
                        now,
                        300_000,
                    )
                    .await?
            }
            Database::AuroraGlobal {
                target_cluster_arn, ..
            } => {
                let cluster = target_cluster_arn.rsplit(':').next().unwrap_or_default();
                metrics
                    .latest(
                        "AWS/RDS",
                        "AuroraGlobalDBReplicationLag",
                        &[("DBClusterIdentifier", cluster)],
                        now,
                        300_000,
                    )
                    .await?
                    .map(|(ms, at)| {
                        if ms < 0.0 {
                            (ms, at)
                        } else {
                            (ms / 1000.0, at)
                        }
                    })
            }
        })
    }

    /// A drill must not hurt production. Promoting an RDS read replica cannot be undone (it
    /// "breaks the replication link", "Working with DB instance read replicas", Amazon RDS User
    /// Guide), so an RDS drill runs only on a copy tagged `breakwater:drill=true` (the clean-up
    /// deletes it); anything else is refused before anything is read or changed beyond the
    /// replica itself. An Aurora drill is a planned switchover (`SwitchoverGlobalCluster`: no
    /// data loss), moved back by the clean-up.
    async fn check_drill_targets(&self, plan: &LoadedPlan) -> Result<()> {
        let Database::Rds { replica, .. } = &plan.database else {
            return Ok(());
        };
        match self.ports.secondary_db.instance(replica).await? {
            Some(db) if db.tags.get("breakwater:drill").map(String::as_str) == Some("true") => {
                Ok(())
            }
            Some(_) => Err(invalid(format!(
                "drill refused: {replica} is not tagged breakwater:drill=true, and promoting a \
                 production replica cannot be undone. Drill on a tagged copy (an inline \
                 \"plan\" naming it), or move production with {{\"command\": \"switchover\"}}; \
                 nothing was changed"
            ))),
            None => Err(invalid(format!(
                "drill refused: the replica {replica} does not exist; nothing was changed"
            ))),
        }
    }

    /// The plan was written (S3's `Object Created` event through EventBridge): precheck it at
    /// once, so that a plan that cannot fail over is known now, not at the outage. Another
    /// bucket or key is bad input and changes nothing. A plan that does not load is "not ready",
    /// with the reason, and published as such.
    async fn plan_changed(&self, detail: &Value) -> Result<Value> {
        let bucket = detail["bucket"]["name"].as_str().unwrap_or_default();
        let key = detail["object"]["key"].as_str().unwrap_or_default();
        let ours = self.toolkit.store.bucket();
        if bucket != ours || key != self.settings.plan_key {
            return Err(invalid(format!(
                "Object Created s3://{bucket}/{key}: not this function's plan (s3://{ours}/{})",
                self.settings.plan_key
            )));
        }
        tracing::info!(bucket, key, "the plan changed; prechecking it");
        match self.stored_plan().await {
            Ok(plan) => self.precheck(&plan).await,
            Err(e @ (Error::CorruptRecord { .. } | Error::Config(_))) => {
                Ok(self.not_ready_plan(&e.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    async fn command(&self, command: &str, body: &Value, owner: &str) -> Result<Value> {
        // Everything about the request is checked before anything is read or changed.
        let inline = match body.get("plan") {
            None | Some(Value::Null) => None,
            Some(p) if matches!(command, "plan" | "precheck" | "drill") => {
                let loaded = plan::load(p.to_string().as_bytes()).map_err(|e| invalid(e.to_string()))?;
                self.check_regions(&loaded).map_err(|e| invalid(e.to_string()))?;
                Some(loaded)
            }
            Some(_) => return Err(invalid(format!("{command} runs the stored plan only; an inline plan is for plan, precheck and drill"))),
        };
        let accept = match body.get("accept_data_loss_seconds") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                invalid("accept_data_loss_seconds: expected a whole number of seconds")
            })?),
        };
        let plan = match inline {
            Some(p) => p,
            None => self.stored_plan().await?,
        };
        if command == "status" {
            let state = self.plan_state(&plan.plan.name).await?;
            let last = match state.active.as_ref().or(state.last.as_ref()) {
                Some(id) => self
                    .toolkit
                    .store
                    .get::<Execution>(&Execution::key(id))
                    .await?
                    .map(|v| summary(&v.value)),
                None => None,
            };
            return Ok(
                json!({"plan": plan.plan.name, "plan_hash": plan.hash, "state": state, "execution": last}),
            );
        }
        if command == "plan" {
            return self.plan_mode(&plan).await;
        }
        if command == "precheck" {
            return self.precheck(&plan).await;
        }
        let mode =
            Mode::parse(command).ok_or_else(|| invalid(format!("unknown mode {command}")))?;
        match body.get("confirm").and_then(Value::as_str) {
            Some(c) if c == plan.plan.name => {}
            Some(c) => return Err(invalid(format!("confirm {c:?} does not name this plan ({:?}); nothing was changed", plan.plan.name))),
            None => return Err(invalid(format!("{command} by hand needs \"confirm\": \"{}\" (the plan's name); nothing was changed", plan.plan.name))),
        }
        self.check_region(&plan, mode)?;
        if mode == Mode::Drill {
            self.check_drill_targets(&plan).await?;
        }
        let by = body
            .get("by")
            .and_then(Value::as_str)
            .unwrap_or("an operator");
        let now = self.now();
        let mut exec = Execution::new(
            &plan,
            mode,
            format!("manual {command} by {by}"),
            now,
            now,
            owner,
        );
        exec.accept_data_loss_seconds = accept;
        let state = self.plan_state(&plan.plan.name).await?;
        if let Some(active) = &state.active {
            let running = self
                .toolkit
                .store
                .get::<Execution>(&Execution::key(active))
                .await?;
            if let Some(running) = running.filter(|r| r.value.mode != mode) {
                return Err(Error::Conflict(format!(
                    "execution {} ({}) is running; {command} was not started",
                    running.value.id,
                    running.value.mode.as_str()
                )));
            }
        }
        self.start(&plan, exec, owner, true).await
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

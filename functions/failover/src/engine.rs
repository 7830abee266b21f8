//! The engine: one execution record per failover, reconciled step by step. Every step observes
//! before it acts and checkpoints around the act, so an invocation that dies anywhere is finished
//! by the next one (a tick, an RDS/EKS event, a repeat of the trigger) with each change made once.
//!
//! ```text
//! fence (best effort) ─┬─► database ──┬─► traffic ─► verify ─► [drill: clean-up] ─► report
//!                      └─► node groups ┘
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use breakwater::metrics::{Metrics, Unit};
use breakwater::notify::Notification;
use breakwater::ports::{
    Changed, Dns, DnsRecord, MetricReader, NodeGroupId, NodeGroups, Replicas, Scaling,
};
use breakwater::probe::{HttpProbe, Probe};
use breakwater::report::{Action, Phase, Report};
use breakwater::state::key_segment;
use breakwater::{Error, Result, Toolkit};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::{Database, LoadedPlan};
use crate::signals::Quorum;

/// What an execution does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Unplanned: promote now (RPO guard), Aurora `AllowDataLoss`.
    Failover,
    /// Planned: no data loss (RDS waits for lag 0; Aurora switchover).
    Switchover,
    /// The failover path on a drill plan, then verified clean-up.
    Drill,
    /// Back to the primary region: re-protect, then a planned move back.
    Failback,
}

impl Mode {
    /// Parses a mode name.
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "failover" => Mode::Failover,
            "switchover" => Mode::Switchover,
            "drill" => Mode::Drill,
            "failback" => Mode::Failback,
            _ => return None,
        })
    }

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Failover => "failover",
            Mode::Switchover => "switchover",
            Mode::Drill => "drill",
            Mode::Failback => "failback",
        }
    }

    /// Whether data may be lost (an unplanned promotion, guarded by the RPO).
    pub fn unplanned(self) -> bool {
        matches!(self, Mode::Failover | Mode::Drill)
    }

    /// The steps, in order (`database` and `nodes` run together).
    pub fn steps(self) -> &'static [StepName] {
        use StepName::*;
        match self {
            Mode::Failover | Mode::Switchover => &[Fence, Database, Nodes, Traffic, Verify, Report],
            Mode::Drill => &[Fence, Database, Nodes, Traffic, Verify, Cleanup, Report],
            Mode::Failback => &[Fence, Reprotect, Database, Traffic, Verify, Report],
        }
    }
}

/// A step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepName {
    /// Stop the old side taking traffic (its health-check switch reports unhealthy).
    Fence,
    /// Failback: a replica of the current writer in the primary region.
    Reprotect,
    /// Promote / move the writer.
    Database,
    /// Raise the standby node groups.
    Nodes,
    /// Open the new side's gate, move the records.
    Traffic,
    /// Read everything back.
    Verify,
    /// Drill: undo what the drill changed, and read it back.
    Cleanup,
    /// Report and final notification.
    Report,
}

impl StepName {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Fence => "fence",
            StepName::Reprotect => "reprotect",
            StepName::Database => "database",
            StepName::Nodes => "nodes",
            StepName::Traffic => "traffic",
            StepName::Verify => "verify",
            StepName::Cleanup => "cleanup",
            StepName::Report => "report",
        }
    }
}

/// A step's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepState {
    /// Not begun.
    Pending,
    /// Begun; an act may have reached AWS (observe before acting again).
    Running,
    /// Done and verified.
    Done,
    /// Failed (the detail says why).
    Failed,
    /// Not applicable to this plan.
    Skipped,
}

/// One step's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Its state.
    pub state: StepState,
    /// When it began (ms).
    pub started_ms: Option<u64>,
    /// When it ended (ms).
    pub finished_ms: Option<u64>,
    /// What happened.
    pub detail: String,
}

/// What an execution changed before, so that a drill can put it back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    /// Health check → its `Inverted` before.
    pub health_checks: BTreeMap<String, bool>,
    /// Record name → its value before (`None`: absent).
    pub records: BTreeMap<String, Option<DnsRecord>>,
    /// Node group → its sizes before.
    pub node_groups: BTreeMap<String, Scaling>,
}

/// One change made, with AWS's request id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// The API operation.
    pub operation: String,
    /// On what.
    pub target: String,
    /// AWS's request id.
    pub request_id: Option<String>,
    /// When (ms).
    pub at_ms: u64,
}

/// The durable record of one execution (`failover/executions/<id>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// `<plan>-<mode>-<ms>`.
    pub id: String,
    /// The plan's name.
    pub plan: String,
    /// The plan's hash.
    pub plan_hash: String,
    /// The mode.
    pub mode: Mode,
    /// What started it.
    pub trigger: String,
    /// The quorum that started an automatic failover.
    pub quorum: Option<Quorum>,
    /// The data loss window the invocation accepted (seconds).
    pub accept_data_loss_seconds: Option<u64>,
    /// The promotion epoch: the writer chosen by this execution is the only writer from now.
    pub epoch: u64,
    /// When the outage was detected (quorum formed) or the request made (ms).
    pub detected_ms: u64,
    /// When the execution was decided (ms).
    pub started_ms: u64,
    /// When it ended (ms).
    pub finished_ms: Option<u64>,
    /// `running`, `succeeded`, `failed`.
    pub outcome: String,
    /// Per step.
    pub steps: BTreeMap<StepName, Step>,
    /// Every change, in order.
    pub actions: Vec<Act>,
    /// Replica lag read before the promotion (seconds).
    pub lag_seconds: Option<f64>,
    /// When it was read (ms).
    #[serde(default)]
    pub lag_read_ms: Option<u64>,
    /// The Route 53 change being followed.
    pub change_id: Option<String>,
    /// What the execution changed before.
    pub before: Before,
    /// Things a reader must know.
    pub notes: Vec<String>,
    /// Where the report is.
    pub report_key: Option<String>,
}

impl Execution {
    /// A new execution, started by the invocation `owner` (its request id tells apart two
    /// executions proposed in the same millisecond; one of them wins the plan).
    pub fn new(
        plan: &LoadedPlan,
        mode: Mode,
        trigger: String,
        detected_ms: u64,
        now_ms: u64,
        owner: &str,
    ) -> Self {
        Execution {
            id: format!(
                "{}-{}-{now_ms}-{}",
                plan.plan.name,
                mode.as_str(),
                &token(owner, "execution")[3..11]
            ),
            plan: plan.plan.name.clone(),
            plan_hash: plan.hash.clone(),
            mode,
            trigger,
            quorum: None,
            accept_data_loss_seconds: None,
            epoch: now_ms,
            detected_ms,
            started_ms: now_ms,
            finished_ms: None,
            outcome: "running".into(),
            steps: mode
                .steps()
                .iter()
                .map(|s| {
                    (
                        *s,
                        Step {
                            state: StepState::Pending,
                            started_ms: None,
                            finished_ms: None,
                            detail: String::new(),
                        },
                    )
                })
                .collect(),
            actions: Vec::new(),
            lag_seconds: None,
            lag_read_ms: None,
            change_id: None,
            before: Before::default(),
            notes: Vec::new(),
            report_key: None,
        }
    }

    /// The state store key of an execution.
    pub fn key(id: &str) -> String {
        format!("failover/executions/{}.json", key_segment(id))
    }

    /// A step's state.
    pub fn state(&self, step: StepName) -> StepState {
        self.steps
            .get(&step)
            .map(|s| s.state)
            .unwrap_or(StepState::Skipped)
    }

    /// Whether it has ended.
    pub fn finished(&self) -> bool {
        self.outcome != "running"
    }
}

/// The AWS a failover touches: RDS in both regions, EKS and CloudWatch in the region being
/// activated, Route 53.
#[derive(Debug)]
pub struct Ports<R, N, D, M, P = HttpProbe> {
    /// RDS in the secondary region.
    pub secondary_db: R,
    /// RDS in the primary region (failback re-protection).
    pub primary_db: R,
    /// EKS node groups in the secondary region.
    pub nodes: N,
    /// Route 53.
    pub dns: D,
    /// CloudWatch in the secondary region (replica lag).
    pub metrics: M,
    /// CloudWatch in the primary region (lag of the re-protected replica on failback).
    pub primary_metrics: M,
    /// HTTP from this region: the probe signals and the secondary's health URL.
    pub probe: P,
}

/// How the engine waits.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Between two observations of something in progress.
    pub poll: Duration,
    /// The most one invocation waits before it checkpoints and leaves the rest to the next.
    pub budget: Duration,
}

/// What a step came to in this invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Progress {
    Done,
    Waiting(String),
    Failed(String),
}

/// One reconciliation of one execution.
#[derive(Debug)]
pub struct Engine<'a, R, N, D, M, P = HttpProbe> {
    /// Clients, store, notifier.
    pub toolkit: &'a Toolkit,
    /// The AWS ports.
    pub ports: &'a Ports<R, N, D, M, P>,
    /// The plan.
    pub plan: &'a LoadedPlan,
    /// Waiting.
    pub pace: Pace,
    /// The invocation (lease owner, idempotency owner).
    pub owner: &'a str,
}

/// Whether this execution already asked for `operation` on `target`.
async fn requested(shared: &Mutex<Execution>, operation: &str, target: &str) -> bool {
    shared
        .lock()
        .await
        .actions
        .iter()
        .any(|a| a.operation == operation && a.target == target)
}

fn token(execution: &str, what: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{execution}/{what}").as_bytes(),
    );
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bw-{hex}")
}

impl<R: Replicas, N: NodeGroups, D: Dns, M: MetricReader, P: Probe> Engine<'_, R, N, D, M, P> {
    fn now(&self) -> u64 {
        self.toolkit.store.clock().now_ms()
    }

    async fn save(&self, exec: &Execution) -> Result<()> {
        self.toolkit
            .store
            .put(&Execution::key(&exec.id), exec)
            .await
            .map(drop)
    }

    /// Marks `step` running (checkpointed) unless it already ran; returns its state before.
    async fn begin(&self, shared: &Mutex<Execution>, step: StepName) -> Result<StepState> {
        let mut exec = shared.lock().await;
        let now = self.now();
        let entry = exec
            .steps
            .get_mut(&step)
            .ok_or_else(|| Error::CorruptRecord {
                key: Execution::key(""),
                reason: format!("no step {}", step.as_str()),
            })?;
        let before = entry.state;
        if before == StepState::Pending {
            entry.state = StepState::Running;
            entry.started_ms = Some(now);
            tracing::info!(step = step.as_str(), "step begins");
            self.save(&exec).await?;
        }
        Ok(before)
    }

    async fn end(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        state: StepState,
        detail: String,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        let now = self.now();
        if let Some(entry) = exec.steps.get_mut(&step) {
            entry.state = state;
            entry.finished_ms = Some(now);
            entry.started_ms.get_or_insert(now);
            entry.detail = detail.clone();
        }
        tracing::info!(step = step.as_str(), state = ?state, detail = %detail, "step ends");
        self.save(&exec).await
    }

    async fn acted(
        &self,
        shared: &Mutex<Execution>,
        operation: &str,
        target: &str,
        changed: &Changed,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        let at_ms = self.now();
        tracing::info!(operation, target, request_id = ?changed.request_id, "acted");
        exec.actions.push(Act {
            operation: operation.to_string(),
            target: target.to_string(),
            request_id: changed.request_id.clone(),
            at_ms,
        });
        self.save(&exec).await
    }

    async fn note(&self, shared: &Mutex<Execution>, note: String) -> Result<()> {
        let mut exec = shared.lock().await;
        if !exec.notes.contains(&note) {
            exec.notes.push(note);
            self.save(&exec).await?;
        }
        Ok(())
    }

    async fn sleep(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(self.pace.poll.min(deadline - now)).await;
        true
    }

    /// Notifies a phase once per execution, whatever the crashes and repeats.
    async fn notify(
        &self,
        exec_id: &str,
        phase: &str,
        summary: String,
        severity: &str,
    ) -> Result<()> {
        let notification = Notification::new(format!("Failover {exec_id}: {phase}"), summary)
            .attribute("function", "failover")
            .attribute("execution", exec_id)
            .attribute("phase", phase)
            .attribute("severity", severity);
        let notifier = self.toolkit.notifier.clone();
        self.toolkit
            .store
            .once(
                "failover-notify",
                &format!("{exec_id}/{phase}"),
                self.owner,
                // Only a dead invocation can hold this claim (the plan's lease serialises the
                // live ones): after a minute its notification is sent by the next.
                Duration::from_secs(60),
                || async move { notifier.publish(&notification).await.map(|_| ()) },
            )
            .await
            .map(drop)
    }

    /// Runs (or resumes) the execution as far as it can go in this invocation.
    pub async fn reconcile(&self, exec: Execution) -> Result<Execution> {
        let deadline = Instant::now() + self.pace.budget;
        let id = exec.id.clone();
        let mode = exec.mode;
        let fresh =
            exec.actions.is_empty() && exec.steps.values().all(|s| s.state == StepState::Pending);
        let trigger = exec.trigger.clone();
        let started = async move {
            if fresh {
                self.notify(
                    &id,
                    "started",
                    format!(
                        "{} of plan {} started ({}); RTO target {} s.",
                        mode.as_str(),
                        self.plan.plan.name,
                        trigger,
                        self.plan.plan.targets.rto_seconds
                    ),
                    "critical",
                )
                .await
            } else {
                Ok(())
            }
        };
        let shared = Arc::new(Mutex::new(exec));
        let steps = mode.steps();
        let mut i = 0;
        // The "started" notification goes out while the fence is set: it must not delay the
        // promotion.
        let mut started = Some(Box::pin(started));
        while i < steps.len() {
            let step = steps[i];
            let state = shared.lock().await.state(step);
            // The fence is best effort: its failure is recorded and the failover goes on.
            let passed = matches!(state, StepState::Done | StepState::Skipped)
                || (state == StepState::Failed && step == StepName::Fence);
            if passed {
                i += 1;
                continue;
            }
            if state == StepState::Failed {
                break;
            }
            let progress = match step {
                StepName::Fence => {
                    // The lag is read while the fence is set (an unplanned promotion follows).
                    let prefetch = async {
                        let database = shared.lock().await.state(StepName::Database);
                        if mode.unplanned() && database == StepState::Pending {
                            self.read_lag(&shared, mode).await.map(drop)
                        } else {
                            Ok(())
                        }
                    };
                    let fence = Box::pin(self.fence(&shared));
                    let notice = started.take();
                    let (notice, fence, lag) = tokio::join!(
                        async {
                            match notice {
                                Some(n) => n.await,
                                None => Ok(()),
                            }
                        },
                        fence,
                        prefetch
                    );
                    notice?;
                    lag?;
                    fence?
                }
                StepName::Reprotect => Box::pin(self.reprotect(&shared, deadline)).await?,
                StepName::Database if steps.get(i + 1) == Some(&StepName::Nodes) => {
                    // An unplanned promotion the RPO forbids is refused before anything moves:
                    // no node group is raised for a failover that will not happen.
                    if let Some(refusal) = self.refused_by_rpo(&shared, mode).await? {
                        self.end(
                            &shared,
                            StepName::Database,
                            StepState::Failed,
                            refusal.clone(),
                        )
                        .await?;
                        break;
                    }
                    // The two long waits run together; traffic waits for both.
                    let (db, nodes) = tokio::join!(
                        Box::pin(self.database(&shared, deadline)),
                        Box::pin(self.nodes(&shared, deadline))
                    );
                    let (db, nodes) = (db?, nodes?);
                    i += 1;
                    match (db, nodes) {
                        (Progress::Failed(e), _) | (_, Progress::Failed(e)) => Progress::Failed(e),
                        (Progress::Waiting(w), _) | (_, Progress::Waiting(w)) => {
                            Progress::Waiting(w)
                        }
                        _ => Progress::Done,
                    }
                }
                other => Box::pin(self.step(&shared, other, deadline)).await?,
            };
            match progress {
                Progress::Done => i += 1,
                Progress::Waiting(what) => {
                    let exec = shared.lock().await.clone();
                    tracing::info!(execution = %exec.id, waiting_for = %what, "checkpointed; the next tick or event resumes");
                    return Ok(exec);
                }
                Progress::Failed(_) => break,
            }
        }
        if let Some(notice) = started.take() {
            notice.await?;
        }
        let mut exec = shared.lock().await.clone();
        if !exec.finished() {
            let failed = exec
                .steps
                .iter()
                .find(|(name, s)| s.state == StepState::Failed && **name != StepName::Fence);
            if let Some((name, s)) = failed {
                exec.outcome = "failed".into();
                exec.finished_ms = Some(self.now());
                let summary = format!(
                    "{} of plan {} FAILED at {}: {}",
                    mode.as_str(),
                    exec.plan,
                    name.as_str(),
                    s.detail
                );
                self.finish(&mut exec, &summary, "critical").await?;
            }
        }
        Ok(exec)
    }

    async fn step(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        deadline: Instant,
    ) -> Result<Progress> {
        match step {
            StepName::Database => Box::pin(self.database(shared, deadline)).await,
            StepName::Nodes => Box::pin(self.nodes(shared, deadline)).await,
            StepName::Traffic => Box::pin(self.traffic(shared, deadline)).await,
            StepName::Verify => Box::pin(self.verify(shared)).await,
            StepName::Cleanup => Box::pin(self.cleanup(shared, deadline)).await,
            StepName::Report => Box::pin(self.report(shared)).await,
            StepName::Fence => Box::pin(self.fence(shared)).await,
            StepName::Reprotect => Box::pin(self.reprotect(shared, deadline)).await,
        }
    }

    /// The RDS instance that becomes the writer, and the region's client: the replica in the
    /// secondary, or on failback the re-protected primary.
    fn rds_target(&self, back: bool, replica: &str, primary: &Option<String>) -> (&R, String) {
        if back {
            (&self.ports.primary_db, primary.clone().unwrap_or_default())
        } else {
            (&self.ports.secondary_db, replica.to_string())
        }
    }

    fn back(&self, shared_mode: Mode) -> bool {
        shared_mode == Mode::Failback
    }

    /// Fence: the side being left reports unhealthy (its health check inverted). Best effort: a
    /// failure is recorded and the failover goes on.
    async fn fence(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        let mode = shared.lock().await.mode;
        if self.begin(shared, StepName::Fence).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let Some(checks) = &self.plan.plan.traffic.health_checks else {
            self.end(
                shared,
                StepName::Fence,
                StepState::Skipped,
                "no health-check switch in the plan".into(),
            )
            .await?;
            return Ok(Progress::Done);
        };
        let check = if self.back(mode) {
            &checks.secondary
        } else {
            &checks.primary
        };
        let outcome = async {
            match self.ports.dns.health_check_inverted(check).await? {
                None => Err(Error::NotFound(format!("health check {check}"))),
                Some(true) => Ok(format!("health check {check} already reports unhealthy")),
                Some(false) => {
                    self.remember_check(shared, check, false).await?;
                    let changed = self
                        .ports
                        .dns
                        .set_health_check_inverted(check, true)
                        .await?;
                    self.acted(
                        shared,
                        "UpdateHealthCheck",
                        &format!("{check} Inverted=true"),
                        &changed,
                    )
                    .await?;
                    Ok(format!(
                        "health check {check} inverted: the old side reports unhealthy"
                    ))
                }
            }
        }
        .await;
        let epoch = shared.lock().await.epoch;
        match outcome {
            Ok(detail) => {
                self.end(
                    shared,
                    StepName::Fence,
                    StepState::Done,
                    format!("{detail}; promotion epoch {epoch}"),
                )
                .await?
            }
            Err(e) => {
                self.end(
                    shared,
                    StepName::Fence,
                    StepState::Failed,
                    format!("best effort, going on: {e}"),
                )
                .await?
            }
        }
        Ok(Progress::Done)
    }

    async fn remember_check(
        &self,
        shared: &Mutex<Execution>,
        check: &str,
        inverted: bool,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        if !exec.before.health_checks.contains_key(check) {
            exec.before
                .health_checks
                .insert(check.to_string(), inverted);
            // A drill's clean-up needs it even if the invocation dies right after the act.
            if exec.mode == Mode::Drill {
                self.save(&exec).await?;
            }
        }
        Ok(())
    }

    /// The lag of the replica about to be promoted (seconds), `None` when CloudWatch has none.
    async fn lag(&self, back: bool) -> Result<Option<f64>> {
        let now = self.now();
        let metrics = if back {
            &self.ports.primary_metrics
        } else {
            &self.ports.metrics
        };
        match &self.plan.database {
            Database::Rds { replica, primary } => {
                let (_, id) = self.rds_target(back, replica, primary);
                // RDS publishes -1 when replication is not active ("If the ReplicaLag metric
                // returns -1, then replication is currently not active", Monitoring MySQL /
                // MariaDB read replicas, Amazon RDS User Guide): the lag is then unknown, never 0.
                Ok(metrics
                    .latest(
                        "AWS/RDS",
                        "ReplicaLag",
                        &[("DBInstanceIdentifier", &id)],
                        now,
                        300_000,
                    )
                    .await?
                    .and_then(|(v, _)| (v >= 0.0).then_some(v)))
            }
            Database::AuroraGlobal {
                target_cluster_arn, ..
            } => {
                let cluster = target_cluster_arn.rsplit(':').next().unwrap_or_default();
                Ok(metrics
                    .latest(
                        "AWS/RDS",
                        "AuroraGlobalDBRPOLag",
                        &[("DBClusterIdentifier", cluster)],
                        now,
                        300_000,
                    )
                    .await?
                    .map(|(v, _)| v / 1000.0))
            }
        }
    }

    /// The RPO guard: `Ok(None)` to go on, `Ok(Some(reason))` to refuse.
    /// Reads the replica lag into the record (while the fence is set: the guard then needs no
    /// second round trip before the promotion).
    async fn read_lag(&self, shared: &Mutex<Execution>, mode: Mode) -> Result<Option<f64>> {
        let lag = self.lag(self.back(mode)).await?;
        let now = self.now();
        let mut exec = shared.lock().await;
        exec.lag_seconds = lag;
        exec.lag_read_ms = Some(now);
        Ok(lag)
    }

    /// For an unplanned promotion not yet asked for: the RPO guard's refusal, if it refuses.
    async fn refused_by_rpo(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<String>> {
        let asked = shared.lock().await.actions.iter().any(|a| {
            matches!(
                a.operation.as_str(),
                "PromoteReadReplica" | "FailoverGlobalCluster" | "SwitchoverGlobalCluster"
            )
        });
        if !mode.unplanned() || asked {
            return Ok(None);
        }
        Ok(match self.rpo_guard(shared, mode).await? {
            Some(Progress::Failed(reason)) => Some(reason),
            _ => None,
        })
    }

    async fn rpo_guard(&self, shared: &Mutex<Execution>, mode: Mode) -> Result<Option<Progress>> {
        let rpo = self.plan.plan.targets.rpo_seconds as f64;
        let (fresh, accepted) = {
            let exec = shared.lock().await;
            let fresh = exec
                .lag_read_ms
                .filter(|at| self.now().saturating_sub(*at) <= 10_000)
                .map(|_| exec.lag_seconds);
            (fresh, exec.accept_data_loss_seconds)
        };
        // The next checkpoint (the promotion's, or the refusal's) records it.
        let lag = match fresh {
            Some(lag) if mode.unplanned() => lag,
            _ => self.read_lag(shared, mode).await?,
        };
        if !mode.unplanned() {
            // Planned: no data loss — wait for the replica to catch up.
            return Ok(match lag {
                Some(l) if l <= 0.0 => None,
                Some(l) => Some(Progress::Waiting(format!(
                    "replica lag {l} s, waiting for 0"
                ))),
                None => Some(Progress::Waiting("replica lag not reported yet".into())),
            });
        }
        let within = lag.is_some_and(|l| l <= rpo);
        if within {
            return Ok(None);
        }
        let shown = lag
            .map(|l| format!("{l} s"))
            .unwrap_or_else(|| "unknown".into());
        match (lag, accepted) {
            (Some(l), Some(a)) if l <= a as f64 => {
                self.note(shared, format!("replica lag {shown} exceeded the RPO of {rpo} s; the invocation accepted up to {a} s of data loss")).await?;
                Ok(None)
            }
            (None, Some(a)) => {
                self.note(shared, format!("replica lag unknown; the invocation accepted up to {a} s of data loss")).await?;
                Ok(None)
            }
            (None, _) => Ok(Some(Progress::Failed(format!(
                "refused: replica lag unknown (no sample in the last 5 minutes, or -1: replication not active), so the RPO of {rpo} s cannot be shown to hold; nothing was promoted. Invoke again with accept_data_loss_seconds to promote anyway"
            )))),
            _ => Ok(Some(Progress::Failed(format!(
                "refused: replica lag {shown} is above the RPO of {rpo} s; nothing was promoted. Invoke again with accept_data_loss_seconds ≥ the lag to promote anyway"
            )))),
        }
    }

    async fn database(&self, shared: &Mutex<Execution>, deadline: Instant) -> Result<Progress> {
        let mode = shared.lock().await.mode;
        if self.begin(shared, StepName::Database).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let progress = match &self.plan.database {
            Database::Rds { replica, primary } => {
                let (ports, id) = self.rds_target(self.back(mode), replica, primary);
                self.promote_rds(shared, mode, ports, &id, deadline).await?
            }
            Database::AuroraGlobal {
                global_cluster,
                target_cluster_arn,
                primary_cluster_arn,
            } => {
                let target = if self.back(mode) {
                    match primary_cluster_arn {
                        Some(w) => w.clone(),
                        None => {
                            return self.fail(shared, StepName::Database, "failback needs database.primary_cluster_arn: the cluster to return the writer to".into()).await
                        }
                    }
                } else {
                    target_cluster_arn.clone()
                };
                self.move_aurora(shared, mode, global_cluster, &target, deadline)
                    .await?
            }
        };
        self.settle(shared, StepName::Database, progress).await
    }

    async fn settle(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        progress: Progress,
    ) -> Result<Progress> {
        match &progress {
            Progress::Done => {}
            Progress::Failed(reason) => {
                self.end(shared, step, StepState::Failed, reason.clone())
                    .await?;
            }
            Progress::Waiting(_) => {}
        }
        Ok(progress)
    }

    async fn fail(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        reason: String,
    ) -> Result<Progress> {
        self.end(shared, step, StepState::Failed, reason.clone())
            .await?;
        Ok(Progress::Failed(reason))
    }

    /// Reads with `read`; a transient error is read again after a poll, until the deadline
    /// (then `Err(Waiting)`, the step checkpointed for the next invocation).
    async fn observe<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        read: F,
    ) -> Result<std::result::Result<T, Progress>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        loop {
            match read().await {
                Ok(value) => return Ok(Ok(value)),
                Err(e) if e.is_retryable() => {
                    if !self.sleep(deadline).await {
                        return Ok(Err(Progress::Waiting(format!("read {what}: {e}"))));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The RPO guard, waiting (planned moves) for the lag to reach 0 until the deadline:
    /// `Ok(())` to promote, `Err(progress)` to stop there.
    async fn guard(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        deadline: Instant,
    ) -> Result<std::result::Result<(), Progress>> {
        loop {
            match self.rpo_guard(shared, mode).await? {
                None => return Ok(Ok(())),
                Some(Progress::Waiting(w)) => {
                    if !self.sleep(deadline).await {
                        return Ok(Err(Progress::Waiting(w)));
                    }
                }
                Some(stop) => return Ok(Err(stop)),
            }
        }
    }

    async fn database_done(
        &self,
        shared: &Mutex<Execution>,
        exec_id: &str,
        detail: String,
    ) -> Result<Progress> {
        self.end(shared, StepName::Database, StepState::Done, detail.clone())
            .await?;
        self.notify(exec_id, "database", detail, "info").await?;
        Ok(Progress::Done)
    }

    async fn promote_rds(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        ports: &R,
        id: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let exec_id = shared.lock().await.id.clone();
        loop {
            let observed = match self.observe(id, deadline, || ports.instance(id)).await? {
                Ok(o) => o,
                Err(waiting) => return Ok(waiting),
            };
            let Some(db) = observed else {
                return Ok(Progress::Failed(format!("DB instance {id} does not exist")));
            };
            if db.writable() {
                let detail = format!("{id} promoted: available, no replication source (writable)");
                return self.database_done(shared, &exec_id, detail).await;
            }
            let requested = requested(shared, "PromoteReadReplica", id).await;
            let ready = db.source.is_some() && db.status == "available";
            if ready && !requested {
                if let Err(stop) = self.guard(shared, mode, deadline).await? {
                    return Ok(stop);
                }
                match ports.promote(id).await {
                    Ok(changed) => {
                        self.acted(shared, "PromoteReadReplica", id, &changed)
                            .await?;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "promotion not accepted yet; observing again");
                    }
                    Err(e) => return Ok(Progress::Failed(format!("PromoteReadReplica {id}: {e}"))),
                }
            }
            // Promoting (modifying, rebooting), backing up, or just promoted: observe again.
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!("{id} is {}", db.status)));
            }
        }
    }

    async fn move_aurora(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        global: &str,
        target: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let exec_id = shared.lock().await.id.clone();
        let operation = if mode.unplanned() {
            "FailoverGlobalCluster"
        } else {
            "SwitchoverGlobalCluster"
        };
        loop {
            let observed = match self
                .observe(global, deadline, || {
                    self.ports.secondary_db.global_cluster(global)
                })
                .await?
            {
                Ok(o) => o,
                Err(waiting) => return Ok(waiting),
            };
            let Some(cluster) = observed else {
                return Ok(Progress::Failed(format!(
                    "global cluster {global} does not exist"
                )));
            };
            if cluster.writer.as_deref() == Some(target) && cluster.failover_state.is_none() {
                let detail = format!("{global}: writer is {target}");
                return self.database_done(shared, &exec_id, detail).await;
            }
            let requested = requested(shared, operation, global).await;
            if cluster.failover_state.is_none() && !requested {
                // A switchover waits for the secondary itself; only a failover needs the guard.
                if mode.unplanned() {
                    if let Err(stop) = self.guard(shared, mode, deadline).await? {
                        return Ok(stop);
                    }
                }
                match self
                    .ports
                    .secondary_db
                    .move_global_writer(global, target, mode.unplanned())
                    .await
                {
                    Ok(changed) => self.acted(shared, operation, global, &changed).await?,
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "global cluster busy; observing again");
                    }
                    Err(e) => return Ok(Progress::Failed(format!("{operation} {global}: {e}"))),
                }
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "{global} is {} ({})",
                    cluster.status,
                    cluster
                        .failover_state
                        .as_deref()
                        .unwrap_or("no failover state")
                )));
            }
        }
    }

    async fn nodes(&self, shared: &Mutex<Execution>, deadline: Instant) -> Result<Progress> {
        if self.begin(shared, StepName::Nodes).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let groups = self.plan.plan.node_groups();
        if groups.is_empty() {
            self.end(
                shared,
                StepName::Nodes,
                StepState::Skipped,
                "no node groups in the plan".into(),
            )
            .await?;
            return Ok(Progress::Done);
        }
        let exec_id = shared.lock().await.id.clone();
        let mut raised = Vec::new();
        for (id, target) in &groups {
            let progress = self
                .scale(
                    shared,
                    id,
                    target.min,
                    target.desired,
                    &token(&exec_id, &id.name),
                    deadline,
                )
                .await?;
            match progress {
                Progress::Done => raised.push(format!(
                    "{} min {} desired {}",
                    id.name, target.min, target.desired
                )),
                other => return self.settle(shared, StepName::Nodes, other).await,
            }
        }
        let detail = format!("node groups ACTIVE at: {}", raised.join(", "));
        self.end(shared, StepName::Nodes, StepState::Done, detail.clone())
            .await?;
        self.notify(&exec_id, "nodes", detail, "info").await?;
        Ok(Progress::Done)
    }

    /// Brings one node group to exactly (restore) or at least (raise) min/desired, then ACTIVE.
    async fn scale(
        &self,
        shared: &Mutex<Execution>,
        id: &NodeGroupId,
        min: i32,
        desired: i32,
        token: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let restore = token.ends_with("-restore");
        loop {
            let name = id.to_string();
            let group = match self
                .observe(&name, deadline, || self.ports.nodes.describe(id))
                .await?
            {
                Ok(Some(g)) => g,
                Ok(None) => return Ok(Progress::Failed(format!("node group {id} does not exist"))),
                Err(waiting) => return Ok(waiting),
            };
            if !restore {
                let mut exec = shared.lock().await;
                if !exec.before.node_groups.contains_key(&id.name) {
                    exec.before
                        .node_groups
                        .insert(id.name.clone(), group.scaling);
                    if exec.mode == Mode::Drill {
                        self.save(&exec).await?;
                    }
                }
            }
            if group.status == "DEGRADED" || group.status == "CREATE_FAILED" {
                return Ok(Progress::Failed(format!(
                    "node group {id} is {} (insufficient capacity or a failed update): {}",
                    group.status, group.scaling
                )));
            }
            let reached = if restore {
                group.scaling.min == min && group.scaling.desired == desired
            } else {
                group.scaling.min >= min && group.scaling.desired >= desired
            };
            if reached && group.status == "ACTIVE" {
                return Ok(Progress::Done);
            }
            if !reached && group.status != "UPDATING" {
                let scaling = Scaling {
                    min,
                    desired,
                    max: group.scaling.max.max(desired),
                };
                match self.ports.nodes.update_scaling(id, scaling, token).await {
                    Ok(update) => {
                        let changed = Changed {
                            request_id: None,
                            started: Some(update.clone()),
                        };
                        self.acted(
                            shared,
                            "UpdateNodegroupConfig",
                            &format!("{id} {scaling} (update {update})"),
                            &changed,
                        )
                        .await?;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(node_group = %id, error = %e, "an update is in progress; waiting");
                    }
                    Err(e) => {
                        return Ok(Progress::Failed(format!("UpdateNodegroupConfig {id}: {e}")))
                    }
                }
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "node group {id} is {}",
                    group.status
                )));
            }
        }
    }

    async fn traffic(&self, shared: &Mutex<Execution>, deadline: Instant) -> Result<Progress> {
        let (mode, exec_id) = {
            let e = shared.lock().await;
            (e.mode, e.id.clone())
        };
        if self.begin(shared, StepName::Traffic).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let toward_secondary = !self.back(mode);
        let traffic = &self.plan.plan.traffic;
        let mut done = Vec::new();
        if let Some(checks) = &traffic.health_checks {
            let gate = if toward_secondary {
                &checks.secondary
            } else {
                &checks.primary
            };
            match self.ports.dns.health_check_inverted(gate).await {
                Ok(None) => {
                    return self
                        .fail(
                            shared,
                            StepName::Traffic,
                            format!("health check {gate} does not exist"),
                        )
                        .await
                }
                Ok(Some(false)) => done.push(format!("gate {gate} open")),
                Ok(Some(true)) => {
                    self.remember_check(shared, gate, true).await?;
                    match self.ports.dns.set_health_check_inverted(gate, false).await {
                        Ok(changed) => {
                            self.acted(
                                shared,
                                "UpdateHealthCheck",
                                &format!("{gate} Inverted=false"),
                                &changed,
                            )
                            .await?;
                            done.push(format!("gate {gate} opened"));
                        }
                        Err(e) if e.is_retryable() => {
                            return Ok(Progress::Waiting(format!("UpdateHealthCheck {gate}: {e}")))
                        }
                        Err(e) => {
                            return self
                                .fail(
                                    shared,
                                    StepName::Traffic,
                                    format!("UpdateHealthCheck {gate}: {e}"),
                                )
                                .await
                        }
                    }
                }
                Err(e) if e.is_retryable() => {
                    return Ok(Progress::Waiting(format!("GetHealthCheck {gate}: {e}")))
                }
                Err(e) => {
                    return self
                        .fail(
                            shared,
                            StepName::Traffic,
                            format!("GetHealthCheck {gate}: {e}"),
                        )
                        .await
                }
            }
        }
        if !traffic.records.is_empty() {
            match self.records(shared, toward_secondary, deadline).await? {
                Progress::Done => done.push(format!(
                    "{} record(s) INSYNC (clients follow within the TTL: {} s)",
                    traffic.records.len(),
                    traffic.records.iter().map(|r| r.ttl).max().unwrap_or(0)
                )),
                other => return self.settle(shared, StepName::Traffic, other).await,
            }
        }
        let detail = done.join("; ");
        self.end(shared, StepName::Traffic, StepState::Done, detail.clone())
            .await?;
        self.notify(&exec_id, "traffic", detail, "info").await?;
        Ok(Progress::Done)
    }

    /// UPSERTs the records toward one side (unless they already point there), then follows the
    /// change until INSYNC, backing off on throttling and `PriorRequestNotComplete`.
    async fn records(
        &self,
        shared: &Mutex<Execution>,
        toward_secondary: bool,
        deadline: Instant,
    ) -> Result<Progress> {
        let traffic = &self.plan.plan.traffic;
        let zone = traffic.zone_id.clone().unwrap_or_default();
        let wanted: Vec<DnsRecord> = traffic
            .records
            .iter()
            .map(|r| r.record(toward_secondary))
            .collect();
        self.write_records(shared, &zone, &wanted, true, deadline)
            .await
    }

    async fn write_records(
        &self,
        shared: &Mutex<Execution>,
        zone: &str,
        wanted: &[DnsRecord],
        remember: bool,
        deadline: Instant,
    ) -> Result<Progress> {
        let mut backoff = self.pace.poll;
        loop {
            let mut stale = Vec::new();
            for record in wanted {
                // A throttled read is read again (never skipped: an unread record is not "in place").
                let current = match self
                    .observe(&record.name, deadline, || {
                        self.ports.dns.record(zone, &record.name, &record.kind)
                    })
                    .await?
                {
                    Ok(c) => c,
                    Err(waiting) => return Ok(waiting),
                };
                if remember {
                    let mut exec = shared.lock().await;
                    if !exec.before.records.contains_key(&record.name) {
                        exec.before
                            .records
                            .insert(record.name.clone(), current.clone());
                        if exec.mode == Mode::Drill {
                            self.save(&exec).await?;
                        }
                    }
                }
                if current.as_ref().map(|c| (&c.value, c.ttl)) != Some((&record.value, record.ttl))
                {
                    stale.push(record.clone());
                }
            }
            let change = shared.lock().await.change_id.clone();
            if !stale.is_empty() {
                let comment = format!("breakwater failover {}", shared.lock().await.id);
                match self.ports.dns.upsert(zone, &stale, &comment).await {
                    Ok(changed) => {
                        let names: Vec<&str> = stale.iter().map(|r| r.name.as_str()).collect();
                        {
                            let mut exec = shared.lock().await;
                            exec.change_id = changed.started.clone();
                        }
                        self.acted(
                            shared,
                            "ChangeResourceRecordSets",
                            &format!("UPSERT {} in {zone}", names.join(", ")),
                            &changed,
                        )
                        .await?;
                        backoff = self.pace.poll;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "Route 53 busy; backing off");
                        if !self.sleep(deadline).await {
                            return Ok(Progress::Waiting(format!("UPSERT: {e}")));
                        }
                        tokio::time::sleep(backoff.min(Duration::from_secs(10))).await;
                        backoff *= 2;
                    }
                    Err(e) => return Ok(Progress::Failed(format!("UPSERT in {zone}: {e}"))),
                }
                continue;
            }
            let Some(change) = change else {
                // Already pointing there and no change of ours to follow (set before, or the
                // change id was lost with a crashed invocation): read back is the proof.
                return Ok(Progress::Done);
            };
            match self.ports.dns.change_status(&change).await {
                Ok(status) if status == "INSYNC" => return Ok(Progress::Done),
                Ok(status) => {
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("change {change} is {status}")));
                    }
                }
                Err(e) if e.is_retryable() => {
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("GetChange {change}: {e}")));
                    }
                }
                Err(e) => return Ok(Progress::Failed(format!("GetChange {change}: {e}"))),
            }
        }
    }

    /// Reads everything back: the database writable, the node groups at size and ACTIVE, the
    /// gate open and the records in place, and the new side's health endpoint when named.
    async fn verify(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        let (mode, exec_id) = {
            let e = shared.lock().await;
            (e.mode, e.id.clone())
        };
        if self.begin(shared, StepName::Verify).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let back = self.back(mode);
        let mut seen = Vec::new();
        let mut wrong = Vec::new();
        match &self.plan.database {
            Database::Rds { replica, primary } => {
                let (ports, id) = self.rds_target(back, replica, primary);
                match ports.instance(&id).await? {
                    Some(db) if db.writable() => seen.push(format!("{id} writable")),
                    Some(db) => {
                        wrong.push(format!("{id} is {} (source {:?})", db.status, db.source))
                    }
                    None => wrong.push(format!("{id} does not exist")),
                }
            }
            Database::AuroraGlobal {
                global_cluster,
                target_cluster_arn,
                primary_cluster_arn,
            } => {
                let writer = self
                    .ports
                    .secondary_db
                    .global_cluster(global_cluster)
                    .await?
                    .and_then(|g| g.writer);
                let expected = if back {
                    primary_cluster_arn.clone()
                } else {
                    Some(target_cluster_arn.clone())
                };
                if writer.is_some() && writer == expected {
                    seen.push(format!(
                        "{global_cluster} writer {}",
                        writer.unwrap_or_default()
                    ));
                } else {
                    wrong.push(format!(
                        "{global_cluster} writer is {writer:?}, expected {expected:?}"
                    ));
                }
            }
        }
        if !back {
            for (id, target) in self.plan.plan.node_groups() {
                match self.ports.nodes.describe(&id).await? {
                    Some(g)
                        if g.status == "ACTIVE"
                            && g.scaling.min >= target.min
                            && g.scaling.desired >= target.desired =>
                    {
                        seen.push(format!("{} ACTIVE {}", id.name, g.scaling))
                    }
                    Some(g) => wrong.push(format!("{id} is {} at {}", g.status, g.scaling)),
                    None => wrong.push(format!("{id} does not exist")),
                }
            }
        }
        let traffic = &self.plan.plan.traffic;
        if let Some(checks) = &traffic.health_checks {
            let gate = if back {
                &checks.primary
            } else {
                &checks.secondary
            };
            match self.ports.dns.health_check_inverted(gate).await? {
                Some(false) => seen.push(format!("gate {gate} open")),
                other => wrong.push(format!("gate {gate}: inverted = {other:?}")),
            }
        }
        if let Some(zone) = &traffic.zone_id {
            for plan in &traffic.records {
                let want = plan.record(!back);
                match self.ports.dns.record(zone, &want.name, &want.kind).await? {
                    Some(r) if r.value == want.value => {
                        seen.push(format!("{} → {}", want.name, r.value))
                    }
                    other => wrong.push(format!(
                        "{} is {:?}, expected {}",
                        want.name,
                        other.map(|r| r.value),
                        want.value
                    )),
                }
            }
        }
        if let Some(url) = self
            .plan
            .plan
            .secondary_health_url
            .as_deref()
            .filter(|_| !back)
        {
            match self.ports.probe.get(url, Duration::from_secs(3)).await {
                Ok(status) => seen.push(format!("{url} answered {status}")),
                Err(e) => wrong.push(format!("{url}: {e}")),
            }
        }
        if wrong.is_empty() {
            let detail = format!("read back: {}", seen.join("; "));
            self.end(shared, StepName::Verify, StepState::Done, detail.clone())
                .await?;
            self.notify(&exec_id, "healthy", detail, "info").await?;
            Ok(Progress::Done)
        } else {
            self.fail(
                shared,
                StepName::Verify,
                format!("not as planned: {}", wrong.join("; ")),
            )
            .await
        }
    }

    /// Failback's re-protection: a replica of the current writer in the primary region.
    async fn reprotect(&self, shared: &Mutex<Execution>, deadline: Instant) -> Result<Progress> {
        if self.begin(shared, StepName::Reprotect).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let (replica, primary) = match &self.plan.database {
            Database::Rds { replica, primary: Some(primary) } => (replica.clone(), primary.clone()),
            Database::Rds { primary: None, .. } => {
                return self.fail(shared, StepName::Reprotect, "failback needs database.primary: the instance to re-create in the primary region".into()).await
            }
            Database::AuroraGlobal { .. } => {
                self.end(shared, StepName::Reprotect, StepState::Skipped, "Aurora global database: the old primary cluster rejoins as a secondary by itself once its region is back".into()).await?;
                return Ok(Progress::Done);
            }
        };
        let Some(writer) = self.ports.secondary_db.instance(&replica).await? else {
            return self
                .fail(
                    shared,
                    StepName::Reprotect,
                    format!(
                        "{replica} does not exist in {}",
                        self.plan.plan.secondary_region
                    ),
                )
                .await;
        };
        if !writer.writable() {
            return self.fail(shared, StepName::Reprotect, format!("{replica} is not the writer (status {}, source {:?}): nothing to fail back from", writer.status, writer.source)).await;
        }
        loop {
            match self.ports.primary_db.instance(&primary).await? {
                Some(db) if db.source.as_deref().is_some_and(|s| s == writer.arn || s == replica) => {
                    if db.status == "available" {
                        let detail = format!("{primary} replicates from {replica}");
                        self.end(shared, StepName::Reprotect, StepState::Done, detail).await?;
                        return Ok(Progress::Done);
                    }
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("{primary} is {}", db.status)));
                    }
                }
                Some(db) => {
                    return self.fail(shared, StepName::Reprotect, format!(
                        "{primary} still exists in {} as an independent database (status {}): delete or rename it first — re-protecting over it would leave two writers",
                        self.plan.plan.primary_region, db.status
                    )).await
                }
                None => {
                    let tags = BTreeMap::from([("breakwater:reprotected-from".to_string(), replica.clone())]);
                    let changed = self.ports.primary_db.create_replica(&primary, &writer.arn, tags).await?;
                    self.acted(shared, "CreateDBInstanceReadReplica", &format!("{primary} of {}", writer.arn), &changed).await?;
                }
            }
        }
    }

    /// A drill's clean-up: node groups, health checks and records back to what they were, the
    /// promoted drill copy deleted when it is tagged as one — each read back.
    async fn cleanup(&self, shared: &Mutex<Execution>, deadline: Instant) -> Result<Progress> {
        if self.begin(shared, StepName::Cleanup).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let (before, exec_id) = {
            let e = shared.lock().await;
            (e.before.clone(), e.id.clone())
        };
        let mut done = Vec::new();
        for (id, _) in self.plan.plan.node_groups() {
            if let Some(scaling) = before.node_groups.get(&id.name) {
                let token = format!("{}-restore", token(&exec_id, &id.name));
                match self
                    .scale(shared, &id, scaling.min, scaling.desired, &token, deadline)
                    .await?
                {
                    Progress::Done => done.push(format!("{} back to {scaling}", id.name)),
                    other => return self.settle(shared, StepName::Cleanup, other).await,
                }
            }
        }
        for (check, inverted) in &before.health_checks {
            if self.ports.dns.health_check_inverted(check).await? != Some(*inverted) {
                let changed = self
                    .ports
                    .dns
                    .set_health_check_inverted(check, *inverted)
                    .await?;
                self.acted(
                    shared,
                    "UpdateHealthCheck",
                    &format!("{check} Inverted={inverted} (restore)"),
                    &changed,
                )
                .await?;
            }
            match self.ports.dns.health_check_inverted(check).await? {
                Some(v) if v == *inverted => done.push(format!("{check} Inverted={inverted}")),
                other => {
                    return self
                        .fail(
                            shared,
                            StepName::Cleanup,
                            format!("{check} reads back {other:?}"),
                        )
                        .await
                }
            }
        }
        let restore: Vec<DnsRecord> = before.records.values().flatten().cloned().collect();
        if !restore.is_empty() {
            let zone = self.plan.plan.traffic.zone_id.clone().unwrap_or_default();
            {
                shared.lock().await.change_id = None;
            }
            match self
                .write_records(shared, &zone, &restore, false, deadline)
                .await?
            {
                Progress::Done => done.push(format!("{} record(s) restored", restore.len())),
                other => return self.settle(shared, StepName::Cleanup, other).await,
            }
        }
        if let Database::Rds { replica, .. } = &self.plan.database {
            match self.ports.secondary_db.instance(replica).await? {
                Some(db) if db.tags.get("breakwater:drill").map(String::as_str) == Some("true") => {
                    if db.status != "deleting" {
                        let changed = self.ports.secondary_db.delete_instance(replica).await?;
                        self.acted(shared, "DeleteDBInstance", replica, &changed)
                            .await?;
                    }
                    match self.ports.secondary_db.instance(replica).await? {
                        None => done.push(format!("drill copy {replica} deleted")),
                        Some(db) if db.status == "deleting" => {
                            done.push(format!("drill copy {replica} deleting"))
                        }
                        Some(db) => {
                            return self
                                .fail(
                                    shared,
                                    StepName::Cleanup,
                                    format!("{replica} is still {}", db.status),
                                )
                                .await
                        }
                    }
                }
                Some(_) => {
                    self.note(shared, format!("{replica} was promoted by the drill and is not tagged breakwater:drill=true, so it was left in place: re-create the replica")).await?;
                }
                None => done.push(format!("drill copy {replica} already gone")),
            }
        }
        self.end(
            shared,
            StepName::Cleanup,
            StepState::Done,
            format!("restored and read back: {}", done.join("; ")),
        )
        .await?;
        Ok(Progress::Done)
    }

    async fn report(&self, shared: &Mutex<Execution>) -> Result<Progress> {
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
    async fn finish(&self, exec: &mut Execution, summary: &str, severity: &str) -> Result<()> {
        execution_metrics(exec, self.plan).emit(exec.finished_ms.unwrap_or_default());
        let report = build_report(exec, self.plan);
        let location = report.write(&self.toolkit.store).await?;
        exec.report_key = Some(location.json_key.clone());
        self.save(exec).await?;
        let plan_key = crate::plan_key(&exec.plan);
        let id = exec.id.clone();
        let finished = exec.finished_ms.unwrap_or_default();
        self.toolkit
            .store
            .update::<crate::PlanState, _>(&plan_key, |state| {
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
                "{summary} Report: s3://{}/{}",
                location.bucket, location.json_key
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
    for step in exec.mode.steps() {
        let Some(s) = exec.steps.get(step) else {
            continue;
        };
        if let (Some(start), Some(end)) = (s.started_ms, s.finished_ms) {
            report.phases.push(Phase {
                name: format!(
                    "{} ({})",
                    step.as_str(),
                    serde_json::to_value(s.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
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

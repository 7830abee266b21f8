//! The execution record: what an execution does (mode, steps), what it did (actions with their
//! request ids, the state before it acted) and where it is, stored as one JSON document.

use std::collections::BTreeMap;

use breakwater::ports::{DnsRecord, Scaling};
use breakwater::state::key_segment;
use serde::{Deserialize, Serialize};

use crate::plan::LoadedPlan;
use crate::signals::Quorum;

use super::token;

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
    /// Routing control ARN → whether it was `On` before.
    #[serde(default)]
    pub routing_controls: BTreeMap<String, bool>,
    /// Metric-switch alarm name → its state before (`OK`, `ALARM`, `INSUFFICIENT_DATA`, or
    /// `missing`).
    #[serde(default)]
    pub metric_switches: BTreeMap<String, String>,
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
    /// The metric it was read from (`AWS/RDS ReplicaLag DBInstanceIdentifier=…`), and why that
    /// one (Aurora MySQL versions that do not publish `AuroraGlobalDBRPOLag`).
    #[serde(default)]
    pub lag_metric: Option<String>,
    /// The sample the guard used: the metric's value as published (its unit), `None` when there
    /// was none.
    #[serde(default)]
    pub lag_sample_value: Option<f64>,
    /// That sample's minute (its start, ms): the last whole minute at or before
    /// `lag_reference_ms`.
    #[serde(default)]
    pub lag_sample_ms: Option<u64>,
    /// The time the sample had to precede (ms): an unplanned move reads the lag as it was before
    /// the quorum began (`detected_ms`), a manual one as of its command; `None`: the latest.
    #[serde(default)]
    pub lag_reference_ms: Option<u64>,
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
            lag_metric: None,
            lag_sample_value: None,
            lag_sample_ms: None,
            lag_reference_ms: None,
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

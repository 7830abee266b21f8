//! The engine: one execution record per failover, reconciled step by step. Every step observes
//! before it acts and checkpoints around the act, so an invocation that dies anywhere is finished
//! by the next one (a tick, an RDS/EKS event, a repeat of the trigger) with each change made once.
//!
//! ```text
//!               ┌─► fence (best effort) ─► database ─┐
//! [RPO guard] ──┤                                    ├─► traffic ─► verify ─► [drill: clean-up] ─► report
//!               └─► node groups ─────────────────────┘
//! ```
//!
//! The RPO guard (an unplanned failover) refuses before anything moves; capacity needs no fence
//! and is the longest wait, so it starts at once. Notifications are sent beside the steps.

mod capacity;
mod checkpoint;
mod database;
mod metric_switch;
mod nodes;
mod outcome;
mod reconcile;
mod record;
mod restore;
mod traffic;
mod verify;

use std::time::Duration;

use breakwater::probe::HttpProbe;
use breakwater::Toolkit;

use crate::plan::LoadedPlan;

pub use checkpoint::Notices;
use checkpoint::{requested, token};

pub use database::{publishes_rpo_lag, replica_lag, LagAt, LagReading};
pub use outcome::{build_report, execution_metrics, figures, Figures};
pub use record::{Act, Before, Execution, Mode, Step, StepName, StepState};

/// The AWS a failover touches: RDS in both regions, EKS and CloudWatch in the region being
/// activated, Route 53 ARC's cluster (traffic through the data plane), CloudWatch-metric
/// switches in the secondary region (the data plane without ARC) and, as the last resort,
/// Route 53's API.
#[derive(Debug)]
pub struct Ports<R, N, D, M, C, W, K, P = HttpProbe> {
    /// RDS in the secondary region.
    pub secondary_db: R,
    /// RDS in the primary region (failback re-protection).
    pub primary_db: R,
    /// EKS node groups in the secondary region.
    pub nodes: N,
    /// Route 53's API (records: the last resort; its control plane is in us-east-1).
    pub dns: D,
    /// Route 53 ARC routing controls, through the cluster's regional endpoints.
    pub switches: C,
    /// CloudWatch in the secondary region: the metric switches (`PutMetricData`) and their
    /// alarms (`DescribeAlarms`), which the `CLOUDWATCH_METRIC` health checks watch.
    pub metric_switches: W,
    /// CloudWatch in the secondary region (replica lag).
    pub metrics: M,
    /// CloudWatch in the primary region (lag of the re-protected replica on failback).
    pub primary_metrics: M,
    /// The standby EKS cluster's API server: whether the nodes raised are `Ready` and the
    /// critical Deployments' pods ready.
    pub capacity: K,
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
pub struct Engine<'a, R, N, D, M, C, W, K, P = HttpProbe> {
    /// Clients, store, notifier.
    pub toolkit: &'a Toolkit,
    /// The AWS ports.
    pub ports: &'a Ports<R, N, D, M, C, W, K, P>,
    /// The plan.
    pub plan: &'a LoadedPlan,
    /// Waiting.
    pub pace: Pace,
    /// The invocation (lease owner, idempotency owner).
    pub owner: &'a str,
    /// Where the steps' notifications wait for the sender `reconcile` runs beside them.
    pub notices: Notices,
}

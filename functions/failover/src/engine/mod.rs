//! The engine: one execution record per failover, reconciled step by step. Every step observes
//! before it acts and checkpoints around the act, so an invocation that dies anywhere is finished
//! by the next one (a tick, an RDS/EKS event, a repeat of the trigger) with each change made once.
//!
//! ```text
//! fence (best effort) ─┬─► database ──┬─► traffic ─► verify ─► [drill: clean-up] ─► report
//!                      └─► node groups ┘
//! ```

mod checkpoint;
mod database;
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

use checkpoint::{requested, token};

pub use database::{publishes_rpo_lag, replica_lag, LagAt, LagReading};
pub use outcome::{build_report, execution_metrics, figures, Figures};
pub use record::{Act, Before, Execution, Mode, Step, StepName, StepState};

/// The AWS a failover touches: RDS in both regions, EKS and CloudWatch in the region being
/// activated, Route 53 ARC's cluster (traffic through the data plane) and, as the last resort,
/// Route 53's API.
#[derive(Debug)]
pub struct Ports<R, N, D, M, C, P = HttpProbe> {
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
pub struct Engine<'a, R, N, D, M, C, P = HttpProbe> {
    /// Clients, store, notifier.
    pub toolkit: &'a Toolkit,
    /// The AWS ports.
    pub ports: &'a Ports<R, N, D, M, C, P>,
    /// The plan.
    pub plan: &'a LoadedPlan,
    /// Waiting.
    pub pace: Pace,
    /// The invocation (lease owner, idempotency owner).
    pub owner: &'a str,
}

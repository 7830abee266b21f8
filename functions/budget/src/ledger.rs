//! The enforcement record of a budget and the ledger of every change it made, kept in the state
//! store so that each change can be undone exactly, and a human change made afterwards is
//! reported instead of overwritten.

use breakwater::ports::{DatabaseKind, NodeGroupId, Scaling};
use breakwater::report::picture::Reading;
use breakwater::state::key_segment;
use serde::{Deserialize, Serialize};

/// Where a budget stands in its current period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnforcementState {
    /// The budget.
    pub budget: String,
    /// The period (`2026-11`, `2026-11-22`, `2026-Q4`, `2026`).
    pub period: String,
    /// The level in force.
    pub level: u8,
    /// Every level change, oldest first.
    pub changes: Vec<LevelChange>,
    /// The ledger keys of the changes made in this period, in the order they were made.
    pub ledger: Vec<String>,
    /// The spend confirmed at each evaluation of this period, oldest first (the last
    /// [`READINGS_KEPT`]), for the report's picture.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<Reading>,
    /// The limit at the last reading, with its unit (`2,460.00 USD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// How many readings a period keeps (an hourly schedule fills a month with 744).
pub const READINGS_KEPT: usize = 800;

impl EnforcementState {
    /// A fresh state at level 0.
    pub fn new(budget: &str, period: &str) -> Self {
        EnforcementState {
            budget: budget.into(),
            period: period.into(),
            level: 0,
            changes: Vec::new(),
            ledger: Vec::new(),
            readings: Vec::new(),
            limit: None,
        }
    }

    /// The state's key in the store.
    pub fn key(budget: &str) -> String {
        format!("budget/{}/state.json", key_segment(budget))
    }
}

/// One level change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelChange {
    /// From this level.
    pub from: u8,
    /// To this level.
    pub to: u8,
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Why, in a sentence.
    pub reason: String,
    /// The period whose ladder it moved (a rollover's releases belong to the period that ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
}

/// A resource enforcement changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// An EKS managed node group.
    NodeGroup {
        /// Cluster and name.
        id: NodeGroupId,
        /// Its ARN.
        arn: String,
    },
    /// An RDS instance or Aurora cluster.
    Database {
        /// Instance or cluster.
        kind: DatabaseKind,
        /// Its identifier.
        id: String,
    },
    /// An IAM role given the L4 guard-rail policy.
    Role {
        /// The role's name.
        name: String,
    },
}

impl Resource {
    /// A short name for people.
    pub fn label(&self) -> String {
        match self {
            Resource::NodeGroup { id, .. } => format!("node group {id}"),
            Resource::Database {
                kind: DatabaseKind::Instance,
                id,
            } => format!("DB instance {id}"),
            Resource::Database {
                kind: DatabaseKind::Cluster,
                id,
            } => format!("DB cluster {id}"),
            Resource::Role { name } => format!("role {name}"),
        }
    }

    /// The ledger key of this resource for a budget and period.
    pub fn ledger_key(&self, budget: &str, period: &str) -> String {
        let name = match self {
            Resource::NodeGroup { id, .. } => format!("nodegroup-{}-{}", id.cluster, id.name),
            Resource::Database {
                kind: DatabaseKind::Instance,
                id,
            } => format!("db-instance-{id}"),
            Resource::Database {
                kind: DatabaseKind::Cluster,
                id,
            } => format!("db-cluster-{id}"),
            Resource::Role { name } => format!("role-{name}"),
        };
        format!(
            "ledger/budget/{}/{}/{}.json",
            key_segment(period),
            key_segment(budget),
            key_segment(&name)
        )
    }
}

/// What was observed of a resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Observed {
    /// A node group's sizes.
    Scaling(Scaling),
    /// A database's status.
    Status {
        /// `available`, `stopped`, …
        status: String,
    },
    /// Whether a role holds the guard-rail policy.
    Guardrail {
        /// The policy is on the role.
        attached: bool,
    },
    /// It no longer exists.
    Missing,
}

impl std::fmt::Display for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Observed::Scaling(s) => write!(f, "{s}"),
            Observed::Status { status } => f.write_str(status),
            Observed::Guardrail { attached: true } => f.write_str("guard-rail policy attached"),
            Observed::Guardrail { attached: false } => f.write_str("no guard-rail policy"),
            Observed::Missing => f.write_str("gone"),
        }
    }
}

/// How a ledger entry was undone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Restoration {
    /// Put back to the recorded state.
    Restored {
        /// When (ms since the epoch).
        at_ms: u64,
    },
    /// Put back in part: the sizes enforcement set went back, the ones changed since were kept.
    Partly {
        /// When (ms since the epoch).
        at_ms: u64,
        /// The sizes changed since enforcement, in words.
        kept: Vec<String>,
    },
    /// AWS refused the undo; reported for a person to finish.
    Failed {
        /// When (ms since the epoch).
        at_ms: u64,
        /// Why, as AWS said it.
        reason: String,
    },
    /// Someone changed it after enforcement; left as found and reported.
    LeftAlone {
        /// When (ms since the epoch).
        at_ms: u64,
        /// What was found.
        found: Observed,
    },
}

/// One change enforcement made, with the states before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// What was changed.
    pub resource: Resource,
    /// By which level.
    pub level: u8,
    /// As found before the change.
    pub before: Observed,
    /// As left by the change.
    pub after: Observed,
    /// When (ms since the epoch).
    pub applied_at_ms: u64,
    /// The AWS update id, when the API returns one.
    pub update_id: Option<String>,
    /// How many times a database that AWS restarted after 7 days was stopped again.
    pub restops: u32,
    /// How it was undone, once it was.
    pub restored: Option<Restoration>,
    /// Why AWS refused the change, when it did: the resource was never changed, and the others
    /// of its level went on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

//! The ports: tiny traits named for what the functions need from AWS (node groups, databases,
//! budgets), with plain domain types. Adapters in [`crate::aws`] implement them over the SDK;
//! tests implement them in memory. Business rules never import an SDK type.

use std::collections::BTreeMap;
use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// An EKS managed node group's identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeGroupId {
    /// The cluster.
    pub cluster: String,
    /// The node group.
    pub name: String,
}

impl std::fmt::Display for NodeGroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.name)
    }
}

/// A node group's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// minSize.
    pub min: i32,
    /// maxSize.
    pub max: i32,
    /// desiredSize.
    pub desired: i32,
}

impl std::fmt::Display for Scaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "min {} / desired {} / max {}",
            self.min, self.desired, self.max
        )
    }
}

/// A node group as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeGroup {
    /// Its identity.
    pub id: NodeGroupId,
    /// Its ARN.
    pub arn: String,
    /// Its sizes.
    pub scaling: Scaling,
    /// `ACTIVE`, `UPDATING`, `DEGRADED`, …
    pub status: String,
    /// Instance types.
    pub instance_types: Vec<String>,
    /// `ON_DEMAND` or `SPOT`.
    pub capacity_type: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// EKS managed node groups.
pub trait NodeGroups: Send + Sync {
    /// Every node group of `cluster`.
    fn list(&self, cluster: &str) -> impl Future<Output = Result<Vec<NodeGroup>>> + Send;
    /// One node group, `None` when it does not exist.
    fn describe(&self, id: &NodeGroupId) -> impl Future<Output = Result<Option<NodeGroup>>> + Send;
    /// Sets min/desired/max with an idempotency token; returns the update id.
    fn update_scaling(
        &self,
        id: &NodeGroupId,
        scaling: Scaling,
        token: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// Adds or replaces tags on the node group.
    fn tag(
        &self,
        arn: &str,
        tags: BTreeMap<String, String>,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// An RDS DB instance or an Aurora DB cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseKind {
    /// A DB instance (not a member of a cluster).
    Instance,
    /// An Aurora DB cluster.
    Cluster,
}

/// A database as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Database {
    /// Instance or cluster.
    pub kind: DatabaseKind,
    /// Its identifier.
    pub id: String,
    /// Its ARN.
    pub arn: String,
    /// `available`, `stopped`, `stopping`, `starting`, …
    pub status: String,
    /// The instance class (instances only).
    pub class: Option<String>,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// RDS instances and Aurora clusters of one region.
pub trait Databases: Send + Sync {
    /// Every standalone instance and every cluster.
    fn list(&self) -> impl Future<Output = Result<Vec<Database>>> + Send;
    /// One database, `None` when it does not exist.
    fn describe(
        &self,
        kind: DatabaseKind,
        id: &str,
    ) -> impl Future<Output = Result<Option<Database>>> + Send;
    /// Stops it.
    fn stop(&self, kind: DatabaseKind, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Starts it.
    fn start(&self, kind: DatabaseKind, id: &str) -> impl Future<Output = Result<()>> + Send;
}

/// A budget's confirmed figures, as the Budgets API reports them (decimal strings, never floats).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetFigures {
    /// The budget's name.
    pub name: String,
    /// The limit.
    pub limit: String,
    /// Actual spend this period.
    pub actual: String,
    /// Forecast spend this period (absent early in a period).
    pub forecast: Option<String>,
    /// `DAILY`, `MONTHLY`, `QUARTERLY`, `ANNUALLY`.
    pub time_unit: String,
    /// The currency unit (`USD`).
    pub unit: String,
}

/// AWS Budgets.
pub trait Budgets: Send + Sync {
    /// The budget `name` of `account`, `None` when it does not exist.
    fn describe(
        &self,
        account: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<BudgetFigures>>> + Send;
}

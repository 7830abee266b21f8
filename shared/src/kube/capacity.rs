//! The capacity port: what a failover reads of the standby cluster before it calls the capacity
//! it raised ready — how many nodes of each managed node group are `Ready`, and how many pods
//! of each critical Deployment are — with its adapter over the cluster's API server.
//!
//! EKS calls a node group `ACTIVE` at its new size as soon as the Auto Scaling group has it;
//! the instances then boot and their kubelets register, and only a `Ready` node takes pods. The
//! nodes of a managed node group carry the `eks.amazonaws.com/nodegroup` label ("Amazon EKS
//! adds Kubernetes labels to managed node group instances",
//! <https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html>); a Deployment's
//! `status.readyReplicas` counts its pods whose `Ready` condition is true
//! (<https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/deployment-v1/#DeploymentStatus>).

use std::future::Future;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use serde::{Deserialize, Serialize};

use super::workloads::ObjectAt;
use super::KubeClients;
use crate::aws::Aws;
use crate::clock::Clock;
use crate::error::Result;

/// The label EKS puts on every node of a managed node group.
pub const NODE_GROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// A managed node group's nodes as the cluster sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GroupNodes {
    /// Nodes registered (not being deleted).
    pub registered: u32,
    /// Of those, `Ready` and schedulable (not cordoned).
    pub ready: u32,
}

/// A Deployment's pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentPods {
    /// `spec.replicas` (1 when unset, the API's default).
    pub desired: i32,
    /// `status.readyReplicas` (0 when unset).
    pub ready: i32,
}

/// The standby cluster's capacity, read through its API server.
pub trait Capacity: Send + Sync {
    /// The nodes of the managed node group `node_group` of `cluster`.
    fn node_group_nodes(
        &self,
        cluster: &str,
        node_group: &str,
    ) -> impl Future<Output = Result<GroupNodes>> + Send;
    /// A Deployment's desired and ready pods, `None` when it does not exist.
    fn deployment_pods(
        &self,
        at: ObjectAt<'_>,
    ) -> impl Future<Output = Result<Option<DeploymentPods>>> + Send;
}

/// Whether a node's `Ready` condition is `True` and it takes pods.
pub fn node_ready(node: &Node) -> bool {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    ready && !cordoned
}

/// [`Capacity`] over the clusters' API servers: a kube-rs client per cluster from
/// [`KubeClients`] (authenticated in `aws`'s region, the cluster's), its token made at the
/// clock's time.
#[derive(Debug, Clone)]
pub struct KubeCapacity {
    clients: Arc<KubeClients>,
    aws: Arc<Aws>,
    clock: Arc<dyn Clock>,
}

impl KubeCapacity {
    /// The adapter over `clients`, reaching EKS with `aws` (in the standby cluster's region).
    pub fn new(clients: Arc<KubeClients>, aws: Arc<Aws>, clock: Arc<dyn Clock>) -> Self {
        KubeCapacity {
            clients,
            aws,
            clock,
        }
    }

    async fn client(&self, cluster: &str) -> Result<kube::Client> {
        self.clients
            .client(&self.aws, cluster, self.clock.now_ms())
            .await
    }
}

impl Capacity for KubeCapacity {
    async fn node_group_nodes(&self, cluster: &str, node_group: &str) -> Result<GroupNodes> {
        let client = self.client(cluster).await?;
        let nodes: Api<Node> = Api::all(client);
        let params = ListParams::default().labels(&format!("{NODE_GROUP_LABEL}={node_group}"));
        let list = super::read_with_retries(|| nodes.list(&params))
            .await
            .map_err(|e| super::from_kube(&format!("list the nodes of {node_group}"), &e))?;
        let live: Vec<&Node> = list
            .items
            .iter()
            .filter(|n| n.metadata.deletion_timestamp.is_none())
            .collect();
        Ok(GroupNodes {
            registered: u32::try_from(live.len()).unwrap_or(u32::MAX),
            ready: u32::try_from(live.iter().filter(|n| node_ready(n)).count()).unwrap_or(u32::MAX),
        })
    }

    async fn deployment_pods(&self, at: ObjectAt<'_>) -> Result<Option<DeploymentPods>> {
        let client = self.client(at.cluster).await?;
        let deployments: Api<Deployment> = Api::namespaced(client, at.namespace);
        let found = super::read_with_retries(|| deployments.get_opt(at.name))
            .await
            .map_err(|e| super::from_kube(&format!("get deployment {at}"), &e))?;
        Ok(found.map(|d| DeploymentPods {
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
        }))
    }
}

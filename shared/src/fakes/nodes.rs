//! An in-memory cluster's nodes ([`Nodes`]), behaving as the adapter does against the Kubernetes
//! emulator: found by `providerID` only, cordoned with Breakwater's `NoSchedule` taint beside the
//! node's own, uncordoned only when that taint is there, lost write races (409) retried up to
//! [`NODE_WRITE_ATTEMPTS`]; every call and Event recorded. Also [`FakeCluster`] (nodes and pods
//! of one cluster) and [`FakeClusters`] (the [`Clusters`] port).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::pods::{Failures, FakePods};
use crate::aws::Aws;
use crate::error::{Error, Result};
use crate::kube::nodes::{provider_id_names, Clusters, NodeEvent, NodeWrite, Nodes, DRAIN_TAINT};
use crate::kube::ops::NODE_WRITE_ATTEMPTS;
use crate::kube::pods::{Deletion, Eviction, PodInfo, Pods};

/// A taint: key, value, effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value.
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
}

/// A node as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FakeNode {
    /// `spec.providerID` (`aws:///<az>/<instance>`).
    pub provider_id: String,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// Whether it carries the load-balancer exclusion label.
    pub excluded_from_lb: bool,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, FakeNode>,
    events: Vec<NodeEvent>,
    conflicts: usize,
    failures: Failures,
    calls: Vec<String>,
}

impl State {
    fn failure(&mut self, op: &str) -> Option<Error> {
        self.failures.take(op)
    }

    /// Applies `edit` as the adapter's read-edit-write does: each pending conflict costs one
    /// write; past [`NODE_WRITE_ATTEMPTS`] the write gives up with a conflict.
    fn write(
        &mut self,
        name: &str,
        what: &str,
        edit: impl Fn(&mut FakeNode) -> bool,
    ) -> Result<NodeWrite> {
        for conflicts in 0..NODE_WRITE_ATTEMPTS {
            let Some(node) = self.nodes.get(name) else {
                return Ok(NodeWrite::Gone);
            };
            let mut edited = node.clone();
            if !edit(&mut edited) {
                return Ok(NodeWrite::Unchanged);
            }
            if self.conflicts > 0 {
                self.conflicts -= 1;
                continue;
            }
            self.nodes.insert(name.to_string(), edited);
            return Ok(NodeWrite::Changed { conflicts });
        }
        Err(Error::Conflict(format!(
            "{what} {name}: the node changed under {NODE_WRITE_ATTEMPTS} writes in a row"
        )))
    }
}

/// The fake: cheap to clone (clones share the cluster).
#[derive(Debug, Clone, Default)]
pub struct FakeNodes(Arc<Mutex<State>>);

impl FakeNodes {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a schedulable node of `instance` (providerID `aws:///<az>/<instance>`).
    pub fn add(&self, name: &str, az: &str, instance: &str) -> &Self {
        self.put(
            name,
            FakeNode {
                provider_id: format!("aws:///{az}/{instance}"),
                ..FakeNode::default()
            },
        )
    }

    /// Adds or replaces a node.
    pub fn put(&self, name: &str, node: FakeNode) -> &Self {
        self.state().nodes.insert(name.to_string(), node);
        self
    }

    /// Removes a node.
    pub fn remove(&self, name: &str) -> &Self {
        self.state().nodes.remove(name);
        self
    }

    /// The next `times` node writes lose a race (409) to another writer.
    pub fn conflicts(&self, times: usize) -> &Self {
        self.state().conflicts = times;
        self
    }

    /// The next call of `op` (`find`, `cordon`, `uncordon`, `event`) fails so.
    pub fn fail_next(&self, op: &str, error: Error) -> &Self {
        self.state().failures.push(op, error);
        self
    }

    /// A node as it stands.
    pub fn node(&self, name: &str) -> Option<FakeNode> {
        self.state().nodes.get(name).cloned()
    }

    /// The Events recorded.
    pub fn events(&self) -> Vec<NodeEvent> {
        self.state().events.clone()
    }

    /// Every call made, in order.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }
}

fn ours(t: &Taint) -> bool {
    t.key == DRAIN_TAINT && t.effect == "NoSchedule"
}

impl Nodes for FakeNodes {
    async fn find_by_provider_id(
        &self,
        instance_id: &str,
        _dns_hint: Option<&str>,
    ) -> Result<Option<String>> {
        let mut s = self.state();
        s.calls.push(format!("find {instance_id}"));
        if let Some(e) = s.failure("find") {
            return Err(e);
        }
        Ok(s.nodes
            .iter()
            .find(|(_, n)| provider_id_names(&n.provider_id, instance_id))
            .map(|(name, _)| name.clone()))
    }

    async fn cordon(&self, node: &str, reason: &str) -> Result<NodeWrite> {
        let mut s = self.state();
        s.calls.push(format!("cordon {node} {reason}"));
        if let Some(e) = s.failure("cordon") {
            return Err(e);
        }
        let taint = Taint {
            key: DRAIN_TAINT.to_string(),
            value: Some(reason.to_string()),
            effect: "NoSchedule".to_string(),
        };
        s.write(node, "cordon", |n| {
            let before = n.clone();
            match n.taints.iter_mut().find(|t| ours(t)) {
                Some(found) => *found = taint.clone(),
                None => n.taints.push(taint.clone()),
            }
            n.unschedulable = true;
            n.excluded_from_lb = true;
            *n != before
        })
    }

    async fn uncordon(&self, node: &str) -> Result<NodeWrite> {
        let mut s = self.state();
        s.calls.push(format!("uncordon {node}"));
        if let Some(e) = s.failure("uncordon") {
            return Err(e);
        }
        s.write(node, "uncordon", |n| {
            if !n.taints.iter().any(ours) {
                return false;
            }
            n.taints.retain(|t| !ours(t));
            n.unschedulable = false;
            n.excluded_from_lb = false;
            true
        })
    }

    async fn record_event(&self, event: &NodeEvent) -> Result<()> {
        let mut s = self.state();
        s.calls
            .push(format!("event {} {}", event.node, event.reason));
        if let Some(e) = s.failure("event") {
            return Err(e);
        }
        s.events.push(event.clone());
        Ok(())
    }
}

/// One in-memory cluster: its nodes and its pods.
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    /// Its nodes.
    pub nodes: FakeNodes,
    /// Its pods.
    pub pods: FakePods,
}

impl Nodes for FakeCluster {
    async fn find_by_provider_id(
        &self,
        instance_id: &str,
        dns_hint: Option<&str>,
    ) -> Result<Option<String>> {
        self.nodes.find_by_provider_id(instance_id, dns_hint).await
    }
    async fn cordon(&self, node: &str, reason: &str) -> Result<NodeWrite> {
        self.nodes.cordon(node, reason).await
    }
    async fn uncordon(&self, node: &str) -> Result<NodeWrite> {
        self.nodes.uncordon(node).await
    }
    async fn record_event(&self, event: &NodeEvent) -> Result<()> {
        self.nodes.record_event(event).await
    }
}

impl Pods for FakeCluster {
    async fn on_node(&self, node: &str) -> Result<Vec<PodInfo>> {
        self.pods.on_node(node).await
    }
    async fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        self.pods.namespace_annotations(namespace).await
    }
    async fn evict(&self, namespace: &str, name: &str, uid: &str) -> Result<Eviction> {
        self.pods.evict(namespace, name, uid).await
    }
    async fn delete(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        grace_s: i64,
    ) -> Result<Deletion> {
        self.pods.delete(namespace, name, uid, grace_s).await
    }
    async fn gone(&self, namespace: &str, name: &str, uid: &str, wait: Duration) -> Result<bool> {
        self.pods.gone(namespace, name, uid, wait).await
    }
    async fn budget_allows(
        &self,
        namespace: &str,
        name: &str,
        wait: Duration,
    ) -> Result<crate::kube::pods::Waited> {
        self.pods.budget_allows(namespace, name, wait).await
    }
}

/// The clusters port in memory: clusters by name; an unknown name is not found.
#[derive(Debug, Clone, Default)]
pub struct FakeClusters(Arc<Mutex<BTreeMap<String, FakeCluster>>>);

impl FakeClusters {
    /// Adds (or replaces) the cluster `name`; returns it.
    pub fn add(&self, name: &str) -> FakeCluster {
        let cluster = FakeCluster::default();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), cluster.clone());
        cluster
    }
}

impl Clusters for FakeClusters {
    type Cluster = FakeCluster;

    async fn cluster(&self, _aws: &Aws, name: &str, _now_ms: u64) -> Result<FakeCluster> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("cluster {name}")))
    }
}

//! The nodes port: what spot needs of a cluster's nodes (find one by its `providerID`, cordon,
//! uncordon, record an Event on it), in domain types, with its adapter over a kube-rs client, and
//! the clusters port that hands out one cluster's adapters.
//!
//! The cordon and uncordon keep the read-edit-write of the node's atomic `spec.taints` under its
//! `resourceVersion` ([`super::ops::cordon`]); reads are retried on 429/5xx ([`super::read_with_retries`]).

use std::future::Future;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams, PostParams};

use super::pods::Pods;
use crate::aws::Aws;
use crate::error::{Error, Result};

pub use super::ops::{NodeWrite, DRAIN_TAINT, EXCLUDE_FROM_LB};

/// A Kubernetes Event about a node (what `kubectl describe node` shows), of type `Warning`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEvent {
    /// The node.
    pub node: String,
    /// `reason` (CamelCase, e.g. `SpotInterruption`).
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `source.component`.
    pub component: String,
    /// When (ms since the epoch): `firstTimestamp` and `lastTimestamp`.
    pub at_ms: u64,
}

/// A cluster's nodes.
pub trait Nodes: Send + Sync {
    /// The name of the node whose `spec.providerID` ends in `/<instance_id>`; `dns_hint` (the
    /// instance's private DNS name, the usual node name on EKS) is tried first, as a hint only.
    fn find_by_provider_id(
        &self,
        instance_id: &str,
        dns_hint: Option<&str>,
    ) -> impl Future<Output = Result<Option<String>>> + Send;
    /// Cordons `node`: unschedulable, Breakwater's `NoSchedule` taint added to the node's own,
    /// out of external load balancers ([`super::ops::cordon_patch`]).
    fn cordon(&self, node: &str, reason: &str) -> impl Future<Output = Result<NodeWrite>> + Send;
    /// Undoes [`Nodes::cordon`], keeping every taint that is not Breakwater's; a node without
    /// Breakwater's taint (a person's cordon) is left as it is.
    fn uncordon(&self, node: &str) -> impl Future<Output = Result<NodeWrite>> + Send;
    /// Records an Event on the node.
    fn record_event(&self, event: &NodeEvent) -> impl Future<Output = Result<()>> + Send;
}

/// The clusters a function manages: one cluster's nodes and pods by its name.
pub trait Clusters: Send + Sync {
    /// One cluster's adapters.
    type Cluster: Nodes + Pods + Clone + Send + Sync + 'static;
    /// The cluster `name`, authenticated at `now_ms`.
    fn cluster(
        &self,
        aws: &Aws,
        name: &str,
        now_ms: u64,
    ) -> impl Future<Output = Result<Self::Cluster>> + Send;
}

/// Whether `provider_id` (`aws:///<az>/<instance>`) names `instance_id`.
pub fn provider_id_names(provider_id: &str, instance_id: &str) -> bool {
    provider_id.rsplit('/').next() == Some(instance_id)
}

impl Nodes for kube::Client {
    async fn find_by_provider_id(
        &self,
        instance_id: &str,
        dns_hint: Option<&str>,
    ) -> Result<Option<String>> {
        let nodes: Api<Node> = Api::all(self.clone());
        let matches = |n: &Node| {
            n.spec
                .as_ref()
                .and_then(|s| s.provider_id.as_deref())
                .is_some_and(|p| provider_id_names(p, instance_id))
        };
        if let Some(dns) = dns_hint.filter(|d| !d.is_empty()) {
            if let Ok(Some(n)) = super::read_with_retries(|| nodes.get_opt(dns)).await {
                if matches(&n) {
                    return Ok(n.metadata.name);
                }
            }
        }
        let params = ListParams::default();
        let all = super::read_with_retries(|| nodes.list(&params))
            .await
            .map_err(|e| super::from_kube("list nodes", &e))?;
        Ok(all
            .items
            .iter()
            .find(|n| matches(n))
            .and_then(|n| n.metadata.name.clone()))
    }

    async fn cordon(&self, node: &str, reason: &str) -> Result<NodeWrite> {
        super::ops::cordon(self, node, reason).await
    }

    async fn uncordon(&self, node: &str) -> Result<NodeWrite> {
        super::ops::uncordon(self, node).await
    }

    async fn record_event(&self, event: &NodeEvent) -> Result<()> {
        let at = crate::clock::rfc3339(event.at_ms);
        let body = serde_json::json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{}.", event.node), "namespace": "default"},
            "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": event.node},
            "reason": event.reason, "message": event.message, "type": "Warning",
            "source": {"component": event.component}, "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        });
        let built: Event = serde_json::from_value(body)
            .map_err(|e| Error::Aws(format!("build the node event: {e}")))?;
        let events: Api<Event> = Api::namespaced(self.clone(), "default");
        events
            .create(&PostParams::default(), &built)
            .await
            .map(drop)
            .map_err(|e| super::from_kube(&format!("record an event on node {}", event.node), &e))
    }
}

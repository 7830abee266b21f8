//! The pods port: what a drain needs of a cluster's pods (list those on a node, read a
//! namespace's annotations, evict, delete under the UID precondition, wait until one is gone or a
//! budget allows a disruption), in domain types, with its adapter over a kube-rs client. The
//! waits watch ([`super::wait_for`]); they do not poll.
//!
//! Eviction goes through the `pods/eviction` subresource ([`super::ops::evict`]): a 429 with a
//! `DisruptionBudget` cause is a budget's refusal, one without is throttling ("API-initiated
//! Eviction", kubernetes.io/docs/concepts/scheduling-eviction/api-eviction/). A delete under the
//! pod's UID precondition is safe to repeat, so a 429, a 5xx or a cut connection is tried again.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};

use crate::error::{Error, Result};

pub use super::ops::Eviction;
pub use super::Waited;

/// A pod as a drain sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `spec.terminationGracePeriodSeconds`.
    pub grace_s: Option<i64>,
    /// `spec.priorityClassName`.
    pub priority_class: Option<String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// The kind of its controlling owner (`DaemonSet`, `ReplicaSet`, …).
    pub controller_kind: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// Whether it has a `deletionTimestamp` (terminating).
    pub terminating: bool,
}

impl From<&Pod> for PodInfo {
    fn from(pod: &Pod) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.as_ref();
        PodInfo {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
            grace_s: spec.and_then(|s| s.termination_grace_period_seconds),
            priority_class: spec.and_then(|s| s.priority_class_name.clone()),
            annotations: meta.annotations.clone().unwrap_or_default(),
            controller_kind: meta.owner_references.as_ref().and_then(|o| {
                o.iter()
                    .find(|o| o.controller == Some(true))
                    .map(|o| o.kind.clone())
            }),
            phase: pod.status.as_ref().and_then(|s| s.phase.clone()),
            terminating: meta.deletion_timestamp.is_some(),
        }
    }
}

impl PodInfo {
    /// A pod from its Kubernetes JSON (as the API server or a fixture writes it).
    pub fn from_json(pod: serde_json::Value) -> Result<PodInfo> {
        serde_json::from_value::<Pod>(pod)
            .map(|p| PodInfo::from(&p))
            .map_err(|e| Error::Aws(format!("not a pod: {e}")))
    }

    /// `namespace/name`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// What a delete came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Accepted: the pod is terminating with the grace asked for.
    Deleted,
    /// 404 (already gone) or 409 (the UID precondition failed: another pod has the name).
    Gone,
}

/// A cluster's pods.
pub trait Pods: Send + Sync {
    /// The pods on `node` (`spec.nodeName`).
    fn on_node(&self, node: &str) -> impl Future<Output = Result<Vec<PodInfo>>> + Send;
    /// A namespace's annotations, `None` when it does not exist.
    fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>>> + Send;
    /// Asks to evict the pod (UID precondition); one request, classified.
    fn evict(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
    ) -> impl Future<Output = Result<Eviction>> + Send;
    /// Deletes the pod under its UID precondition with `grace_s` of grace, over any budget;
    /// retried on 429, 5xx and cut connections.
    fn delete(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        grace_s: i64,
    ) -> impl Future<Output = Result<Deletion>> + Send;
    /// Waits, at most `wait`, until the pod `uid` is gone (a pod of the same name with another
    /// UID is a replacement: the pod is gone); whether it is. A `wait` of zero is one read.
    fn gone(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// Waits, at most `wait`, until the PodDisruptionBudget `name` would allow a disruption: its
    /// status has caught up with its spec (`observedGeneration`) and `disruptionsAllowed` is above
    /// zero, or the budget is gone; whether it already did, came to it, or the time was up.
    fn budget_allows(
        &self,
        namespace: &str,
        name: &str,
        wait: Duration,
    ) -> impl Future<Output = Result<Waited>> + Send;
}

impl Pods for kube::Client {
    async fn on_node(&self, node: &str) -> Result<Vec<PodInfo>> {
        let api: Api<Pod> = Api::all(self.clone());
        let params = ListParams::default().fields(&format!("spec.nodeName={node}"));
        super::read_with_retries(|| api.list(&params))
            .await
            .map(|l| l.items.iter().map(PodInfo::from).collect())
            .map_err(|e| super::from_kube(&format!("list pods on {node}"), &e))
    }

    async fn namespace_annotations(
        &self,
        namespace: &str,
    ) -> Result<Option<BTreeMap<String, String>>> {
        let api: Api<Namespace> = Api::all(self.clone());
        super::read_with_retries(|| api.get_opt(namespace))
            .await
            .map(|found| found.map(|n| n.metadata.annotations.unwrap_or_default()))
            .map_err(|e| super::from_kube(&format!("read namespace {namespace}"), &e))
    }

    async fn evict(&self, namespace: &str, name: &str, uid: &str) -> Result<Eviction> {
        super::ops::evict(self, namespace, name, uid, None).await
    }

    async fn delete(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        grace_s: i64,
    ) -> Result<Deletion> {
        let api: Api<Pod> = Api::namespaced(self.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace_s.max(0)).unwrap_or(u32::MAX)),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        // A delete under the pod's UID precondition is safe to send again: one that took effect
        // answers 404 (gone) or 409 (another pod now has the name). So a 429, a 5xx or a cut
        // connection is tried again, as a read is — also at the deadline, where the forced
        // delete is the last thing that stands between the pod and the instance's termination
        // (the pauses add at most 0.6 s).
        let mut attempt = 1;
        loop {
            match api.delete(name, &params).await {
                Ok(_) => return Ok(Deletion::Deleted),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
                    return Ok(Deletion::Gone)
                }
                Err(e) if super::transient(&e) && attempt < super::READ_ATTEMPTS => {
                    tracing::warn!(pod = %format!("{namespace}/{name}"), error = %e, "a pod delete failed transiently; trying again");
                    tokio::time::sleep(super::read_pause(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(super::from_kube(
                        &format!("delete pod {namespace}/{name}"),
                        &e,
                    ))
                }
            }
        }
    }

    async fn gone(&self, namespace: &str, name: &str, uid: &str, wait: Duration) -> Result<bool> {
        let api: Api<Pod> = Api::namespaced(self.clone(), namespace);
        super::wait_for(&api, name, wait, |pod| {
            pod.metadata.uid.as_deref() != Some(uid)
        })
        .await
        .map(Waited::came)
    }

    async fn budget_allows(&self, namespace: &str, name: &str, wait: Duration) -> Result<Waited> {
        let api: Api<PodDisruptionBudget> = Api::namespaced(self.clone(), namespace);
        super::wait_for(&api, name, wait, |pdb| {
            let status = pdb.status.as_ref();
            let caught_up = status.and_then(|s| s.observed_generation).unwrap_or(0)
                >= pdb.metadata.generation.unwrap_or(0);
            caught_up && status.is_some_and(|s| s.disruptions_allowed > 0)
        })
        .await
    }
}

//! The Kubernetes workloads port: what a rollback reads and writes — a Deployment with the
//! ReplicaSets that make its revision history, a JSON patch of the Deployment, an Argo Rollout
//! and its abort — and its adapter over `kube::Client`.
//!
//! Objects cross the port as the JSON the API server sends (`serde_json::Value`), never as kube
//! or k8s-openapi types: the rules read a handful of fields and compare pod templates as the
//! controller does ([`super::rollout`]).

use std::future::Future;
use std::sync::Arc;

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ops::{send_json, unexpected, Answer};
use super::KubeClients;
use crate::aws::Aws;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// The kinds of workload a rollback knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment: rolled back as `kubectl rollout undo` does.
    Deployment,
    /// `argoproj.io/v1alpha1` Rollout: aborted.
    Rollout,
}

/// Where an object is: the cluster, its namespace and its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAt<'a> {
    /// The EKS cluster.
    pub cluster: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// The object's name.
    pub name: &'a str,
}

impl std::fmt::Display for ObjectAt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Deployment and the ReplicaSets its selector lists (kubectl's `GetAllReplicaSets` input: the
/// caller keeps those the Deployment controls).
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentWithSets {
    /// The Deployment as stored.
    pub deployment: Value,
    /// The ReplicaSets its `spec.selector.matchLabels` list.
    pub replica_sets: Vec<Value>,
}

/// A custom resource a rollback reads or writes by JSON patch: an Argo Rollout's spec, a GitOps
/// tool's object whose sync is suspended while a rollback holds, and the sources it follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Resource {
    /// `argoproj.io/v1alpha1` Rollout (Argo Rollouts): its spec patched by a rollback of a
    /// fully promoted update.
    ArgoRollout,
    /// `argoproj.io/v1alpha1` Application (Argo CD).
    ArgoApplication,
    /// `argoproj.io/v1alpha1` ApplicationSet (Argo CD): read to see whether it would overwrite
    /// an Application's sync policy.
    ArgoApplicationSet,
    /// `kustomize.toolkit.fluxcd.io/v1` Kustomization (Flux).
    FluxKustomization,
    /// `helm.toolkit.fluxcd.io/v2` HelmRelease (Flux).
    FluxHelmRelease,
    /// `source.toolkit.fluxcd.io/v1` GitRepository (Flux): the revision Git is at.
    FluxGitRepository,
    /// `source.toolkit.fluxcd.io/v1` OCIRepository (Flux).
    FluxOciRepository,
    /// `source.toolkit.fluxcd.io/v1` Bucket (Flux).
    FluxBucket,
}

impl Resource {
    /// `(group, version, plural, Kind)`.
    pub fn api(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Resource::ArgoRollout => ("argoproj.io", "v1alpha1", "rollouts", "Rollout"),
            Resource::ArgoApplication => ("argoproj.io", "v1alpha1", "applications", "Application"),
            Resource::ArgoApplicationSet => (
                "argoproj.io",
                "v1alpha1",
                "applicationsets",
                "ApplicationSet",
            ),
            Resource::FluxKustomization => (
                "kustomize.toolkit.fluxcd.io",
                "v1",
                "kustomizations",
                "Kustomization",
            ),
            Resource::FluxHelmRelease => (
                "helm.toolkit.fluxcd.io",
                "v2",
                "helmreleases",
                "HelmRelease",
            ),
            Resource::FluxGitRepository => (
                "source.toolkit.fluxcd.io",
                "v1",
                "gitrepositories",
                "GitRepository",
            ),
            Resource::FluxOciRepository => (
                "source.toolkit.fluxcd.io",
                "v1",
                "ocirepositories",
                "OCIRepository",
            ),
            Resource::FluxBucket => ("source.toolkit.fluxcd.io", "v1", "buckets", "Bucket"),
        }
    }

    /// The Kind.
    pub fn kind(self) -> &'static str {
        self.api().3
    }

    /// The Flux source of a `sourceRef.kind`.
    pub fn flux_source(kind: &str) -> Option<Resource> {
        match kind {
            "GitRepository" => Some(Resource::FluxGitRepository),
            "OCIRepository" => Some(Resource::FluxOciRepository),
            "Bucket" => Some(Resource::FluxBucket),
            _ => None,
        }
    }

    fn path(self, namespace: &str, name: &str) -> String {
        let (group, version, plural, _) = self.api();
        format!("/apis/{group}/{version}/namespaces/{namespace}/{plural}/{name}")
    }
}

/// What a patch came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Patched {
    /// Applied; the object as stored.
    Applied(Value),
    /// The `test` failed or the object changed: read again and decide again.
    Changed(String),
    /// The object is gone.
    Gone,
}

/// What a rollback needs of a cluster's workloads.
pub trait Workloads: Send + Sync {
    /// Whether the workload exists (one read of the object itself).
    fn exists(
        &self,
        at: ObjectAt<'_>,
        kind: WorkloadKind,
    ) -> impl Future<Output = Result<bool>> + Send;
    /// The Deployment and the ReplicaSets its selector lists, `None` when it does not exist.
    fn deployment(
        &self,
        at: ObjectAt<'_>,
    ) -> impl Future<Output = Result<Option<DeploymentWithSets>>> + Send;
    /// Applies a JSON patch (RFC 6902) to the Deployment. A failed `test` operation is
    /// [`Patched::Changed`], as a 409 is.
    fn patch_deployment(
        &self,
        at: ObjectAt<'_>,
        patch: &Value,
    ) -> impl Future<Output = Result<Patched>> + Send;
    /// The Argo Rollout, `None` when it does not exist.
    fn rollout(&self, at: ObjectAt<'_>) -> impl Future<Output = Result<Option<Value>>> + Send;
    /// Aborts the Rollout as `kubectl argo rollouts abort` does (`status.abort = true`).
    fn abort_rollout(&self, at: ObjectAt<'_>) -> impl Future<Output = Result<Patched>> + Send;
    /// Promotes the Rollout's update at once, skipping its remaining steps, as
    /// `kubectl argo rollouts promote --full` does (`status.promoteFull = true`), if it is still
    /// at `resource_version` (otherwise [`Patched::Changed`]).
    fn promote_rollout(
        &self,
        at: ObjectAt<'_>,
        resource_version: &str,
    ) -> impl Future<Output = Result<Patched>> + Send;
    /// The ReplicaSets in `at`'s namespace that a workload's `spec.selector.matchLabels`
    /// (`selector`) lists.
    fn replica_sets(
        &self,
        at: ObjectAt<'_>,
        selector: &Value,
    ) -> impl Future<Output = Result<Vec<Value>>> + Send;
    /// A GitOps object (or a source it follows), `None` when it does not exist.
    fn object(
        &self,
        resource: Resource,
        at: ObjectAt<'_>,
    ) -> impl Future<Output = Result<Option<Value>>> + Send;
    /// Applies a JSON patch to a GitOps object; a failed `test` is [`Patched::Changed`].
    fn patch_object(
        &self,
        resource: Resource,
        at: ObjectAt<'_>,
        patch: &Value,
    ) -> impl Future<Output = Result<Patched>> + Send;
}

/// [`Workloads`] over the clusters' API servers: a kube-rs client per cluster from
/// [`KubeClients`], its token made at the clock's time.
#[derive(Debug, Clone, Copy)]
pub struct KubeWorkloads<'a> {
    clients: &'a KubeClients,
    aws: &'a Aws,
    clock: &'a Arc<dyn Clock>,
}

impl<'a> KubeWorkloads<'a> {
    /// The adapter over `clients`, reaching EKS with `aws`.
    pub fn new(clients: &'a KubeClients, aws: &'a Aws, clock: &'a Arc<dyn Clock>) -> Self {
        KubeWorkloads {
            clients,
            aws,
            clock,
        }
    }

    async fn client(&self, cluster: &str) -> Result<kube::Client> {
        self.clients
            .client(self.aws, cluster, self.clock.now_ms())
            .await
    }

    async fn rollout_status(&self, at: ObjectAt<'_>, what: &str, body: Value) -> Result<Patched> {
        let client = self.client(at.cluster).await?;
        let what = format!("{what} {at}");
        let answer = send_json(
            &client,
            Method::PATCH,
            &format!("{}/status", rollout_path(at.namespace, at.name)),
            "application/merge-patch+json",
            Some(&body),
            &what,
        )
        .await?;
        classify(answer, &what)
    }
}

fn deployment_path(namespace: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
}

fn rollout_path(namespace: &str, name: &str) -> String {
    format!("/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts/{name}")
}

async fn get(client: &kube::Client, path: &str, what: &str) -> Result<Option<Value>> {
    let answer = send_json(client, Method::GET, path, "application/json", None, what).await?;
    match answer.status {
        200 => Ok(Some(answer.body)),
        404 => Ok(None),
        _ => Err(unexpected(what, &answer)),
    }
}

/// A write's answer. A JSON patch (`application/json-patch+json`, RFC 6902: a failed `test`
/// fails the whole patch; Kubernetes, "Update API Objects in Place Using kubectl patch",
/// <https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/>)
/// whose `test` fails is answered 422 with "test failed" in its message; a conflict, 409.
fn classify(answer: Answer, what: &str) -> Result<Patched> {
    match answer.status {
        200 | 201 => Ok(Patched::Applied(answer.body)),
        404 => Ok(Patched::Gone),
        409 => Ok(Patched::Changed(answer.message().to_string())),
        422 if answer
            .message()
            .to_ascii_lowercase()
            .contains("test failed") =>
        {
            Ok(Patched::Changed(answer.message().to_string()))
        }
        _ => Err(unexpected(what, &answer)),
    }
}

/// `k=v,k=v` of a Deployment's `spec.selector.matchLabels`.
pub fn label_selector(deployment: &Value) -> String {
    match_labels(&deployment["spec"]["selector"])
}

/// `k=v,k=v` of a selector's `matchLabels`.
fn match_labels(selector: &Value) -> String {
    selector["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

impl Workloads for KubeWorkloads<'_> {
    async fn exists(&self, at: ObjectAt<'_>, kind: WorkloadKind) -> Result<bool> {
        let client = self.client(at.cluster).await?;
        let (path, what) = match kind {
            WorkloadKind::Deployment => (deployment_path(at.namespace, at.name), "deployment"),
            WorkloadKind::Rollout => (rollout_path(at.namespace, at.name), "rollout"),
        };
        let what = format!("get {what} {at}");
        Ok(get(&client, &path, &what).await?.is_some())
    }

    async fn deployment(&self, at: ObjectAt<'_>) -> Result<Option<DeploymentWithSets>> {
        let client = self.client(at.cluster).await?;
        let what = format!("get deployment {at}");
        let Some(deployment) = get(&client, &deployment_path(at.namespace, at.name), &what).await?
        else {
            return Ok(None);
        };
        let replica_sets = self
            .replica_sets(at, &deployment["spec"]["selector"])
            .await?;
        Ok(Some(DeploymentWithSets {
            deployment,
            replica_sets,
        }))
    }

    async fn replica_sets(&self, at: ObjectAt<'_>, selector: &Value) -> Result<Vec<Value>> {
        let client = self.client(at.cluster).await?;
        let query: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("labelSelector", &match_labels(selector))
            .finish();
        let what = format!("list replicasets of {at}");
        let path = format!(
            "/apis/apps/v1/namespaces/{}/replicasets?{query}",
            at.namespace
        );
        let list = get(&client, &path, &what)
            .await?
            .ok_or_else(|| Error::NotFound(what.clone()))?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    async fn patch_deployment(&self, at: ObjectAt<'_>, patch: &Value) -> Result<Patched> {
        let client = self.client(at.cluster).await?;
        let what = format!("roll back deployment {at}");
        let answer = send_json(
            &client,
            Method::PATCH,
            &deployment_path(at.namespace, at.name),
            "application/json-patch+json",
            Some(patch),
            &what,
        )
        .await?;
        classify(answer, &what)
    }

    async fn rollout(&self, at: ObjectAt<'_>) -> Result<Option<Value>> {
        let client = self.client(at.cluster).await?;
        let what = format!("get rollout {at}");
        get(&client, &rollout_path(at.namespace, at.name), &what).await
    }

    /// A merge patch of the status subresource (Argo Rollouts, `kubectl argo rollouts abort`:
    /// the controller then sends traffic back to the stable ReplicaSet).
    async fn abort_rollout(&self, at: ObjectAt<'_>) -> Result<Patched> {
        self.rollout_status(at, "abort rollout", json!({"status": {"abort": true}}))
            .await
    }

    /// A merge patch of the status subresource, as `kubectl argo rollouts promote --full` sends,
    /// with the resourceVersion read: a `metadata.resourceVersion` in a patch is a precondition
    /// (409 when the object moved on).
    async fn promote_rollout(&self, at: ObjectAt<'_>, resource_version: &str) -> Result<Patched> {
        let body = json!({"metadata": {"resourceVersion": resource_version},
            "status": {"promoteFull": true}});
        self.rollout_status(at, "promote rollout", body).await
    }

    async fn object(&self, resource: Resource, at: ObjectAt<'_>) -> Result<Option<Value>> {
        let client = self.client(at.cluster).await?;
        let what = format!("get {} {at}", resource.kind());
        get(&client, &resource.path(at.namespace, at.name), &what).await
    }

    async fn patch_object(
        &self,
        resource: Resource,
        at: ObjectAt<'_>,
        patch: &Value,
    ) -> Result<Patched> {
        let client = self.client(at.cluster).await?;
        let what = format!("patch {} {at}", resource.kind());
        let answer = send_json(
            &client,
            Method::PATCH,
            &resource.path(at.namespace, at.name),
            "application/json-patch+json",
            Some(patch),
            &what,
        )
        .await?;
        classify(answer, &what)
    }
}

//! An in-memory [`Workloads`]: Deployments, ReplicaSets and Argo Rollouts as the API server
//! stores them (JSON), JSON patches applied as the API server applies them (a failed `test`
//! refuses the whole patch, every write bumps `resourceVersion`), every call recorded, and knobs
//! for a deploy landing between a read and a patch, or a failing call.
//!
//! No controller runs: a test that wants a new revision puts its ReplicaSet itself.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::kube::workloads::{
    DeploymentWithSets, ObjectAt, Patched, Resource, WorkloadKind, Workloads,
};

type Key = (String, String, String);

#[derive(Debug, Default)]
struct State {
    deployments: BTreeMap<Key, Value>,
    replica_sets: BTreeMap<Key, Value>,
    rollouts: BTreeMap<Key, Value>,
    objects: BTreeMap<Resource, BTreeMap<Key, Value>>,
    version: u64,
    calls: Vec<String>,
    change_before_next_patch: bool,
    fail_next: Option<Error>,
}

impl State {
    /// Where objects of `resource` are kept (Rollouts with the Rollouts).
    fn slot(&mut self, resource: Resource) -> &mut BTreeMap<Key, Value> {
        match resource {
            Resource::ArgoRollout => &mut self.rollouts,
            other => self.objects.entry(other).or_default(),
        }
    }

    fn bump(&mut self, obj: &mut Value) {
        self.version += 1;
        obj["metadata"]["resourceVersion"] = json!(self.version.to_string());
    }
}

fn key(at: ObjectAt<'_>) -> Key {
    (at.cluster.into(), at.namespace.into(), at.name.into())
}

fn key_of(cluster: &str, obj: &Value) -> Key {
    let meta = &obj["metadata"];
    (
        cluster.into(),
        meta["namespace"].as_str().unwrap_or("default").into(),
        meta["name"].as_str().unwrap_or_default().into(),
    )
}

/// Workloads kept in memory; clones share them.
#[derive(Debug, Clone, Default)]
pub struct FakeWorkloads {
    state: Arc<Mutex<State>>,
}

impl FakeWorkloads {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores (or replaces) a Deployment in `cluster`, with a new `resourceVersion`.
    pub fn put_deployment(&self, cluster: &str, mut deployment: Value) {
        let mut state = self.state();
        state.bump(&mut deployment);
        let k = key_of(cluster, &deployment);
        state.deployments.insert(k, deployment);
    }

    /// Stores (or replaces) a ReplicaSet in `cluster`.
    pub fn put_replica_set(&self, cluster: &str, mut replica_set: Value) {
        let mut state = self.state();
        state.bump(&mut replica_set);
        let k = key_of(cluster, &replica_set);
        state.replica_sets.insert(k, replica_set);
    }

    /// Stores (or replaces) an Argo Rollout in `cluster`.
    pub fn put_rollout(&self, cluster: &str, mut rollout: Value) {
        let mut state = self.state();
        state.bump(&mut rollout);
        let k = key_of(cluster, &rollout);
        state.rollouts.insert(k, rollout);
    }

    /// Stores (or replaces) a GitOps object (or a source) in `cluster`.
    pub fn put_object(&self, cluster: &str, resource: Resource, mut obj: Value) {
        let mut state = self.state();
        state.bump(&mut obj);
        let k = key_of(cluster, &obj);
        state.slot(resource).insert(k, obj);
    }

    /// The stored GitOps object.
    pub fn object_now(&self, resource: Resource, at: ObjectAt<'_>) -> Option<Value> {
        self.state().slot(resource).get(&key(at)).cloned()
    }

    /// The stored Deployment.
    pub fn deployment_now(&self, at: ObjectAt<'_>) -> Option<Value> {
        self.state().deployments.get(&key(at)).cloned()
    }

    /// The stored Rollout.
    pub fn rollout_now(&self, at: ObjectAt<'_>) -> Option<Value> {
        self.state().rollouts.get(&key(at)).cloned()
    }

    /// The next patch finds the object changed since it was read (a deploy landed in between):
    /// its `resourceVersion` moves on before the patch is applied.
    pub fn change_before_next_patch(&self) {
        self.state().change_before_next_patch = true;
    }

    /// The next call fails with `error`.
    pub fn fail_next(&self, error: Error) {
        self.state().fail_next = Some(error);
    }

    /// Every call, in order: `exists`, `deployment`, `patch`, `rollout`, `abort`, `get <Kind>`,
    /// `patch <Kind>`, each with the object's `namespace/name`.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// The writes among [`Self::calls`] (`patch`, `patch <Kind>`, `abort` and `promote`).
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|c| {
                c.starts_with("patch") || c.starts_with("abort ") || c.starts_with("promote ")
            })
            .collect()
    }

    /// Sets `status.<field> = true` on a Rollout (what the status subresource's merge patch
    /// does). The Rollouts live with the GitOps objects' JSON patches too: a Rollout put with
    /// [`Self::put_rollout`] is the one [`Resource::ArgoRollout`] reads.
    fn rollout_status(&self, at: ObjectAt<'_>, call: &str, field: &str) -> Result<Patched> {
        let mut state = self.begin(call, at)?;
        let Some(mut rollout) = state.rollouts.get(&key(at)).cloned() else {
            return Ok(Patched::Gone);
        };
        rollout["status"][field] = json!(true);
        state.bump(&mut rollout);
        state.rollouts.insert(key(at), rollout.clone());
        Ok(Patched::Applied(rollout))
    }

    fn begin(&self, call: &str, at: ObjectAt<'_>) -> Result<std::sync::MutexGuard<'_, State>> {
        let mut state = self.state();
        state.calls.push(format!("{call} {at}"));
        match state.fail_next.take() {
            Some(error) => Err(error),
            None => Ok(state),
        }
    }
}

fn selected(selector: &Value, obj: &Value) -> bool {
    selector["matchLabels"].as_object().is_some_and(|wanted| {
        wanted
            .iter()
            .all(|(k, v)| &obj["metadata"]["labels"][k.as_str()] == v)
    })
}

/// The parent of a JSON pointer and its last token, unescaped (RFC 6901).
fn split_pointer(path: &str) -> Option<(&str, String)> {
    let (parent, last) = path.rsplit_once('/')?;
    Some((parent, last.replace("~1", "/").replace("~0", "~")))
}

/// Applies a JSON patch (RFC 6902: `test`, `add`, `replace`, `remove`) to a copy of `obj`; the
/// reason it failed otherwise, in the API server's words for a failed `test`.
fn apply_json_patch(obj: &Value, patch: &Value) -> std::result::Result<Value, String> {
    let mut out = obj.clone();
    for op in patch.as_array().ok_or("the patch is not a JSON array")? {
        let path = op["path"].as_str().ok_or("an operation has no path")?;
        match op["op"].as_str() {
            Some("test") => {
                if out.pointer(path) != Some(&op["value"]) {
                    return Err(format!(
                        "the server rejected our request due to an error in our request: test failed at {path}"
                    ));
                }
            }
            Some(verb @ ("add" | "replace" | "remove")) => {
                let (parent, last) = split_pointer(path).ok_or("a path without a parent")?;
                let parent = out
                    .pointer_mut(parent)
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| format!("{verb} {path}: no such parent"))?;
                if verb != "add" && !parent.contains_key(&last) {
                    return Err(format!("{verb} {path}: no such member"));
                }
                if verb == "remove" {
                    parent.remove(&last);
                } else {
                    parent.insert(last, op["value"].clone());
                }
            }
            other => return Err(format!("unsupported patch operation {other:?}")),
        }
    }
    Ok(out)
}

/// `current` with a JSON patch applied as the API server applies it: the object to keep (the
/// patched one, or `current` when the patch failed) and the answer.
fn patched(
    state: &mut State,
    mut current: Value,
    patch: &Value,
    at: ObjectAt<'_>,
    what: &str,
) -> Result<(Value, Patched)> {
    if std::mem::take(&mut state.change_before_next_patch) {
        state.bump(&mut current);
    }
    let mut patched = match apply_json_patch(&current, patch) {
        Ok(p) => p,
        Err(why) if why.contains("test failed") => return Ok((current, Patched::Changed(why))),
        Err(why) => return Err(Error::Aws(format!("{what} {at}: 422 {why}"))),
    };
    if patched["spec"] != current["spec"] {
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        patched["metadata"]["generation"] = json!(generation + 1);
    }
    state.bump(&mut patched);
    Ok((patched.clone(), Patched::Applied(patched)))
}

impl Workloads for FakeWorkloads {
    async fn exists(&self, at: ObjectAt<'_>, kind: WorkloadKind) -> Result<bool> {
        let state = self.begin("exists", at)?;
        Ok(match kind {
            WorkloadKind::Deployment => state.deployments.contains_key(&key(at)),
            WorkloadKind::Rollout => state.rollouts.contains_key(&key(at)),
        })
    }

    async fn deployment(&self, at: ObjectAt<'_>) -> Result<Option<DeploymentWithSets>> {
        let state = self.begin("deployment", at)?;
        let Some(deployment) = state.deployments.get(&key(at)).cloned() else {
            return Ok(None);
        };
        let selector = &deployment["spec"]["selector"];
        let replica_sets = state
            .replica_sets
            .iter()
            .filter(|((c, ns, _), rs)| {
                c == at.cluster && ns == at.namespace && selected(selector, rs)
            })
            .map(|(_, rs)| rs.clone())
            .collect();
        Ok(Some(DeploymentWithSets {
            deployment,
            replica_sets,
        }))
    }

    async fn patch_deployment(&self, at: ObjectAt<'_>, patch: &Value) -> Result<Patched> {
        let mut state = self.begin("patch", at)?;
        let state = &mut *state;
        let Some(current) = state.deployments.get(&key(at)).cloned() else {
            return Ok(Patched::Gone);
        };
        let (patched, answer) = patched(state, current, patch, at, "roll back deployment")?;
        state.deployments.insert(key(at), patched);
        Ok(answer)
    }

    async fn rollout(&self, at: ObjectAt<'_>) -> Result<Option<Value>> {
        let state = self.begin("rollout", at)?;
        Ok(state.rollouts.get(&key(at)).cloned())
    }

    async fn abort_rollout(&self, at: ObjectAt<'_>) -> Result<Patched> {
        self.rollout_status(at, "abort", "abort")
    }

    async fn promote_rollout(&self, at: ObjectAt<'_>, resource_version: &str) -> Result<Patched> {
        let read = self.rollout_now(at);
        if read.is_some_and(|r| r["metadata"]["resourceVersion"] != resource_version) {
            self.state().calls.push(format!("promote {at}"));
            return Ok(Patched::Changed(format!(
                "the object has been modified (resourceVersion {resource_version} is not the latest)"
            )));
        }
        self.rollout_status(at, "promote", "promoteFull")
    }

    async fn replica_sets(&self, at: ObjectAt<'_>, selector: &Value) -> Result<Vec<Value>> {
        let state = self.begin("replicasets", at)?;
        Ok(state
            .replica_sets
            .iter()
            .filter(|((c, ns, _), rs)| {
                c == at.cluster && ns == at.namespace && selected(selector, rs)
            })
            .map(|(_, rs)| rs.clone())
            .collect())
    }

    async fn object(&self, resource: Resource, at: ObjectAt<'_>) -> Result<Option<Value>> {
        let mut state = self.begin(&format!("get {}", resource.kind()), at)?;
        Ok(state.slot(resource).get(&key(at)).cloned())
    }

    async fn patch_object(
        &self,
        resource: Resource,
        at: ObjectAt<'_>,
        patch: &Value,
    ) -> Result<Patched> {
        let what = format!("patch {}", resource.kind());
        let mut state = self.begin(&what, at)?;
        let state = &mut *state;
        let Some(current) = state.slot(resource).get(&key(at)).cloned() else {
            return Ok(Patched::Gone);
        };
        let (patched, answer) = patched(state, current, patch, at, &what)?;
        state.slot(resource).insert(key(at), patched);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_patch_is_all_or_nothing_and_a_failed_test_says_so() {
        let obj = json!({"metadata": {"resourceVersion": "1"}, "spec": {"a": 1}});
        let patch = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
            {"op": "replace", "path": "/spec/a", "value": 2},
            {"op": "add", "path": "/metadata/annotations", "value": {"x": "y"}}]);
        let out = apply_json_patch(&obj, &patch).unwrap();
        assert_eq!(out["spec"]["a"], 2);
        assert_eq!(out["metadata"]["annotations"]["x"], "y");
        let stale = json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "0"}]);
        assert!(apply_json_patch(&obj, &stale)
            .unwrap_err()
            .contains("test failed"));
    }
}

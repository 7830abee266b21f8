//! The Deployment rollback exactly as `kubectl rollout undo` makes it (its `DeploymentRollbacker`),
//! plus a `test` on `metadata.resourceVersion` so that a deploy landing between our read and our
//! write fails the patch instead of being overwritten; what a freeze looks like; and how a
//! rollout stands. The reads and writes go through
//! [`breakwater::kube::workloads::Workloads`].

use breakwater::kube::rollout::{
    controller_uid, equal_ignore_hash, hash_of, revision_of, without_hash, CHANGE_CAUSE,
    CONTROLLER_ANNOTATIONS, REVISION_HISTORY,
};
pub use breakwater::kube::workloads::Patched;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The annotation that freezes a workload from the cluster side.
pub const FREEZE: &str = "breakwater.io/rollback-freeze";

/// One revision of a Deployment: one of its ReplicaSets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// `deployment.kubernetes.io/revision`.
    pub number: i64,
    /// The ReplicaSet.
    pub replica_set: String,
    /// Its `pod-template-hash` (what identifies the revision across renumbering).
    pub hash: String,
    /// When the ReplicaSet was created (ms).
    pub created_ms: u64,
    /// Earlier numbers of this ReplicaSet (`revision-history`).
    pub earlier: Vec<i64>,
    /// The ReplicaSet's pod template.
    #[serde(skip)]
    pub template: Value,
    /// The ReplicaSet's annotations.
    #[serde(skip)]
    pub annotations: Map<String, Value>,
}

/// The ReplicaSets the Deployment controls, oldest revision first (kubectl's `GetAllReplicaSets`:
/// listed by the selector, kept when the controller owner is this Deployment).
pub fn history(deployment: &Value, replica_sets: &[Value]) -> Vec<Revision> {
    let uid = deployment["metadata"]["uid"].as_str().unwrap_or_default();
    let mut revisions: Vec<Revision> = replica_sets
        .iter()
        .filter(|rs| controller_uid(rs) == Some(uid))
        .map(|rs| {
            let annotations = rs["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            Revision {
                number: revision_of(rs),
                replica_set: rs["metadata"]["name"].as_str().unwrap_or_default().into(),
                hash: hash_of(rs).into(),
                created_ms: rs["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(breakwater::clock::parse_rfc3339)
                    .unwrap_or(0),
                earlier: annotations
                    .get(REVISION_HISTORY)
                    .and_then(Value::as_str)
                    .map(|h| h.split(',').filter_map(|n| n.trim().parse().ok()).collect())
                    .unwrap_or_default(),
                template: rs["spec"]["template"].clone(),
                annotations,
            }
        })
        .collect();
    revisions.sort_by_key(|r| r.number);
    revisions
}

/// The revision running now: the one whose template is the Deployment's.
pub fn current<'a>(deployment: &Value, history: &'a [Revision]) -> Option<&'a Revision> {
    history
        .iter()
        .rev()
        .find(|r| equal_ignore_hash(&r.template, &deployment["spec"]["template"]))
}

/// kubectl's target for `--to-revision=0`: the second-highest revision.
pub fn previous(history: &[Revision]) -> Option<&Revision> {
    history.iter().rev().nth(1)
}

/// The patch that rolls a fully promoted Argo Rollout back, as `kubectl argo rollouts undo` does:
/// `test` the resourceVersion read, then the target ReplicaSet's template without
/// `rollouts-pod-template-hash`. The Rollout makes it a new revision (Argo Rollouts,
/// "Rollback Windows": "rollbacks are treated as a new revision").
pub fn rollout_undo_patch(rollout: &Value, target: &Revision) -> Value {
    json!([
        {"op": "test", "path": "/metadata/resourceVersion",
            "value": rollout["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": without_hash(&target.template)},
    ])
}

/// The annotations a rollback leaves as the Deployment has them.
fn kept_from_deployment(key: &str) -> bool {
    CONTROLLER_ANNOTATIONS.contains(&key) || key == crate::gitops::ARGO_CD_TRACKING_ID
}

/// The patch: `test` the resourceVersion read, then kubectl's two operations — the target's
/// template without `pod-template-hash`, and the annotations kubectl computes — with
/// `kubernetes.io/change-cause` saying who rolled back and why.
///
/// The annotations are kubectl's (`pkg/polymorphichelpers/rollback.go`,
/// `DeploymentRollbacker.Rollback`): for each key of `annotationsToSkip`
/// (`kubectl.kubernetes.io/last-applied-configuration`, the `deployment.kubernetes.io/revision*`,
/// `desired-replicas`, `max-replicas` ones) the **Deployment's own** value is kept; every other
/// annotation comes from the target ReplicaSet. Dropping the Deployment's
/// `last-applied-configuration` would make the next client-side `kubectl apply` fall back to a
/// two-way merge that no longer prunes fields removed from the manifest.
///
/// One addition to kubectl's set: Argo CD's tracking annotation
/// ([`crate::gitops::ARGO_CD_TRACKING_ID`]) stays the Deployment's. A ReplicaSet made before
/// Argo CD adopted the Deployment lacks it, and a Deployment without it is no longer the
/// Application's ("Resource Tracking": annotation tracking reads only the annotation).
pub fn undo_patch(deployment: &Value, target: &Revision, change_cause: &str) -> Value {
    let mut annotations: Map<String, Value> = deployment["metadata"]["annotations"]
        .as_object()
        .map(|own| {
            own.iter()
                .filter(|(k, _)| kept_from_deployment(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    annotations.extend(
        target
            .annotations
            .iter()
            .filter(|(k, _)| !kept_from_deployment(k))
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    annotations.insert(CHANGE_CAUSE.into(), json!(change_cause));
    json!([
        {"op": "test", "path": "/metadata/resourceVersion",
            "value": deployment["metadata"]["resourceVersion"]},
        {"op": "replace", "path": "/spec/template", "value": without_hash(&target.template)},
        // kubectl uses `replace`, which fails on a Deployment without annotations; `add` sets
        // the member either way.
        {"op": "add", "path": "/metadata/annotations", "value": annotations},
    ])
}

/// Whether the object carries the freeze annotation.
pub fn frozen(obj: &Value) -> bool {
    obj["metadata"]["annotations"][FREEZE].as_str() == Some("true")
}

/// How a Deployment's rollout stands (what the bake verification reads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The controller saw the latest spec.
    pub observed: bool,
    /// Updated replicas / desired.
    pub updated: i64,
    /// Available replicas.
    pub available: i64,
    /// Desired replicas.
    pub desired: i64,
    /// `ProgressDeadlineExceeded`.
    pub deadline_exceeded: bool,
}

impl Progress {
    /// From a Deployment's status.
    pub fn of(deployment: &Value) -> Self {
        let int = |p: &str, d: i64| deployment.pointer(p).and_then(Value::as_i64).unwrap_or(d);
        Progress {
            observed: int("/status/observedGeneration", 0) >= int("/metadata/generation", 1),
            updated: int("/status/updatedReplicas", 0),
            available: int("/status/availableReplicas", 0),
            desired: int("/spec/replicas", 1),
            deadline_exceeded: deployment["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                    })
                }),
        }
    }

    /// Every replica updated and available.
    pub fn complete(&self) -> bool {
        self.observed && self.updated == self.desired && self.available == self.desired
    }
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} updated, {}/{} available{}{}",
            self.updated,
            self.desired,
            self.available,
            self.desired,
            if self.observed {
                ""
            } else {
                ", spec not yet observed"
            },
            if self.deadline_exceeded {
                ", ProgressDeadlineExceeded"
            } else {
                ""
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use breakwater::kube::rollout::TEMPLATE_HASH;

    fn rs(name: &str, uid: &str, revision: &str, image: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web", TEMPLATE_HASH: name},
            "annotations": {"deployment.kubernetes.io/revision": revision, "team": "shop",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "deployment.kubernetes.io/desired-replicas": "3"},
            "ownerReferences": [{"uid": uid, "controller": true}],
            "creationTimestamp": "2026-11-23T03:00:00Z"},
            "spec": {"template": {"metadata": {"labels": {"app": "web", TEMPLATE_HASH: name}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn history_keeps_owned_sets_and_the_patch_is_kubectls_plus_a_test() {
        let d = json!({"metadata": {"uid": "d1", "resourceVersion": "42"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:3"}]}}}});
        let sets = [
            rs("a", "d1", "1", "web:1"),
            rs("c", "d1", "3", "web:3"),
            rs("b", "d1", "2", "web:2"),
            rs("x", "other", "9", "web:9"),
        ];
        let h = history(&d, &sets);
        assert_eq!(h.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(current(&d, &h).unwrap().number, 3);
        let target = previous(&h).unwrap();
        assert_eq!(target.number, 2);
        let patch = undo_patch(&d, target, "why");
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "42"})
        );
        assert!(patch[1]["value"]["metadata"]["labels"]
            .get(TEMPLATE_HASH)
            .is_none());
        assert_eq!(
            patch[2]["value"],
            json!({"team": "shop", CHANGE_CAUSE: "why"})
        );
    }

    #[test]
    fn the_patch_keeps_the_deployments_last_applied_configuration_and_revision_as_kubectl_does() {
        // GIVEN a Deployment applied with `kubectl apply` (last-applied-configuration), at revision 3
        let d = json!({"metadata": {"uid": "d1", "resourceVersion": "42", "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
                "deployment.kubernetes.io/revision": "3", "team": "payments"}},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "web:3"}]}}}});
        let sets = [rs("a", "d1", "1", "web:1"), rs("c", "d1", "3", "web:3")];
        let h = history(&d, &sets);
        // WHEN the rollback patch to revision 1 is built
        let patch = undo_patch(&d, &h[0], "why");
        // THEN the skip-set keys keep the Deployment's values, the others come from the
        // ReplicaSet (kubectl's DeploymentRollbacker), and the RS's own skip-set keys are not copied
        assert_eq!(
            patch[2]["value"],
            json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
                "deployment.kubernetes.io/revision": "3", "team": "shop", CHANGE_CAUSE: "why"})
        );
    }
}

//! The part of the Argo Rollouts controller (canary strategy) that a rollback meets
//! (<https://argo-rollouts.readthedocs.io/en/stable/features/canary/>,
//! <https://argo-rollouts.readthedocs.io/en/stable/features/rollback/>):
//!
//! - a new spec (`metadata.generation` past `status.observedGeneration`) makes or reuses the
//!   ReplicaSet `<name>-<hash>` of its template, labelled `rollouts-pod-template-hash`, whose
//!   `rollout.argoproj.io/revision` is one above every other's (a rollback is a new revision,
//!   as a Deployment's is), and the Rollout carries that revision;
//! - the first revision is stable at once; a new one walks the canary steps (`setWeight`, and
//!   stops at the first `pause`: `Paused`), unless it is the stable ReplicaSet already (the
//!   fast-tracked rollback of an update not yet completed): then it is promoted at once,
//!   `Healthy`; a `status.promoteFull` set before the new template was taken is dropped (the
//!   controller's reset), and one left when nothing is in progress too;
//! - `status.promoteFull` on an update in progress (`kubectl argo rollouts promote --full`)
//!   promotes it;
//! - an abort (`status.abort: true`) sends the traffic back to the stable ReplicaSet and leaves
//!   the rollout `Degraded` with `RolloutAborted`; a new spec clears it.
//!
//! A Rollout created with a status (a fixture seeded mid-canary) is taken as observed. Not
//! modelled: pods (the ReplicaSets are made with no replicas), analysis, traffic routers,
//! blue-green, `rollbackWindow`.

use serde_json::{json, Map, Value};

use super::deployments::{int_at, replica_sets_kind, template_hash};
use super::{str_at, terminating, Cluster, Key};
use breakwater::kube::rollout::{
    controller_uid, equal_ignore_hash, revision_of, ROLLOUT_REVISION, ROLLOUT_TEMPLATE_HASH,
};

/// `status.observedGeneration` (Argo Rollouts writes it as a string).
fn observed(status: &Value) -> Option<i64> {
    match &status["observedGeneration"] {
        Value::String(s) => s.parse().ok(),
        v => v.as_i64(),
    }
}

/// The update promoted: stable is the current ReplicaSet, every step done.
fn promoted(status: &mut Map<String, Value>, steps: usize) {
    let current = status.get("currentPodHash").cloned().unwrap_or(Value::Null);
    status.insert("stableRS".into(), current.clone());
    status.insert("phase".into(), json!("Healthy"));
    status.insert("message".into(), json!(""));
    status.insert("currentStepIndex".into(), json!(steps));
    status.remove("promoteFull");
    status.remove("pauseConditions");
    status.insert(
        "canary".into(),
        json!({"weights": {"canary": {"weight": 0, "podTemplateHash": current},
            "stable": {"weight": 100, "podTemplateHash": current}}}),
    );
}

/// The canary steps walked from the first: paused at the first `pause`, else promoted.
fn walk(status: &mut Map<String, Value>, steps: &[Value]) {
    let mut weight = 0;
    for (i, step) in steps.iter().enumerate() {
        if let Some(w) = step["setWeight"].as_i64() {
            weight = w;
        }
        if step.get("pause").is_some() {
            let current = status.get("currentPodHash").cloned().unwrap_or(Value::Null);
            let stable = status.get("stableRS").cloned().unwrap_or(Value::Null);
            status.insert("phase".into(), json!("Paused"));
            status.insert("message".into(), json!("CanaryPauseStep"));
            status.insert("currentStepIndex".into(), json!(i));
            status.insert(
                "pauseConditions".into(),
                json!([{"reason": "CanaryPauseStep"}]),
            );
            status.insert(
                "canary".into(),
                json!({"weights": {"canary": {"weight": weight, "podTemplateHash": current},
                    "stable": {"weight": 100 - weight, "podTemplateHash": stable}}}),
            );
            return;
        }
    }
    promoted(status, steps.len());
}

impl Cluster {
    /// One pass over every Rollout; whether anything changed.
    pub(super) fn sync_rollouts(&mut self) -> bool {
        let rollouts: Vec<Key> = self
            .objects_of("rollouts", None)
            .filter(|(_, r)| !terminating(r))
            .map(|(k, _)| k.clone())
            .collect();
        let mut changed = false;
        for k in rollouts {
            changed |= self.sync_rollout(&k);
        }
        changed
    }

    fn sync_rollout(&mut self, k: &Key) -> bool {
        let Some(old) = self.objects.get(k).cloned() else {
            return false;
        };
        let mut rollout = old.clone();
        let generation = int_at(&old, "/metadata/generation", 1);
        let steps: Vec<Value> = old["spec"]["strategy"]["canary"]["steps"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut status = old["status"].as_object().cloned().unwrap_or_default();
        let seeded = observed(&old["status"]).is_none() && status.contains_key("currentPodHash");
        if seeded {
            status.insert("observedGeneration".into(), json!(generation.to_string()));
        } else if observed(&old["status"]) != Some(generation) {
            let hash = self.rollout_revision(k, &mut rollout);
            status.insert("currentPodHash".into(), json!(hash));
            status.insert("observedGeneration".into(), json!(generation.to_string()));
            status.remove("abort");
            status.remove("abortedAt");
            // The controller's reset for a new template drops a `promoteFull` set before it
            // (`resetRolloutStatus`): a promotion must come after the template is taken.
            status.remove("promoteFull");
            let stable = status
                .get("stableRS")
                .and_then(Value::as_str)
                .map(str::to_string);
            if stable.is_none() || stable.as_deref() == Some(hash.as_str()) {
                promoted(&mut status, steps.len());
            } else {
                walk(&mut status, &steps);
            }
        }
        // Kept only while an update is in progress (`calculateBaseStatus`).
        if status.get("currentPodHash") == status.get("stableRS") {
            status.remove("promoteFull");
        }
        let aborted = status.get("abort") == Some(&json!(true));
        if !aborted
            && status.get("promoteFull") == Some(&json!(true))
            && status.get("currentPodHash") != status.get("stableRS")
        {
            promoted(&mut status, steps.len());
        }
        if aborted && status.get("phase") != Some(&json!("Degraded")) {
            let revision = old["metadata"]["annotations"][ROLLOUT_REVISION]
                .as_str()
                .unwrap_or("?")
                .to_string();
            let current = status.get("currentPodHash").cloned().unwrap_or(Value::Null);
            let stable = status.get("stableRS").cloned().unwrap_or(Value::Null);
            status.insert("phase".into(), json!("Degraded"));
            status.insert(
                "message".into(),
                json!(format!(
                    "RolloutAborted: Rollout aborted update to revision {revision}"
                )),
            );
            status.insert(
                "abortedAt".into(),
                json!(breakwater::clock::rfc3339(self.now_ms)),
            );
            status.insert("currentStepIndex".into(), json!(0));
            status.insert(
                "canary".into(),
                json!({"weights": {"canary": {"weight": 0, "podTemplateHash": current},
                    "stable": {"weight": 100, "podTemplateHash": stable}}}),
            );
        }
        rollout["status"] = Value::Object(status);
        if rollout == old {
            return false;
        }
        rollout["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects.insert(k.clone(), rollout);
        true
    }

    /// The ReplicaSet of the Rollout's template, made or renumbered, and the Rollout's revision
    /// annotation set to it; its hash.
    fn rollout_revision(&mut self, k: &Key, rollout: &mut Value) -> String {
        let (namespace, name) = (k.1.clone(), k.2.clone());
        let uid = str_at(rollout, "/metadata/uid").to_string();
        let template = rollout["spec"]["template"].clone();
        let owned: Vec<(Key, Value)> = self
            .objects_of("replicasets", Some(&namespace))
            .filter(|(_, rs)| controller_uid(rs) == Some(uid.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let max = owned
            .iter()
            .map(|(_, rs)| revision_of(rs))
            .max()
            .unwrap_or(0);
        let found = owned
            .iter()
            .find(|(_, rs)| equal_ignore_hash(&rs["spec"]["template"], &template));
        let (hash, revision) = match found {
            Some((rs_key, rs)) => {
                let hash = rs["metadata"]["labels"][ROLLOUT_TEMPLATE_HASH]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let mut revision = revision_of(rs);
                if revision != max {
                    revision = max + 1;
                    let mut updated = rs.clone();
                    updated["metadata"]["annotations"][ROLLOUT_REVISION] =
                        json!(revision.to_string());
                    updated["metadata"]["resourceVersion"] = json!(self.next_rv());
                    self.objects.insert(rs_key.clone(), updated);
                }
                (hash, revision)
            }
            None => {
                let hash = template_hash(&template, int_at(rollout, "/status/collisionCount", 0));
                let mut rs_template = template.clone();
                rs_template["metadata"]["labels"][ROLLOUT_TEMPLATE_HASH] = json!(hash);
                let mut selector = rollout["spec"]["selector"].clone();
                selector["matchLabels"][ROLLOUT_TEMPLATE_HASH] = json!(hash);
                let labels = rs_template["metadata"]["labels"].clone();
                let rs = json!({
                    "metadata": {"name": format!("{name}-{hash}"), "labels": labels,
                        "annotations": {ROLLOUT_REVISION: (max + 1).to_string()},
                        "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                            "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": 0, "selector": selector, "template": rs_template},
                });
                self.insert_new(replica_sets_kind(), &namespace, rs);
                (hash, max + 1)
            }
        };
        rollout["metadata"]["annotations"][ROLLOUT_REVISION] = json!(revision.to_string());
        hash
    }
}

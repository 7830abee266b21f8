//! The Deployment controller (the Argo Rollouts controller is in `rollouts.rs`).
//!
//! Deployments behave as `kube-controller-manager`'s controller does for what rollbacks read:
//! the ReplicaSet whose template equals the Deployment's (ignoring `pod-template-hash`) is the new
//! one, created as `<name>-<hash>` when none matches; the new one's
//! `deployment.kubernetes.io/revision` is one above every other's (a reused ReplicaSet's old
//! number goes to `revision-history`), the Deployment's annotations are copied onto it except the
//! controller's own and kubectl's last-applied, and the Deployment carries the new revision. A
//! paused Deployment gets no new ReplicaSet. Scaling is immediate (the new ReplicaSet gets every
//! replica, the old ones none; surge is not modelled), and the status (replicas, updated, ready,
//! available, `Available` and `Progressing` conditions, `ProgressDeadlineExceeded`) follows the
//! pods.
//!
//! The hash is FNV-32a over the template's JSON, encoded with the controller's alphabet: it has
//! the real one's shape and stability, not its value (that one hashes Go's in-memory struct).

use serde_json::{json, Map, Value};

use super::{find_kind, key, str_at, terminating, Cluster, Key, KINDS};

use breakwater::kube::rollout::{
    controller_uid, equal_ignore_hash, revision_of, semantic, CONTROLLER_ANNOTATIONS as NOT_COPIED,
    REVISION, REVISION_HISTORY, TEMPLATE_HASH,
};

/// `rand.SafeEncodeString`'s alphabet (no vowels, no confusable characters).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The `pod-template-hash` of a template (and the Deployment's `collisionCount`).
pub fn template_hash(template: &Value, collision_count: i64) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(semantic(template).to_string().as_bytes());
    if collision_count > 0 {
        feed(&collision_count.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

pub(super) fn int_at(obj: &Value, pointer: &str, default: i64) -> i64 {
    obj.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

pub(super) fn replica_sets_kind() -> &'static super::ResourceKind {
    find_kind("apps", "v1", "replicasets").unwrap_or(&KINDS[7])
}

impl Cluster {
    /// One pass of the Deployment controller over every Deployment; whether anything changed.
    pub(super) fn deploy(&mut self) -> bool {
        let deployments: Vec<Key> = self
            .objects_of("deployments", None)
            .filter(|(_, d)| !terminating(d))
            .map(|(k, _)| k.clone())
            .collect();
        // Only the Deployments synced keep a deadline timer.
        self.progress_deadlines
            .retain(|k, _| deployments.contains(k));
        let mut changed = false;
        for k in deployments {
            changed |= self.sync_deployment(&k);
        }
        changed |= self.sync_rollouts();
        changed
    }

    fn sync_deployment(&mut self, k: &Key) -> bool {
        let Some(deployment) = self.objects.get(k).cloned() else {
            return false;
        };
        let namespace = k.1.clone();
        let name = k.2.clone();
        let uid = str_at(&deployment, "/metadata/uid").to_string();
        let template = deployment
            .pointer("/spec/template")
            .cloned()
            .unwrap_or(json!({}));
        let replicas = int_at(&deployment, "/spec/replicas", 1);
        let paused = deployment.pointer("/spec/paused") == Some(&json!(true));
        let owned: Vec<(Key, Value)> = self
            .objects_of("replicasets", Some(&namespace))
            .filter(|(_, rs)| controller_uid(rs) == Some(uid.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let max_revision = owned.iter().map(|(_, rs)| revision_of(rs)).max();
        let copied: Map<String, Value> = deployment
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let found = owned.iter().find(|(_, rs)| {
            equal_ignore_hash(
                rs.pointer("/spec/template").unwrap_or(&Value::Null),
                &template,
            )
        });
        let mut changed = false;
        let new_key = match (found, paused) {
            (_, true) => found.map(|(k, _)| k.clone()),
            (Some((rs_key, rs)), false) => {
                let mut updated = rs.clone();
                let own = revision_of(rs);
                if Some(own) != max_revision || own == 0 {
                    let next = max_revision.unwrap_or(0) + 1;
                    let annotations = &mut updated["metadata"]["annotations"];
                    if !annotations.is_object() {
                        *annotations = json!({});
                    }
                    if own > 0 {
                        let history = annotations
                            .get(REVISION_HISTORY)
                            .and_then(Value::as_str)
                            .filter(|h| !h.is_empty())
                            .map(|h| format!("{h},{own}"))
                            .unwrap_or_else(|| own.to_string());
                        annotations[REVISION_HISTORY] = json!(history);
                    }
                    annotations[REVISION] = json!(next.to_string());
                }
                for (key, value) in &copied {
                    updated["metadata"]["annotations"][key] = value.clone();
                }
                if updated != *rs {
                    updated["metadata"]["resourceVersion"] = json!(self.next_rv());
                    self.objects.insert(rs_key.clone(), updated);
                    self.set_progress(k, "FoundNewReplicaSet", str_at(rs, "/metadata/name"));
                    changed = true;
                }
                Some(rs_key.clone())
            }
            (None, false) => {
                let collisions = int_at(&deployment, "/status/collisionCount", 0);
                let hash = template_hash(&template, collisions);
                let rs_name = format!("{name}-{hash}");
                let mut annotations = copied.clone();
                annotations.insert(
                    REVISION.into(),
                    json!((max_revision.unwrap_or(0) + 1).to_string()),
                );
                annotations.insert(
                    "deployment.kubernetes.io/desired-replicas".into(),
                    json!(replicas.to_string()),
                );
                annotations.insert(
                    "deployment.kubernetes.io/max-replicas".into(),
                    json!((replicas + 1).to_string()),
                );
                let mut rs_template = template.clone();
                rs_template["metadata"]["labels"][TEMPLATE_HASH] = json!(hash);
                let mut selector = deployment
                    .pointer("/spec/selector")
                    .cloned()
                    .unwrap_or(json!({}));
                selector["matchLabels"][TEMPLATE_HASH] = json!(hash);
                let mut labels = template
                    .pointer("/metadata/labels")
                    .cloned()
                    .unwrap_or(json!({}));
                labels[TEMPLATE_HASH] = json!(hash);
                let rs = json!({
                    "metadata": {"name": rs_name, "labels": labels, "annotations": annotations,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                            "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
                });
                let created = self.insert_new(replica_sets_kind(), &namespace, rs);
                self.set_progress(k, "NewReplicaSetCreated", &rs_name);
                changed = true;
                Some(key(
                    replica_sets_kind(),
                    &namespace,
                    str_at(&created, "/metadata/name"),
                ))
            }
        };
        if !paused {
            for (rs_key, _) in &owned {
                let want = if Some(rs_key) == new_key.as_ref() {
                    replicas
                } else {
                    0
                };
                changed |= self.scale_replica_set(rs_key, want);
            }
        }
        if let Some(new_rs) = new_key.as_ref().and_then(|nk| self.objects.get(nk)) {
            let revision = revision_of(new_rs).to_string();
            let current = self
                .objects
                .get(k)
                .map(revision_of)
                .unwrap_or(0)
                .to_string();
            if revision != current {
                let rv = self.next_rv();
                if let Some(d) = self.objects.get_mut(k) {
                    if !d["metadata"]["annotations"].is_object() {
                        d["metadata"]["annotations"] = json!({});
                    }
                    d["metadata"]["annotations"][REVISION] = json!(revision);
                    d["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
        }
        changed | self.deployment_status(k, new_key.as_ref(), paused)
    }

    fn scale_replica_set(&mut self, rs_key: &Key, want: i64) -> bool {
        let current = self
            .objects
            .get(rs_key)
            .map(|rs| int_at(rs, "/spec/replicas", 1));
        if current.is_none_or(|n| n == want) {
            return false;
        }
        let rv = self.next_rv();
        let Some(rs) = self.objects.get_mut(rs_key) else {
            return false;
        };
        rs["spec"]["replicas"] = json!(want);
        let generation = int_at(rs, "/metadata/generation", 1);
        rs["metadata"]["generation"] = json!(generation + 1);
        rs["metadata"]["resourceVersion"] = json!(rv);
        true
    }

    /// Records a progress event (the `Progressing` condition's reason and update time).
    fn set_progress(&mut self, k: &Key, reason: &str, rs_name: &str) {
        let now = breakwater::clock::rfc3339(self.now_ms);
        if let Some(d) = self.objects.get_mut(k) {
            let message = match reason {
                "NewReplicaSetCreated" => format!("Created new replica set \"{rs_name}\""),
                _ => format!("Found new replica set \"{rs_name}\""),
            };
            d["status"]["conditions"] = json!(replace_condition(
                d.pointer("/status/conditions"),
                json!({"type": "Progressing", "status": "True", "reason": reason,
                    "message": message, "lastUpdateTime": now, "lastTransitionTime": now}),
            ));
        }
    }

    fn deployment_status(&mut self, k: &Key, new_key: Option<&Key>, paused: bool) -> bool {
        let Some(deployment) = self.objects.get(k).cloned() else {
            return false;
        };
        let uid = str_at(&deployment, "/metadata/uid");
        let owned: Vec<(&Key, &Value)> = self
            .objects_of("replicasets", Some(&k.1))
            .filter(|(_, rs)| controller_uid(rs) == Some(uid))
            .collect();
        let sum =
            |pointer: &str| -> i64 { owned.iter().map(|(_, rs)| int_at(rs, pointer, 0)).sum() };
        let total = sum("/status/replicas");
        let ready = sum("/status/readyReplicas");
        let available = sum("/status/availableReplicas");
        let (updated, new_name) = owned
            .iter()
            .find(|(rk, _)| Some(*rk) == new_key)
            .map(|(_, rs)| {
                (
                    int_at(rs, "/status/replicas", 0),
                    str_at(rs, "/metadata/name").to_string(),
                )
            })
            .unwrap_or((0, String::new()));
        let desired = int_at(&deployment, "/spec/replicas", 1);
        let now = breakwater::clock::rfc3339(self.now_ms);
        let conditions = deployment.pointer("/status/conditions");
        let available_condition = if available >= desired {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability."})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability."})
        };
        let mut conditions = replace_condition(
            conditions,
            keep_times(conditions, available_condition, &now),
        );
        let complete = updated == desired && total == desired && available == desired;
        let progressing = conditions
            .iter()
            .find(|c| c["type"] == "Progressing")
            .cloned();
        let last_update_ms = progressing
            .as_ref()
            .and_then(|c| c["lastUpdateTime"].as_str())
            .and_then(breakwater::clock::parse_rfc3339)
            .unwrap_or(self.now_ms);
        let deadline_ms = u64::try_from(int_at(&deployment, "/spec/progressDeadlineSeconds", 600))
            .unwrap_or(600)
            * 1000;
        let next = if paused {
            Some((
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".to_string(),
            ))
        } else if complete {
            Some((
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            ))
        } else if self.now_ms > last_update_ms + deadline_ms
            || progressing
                .as_ref()
                .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded")
        {
            Some((
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            ))
        } else {
            None
        };
        // The controller looks again at the deadline (`requeueStuckDeployment`): a timer.
        if next.is_none() {
            self.progress_deadlines
                .insert(k.clone(), last_update_ms + deadline_ms + 1);
        } else {
            self.progress_deadlines.remove(k);
        }
        if let Some((status, reason, message)) = next {
            let same = progressing
                .as_ref()
                .is_some_and(|c| c["reason"] == reason && c["status"] == status);
            if !same {
                conditions = replace_condition(
                    Some(&json!(conditions)),
                    json!({"type": "Progressing", "status": status, "reason": reason,
                        "message": message, "lastUpdateTime": now, "lastTransitionTime": now}),
                );
            }
        }
        let mut status = json!({
            "observedGeneration": int_at(&deployment, "/metadata/generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": (desired - available).max(0),
            "conditions": conditions,
        });
        if let Some(c) = deployment.pointer("/status/collisionCount") {
            status["collisionCount"] = c.clone();
        }
        if deployment.get("status") == Some(&status) {
            return false;
        }
        let rv = self.next_rv();
        if let Some(d) = self.objects.get_mut(k) {
            d["status"] = status;
            d["metadata"]["resourceVersion"] = json!(rv);
        }
        true
    }
}

fn replace_condition(conditions: Option<&Value>, condition: Value) -> Vec<Value> {
    let mut list: Vec<Value> = conditions
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(slot) => *slot = condition,
        None => list.push(condition),
    }
    list
}

/// `condition` with the times of the same condition when its status and reason did not change.
fn keep_times(conditions: Option<&Value>, mut condition: Value, now: &str) -> Value {
    let old = conditions
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| c["type"] == condition["type"]));
    match old {
        Some(o) if o["status"] == condition["status"] && o["reason"] == condition["reason"] => {
            condition["lastUpdateTime"] = o["lastUpdateTime"].clone();
            condition["lastTransitionTime"] = o["lastTransitionTime"].clone();
        }
        _ => {
            condition["lastUpdateTime"] = json!(now);
            condition["lastTransitionTime"] = json!(now);
        }
    }
    condition
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_safe_and_ignores_go_zero_values() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let go = json!({"metadata": {"labels": {"app": "web"}, "creationTimestamp": null}, "spec": {"containers": [{"name": "web", "image": "web:1", "resources": {}}]}});
        assert_eq!(template_hash(&t, 0), template_hash(&go, 0));
        assert_ne!(template_hash(&t, 0), template_hash(&t, 1));
        assert!(template_hash(&t, 0).bytes().all(|b| ALPHANUMS.contains(&b)));
    }
}

//! The small controllers behind the API: the kubelet that removes deleted pods after their grace
//! period on the emulator's clock, the ReplicaSet controller that replaces pods elsewhere, and the
//! disruption controller that keeps each PodDisruptionBudget's status
//! (<https://kubernetes.io/docs/concepts/workloads/pods/disruptions/>).

use std::collections::{BTreeMap, BTreeSet};

use breakwater::kube::rollout::controller_uid;
use serde_json::{json, Map, Value};

use super::{
    find_kind, key, pod_ready, pods_kind, selector_matches, str_at, terminating, ApiError, Cluster,
    Key, KINDS,
};

/// How often, on the emulator's clock, the controllers look at everything with nothing due.
const RESYNC_MS: u64 = 1_000;

impl Cluster {
    /// Marks a PDB's status stale (its observedGeneration behind) until [`Cluster::refresh_pdb`].
    pub fn mark_pdb_stale(&mut self, namespace: &str, name: &str) {
        self.stale_pdbs
            .insert((namespace.to_string(), name.to_string()));
        let pdb_kind = find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]);
        if let Some(pdb) = self.objects.get_mut(&key(pdb_kind, namespace, name)) {
            let generation = pdb
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            pdb["status"]["observedGeneration"] = json!(generation - 1);
        }
    }

    /// Lets the disruption controller catch up with a stale PDB.
    pub fn refresh_pdb(&mut self, namespace: &str, name: &str) {
        self.stale_pdbs
            .remove(&(namespace.to_string(), name.to_string()));
        self.settle();
    }

    /// Pauses or resumes the ReplicaSet controller (seed pods of a ReplicaSet while paused).
    pub fn pause_replication(&mut self, paused: bool) {
        self.replication_paused = paused;
        self.settle();
    }

    /// Moves the clock on and lets the kubelet and the controllers act: when the store changed
    /// since they last did, when one of their timers is due (a pod's grace, a replacement's
    /// readiness, a node's boot, a Deployment's progress deadline), and at least every
    /// [`RESYNC_MS`] (a controller's resync).
    pub fn advance_to(&mut self, now_ms: u64) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
        let now = self.now_ms;
        let due = |timers: &BTreeMap<Key, u64>| timers.values().any(|at| *at <= now);
        let (rv, at) = self.settled;
        if rv != self.resource_version
            || now >= at + RESYNC_MS
            || due(&self.removals)
            || due(&self.readiness)
            || due(&self.node_boots)
            || (!self.replication_paused && due(&self.progress_deadlines))
        {
            self.settle();
        }
    }

    /// The kubelet, the ReplicaSet controller and the disruption controller, until nothing changes.
    pub(super) fn settle(&mut self) {
        for _ in 0..8 {
            let mut changed = false;
            let now = self.now_ms;
            let due: Vec<Key> = self
                .removals
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                self.removals.remove(&k);
                self.readiness.remove(&k);
                self.forget(&k);
                changed = true;
            }
            let ready: Vec<Key> = self
                .readiness
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ready {
                self.readiness.remove(&k);
                let rv = self.next_rv();
                if let Some(pod) = self.objects.get_mut(&k) {
                    pod["status"]["phase"] = json!("Running");
                    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
                    pod["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
            changed |= self.boot_nodes();
            if !self.replication_paused {
                changed |= self.deploy();
                changed |= self.replicate();
            }
            changed |= self.recompute_pdbs();
            changed |= self.gitops();
            if !changed {
                // Settled: nothing to do until the store changes or a timer is due.
                self.settled = (self.resource_version, self.now_ms);
                break;
            }
        }
    }

    /// Keeps each ReplicaSet's replicas, creating missing pods on a schedulable node other than
    /// the one the last pod left (Running, Ready after `pod_ready_delay_ms`).
    pub(super) fn replicate(&mut self) -> bool {
        let mut changed = false;
        let sets: Vec<Value> = self
            .objects_of("replicasets", None)
            .map(|(_, v)| v.clone())
            .collect();
        // The pods by their controller's UID, once for all the sets (a set's own changes below
        // touch only its own pods).
        let mut by_owner: BTreeMap<String, Vec<Key>> = BTreeMap::new();
        for (k, p) in self.objects_of("pods", None) {
            if let Some(uid) = controller_uid(p) {
                by_owner.entry(uid.to_string()).or_default().push(k.clone());
            }
        }
        for rs in sets {
            let want = rs
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let uid = str_at(&rs, "/metadata/uid").to_string();
            let namespace = str_at(&rs, "/metadata/namespace").to_string();
            let owned: Vec<&Value> = by_owner
                .get(&uid)
                .into_iter()
                .flatten()
                .filter(|(_, ns, _)| *ns == namespace)
                .filter_map(|k| self.objects.get(k))
                .collect();
            let live = owned.iter().filter(|p| !terminating(p)).count() as i64;
            let busy: BTreeSet<String> = owned
                .iter()
                .filter(|p| terminating(p))
                .map(|p| str_at(p, "/spec/nodeName").to_string())
                .collect();
            let ready = owned
                .iter()
                .filter(|p| !terminating(p) && pod_ready(p))
                .count();
            // Too many: the newest go first (the controller's preference, simplified).
            let mut surplus: Vec<(String, String)> = owned
                .iter()
                .filter(|p| !terminating(p))
                .map(|p| {
                    (
                        str_at(p, "/metadata/creationTimestamp").to_string(),
                        str_at(p, "/metadata/name").to_string(),
                    )
                })
                .collect();
            surplus.sort();
            let excess = usize::try_from(live - want).unwrap_or(0);
            for (_, pod) in surplus.into_iter().rev().take(excess) {
                // A graceful delete without settling (this runs inside `settle`).
                let k = key(pods_kind(), &namespace, &pod);
                let rv = self.next_rv();
                let Some(stored) = self.objects.get_mut(&k) else {
                    continue;
                };
                let grace = stored
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                let at = self.now_ms + grace * 1000;
                stored["metadata"]["deletionTimestamp"] = json!(breakwater::clock::rfc3339(at));
                stored["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                stored["metadata"]["resourceVersion"] = json!(rv);
                self.removals.insert(k, at);
                changed = true;
            }
            for _ in live..want {
                let Some(node) = self.schedulable_node(&busy) else {
                    break;
                };
                let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let mut pod = json!({
                    "metadata": template.get("metadata").cloned().unwrap_or(json!({})),
                    "spec": template.get("spec").cloned().unwrap_or(json!({})),
                });
                pod["metadata"]["generateName"] =
                    json!(format!("{}-", str_at(&rs, "/metadata/name")));
                pod["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": str_at(&rs, "/metadata/name"),
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
                pod["spec"]["nodeName"] = json!(node);
                pod["status"] = json!({"phase": "Pending"});
                if let Ok(created) = self.create_quietly(&namespace, pod) {
                    let k = key(pods_kind(), &namespace, str_at(&created, "/metadata/name"));
                    self.readiness
                        .insert(k, self.now_ms + self.pod_ready_delay_ms);
                    changed = true;
                }
            }
            let status = json!({"replicas": live.max(0), "readyReplicas": ready,
                "availableReplicas": ready, "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
            let k = key(
                find_kind("apps", "v1", "replicasets").unwrap_or(&KINDS[7]),
                &namespace,
                str_at(&rs, "/metadata/name"),
            );
            if self.objects.get(&k).and_then(|o| o.get("status")) != Some(&status) {
                let rv = self.next_rv();
                if let Some(stored) = self.objects.get_mut(&k) {
                    stored["status"] = status;
                    stored["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
        }
        changed
    }

    pub(super) fn create_quietly(
        &mut self,
        namespace: &str,
        mut pod: Value,
    ) -> Result<Value, ApiError> {
        if pod.pointer("/spec/terminationGracePeriodSeconds").is_none() {
            pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
        }
        Ok(self.insert_new(pods_kind(), namespace, pod))
    }

    pub(super) fn schedulable_node(&self, avoid: &BTreeSet<String>) -> Option<String> {
        let nodes: Vec<&Value> = self
            .objects_of("nodes", None)
            .map(|(_, n)| n)
            .filter(|n| n.pointer("/spec/unschedulable") != Some(&json!(true)))
            .filter(|n| {
                !n.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
                    })
            })
            .collect();
        let count = |node: &str| {
            self.objects_of("pods", None)
                .filter(|(_, p)| str_at(p, "/spec/nodeName") == node)
                .count()
        };
        nodes
            .iter()
            .map(|n| str_at(n, "/metadata/name").to_string())
            .filter(|n| !avoid.contains(n))
            .min_by_key(|n| count(n))
    }

    pub(super) fn recompute_pdbs(&mut self) -> bool {
        let mut changed = false;
        let keys: Vec<Key> = self
            .objects_of("poddisruptionbudgets", None)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if self.stale_pdbs.contains(&(k.1.clone(), k.2.clone())) {
                continue;
            }
            let Some(pdb) = self.objects.get(&k).cloned() else {
                continue;
            };
            let selector = pdb.pointer("/spec/selector").cloned();
            let no_labels = json!({});
            let pods: Vec<&Value> = self
                .objects_of("pods", Some(&k.1))
                .map(|(_, p)| p)
                .filter(|p| {
                    selector_matches(
                        selector.as_ref(),
                        p.pointer("/metadata/labels").unwrap_or(&no_labels),
                    )
                })
                .collect();
            let healthy = pods
                .iter()
                .filter(|p| !terminating(p) && pod_ready(p))
                .count() as i64;
            let expected = self.expected_pods(&k.1, &pods);
            let desired = desired_healthy(&pdb, expected);
            let allowed = (healthy - desired).max(0);
            let generation = pdb
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            let disrupted: Map<String, Value> = pdb
                .pointer("/status/disruptedPods")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(name, _)| {
                            pods.iter().any(|p| {
                                str_at(p, "/metadata/name") == name.as_str() && !terminating(p)
                            })
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let status = json!({
                "observedGeneration": generation,
                "disruptionsAllowed": allowed,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "disruptedPods": disrupted,
            });
            if pdb.get("status") != Some(&status) {
                let rv = self.next_rv();
                if let Some(stored) = self.objects.get_mut(&k) {
                    stored["status"] = status;
                    stored["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
        }
        changed
    }

    /// The disruption controller's expected count: the replicas of the pods' ReplicaSets when
    /// every pod has one, else the number of pods.
    pub(super) fn expected_pods(&self, namespace: &str, pods: &[&Value]) -> i64 {
        let owners: BTreeSet<&str> = pods.iter().filter_map(|p| controller_uid(p)).collect();
        if pods.is_empty() || pods.iter().any(|p| controller_uid(p).is_none()) {
            return pods.len() as i64;
        }
        let mut total = 0;
        for uid in owners {
            let Some(rs) = self
                .objects_of("replicasets", Some(namespace))
                .find(|(_, o)| str_at(o, "/metadata/uid") == uid)
            else {
                return pods.len() as i64;
            };
            total +=
                rs.1.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
        }
        total
    }
}

pub(super) fn int_or_percent(value: &Value, expected: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = pct * expected;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

pub(super) fn desired_healthy(pdb: &Value, expected: i64) -> i64 {
    if let Some(min) = pdb.pointer("/spec/minAvailable") {
        return int_or_percent(min, expected, true);
    }
    if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
        return (expected - int_or_percent(max, expected, true)).max(0);
    }
    1
}

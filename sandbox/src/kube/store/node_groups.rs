//! The nodes of EKS managed node groups as the cluster sees them: when a group's desired size
//! grows, each instance its Auto Scaling group launches registers a Node that is not Ready yet,
//! and its kubelet reports Ready after a boot delay; when it shrinks, the newest nodes go.
//!
//! As on EKS: every node of a managed node group carries the `eks.amazonaws.com/nodegroup` and
//! `eks.amazonaws.com/capacityType` labels ("Amazon EKS adds Kubernetes labels to managed node
//! group instances", <https://docs.aws.amazon.com/eks/latest/userguide/managed-node-groups.html>).
//! A node whose `Ready` condition is not `True` carries the `node.kubernetes.io/not-ready`
//! `NoSchedule` taint, so nothing is scheduled on it until it is Ready ("the node controller
//! automatically taints a Node when certain conditions are true … node.kubernetes.io/not-ready:
//! Node is not ready. This corresponds to the NodeCondition Ready being False",
//! <https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/#taint-based-evictions>).
//! A node that leaves takes its pods with it (the pod garbage collector deletes pods bound to a
//! node that no longer exists, <https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-garbage-collection>);
//! the ReplicaSet controller then replaces them wherever there is room.

use serde_json::{json, Value};

use super::{find_kind, key, str_at, terminating, Cluster, Key, KINDS};

pub use breakwater::kube::capacity::NODE_GROUP_LABEL;
/// The taint a node carries until its `Ready` condition is `True`.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

fn nodes_kind() -> &'static super::ResourceKind {
    find_kind("", "v1", "nodes").unwrap_or(&KINDS[1])
}

impl Cluster {
    /// The nodes of `group`, oldest first (name order within a creation time).
    pub fn node_group_nodes(&self, group: &str) -> Vec<String> {
        let mut nodes: Vec<(String, String)> = self
            .objects
            .iter()
            .filter(|((plural, _, _), n)| {
                plural == "nodes"
                    && str_at(
                        n,
                        &format!("/metadata/labels/{}", pointer_escape(NODE_GROUP_LABEL)),
                    ) == group
                    && !terminating(n)
            })
            .map(|(_, n)| {
                (
                    str_at(n, "/metadata/creationTimestamp").to_string(),
                    str_at(n, "/metadata/name").to_string(),
                )
            })
            .collect();
        nodes.sort();
        nodes.into_iter().map(|(_, name)| name).collect()
    }

    /// Brings `group` to `desired` nodes: the missing ones register now, not Ready and tainted
    /// [`NOT_READY_TAINT`], and become Ready `boot_ms` later on the emulator's clock; the
    /// newest surplus nodes leave with their pods. Returns how many nodes were added (negative:
    /// removed).
    pub fn scale_node_group(
        &mut self,
        group: &str,
        desired: usize,
        capacity_type: &str,
        zone: &str,
        boot_ms: u64,
    ) -> i64 {
        let now = self.now_ms;
        self.scale_node_group_since(group, desired, capacity_type, zone, boot_ms, now)
    }

    /// [`Self::scale_node_group`] for a group asked to grow at `asked_ms` (on the emulator's
    /// clock, not after now): its instances started booting then, as an Auto Scaling group's
    /// launch begins with the update, so the new nodes are Ready at `asked_ms + boot_ms`
    /// however late the emulator noticed the update.
    pub fn scale_node_group_since(
        &mut self,
        group: &str,
        desired: usize,
        capacity_type: &str,
        zone: &str,
        boot_ms: u64,
        asked_ms: u64,
    ) -> i64 {
        let booted_from = asked_ms.min(self.now_ms);
        let nodes = self.node_group_nodes(group);
        let mut delta = 0;
        for _ in nodes.len()..desired {
            self.node_serial += 1;
            let serial = self.node_serial;
            let name = format!(
                "ip-10-{}-{}-{}.{group}.compute.internal",
                (serial / 65_536) % 256,
                (serial / 256) % 256,
                serial % 256
            );
            let instance = format!("i-0{:016x}", 0x5eed_0000_0000 + serial);
            let node = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": {
                    "kubernetes.io/hostname": name,
                    "topology.kubernetes.io/zone": zone,
                    NODE_GROUP_LABEL: group,
                    "eks.amazonaws.com/capacityType": capacity_type,
                }},
                "spec": {
                    "providerID": format!("aws:///{zone}/{instance}"),
                    "taints": [{"key": NOT_READY_TAINT, "effect": "NoSchedule"}],
                },
                "status": {"conditions": [{
                    "type": "Ready", "status": "False", "reason": "KubeletNotReady",
                    "message": "container runtime network not ready",
                    "lastTransitionTime": breakwater::clock::rfc3339(self.now_ms),
                }]},
            });
            let created = self.insert_new(nodes_kind(), "", node);
            let k = key(nodes_kind(), "", str_at(&created, "/metadata/name"));
            self.node_boots.insert(k, booted_from + boot_ms);
            delta += 1;
        }
        for name in nodes.iter().skip(desired).rev() {
            self.remove_node(name);
            delta -= 1;
        }
        if delta != 0 {
            self.settle();
        }
        delta
    }

    /// The kubelets of booting nodes that are due report Ready (the not-ready taint goes).
    pub(super) fn boot_nodes(&mut self) -> bool {
        let now = self.now_ms;
        let due: Vec<Key> = self
            .node_boots
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &due {
            self.node_boots.remove(k);
            let rv = self.next_rv();
            if let Some(node) = self.objects.get_mut(k) {
                node["status"]["conditions"] = json!([{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastTransitionTime": breakwater::clock::rfc3339(now),
                }]);
                let taints: Vec<Value> = node
                    .pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .map(|t| {
                        t.iter()
                            .filter(|t| t["key"] != NOT_READY_TAINT)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                if taints.is_empty() {
                    if let Some(spec) = node["spec"].as_object_mut() {
                        spec.remove("taints");
                    }
                } else {
                    node["spec"]["taints"] = json!(taints);
                }
                node["metadata"]["resourceVersion"] = json!(rv);
            }
        }
        !due.is_empty()
    }

    /// A node leaves (its instance terminated): the Node and every pod bound to it.
    fn remove_node(&mut self, name: &str) {
        let k = key(nodes_kind(), "", name);
        self.forget(&k);
        self.node_boots.remove(&k);
        let bound: Vec<Key> = self
            .objects
            .iter()
            .filter(|((plural, _, _), p)| plural == "pods" && str_at(p, "/spec/nodeName") == name)
            .map(|(k, _)| k.clone())
            .collect();
        for k in bound {
            self.forget(&k);
            self.removals.remove(&k);
            self.readiness.remove(&k);
        }
    }
}

/// A JSON pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
fn pointer_escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(cluster: &Cluster, name: &str) -> bool {
        cluster
            .get(nodes_kind(), "", name)
            .and_then(|n| n.pointer("/status/conditions/0/status").cloned())
            == Some(json!("True"))
    }

    #[test]
    fn nodes_register_not_ready_and_tainted_then_become_ready_after_the_boot_delay() {
        let mut c = Cluster::new(1_000_000);
        assert_eq!(
            c.scale_node_group("web", 2, "ON_DEMAND", "us-west-2a", 30_000),
            2
        );
        let nodes = c.node_group_nodes("web");
        assert_eq!(nodes.len(), 2);
        let node = c.get(nodes_kind(), "", &nodes[0]).cloned().unwrap();
        assert_eq!(node["metadata"]["labels"][NODE_GROUP_LABEL], "web");
        assert_eq!(node["spec"]["taints"][0]["key"], NOT_READY_TAINT);
        assert!(!ready(&c, &nodes[0]));
        c.advance_to(1_029_999);
        assert!(!ready(&c, &nodes[0]));
        c.advance_to(1_030_000);
        assert!(nodes.iter().all(|n| ready(&c, n)));
        let node = c.get(nodes_kind(), "", &nodes[0]).cloned().unwrap();
        assert!(node["spec"].get("taints").is_none(), "{node}");
        // The same size again changes nothing.
        assert_eq!(
            c.scale_node_group("web", 2, "ON_DEMAND", "us-west-2a", 30_000),
            0
        );
    }

    #[test]
    fn nodes_of_an_update_noticed_late_boot_from_the_update() {
        // GIVEN an update made at 1_000_000, noticed 100 ms later
        let mut c = Cluster::new(1_000_100);
        c.scale_node_group_since("web", 1, "ON_DEMAND", "us-west-2a", 30_000, 1_000_000);
        let nodes = c.node_group_nodes("web");
        // THEN its node is Ready 30 s after the update, not after the notice
        c.advance_to(1_029_999);
        assert!(!ready(&c, &nodes[0]));
        c.advance_to(1_030_000);
        assert!(ready(&c, &nodes[0]));
        // AND a time after now is taken as now
        c.scale_node_group_since("web", 2, "ON_DEMAND", "us-west-2a", 30_000, 9_000_000);
        let second = c.node_group_nodes("web")[1].clone();
        c.advance_to(1_059_999);
        assert!(!ready(&c, &second));
        c.advance_to(1_060_000);
        assert!(ready(&c, &second));
    }

    #[test]
    fn pods_wait_for_a_ready_node_and_leave_with_it() {
        let mut c = Cluster::new(1_000_000);
        c.pod_ready_delay_ms = 5_000;
        let rs = crate::kube::fixtures::replica_set("web-1", "web", 2);
        c.create(find_kind("apps", "v1", "replicasets").unwrap(), "shop", rs)
            .unwrap();
        let pods = |c: &Cluster| {
            let pods_kind = find_kind("", "v1", "pods").unwrap();
            c.list(pods_kind, Some("shop"), None, None)
                .unwrap_or_default()
                .len()
        };
        assert_eq!(pods(&c), 0, "no node: nothing is scheduled");
        c.scale_node_group("web", 1, "ON_DEMAND", "us-west-2a", 30_000);
        assert_eq!(pods(&c), 0, "a booting node is tainted not-ready");
        c.advance_to(1_030_000);
        assert_eq!(pods(&c), 2);
        c.scale_node_group("web", 0, "ON_DEMAND", "us-west-2a", 30_000);
        assert!(c.node_group_nodes("web").is_empty());
        assert_eq!(pods(&c), 0, "the pods of a node that left are gone");
    }
}

//! Objects as a real cluster holds them, for seeding the emulator: EKS nodes with their
//! `providerID` and labels, pods owned by ReplicaSets and DaemonSets (and mirror and finished
//! pods), PodDisruptionBudgets.

use serde_json::{json, Value};

/// An EKS node: `aws:///<az>/<instance-id>`, the node-group and capacity-type labels.
pub fn node(name: &str, instance_id: &str, az: &str, node_group: &str, capacity: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": az,
            "eks.amazonaws.com/nodegroup": node_group,
            "eks.amazonaws.com/capacityType": capacity,
        }},
        "spec": {"providerID": format!("aws:///{az}/{instance_id}")},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    })
}

/// A ReplicaSet of `replicas` pods labelled `app=<app>` (its pods are added with [`pod`]).
pub fn replica_set(name: &str, app: &str, replicas: i64) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": app, "image": format!("{app}:1")}],
                         "terminationGracePeriodSeconds": 30}}},
    })
}

/// A DaemonSet named `name`.
pub fn daemon_set(name: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": format!("{name}:1")}]}}},
    })
}

/// A running, ready pod on `node`, owned by `owner` (`(kind, name, uid)`) if given.
pub fn pod(
    name: &str,
    node: &str,
    app: &str,
    owner: Option<(&str, &str, &str)>,
    grace: i64,
) -> Value {
    let mut pod = json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": grace,
            "containers": [{"name": app, "image": format!("{app}:1")}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    });
    if let Some((kind, owner_name, uid)) = owner {
        let api_version = if kind == "Node" { "v1" } else { "apps/v1" };
        pod["metadata"]["ownerReferences"] = json!([{"apiVersion": api_version, "kind": kind,
            "name": owner_name, "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
    }
    pod
}

/// A static (mirror) pod on `node`, as the kubelet reports it.
pub fn mirror_pod(name: &str, node: &str) -> Value {
    let mut p = pod(name, node, name, Some(("Node", node, "node-uid")), 30);
    p["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc123"});
    p
}

/// A PDB over `app=<app>` with `minAvailable` or `maxUnavailable` (an int or a percentage).
pub fn pdb(
    name: &str,
    app: &str,
    min_available: Option<Value>,
    max_unavailable: Option<Value>,
) -> Value {
    let mut spec = json!({"selector": {"matchLabels": {"app": app}}});
    if let Some(m) = min_available {
        spec["minAvailable"] = m;
    }
    if let Some(m) = max_unavailable {
        spec["maxUnavailable"] = m;
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

/// 10 apps × 5 pods on `node` in `namespace`: each app a ReplicaSet of 5 whose pods all sit on
/// the node, guarded by `maxUnavailable: 1`, with 5 s of grace; beside them a DaemonSet pod, a
/// mirror pod and a finished pod (which a drain leaves). Seeded with replication paused.
pub fn fifty_pod_workload(
    emulator: &super::KubeEmulator,
    node: &str,
    namespace: &str,
) -> Result<(), super::store::ApiError> {
    emulator.with(|c| c.pause_replication(true));
    let uid = |v: &Value| {
        v["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for app in 0..10 {
        let name = format!("app{app}");
        let rs_name = format!("{name}-5c7d");
        let rs = emulator.create("replicasets", namespace, replica_set(&rs_name, &name, 5))?;
        for i in 0..5 {
            emulator.create(
                "pods",
                namespace,
                pod(
                    &format!("{name}-{i}"),
                    node,
                    &name,
                    Some(("ReplicaSet", &rs_name, &uid(&rs))),
                    5,
                ),
            )?;
        }
        emulator.create(
            "poddisruptionbudgets",
            namespace,
            pdb(&name, &name, None, Some(json!(1))),
        )?;
    }
    let ds_name = format!("node-exporter-{namespace}");
    let ds = emulator.create("daemonsets", namespace, daemon_set(&ds_name))?;
    emulator.create(
        "pods",
        namespace,
        pod(
            &format!("{ds_name}-x"),
            node,
            &ds_name,
            Some(("DaemonSet", &ds_name, &uid(&ds))),
            30,
        ),
    )?;
    emulator.create(
        "pods",
        namespace,
        mirror_pod(&format!("kube-proxy-{namespace}"), node),
    )?;
    let mut done = pod(&format!("report-{namespace}"), node, "report", None, 30);
    done["status"] = json!({"phase": "Succeeded"});
    emulator.create("pods", namespace, done)?;
    emulator.with(|c| c.pause_replication(false));
    Ok(())
}

/// A Deployment of `replicas` pods labelled `app=<app>` running `image` (the emulator's
/// Deployment controller makes its ReplicaSet and pods).
pub fn deployment(name: &str, app: &str, replicas: i64, image: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
            "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
            "strategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": app, "image": image}],
                         "terminationGracePeriodSeconds": 5}}},
    })
}

/// An Argo Rollout in the middle of a canary: revision 2 at 20 % beside stable revision 1.
pub fn canary_rollout(name: &str, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": app},
            "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {"replicas": 5, "selector": {"matchLabels": {"app": app}},
            "strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 100}]}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": app, "image": format!("{app}:2")}]}}},
        "status": {"phase": "Paused", "currentStepIndex": 1, "currentPodHash": "6b8d9f7c5",
            "stableRS": "58c7d4b9f6", "canary": {"weights": {
                "canary": {"weight": 20, "podTemplateHash": "6b8d9f7c5"},
                "stable": {"weight": 80, "podTemplateHash": "58c7d4b9f6"}}}},
    })
}

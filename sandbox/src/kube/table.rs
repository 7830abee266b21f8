//! Server-side printing: what the API server answers a `GET` whose `Accept` asks for
//! `as=Table;g=meta.k8s.io;v=v1` (kubectl's `get` does): a `Table` of the columns the real
//! server prints for the kind — nodes (`Name`, `Status`, `Roles`, `Age`, `Version`), pods
//! (`Name`, `Ready`, `Status`, `Restarts`, `Age`), Deployments (`Name`, `Ready`, `Up-to-date`,
//! `Available`, `Age`) — and for any other kind the default (`Name`, `Created At`). Each row
//! carries the object's metadata (`PartialObjectMetadata`), which kubectl reads for
//! `--all-namespaces`' `NAMESPACE` column. Upstream: `pkg/printers/internalversion/printers.go`
//! and `staging/src/k8s.io/apiserver/pkg/registry/rest/table.go`.

use serde_json::{json, Value};

/// Whether `accept` asks for a Table.
pub fn wanted(accept: &str) -> bool {
    accept
        .split(',')
        .any(|a| a.contains("as=Table") && a.contains("g=meta.k8s.io"))
}

/// `answer` (a list or one object) as a Table at `now_ms`.
pub fn table(answer: &Value, now_ms: u64) -> Value {
    let (kind, objects): (String, Vec<&Value>) = match answer["items"].as_array() {
        Some(items) => (
            answer["kind"]
                .as_str()
                .unwrap_or_default()
                .trim_end_matches("List")
                .to_string(),
            items.iter().collect(),
        ),
        None => (
            answer["kind"].as_str().unwrap_or_default().to_string(),
            vec![answer],
        ),
    };
    // (name, type) of each column, as the real printers declare them (all priority 0).
    let columns: &[(&str, &str)] = match kind.as_str() {
        "Node" => &[
            ("Name", "string"),
            ("Status", "string"),
            ("Roles", "string"),
            ("Age", "string"),
            ("Version", "string"),
        ],
        "Pod" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Status", "string"),
            ("Restarts", "string"),
            ("Age", "string"),
        ],
        "Deployment" => &[
            ("Name", "string"),
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
            ("Age", "string"),
        ],
        _ => &[("Name", "string"), ("Created At", "date")],
    };
    let columns: Vec<Value> = columns
        .iter()
        .map(|(name, kind)| {
            json!({"name": name, "type": kind, "format": if *name == "Name" { "name" } else { "" },
                "description": "", "priority": 0})
        })
        .collect();
    let rows: Vec<Value> = objects
        .into_iter()
        .map(|o| {
            let name = o["metadata"]["name"].clone();
            let age = age(o, now_ms);
            let cells = match kind.as_str() {
                "Node" => json!([
                    name,
                    node_status(o),
                    roles(o),
                    age,
                    o["status"]["nodeInfo"]["kubeletVersion"]
                        .as_str()
                        .unwrap_or("")
                ]),
                "Pod" => {
                    let (ready, total, restarts) = containers(o);
                    json!([
                        name,
                        format!("{ready}/{total}"),
                        pod_status(o),
                        restarts.to_string(),
                        age
                    ])
                }
                "Deployment" => {
                    let s = &o["status"];
                    let n = |v: &Value| v.as_i64().unwrap_or(0);
                    json!([
                        name,
                        format!("{}/{}", n(&s["readyReplicas"]), n(&o["spec"]["replicas"])),
                        n(&s["updatedReplicas"]),
                        n(&s["availableReplicas"]),
                        age
                    ])
                }
                _ => json!([name, o["metadata"]["creationTimestamp"].clone()]),
            };
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"].clone()}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": answer["metadata"]["resourceVersion"].clone()},
        "columnDefinitions": columns, "rows": rows})
}

/// `Ready`, `NotReady` or `Unknown` from the `Ready` condition, then `SchedulingDisabled` when
/// cordoned (printers.go `printNode`).
fn node_status(node: &Value) -> String {
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .map(|c| match c["status"].as_str() {
            Some("True") => "Ready",
            _ => "NotReady",
        })
        .unwrap_or("Unknown");
    let mut status = ready.to_string();
    if node["spec"]["unschedulable"] == true {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// The roles from `node-role.kubernetes.io/<role>` labels, or `<none>`.
fn roles(node: &Value) -> String {
    let mut roles: Vec<&str> = node["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
        .collect();
    roles.sort();
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// Ready containers, all containers, restarts.
fn containers(pod: &Value) -> (usize, usize, i64) {
    let statuses = pod["status"]["containerStatuses"].as_array();
    let total = pod["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses
        .into_iter()
        .flatten()
        .filter(|s| s["ready"] == true)
        .count();
    let restarts = statuses
        .into_iter()
        .flatten()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    (ready, total, restarts)
}

/// `Terminating` once deleted, else the phase (printers.go `printPod`, simplified: no
/// per-container waiting reasons).
fn pod_status(pod: &Value) -> String {
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    pod["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_string()
}

/// The object's age as kubectl prints durations (`duration.HumanDuration`).
fn age(object: &Value, now_ms: u64) -> String {
    let Some(created) = object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(breakwater::clock::parse_rfc3339)
    else {
        return "<unknown>".into();
    };
    let s = now_ms.saturating_sub(created) / 1000;
    let (m, h, d) = (s / 60, s / 3600, s / 86_400);
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 => format!("{m}m{}s", s % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cordoned_node_prints_as_kubectl_shows_it() {
        let node = json!({"kind": "Node", "metadata": {"name": "ip-10-0-0-1",
            "creationTimestamp": "2026-11-23T00:00:00Z",
            "labels": {"node-role.kubernetes.io/worker": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.32.0"}}});
        let t0 = breakwater::clock::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let t = table(&node, t0 + 3_725_000);
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "ip-10-0-0-1",
                "Ready,SchedulingDisabled",
                "worker",
                "62m",
                "v1.32.0"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "ip-10-0-0-1");
        assert!(wanted(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wanted("application/json"));
    }

    #[test]
    fn a_list_of_pods_prints_one_row_each() {
        let list = json!({"kind": "PodList", "metadata": {"resourceVersion": "7"}, "items": [
            {"metadata": {"name": "web-0", "namespace": "shop", "creationTimestamp": "2026-11-23T00:00:00Z"},
             "spec": {"containers": [{"name": "c"}]},
             "status": {"phase": "Running", "containerStatuses": [{"ready": true, "restartCount": 2}]}},
            {"metadata": {"name": "web-1", "namespace": "shop", "deletionTimestamp": "2026-11-23T00:01:00Z"},
             "spec": {"containers": [{"name": "c"}]}, "status": {"phase": "Running"}}]});
        let t0 = breakwater::clock::parse_rfc3339("2026-11-23T00:00:00Z").unwrap();
        let t = table(&list, t0 + 90_000);
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web-0", "1/1", "Running", "2", "90s"])
        );
        assert_eq!(t["rows"][1]["cells"][2], "Terminating");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}

//! The Kubernetes API emulator, over HTTP: the eviction subresource with the API server's
//! PodDisruptionBudget rules, graceful deletion with preconditions, the three patch formats,
//! resourceVersion conflicts, `dryRun=All`, throttling — and the real `kubectl cordon` and
//! `kubectl drain` against it, which must leave the state the API server would.

use std::process::Command;

use breakwater_sandbox::kube::fixtures::{daemon_set, mirror_pod, node, pdb, pod, replica_set};
use breakwater_sandbox::kube::{KubeEmulator, Throttle};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

use crate::common::kubectl;

const NOV_23: u64 = 1_795_392_000_000;
const NODE_A: &str = "ip-10-0-1-10.ec2.internal";
const NODE_B: &str = "ip-10-0-2-20.ec2.internal";

async fn call(
    emu: &KubeEmulator,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::builder()
        .method(method)
        .uri(format!("{}{path}", emu.endpoint()))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Runs the real kubectl with `config`, `dir` as its home: whether it succeeded, and what it
/// printed.
fn kubectl_run(
    kubectl: &str,
    config: &std::path::Path,
    dir: &std::path::Path,
    args: &[&str],
) -> (bool, String) {
    let out = Command::new(kubectl)
        .env("KUBECONFIG", config)
        .env("HOME", dir)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn uid(obj: &Value) -> String {
    obj["metadata"]["uid"].as_str().unwrap().to_string()
}

/// Two nodes; on node A: three `web` pods of a ReplicaSet of 4 guarded by `minAvailable: 3`, two
/// `api` pods guarded by `maxUnavailable: 1`, a DaemonSet pod, a mirror pod and a finished Job pod.
async fn estate(factor: f64) -> KubeEmulator {
    let emu = KubeEmulator::start(NOV_23, factor).await.unwrap();
    emu.with(|c| c.pause_replication(true));
    emu.create(
        "nodes",
        "",
        node(NODE_A, "i-0aaa1111", "us-east-1a", "spot-a", "SPOT"),
    )
    .unwrap();
    emu.create(
        "nodes",
        "",
        node(NODE_B, "i-0bbb2222", "us-east-1b", "on-demand", "ON_DEMAND"),
    )
    .unwrap();
    for (app, replicas, on_a) in [("web", 4, 3), ("api", 2, 2)] {
        let rs = emu
            .create(
                "replicasets",
                "shop",
                replica_set(&format!("{app}-7d9f"), app, replicas),
            )
            .unwrap();
        for i in 0..replicas {
            let node = if i < on_a { NODE_A } else { NODE_B };
            emu.create(
                "pods",
                "shop",
                pod(
                    &format!("{app}-{i}"),
                    node,
                    app,
                    Some(("ReplicaSet", &format!("{app}-7d9f"), &uid(&rs))),
                    30,
                ),
            )
            .unwrap();
        }
    }
    emu.create(
        "poddisruptionbudgets",
        "shop",
        pdb("web", "web", Some(json!(3)), None),
    )
    .unwrap();
    emu.create(
        "poddisruptionbudgets",
        "shop",
        pdb("api", "api", None, Some(json!(1))),
    )
    .unwrap();
    let ds = emu
        .create("daemonsets", "kube-system", daemon_set("node-exporter"))
        .unwrap();
    emu.create(
        "pods",
        "kube-system",
        pod(
            "node-exporter-a",
            NODE_A,
            "node-exporter",
            Some(("DaemonSet", "node-exporter", &uid(&ds))),
            30,
        ),
    )
    .unwrap();
    emu.create("pods", "kube-system", mirror_pod("kube-proxy-a", NODE_A))
        .unwrap();
    let mut job = pod(
        "report-28471",
        NODE_A,
        "report",
        Some(("Job", "report", "job-uid")),
        30,
    );
    job["metadata"]["ownerReferences"][0]["apiVersion"] = json!("batch/v1");
    job["status"] = json!({"phase": "Succeeded"});
    emu.create("pods", "batch", job).unwrap();
    emu.with(|c| c.pause_replication(false));
    emu
}

fn pods_on(emu: &KubeEmulator, node: &str) -> Vec<String> {
    let mut names: Vec<String> = emu
        .list("pods")
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn evictions_follow_the_api_servers_disruption_budget_rules() {
    let emu = estate(0.0).await;
    let eviction = |name: &str, delete_options: Value| {
        json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": "shop"}, "deleteOptions": delete_options})
    };
    let web = |n: &str| emu.get("pods", "shop", n).unwrap();
    let allowed = |name: &str| {
        emu.get("poddisruptionbudgets", "shop", name).unwrap()["status"]["disruptionsAllowed"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(allowed("web"), 1, "4 healthy, 3 needed");

    // A UID precondition that does not match: 409, nothing deleted, no disruption spent.
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-0/eviction",
        "application/json",
        Some(eviction(
            "web-0",
            json!({"preconditions": {"uid": "not-the-uid"}}),
        )),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("Conflict")),
        "{body}"
    );
    assert!(web("web-0")["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(allowed("web"), 1);

    // dryRun=All: the answer of a real eviction, and no change.
    let (status, _) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-0/eviction?dryRun=All",
        "application/json",
        Some(eviction("web-0", json!({}))),
    )
    .await;
    assert_eq!(status, 201);
    assert!(web("web-0")["metadata"]["deletionTimestamp"].is_null());

    // The allowed disruption: 201, the pod terminates with the grace asked for, the budget is spent.
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-0/eviction",
        "application/json",
        Some(eviction(
            "web-0",
            json!({"gracePeriodSeconds": 10, "preconditions": {"uid": uid(&web("web-0"))}}),
        )),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (201, Some("Success")),
        "{body}"
    );
    assert_eq!(web("web-0")["metadata"]["deletionGracePeriodSeconds"], 10);
    assert_eq!(allowed("web"), 0);

    // The next one is refused with the DisruptionBudget cause.
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-1/eviction",
        "application/json",
        Some(eviction("web-1", json!({}))),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        body["details"]["causes"][0]["message"],
        "The disruption budget web needs 3 healthy pods and has 3 currently"
    );

    // The ReplicaSet replaces web-0 at once (a terminating pod does not count); the budget
    // allows one more once the replacement is Ready, and the kubelet removes web-0 after its 10 s.
    let replacement = emu
        .list("pods")
        .into_iter()
        .find(|p| p["metadata"]["generateName"] == "web-7d9f-")
        .expect("a replacement pod");
    assert_eq!(
        replacement["spec"]["nodeName"], NODE_B,
        "not onto the node being drained"
    );
    assert_eq!(allowed("web"), 0, "the replacement is not Ready yet");
    emu.advance(2_000);
    assert_eq!(allowed("web"), 1);
    assert!(emu.get("pods", "shop", "web-0").is_some());
    emu.advance(8_000);
    assert!(emu.get("pods", "shop", "web-0").is_none());

    // A stale budget status: 429 until the disruption controller catches up.
    emu.with(|c| c.mark_pdb_stale("shop", "web"));
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-1/eviction",
        "application/json",
        Some(eviction("web-1", json!({}))),
    )
    .await;
    assert_eq!(status, 429);
    assert!(body["details"]["causes"][0]["message"]
        .as_str()
        .unwrap()
        .contains("still being processed"));
    emu.with(|c| c.refresh_pdb("shop", "web"));

    // A pod under two budgets: 500, as the API server answers.
    emu.create(
        "poddisruptionbudgets",
        "shop",
        pdb("web-too", "web", Some(json!(1)), None),
    )
    .unwrap();
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/web-1/eviction",
        "application/json",
        Some(eviction("web-1", json!({}))),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("more than one PodDisruptionBudget"));

    // Finished and pending pods go without a budget check; a missing pod is 404.
    let (status, _) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/batch/pods/report-28471/eviction",
        "application/json",
        Some(json!({"metadata": {"name": "report-28471"}})),
    )
    .await;
    assert_eq!(status, 201);
    assert!(
        emu.get("pods", "batch", "report-28471").is_none(),
        "a finished pod goes at once"
    );
    let (status, body) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/nope/eviction",
        "application/json",
        Some(eviction("nope", json!({}))),
    )
    .await;
    assert_eq!((status, body["reason"].as_str()), (404, Some("NotFound")));
}

#[tokio::test]
async fn patches_conflicts_selectors_dry_run_and_throttling() {
    let emu = estate(0.0).await;
    let path = format!("/api/v1/nodes/{NODE_A}");
    let node = emu.get("nodes", "", NODE_A).unwrap();
    let rv = node["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    // Strategic merge: `spec.taints` is atomic (NodeSpec.Taints has no patchStrategy in
    // k8s.io/api core/v1 types.go), so a patch's list replaces the node's.
    let (status, body) = call(&emu, "PATCH", &path, "application/strategic-merge-patch+json",
        Some(json!({"spec": {"unschedulable": true, "taints": [{"key": "breakwater/draining", "effect": "NoSchedule"}]}}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        &emu,
        "PATCH",
        &path,
        "application/strategic-merge-patch+json",
        Some(json!({"spec": {"taints": [{"key": "spot", "effect": "NoExecute"}]}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let node = emu.get("nodes", "", NODE_A).unwrap();
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(
        node["spec"]["taints"],
        json!([{"key": "spot", "effect": "NoExecute"}]),
        "replaced, not merged by key: {node}"
    );

    // A JSON patch whose `test` of the old resourceVersion fails: 422, nothing applied.
    let (status, body) = call(
        &emu,
        "PATCH",
        &path,
        "application/json-patch+json",
        Some(json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/unschedulable", "value": false}])),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (422, Some("Invalid")),
        "{body}"
    );
    // A merge patch carrying a stale resourceVersion: 409.
    let (status, body) = call(
        &emu,
        "PATCH",
        &path,
        "application/merge-patch+json",
        Some(json!({"metadata": {"resourceVersion": rv}, "spec": {"unschedulable": false}})),
    )
    .await;
    assert_eq!(
        (status, body["reason"].as_str()),
        (409, Some("Conflict")),
        "{body}"
    );
    // dryRun=All answers the patched object and keeps the stored one.
    let (status, body) = call(
        &emu,
        "PATCH",
        &format!("{path}?dryRun=All"),
        "application/merge-patch+json",
        Some(json!({"spec": {"unschedulable": false}})),
    )
    .await;
    assert_eq!(
        (status, &body["spec"]["unschedulable"]),
        (200, &json!(false))
    );
    assert_eq!(
        emu.get("nodes", "", NODE_A).unwrap()["spec"]["unschedulable"],
        true
    );
    // Status is a subresource: the main resource does not change it.
    let (_, body) = call(
        &emu,
        "PATCH",
        &path,
        "application/merge-patch+json",
        Some(json!({"status": {"conditions": []}})),
    )
    .await;
    assert_eq!(body["status"]["conditions"][0]["type"], "Ready");

    // Selectors.
    let (status, body) = call(&emu, "GET",
        &format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{NODE_A}&labelSelector=app%20in%20(web,api)"),
        "", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "PodList");
    assert_eq!(
        body["items"].as_array().unwrap().len(),
        5,
        "3 web + 2 api on node A"
    );
    let (status, _) = call(
        &emu,
        "GET",
        "/api/v1/pods?fieldSelector=spec.color%3Dred",
        "",
        None,
    )
    .await;
    assert_eq!(status, 400);

    // Injected throttling: 429 with Retry-After, then normal service.
    emu.throttle(Throttle {
        method: Some("GET".into()),
        path_contains: "/nodes".into(),
        times: 1,
        retry_after_seconds: 2,
    });
    let (status, body) = call(&emu, "GET", &path, "", None).await;
    assert_eq!(
        (status, body["details"]["retryAfterSeconds"].as_i64()),
        (429, Some(2))
    );
    assert_eq!(call(&emu, "GET", &path, "", None).await.0, 200);

    // Graceful delete with a UID precondition.
    let api0 = emu.get("pods", "shop", "api-0").unwrap();
    let (status, _) = call(
        &emu,
        "DELETE",
        "/api/v1/namespaces/shop/pods/api-0",
        "application/json",
        Some(json!({"preconditions": {"uid": "other"}})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = call(
        &emu,
        "DELETE",
        "/api/v1/namespaces/shop/pods/api-0",
        "application/json",
        Some(json!({"gracePeriodSeconds": 5, "preconditions": {"uid": uid(&api0)}})),
    )
    .await;
    assert_eq!(
        (
            status,
            body["metadata"]["deletionGracePeriodSeconds"].as_i64()
        ),
        (200, Some(5))
    );
    emu.advance(4_999);
    assert!(emu.get("pods", "shop", "api-0").is_some());
    emu.advance(1);
    assert!(emu.get("pods", "shop", "api-0").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_cordon_and_drain_leave_the_state_the_api_server_would() {
    let Some(kubectl) = kubectl() else {
        println!("SKIPPED: no kubectl on PATH (Debian's kubernetes-client provides one)");
        return;
    };
    // The emulator's clock runs 40× real time: kubectl's 5 s retry is 200 s of cluster time.
    let emu = estate(40.0).await;
    let dir = std::env::temp_dir().join(format!("bw-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = emu.write_kubeconfig(&dir).unwrap();
    let run = |args: &[&str]| kubectl_run(&kubectl, &config, &dir, args);

    let (ok, out) = run(&["cordon", NODE_A]);
    assert!(ok, "{out}");
    assert!(out.contains("cordoned"), "{out}");
    assert_eq!(
        emu.get("nodes", "", NODE_A).unwrap()["spec"]["unschedulable"],
        true
    );
    let patch = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(patch.body, json!({"spec": {"unschedulable": true}}));

    // Without --ignore-daemonsets kubectl refuses, and changes nothing.
    let (ok, out) = run(&["drain", NODE_A, "--timeout=60s"]);
    assert!(!ok, "{out}");
    assert!(out.contains("DaemonSet-managed Pods"), "{out}");
    assert_eq!(pods_on(&emu, NODE_A).len(), 8);

    emu.clear_requests();
    let (ok, out) = run(&[
        "drain",
        NODE_A,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=90s",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("drained"), "{out}");
    // What the API server would leave: the DaemonSet and mirror pods stay; every other pod is gone
    // from node A, replaced on node B by its ReplicaSet; the budgets held throughout.
    assert_eq!(
        pods_on(&emu, NODE_A),
        vec!["kube-proxy-a", "node-exporter-a"]
    );
    let on_b = pods_on(&emu, NODE_B);
    assert_eq!(
        on_b.iter().filter(|p| p.starts_with("web")).count(),
        4,
        "{on_b:?}"
    );
    assert_eq!(
        on_b.iter().filter(|p| p.starts_with("api")).count(),
        2,
        "{on_b:?}"
    );
    let evictions: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .collect();
    assert!(
        evictions.iter().any(|r| r.status == 429),
        "the web budget made kubectl wait"
    );
    for e in &evictions {
        assert_eq!(e.body["apiVersion"], "policy/v1", "{}", e.body);
        assert_eq!(e.body["kind"], "Eviction");
        assert!(
            e.body.get("deleteOptions").is_some(),
            "kubectl sends deleteOptions: {}",
            e.body
        );
        assert!(e.body.get("delete_options").is_none());
    }
    // Breakwater's eviction body has the shape kubectl's has, plus the UID precondition.
    let ours = breakwater::kube::ops::eviction_body("shop", "web-1", "uid-1", None);
    for key in evictions[0].body.as_object().unwrap().keys() {
        assert!(
            ours.get(key).is_some(),
            "kubectl sends {key}, Breakwater does not: {ours}"
        );
    }
    assert!(ours["deleteOptions"].is_object() && evictions[0].body["deleteOptions"].is_object());
    println!("kubectl eviction body: {}", evictions[0].body);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn kube_rs_with_an_eks_token_cordons_lists_and_evicts_through_the_emulator() {
    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::{Api, EvictParams, ListParams, Patch, PatchParams};

    let emu = estate(0.0).await;
    let aws = breakwater::aws::Aws::for_endpoint("http://127.0.0.1:9", "us-east-1").await;
    let clients = breakwater::kube::KubeClients::new(Some(emu.endpoint())).unwrap();
    let client = clients.client(&aws, "prod-east", NOV_23).await.unwrap();

    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .patch(
            NODE_A,
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    assert_eq!(
        emu.get("nodes", "", NODE_A).unwrap()["spec"]["unschedulable"],
        true
    );

    let pods: Api<Pod> = Api::all(client.clone());
    let on_a = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={NODE_A}")))
        .await
        .unwrap();
    assert_eq!(on_a.items.len(), 8);

    // kube-rs's own `evict` spells the field `delete_options`: the server ignores it, and the
    // grace period and UID precondition are lost. The emulator reads the body as the server does.
    let shop: Api<Pod> = Api::namespaced(client.clone(), "shop");
    let web0 = emu.get("pods", "shop", "web-0").unwrap();
    let params = EvictParams {
        delete_options: Some(kube::api::DeleteParams {
            grace_period_seconds: Some(7),
            preconditions: Some(kube::api::Preconditions {
                uid: Some("not-the-uid".into()),
                resource_version: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    shop.evict("web-0", &params).await.unwrap();
    let lost = emu.requests().last().cloned().unwrap();
    assert!(lost.body.get("delete_options").is_some(), "{}", lost.body);
    assert_eq!(
        emu.get("pods", "shop", "web-0").unwrap()["metadata"]["deletionGracePeriodSeconds"],
        web0["spec"]["terminationGracePeriodSeconds"],
        "the precondition and the grace period were ignored"
    );

    // Breakwater's eviction: the precondition and the grace period hold.
    use breakwater::kube::ops::{evict, Eviction};
    let api0 = emu.get("pods", "shop", "api-0").unwrap();
    assert_eq!(
        evict(&client, "shop", "api-0", "not-the-uid", Some(7))
            .await
            .unwrap(),
        Eviction::Replaced
    );
    assert_eq!(
        evict(&client, "shop", "api-0", &uid(&api0), Some(7))
            .await
            .unwrap(),
        Eviction::Evicted
    );
    assert_eq!(
        emu.get("pods", "shop", "api-0").unwrap()["metadata"]["deletionGracePeriodSeconds"],
        7
    );
    let api1 = emu.get("pods", "shop", "api-1").unwrap();
    match evict(&client, "shop", "api-1", &uid(&api1), None)
        .await
        .unwrap()
    {
        Eviction::Blocked { reason } => {
            assert!(reason.contains("disruption budget api"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        emu.requests()
            .iter()
            .filter(|r| r.path.ends_with("/api-1/eviction"))
            .count(),
        1,
        "a refused eviction is answered at once, not retried inside the client"
    );
    assert_eq!(
        evict(&client, "shop", "gone", "x", None).await.unwrap(),
        Eviction::Gone
    );
    emu.throttle(Throttle {
        method: Some("POST".into()),
        path_contains: "/eviction".into(),
        times: 1,
        retry_after_seconds: 3,
    });
    assert_eq!(
        evict(&client, "shop", "api-1", &uid(&api1), None)
            .await
            .unwrap(),
        Eviction::Throttled {
            retry_after: std::time::Duration::from_secs(3)
        }
    );

    // On the wire: the EKS token on every request, and deleteOptions spelled as the server reads it.
    let requests = emu.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.starts_with("Bearer k8s-aws-v1.")),
        "{:?}",
        requests[0]
    );
    let eviction = requests
        .iter()
        .rfind(|r| r.path.ends_with("/api-0/eviction"))
        .unwrap();
    assert_eq!(
        eviction.body["deleteOptions"]["gracePeriodSeconds"], 7,
        "{}",
        eviction.body
    );
    assert_eq!(eviction.body["kind"], "Eviction");
}

#[tokio::test]
async fn invalid_taints_are_refused_with_422_invalid_and_their_causes() {
    // The API server's rules (kubernetes pkg/apis/core/validation `validateNodeTaints`): an
    // effect is required and one of NoSchedule / PreferNoSchedule / NoExecute, and taints are
    // unique by key and effect; the answer is a 422 `Invalid` Status naming each field.
    let emu = estate(0.0).await;
    let path = format!("/api/v1/nodes/{NODE_A}");
    let smp = "application/strategic-merge-patch+json";
    let cases = [
        (
            json!([{"key": "a"}]),
            "spec.taints[0].effect",
            "FieldValueRequired",
        ),
        (
            json!([{"key": "a", "effect": "Sometimes"}]),
            "spec.taints[0].effect",
            "FieldValueNotSupported",
        ),
        (
            json!([{"key": "a", "effect": "NoSchedule"}, {"key": "a", "value": "x", "effect": "NoSchedule"}]),
            "spec.taints[1]",
            "FieldValueDuplicate",
        ),
        // What Breakwater's uncordon used to send: `$patch: delete` is no directive in an atomic
        // list, so it becomes a taint without an effect.
        (
            json!([{"key": "breakwater.io/draining", "$patch": "delete"}]),
            "spec.taints[0].effect",
            "FieldValueRequired",
        ),
    ];
    for (taints, field, reason) in cases {
        // GIVEN a node; WHEN a patch would leave it with invalid taints
        let (status, body) = call(
            &emu,
            "PATCH",
            &path,
            smp,
            Some(json!({"spec": {"taints": taints}})),
        )
        .await;
        // THEN 422 Invalid with the field's cause, and nothing stored
        assert_eq!(
            (status, body["reason"].as_str()),
            (422, Some("Invalid")),
            "{body}"
        );
        assert_eq!(body["details"]["kind"], "Node", "{body}");
        assert_eq!(body["details"]["causes"][0]["field"], field, "{body}");
        assert_eq!(body["details"]["causes"][0]["reason"], reason, "{body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with(&format!("Node \"{NODE_A}\" is invalid: {field}")),
            "{body}"
        );
        assert!(emu.get("nodes", "", NODE_A).unwrap()["spec"]["taints"].is_null());
    }
    // A creation is validated too.
    let mut bad = node(
        "ip-10-0-9-9.ec2.internal",
        "i-0999",
        "us-east-1a",
        "x",
        "SPOT",
    );
    bad["spec"]["taints"] = json!([{"key": "k", "effect": "Never"}]);
    assert_eq!(emu.create("nodes", "", bad).unwrap_err().code, 422);
}

/// The taints and `unschedulable` of node A.
fn scheduling(emu: &KubeEmulator) -> (Value, Value) {
    let n = emu.get("nodes", "", NODE_A).unwrap();
    (
        n["spec"]["taints"].clone(),
        n["spec"]["unschedulable"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_controllers_taint_survives_cordon_and_uncordon() {
    use breakwater::kube::ops::{cordon, uncordon, NodeWrite, DRAIN_TAINT, EXCLUDE_FROM_LB};

    let emu = estate(0.0).await;
    let aws = breakwater::aws::Aws::for_endpoint("http://127.0.0.1:9", "us-east-1").await;
    let clients = breakwater::kube::KubeClients::new(Some(emu.endpoint())).unwrap();
    let client = clients.client(&aws, "prod-east", NOV_23).await.unwrap();
    let gpu = json!({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"});

    // GIVEN another controller's taint on the node — put there by the real `kubectl taint` when
    // there is one (and its request kept to compare with Breakwater's)
    let kubectl = kubectl();
    let dir = std::env::temp_dir().join(format!("bw-kubectl-taint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = emu.write_kubeconfig(&dir).unwrap();
    let run = |args: &[&str]| {
        let (ok, text) = kubectl_run(kubectl.as_deref().unwrap(), &config, &dir, args);
        assert!(ok, "{text}");
    };
    let kubectl_taint = if kubectl.is_some() {
        run(&["taint", "nodes", NODE_A, "nvidia.com/gpu=true:NoSchedule"]);
        emu.requests().into_iter().find(|r| r.method == "PATCH")
    } else {
        println!("kubectl comparison SKIPPED: no kubectl on PATH");
        emu.with(|c| {
            let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "nodes").unwrap();
            c.patch(
                kind,
                "",
                NODE_A,
                "application/merge-patch+json",
                &json!({"spec": {"taints": [gpu.clone()]}}),
                false,
            )
            .unwrap();
        });
        None
    };
    assert_eq!(scheduling(&emu).0, json!([gpu.clone()]));
    emu.clear_requests();
    let rv_read = emu.get("nodes", "", NODE_A).unwrap()["metadata"]["resourceVersion"].clone();

    // WHEN Breakwater cordons the node
    assert_eq!(
        cordon(&client, NODE_A, "spot-interruption").await.unwrap(),
        NodeWrite::Changed { conflicts: 0 }
    );
    // THEN its taint is added beside the other one, the node is unschedulable and out of load
    // balancers
    let ours = json!({"key": DRAIN_TAINT, "value": "spot-interruption", "effect": "NoSchedule"});
    assert_eq!(scheduling(&emu), (json!([gpu.clone(), ours]), json!(true)));
    let node = emu.get("nodes", "", NODE_A).unwrap();
    assert_eq!(node["metadata"]["labels"][EXCLUDE_FROM_LB], "true");
    // AND on the wire: a GET, then one strategic merge patch carrying the whole list (as
    // kubectl taint sends it) under the resourceVersion read
    let sent: Vec<_> = emu.requests();
    assert_eq!(
        sent.iter().map(|r| r.method.as_str()).collect::<Vec<_>>(),
        vec!["GET", "PATCH"]
    );
    let patch = &sent[1];
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(patch.body["metadata"]["resourceVersion"], rv_read);
    assert!(patch.body["metadata"]["resourceVersion"].is_string());
    if let Some(theirs) = &kubectl_taint {
        println!("kubectl taint sent: {}", theirs.body);
        assert_eq!(theirs.content_type, patch.content_type);
        assert_eq!(
            theirs.body["spec"]["taints"],
            json!([gpu.clone()]),
            "kubectl sends the whole atomic list"
        );
    }

    // WHEN a cordon finds the node written in between (another controller adds a taint)
    let extra = json!({"key": "example.com/maintenance", "effect": "PreferNoSchedule"});
    let added = extra.clone();
    emu.interject("PATCH", &format!("/nodes/{NODE_A}"), move |c| {
        let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "nodes").unwrap();
        let mut taints = c.get(kind, "", NODE_A).unwrap()["spec"]["taints"].clone();
        taints.as_array_mut().unwrap().push(added);
        c.patch(
            kind,
            "",
            NODE_A,
            "application/merge-patch+json",
            &json!({"spec": {"taints": taints}}),
            false,
        )
        .unwrap();
    });
    // THEN the write is refused with 409, read again and retried: nobody's taint is lost
    assert_eq!(
        cordon(&client, NODE_A, "rebalance-recommendation")
            .await
            .unwrap(),
        NodeWrite::Changed { conflicts: 1 }
    );
    let taints = scheduling(&emu).0;
    assert_eq!(taints.as_array().unwrap().len(), 3, "{taints}");
    assert!(taints.as_array().unwrap().contains(&extra), "{taints}");

    // WHEN Breakwater uncordons
    emu.clear_requests();
    assert_eq!(
        uncordon(&client, NODE_A).await.unwrap(),
        NodeWrite::Changed { conflicts: 0 }
    );
    // THEN only its own taint goes: the others' survive; the node is schedulable again and
    // back in load balancers
    assert_eq!(scheduling(&emu), (json!([gpu, extra]), Value::Null));
    let node = emu.get("nodes", "", NODE_A).unwrap();
    assert!(
        node["metadata"]["labels"][EXCLUDE_FROM_LB].is_null(),
        "{node}"
    );
    let ours_uncordon = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(ours_uncordon.body["spec"]["unschedulable"], Value::Null);
    // AND a second uncordon has nothing to do and sends nothing
    emu.clear_requests();
    assert_eq!(
        uncordon(&client, NODE_A).await.unwrap(),
        NodeWrite::Unchanged
    );
    assert!(emu.requests().iter().all(|r| r.method == "GET"));
    // AND `kubectl uncordon` clears `unschedulable` the way Breakwater does
    if kubectl.is_some() {
        cordon(&client, NODE_A, "spot-interruption").await.unwrap();
        emu.clear_requests();
        run(&["uncordon", NODE_A]);
        let theirs = emu
            .requests()
            .into_iter()
            .find(|r| r.method == "PATCH")
            .unwrap();
        println!("kubectl uncordon sent: {}", theirs.body);
        assert_eq!(theirs.content_type, ours_uncordon.content_type);
        assert_eq!(theirs.body["spec"]["unschedulable"], Value::Null);
        assert!(theirs.body["spec"]
            .as_object()
            .unwrap()
            .contains_key("unschedulable"));
        assert!(ours_uncordon.body["spec"]
            .as_object()
            .unwrap()
            .contains_key("unschedulable"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A watch's answer: the status and its events, one JSON object per line.
async fn watch(emu: &KubeEmulator, path: &str) -> (u16, Vec<Value>) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let response = client
        .get(format!("{}{path}", emu.endpoint()).parse().unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let events = String::from_utf8_lossy(&bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (status, events)
}

fn rv(obj: &Value) -> String {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_send_what_changed_after_a_version_and_kubectl_wait_follows_them() {
    // GIVEN the estate, its clock stopped
    let emu = std::sync::Arc::new(estate(0.0).await);
    let budgets = "/apis/policy/v1/namespaces/shop/poddisruptionbudgets";
    // WHEN a budget is watched without a resourceVersion
    let (status, events) = watch(
        &emu,
        &format!("{budgets}?watch=true&fieldSelector=metadata.name%3Dapi"),
    )
    .await;
    // THEN the watch starts with it as it is: ADDED (api-concepts, "Efficient detection of
    // changes": the "Get State and Start at Most Recent" semantics)
    assert_eq!(status, 200);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[0]["object"]["status"]["disruptionsAllowed"], 1);
    let from = rv(&events[0]["object"]);

    // WHEN it is watched from that version and an api pod is evicted meanwhile
    let waiting = {
        let emu = emu.clone();
        let path = format!(
            "{budgets}?watch=true&fieldSelector=metadata.name%3Dapi&resourceVersion={from}&timeoutSeconds=10"
        );
        tokio::spawn(async move { watch(&emu, &path).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        !waiting.is_finished(),
        "nothing changed yet: the watch waits"
    );
    let api0 = emu.get("pods", "shop", "api-0").unwrap();
    let (status, _) = call(
        &emu,
        "POST",
        "/api/v1/namespaces/shop/pods/api-0/eviction",
        "application/json",
        Some(json!({"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": "api-0", "namespace": "shop"}})),
    )
    .await;
    assert_eq!(status, 201);
    // THEN the budget comes back MODIFIED, with no disruption left
    let (status, events) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(events[0]["object"]["status"]["disruptionsAllowed"], 0);

    // WHEN the evicted pod (30 s of grace) is watched from its version, and the clock passes
    // its grace
    let terminating = emu.get("pods", "shop", "api-0").unwrap();
    assert!(terminating["metadata"]["deletionTimestamp"].is_string());
    let pods = "/api/v1/namespaces/shop/pods?watch=true&fieldSelector=metadata.name%3Dapi-0";
    let waiting = {
        let emu = emu.clone();
        let path = format!("{pods}&resourceVersion={}", rv(&terminating));
        tokio::spawn(async move { watch(&emu, &path).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    emu.advance(30_000);
    // THEN it comes back DELETED, as it last was, with a later version
    let (_, events) = waiting.await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "DELETED");
    assert_eq!(
        events[0]["object"]["metadata"]["uid"],
        api0["metadata"]["uid"]
    );
    assert!(rv(&events[0]["object"]).parse::<u64>().unwrap() > rv(&terminating).parse().unwrap());
    // AND a watch asked later, from a version before the removal, still sees it removed
    let (_, events) = watch(
        &emu,
        &format!("{pods}&resourceVersion={}", rv(&terminating)),
    )
    .await;
    assert_eq!(events[0]["type"], "DELETED", "{events:?}");

    // WHEN nothing changes until timeoutSeconds THEN the server ends the watch with no event
    let now = emu.with(|c| c.resource_version());
    let (status, events) = watch(
        &emu,
        &format!("{pods}&resourceVersion={now}&timeoutSeconds=1"),
    )
    .await;
    assert_eq!((status, events.len()), (200, 0));
    // AND a version that is not one is refused; one older than the removals kept is 410 Expired
    let (status, _) = watch(&emu, &format!("{pods}&resourceVersion=yesterday")).await;
    assert_eq!(status, 400);
    emu.with(|c| {
        let kind = breakwater_sandbox::kube::store::find_kind("", "v1", "namespaces").unwrap();
        for i in 0..10_001 {
            let name = format!("scratch-{i}");
            c.create(kind, "", json!({"metadata": {"name": name}}))
                .unwrap();
            c.delete(kind, "", &name, &json!({})).unwrap();
        }
    });
    let (status, events) = watch(&emu, &format!("{pods}&resourceVersion={from}")).await;
    assert_eq!(status, 200);
    assert_eq!(events[0]["type"], "ERROR", "{events:?}");
    assert_eq!(events[0]["object"]["code"], 410);
    assert_eq!(events[0]["object"]["reason"], "Expired");

    // AND the real `kubectl wait --for=delete`, a watch client, follows a pod to its end
    let Some(kubectl) = kubectl() else {
        println!("kubectl part SKIPPED: no kubectl on PATH");
        return;
    };
    let emu = estate(40.0).await;
    let dir = std::env::temp_dir().join(format!("bw-kubectl-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = emu.write_kubeconfig(&dir).unwrap();
    let run = |args: &[&str]| kubectl_run(&kubectl, &config, &dir, args);
    // (30 s of grace is 0.75 s at 40×: kubectl is watching when the kubelet removes it)
    let (ok, out) = run(&["delete", "pod", "web-0", "-n", "shop", "--wait=false"]);
    assert!(ok, "{out}");
    assert!(emu.get("pods", "shop", "web-0").is_some(), "terminating");
    let (ok, out) = run(&[
        "wait",
        "--for=delete",
        "pod/web-0",
        "-n",
        "shop",
        "--timeout=20s",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("condition met"), "{out}");
    assert!(emu.get("pods", "shop", "web-0").is_none());
    assert!(
        emu.requests().iter().any(|r| r.method == "GET"
            && r.path.contains("/pods?")
            && r.path.contains("watch=true")),
        "kubectl waited by watching"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

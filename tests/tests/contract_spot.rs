//! Contract tests of spot's Kubernetes fakes: the same scenario runs against the fake and against
//! the adapter on the Kubernetes emulator, with the same assertions — so that the drain's stories
//! on the fakes (functions/spot/tests/drain.rs) say what the cluster would do.

use breakwater::fakes::nodes::FakeNodes;
use breakwater::fakes::pods::{Budget, FakePods};
use breakwater::kube::nodes::{NodeEvent, NodeWrite, Nodes};
use breakwater::kube::pods::{Deletion, Eviction, PodInfo, Pods, Waited};
use breakwater_sandbox::kube::fixtures::{node, pdb, pod, replica_set};
use breakwater_sandbox::kube::KubeEmulator;
use serde_json::json;
use std::time::Duration;

const NOV_23: u64 = 1_795_392_000_000;
const NODE: &str = "ip-10-0-7-1.ec2.internal";
const INSTANCE: &str = "i-0c0ffee0c0ffee000";
const POLICY: &str = "breakwater.io/drain-policy";

/// A client of the emulator's cluster (the kubelet stopped: terminating pods stay).
async fn emulator() -> (KubeEmulator, kube::Client) {
    let emu = KubeEmulator::start(NOV_23, 0.0).await.unwrap();
    emu.with(|c| c.pause_replication(true));
    let aws = breakwater::aws::Aws::for_endpoint("http://127.0.0.1:9", "us-east-1").await;
    let clients = breakwater::kube::KubeClients::new(Some(emu.endpoint())).unwrap();
    let client = clients.client(&aws, "prod-east", NOV_23).await.unwrap();
    (emu, client)
}

/// The nodes scenario: find by providerID, cordon and uncordon (idempotent, a new reason
/// updates the taint, a person's state kept), a missing node, an Event.
async fn nodes_scenario<N: Nodes>(nodes: &N) {
    assert_eq!(
        nodes.find_by_provider_id(INSTANCE, None).await.unwrap(),
        Some(NODE.to_string())
    );
    assert_eq!(
        nodes
            .find_by_provider_id(INSTANCE, Some("not-the-node-name"))
            .await
            .unwrap(),
        Some(NODE.to_string()),
        "a wrong DNS hint falls back to the providerID"
    );
    assert_eq!(
        nodes
            .find_by_provider_id("i-0000000000000dead", None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(nodes.uncordon(NODE).await.unwrap(), NodeWrite::Unchanged);
    assert_eq!(
        nodes
            .cordon(NODE, "rebalance-recommendation")
            .await
            .unwrap(),
        NodeWrite::Changed { conflicts: 0 }
    );
    assert_eq!(
        nodes
            .cordon(NODE, "rebalance-recommendation")
            .await
            .unwrap(),
        NodeWrite::Unchanged
    );
    assert_eq!(
        nodes.cordon(NODE, "spot-interruption").await.unwrap(),
        NodeWrite::Changed { conflicts: 0 }
    );
    assert_eq!(
        nodes.uncordon(NODE).await.unwrap(),
        NodeWrite::Changed { conflicts: 0 }
    );
    assert_eq!(nodes.uncordon(NODE).await.unwrap(), NodeWrite::Unchanged);
    assert_eq!(
        nodes
            .cordon("no-such-node", "spot-interruption")
            .await
            .unwrap(),
        NodeWrite::Gone
    );
    assert_eq!(
        nodes.uncordon("no-such-node").await.unwrap(),
        NodeWrite::Gone
    );
    nodes
        .record_event(&NodeEvent {
            node: NODE.into(),
            reason: "SpotInterruption".into(),
            message: "Breakwater: a contract test".into(),
            component: "breakwater-spot".into(),
            at_ms: NOV_23,
        })
        .await
        .unwrap();
}

fn find<'a>(pods: &'a [PodInfo], name: &str) -> &'a PodInfo {
    pods.iter().find(|p| p.name == name).unwrap()
}

/// The pods scenario: the node's pods as listed, a namespace's annotations, evictions (UID
/// precondition, budget refusal, gone), deletes (UID precondition, gone) and what is left.
async fn pods_scenario<P: Pods>(pods: &P) {
    let listed = pods.on_node(NODE).await.unwrap();
    let mut names: Vec<String> = listed.iter().map(PodInfo::label).collect();
    names.sort();
    assert_eq!(names, vec!["shop/api-0", "shop/api-1", "shop/db-0"]);
    let api0 = find(&listed, "api-0");
    assert_eq!(api0.grace_s, Some(5));
    assert_eq!(api0.node, NODE);
    assert!(!api0.terminating);
    assert!(pods.on_node("another-node").await.unwrap().is_empty());

    let shop = pods.namespace_annotations("shop").await.unwrap().unwrap();
    assert_eq!(shop.get(POLICY).map(String::as_str), Some("respect-pdb"));
    assert_eq!(pods.namespace_annotations("nowhere").await.unwrap(), None);

    // Evictions.
    assert_eq!(
        pods.evict("shop", "api-0", "not-the-uid").await.unwrap(),
        Eviction::Replaced
    );
    assert_eq!(
        pods.evict("shop", "api-0", &api0.uid).await.unwrap(),
        Eviction::Evicted
    );
    let zero = Duration::ZERO;
    assert!(
        !pods.gone("shop", "api-0", &api0.uid, zero).await.unwrap(),
        "terminating"
    );
    match pods
        .evict("shop", "db-0", &find(&listed, "db-0").uid)
        .await
        .unwrap()
    {
        Eviction::Blocked { reason } => {
            assert!(reason.contains("disruption budget db"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // The budget that refused does not allow a disruption (its watch waits, in vain), and one
    // that does not exist does not hold anybody.
    let a_moment = Duration::from_millis(300);
    assert_eq!(
        pods.budget_allows("shop", "db", a_moment).await.unwrap(),
        Waited::TimedOut
    );
    assert_eq!(
        pods.budget_allows("shop", "nope", a_moment).await.unwrap(),
        Waited::Already
    );
    assert_eq!(
        pods.evict("shop", "gone-0", "x").await.unwrap(),
        Eviction::Gone
    );

    // Deletes under the UID precondition.
    let api1 = find(&listed, "api-1");
    assert_eq!(
        pods.delete("shop", "api-1", "not-the-uid", 3)
            .await
            .unwrap(),
        Deletion::Gone
    );
    assert!(!pods.gone("shop", "api-1", &api1.uid, zero).await.unwrap());
    assert_eq!(
        pods.delete("shop", "api-1", &api1.uid, 0).await.unwrap(),
        Deletion::Deleted
    );
    assert!(pods.gone("shop", "api-1", &api1.uid, zero).await.unwrap());
    // A pod of that name with another UID is not the pod: it is gone.
    assert!(pods
        .gone("shop", "db-0", "another-uid", zero)
        .await
        .unwrap());
    assert_eq!(
        pods.delete("shop", "api-1", &api1.uid, 0).await.unwrap(),
        Deletion::Gone
    );

    // What is left: the terminating pod (shown so) and the one its budget kept.
    let left = pods.on_node(NODE).await.unwrap();
    let mut names: Vec<String> = left.iter().map(PodInfo::label).collect();
    names.sort();
    assert_eq!(names, vec!["shop/api-0", "shop/db-0"]);
    assert!(find(&left, "api-0").terminating);
    assert!(!find(&left, "db-0").terminating);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_fake_behaves_as_the_adapter_does_on_the_emulator() {
    // GIVEN the same node in the emulator and in the fake
    let (emu, client) = emulator().await;
    emu.create(
        "nodes",
        "",
        node(NODE, INSTANCE, "us-east-1a", "spot-a", "SPOT"),
    )
    .unwrap();
    let fake = FakeNodes::default();
    fake.add(NODE, "us-east-1a", INSTANCE);
    // WHEN / THEN the scenario gives the same answers on both
    nodes_scenario(&client).await;
    nodes_scenario(&fake).await;
    // AND the taints a cordon and uncordon leave are the same: none
    let on_emu = emu.get("nodes", "", NODE).unwrap();
    assert!(on_emu["spec"]["taints"].is_null(), "{on_emu}");
    assert!(fake.node(NODE).unwrap().taints.is_empty());
    assert_eq!(fake.events().len(), 1);
    assert_eq!(
        emu.list("events")
            .iter()
            .filter(|e| e["involvedObject"]["name"] == NODE)
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_fake_behaves_as_the_adapter_does_on_the_emulator() {
    // GIVEN the same pods, namespace and budget in the emulator …
    let (emu, client) = emulator().await;
    emu.create(
        "namespaces",
        "",
        json!({"metadata": {"name": "shop", "annotations": {POLICY: "respect-pdb"}}}),
    )
    .unwrap();
    let rs = emu
        .create("replicasets", "shop", replica_set("db-5c", "db", 1))
        .unwrap();
    let owner = rs["metadata"]["uid"].as_str().unwrap().to_string();
    for (name, app, owned) in [
        ("api-0", "api", false),
        ("api-1", "api", false),
        ("db-0", "db", true),
    ] {
        let owner = owned.then_some(("ReplicaSet", "db-5c", owner.as_str()));
        emu.create("pods", "shop", pod(name, NODE, app, owner, 5))
            .unwrap();
    }
    emu.create(
        "poddisruptionbudgets",
        "shop",
        pdb("db", "db", Some(json!(1)), None),
    )
    .unwrap();
    // … and in the fake (the pods as the emulator lists them, so with the same UIDs)
    let fake = FakePods::default();
    fake.namespace("shop", &[(POLICY, "respect-pdb")]);
    for p in client.on_node(NODE).await.unwrap() {
        fake.add(p);
    }
    fake.budget(
        "shop/db-0",
        Budget::Refuses {
            times: None,
            // The cause's message, as the API server words it (eviction.go).
            reason: "The disruption budget db needs 1 healthy pods and has 1 currently".into(),
        },
    );
    // WHEN / THEN the scenario gives the same answers on both
    emu.clear_requests();
    pods_scenario(&client).await;
    pods_scenario(&fake).await;
    // AND every request the adapter made is one deploy/kubernetes/spot-rbac.yaml allows (the
    // waits watch pods and budgets)
    let requests = emu.requests();
    assert!(
        requests.iter().any(|r| r.path.contains("watch=true")),
        "{:?}",
        requests
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect::<Vec<_>>()
    );
    crate::common::assert_rbac_allows(
        include_str!("../../deploy/kubernetes/spot-rbac.yaml"),
        &requests,
    );
}

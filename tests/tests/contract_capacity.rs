//! Contract test of failover's capacity port: the standby cluster's node-group nodes and
//! critical Deployments read through the in-memory fake and through the adapter on the
//! Kubernetes emulator (nodes of a managed node group register not Ready and become Ready after
//! their boot delay; pods are scheduled only on Ready nodes); both must see the same.

use std::sync::Arc;
use std::time::Duration;

use breakwater::clock::{Clock, SystemClock};
use breakwater::fakes::capacity::FakeCapacity;
use breakwater::kube::capacity::{Capacity, KubeCapacity};
use breakwater::kube::workloads::ObjectAt;
use breakwater::kube::KubeClients;
use breakwater_sandbox::kube::fixtures::deployment;
use breakwater_sandbox::kube::KubeEmulator;
use serde_json::{json, Value};

use crate::common::aws;

crate::common::moto_server!();

const BOOT_MS: u64 = 60_000;
const POD_READY_MS: u64 = 2_000;

fn at(name: &str) -> ObjectAt<'_> {
    ObjectAt {
        cluster: "standby",
        namespace: "shop",
        name,
    }
}

/// Everything a failover reads of the standby cluster, once.
async fn read_all(c: &impl Capacity) -> Value {
    json!({
        "web": c.node_group_nodes("standby", "web").await.unwrap(),
        "unknown group": c.node_group_nodes("standby", "batch").await.unwrap(),
        "api": c.deployment_pods(at("api")).await.unwrap(),
        "missing": c.deployment_pods(at("gone")).await.unwrap(),
    })
}

#[tokio::test]
async fn the_capacity_fake_reads_as_the_adapter_reads_a_booting_node_group() {
    // GIVEN a standby cluster whose node group "web" was just raised to 3 nodes (booting for
    // 60 s) and a Deployment "api" of 2 pods waiting for a Ready node
    let emu = KubeEmulator::start(SystemClock.now_ms(), 0.0)
        .await
        .unwrap();
    emu.create("namespaces", "", json!({"metadata": {"name": "shop"}}))
        .unwrap();
    emu.create("deployments", "shop", deployment("api", "api", 2, "api:1"))
        .unwrap();
    emu.with(|c| {
        c.pod_ready_delay_ms = POD_READY_MS;
        c.scale_node_group("web", 3, "ON_DEMAND", "us-west-2a", BOOT_MS)
    });
    let direct = Arc::new(aws(&moto().endpoint(), "us-west-2").await);
    let clients = Arc::new(KubeClients::new(Some(emu.endpoint())).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let real = KubeCapacity::new(clients, direct, clock);
    // WHEN both are read now, after the boot, and once the pods are ready
    tokio::time::pause();
    let fake = FakeCapacity::new()
        .nodes("standby", "web", 3, Duration::from_millis(BOOT_MS))
        .deployment(
            "standby",
            "shop",
            "api",
            2,
            Duration::from_millis(BOOT_MS + POD_READY_MS),
        );
    let mut on_fake = vec![read_all(&fake).await];
    tokio::time::advance(Duration::from_millis(BOOT_MS)).await;
    on_fake.push(read_all(&fake).await);
    tokio::time::advance(Duration::from_millis(POD_READY_MS)).await;
    on_fake.push(read_all(&fake).await);
    tokio::time::resume();
    let mut on_emulator = vec![read_all(&real).await];
    emu.advance(BOOT_MS);
    on_emulator.push(read_all(&real).await);
    emu.advance(POD_READY_MS);
    on_emulator.push(read_all(&real).await);
    // THEN they see the same: registered but not Ready, Ready without pods, pods ready
    assert_eq!(on_fake, on_emulator);
    assert_eq!(on_fake[0]["web"], json!({"registered": 3, "ready": 0}));
    assert_eq!(on_fake[0]["api"], json!({"desired": 2, "ready": 0}));
    assert_eq!(on_fake[1]["web"], json!({"registered": 3, "ready": 3}));
    assert_eq!(on_fake[1]["api"], json!({"desired": 2, "ready": 0}));
    assert_eq!(on_fake[2]["api"], json!({"desired": 2, "ready": 2}));
    assert_eq!(
        on_fake[2]["unknown group"],
        json!({"registered": 0, "ready": 0})
    );
    assert_eq!(on_fake[2]["missing"], Value::Null);
    assert_eq!(fake.calls.count("node_group_nodes"), 6);
    // AND every request the adapter made is one deploy/kubernetes/failover-rbac.yaml allows
    let requests = emu.requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"),
        "the capacity adapter only reads"
    );
    crate::common::assert_rbac_allows(
        include_str!("../../deploy/kubernetes/failover-rbac.yaml"),
        &requests,
    );
}

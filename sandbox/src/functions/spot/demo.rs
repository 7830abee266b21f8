//! The spot scenes of `make demo`, through the release `spot` binary in the Lambda Runtime API
//! emulator, against moto and the Kubernetes API emulator: one interruption drained (a 50-pod
//! node with budgets), then a burst of interruptions → on-demand failover, and its return after
//! the stable period.

use std::path::Path;

use aws_config::SdkConfig;
use breakwater::clock::{Clock, SystemClock};
use breakwater::ports::{NodeGroupId, NodeGroups};
use serde_json::{json, Value};

use super::scene::{spot_nodes, spot_scene, SpotScene};
use crate::kube::fixtures::fifty_pod_workload;
use crate::kube::KubeEmulator;
use crate::runtime::FunctionProcess;
use crate::seed::Estate;
use crate::SandboxError;

/// How many 5-minute schedule ticks the scene delivers at most for the return.
const RETURN_TICKS: usize = 4;

fn warning(scene: &SpotScene, region: &str, instance: &str, id: &str, time_ms: u64) -> Value {
    let _ = scene;
    json!({"version": "0", "id": id, "detail-type": "EC2 Spot Instance Interruption Warning",
        "source": "aws.ec2", "account": "123456789012", "time": breakwater::clock::rfc3339(time_ms),
        "region": region, "resources": [], "detail": {"instance-id": instance, "instance-action": "terminate"}})
}

async fn on_demand(config: &SdkConfig, scene: &SpotScene) -> Result<String, SandboxError> {
    let eks = breakwater::aws::eks::EksNodeGroups::new(aws_sdk_eks::Client::new(config));
    let id = NodeGroupId {
        cluster: scene.cluster.clone(),
        name: scene.on_demand_node_group.clone(),
    };
    let group = eks
        .describe(&id)
        .await
        .map_err(|e| SandboxError::Seed(e.to_string()))?
        .ok_or_else(|| SandboxError::Seed("no on-demand node group".into()))?;
    Ok(group.scaling.to_string())
}

/// Plays the spot scenes; `say` prints a timeline line.
pub async fn play(
    say: &dyn Fn(&str),
    endpoint: &str,
    config: &SdkConfig,
    estate: &Estate,
    binary: &Path,
    base_env: Vec<(String, String)>,
) -> Result<(), SandboxError> {
    let region = estate.primary.region.clone();
    let config = crate::seed::regional(config, &region);
    let scene = spot_scene(&config, &region, "", 6).await?;
    let emulator = KubeEmulator::start(SystemClock.now_ms(), 10.0).await?;
    let nodes = spot_nodes(&emulator, &scene)?;
    fifty_pod_workload(&emulator, &nodes[0], "shop").map_err(|e| SandboxError::Seed(e.message))?;
    say(&format!(
        "spot scene: cluster {} with {} spot nodes and an on-demand node in the Kubernetes emulator at {} (kubelet at 10×); 50 pods of 10 apps on {}, each app under maxUnavailable 1",
        scene.cluster, nodes.len(), emulator.endpoint(), nodes[0]
    ));
    let mut env = base_env;
    env.push(("BREAKWATER_SPOT_CLUSTERS".into(), scene.cluster.clone()));
    env.push((
        "BREAKWATER_KUBE_ENDPOINT".into(),
        crate::gameday::kube_endpoint(&emulator.endpoint()).await?,
    ));
    env.push((
        "BREAKWATER_SPOT_ON_DEMAND".into(),
        format!(
            "{}/{}={}",
            scene.cluster, scene.spot_node_group, scene.on_demand_node_group
        ),
    ));
    let _ = endpoint;
    // The node is behind a load balancer: a NodePort target group holds it (a 2-s
    // deregistration delay, during which moto keeps it draining).
    let (vpc, _) = super::scene::instance_network(&config, &scene.instances[0]).await?;
    let group = super::scene::target_group(
        &config,
        "shop-web-nodeport",
        &vpc,
        "instance",
        &[(&scene.instances[0], 30080)],
        2,
    )
    .await?;
    say(&format!(
        "load balancer: {} is a target of shop-web-nodeport (:30080, deregistration delay 2 s): {:?}",
        scene.instances[0],
        super::scene::targets_listed(&config, &group).await?
    ));
    let mut process = FunctionProcess::start(binary, "spot", &region, &env).await?;
    let init = process.wait_init().await?;
    say(&format!(
        "spot initialised in {:.2} ms",
        init.as_secs_f64() * 1000.0
    ));

    // One interruption: the warning arrived 20 s ago.
    let now = SystemClock.now_ms();
    let invocation = process
        .invoke(&warning(
            &scene,
            &region,
            &scene.instances[0],
            "demo-w0",
            now - 20_000,
        ))
        .await?;
    let r = invocation.answer()?;
    let report = &r["report"];
    say(&format!(
        "interruption warning for {} → {}: cordoned in {:.0} ms, {} pods evicted through their budgets in {:.1} s, deadline {}, left alone: {}",
        scene.instances[0],
        r["outcome"],
        r["cordon_ms"].as_f64().unwrap_or_default(),
        report["pods"].as_array().map(|p| p.iter().filter(|p| p["outcome"] == "evicted").count()).unwrap_or_default(),
        report["took_ms"].as_f64().unwrap_or_default() / 1000.0,
        if report["deadline_missed"] == true { "MISSED" } else { "met" },
        report["left_alone"]
    ));
    let left: Vec<String> = emulator
        .list("pods")
        .iter()
        .filter(|p| p["spec"]["nodeName"] == nodes[0].as_str())
        .map(|p| {
            p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let cordoned = emulator
        .get("nodes", "", &nodes[0])
        .map(|n| n["spec"]["unschedulable"] == true);
    let lb = &report["load_balancers"];
    let still_listed = super::scene::targets_listed(&config, &group).await?;
    say(&format!(
        "load balancer: deregistered before the first eviction, {} ({:.1} s); read back from ELB, shop-web-nodeport now lists {still_listed:?}",
        lb["ended_because"].as_str().unwrap_or("not done"),
        lb["ended_ms"].as_u64().unwrap_or_default().saturating_sub(lb["started_ms"].as_u64().unwrap_or_default()) as f64 / 1000.0,
    ));
    say(&format!(
        "read back from the emulator: node cordoned = {cordoned:?}; pods left on it: {left:?}"
    ));
    // Under chaos the attempt that drained may have been killed after its record was written:
    // Lambda's retry then finds the drain done ("already-drained"), which is the exactly-once
    // answer; the end state read back above is what shows the drain.
    let drained = r["outcome"] == "drained" || r["outcome"] == "already-drained";
    // Under chaos the attempt that drained may be a retry ("already-drained"): the target is
    // gone either way, read back from ELB.
    if !drained || left.len() != 3 || cordoned != Some(true) || !still_listed.is_empty() {
        return Err(SandboxError::Function(format!(
            "the drain did not end as expected: {r}"
        )));
    }
    let repeat = process
        .invoke(&warning(
            &scene,
            &region,
            &scene.instances[0],
            "demo-w0",
            now - 20_000,
        ))
        .await?;
    let repeat = repeat.answer()?;
    say(&format!(
        "the same warning again → {} (repeat: {}; nothing done twice)",
        repeat["outcome"], repeat["repeat"]
    ));

    // A burst: three more interruptions in the same pool within the window.
    say(&format!(
        "on-demand node group before the burst: {}",
        on_demand(&config, &scene).await?
    ));
    for (i, instance) in scene.instances.iter().enumerate().skip(1).take(3) {
        let r = process
            .invoke(&warning(
                &scene,
                &region,
                instance,
                &format!("demo-w{i}"),
                SystemClock.now_ms(),
            ))
            .await?
            .answer()?;
        let failover = &r["failover"];
        let moved = r["report"]["pods"]
            .as_array()
            .map(Vec::len)
            .unwrap_or_default();
        say(&format!(
            "warning for {instance} → {} ({moved} replacement pods moved on); pool count {}, failover: {}",
            r["outcome"], failover["count"], failover["action"]
        ));
    }
    let raised = on_demand(&config, &scene).await?;
    say(&format!(
        "on-demand node group after the burst (read from moto): {raised}"
    ));
    // 31 minutes later by the function's own clock (under `make gameday` retries moved it on):
    // the schedule returns it; it ticks every 5 minutes, as EventBridge does, until it has.
    let burst_ended = process.now_ms();
    process.kill().await;
    let later = burst_ended + 31 * 60_000;
    env.push(("BREAKWATER_SANDBOX_NOW_MS".into(), later.to_string()));
    let mut process = FunctionProcess::start(binary, "spot", &region, &env).await?;
    process.wait_init().await?;
    let mut back = raised.clone();
    for n in 0..RETURN_TICKS {
        if n > 0 {
            process
                .advance(std::time::Duration::from_secs(5 * 60))
                .await?;
        }
        let at = process.now_ms();
        let tick = crate::scenes::schedule_event(&format!("demo-tick-{n}"), &region, at);
        let r = process.invoke(&tick).await?.answer()?;
        say(&format!(
            "{} min later, the schedule: {}",
            at.saturating_sub(burst_ended) / 60_000,
            r["actions"]
        ));
        back = on_demand(&config, &scene).await?;
        if back != raised {
            break;
        }
    }
    say(&format!(
        "on-demand node group after the return (read from moto): {back}"
    ));
    process.kill().await;
    if raised == back {
        return Err(SandboxError::Function(
            "the failover did not raise and return the on-demand group".into(),
        ));
    }
    Ok(())
}

//! The spot benchmark: event → cordon time over many warnings, and a 50-pod drain with budgets by
//! the spot function's drainer against a sequential one-pod-at-a-time drainer (kubectl's way:
//! evict, wait until the pod is gone, a fixed 5 s retry on a budget refusal) on the same emulator.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use breakwater::clock::{Clock, SystemClock};
use breakwater::config::{Env, Settings};
use breakwater::kube::ops::{evict, Eviction};
use breakwater::kube::KubeClients;
use breakwater::Toolkit;
use serde_json::json;
use spot::drain::{choose, pods_on, Candidate, Drainer, Policy};
use spot::settings::SpotSettings;
use spot::SpotFunction;

use super::scene::{spot_nodes, spot_scene};
use crate::kube::fixtures::fifty_pod_workload;
use crate::kube::KubeEmulator;
use crate::moto::{Lifetime, Moto};
use crate::seed::{self, Estate, PRIMARY, SECONDARY};
use crate::SandboxError;

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct SpotFigures {
    /// Function time from the event to the cordon, per warning (ms).
    pub cordon_ms: Vec<f64>,
    /// Pods drained in each drain.
    pub pods: usize,
    /// The spot drainer.
    pub ours: Duration,
    /// The sequential drainer.
    pub sequential: Duration,
    /// The emulator's clock speed (kubelet grace and pod readiness run this much faster).
    pub speed: f64,
    /// The drain's floor: ⌈pods ÷ disruptions the budgets allow at once⌉ × the time a
    /// replacement takes to be Ready (no drainer can move a budgeted app faster).
    pub floor: Duration,
    /// Its rounds (⌈pods ÷ allowed⌉ of the slowest app).
    pub rounds: u32,
}

/// [`fifty_pod_workload`]: each app has 5 pods under `maxUnavailable: 1`, and the ten apps
/// drain side by side, so the slowest app needs ⌈5 ÷ 1⌉ rounds.
const FIFTY_POD_ROUNDS: u32 = 5;

async fn sequential(client: &kube::Client, candidates: &[Candidate]) -> Result<(), SandboxError> {
    for c in candidates {
        loop {
            match evict(client, &c.namespace, &c.name, &c.uid, None).await {
                Ok(Eviction::Evicted | Eviction::Gone | Eviction::Replaced) => break,
                Ok(_) => tokio::time::sleep(Duration::from_secs(5)).await,
                Err(e) => return Err(SandboxError::Function(e.to_string())),
            }
        }
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
            kube::Api::namespaced(client.clone(), &c.namespace);
        while let Ok(Some(_)) = api.get_opt(&c.name).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Runs the benchmark against moto at `endpoint` (seeded `estate`) and a fresh emulator.
pub async fn run(
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    warnings: usize,
) -> Result<SpotFigures, SandboxError> {
    let region = estate.primary.region.clone();
    let scene = spot_scene(config, &region, "-bench", warnings + 2).await?;
    let speed = 10.0;
    let emulator = KubeEmulator::start(SystemClock.now_ms(), speed).await?;
    let nodes = spot_nodes(&emulator, &scene)?;
    let aws = Arc::new(breakwater::aws::Aws::for_endpoint(endpoint, &region).await);
    let settings = Settings {
        region: region.clone(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: None,
        dry_run: false,
        lease_ttl: Duration::from_secs(180),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "spot".into(),
    };
    let function = SpotFunction {
        instances: breakwater::aws::ec2::Ec2Instances::new(aws.ec2()),
        node_groups: breakwater::aws::eks::EksNodeGroups::new(aws.eks()),
        target_groups: breakwater::aws::elbv2::ElbTargetGroups::new(aws.elbv2()),
        kube: KubeClients::new(Some(emulator.endpoint()))
            .map_err(|e| SandboxError::Function(e.to_string()))?,
        toolkit: Toolkit::with_aws(settings, aws.clone(), Arc::new(SystemClock)),
        settings: SpotSettings::from_env(&Env::from_pairs([(
            "BREAKWATER_SPOT_CLUSTERS",
            scene.cluster.as_str(),
        )]))
        .map_err(|e| SandboxError::Function(e.to_string()))?,
    };
    // Event → cordon, for warnings on empty nodes (the token is cached after the first).
    let mut cordon_ms = Vec::new();
    for (i, instance) in scene.instances.iter().skip(2).enumerate() {
        let event = json!({"version": "0", "id": format!("bench-{i}"), "detail-type": "EC2 Spot Instance Interruption Warning",
            "source": "aws.ec2", "account": "123456789012", "time": breakwater::clock::rfc3339(SystemClock.now_ms()),
            "region": region, "resources": [], "detail": {"instance-id": instance, "instance-action": "terminate"}});
        let r = function
            .handle(event, &format!("bench-{i}"))
            .await
            .map_err(|e| SandboxError::Function(e.to_string()))?;
        cordon_ms.push(r["cordon_ms"].as_f64().unwrap_or(f64::NAN));
    }
    // The same 50-pod workload on two nodes: one drained each way.
    let client = function
        .kube
        .client(&aws, &scene.cluster, SystemClock.now_ms())
        .await
        .map_err(|e| SandboxError::Function(e.to_string()))?;
    // The same 50-pod workload on two nodes, both cordoned before either drain starts (as the
    // function and `kubectl drain` cordon first), so that replacements land on neither.
    let work = [(&nodes[0], "ours"), (&nodes[1], "sequential")];
    for (node, namespace) in work {
        fifty_pod_workload(&emulator, node, namespace)
            .map_err(|e| SandboxError::Seed(e.message))?;
        emulator
            .with(|c| {
                let kind = crate::kube::store::find_kind("", "v1", "nodes")
                    .ok_or_else(|| crate::kube::store::ApiError::bad_request("nodes"))?;
                c.patch(
                    kind,
                    "",
                    node,
                    "application/merge-patch+json",
                    &json!({"spec": {"unschedulable": true}}),
                    false,
                )
            })
            .map_err(|e| SandboxError::Seed(e.message))?;
    }
    let mut timings = Vec::new();
    for (node, namespace) in work {
        let pods = pods_on(&client, node)
            .await
            .map_err(|e| SandboxError::Function(e.to_string()))?;
        let (candidates, left) = choose(&pods, &Default::default(), Policy::OverrideAtDeadline);
        let started = Instant::now();
        if namespace == "ours" {
            let drainer = Drainer {
                client: client.clone(),
                clock: Arc::new(SystemClock),
                deadline_ms: SystemClock.now_ms() + 110_000,
            };
            let report = drainer.drain(candidates.clone(), left).await;
            if report.deadline_missed || report.evicted() != candidates.len() {
                return Err(SandboxError::Function(format!(
                    "the drain did not finish cleanly: {report:?}"
                )));
            }
        } else {
            sequential(&client, &candidates).await?;
        }
        timings.push((candidates.len(), started.elapsed()));
    }
    if timings[0].0 != timings[1].0 {
        return Err(SandboxError::Function(format!(
            "the two drains had {} and {} pods",
            timings[0].0, timings[1].0
        )));
    }
    // A replacement is Ready `pod_ready_delay_ms` after it is created, on the emulator's clock.
    let ready =
        Duration::from_secs_f64(emulator.with(|c| c.pod_ready_delay_ms) as f64 / 1000.0 / speed);
    Ok(SpotFigures {
        cordon_ms,
        pods: timings[0].0,
        ours: timings[0].1,
        sequential: timings[1].1,
        speed,
        floor: ready * FIFTY_POD_ROUNDS,
        rounds: FIFTY_POD_ROUNDS,
    })
}

/// `sandbox spot-bench [--warnings N]`: event → cordon time, and a 50-pod drain against a
/// sequential one-pod-at-a-time drainer on the same emulator.
pub async fn command(warnings: usize) -> Result<(), SandboxError> {
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let figures = run(&config, &moto.endpoint(), &estate, warnings).await?;
    moto.stop();
    let mut cordon = figures.cordon_ms.clone();
    cordon.sort_by(f64::total_cmp);
    let at = |p: usize| cordon[(cordon.len() * p / 100).min(cordon.len() - 1)];
    println!("| measure | value |");
    println!("|---|---|");
    println!("| event → cordon, function time ({} warnings) | median {:.1} ms, p90 {:.1} ms, max {:.1} ms |", cordon.len(), at(50), at(90), cordon[cordon.len() - 1]);
    println!(
        "| drain of {} pods with budgets, spot's drainer | {:.2} s |",
        figures.pods,
        figures.ours.as_secs_f64()
    );
    println!(
        "| the same, sequential one-pod-at-a-time drainer | {:.2} s |",
        figures.sequential.as_secs_f64()
    );
    println!(
        "| ratio (sequential / spot) | {:.1}× |",
        figures.sequential.as_secs_f64() / figures.ours.as_secs_f64()
    );
    println!(
        "| the floor: ⌈pods ÷ allowed⌉ × replacement Ready | {} × {:.2} s = {:.2} s; spot's drain is {:.1}× the floor |",
        figures.rounds,
        figures.floor.as_secs_f64() / f64::from(figures.rounds),
        figures.floor.as_secs_f64(),
        figures.ours.as_secs_f64() / figures.floor.as_secs_f64()
    );
    crate::bench::record_figure(
        "spot",
        &format!(
            "event → cordon median {:.1} ms; {}-pod drain {:.2} s vs sequential {:.2} s ({:.1}×), {:.1}× its floor of {:.2} s",
            at(50),
            figures.pods,
            figures.ours.as_secs_f64(),
            figures.sequential.as_secs_f64(),
            figures.sequential.as_secs_f64() / figures.ours.as_secs_f64(),
            figures.ours.as_secs_f64() / figures.floor.as_secs_f64(),
            figures.floor.as_secs_f64()
        ),
    );
    println!("The emulator's kubelet runs at {}× (5 s of grace in {:.1} s, a replacement pod Ready in {:.1} s); the cordon time includes DescribeInstances against moto and the first EKS token.", figures.speed, 5.0 / figures.speed, 2.0 / figures.speed);
    Ok(())
}

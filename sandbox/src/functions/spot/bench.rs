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
use breakwater::ports::Instances;
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
    /// The load-balancer step before the spot drainer's drain (deregistered, then drained).
    pub lb_step: Duration,
    /// The target group's deregistration delay (the LB step's floor).
    pub lb_delay: Duration,
    /// When the spot drainer's last eviction was accepted.
    pub last_eviction: Duration,
    /// The rounds of evictions the budgets impose (⌈pods ÷ allowed⌉ of the slowest app).
    pub rounds: u32,
    /// The time a replacement takes to be Ready (a round's length).
    pub ready: Duration,
    /// The pods' termination grace (the kubelet keeps an evicted pod that long).
    pub grace: Duration,
}

impl SpotFigures {
    /// The evictions' floor: a round starts when the previous round's replacements are Ready,
    /// so the last round's evictions come (rounds − 1) × Ready after the first.
    pub fn evictions_floor(&self) -> Duration {
        self.ready * self.rounds.saturating_sub(1)
    }

    /// The drain's floor: every pod gone is the last evictions plus their grace. No drainer can
    /// move budgeted apps faster.
    pub fn drain_floor(&self) -> Duration {
        self.evictions_floor() + self.grace
    }

    /// ⌈pods ÷ allowed⌉ × Ready, the formula of issue #21: it counts the last replacements'
    /// readiness, which a drain does not wait for, and leaves out the last pods' grace, which it
    /// does.
    pub fn issue_floor(&self) -> Duration {
        self.ready * self.rounds
    }
}

/// The deregistration delay of the target group the spot drainer's node is in (ELB's default is
/// 300 s; the function waits at most 30 s, and moto's patch keeps a target `draining` this long).
const LB_DELAY_S: u32 = 2;

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
    speed: f64,
) -> Result<SpotFigures, SandboxError> {
    let region = estate.primary.region.clone();
    let scene = spot_scene(config, &region, "-bench", warnings + 2).await?;
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
        lifecycle: breakwater::aws::autoscaling::AsgLifecycle::new(aws.autoscaling()),
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
    // The spot drainer's node is a NodePort target of a load balancer: it leaves it first, as the
    // function does, and the step is timed with the drain.
    let lb_instance = &scene.instances[0];
    let (vpc, _) = super::scene::instance_network(config, lb_instance).await?;
    let group = super::scene::target_group(
        config,
        "bench-nodeport",
        &vpc,
        "instance",
        &[(lb_instance.as_str(), 30080)],
        LB_DELAY_S,
    )
    .await?;
    let mut timings = Vec::new();
    let mut lb_step = Duration::ZERO;
    let mut last_eviction = Duration::ZERO;
    let mut grace_s = 0;
    for (node, namespace) in work {
        let pods = pods_on(&client, node)
            .await
            .map_err(|e| SandboxError::Function(e.to_string()))?;
        let (candidates, left) = choose(&pods, &Default::default(), Policy::OverrideAtDeadline);
        let started = Instant::now();
        if namespace == "ours" {
            grace_s = candidates.iter().map(|c| c.grace_s).max().unwrap_or(0);
            let deadline_ms = SystemClock.now_ms() + 110_000;
            let info = function
                .instances
                .describe(lb_instance)
                .await
                .map_err(|e| SandboxError::Function(e.to_string()))?
                .ok_or_else(|| SandboxError::Function(format!("no instance {lb_instance}")))?;
            let lb = spot::targets::leave_load_balancers(
                &function.target_groups,
                &SystemClock,
                &info,
                deadline_ms,
                30_000,
            )
            .await;
            lb_step = started.elapsed();
            let still_listed = super::scene::targets_listed(config, &group).await?;
            if lb.is_none_or(|lb| lb.targets.iter().any(|t| t.done_ms.is_none()))
                || !still_listed.is_empty()
            {
                return Err(SandboxError::Function(format!(
                    "the node did not leave its load balancer: {still_listed:?} still listed"
                )));
            }
            let drainer = Drainer {
                client: client.clone(),
                clock: Arc::new(SystemClock),
                deadline_ms,
            };
            let report = drainer.drain(candidates.clone(), left).await;
            if report.deadline_missed || report.evicted() != candidates.len() {
                return Err(SandboxError::Function(format!(
                    "the drain did not finish cleanly: {report:?}"
                )));
            }
            let last_ms = report.timings.iter().map(|t| t.settled_ms).max();
            last_eviction =
                Duration::from_millis(last_ms.unwrap_or(report.started_ms) - report.started_ms);
            // The drain's own time, from its first eviction.
            timings.push((candidates.len(), Duration::from_millis(report.took_ms)));
            continue;
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
    // A replacement is Ready `pod_ready_delay_ms` after it is created, and a pod goes after its
    // grace, on the emulator's clock.
    let ready =
        Duration::from_secs_f64(emulator.with(|c| c.pod_ready_delay_ms) as f64 / 1000.0 / speed);
    Ok(SpotFigures {
        cordon_ms,
        pods: timings[0].0,
        ours: timings[0].1,
        sequential: timings[1].1,
        speed,
        lb_step,
        lb_delay: Duration::from_secs(u64::from(LB_DELAY_S)),
        last_eviction,
        rounds: FIFTY_POD_ROUNDS,
        ready,
        grace: Duration::from_secs_f64(grace_s as f64 / speed),
    })
}

/// `sandbox spot-bench [--warnings N] [--speed X]`: event → cordon time, and a 50-pod drain
/// against its floor and a sequential one-pod-at-a-time drainer on the same emulator, its clock
/// at X × real time.
pub async fn command(warnings: usize, speed: f64) -> Result<(), SandboxError> {
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let figures = run(&config, &moto.endpoint(), &estate, warnings, speed).await?;
    moto.stop();
    let mut cordon = figures.cordon_ms.clone();
    cordon.sort_by(f64::total_cmp);
    let at = |p: usize| cordon[(cordon.len() * p / 100).min(cordon.len() - 1)];
    println!("| measure | value |");
    println!("|---|---|");
    println!("| event → cordon, function time ({} warnings) | median {:.1} ms, p90 {:.1} ms, max {:.1} ms |", cordon.len(), at(50), at(90), cordon[cordon.len() - 1]);
    println!(
        "| the node leaves its load balancer (NodePort target, {:.0} s deregistration delay) | {:.2} s, {:.2}× the delay |",
        figures.lb_delay.as_secs_f64(),
        figures.lb_step.as_secs_f64(),
        figures.lb_step.as_secs_f64() / figures.lb_delay.as_secs_f64()
    );
    println!(
        "| then the drain of {} pods with budgets, spot's drainer | {:.2} s; with the LB step {:.2} s of the 120 s warning |",
        figures.pods,
        figures.ours.as_secs_f64(),
        (figures.lb_step + figures.ours).as_secs_f64()
    );
    println!(
        "| the same, sequential one-pod-at-a-time drainer | {:.2} s |",
        figures.sequential.as_secs_f64()
    );
    println!(
        "| ratio (sequential / spot) | {:.1}× |",
        figures.sequential.as_secs_f64() / figures.ours.as_secs_f64()
    );
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "| its floor: (⌈pods ÷ allowed⌉ − 1) × replacement Ready + the last pods' grace | ({} − 1) × {:.2} s + {:.2} s = {:.2} s; spot's drain is {:.2}× the floor |",
        figures.rounds,
        secs(figures.ready),
        secs(figures.grace),
        secs(figures.drain_floor()),
        secs(figures.ours) / secs(figures.drain_floor())
    );
    println!(
        "| spot's last eviction accepted | {:.2} s, against a floor of {:.2} s: {:.2}× |",
        secs(figures.last_eviction),
        secs(figures.evictions_floor()),
        secs(figures.last_eviction) / secs(figures.evictions_floor())
    );
    println!(
        "| issue #21's formula, ⌈pods ÷ allowed⌉ × Ready | {:.2} s (it counts the last replacements' readiness, which a drain does not wait for, and not the last pods' grace, which it does) |",
        secs(figures.issue_floor())
    );
    crate::bench::record_figure(
        "spot",
        &format!(
            "event → cordon median {:.1} ms; {}-pod drain {:.2} s vs sequential {:.2} s ({:.1}×), {:.2}× its floor of {:.2} s",
            at(50),
            figures.pods,
            secs(figures.ours),
            secs(figures.sequential),
            secs(figures.sequential) / secs(figures.ours),
            secs(figures.ours) / secs(figures.drain_floor()),
            secs(figures.drain_floor())
        ),
    );
    println!("The emulator's kubelet runs at {}× ({:.0} s of grace in {:.2} s, a replacement pod Ready in {:.2} s); the cordon time includes DescribeInstances against moto and the first EKS token. The drainer asks again the moment a budget's watch says it allows a disruption.", figures.speed, secs(figures.grace) * figures.speed, secs(figures.grace), secs(figures.ready));
    Ok(())
}

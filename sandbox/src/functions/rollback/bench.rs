//! The rollback benchmark: function time from an alarm event's arrival to the rollback patch
//! answered, over many workloads (each its own Deployment with a bad revision and its own tagged
//! alarm), in process against moto and the Kubernetes emulator. The first event makes the EKS
//! token; the rest reuse it (the case the target is about).

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use breakwater::aws::cloudwatch::CloudWatchAlarms;
use breakwater::clock::{Clock, SystemClock};
use breakwater::config::{Env, Settings};
use breakwater::kube::KubeClients;
use breakwater::Toolkit;
use rollback::settings::RollbackSettings;
use rollback::RollbackFunction;

use super::scene::{alarm_event, put_latency_alarm, roll_out};
use crate::kube::fixtures::{deployment, node};
use crate::kube::KubeEmulator;
use crate::moto::{Lifetime, Moto};
use crate::seed::{self, Estate, PRIMARY, SECONDARY};
use crate::SandboxError;

const MINUTE: u64 = 60_000;

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct RollbackFigures {
    /// Event → patch answered, function time, per event (ms); the first made the token.
    pub patch_ms: Vec<f64>,
    /// Whole invocation (audit record and notification included), per event (ms).
    pub total_ms: Vec<f64>,
}

/// Runs `events` alarm events (one per workload) against moto at `endpoint` (seeded `estate`).
pub async fn run(
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    events: usize,
) -> Result<RollbackFigures, SandboxError> {
    let region = estate.primary.region.clone();
    let now = SystemClock.now_ms();
    let emu = KubeEmulator::start(now - 120 * MINUTE, 0.0).await?;
    let seed = |e: crate::kube::store::ApiError| SandboxError::Seed(e.message);
    emu.create(
        "namespaces",
        "",
        serde_json::json!({"metadata": {"name": "shop"}}),
    )
    .map_err(seed)?;
    for i in 0..4 {
        emu.create(
            "nodes",
            "",
            node(
                &format!("n{i}"),
                &format!("i-0b{i:015}"),
                &format!("{region}a"),
                "apps",
                "ON_DEMAND",
            ),
        )
        .map_err(seed)?;
    }
    let mut alarms = Vec::new();
    for i in 0..events {
        let name = format!("web-{i}");
        emu.create(
            "deployments",
            "shop",
            deployment(&name, &name, 2, &format!("{name}:1")),
        )
        .map_err(seed)?;
        let alarm = format!("bench-{name}-p95");
        let arn = put_latency_alarm(
            config,
            &region,
            &alarm,
            &format!("app/{name}/1"),
            "prod",
            "shop",
            &name,
        )
        .await?;
        alarms.push((alarm, arn));
    }
    emu.advance(115 * MINUTE);
    for i in 0..events {
        let name = format!("web-{i}");
        roll_out(&emu, "shop", &name, &format!("{name}:2"))?;
    }
    emu.advance(5 * MINUTE);
    let aws = Arc::new(breakwater::aws::Aws::for_endpoint(endpoint, &region).await);
    let settings = Settings {
        region: region.clone(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: Some(estate.primary.topic_arn.clone()),
        dry_run: false,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "rollback".into(),
    };
    let function = RollbackFunction {
        alarms: CloudWatchAlarms::new(aws.cloudwatch()),
        kube: KubeClients::new(Some(emu.endpoint()))
            .map_err(|e| SandboxError::Function(e.to_string()))?,
        toolkit: Toolkit::with_aws(settings, aws.clone(), Arc::new(SystemClock)),
        settings: RollbackSettings::from_env(&Env::from_pairs([(
            "BREAKWATER_ROLLBACK_CLUSTERS",
            "prod",
        )]))
        .map_err(|e| SandboxError::Function(e.to_string()))?,
    };
    let mut figures = RollbackFigures {
        patch_ms: Vec::new(),
        total_ms: Vec::new(),
    };
    for (i, (alarm, arn)) in alarms.iter().enumerate() {
        let event = alarm_event(
            &format!("bench-{i}"),
            &region,
            alarm,
            arn,
            "OK",
            "ALARM",
            SystemClock.now_ms() - MINUTE,
        );
        let started = std::time::Instant::now();
        let r = function
            .handle(event, &format!("bench-{i}"))
            .await
            .map_err(|e| SandboxError::Function(e.to_string()))?;
        figures
            .total_ms
            .push(started.elapsed().as_secs_f64() * 1000.0);
        let d = &r["decisions"][0];
        if d["outcome"] != "rolled-back" {
            return Err(SandboxError::Function(format!(
                "event {i} did not roll back: {r}"
            )));
        }
        figures
            .patch_ms
            .push(d["patched_after_ms"].as_f64().unwrap_or_default());
    }
    let rolled_back = (0..events)
        .filter(|i| {
            emu.get("deployments", "shop", &format!("web-{i}"))
                .is_some_and(|d| {
                    d["spec"]["template"]["spec"]["containers"][0]["image"]
                        == format!("web-{i}:1").as_str()
                })
        })
        .count();
    if rolled_back != events {
        return Err(SandboxError::Function(format!(
            "{rolled_back} of {events} deployments read back rolled back"
        )));
    }
    Ok(figures)
}

/// `sandbox rollback-bench [--events N]`: alarm event → rollback patch, function time.
pub async fn command(events: usize) -> Result<(), SandboxError> {
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let figures = run(&config, &moto.endpoint(), &estate, events).await?;
    moto.stop();
    let stats = |all: &[f64]| {
        let mut v = all.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |p: usize| v[(v.len() * p / 100).min(v.len() - 1)];
        (at(50), at(90), v[v.len() - 1])
    };
    let (p50, p90, max) = stats(&figures.patch_ms[1..]);
    let (t50, _, _) = stats(&figures.total_ms[1..]);
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| alarm event → rollback patch answered, token cached ({} events) | median {p50:.1} ms, p90 {p90:.1} ms, max {max:.1} ms |",
        events - 1
    );
    println!(
        "| the first event (makes the EKS token) | {:.1} ms |",
        figures.patch_ms[0]
    );
    println!("| whole invocation incl. audit record and notification | median {t50:.1} ms |");
    crate::bench::record_figure(
        "rollback",
        &format!("alarm event → rollback patch: median {p50:.1} ms, p90 {p90:.1} ms"),
    );
    println!("In process (this binary's build profile), against moto and the Kubernetes emulator on loopback: idempotency record, workload lease, ListTagsForResource, the Deployment and its ReplicaSets read, the JSON patch; each deployment read back rolled back.");
    Ok(())
}

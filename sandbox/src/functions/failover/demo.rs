//! The regional-outage scenes of `make demo` (and the outage the bench times), through the
//! release `failover` binary in the Lambda Runtime API emulator, against moto behind the fault
//! proxy (which logs every call and how long moto took): the primary region goes down whole
//! (`Rule::region_outage`, and the ARC cluster's endpoint there), its probe fails and its
//! heartbeat goes stale, the quorum holds, and the function fails over into the secondary region
//! — traffic moved by the ARC routing controls, or, in the scene without ARC, by the
//! CloudWatch-metric health checks' alarms.

use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use breakwater::clock::{Clock, SystemClock};
use serde_json::{json, Value};

use super::scene::{
    alarm_state, failover_scene_via, metric_switches, observe, put_lag, put_plan, FailoverScene,
    Latencies, Observed,
};
use crate::function_env::FunctionEnv;
use crate::proxy::{FaultProxy, Rule};
use crate::runtime::FunctionProcess;
use crate::seed::Estate;
use crate::SandboxError;

/// How many schedule ticks a scene delivers at most to see an execution through.
const RESUME_TICKS: usize = 12;

/// How many ticks after the outage began a scene waits at most for the quorum (the heartbeat
/// goes stale two minutes after the last one).
const START_TICKS: usize = 6;

/// What one outage came to.
#[derive(Debug, Clone)]
pub struct Outage {
    /// The scene.
    pub scene: FailoverScene,
    /// The invocation's answer that started (and ran) the execution.
    pub answer: Value,
    /// That invocation's wall time (ms).
    pub invocation_ms: f64,
    /// The part of it with at least one AWS call outstanding (ms).
    pub aws_busy_ms: f64,
    /// AWS calls made by it.
    pub calls: usize,
    /// The execution record.
    pub execution: Value,
    /// The report (JSON).
    pub report: Value,
    /// The estate read back afterwards.
    pub observed: Observed,
    /// With metric switches: the primary's and the secondary's switch alarm states, read back
    /// in the secondary region.
    pub switch_alarms: Option<(String, String)>,
    /// Where the report is.
    pub report_key: String,
}

/// The primary's health endpoint: a loopback port nothing answers on.
fn dead_url() -> Result<String, SandboxError> {
    let port = crate::loopback::free_port()?;
    Ok(format!("http://127.0.0.1:{port}/health"))
}

async fn read(config: &SdkConfig, estate: &Estate, key: &str) -> Result<Value, SandboxError> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&crate::seed::regional(config, &estate.secondary.region))
            .force_path_style(true)
            .build(),
    );
    let object = s3
        .get_object()
        .bucket(&estate.secondary.state_bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("get {key}"), &e))?;
    let bytes = object
        .body
        .collect()
        .await
        .map_err(|e| SandboxError::Io(e.to_string()))?
        .into_bytes();
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| SandboxError::Io(e.to_string()))?;
    // State-store records are enveloped; reports too.
    Ok(value.get("data").cloned().unwrap_or(value))
}

/// How the scene's traffic moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// Route 53 ARC routing controls (the first choice).
    RoutingControls,
    /// CloudWatch-metric health checks, for an account without an ARC cluster (the second
    /// choice): the alarms in the secondary region, moved by `PutMetricData` there.
    MetricSwitches,
    /// Routing controls, with the ARC cluster's endpoint in this region down as well as the
    /// primary's (two of the five).
    RoutingControlsAlsoDown(&'static str),
}

/// Plays a whole-region outage of the primary: heartbeats arrive from the primary while it is
/// alive; then the whole of it goes down — every call signed for it (and, for us-east-1, Route
/// 53's, IAM's and STS's global control planes) through the function's AWS endpoint proxy
/// (`Rule::region_outage`), and the ARC cluster's endpoint in it — and no alarm about it is
/// forwarded any more (the forwarder lived there). Detection comes from the healthy side: the
/// probe of the primary fails and its heartbeat goes stale, tick after tick, until the quorum
/// holds and the function fails over.
#[allow(clippy::too_many_arguments)]
pub async fn outage(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
    suffix: &str,
    latencies: Latencies,
    poll_ms: u64,
) -> Result<Outage, SandboxError> {
    outage_with(
        say,
        config,
        endpoint,
        estate,
        binary,
        suffix,
        latencies,
        poll_ms,
        Switch::RoutingControls,
    )
    .await
}

/// [`outage`], the traffic moved by `switch`.
#[allow(clippy::too_many_arguments)]
pub async fn outage_with(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
    suffix: &str,
    latencies: Latencies,
    poll_ms: u64,
    switch: Switch,
) -> Result<Outage, SandboxError> {
    let secondary = estate.secondary.region.clone();
    let primary = estate.primary.region.clone();
    let proxy = FaultProxy::start(endpoint, 11).await?;
    let mut scene = failover_scene_via(
        config,
        estate,
        suffix,
        latencies,
        &dead_url()?,
        &proxy.endpoint(),
    )
    .await?;
    let switches = match switch {
        Switch::RoutingControls | Switch::RoutingControlsAlsoDown(_) => None,
        Switch::MetricSwitches => {
            let ms = metric_switches(config, estate, suffix).await?;
            scene.plan["traffic"] = json!({"metric_switches": ms.plan.clone()});
            Some(ms)
        }
    };
    // Detection from the healthy side: the probe of the primary and its heartbeat (gone quiet
    // two minutes after the last one); the alarms about the primary stay signals, but with the
    // whole region down their events are not forwarded. A short window, so that the scene plays
    // in seconds (production plans: minutes).
    let probe = scene.plan["detection"]["signals"][2].clone();
    scene.plan["detection"] = json!({"quorum": 2, "window_seconds": 2, "cooldown_seconds": 3600,
    "signals": [
        scene.plan["detection"]["signals"][0].clone(),
        scene.plan["detection"]["signals"][1].clone(),
        probe,
        {"name": "heartbeat", "kind": "heartbeat", "stale_seconds": 120}
    ]});
    put_plan(
        config,
        &secondary,
        &estate.secondary.state_bucket,
        &scene.plan,
    )
    .await?;
    let now = SystemClock.now_ms();
    // RDS reports the replica's lag every minute: samples from before the outage began (the
    // RPO guard reads the last whole minute before the quorum) up to now.
    for back_s in [240, 180, 120, 60, 20] {
        put_lag(config, &secondary, &scene.replica, 4.0, now - back_s * 1000).await?;
    }
    let mut env = FunctionEnv::new(&proxy.endpoint(), &estate.secondary)
        .with("BREAKWATER_PRIMARY_REGION", primary.clone())
        .with("BREAKWATER_SECONDARY_REGION", secondary.clone())
        .with("BREAKWATER_FAILOVER_POLL_MS", poll_ms.to_string())
        .with(
            "BREAKWATER_KUBE_ENDPOINT",
            crate::gameday::kube_endpoint(&scene.kube.endpoint()).await?,
        )
        .into_vars();
    if crate::runtime::Chaos::get().is_some() {
        // The emulator ends an invocation after 60 s (the template's function: 900 s), so one
        // invocation waits 30 s at most before it checkpoints; the plan's lease (wait + 120 s)
        // then outlives a killed holder by 2½ minutes, not 12.
        env.push(("BREAKWATER_FAILOVER_WAIT_SECONDS".into(), "30".into()));
    }
    let mut process = FunctionProcess::start(binary, "failover", &secondary, &env).await?;
    process.wait_init().await?;
    // The primary is alive: its heartbeat arrives every minute (forwarded to this region's bus).
    for n in 0..2 {
        if n > 0 {
            process.advance(Duration::from_secs(60)).await?;
            put_lag(
                config,
                &secondary,
                &scene.replica,
                4.0,
                process.now_ms() - 20_000,
            )
            .await?;
        }
        let beat =
            crate::scenes::schedule_event(&format!("beat{suffix}-{n}"), &primary, process.now_ms());
        let r = delivered(&process.invoke(&beat).await?)?;
        say(&format!(
            "heartbeat from {primary} → {}: {}",
            r["outcome"],
            quorum(&r)
        ));
    }
    // The whole primary region goes down: the function's AWS endpoint proxy drops every call
    // signed for it (and, for us-east-1, Route 53's, IAM's and STS's global control planes), and
    // the ARC cluster's endpoint there stops answering.
    proxy.add_rule(Rule::region_outage(&primary));
    scene.arc.set_down(&primary, true);
    if let Switch::RoutingControlsAlsoDown(region) = switch {
        scene.arc.set_down(region, true);
    }
    say(&format!(
        "{primary} is down, whole: its endpoints{} and the ARC cluster's endpoint there; no alarm about it is forwarded any more",
        if primary == "us-east-1" {
            ", Route 53's, IAM's and STS's global control planes"
        } else {
            ""
        }
    ));
    // Ticks, one a minute: the probe fails, then the heartbeat goes stale; the quorum holds.
    let mut started = None;
    for n in 0..START_TICKS {
        process.advance(Duration::from_secs(60)).await?;
        put_lag(
            config,
            &secondary,
            &scene.replica,
            4.0,
            process.now_ms() - 20_000,
        )
        .await?;
        let tick = crate::scenes::schedule_event(
            &format!("outage-tick{suffix}-{n}"),
            &secondary,
            process.now_ms(),
        );
        let mark = proxy.calls().len();
        let invocation = process.invoke(&tick).await?;
        let answer = delivered(&invocation)?;
        say(&format!(
            "tick: the primary's probe fails → {}: {}",
            answer["outcome"],
            quorum(&answer)
        ));
        if answer["outcome"] == "started" || answer["outcome"] == "joined" {
            started = Some((tick, invocation, answer, mark));
            break;
        }
    }
    let Some((tick, invocation, answer, mark)) = started else {
        return Err(SandboxError::Function(format!(
            "no failover started within {START_TICKS} ticks of the outage"
        )));
    };
    let invocation_ms = invocation.duration.as_secs_f64() * 1000.0;
    let calls = proxy.calls();
    let busy = proxy.upstream_busy_us(mark);
    say(&format!(
        "the quorum holds (probe, heartbeat): failover {} ({} AWS calls, {:.0} ms)",
        answer["execution"]["outcome"],
        calls.len() - mark,
        invocation_ms
    ));
    let again = delivered(&process.invoke(&tick).await?)?;
    say(&format!(
        "the same tick again → {} (no second execution)",
        again["outcome"]
    ));
    // The execution the tick started, by the plan's own record (under `make gameday` the
    // attempt that started it may have been killed, and the answer be a retry's).
    let plan_key = failover::plan_key(scene.plan["name"].as_str().unwrap_or_default());
    let plan_state = read(config, estate, &plan_key).await.unwrap_or(Value::Null);
    let id = answer["execution"]["id"]
        .as_str()
        .or_else(|| plan_state["last"].as_str())
        .unwrap_or_default()
        .to_string();
    let mut id = id;
    let mut execution = if id.is_empty() {
        Value::Null
    } else {
        read(config, estate, &format!("failover/executions/{id}.json")).await?
    };
    // The 1-minute schedule starts the execution the quorum calls for, or resumes one in
    // flight, as EventBridge delivers it, until the execution has ended (a killed
    // invocation's lease lapses meanwhile).
    for n in 0..RESUME_TICKS {
        if !id.is_empty() && execution["outcome"] != "running" {
            break;
        }
        process.advance(Duration::from_secs(60)).await?;
        // RDS reports the replica's lag to CloudWatch every minute: the sample the function
        // reads is as fresh on its clock as it would be in AWS.
        put_lag(
            config,
            &secondary,
            &scene.replica,
            4.0,
            process.now_ms() - 20_000,
        )
        .await?;
        let tick = crate::scenes::schedule_event(
            &format!("tick{suffix}-{n}"),
            &secondary,
            process.now_ms(),
        );
        let r = process.invoke(&tick).await?.answer();
        say(&format!(
            "schedule tick {}: the execution {} → {}",
            n + 1,
            if id.is_empty() {
                "not started"
            } else {
                execution["outcome"].as_str().unwrap_or("?")
            },
            r.as_ref()
                .map_or_else(|e| e.to_string(), |r| r["outcome"].to_string())
        ));
        if id.is_empty() {
            let plan_state = read(config, estate, &plan_key).await?;
            id = plan_state["last"].as_str().unwrap_or_default().to_string();
        }
        if !id.is_empty() {
            execution = read(config, estate, &format!("failover/executions/{id}.json")).await?;
        }
    }
    process.kill().await;
    let report_key = format!("reports/failover/{id}");
    let report = read(config, estate, &format!("{report_key}.json")).await?;
    let observed = observe(config, estate, &scene).await?;
    let switch_alarms = match &switches {
        Some(ms) => Some((
            alarm_state(config, &secondary, &ms.primary.0).await?,
            alarm_state(config, &secondary, &ms.secondary.0).await?,
        )),
        None => None,
    };
    Ok(Outage {
        scene,
        answer,
        invocation_ms,
        aws_busy_ms: busy as f64 / 1000.0,
        calls: calls.len() - mark,
        execution,
        report,
        observed,
        switch_alarms,
        report_key,
    })
}

/// The function's answer. Under `make gameday` every attempt of an event may fail (it goes to
/// the dead-letter queue, and the game day counts it lost): the scene goes on, as the schedule
/// still acts on the quorum in AWS.
fn delivered(invocation: &crate::runtime::Invocation) -> Result<Value, SandboxError> {
    match invocation.answer() {
        Ok(answer) => Ok(answer),
        Err(e) if crate::runtime::Chaos::get().is_some() => {
            Ok(json!({"outcome": "lost", "reason": e.to_string()}))
        }
        Err(e) => Err(e),
    }
}

fn quorum(r: &Value) -> String {
    let q = &r["quorum"];
    if q.is_null() {
        return r["reason"].as_str().unwrap_or_default().to_string();
    }
    format!(
        "{} of {} signals firing (quorum {}), held {:.1} s of {:.0} s",
        q["firing"].as_array().map(Vec::len).unwrap_or(0),
        q["of"],
        q["needed"],
        q["held_ms"].as_f64().unwrap_or_default() / 1000.0,
        q["window_ms"].as_f64().unwrap_or_default() / 1000.0
    )
}

/// Decided → traffic moved (ms), from the execution record.
pub fn recovery_ms(execution: &Value) -> Option<f64> {
    let traffic = execution["steps"]["traffic"]["finished_ms"].as_u64()?;
    Some(traffic.saturating_sub(execution["started_ms"].as_u64()?) as f64)
}

/// The regional-outage scene of `make demo`, traffic through the ARC routing controls; returns
/// the execution's own report.
pub async fn play(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
) -> Result<breakwater::report::Report, SandboxError> {
    say(&format!("regional-outage scene: RDS orders ({}) → replica in {}, standby node group at 0, a Route 53 ARC cluster (five regional endpoints) with a routing control per region and the rule \"at least one On\"; AWS latencies scaled to seconds (promotion 6 s, node group 4 s, its nodes Ready 4 s and the critical pods 1 s after the update; a Kubernetes emulator follows the node group); then {} goes down whole", estate.primary.region, estate.secondary.region, estate.primary.region));
    play_with(
        say,
        config,
        endpoint,
        estate,
        binary,
        "-demo",
        Switch::RoutingControls,
    )
    .await
}

/// The same outage in an account without an ARC cluster: traffic through the CLOUDWATCH_METRIC
/// health checks' alarms in the secondary region (the second choice); returns the execution's
/// own report.
pub async fn play_without_arc(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
) -> Result<breakwater::report::Report, SandboxError> {
    say(&format!("regional-outage scene without ARC: the same estate, traffic switched by two CloudWatch alarms in {} (Breakwater/Traffic RegionActive, one per region, the primary's OK and the secondary's ALARM) that the regions' CLOUDWATCH_METRIC health checks watch; then {} goes down whole", estate.secondary.region, estate.primary.region));
    play_with(
        say,
        config,
        endpoint,
        estate,
        binary,
        "-demo-cw",
        Switch::MetricSwitches,
    )
    .await
}

async fn play_with(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
    suffix: &str,
    switch: Switch,
) -> Result<breakwater::report::Report, SandboxError> {
    // AWS's latencies, scaled down: promotion 6 s, node group 4 s (its nodes Ready 4 s after
    // the update, the critical pods 1 s later), DNS 2 s.
    let latencies = Latencies {
        promote: 6.0,
        nodes: 4.0,
        dns: 2.0,
        boot: 4.0,
        pod_ready: 1.0,
    };
    let o = outage_with(
        say, config, endpoint, estate, binary, suffix, latencies, 100, switch,
    )
    .await?;
    for phase in o.report["phases"].as_array().into_iter().flatten() {
        let ms = phase["finished_at_ms"].as_u64().unwrap_or(0)
            - phase["started_at_ms"].as_u64().unwrap_or(0);
        say(&format!(
            "  {:<22} {:>7.2} s  {}",
            phase["name"].as_str().unwrap_or_default(),
            ms as f64 / 1000.0,
            phase["detail"].as_str().unwrap_or_default()
        ));
    }
    let facts = &o.report["facts"];
    let traffic = match switch {
        Switch::RoutingControls | Switch::RoutingControlsAlsoDown(_) => {
            "one routing-control update"
        }
        Switch::MetricSwitches => {
            "two PutMetricData and the alarms read back (on AWS: + the alarms' 60-s period and evaluation)"
        }
    };
    say(&format!(
        "RTO {} (within target: {}); decided → traffic moved {} against max(database 6 s, nodes ready 5 s) + {traffic} = 6 s; lag at promotion {}",
        facts["rto"].as_str().unwrap_or_default(),
        facts["rto_within_target"].as_str().unwrap_or_default(),
        facts["decided_to_traffic_moved"].as_str().unwrap_or_default(),
        facts["replica_lag_at_promotion"].as_str().unwrap_or_default()
    ));
    say(&format!(
        "read back: replica {} (source {:?}), node group min {} desired {} {}, routing controls primary={} secondary={}",
        o.observed.replica.0, o.observed.replica.1, o.observed.node_group.0, o.observed.node_group.1,
        o.observed.node_group.2, on_off(o.observed.controls.0), on_off(o.observed.controls.1)
    ));
    if let Some((primary, secondary)) = &o.switch_alarms {
        say(&format!(
            "read back in {}: switch alarm of {} {primary} (its health check unhealthy), of {} {secondary} (healthy)",
            estate.secondary.region, estate.primary.region, estate.secondary.region
        ));
    }
    say(&format!(
        "report: s3://{}/{}.{{json,md,svg}}",
        estate.secondary.state_bucket, o.report_key
    ));
    let (controls, alarms) = match switch {
        Switch::RoutingControls | Switch::RoutingControlsAlsoDown(_) => ((false, true), None),
        // Without ARC the routing controls stay as they were; the alarms moved.
        Switch::MetricSwitches => ((true, false), Some(("ALARM".to_string(), "OK".to_string()))),
    };
    let expected = Observed {
        replica: ("available".into(), None),
        node_group: (2, 3, "ACTIVE".into()),
        controls,
        record: format!("east.{}.example.com", o.scene.name),
    };
    if o.execution["outcome"] != "succeeded"
        || o.observed != expected
        || o.switch_alarms != alarms
        || facts["rto_within_target"] != "true"
    {
        return Err(SandboxError::Function(format!(
            "the failover did not end as planned: {} / {:?} / switch alarms {:?} / RTO {} within target {}",
            o.answer, o.observed, o.switch_alarms, facts["rto"], facts["rto_within_target"]
        )));
    }
    serde_json::from_value(o.report)
        .map_err(|e| SandboxError::Function(format!("the execution's report: {e}")))
}

fn on_off(on: bool) -> &'static str {
    if on {
        "On"
    } else {
        "Off"
    }
}

//! The regional-outage scene of `make demo` (and the outage the bench times), through the
//! release `failover` binary in the Lambda Runtime API emulator, against moto behind the fault
//! proxy (which logs every call and how long moto took): the primary stops answering its probe,
//! two alarms fire, the quorum holds, and the function fails over into the secondary region.

use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use breakwater::clock::{Clock, SystemClock};
use serde_json::{json, Value};

use super::scene::{
    failover_scene_via, observe, put_lag, put_plan, FailoverScene, Latencies, Observed,
};
use crate::function_env::FunctionEnv;
use crate::functions::rollback::scene::alarm_event;
use crate::proxy::FaultProxy;
use crate::runtime::FunctionProcess;
use crate::seed::Estate;
use crate::SandboxError;

/// How many schedule ticks a scene delivers at most to see an execution through.
const RESUME_TICKS: usize = 12;

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

/// Plays an outage: a tick (the probe fails), the 5xx alarm, the window, the latency alarm.
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
    // A short window, so that the scene plays in seconds (production plans: minutes).
    scene.plan["detection"]["window_seconds"] = json!(2);
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
        .into_vars();
    if crate::runtime::Chaos::get().is_some() {
        // The emulator ends an invocation after 60 s (the template's function: 900 s), so one
        // invocation waits 30 s at most before it checkpoints; the plan's lease (wait + 120 s)
        // then outlives a killed holder by 2½ minutes, not 12.
        env.push(("BREAKWATER_FAILOVER_WAIT_SECONDS".into(), "30".into()));
    }
    let mut process = FunctionProcess::start(binary, "failover", &secondary, &env).await?;
    process.wait_init().await?;
    let alarm = |i: usize, began_ms: u64| {
        let name = &scene.alarms[i];
        alarm_event(
            &format!("outage-{i}{suffix}"),
            &primary,
            name,
            &format!(
                "arn:aws:cloudwatch:{primary}:{}:alarm:{name}",
                crate::seed::ACCOUNT
            ),
            "OK",
            "ALARM",
            began_ms,
        )
    };
    let tick = crate::scenes::schedule_event(&format!("tick{suffix}"), &secondary, now);
    let r = delivered(&process.invoke(&tick).await?)?;
    say(&format!(
        "tick: the primary's probe fails → {}: {}",
        r["outcome"],
        quorum(&r)
    ));
    let r = delivered(&process.invoke(&alarm(0, now - 90_000)).await?)?;
    say(&format!(
        "{} → ALARM → {}: {}",
        scene.alarms[0],
        r["outcome"],
        quorum(&r)
    ));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let mark = proxy.calls().len();
    let invocation = process.invoke(&alarm(1, now - 60_000)).await?;
    let answer = delivered(&invocation)?;
    let invocation_ms = invocation.duration.as_secs_f64() * 1000.0;
    let calls = proxy.calls();
    let busy = proxy.upstream_busy_us(mark);
    say(&format!(
        "{} → ALARM → {} ({} AWS calls, {:.0} ms)",
        scene.alarms[1],
        answer["outcome"],
        calls.len() - mark,
        invocation_ms
    ));
    let again = delivered(&process.invoke(&alarm(1, now - 60_000)).await?)?;
    say(&format!(
        "the same alarm event again → {} (no second execution)",
        again["outcome"]
    ));
    // The execution the alarm started, by the plan's own record (under `make gameday` the
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
    Ok(Outage {
        scene,
        answer,
        invocation_ms,
        aws_busy_ms: busy as f64 / 1000.0,
        calls: calls.len() - mark,
        execution,
        report,
        observed,
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

/// The regional-outage scene of `make demo`; returns the execution's own report.
pub async fn play(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    endpoint: &str,
    estate: &Estate,
    binary: &Path,
) -> Result<breakwater::report::Report, SandboxError> {
    // AWS's latencies, scaled down: promotion 6 s, node group 4 s, DNS 2 s.
    let latencies = Latencies {
        promote: 6.0,
        nodes: 4.0,
        dns: 2.0,
    };
    say("regional-outage scene: RDS orders (us-east-1) → replica in us-west-2, standby node group at 0, a Route 53 ARC cluster (five regional endpoints) with a routing control per region and the rule \"at least one On\"; AWS latencies scaled to seconds (promotion 6 s, node group 4 s)");
    let o = outage(
        say, config, endpoint, estate, binary, "-demo", latencies, 100,
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
    say(&format!(
        "RTO {} ; decided → traffic moved {} against max(database 6 s, nodes 4 s) + one routing-control update = 6 s; lag at promotion {}",
        facts["rto"].as_str().unwrap_or_default(),
        facts["decided_to_traffic_moved"].as_str().unwrap_or_default(),
        facts["replica_lag_at_promotion"].as_str().unwrap_or_default()
    ));
    say(&format!(
        "read back: replica {} (source {:?}), node group min {} desired {} {}, routing controls primary={} secondary={}",
        o.observed.replica.0, o.observed.replica.1, o.observed.node_group.0, o.observed.node_group.1,
        o.observed.node_group.2, on_off(o.observed.controls.0), on_off(o.observed.controls.1)
    ));
    say(&format!(
        "report: s3://{}/{}.{{json,md,svg}}",
        estate.secondary.state_bucket, o.report_key
    ));
    let expected = Observed {
        replica: ("available".into(), None),
        node_group: (2, 3, "ACTIVE".into()),
        controls: (false, true),
        record: format!("east.{}.example.com", o.scene.name),
    };
    if o.execution["outcome"] != "succeeded" || o.observed != expected {
        return Err(SandboxError::Function(format!(
            "the failover did not end as planned: {} / {:?}",
            o.answer, o.observed
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

//! The bad-deploy scene of `make demo`, through the release `rollback` binary in the Lambda
//! Runtime API emulator, against moto (the alarms) and the Kubernetes API emulator (the
//! Deployment controller): `web:2` goes out, its P95 latency alarm fires, the function rolls the
//! Deployment back to `web:1` exactly as `kubectl rollout undo` would; the same alarm again is a
//! repeat; a forged Slack command gets 401; after the bake window the cleared alarm verifies it.

use std::path::Path;
use std::time::Duration;

use aws_config::SdkConfig;
use breakwater::clock::{Clock, SystemClock};
use serde_json::{json, Value};

use super::scene::{alarm_event, roll_out, rollback_scene, set_alarm};
use crate::kube::KubeEmulator;
use crate::runtime::FunctionProcess;
use crate::seed::Estate;
use crate::SandboxError;

const MINUTE: u64 = 60_000;
/// How many schedule ticks the scene delivers at most before it calls the bake unverified.
const BAKE_TICKS: u64 = 6;

fn image(emu: &KubeEmulator) -> String {
    emu.get("deployments", "shop", "web")
        .and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn history(emu: &KubeEmulator) -> String {
    let mut sets: Vec<(i64, String, String)> = emu
        .list("replicasets")
        .iter()
        .map(|rs| {
            (
                rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
                rs["spec"]["template"]["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                rs["spec"]["replicas"].to_string(),
            )
        })
        .collect();
    sets.sort();
    sets.iter()
        .map(|(r, i, n)| format!("rev {r} {i} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Plays the scene; `say` prints a timeline line.
pub async fn play(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    estate: &Estate,
    binary: &Path,
    base_env: Vec<(String, String)>,
) -> Result<(), SandboxError> {
    let region = estate.primary.region.clone();
    let config = crate::seed::regional(config, &region);
    let now = SystemClock.now_ms();
    // The emulator's clock is moved by hand: web:1 has run for two hours, web:2 went out 5 min ago.
    let emu = KubeEmulator::start(now - 120 * MINUTE, 0.0).await?;
    let scene = rollback_scene(&config, &region, "", "prod", &emu).await?;
    emu.advance(115 * MINUTE);
    roll_out(&emu, "shop", "web", "web:2")?;
    emu.advance(5 * MINUTE);
    say(&format!(
        "rollback scene: deployment shop/web in the Kubernetes emulator at {}; history: {}; alarms {} and {} (tagged with the workload) in moto",
        emu.endpoint(), history(&emu), scene.latency_alarm, scene.error_alarm
    ));
    let mut env = base_env;
    env.push(("BREAKWATER_ROLLBACK_CLUSTERS".into(), "prod".into()));
    env.push((
        "BREAKWATER_KUBE_ENDPOINT".into(),
        crate::gameday::kube_endpoint(&emu.endpoint()).await?,
    ));
    env.push((
        "BREAKWATER_ROLLBACK_SLACK_SIGNING_SECRET".into(),
        "sandbox-slack-signing-secret".into(),
    ));
    let mut process = FunctionProcess::start(binary, "rollback", &region, &env).await?;
    let init = process.wait_init().await?;
    say(&format!(
        "rollback initialised in {:.2} ms",
        init.as_secs_f64() * 1000.0
    ));

    set_alarm(&config, &region, &scene.latency_alarm, "ALARM").await?;
    let event = alarm_event(
        "demo-alarm-1",
        &region,
        &scene.latency_alarm,
        &scene.latency_alarm_arn,
        "OK",
        "ALARM",
        now - MINUTE,
    );
    let invocation = process.invoke(&event).await?;
    let r = invocation.answer()?;
    let d = r["decisions"][0].clone();
    emu.advance(3_000);
    say(&format!(
        "{} OK → ALARM → {}: {} (patch sent {:.0} ms after the event arrived; invocation {:.0} ms)",
        scene.latency_alarm,
        d["outcome"],
        d["reason"],
        d["patched_after_ms"].as_f64().unwrap_or_default(),
        invocation.duration.as_secs_f64() * 1000.0
    ));
    let now_image = image(&emu);
    say(&format!(
        "read back from the emulator: image {now_image}; history: {}",
        history(&emu)
    ));
    if d["outcome"] != "rolled-back" || now_image != "web:1" {
        return Err(SandboxError::Function(format!(
            "the bad deploy was not rolled back: {r}"
        )));
    }
    let again = process.invoke(&event).await?.answer()?;
    say(&format!(
        "the same alarm event again → {} (repeat: {}; no second patch)",
        again["decisions"][0]["outcome"], again["decisions"][0]["repeat"]
    ));
    let forged = json!({"version": "2.0", "rawPath": "/slack", "headers": {
            "x-slack-request-timestamp": (now / 1000).to_string(),
            "x-slack-signature": "v0=0000000000000000000000000000000000000000000000000000000000000000"},
        "body": "user_id=U1&user_name=mallory&text=rollback+shop%2Fweb", "isBase64Encoded": false,
        "requestContext": {"http": {"method": "POST", "path": "/slack"}}});
    let r = process.invoke(&forged).await?.answer()?;
    say(&format!(
        "a forged Slack /breakwater command → HTTP {} (nothing changed; image still {})",
        r["statusCode"],
        image(&emu)
    ));
    process.kill().await;

    // Eleven minutes later the alarm has cleared: the bake tick verifies the rollback.
    set_alarm(&config, &region, &scene.latency_alarm, "OK").await?;
    emu.advance(11 * MINUTE);
    // From the decision's own time: under `make gameday` a crashed attempt is retried a minute
    // after the event.
    let decided = d["at_ms"].as_u64().unwrap_or(now);
    let later = decided + 11 * MINUTE;
    env.push(("BREAKWATER_SANDBOX_NOW_MS".into(), later.to_string()));
    let mut process = FunctionProcess::start(binary, "rollback", &region, &env).await?;
    process.wait_init().await?;
    // The schedule ticks every minute, as EventBridge does, until the bake is verified (under
    // `make gameday` a tick may find the lease of an attempt killed a moment ago).
    let mut status = Value::Null;
    let mut r = Value::Null;
    for n in 0..BAKE_TICKS {
        if n > 0 {
            process.advance(Duration::from_millis(MINUTE)).await?;
        }
        let at = process.now_ms();
        let tick = crate::scenes::schedule_event(&format!("demo-bake-{n}"), &region, at);
        r = process.invoke(&tick).await?.answer()?;
        let checked = &r["checked"][0];
        say(&format!(
            "{} min later, the bake tick → {}: {}",
            at.saturating_sub(decided) / MINUTE,
            checked["outcome"],
            checked["reason"]
        ));
        // The end state, whichever attempt got there (under `make gameday` an attempt killed
        // after verifying leaves the retry nothing to check): no bake pending, the target
        // known good.
        status = process
            .invoke(&json!({"command": "status", "workload": "prod/shop/Deployment/web"}))
            .await?
            .answer()?;
        if status["record"]["bake"].is_null() {
            break;
        }
    }
    process.kill().await;
    let record = &status["record"];
    let good = record["good"]
        .as_array()
        .is_some_and(|g| g.iter().any(|h| *h == d["to_hash"]));
    say(&format!(
        "read back the workload's record: bake pending {}, revision {} known good {good}",
        !record["bake"].is_null(),
        d["to_revision"]
    ));
    if !record["bake"].is_null() || !good {
        return Err(SandboxError::Function(format!(
            "the rollback was not verified: {r} / {status}"
        )));
    }
    say(&format!(
        "audit: s3://{}/rollback/decisions/ (one record per decision); notifications on {}",
        estate.primary.state_bucket, estate.primary.topic_arn
    ));
    Ok(())
}

//! `sandbox`: run Breakwater on this machine without AWS.
//!
//! ```text
//! sandbox demo  [--bin-dir DIR]                 the game day: every scene through the real binaries, then a report
//! sandbox gameday [--faults 0.2] [--kills 0.1] [--seed N] [--bin-dir DIR]
//!                                                the same under injected AWS faults and crashes at step boundaries
//! sandbox up                                     start moto (detached) and seed; writes target/sandbox/sandbox.env
//! sandbox down                                   stop the moto that `up` started, by its process id
//! sandbox invoke BINARY EVENT.json [--bin-dir D] run a function binary once against the `up` sandbox
//! sandbox bench --bin-dir D --arm64-dir D NAME…  the bench table (init, invoke p50/p99, RSS, ARM64 size)
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use breakwater_sandbox::bench::{self, Target};
use breakwater_sandbox::moto::{self, Lifetime, Moto};
use breakwater_sandbox::proxy::FaultProxy;
use breakwater_sandbox::runtime::{Chaos, FunctionProcess};
use breakwater_sandbox::scenes;
use breakwater_sandbox::seed::{self, Estate};
use breakwater_sandbox::{bin_dir, workspace_root, SandboxError};
use breakwater_sandbox::{failover_demo, gameday, rollback_demo, spot_demo};
use serde_json::{json, Value};

const PRIMARY: &str = "us-east-1";
const SECONDARY: &str = "us-west-2";

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => demo(&args[1..]).await,
        Some("gameday") => gameday(&args[1..]).await,
        Some("up") => up().await,
        Some("down") => down(),
        Some("invoke") => invoke(&args[1..]).await,
        Some("bench") => bench_command(&args[1..]).await,
        Some("sweep-bench") => sweep_bench(&args[1..]).await,
        Some("spot-bench") => spot_bench(&args[1..]).await,
        Some("rollback-bench") => rollback_bench(&args[1..]).await,
        Some("failover-bench") => failover_bench(&args[1..]).await,
        Some("bench-summary") => bench::summary().map(|t| println!("{t}")),
        _ => Err(SandboxError::Io(
            "usage: sandbox demo | gameday [--faults 0.2] [--kills 0.1] [--seed N] | up | down | invoke BINARY EVENT.json | bench --bin-dir DIR --arm64-dir DIR NAME... | sweep-bench | spot-bench [--warnings N] | rollback-bench [--events N] | failover-bench [--runs N]".into(),
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sandbox: {err}");
            ExitCode::FAILURE
        }
    }
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn positional(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with("--") {
            skip = true;
        } else {
            out.push(a.clone());
        }
    }
    out
}

fn state_dir() -> PathBuf {
    workspace_root().join("target/sandbox")
}

async fn sdk_config(endpoint: &str) -> SdkConfig {
    breakwater::aws::Aws::for_endpoint(endpoint, PRIMARY)
        .await
        .config()
        .clone()
}

/// A line of the game day's live timeline (kept for its report).
fn say(text: &str) {
    breakwater_sandbox::gameday::timeline().say(text);
}

fn function_env(endpoint: &str, estate: &Estate) -> Vec<(String, String)> {
    vec![
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET".into(),
            estate.primary.state_bucket.clone(),
        ),
        (
            "BREAKWATER_TOPIC_ARN".into(),
            estate.primary.topic_arn.clone(),
        ),
    ]
}

/// How a game day is played under faults (`sandbox gameday`).
#[derive(Debug, Clone, Copy)]
struct Faults {
    /// The share of AWS calls answered with a fault.
    rate: f64,
    /// The share of invocation attempts killed at a step boundary.
    kills: f64,
    seed: u64,
}

fn share(args: &[String], name: &str, default: f64) -> Result<f64, SandboxError> {
    let Some(text) = option(args, name) else {
        return Ok(default);
    };
    let value = match text.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => text.trim().parse::<f64>(),
    };
    value
        .ok()
        .filter(|v| (0.0..=0.9).contains(v))
        .ok_or_else(|| {
            SandboxError::Io(format!(
                "{name} {text:?}: a share between 0 and 0.9 (or 0%–90%)"
            ))
        })
}

async fn gameday(args: &[String]) -> Result<(), SandboxError> {
    let faults = Faults {
        rate: share(args, "--faults", 0.2)?,
        kills: share(args, "--kills", 0.1)?,
        seed: option(args, "--seed")
            .map(|s| s.parse::<u64>())
            .transpose()
            .map_err(|e| SandboxError::Io(format!("--seed: {e}")))?
            .unwrap_or(7),
    };
    play(args, Some(faults)).await
}

async fn demo(args: &[String]) -> Result<(), SandboxError> {
    play(args, None).await
}

/// Where a scene's calls and chaos begin.
fn mark(proxy: Option<&FaultProxy>) -> (usize, usize) {
    (
        proxy.map_or(0, |p| p.calls().len()),
        Chaos::get().map_or(0, |c| c.log().len()),
    )
}

/// A scene under faults: its figures (faults injected, crashes, retries) and its verdict — the end
/// state read back, no event that ran out of attempts (lost), no change asked for and made twice.
fn judge(
    proxy: Option<&FaultProxy>,
    from: (usize, usize),
    verdict: Result<(), SandboxError>,
) -> Result<(), SandboxError> {
    let Some(proxy) = proxy else {
        return verdict;
    };
    let timeline = gameday::timeline();
    let calls: Vec<_> = proxy.calls().into_iter().skip(from.0).collect();
    let chaos: Vec<(String, String)> = Chaos::get()
        .map(|c| c.log().into_iter().skip(from.1).collect())
        .unwrap_or_default();
    let kills = chaos
        .iter()
        .filter(|(_, w)| w.starts_with("killed"))
        .count();
    let retries = chaos
        .iter()
        .filter(|(_, w)| w.starts_with("attempt"))
        .count();
    timeline.fact(
        "faults injected",
        &format!(
            "{} of {} AWS calls",
            calls.iter().filter(|c| c.fault.is_some()).count(),
            calls.len()
        ),
    );
    let lost = chaos.iter().filter(|(_, w)| w.starts_with("lost")).count();
    timeline.fact("processes killed", &kills.to_string());
    timeline.fact("attempts retried", &retries.to_string());
    timeline.fact("events lost", &lost.to_string());
    for (function, what) in &chaos {
        say(&format!("chaos: {function}: {what}"));
    }
    let twice = gameday::doubled(&calls);
    timeline.fact(
        "changes made twice",
        &if twice.is_empty() {
            "none".to_string()
        } else {
            twice
                .iter()
                .map(|(op, path, n)| format!("{op} {path} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    verdict?;
    if lost > 0 {
        return Err(SandboxError::Function(format!(
            "the end state is right, but {lost} event(s) ran out of attempts"
        )));
    }
    if twice.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::Function(format!(
            "the end state is right, but {} change(s) were made twice: {twice:?}",
            twice.len()
        )))
    }
}

/// `make demo` (no faults) and `make gameday` (faults and crashes): the game day in story order.
async fn play(args: &[String], faults: Option<Faults>) -> Result<(), SandboxError> {
    let started = Instant::now();
    let bins = option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"));
    say("starting moto on a free loopback port");
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let pid = moto.pid().unwrap_or_default();
    say(&format!(
        "moto answers at {} (pid {pid}, log {})",
        moto.endpoint(),
        moto.log().display()
    ));
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    // Under faults every function reaches AWS through one fault proxy (seeding and the
    // read-back of end states do not: they are the judge, not the judged).
    let proxy = match faults {
        Some(f) => {
            let proxy = Arc::new(FaultProxy::start(&moto.endpoint(), f.seed).await?);
            for rule in breakwater_sandbox::gameday::aws_fault_mix(f.rate) {
                proxy.add_rule(rule);
            }
            Chaos::new(proxy.clone(), f.kills, f.seed).enable()?;
            say(&format!(
                "fault proxy at {}: {:.0} % of AWS calls throttled, 5xx, delayed 300 ms, dropped, answer lost after the change, 409/412 on conditional writes; {:.0} % of invocation attempts killed at a step boundary and delivered again (seed {})",
                proxy.endpoint(),
                f.rate * 100.0,
                f.kills * 100.0,
                f.seed
            ));
            Some(proxy)
        }
        None => None,
    };
    let endpoint = proxy
        .as_ref()
        .map(|p| p.endpoint())
        .unwrap_or_else(|| moto.endpoint());
    say("seeded the two-region estate:");
    println!();
    println!("  | region | role | state bucket | notification topic | tap queue |");
    println!("  |---|---|---|---|---|");
    for (r, role) in [
        (&estate.primary, "primary"),
        (&estate.secondary, "secondary"),
    ] {
        println!(
            "  | {} | {role} | {} | {} | {} |",
            r.region,
            r.state_bucket,
            r.topic_arn,
            r.queue_url.rsplit('/').next().unwrap_or_default()
        );
    }
    println!();
    show_estate(&config, &estate).await?;

    let probe = bins.join("probe");
    if probe.exists() {
        say(&format!(
            "running the probe function ({}) through the Lambda Runtime API emulator",
            probe.display()
        ));
        let mut process =
            FunctionProcess::start(&probe, "probe", PRIMARY, &function_env(&endpoint, &estate))
                .await?;
        let init = process.wait_init().await?;
        say(&format!(
            "probe initialised in {:.2} ms",
            init.as_secs_f64() * 1000.0
        ));
        let event: Value = read_event(&workspace_root().join("events/probe/record.json"))?;
        for attempt in ["first delivery", "duplicate delivery"] {
            let invocation = process.invoke(&event).await?;
            let shown = match &invocation.outcome {
                Ok(v) => v.to_string(),
                Err(e) => format!("error {}: {}", e.error_type, e.error_message),
            };
            say(&format!(
                "{attempt}: {shown} in {:.2} ms",
                invocation.duration.as_secs_f64() * 1000.0
            ));
        }
        let bad = process
            .invoke(&json!({"command": "record", "id": "x", "key": "Not A Key"}))
            .await?;
        if let Err(e) = &bad.outcome {
            say(&format!(
                "malformed event refused: {}: {}",
                e.error_type, e.error_message
            ));
        }
        let key = format!("probe/{}.json", event["key"].as_str().unwrap_or_default());
        let s3 = s3(&config, PRIMARY);
        let object = s3
            .get_object()
            .bucket(&estate.primary.state_bucket)
            .key(&key)
            .send()
            .await
            .map_err(seed_err)?;
        let body = object
            .body
            .collect()
            .await
            .map_err(|e| SandboxError::Seed(e.to_string()))?
            .into_bytes();
        say(&format!(
            "read back s3://{}/{key}: {}",
            estate.primary.state_bucket,
            String::from_utf8_lossy(&body)
        ));
        let notes =
            seed::read_notifications(&config, PRIMARY, &estate.primary.queue_url, 2).await?;
        say(&format!(
            "{} notification(s) on the primary topic:",
            notes.len()
        ));
        for n in &notes {
            println!(
                "           subject {:?}, attributes {:?}",
                n.subject, n.attributes
            );
        }
        let writes = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["data"]["writes"].as_u64());
        if writes != Some(1) || notes.len() != 1 {
            return Err(SandboxError::Function(format!(
                "expected one write and one notification, saw {writes:?} and {}",
                notes.len()
            )));
        }
        say(&format!(
            "probe peak RSS {} KiB; stopping it",
            process.peak_rss_kib().unwrap_or_default()
        ));
        process.kill().await;
    } else {
        say(&format!(
            "no probe binary at {}: build it with `make build` to see a function run",
            probe.display()
        ));
    }
    // Each scene runs when its binary was built, and says so when it was not.
    let binary = |name: &str, scene: &str| {
        let path = bins.join(name);
        if !path.exists() {
            say(&format!(
                "no {name} binary at {}: skipping the {scene}",
                path.display()
            ));
        }
        path.exists().then_some(path)
    };
    // The story order of the game day (../shared/spec/TESTING.md). A scene whose end state is
    // wrong is reported and the game day goes on; the command fails at the end.
    let timeline = gameday::timeline();
    if let Some(rollback) = binary("rollback", "bad-deploy scene") {
        timeline.begin("rollback", "A bad deploy trips the latency alarm");
        let from = mark(proxy.as_deref());
        let r = rollback_demo::play(
            &say,
            &config,
            &estate,
            &rollback,
            function_env(&endpoint, &estate),
        )
        .await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(spot) = binary("spot", "spot scenes") {
        timeline.begin(
            "spot",
            "Spot interruptions: one drain, then repeated ones move to on-demand",
        );
        let from = mark(proxy.as_deref());
        let r = spot_demo::play(
            &say,
            &endpoint,
            &config,
            &estate,
            &spot,
            function_env(&endpoint, &estate),
        )
        .await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(budget) = binary("budget", "budget scene") {
        timeline.begin(
            "budget",
            "The monthly budget is about to be blown, then the month rolls over",
        );
        let from = mark(proxy.as_deref());
        let r = budget_scene(&endpoint, &config, &estate, &budget).await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(tiering) = binary("tiering", "tiering scene") {
        timeline.begin("tiering", "New and tagged buckets join the lifecycle");
        let from = mark(proxy.as_deref());
        let r = tiering_scene(&endpoint, &config, &estate, &tiering).await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(failover) = binary("failover", "regional-outage scene") {
        timeline.begin("failover", "A regional outage");
        let from = mark(proxy.as_deref());
        let r = failover_demo::play(&say, &config, &endpoint, &estate, &failover).await;
        let r = r.map(|report| {
            for (fact, name) in [
                ("rto", "RTO"),
                ("rto_within_target", "within target"),
                ("decided_to_traffic_moved", "decided → traffic moved"),
            ] {
                if let Some(v) = report.facts.get(fact) {
                    timeline.fact(name, v);
                }
            }
            timeline.own_report(report);
        });
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    timeline.begin("sandbox", "Tear-down");
    moto.stop();
    let gone = !Path::new(&format!("/proc/{pid}")).exists();
    say(&format!(
        "stopped moto (pid {pid}): {}",
        if gone { "gone" } else { "STILL RUNNING" }
    ));
    timeline.end(&if gone {
        Ok(())
    } else {
        Err(SandboxError::Moto(format!("pid {pid} is still running")))
    });
    // `--report-dir` lets several game days (seeds) run side by side.
    let report_dir = option(args, "--report-dir").unwrap_or_else(|| {
        if faults.is_some() {
            "target/gameday-faults"
        } else {
            "target/gameday"
        }
        .to_string()
    });
    let how = match faults {
        Some(f) => format!(
            "`make gameday` (FAULTS={} KILLS={} SEED={})",
            f.rate, f.kills, f.seed
        ),
        None => "`make demo`".to_string(),
    };
    let summary = timeline.write(&workspace_root().join(&report_dir), &how)?;
    say(&format!(
        "game day report: {} (one SVG timeline and Markdown table per scene beside it)",
        summary.display()
    ));
    if timeline.all_verified() {
        say(&format!(
            "every scene's end state verified in {:.0} s",
            started.elapsed().as_secs_f64()
        ));
        Ok(())
    } else {
        Err(SandboxError::Function(format!(
            "a scene did not end as it should: see {}",
            summary.display()
        )))
    }
}

/// Nov 20 2026 and Dec 1 2026, 00:00 UTC: the days the budget scene lives on.
const NOV_20: u64 = 1_795_132_800_000;
const DEC_1: u64 = 1_796_083_200_000;

fn budget_env(
    endpoint: &str,
    estate: &Estate,
    scene: &scenes::BudgetScene,
    now_ms: Option<u64>,
) -> Vec<(String, String)> {
    let mut env = function_env(endpoint, estate);
    env.extend([
        (
            "BREAKWATER_ACCOUNT_ID".to_string(),
            seed::ACCOUNT.to_string(),
        ),
        ("BREAKWATER_BUDGET_NAMES".to_string(), scene.budget.clone()),
        (
            "BREAKWATER_BUDGET_CLUSTERS".to_string(),
            scene.cluster.clone(),
        ),
    ]);
    if let Some(now) = now_ms {
        env.push(("BREAKWATER_SANDBOX_NOW_MS".to_string(), now.to_string()));
    }
    env
}

/// The budget scene: a forecast alert scales the non-critical node group down, an actual alert
/// over 85 % stops the non-production databases, the month rollover restores everything.
async fn budget_scene(
    endpoint: &str,
    config: &SdkConfig,
    estate: &Estate,
    binary: &Path,
) -> Result<(), SandboxError> {
    println!();
    say("budget scene: a $2,460 monthly budget, a cluster with tagged node groups, dev/staging/prod databases");
    let scene = scenes::budget_scene(config, PRIMARY, "").await?;
    let observe = || async {
        let eks = aws_sdk_eks::Client::new(config);
        let rds = aws_sdk_rds::Client::new(config);
        let mut lines = Vec::new();
        for name in [
            &scene.batch_node_group,
            &scene.critical_node_group,
            &scene.production_node_group,
            &scene.untagged_node_group,
        ] {
            let group = eks
                .describe_nodegroup()
                .cluster_name(&scene.cluster)
                .nodegroup_name(name)
                .send()
                .await
                .map_err(seed_err)?;
            let s = group
                .nodegroup
                .and_then(|g| g.scaling_config)
                .unwrap_or_else(|| aws_sdk_eks::types::NodegroupScalingConfig::builder().build());
            lines.push(format!(
                "node group {name}: min {} / desired {} / max {}",
                s.min_size.unwrap_or(0),
                s.desired_size.unwrap_or(0),
                s.max_size.unwrap_or(0)
            ));
        }
        for id in [&scene.dev_instance, &scene.production_instance] {
            let db = rds
                .describe_db_instances()
                .db_instance_identifier(id)
                .send()
                .await
                .map_err(seed_err)?;
            lines.push(format!(
                "DB instance {id}: {}",
                db.db_instances()
                    .first()
                    .and_then(|d| d.db_instance_status())
                    .unwrap_or("?")
            ));
        }
        let cluster = rds
            .describe_db_clusters()
            .db_cluster_identifier(&scene.staging_cluster)
            .send()
            .await
            .map_err(seed_err)?;
        lines.push(format!(
            "DB cluster {}: {}",
            scene.staging_cluster,
            cluster
                .db_clusters()
                .first()
                .and_then(|c| c.status())
                .unwrap_or("?")
        ));
        Ok::<_, SandboxError>(lines)
    };
    let before = observe().await?;
    for line in &before {
        println!("           {line}");
    }
    let mut process = FunctionProcess::start(
        binary,
        "budget",
        PRIMARY,
        &budget_env(endpoint, estate, &scene, Some(NOV_20)),
    )
    .await?;
    let init = process.wait_init().await?;
    say(&format!(
        "budget function initialised in {:.2} ms (its clock reads 2026-11-20)",
        init.as_secs_f64() * 1000.0
    ));
    let alerts = [
        (
            "FORECASTED",
            "$2,460.00",
            "$2,600.00",
            ("1700", Some("2600")),
            "forecast over 100 %",
        ),
        (
            "ACTUAL",
            "$2,091.00",
            "$2,120.40",
            ("2120.40", Some("2650")),
            "actual over 85 %",
        ),
    ];
    for (n, (kind, threshold, amount, (actual, forecast), what)) in alerts.into_iter().enumerate() {
        scenes::set_spend(config, &scene.budget, "2460", actual, forecast).await?;
        let text = scenes::budget_alert_text(&scene.budget, kind, "$2,460.00", threshold, amount);
        let event = scenes::sns_event(
            &format!("demo-alert-{n}"),
            &format!(
                "AWS Budgets: {} has exceeded your alert threshold",
                scene.budget
            ),
            &text,
        );
        let invocation = process.invoke(&event).await?;
        let response = invocation.answer()?;
        say(&format!(
            "{what}: level {} → {} in {:.1} ms",
            response["level_before"],
            response["level_after"],
            invocation.duration.as_secs_f64() * 1000.0
        ));
        for line in response["changed"].as_array().into_iter().flatten() {
            println!("           {}", line.as_str().unwrap_or_default());
        }
    }
    let enforced = observe().await?;
    process.kill().await;
    let mut process = FunctionProcess::start(
        binary,
        "budget",
        PRIMARY,
        &budget_env(endpoint, estate, &scene, Some(DEC_1)),
    )
    .await?;
    scenes::set_spend(config, &scene.budget, "2460", "12", Some("1900")).await?;
    let tick = json!({"version": "0", "id": "demo-tick-dec-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": seed::ACCOUNT, "time": "2026-12-01T00:00:00Z", "region": PRIMARY, "resources": [], "detail": {}});
    let invocation = process.invoke(&tick).await?;
    let response = invocation.answer()?;
    let result = &response["results"][0];
    say(&format!(
        "month rollover (clock reads 2026-12-01): level {} → {}, period {}",
        result["level_before"], result["level_after"], result["period"]
    ));
    for line in result["changed"].as_array().into_iter().flatten() {
        println!("           {}", line.as_str().unwrap_or_default());
    }
    process.kill().await;
    let after = observe().await?;
    let notes = seed::read_notifications(config, PRIMARY, &estate.primary.queue_url, 2).await?;
    say(&format!(
        "{} notification(s) from the budget function:",
        notes.len()
    ));
    for n in &notes {
        println!("           {}", n.subject);
    }
    let verified = after == before
        && enforced != before
        && enforced
            .iter()
            .any(|l| l.contains("reporting-dev: stopped"));
    say(&format!(
        "budget scene end state: {}",
        if verified {
            "verified (everything back exactly as recorded)"
        } else {
            "WRONG"
        }
    ));
    if !verified {
        return Err(SandboxError::Function(format!(
            "budget scene: before {before:?}, enforced {enforced:?}, after {after:?}"
        )));
    }
    Ok(())
}

fn tiering_env(endpoint: &str, estate: &Estate) -> Vec<(String, String)> {
    let mut env = function_env(endpoint, estate);
    env.push((
        "BREAKWATER_ACCOUNT_ID".to_string(),
        seed::ACCOUNT.to_string(),
    ));
    env
}

async fn tag_bucket(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    tags: &[(&str, &str)],
) -> Result<(), SandboxError> {
    use aws_sdk_s3::types::{Tag, Tagging};
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    let tagging = Tagging::builder()
        .set_tag_set(Some(set))
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(tagging)
        .send()
        .await
        .map_err(seed_err)?;
    Ok(())
}

/// The tiering scene: a new bucket and tagged buckets get tiered beside a team's own rule, the
/// others are left alone, a second sweep writes nothing, and the savings are printed.
async fn tiering_scene(
    endpoint: &str,
    config: &SdkConfig,
    estate: &Estate,
    binary: &Path,
) -> Result<(), SandboxError> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, TransitionDefaultMinimumObjectSize,
    };
    use breakwater::ports::Buckets;
    println!();
    say("tiering scene: analytics-raw (opted in, with the data team's own rule), team-logs (opted in, logs/ only), scratch-space (not opted in), vendor-share (another account's)");
    let s3 = s3(config, PRIMARY);
    for bucket in [
        "analytics-raw",
        "team-logs",
        "scratch-space",
        "vendor-share",
    ] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(seed_err)?;
    }
    tag_bucket(&s3, "analytics-raw", &[("breakwater:tiering", "on")]).await?;
    tag_bucket(
        &s3,
        "team-logs",
        &[
            ("breakwater:tiering", "on"),
            ("breakwater:tiering-prefixes", "logs/"),
        ],
    )
    .await?;
    tag_bucket(
        &s3,
        "vendor-share",
        &[
            ("breakwater:tiering", "on"),
            ("sandbox:owner-account", "999999999999"),
        ],
    )
    .await?;
    let team_rule = LifecycleRule::builder()
        .id("data-team-expire-tmp")
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .expiration(LifecycleExpiration::builder().days(3).build())
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    s3.put_bucket_lifecycle_configuration()
        .bucket("analytics-raw")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(team_rule)
                .build()
                .map_err(|e| SandboxError::Seed(e.to_string()))?,
        )
        .transition_default_minimum_object_size(
            TransitionDefaultMinimumObjectSize::VariesByStorageClass,
        )
        .send()
        .await
        .map_err(seed_err)?;
    let buckets = breakwater::aws::buckets::S3Buckets::new(s3.clone(), seed::ACCOUNT);
    let before = buckets
        .lifecycle("analytics-raw")
        .await
        .map_err(|e| SandboxError::Seed(e.to_string()))?;

    let mut process =
        FunctionProcess::start(binary, "tiering", PRIMARY, &tiering_env(endpoint, estate)).await?;
    let init = process.wait_init().await?;
    say(&format!(
        "tiering function initialised in {:.2} ms",
        init.as_secs_f64() * 1000.0
    ));
    s3.create_bucket()
        .bucket("ml-datasets")
        .send()
        .await
        .map_err(seed_err)?;
    tag_bucket(&s3, "ml-datasets", &[("breakwater:tiering", "on")]).await?;
    let created: Value =
        read_event(&workspace_root().join("events/tiering/cloudtrail-create-bucket.json"))?;
    let invocation = process.invoke(&created).await?;
    let response = invocation.answer()?;
    say(&format!(
        "CloudTrail CreateBucket ml-datasets → {} in {:.1} ms",
        response["outcome"],
        invocation.duration.as_secs_f64() * 1000.0
    ));
    let tick: Value = read_event(&workspace_root().join("events/tiering/schedule.json"))?;
    for round in ["daily sweep", "next day's sweep"] {
        let invocation = process.invoke(&tick_with_id(&tick, round)).await?;
        let response = invocation.answer()?;
        say(&format!(
            "{round}: {} in {:.1} ms",
            response["counts"],
            invocation.duration.as_secs_f64() * 1000.0
        ));
        if round == "daily sweep" {
            for b in response["buckets"].as_array().into_iter().flatten() {
                let name = b["bucket"].as_str().unwrap_or_default();
                if [
                    "analytics-raw",
                    "team-logs",
                    "scratch-space",
                    "vendor-share",
                    "ml-datasets",
                ]
                .contains(&name)
                {
                    println!(
                        "           {name}: {}{}",
                        b["outcome"].as_str().unwrap_or_default(),
                        b["reason"]
                            .as_str()
                            .map(|r| format!(" ({r})"))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    // S3 publishes each bucket's storage to CloudWatch once a day; the sandbox publishes a day's
    // worth (moto holds no object sizes to derive it from), and the function reads it back with
    // GetMetricData for its savings report.
    let now = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock);
    let gib = 1_073_741_824.0;
    for (bucket, gb, objects) in [
        ("analytics-raw", 2_000.0, 500_000.0),
        ("team-logs", 300.0, 600_000_000.0),
        ("ml-datasets", 800.0, 80_000.0),
    ] {
        scenes::s3_storage_metrics(
            config,
            PRIMARY,
            bucket,
            &[("StandardStorage", gb * gib)],
            objects,
            now,
        )
        .await?;
    }
    let report: Value = read_event(&workspace_root().join("events/tiering/command-report.json"))?;
    let invocation = process.invoke(&report).await?;
    let response = invocation.answer()?;
    say(&format!(
            "savings report from the storage metrics in CloudWatch (GetMetricData, {:.1} ms), written to s3://{}/{}:",
            invocation.duration.as_secs_f64() * 1000.0,
            response["report"]["bucket"].as_str().unwrap_or_default(),
            response["report"]["markdown"].as_str().unwrap_or_default()
        ),
    );
    for line in response["markdown"].as_str().unwrap_or_default().lines() {
        println!("           {line}");
    }
    process.kill().await;
    let after = buckets
        .lifecycle("analytics-raw")
        .await
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    let ids: Vec<&str> = after.rules.iter().filter_map(|r| r.id.as_deref()).collect();
    say(&format!("analytics-raw now has: {}", ids.join(", ")));
    let kept = after.rules.first() == before.rules.first()
        && after.transition_default_minimum_object_size
            == before.transition_default_minimum_object_size;
    let scratch = buckets
        .lifecycle("scratch-space")
        .await
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    let verified = kept && ids.len() == 3 && scratch.rules.is_empty();
    say(&format!(
        "tiering scene end state: {}",
        if verified {
            "verified (the team's rule and the size setting kept, others untouched)"
        } else {
            "WRONG"
        }
    ));
    if !verified {
        return Err(SandboxError::Function(format!(
            "tiering scene: before {before:?}, after {after:?}, scratch {scratch:?}"
        )));
    }
    Ok(())
}

fn tick_with_id(tick: &Value, id: &str) -> Value {
    let mut t = tick.clone();
    t["id"] = json!(format!("demo-{}", id.replace(' ', "-")));
    t
}

/// The 1,000-bucket sweep against moto, beside the ceiling of moto itself for the same calls.
async fn sweep_bench(args: &[String]) -> Result<(), SandboxError> {
    use futures_util::stream::{self, StreamExt};
    let bins = option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"));
    let count: usize = option(args, "--buckets")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let concurrency = 16;
    let moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let s3 = s3(&config, PRIMARY);
    eprintln!("creating {count} buckets, one in five opted in");
    let created: Vec<Result<(), SandboxError>> = stream::iter(0..count)
        .map(|i| {
            let s3 = s3.clone();
            async move {
                let name = format!("sweep-{i:04}");
                s3.create_bucket()
                    .bucket(&name)
                    .send()
                    .await
                    .map_err(seed_err)?;
                if i % 5 == 0 {
                    tag_bucket(&s3, &name, &[("breakwater:tiering", "on")]).await?;
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    created.into_iter().collect::<Result<Vec<_>, _>>()?;
    let proxy = breakwater_sandbox::proxy::FaultProxy::start(&moto.endpoint(), 1).await?;
    let mut env = tiering_env(&proxy.endpoint(), &estate);
    env.push((
        "BREAKWATER_TIERING_CONCURRENCY".into(),
        concurrency.to_string(),
    ));
    let mut process = FunctionProcess::start(&bins.join("tiering"), "tiering", PRIMARY, &env)
        .await?
        .with_timeout(std::time::Duration::from_secs(600));
    process.wait_init().await?;
    let tick: Value = read_event(&workspace_root().join("events/tiering/schedule.json"))?;
    let first = process.invoke(&tick_with_id(&tick, "bench 1")).await?;
    let first_counts = first
        .outcome
        .map_err(|e| SandboxError::Function(e.error_message))?["counts"]
        .clone();
    let calls_before = proxy.calls().len();
    let second = process.invoke(&tick_with_id(&tick, "bench 2")).await?;
    let second_counts = second
        .outcome
        .map_err(|e| SandboxError::Function(e.error_message))?["counts"]
        .clone();
    process.kill().await;
    let second_calls: Vec<_> = proxy.calls().into_iter().skip(calls_before).collect();
    let writes = second_calls
        .iter()
        .filter(|c| c.operation == "PutBucketLifecycleConfiguration")
        .count();
    // The ceiling: the same read calls straight at moto, as fast as it answers them at the same concurrency.
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let base = moto.endpoint();
    let replay_started = Instant::now();
    let replayed: Vec<bool> = stream::iter(
        second_calls
            .iter()
            .filter(|c| c.method == "GET" && c.service == "s3"),
    )
    .map(|c| {
        let client = client.clone();
        let uri = format!("{base}{}", c.path);
        async move {
            let Ok(uri) = uri.parse::<hyper::Uri>() else {
                return false;
            };
            client.get(uri).await.is_ok()
        }
    })
    .buffer_unordered(concurrency)
    .collect()
    .await;
    let ceiling = replay_started.elapsed();
    let per_s = |d: std::time::Duration| count as f64 / d.as_secs_f64();
    println!("| sweep of {count} buckets (1 in 5 opted in), concurrency {concurrency} | time | buckets/s |\n|---|---:|---:|");
    println!(
        "| first sweep (writes {}) | {:.2} s | {:.0} |",
        first_counts["written"],
        first.duration.as_secs_f64(),
        per_s(first.duration)
    );
    println!(
        "| second sweep ({writes} writes; {second_counts}) | {:.2} s | {:.0} |",
        second.duration.as_secs_f64(),
        per_s(second.duration)
    );
    println!(
        "| moto alone, the second sweep's {} reads replayed | {:.2} s | {:.0} |",
        replayed.len(),
        ceiling.as_secs_f64(),
        per_s(ceiling)
    );
    println!(
        "\nsecond sweep at {:.0} % of the emulator's ceiling for the same calls",
        ceiling.as_secs_f64() / second.duration.as_secs_f64() * 100.0
    );
    bench::record_figure(
        "tiering",
        &format!(
            "sweep of {count} buckets: {:.0} buckets/s, {:.0} % of moto's ceiling for the same reads",
            per_s(second.duration),
            ceiling.as_secs_f64() / second.duration.as_secs_f64() * 100.0
        ),
    );
    Ok(())
}

async fn show_estate(config: &SdkConfig, estate: &Estate) -> Result<(), SandboxError> {
    for region in [&estate.primary.region, &estate.secondary.region] {
        let regional = seed::regional(config, region);
        let sns = aws_sdk_sns::Client::new(&regional);
        let topics = sns.list_topics().send().await.map_err(seed_err)?;
        let subscriptions = sns.list_subscriptions().send().await.map_err(seed_err)?;
        let bucket = if region == &estate.primary.region {
            &estate.primary.state_bucket
        } else {
            &estate.secondary.state_bucket
        };
        // moto 5.2 answers GetBucketVersioning with the wrong XML root, so the versioning that
        // seeding enabled is shown from the seed, and the bucket's existence from HeadBucket.
        s3(config, region)
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(seed_err)?;
        println!(
            "  {region}: bucket {bucket} answers; {} topic(s); {} subscription(s) ({})",
            topics.topics().len(),
            subscriptions.subscriptions().len(),
            subscriptions
                .subscriptions()
                .iter()
                .filter_map(|s| s.protocol())
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    println!();
    Ok(())
}

fn s3(config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    let regional = seed::regional(config, region);
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&regional)
            .force_path_style(true)
            .build(),
    )
}

fn seed_err<E: std::error::Error + 'static>(e: E) -> SandboxError {
    SandboxError::aws("reading the estate", &e)
}

fn read_event(path: &Path) -> Result<Value, SandboxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SandboxError::Io(format!("read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| SandboxError::Io(format!("{} is not JSON: {e}", path.display())))
}

async fn up() -> Result<(), SandboxError> {
    let dir = state_dir();
    let pid_file = dir.join("moto.pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        if Path::new(&format!("/proc/{}", pid.trim())).exists() {
            return Err(SandboxError::Moto(format!(
                "already up (pid {}); run `sandbox down` first",
                pid.trim()
            )));
        }
    }
    let moto = Moto::start(Lifetime::Detached)?;
    let endpoint = moto.endpoint();
    let config = sdk_config(&endpoint).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let pid = moto.detach();
    std::fs::write(&pid_file, pid.to_string()).map_err(|e| SandboxError::Io(e.to_string()))?;
    let env: String = function_env(&endpoint, &estate)
        .into_iter()
        .chain([("AWS_REGION".to_string(), PRIMARY.to_string())])
        .map(|(k, v)| format!("export {k}={v}\n"))
        .collect();
    let env_file = dir.join("sandbox.env");
    std::fs::write(&env_file, env).map_err(|e| SandboxError::Io(e.to_string()))?;
    std::fs::write(
        dir.join("estate.json"),
        serde_json::to_vec_pretty(&estate).unwrap_or_default(),
    )
    .map_err(|e| SandboxError::Io(e.to_string()))?;
    println!("moto is up at {endpoint} (pid {pid}); the estate is seeded.");
    println!(
        "environment for functions and the AWS CLI: source {}",
        env_file.display()
    );
    println!("invoke a function: make invoke FUNCTION=probe EVENT=events/probe/record.json");
    println!("stop it: make down");
    Ok(())
}

fn down() -> Result<(), SandboxError> {
    let pid_file = state_dir().join("moto.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_file) else {
        println!("nothing to stop (no {})", pid_file.display());
        return Ok(());
    };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| SandboxError::Io(format!("{} is not a pid", pid_file.display())))?;
    moto::stop_pid(pid)?;
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(state_dir().join("sandbox.env"));
    println!("stopped moto (pid {pid})");
    Ok(())
}

fn sandbox_env() -> Result<Vec<(String, String)>, SandboxError> {
    let path = state_dir().join("sandbox.env");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| SandboxError::Moto("the sandbox is not up: run `make up` first".into()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("export ").and_then(|kv| kv.split_once('=')))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

async fn invoke(args: &[String]) -> Result<(), SandboxError> {
    let positional = positional(args);
    let (Some(name), Some(event_path)) = (positional.first(), positional.get(1)) else {
        return Err(SandboxError::Io(
            "usage: sandbox invoke BINARY EVENT.json [--bin-dir DIR]".into(),
        ));
    };
    let bins = option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"));
    let env = sandbox_env()?;
    let event = read_event(Path::new(event_path))?;
    let mut process = FunctionProcess::start(&bins.join(name), name, PRIMARY, &env).await?;
    let init = process.wait_init().await?;
    let invocation = process.invoke(&event).await?;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    for line in process.output() {
        println!("log | {line}");
    }
    println!(
        "init {:.2} ms, invoke {:.2} ms, peak RSS {} KiB",
        init.as_secs_f64() * 1000.0,
        invocation.duration.as_secs_f64() * 1000.0,
        process.peak_rss_kib().unwrap_or_default()
    );
    process.kill().await;
    match invocation.outcome {
        Ok(response) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&response).unwrap_or_default()
            );
            Ok(())
        }
        Err(e) => Err(SandboxError::Function(format!(
            "{}: {}",
            e.error_type, e.error_message
        ))),
    }
}

async fn bench_command(args: &[String]) -> Result<(), SandboxError> {
    let bins = option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"));
    let arm64 = option(args, "--arm64-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/lambda"));
    let cold_starts: usize = option(args, "--cold-starts")
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let invocations: usize = option(args, "--invocations")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let names = positional(args);
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let mut rows = Vec::new();
    for name in &names {
        let mut env = function_env(&moto.endpoint(), &estate);
        let event = match name.as_str() {
            "hello-floor" => json!({"hello": "world"}),
            "probe" => {
                json!({"command": "record", "id": "bench-{{n}}", "key": "bench-{{n}}", "value": {"n": "{{n}}"}})
            }
            "budget" => {
                // A forecast alert: the first escalates to L2, every later one is confirmed and held.
                let scene = scenes::budget_scene(&config, PRIMARY, "").await?;
                scenes::set_spend(&config, &scene.budget, "2460", "1700", Some("2600")).await?;
                env = budget_env(&moto.endpoint(), &estate, &scene, None);
                let text = scenes::budget_alert_text(
                    &scene.budget,
                    "FORECASTED",
                    "$2,460.00",
                    "$2,460.00",
                    "$2,600.00",
                );
                scenes::sns_event(
                    "bench-{{n}}",
                    "AWS Budgets: platform monthly has exceeded your alert threshold",
                    &text,
                )
            }
            "tiering" => {
                // A tag change on an opted-in bucket: the first is written, the rest are no-ops.
                let s3 = s3(&config, PRIMARY);
                s3.create_bucket()
                    .bucket("bench-tiering")
                    .send()
                    .await
                    .map_err(seed_err)?;
                tag_bucket(&s3, "bench-tiering", &[("breakwater:tiering", "on")]).await?;
                env = tiering_env(&moto.endpoint(), &estate);
                let mut event = read_event(
                    &workspace_root().join("events/tiering/cloudtrail-put-bucket-tagging.json"),
                )?;
                event["detail"]["requestParameters"]["bucketName"] = json!("bench-tiering");
                event["id"] = json!("bench-{{n}}");
                event
            }
            "rollback" => {
                // An alarm transition for an alarm that names no workload: init, the tag lookup
                // in CloudWatch and the runtime round trip (the rollback itself: rollback-bench).
                env.push(("BREAKWATER_ROLLBACK_CLUSTERS".into(), "prod".into()));
                let mut event =
                    read_event(&workspace_root().join("events/rollback/alarm-state-change.json"))?;
                event["id"] = json!("bench-{{n}}");
                event["region"] = json!(PRIMARY);
                event
            }
            "failover" => {
                // A tick with the primary's probe failing: the plan read, the probe, the signal
                // board's compare-and-swap and the quorum (one signal of three: watching).
                let scene = breakwater_sandbox::failover_scene::failover_scene(
                    &config,
                    &estate,
                    "-bench",
                    Default::default(),
                    "http://127.0.0.1:9/health",
                )
                .await?;
                breakwater_sandbox::failover_scene::put_plan(
                    &config,
                    PRIMARY,
                    &estate.primary.state_bucket,
                    &scene.plan,
                )
                .await?;
                env.push(("BREAKWATER_PRIMARY_REGION".into(), PRIMARY.into()));
                env.push(("BREAKWATER_SECONDARY_REGION".into(), SECONDARY.into()));
                read_event(&workspace_root().join("events/failover/schedule.json"))?
            }
            "spot" => {
                // The status of an instance: init, the S3 read and the runtime round trip.
                env.push(("BREAKWATER_SPOT_CLUSTERS".into(), "shop".into()));
                read_event(&workspace_root().join("events/spot/command-status.json"))?
            }
            other => read_event(&workspace_root().join(format!("events/{other}/bench.json")))?,
        };
        let target = Target {
            name: name.clone(),
            native: bins.join(name),
            arm64: arm64.join(name).join("bootstrap"),
            env,
            event,
        };
        eprintln!("measuring {name}: {cold_starts} cold starts, {invocations} invocations");
        rows.push(bench::measure(&target, cold_starts, invocations).await?);
    }
    moto.stop();
    bench::record_rows(&rows)?;
    println!("{}", bench::table(&rows));
    println!(
        "init and invoke times and RSS are measured on this machine's native ({}) release build, with the same profile as the ARM64 build whose size is shown; the probe's invocations each make ~5 calls to moto on loopback.",
        std::env::consts::ARCH
    );
    Ok(())
}

/// `sandbox failover-bench [--runs N]`: orchestration overhead, and recovery against the
/// critical path with simulated AWS latencies.
async fn failover_bench(args: &[String]) -> Result<(), SandboxError> {
    let runs: usize = option(args, "--runs")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let bins = option(args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir("release"));
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let table = breakwater_sandbox::failover_demo::bench(
        &config,
        &moto.endpoint(),
        &estate,
        &bins.join("failover"),
        runs,
    )
    .await;
    moto.stop();
    let (table, figure) = table?;
    bench::record_figure("failover", &figure);
    println!("{table}");
    Ok(())
}

/// `sandbox rollback-bench [--events N]`: alarm event → rollback patch, function time.
async fn rollback_bench(args: &[String]) -> Result<(), SandboxError> {
    let events: usize = option(args, "--events")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
        .max(2);
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let figures =
        breakwater_sandbox::rollback_bench::run(&config, &moto.endpoint(), &estate, events).await?;
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
    bench::record_figure(
        "rollback",
        &format!("alarm event → rollback patch: median {p50:.1} ms, p90 {p90:.1} ms"),
    );
    println!("In process (this binary's build profile), against moto and the Kubernetes emulator on loopback: idempotency record, workload lease, ListTagsForResource, the Deployment and its ReplicaSets read, the JSON patch; each deployment read back rolled back.");
    Ok(())
}

/// `sandbox spot-bench [--warnings N]`: event → cordon time, and a 50-pod drain against a
/// sequential one-pod-at-a-time drainer on the same emulator.
async fn spot_bench(args: &[String]) -> Result<(), SandboxError> {
    let warnings: usize = option(args, "--warnings")
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let config = sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    let figures =
        breakwater_sandbox::spot_bench::run(&config, &moto.endpoint(), &estate, warnings).await?;
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
    bench::record_figure(
        "spot",
        &format!(
            "event → cordon median {:.1} ms; {}-pod drain {:.2} s vs sequential {:.2} s ({:.1}×)",
            at(50),
            figures.pods,
            figures.ours.as_secs_f64(),
            figures.sequential.as_secs_f64(),
            figures.sequential.as_secs_f64() / figures.ours.as_secs_f64()
        ),
    );
    println!("The emulator's kubelet runs at {}× (5 s of grace in {:.1} s, a replacement pod Ready in {:.1} s); the cordon time includes DescribeInstances against moto and the first EKS token.", figures.speed, 5.0 / figures.speed, 2.0 / figures.speed);
    Ok(())
}

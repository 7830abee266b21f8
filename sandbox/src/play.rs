//! The game day in story order (`make demo`, and `make gameday` under faults and crashes): moto
//! and the seeded estate, the probe, then each function's scene from [`crate::functions`], each
//! judged on its end state (and under faults on what was lost or done twice), then the report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use crate::function_env::FunctionEnv;
use crate::functions::{budget, failover, rollback, spot, tiering};
use crate::gameday::{self, say};
use crate::moto::{Lifetime, Moto};
use crate::proxy::FaultProxy;
use crate::runtime::{Chaos, FunctionProcess};
use crate::scenes::read_event;
use crate::seed::{self, Estate, PRIMARY, SECONDARY};
use crate::{workspace_root, SandboxError};

/// How a game day is played under faults (`sandbox gameday`).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// The share of AWS calls answered with a fault.
    pub rate: f64,
    /// The share of invocation attempts killed at a step boundary.
    pub kills: f64,
    /// What makes the faults repeatable.
    pub seed: u64,
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
pub async fn play(
    bins: PathBuf,
    report_dir: Option<String>,
    faults: Option<Faults>,
) -> Result<(), SandboxError> {
    let started = Instant::now();
    say("starting moto on a free loopback port");
    let mut moto = Moto::start(Lifetime::TiedToParent)?;
    let pid = moto.pid().unwrap_or_default();
    say(&format!(
        "moto answers at {} (pid {pid}, log {})",
        moto.endpoint(),
        moto.log().display()
    ));
    let config = crate::sdk_config(&moto.endpoint()).await;
    let estate = seed::seed(&config, PRIMARY, SECONDARY, "").await?;
    // Under faults every function reaches AWS through one fault proxy (seeding and the
    // read-back of end states do not: they are the judge, not the judged).
    let proxy = match faults {
        Some(f) => {
            let proxy = Arc::new(FaultProxy::start(&moto.endpoint(), f.seed).await?);
            for rule in gameday::aws_fault_mix(f.rate) {
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
        let mut process = FunctionProcess::start(
            &probe,
            "probe",
            PRIMARY,
            &FunctionEnv::primary(&endpoint, &estate).into_vars(),
        )
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
        let s3 = seed::s3(&config, PRIMARY);
        let object = s3
            .get_object()
            .bucket(&estate.primary.state_bucket)
            .key(&key)
            .send()
            .await
            .map_err(SandboxError::estate)?;
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
    // The functions whose scenes ran: each must have put its events on the bus.
    let mut ran: Vec<&str> = Vec::new();
    if let Some(rollback) = binary("rollback", "bad-deploy scene") {
        ran.push("rollback");
        timeline.begin("rollback", "A bad deploy trips the latency alarm");
        let from = mark(proxy.as_deref());
        let r = rollback::demo::play(
            &say,
            &config,
            &estate,
            &rollback,
            FunctionEnv::primary(&endpoint, &estate).into_vars(),
        )
        .await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(spot) = binary("spot", "spot scenes") {
        ran.push("spot");
        timeline.begin(
            "spot",
            "Spot interruptions: one drain, then repeated ones move to on-demand",
        );
        let from = mark(proxy.as_deref());
        let r = spot::demo::play(
            &say,
            &endpoint,
            &config,
            &estate,
            &spot,
            FunctionEnv::primary(&endpoint, &estate).into_vars(),
        )
        .await;
        keep_own_report(&config, &estate, "spot").await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(budget) = binary("budget", "budget scene") {
        ran.push("budget");
        timeline.begin(
            "budget",
            "The monthly budget is about to be blown, then the month rolls over",
        );
        let from = mark(proxy.as_deref());
        let r = budget::demo::play(&endpoint, &config, &estate, &budget).await;
        keep_own_report(&config, &estate, "budget").await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(tiering) = binary("tiering", "tiering scene") {
        ran.push("tiering");
        timeline.begin("tiering", "New and tagged buckets join the lifecycle");
        let from = mark(proxy.as_deref());
        let r = tiering::demo::play(&endpoint, &config, &estate, &tiering).await;
        keep_own_report(&config, &estate, "tiering").await;
        timeline.end(&judge(proxy.as_deref(), from, r));
    }
    if let Some(failover) = binary("failover", "regional-outage scene") {
        ran.push("failover");
        timeline.begin("failover", "A regional outage");
        let from = mark(proxy.as_deref());
        let r = failover::demo::play(&say, &config, &endpoint, &estate, &failover).await;
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
    if let Some(failover) = binary("failover", "regional-outage scene without ARC") {
        timeline.begin("failover", "A regional outage, no ARC cluster");
        let from = mark(proxy.as_deref());
        let r =
            failover::demo::play_without_arc(&say, &config, &endpoint, &estate, &failover).await;
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
    timeline.begin("sandbox", "Every notification is an EventBridge event too");
    let r = events_read_back(&say, &config, &estate, &ran).await;
    timeline.end(&r);
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
    let report_dir = report_dir.unwrap_or_else(|| {
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
        "game day report: {} (per scene its lines in Markdown, and the function's own report with its picture)",
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

/// Keeps, for the game day's report, the scene function's own report as it wrote it to the
/// primary state bucket (`reports/<function>/`): its Markdown and its picture. Of several (the
/// spot scene drains more than one node), the biggest picture — the drain with the most pods;
/// a missing report is said, not fatal (the scene's verdict judges the function).
async fn keep_own_report(config: &SdkConfig, estate: &Estate, function: &str) {
    let s3 = seed::s3(config, PRIMARY);
    let bucket = &estate.primary.state_bucket;
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(format!("reports/{function}/"))
        .send()
        .await;
    let best = listed.ok().and_then(|l| {
        l.contents()
            .iter()
            .filter(|o| o.key().is_some_and(|k| k.ends_with(".svg")))
            .max_by_key(|o| (o.size(), o.key().map(str::to_string)))
            .and_then(|o| o.key().map(str::to_string))
    });
    let Some(svg_key) = best else {
        say(&format!("{function} wrote no report with a picture"));
        return;
    };
    let read = |key: String| {
        let s3 = s3.clone();
        async move {
            let body = s3.get_object().bucket(bucket).key(&key).send().await.ok()?;
            let bytes = body.body.collect().await.ok()?.into_bytes();
            String::from_utf8(bytes.to_vec()).ok()
        }
    };
    let md_key = format!("{}.md", svg_key.strip_suffix(".svg").unwrap_or(&svg_key));
    match (read(md_key).await, read(svg_key.clone()).await) {
        (Some(md), Some(svg)) => {
            say(&format!("{function}'s report: s3://{bucket}/{svg_key}"));
            gameday::timeline().own_documents(md, svg);
        }
        _ => say(&format!(
            "{function}'s report s3://{bucket}/{svg_key} could not be read"
        )),
    }
}

/// Reads back, from each region's rule target queue, the events the scenes' functions put on the
/// default bus, and checks that every function whose scene ran put at least one, each from
/// `source: breakwater` with a `detail-type` naming its function and the `detail.topic` of its
/// stack (docs/events.md).
async fn events_read_back(
    say: &dyn Fn(&str),
    config: &SdkConfig,
    estate: &Estate,
    ran: &[&str],
) -> Result<(), SandboxError> {
    let mut counts: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for region in [&estate.primary, &estate.secondary] {
        for event in seed::read_events(config, &region.region, &region.events_queue_url, 2).await? {
            let detail_type = event["detail-type"].as_str().unwrap_or_default();
            let function = event["detail"]["function"].as_str().unwrap_or_default();
            if event["source"] != "breakwater"
                || !detail_type.starts_with(&format!("{function} "))
                || event["detail"]["topic"] != region.topic_arn.as_str()
            {
                return Err(SandboxError::Function(format!(
                    "an event not shaped as docs/events.md says: {event}"
                )));
            }
            *counts
                .entry((region.region.clone(), detail_type.to_string()))
                .or_default() += 1;
        }
    }
    say("events read back from the rules' target queues (region, detail-type, count):");
    for ((region, detail_type), n) in &counts {
        println!("           {region}  {detail_type:<28} {n}");
    }
    let silent: Vec<&str> = ran
        .iter()
        .copied()
        .filter(|f| !counts.keys().any(|(_, t)| t.starts_with(&format!("{f} "))))
        .collect();
    if silent.is_empty() {
        Ok(())
    } else {
        Err(SandboxError::Function(format!(
            "no EventBridge event from {silent:?}, whose scenes ran"
        )))
    }
}

async fn show_estate(config: &SdkConfig, estate: &Estate) -> Result<(), SandboxError> {
    for region in [&estate.primary.region, &estate.secondary.region] {
        let regional = seed::regional(config, region);
        let sns = aws_sdk_sns::Client::new(&regional);
        let topics = sns
            .list_topics()
            .send()
            .await
            .map_err(SandboxError::estate)?;
        let subscriptions = sns
            .list_subscriptions()
            .send()
            .await
            .map_err(SandboxError::estate)?;
        let bucket = if region == &estate.primary.region {
            &estate.primary.state_bucket
        } else {
            &estate.secondary.state_bucket
        };
        // moto 5.2 answers GetBucketVersioning with the wrong XML root, so the versioning that
        // seeding enabled is shown from the seed, and the bucket's existence from HeadBucket.
        seed::s3(config, region)
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(SandboxError::estate)?;
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

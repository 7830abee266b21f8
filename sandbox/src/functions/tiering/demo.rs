//! The tiering scene of `make demo`, through the release `tiering` binary in the Lambda Runtime
//! API emulator against moto: a new bucket and tagged buckets get tiered beside a team's own rule,
//! the others are left alone, a second sweep writes nothing, and the savings are printed.

use std::path::Path;

use aws_config::SdkConfig;
use serde_json::{json, Value};

use super::scene::{s3_storage_metrics, tag_bucket};
use crate::function_env::FunctionEnv;
use crate::gameday::say;
use crate::runtime::FunctionProcess;
use crate::scenes::read_event;
use crate::seed::{self, Estate, PRIMARY};
use crate::{workspace_root, SandboxError};

/// The tiering function's environment (its account tells its own buckets from others').
pub fn tiering_env(endpoint: &str, estate: &Estate) -> Vec<(String, String)> {
    FunctionEnv::primary(endpoint, estate)
        .with("BREAKWATER_ACCOUNT_ID", seed::ACCOUNT)
        .into_vars()
}

/// A schedule tick under its own event id (a repeat of an id is a duplicate delivery).
pub fn tick_with_id(tick: &Value, id: &str) -> Value {
    let mut t = tick.clone();
    t["id"] = json!(format!("demo-{}", id.replace(' ', "-")));
    t
}

/// The tiering scene: a new bucket and tagged buckets get tiered beside a team's own rule, the
/// others are left alone, a second sweep writes nothing, and the savings are printed.
pub async fn play(
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
    let s3 = seed::s3(config, PRIMARY);
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
            .map_err(SandboxError::estate)?;
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
        .map_err(SandboxError::estate)?;
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
        .map_err(SandboxError::estate)?;
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
        s3_storage_metrics(
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

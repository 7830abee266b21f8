//! The budget scene of `make demo`, through the release `budget` binary in the Lambda Runtime
//! API emulator against moto: a forecast alert scales the non-critical node group down, an actual
//! alert over 85 % stops the non-production databases, the month rollover restores everything.

use std::path::Path;

use aws_config::SdkConfig;
use serde_json::json;

use super::scene::{budget_alert_text, budget_scene, set_spend, sns_event, BudgetScene};
use crate::function_env::FunctionEnv;
use crate::gameday::say;
use crate::runtime::FunctionProcess;
use crate::seed::{self, Estate, PRIMARY};
use crate::SandboxError;

/// Nov 20 2026 and Dec 1 2026, 00:00 UTC: the days the budget scene lives on.
const NOV_20: u64 = 1_795_132_800_000;
const DEC_1: u64 = 1_796_083_200_000;

/// The budget function's environment: its account, budget and cluster, and (for the scene) the
/// day its clock reads.
pub fn budget_env(
    endpoint: &str,
    estate: &Estate,
    scene: &BudgetScene,
    now_ms: Option<u64>,
) -> Vec<(String, String)> {
    let env = FunctionEnv::primary(endpoint, estate)
        .with("BREAKWATER_ACCOUNT_ID", seed::ACCOUNT)
        .with("BREAKWATER_BUDGET_NAMES", scene.budget.clone())
        .with("BREAKWATER_BUDGET_CLUSTERS", scene.cluster.clone());
    match now_ms {
        Some(now) => env.with("BREAKWATER_SANDBOX_NOW_MS", now.to_string()),
        None => env,
    }
    .into_vars()
}

/// The budget scene: a forecast alert scales the non-critical node group down, an actual alert
/// over 85 % stops the non-production databases, the month rollover restores everything.
pub async fn play(
    endpoint: &str,
    config: &SdkConfig,
    estate: &Estate,
    binary: &Path,
) -> Result<(), SandboxError> {
    println!();
    say("budget scene: a $2,460 monthly budget, a cluster with tagged node groups, dev/staging/prod databases");
    let scene = budget_scene(config, PRIMARY, "").await?;
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
                .map_err(SandboxError::estate)?;
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
                .map_err(SandboxError::estate)?;
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
            .map_err(SandboxError::estate)?;
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
        set_spend(config, &scene.budget, "2460", actual, forecast).await?;
        let text = budget_alert_text(&scene.budget, kind, "$2,460.00", threshold, amount);
        let event = sns_event(
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
    set_spend(config, &scene.budget, "2460", "12", Some("1900")).await?;
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

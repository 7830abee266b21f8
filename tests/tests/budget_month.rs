//! A month of budget enforcement against moto, on an injected clock: escalation level by level,
//! duplicate and reordered alerts, a human resize left alone, a database that AWS restarted after
//! seven days stopped again, and rollover restoring exactly the recorded sizes and states.

use std::sync::Arc;
use std::time::Duration;

use breakwater::aws::budgets::AwsBudgets;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::iam::IamRolePolicies;
use breakwater::aws::rds::RdsDatabases;
use breakwater::aws::Aws;
use breakwater::clock::ManualClock;
use breakwater::config::Settings;
use breakwater::ports::{
    DatabaseKind, Databases, InlinePolicy, NodeGroupId, NodeGroups, RolePolicies, Scaling,
};
use breakwater::Toolkit;
use breakwater_sandbox::proxy::FaultProxy;
use breakwater_sandbox::scenes::{
    budget_alert_text, budget_scene, set_spend, sns_event, BudgetScene,
};
use breakwater_sandbox::seed::{read_notifications, seed, Estate};
use budget::guardrail;
use budget::ladder::Thresholds;
use budget::settings::BudgetSettings;
use budget::BudgetFunction;
use serde_json::{json, Value};

use crate::common::{aws, read_text, unique};

crate::common::moto_server!();

const NOV_5: u64 = 1_793_836_800_000;
const NOV_20: u64 = 1_795_132_800_000;
const NOV_29: u64 = 1_795_910_400_000;
const DEC_1: u64 = 1_796_083_200_000;

type Function = BudgetFunction<EksNodeGroups, RdsDatabases, AwsBudgets, IamRolePolicies>;

struct World {
    estate: Estate,
    scene: BudgetScene,
    direct: Aws,
    clock: ManualClock,
    proxy: FaultProxy,
    function: Function,
}

/// A world of its own in `region`: enforcement acts on everything tagged in its region, so tests
/// sharing one moto server must not share a region.
async fn world(region: &str) -> World {
    world_with(region, false, 10, false).await
}

async fn world_with(region: &str, dry_run: bool, max_targets: usize, guardrail: bool) -> World {
    let direct = aws(&moto().endpoint(), region).await;
    let suffix = format!("-{}", unique("b"));
    let estate = seed(direct.config(), region, "us-west-2", &suffix)
        .await
        .unwrap();
    let scene = budget_scene(direct.config(), region, &suffix)
        .await
        .unwrap();
    // The function talks to moto through the proxy, which counts its calls.
    let proxy = FaultProxy::start(&moto().endpoint(), 11).await.unwrap();
    let clock = ManualClock::at(NOV_5);
    let aws = Arc::new(Aws::for_endpoint(&proxy.endpoint(), region).await);
    let settings = Settings {
        region: region.into(),
        state_bucket: estate.primary.state_bucket.clone(),
        topic_arn: Some(estate.primary.topic_arn.clone()),
        dry_run,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "budget".into(),
    };
    let toolkit = Toolkit::with_aws(settings, aws.clone(), Arc::new(clock.clone()));
    let function = BudgetFunction {
        node_groups: EksNodeGroups::new(aws.eks()),
        databases: RdsDatabases::new(aws.rds()),
        budgets: AwsBudgets::new(aws.budgets()),
        roles: IamRolePolicies::new(aws.iam()),
        toolkit,
        settings: BudgetSettings {
            account: "123456789012".into(),
            budgets: vec![scene.budget.clone()],
            clusters: vec![scene.cluster.clone()],
            thresholds: Thresholds::default(),
            hysteresis: 5.0,
            max_targets,
            guardrail_roles: if guardrail {
                vec![
                    scene.guardrail_role.clone(),
                    format!("gone{suffix}"),
                    format!("untagged{suffix}"),
                ]
            } else {
                Vec::new()
            },
        },
    };
    World {
        estate,
        scene,
        direct,
        clock,
        proxy,
        function,
    }
}

impl World {
    async fn alert(
        &self,
        message_id: &str,
        alert_type: &str,
        threshold: &str,
        amount: &str,
    ) -> Value {
        let text = budget_alert_text(
            &self.scene.budget,
            alert_type,
            "$2,460.00",
            threshold,
            amount,
        );
        let event = sns_event(
            message_id,
            &format!(
                "AWS Budgets: {} has exceeded your alert threshold",
                self.scene.budget
            ),
            &text,
        );
        self.function
            .handle(event, &format!("req-{message_id}"))
            .await
            .unwrap()
    }

    async fn schedule(&self, id: &str) -> Value {
        let event = json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-22T06:00:00Z", "region": self.estate.primary.region, "resources": [], "detail": {}});
        self.function
            .handle(event, &format!("req-{id}"))
            .await
            .unwrap()
    }

    async fn scaling(&self, name: &str) -> Scaling {
        let eks = EksNodeGroups::new(self.direct.eks());
        let id = NodeGroupId {
            cluster: self.scene.cluster.clone(),
            name: name.into(),
        };
        eks.describe(&id).await.unwrap().unwrap().scaling
    }

    async fn db_status(&self, kind: DatabaseKind, id: &str) -> String {
        RdsDatabases::new(self.direct.rds())
            .describe(kind, id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    fn calls(&self, needle: &str) -> usize {
        self.proxy
            .calls()
            .iter()
            .filter(|c| c.operation.contains(needle) || c.path.contains(needle))
            .count()
    }
}

const START: Scaling = Scaling {
    min: 2,
    desired: 4,
    max: 6,
};

/// What level 2 holds the batch group at (floor 0): max 1 is the lowest EKS accepts
/// (`NodegroupScalingConfig.maxSize`, minimum 1).
const HELD: Scaling = Scaling {
    min: 0,
    desired: 0,
    max: 1,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_escalates_level_by_level_and_rollover_restores_exactly_what_was_recorded() {
    let w = world("eu-west-1").await;
    let dev = w.scene.dev_instance.clone();
    let staging = w.scene.staging_cluster.clone();

    // Nov 5, the scheduled check: forecast 73 %, nothing to do.
    let r = w.schedule("tick-1").await;
    assert_eq!(r["results"][0]["level_after"], 0, "{r}");
    // An alert the API does not confirm (it claims a forecast of $2,600; the API says $1,800) is a hint only.
    let r = w
        .alert("m-unconfirmed", "FORECASTED", "$2,460.00", "$2,600.00")
        .await;
    assert_eq!(
        (r["outcome"].as_str(), r["level_after"].as_u64()),
        (Some("noop"), Some(0)),
        "{r}"
    );
    assert_eq!(w.scaling("batch").await, START);

    // Nov 20: forecast crosses 90 % → L1, a notification and nothing changed.
    w.clock.advance(Duration::from_millis(NOV_20 - NOV_5));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1500",
        Some("2250"),
    )
    .await
    .unwrap();
    let r = w.alert("m-1", "FORECASTED", "$2,214.00", "$2,250.00").await;
    assert_eq!(
        (r["level_before"].as_u64(), r["level_after"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    assert_eq!(w.scaling("batch").await, START);

    // Forecast crosses 100 % → L2: only the non-critical node group goes to its floor.
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1700",
        Some("2600"),
    )
    .await
    .unwrap();
    let r = w.alert("m-2", "FORECASTED", "$2,460.00", "$2,600.00").await;
    assert_eq!(r["level_after"], 2, "{r}");
    // max is held too (at 1, EKS's minimum), or Cluster Autoscaler would scale it back up
    assert_eq!(w.scaling("batch").await, HELD);
    for protected in ["api", "checkout", "misc"] {
        assert_eq!(
            w.scaling(protected).await,
            START,
            "{protected} must never be touched"
        );
    }
    let tags = EksNodeGroups::new(w.direct.eks())
        .describe(&NodeGroupId {
            cluster: w.scene.cluster.clone(),
            name: "batch".into(),
        })
        .await
        .unwrap()
        .unwrap()
        .tags;
    assert_eq!(
        tags.get("breakwater:budget-before").map(String::as_str),
        Some("min=2,desired=4,max=6")
    );
    assert_eq!(w.calls("/update-config"), 1);
    assert_eq!(
        w.calls("/tags/"),
        1,
        "the recorded sizes are tagged on the node group once"
    );

    // The same alert ten more times, and an older alert arriving late: no second enforcement.
    for _ in 0..10 {
        let r = w.alert("m-2", "FORECASTED", "$2,460.00", "$2,600.00").await;
        assert_eq!(r["repeat"], true);
    }
    let late = w.alert("m-0", "FORECASTED", "$2,214.00", "$2,230.00").await;
    assert_eq!(
        (late["level_before"].as_u64(), late["level_after"].as_u64()),
        (Some(2), Some(2)),
        "{late}"
    );
    assert_eq!(w.calls("/update-config"), 1);

    // Actual passes 85 % → L3: the dev instance and the staging cluster stop, production does not.
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2120.40",
        Some("2650"),
    )
    .await
    .unwrap();
    let r = w.alert("m-3", "ACTUAL", "$2,091.00", "$2,120.40").await;
    assert_eq!(r["level_after"], 3, "{r}");
    assert_eq!(w.db_status(DatabaseKind::Instance, &dev).await, "stopped");
    assert_eq!(
        w.db_status(DatabaseKind::Cluster, &staging).await,
        "stopped"
    );
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &w.scene.production_instance)
            .await,
        "available"
    );
    assert_eq!(
        r["changed"].as_array().unwrap().len(),
        2,
        "exactly the dev instance and the staging cluster: {r}"
    );
    assert!(r["saving_per_day_usd"].as_f64().unwrap() > 0.0, "{r}");

    // A person resizes the node group by hand after enforcement.
    let human = Scaling {
        min: 1,
        desired: 1,
        max: 6,
    };
    EksNodeGroups::new(w.direct.eks())
        .update_scaling(
            &NodeGroupId {
                cluster: w.scene.cluster.clone(),
                name: "batch".into(),
            },
            human,
            "human-1",
        )
        .await
        .unwrap();

    // Nov 29: AWS starts the dev instance after seven days stopped; enforcement stops it again.
    w.clock.advance(Duration::from_millis(NOV_29 - NOV_20));
    RdsDatabases::new(w.direct.rds())
        .start(DatabaseKind::Instance, &dev)
        .await
        .unwrap();
    let mut rds_event: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/budget/rds-auto-start.json"
        ))
        .unwrap(),
    )
    .unwrap();
    rds_event["detail"]["SourceIdentifier"] = json!(dev);
    rds_event["region"] = json!(w.estate.primary.region);
    let r = w.function.handle(rds_event, "req-rds").await.unwrap();
    assert_eq!(
        r["results"][0]["changed"].as_array().unwrap().len(),
        1,
        "{r}"
    );
    assert_eq!(w.db_status(DatabaseKind::Instance, &dev).await, "stopped");

    // Dec 1: the new period restores what was recorded, and leaves the human's resize alone.
    w.clock.advance(Duration::from_millis(DEC_1 - NOV_29));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "12",
        Some("1900"),
    )
    .await
    .unwrap();
    let r = w.schedule("tick-2").await;
    let result = &r["results"][0];
    assert_eq!(
        (result["period"].as_str(), result["level_after"].as_u64()),
        (Some("2026-12"), Some(0)),
        "{r}"
    );
    assert_eq!(w.db_status(DatabaseKind::Instance, &dev).await, "available");
    assert_eq!(
        w.db_status(DatabaseKind::Cluster, &staging).await,
        "available"
    );
    assert_eq!(
        w.scaling("batch").await,
        human,
        "a human change after enforcement is never overwritten"
    );
    let left_alone = result["left_alone"].as_array().unwrap();
    assert_eq!(left_alone.len(), 1, "{r}");
    assert!(
        left_alone[0].as_str().unwrap().contains("node group"),
        "{r}"
    );

    // The notifications tell the story: L1, L2, L3, the re-stop, and the rollover with the human change.
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    let subjects: Vec<&str> = notes.iter().map(|n| n.subject.as_str()).collect();
    assert_eq!(notes.len(), 5, "{subjects:#?}");
    let rollover = notes.last().unwrap();
    assert!(
        rollover
            .message
            .contains("Changed by someone after enforcement"),
        "{}",
        rollover.message
    );
    assert!(
        notes[1].message.contains("Estimated saving: $"),
        "{}",
        notes[1].message
    );
    assert!(
        notes[1].message.contains("\"command\": \"restore\""),
        "{}",
        notes[1].message
    );

    // Each level change's notification links the period's report in the S3 console (the
    // re-stop, no evaluation, has none)
    let changes: Vec<_> = notes.iter().filter(|n| n.subject.contains("->")).collect();
    assert_eq!(
        changes.len(),
        4,
        "L1, L2, L3 and the rollover: {subjects:#?}"
    );
    for note in changes {
        assert!(
            note.message.contains(&format!(
                "The period's report, spend against the ladder: https://eu-west-1.console.aws.amazon.com/s3/object/{}?region=eu-west-1&prefix=reports%2Fbudget%2F",
                w.estate.primary.state_bucket
            )),
            "{}",
            note.message
        );
    }

    // The period's report, written at the rollover: every confirmed reading of November, the
    // levels climbed on Nov 20 and released on Dec 1, against the ladder's thresholds
    let report = |period: &str| {
        let key = format!(
            "reports/budget/{}",
            breakwater::state::key_segment(&format!("{}-{period}", w.scene.budget))
        );
        let (w, bucket) = (&w, w.estate.primary.state_bucket.clone());
        async move {
            let json = read_text(&w.direct, &bucket, &format!("{key}.json")).await;
            let svg = read_text(&w.direct, &bucket, &format!("{key}.svg")).await;
            let stored: Value = serde_json::from_str(&json).unwrap();
            (stored["data"].clone(), svg)
        }
    };
    let (november, svg) = report("2026-11").await;
    assert_eq!(november["outcome"], "L0", "{november}");
    let ladder = &november["picture"];
    assert_eq!(
        (&ladder["kind"], &ladder["period"], &ladder["end_ms"]),
        (&json!("ladder"), &json!("2026-11"), &json!(DEC_1)),
        "{ladder}"
    );
    let readings = ladder["readings"].as_array().unwrap();
    // tick-1, the unconfirmed alert, m-1, m-2 (its ten repeats are de-duplicated), m-0, m-3
    assert_eq!(readings.len(), 6, "{ladder}");
    let last = readings.last().unwrap();
    assert_eq!(
        (
            format!("{:.1}", last["actual_pct"].as_f64().unwrap()),
            format!("{:.1}", last["forecast_pct"].as_f64().unwrap())
        ),
        ("86.2".to_string(), "107.7".to_string()),
        "2,120.40 and 2,650 of 2,460"
    );
    let steps: Vec<(u64, u64, bool)> = ladder["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["from"].as_u64().unwrap(),
                s["to"].as_u64().unwrap(),
                s["at_ms"].as_u64().unwrap() >= DEC_1,
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (0, 1, false),
            (1, 2, false),
            (2, 3, false),
            (3, 2, true),
            (2, 1, true),
            (1, 0, true)
        ]
    );
    assert!(svg.contains("↑ L0→L3") && svg.contains("↓ L3→L0"), "{svg}");
    // December's report starts afresh: one reading, nothing climbed or released in it
    let (december, _) = report("2026-12").await;
    assert_eq!(december["picture"]["readings"].as_array().unwrap().len(), 1);
    assert_eq!(december["picture"]["steps"], json!([]), "{december}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_messages_alert_and_change_nothing() {
    let w = world("eu-west-2").await;
    for file in ["sns-unknown.json", "sns-cloudwatch-alarm.json"] {
        let event: Value = serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../events/budget/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap();
        let r = w.function.handle(event, "req-x").await.unwrap();
        assert_eq!(r["outcome"], "unknown-message", "{file}: {r}");
    }
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 2);
    assert!(notes
        .iter()
        .all(|n| n.attributes.get("outcome").map(String::as_str) == Some("unknown-message")));
    // Nothing but the idempotency records and the notifications was written.
    let mutating: Vec<_> = w
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.method != "GET" && c.service != "s3" && c.operation != "Publish")
        .collect();
    assert!(mutating.is_empty(), "{mutating:#?}");
    assert_eq!(w.scaling("batch").await, START);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_needs_the_budget_name_confirmed_and_bad_commands_change_nothing() {
    let w = world("eu-west-3").await;
    let cases = [
        (
            json!({"command": "restore", "budget": w.scene.budget}),
            "confirm",
        ),
        (
            json!({"command": "restore", "budget": w.scene.budget, "confirm": "another budget"}),
            "confirm",
        ),
        (
            json!({"command": "restore", "budget": "somebody else's", "confirm": "somebody else's"}),
            "not enforced",
        ),
        (json!({"command": "evaluate"}), "budget"),
    ];
    for (event, expected) in cases {
        let err = w.function.handle(event.clone(), "req").await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
        assert!(err.to_string().contains(expected), "{event}: {err}");
    }
    let foreign = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "999999999999", "time": "2026-11-22T06:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    assert!(w
        .function
        .handle(foreign, "req")
        .await
        .unwrap_err()
        .to_string()
        .contains("account 999999999999"));
    assert!(w.proxy.calls().is_empty(), "{:#?}", w.proxy.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_plans_every_level_and_changes_nothing() {
    let w = world_with("eu-north-1", true, 10, false).await;
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2120.40",
        Some("2650"),
    )
    .await
    .unwrap();
    let r = w.alert("d-1", "ACTUAL", "$2,091.00", "$2,120.40").await;
    assert_eq!(
        (r["outcome"].as_str(), r["level_after"].as_u64()),
        (Some("dry-run"), Some(3)),
        "{r}"
    );
    let planned: Vec<&str> = r["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(planned.len(), 3, "{planned:#?}");
    assert!(
        planned.iter().all(|line| line.starts_with("would ")),
        "{planned:#?}"
    );
    assert_eq!(w.scaling("batch").await, START);
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &w.scene.dev_instance)
            .await,
        "available"
    );
    let mutating: Vec<_> = w
        .proxy
        .calls()
        .into_iter()
        // No AWS resource was resized, stopped or tagged (the function's own records may be written).
        .filter(|c| {
            c.path.ends_with("/update-config")
                || c.operation.starts_with("Stop")
                || c.path.contains("/tags/")
        })
        .collect();
    assert!(mutating.is_empty(), "{mutating:#?}");
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].subject.contains("dry run"), "{}", notes[0].subject);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_per_run_bounds_what_one_level_changes() {
    let w = world_with("ca-central-1", false, 1, false).await;
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2120.40",
        Some("2650"),
    )
    .await
    .unwrap();
    let r = w.alert("c-1", "ACTUAL", "$2,091.00", "$2,120.40").await;
    assert_eq!(r["level_after"], 3, "{r}");
    let stopped = [
        w.db_status(DatabaseKind::Instance, &w.scene.dev_instance)
            .await,
        w.db_status(DatabaseKind::Cluster, &w.scene.staging_cluster)
            .await,
    ];
    assert_eq!(
        stopped.iter().filter(|s| *s == "stopped").count(),
        1,
        "{stopped:?}"
    );
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        skipped.iter().any(|s| s.contains("over the cap of 1")),
        "{skipped:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_failed_is_made_on_redelivery_and_a_released_level_can_return() {
    use breakwater_sandbox::proxy::{Fault, Rule};
    let w = world("sa-east-1").await;
    let floor = HELD;
    // GIVEN EKS throttles every attempt of the first scale-down (past the SDK's retries)
    w.proxy
        .add_rule(Rule::always(Fault::Throttle).service("eks").times(3));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1700",
        Some("2600"),
    )
    .await
    .unwrap();
    let text = budget_alert_text(
        &w.scene.budget,
        "FORECASTED",
        "$2,460.00",
        "$2,460.00",
        "$2,600.00",
    );
    let event = sns_event("f-1", "AWS Budgets: over", &text);
    let err = w
        .function
        .handle(event.clone(), "req-f1")
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Retryable", "{err}");
    assert_eq!(w.scaling("batch").await, START);
    // WHEN SNS delivers the alert again
    let r = w.function.handle(event, "req-f2").await.unwrap();
    // THEN the recorded-but-unmade change is made, with the sizes recorded the first time
    assert_eq!(r["level_after"], 2, "{r}");
    assert_eq!(w.scaling("batch").await, floor);

    // The schedule releases L2 once the forecast is 5 points under 100 % (here 93 %) …
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1800",
        Some("2290"),
    )
    .await
    .unwrap();
    let r = w.schedule("release").await;
    assert_eq!(r["results"][0]["level_after"], 1, "{r}");
    assert_eq!(w.scaling("batch").await, START);
    // … and a new forecast over 100 % in the same period scales it down again.
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1900",
        Some("2700"),
    )
    .await
    .unwrap();
    let text = budget_alert_text(
        &w.scene.budget,
        "FORECASTED",
        "$2,460.00",
        "$2,460.00",
        "$2,700.00",
    );
    let r = w
        .function
        .handle(sns_event("f-3", "AWS Budgets: over", &text), "req-f3")
        .await
        .unwrap();
    assert_eq!(r["level_after"], 2, "{r}");
    assert_eq!(w.scaling("batch").await, floor);
    // AND the rollover restores the sizes recorded before the second scale-down
    w.clock.advance(Duration::from_millis(DEC_1 - NOV_5));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "3",
        Some("1000"),
    )
    .await
    .unwrap();
    w.schedule("rollover").await;
    assert_eq!(w.scaling("batch").await, START);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_l4_guard_rail_denies_new_capacity_to_named_roles_until_rollover() {
    // GIVEN the guard-rail configured for the CI deployer role (tagged to allow it), a role that
    // does not exist and a role without the opt-in tag
    let w = world_with("ap-southeast-2", false, 10, true).await;
    let iam = IamRolePolicies::new(w.direct.iam());
    let role = w.scene.guardrail_role.clone();
    let untagged = w.scene.guardrail_role.replace("ci-deployer", "untagged");
    w.direct
        .iam()
        .create_role()
        .role_name(&untagged)
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        iam.get(&role, guardrail::POLICY_NAME).await.unwrap(),
        InlinePolicy::Absent
    );
    // WHEN actual spend passes 100 % (the alert arrives twice, as SNS may deliver it)
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2510",
        Some("2800"),
    )
    .await
    .unwrap();
    let r = w.alert("g-1", "ACTUAL", "$2,460.00", "$2,510.00").await;
    assert_eq!(r["level_after"], 4, "{r}");
    assert_eq!(
        w.alert("g-1", "ACTUAL", "$2,460.00", "$2,510.00").await["repeat"],
        true
    );
    // THEN the role holds a deny of new capacity, put there once, and the missing role is reported
    let InlinePolicy::Present { document } = iam.get(&role, guardrail::POLICY_NAME).await.unwrap()
    else {
        panic!("the guard-rail is not on {role}");
    };
    let document: Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["Statement"][0]["Effect"], "Deny");
    assert!(document["Statement"][0]["Action"]
        .as_array()
        .unwrap()
        .contains(&json!("ec2:RunInstances")));
    assert_eq!(w.calls("PutRolePolicy"), 1);
    let skipped = r["skipped"].to_string();
    assert!(skipped.contains("no such role"), "{r}");
    assert!(
        skipped.contains("not tagged breakwater:budget-guardrail=allowed"),
        "{r}"
    );
    assert_eq!(
        iam.get(&untagged, guardrail::POLICY_NAME).await.unwrap(),
        InlinePolicy::Absent,
        "a role without the opt-in tag is never changed"
    );
    // … and the lower levels acted too: L4 includes everything below it
    assert_eq!(w.scaling("batch").await.desired, 0);
    // A schedule while L4 holds changes nothing
    let r = w.schedule("hold").await;
    assert_eq!(r["results"][0]["level_after"], 4, "{r}");
    assert_eq!(w.calls("PutRolePolicy"), 1);

    // WHEN the period rolls over
    w.clock.advance(Duration::from_millis(DEC_1 - NOV_5));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "5",
        Some("1500"),
    )
    .await
    .unwrap();
    let r = w.schedule("rollover").await;
    assert_eq!(r["results"][0]["level_after"], 0, "{r}");
    // THEN the policy is gone and everything else is back
    assert_eq!(
        iam.get(&role, guardrail::POLICY_NAME).await.unwrap(),
        InlinePolicy::Absent
    );
    assert_eq!(w.calls("DeleteRolePolicy"), 1);
    assert_eq!(w.scaling("batch").await, START);
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &w.scene.dev_instance)
            .await,
        "available"
    );
    // AND the L4 notification said what was done to which role, and how to undo it
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    let escalation = notes
        .iter()
        .find(|n| n.message.contains(guardrail::POLICY_NAME))
        .unwrap_or_else(|| panic!("{notes:#?}"));
    assert!(escalation.message.contains(&role), "{}", escalation.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_as_describe_budget_writes_it_45_decimals_is_confirmed_and_acted_on() {
    // GIVEN the budget's spend stored as AWS returns it: the full binary expansion of a double
    // (AWS CLI reference, `aws budgets describe-budget`, example output:
    // "ForecastedSpend": {"Amount": "2641.54800000000022919266484677791595458984375"})
    let w = world("us-east-2").await;
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2120.40000000000009094947017729282379150390625",
        Some("2641.54800000000022919266484677791595458984375"),
    )
    .await
    .unwrap();
    // WHEN the actual-spend alert arrives
    let r = w.alert("doc-1", "ACTUAL", "$2,091.00", "$2,120.40").await;
    // THEN the spend is confirmed to the millionth and the ladder climbs to L3
    assert_eq!(r["level_after"], 3, "{r}");
    assert_eq!(
        (r["actual"].as_str(), r["forecast"].as_str()),
        (Some("2120.4"), Some("2641.548")),
        "{r}"
    );
    assert_eq!(w.scaling("batch").await, HELD);
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &w.scene.dev_instance)
            .await,
        "stopped"
    );
}

/// Creates a DB instance in the world's region with one tag.
async fn db_instance(w: &World, id: &str, engine: &str, multi_az: bool, tag: (&str, &str)) {
    w.direct
        .rds()
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.m5.large")
        .engine(engine)
        .multi_az(multi_az)
        .master_username("breakwater")
        .master_user_password("sandbox-password-1")
        .allocated_storage(20)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key(tag.0)
                .value(tag.1)
                .build(),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("create DB instance {id}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_three_skips_what_rds_will_not_stop_and_one_refusal_does_not_jam_the_ladder() {
    use breakwater_sandbox::proxy::{Fault, Rule};
    // GIVEN, besides the scene's dev instance and staging cluster:
    let w = world("ap-northeast-1").await;
    let suffix = unique("l3");
    // a read replica of the dev instance (which makes the dev instance a replica's source),
    let replica = format!("reporting-replica-{suffix}");
    w.direct
        .rds()
        .create_db_instance_read_replica()
        .db_instance_identifier(&replica)
        .source_db_instance_identifier(&w.scene.dev_instance)
        .send()
        .await
        .unwrap();
    // a SQL Server Multi-AZ instance, which RDS refuses to stop ("Stopping an Amazon RDS DB
    // instance temporarily", Limitations: "You can't stop an Amazon RDS for SQL Server DB
    // instance in a Multi-AZ configuration"), told apart by its `Engine` and `MultiAZ`,
    let mssql = format!("ledger-mssql-{suffix}");
    db_instance(&w, &mssql, "sqlserver-se", true, ("environment", "dev")).await;
    // an instance tagged `Environment=dev` (IAM reads tag keys in any case: it may be stopped),
    let capital_key = format!("legacy-dev-{suffix}");
    db_instance(&w, &capital_key, "postgres", false, ("Environment", "dev")).await;
    // and one tagged `environment=Dev` (StringEquals is case-sensitive: IAM would refuse it)
    let capital_value = format!("wiki-dev-{suffix}");
    db_instance(
        &w,
        &capital_value,
        "postgres",
        false,
        ("environment", "Dev"),
    )
    .await;
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2120.40",
        Some("2650"),
    )
    .await
    .unwrap();
    // and RDS refuses the stop of the staging cluster once (403 AccessDenied, as a service
    // control policy or a permissions boundary would answer), which no listing can foresee
    w.proxy.add_rule(
        Rule::always(Fault::AccessDenied)
            .service("rds")
            .operation("StopDBCluster")
            .times(1),
    );

    // WHEN actual spend passes 85 %
    let r = w.alert("l3-1", "ACTUAL", "$2,091.00", "$2,120.40").await;

    // THEN the level is reached although RDS refused one stop
    assert_eq!(r["level_after"], 3, "{r}");
    let lines = |field: &str| -> Vec<String> {
        r[field]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let (skipped, failed) = (lines("skipped"), lines("failed"));
    // AND the replica, its source and the SQL Server Multi-AZ instance were skipped with the
    // reason, never attempted
    for (id, reason) in [
        (&replica, "read replica of"),
        (&w.scene.dev_instance, "source of the read replica"),
        (
            &mssql,
            "SQL Server (sqlserver-se) in a Multi-AZ configuration",
        ),
    ] {
        assert!(
            skipped
                .iter()
                .any(|s| s.contains(id.as_str()) && s.contains(reason)),
            "{id}: {skipped:#?}"
        );
        assert_eq!(w.db_status(DatabaseKind::Instance, id).await, "available");
    }
    // AND the wrong-case value was skipped as IAM would refuse it, the any-case key was stopped
    assert!(
        skipped
            .iter()
            .any(|s| s.contains(&capital_value) && s.contains("environment=Dev")),
        "{skipped:#?}"
    );
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &capital_value).await,
        "available"
    );
    assert_eq!(
        w.db_status(DatabaseKind::Instance, &capital_key).await,
        "stopped"
    );
    // AND RDS's refusal of the cluster's stop is recorded with its reason; the others went on
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(
        failed[0].contains(&w.scene.staging_cluster) && failed[0].contains("AccessDenied"),
        "{failed:#?}"
    );
    assert_eq!(
        w.db_status(DatabaseKind::Cluster, &w.scene.staging_cluster)
            .await,
        "available"
    );
    let stops: Vec<String> = w
        .proxy
        .calls()
        .into_iter()
        .filter(|c| c.operation == "StopDBInstance")
        .map(|c| c.path)
        .collect();
    assert_eq!(stops.len(), 1, "only the any-case key: {stops:#?}");

    // WHEN actual spend then passes 100 %
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "2510",
        Some("2800"),
    )
    .await
    .unwrap();
    let r = w.alert("l3-2", "ACTUAL", "$2,460.00", "$2,510.00").await;
    // THEN the ladder is not jammed by the refused stop: L4
    assert_eq!(r["level_after"], 4, "{r}");
    // AND the notification of L3 reported the refusal
    let notes = read_notifications(
        w.direct.config(),
        &w.estate.primary.region,
        &w.estate.primary.queue_url,
        2,
    )
    .await
    .unwrap();
    assert!(
        notes.iter().any(|n| n.message.contains("Refused by AWS")
            && n.message.contains(&w.scene.staging_cluster)),
        "{notes:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollover_restores_each_size_enforcement_still_holds_and_keeps_what_the_autoscaler_changed()
{
    // GIVEN L2 held the batch group at min 0 / desired 0 / max 1
    let w = world("ap-south-1").await;
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "1700",
        Some("2600"),
    )
    .await
    .unwrap();
    let r = w
        .alert("ca-1", "FORECASTED", "$2,460.00", "$2,600.00")
        .await;
    assert_eq!(r["level_after"], 2, "{r}");
    assert_eq!(w.scaling("batch").await, HELD);
    // AND Cluster Autoscaler then raised desired to the held max, as it does for pending pods
    EksNodeGroups::new(w.direct.eks())
        .update_scaling(
            &NodeGroupId {
                cluster: w.scene.cluster.clone(),
                name: "batch".into(),
            },
            Scaling {
                min: 0,
                desired: 1,
                max: 1,
            },
            "cluster-autoscaler-1",
        )
        .await
        .unwrap();

    // WHEN the period rolls over
    w.clock.advance(Duration::from_millis(DEC_1 - NOV_5));
    set_spend(
        w.direct.config(),
        &w.scene.budget,
        "2460",
        "3",
        Some("1000"),
    )
    .await
    .unwrap();
    let r = w.schedule("ca-rollover").await;

    // THEN min and max, still as enforcement left them, go back; desired is the autoscaler's and
    // only moves up to the restored min (EKS refuses desired < min)
    let result = &r["results"][0];
    assert_eq!(result["level_after"], 0, "{r}");
    assert_eq!(
        w.scaling("batch").await,
        Scaling {
            min: 2,
            desired: 2,
            max: 6
        }
    );
    // AND the kept size is reported, not silently overwritten
    let left_alone = result["left_alone"].to_string();
    assert!(left_alone.contains("desired 1"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_refuses_to_stop_the_source_of_a_read_replica_as_rds_does() {
    // GIVEN, in regions no other test uses, a source with a replica beside it, a source with a
    // replica in another region (RDS names that one by ARN), and a plain instance
    let (home, away) = ("me-south-1", "af-south-1");
    let direct = aws(&moto().endpoint(), home).await;
    let rds = direct.rds();
    let suffix = unique("src");
    let (local, remote, plain) = (
        format!("orders-{suffix}"),
        format!("billing-{suffix}"),
        format!("scratch-{suffix}"),
    );
    for id in [&local, &remote, &plain] {
        rds.create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.m5.large")
            .engine("postgres")
            .master_username("breakwater")
            .master_user_password("sandbox-password-1")
            .allocated_storage(20)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create DB instance {id}: {e:?}"));
    }
    rds.create_db_instance_read_replica()
        .db_instance_identifier(format!("orders-copy-{suffix}"))
        .source_db_instance_identifier(&local)
        .send()
        .await
        .unwrap();
    let remote_arn = rds
        .describe_db_instances()
        .db_instance_identifier(&remote)
        .send()
        .await
        .unwrap()
        .db_instances()[0]
        .db_instance_arn
        .clone()
        .unwrap();
    direct
        .rds_in(away)
        .create_db_instance_read_replica()
        .db_instance_identifier(format!("billing-copy-{suffix}"))
        .source_db_instance_identifier(&remote_arn)
        .send()
        .await
        .unwrap();
    // AND the listing names each source's replicas, the one away by ARN
    let listed = RdsDatabases::new(rds.clone()).list().await.unwrap();
    let replicas = |id: &str| -> Vec<String> {
        listed
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.replicas.clone())
            .unwrap_or_default()
    };
    assert_eq!(replicas(&local), [format!("orders-copy-{suffix}")]);
    assert!(
        replicas(&remote)
            .iter()
            .any(|r| r.starts_with("arn:aws:rds:af-south-1:") && r.ends_with(&suffix)),
        "{:?}",
        replicas(&remote)
    );

    // WHEN each is stopped
    for id in [&local, &remote] {
        let err = rds
            .stop_db_instance()
            .db_instance_identifier(id)
            .send()
            .await
            .expect_err("RDS cannot stop an instance that has a read replica");
        // THEN RDS's refusal comes back ("Stopping an Amazon RDS DB instance temporarily",
        // Limitations: "You can't stop a DB instance that has a read replica"), and the source
        // runs on
        let service = err.as_service_error().expect("a service error");
        assert!(service.is_invalid_db_instance_state_fault(), "{service:?}");
        assert_eq!(
            RdsDatabases::new(rds.clone())
                .describe(DatabaseKind::Instance, id)
                .await
                .unwrap()
                .unwrap()
                .status,
            "available"
        );
    }
    // AND an instance without a replica stops
    rds.stop_db_instance()
        .db_instance_identifier(&plain)
        .send()
        .await
        .unwrap();
}

//! The failover function against moto (with the sandbox's AWS latencies), through the fault
//! proxy that counts every mutating call, and once through the real binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use breakwater::aws::arc::ArcRoutingControls;
use breakwater::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics, CloudWatchSwitches};
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::rds::RdsDatabases;
use breakwater::aws::route53::Route53Dns;
use breakwater::aws::Aws;
use breakwater::clock::{Clock, ManualClock};
use breakwater::config::{Env, Settings};
use breakwater::kube::capacity::KubeCapacity;
use breakwater::kube::KubeClients;
use breakwater::Toolkit;
use breakwater_sandbox::failover_scene::{
    alarm_state, capacity, failover_scene_via, metric_switches, observe, put_lag, put_plan,
    switch_values, FailoverScene, Latencies, MetricSwitchScene, Observed,
};
use breakwater_sandbox::proxy::{Fault, FaultProxy, Rule};
use breakwater_sandbox::rollback_scene::alarm_event;
use breakwater_sandbox::runtime::FunctionProcess;
use breakwater_sandbox::scenes::schedule_event;
use breakwater_sandbox::seed::{read_notifications, seed, Estate};
use failover::engine::Ports;
use failover::{FailoverFunction, FailoverSettings};
use serde_json::{json, Value};

use crate::common::unique;

crate::common::moto_server!();

const PRIMARY: &str = "us-east-1";
const SECONDARY: &str = "us-west-2";
const MUTATIONS: &[&str] = &[
    "PromoteReadReplica",
    "UpdateNodegroupConfig",
    "UpdateRoutingControlStates",
    "ChangeResourceRecordSets",
    "DeleteDBInstance",
    "CreateDBInstanceReadReplica",
];

type Function = FailoverFunction<
    RdsDatabases,
    EksNodeGroups,
    Route53Dns,
    CloudWatchMetrics,
    ArcRoutingControls,
    CloudWatchSwitches,
    KubeCapacity,
>;

struct World {
    estate: Estate,
    scene: FailoverScene,
    direct: Aws,
    proxy: FaultProxy,
    clock: ManualClock,
    function: Arc<Function>,
}

/// A port nobody listens on: the primary's health endpoint, down.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/health")
}

/// The copy of the function in `region` (the secondary fails over, the primary fails back).
fn function_in(
    region: &str,
    estate: &Estate,
    kube: &str,
    aws: Arc<Aws>,
    clock: Arc<dyn Clock>,
) -> Function {
    let home = if region == PRIMARY {
        &estate.primary
    } else {
        &estate.secondary
    };
    let settings = Settings {
        region: region.into(),
        state_bucket: home.state_bucket.clone(),
        topic_arn: Some(home.topic_arn.clone()),
        dry_run: false,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "failover".into(),
    };
    let ports = Ports {
        secondary_db: RdsDatabases::new(aws.rds_in(SECONDARY)),
        primary_db: RdsDatabases::new(aws.rds_in(PRIMARY)),
        nodes: EksNodeGroups::new(aws.eks_in(SECONDARY)),
        dns: Route53Dns::new(aws.route53()),
        switches: ArcRoutingControls::new(aws.config()),
        metric_switches: CloudWatchSwitches::new(aws.cloudwatch_in(SECONDARY)),
        metrics: CloudWatchMetrics::new(aws.cloudwatch_in(SECONDARY)),
        primary_metrics: CloudWatchMetrics::new(aws.cloudwatch_in(PRIMARY)),
        capacity: KubeCapacity::new(
            Arc::new(KubeClients::new(Some(kube.to_string())).unwrap()),
            Arc::new(Aws::from_config(aws.config_in(SECONDARY))),
            clock.clone(),
        ),
        probe: breakwater::probe::HttpProbe,
    };
    FailoverFunction {
        alarms: CloudWatchAlarms::new(aws.cloudwatch_in(PRIMARY)),
        toolkit: Toolkit::with_aws(settings, aws, clock).with_event_bus("default"),
        ports,
        settings: FailoverSettings::from_env(&Env::from_pairs([
            ("BREAKWATER_FAILOVER_POLL_MS", "20"),
            ("BREAKWATER_FAILOVER_WAIT_SECONDS", "30"),
            ("BREAKWATER_PRIMARY_REGION", PRIMARY),
            ("BREAKWATER_SECONDARY_REGION", SECONDARY),
        ]))
        .unwrap(),
    }
}

async fn world_with(latencies: Latencies, lag: f64, edit: impl FnOnce(&mut Value)) -> World {
    let suffix = format!("-{}", unique("fo"));
    let direct = Aws::for_endpoint(&moto().endpoint(), SECONDARY).await;
    let estate = seed(direct.config(), PRIMARY, SECONDARY, &suffix)
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto().endpoint(), 7).await.unwrap();
    // The routing controls' endpoints forward through the same proxy: its log and rules cover
    // them too.
    let mut scene = failover_scene_via(
        direct.config(),
        &estate,
        &suffix,
        latencies,
        &dead_url(),
        &proxy.endpoint(),
    )
    .await
    .unwrap();
    edit(&mut scene.plan);
    put_plan(
        direct.config(),
        SECONDARY,
        &estate.secondary.state_bucket,
        &scene.plan,
    )
    .await
    .unwrap();
    let clock = ManualClock::at(breakwater::clock::SystemClock.now_ms());
    // RDS publishes the lag every minute: a sample from before the outage (which `outage`
    // dates 120 s back; the RPO guard reads the last whole minute before the quorum began)
    // and a fresh one (what `precheck` reads).
    for ago in [200_000, 30_000] {
        put_lag(
            direct.config(),
            SECONDARY,
            &scene.replica,
            lag,
            clock.now_ms() - ago,
        )
        .await
        .unwrap();
    }
    let aws = Arc::new(Aws::for_endpoint(&proxy.endpoint(), SECONDARY).await);
    let function = Arc::new(function_in(
        SECONDARY,
        &estate,
        &scene.kube.endpoint(),
        aws,
        Arc::new(clock.clone()),
    ));
    World {
        estate,
        scene,
        direct,
        proxy,
        clock,
        function,
    }
}

async fn world() -> World {
    world_with(Latencies::default(), 2.0, |_| {}).await
}

/// The world of an account without an ARC cluster: the plan moves traffic by the metric
/// switches (template.yaml's `FailoverMetricSwitches: create` alarms, in us-west-2, the
/// primary's OK and the secondary's ALARM); the scene's ARC cluster is not in the plan.
async fn world_without_arc() -> (World, MetricSwitchScene) {
    let w = world().await;
    let suffix = w.scene.name.trim_start_matches("shop").to_string();
    let ms = metric_switches(w.direct.config(), &w.estate, &suffix)
        .await
        .unwrap();
    let mut plan = w.scene.plan.clone();
    plan["traffic"] = json!({"metric_switches": ms.plan.clone()});
    put_plan(
        w.direct.config(),
        SECONDARY,
        &w.estate.secondary.state_bucket,
        &plan,
    )
    .await
    .unwrap();
    (w, ms)
}

impl World {
    async fn handle(&self, event: Value) -> breakwater::Result<Value> {
        self.function.handle(event, &unique("req")).await
    }

    /// [`World::handle`] as the deployed binary runs it: `unless_paused` around it (main.rs).
    async fn handle_deployed(&self, event: Value) -> breakwater::Result<Value> {
        breakwater::control::unless_paused(&self.function.toolkit, "failover", self.handle(event))
            .await
    }

    fn alarm(&self, alarm: usize, state: &str, began_before_ms: u64) -> Value {
        let name = &self.scene.alarms[alarm];
        alarm_event(
            &unique("evt"),
            PRIMARY,
            name,
            &format!("arn:aws:cloudwatch:{PRIMARY}:123456789012:alarm:{name}"),
            if state == "ALARM" { "OK" } else { "ALARM" },
            state,
            self.clock.now_ms() - began_before_ms,
        )
    }

    fn tick(&self) -> Value {
        schedule_event(&unique("tick"), SECONDARY, self.clock.now_ms())
    }

    fn mutations(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for call in self.proxy.calls() {
            if MUTATIONS.contains(&call.operation.as_str()) && call.status.is_some_and(|s| s < 300)
            {
                *counts.entry(call.operation).or_insert(0) += 1;
            }
        }
        counts
    }

    async fn notifications(&self) -> Vec<breakwater_sandbox::seed::ReceivedNotification> {
        read_notifications(
            self.direct.config(),
            SECONDARY,
            &self.estate.secondary.queue_url,
            2,
        )
        .await
        .unwrap()
    }

    async fn observed(&self) -> Observed {
        observe(self.direct.config(), &self.estate, &self.scene)
            .await
            .unwrap()
    }

    fn failed_over(&self) -> Observed {
        Observed {
            replica: ("available".into(), None),
            node_group: (2, 3, "ACTIVE".into()),
            controls: (false, true),
            // The application's record is not rewritten: the routing controls move traffic.
            record: format!("east.{}.example.com", self.scene.name),
        }
    }

    /// Two alarms in ALARM for two minutes: the quorum (2 of 3, 60 s) is met.
    async fn outage(&self) -> Value {
        self.handle(self.alarm(0, "ALARM", 120_000)).await.unwrap();
        self.handle(self.alarm(1, "ALARM", 120_000)).await.unwrap()
    }
}

fn once_each() -> BTreeMap<String, usize> {
    BTreeMap::from([
        ("PromoteReadReplica".to_string(), 1),
        ("UpdateNodegroupConfig".to_string(), 1),
        // The fence alone is refused by the safety rule (a 409, not counted); one switch.
        ("UpdateRoutingControlStates".to_string(), 1),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quorum_fails_over_and_everything_reads_back() {
    let w = world().await;
    let before = w.observed().await;
    assert_eq!(before.replica.0, "available");
    assert!(before.replica.1.is_some(), "a replica before");
    let result = w.outage().await;
    assert_eq!(result["outcome"], "started", "{result}");
    assert_eq!(result["execution"]["outcome"], "succeeded", "{result}");
    assert_eq!(w.observed().await, w.failed_over());
    assert_eq!(w.mutations(), once_each());
    // Every action has its request id, the report is in the bucket in three forms.
    let id = result["execution"]["id"].as_str().unwrap().to_string();
    let store = &w.function.toolkit.store;
    let exec: failover::engine::Execution = store
        .get(&failover::engine::Execution::key(&id))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert!(
        exec.actions
            .iter()
            .filter(|a| a.operation != "UpdateNodegroupConfig")
            .all(|a| a.request_id.is_some()),
        "{:?}",
        exec.actions
    );
    assert_eq!(exec.lag_seconds, Some(2.0));
    for ext in ["json", "md", "svg"] {
        let key = format!("reports/failover/{id}.{ext}");
        let doc = store.get_document(&key).await.unwrap();
        assert!(doc.is_some_and(|d| !d.is_empty()), "{key}");
    }
    let md = String::from_utf8(
        store
            .get_document(&format!("reports/failover/{id}.md"))
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert!(
        md.contains("| PromoteReadReplica |") && md.contains("rto"),
        "{md}"
    );
    let notes = w.notifications().await;
    let phases: Vec<&str> = notes
        .iter()
        .filter_map(|n| n.attributes.get("phase").map(String::as_str))
        .collect();
    for phase in [
        "started", "database", "nodes", "traffic", "healthy", "finished",
    ] {
        assert_eq!(
            phases.iter().filter(|p| **p == phase).count(),
            1,
            "{phase} in {phases:?}"
        );
    }
    // Another tick: nothing more happens (the execution ended; the cool-down holds).
    let again = w.handle(w.tick()).await.unwrap();
    assert_ne!(again["outcome"], "started", "{again}");
    assert_eq!(w.mutations(), once_each());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blips_and_a_missing_signal_start_nothing() {
    let w = world().await;
    // Only the probe fails: one signal of the two needed.
    let r = w.handle(w.tick()).await.unwrap();
    assert_eq!(r["outcome"], "watching", "{r}");
    // One alarm fires, and clears inside the window.
    w.handle(w.alarm(0, "ALARM", 0)).await.unwrap();
    w.clock.advance(Duration::from_secs(30));
    assert_eq!(w.handle(w.tick()).await.unwrap()["outcome"], "watching");
    w.handle(w.alarm(0, "OK", 0)).await.unwrap();
    w.clock.advance(Duration::from_secs(60));
    let r = w.handle(w.tick()).await.unwrap();
    assert_eq!(r["outcome"], "watching", "{r}");
    // A late copy of the old ALARM is older than the OK: ignored.
    w.handle(w.alarm(0, "ALARM", 90_000)).await.unwrap();
    assert_eq!(w.handle(w.tick()).await.unwrap()["outcome"], "watching");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert!(w.observed().await.replica.1.is_some(), "still a replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cool_down_and_maintenance_hold_automatic_triggers() {
    let w = world_with(Latencies::default(), 2.0, |plan| {
        let now = breakwater::clock::SystemClock.now_ms();
        plan["detection"]["maintenance"] = json!([{
            "start": breakwater::clock::rfc3339(now - 60_000),
            "end": breakwater::clock::rfc3339(now + 600_000)}]);
    })
    .await;
    let r = w.outage().await;
    assert_eq!(r["outcome"], "not-acting", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("maintenance"));
    assert!(w.mutations().is_empty());
    // After the window: acts; then a new quorum inside the cool-down does not.
    w.clock.advance(Duration::from_secs(700));
    put_lag(
        w.direct.config(),
        SECONDARY,
        &w.scene.replica,
        2.0,
        w.clock.now_ms() - 30_000,
    )
    .await
    .unwrap();
    let r = w.handle(w.tick()).await.unwrap();
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    w.clock.advance(Duration::from_secs(600));
    let r = w.handle(w.tick()).await.unwrap();
    assert_eq!(r["outcome"], "not-acting", "{r}");
    assert!(r["reason"].as_str().unwrap().contains("cool-down"), "{r}");
    assert_eq!(w.mutations(), once_each());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_above_the_rpo_promotes_nothing_unless_accepted() {
    let w = world_with(Latencies::default(), 300.0, |_| {}).await;
    let r = w.outage().await;
    assert_eq!(r["execution"]["outcome"], "failed", "{r}");
    let detail = r["execution"]["steps"]["database"]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("above the RPO of 60 s"), "{detail}");
    assert_eq!(w.mutations().get("PromoteReadReplica"), None);
    assert_eq!(
        w.mutations().get("UpdateNodegroupConfig"),
        None,
        "nothing raised either"
    );
    let o = w.observed().await;
    assert!(o.replica.1.is_some(), "still a replica");
    assert_eq!((o.node_group.0, o.node_group.1), (0, 0));
    // A person accepts 5 minutes of loss, by name.
    w.clock.advance(Duration::from_secs(30));
    let r = w
        .handle(json!({"command": "failover", "confirm": w.scene.name, "accept_data_loss_seconds": 300, "by": "alice"}))
        .await
        .unwrap();
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    assert_eq!(w.observed().await, w.failed_over());
    let id = r["execution"]["id"].as_str().unwrap();
    let report = w
        .function
        .toolkit
        .store
        .get::<Value>(&format!("reports/failover/{id}.json"))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(
        report["facts"]["accepted_data_loss_window"], "300 s",
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lag_of_minus_one_is_unknown_and_promotes_nothing_unless_accepted() {
    // GIVEN the replica's ReplicaLag is -1, as RDS publishes it when replication is not active
    // (Monitoring MySQL read replicas, Amazon RDS User Guide: "ReplicaLag = -1 is equivalent to
    // Seconds_Behind_Master = NULL")
    let w = world_with(Latencies::default(), -1.0, |_| {}).await;

    // WHEN the region goes down
    let r = w.outage().await;

    // THEN the lag is unknown, not zero: the guard refuses and nothing is promoted or raised
    assert_eq!(r["execution"]["outcome"], "failed", "{r}");
    let detail = r["execution"]["steps"]["database"]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("replica lag unknown"), "{detail}");
    assert_eq!(w.mutations().get("PromoteReadReplica"), None);
    assert_eq!(w.mutations().get("UpdateNodegroupConfig"), None);
    assert!(w.observed().await.replica.1.is_some(), "still a replica");

    // AND a person who accepts the loss, by name, can still promote
    w.clock.advance(Duration::from_secs(30));
    let r = w
        .handle(json!({"command": "failover", "confirm": w.scene.name, "accept_data_loss_seconds": 300, "by": "alice"}))
        .await
        .unwrap();
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    assert_eq!(w.observed().await, w.failed_over());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_modes_need_the_plan_name_and_bad_input_changes_nothing() {
    let w = world().await;
    for bad in [
        json!({"command": "failover"}),
        json!({"command": "failover", "confirm": "prod"}),
        json!({"command": "drill", "confirm": 1}),
        json!({"command": "switchover", "confirm": w.scene.name, "accept_data_loss_seconds": "all"}),
        json!({"command": "failover", "confirm": w.scene.name, "plan": {}}),
        json!({"command": "drill", "confirm": w.scene.name, "plan": {"name": "x"}}),
        json!({"command": "explode"}),
        json!("failover"),
        json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch", "detail": {}}),
        json!({"alarmData": {"alarmName": ""}}),
    ] {
        let err = w.handle(bad.clone()).await.unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent", "{bad}: {err}");
    }
    let err = w
        .handle(json!({"command": "failover", "confirm": "prod"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not name this plan"), "{err}");
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    // A corrupt stored plan is named as such.
    let mut broken = w.scene.plan.clone();
    broken["detection"]["quorum"] = json!(9);
    put_plan(
        w.direct.config(),
        SECONDARY,
        &w.estate.secondary.state_bucket,
        &broken,
    )
    .await
    .unwrap();
    let err = w.handle(w.tick()).await.unwrap_err();
    assert!(err.to_string().contains("detection.quorum"), "{err}");
    assert!(w.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_and_precheck_change_nothing() {
    let w = world().await;
    let plan = w.handle(json!({"command": "plan"})).await.unwrap();
    assert_eq!(plan["changes"], "none");
    assert_eq!(plan["within_target"], true, "{plan}");
    assert!(plan["steps"].as_array().unwrap().len() >= 4);
    assert_eq!(
        plan["blocked_if_primary_is_down"],
        json!([]),
        "routing controls in five regions: nothing needs us-east-1: {plan}"
    );
    let check = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(check["ready"], true, "{check}");
    assert!(w.mutations().is_empty());
    let status = w.handle(json!({"command": "status"})).await.unwrap();
    assert_eq!(status["execution"], Value::Null);
}

/// A firing alarm signal whose `OK` event was lost is read again on the next tick: CloudWatch
/// says OK, so the signal stops firing. (The alarm is created in moto; the events are
/// synthetic, so moto's state is set as CloudWatch's would be.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_ok_event_cannot_leave_an_alarm_signal_firing() {
    let w = world().await;
    let name = w.scene.alarms[0].clone();
    let cw = aws_sdk_cloudwatch::Client::new(&breakwater_sandbox::seed::regional(
        w.direct.config(),
        PRIMARY,
    ));
    cw.put_metric_alarm()
        .alarm_name(&name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    // The alarm fired two minutes ago (its event arrived)…
    let r = w.handle(w.alarm(0, "ALARM", 120_000)).await.unwrap();
    assert!(r["quorum"]["firing"].to_string().contains("5xx"), "{r}");
    // …and has since gone back to OK, whose event was lost.
    cw.set_alarm_state()
        .alarm_name(&name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
        .state_reason("recovered")
        .send()
        .await
        .unwrap();
    // THEN the next tick reads it again, and the signal stops firing
    let r = w.handle(w.tick()).await.unwrap();
    assert_eq!(r["outcome"], "watching", "{r}");
    assert!(!r["quorum"]["firing"].to_string().contains("5xx"), "{r}");
    assert!(w.mutations().is_empty());
}

/// Detection a whole-region outage can complete: with the primary region gone, no alarm about it
/// is forwarded any more (the forwarder rule lives there). The probe, the primary's heartbeat
/// that stops arriving, and the replica's lag read in the secondary region need nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_region_outage_is_detected_from_the_healthy_side_and_failed_over() {
    let w = world_with(Latencies::default(), 2.0, |plan| {
        plan["detection"] = json!({"quorum": 2, "window_seconds": 60, "cooldown_seconds": 3600,
            "signals": [
                plan["detection"]["signals"][2].clone(),
                {"name": "heartbeat", "kind": "heartbeat", "stale_seconds": 180},
                {"name": "replica-lag", "kind": "replica-lag", "threshold_seconds": 300}]});
    })
    .await;
    let heartbeat_check = |r: &Value| {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "heartbeat heartbeat")
            .cloned()
            .unwrap_or_default()
    };
    // Before any heartbeat: precheck is not ready, and says why.
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(heartbeat_check(&r)["ok"], false, "{r}");
    // The primary is alive: its heartbeats arrive, the replica keeps up.
    for _ in 0..3 {
        let beat = schedule_event(&unique("beat"), PRIMARY, w.clock.now_ms());
        let r = w.handle(beat).await.unwrap();
        assert_eq!(r["outcome"], "watching", "{r}");
        w.clock.advance(Duration::from_secs(60));
        put_lag(
            w.direct.config(),
            SECONDARY,
            &w.scene.replica,
            2.0,
            w.clock.now_ms() - 10_000,
        )
        .await
        .unwrap();
    }
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(heartbeat_check(&r)["ok"], true, "{r}");
    // With no ARC endpoint answering, precheck cannot read the controls: not ready, not an error.
    for region in breakwater_sandbox::arc::REGIONS {
        w.scene.arc.set_down(region, true);
    }
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(r["ready"], false, "{r}");
    assert_eq!(r["checks"][0]["check"], "read the estate", "{r}");
    for region in breakwater_sandbox::arc::REGIONS {
        w.scene.arc.set_down(region, false);
    }
    // us-east-1 is lost whole: no heartbeat, no forwarded alarm, its ARC endpoint down.
    w.proxy.add_rule(Rule::region_outage(PRIMARY));
    w.scene.arc.set_down(PRIMARY, true);
    let mut last = Value::Null;
    for _ in 0..5 {
        w.clock.advance(Duration::from_secs(60));
        put_lag(
            w.direct.config(),
            SECONDARY,
            &w.scene.replica,
            2.0,
            w.clock.now_ms() - 10_000,
        )
        .await
        .unwrap();
        last = w.handle(w.tick()).await.unwrap();
        if last["outcome"] == "started" {
            break;
        }
    }
    // THEN the probe and the stale heartbeat make the quorum; the lag (2 s) does not fire
    assert_eq!(last["outcome"], "started", "{last}");
    assert_eq!(last["execution"]["outcome"], "succeeded", "{last}");
    let started: Vec<String> = w
        .notifications()
        .await
        .into_iter()
        .map(|n| n.message)
        .filter(|m| m.contains("started"))
        .collect();
    assert!(
        started
            .iter()
            .any(|m| m.contains("[probe, heartbeat]") || m.contains("[heartbeat, probe]")),
        "{started:?}"
    );
    assert_eq!(last["execution"]["outcome"], "succeeded", "{last}");
    assert_eq!(w.observed().await, w.failed_over());
}

/// A plan written to the state bucket (S3's "Object Created" through EventBridge, shaped as the
/// S3 User Guide's "EventBridge event message structure" example: events/failover/plan-changed.json)
/// is prechecked at once: ready, not ready with the failing check named, or unreadable. An event
/// for another key changes nothing and is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_the_plan_prechecks_it() {
    let w = world().await;
    let mut event = breakwater_sandbox::scenes::read_event(
        &breakwater_sandbox::workspace_root().join("events/failover/plan-changed.json"),
    )
    .unwrap();
    let bucket = &w.estate.secondary.state_bucket;
    event["detail"]["bucket"]["name"] = json!(bucket);
    event["resources"] = json!([format!("arn:aws:s3:::{bucket}")]);
    event["region"] = json!(SECONDARY);
    // The scene's plan: ready.
    let r = w.handle(event.clone()).await.unwrap();
    assert_eq!(
        (r["mode"].clone(), r["ready"].clone()),
        (json!("precheck"), json!(true)),
        "{r}"
    );
    // A plan whose traffic needs us-east-1's Route 53: not ready, the lint says why.
    let mut plan = w.scene.plan.clone();
    plan["traffic"] = json!({"zone_id": w.scene.zone_id, "records": [{"name": w.scene.record,
        "type": "CNAME", "ttl": 60, "primary": "east.example.com", "secondary": "west.example.com"}]});
    put_plan(w.direct.config(), SECONDARY, bucket, &plan)
        .await
        .unwrap();
    let r = w.handle(event.clone()).await.unwrap();
    assert_eq!(r["ready"], false, "{r}");
    assert!(
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["check"] == "no dependency on us-east-1" && c["ok"] == false),
        "{r}"
    );
    // A plan that does not load: not ready, and the reason.
    let mut broken = w.scene.plan.clone();
    broken["traffic"] = json!({"health_checks": {"primary": "a", "secondary": "b"}});
    put_plan(w.direct.config(), SECONDARY, bucket, &broken)
        .await
        .unwrap();
    let r = w.handle(event.clone()).await.unwrap();
    assert_eq!(r["ready"], false, "{r}");
    assert!(
        r["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("traffic.health_checks"),
        "{r}"
    );
    // Another key of the bucket: refused, nothing read or changed.
    let mut other = event.clone();
    other["detail"]["object"]["key"] = json!("reports/failover/x.json");
    let err = w.handle(other).await.unwrap_err();
    assert_eq!(err.error_type(), "InvalidEvent", "{err}");
    assert!(w.mutations().is_empty());
}

/// The dependency lint: a plan that moves traffic by UPSERTing records, failing away from
/// us-east-1, needs Route 53's control plane there; precheck is not ready and says which step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precheck_fails_a_plan_whose_traffic_step_needs_us_east_1() {
    let w = world().await;
    let mut plan: Value = w.scene.plan.clone();
    plan["traffic"] = json!({"zone_id": w.scene.zone_id, "records": [{"name": w.scene.record,
        "type": "CNAME", "ttl": 60, "primary": format!("east.{}.example.com", w.scene.name),
        "secondary": format!("west.{}.example.com", w.scene.name)}]});
    put_plan(
        w.direct.config(),
        SECONDARY,
        &w.estate.secondary.state_bucket,
        &plan,
    )
    .await
    .unwrap();
    let check = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(check["ready"], false, "{check}");
    let lint = check["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "no dependency on us-east-1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(lint["ok"], false, "{check}");
    assert!(
        lint["detail"]
            .as_str()
            .unwrap_or_default()
            .starts_with("step traffic calls route53:ChangeResourceRecordSets"),
        "{lint}"
    );
    assert!(w.mutations().is_empty());
}

/// The acid test: us-east-1 is lost whole — its own endpoints and, with it, Route 53's, IAM's and
/// STS's global control planes (`Rule::region_outage`) — and the ARC cluster's us-east-1
/// endpoint with them. The failover completes through the data plane, in us-west-2 and on the
/// cluster's other endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_us_east_1_gone_the_failover_completes_through_the_data_plane() {
    let w = world().await;
    w.proxy.add_rule(Rule::region_outage(PRIMARY));
    w.scene.arc.set_down(PRIMARY, true);
    let r = w.outage().await;
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    assert_eq!(w.observed().await, w.failed_over());
    assert_eq!(w.mutations(), once_each());
    // Nothing answered for us-east-1, and Route 53's API was never needed.
    let calls = w.proxy.calls();
    assert!(
        calls.iter().all(|c| c.region != PRIMARY || !c.succeeded()),
        "{:?}",
        calls
            .iter()
            .filter(|c| c.region == PRIMARY && c.succeeded())
            .collect::<Vec<_>>()
    );
    assert!(
        calls.iter().all(|c| c.service != "route53"),
        "{:?}",
        calls
            .iter()
            .filter(|c| c.service == "route53")
            .collect::<Vec<_>>()
    );
}

/// The second choice, for accounts without an ARC cluster: us-east-1 is lost whole
/// (`Rule::region_outage`: its endpoints and Route 53's, IAM's and STS's global control planes)
/// and the failover moves traffic through the CLOUDWATCH_METRIC health checks' alarms, written
/// and read in us-west-2 only. Route 53's checkers read the alarms; moto's Route 53 does not
/// evaluate such checks (it drops their AlarmIdentifier and reports every check healthy), so the
/// alarms are what is read back. (Route 53 API Reference, AlarmIdentifier: "the CloudWatch alarm
/// that you want Amazon Route 53 health checkers to use to determine whether this health check is
/// healthy", <https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html>;
/// the alarms' evaluation: sandbox/moto_cloudwatch_alarms.py.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_us_east_1_gone_and_no_arc_cluster_the_failover_completes_through_cloudwatch_metric_health_checks(
) {
    let (w, ms) = world_without_arc().await;
    let (east, west) = (&ms.primary, &ms.secondary);
    // GIVEN the switch as deployed: the primary's alarm OK, the secondary's ALARM
    assert_eq!(
        alarm_state(w.direct.config(), SECONDARY, &east.0)
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        alarm_state(w.direct.config(), SECONDARY, &west.0)
            .await
            .unwrap(),
        "ALARM"
    );
    // AND precheck ready with us-east-1 as primary: the switch calls are CloudWatch's, in us-west-2
    let check = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(check["ready"], true, "{check}");
    // WHEN us-east-1 is lost whole and the quorum holds
    w.proxy.add_rule(Rule::region_outage(PRIMARY));
    w.scene.arc.set_down(PRIMARY, true);
    let r = w.outage().await;
    // THEN the failover succeeded
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    // AND every phase is an event on us-west-2's default bus (docs/events.md)
    let events = breakwater_sandbox::seed::read_events(
        w.direct.config(),
        SECONDARY,
        &w.estate.secondary.events_queue_url,
        2,
    )
    .await
    .unwrap();
    let mut phases: Vec<&str> = events
        .iter()
        .filter_map(|e| e["detail-type"].as_str())
        .collect();
    phases.sort_unstable();
    assert_eq!(
        phases,
        [
            "failover database",
            "failover finished",
            "failover healthy",
            "failover nodes",
            "failover started",
            "failover traffic"
        ],
        "{events:#?}"
    );
    // AND, read back through the emulator in us-west-2: the secondary's alarm OK (its health
    // check healthy), the primary's ALARM (unhealthy)
    assert_eq!(
        alarm_state(w.direct.config(), SECONDARY, &west.0)
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        alarm_state(w.direct.config(), SECONDARY, &east.0)
            .await
            .unwrap(),
        "ALARM"
    );
    // AND the values were written in us-west-2: this minute the primary's metric is 0 and the
    // secondary's 1; nothing was written in us-east-1
    let newest = |v: Vec<(f64, f64, f64)>| v.first().copied();
    let e = newest(
        switch_values(w.direct.config(), SECONDARY, &east.1, 1)
            .await
            .unwrap(),
    );
    let s = newest(
        switch_values(w.direct.config(), SECONDARY, &west.1, 1)
            .await
            .unwrap(),
    );
    // (sample count, minimum, maximum) of this minute
    assert_eq!(e, Some((1.0, 0.0, 0.0)), "{e:?}");
    assert_eq!(s, Some((1.0, 1.0, 1.0)), "{s:?}");
    assert!(switch_values(w.direct.config(), PRIMARY, &east.1, 5)
        .await
        .unwrap()
        .is_empty());
    // AND the routing controls and the record were not touched; the rest failed over
    let observed = w.observed().await;
    assert_eq!(observed.controls, (true, false));
    assert_eq!(
        Observed {
            controls: (false, true),
            ..observed
        },
        w.failed_over()
    );
    let calls = w.proxy.calls();
    let put: Vec<_> = calls
        .iter()
        .filter(|c| c.operation == "PutMetricData" && c.succeeded())
        .collect();
    assert_eq!(put.len(), 2, "{put:?}");
    assert!(put.iter().all(|c| c.region == SECONDARY), "{put:?}");
    // AND no call signed for us-east-1 succeeded, Route 53's API and the ARC cluster were
    // never called
    assert!(
        calls.iter().all(|c| c.region != PRIMARY || !c.succeeded()),
        "{:?}",
        calls
            .iter()
            .filter(|c| c.region == PRIMARY && c.succeeded())
            .collect::<Vec<_>>()
    );
    assert!(
        calls
            .iter()
            .all(|c| c.service != "route53" && !c.operation.contains("RoutingControl")),
        "{:?}",
        calls
            .iter()
            .filter(|c| c.service == "route53" || c.operation.contains("RoutingControl"))
            .collect::<Vec<_>>()
    );
}

/// Precheck of the metric switches: the switch alarms are read in the secondary region; a
/// deployment whose values were never written (a new alarm is INSUFFICIENT_DATA) is not ready,
/// and says what to write; the lint finds no dependency on us-east-1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precheck_reads_the_metric_switch_alarms_and_names_a_switch_never_written() {
    let (w, ms) = world_without_arc().await;
    let checks = |r: &Value| -> BTreeMap<String, (bool, String)> {
        r["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["check"].as_str().unwrap().to_string(),
                    (c["ok"] == true, c["detail"].as_str().unwrap().to_string()),
                )
            })
            .collect()
    };
    // GIVEN the switch as deployed and written: ready
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    assert_eq!(r["ready"], true, "{r}");
    let c = checks(&r);
    assert!(c[&format!("metric switch alarm {}", ms.primary.0)].0, "{r}");
    assert!(c["no dependency on us-east-1"].0, "{r}");
    // AND `plan` lists the switch as data-plane calls to CloudWatch in us-west-2
    let p = w.handle(json!({"command": "plan"})).await.unwrap();
    let deps = p["dependencies"].as_array().unwrap();
    assert!(
        deps.iter().any(|d| d["call"] == "cloudwatch:PutMetricData"
            && d["regions"] == json!([SECONDARY])
            && d["plane"] == "data"
            && d["endpoints"] == json!(["https://monitoring.us-west-2.amazonaws.com"])),
        "{p}"
    );
    assert_eq!(p["blocked_if_primary_is_down"], json!([]), "{p}");
    // WHEN the secondary's alarm is re-created and never written (a new alarm: INSUFFICIENT_DATA)
    let cw = aws_sdk_cloudwatch::Client::new(&breakwater_sandbox::seed::regional(
        w.direct.config(),
        SECONDARY,
    ));
    cw.delete_alarms()
        .alarm_names(&ms.secondary.0)
        .send()
        .await
        .unwrap();
    cw.put_metric_alarm()
        .alarm_name(&ms.secondary.0)
        .namespace(&ms.namespace)
        .metric_name(&ms.metric)
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Region")
                .value(format!("{}-unwritten", ms.secondary.1))
                .build(),
        )
        .statistic(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .treat_missing_data("ignore")
        .send()
        .await
        .unwrap();
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    // THEN not ready, the check says what to write
    assert_eq!(r["ready"], false, "{r}");
    let (ok, detail) = checks(&r)[&format!("metric switch alarm {}", ms.secondary.0)].clone();
    assert!(!ok);
    assert!(
        detail.starts_with("INSUFFICIENT_DATA (expected ALARM")
            && detail.contains("RegionActive Region=")
            && detail.contains("= 0 in us-west-2"),
        "{detail}"
    );
    // AND a missing alarm is named as missing
    cw.delete_alarms()
        .alarm_names(&ms.secondary.0)
        .send()
        .await
        .unwrap();
    let r = w.handle(json!({"command": "precheck"})).await.unwrap();
    let (ok, detail) = checks(&r)[&format!("metric switch alarm {}", ms.secondary.0)].clone();
    assert!(!ok && detail == "does not exist in us-west-2", "{detail}");
    assert!(w.mutations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_copies_and_two_at_once_make_one_execution() {
    let w = world().await;
    w.handle(w.alarm(0, "ALARM", 120_000)).await.unwrap();
    let event = w.alarm(1, "ALARM", 120_000);
    let (a, b) = tokio::join!(w.handle(event.clone()), w.handle(event.clone()));
    let outcomes = [a.unwrap()["outcome"].clone(), b.unwrap()["outcome"].clone()];
    assert!(outcomes.contains(&json!("started")), "{outcomes:?}");
    for _ in 0..10 {
        let r = w.handle(event.clone()).await.unwrap();
        assert_ne!(r["outcome"], "started", "{r}");
    }
    assert_eq!(w.mutations(), once_each());
    assert_eq!(w.observed().await, w.failed_over());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_and_nodes_wait_in_parallel() {
    // The promotion and the node group each take 1.5 s: the node group's update must be sent
    // while the promotion is still being followed, and the promotion while the node group is.
    let w = world_with(
        Latencies {
            promote: 1.5,
            nodes: 1.5,
            dns: 0.5,
            boot: 1.0,
            pod_ready: 0.5,
        },
        2.0,
        |_| {},
    )
    .await;
    let r = w.outage().await;
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    // The nodes step ended only with the capacity ready in the cluster: the node group's three
    // nodes Ready (each 1 s after it joined) and the critical Deployment's two pods ready.
    assert_eq!(capacity(&w.scene), (3, 2));
    let nodes = r["execution"]["steps"]["nodes"]["detail"]
        .as_str()
        .unwrap_or_default();
    assert!(
        nodes.contains("web: 3 of 3 nodes Ready") && nodes.contains("shop/api: 2 of 2 pods ready"),
        "{nodes}"
    );
    let calls: Vec<String> = w.proxy.calls().into_iter().map(|c| c.operation).collect();
    let first = |op: &str| calls.iter().position(|c| c == op).unwrap();
    let last = |op: &str| calls.iter().rposition(|c| c == op).unwrap();
    assert!(
        first("UpdateNodegroupConfig") < last("DescribeDBInstances"),
        "{calls:?}"
    );
    assert!(
        first("PromoteReadReplica") < last("DescribeNodegroup"),
        "{calls:?}"
    );
    assert!(last("UpdateRoutingControlStates") > first("UpdateNodegroupConfig"));
    assert_eq!(w.observed().await, w.failed_over());
    assert_eq!(w.mutations(), once_each());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drill_cleans_up_and_reads_it_back() {
    let w = world().await;
    let before = w.observed().await;
    // A drill on production's replica (untagged) is refused: a promotion cannot be undone.
    let err = w
        .handle(json!({"command": "drill", "confirm": w.scene.name}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not tagged breakwater:drill=true"),
        "{err}"
    );
    assert!(w.mutations().is_empty());
    assert_eq!(w.observed().await, before);
    // Tagged as a drill copy, it is drilled on, and the clean-up deletes it.
    breakwater_sandbox::failover_scene::tag_drill_copy(w.direct.config(), &w.estate, &w.scene)
        .await
        .unwrap();
    // Paused (`breakwater pause failover`), the drill is answered with what it would have
    // started, and nothing starts: the wiring of main.rs, `unless_paused` around `handle`.
    let toolkit = &w.function.toolkit;
    toolkit.store.pause("failover", &freeze()).await.unwrap();
    let drill = json!({"command": "drill", "confirm": w.scene.name});
    let paused = w.handle_deployed(drill.clone()).await.unwrap();
    assert_eq!(paused["outcome"], "paused", "{paused}");
    assert_eq!(
        paused["message"],
        format!(
            "paused: would have acted: start a drill of plan {}",
            w.scene.name
        )
    );
    assert!(w.mutations().is_empty(), "{:?}", w.mutations());
    assert_eq!(w.observed().await, before);
    let state = toolkit
        .store
        .get::<failover::PlanState>(&failover::plan_key(&w.scene.name))
        .await
        .unwrap()
        .map(|v| v.value);
    assert!(
        state.as_ref().is_none_or(|s| s.active.is_none()),
        "{state:?}"
    );
    assert!(toolkit.store.resume("failover").await.unwrap());
    let r = w.handle_deployed(drill).await.unwrap();
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    let after = w.observed().await;
    assert_eq!(
        (after.node_group.0, after.node_group.1),
        (before.node_group.0, before.node_group.1)
    );
    assert_eq!(after.controls, before.controls);
    assert_eq!(after.record, before.record);
    let cleanup = r["execution"]["steps"]["cleanup"]["detail"]
        .as_str()
        .unwrap();
    assert!(cleanup.contains("restored and read back"), "{cleanup}");
    assert!(
        cleanup.contains(&format!("drill copy {}", w.scene.replica)),
        "{cleanup}"
    );
    assert_eq!(w.mutations().get("DeleteDBInstance"), Some(&1));
}

/// Failback, by hand, from the copy in the primary region once the region is back: refused while
/// the old primary still exists (two writers), then re-protect (a replica of the promoted
/// database re-created in the primary region), the planned move back with lag 0, traffic back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failback_reprotects_then_moves_back() {
    let w = world().await;
    assert_eq!(w.outage().await["execution"]["outcome"], "succeeded");
    put_plan(
        w.direct.config(),
        PRIMARY,
        &w.estate.primary.state_bucket,
        &w.scene.plan,
    )
    .await
    .unwrap();
    let aws = Arc::new(Aws::for_endpoint(&w.proxy.endpoint(), PRIMARY).await);
    let back = function_in(
        PRIMARY,
        &w.estate,
        &w.scene.kube.endpoint(),
        aws,
        Arc::new(w.clock.clone()),
    );
    let failback = json!({"command": "failback", "confirm": w.scene.name, "by": "alice"});
    // The secondary's copy does not fail back: it activates the other region.
    let err = w.handle(failback.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains("invoke the copy in us-east-1"),
        "{err}"
    );
    let r = back.handle(failback.clone(), "fb-1").await.unwrap();
    let detail = r["execution"]["steps"]["reprotect"]["detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.contains("still exists") && detail.contains("two writers"),
        "{r}"
    );
    assert_eq!(w.mutations().get("CreateDBInstanceReadReplica"), None);
    // The operator retires the old primary; the replica's lag will read 0.
    let rds = aws_sdk_rds::Client::new(&breakwater_sandbox::seed::regional(
        w.direct.config(),
        PRIMARY,
    ));
    rds.delete_db_instance()
        .db_instance_identifier(&w.scene.primary_db)
        .skip_final_snapshot(true)
        .send()
        .await
        .unwrap();
    put_lag(
        w.direct.config(),
        PRIMARY,
        &w.scene.primary_db,
        0.0,
        w.clock.now_ms() - 10_000,
    )
    .await
    .unwrap();
    let r = back.handle(failback, "fb-2").await.unwrap();
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    let primary = rds
        .describe_db_instances()
        .db_instance_identifier(&w.scene.primary_db)
        .send()
        .await
        .unwrap();
    let db = &primary.db_instances()[0];
    assert_eq!(db.db_instance_status(), Some("available"));
    assert_eq!(
        db.read_replica_source_db_instance_identifier(),
        None,
        "promoted back"
    );
    let o = w.observed().await;
    assert_eq!(
        o.controls,
        (true, false),
        "the primary serves, the secondary is Off again"
    );
    assert_eq!(o.record, format!("east.{}.example.com", w.scene.name));
    let m = w.mutations();
    assert_eq!(m.get("CreateDBInstanceReadReplica"), Some(&1));
    assert_eq!(m.get("PromoteReadReplica"), Some(&2), "{m:?}");
}

/// Crash-resume: the run is cut at every step boundary — right after each mutating call reached
/// the emulator, and right after each checkpoint of the execution record — and the next
/// invocation finishes it with each mutation made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_boundary_is_finished_by_the_next_invocation() {
    // A clean run lists the boundaries.
    let reference = world().await;
    reference.outage().await;
    let boundaries: Vec<(String, u32)> = {
        let mut seen: BTreeMap<String, u32> = BTreeMap::new();
        let mut list = Vec::new();
        for call in reference.proxy.calls() {
            let checkpoint = call.operation == "PutObject"
                && (call.path.contains("failover%2Fexecutions")
                    || call.path.contains("failover/executions"));
            if MUTATIONS.contains(&call.operation.as_str()) || checkpoint {
                let n = seen.entry(call.operation.clone()).or_insert(0);
                list.push((call.operation.clone(), *n));
                *n += 1;
            }
        }
        list
    };
    assert!(boundaries.len() >= 10, "{boundaries:?}");
    eprintln!("{} step boundaries: {boundaries:?}", boundaries.len());
    for (operation, skip) in boundaries {
        let w = world().await;
        w.handle(w.alarm(0, "ALARM", 120_000)).await.unwrap();
        let (op, n) = (operation.clone(), skip);
        w.proxy
            .add_rule(Rule::always(Fault::Hang).operation(&op).after(n).times(1));
        let event = w.alarm(1, "ALARM", 120_000);
        let f = w.function.clone();
        let run = tokio::spawn(async move { f.handle(event, "doomed").await });
        // Wait until the call reached the emulator, then kill the invocation there.
        for _ in 0..500 {
            if w.proxy
                .calls()
                .iter()
                .any(|c| c.fault.as_deref() == Some("Hang"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            w.proxy.faults_injected() == 1,
            "{operation}#{skip} was never reached"
        );
        run.abort();
        let _ = run.await;
        // The next tick finds the lease of the dead invocation; after it lapses, resumes.
        w.clock.advance(Duration::from_secs(200));
        let mut outcome = Value::Null;
        for _ in 0..3 {
            let r = w.handle(w.tick()).await.unwrap();
            outcome = r["execution"]["outcome"].clone();
            if outcome == "succeeded" {
                break;
            }
            w.clock.advance(Duration::from_secs(200));
        }
        assert_eq!(outcome, "succeeded", "cut after {operation}#{skip}");
        assert_eq!(
            w.observed().await,
            w.failed_over(),
            "cut after {operation}#{skip}"
        );
        assert_eq!(w.mutations(), once_each(), "cut after {operation}#{skip}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_fails_over_on_a_quorum() {
    let w = world().await;
    let now = w.clock.now_ms();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", w.proxy.endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        (
            "BREAKWATER_STATE_BUCKET",
            w.estate.secondary.state_bucket.clone(),
        ),
        ("BREAKWATER_TOPIC_ARN", w.estate.secondary.topic_arn.clone()),
        ("BREAKWATER_PRIMARY_REGION", PRIMARY.into()),
        ("BREAKWATER_SECONDARY_REGION", SECONDARY.into()),
        ("BREAKWATER_FAILOVER_POLL_MS", "50".into()),
        ("BREAKWATER_SANDBOX_NOW_MS", now.to_string()),
        ("BREAKWATER_KUBE_ENDPOINT", w.scene.kube.endpoint()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let binary = breakwater_sandbox::bin_dir("debug").join("failover");
    let mut process = FunctionProcess::start(&binary, "failover", SECONDARY, &env)
        .await
        .unwrap();
    let first = process
        .invoke(&w.alarm(0, "ALARM", 120_000))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_eq!(first["outcome"], "watching", "{first}");
    let second = process
        .invoke(&w.alarm(1, "ALARM", 120_000))
        .await
        .unwrap()
        .answer()
        .unwrap();
    assert_eq!(second["outcome"], "started", "{second}");
    assert_eq!(second["execution"]["outcome"], "succeeded", "{second}");
    let malformed = process
        .invoke(&json!({"detail-type": "Nope", "source": "x", "detail": {}}))
        .await
        .unwrap();
    assert!(malformed.answer().is_err());
    process.kill().await;
    assert_eq!(w.observed().await, w.failed_over());
    assert_eq!(w.mutations(), once_each());
    let notes = w.notifications().await;
    assert!(notes
        .iter()
        .any(|n| n.attributes.get("phase").map(String::as_str) == Some("finished")));
}

/// The RPO guard reads the lag from before the outage through CloudWatch itself (moto): whole
/// one-minute periods ending at or before the quorum's start, which the fakes cannot show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lag_that_rose_only_after_the_outage_began_is_accepted_and_precheck_names_the_metric() {
    // GIVEN the replica 2 s behind before the outage (RPO 60 s), then 400 s behind from the
    // moment the primary's alarms fired (120 s ago) on
    let w = world_with(Latencies::default(), 2.0, |_| {}).await;
    for ago in [100_000, 30_000, 5_000] {
        put_lag(
            w.direct.config(),
            SECONDARY,
            &w.scene.replica,
            400.0,
            w.clock.now_ms() - ago,
        )
        .await
        .unwrap();
    }
    // WHEN precheck runs THEN its lag check names the metric the guard reads, and its latest
    // value
    let check = w.handle(json!({"command": "precheck"})).await.unwrap();
    let lag = check["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "replica lag")
        .unwrap()
        .clone();
    let detail = lag["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("400 s")
            && detail.contains(&format!(
                "AWS/RDS ReplicaLag DBInstanceIdentifier={}",
                w.scene.replica
            )),
        "{lag}"
    );
    assert_eq!(lag["ok"], false);
    // WHEN the region goes down (the quorum began 120 s ago)
    let r = w.outage().await;
    // THEN the guard judged the lag before the outage: promoted, and the record says so
    assert_eq!(r["execution"]["outcome"], "succeeded", "{r}");
    assert_eq!(w.mutations(), once_each());
    let id = r["execution"]["id"].as_str().unwrap();
    let exec: failover::engine::Execution = w
        .function
        .toolkit
        .store
        .get(&failover::engine::Execution::key(id))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(exec.lag_seconds, Some(2.0), "{exec:#?}");
    assert_eq!(exec.lag_sample_value, Some(2.0));
    let began = exec.lag_reference_ms.unwrap();
    assert_eq!(began, w.clock.now_ms() - 120_000);
    assert!(exec.lag_sample_ms.unwrap() + 60_000 <= began, "{exec:#?}");
}

/// Failback's replica of an encrypted database: RDS (moto, made as strict) refuses it without a
/// key of the replica's region, and the adapter passes the plan's key, subnet group and security
/// groups, read back through RDS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_cross_region_replica_needs_a_key_and_is_created_with_the_plans_placement() {
    use breakwater::ports::{ReplicaPlacement, Replicas};
    use breakwater_sandbox::seed::regional;
    // GIVEN an encrypted instance in the secondary region (the writer after a failover), and
    // in the primary region a VPC with two subnets, a DB subnet group and a security group
    let direct = Aws::for_endpoint(&moto().endpoint(), SECONDARY).await;
    let id = unique("enc");
    let west = aws_sdk_rds::Client::new(&regional(direct.config(), SECONDARY));
    let source = west
        .create_db_instance()
        .db_instance_identifier(&id)
        .db_instance_class("db.t3.micro")
        .engine("mysql")
        .allocated_storage(20)
        .master_username("admin")
        .master_user_password("password123")
        .storage_encrypted(true)
        .send()
        .await
        .unwrap();
    let source_arn = source
        .db_instance()
        .and_then(|d| d.db_instance_arn())
        .unwrap()
        .to_string();
    let ec2 = aws_sdk_ec2::Client::new(&regional(direct.config(), PRIMARY));
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.20.0.0/16")
        .send()
        .await
        .unwrap()
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap()
        .to_string();
    let mut subnets = Vec::new();
    for (cidr, az) in [
        ("10.20.1.0/24", "us-east-1a"),
        ("10.20.2.0/24", "us-east-1b"),
    ] {
        let subnet = ec2
            .create_subnet()
            .vpc_id(&vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .unwrap();
        subnets.push(
            subnet
                .subnet()
                .and_then(|s| s.subnet_id())
                .unwrap()
                .to_string(),
        );
    }
    let group = ec2
        .create_security_group()
        .group_name(unique("db"))
        .description("database")
        .vpc_id(&vpc)
        .send()
        .await
        .unwrap()
        .group_id()
        .unwrap()
        .to_string();
    let east = aws_sdk_rds::Client::new(&regional(direct.config(), PRIMARY));
    let subnet_group = unique("dbs");
    east.create_db_subnet_group()
        .db_subnet_group_name(&subnet_group)
        .db_subnet_group_description("failback replica")
        .set_subnet_ids(Some(subnets))
        .send()
        .await
        .unwrap();
    let adapter = RdsDatabases::new(direct.rds_in(PRIMARY));
    // WHEN the adapter creates a replica of it in the primary region without a key
    let err = adapter
        .create_replica(
            &id,
            &source_arn,
            &ReplicaPlacement::default(),
            BTreeMap::new(),
        )
        .await
        .unwrap_err();
    // THEN RDS refuses it, and nothing is created
    assert!(
        err.to_string().contains("InvalidParameterCombination")
            && err.to_string().contains("from encrypted source"),
        "{err}"
    );
    assert_eq!(adapter.instance(&id).await.unwrap(), None);
    // WHEN it does so with the plan's key, subnet group and security group
    let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let placement = ReplicaPlacement {
        kms_key_id: Some(key.into()),
        subnet_group: Some(subnet_group.clone()),
        security_groups: vec![group.clone()],
    };
    adapter
        .create_replica(&id, &source_arn, &placement, BTreeMap::new())
        .await
        .unwrap();
    // THEN RDS holds an encrypted replica of the source, with that key, in that subnet group,
    // with that security group
    let read = east
        .describe_db_instances()
        .db_instance_identifier(&id)
        .send()
        .await
        .unwrap();
    let db = &read.db_instances()[0];
    assert_eq!(db.kms_key_id(), Some(key));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(subnet_group.as_str())
    );
    let groups: Vec<&str> = db
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups, [group.as_str()]);
    assert_eq!(
        db.read_replica_source_db_instance_identifier(),
        Some(source_arn.as_str())
    );
    // AND the port reads it as encrypted, with its key
    let status = adapter.instance(&id).await.unwrap().unwrap();
    assert!(status.encrypted);
    assert_eq!(status.kms_key_id.as_deref(), Some(key));
}

/// RDS (moto) describes a global database with its engine and version, which decide the lag
/// metric the RPO guard reads; the adapter carries both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_databases_engine_version_is_read_from_rds_and_picks_the_lag_metric() {
    use breakwater::ports::Replicas;
    // GIVEN an Aurora MySQL 3.03 global database
    let direct = Aws::for_endpoint(&moto().endpoint(), SECONDARY).await;
    let id = unique("glob");
    aws_sdk_rds::Client::new(&breakwater_sandbox::seed::regional(
        direct.config(),
        SECONDARY,
    ))
    .create_global_cluster()
    .global_cluster_identifier(&id)
    .engine("aurora-mysql")
    .engine_version("8.0.mysql_aurora.3.03.1")
    .send()
    .await
    .unwrap();
    // WHEN the adapter reads it
    let global = RdsDatabases::new(direct.rds_in(SECONDARY))
        .global_cluster(&id)
        .await
        .unwrap()
        .unwrap();
    // THEN its engine and version are there, and they call for the replication lag
    assert_eq!(global.engine.as_deref(), Some("aurora-mysql"));
    assert_eq!(
        global.engine_version.as_deref(),
        Some("8.0.mysql_aurora.3.03.1")
    );
    assert!(!failover::engine::publishes_rpo_lag(
        global.engine.as_deref().unwrap_or_default(),
        global.engine_version.as_deref().unwrap_or_default()
    ));
}

/// #20: the `breakwater` command's preflight (`"dry_run": true`) checks what the command would
/// meet, an execution of another kind running included, and changes nothing; a `dry_run` that
/// is not a boolean is bad input; and a pause still answers "paused" then (a success: Lambda
/// does not retry it into the failure queue, from where a re-delivery would act after resume).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preflight_is_refused_while_another_execution_runs_and_a_pause_still_answers() {
    use failover::engine::Execution;
    let w = world().await;
    let r = w.outage().await;
    let id = r["execution"]["id"].as_str().unwrap().to_string();
    // The failover, as if it were still running.
    let store = &w.function.toolkit.store;
    let mut exec = store
        .get::<Execution>(&Execution::key(&id))
        .await
        .unwrap()
        .unwrap()
        .value;
    exec.outcome = "running".into();
    exec.finished_ms = None;
    store.put(&Execution::key(&id), &exec).await.unwrap();
    store
        .update::<failover::PlanState, _>(&failover::plan_key(&w.scene.name), |s| {
            s.active = Some(id.clone());
            true
        })
        .await
        .unwrap();
    let before = w.mutations();
    let preflight =
        json!({"command": "switchover", "confirm": w.scene.name, "by": "alice", "dry_run": true});
    let err = w.handle(preflight.clone()).await.unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "execution {id} (failover) is running; switchover was not started"
        )),
        "{err}"
    );
    let mut malformed = preflight.clone();
    malformed["dry_run"] = json!("yes");
    let err = w.handle(malformed).await.unwrap_err();
    assert!(
        err.to_string().contains("dry_run: expected true or false"),
        "{err}"
    );
    // Paused, the same command (no preflight) is answered, not failed.
    let toolkit = &w.function.toolkit;
    toolkit.store.pause("failover", &freeze()).await.unwrap();
    let mut command = preflight;
    command.as_object_mut().unwrap().remove("dry_run");
    let paused = w.handle_deployed(command).await.unwrap();
    assert_eq!(paused["outcome"], "paused", "{paused}");
    assert_eq!(w.mutations(), before);
}

/// `breakwater pause failover --reason "change freeze"` by alice.
fn freeze() -> breakwater::control::Pause {
    breakwater::control::Pause {
        by: "alice".into(),
        since: "2026-12-01T10:00:00.000Z".into(),
        reason: "change freeze".into(),
    }
}

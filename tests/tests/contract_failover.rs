//! Contract tests of the fakes of the ports failover uses: one scenario per port, written once
//! over the port trait, run against the fake and against the real adapter on moto, with the
//! same observable results asserted.

use std::collections::BTreeMap;
use std::time::Duration;

use breakwater::aws::arc::ArcRoutingControls;
use breakwater::aws::cloudwatch::{CloudWatchAlarms, CloudWatchMetrics, CloudWatchSwitches};
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::rds::RdsDatabases;
use breakwater::aws::route53::Route53Dns;
use breakwater::aws::Aws;
use breakwater::fakes::alarms::FakeAlarms;
use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::metric_switches::FakeMetricSwitches;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::{Endpoint, FakeProbe};
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::fakes::routing_controls::FakeRoutingControls;
use breakwater::ports::{
    Alarms, ClusterEndpoint, Dns, DnsRecord, MetricReader, MetricSwitches, NodeGroupId, NodeGroups,
    Replicas, RoutingControls, Scaling, SwitchMetric,
};
use breakwater::probe::{HttpProbe, Probe};
use breakwater_sandbox::failover_scene::{
    failover_scene, metric_switches, put_lag, FailoverScene, Latencies, MetricSwitchScene,
};
use breakwater_sandbox::seed::seed;

use crate::common::unique;

crate::common::moto_server!();

const PRIMARY: &str = "us-east-1";
const SECONDARY: &str = "us-west-2";

async fn scene() -> (Aws, FailoverScene) {
    let suffix = format!("-{}", unique("cf"));
    let direct = Aws::for_endpoint(&moto().endpoint(), SECONDARY).await;
    let estate = seed(direct.config(), PRIMARY, SECONDARY, &suffix)
        .await
        .unwrap();
    let scene = failover_scene(
        direct.config(),
        &estate,
        &suffix,
        Latencies::default(),
        "http://127.0.0.1:9/health",
    )
    .await
    .unwrap();
    (direct, scene)
}

/// Reads a replica and a missing instance, promotes the replica, reads it back.
async fn replicas_scenario(r: &impl Replicas, replica: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let before = r.instance(replica).await.unwrap().unwrap();
    seen.push(format!(
        "before: {} replica={}",
        before.status,
        before.source.is_some()
    ));
    seen.push(format!(
        "missing: {:?}",
        r.instance("nobody-here").await.unwrap()
    ));
    seen.push(format!(
        "missing global: {:?}",
        r.global_cluster("nobody-here").await.unwrap()
    ));
    r.promote(replica).await.unwrap();
    let after = r.instance(replica).await.unwrap().unwrap();
    seen.push(format!("after: replica={}", after.source.is_some()));
    seen
}

#[tokio::test]
async fn the_replicas_fake_behaves_as_rds_on_moto() {
    let (aws, scene) = scene().await;
    let real = RdsDatabases::new(aws.rds_in(SECONDARY));
    let fake = FakeReplicas::new().with_instance(&scene.replica, Some(&scene.primary_db));
    assert_eq!(
        replicas_scenario(&fake, &scene.replica).await,
        replicas_scenario(&real, &scene.replica).await
    );
}

/// Reads a record, upserts it and follows the change.
async fn dns_scenario(d: &impl Dns, zone: &str, record: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let now = d.record(zone, record, "CNAME").await.unwrap().unwrap();
    seen.push(format!("{} {} {}", now.name, now.kind, now.ttl));
    let moved = DnsRecord {
        value: "west.example.com".into(),
        ..now
    };
    let change = d.upsert(zone, &[moved], "contract").await.unwrap();
    let id = change.started.expect("a change id");
    let status = d.change_status(&id).await.unwrap();
    seen.push(format!(
        "change {}",
        matches!(status.as_str(), "PENDING" | "INSYNC")
    ));
    let after = d.record(zone, record, "CNAME").await.unwrap().unwrap();
    seen.push(after.value);
    seen
}

#[tokio::test]
async fn the_dns_fake_behaves_as_route53_on_moto() {
    let (aws, scene) = scene().await;
    let real = Route53Dns::new(aws.route53());
    let record = real
        .record(&scene.zone_id, &scene.record, "CNAME")
        .await
        .unwrap()
        .unwrap();
    let fake = FakeDns::new().with_zone(&scene.zone_id, &[record]);
    assert_eq!(
        dns_scenario(&fake, &scene.zone_id, &scene.record).await,
        dns_scenario(&real, &scene.zone_id, &scene.record).await
    );
}

/// Reads both controls and a missing one, tries the primary Off alone (the rule "at least one
/// On" refuses it), switches both in one request, reads back.
async fn routing_controls_scenario(
    c: &impl RoutingControls,
    cluster: &[ClusterEndpoint],
    primary: &str,
    secondary: &str,
) -> Vec<String> {
    let both = [primary.to_string(), secondary.to_string()];
    let mut seen = vec![format!("{:?}", c.states(cluster, &both).await.unwrap())];
    let missing = format!(
        "{}/doesnotexist0000",
        &primary[..primary.rfind('/').unwrap()]
    );
    seen.push(kind(c.states(cluster, &[missing]).await.map(drop)));
    seen.push(kind(
        c.set(cluster, &[(primary.to_string(), false)])
            .await
            .map(drop),
    ));
    seen.push(format!("{:?}", c.states(cluster, &both).await.unwrap()));
    let changed = c
        .set(
            cluster,
            &[(secondary.to_string(), true), (primary.to_string(), false)],
        )
        .await
        .unwrap();
    seen.push(format!("request id {}", changed.request_id.is_some()));
    seen.push(format!("{:?}", c.states(cluster, &both).await.unwrap()));
    seen
}

fn kind(r: breakwater::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => e.error_type().into(),
    }
}

#[tokio::test]
async fn the_routing_controls_fake_behaves_as_the_arc_cluster_emulator() {
    let (aws, scene) = scene().await;
    let cluster: Vec<ClusterEndpoint> = scene
        .arc
        .endpoints()
        .into_iter()
        .map(|(endpoint, region)| ClusterEndpoint { endpoint, region })
        .collect();
    let real = ArcRoutingControls::new(aws.config());
    let fake = FakeRoutingControls::new()
        .with_control(&scene.rc_primary, true)
        .with_control(&scene.rc_secondary, false)
        .with_assertion_rule(
            "one-region-on",
            &[&scene.rc_primary, &scene.rc_secondary],
            1,
        );
    assert_eq!(
        routing_controls_scenario(&fake, &cluster, &scene.rc_primary, &scene.rc_secondary).await,
        routing_controls_scenario(&real, &cluster, &scene.rc_primary, &scene.rc_secondary).await
    );
}

#[tokio::test]
async fn the_routing_controls_adapter_moves_on_from_endpoints_that_do_not_answer() {
    // GIVEN a cluster with three of its five endpoints down (ARC promises three up; this is
    // worse) and one answering EndpointTemporarilyUnavailable
    let (aws, scene) = scene().await;
    let cluster: Vec<ClusterEndpoint> = scene
        .arc
        .endpoints()
        .into_iter()
        .map(|(endpoint, region)| ClusterEndpoint { endpoint, region })
        .collect();
    for region in ["us-east-1", "us-west-2", "eu-west-1"] {
        scene.arc.set_down(region, true);
    }
    scene
        .arc
        .inject(
            "ap-northeast-1",
            breakwater_sandbox::arc::ArcFault::EndpointTemporarilyUnavailable,
            None,
        )
        .await
        .unwrap();
    let real = ArcRoutingControls::new(aws.config());
    // WHEN the adapter switches the controls, several times (each from a random endpoint)
    for on_secondary in [true, false, true] {
        real.set(
            &cluster,
            &[
                (scene.rc_secondary.clone(), on_secondary),
                (scene.rc_primary.clone(), !on_secondary),
            ],
        )
        .await
        .unwrap();
        // THEN each time the one endpoint left answered, and the state reads back
        let read = real
            .states(
                &cluster,
                &[scene.rc_primary.clone(), scene.rc_secondary.clone()],
            )
            .await
            .unwrap();
        assert_eq!(read, [!on_secondary, on_secondary]);
    }
    assert!(scene.arc.requests("ap-southeast-2") >= 6);
    // AND with every endpoint down, the error says so and is retryable
    scene.arc.set_down("ap-southeast-2", true);
    let err = real
        .states(&cluster, std::slice::from_ref(&scene.rc_primary))
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(
        err.to_string()
            .contains("no endpoint of the ARC cluster answered"),
        "{err}"
    );
}

/// Lists, describes (and a missing group), scales with a token, tags, reads back.
async fn node_groups_scenario(n: &impl NodeGroups, id: &NodeGroupId) -> Vec<String> {
    let mut seen = Vec::new();
    let names: Vec<String> = n
        .list(&id.cluster)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.id.name)
        .collect();
    seen.push(format!("{names:?}"));
    let group = n.describe(id).await.unwrap().unwrap();
    seen.push(format!("{} {}", group.scaling, group.status));
    let missing = NodeGroupId {
        cluster: id.cluster.clone(),
        name: "nobody-here".into(),
    };
    seen.push(format!("{:?}", n.describe(&missing).await.unwrap()));
    let scaling = Scaling {
        min: 2,
        max: 4,
        desired: 3,
    };
    let update = n
        .update_scaling(id, scaling, "contract-token")
        .await
        .unwrap();
    seen.push(format!("update id: {}", !update.is_empty()));
    n.tag(
        &group.arn,
        BTreeMap::from([("team".to_string(), "dr".to_string())]),
    )
    .await
    .unwrap();
    let after = n.describe(id).await.unwrap().unwrap();
    seen.push(format!(
        "{} team={:?}",
        after.scaling,
        after.tags.get("team")
    ));
    seen
}

#[tokio::test]
async fn the_node_groups_fake_behaves_as_eks_on_moto() {
    let (aws, scene) = scene().await;
    let real = EksNodeGroups::new(aws.eks_in(SECONDARY));
    let id = NodeGroupId {
        cluster: scene.cluster.clone(),
        name: scene.node_group.clone(),
    };
    let fake = FakeNodeGroups::new();
    fake.insert(real.describe(&id).await.unwrap().unwrap());
    assert_eq!(
        node_groups_scenario(&fake, &id).await,
        node_groups_scenario(&real, &id).await
    );
}

/// The latest lag of a replica, and of one nobody publishes.
async fn metrics_scenario(m: &impl MetricReader, replica: &str, now_ms: u64) -> Vec<String> {
    let lag = m
        .latest(
            "AWS/RDS",
            "ReplicaLag",
            &[("DBInstanceIdentifier", replica)],
            now_ms,
            300_000,
        )
        .await
        .unwrap();
    let none = m
        .latest(
            "AWS/RDS",
            "ReplicaLag",
            &[("DBInstanceIdentifier", "nobody-here")],
            now_ms,
            300_000,
        )
        .await
        .unwrap();
    vec![format!("{:?}", lag.map(|(v, _)| v)), format!("{none:?}")]
}

#[tokio::test]
async fn the_metric_reader_fake_behaves_as_cloudwatch_on_moto() {
    let (aws, scene) = scene().await;
    let now = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock);
    put_lag(aws.config(), SECONDARY, &scene.replica, 7.0, now - 30_000)
        .await
        .unwrap();
    let real = CloudWatchMetrics::new(aws.cloudwatch_in(SECONDARY));
    let fake = FakeMetricReader::new();
    fake.put(
        "AWS/RDS",
        "ReplicaLag",
        &[("DBInstanceIdentifier", &scene.replica)],
        7.0,
        now - 30_000,
    );
    assert_eq!(
        metrics_scenario(&fake, &scene.replica, now).await,
        metrics_scenario(&real, &scene.replica, now).await
    );
}

/// A missing alarm reads as absent.
async fn alarms_scenario(a: &impl Alarms) -> Vec<String> {
    vec![format!("{:?}", a.state("nobody-here").await.unwrap())]
}

#[tokio::test]
async fn the_alarms_fake_behaves_as_cloudwatch_on_moto() {
    let (aws, _) = scene().await;
    let real = CloudWatchAlarms::new(aws.cloudwatch_in(PRIMARY));
    assert_eq!(
        alarms_scenario(&FakeAlarms::new()).await,
        alarms_scenario(&real).await
    );
}

/// A dead endpoint is down; a live one answers.
async fn probe_scenario(p: &impl Probe, live: &str, dead: &str) -> Vec<String> {
    let t = Duration::from_secs(2);
    vec![
        format!("live ok: {}", p.get(live, t).await.is_ok()),
        format!("dead ok: {}", p.get(dead, t).await.is_ok()),
    ]
}

#[tokio::test]
async fn the_probe_fake_behaves_as_the_http_probe() {
    let live = format!("{}/moto-api/", moto().endpoint());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!(
        "http://127.0.0.1:{}/health",
        listener.local_addr().unwrap().port()
    );
    drop(listener);
    let fake = FakeProbe::new();
    fake.set(&live, Endpoint::Status(200));
    fake.set(&dead, Endpoint::Refused("connection refused".into()));
    assert_eq!(
        probe_scenario(&fake, &live, &dead).await,
        probe_scenario(&HttpProbe, &live, &dead).await
    );
}

/// The metric switches: the starting states, a side switched off and the other on, a value
/// written twice in one period (one `Maximum` for the period: the 1 wins, the alarm stays OK —
/// "Period: the length of time to use to evaluate the metric … to create each individual data
/// point", CloudWatch User Guide, "Evaluating an alarm",
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/AlarmThatSendsEmail.html>), a
/// missing alarm, and a metric no alarm watches.
async fn metric_switches_scenario(m: &impl MetricSwitches, ms: &MetricSwitchScene) -> Vec<String> {
    let metric = |value: &str| SwitchMetric {
        namespace: ms.namespace.clone(),
        metric: ms.metric.clone(),
        dimension: (ms.dimension.clone(), value.to_string()),
    };
    let (east, west) = (&ms.primary, &ms.secondary);
    let states = |label: &'static str| async move {
        let e = m.alarm(&east.0).await.unwrap().map(|a| a.value);
        let w = m.alarm(&west.0).await.unwrap().map(|a| a.value);
        format!("{label}: {e:?} {w:?}")
    };
    let mut seen = vec![states("before").await];
    m.put(&metric(&east.1), 0.0).await.unwrap();
    seen.push(states("primary 0").await);
    m.put(&metric(&west.1), 1.0).await.unwrap();
    seen.push(states("secondary 1").await);
    m.put(&metric(&east.1), 1.0).await.unwrap();
    m.put(&metric(&east.1), 0.0).await.unwrap();
    seen.push(states("primary 1 then 0 in one period").await);
    seen.push(format!(
        "missing: {:?}",
        m.alarm(&format!("{}-nope", east.0)).await.unwrap()
    ));
    seen.push(format!(
        "unwatched: {:?}",
        m.put(&metric("nowhere"), 1.0).await.map(drop)
    ));
    seen
}

/// Waits until at least 10 s are left in the current minute, so that the scenario's writes fall
/// in one period on both sides.
async fn early_in_a_minute() {
    let into = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock) % 60_000;
    if into > 50_000 {
        tokio::time::sleep(Duration::from_millis(60_000 - into + 200)).await;
    }
}

#[tokio::test]
async fn the_metric_switches_fake_behaves_as_cloudwatch_in_the_sandbox() {
    let suffix = format!("-{}", unique("cms"));
    let aws = Aws::for_endpoint(&moto().endpoint(), SECONDARY).await;
    let estate = seed(aws.config(), PRIMARY, SECONDARY, &suffix)
        .await
        .unwrap();
    let ms = metric_switches(aws.config(), &estate, &suffix)
        .await
        .unwrap();
    let real = CloudWatchSwitches::new(aws.cloudwatch_in(SECONDARY));
    let side = |value: &str| SwitchMetric {
        namespace: ms.namespace.clone(),
        metric: ms.metric.clone(),
        dimension: (ms.dimension.clone(), value.to_string()),
    };
    let fake = FakeMetricSwitches::new()
        .with_alarm(&ms.primary.0, side(&ms.primary.1), "OK")
        .with_alarm(&ms.secondary.0, side(&ms.secondary.1), "ALARM");
    early_in_a_minute().await;
    let on_fake = metric_switches_scenario(&fake, &ms).await;
    early_in_a_minute().await;
    let on_cloudwatch = metric_switches_scenario(&real, &ms).await;
    assert_eq!(on_fake, on_cloudwatch);
    assert_eq!(
        on_fake[..4],
        [
            "before: Some(\"OK\") Some(\"ALARM\")",
            "primary 0: Some(\"ALARM\") Some(\"ALARM\")",
            "secondary 1: Some(\"ALARM\") Some(\"OK\")",
            "primary 1 then 0 in one period: Some(\"OK\") Some(\"OK\")",
        ]
    );
}

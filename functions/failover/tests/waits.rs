//! The waiting logic under paused time: AWS answers from the in-memory fakes of the ports
//! (`breakwater::fakes`: a promotion that takes N reads, a node group UPDATING for N reads, a
//! Route 53 change PENDING for N polls, throttles and busy refusals scheduled on given calls),
//! the state store over an in-memory S3, and a clock that follows tokio's — so "minutes" of
//! promotion pass in milliseconds, deterministically.

use std::time::Duration;

use breakwater::fakes::calls::{busy, throttled};
use breakwater::fakes::capacity::FakeCapacity;
use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::metric_switches::FakeMetricSwitches;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::FakeProbe;
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::fakes::routing_controls::FakeRoutingControls;
use breakwater::ports::{DnsRecord, Scaling};

use failover::engine::{Execution, Mode, Ports, StepName, StepState};
use failover::plan::load;

mod common;
use common::{controls, engine, lag, plan_with_records, ready_cluster, toolkit};

type FakePorts = Ports<
    FakeReplicas,
    FakeNodeGroups,
    FakeDns,
    FakeMetricReader,
    FakeRoutingControls,
    FakeMetricSwitches,
    FakeCapacity,
    FakeProbe,
>;

/// A failover whose promotion takes `promotion_polls` observations, whose node group refuses
/// two updates (another in progress) and whose Route 53 change stays PENDING `pending` times,
/// with a throttled read of the replica in between.
fn scripted(promotion_polls: usize, pending: usize) -> FakePorts {
    let replicas = FakeReplicas::new()
        .with_instance("orders-replica", Some("orders"))
        .changes_take(promotion_polls);
    replicas.calls.fail_call(
        "instance",
        2,
        throttled("describe DB instance orders-replica"),
    );
    let nodes = FakeNodeGroups::new()
        .with_group(
            "standby",
            "web",
            Scaling {
                min: 0,
                max: 4,
                desired: 0,
            },
        )
        .updates_take(10);
    for n in [1, 2] {
        nodes.calls.fail_call(
            "update_scaling",
            n,
            busy("scale node group standby/web", "ResourceInUseException"),
        );
    }
    let dns = FakeDns::new()
        .with_zone(
            "Z1",
            &[DnsRecord {
                name: "api.example.com".into(),
                kind: "CNAME".into(),
                ttl: 60,
                value: "east.example.com".into(),
            }],
        )
        .changes_pending_for(pending);
    // A throttled read first: the record is read again, not skipped as if in place.
    dns.calls
        .fail_call("record", 1, throttled("read record api.example.com"));
    dns.calls.fail_call(
        "upsert",
        1,
        busy("upsert records of zone Z1", "PriorRequestNotComplete"),
    );
    Ports {
        secondary_db: replicas,
        primary_db: FakeReplicas::new(),
        nodes,
        dns,
        switches: FakeRoutingControls::new(),
        metric_switches: FakeMetricSwitches::new(),
        metrics: lag(2.0),
        primary_metrics: lag(2.0),
        capacity: ready_cluster(),
        probe: FakeProbe::new(),
    }
}

#[tokio::test(start_paused = true)]
async fn minutes_of_promotion_busy_node_groups_throttling_and_a_pending_change() {
    let toolkit = toolkit().await;
    let plan = plan_with_records();
    // 36 observations 5 s apart: a promotion of three minutes.
    let ports = scripted(36, 12);
    let engine = engine(&toolkit, &ports, &plan, 600, "test");
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "test".into(), now, now, "test");
    let started = tokio::time::Instant::now();
    let exec = engine.reconcile(exec).await.unwrap();
    let took = started.elapsed();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    // Promotion ≈ 3 min (one throttled read in it), nodes in parallel, then DNS ≈ 1 min.
    assert!(
        took >= Duration::from_secs(180 + 60) && took <= Duration::from_secs(180 + 60 + 30),
        "{took:?}"
    );
    let (db, nodes, dns) = (
        &ports.secondary_db.calls,
        &ports.nodes.calls,
        &ports.dns.calls,
    );
    assert_eq!(db.count("promote"), 1, "one PromoteReadReplica");
    assert_eq!(
        nodes.count("update_scaling"),
        3,
        "two ResourceInUse, then the update"
    );
    assert_eq!(
        dns.count("upsert"),
        2,
        "PriorRequestNotComplete, then the UPSERT"
    );
    assert_eq!(dns.count("change_status"), 13, "12 × PENDING, then INSYNC");
    assert_eq!(
        ports.switches.calls.all(),
        Vec::<String>::new(),
        "no routing controls in a records plan"
    );
    assert!(db.count("instance") >= 38);
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_budget_checkpoints_and_the_next_invocation_finishes() {
    let toolkit = toolkit().await;
    let plan = plan_with_records();
    // Route 53 stays PENDING for 40 polls (200 s); the invocation may wait only 100 s in all.
    let ports = scripted(2, 40);
    let first = engine(&toolkit, &ports, &plan, 100, "first");
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "test".into(), now, now, "test");
    let exec = first.reconcile(exec).await.unwrap();
    assert_eq!(exec.outcome, "running");
    assert_eq!(
        exec.state(failover::engine::StepName::Traffic),
        StepState::Running
    );
    assert_eq!(exec.change_id.as_deref(), Some("/change/C1"));
    // The record was checkpointed: the next invocation starts from the stored one.
    let stored: Execution = toolkit
        .store
        .get(&Execution::key(&exec.id))
        .await
        .unwrap()
        .unwrap()
        .value;
    assert_eq!(stored, exec);
    let next = engine(&toolkit, &ports, &plan, 600, "second");
    let exec = next.reconcile(stored).await.unwrap();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        ports.dns.calls.count("upsert"),
        2,
        "no second UPSERT after the resume"
    );
    assert_eq!(ports.secondary_db.calls.count("promote"), 1);
}

/// The global database's RPO lag, 0.5 ms whenever it is read.
fn rpo_lag() -> FakeMetricReader {
    FakeMetricReader::new().steady(
        "AWS/RDS",
        "AuroraGlobalDBRPOLag",
        &[("DBClusterIdentifier", "orders-west")],
        0.5,
    )
}

/// Aurora: a failover is `FailoverGlobalCluster` with `AllowDataLoss=true` (never the planned
/// form, which fails in a real outage), a switchover is `SwitchoverGlobalCluster`; both followed
/// until the target is the writer and no failover state remains.
#[tokio::test(start_paused = true)]
async fn aurora_failover_allows_data_loss_and_switchover_does_not() {
    const EAST: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east";
    const WEST: &str = "arn:aws:rds:us-west-2:123456789012:cluster:orders-west";
    for mode in [Mode::Failover, Mode::Switchover] {
        let toolkit = toolkit().await;
        let doc = serde_json::json!({
            "name": "aurora", "primary_region": "us-east-1", "secondary_region": "us-west-2",
            "database": {"engine": "aurora-global", "global_cluster": "orders-global",
                         "target_cluster_arn": WEST, "primary_cluster_arn": EAST},
            "traffic": {"routing_controls": {
                "cluster_endpoints": [{"endpoint": "https://host-bbbbbb.us-west-2.example.aws/v1", "region": "us-west-2"}],
                "primary": common::EAST, "secondary": common::WEST}},
            "targets": {"rto_seconds": 900, "rpo_seconds": 60},
            "detection": {"quorum": 1, "window_seconds": 60, "cooldown_seconds": 3600,
                          "signals": [{"name": "5xx", "kind": "alarm", "alarm": "east-5xx"}]}
        });
        let plan = load(doc.to_string().as_bytes()).unwrap();
        // Two minutes of failing over (24 observations 5 s apart), then the target writes.
        let ports = Ports {
            secondary_db: FakeReplicas::new()
                .with_global("orders-global", EAST)
                .changes_take(24),
            primary_db: FakeReplicas::new(),
            nodes: FakeNodeGroups::new(),
            dns: FakeDns::new(),
            switches: controls(true, false),
            metric_switches: FakeMetricSwitches::new(),
            metrics: rpo_lag(),
            primary_metrics: rpo_lag(),
            capacity: ready_cluster(),
            probe: FakeProbe::new(),
        };
        let engine = engine(&toolkit, &ports, &plan, 600, "test");
        let now = toolkit.store.clock().now_ms();
        let started = tokio::time::Instant::now();
        let exec = engine
            .reconcile(Execution::new(&plan, mode, "test".into(), now, now, "test"))
            .await
            .unwrap();
        assert_eq!(exec.outcome, "succeeded", "{mode:?}: {exec:#?}");
        // Two minutes of failing over, observed every 5 s.
        assert!(
            started.elapsed() >= Duration::from_secs(120),
            "{:?}",
            started.elapsed()
        );
        let rds = &ports.secondary_db.calls;
        let (f, s) = (
            rds.count("failover_global_cluster"),
            rds.count("switchover_global_cluster"),
        );
        match mode {
            Mode::Failover => assert_eq!((f, s), (1, 0)),
            _ => assert_eq!((f, s), (0, 1)),
        }
        assert_eq!(
            (
                ports.switches.peek(common::EAST),
                ports.switches.peek(common::WEST)
            ),
            (Some(false), Some(true)),
            "traffic on the secondary"
        );
        assert_eq!(
            ports
                .secondary_db
                .peek_global("orders-global")
                .unwrap()
                .writer
                .as_deref(),
            Some(WEST)
        );
    }
}

/// An Aurora drill cannot lose data: it is a planned switchover (never `FailoverGlobalCluster`),
/// and the clean-up switches the writer back to the primary cluster and reads it back.
#[tokio::test(start_paused = true)]
async fn an_aurora_drill_is_a_switchover_and_the_clean_up_moves_the_writer_back() {
    const EAST: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east";
    // GIVEN an Aurora global database written in the primary region; each move takes 1 minute
    let toolkit = toolkit().await;
    let plan = aurora_plan();
    let ports = Ports {
        secondary_db: FakeReplicas::new()
            .with_global("orders-global", EAST)
            .changes_take(12),
        primary_db: FakeReplicas::new(),
        nodes: FakeNodeGroups::new(),
        dns: FakeDns::new(),
        switches: controls(true, false),
        metric_switches: FakeMetricSwitches::new(),
        metrics: rpo_lag(),
        primary_metrics: rpo_lag(),
        capacity: ready_cluster(),
        probe: FakeProbe::new(),
    };
    let now = toolkit.store.clock().now_ms();
    // WHEN a drill runs
    let exec = engine(&toolkit, &ports, &plan, 900, "test")
        .reconcile(Execution::new(
            &plan,
            Mode::Drill,
            "test".into(),
            now,
            now,
            "test",
        ))
        .await
        .unwrap();
    // THEN two switchovers (there and back), no failover, and the writer is back on the primary
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let rds = &ports.secondary_db.calls;
    assert_eq!(rds.count("failover_global_cluster"), 0);
    assert_eq!(rds.count("switchover_global_cluster"), 2);
    let global = ports.secondary_db.peek_global("orders-global").unwrap();
    assert_eq!(
        (global.writer.as_deref(), global.failover_state),
        (Some(EAST), None)
    );
    let cleanup = &exec.steps[&failover::engine::StepName::Cleanup];
    assert!(
        cleanup.detail.contains(&format!("writer back on {EAST}")),
        "{cleanup:?}"
    );
    // AND traffic is back on the primary
    assert_eq!(
        (
            ports.switches.peek(common::EAST),
            ports.switches.peek(common::WEST)
        ),
        (Some(true), Some(false))
    );
}

/// An Aurora global database's plan (RPO 60 s).
fn aurora_plan() -> failover::plan::LoadedPlan {
    let doc = serde_json::json!({
        "name": "aurora", "primary_region": "us-east-1", "secondary_region": "us-west-2",
        "database": {"engine": "aurora-global", "global_cluster": "orders-global",
                     "target_cluster_arn": "arn:aws:rds:us-west-2:123456789012:cluster:orders-west",
                     "primary_cluster_arn": "arn:aws:rds:us-east-1:123456789012:cluster:orders-east"},
        "traffic": {"routing_controls": {
            "cluster_endpoints": [{"endpoint": "https://host-bbbbbb.us-west-2.example.aws/v1", "region": "us-west-2"}],
            "primary": common::EAST, "secondary": common::WEST}},
        "targets": {"rto_seconds": 900, "rpo_seconds": 60},
        "detection": {"quorum": 1, "window_seconds": 60, "cooldown_seconds": 3600,
                      "signals": [{"name": "5xx", "kind": "alarm", "alarm": "east-5xx"}]}
    });
    load(doc.to_string().as_bytes()).unwrap()
}

/// Aurora MySQL below 3.04 publishes no `AuroraGlobalDBRPOLag`: the guard reads
/// `AuroraGlobalDBReplicationLag`, in milliseconds, as seconds; from 3.04 it reads the RPO lag.
#[tokio::test(start_paused = true)]
async fn aurora_mysql_3_03_falls_back_to_the_replication_lag_in_milliseconds() {
    const EAST: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east";
    for (version, promoted) in [
        ("8.0.mysql_aurora.3.03.1", true),
        // 3.04 publishes the RPO lag, which has no sample here: unknown, refused.
        ("8.0.mysql_aurora.3.04.0", false),
    ] {
        // GIVEN an Aurora MySQL global database at `version`, whose secondary's replication lag
        // was 1,500 ms (1.5 s, RPO 60 s) before the outage; no AuroraGlobalDBRPOLag published
        let toolkit = toolkit().await;
        let plan = aurora_plan();
        let now = toolkit.store.clock().now_ms();
        let metrics = FakeMetricReader::new();
        metrics.put(
            "AWS/RDS",
            "AuroraGlobalDBReplicationLag",
            &[("DBClusterIdentifier", "orders-west")],
            1_500.0,
            now - 150_000,
        );
        let ports = Ports {
            secondary_db: FakeReplicas::new()
                .with_global("orders-global", EAST)
                .with_engine("orders-global", "aurora-mysql", version),
            primary_db: FakeReplicas::new(),
            nodes: FakeNodeGroups::new(),
            dns: FakeDns::new(),
            switches: controls(true, false),
            metric_switches: FakeMetricSwitches::new(),
            metrics,
            primary_metrics: FakeMetricReader::new(),
            capacity: ready_cluster(),
            probe: FakeProbe::new(),
        };
        // WHEN a failover whose quorum began 100 s ago runs
        let exec = engine(&toolkit, &ports, &plan, 600, "test")
            .reconcile(Execution::new(
                &plan,
                Mode::Failover,
                "test".into(),
                now - 100_000,
                now,
                "test",
            ))
            .await
            .unwrap();
        let failovers = ports.secondary_db.calls.count("failover_global_cluster");
        if promoted {
            // THEN below 3.04 the replication lag is read, in seconds, and is within the RPO
            assert_eq!(exec.outcome, "succeeded", "{version}: {exec:#?}");
            assert_eq!(failovers, 1);
            assert_eq!(exec.lag_seconds, Some(1.5));
            assert_eq!(exec.lag_sample_value, Some(1_500.0));
            let metric = exec.lag_metric.clone().unwrap_or_default();
            assert!(
                metric.starts_with("AWS/RDS AuroraGlobalDBReplicationLag DBClusterIdentifier=orders-west (milliseconds)")
                    && metric.contains("does not publish AuroraGlobalDBRPOLag"),
                "{metric}"
            );
        } else {
            // AND from 3.04 the RPO lag is read: none published, so unknown and refused
            assert_eq!(exec.outcome, "failed", "{version}: {exec:#?}");
            assert_eq!(failovers, 0);
            assert!(exec
                .lag_metric
                .clone()
                .unwrap_or_default()
                .starts_with("AWS/RDS AuroraGlobalDBRPOLag"));
        }
    }
}

/// -1 on the Aurora path is unknown too, and refused unless accepted.
#[tokio::test(start_paused = true)]
async fn an_aurora_lag_of_minus_one_is_unknown_and_refused_unless_accepted() {
    const EAST: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-east";
    for accepted in [None, Some(600)] {
        // GIVEN Aurora PostgreSQL's RPO lag reading -1 before the outage
        let toolkit = toolkit().await;
        let plan = aurora_plan();
        let now = toolkit.store.clock().now_ms();
        let metrics = FakeMetricReader::new();
        metrics.put(
            "AWS/RDS",
            "AuroraGlobalDBRPOLag",
            &[("DBClusterIdentifier", "orders-west")],
            -1.0,
            now - 150_000,
        );
        let ports = Ports {
            secondary_db: FakeReplicas::new().with_global("orders-global", EAST),
            primary_db: FakeReplicas::new(),
            nodes: FakeNodeGroups::new(),
            dns: FakeDns::new(),
            switches: controls(true, false),
            metric_switches: FakeMetricSwitches::new(),
            metrics,
            primary_metrics: FakeMetricReader::new(),
            capacity: ready_cluster(),
            probe: FakeProbe::new(),
        };
        let mut exec = Execution::new(&plan, Mode::Failover, "t".into(), now - 100_000, now, "t");
        exec.accept_data_loss_seconds = accepted;
        // WHEN the failover runs
        let exec = engine(&toolkit, &ports, &plan, 600, "test")
            .reconcile(exec)
            .await
            .unwrap();
        // THEN unknown: refused without an accepted loss, done with one
        let failovers = ports.secondary_db.calls.count("failover_global_cluster");
        match accepted {
            None => {
                assert_eq!(exec.outcome, "failed", "{exec:#?}");
                assert!(exec.steps[&StepName::Database]
                    .detail
                    .contains("replica lag unknown"));
                assert_eq!(failovers, 0);
            }
            Some(_) => {
                assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
                assert_eq!(failovers, 1);
            }
        }
    }
}

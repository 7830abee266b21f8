//! The failover engine as stories on the in-memory fakes, on paused time (milliseconds of real
//! time): a whole failover, a drill, the RPO guard refusing, a step resumed after a crash, a node
//! group that stays UPDATING past the invocation's budget, and failback.

use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::FakeProbe;
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::ports::{DnsRecord, NodeGroupId, Scaling};
use failover::engine::{Execution, Mode, Ports, StepName, StepState};

mod common;
use common::{engine, lag, plan, toolkit};

type Estate = Ports<FakeReplicas, FakeNodeGroups, FakeDns, FakeMetricReader, FakeProbe>;

/// The standby as it waits: a replica of `orders`, an empty node group, the gate closed and the
/// record on the primary; the replica `lag_s` behind.
fn standby(lag_s: f64) -> Estate {
    Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .changes_take(6),
        primary_db: FakeReplicas::new().with_instance("orders", None),
        nodes: FakeNodeGroups::new()
            .with_group(
                "standby",
                "web",
                Scaling {
                    min: 0,
                    max: 4,
                    desired: 0,
                },
            )
            .updates_take(4),
        dns: FakeDns::new()
            .with_health_check("hc-east", false)
            .with_health_check("hc-west", true)
            .with_zone(
                "Z1",
                &[DnsRecord {
                    name: "api.example.com".into(),
                    kind: "CNAME".into(),
                    ttl: 60,
                    value: "east.example.com".into(),
                }],
            )
            .changes_pending_for(3),
        metrics: lag(lag_s),
        primary_metrics: FakeMetricReader::new().steady(
            "AWS/RDS",
            "ReplicaLag",
            &[("DBInstanceIdentifier", "orders")],
            0.0,
        ),
        probe: FakeProbe::new(),
    }
}

fn web() -> NodeGroupId {
    NodeGroupId {
        cluster: "standby".into(),
        name: "web".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn a_whole_failover_promotes_the_replica_scales_the_nodes_and_moves_the_traffic() {
    // GIVEN the standby waiting, its replica 2 s behind (RPO 60 s)
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(2.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the engine reconciles the failover
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it succeeded: the replica writes, the nodes run, the traffic is on the secondary
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert!(estate
        .secondary_db
        .peek("orders-replica")
        .unwrap()
        .writable());
    let group = estate.nodes.peek(&web()).unwrap();
    assert_eq!(
        (
            group.scaling.min,
            group.scaling.desired,
            group.status.as_str()
        ),
        (2, 3, "ACTIVE")
    );
    let record = estate
        .dns
        .peek_record("Z1", "api.example.com", "CNAME")
        .unwrap();
    assert_eq!(record.value, "west.example.com");
    assert_eq!(
        estate.dns.peek_inverted("hc-west"),
        Some(false),
        "the gate is open"
    );
    assert_eq!(
        estate.dns.peek_inverted("hc-east"),
        Some(true),
        "the primary is fenced"
    );
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_rpo_guard_refuses_to_promote_a_replica_further_behind_than_the_rpo() {
    // GIVEN a replica 120 s behind, the RPO 60 s
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(120.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the engine reconciles an automatic failover
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it failed on the database step and nothing was promoted
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    assert_eq!(exec.state(StepName::Database), StepState::Failed);
    assert_eq!(estate.secondary_db.calls.count("promote"), 0);
    assert!(!estate
        .secondary_db
        .peek("orders-replica")
        .unwrap()
        .writable());
}

#[tokio::test(start_paused = true)]
async fn a_promotion_cut_off_by_the_budget_is_resumed_from_its_checkpoint_and_asked_for_once() {
    // GIVEN a promotion that takes 60 observations (5 min), an invocation that may wait 60 s
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = standby(2.0);
    let estate = Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .changes_take(60),
        ..estate
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the first invocation ends (as if it died) with the promotion still running
    let exec = engine(&toolkit, &estate, &plan, 60, "first")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "running");
    assert_eq!(exec.state(StepName::Database), StepState::Running);
    let stored: Execution = toolkit
        .store
        .get(&Execution::key(&exec.id))
        .await
        .unwrap()
        .unwrap()
        .value;
    // AND the next invocation resumes from the stored record
    let exec = engine(&toolkit, &estate, &plan, 600, "second")
        .reconcile(stored)
        .await
        .unwrap();
    // THEN the failover ends, with one PromoteReadReplica in all
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_node_group_that_stays_updating_past_the_budget_is_finished_by_the_next_invocation() {
    // GIVEN a node group EKS keeps UPDATING (another update of its own)
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(2.0));
    estate.nodes.set_status(&web(), "UPDATING");
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN an invocation with 120 s to wait reconciles the failover
    let started = tokio::time::Instant::now();
    let exec = engine(&toolkit, &estate, &plan, 120, "first")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it waits out its budget and checkpoints, the nodes step still running
    assert!(started.elapsed() >= std::time::Duration::from_secs(120));
    assert_eq!(exec.outcome, "running", "{exec:#?}");
    assert_eq!(exec.state(StepName::Nodes), StepState::Running);
    // AND once EKS is done, the next invocation scales the group and finishes
    estate.nodes.set_status(&web(), "ACTIVE");
    let exec = engine(&toolkit, &estate, &plan, 600, "second")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.nodes.peek(&web()).unwrap().scaling.desired, 3);
}

#[tokio::test(start_paused = true)]
async fn a_drill_fails_over_to_a_tagged_copy_and_puts_the_estate_back_as_it_was() {
    // GIVEN the standby waiting, its replica a drill copy (tagged breakwater:drill=true)
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(2.0));
    let estate = Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .with_tag("orders-replica", "breakwater:drill", "true")
            .changes_take(6),
        ..estate
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Drill, "story".into(), now, now, "story");
    // WHEN a drill runs
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it succeeded: the copy was promoted then deleted, and nodes, health checks and
    // records are back as they were
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
    assert_eq!(estate.secondary_db.calls.count("delete_instance"), 1);
    let group = estate.nodes.peek(&web()).unwrap();
    assert_eq!((group.scaling.min, group.scaling.desired), (0, 0));
    assert_eq!(estate.dns.peek_inverted("hc-east"), Some(false));
    assert_eq!(estate.dns.peek_inverted("hc-west"), Some(true));
    assert_eq!(
        estate
            .dns
            .peek_record("Z1", "api.example.com", "CNAME")
            .unwrap()
            .value,
        "east.example.com"
    );
}

#[tokio::test(start_paused = true)]
async fn failback_re_creates_the_primary_as_a_replica_promotes_it_and_moves_the_traffic_home() {
    // GIVEN the estate after a failover: the secondary writes, the old primary is gone, traffic
    // is on the secondary
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = standby(0.0);
    let estate = Ports {
        secondary_db: FakeReplicas::new().with_instance("orders-replica", None),
        primary_db: FakeReplicas::new().changes_take(6),
        dns: FakeDns::new()
            .with_health_check("hc-east", true)
            .with_health_check("hc-west", false)
            .with_zone(
                "Z1",
                &[DnsRecord {
                    name: "api.example.com".into(),
                    kind: "CNAME".into(),
                    ttl: 60,
                    value: "west.example.com".into(),
                }],
            ),
        ..estate
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failback, "story".into(), now, now, "story");
    // WHEN failback runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the primary region's instance was re-created from the secondary, promoted, and the
    // traffic is home
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.primary_db.calls.count("create_replica"), 1);
    assert_eq!(estate.primary_db.calls.count("promote"), 1);
    assert!(estate.primary_db.peek("orders").unwrap().writable());
    assert_eq!(
        estate
            .dns
            .peek_record("Z1", "api.example.com", "CNAME")
            .unwrap()
            .value,
        "east.example.com"
    );
}

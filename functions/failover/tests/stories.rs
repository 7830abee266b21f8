//! The failover engine as stories on the in-memory fakes, on paused time (milliseconds of real
//! time): a whole failover, a drill, the RPO guard refusing, a step resumed after a crash, a node
//! group that stays UPDATING past the invocation's budget, and failback.

use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::FakeProbe;
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::fakes::routing_controls::{FakeRoutingControls, READS};
use breakwater::ports::{NodeGroupId, Scaling};
use breakwater::Error;
use failover::engine::{Execution, Mode, Ports, StepName, StepState};

mod common;
use common::{controls, engine, lag, plan, toolkit, EAST, WEST};

type Estate =
    Ports<FakeReplicas, FakeNodeGroups, FakeDns, FakeMetricReader, FakeRoutingControls, FakeProbe>;

/// The standby as it waits: a replica of `orders`, an empty node group, the primary's routing
/// control On and the secondary's Off; the replica `lag_s` behind.
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
        dns: FakeDns::new(),
        switches: controls(true, false),
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
    assert_eq!(
        estate.switches.peek(WEST),
        Some(true),
        "the secondary takes traffic"
    );
    assert_eq!(
        estate.switches.peek(EAST),
        Some(false),
        "the primary is fenced"
    );
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
    // AND Route 53's API (us-east-1) was never called
    assert_eq!(estate.dns.calls.all(), Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_safety_rule_keeping_one_side_on_turns_the_fence_into_one_switch_with_the_traffic() {
    // GIVEN the cluster's rule "at least one routing control On", and the standby waiting
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(2.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the fence alone was refused by the rule and said so; the traffic step turned the
    // secondary On and the primary Off in one request; both read back
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let fence = &exec.steps[&StepName::Fence];
    assert_eq!(fence.state, StepState::Skipped, "{fence:?}");
    assert!(
        fence.detail.contains("safety rule one-cell-on"),
        "{fence:?}"
    );
    let changes = estate.switches.calls.changes(READS);
    assert_eq!(
        changes,
        [
            format!("set {EAST}=Off"),
            format!("set {WEST}=On,{EAST}=Off")
        ],
        "one refused fence, one switch"
    );
    let acts: Vec<&str> = exec.actions.iter().map(|a| a.operation.as_str()).collect();
    assert_eq!(
        acts.iter()
            .filter(|o| **o == "UpdateRoutingControlStates")
            .count(),
        1,
        "{acts:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_cluster_no_endpoint_of_which_answers_is_waited_for_and_the_next_tick_moves_traffic() {
    // GIVEN a cluster whose endpoints all fail to answer the switch once
    let toolkit = toolkit().await;
    let (plan, estate) = (plan(), standby(2.0));
    estate.switches.calls.fail_call(
        "set",
        2,
        Error::Retryable(
            "UpdateRoutingControlStates: no endpoint of the ARC cluster answered".into(),
        ),
    );
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs, and the next invocation picks it up
    let exec = engine(&toolkit, &estate, &plan, 600, "first")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the first stops at the traffic step, waiting, not failed
    assert_eq!(exec.outcome, "running", "{exec:#?}");
    assert_eq!(exec.state(StepName::Traffic), StepState::Running);
    assert_eq!(estate.switches.peek(WEST), Some(false));
    let exec = engine(&toolkit, &estate, &plan, 600, "second")
        .reconcile(exec)
        .await
        .unwrap();
    // AND the second moves the traffic and finishes
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        (estate.switches.peek(EAST), estate.switches.peek(WEST)),
        (Some(false), Some(true))
    );
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
    // THEN it succeeded: the copy was promoted then deleted, and nodes and routing controls
    // are back as they were
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
    assert_eq!(estate.secondary_db.calls.count("delete_instance"), 1);
    let group = estate.nodes.peek(&web()).unwrap();
    assert_eq!((group.scaling.min, group.scaling.desired), (0, 0));
    assert_eq!(
        (estate.switches.peek(EAST), estate.switches.peek(WEST)),
        (Some(true), Some(false))
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
        switches: controls(false, true),
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
        (estate.switches.peek(EAST), estate.switches.peek(WEST)),
        (Some(true), Some(false))
    );
}

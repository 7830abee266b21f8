//! The failover engine as stories on the in-memory fakes, on paused time (milliseconds of real
//! time): a whole failover, a drill, the RPO guard refusing, a step resumed after a crash, a node
//! group that stays UPDATING past the invocation's budget, and failback.

use std::time::Duration;

use breakwater::fakes::capacity::FakeCapacity;
use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::metric_switches::FakeMetricSwitches;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::{Endpoint, FakeProbe};
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::fakes::routing_controls::{FakeRoutingControls, READS};
use breakwater::ports::{NodeGroupId, Scaling};
use breakwater::Error;
use failover::engine::{Execution, Mode, Ports, StepName, StepState};

mod common;
use common::{
    controls, engine, lag, metric_switches, plan, plan_with, plan_with_metric_switches,
    ready_cluster, side, toolkit, EAST, EAST_ALARM, WEST, WEST_ALARM,
};

type Estate = Ports<
    FakeReplicas,
    FakeNodeGroups,
    FakeDns,
    FakeMetricReader,
    FakeRoutingControls,
    FakeMetricSwitches,
    FakeCapacity,
    FakeProbe,
>;

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
        metric_switches: FakeMetricSwitches::new(),
        metrics: lag(lag_s),
        primary_metrics: FakeMetricReader::new().steady(
            "AWS/RDS",
            "ReplicaLag",
            &[("DBInstanceIdentifier", "orders")],
            0.0,
        ),
        capacity: ready_cluster(),
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
    // AND nothing else moved: the primary was not fenced, no node group was raised
    assert_eq!(estate.switches.calls.count("set"), 0);
    assert_eq!(estate.switches.peek(EAST), Some(true));
    assert_eq!(estate.nodes.peek(&web()).unwrap().scaling.desired, 0);
}

#[tokio::test(start_paused = true)]
async fn capacity_is_asked_for_at_once_while_the_promotion_waits_for_the_fence() {
    // GIVEN an ARC cluster that answers only after 5 s (its first endpoints tried are down)
    let toolkit = toolkit().await;
    let plan = plan();
    let mut estate = standby(2.0);
    estate.switches = controls(true, false).answers_after(Duration::from_secs(5));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the engine reconciles the failover
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let at = |operation: &str| {
        exec.actions
            .iter()
            .find(|a| a.operation == operation)
            .map(|a| a.at_ms - exec.started_ms)
            .unwrap_or_else(|| panic!("no {operation} in {:#?}", exec.actions))
    };
    let fenced = exec.steps[&StepName::Fence].finished_ms.unwrap() - exec.started_ms;
    // THEN the node group was raised before the fence answered: capacity, the longest branch,
    // needs no fence
    assert!(at("UpdateNodegroupConfig") < 5_000, "{:#?}", exec.actions);
    // AND the replica was promoted only once the old side was fenced
    assert!(fenced >= 5_000, "{:#?}", exec.steps);
    assert!(at("PromoteReadReplica") >= fenced, "{:#?}", exec.actions);
    // AND the promotion, 15 s later, decided on the lag the guard read before anything moved
    assert_eq!(estate.metrics.calls.count("at_or_before"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_notification_delays_no_step_and_every_phase_is_sent_before_the_invocation_ends() {
    // GIVEN a topic that takes 5 s to answer each publish
    let topic = std::sync::Arc::new(
        breakwater::fakes::topic::MemoryTopic::new("arn:aws:sns:us-west-2:123456789012:ops")
            .answers_after(Duration::from_secs(5)),
    );
    let mut toolkit = toolkit().await;
    toolkit.notifier = breakwater::notify::Notifier::over(topic.clone());
    let (plan, estate) = (plan(), standby(2.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the engine reconciles the failover
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    // THEN the traffic moved as soon as the writer and the capacity were ready, not after
    // their notifications
    let step = |name: StepName| exec.steps[&name].clone();
    let ready = [StepName::Database, StepName::Nodes]
        .map(|name| step(name).finished_ms.unwrap())
        .into_iter()
        .max()
        .unwrap();
    let gap = step(StepName::Traffic).started_ms.unwrap() - ready;
    assert!(
        gap < 1_000,
        "traffic began {gap} ms after the writer and the capacity were ready"
    );
    // AND every phase was published, once, before the invocation ended
    let phases: Vec<String> = topic
        .published()
        .iter()
        .map(|p| p.attributes.get("phase").cloned().unwrap_or_default())
        .collect();
    for phase in ["started", "database", "nodes", "traffic", "healthy"] {
        assert_eq!(
            phases.iter().filter(|p| *p == phase).count(),
            1,
            "{phase} in {phases:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_notification_that_did_not_go_out_is_sent_by_the_next_invocation_once() {
    // GIVEN a topic that throttles the first publish (the "started" notification), and an
    // invocation that may wait 10 s only
    let topic = std::sync::Arc::new(breakwater::fakes::topic::MemoryTopic::new(
        "arn:aws:sns:us-west-2:123456789012:ops",
    ));
    topic.throttle_next(1);
    let mut toolkit = toolkit().await;
    toolkit.notifier = breakwater::notify::Notifier::over(topic.clone());
    let (plan, estate) = (plan(), standby(2.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    let exec = engine(&toolkit, &estate, &plan, 10, "first")
        .reconcile(exec)
        .await
        .expect("a notification that failed does not fail the invocation");
    assert!(!exec.finished(), "{exec:#?}");
    let phases = |topic: &breakwater::fakes::topic::MemoryTopic| -> Vec<String> {
        topic
            .published()
            .iter()
            .map(|p| p.attributes.get("phase").cloned().unwrap_or_default())
            .collect()
    };
    assert!(!phases(&topic).contains(&"started".to_string()));
    // WHEN the next invocation resumes the execution
    let exec = engine(&toolkit, &estate, &plan, 600, "second")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    // THEN every phase went out exactly once, "started" included
    let sent = phases(&topic);
    for phase in ["started", "database", "nodes", "traffic", "healthy"] {
        assert_eq!(
            sent.iter().filter(|p| *p == phase).count(),
            1,
            "{phase} in {sent:?}"
        );
    }
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
async fn a_drill_that_fails_still_puts_the_estate_back_and_reports_the_failure() {
    // GIVEN a drill copy, and a cluster whose rule keeps the primary On whatever, so the drill's
    // traffic step will fail
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .with_tag("orders-replica", "breakwater:drill", "true")
            .changes_take(6),
        switches: FakeRoutingControls::new()
            .with_control(EAST, true)
            .with_control(WEST, false)
            .with_assertion_rule("east-stays-on", &[EAST], 1),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Drill, "story".into(), now, now, "story");
    // WHEN the drill runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it failed at the traffic step, and says so
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    assert_eq!(exec.state(StepName::Traffic), StepState::Failed);
    // AND it still cleaned up: the promoted copy deleted, the node group back to 0, the routing
    // controls as they were
    assert_eq!(exec.state(StepName::Cleanup), StepState::Done, "{exec:#?}");
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
    assert_eq!(estate.secondary_db.calls.count("delete_instance"), 1);
    let group = estate.nodes.peek(&web()).unwrap();
    assert_eq!((group.scaling.min, group.scaling.desired), (0, 0));
    assert_eq!(
        (estate.switches.peek(EAST), estate.switches.peek(WEST)),
        (Some(true), Some(false))
    );
    // AND verify never ran on a failed drill
    assert_eq!(exec.state(StepName::Verify), StepState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_drill_whose_node_groups_fail_before_the_fence_answers_promotes_nothing_and_cleans_up() {
    // GIVEN a drill copy, a standby cluster that refuses Breakwater (403), and an ARC cluster
    // that answers only after 40 s, so the node groups fail before the fence has answered
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .with_tag("orders-replica", "breakwater:drill", "true")
            .changes_take(6),
        switches: controls(true, false).answers_after(Duration::from_secs(40)),
        ..standby(2.0)
    };
    for call in 1..=100 {
        estate.capacity.calls.fail_call(
            "node_group_nodes",
            call,
            Error::Forbidden("list nodes: HTTP 403 Forbidden".into()),
        );
    }
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Drill, "story".into(), now, now, "story");
    // WHEN the drill runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it failed at the node groups, asked for no promotion, and still cleaned up
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    assert_eq!(exec.state(StepName::Nodes), StepState::Failed);
    assert_eq!(estate.secondary_db.calls.count("promote"), 0);
    assert_eq!(exec.state(StepName::Cleanup), StepState::Done, "{exec:#?}");
    // AND the drill copy, never promoted, is kept as a replica for the next drill
    assert_eq!(estate.secondary_db.calls.count("delete_instance"), 0);
    assert!(!estate
        .secondary_db
        .peek("orders-replica")
        .unwrap()
        .writable());
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

/// The replica's lag as CloudWatch holds it: `(ms, seconds)` samples.
fn lag_samples(samples: &[(u64, f64)]) -> FakeMetricReader {
    let metrics = FakeMetricReader::new();
    for (at, v) in samples {
        metrics.put(
            "AWS/RDS",
            "ReplicaLag",
            &[("DBInstanceIdentifier", "orders-replica")],
            *v,
            *at,
        );
    }
    metrics
}

/// An automatic failover whose quorum (one signal) began at `since_ms`.
fn quorum_failover(plan: &failover::plan::LoadedPlan, since_ms: u64, now: u64) -> Execution {
    let mut exec = Execution::new(
        plan,
        Mode::Failover,
        "quorum".into(),
        since_ms,
        now,
        "story",
    );
    exec.quorum = Some(failover::signals::Quorum {
        needed: 1,
        of: 1,
        firing: vec!["5xx".into()],
        since_ms: Some(since_ms),
        held_ms: now - since_ms,
        window_ms: 60_000,
        met: true,
    });
    exec
}

#[tokio::test(start_paused = true)]
async fn the_rpo_guard_reads_the_lag_from_before_the_quorum_began_not_the_spike_after_it() {
    // GIVEN a replica 2 s behind until the primary went down, and 400 s behind (RPO 60 s) in
    // the minutes after the quorum began 100 s ago, as replication stalls with the primary
    let toolkit = toolkit().await;
    let plan = plan();
    let now = toolkit.store.clock().now_ms();
    let began = now - 100_000;
    let estate = Ports {
        metrics: lag_samples(&[
            (now - 200_000, 2.0),
            (now - 150_000, 2.0),
            (now - 90_000, 400.0),
            (now - 30_000, 400.0),
        ]),
        ..standby(0.0)
    };
    let exec = quorum_failover(&plan, began, now);
    // WHEN the failover the quorum started runs
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the guard judged the lag before the outage, and promoted
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.secondary_db.calls.count("promote"), 1);
    assert_eq!(exec.lag_seconds, Some(2.0));
    // AND the record says which sample: its value, its minute (the last whole minute before
    // the quorum began), the time it had to precede, and the metric
    let minute = |t: u64| t - t % 60_000;
    assert_eq!(exec.lag_sample_value, Some(2.0));
    assert_eq!(exec.lag_sample_ms, Some(minute(now - 150_000)));
    assert!(exec.lag_sample_ms.unwrap() + 60_000 <= began);
    assert_eq!(exec.lag_reference_ms, Some(began));
    assert_eq!(
        exec.lag_metric.as_deref(),
        Some("AWS/RDS ReplicaLag DBInstanceIdentifier=orders-replica")
    );
    let note = exec
        .notes
        .iter()
        .find(|n| n.starts_with("RPO guard"))
        .expect("the guard's reading is noted for the report");
    assert!(
        note.contains("ReplicaLag DBInstanceIdentifier=orders-replica = 2 for the minute from")
            && note.contains("when the quorum began"),
        "{note}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lag_of_minus_one_or_no_sample_is_unknown_and_refused_unless_data_loss_is_accepted() {
    for (case, samples) in [
        ("-1 (replication not active)", vec![(150_000, -1.0)]),
        ("no sample", vec![]),
        ("only samples after the quorum began", vec![(30_000, 1.0)]),
    ] {
        for accepted in [None, Some(300)] {
            // GIVEN the replica's lag before the quorum began is unknown
            let toolkit = toolkit().await;
            let plan = plan();
            let now = toolkit.store.clock().now_ms();
            let samples: Vec<(u64, f64)> = samples.iter().map(|(ago, v)| (now - ago, *v)).collect();
            let estate = Ports {
                metrics: lag_samples(&samples),
                ..standby(0.0)
            };
            let mut exec = quorum_failover(&plan, now - 100_000, now);
            exec.accept_data_loss_seconds = accepted;
            // WHEN the failover runs
            let exec = engine(&toolkit, &estate, &plan, 600, "story")
                .reconcile(exec)
                .await
                .unwrap();
            let promoted = estate.secondary_db.calls.count("promote");
            match accepted {
                // THEN without an accepted loss nothing is promoted: unknown is not 0
                None => {
                    assert_eq!(exec.outcome, "failed", "{case}: {exec:#?}");
                    let detail = &exec.steps[&StepName::Database].detail;
                    assert!(detail.contains("replica lag unknown"), "{case}: {detail}");
                    assert_eq!(promoted, 0, "{case}");
                    assert_eq!(exec.lag_seconds, None, "{case}");
                }
                // AND with one, it promotes and the record says the lag was unknown
                Some(_) => {
                    assert_eq!(exec.outcome, "succeeded", "{case}: {exec:#?}");
                    assert_eq!(promoted, 1, "{case}");
                    assert!(
                        exec.notes.iter().any(|n| n.starts_with(
                            "replica lag unknown; the invocation accepted up to 300 s"
                        )),
                        "{case}: {:?}",
                        exec.notes
                    );
                }
            }
        }
    }
}

/// The encrypted standby after a failover: the secondary's copy writes, encrypted with a key of
/// its region; the primary region's RDS sees it as encrypted.
fn encrypted_after_failover() -> Estate {
    let west = "arn:aws:rds:us-west-2:123456789012:db:orders-replica";
    Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", None)
            .encrypted_with(
                "orders-replica",
                "arn:aws:kms:us-west-2:123456789012:key/west-0000",
            ),
        primary_db: FakeReplicas::new().sees_encrypted(west).changes_take(6),
        switches: controls(false, true),
        ..standby(0.0)
    }
}

const EAST_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[tokio::test(start_paused = true)]
async fn failback_of_an_encrypted_database_re_creates_the_replica_with_the_plans_key_subnets_and_groups(
) {
    // GIVEN an encrypted database failed over, and a plan naming the primary region's key,
    // subnet group and security groups for the replica failback re-creates
    let toolkit = toolkit().await;
    let plan = common::plan_with(|p| {
        p["database"]["primary_kms_key_id"] = EAST_KEY.into();
        p["database"]["primary_db_subnet_group"] = "orders-east".into();
        p["database"]["primary_vpc_security_groups"] =
            serde_json::json!(["sg-0123456789abcdef0", "sg-89abcdef"]);
    });
    let estate = encrypted_after_failover();
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failback, "story".into(), now, now, "story");
    // WHEN failback runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the replica was created with the key, subnet group and groups, and the failback ended
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        estate.primary_db.placement("orders"),
        Some(breakwater::ports::ReplicaPlacement {
            kms_key_id: Some(EAST_KEY.into()),
            subnet_group: Some("orders-east".into()),
            security_groups: vec!["sg-0123456789abcdef0".into(), "sg-89abcdef".into()],
        })
    );
    let created = exec
        .actions
        .iter()
        .find(|a| a.operation == "CreateDBInstanceReadReplica")
        .unwrap();
    assert!(created.target.contains(EAST_KEY), "{created:?}");
    assert!(estate.primary_db.peek("orders").unwrap().writable());
}

#[tokio::test(start_paused = true)]
async fn failback_of_an_encrypted_database_without_a_key_in_the_plan_fails_reprotect_and_creates_nothing(
) {
    // GIVEN an encrypted database failed over, and a plan naming no key for the primary region
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = encrypted_after_failover();
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failback, "story".into(), now, now, "story");
    // WHEN failback runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN re-protection fails, saying what to set, and nothing was created or moved
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let step = &exec.steps[&StepName::Reprotect];
    assert_eq!(step.state, StepState::Failed);
    assert!(
        step.detail.contains("is encrypted") && step.detail.contains("database.primary_kms_key_id"),
        "{}",
        step.detail
    );
    assert_eq!(estate.primary_db.calls.count("create_replica"), 0);
    assert_eq!(
        (estate.switches.peek(EAST), estate.switches.peek(WEST)),
        (Some(false), Some(true))
    );
    // AND RDS itself (the fake, as RDS answers) refuses such a replica
    let err = breakwater::ports::Replicas::create_replica(
        &estate.primary_db,
        "orders",
        "arn:aws:rds:us-west-2:123456789012:db:orders-replica",
        &breakwater::ports::ReplicaPlacement::default(),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("InvalidParameterCombination"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn all_node_groups_are_raised_at_once_and_none_is_lowered() {
    // GIVEN two standby groups whose updates take 2 minutes each (24 polls 5 s apart), and a
    // third the cluster autoscaler already took to 8 nodes (above the plan's 3)
    let toolkit = toolkit().await;
    let plan = plan_with(|p| {
        p["eks"]["node_groups"] = serde_json::json!([
            {"name": "web", "min": 2, "desired": 3},
            {"name": "workers", "min": 2, "desired": 3},
            {"name": "busy", "min": 2, "desired": 3}]);
    });
    let at = |min, desired| Scaling {
        min,
        max: 10,
        desired,
    };
    let estate = Ports {
        nodes: FakeNodeGroups::new()
            .with_group("standby", "web", at(0, 0))
            .with_group("standby", "workers", at(0, 0))
            .with_group("standby", "busy", at(0, 8))
            .updates_take(24),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the nodes step took about one group's two minutes, not three groups' six
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let step = &exec.steps[&StepName::Nodes];
    let took = step.finished_ms.unwrap() - step.started_ms.unwrap();
    assert!((120_000..180_000).contains(&took), "{took} ms");
    // AND every group is at least at the plan's size, the busy one still at 8
    let group = |name: &str| {
        estate
            .nodes
            .peek(&NodeGroupId {
                cluster: "standby".into(),
                name: name.into(),
            })
            .unwrap()
            .scaling
    };
    assert_eq!((group("web").min, group("web").desired), (2, 3));
    assert_eq!((group("workers").min, group("workers").desired), (2, 3));
    assert_eq!((group("busy").min, group("busy").desired), (2, 8));
}

#[tokio::test(start_paused = true)]
async fn verify_reads_back_until_the_new_side_answers_and_gives_up_after_five_minutes() {
    // GIVEN a plan naming the secondary's health URL, which comes up 6 polls (30 s) after the
    // traffic reaches it
    let first = toolkit().await;
    let url = "https://api-west.example.com/health";
    let plan = plan_with(|p| p["secondary_health_url"] = url.into());
    let estate = standby(2.0);
    estate.probe.set(url, Endpoint::UpAfter(6, 200));
    let now = first.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&first, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN verify waited for it, and the execution is healthy (the RTO ends there)
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let verify = &exec.steps[&StepName::Verify];
    assert!(verify.detail.contains("answered 200"), "{verify:?}");
    assert!(verify.finished_ms.unwrap() - verify.started_ms.unwrap() >= 30_000);
    // AND an endpoint that never answers fails the execution after five minutes, not at once
    let second = toolkit().await;
    let estate = standby(2.0);
    estate
        .probe
        .set(url, Endpoint::Refused("connection refused".into()));
    let now = second.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    let exec = engine(&second, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let verify = &exec.steps[&StepName::Verify];
    assert_eq!(verify.state, StepState::Failed);
    assert!(
        verify.detail.starts_with("not as planned after 300 s"),
        "{verify:?}"
    );
    assert!(verify.finished_ms.unwrap() - verify.started_ms.unwrap() >= 300_000);
}

#[tokio::test(start_paused = true)]
async fn a_safety_rule_that_refuses_the_switch_fails_the_traffic_step_instead_of_waiting() {
    // GIVEN a cluster whose rule keeps the primary On whatever (AND over the primary alone)
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = Ports {
        switches: FakeRoutingControls::new()
            .with_control(EAST, true)
            .with_control(WEST, false)
            .with_assertion_rule("east-stays-on", &[EAST], 1),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the traffic step failed with the cluster's reason (asked three times), not waiting
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let traffic = &exec.steps[&StepName::Traffic];
    assert_eq!(traffic.state, StepState::Failed, "{traffic:?}");
    assert!(
        traffic.detail.contains("safety rule east-stays-on"),
        "{traffic:?}"
    );
    assert_eq!(
        estate.switches.calls.count("set"),
        1 + 3,
        "fence once, switch three times"
    );
    assert_eq!(estate.switches.peek(WEST), Some(false));
}

/// The standby without an ARC cluster: traffic by CloudWatch-metric switches, the primary's
/// alarm OK (its health check healthy) and the secondary's ALARM.
fn standby_without_arc(lag_s: f64) -> Estate {
    Ports {
        switches: FakeRoutingControls::new(),
        metric_switches: metric_switches("OK", "ALARM"),
        ..standby(lag_s)
    }
}

#[tokio::test(start_paused = true)]
async fn without_arc_the_failover_moves_traffic_through_the_metric_switches_and_reads_the_alarms_back(
) {
    // GIVEN the standby waiting, traffic switched by the CloudWatch-metric health checks
    let toolkit = toolkit().await;
    let (plan, estate) = (plan_with_metric_switches(), standby_without_arc(2.0));
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the engine reconciles the failover
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it succeeded, the secondary's alarm OK (healthy) and the primary's ALARM (unhealthy)
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        estate.metric_switches.peek(WEST_ALARM).as_deref(),
        Some("OK")
    );
    assert_eq!(
        estate.metric_switches.peek(EAST_ALARM).as_deref(),
        Some("ALARM")
    );
    // AND the values were written once each: the primary 0 (by the fence), the secondary 1
    assert_eq!(estate.metric_switches.values(&side("us-east-1")), [0.0]);
    assert_eq!(estate.metric_switches.values(&side("us-west-2")), [1.0]);
    let traffic = &exec.steps[&StepName::Traffic];
    assert!(
        traffic.detail.contains("alarm prod-traffic-us-west-2 OK")
            && traffic.detail.contains("prod-traffic-us-east-1 ALARM"),
        "{traffic:?}"
    );
    let verify = &exec.steps[&StepName::Verify];
    assert!(
        verify
            .detail
            .contains("alarm prod-traffic-us-west-2 OK (its health check healthy)"),
        "{verify:?}"
    );
    // AND neither the ARC cluster nor Route 53's API (us-east-1) was called
    assert_eq!(estate.switches.calls.all(), Vec::<String>::new());
    assert_eq!(estate.dns.calls.all(), Vec::<String>::new());
    assert_eq!(
        exec.actions
            .iter()
            .filter(|a| a.operation == "PutMetricData")
            .map(|a| a.target.as_str())
            .collect::<Vec<_>>(),
        // The new side on first, then the old off: failover records cannot route to nobody
        // (both unhealthy → Route 53 answers with the primary), so there is no separate fence.
        [
            "Breakwater/Traffic/RegionActive Region=us-west-2 = 1",
            "Breakwater/Traffic/RegionActive Region=us-east-1 = 0"
        ]
    );
    assert_eq!(exec.steps[&StepName::Fence].state, StepState::Skipped);
}

#[tokio::test(start_paused = true)]
async fn a_switch_written_twice_in_one_period_is_written_again_once_the_period_has_passed() {
    // GIVEN the primary's metric written 1 a second ago, in the period the failover writes 0 in
    // (one Maximum for the period: 1, so the alarm stays OK)
    let toolkit = toolkit().await;
    let (plan, estate) = (plan_with_metric_switches(), standby_without_arc(2.0));
    let into_period = estate.metric_switches.now_ms() % 60_000;
    tokio::time::advance(std::time::Duration::from_millis(
        60_000 - into_period + 1_000,
    ))
    .await;
    use breakwater::ports::MetricSwitches;
    estate
        .metric_switches
        .put(&side("us-east-1"), 1.0)
        .await
        .unwrap();
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 600, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the primary's 0 was written again after the period (90 s after the first), and the
    // alarms moved then
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        estate.metric_switches.values(&side("us-east-1")),
        [1.0, 0.0, 0.0]
    );
    assert_eq!(
        estate.metric_switches.peek(EAST_ALARM).as_deref(),
        Some("ALARM")
    );
    let writes: Vec<u64> = exec
        .actions
        .iter()
        .filter(|a| a.target == "Breakwater/Traffic/RegionActive Region=us-east-1 = 0")
        .map(|a| a.at_ms)
        .collect();
    assert_eq!(writes.len(), 2, "{exec:#?}");
    assert!(writes[1] - writes[0] >= 90_000, "{writes:?}");
}

#[tokio::test(start_paused = true)]
async fn a_drill_through_the_metric_switches_puts_the_alarms_back_as_they_were() {
    // GIVEN the standby without ARC, its replica a drill copy
    let toolkit = toolkit().await;
    let plan = plan_with_metric_switches();
    let estate = Ports {
        secondary_db: FakeReplicas::new()
            .with_instance("orders-replica", Some("orders"))
            .with_tag("orders-replica", "breakwater:drill", "true")
            .changes_take(6),
        ..standby_without_arc(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Drill, "story".into(), now, now, "story");
    // WHEN a drill runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it succeeded and the switch is back: the primary's alarm OK, the secondary's ALARM
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(
        estate.metric_switches.peek(EAST_ALARM).as_deref(),
        Some("OK")
    );
    assert_eq!(
        estate.metric_switches.peek(WEST_ALARM).as_deref(),
        Some("ALARM")
    );
    let cleanup = &exec.steps[&StepName::Cleanup];
    assert!(
        cleanup
            .detail
            .contains("alarm prod-traffic-us-east-1 OK again")
            && cleanup
                .detail
                .contains("alarm prod-traffic-us-west-2 ALARM again"),
        "{cleanup:?}"
    );
    assert_eq!(
        exec.before
            .metric_switches
            .get(EAST_ALARM)
            .map(String::as_str),
        Some("OK")
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_switch_alarm_fails_the_traffic_step_naming_it() {
    // GIVEN CloudWatch in the secondary region without the secondary's switch alarm
    let toolkit = toolkit().await;
    let plan = plan_with_metric_switches();
    let estate = Ports {
        metric_switches: FakeMetricSwitches::new().with_alarm(EAST_ALARM, side("us-east-1"), "OK"),
        ..standby_without_arc(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the traffic step failed, naming the alarm and its region
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let traffic = &exec.steps[&StepName::Traffic];
    assert!(
        traffic
            .detail
            .contains("alarm prod-traffic-us-west-2 does not exist in us-west-2"),
        "{traffic:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn switch_alarms_that_never_move_fail_the_traffic_step_after_five_periods() {
    // GIVEN a secondary alarm that watches another metric (the writes never reach it)
    let toolkit = toolkit().await;
    let plan = plan_with_metric_switches();
    let estate = Ports {
        metric_switches: FakeMetricSwitches::new()
            .with_alarm(EAST_ALARM, side("us-east-1"), "OK")
            .with_alarm(WEST_ALARM, side("eu-west-1"), "ALARM"),
        ..standby_without_arc(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs with 900 s to wait
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the traffic step gave up after 300 s, saying which alarm did not move
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let traffic = &exec.steps[&StepName::Traffic];
    assert!(
        traffic
            .detail
            .starts_with("the switch alarms did not move within 300 s")
            && traffic
                .detail
                .contains("prod-traffic-us-west-2 is ALARM (expected OK)"),
        "{traffic:?}"
    );
    assert!(traffic.finished_ms.unwrap() - traffic.started_ms.unwrap() >= 300_000);
    // AND the secondary's 1 was written again every 90 s, no more
    let ones = estate.metric_switches.values(&side("us-west-2"));
    assert!(ones.len() >= 3 && ones.len() <= 5, "{ones:?}");
}

#[tokio::test(start_paused = true)]
async fn traffic_moves_only_once_the_nodes_are_ready_and_the_critical_pods_serve() {
    // GIVEN a plan whose critical Deployment is shop/api, a standby cluster whose three nodes
    // join Ready 150 s after the node group is raised and whose API pods are ready 20 s later
    let toolkit = toolkit().await;
    let plan = plan_with(|p| {
        p["eks"]["critical_workloads"] =
            serde_json::json!([{"namespace": "shop", "deployment": "api"}]);
    });
    let estate = Ports {
        capacity: FakeCapacity::new()
            .nodes("standby", "web", 3, Duration::from_secs(150))
            .deployment("standby", "shop", "api", 2, Duration::from_secs(170)),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the nodes step ended only when the cluster had the capacity, and said so
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let nodes = &exec.steps[&StepName::Nodes];
    assert!(nodes.finished_ms.unwrap() >= now + 170_000, "{nodes:?}");
    assert!(
        nodes.detail.contains("web: 3 of 3 nodes Ready")
            && nodes.detail.contains("shop/api: 2 of 2 pods ready"),
        "{nodes:?}"
    );
    // AND traffic moved after that, not when EKS called the group ACTIVE
    let traffic = &exec.steps[&StepName::Traffic];
    assert!(traffic.started_ms.unwrap() >= nodes.finished_ms.unwrap());
    assert_eq!(estate.switches.peek(WEST), Some(true));
    // AND verify read the capacity back
    let verify = &exec.steps[&StepName::Verify];
    assert!(
        verify.detail.contains("shop/api: 2 of 2 pods ready"),
        "{verify:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_that_never_becomes_ready_fails_the_nodes_step_and_traffic_stays() {
    // GIVEN a standby cluster where the raised node group's instances never join
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = Ports {
        capacity: FakeCapacity::new(),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs (one invocation may wait 15 minutes)
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN after ten minutes the nodes step fails, naming what is missing
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let nodes = &exec.steps[&StepName::Nodes];
    assert_eq!(nodes.state, StepState::Failed);
    assert_eq!(
        nodes.detail,
        "the capacity is not ready 600 s after the step began, not even at the plan's minimums: \
         web: 0 of 2 nodes Ready (0 registered)"
    );
    assert!(nodes.finished_ms.unwrap() - nodes.started_ms.unwrap() >= 600_000);
    // AND traffic was not moved to a region that cannot serve it
    assert_eq!(estate.switches.peek(WEST), Some(false));
    assert_eq!(estate.switches.peek(EAST), Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_standby_cluster_that_refuses_breakwater_fails_the_nodes_step_in_30_s_naming_the_fix() {
    // GIVEN a standby cluster whose API server answers 403 (no access entry for the role)
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = standby(2.0);
    for call in 1..=100 {
        estate.capacity.calls.fail_call(
            "node_group_nodes",
            call,
            Error::Forbidden("list nodes: HTTP 403 Forbidden".into()),
        );
    }
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN the nodes step fails 30 s after the group is ACTIVE, not ten minutes later, and
    // says what to mend
    assert_eq!(exec.outcome, "failed", "{exec:#?}");
    let nodes = &exec.steps[&StepName::Nodes];
    assert_eq!(nodes.state, StepState::Failed);
    assert!(
        nodes
            .detail
            .contains("refused to be read for 30 s (list nodes: HTTP 403 Forbidden)")
            && nodes.detail.contains("eks:DescribeCluster")
            && nodes.detail.contains("access entry")
            && nodes.detail.contains("failover-rbac.yaml")
            && !nodes.detail.contains("  "),
        "{}",
        nodes.detail
    );
    assert!(nodes.finished_ms.unwrap() - nodes.started_ms.unwrap() < 90_000);
    // AND traffic stays
    assert_eq!(estate.switches.peek(WEST), Some(false));
}

#[tokio::test(start_paused = true)]
async fn one_refusal_by_the_standby_cluster_is_read_again_and_the_failover_completes() {
    // GIVEN a standby cluster whose API server refuses the first read only (401: a token it
    // could not check yet)
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = standby(2.0);
    estate.capacity.calls.fail_next(
        "node_group_nodes",
        Error::Forbidden("list nodes: HTTP 401 Unauthorized".into()),
    );
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it succeeds and the traffic moved
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    assert_eq!(estate.switches.peek(WEST), Some(true));
}

#[tokio::test(start_paused = true)]
async fn capacity_short_of_desired_but_at_the_plans_minimum_moves_traffic_after_the_wait() {
    // GIVEN a regional event in which EC2 gives the raised group two of its three nodes (the
    // plan's minimum is two)
    let toolkit = toolkit().await;
    let plan = plan();
    let estate = Ports {
        capacity: FakeCapacity::new().nodes("standby", "web", 2, Duration::from_secs(90)),
        ..standby(2.0)
    };
    let now = toolkit.store.clock().now_ms();
    let exec = Execution::new(&plan, Mode::Failover, "story".into(), now, now, "story");
    // WHEN the failover runs
    let exec = engine(&toolkit, &estate, &plan, 900, "story")
        .reconcile(exec)
        .await
        .unwrap();
    // THEN it waited the ten minutes for the third node, then moved traffic on the two it has,
    // and said so
    assert_eq!(exec.outcome, "succeeded", "{exec:#?}");
    let nodes = &exec.steps[&StepName::Nodes];
    assert!(nodes.finished_ms.unwrap() - nodes.started_ms.unwrap() >= 600_000);
    assert!(
        nodes
            .detail
            .contains("at the plan's minimums only after 600 s: web: 2 of 2 nodes Ready")
            && nodes
                .detail
                .contains("short of desired: web: 2 of 3 nodes Ready"),
        "{nodes:?}"
    );
    assert_eq!(estate.switches.peek(WEST), Some(true));
}

//! The files in `events/failover/` (what `make invoke` sends) and the example plan in
//! `deploy/failover/` read as their names say.

use std::path::PathBuf;

use breakwater::events::{alarm_from_action, alarm_from_eventbridge, Trigger};
use failover::plan::load;
use failover::routes;
use failover::signals::{from_alarm, from_rds_event};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn event(name: &str) -> Value {
    let path = root().join("events/failover").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn regions() -> (String, String) {
    ("us-east-1".into(), "us-west-2".into())
}

#[test]
fn an_event_from_a_third_region_is_refused() {
    let mut e = event("alarm-state-change.json");
    e["region"] = "eu-central-1".into();
    let refused = routes(&regions()).route(e).unwrap_err().to_string();
    assert!(refused.contains("eu-central-1"), "{refused}");
}

fn plan() -> failover::plan::LoadedPlan {
    load(&std::fs::read(root().join("deploy/failover/plan.example.json")).unwrap()).unwrap()
}

#[test]
fn every_file_routes_to_the_function() {
    let dir = root().join("events/failover");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 15, "{names:?}");
    for name in names {
        let routed = routes(&regions()).route(event(&name));
        assert!(routed.is_ok(), "{name}: {routed:?}");
    }
}

#[test]
fn alarms_and_rds_events_feed_the_example_plans_signals() {
    let plan = plan();
    let Ok(Trigger::EventBridge(e)) = routes(&regions()).route(event("alarm-state-change.json"))
    else {
        panic!()
    };
    let alarm =
        alarm_from_eventbridge(&e.detail, e.resources.as_ref().and_then(|r| r.first())).unwrap();
    let obs = from_alarm(&plan.plan, &alarm);
    assert_eq!(
        (obs.len(), obs[0].signal.as_str(), obs[0].firing),
        (1, "primary-5xx", true)
    );
    let Ok(Trigger::EventBridge(e)) = routes(&regions()).route(event("alarm-state-change-ok.json"))
    else {
        panic!()
    };
    let ok = alarm_from_eventbridge(&e.detail, None).unwrap();
    assert!(!from_alarm(&plan.plan, &ok)[0].firing);
    let action = alarm_from_action(&event("alarm-action.json")).unwrap();
    let obs = from_alarm(&plan.plan, &action);
    assert_eq!(obs[0].signal, "primary-health-check");
    let failure = event("rds-event-primary-failure.json");
    let obs = from_rds_event(&plan.plan, &failure["detail"], 0);
    assert_eq!((obs.len(), obs[0].signal.as_str()), (1, "primary-db"));
    let promoted = event("rds-event-replica-promoted.json");
    assert!(
        from_rds_event(&plan.plan, &promoted["detail"], 0).is_empty(),
        "a re-entry, not a signal"
    );
    let malformed = event("malformed-alarm.json");
    assert!(alarm_from_eventbridge(&malformed["detail"], None).is_err());
}

#[test]
fn manual_commands_confirm_the_example_plan_except_the_copied_one() {
    let plan = plan();
    for name in [
        "command-drill.json",
        "command-switchover.json",
        "command-failover.json",
        "command-failover-accept-data-loss.json",
        "command-failback.json",
    ] {
        assert_eq!(event(name)["confirm"], plan.plan.name.as_str(), "{name}");
    }
    assert_ne!(
        event("command-failover-wrong-confirm.json")["confirm"],
        plan.plan.name.as_str()
    );
}

/// Every example plan in deploy/failover/ loads: the ARC one and the metric-switch one (an
/// account without an ARC cluster), each with its traffic switch and no dependency on the
/// primary region.
#[test]
fn every_example_plan_loads() {
    let dir = root().join("deploy/failover");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["plan.example.json", "plan.metric-switches.example.json"]
    );
    for name in names {
        let plan = load(&std::fs::read(dir.join(&name)).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let traffic = &plan.plan.traffic;
        assert!(
            traffic.routing_controls.is_some() != traffic.metric_switches.is_some(),
            "{name}"
        );
        assert_eq!(
            failover::dependencies::blocked_by_primary(&plan),
            Vec::<String>::new(),
            "{name}"
        );
    }
}

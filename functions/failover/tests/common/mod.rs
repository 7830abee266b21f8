//! What the failover crate's own tests share: a clock that follows tokio's (paused), the state
//! store over the in-memory object store (`fakes::object_store`), and the engine over any ports.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use breakwater::clock::Clock;
use breakwater::config::Settings;
use breakwater::fakes::capacity::FakeCapacity;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::metric_switches::FakeMetricSwitches;
use breakwater::fakes::object_store::MemoryObjects;
use breakwater::fakes::routing_controls::FakeRoutingControls;
use breakwater::notify::Notifier;
use breakwater::ports::SwitchMetric;
use breakwater::state::StateStore;
use breakwater::Toolkit;
use failover::engine::{Engine, Pace, Ports};
use failover::plan::{load, LoadedPlan};

/// Wall time that follows tokio's clock (paused in these tests).
#[derive(Debug)]
struct TokioClock {
    start_ms: u64,
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.start_ms + self.start.elapsed().as_millis() as u64
    }
}

/// The engine over `ports`, polling every 5 s, waiting up to `budget_s` per invocation.
pub fn engine<'a, R, N, D, M, C, W, K, P>(
    toolkit: &'a Toolkit,
    ports: &'a Ports<R, N, D, M, C, W, K, P>,
    plan: &'a LoadedPlan,
    budget_s: u64,
    owner: &'a str,
) -> Engine<'a, R, N, D, M, C, W, K, P> {
    Engine {
        toolkit,
        ports,
        plan,
        pace: Pace {
            poll: Duration::from_secs(5),
            budget: Duration::from_secs(budget_s),
        },
        owner,
        notices: Default::default(),
    }
}

/// A standby cluster with the capacity the plans of these tests ask for, Ready now: `web` and
/// `workers` at 3 nodes, `busy` at the 8 the cluster autoscaler gave it.
pub fn ready_cluster() -> FakeCapacity {
    FakeCapacity::new()
        .nodes("standby", "web", 3, Duration::ZERO)
        .nodes("standby", "workers", 3, Duration::ZERO)
        .nodes("standby", "busy", 8, Duration::ZERO)
}

pub async fn toolkit() -> Toolkit {
    let clock = Arc::new(TokioClock {
        start_ms: 1_795_406_400_000,
        start: tokio::time::Instant::now(),
    });
    // No AWS call is made: the store runs over the in-memory object store, the notifier logs.
    let aws = breakwater::aws::Aws::for_endpoint("http://127.0.0.1:9", "us-west-2").await;
    let settings = Settings {
        region: "us-west-2".into(),
        state_bucket: "state".into(),
        topic_arn: None,
        dry_run: false,
        lease_ttl: Duration::from_secs(60),
        idempotency_ttl: Duration::from_secs(900),
        function_name: "failover".into(),
    };
    Toolkit {
        settings,
        aws: Arc::new(aws),
        store: StateStore::over(Arc::new(MemoryObjects::new("state")), clock),
        notifier: Notifier::log_only(),
    }
}

/// The primary region's routing control.
pub const EAST: &str = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456bbbbbbbbbbbbbbbbbbbbbbbbb/routingcontrol/east0123456789";
/// The secondary region's routing control.
pub const WEST: &str = "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456bbbbbbbbbbbbbbbbbbbbbbbbb/routingcontrol/west0123456789";

/// The plan of the stories: an RDS replica, one node group, traffic by ARC routing controls.
pub fn plan() -> LoadedPlan {
    load(plan_doc().to_string().as_bytes()).unwrap()
}

/// The same plan moving traffic by one record instead (the last resort).
pub fn plan_with_records() -> LoadedPlan {
    let mut doc = plan_doc();
    doc["traffic"] = serde_json::json!({
        "zone_id": "Z1",
        "records": [{"name": "api.example.com", "type": "CNAME", "ttl": 60,
                     "primary": "east.example.com", "secondary": "west.example.com"}]
    });
    load(doc.to_string().as_bytes()).unwrap()
}

/// The plan of the stories, changed by `edit`.
pub fn plan_with(edit: impl FnOnce(&mut serde_json::Value)) -> LoadedPlan {
    let mut doc = plan_doc();
    edit(&mut doc);
    load(doc.to_string().as_bytes()).unwrap()
}

fn plan_doc() -> serde_json::Value {
    serde_json::json!({
        "name": "prod", "primary_region": "us-east-1", "secondary_region": "us-west-2",
        "database": {"engine": "rds", "replica": "orders-replica", "primary": "orders"},
        "eks": {"cluster": "standby", "node_groups": [{"name": "web", "min": 2, "desired": 3}]},
        "traffic": {"routing_controls": {
            "cluster_endpoints": [
                {"endpoint": "https://host-aaaaaa.us-east-1.example.aws/v1", "region": "us-east-1"},
                {"endpoint": "https://host-bbbbbb.us-west-2.example.aws/v1", "region": "us-west-2"}
            ],
            "primary": EAST, "secondary": WEST}},
        "targets": {"rto_seconds": 900, "rpo_seconds": 60},
        "detection": {"quorum": 1, "window_seconds": 60, "cooldown_seconds": 3600,
                      "signals": [{"name": "5xx", "kind": "alarm", "alarm": "east-5xx"}]}
    })
}

/// The cluster with the two routing controls as given, and the safety rule ARC's guide starts
/// with: at least one of them `On` (an assertion rule, `ATLEAST` 1).
pub fn controls(east_on: bool, west_on: bool) -> FakeRoutingControls {
    FakeRoutingControls::new()
        .with_control(EAST, east_on)
        .with_control(WEST, west_on)
        .with_assertion_rule("one-cell-on", &[EAST, WEST], 1)
}

/// A replica lag that holds at `seconds` whenever it is read.
pub fn lag(seconds: f64) -> FakeMetricReader {
    FakeMetricReader::new().steady(
        "AWS/RDS",
        "ReplicaLag",
        &[("DBInstanceIdentifier", "orders-replica")],
        seconds,
    )
}

/// The primary's metric-switch alarm (in the secondary region).
pub const EAST_ALARM: &str = "prod-traffic-us-east-1";
/// The secondary's metric-switch alarm.
pub const WEST_ALARM: &str = "prod-traffic-us-west-2";

/// The metric of one side of the metric switches (`Breakwater/Traffic` `RegionActive`,
/// `Region=<region>`), as template.yaml's alarms watch it.
pub fn side(region: &str) -> SwitchMetric {
    SwitchMetric {
        namespace: "Breakwater/Traffic".into(),
        metric: "RegionActive".into(),
        dimension: ("Region".into(), region.into()),
    }
}

/// The plan of the stories moving traffic by CloudWatch-metric switches (no ARC cluster).
pub fn plan_with_metric_switches() -> LoadedPlan {
    plan_with(|doc| {
        doc["traffic"] = serde_json::json!({"metric_switches": {
            "namespace": "Breakwater/Traffic", "metric": "RegionActive", "dimension": "Region",
            "primary": {"alarm": EAST_ALARM, "dimension_value": "us-east-1"},
            "secondary": {"alarm": WEST_ALARM, "dimension_value": "us-west-2"}
        }});
    })
}

/// CloudWatch in the secondary region with the two switch alarms in the states given.
pub fn metric_switches(east: &str, west: &str) -> FakeMetricSwitches {
    FakeMetricSwitches::new()
        .with_alarm(EAST_ALARM, side("us-east-1"), east)
        .with_alarm(WEST_ALARM, side("us-west-2"), west)
}

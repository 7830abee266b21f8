//! What the failover crate's own tests share: a clock that follows tokio's (paused), the state
//! store over the in-memory object store (`fakes::object_store`), and the engine over any ports.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use breakwater::clock::Clock;
use breakwater::config::Settings;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::object_store::MemoryObjects;
use breakwater::notify::Notifier;
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
pub fn engine<'a, R, N, D, M, P>(
    toolkit: &'a Toolkit,
    ports: &'a Ports<R, N, D, M, P>,
    plan: &'a LoadedPlan,
    budget_s: u64,
    owner: &'a str,
) -> Engine<'a, R, N, D, M, P> {
    Engine {
        toolkit,
        ports,
        plan,
        pace: Pace {
            poll: Duration::from_secs(5),
            budget: Duration::from_secs(budget_s),
        },
        owner,
    }
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

/// The plan of the stories: an RDS replica, one node group, a gate and one record.
pub fn plan() -> LoadedPlan {
    let doc = serde_json::json!({
        "name": "prod", "primary_region": "us-east-1", "secondary_region": "us-west-2",
        "database": {"engine": "rds", "replica": "orders-replica", "primary": "orders"},
        "eks": {"cluster": "standby", "node_groups": [{"name": "web", "min": 2, "desired": 3}]},
        "traffic": {"health_checks": {"primary": "hc-east", "secondary": "hc-west"},
                    "zone_id": "Z1",
                    "records": [{"name": "api.example.com", "type": "CNAME", "ttl": 60,
                                 "primary": "east.example.com", "secondary": "west.example.com"}]},
        "targets": {"rto_seconds": 900, "rpo_seconds": 60},
        "detection": {"quorum": 1, "window_seconds": 60, "cooldown_seconds": 3600,
                      "signals": [{"name": "5xx", "kind": "alarm", "alarm": "east-5xx"}]}
    });
    load(doc.to_string().as_bytes()).unwrap()
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

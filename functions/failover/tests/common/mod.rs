//! What the failover crate's own tests share: a clock that follows tokio's (paused), the state
//! store over an in-memory S3, and the engine over any ports.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use breakwater::clock::Clock;
use breakwater::config::Settings;
use breakwater::fakes::metric_reader::FakeMetricReader;
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

/// S3 in memory, conditional writes included: the state store's records, leases and reports.
/// (The object-store port's fake replaces it once arch-shared lands.)
pub fn memory_s3() -> aws_sdk_s3::Client {
    type Objects = Arc<Mutex<HashMap<String, (Vec<u8>, u64)>>>;
    let objects: Objects = Arc::default();
    let counter = Arc::new(Mutex::new(0u64));
    let (o1, o2, o3) = (objects.clone(), objects.clone(), objects);
    let get = mock!(aws_sdk_s3::Client::get_object).then_compute_response(move |input| {
        let key = input.key().unwrap_or_default().to_string();
        match o1.lock().unwrap().get(&key) {
            Some((body, etag)) => MockResponse::Output(
                GetObjectOutput::builder()
                    .body(ByteStream::from(body.clone()))
                    .e_tag(format!("\"{etag}\""))
                    .build(),
            ),
            None => MockResponse::Error(GetObjectError::NoSuchKey(
                aws_sdk_s3::types::error::NoSuchKey::builder().build(),
            )),
        }
    });
    let put = mock!(aws_sdk_s3::Client::put_object).then_compute_response(move |input| {
        let key = input.key().unwrap_or_default().to_string();
        let mut objects = o2.lock().unwrap();
        let current = objects.get(&key).map(|(_, e)| format!("\"{e}\""));
        let refused = (input.if_none_match() == Some("*") && current.is_some())
            || input
                .if_match()
                .is_some_and(|m| Some(m.to_string()) != current);
        if refused {
            return MockResponse::Http(aws_sdk_s3::config::http::HttpResponse::new(
                412.try_into().unwrap(),
                aws_sdk_s3::primitives::SdkBody::from(
                    "<Error><Code>PreconditionFailed</Code></Error>",
                ),
            ));
        }
        let mut n = counter.lock().unwrap();
        *n += 1;
        let body = input.body().bytes().unwrap_or_default().to_vec();
        objects.insert(key, (body, *n));
        MockResponse::Output(PutObjectOutput::builder().e_tag(format!("\"{n}\"")).build())
    });
    let delete = mock!(aws_sdk_s3::Client::delete_object).then_compute_output(move |input| {
        o3.lock().unwrap().remove(input.key().unwrap_or_default());
        DeleteObjectOutput::builder().build()
    });
    mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put, &delete])
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
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-west-2"))
        .build();
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
        aws: Arc::new(breakwater::aws::Aws::from_config(config)),
        store: StateStore::new(memory_s3(), "state", clock),
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

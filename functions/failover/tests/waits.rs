//! The waiting logic under paused time: AWS answers from the in-memory fakes of the ports
//! (`breakwater::fakes`: a promotion that takes N reads, a node group UPDATING for N reads, a
//! Route 53 change PENDING for N polls, throttles and busy refusals scheduled on given calls),
//! the state store over an in-memory S3, and a clock that follows tokio's — so "minutes" of
//! promotion pass in milliseconds, deterministically.

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
use breakwater::fakes::calls::{busy, throttled};
use breakwater::fakes::dns::FakeDns;
use breakwater::fakes::metric_reader::FakeMetricReader;
use breakwater::fakes::node_groups::FakeNodeGroups;
use breakwater::fakes::probe::FakeProbe;
use breakwater::fakes::replicas::FakeReplicas;
use breakwater::notify::Notifier;
use breakwater::ports::{DnsRecord, Scaling};
use breakwater::state::StateStore;
use breakwater::Toolkit;
use failover::engine::{Engine, Execution, Mode, Pace, Ports, StepState};
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
fn memory_s3() -> aws_sdk_s3::Client {
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

fn plan() -> LoadedPlan {
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

type FakePorts = Ports<FakeReplicas, FakeNodeGroups, FakeDns, FakeMetricReader, FakeProbe>;

/// A replica lag that holds at `seconds` whenever it is read.
fn lag(seconds: f64) -> FakeMetricReader {
    FakeMetricReader::new().steady(
        "AWS/RDS",
        "ReplicaLag",
        &[("DBInstanceIdentifier", "orders-replica")],
        seconds,
    )
}

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
        metrics: lag(2.0),
        primary_metrics: lag(2.0),
        probe: FakeProbe::new(),
    }
}

/// The engine over `ports`, polling every 5 s, waiting up to `budget_s` per invocation.
fn engine<'a, R, N, D, M, P>(
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

async fn toolkit() -> Toolkit {
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

#[tokio::test(start_paused = true)]
async fn minutes_of_promotion_busy_node_groups_throttling_and_a_pending_change() {
    let toolkit = toolkit().await;
    let plan = plan();
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
    assert_eq!(dns.count("set_health_check_inverted"), 2, "fence and gate");
    assert!(db.count("instance") >= 38);
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_budget_checkpoints_and_the_next_invocation_finishes() {
    let toolkit = toolkit().await;
    let plan = plan();
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
            "traffic": {"health_checks": {"primary": "hc-east", "secondary": "hc-west"}},
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
            dns: FakeDns::new()
                .with_health_check("hc-east", false)
                .with_health_check("hc-west", true),
            metrics: rpo_lag(),
            primary_metrics: rpo_lag(),
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
            ports.dns.calls.count("set_health_check_inverted"),
            2,
            "fence and gate"
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

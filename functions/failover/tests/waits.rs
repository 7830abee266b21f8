//! The waiting logic under paused time: AWS answers from status sequences (`aws-smithy-mocks`)
//! through the real adapters, the state store over an in-memory S3 (also mocked), and a clock
//! that follows tokio's — so "minutes" of promotion pass in milliseconds, deterministically.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eks::operation::describe_nodegroup::DescribeNodegroupOutput;
use aws_sdk_eks::operation::update_nodegroup_config::{
    UpdateNodegroupConfigError, UpdateNodegroupConfigOutput,
};
use aws_sdk_eks::types::{Nodegroup, NodegroupScalingConfig, NodegroupStatus, Update};
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::operation::promote_read_replica::PromoteReadReplicaOutput;
use aws_sdk_rds::types::DbInstance;
use aws_sdk_route53::operation::change_resource_record_sets::{
    ChangeResourceRecordSetsError, ChangeResourceRecordSetsOutput,
};
use aws_sdk_route53::operation::get_change::GetChangeOutput;
use aws_sdk_route53::operation::get_health_check::GetHealthCheckOutput;
use aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsOutput;
use aws_sdk_route53::operation::update_health_check::UpdateHealthCheckOutput;
use aws_sdk_route53::types::{
    ChangeInfo, ChangeStatus, HealthCheck, HealthCheckConfig, HealthCheckType, ResourceRecord,
    ResourceRecordSet, RrType,
};
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{mock, mock_client, MockResponse, Rule, RuleMode};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::rds::RdsDatabases;
use breakwater::aws::route53::Route53Dns;
use breakwater::clock::Clock;
use breakwater::config::Settings;
use breakwater::notify::Notifier;
use breakwater::ports::MetricReader;
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

/// A fixed replica lag.
#[derive(Debug)]
struct Lag(f64);

impl MetricReader for Lag {
    async fn latest(
        &self,
        _: &str,
        _: &str,
        _: &[(&str, &str)],
        now_ms: u64,
        _: u64,
    ) -> breakwater::Result<Option<(f64, u64)>> {
        Ok(Some((self.0, now_ms)))
    }
}

/// S3 in memory, conditional writes included: the state store's records, leases and reports.
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
            return MockResponse::Http(HttpResponse::new(
                StatusCode::try_from(412).unwrap(),
                SdkBody::from("<Error><Code>PreconditionFailed</Code></Error>"),
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

fn replica(status: &str, source: Option<&str>) -> DescribeDbInstancesOutput {
    DescribeDbInstancesOutput::builder()
        .db_instances(
            DbInstance::builder()
                .db_instance_identifier("orders-replica")
                .db_instance_arn("arn:aws:rds:us-west-2:123456789012:db:orders-replica")
                .db_instance_status(status)
                .set_read_replica_source_db_instance_identifier(source.map(str::to_string))
                .build(),
        )
        .build()
}

fn group(status: NodegroupStatus, min: i32, desired: i32) -> DescribeNodegroupOutput {
    DescribeNodegroupOutput::builder()
        .nodegroup(
            Nodegroup::builder()
                .nodegroup_name("web")
                .status(status)
                .scaling_config(
                    NodegroupScalingConfig::builder()
                        .min_size(min)
                        .desired_size(desired)
                        .max_size(4)
                        .build(),
                )
                .build(),
        )
        .build()
}

fn check(inverted: bool) -> GetHealthCheckOutput {
    GetHealthCheckOutput::builder()
        .health_check(
            HealthCheck::builder()
                .id("hc")
                .caller_reference("x")
                .health_check_version(1)
                .health_check_config(
                    HealthCheckConfig::builder()
                        .r#type(HealthCheckType::Https)
                        .inverted(inverted)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
}

/// The secondary's gate: closed (inverted) until opened.
fn gate() -> Rule {
    mock!(aws_sdk_route53::Client::get_health_check)
        .match_requests(|r| r.health_check_id() == Some("hc-west"))
        .sequence()
        .output(|| check(true))
        .output(|| check(false))
        .repeatedly()
        .build()
}

fn update_check() -> Rule {
    mock!(aws_sdk_route53::Client::update_health_check)
        .then_output(|| UpdateHealthCheckOutput::builder().build())
}

fn records(value: &str) -> ListResourceRecordSetsOutput {
    ListResourceRecordSetsOutput::builder()
        .resource_record_sets(
            ResourceRecordSet::builder()
                .name("api.example.com.")
                .r#type(RrType::Cname)
                .ttl(60)
                .resource_records(ResourceRecord::builder().value(value).build().unwrap())
                .build()
                .unwrap(),
        )
        .is_truncated(false)
        .max_items(1)
        .build()
        .unwrap()
}

fn change(status: ChangeStatus) -> ChangeInfo {
    ChangeInfo::builder()
        .id("/change/C1")
        .status(status)
        .submitted_at(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap()
}

struct Scripted {
    rules: Vec<Rule>,
}

impl Scripted {
    fn rule(&self, i: usize) -> &Rule {
        &self.rules[i]
    }
}

/// A failover whose promotion takes `promotion_polls` observations, whose node group refuses
/// two updates (another in progress) and whose Route 53 change stays PENDING `pending` times,
/// with a throttled read of the replica in between.
fn scripted(
    promotion_polls: usize,
    pending: usize,
) -> (
    Ports<RdsDatabases, EksNodeGroups, Route53Dns, Lag>,
    Scripted,
) {
    let describe_db = mock!(aws_sdk_rds::Client::describe_db_instances)
        .sequence()
        .output(|| replica("available", Some("orders")))
        .error(|| {
            aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| replica("modifying", Some("orders")))
        .times(promotion_polls)
        .output(|| replica("available", None))
        .repeatedly()
        .build();
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica)
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let describe_group = mock!(aws_sdk_eks::Client::describe_nodegroup)
        .sequence()
        .output(|| group(NodegroupStatus::Active, 0, 0))
        .times(3)
        .output(|| group(NodegroupStatus::Updating, 2, 3))
        .times(10)
        .output(|| group(NodegroupStatus::Active, 2, 3))
        .repeatedly()
        .build();
    let update_group = mock!(aws_sdk_eks::Client::update_nodegroup_config)
        .sequence()
        .error(|| {
            UpdateNodegroupConfigError::ResourceInUseException(
                aws_sdk_eks::types::error::ResourceInUseException::builder()
                    .message("update in progress")
                    .build(),
            )
        })
        .times(2)
        .output(|| {
            UpdateNodegroupConfigOutput::builder()
                .update(Update::builder().id("u-1").build())
                .build()
        })
        .build();
    let primary_check = mock!(aws_sdk_route53::Client::get_health_check)
        .match_requests(|r| r.health_check_id() == Some("hc-east"))
        .then_output(|| check(false));
    let gate = gate();
    let update_check = update_check();
    let list = mock!(aws_sdk_route53::Client::list_resource_record_sets)
        .sequence()
        // A throttled read first: the record is read again, not skipped as if in place.
        .error(|| {
            aws_sdk_route53::operation::list_resource_record_sets::ListResourceRecordSetsError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .output(|| records("east.example.com"))
        .times(2)
        .output(|| records("west.example.com"))
        .repeatedly()
        .build();
    let upsert = mock!(aws_sdk_route53::Client::change_resource_record_sets)
        .sequence()
        .error(|| {
            ChangeResourceRecordSetsError::PriorRequestNotComplete(
                aws_sdk_route53::types::error::PriorRequestNotComplete::builder()
                    .message("prior request")
                    .build(),
            )
        })
        .output(|| {
            ChangeResourceRecordSetsOutput::builder()
                .change_info(change(ChangeStatus::Pending))
                .build()
        })
        .build();
    let get_change = mock!(aws_sdk_route53::Client::get_change)
        .sequence()
        .output(|| {
            GetChangeOutput::builder()
                .change_info(change(ChangeStatus::Pending))
                .build()
        })
        .times(pending)
        .output(|| {
            GetChangeOutput::builder()
                .change_info(change(ChangeStatus::Insync))
                .build()
        })
        .repeatedly()
        .build();
    let rds = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe_db, &promote]);
    let eks = mock_client!(
        aws_sdk_eks,
        RuleMode::MatchAny,
        [&describe_group, &update_group]
    );
    let r53 = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [
            &primary_check,
            &gate,
            &update_check,
            &list,
            &upsert,
            &get_change
        ]
    );
    let unused = mock_client!(aws_sdk_rds, RuleMode::MatchAny, Vec::<&Rule>::new());
    (
        Ports {
            secondary_db: RdsDatabases::new(rds),
            primary_db: RdsDatabases::new(unused),
            nodes: EksNodeGroups::new(eks),
            dns: Route53Dns::new(r53),
            metrics: Lag(2.0),
            primary_metrics: Lag(2.0),
        },
        Scripted {
            rules: vec![
                describe_db,
                promote,
                describe_group,
                update_group,
                update_check,
                upsert,
                get_change,
            ],
        },
    )
}

/// The engine over `ports`, polling every 5 s, waiting up to `budget_s` per invocation.
fn engine<'a, R, N, D, M>(
    toolkit: &'a Toolkit,
    ports: &'a Ports<R, N, D, M>,
    plan: &'a LoadedPlan,
    budget_s: u64,
    owner: &'a str,
) -> Engine<'a, R, N, D, M> {
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
    let (ports, script) = scripted(36, 12);
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
    assert_eq!(script.rule(1).num_calls(), 1, "one PromoteReadReplica");
    assert_eq!(
        script.rule(3).num_calls(),
        3,
        "two ResourceInUse, then the update"
    );
    assert_eq!(
        script.rule(5).num_calls(),
        2,
        "PriorRequestNotComplete, then the UPSERT"
    );
    assert_eq!(script.rule(6).num_calls(), 13, "12 × PENDING, then INSYNC");
    assert_eq!(script.rule(4).num_calls(), 2, "fence and gate");
    assert!(script.rule(0).num_calls() >= 38);
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_budget_checkpoints_and_the_next_invocation_finishes() {
    let toolkit = toolkit().await;
    let plan = plan();
    // Route 53 stays PENDING for 40 polls (200 s); the invocation may wait only 100 s in all.
    let (ports, script) = scripted(2, 40);
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
        script.rule(5).num_calls(),
        2,
        "no second UPSERT after the resume"
    );
    assert_eq!(script.rule(1).num_calls(), 1);
}

fn global(
    writer: &str,
    state: Option<&str>,
) -> aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput {
    use aws_sdk_rds::types::{FailoverState, FailoverStatus, GlobalCluster, GlobalClusterMember};
    let mut cluster = GlobalCluster::builder()
        .global_cluster_identifier("orders-global")
        .status(if state.is_some() {
            "failing-over"
        } else {
            "available"
        })
        .global_cluster_members(
            GlobalClusterMember::builder()
                .db_cluster_arn(writer)
                .is_writer(true)
                .build(),
        );
    if let Some(s) = state {
        cluster = cluster.failover_state(
            FailoverState::builder()
                .status(FailoverStatus::from(s))
                .build(),
        );
    }
    aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput::builder()
        .global_clusters(cluster.build())
        .build()
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
        let describe = mock!(aws_sdk_rds::Client::describe_global_clusters)
            .sequence()
            .output(|| global(EAST, None))
            .output(|| global(EAST, Some("failing-over")))
            .times(24)
            .output(|| global(WEST, None))
            .repeatedly()
            .build();
        let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
            .match_requests(|r| r.allow_data_loss() == Some(true) && r.target_db_cluster_identifier() == Some(WEST))
            .then_output(|| aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput::builder().build());
        let switchover = mock!(aws_sdk_rds::Client::switchover_global_cluster)
            .match_requests(|r| r.target_db_cluster_identifier() == Some(WEST))
            .then_output(|| aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput::builder().build());
        let rds = mock_client!(
            aws_sdk_rds,
            RuleMode::MatchAny,
            [&describe, &failover, &switchover]
        );
        let primary_check = mock!(aws_sdk_route53::Client::get_health_check)
            .match_requests(|r| r.health_check_id() == Some("hc-east"))
            .sequence()
            .output(|| check(false))
            .output(|| check(true))
            .repeatedly()
            .build();
        let gate = mock!(aws_sdk_route53::Client::get_health_check)
            .match_requests(|r| r.health_check_id() == Some("hc-west"))
            .sequence()
            .output(|| check(true))
            .output(|| check(false))
            .repeatedly()
            .build();
        let update_check = mock!(aws_sdk_route53::Client::update_health_check)
            .then_output(|| UpdateHealthCheckOutput::builder().build());
        let r53 = mock_client!(
            aws_sdk_route53,
            RuleMode::MatchAny,
            [&primary_check, &gate, &update_check]
        );
        let ports = Ports {
            secondary_db: RdsDatabases::new(rds),
            primary_db: RdsDatabases::new(mock_client!(
                aws_sdk_rds,
                RuleMode::MatchAny,
                Vec::<&Rule>::new()
            )),
            nodes: EksNodeGroups::new(mock_client!(
                aws_sdk_eks,
                RuleMode::MatchAny,
                Vec::<&Rule>::new()
            )),
            dns: Route53Dns::new(r53),
            metrics: Lag(0.5),
            primary_metrics: Lag(0.5),
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
        let (f, s) = (failover.num_calls(), switchover.num_calls());
        match mode {
            Mode::Failover => assert_eq!((f, s), (1, 0)),
            _ => assert_eq!((f, s), (0, 1)),
        }
        assert_eq!(update_check.num_calls(), 2, "fence and gate");
    }
}

//! The regional-outage scene: a primary RDS instance in the primary region with a cross-region
//! read replica in the secondary, a standby EKS cluster whose node group sits at zero, a Route 53
//! zone with the application's record, a Route 53 ARC cluster (five regional endpoints, see
//! [`crate::arc`]) with a routing control per region (the primary's On) and the safety rule "at
//! least one On", the replica-lag metric, and the failover plan in the secondary region's state
//! bucket.
//!
//! AWS's own timing (promotion, node-group update, DNS propagation) is set per resource with the
//! `sandbox:*-seconds` tags that `moto_patches.py` honours.

use aws_config::SdkConfig;
use aws_sdk_eks::types::{NodegroupScalingConfig, VpcConfigRequest};
use std::sync::Arc;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType, Tag as R53Tag,
    TagResourceType,
};
use serde_json::{json, Value};

use crate::arc::{ArcCluster, ControlState, RuleConfig, RuleType};
use crate::kube::fixtures::deployment;
use crate::kube::node_groups::NodeGroupFollower;
use crate::kube::KubeEmulator;
use crate::seed::{regional, Estate, ACCOUNT};
use crate::SandboxError;

/// AWS's latencies in the scene (seconds; 0 = at once).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Latencies {
    /// PromoteReadReplica → available and writable.
    pub promote: f64,
    /// UpdateNodegroupConfig → ACTIVE.
    pub nodes: f64,
    /// ChangeResourceRecordSets → INSYNC.
    pub dns: f64,
    /// An instance a node group launches → its node `Ready` in the cluster.
    pub boot: f64,
    /// A pod scheduled on a Ready node → the pod ready.
    pub pod_ready: f64,
}

/// What the scene created.
#[derive(Debug, Clone)]
pub struct FailoverScene {
    /// The plan document (also uploaded to the secondary's state bucket).
    pub plan: Value,
    /// The plan's name.
    pub name: String,
    /// The primary DB instance (primary region).
    pub primary_db: String,
    /// The replica (secondary region).
    pub replica: String,
    /// The standby cluster (secondary region).
    pub cluster: String,
    /// Its node group.
    pub node_group: String,
    /// The hosted zone's id.
    pub zone_id: String,
    /// The application's record.
    pub record: String,
    /// The ARC cluster (its endpoints forward to moto; [`ArcCluster::set_down`] takes one away).
    pub arc: Arc<ArcCluster>,
    /// The primary region's routing control (On).
    pub rc_primary: String,
    /// The secondary region's routing control (Off).
    pub rc_secondary: String,
    /// The alarms the plan listens to.
    pub alarms: Vec<String>,
    /// The standby cluster's API server: its node group's nodes join as EKS (moto) raises the
    /// group, and the plan's critical Deployment `shop/api` (2 pods) waits for them.
    pub kube: Arc<KubeEmulator>,
    /// The task that keeps the cluster's nodes at the node group's size (stops when dropped).
    pub follower: Arc<NodeGroupFollower>,
}

/// The plan's key in the state bucket.
pub const PLAN_KEY: &str = "failover/plan.json";

/// Builds the scene; `probe_url` is the primary's health endpoint as the plan's probe sees it.
/// The ARC cluster's endpoints forward straight to moto.
pub async fn failover_scene(
    config: &SdkConfig,
    estate: &Estate,
    suffix: &str,
    latencies: Latencies,
    probe_url: &str,
) -> Result<FailoverScene, SandboxError> {
    let moto = config
        .endpoint_url()
        .ok_or_else(|| SandboxError::Seed("the scene's SDK config names no endpoint".into()))?
        .to_string();
    failover_scene_via(config, estate, suffix, latencies, probe_url, &moto).await
}

/// [`failover_scene`] with the ARC cluster's endpoints forwarding to `arc_upstream` (the fault
/// proxy the function's other calls go through, so that its rules and its call log cover the
/// routing controls too).
pub async fn failover_scene_via(
    config: &SdkConfig,
    estate: &Estate,
    suffix: &str,
    latencies: Latencies,
    probe_url: &str,
    arc_upstream: &str,
) -> Result<FailoverScene, SandboxError> {
    let primary = &estate.primary.region;
    let secondary = &estate.secondary.region;
    let rds_primary = aws_sdk_rds::Client::new(&regional(config, primary));
    let rds_secondary = aws_sdk_rds::Client::new(&regional(config, secondary));
    let eks = aws_sdk_eks::Client::new(&regional(config, secondary));
    let r53 = aws_sdk_route53::Client::new(&regional(config, "us-east-1"));
    let name = format!("shop{suffix}");
    let primary_db = format!("orders{suffix}");
    let replica = format!("orders-replica{suffix}");
    let created = rds_primary
        .create_db_instance()
        .db_instance_identifier(&primary_db)
        .engine("postgres")
        .db_instance_class("db.r6g.large")
        .allocated_storage(100)
        .master_username("breakwater")
        .master_user_password("sandbox-password")
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create DB instance {primary_db}"), &e))?;
    let source_arn = created
        .db_instance
        .and_then(|d| d.db_instance_arn)
        .unwrap_or_else(|| format!("arn:aws:rds:{primary}:{ACCOUNT}:db:{primary_db}"));
    rds_secondary
        .create_db_instance_read_replica()
        .db_instance_identifier(&replica)
        .source_db_instance_identifier(&source_arn)
        .db_instance_class("db.r6g.large")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("sandbox:promote-seconds")
                .value(latencies.promote.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create replica {replica}"), &e))?;

    let cluster = format!("standby{suffix}");
    let node_group = "web".to_string();
    eks.create_cluster()
        .name(&cluster)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0b1c2d3e")
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create cluster {cluster}"), &e))?;
    eks.create_nodegroup()
        .cluster_name(&cluster)
        .nodegroup_name(&node_group)
        .node_role(format!("arn:aws:iam::{ACCOUNT}:role/eks-node"))
        .subnets("subnet-0b1c2d3e")
        .instance_types("m6g.large")
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(0)
                .desired_size(0)
                .max_size(4)
                .build(),
        )
        .tags("sandbox:update-seconds", latencies.nodes.to_string())
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create node group {node_group}"), &e))?;

    // The standby cluster's API server, on real time: the node group has no node yet, and the
    // critical Deployment's pods wait for a Ready one.
    let kube = KubeEmulator::start(
        breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock),
        1.0,
    )
    .await?;
    kube.with(|c| c.pod_ready_delay_ms = (latencies.pod_ready * 1000.0) as u64);
    kube.create("namespaces", "", json!({"metadata": {"name": "shop"}}))
        .map_err(|e| SandboxError::Function(format!("create namespace shop: {e:?}")))?;
    kube.create("deployments", "shop", deployment("api", "api", 2, "api:1"))
        .map_err(|e| SandboxError::Function(format!("create deployment shop/api: {e:?}")))?;
    let follower = kube.follow_node_groups(
        eks.clone(),
        &cluster,
        &format!("{secondary}a"),
        (latencies.boot * 1000.0) as u64,
    );

    let domain = format!("{name}.example.com");
    let zone = r53
        .create_hosted_zone()
        .name(&domain)
        .caller_reference(format!("zone{suffix}"))
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create zone {domain}"), &e))?;
    let zone_id = zone
        .hosted_zone
        .map(|z| z.id.rsplit('/').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    r53.change_tags_for_resource()
        .resource_type(TagResourceType::Hostedzone)
        .resource_id(&zone_id)
        .add_tags(
            R53Tag::builder()
                .key("sandbox:insync-seconds")
                .value(latencies.dns.to_string())
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws("tag zone", &e))?;
    let record = format!("api.{domain}.");
    let set = ResourceRecordSet::builder()
        .name(&record)
        .r#type(RrType::Cname)
        .ttl(60)
        .resource_records(
            ResourceRecord::builder()
                .value(format!("east.{domain}"))
                .build()
                .map_err(|e| SandboxError::Seed(e.to_string()))?,
        )
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(set)
                        .build()
                        .map_err(|e| SandboxError::Seed(e.to_string()))?,
                )
                .build()
                .map_err(|e| SandboxError::Seed(e.to_string()))?,
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws("create the application's record", &e))?;
    let moto = config
        .endpoint_url()
        .ok_or_else(|| SandboxError::Seed("the scene's SDK config names no endpoint".into()))?;
    let arc = Arc::new(ArcCluster::start(moto, arc_upstream).await?);
    let panel = arc.create_control_panel(&format!("shop{suffix}")).await?;
    let rc_primary = arc
        .create_routing_control(&panel, &format!("shop-{primary}{suffix}"), ControlState::On)
        .await?;
    let rc_secondary = arc
        .create_routing_control(
            &panel,
            &format!("shop-{secondary}{suffix}"),
            ControlState::Off,
        )
        .await?;
    arc.create_assertion_rule(
        &panel,
        &format!("one-region-on{suffix}"),
        &[&rc_primary, &rc_secondary],
        RuleConfig::new(RuleType::AtLeast(1)),
    )
    .await?;
    let cluster_endpoints: Vec<Value> = arc
        .endpoints()
        .into_iter()
        .map(|(endpoint, region)| json!({"endpoint": endpoint, "region": region}))
        .collect();
    let alarms = vec![format!("east-5xx{suffix}"), format!("east-latency{suffix}")];
    let plan = json!({
        "name": name,
        "primary_region": primary,
        "secondary_region": secondary,
        "database": {"engine": "rds", "replica": replica, "primary": primary_db},
        "eks": {"cluster": cluster, "node_groups": [{"name": node_group, "min": 2, "desired": 3}],
            "critical_workloads": [{"namespace": "shop", "deployment": "api"}]},
        "traffic": {
            "routing_controls": {
                "cluster_endpoints": cluster_endpoints,
                "primary": rc_primary,
                "secondary": rc_secondary
            }
        },
        "targets": {"rto_seconds": 900, "rpo_seconds": 60},
        "detection": {"quorum": 2, "window_seconds": 60, "cooldown_seconds": 3600, "signals": [
            {"name": "5xx", "kind": "alarm", "alarm": alarms[0]},
            {"name": "latency", "kind": "alarm", "alarm": alarms[1]},
            {"name": "probe", "kind": "probe", "url": probe_url, "timeout_ms": 500}
        ]}
    });
    Ok(FailoverScene {
        plan,
        name,
        primary_db,
        replica,
        cluster,
        node_group,
        zone_id,
        record,
        arc,
        rc_primary,
        rc_secondary,
        alarms,
        kube: Arc::new(kube),
        follower: Arc::new(follower),
    })
}

/// Tags the scene's replica `breakwater:drill=true`: a drill copy, the only kind of replica a
/// drill may promote (and its clean-up delete); see docs/dr-drill.md.
pub async fn tag_drill_copy(
    config: &SdkConfig,
    estate: &Estate,
    scene: &FailoverScene,
) -> Result<(), SandboxError> {
    let secondary = &estate.secondary.region;
    aws_sdk_rds::Client::new(&regional(config, secondary))
        .add_tags_to_resource()
        .resource_name(format!(
            "arn:aws:rds:{secondary}:{}:db:{}",
            estate.account, scene.replica
        ))
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("breakwater:drill")
                .value("true")
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws("tag the drill copy", &e))?;
    Ok(())
}

/// Uploads `plan` to the state bucket of `region`.
pub async fn put_plan(
    config: &SdkConfig,
    region: &str,
    bucket: &str,
    plan: &Value,
) -> Result<(), SandboxError> {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&regional(config, region))
            .force_path_style(true)
            .build(),
    );
    s3.put_object()
        .bucket(bucket)
        .key(PLAN_KEY)
        .body(plan.to_string().into_bytes().into())
        .send()
        .await
        .map_err(|e| SandboxError::aws("put the plan", &e))?;
    Ok(())
}

/// Publishes the replica's `ReplicaLag` (seconds) at `at_ms` in `region`.
pub async fn put_lag(
    config: &SdkConfig,
    region: &str,
    replica: &str,
    seconds: f64,
    at_ms: u64,
) -> Result<(), SandboxError> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
    aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            MetricDatum::builder()
                .metric_name("ReplicaLag")
                .dimensions(
                    Dimension::builder()
                        .name("DBInstanceIdentifier")
                        .value(replica)
                        .build(),
                )
                .value(seconds)
                .unit(StandardUnit::Seconds)
                .timestamp(aws_smithy_types::DateTime::from_millis(at_ms as i64))
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws("put ReplicaLag", &e))?;
    Ok(())
}

/// What the scene looks like now, read back from the emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The replica's status (`gone` once deleted) and replication source.
    pub replica: (String, Option<String>),
    /// The node group's min/desired and status.
    pub node_group: (i32, i32, String),
    /// Whether the primary's and the secondary's routing controls are On.
    pub controls: (bool, bool),
    /// The record's value.
    pub record: String,
}

/// The standby cluster read back: the node group's nodes that are `Ready`, and the critical
/// Deployment's ready pods (`status.readyReplicas`).
pub fn capacity(scene: &FailoverScene) -> (usize, i64) {
    let ready = scene
        .kube
        .list("nodes")
        .iter()
        .filter(|n| {
            n["metadata"]["labels"]["eks.amazonaws.com/nodegroup"] == scene.node_group.as_str()
                && n["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .count();
    let pods = scene
        .kube
        .get("deployments", "shop", "api")
        .and_then(|d| d["status"]["readyReplicas"].as_i64())
        .unwrap_or(0);
    (ready, pods)
}

/// Reads the scene back.
pub async fn observe(
    config: &SdkConfig,
    estate: &Estate,
    scene: &FailoverScene,
) -> Result<Observed, SandboxError> {
    let secondary = &estate.secondary.region;
    let described = aws_sdk_rds::Client::new(&regional(config, secondary))
        .describe_db_instances()
        .db_instance_identifier(&scene.replica)
        .send()
        .await;
    let db = match described {
        Ok(out) => out.db_instances().first().cloned(),
        // A drill copy deleted by the clean-up.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
        {
            None
        }
        Err(e) => return Err(SandboxError::aws("describe replica", &e)),
    };
    let db = db.unwrap_or_else(|| {
        aws_sdk_rds::types::DbInstance::builder()
            .db_instance_status("gone")
            .build()
    });
    let group = aws_sdk_eks::Client::new(&regional(config, secondary))
        .describe_nodegroup()
        .cluster_name(&scene.cluster)
        .nodegroup_name(&scene.node_group)
        .send()
        .await
        .map_err(|e| SandboxError::aws("describe node group", &e))?
        .nodegroup
        .unwrap_or_else(|| aws_sdk_eks::types::Nodegroup::builder().build());
    let controls = (
        scene.arc.state(&scene.rc_primary).await? == ControlState::On,
        scene.arc.state(&scene.rc_secondary).await? == ControlState::On,
    );
    let r53 = aws_sdk_route53::Client::new(&regional(config, "us-east-1"));
    let records = r53
        .list_resource_record_sets()
        .hosted_zone_id(&scene.zone_id)
        .send()
        .await
        .map_err(|e| SandboxError::aws("list records", &e))?;
    let record = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name == scene.record)
        .and_then(|r| r.resource_records().first().map(|v| v.value.clone()))
        .unwrap_or_default();
    let scaling = group
        .scaling_config
        .clone()
        .unwrap_or_else(|| NodegroupScalingConfig::builder().build());
    Ok(Observed {
        replica: (
            db.db_instance_status.clone().unwrap_or_default(),
            db.read_replica_source_db_instance_identifier.clone(),
        ),
        node_group: (
            scaling.min_size.unwrap_or_default(),
            scaling.desired_size.unwrap_or_default(),
            group
                .status
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
        ),
        controls,
        record,
    })
}

/// The metric switches of a scene without an ARC cluster: the two alarms template.yaml creates
/// with `FailoverMetricSwitches: create`, in the secondary region.
#[derive(Debug, Clone)]
pub struct MetricSwitchScene {
    /// The plan's `traffic.metric_switches` section.
    pub plan: Value,
    /// The metrics' namespace.
    pub namespace: String,
    /// The metric's name.
    pub metric: String,
    /// The dimension's name.
    pub dimension: String,
    /// The primary's alarm and its dimension value.
    pub primary: (String, String),
    /// The secondary's alarm and its dimension value.
    pub secondary: (String, String),
}

/// The namespace of the switch metrics (template.yaml, `FailoverMetricSwitches`).
pub const SWITCH_NAMESPACE: &str = "Breakwater/Traffic";
/// The switch metric's name.
pub const SWITCH_METRIC: &str = "RegionActive";

/// Creates the metric switches in the secondary region as template.yaml does (per side an alarm
/// `Maximum` over 60 s, one datapoint of one period, `LessThanThreshold` 1, `TreatMissingData`
/// `ignore`, on `Breakwater/Traffic` `RegionActive` with the side's `Region` dimension) and
/// writes the starting values the deployment guide has the operator write — the primary 1, the
/// secondary 0 — dated two minutes back (written at setup, before the scene), so that the
/// scene's own writes fall in a later period. The alarms are then OK (primary) and ALARM
/// (secondary), evaluated by the sandbox's CloudWatch (`moto_cloudwatch_alarms.py`). The
/// dimension values carry `suffix`: scenes sharing one server watch their own metrics.
///
/// moto's Route 53 accepts a `CLOUDWATCH_METRIC` health check but drops its `AlarmIdentifier`
/// and `InsufficientDataHealthStatus` and reports every check healthy, so the scene creates no
/// health check: what Route 53's checkers would read is the alarms' state, which the scene reads
/// back.
pub async fn metric_switches(
    config: &SdkConfig,
    estate: &Estate,
    suffix: &str,
) -> Result<MetricSwitchScene, SandboxError> {
    use aws_sdk_cloudwatch::types::{
        ComparisonOperator, Dimension, MetricDatum, StandardUnit, Statistic,
    };
    let primary = &estate.primary.region;
    let secondary = &estate.secondary.region;
    let cw = aws_sdk_cloudwatch::Client::new(&regional(config, secondary));
    let side = |region: &str| {
        (
            format!("sandbox-traffic-{region}{suffix}"),
            format!("{region}{suffix}"),
        )
    };
    let (p, s) = (side(primary), side(secondary));
    let back = aws_smithy_types::DateTime::from_millis(
        breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock) as i64 - 120_000,
    );
    for ((alarm, value), start) in [(&p, 1.0), (&s, 0.0)] {
        cw.put_metric_alarm()
            .alarm_name(alarm)
            .alarm_description(
                "Breakwater traffic switch: ALARM takes the side's health check unhealthy",
            )
            .namespace(SWITCH_NAMESPACE)
            .metric_name(SWITCH_METRIC)
            .dimensions(Dimension::builder().name("Region").value(value).build())
            .statistic(Statistic::Maximum)
            .period(60)
            .evaluation_periods(1)
            .datapoints_to_alarm(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::LessThanThreshold)
            .treat_missing_data("ignore")
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create alarm {alarm}"), &e))?;
        cw.put_metric_data()
            .namespace(SWITCH_NAMESPACE)
            .metric_data(
                MetricDatum::builder()
                    .metric_name(SWITCH_METRIC)
                    .dimensions(Dimension::builder().name("Region").value(value).build())
                    .value(start)
                    .unit(StandardUnit::None)
                    .timestamp(back)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("write the starting value of {alarm}"), &e))?;
    }
    let plan = json!({
        "namespace": SWITCH_NAMESPACE,
        "metric": SWITCH_METRIC,
        "dimension": "Region",
        "primary": {"alarm": p.0, "dimension_value": p.1},
        "secondary": {"alarm": s.0, "dimension_value": s.1}
    });
    Ok(MetricSwitchScene {
        plan,
        namespace: SWITCH_NAMESPACE.into(),
        metric: SWITCH_METRIC.into(),
        dimension: "Region".into(),
        primary: p,
        secondary: s,
    })
}

/// An alarm's state value in the secondary region, read back (`missing` when it does not
/// exist).
pub async fn alarm_state(
    config: &SdkConfig,
    region: &str,
    alarm: &str,
) -> Result<String, SandboxError> {
    let out = aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .describe_alarms()
        .alarm_names(alarm)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("describe alarm {alarm}"), &e))?;
    Ok(out
        .metric_alarms()
        .first()
        .and_then(|a| a.state_value())
        .map_or_else(|| "missing".into(), |s| s.as_str().to_string()))
}

/// The values written to one side's switch metric in the secondary region (`GetMetricData`, the
/// last `minutes` minutes, one-minute samples, every datum: `SampleCount`/`Minimum`/`Maximum`
/// are enough to tell 0 from 1 apart), newest first: `(sample count, minimum, maximum)` per
/// minute.
pub async fn switch_values(
    config: &SdkConfig,
    region: &str,
    dimension_value: &str,
    minutes: u64,
) -> Result<Vec<(f64, f64, f64)>, SandboxError> {
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
    let now = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock) as i64;
    let metric = Metric::builder()
        .namespace(SWITCH_NAMESPACE)
        .metric_name(SWITCH_METRIC)
        .dimensions(
            Dimension::builder()
                .name("Region")
                .value(dimension_value)
                .build(),
        )
        .build();
    let query = |id: &str, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric.clone())
                    .period(60)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build()
    };
    let out = aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .get_metric_data()
        .start_time(aws_smithy_types::DateTime::from_millis(
            now - (minutes as i64) * 60_000,
        ))
        .end_time(aws_smithy_types::DateTime::from_millis(now + 60_000))
        .scan_by(ScanBy::TimestampDescending)
        .metric_data_queries(query("n", "SampleCount"))
        .metric_data_queries(query("lo", "Minimum"))
        .metric_data_queries(query("hi", "Maximum"))
        .send()
        .await
        .map_err(|e| SandboxError::aws("read the switch metric", &e))?;
    let series = |id: &str| {
        out.metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .map(|r| r.values().to_vec())
            .unwrap_or_default()
    };
    let (n, lo, hi) = (series("n"), series("lo"), series("hi"));
    Ok(n.iter()
        .zip(&lo)
        .zip(&hi)
        .map(|((n, lo), hi)| (*n, *lo, *hi))
        .collect())
}

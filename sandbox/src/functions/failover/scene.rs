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
        "eks": {"cluster": cluster, "node_groups": [{"name": node_group, "min": 2, "desired": 3}]},
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
    })
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

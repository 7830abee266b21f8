//! The scenes later issues add to the seeded estate. The budget scene: an EKS cluster whose node
//! groups carry the tags enforcement reads (non-critical, critical, production, untagged), RDS
//! instances and an Aurora cluster tagged by environment, a budget whose spend can be moved, and
//! an IAM role for the L4 guard-rail.

use aws_config::SdkConfig;
use aws_sdk_budgets::types::{Budget, BudgetType, CalculatedSpend, Spend, TimeUnit};
use aws_sdk_eks::types::{CapacityTypes, NodegroupScalingConfig, VpcConfigRequest};
use aws_sdk_rds::types::Tag;
use serde::{Deserialize, Serialize};

use crate::seed::{regional, ACCOUNT};
use crate::SandboxError;

/// What the budget scene created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetScene {
    /// The EKS cluster.
    pub cluster: String,
    /// Node group tagged `breakwater:criticality=non-critical` (min 2 / desired 4 / max 6, m5.large).
    pub batch_node_group: String,
    /// Node group tagged critical.
    pub critical_node_group: String,
    /// Node group tagged non-critical but `environment=production` (the deny-list wins).
    pub production_node_group: String,
    /// Node group without tags.
    pub untagged_node_group: String,
    /// DB instance tagged `environment=dev`.
    pub dev_instance: String,
    /// DB instance tagged `environment=production`.
    pub production_instance: String,
    /// Aurora cluster tagged `environment=staging`.
    pub staging_cluster: String,
    /// The budget's name.
    pub budget: String,
    /// An IAM role (a CI deployer) tagged `breakwater:budget-guardrail=allowed`.
    pub guardrail_role: String,
}

/// Creates the budget scene in `region`; names end with `suffix`.
pub async fn budget_scene(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
) -> Result<BudgetScene, SandboxError> {
    let config = regional(config, region);
    let eks = aws_sdk_eks::Client::new(&config);
    let rds = aws_sdk_rds::Client::new(&config);
    let scene = BudgetScene {
        cluster: format!("prod-{region}{suffix}"),
        batch_node_group: "batch".into(),
        critical_node_group: "api".into(),
        production_node_group: "checkout".into(),
        untagged_node_group: "misc".into(),
        dev_instance: format!("reporting-dev{suffix}"),
        production_instance: format!("orders-prod{suffix}"),
        staging_cluster: format!("analytics-staging{suffix}"),
        budget: format!("platform monthly{suffix}"),
        guardrail_role: format!("ci-deployer{suffix}"),
    };
    eks.create_cluster()
        .name(&scene.cluster)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create cluster {}", scene.cluster), &e))?;
    let groups: [(&str, &[(&str, &str)]); 4] = [
        (
            &scene.batch_node_group,
            &[
                ("breakwater:criticality", "non-critical"),
                ("environment", "dev"),
            ],
        ),
        (
            &scene.critical_node_group,
            &[("breakwater:criticality", "critical")],
        ),
        (
            &scene.production_node_group,
            &[
                ("breakwater:criticality", "non-critical"),
                ("environment", "production"),
            ],
        ),
        (&scene.untagged_node_group, &[]),
    ];
    for (name, tags) in groups {
        let mut request = eks
            .create_nodegroup()
            .cluster_name(&scene.cluster)
            .nodegroup_name(name)
            .node_role(format!("arn:aws:iam::{ACCOUNT}:role/eks-node"))
            .subnets("subnet-0a1b2c3d")
            .instance_types("m5.large")
            .capacity_type(CapacityTypes::OnDemand)
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(2)
                    .desired_size(4)
                    .max_size(6)
                    .build(),
            );
        for (k, v) in tags {
            request = request.tags(*k, *v);
        }
        request
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create node group {name}"), &e))?;
    }
    for (id, environment) in [
        (&scene.dev_instance, "dev"),
        (&scene.production_instance, "production"),
    ] {
        rds.create_db_instance()
            .db_instance_identifier(id)
            .db_instance_class("db.t3.medium")
            .engine("postgres")
            .master_username("breakwater")
            .master_user_password("sandbox-password-1")
            .allocated_storage(20)
            .tags(Tag::builder().key("environment").value(environment).build())
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create DB instance {id}"), &e))?;
    }
    rds.create_db_cluster()
        .db_cluster_identifier(&scene.staging_cluster)
        .engine("aurora-postgresql")
        .master_username("breakwater")
        .master_user_password("sandbox-password-1")
        .tags(Tag::builder().key("environment").value("staging").build())
        .send()
        .await
        .map_err(|e| {
            SandboxError::aws(&format!("create DB cluster {}", scene.staging_cluster), &e)
        })?;
    aws_sdk_iam::Client::new(&regional(&config, "us-east-1"))
        .create_role()
        .role_name(&scene.guardrail_role)
        .tags(
            aws_sdk_iam::types::Tag::builder()
                .key("breakwater:budget-guardrail")
                .value("allowed")
                .build()
                .map_err(|e| SandboxError::Seed(e.to_string()))?,
        )
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"codebuild.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create role {}", scene.guardrail_role), &e))?;
    set_spend(&config, &scene.budget, "2460", "800", Some("1800")).await?;
    Ok(scene)
}

/// Creates or replaces the monthly cost budget `name` with the given limit and spend (moto does
/// not implement `UpdateBudget`, so the budget is recreated).
pub async fn set_spend(
    config: &SdkConfig,
    name: &str,
    limit: &str,
    actual: &str,
    forecast: Option<&str>,
) -> Result<(), SandboxError> {
    let budgets = aws_sdk_budgets::Client::new(&regional(config, "us-east-1"));
    let _ = budgets
        .delete_budget()
        .account_id(ACCOUNT)
        .budget_name(name)
        .send()
        .await;
    let money = |amount: &str| {
        Spend::builder()
            .amount(amount)
            .unit("USD")
            .build()
            .map_err(|e| SandboxError::Seed(e.to_string()))
    };
    let mut spend = CalculatedSpend::builder().actual_spend(money(actual)?);
    if let Some(f) = forecast {
        spend = spend.forecasted_spend(money(f)?);
    }
    let budget = Budget::builder()
        .budget_name(name)
        .budget_limit(money(limit)?)
        .time_unit(TimeUnit::Monthly)
        .budget_type(BudgetType::Cost)
        .calculated_spend(spend.build())
        .build()
        .map_err(|e| SandboxError::Seed(e.to_string()))?;
    budgets
        .create_budget()
        .account_id(ACCOUNT)
        .budget(budget)
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create budget {name}"), &e))?;
    Ok(())
}

/// A Budgets alert message exactly as AWS words it (for the scene's SNS deliveries).
pub fn budget_alert_text(
    name: &str,
    alert_type: &str,
    limit: &str,
    threshold: &str,
    amount: &str,
) -> String {
    format!(
        "AWS Budget Notification November 20, 2026\nAWS Account {ACCOUNT}\n\nDear AWS Customer,\n\n\
         You requested that we alert you when the {alert_type} Cost associated with your {name} budget is greater than {threshold} for the current month. \
         The {alert_type} Cost associated with this budget is {amount}. You can find additional details below and by accessing the AWS Budgets dashboard [1].\n\n\
         Budget Name: {name}\nBudget Type: Cost\nBudgeted Amount: {limit}\nAlert Type: {alert_type}\nAlert Threshold: > {threshold}\n{alert_type} Amount: {amount}\n\n\
         [1] https://console.aws.amazon.com/billing/home#/budgets\n"
    )
}

/// The SNS event Lambda receives for `message` on the budget topic.
pub fn sns_event(message_id: &str, subject: &str, message: &str) -> serde_json::Value {
    let topic = format!("arn:aws:sns:us-east-1:{ACCOUNT}:breakwater-budget");
    serde_json::json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:2bcfbf39-05c3-41de-beaa-fcfcc21c8f55"),
        "Sns": {
            "Type": "Notification", "MessageId": message_id, "TopicArn": topic, "Subject": subject,
            "Message": message, "Timestamp": "2026-11-20T08:00:00.000Z", "SignatureVersion": "1",
            "Signature": "EXAMPLE", "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0.pem",
            "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe", "MessageAttributes": {}
        }
    }]})
}

/// What the spot scene created in moto (the Kubernetes side is seeded with [`spot_nodes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpotScene {
    /// The EKS cluster.
    pub cluster: String,
    /// The spot node group (`m5.large` in the first AZ).
    pub spot_node_group: String,
    /// The on-demand node group failover raises (min 1 / desired 1 / max 10).
    pub on_demand_node_group: String,
    /// The spot instances, tagged as EKS tags them.
    pub instances: Vec<String>,
    /// An instance of a cluster this deployment does not manage.
    pub foreign_instance: String,
    /// The availability zone.
    pub az: String,
}

/// Creates the spot scene in `region`: a cluster with a spot and an on-demand node group, and
/// `count` spot instances tagged with the cluster and node group.
pub async fn spot_scene(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
    count: usize,
) -> Result<SpotScene, SandboxError> {
    use aws_sdk_ec2::types::{
        InstanceMarketOptionsRequest, InstanceType, MarketType, Placement, ResourceType,
        Tag as Ec2Tag, TagSpecification,
    };
    let config = regional(config, region);
    let eks = aws_sdk_eks::Client::new(&config);
    let ec2 = aws_sdk_ec2::Client::new(&config);
    let az = format!("{region}a");
    let mut scene = SpotScene {
        cluster: format!("shop-{region}{suffix}"),
        spot_node_group: "spot-a".into(),
        on_demand_node_group: "on-demand".into(),
        instances: Vec::new(),
        foreign_instance: String::new(),
        az: az.clone(),
    };
    eks.create_cluster()
        .name(&scene.cluster)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/eks-cluster"))
        .resources_vpc_config(
            VpcConfigRequest::builder()
                .subnet_ids("subnet-0a1b2c3d")
                .build(),
        )
        .send()
        .await
        .map_err(|e| SandboxError::aws(&format!("create cluster {}", scene.cluster), &e))?;
    for (name, capacity, size) in [
        (&scene.spot_node_group, CapacityTypes::Spot, 4),
        (&scene.on_demand_node_group, CapacityTypes::OnDemand, 1),
    ] {
        eks.create_nodegroup()
            .cluster_name(&scene.cluster)
            .nodegroup_name(name)
            .node_role(format!("arn:aws:iam::{ACCOUNT}:role/eks-node"))
            .subnets("subnet-0a1b2c3d")
            .instance_types("m5.large")
            .capacity_type(capacity)
            .scaling_config(
                NodegroupScalingConfig::builder()
                    .min_size(size)
                    .desired_size(size)
                    .max_size(10)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| SandboxError::aws(&format!("create node group {name}"), &e))?;
    }
    let image = ec2
        .describe_images()
        .send()
        .await
        .map_err(|e| SandboxError::aws("describe images", &e))?
        .images()
        .first()
        .and_then(|i| i.image_id().map(str::to_string))
        .ok_or_else(|| SandboxError::Seed("moto has no AMI".into()))?;
    let run = |cluster: String, node_group: String, n: usize| {
        let tags = TagSpecification::builder()
            .resource_type(ResourceType::Instance)
            .tags(
                Ec2Tag::builder()
                    .key("eks:cluster-name")
                    .value(cluster)
                    .build(),
            )
            .tags(
                Ec2Tag::builder()
                    .key("eks:nodegroup-name")
                    .value(node_group)
                    .build(),
            )
            .build();
        ec2.run_instances()
            .image_id(&image)
            .instance_type(InstanceType::M5Large)
            .min_count(n as i32)
            .max_count(n as i32)
            .placement(Placement::builder().availability_zone(&az).build())
            .instance_market_options(
                InstanceMarketOptionsRequest::builder()
                    .market_type(MarketType::Spot)
                    .build(),
            )
            .tag_specifications(tags)
            .send()
    };
    let ran = run(scene.cluster.clone(), scene.spot_node_group.clone(), count)
        .await
        .map_err(|e| SandboxError::aws("run spot instances", &e))?;
    scene.instances = ran
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_string))
        .collect();
    let foreign = run(format!("someone-else{suffix}"), "spot".into(), 1)
        .await
        .map_err(|e| SandboxError::aws("run a foreign instance", &e))?;
    scene.foreign_instance = foreign
        .instances()
        .first()
        .and_then(|i| i.instance_id().map(str::to_string))
        .unwrap_or_default();
    Ok(scene)
}

/// Seeds the Kubernetes emulator with one node per instance (named as EKS names them) and an
/// on-demand node to move pods to.
pub fn spot_nodes(
    emulator: &crate::kube::KubeEmulator,
    scene: &SpotScene,
) -> Result<Vec<String>, SandboxError> {
    use crate::kube::fixtures::node;
    let mut names = Vec::new();
    for (i, id) in scene.instances.iter().enumerate() {
        let name = format!("ip-10-0-{}-{}.ec2.internal", i / 250, i % 250 + 1);
        emulator
            .create(
                "nodes",
                "",
                node(&name, id, &scene.az, &scene.spot_node_group, "SPOT"),
            )
            .map_err(|e| SandboxError::Seed(e.message))?;
        names.push(name);
    }
    emulator
        .create(
            "nodes",
            "",
            node(
                "ip-10-1-0-1.ec2.internal",
                "i-0ffffffffffffffff",
                &scene.az,
                &scene.on_demand_node_group,
                "ON_DEMAND",
            ),
        )
        .map_err(|e| SandboxError::Seed(e.message))?;
    Ok(names)
}

/// Publishes one day-old S3 daily storage datapoint for `bucket` (what S3 sends CloudWatch once a
/// day; moto has no objects' sizes to derive it from): the bytes of each storage type given and
/// the object count.
pub async fn s3_storage_metrics(
    config: &SdkConfig,
    region: &str,
    bucket: &str,
    bytes_by_storage_type: &[(&str, f64)],
    objects: f64,
    now_ms: u64,
) -> Result<(), SandboxError> {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let at = aws_sdk_cloudwatch::primitives::DateTime::from_millis(now_ms as i64 - 86_400_000);
    let datum = |metric: &str, storage_type: &str, value: f64| {
        MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                Dimension::builder()
                    .name("BucketName")
                    .value(bucket)
                    .build(),
            )
            .dimensions(
                Dimension::builder()
                    .name("StorageType")
                    .value(storage_type)
                    .build(),
            )
            .timestamp(at)
            .value(value)
            .build()
    };
    let data = bytes_by_storage_type
        .iter()
        .map(|(storage_type, bytes)| datum("BucketSizeBytes", storage_type, *bytes))
        .chain([datum("NumberOfObjects", "AllStorageTypes", objects)]);
    aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .put_metric_data()
        .namespace("AWS/S3")
        .set_metric_data(Some(data.collect()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| SandboxError::aws("put storage metrics", &e))
}

/// The EventBridge `Scheduled Event` a function's schedule rule delivers at `time_ms`.
pub fn schedule_event(id: &str, region: &str, time_ms: u64) -> serde_json::Value {
    serde_json::json!({"version": "0", "id": id, "detail-type": "Scheduled Event",
        "source": "aws.events", "account": ACCOUNT, "time": breakwater::clock::rfc3339(time_ms),
        "region": region, "resources": [], "detail": {}})
}

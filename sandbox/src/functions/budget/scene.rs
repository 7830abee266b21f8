//! The budget scene in moto: an EKS cluster whose node groups carry the tags enforcement reads
//! (non-critical, critical, production, untagged), RDS instances and an Aurora cluster tagged by
//! environment, a budget whose spend can be moved, and an IAM role for the L4 guard-rail.

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

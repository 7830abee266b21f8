//! The rollback scene: the operations plan's alarms for one workload in CloudWatch (moto) —
//! error rate above 1 % for 5 minutes as metric math, P95 latency above 2 s for 5 minutes —
//! tagged with the workload they guard, and a Deployment with a rollout history in the
//! Kubernetes emulator (two nodes to run it on).

use aws_config::SdkConfig;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat, StateValue, Tag,
};
use serde_json::{json, Value};

use crate::kube::fixtures::{deployment, node};
use crate::kube::KubeEmulator;
use crate::seed::regional;
use crate::SandboxError;

/// What the scene created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackScene {
    /// The cluster name the alarms' tags carry.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// The Deployment.
    pub deployment: String,
    /// P95 latency > 2 s for 5 minutes.
    pub latency_alarm: String,
    /// Its ARN.
    pub latency_alarm_arn: String,
    /// 5xx / requests > 1 % for 5 minutes (metric math).
    pub error_alarm: String,
    /// Its ARN.
    pub error_alarm_arn: String,
}

fn tags(cluster: &str, namespace: &str, name: &str) -> Vec<Tag> {
    [
        ("breakwater:cluster", cluster),
        ("breakwater:namespace", namespace),
        ("breakwater:kind", "Deployment"),
        ("breakwater:workload", name),
    ]
    .iter()
    .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
    .collect()
}

fn stat(id: &str, metric: &str, load_balancer: &str) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .return_data(false)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/ApplicationELB")
                        .metric_name(metric)
                        .dimensions(
                            Dimension::builder()
                                .name("LoadBalancer")
                                .value(load_balancer)
                                .build(),
                        )
                        .build(),
                )
                .period(60)
                .stat("Sum")
                .build(),
        )
        .build()
}

/// Creates the alarms in `region` (names end with `suffix`) and the Deployment `web` in
/// namespace `shop` with revision 1 (`web:1`); the cluster is `cluster`.
pub async fn rollback_scene(
    config: &SdkConfig,
    region: &str,
    suffix: &str,
    cluster: &str,
    emu: &KubeEmulator,
) -> Result<RollbackScene, SandboxError> {
    let cw = aws_sdk_cloudwatch::Client::new(&regional(config, region));
    let namespace = "shop";
    let name = "web";
    let load_balancer = format!("app/web{suffix}/50dc6c495c0c9188");
    let latency_alarm = format!("web-p95-latency{suffix}");
    let error_alarm = format!("web-error-rate{suffix}");
    let fail = |e: &(dyn std::error::Error + 'static)| {
        SandboxError::Seed(format!(
            "put alarm: {}",
            breakwater::aws::describe_sdk_error(e)
        ))
    };
    put_latency_alarm(
        config,
        region,
        &latency_alarm,
        &load_balancer,
        cluster,
        namespace,
        name,
    )
    .await?;
    cw.put_metric_alarm()
        .alarm_name(&error_alarm)
        .alarm_description("5xx / requests above 1 % for 5 minutes (operations plan)")
        .metrics(stat("errors", "HTTPCode_Target_5XX_Count", &load_balancer))
        .metrics(stat("requests", "RequestCount", &load_balancer))
        .metrics(
            MetricDataQuery::builder()
                .id("rate")
                .expression("errors / requests")
                .label("5xx rate")
                .return_data(true)
                .build(),
        )
        .evaluation_periods(5)
        .datapoints_to_alarm(5)
        .threshold(0.01)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .set_tags(Some(tags(cluster, namespace, name)))
        .send()
        .await
        .map_err(|e| fail(&e))?;
    let arn = |alarm: &str| {
        format!(
            "arn:aws:cloudwatch:{region}:{}:alarm:{alarm}",
            crate::seed::ACCOUNT
        )
    };
    for (i, zone) in ["a", "b"].iter().enumerate() {
        let id = format!("i-0r{i:015}");
        emu.create(
            "nodes",
            "",
            node(
                &format!("ip-10-1-{i}-1.ec2.internal"),
                &id,
                &format!("{region}{zone}"),
                "apps",
                "ON_DEMAND",
            ),
        )
        .map_err(|e| SandboxError::Io(e.message))?;
    }
    emu.create("namespaces", "", json!({"metadata": {"name": namespace}}))
        .map_err(|e| SandboxError::Io(e.message))?;
    emu.create("deployments", namespace, deployment(name, name, 3, "web:1"))
        .map_err(|e| SandboxError::Io(e.message))?;
    Ok(RollbackScene {
        cluster: cluster.to_string(),
        namespace: namespace.into(),
        deployment: name.into(),
        latency_alarm_arn: arn(&latency_alarm),
        latency_alarm,
        error_alarm_arn: arn(&error_alarm),
        error_alarm,
    })
}

/// Puts the operations plan's P95 latency alarm (> 2 s for 5 minutes) on `load_balancer`, tagged
/// with the workload it guards; returns its ARN.
pub async fn put_latency_alarm(
    config: &SdkConfig,
    region: &str,
    alarm: &str,
    load_balancer: &str,
    cluster: &str,
    namespace: &str,
    name: &str,
) -> Result<String, SandboxError> {
    let cw = aws_sdk_cloudwatch::Client::new(&regional(config, region));
    cw.put_metric_alarm()
        .alarm_name(alarm)
        .alarm_description("P95 latency above 2 s for 5 minutes (operations plan)")
        .namespace("AWS/ApplicationELB")
        .metric_name("TargetResponseTime")
        .dimensions(
            Dimension::builder()
                .name("LoadBalancer")
                .value(load_balancer)
                .build(),
        )
        .extended_statistic("p95")
        .period(60)
        .evaluation_periods(5)
        .datapoints_to_alarm(5)
        .threshold(2.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data("notBreaching")
        .set_tags(Some(tags(cluster, namespace, name)))
        .send()
        .await
        .map_err(|e| SandboxError::aws("put alarm", &e))?;
    Ok(format!(
        "arn:aws:cloudwatch:{region}:{}:alarm:{alarm}",
        crate::seed::ACCOUNT
    ))
}

/// Rolls the Deployment out to `image` (what `kubectl set image` does), with a change cause.
pub fn roll_out(
    emu: &KubeEmulator,
    namespace: &str,
    name: &str,
    image: &str,
) -> Result<Value, SandboxError> {
    let kind = crate::kube::store::find_kind("apps", "v1", "deployments")
        .ok_or_else(|| SandboxError::Io("no deployments kind".into()))?;
    let patch = json!({
        "metadata": {"annotations": {"kubernetes.io/change-cause": format!("kubectl set image deployment/{name} {name}={image}")}},
        "spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}},
    });
    emu.with(|c| {
        c.patch(
            kind,
            namespace,
            name,
            "application/strategic-merge-patch+json",
            &patch,
            false,
        )
    })
    .map_err(|e| SandboxError::Io(e.message))
}

/// Moves an alarm's state in moto (`SetAlarmState`).
pub async fn set_alarm(
    config: &SdkConfig,
    region: &str,
    alarm: &str,
    state: &str,
) -> Result<(), SandboxError> {
    aws_sdk_cloudwatch::Client::new(&regional(config, region))
        .set_alarm_state()
        .alarm_name(alarm)
        .state_value(StateValue::from(state))
        .state_reason(format!("set by the sandbox: {state}"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| SandboxError::Seed(format!("set alarm state: {e}")))
}

/// An EventBridge `CloudWatch Alarm State Change` for `alarm`: `previous` → `state` at `at_ms`.
pub fn alarm_event(
    id: &str,
    region: &str,
    alarm: &str,
    arn: &str,
    previous: &str,
    state: &str,
    at_ms: u64,
) -> Value {
    let at = breakwater::clock::rfc3339(at_ms).replace('Z', "+0000");
    json!({"version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": crate::seed::ACCOUNT, "time": breakwater::clock::rfc3339(at_ms),
        "region": region, "resources": [arn],
        "detail": {"alarmName": alarm,
            "state": {"value": state, "reason": format!("Threshold Crossed ({state})"), "timestamp": at},
            "previousState": {"value": previous, "reason": "earlier", "timestamp": at},
            "configuration": {"description": "sandbox"}}})
}

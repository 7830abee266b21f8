//! The plan's traffic section: Route 53 ARC routing controls (the data plane, first choice),
//! CloudWatch-metric switches (the data plane, second choice: accounts without an ARC cluster)
//! or, as the last resort, records UPSERTed through Route 53's control plane; and their checks.

use std::collections::BTreeSet;

use breakwater::config::is_region_name;
use breakwater::ports::{ClusterEndpoint, DnsRecord, SwitchMetric};
use serde::{Deserialize, Serialize};

use super::{field, PlanError};

/// How traffic moves: Route 53 ARC routing controls (the data plane, first choice), and/or
/// records UPSERTed through Route 53's API — a control plane that lives in us-east-1, so the
/// last resort: `plan` and `precheck` say so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrafficPlan {
    /// The routing controls that move traffic (preferred).
    #[serde(default)]
    pub routing_controls: Option<RoutingControlPlan>,
    /// The CloudWatch-metric switches that move traffic (the second choice, without an ARC
    /// cluster; exclusive with `routing_controls`).
    #[serde(default)]
    pub metric_switches: Option<MetricSwitchPlan>,
    /// The hosted zone of `records`.
    #[serde(default)]
    pub zone_id: Option<String>,
    /// Records to UPSERT (the last resort: needs Route 53's control plane in us-east-1).
    #[serde(default)]
    pub records: Vec<RecordPlan>,
    /// The `Inverted` health-check switches of earlier versions, refused by name when a stored
    /// plan still has them (see [`Plan::validate`]).
    #[serde(default, skip_serializing)]
    pub health_checks: Option<serde_json::Value>,
}

/// Route 53 ARC routing controls: one per region, each the switch of that region's failover
/// record (a `RECOVERY_CONTROL` health check). Traffic moves when the secondary's is set `On`
/// and the primary's `Off`, in one `UpdateRoutingControlStates` against any of the cluster's
/// regional endpoints ("To implement failover, you set one routing control to ON and another
/// one to OFF", Routing Control API Reference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingControlPlan {
    /// The cluster's regional endpoints (`ClusterEndpoints` of the cluster, five in AWS).
    pub cluster_endpoints: Vec<ClusterEndpoint>,
    /// The primary region's routing control ARN.
    pub primary: String,
    /// The secondary region's routing control ARN.
    pub secondary: String,
}

impl RoutingControlPlan {
    /// The control of the side traffic leaves and of the side it goes to.
    pub fn sides(&self, toward_secondary: bool) -> (&str, &str) {
        if toward_secondary {
            (&self.primary, &self.secondary)
        } else {
            (&self.secondary, &self.primary)
        }
    }
}

/// CloudWatch-metric switches: per region, a CloudWatch alarm in the SECONDARY region on a
/// metric the function writes there with `PutMetricData` (1: the side takes traffic, 0: it does
/// not), watched by that side's Route 53 health check of type `CLOUDWATCH_METRIC`, which carries
/// the side's failover record. The alarms and the metric live in the secondary region so that
/// they outlive the primary's loss; writing them is a data-plane call there. Route 53's checkers
/// read the alarm named in the check's `AlarmIdentifier` ("the CloudWatch alarm that you want
/// Amazon Route 53 health checkers to use to determine whether this health check is healthy",
/// <https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html>). A failover
/// writes primary 0 / secondary 1 and waits until the secondary's alarm is `OK` (its check
/// healthy) and the primary's `ALARM` (its check unhealthy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSwitchPlan {
    /// The metrics' namespace (template: `Breakwater/Traffic`).
    pub namespace: String,
    /// The metric's name (template: `RegionActive`).
    pub metric: String,
    /// The name of the dimension that tells the sides apart (template: `Region`).
    pub dimension: String,
    /// The primary region's side.
    pub primary: MetricSwitchSide,
    /// The secondary region's side.
    pub secondary: MetricSwitchSide,
}

/// One side of a [`MetricSwitchPlan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSwitchSide {
    /// The alarm (in the secondary region) the side's health check watches.
    pub alarm: String,
    /// The side's value of the dimension (template: the region's name).
    pub dimension_value: String,
}

impl MetricSwitchPlan {
    /// The side's metric.
    pub fn metric_of(&self, side: &MetricSwitchSide) -> SwitchMetric {
        SwitchMetric {
            namespace: self.namespace.clone(),
            metric: self.metric.clone(),
            dimension: (self.dimension.clone(), side.dimension_value.clone()),
        }
    }

    /// The side traffic leaves and the side it goes to.
    pub fn sides(&self, toward_secondary: bool) -> (&MetricSwitchSide, &MetricSwitchSide) {
        if toward_secondary {
            (&self.primary, &self.secondary)
        } else {
            (&self.secondary, &self.primary)
        }
    }
}

/// One record and its value in each region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPlan {
    /// The name.
    pub name: String,
    /// `A`, `AAAA` or `CNAME`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Seconds.
    pub ttl: i64,
    /// Its value when the primary serves.
    pub primary: String,
    /// Its value when the secondary serves.
    pub secondary: String,
}

impl RecordPlan {
    /// The record pointing at `secondary` (true) or the primary.
    pub fn record(&self, secondary: bool) -> DnsRecord {
        DnsRecord {
            name: breakwater::aws::route53::fqdn(&self.name),
            kind: self.kind.clone(),
            ttl: self.ttl,
            value: if secondary {
                self.secondary.clone()
            } else {
                self.primary.clone()
            },
        }
    }
}

/// Checks the routing controls: endpoints as ARC gives them (HTTPS, each with its region; plain
/// HTTP only on loopback, for the sandbox), and two different routing-control ARNs
/// (`arn:aws:route53-recovery-control::<account>:controlpanel/<id>/routingcontrol/<id>`, the
/// shape in the Routing Control API Reference).
pub(super) fn validate_routing_controls(controls: &RoutingControlPlan) -> Result<(), PlanError> {
    let path = "traffic.routing_controls";
    if controls.cluster_endpoints.is_empty() {
        return Err(field(
            &format!("{path}.cluster_endpoints"),
            "name the cluster's regional endpoints (its ClusterEndpoints: five in AWS)",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, e) in controls.cluster_endpoints.iter().enumerate() {
        let at = format!("{path}.cluster_endpoints[{i}]");
        let loopback = ["http://127.0.0.1:", "http://localhost:"]
            .iter()
            .any(|p| e.endpoint.starts_with(p));
        if !(e.endpoint.starts_with("https://") || loopback) || e.endpoint.len() < 12 {
            return Err(field(
                &format!("{at}.endpoint"),
                format!("{:?}: an https:// URL", e.endpoint),
            ));
        }
        if !is_region_name(&e.region) {
            return Err(field(
                &format!("{at}.region"),
                format!("{:?} is not a region name", e.region),
            ));
        }
        if !seen.insert(&e.endpoint) {
            return Err(field(&format!("{at}.endpoint"), "listed twice"));
        }
    }
    for (side, arn) in [
        ("primary", &controls.primary),
        ("secondary", &controls.secondary),
    ] {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let resource: Vec<&str> = parts
            .get(5)
            .map(|r| r.split('/').collect())
            .unwrap_or_default();
        let shaped = parts.len() == 6
            && parts[0] == "arn"
            && parts[2] == "route53-recovery-control"
            && parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].bytes().all(|b| b.is_ascii_digit())
            && resource.len() == 4
            && resource[0] == "controlpanel"
            && resource[2] == "routingcontrol"
            && !resource[1].is_empty()
            && !resource[3].is_empty();
        if !shaped {
            return Err(field(
                &format!("{path}.{side}"),
                format!(
                    "{arn:?}: a routing control ARN \
                     (arn:aws:route53-recovery-control::<account>:controlpanel/<id>/routingcontrol/<id>)"
                ),
            ));
        }
    }
    if controls.primary == controls.secondary {
        return Err(field(
            &format!("{path}.secondary"),
            "must differ from primary",
        ));
    }
    Ok(())
}

/// Whether `text` is 1–`max` characters with no ASCII control character.
fn printable(text: &str, max: usize) -> bool {
    !text.is_empty() && text.chars().count() <= max && !text.chars().any(|c| c.is_ascii_control())
}

/// Checks the metric switches against the CloudWatch API reference:
/// - `Namespace` (PutMetricData): 1–255 characters, pattern `[^:].*`, "ASCII characters …, except
///   for control characters", and not `AWS/` ("Namespaces that begin with AWS/ are reserved for
///   use by Amazon Web Services products");
/// - `MetricName` (MetricDatum): 1–255 characters;
/// - `Dimension` (Dimension): `Name` 1–255 characters, at least one non-whitespace character, not
///   starting with a colon; `Value` 1–1024 characters, at least one non-whitespace character;
/// - `AlarmName` (PutMetricAlarm): 1–255 characters, "UTF-8 characters, and can't contain ASCII
///   control characters".
///
/// Sources: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>,
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>,
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html>,
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html>.
pub(super) fn validate_metric_switches(switches: &MetricSwitchPlan) -> Result<(), PlanError> {
    let path = "traffic.metric_switches";
    let ns = &switches.namespace;
    if !printable(ns, 255) || !ns.is_ascii() || ns.starts_with(':') {
        return Err(field(
            &format!("{path}.namespace"),
            format!("{ns:?}: 1–255 ASCII characters, no control characters, not starting with ':'"),
        ));
    }
    if ns.starts_with("AWS/") {
        return Err(field(
            &format!("{path}.namespace"),
            format!("{ns:?}: namespaces that begin with AWS/ are reserved for AWS services"),
        ));
    }
    if !printable(&switches.metric, 255) {
        return Err(field(
            &format!("{path}.metric"),
            format!("{:?}: a metric name of 1–255 characters", switches.metric),
        ));
    }
    let dim = &switches.dimension;
    if !printable(dim, 255) || dim.trim().is_empty() || dim.starts_with(':') {
        return Err(field(
            &format!("{path}.dimension"),
            format!(
                "{dim:?}: a dimension name of 1–255 characters, not blank, not starting with ':'"
            ),
        ));
    }
    for (side, s) in [
        ("primary", &switches.primary),
        ("secondary", &switches.secondary),
    ] {
        if !printable(&s.alarm, 255) {
            return Err(field(
                &format!("{path}.{side}.alarm"),
                format!(
                    "{:?}: an alarm name of 1–255 characters without control characters",
                    s.alarm
                ),
            ));
        }
        if !printable(&s.dimension_value, 1024) || s.dimension_value.trim().is_empty() {
            return Err(field(
                &format!("{path}.{side}.dimension_value"),
                format!(
                    "{:?}: a dimension value of 1–1024 characters, not blank",
                    s.dimension_value
                ),
            ));
        }
    }
    if switches.primary.alarm == switches.secondary.alarm {
        return Err(field(
            &format!("{path}.secondary.alarm"),
            "must differ from primary.alarm",
        ));
    }
    if switches.primary.dimension_value == switches.secondary.dimension_value {
        return Err(field(
            &format!("{path}.secondary.dimension_value"),
            "must differ from primary.dimension_value (one metric per side)",
        ));
    }
    Ok(())
}

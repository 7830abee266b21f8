//! The plan's traffic section: Route 53 ARC routing controls (the data plane) or, as the last
//! resort, records UPSERTed through Route 53's control plane; and their checks.

use std::collections::BTreeSet;

use breakwater::config::is_region_name;
use breakwater::ports::{ClusterEndpoint, DnsRecord};
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

//! The failover plan: one JSON document naming everything a failover touches, validated on load
//! with errors that name the field, and hashed so that every execution records which plan it ran.

use std::collections::BTreeSet;

use breakwater::config::is_region_name;
use breakwater::ports::{NodeGroupId, ReplicaPlacement};
use serde::{Deserialize, Serialize};

mod detection;
mod traffic;

pub use detection::{Detection, Maintenance, SignalPlan};
use traffic::{validate_metric_switches, validate_routing_controls};
pub use traffic::{
    MetricSwitchPlan, MetricSwitchSide, RecordPlan, RoutingControlPlan, TrafficPlan,
};

/// The plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Its name; manual invocations repeat it in `confirm`.
    pub name: String,
    /// Where production runs.
    pub primary_region: String,
    /// The standby, where a failover activates.
    pub secondary_region: String,
    /// The database.
    pub database: DatabasePlan,
    /// The standby EKS cluster's node groups.
    #[serde(default)]
    pub eks: Option<EksPlan>,
    /// How traffic moves.
    pub traffic: TrafficPlan,
    /// RTO and RPO.
    pub targets: Targets,
    /// When to act.
    pub detection: Detection,
    /// `topic_arn`, no longer read (phase notifications go to the function's topic): accepted
    /// and ignored, so that a stored plan that still names one keeps loading.
    #[serde(default, rename = "topic_arn", skip_serializing)]
    retired_topic_arn: Retired,
    /// The health endpoint of the secondary, checked by `verify` (HTTPS GET, 2xx/3xx).
    #[serde(default)]
    pub secondary_health_url: Option<String>,
}

/// A field plans once carried and no longer use: any value is accepted and dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Retired;

impl<'de> Deserialize<'de> for Retired {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Retired)
    }
}

/// `rds` (a cross-region read replica) or `aurora-global`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabasePlan {
    /// `rds` or `aurora-global`.
    pub engine: String,
    /// rds: the read replica in the secondary region.
    #[serde(default)]
    pub replica: Option<String>,
    /// rds: the primary instance (in the primary region; re-protected from after a failback).
    #[serde(default)]
    pub primary: Option<String>,
    /// aurora-global: the global cluster.
    #[serde(default)]
    pub global_cluster: Option<String>,
    /// aurora-global: the secondary cluster's ARN (the new writer).
    #[serde(default)]
    pub target_cluster_arn: Option<String>,
    /// aurora-global: the primary cluster's ARN (the writer a failback returns to).
    #[serde(default)]
    pub primary_cluster_arn: Option<String>,
    /// rds, failback: the KMS key (ARN, in the primary region) that encrypts the replica
    /// re-created there. Required when the database is encrypted: a cross-region replica of an
    /// encrypted instance needs a key of its own region (CreateDBInstanceReadReplica, KmsKeyId).
    #[serde(default)]
    pub primary_kms_key_id: Option<String>,
    /// rds, failback: the DB subnet group (in the primary region) of the re-created replica.
    #[serde(default)]
    pub primary_db_subnet_group: Option<String>,
    /// rds, failback: the VPC security groups (`sg-…`, in the primary region) of the
    /// re-created replica.
    #[serde(default)]
    pub primary_vpc_security_groups: Vec<String>,
}

/// The database engine, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A cross-region RDS read replica.
    Rds {
        /// The replica (secondary region).
        replica: String,
        /// The primary (primary region), when named.
        primary: Option<String>,
    },
    /// An Aurora global database.
    AuroraGlobal {
        /// The global cluster.
        global_cluster: String,
        /// The cluster that becomes the writer.
        target_cluster_arn: String,
        /// The cluster a failback returns the writer to.
        primary_cluster_arn: Option<String>,
    },
}

impl Database {
    /// The cross-region RDS replica `plan` and `precheck` read; `None` for an Aurora global
    /// database (its clusters are read through the global cluster).
    pub fn replica(&self) -> Option<&str> {
        match self {
            Database::Rds { replica, .. } => Some(replica),
            Database::AuroraGlobal { .. } => None,
        }
    }
}

/// Node groups to raise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EksPlan {
    /// The cluster in the secondary region.
    pub cluster: String,
    /// Its node groups and their failover sizes. The capacity is ready when each group has
    /// `desired` nodes `Ready` in the cluster (read through its API server).
    pub node_groups: Vec<NodeGroupTarget>,
    /// Deployments that must have ready pods before the capacity counts as ready: traffic moves
    /// only once they can serve.
    #[serde(default)]
    pub critical_workloads: Vec<CriticalWorkload>,
}

/// A Deployment of the standby cluster that must be serving before traffic moves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CriticalWorkload {
    /// Its namespace.
    pub namespace: String,
    /// The Deployment's name.
    pub deployment: String,
    /// How many ready pods are enough (default: all of `spec.replicas`).
    #[serde(default)]
    pub min_ready: Option<i32>,
}

/// Whether `name` is an RFC 1123 DNS label (a namespace's name: at most 63 characters, lower-case
/// alphanumerics and '-', starting and ending alphanumeric), or with `subdomain` a DNS subdomain
/// (a Deployment's name: at most 253, labels joined by '.'), as the API server checks them
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/names/>).
fn is_dns_name(name: &str, subdomain: bool) -> bool {
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if subdomain {
        name.len() <= 253 && name.split('.').all(label)
    } else {
        label(name)
    }
}

/// One node group's failover size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeGroupTarget {
    /// Its name.
    pub name: String,
    /// minSize to set (so a cluster autoscaler cannot undo it).
    pub min: i32,
    /// desiredSize to set.
    pub desired: i32,
}

/// The objectives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Recovery time objective.
    pub rto_seconds: u64,
    /// Recovery point objective: the most replica lag an unplanned promotion accepts.
    pub rpo_seconds: u64,
}

/// A plan that did not load; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid plan: {}", self.0)
    }
}

/// A loaded plan and its hash.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedPlan {
    /// The plan.
    pub plan: Plan,
    /// `sha256:<hex>` of the document as loaded.
    pub hash: String,
    /// The database, resolved.
    pub database: Database,
}

/// Parses and validates a plan document.
pub fn load(document: &[u8]) -> Result<LoadedPlan, PlanError> {
    let mut de = serde_json::Deserializer::from_slice(document);
    let plan: Plan = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            PlanError(inner.to_string())
        } else {
            PlanError(format!("{path}: {inner}"))
        }
    })?;
    let database = plan.validate()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, document);
    let hash = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    Ok(LoadedPlan {
        plan,
        hash: format!("sha256:{hash}"),
        database,
    })
}

fn field(path: &str, reason: impl std::fmt::Display) -> PlanError {
    PlanError(format!("{path}: {reason}"))
}

impl Plan {
    fn validate(&self) -> Result<Database, PlanError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(field("name", "1–64 letters, digits, '-' or '_'"));
        }
        for (path, region) in [
            ("primary_region", &self.primary_region),
            ("secondary_region", &self.secondary_region),
        ] {
            if !is_region_name(region) {
                return Err(field(path, format!("{region:?} is not a region name")));
            }
        }
        if self.primary_region == self.secondary_region {
            return Err(field("secondary_region", "must differ from primary_region"));
        }
        let database = self.database.resolve()?;
        self.database.validate_placement(&self.primary_region)?;
        if let Some(eks) = &self.eks {
            if eks.cluster.is_empty() {
                return Err(field("eks.cluster", "must not be empty"));
            }
            if eks.node_groups.is_empty() {
                return Err(field(
                    "eks.node_groups",
                    "must name at least one node group",
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, group) in eks.node_groups.iter().enumerate() {
                if group.name.is_empty() || !seen.insert(&group.name) {
                    return Err(field(
                        &format!("eks.node_groups[{i}].name"),
                        "must be present and unique",
                    ));
                }
                if group.min < 0 || group.desired < group.min {
                    return Err(field(
                        &format!("eks.node_groups[{i}]"),
                        format!(
                            "min {} and desired {} must satisfy 0 ≤ min ≤ desired",
                            group.min, group.desired
                        ),
                    ));
                }
            }
            let mut seen = BTreeSet::new();
            for (i, w) in eks.critical_workloads.iter().enumerate() {
                let at = format!("eks.critical_workloads[{i}]");
                if !is_dns_name(&w.namespace, false) {
                    return Err(field(
                        &format!("{at}.namespace"),
                        format!(
                            "{:?} is not a namespace name (an RFC 1123 label)",
                            w.namespace
                        ),
                    ));
                }
                if !is_dns_name(&w.deployment, true) {
                    return Err(field(
                        &format!("{at}.deployment"),
                        format!(
                            "{:?} is not a Deployment name (a DNS subdomain)",
                            w.deployment
                        ),
                    ));
                }
                if !seen.insert((&w.namespace, &w.deployment)) {
                    return Err(field(&at, "listed twice"));
                }
                if w.min_ready.is_some_and(|m| m < 1) {
                    return Err(field(&format!("{at}.min_ready"), "at least 1 when given"));
                }
            }
        }
        let traffic = &self.traffic;
        if traffic.health_checks.is_some() {
            return Err(field(
                "traffic.health_checks",
                "no longer supported: flipping Inverted on a health check is a Route 53 \
                 control-plane call (us-east-1), and an inverted check of a primary that is down \
                 reports healthy. Name traffic.routing_controls (Route 53 ARC) instead",
            ));
        }
        if traffic.routing_controls.is_some() && traffic.metric_switches.is_some() {
            return Err(field(
                "traffic.metric_switches",
                "name routing_controls or metric_switches, not both: one switch moves traffic \
                 (metric_switches are the second choice, for accounts without an ARC cluster)",
            ));
        }
        if traffic.metric_switches.is_some() && !traffic.records.is_empty() {
            return Err(field(
                "traffic.records",
                "name metric_switches or records, not both: with metric switches the failover \
                 records stay as they are (their CLOUDWATCH_METRIC health checks move traffic)",
            ));
        }
        let switched = traffic.routing_controls.is_some() || traffic.metric_switches.is_some();
        match (switched, traffic.records.is_empty()) {
            (false, true) => {
                return Err(field(
                    "traffic",
                    "name routing_controls (Route 53 ARC), or metric_switches (CloudWatch-metric \
                     health checks, without ARC), or records as the last resort: a failover must \
                     move traffic",
                ))
            }
            (true, false) => {
                // Records with routing controls are the RECOVERY_CONTROL failover pair: static,
                // moved by the controls. UPSERTing them too would need Route 53's control
                // plane, the dependency the controls exist to avoid.
                return Err(field(
                    "traffic.records",
                    "name routing_controls or records, not both: with routing controls the \
                     failover records stay as they are",
                ));
            }
            _ => {}
        }
        if let Some(controls) = &traffic.routing_controls {
            validate_routing_controls(controls)?;
        }
        if let Some(switches) = &traffic.metric_switches {
            validate_metric_switches(switches)?;
        }
        if !traffic.records.is_empty() && traffic.zone_id.as_deref().unwrap_or("").is_empty() {
            return Err(field("traffic.zone_id", "is required with records"));
        }
        for (i, record) in traffic.records.iter().enumerate() {
            if !matches!(record.kind.as_str(), "A" | "AAAA" | "CNAME") {
                return Err(field(
                    &format!("traffic.records[{i}].type"),
                    format!("{:?}: A, AAAA or CNAME", record.kind),
                ));
            }
            if record.name.is_empty() || record.primary.is_empty() || record.secondary.is_empty() {
                return Err(field(
                    &format!("traffic.records[{i}]"),
                    "name, primary and secondary are required",
                ));
            }
            if !(0..=86_400).contains(&record.ttl) {
                return Err(field(
                    &format!("traffic.records[{i}].ttl"),
                    "0–86400 seconds",
                ));
            }
        }
        if self.targets.rto_seconds == 0 {
            return Err(field("targets.rto_seconds", "must be positive"));
        }
        self.detection.validate()?;
        Ok(database)
    }

    /// The node groups to raise, with their identities.
    pub fn node_groups(&self) -> Vec<(NodeGroupId, &NodeGroupTarget)> {
        self.eks
            .iter()
            .flat_map(|eks| {
                eks.node_groups.iter().map(|g| {
                    (
                        NodeGroupId {
                            cluster: eks.cluster.clone(),
                            name: g.name.clone(),
                        },
                        g,
                    )
                })
            })
            .collect()
    }
}

impl DatabasePlan {
    /// Where failback re-creates the replica in the primary region, and its key.
    pub fn primary_placement(&self) -> ReplicaPlacement {
        ReplicaPlacement {
            kms_key_id: self.primary_kms_key_id.clone().filter(|s| !s.is_empty()),
            subnet_group: self
                .primary_db_subnet_group
                .clone()
                .filter(|s| !s.is_empty()),
            security_groups: self.primary_vpc_security_groups.clone(),
        }
    }

    /// The re-created replica's key, subnet group and security groups, in `primary_region`.
    fn validate_placement(&self, primary_region: &str) -> Result<(), PlanError> {
        let named = self.primary_kms_key_id.is_some()
            || self.primary_db_subnet_group.is_some()
            || !self.primary_vpc_security_groups.is_empty();
        if named && self.engine != "rds" {
            return Err(field(
                "database.primary_kms_key_id",
                "primary_kms_key_id, primary_db_subnet_group and primary_vpc_security_groups belong to engine rds (failback's re-created replica)",
            ));
        }
        if let Some(key) = &self.primary_kms_key_id {
            // KMS keys are regional ("you can't use KMS keys from one AWS Region in another AWS
            // Region", CreateDBInstanceReadReplica, KmsKeyId), and the template grants the key
            // by ARN: arn:<partition>:kms:<primary region>:<account>:key/<id>.
            let parts: Vec<&str> = key.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && parts[2] == "kms"
                && parts[3] == primary_region
                && parts[4].len() == 12
                && parts[4].chars().all(|c| c.is_ascii_digit())
                && parts[5].strip_prefix("key/").is_some_and(|id| {
                    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                return Err(field(
                    "database.primary_kms_key_id",
                    format!("{key:?}: the ARN of a KMS key in {primary_region} (arn:aws:kms:{primary_region}:<account>:key/<id>), where failback re-creates the replica: KMS keys are regional"),
                ));
            }
        }
        if let Some(group) = &self.primary_db_subnet_group {
            // "Constraints: Must match the name of an existing DBSubnetGroup. Must not be
            // default." (CreateDBInstanceReadReplica, DBSubnetGroupName); names are up to 255
            // letters, digits, periods, underscores, spaces or hyphens (CreateDBSubnetGroup).
            let ok = !group.is_empty()
                && group.len() <= 255
                && !group.eq_ignore_ascii_case("default")
                && group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ' ' | '-'));
            if !ok {
                return Err(field(
                    "database.primary_db_subnet_group",
                    format!("{group:?}: a DB subnet group name in {primary_region} (1–255 letters, digits, '.', '_', ' ' or '-'; not \"default\")"),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, sg) in self.primary_vpc_security_groups.iter().enumerate() {
            let hex = sg.strip_prefix("sg-").unwrap_or_default();
            if !matches!(hex.len(), 8 | 17) || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(field(
                    &format!("database.primary_vpc_security_groups[{i}]"),
                    format!("{sg:?}: a security group id (sg- and 8 or 17 hex digits)"),
                ));
            }
            if !seen.insert(sg) {
                return Err(field(
                    &format!("database.primary_vpc_security_groups[{i}]"),
                    format!("{sg} is named twice"),
                ));
            }
        }
        Ok(())
    }

    fn resolve(&self) -> Result<Database, PlanError> {
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        match self.engine.as_str() {
            "rds" => {
                if !present(&self.replica) {
                    return Err(field("database.replica", "is required for engine rds"));
                }
                if present(&self.global_cluster) || present(&self.target_cluster_arn) {
                    return Err(field(
                        "database.global_cluster",
                        "belongs to engine aurora-global, not rds",
                    ));
                }
                Ok(Database::Rds {
                    replica: self.replica.clone().unwrap_or_default(),
                    primary: self.primary.clone().filter(|s| !s.is_empty()),
                })
            }
            "aurora-global" => {
                if !present(&self.global_cluster) {
                    return Err(field(
                        "database.global_cluster",
                        "is required for engine aurora-global",
                    ));
                }
                let arn = self.target_cluster_arn.clone().unwrap_or_default();
                if !arn.starts_with("arn:") || !arn.contains(":cluster:") {
                    return Err(field(
                        "database.target_cluster_arn",
                        "the secondary DB cluster's ARN (arn:aws:rds:<region>:<account>:cluster:<id>)",
                    ));
                }
                Ok(Database::AuroraGlobal {
                    global_cluster: self.global_cluster.clone().unwrap_or_default(),
                    target_cluster_arn: arn,
                    primary_cluster_arn: self.primary_cluster_arn.clone().filter(|s| !s.is_empty()),
                })
            }
            other => Err(field(
                "database.engine",
                format!("{other:?}: rds or aurora-global"),
            )),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> serde_json::Value {
        serde_json::json!({
            "name": "prod",
            "primary_region": "us-east-1",
            "secondary_region": "us-west-2",
            "database": {"engine": "rds", "replica": "orders-replica", "primary": "orders"},
            "eks": {"cluster": "standby", "node_groups": [{"name": "web", "min": 3, "desired": 3}]},
            "traffic": {
                "routing_controls": {
                    "cluster_endpoints": [
                        {"endpoint": "https://host-aaaaaa.us-east-1.example.aws/v1", "region": "us-east-1"},
                        {"endpoint": "https://host-bbbbbb.us-west-2.example.aws/v1", "region": "us-west-2"},
                        {"endpoint": "https://host-cccccc.eu-west-1.example.aws/v1", "region": "eu-west-1"},
                        {"endpoint": "https://host-dddddd.ap-northeast-1.example.aws/v1", "region": "ap-northeast-1"},
                        {"endpoint": "https://host-eeeeee.ap-southeast-2.example.aws/v1", "region": "ap-southeast-2"}
                    ],
                    "primary": "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456bbbbbbbbbbbbbbbbbbbbbbbbb/routingcontrol/east0123456789",
                    "secondary": "arn:aws:route53-recovery-control::123456789012:controlpanel/0123456bbbbbbbbbbbbbbbbbbbbbbbbb/routingcontrol/west0123456789"
                },
            },
            "targets": {"rto_seconds": 900, "rpo_seconds": 60},
            "detection": {"quorum": 2, "window_seconds": 120, "cooldown_seconds": 3600,
                "signals": [
                    {"name": "5xx", "kind": "alarm", "alarm": "east-5xx"},
                    {"name": "probe", "kind": "probe", "url": "https://east.example.com/health"},
                    {"name": "r53", "kind": "alarm", "alarm": "east-hc", "corroborating": true}
                ]}
        })
    }

    /// The example moving traffic by records (the last resort) instead of routing controls.
    pub(crate) fn with_records(mut plan: serde_json::Value) -> serde_json::Value {
        plan["traffic"] = serde_json::json!({
            "zone_id": "Z1",
            "records": [{"name": "api.example.com", "type": "CNAME", "ttl": 60,
                         "primary": "east.example.com", "secondary": "west.example.com"}]
        });
        plan
    }

    fn error(plan: serde_json::Value) -> String {
        load(plan.to_string().as_bytes()).unwrap_err().0
    }

    #[test]
    fn a_good_plan_loads_with_its_hash() {
        let doc = example().to_string();
        let loaded = load(doc.as_bytes()).unwrap();
        assert_eq!(loaded.plan.name, "prod");
        assert!(loaded.hash.starts_with("sha256:") && loaded.hash.len() == 71);
        assert_eq!(load(doc.as_bytes()).unwrap().hash, loaded.hash);
        assert_eq!(
            loaded.database,
            Database::Rds {
                replica: "orders-replica".into(),
                primary: Some("orders".into())
            }
        );
    }

    #[test]
    fn critical_workloads_are_named_as_the_api_server_names_them() {
        let mut p = example();
        p["eks"]["critical_workloads"] =
            serde_json::json!([{"namespace": "shop", "deployment": "api.v2", "min_ready": 2}]);
        let loaded = load(p.to_string().as_bytes()).unwrap();
        let eks = loaded.plan.eks.unwrap();
        assert_eq!(eks.critical_workloads[0].min_ready, Some(2));
        for (workload, starts) in [
            (
                serde_json::json!({"namespace": "Shop", "deployment": "api"}),
                "eks.critical_workloads[0].namespace:",
            ),
            (
                serde_json::json!({"namespace": "shop", "deployment": "api_v2"}),
                "eks.critical_workloads[0].deployment:",
            ),
            (
                serde_json::json!({"namespace": "shop", "deployment": "api", "min_ready": 0}),
                "eks.critical_workloads[0].min_ready:",
            ),
            (
                serde_json::json!({"namespace": "shop", "deployment": "api", "replicas": 2}),
                "eks.critical_workloads[0]",
            ),
        ] {
            let mut p = example();
            p["eks"]["critical_workloads"] = serde_json::json!([workload]);
            let e = error(p);
            assert!(e.starts_with(starts), "{e}");
        }
        let mut p = example();
        let api = serde_json::json!({"namespace": "shop", "deployment": "api"});
        p["eks"]["critical_workloads"] = serde_json::json!([api, api]);
        assert!(error(p).starts_with("eks.critical_workloads[1]: listed twice"));
    }

    #[test]
    fn errors_name_the_field() {
        let mut p = example();
        p["detection"]["quorum"] = "two".into();
        assert!(error(p).starts_with("detection.quorum: invalid type"), "");
        let mut p = with_records(example());
        p["traffic"]["records"][0]["ttl"] = serde_json::Value::Null;
        assert!(error(p).starts_with("traffic.records[0].ttl"));
        let mut p = example();
        p["eks"]["node_groups"][0]["size"] = 3.into();
        let e = error(p);
        assert!(
            e.starts_with("eks.node_groups[0]") && e.contains("unknown field `size`"),
            "{e}"
        );
        let mut p = example();
        p["database"]["engine"] = "mysql".into();
        assert!(error(p).starts_with("database.engine"));
        let mut p = example();
        p["detection"]["quorum"] = 3.into();
        assert!(error(p).contains("not corroborating-only"));
        let mut p = example();
        p["secondary_region"] = "us-east-1".into();
        assert!(error(p).starts_with("secondary_region"));
        let mut p = example();
        p["traffic"] = serde_json::json!({});
        assert!(error(p).starts_with("traffic:"));
        let mut p = example();
        p["eks"]["node_groups"][0]["desired"] = 1.into();
        assert!(error(p).starts_with("eks.node_groups[0]:"));
        let mut p = example();
        p["detection"]["signals"][1]["url"] = "ftp://x".into();
        assert!(error(p).starts_with("detection.signals[1].url"));
        let mut p = example();
        p.as_object_mut().unwrap().remove("targets");
        assert!(error(p).contains("missing field `targets`"));
        assert!(load(b"{").unwrap_err().0.contains("EOF"));
    }

    #[test]
    fn routing_controls_are_checked_and_the_old_health_check_switches_are_refused_by_name() {
        let mut p = example();
        p["traffic"]["routing_controls"]["cluster_endpoints"] = serde_json::json!([]);
        assert!(error(p).starts_with("traffic.routing_controls.cluster_endpoints:"));
        let mut p = example();
        p["traffic"]["routing_controls"]["cluster_endpoints"][2]["endpoint"] =
            "http://host.example.aws/v1".into();
        assert!(error(p).starts_with("traffic.routing_controls.cluster_endpoints[2].endpoint"));
        let mut p = example();
        p["traffic"]["routing_controls"]["cluster_endpoints"][1]["region"] = "Oregon".into();
        assert!(error(p).starts_with("traffic.routing_controls.cluster_endpoints[1].region"));
        let mut p = example();
        p["traffic"]["routing_controls"]["primary"] = "hc-east".into();
        assert!(error(p).starts_with("traffic.routing_controls.primary"));
        let mut p = example();
        p["traffic"]["routing_controls"]["secondary"] =
            p["traffic"]["routing_controls"]["primary"].clone();
        assert!(error(p).starts_with("traffic.routing_controls.secondary: must differ"));
        // A stored plan of an earlier version: told what replaced it, not "unknown field".
        let mut p = example();
        p["traffic"]["health_checks"] = serde_json::json!({"primary": "a", "secondary": "b"});
        let e = error(p);
        assert!(
            e.starts_with("traffic.health_checks: no longer supported")
                && e.contains("routing_controls"),
            "{e}"
        );
        // Records alone still load (the last resort); records beside routing controls do not.
        assert!(load(with_records(example()).to_string().as_bytes()).is_ok());
        let mut p = example();
        p["traffic"]["zone_id"] = "Z1".into();
        p["traffic"]["records"] = with_records(example())["traffic"]["records"].clone();
        assert!(error(p).starts_with("traffic.records: name routing_controls or records"));
    }

    /// The example moving traffic by CloudWatch-metric switches (no ARC cluster), as the
    /// template's `FailoverMetricSwitches: create` names them for plan `prod`.
    pub(crate) fn with_metric_switches(mut plan: serde_json::Value) -> serde_json::Value {
        plan["traffic"] = serde_json::json!({
            "metric_switches": {
                "namespace": "Breakwater/Traffic",
                "metric": "RegionActive",
                "dimension": "Region",
                "primary": {"alarm": "prod-traffic-us-east-1", "dimension_value": "us-east-1"},
                "secondary": {"alarm": "prod-traffic-us-west-2", "dimension_value": "us-west-2"}
            }
        });
        plan
    }

    #[test]
    fn metric_switches_load_and_their_shape_is_checked_naming_the_field() {
        // GIVEN the example plan moving traffic by metric switches
        let loaded = load(with_metric_switches(example()).to_string().as_bytes()).unwrap();
        let ms = loaded.plan.traffic.metric_switches.as_ref().unwrap();
        assert_eq!(
            ms.metric_of(&ms.primary).dimension,
            ("Region".to_string(), "us-east-1".to_string())
        );
        let bad = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut p = with_metric_switches(example());
            f(&mut p["traffic"]["metric_switches"]);
            error(p)
        };
        // THEN each CloudWatch rule is checked, naming the field
        let e = bad(&|m| m["namespace"] = "AWS/Route53".into());
        assert!(
            e.starts_with("traffic.metric_switches.namespace") && e.contains("reserved"),
            "{e}"
        );
        let e = bad(&|m| m["namespace"] = ":Traffic".into());
        assert!(e.starts_with("traffic.metric_switches.namespace"), "{e}");
        let e = bad(&|m| m["namespace"] = "Trafic/Ä".into());
        assert!(e.starts_with("traffic.metric_switches.namespace"), "{e}");
        let e = bad(&|m| m["namespace"] = "x".repeat(256).into());
        assert!(e.starts_with("traffic.metric_switches.namespace"), "{e}");
        let e = bad(&|m| m["metric"] = "".into());
        assert!(e.starts_with("traffic.metric_switches.metric"), "{e}");
        let e = bad(&|m| m["dimension"] = ":Region".into());
        assert!(e.starts_with("traffic.metric_switches.dimension"), "{e}");
        let e = bad(&|m| m["dimension"] = "  ".into());
        assert!(e.starts_with("traffic.metric_switches.dimension"), "{e}");
        let e = bad(&|m| m["primary"]["alarm"] = "a\nb".into());
        assert!(
            e.starts_with("traffic.metric_switches.primary.alarm"),
            "{e}"
        );
        let e = bad(&|m| m["secondary"]["alarm"] = "x".repeat(256).into());
        assert!(
            e.starts_with("traffic.metric_switches.secondary.alarm"),
            "{e}"
        );
        let e = bad(&|m| m["secondary"]["dimension_value"] = "".into());
        assert!(
            e.starts_with("traffic.metric_switches.secondary.dimension_value"),
            "{e}"
        );
        let e = bad(&|m| m["secondary"]["alarm"] = m["primary"]["alarm"].clone());
        assert!(
            e.starts_with("traffic.metric_switches.secondary.alarm: must differ"),
            "{e}"
        );
        let e =
            bad(&|m| m["secondary"]["dimension_value"] = m["primary"]["dimension_value"].clone());
        assert!(
            e.starts_with("traffic.metric_switches.secondary.dimension_value"),
            "{e}"
        );
        let e = bad(&|m| m["high_resolution"] = true.into());
        assert!(
            e.starts_with("traffic.metric_switches") && e.contains("unknown field"),
            "{e}"
        );
        let e = bad(&|m| {
            m.as_object_mut()
                .unwrap()
                .remove("dimension")
                .map(|_| ())
                .unwrap()
        });
        assert!(e.contains("missing field `dimension`"), "{e}");
        // AND a UTF-8 alarm name is an alarm name (PutMetricAlarm: "UTF-8 characters")
        assert!(load(
            {
                let mut p = with_metric_switches(example());
                p["traffic"]["metric_switches"]["primary"]["alarm"] = "trafic-Zürich".into();
                p
            }
            .to_string()
            .as_bytes()
        )
        .is_ok());
    }

    #[test]
    fn metric_switches_exclude_routing_controls_and_records() {
        // GIVEN routing controls and metric switches in one plan
        let mut p = example();
        p["traffic"]["metric_switches"] =
            with_metric_switches(example())["traffic"]["metric_switches"].clone();
        let e = error(p);
        // THEN the error names both
        assert!(
            e.starts_with(
                "traffic.metric_switches: name routing_controls or metric_switches, not both"
            ),
            "{e}"
        );
        // AND records beside metric switches are refused too (they stay the last resort)
        let mut p = with_metric_switches(example());
        p["traffic"]["zone_id"] = "Z1".into();
        p["traffic"]["records"] = with_records(example())["traffic"]["records"].clone();
        let e = error(p);
        assert!(
            e.starts_with("traffic.records: name metric_switches or records"),
            "{e}"
        );
        // AND a plan with none of the three says all three
        let mut p = example();
        p["traffic"] = serde_json::json!({});
        let e = error(p);
        assert!(
            e.contains("metric_switches") && e.contains("routing_controls"),
            "{e}"
        );
    }

    #[test]
    fn the_re_created_replicas_key_subnet_group_and_security_groups_are_checked() {
        // GIVEN the example plan naming a key, a subnet group and security groups in its
        // primary region for failback's replica
        let mut p = example();
        let key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        p["database"]["primary_kms_key_id"] = key.into();
        p["database"]["primary_db_subnet_group"] = "orders-east".into();
        p["database"]["primary_vpc_security_groups"] = serde_json::json!(["sg-0123456789abcdef0"]);
        // WHEN it is loaded THEN they are the replica's placement
        let loaded = load(p.to_string().as_bytes()).unwrap();
        assert_eq!(
            loaded.plan.database.primary_placement(),
            ReplicaPlacement {
                kms_key_id: Some(key.into()),
                subnet_group: Some("orders-east".into()),
                security_groups: vec!["sg-0123456789abcdef0".into()],
            }
        );
        // AND a key of another region, a key id that is not an ARN, a bad subnet group or
        // security group, or any of them on Aurora, is refused naming the field
        let bad = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut p = p.clone();
            f(&mut p);
            error(p)
        };
        let e = bad(&|p| {
            p["database"]["primary_kms_key_id"] =
                "arn:aws:kms:us-west-2:123456789012:key/1234abcd".into()
        });
        assert!(
            e.starts_with("database.primary_kms_key_id") && e.contains("KMS keys are regional"),
            "{e}"
        );
        let e = bad(&|p| p["database"]["primary_kms_key_id"] = "alias/aws/rds".into());
        assert!(e.starts_with("database.primary_kms_key_id"), "{e}");
        let e = bad(&|p| p["database"]["primary_db_subnet_group"] = "default".into());
        assert!(e.starts_with("database.primary_db_subnet_group"), "{e}");
        let e = bad(&|p| p["database"]["primary_vpc_security_groups"][0] = "sg-xyz".into());
        assert!(
            e.starts_with("database.primary_vpc_security_groups[0]"),
            "{e}"
        );
        let e = bad(&|p| {
            p["database"]["primary_vpc_security_groups"] =
                serde_json::json!(["sg-0123456789abcdef0", "sg-0123456789abcdef0"])
        });
        assert!(e.contains("named twice"), "{e}");
        let e = bad(&|p| {
            p["database"] = serde_json::json!({"engine": "aurora-global", "global_cluster": "g",
                "target_cluster_arn": "arn:aws:rds:us-west-2:123456789012:cluster:w",
                "primary_kms_key_id": key});
        });
        assert!(e.contains("belong to engine rds"), "{e}");
        // AND a plan without them re-creates the replica unencrypted, where RDS places it
        assert_eq!(
            load(example().to_string().as_bytes())
                .unwrap()
                .plan
                .database
                .primary_placement(),
            ReplicaPlacement::default()
        );
    }

    #[test]
    fn an_old_plan_naming_a_topic_still_loads_and_the_topic_is_not_kept() {
        // GIVEN a stored plan from before topic_arn was retired
        let mut p = example();
        p["topic_arn"] = "arn:aws:sns:us-west-2:123456789012:old".into();
        // WHEN it is loaded
        let loaded = load(p.to_string().as_bytes()).unwrap();
        // THEN it loads, and the topic is nowhere in the plan as written back
        let written = serde_json::to_value(&loaded.plan).unwrap();
        assert!(written.get("topic_arn").is_none(), "{written}");
        assert_eq!(loaded.plan.name, "prod");
    }
}

//! The dependency lint: every endpoint each step of a failover calls, by region, and whether it
//! is a control plane. A recovery that needs a control plane in the region it fails away from
//! cannot be counted on when that region is down: AWS's guidance is to recover through data
//! planes only, and to remember that the control planes of Route 53, IAM and STS's global
//! endpoint live in us-east-1 ("AWS Fault Isolation Boundaries", global services: "the control
//! plane … is hosted in the us-east-1 Region"; Well-Architected REL11-BP04, "Rely on the data
//! plane and not the control plane during recovery").
//!
//! The function itself runs in the region it fails toward, with its state store, topic and
//! logs there: they are not listed.

use serde::Serialize;

use crate::plan::{Database, LoadedPlan};

/// Where Route 53's API (its control plane) is served from.
pub const ROUTE53_CONTROL_PLANE: &str = "us-east-1";

/// One call a step makes, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependency {
    /// The step.
    pub step: &'static str,
    /// `service:Operation`.
    pub call: &'static str,
    /// The endpoint(s) called.
    pub endpoints: Vec<String>,
    /// The regions of those endpoints. With `any_of`, one answering is enough.
    pub regions: Vec<String>,
    /// Whether any one of `endpoints` will do (the ARC cluster's regional endpoints).
    pub any_of: bool,
    /// `data` or `control`.
    pub plane: &'static str,
}

impl Dependency {
    /// Whether the call cannot be made with `region` down: every endpoint it may use is there.
    pub fn needs(&self, region: &str) -> bool {
        if self.any_of {
            !self.regions.is_empty() && self.regions.iter().all(|r| r == region)
        } else {
            self.regions.iter().any(|r| r == region)
        }
    }
}

fn regional(step: &'static str, call: &'static str, service: &str, region: &str) -> Dependency {
    Dependency {
        step,
        call,
        endpoints: vec![format!("https://{service}.{region}.amazonaws.com")],
        regions: vec![region.to_string()],
        any_of: false,
        plane: "control",
    }
}

/// The calls of a failover toward the secondary region, step by step.
pub fn failover(plan: &LoadedPlan) -> Vec<Dependency> {
    let p = &plan.plan;
    let to = p.secondary_region.as_str();
    let mut deps = Vec::new();
    let arc = |step: &'static str, call: &'static str| {
        p.traffic.routing_controls.as_ref().map(|rc| Dependency {
            step,
            call,
            endpoints: rc
                .cluster_endpoints
                .iter()
                .map(|e| e.endpoint.clone())
                .collect(),
            regions: rc
                .cluster_endpoints
                .iter()
                .map(|e| e.region.clone())
                .collect(),
            any_of: true,
            plane: "data",
        })
    };
    // The metric switches: CloudWatch in the secondary region, where the alarms the
    // CLOUDWATCH_METRIC health checks watch live (`monitoring.<region>`: CloudWatch's endpoint).
    let cloudwatch = |step: &'static str, call: &'static str| {
        p.traffic.metric_switches.as_ref().map(|_| Dependency {
            step,
            call,
            endpoints: vec![format!("https://monitoring.{to}.amazonaws.com")],
            regions: vec![to.to_string()],
            any_of: false,
            plane: "data",
        })
    };
    deps.extend(arc(
        "fence",
        "route53-recovery-cluster:UpdateRoutingControlStates",
    ));
    match &plan.database {
        Database::Rds { .. } => {
            deps.push(regional("database", "rds:PromoteReadReplica", "rds", to))
        }
        Database::AuroraGlobal { .. } => {
            deps.push(regional("database", "rds:FailoverGlobalCluster", "rds", to))
        }
    }
    // The standby cluster's API server, read until the capacity is ready: its endpoint from
    // DescribeCluster, a token the function presigns for STS in the cluster's region (the API
    // server has STS there verify it), then nodes and Deployments read.
    let kubernetes = |step: &'static str| {
        p.eks.as_ref().map(|eks| {
            [
                Dependency {
                    step,
                    call: "sts:GetCallerIdentity (the EKS token, presigned)",
                    endpoints: vec![format!("https://sts.{to}.amazonaws.com")],
                    regions: vec![to.to_string()],
                    any_of: false,
                    plane: "data",
                },
                Dependency {
                    step,
                    call: "kubernetes: list nodes, get deployments",
                    endpoints: vec![format!(
                        "the API server of EKS cluster {} ({to})",
                        eks.cluster
                    )],
                    regions: vec![to.to_string()],
                    any_of: false,
                    plane: "data",
                },
            ]
        })
    };
    if p.eks.is_some() {
        deps.push(regional("nodes", "eks:UpdateNodegroupConfig", "eks", to));
        deps.push(regional("nodes", "eks:DescribeCluster", "eks", to));
    }
    deps.extend(kubernetes("nodes").into_iter().flatten());
    deps.extend(arc(
        "traffic",
        "route53-recovery-cluster:UpdateRoutingControlStates",
    ));
    deps.extend(cloudwatch("traffic", "cloudwatch:PutMetricData"));
    deps.extend(cloudwatch("traffic", "cloudwatch:DescribeAlarms"));
    if !p.traffic.records.is_empty() {
        deps.push(Dependency {
            step: "traffic",
            call: "route53:ChangeResourceRecordSets",
            endpoints: vec!["https://route53.amazonaws.com".into()],
            regions: vec![ROUTE53_CONTROL_PLANE.into()],
            any_of: false,
            plane: "control",
        });
    }
    deps.extend(arc(
        "verify",
        "route53-recovery-cluster:GetRoutingControlState",
    ));
    deps.extend(cloudwatch("verify", "cloudwatch:DescribeAlarms"));
    deps.extend(kubernetes("verify").into_iter().flatten());
    deps
}

/// The calls that cannot be made with the primary region down, each said in a sentence.
pub fn blocked_by_primary(plan: &LoadedPlan) -> Vec<String> {
    let from = plan.plan.primary_region.as_str();
    failover(plan)
        .iter()
        .filter(|d| d.needs(from))
        .map(|d| {
            let why = if d.call.starts_with("route53:") {
                format!("Route 53's control plane, served from {ROUTE53_CONTROL_PLANE}")
            } else if d.any_of {
                format!("every endpoint listed is in {from}")
            } else {
                format!("a {} plane in {from}", d.plane)
            };
            format!(
                "step {} calls {} ({why}), which is lost with {from}",
                d.step, d.call
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::load;
    use crate::plan::tests::{example, with_metric_switches, with_records};

    fn plan(value: serde_json::Value) -> LoadedPlan {
        load(value.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn routing_controls_in_five_regions_leave_nothing_in_the_failed_region() {
        // GIVEN the example plan: us-east-1 → us-west-2, traffic by ARC routing controls
        let plan = plan(example());
        // THEN every step can run with us-east-1 gone: the cluster has four other endpoints
        assert_eq!(blocked_by_primary(&plan), Vec::<String>::new());
        let mut steps: Vec<&str> = failover(&plan).iter().map(|d| d.step).collect();
        steps.dedup();
        assert_eq!(steps, ["fence", "database", "nodes", "traffic", "verify"]);
        // AND the capacity is read in the standby cluster's own region, through its API server
        let nodes: Vec<&str> = failover(&plan)
            .iter()
            .filter(|d| d.step == "nodes")
            .map(|d| d.call)
            .collect();
        assert_eq!(
            nodes,
            [
                "eks:UpdateNodegroupConfig",
                "eks:DescribeCluster",
                "sts:GetCallerIdentity (the EKS token, presigned)",
                "kubernetes: list nodes, get deployments"
            ]
        );
        assert!(failover(&plan)
            .iter()
            .filter(|d| d.step != "fence" && d.step != "traffic" && d.step != "verify")
            .all(|d| d.regions == ["us-west-2"]));
    }

    #[test]
    fn metric_switches_are_data_plane_calls_in_the_secondary_region() {
        // GIVEN the example plan moving traffic by metric switches, us-east-1 → us-west-2
        let plan = plan(with_metric_switches(example()));
        // THEN nothing is blocked with us-east-1 gone
        assert_eq!(blocked_by_primary(&plan), Vec::<String>::new());
        // AND traffic and verify call CloudWatch in us-west-2, a data plane (no fence: the
        // traffic step switches the new side on before the old off)
        let cw: Vec<(&str, &str)> = failover(&plan)
            .iter()
            .filter(|d| d.call.starts_with("cloudwatch:"))
            .map(|d| (d.step, d.call))
            .collect();
        assert_eq!(
            cw,
            [
                ("traffic", "cloudwatch:PutMetricData"),
                ("traffic", "cloudwatch:DescribeAlarms"),
                ("verify", "cloudwatch:DescribeAlarms")
            ]
        );
        assert!(failover(&plan)
            .iter()
            .filter(|d| d.call.starts_with("cloudwatch:"))
            .all(|d| d.regions == ["us-west-2"]
                && d.endpoints == ["https://monitoring.us-west-2.amazonaws.com"]
                && d.plane == "data"));
        // AND no call goes to Route 53's API
        assert!(failover(&plan)
            .iter()
            .all(|d| !d.call.starts_with("route53:")));
    }

    #[test]
    fn dns_records_out_of_us_east_1_are_named_as_blocked() {
        // GIVEN a plan that moves traffic by UPSERTing records, failing away from us-east-1
        let mut p = with_records(example());
        let blocked = blocked_by_primary(&plan(p.clone()));
        // THEN the traffic step is named, with why
        assert_eq!(blocked.len(), 1, "{blocked:?}");
        assert!(
            blocked[0].starts_with("step traffic calls route53:ChangeResourceRecordSets")
                && blocked[0].contains("Route 53's control plane, served from us-east-1"),
            "{blocked:?}"
        );
        // AND failing away from us-west-2 instead, Route 53's API is still reachable
        p["primary_region"] = "us-west-2".into();
        p["secondary_region"] = "us-east-1".into();
        assert_eq!(blocked_by_primary(&plan(p)), Vec::<String>::new());
    }

    #[test]
    fn a_cluster_reachable_only_in_the_failed_region_is_blocked() {
        // GIVEN routing controls whose only listed endpoint is in the primary region
        let mut p = example();
        let first = p["traffic"]["routing_controls"]["cluster_endpoints"][0].clone();
        p["traffic"]["routing_controls"]["cluster_endpoints"] = serde_json::json!([first]);
        let blocked = blocked_by_primary(&plan(p));
        // THEN fence, traffic and verify are named
        assert_eq!(blocked.len(), 3, "{blocked:?}");
        assert!(blocked
            .iter()
            .all(|b| b.contains("every endpoint listed is in us-east-1")));
    }
}

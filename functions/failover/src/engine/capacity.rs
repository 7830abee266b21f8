//! Capacity that is ready, not requested: the standby cluster read through its API server —
//! each planned node group with `desired` nodes `Ready`, each critical Deployment with its
//! ready pods. EKS calls a node group `ACTIVE` at its new size when the Auto Scaling group has
//! it; the instances then boot and join, which takes minutes, and only then can pods run.

use breakwater::kube::capacity::Capacity;
use breakwater::kube::workloads::ObjectAt;
use breakwater::Error;

use crate::plan::EksPlan;

/// How long the nodes step waits, from its start, for the capacity to be ready before it fails
/// (EKS nodes usually join within a few minutes of their instances launching).
pub const READY_FOR_MS: u64 = 600_000;

/// How long the API server may refuse Breakwater (401/403) before the nodes step fails: long
/// enough for a token it could not check at once, far shorter than [`READY_FOR_MS`].
pub const REFUSED_FOR_MS: u64 = 30_000;

/// How much of the planned capacity must be Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enough {
    /// Every group at its `desired` nodes (what the nodes step waits for).
    Desired,
    /// Every group at its `min` (what a failover accepts once [`READY_FOR_MS`] has passed: in a
    /// regional event EC2 may not have every instance, and with the primary lost some capacity
    /// serving beats none).
    Min,
}

/// The standby cluster read once.
#[derive(Debug, Default)]
pub struct Reading {
    /// What is ready.
    pub seen: Vec<String>,
    /// What is not yet (a read that failed is "not yet", with the error: the caller's deadline
    /// bounds the wait).
    pub wrong: Vec<String>,
    /// A refusal (HTTP 401/403 from the API server, or AccessDenied from eks:DescribeCluster),
    /// if any: Breakwater's role lacks its grant, access entry or RBAC for the standby cluster.
    /// No wait mends that, so the caller gives up on it early.
    pub refused: Option<String>,
}

/// Reads the standby cluster once: each planned node group's `Ready` nodes against `enough`,
/// each critical Deployment's ready pods.
pub async fn read_capacity(capacity: &impl Capacity, eks: &EksPlan, enough: Enough) -> Reading {
    let mut seen = Vec::new();
    let mut wrong = Vec::new();
    let mut refused = None;
    let mut refusal = |e: &Error| {
        if let Error::Forbidden(why) = e {
            refused.get_or_insert_with(|| why.clone());
        }
    };
    for group in &eks.node_groups {
        let want = match enough {
            Enough::Desired => group.desired,
            Enough::Min => group.min,
        };
        match capacity.node_group_nodes(&eks.cluster, &group.name).await {
            Ok(nodes) if i64::from(nodes.ready) >= i64::from(want) => seen.push(format!(
                "{}: {} of {want} nodes Ready",
                group.name, nodes.ready
            )),
            Ok(nodes) => wrong.push(format!(
                "{}: {} of {want} nodes Ready ({} registered)",
                group.name, nodes.ready, nodes.registered
            )),
            Err(e) => {
                refusal(&e);
                wrong.push(format!(
                    "{}: the cluster's nodes could not be read: {e}",
                    group.name
                ))
            }
        }
    }
    for w in &eks.critical_workloads {
        let at = ObjectAt {
            cluster: &eks.cluster,
            namespace: &w.namespace,
            name: &w.deployment,
        };
        match capacity.deployment_pods(at).await {
            Ok(Some(pods)) => {
                let want = w.min_ready.unwrap_or(pods.desired.max(1));
                if pods.ready >= want {
                    seen.push(format!("{at}: {} of {want} pods ready", pods.ready));
                } else {
                    wrong.push(format!("{at}: {} of {want} pods ready", pods.ready));
                }
            }
            Ok(None) => wrong.push(format!("{at}: no such Deployment")),
            Err(e) => {
                refusal(&e);
                wrong.push(format!("{at}: could not be read: {e}"))
            }
        }
    }
    Reading {
        seen,
        wrong,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use breakwater::fakes::capacity::FakeCapacity;

    use super::*;
    use crate::plan::{CriticalWorkload, NodeGroupTarget};

    fn eks() -> EksPlan {
        EksPlan {
            cluster: "standby".into(),
            node_groups: vec![NodeGroupTarget {
                name: "web".into(),
                min: 2,
                desired: 3,
            }],
            critical_workloads: vec![CriticalWorkload {
                namespace: "shop".into(),
                deployment: "api".into(),
                min_ready: None,
            }],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_means_every_node_ready_and_every_critical_pod_ready() {
        // GIVEN three nodes booting for 60 s and the API's two pods ready 10 s after them
        let cluster = FakeCapacity::new()
            .nodes("standby", "web", 3, Duration::from_secs(60))
            .deployment("standby", "shop", "api", 2, Duration::from_secs(70));
        // WHEN it is read at once, at 60 s and at 70 s
        let wrong = read_capacity(&cluster, &eks(), Enough::Desired).await.wrong;
        // THEN nothing is ready at first, then the nodes, then all
        assert_eq!(
            wrong,
            [
                "web: 0 of 3 nodes Ready (3 registered)",
                "shop/api: 0 of 2 pods ready"
            ]
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        let Reading { seen, wrong, .. } = read_capacity(&cluster, &eks(), Enough::Desired).await;
        assert_eq!(seen, ["web: 3 of 3 nodes Ready"]);
        assert_eq!(wrong, ["shop/api: 0 of 2 pods ready"]);
        tokio::time::advance(Duration::from_secs(10)).await;
        let Reading { seen, wrong, .. } = read_capacity(&cluster, &eks(), Enough::Desired).await;
        assert!(wrong.is_empty(), "{wrong:?}");
        assert_eq!(seen.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_deployment_and_an_unreadable_cluster_are_not_ready() {
        let cluster = FakeCapacity::new().nodes("standby", "web", 3, Duration::ZERO);
        cluster.calls.fail_next(
            "node_group_nodes",
            breakwater::Error::Retryable("HTTP 503 from the API server".into()),
        );
        let Reading {
            seen,
            wrong,
            refused,
        } = read_capacity(&cluster, &eks(), Enough::Desired).await;
        assert!(seen.is_empty());
        assert_eq!(
            wrong,
            [
                "web: the cluster's nodes could not be read: retryable: HTTP 503 from the API server",
                "shop/api: no such Deployment"
            ]
        );
        assert_eq!(refused, None, "an unavailable API server is waited for");
        // A refusal (401/403: no access entry, no RBAC) is named as such.
        cluster.calls.fail_next(
            "node_group_nodes",
            breakwater::Error::Forbidden("list nodes: HTTP 403 Forbidden".into()),
        );
        let reading = read_capacity(&cluster, &eks(), Enough::Desired).await;
        assert_eq!(
            reading.refused.as_deref(),
            Some("list nodes: HTTP 403 Forbidden")
        );
        // A floor below the replicas is enough when the plan says so.
        let mut plan = eks();
        plan.critical_workloads[0].min_ready = Some(1);
        let cluster = FakeCapacity::new()
            .nodes("standby", "web", 3, Duration::ZERO)
            .deployment("standby", "shop", "api", 4, Duration::ZERO);
        assert!(read_capacity(&cluster, &plan, Enough::Desired)
            .await
            .wrong
            .is_empty());
        // Two of three nodes: short of desired, enough for the plan's minimum of two.
        let cluster = FakeCapacity::new()
            .nodes("standby", "web", 2, Duration::ZERO)
            .deployment("standby", "shop", "api", 4, Duration::ZERO);
        assert_eq!(
            read_capacity(&cluster, &plan, Enough::Desired).await.wrong,
            ["web: 2 of 3 nodes Ready (2 registered)"]
        );
        assert!(read_capacity(&cluster, &plan, Enough::Min)
            .await
            .wrong
            .is_empty());
    }
}

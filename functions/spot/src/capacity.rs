//! Capacity first on a rebalance recommendation (karpenter-provider-aws #2813, NTH #858): EC2
//! says an instance is at elevated risk of interruption, usually minutes before the warning, so
//! there is time to start its replacement before its pods are moved. With
//! `BREAKWATER_SPOT_REBALANCE=capacity-first` (or `cluster/nodegroup=capacity-first`) the node is
//! cordoned, its EKS managed node group raised by one (`UpdateNodegroupConfig`, desired + 1, never
//! past its maximum), and the drain waits until a new node of that group is `Ready` and
//! schedulable — at most `BREAKWATER_SPOT_CAPACITY_WAIT_SECONDS` and half the time to the drain's
//! deadline — so the evicted pods land on capacity that exists instead of pending.
//!
//! The node is given back when the instance goes (its state change or its node gone) or, if no
//! interruption follows, by the schedule after `BREAKWATER_SPOT_UNCORDON_MINUTES` (the node is
//! uncordoned then): desired − 1, only when the group is still at the size Breakwater set; a
//! size someone changed is reported and left. EKS drains the node it removes on scale-in
//! ("Managed node update behavior", scale-down: managed node groups cordon and drain the
//! instance the Auto Scaling group terminates).
//!
//! A node outside a managed node group (Karpenter, self-managed) is drained without new capacity
//! and says so.

use std::time::Duration;

use breakwater::kube::nodes::Nodes;
use breakwater::ports::{InstanceInfo, NodeGroupId, NodeGroups, Scaling};
use serde::{Deserialize, Serialize};

/// How often the group's nodes are read while the new one boots.
const POLL: Duration = Duration::from_secs(2);

/// A node group raised by one for a capacity-first rebalance, kept in the instance's record to
/// be given back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Raised {
    /// The managed node group.
    pub node_group: String,
    /// Its desired size after the raise.
    pub to: i32,
    /// When it was raised (ms since the epoch).
    pub at_ms: u64,
    /// Given back, or left as someone changed it.
    #[serde(default)]
    pub settled: bool,
}

/// What capacity-first did before the drain, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapacityFirst {
    /// The node group raised, when there was one to raise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_group: Option<String>,
    /// desiredSize before and after, when raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sizes: Option<(i32, i32)>,
    /// When it began and ended (ms since the epoch).
    pub started_ms: u64,
    /// When the drain was let begin.
    pub ended_ms: u64,
    /// The new node, when it became `Ready` in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_node: Option<String>,
    /// Why the wait ended, for people.
    pub ended_because: String,
}

/// Raises the node's group by one (once per instance: `already` is the record's earlier raise)
/// and waits, bounded, for a new `Ready` node of the group. Never fails: what went wrong is the
/// report's `ended_because`, and the drain goes on.
#[allow(clippy::too_many_arguments)]
pub async fn capacity_first<C: Nodes, G: NodeGroups>(
    client: &C,
    node_groups: &G,
    clock: &dyn breakwater::clock::Clock,
    info: &InstanceInfo,
    cluster: &str,
    node: &str,
    deadline_ms: u64,
    wait_max_ms: u64,
    already: Option<&Raised>,
) -> (CapacityFirst, Option<Raised>) {
    let started_ms = clock.now_ms();
    let mut report = CapacityFirst {
        node_group: info.node_group.clone(),
        sizes: None,
        started_ms,
        ended_ms: started_ms,
        new_node: None,
        ended_because: String::new(),
    };
    let ended = |mut report: CapacityFirst, why: String, raised: Option<Raised>| {
        tracing::info!(why = %why, new_node = ?report.new_node, "capacity first: the drain begins");
        report.ended_ms = clock.now_ms();
        report.ended_because = why;
        (report, raised)
    };
    let Some(group) = info.node_group.clone() else {
        return ended(
            report,
            "not in a managed node group (Karpenter or self-managed): drained without new capacity"
                .into(),
            None,
        );
    };
    let before = match client.ready_in_group(&group).await {
        Ok(names) => names,
        Err(e) => {
            return ended(
                report,
                format!("could not read {group}'s nodes ({e}): drained without waiting"),
                None,
            )
        }
    };
    let raised = match already {
        Some(r) => r.clone(),
        None => {
            let id = NodeGroupId {
                cluster: cluster.to_string(),
                name: group.clone(),
            };
            let scaling = match node_groups.describe(&id).await {
                Ok(Some(g)) => g.scaling,
                Ok(None) => {
                    return ended(
                        report,
                        format!("node group {group} not found: drained without new capacity"),
                        None,
                    )
                }
                Err(e) => {
                    return ended(
                        report,
                        format!(
                            "could not read node group {group} ({e}): drained without new capacity"
                        ),
                        None,
                    )
                }
            };
            if scaling.desired >= scaling.max {
                return ended(
                    report,
                    format!(
                        "{group} is at its maximum ({}): drained without new capacity",
                        scaling.max
                    ),
                    None,
                );
            }
            let to = Scaling {
                desired: scaling.desired + 1,
                ..scaling
            };
            // One token per instance: a retried handling does not raise twice.
            if let Err(e) = node_groups
                .update_scaling(&id, to, &format!("bw-rebalance-{}", info.id))
                .await
            {
                return ended(
                    report,
                    format!("could not raise {group} ({e}): drained without new capacity"),
                    None,
                );
            }
            tracing::info!(%group, from = scaling.desired, to = to.desired, "capacity first: node group raised by one");
            report.sizes = Some((scaling.desired, to.desired));
            Raised {
                node_group: group.clone(),
                to: to.desired,
                at_ms: started_ms,
                settled: false,
            }
        }
    };
    let until_ms = started_ms + wait_max_ms.min(deadline_ms.saturating_sub(started_ms) / 2);
    loop {
        match client.ready_in_group(&group).await {
            Ok(ready) => {
                if let Some(new) = ready
                    .iter()
                    .find(|n| !before.contains(n) && n.as_str() != node)
                {
                    report.new_node = Some(new.clone());
                    let why = format!("{new} is Ready");
                    return ended(report, why, Some(raised));
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the group's nodes; trying again"),
        }
        let now = clock.now_ms();
        if now >= until_ms {
            let why = format!(
                "no new node of {group} Ready after {:.0} s: drained anyway",
                (now - started_ms) as f64 / 1000.0
            );
            return ended(report, why, Some(raised));
        }
        tokio::time::sleep(POLL.min(Duration::from_millis(until_ms - now))).await;
    }
}

/// Gives the raised node back: desired − 1 when the group is still at the size Breakwater set.
/// The line says what was done.
pub async fn give_back<G: NodeGroups>(
    node_groups: &G,
    cluster: &str,
    instance: &str,
    raised: &Raised,
) -> breakwater::Result<String> {
    let id = NodeGroupId {
        cluster: cluster.to_string(),
        name: raised.node_group.clone(),
    };
    let Some(group) = node_groups.describe(&id).await? else {
        return Ok(format!(
            "{} is gone: nothing to give back",
            raised.node_group
        ));
    };
    let s = group.scaling;
    if s.desired != raised.to {
        return Ok(format!(
            "{} is at {} (Breakwater set {}): someone changed it; left as it is",
            raised.node_group, s.desired, raised.to
        ));
    }
    let back = Scaling {
        desired: s.desired - 1,
        min: s.min.min(s.desired - 1),
        ..s
    };
    node_groups
        .update_scaling(&id, back, &format!("bw-rebalance-back-{instance}"))
        .await?;
    Ok(format!(
        "gave back the node raised for {instance}: {} desired {} → {}",
        raised.node_group, s.desired, back.desired
    ))
}

//! The cluster following its EKS managed node groups: a task reads each group's desired size
//! from EKS (moto) and brings the group's nodes in the emulator to it, as a node group's Auto
//! Scaling group launches instances that join the cluster
//! ([`super::store::Cluster::scale_node_group`]: registered not Ready, Ready after a boot delay).

use std::sync::Arc;
use std::time::Duration;

use super::{lock, KubeEmulator, State};

/// The following task; it stops when dropped.
#[derive(Debug)]
pub struct NodeGroupFollower {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NodeGroupFollower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often EKS is read (a node boots from the update, however late it is noticed).
const EVERY: Duration = Duration::from_millis(250);

impl KubeEmulator {
    /// Follows every managed node group of the EKS cluster `cluster` (through `eks`): nodes in
    /// `zone`, each Ready `boot_ms` after it registers (on the emulator's clock).
    pub fn follow_node_groups(
        &self,
        eks: aws_sdk_eks::Client,
        cluster: &str,
        zone: &str,
        boot_ms: u64,
    ) -> NodeGroupFollower {
        let state: Arc<State> = self.state.clone();
        let (cluster, zone) = (cluster.to_string(), zone.to_string());
        let task = tokio::spawn(async move {
            // Each group's update lies between the previous read of it and its `modifiedAt`.
            let mut read_before: std::collections::HashMap<String, u64> = Default::default();
            loop {
                let polled_ms = state.now_ms();
                if let Ok(listed) = eks.list_nodegroups().cluster_name(&cluster).send().await {
                    for name in listed.nodegroups() {
                        let Ok(described) = eks
                            .describe_nodegroup()
                            .cluster_name(&cluster)
                            .nodegroup_name(name)
                            .send()
                            .await
                        else {
                            continue;
                        };
                        let Some(group) = described.nodegroup else {
                            continue;
                        };
                        let desired = group
                            .scaling_config
                            .as_ref()
                            .and_then(|s| s.desired_size)
                            .unwrap_or(0);
                        let capacity = group
                            .capacity_type
                            .as_ref()
                            .map_or("ON_DEMAND", |c| c.as_str())
                            .to_string();
                        // EKS's `modifiedAt` ("the Unix epoch timestamp for the last
                        // modification to the object", DescribeNodegroup), on the emulator's
                        // clock: the boot starts with the update, not with this poll. It is
                        // trusted only between the previous read of the group and now (the
                        // update came after a read that did not show it); otherwise the boot
                        // starts now: later, never earlier, than it could.
                        let now = state.now_ms();
                        let factor = lock(&state.clock).factor;
                        let floor = read_before.insert(name.to_string(), polled_ms);
                        let asked = group
                            .modified_at
                            .and_then(|t| std::time::SystemTime::try_from(t).ok())
                            .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                            .map(|ago| {
                                now.saturating_sub((ago.as_secs_f64() * 1000.0 * factor) as u64)
                            })
                            .filter(|t| floor.is_some_and(|f| *t >= f) && *t <= now)
                            .unwrap_or(now);
                        state.cluster().scale_node_group_since(
                            name,
                            usize::try_from(desired).unwrap_or(0),
                            &capacity,
                            &zone,
                            boot_ms,
                            asked,
                        );
                    }
                }
                tokio::time::sleep(EVERY).await;
            }
        });
        NodeGroupFollower { task }
    }
}

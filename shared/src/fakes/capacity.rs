//! A fake of [`Capacity`]: a standby cluster whose node-group nodes and Deployment pods become
//! ready at scripted times (tokio's clock, so paused-time tests move them), read as the adapter
//! reads the emulator: nodes of a group not yet booted are registered but not `Ready`, a
//! Deployment not yet scheduled has no ready pods, an unknown group has no nodes and an unknown
//! Deployment is `None`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::calls::Calls;
use crate::error::Result;
use crate::kube::capacity::{Capacity, DeploymentPods, GroupNodes};
use crate::kube::workloads::ObjectAt;

#[derive(Debug)]
struct Scripted {
    /// How many there are (nodes registered, or pods desired).
    count: u32,
    /// When they are all ready.
    ready_at: Instant,
}

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<(String, String), Scripted>,
    deployments: BTreeMap<(String, String, String), Scripted>,
}

/// [`Capacity`] in memory.
#[derive(Debug, Default)]
pub struct FakeCapacity {
    state: Mutex<State>,
    /// The calls made (`node_group_nodes`, `deployment_pods`), and failures to answer with.
    pub calls: Calls,
}

impl FakeCapacity {
    /// A cluster with no nodes and no Deployments.
    pub fn new() -> Self {
        Self::default()
    }

    /// `count` nodes of `group` in `cluster`, registered now and `Ready` after `boot`.
    pub fn nodes(self, cluster: &str, group: &str, count: u32, boot: Duration) -> Self {
        self.state.lock().unwrap().groups.insert(
            (cluster.into(), group.into()),
            Scripted {
                count,
                ready_at: Instant::now() + boot,
            },
        );
        self
    }

    /// A Deployment of `desired` pods, all ready after `after`.
    pub fn deployment(
        self,
        cluster: &str,
        namespace: &str,
        name: &str,
        desired: u32,
        after: Duration,
    ) -> Self {
        self.state.lock().unwrap().deployments.insert(
            (cluster.into(), namespace.into(), name.into()),
            Scripted {
                count: desired,
                ready_at: Instant::now() + after,
            },
        );
        self
    }
}

fn ready(s: &Scripted) -> u32 {
    if Instant::now() >= s.ready_at {
        s.count
    } else {
        0
    }
}

impl Capacity for FakeCapacity {
    async fn node_group_nodes(&self, cluster: &str, node_group: &str) -> Result<GroupNodes> {
        self.calls
            .record("node_group_nodes", &format!("{cluster}/{node_group}"))?;
        let state = self.state.lock().unwrap();
        Ok(state
            .groups
            .get(&(cluster.to_string(), node_group.to_string()))
            .map(|s| GroupNodes {
                registered: s.count,
                ready: ready(s),
            })
            .unwrap_or_default())
    }

    async fn deployment_pods(&self, at: ObjectAt<'_>) -> Result<Option<DeploymentPods>> {
        self.calls
            .record("deployment_pods", &format!("{}/{at}", at.cluster))?;
        let state = self.state.lock().unwrap();
        Ok(state
            .deployments
            .get(&(at.cluster.into(), at.namespace.into(), at.name.into()))
            .map(|s| DeploymentPods {
                desired: i32::try_from(s.count).unwrap_or(i32::MAX),
                ready: i32::try_from(ready(s)).unwrap_or(i32::MAX),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn nodes_and_pods_become_ready_at_their_time() {
        let fake = FakeCapacity::new()
            .nodes("standby", "web", 3, Duration::from_secs(60))
            .deployment("standby", "shop", "api", 2, Duration::from_secs(90));
        let at = ObjectAt {
            cluster: "standby",
            namespace: "shop",
            name: "api",
        };
        assert_eq!(
            fake.node_group_nodes("standby", "web").await.unwrap(),
            GroupNodes {
                registered: 3,
                ready: 0
            }
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        assert_eq!(
            fake.node_group_nodes("standby", "web").await.unwrap().ready,
            3
        );
        assert_eq!(fake.deployment_pods(at).await.unwrap().unwrap().ready, 0);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(fake.deployment_pods(at).await.unwrap().unwrap().ready, 2);
        assert_eq!(
            fake.node_group_nodes("standby", "other").await.unwrap(),
            GroupNodes::default()
        );
        let missing = ObjectAt { name: "gone", ..at };
        assert_eq!(fake.deployment_pods(missing).await.unwrap(), None);
    }
}

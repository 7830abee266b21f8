//! The node-groups step: the secondary's EKS managed node groups raised to the plan's sizes, all
//! at once and never lowered, each update observed until the group is ACTIVE at them; then the
//! capacity read in the cluster until it is ready — every planned node `Ready`, every critical
//! Deployment's pods ready ([`super::capacity`]).

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{
    Changed, Dns, MetricReader, MetricSwitches, NodeGroupId, NodeGroups, Replicas, RoutingControls,
    Scaling,
};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::capacity::Enough;
use super::*;

impl<
        R: Replicas,
        N: NodeGroups,
        D: Dns,
        M: MetricReader,
        C: RoutingControls,
        W: MetricSwitches,
        K: Capacity,
        P: Probe,
    > Engine<'_, R, N, D, M, C, W, K, P>
{
    pub(super) async fn nodes(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        if self.begin(shared, StepName::Nodes).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let groups = self.plan.plan.node_groups();
        if groups.is_empty() {
            self.end(
                shared,
                StepName::Nodes,
                StepState::Skipped,
                "no node groups in the plan".into(),
            )
            .await?;
            return Ok(Progress::Done);
        }
        let exec_id = shared.lock().await.id.clone();
        // All at once: each group's update and its wait run side by side, so the step takes as
        // long as the slowest group, not their sum.
        let tokens: Vec<String> = groups
            .iter()
            .map(|(id, _)| token(&exec_id, &id.name))
            .collect();
        let progress = futures_util::future::join_all(groups.iter().zip(&tokens).map(
            |((id, target), token)| {
                self.scale(shared, id, target.min, target.desired, token, deadline)
            },
        ))
        .await;
        let mut raised = Vec::new();
        for ((id, target), progress) in groups.iter().zip(progress) {
            match progress? {
                Progress::Done => raised.push(format!(
                    "{} min {} desired {}",
                    id.name, target.min, target.desired
                )),
                other => return self.settle(shared, StepName::Nodes, other).await,
            }
        }
        let mut detail = format!("node groups ACTIVE at: {}", raised.join(", "));
        // ACTIVE is EKS's word that the Auto Scaling groups have the size; the capacity is
        // there when the cluster has the nodes Ready and the critical pods ready.
        if let Some(eks) = &self.plan.plan.eks {
            let started = shared
                .lock()
                .await
                .steps
                .get(&StepName::Nodes)
                .and_then(|s| s.started_ms)
                .unwrap_or_else(|| self.now());
            let mut refused_since = None;
            loop {
                let capacity::Reading {
                    seen,
                    wrong,
                    refused,
                } = capacity::read_capacity(&self.ports.capacity, eks, Enough::Desired).await;
                // No wait mends a missing access entry, RBAC or eks:DescribeCluster grant: a
                // refusal that holds for REFUSED_FOR_MS fails the step then, not after the
                // 10-minute wait (one 401 may be a token the API server could not check yet).
                match refused {
                    Some(why) => {
                        let since = *refused_since.get_or_insert_with(|| self.now());
                        if self.now() >= since + capacity::REFUSED_FOR_MS {
                            return self
                                .fail(
                                    shared,
                                    StepName::Nodes,
                                    format!(
                                        "{detail}; but the standby cluster {} refused to be read \
                                         for {} s ({why}): Breakwater's role needs \
                                         eks:DescribeCluster on it, an EKS access entry there \
                                         and the RBAC of deploy/kubernetes/failover-rbac.yaml \
                                         (precheck reads the same); the capacity was raised, \
                                         traffic stays",
                                        eks.cluster,
                                        capacity::REFUSED_FOR_MS / 1000
                                    ),
                                )
                                .await;
                        }
                    }
                    None => refused_since = None,
                }
                if wrong.is_empty() {
                    detail = format!("{detail}; ready in {}: {}", eks.cluster, seen.join(", "));
                    break;
                }
                if self.now() >= started + capacity::READY_FOR_MS {
                    // Past the wait, the plan's minimums are enough: some capacity serving the
                    // traffic beats none when the primary is lost (EC2 may be short of
                    // instances in a regional event). Below them, traffic stays.
                    let capacity::Reading {
                        seen: floor,
                        wrong: short,
                        ..
                    } = capacity::read_capacity(&self.ports.capacity, eks, Enough::Min).await;
                    if short.is_empty() {
                        detail = format!(
                            "{detail}; ready in {} at the plan's minimums only after {} s: {} \
                             (short of desired: {})",
                            eks.cluster,
                            capacity::READY_FOR_MS / 1000,
                            floor.join(", "),
                            wrong.join("; ")
                        );
                        break;
                    }
                    return self
                        .fail(
                            shared,
                            StepName::Nodes,
                            format!(
                                "the capacity is not ready {} s after the step began, not even \
                                 at the plan's minimums: {}",
                                capacity::READY_FOR_MS / 1000,
                                short.join("; ")
                            ),
                        )
                        .await;
                }
                if !self.sleep(deadline).await {
                    return Ok(Progress::Waiting(format!(
                        "capacity not ready yet: {}",
                        wrong.join("; ")
                    )));
                }
            }
        }
        self.end(shared, StepName::Nodes, StepState::Done, detail.clone())
            .await?;
        self.notify(&exec_id, "nodes", detail, "info").await?;
        Ok(Progress::Done)
    }

    /// Brings one node group to exactly (restore) or at least (raise) min/desired, then ACTIVE.
    pub(super) async fn scale(
        &self,
        shared: &Mutex<Execution>,
        id: &NodeGroupId,
        min: i32,
        desired: i32,
        token: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let restore = token.ends_with("-restore");
        loop {
            let name = id.to_string();
            let group = match self
                .observe(&name, deadline, || self.ports.nodes.describe(id))
                .await?
            {
                Ok(Some(g)) => g,
                Ok(None) => return Ok(Progress::Failed(format!("node group {id} does not exist"))),
                Err(waiting) => return Ok(waiting),
            };
            if !restore {
                let mut exec = shared.lock().await;
                if !exec.before.node_groups.contains_key(&id.name) {
                    exec.before
                        .node_groups
                        .insert(id.name.clone(), group.scaling);
                    if exec.mode == Mode::Drill {
                        self.save(&exec).await?;
                    }
                }
            }
            if group.status == "DEGRADED" || group.status == "CREATE_FAILED" {
                return Ok(Progress::Failed(format!(
                    "node group {id} is {} (insufficient capacity or a failed update): {}",
                    group.status, group.scaling
                )));
            }
            let reached = if restore {
                group.scaling.min == min && group.scaling.desired == desired
            } else {
                group.scaling.min >= min && group.scaling.desired >= desired
            };
            if reached && group.status == "ACTIVE" {
                return Ok(Progress::Done);
            }
            if !reached && group.status != "UPDATING" {
                // Raising never lowers: a group the cluster autoscaler already took above the
                // plan keeps its size (a restore sets exactly what was recorded).
                let (min, desired) = if restore {
                    (min, desired)
                } else {
                    (
                        min.max(group.scaling.min),
                        desired.max(group.scaling.desired),
                    )
                };
                let scaling = Scaling {
                    min,
                    desired,
                    max: group.scaling.max.max(desired),
                };
                match self.ports.nodes.update_scaling(id, scaling, token).await {
                    Ok(update) => {
                        let changed = Changed {
                            request_id: None,
                            started: Some(update.clone()),
                        };
                        self.acted(
                            shared,
                            "UpdateNodegroupConfig",
                            &format!("{id} {scaling} (update {update})"),
                            &changed,
                        )
                        .await?;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(node_group = %id, error = %e, "an update is in progress; waiting");
                    }
                    Err(e) => {
                        return Ok(Progress::Failed(format!("UpdateNodegroupConfig {id}: {e}")))
                    }
                }
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "node group {id} is {}",
                    group.status
                )));
            }
        }
    }
}

//! The schedule's tick: uncordon the nodes whose rebalance recommendation came to nothing (each
//! under the instance's lease, its record read again under it), and return the on-demand
//! failovers whose stable period has passed.

use std::sync::Arc;

use breakwater::invocation::{self, LeaseTerms, Leased, Patience};
use breakwater::kube::nodes::{Clusters, Nodes};
use breakwater::notify::Notification;
use breakwater::ports::{Instances, LifecycleHooks, NodeGroups, TargetGroups};
use breakwater::state::KeptLease;
use breakwater::Result;
use serde_json::{json, Value};

use crate::on_demand as failover;
use crate::record::{record_key, InstanceRecord, Phase, CORDONED_KEY};
use crate::SpotFunction;

/// The lease owner prefix of the schedule's uncordons.
pub(crate) const SCHEDULE_OWNER: &str = "schedule:";

/// How long a warning waits for an instance lease the schedule holds.
pub(crate) const SCHEDULE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl<I: Instances, G: NodeGroups, K: Clusters, T: TargetGroups, L: LifecycleHooks>
    SpotFunction<I, G, K, T, L>
{
    /// The schedule: uncordon nodes whose rebalance came to nothing, return stable failovers.
    /// Each uncordon holds the instance's lease and re-reads the record under it, so that a node
    /// a warning has started to drain is never uncordoned.
    pub(crate) async fn on_schedule(&self, owner: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let now = store.clock().now_ms();
        let dry_run = self.toolkit.dry_run();
        let mut lines = Vec::new();
        let cordoned = store
            .get::<Vec<String>>(CORDONED_KEY)
            .await?
            .map(|v| v.value)
            .unwrap_or_default();
        for instance in cordoned {
            let key = record_key(&instance);
            let Some(r) = store.get::<InstanceRecord>(&key).await? else {
                continue;
            };
            let Phase::Cordoned { uncordon_at_ms } = r.value.phase else {
                self.index_cordoned(&instance, false).await?;
                continue;
            };
            if now < uncordon_at_ms {
                continue;
            }
            let (Some(cluster), Some(node)) = (r.value.cluster.clone(), r.value.node.clone())
            else {
                continue;
            };
            if dry_run {
                lines.push(format!(
                    "would uncordon {node} ({instance}): no warning followed the rebalance"
                ));
                continue;
            }
            let holder = format!("{SCHEDULE_OWNER}{owner}");
            let terms = LeaseTerms {
                scope: "spot",
                id: &instance,
                owner: &holder,
                ttl: self.toolkit.settings.lease_ttl,
                patience: Patience::NONE,
            };
            let (id, cluster, at) = (&instance, &cluster, &node);
            let work = |lease: Arc<KeptLease>| async move {
                self.uncordon_under_lease(id, cluster, at, now, &lease)
                    .await
            };
            let done = match invocation::with_kept_lease(store, terms, work).await {
                Ok(Leased::Done(done)) => Ok(done),
                Ok(Leased::Held { owner: other, .. }) => {
                    lines.push(format!(
                        "{node} ({instance}) is being handled by {other}; not uncordoned"
                    ));
                    continue;
                }
                Err(e) => Err(e),
            };
            // One node that cannot be uncordoned now (the next tick tries again) must not keep
            // the others, or the on-demand return, from running.
            match done {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%node, %instance, error = %e, "could not uncordon; the next tick tries again");
                    lines.push(format!("could not uncordon {node} ({instance}) yet: {e}"));
                }
            }
        }
        lines.extend(
            failover::return_stable(store, &self.node_groups, &self.settings, dry_run).await?,
        );
        if lines
            .iter()
            .any(|l| l.starts_with("returned") || l.contains("left as it is"))
        {
            let note = Notification::new("Spot: on-demand failover ended", lines.join("\n"))
                .attribute("function", "spot")
                .attribute("outcome", "return");
            self.toolkit.notifier.publish(&note).await?;
        }
        Ok(json!({"outcome": "evaluated", "actions": lines}))
    }

    /// Uncordons `node` if its record, read again under the lease, is still a due rebalance
    /// cordon; the record is moved on by compare-and-swap.
    pub(crate) async fn uncordon_under_lease(
        &self,
        instance: &str,
        cluster: &str,
        node: &str,
        now: u64,
        lease: &KeptLease,
    ) -> Result<Option<String>> {
        let store = &self.toolkit.store;
        let key = record_key(instance);
        let Some(r) = store.get::<InstanceRecord>(&key).await? else {
            return Ok(None);
        };
        if !matches!(r.value.phase, Phase::Cordoned { uncordon_at_ms } if uncordon_at_ms <= now) {
            return Ok(None);
        }
        let client = self.kube.cluster(&self.toolkit.aws, cluster, now).await?;
        lease.check().await?;
        client.uncordon(node).await?;
        let mut done = r.value.clone();
        done.phase = Phase::Uncordoned;
        done.history.push(format!(
            "{}: uncordoned: no warning followed the rebalance",
            breakwater::clock::rfc3339(now)
        ));
        lease.check().await?;
        store.replace(&key, &done, &r.etag).await?;
        self.index_cordoned(instance, false).await?;
        Ok(Some(format!(
            "uncordoned {node} ({instance}): no warning followed the rebalance"
        )))
    }
}

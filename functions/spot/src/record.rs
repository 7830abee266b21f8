//! The instance record: one per instance in the state store, the story of its handling (phase,
//! drain report, history), written only under the instance's lease; and the index of nodes
//! cordoned on a rebalance, which the schedule uncordons from.

use breakwater::kube::nodes::Clusters;
use breakwater::ports::{Instances, LifecycleHooks, NodeGroups, TargetGroups};
use breakwater::state::key_segment;
use breakwater::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::drain::DrainReport;
use crate::SpotFunction;
use breakwater::state::KeptLease;

/// The key of the cordoned-by-rebalance index (the schedule uncordons from it).
pub(crate) const CORDONED_KEY: &str = "spot/cordoned.json";

/// Where an instance's handling stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum Phase {
    /// Cordoned on a rebalance recommendation; uncordoned at this time if no warning follows.
    Cordoned {
        /// When to uncordon (ms).
        uncordon_at_ms: u64,
    },
    /// A drain is running.
    Draining,
    /// Drained.
    Drained,
    /// Uncordoned: the rebalance came to nothing.
    Uncordoned,
    /// The instance stopped or terminated, or its node is gone.
    Ended {
        /// Why.
        why: String,
    },
}

/// One instance's story.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub instance_id: String,
    /// Its cluster, once known.
    pub cluster: Option<String>,
    /// Its node, once found.
    pub node: Option<String>,
    /// Where it stands.
    pub phase: Phase,
    /// The drain, once done.
    pub report: Option<DrainReport>,
    /// Whether the drain's notification went out.
    pub notified: bool,
    /// What happened, oldest first.
    pub history: Vec<String>,
}

pub(crate) fn record_key(instance: &str) -> String {
    format!("spot/instances/{}.json", key_segment(instance))
}

impl<I: Instances, G: NodeGroups, K: Clusters, T: TargetGroups, L: LifecycleHooks>
    SpotFunction<I, G, K, T, L>
{
    /// Writes the instance record while holding its lease (checked, renewed if low, first).
    pub(crate) async fn save(
        &self,
        key: &str,
        record: &InstanceRecord,
        lease: &KeptLease,
    ) -> Result<String> {
        lease.check().await?;
        self.toolkit.store.put(key, record).await
    }

    pub(crate) async fn end(&self, instance: &str, why: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let key = record_key(instance);
        let now = store.clock().now_ms();
        let mut record = store
            .get::<InstanceRecord>(&key)
            .await?
            .map(|r| r.value)
            .unwrap_or_else(|| InstanceRecord {
                instance_id: instance.to_string(),
                cluster: None,
                node: None,
                phase: Phase::Draining,
                report: None,
                notified: false,
                history: Vec::new(),
            });
        if matches!(record.phase, Phase::Ended { .. }) {
            return Ok(json!({"outcome": "already-ended", "instance": instance}));
        }
        record.phase = Phase::Ended {
            why: why.to_string(),
        };
        record
            .history
            .push(format!("{}: ended: {why}", breakwater::clock::rfc3339(now)));
        self.toolkit.store.put(&key, &record).await?;
        self.index_cordoned(instance, false).await?;
        Ok(json!({"outcome": "ended", "instance": instance, "reason": why}))
    }

    pub(crate) async fn index_cordoned(&self, instance: &str, add: bool) -> Result<()> {
        let store = &self.toolkit.store;
        store
            .update::<Vec<String>, _>(CORDONED_KEY, |ids| {
                let present = ids.iter().any(|i| i == instance);
                if present == add {
                    return false;
                }
                if add {
                    ids.push(instance.to_string());
                } else {
                    ids.retain(|i| i != instance);
                }
                true
            })
            .await
            .map(|_| ())
    }
}

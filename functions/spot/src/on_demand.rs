//! Failover to on-demand capacity: interruptions are counted per capacity pool (node group ×
//! instance type × AZ) in a sliding window in the state store; past the threshold, the designated
//! on-demand node group is raised once: the failover record is created with `If-None-Match` as
//! an intent (`applied: false`) before `UpdateNodegroupConfig`, and marked applied only after the
//! update succeeded, so that a failed raise is retried (same token) by the next interruption or
//! tick instead of being taken for done. After a stable period without interruptions the group
//! returns — only in the fields Breakwater owns: `minSize` (and `maxSize` when it was raised),
//! and `desiredSize` only while it is still the value Breakwater set (Cluster Autoscaler moves
//! desired inside [min, max]; a human who changed min is left alone, and reported).

use breakwater::ports::{NodeGroupId, NodeGroups, Scaling};
use breakwater::state::{key_segment, StateStore};
use breakwater::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::settings::SpotSettings;

/// A capacity pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Cluster.
    pub cluster: String,
    /// Spot node group.
    pub node_group: String,
    /// Instance type.
    pub instance_type: String,
    /// Availability zone.
    pub az: String,
}

impl Pool {
    fn key(&self) -> String {
        format!(
            "spot/pools/{}/{}/{}/{}.json",
            key_segment(&self.cluster),
            key_segment(&self.node_group),
            key_segment(&self.instance_type),
            key_segment(&self.az)
        )
    }
}

/// The interruptions of one pool inside the window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolWindow {
    /// (instance, when) of each interruption.
    pub interruptions: Vec<(String, u64)>,
}

/// A failover to on-demand, and its return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverRecord {
    /// The spot node group that kept being reclaimed.
    pub spot: NodeGroupId,
    /// The on-demand node group raised.
    pub on_demand: NodeGroupId,
    /// The pool that crossed the threshold.
    pub pool: Pool,
    /// Its sizes before.
    pub before: Scaling,
    /// The sizes set.
    pub after: Scaling,
    /// When (ms).
    pub at_ms: u64,
    /// The latest interruption in any of the spot group's pools (the stable period runs from it).
    pub last_interruption_ms: u64,
    /// How it ended, once it has: `returned` or `left-alone: …`.
    pub ended: Option<String>,
    /// Whether `UpdateNodegroupConfig` succeeded (records written before this field existed
    /// were written after it).
    #[serde(default = "already_applied")]
    pub applied: bool,
}

fn already_applied() -> bool {
    true
}

impl FailoverRecord {
    /// The idempotency token of this failover's raise (the same for every retry of it).
    pub fn raise_token(&self) -> String {
        format!("spot-failover-{}", self.at_ms / 1000)
    }
}

/// The sizes to return a raised on-demand group to, from what Breakwater set (`after`) and what
/// is there now (`found`); `None` when someone changed a field Breakwater owns (min, or max when
/// Breakwater raised it): theirs wins.
pub fn return_sizes(before: Scaling, after: Scaling, found: Scaling) -> Option<Scaling> {
    let max_raised = after.max != before.max;
    if found.min != after.min || (max_raised && found.max != after.max) {
        return None;
    }
    let max = if max_raised { before.max } else { found.max };
    let min = before.min.min(max);
    // Desired is Breakwater's only while it is what Breakwater set; an autoscaler's value stays,
    // clamped into the restored bounds.
    let desired = if found.desired == after.desired {
        before.desired
    } else {
        found.desired
    }
    .clamp(min, max);
    Some(Scaling { min, desired, max })
}

/// The key of the failover record of a spot node group.
pub fn failover_key(spot: &NodeGroupId) -> String {
    format!(
        "spot/failover/{}/{}.json",
        key_segment(&spot.cluster),
        key_segment(&spot.name)
    )
}

/// The index of failover records (for the schedule's return check).
pub const INDEX_KEY: &str = "spot/failover/index.json";

/// What counting one interruption led to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum FailoverAction {
    /// Below the threshold (or no on-demand group is designated).
    None {
        /// Interruptions in the window.
        count: usize,
    },
    /// This interruption raised the on-demand group.
    ScaledUp {
        /// The on-demand group.
        on_demand: String,
        /// Before.
        before: Scaling,
        /// After.
        after: Scaling,
        /// Interruptions in the window.
        count: usize,
    },
    /// A failover is already in force; its stable period restarts.
    AlreadyFailedOver {
        /// Interruptions in the window.
        count: usize,
    },
}

/// Counts an interruption and fails over when the pool crosses the threshold.
pub async fn count_interruption<G: NodeGroups>(
    store: &StateStore,
    node_groups: &G,
    settings: &SpotSettings,
    pool: &Pool,
    instance: &str,
    dry_run: bool,
) -> Result<FailoverAction> {
    let now = store.clock().now_ms();
    let count = record_in_window(store, pool, instance, now, settings.window_ms).await?;
    let spot = NodeGroupId {
        cluster: pool.cluster.clone(),
        name: pool.node_group.clone(),
    };
    let Some(on_demand_name) = settings
        .on_demand
        .get(&format!("{}/{}", pool.cluster, pool.node_group))
    else {
        return Ok(FailoverAction::None { count });
    };
    let key = failover_key(&spot);
    let existing = store.get::<FailoverRecord>(&key).await?;
    if let Some(active) = existing.as_ref().filter(|r| r.value.ended.is_none()) {
        let mut updated = active.value.clone();
        updated.last_interruption_ms = updated.last_interruption_ms.max(now);
        if dry_run {
            return Ok(FailoverAction::AlreadyFailedOver { count });
        }
        if !updated.applied {
            // The raise this record announces failed (or its answer was lost): do it now.
            apply(store, node_groups, &key, updated.clone(), &active.etag).await?;
            return Ok(FailoverAction::ScaledUp {
                on_demand: updated.on_demand.to_string(),
                before: updated.before,
                after: updated.after,
                count,
            });
        }
        // A lost race here only means another invocation moved the timer on.
        let _ = store.replace(&key, &updated, &active.etag).await;
        return Ok(FailoverAction::AlreadyFailedOver { count });
    }
    if count < settings.failover_threshold {
        return Ok(FailoverAction::None { count });
    }
    let on_demand = NodeGroupId {
        cluster: pool.cluster.clone(),
        name: on_demand_name.clone(),
    };
    let group = node_groups
        .describe(&on_demand)
        .await?
        .ok_or_else(|| Error::NotFound(format!("on-demand node group {on_demand}")))?;
    let before = group.scaling;
    let desired =
        (before.desired + settings.on_demand_step).min(settings.on_demand_cap.max(before.desired));
    let after = Scaling {
        min: desired.max(before.min),
        desired,
        max: before.max.max(desired),
    };
    let record = FailoverRecord {
        spot: spot.clone(),
        on_demand: on_demand.clone(),
        pool: pool.clone(),
        before,
        after,
        at_ms: now,
        last_interruption_ms: now,
        ended: None,
        applied: false,
    };
    if dry_run {
        return Ok(FailoverAction::ScaledUp {
            on_demand: on_demand.to_string(),
            before,
            after,
            count,
        });
    }
    // Exactly one failover: the intent is created once (an ended one is replaced by CAS) …
    let etag = match &existing {
        None => store.create(&key, &record).await?,
        Some(ended) => store.replace(&key, &record, &ended.etag).await.ok(),
    };
    let Some(etag) = etag else {
        return Ok(FailoverAction::AlreadyFailedOver { count });
    };
    add_to_index(store, &key).await?;
    // … and marked applied only once the raise succeeded.
    apply(store, node_groups, &key, record, &etag).await?;
    Ok(FailoverAction::ScaledUp {
        on_demand: on_demand.to_string(),
        before,
        after,
        count,
    })
}

async fn record_in_window(
    store: &StateStore,
    pool: &Pool,
    instance: &str,
    now: u64,
    window_ms: u64,
) -> Result<usize> {
    let window = store
        .update::<PoolWindow, _>(&pool.key(), |window| {
            window
                .interruptions
                .retain(|(_, at)| now.saturating_sub(*at) < window_ms);
            if !window.interruptions.iter().any(|(i, _)| i == instance) {
                window.interruptions.push((instance.to_string(), now));
            }
            true
        })
        .await?;
    Ok(window.interruptions.len())
}

/// Raises the on-demand group to `record.after` (its token makes a retry the same request) and
/// marks the record applied. A failed raise leaves the record unapplied for the next attempt.
async fn apply<G: NodeGroups>(
    store: &StateStore,
    node_groups: &G,
    key: &str,
    mut record: FailoverRecord,
    etag: &str,
) -> Result<()> {
    node_groups
        .update_scaling(&record.on_demand, record.after, &record.raise_token())
        .await?;
    record.applied = true;
    if let Err(e) = store.replace(key, &record, etag).await {
        // The raise happened; the next attempt finds the group raised and only marks it.
        tracing::warn!(record = key, error = %e, "raised the on-demand group but could not mark the failover applied");
    }
    Ok(())
}

async fn add_to_index(store: &StateStore, key: &str) -> Result<()> {
    store
        .update::<Vec<String>, _>(INDEX_KEY, |keys| {
            if keys.iter().any(|k| k == key) {
                return false;
            }
            keys.push(key.to_string());
            true
        })
        .await
        .map(|_| ())
}

/// Returns every failover whose stable period has passed; one line per decision.
pub async fn return_stable<G: NodeGroups>(
    store: &StateStore,
    node_groups: &G,
    settings: &SpotSettings,
    dry_run: bool,
) -> Result<Vec<String>> {
    let now = store.clock().now_ms();
    let keys = store
        .get::<Vec<String>>(INDEX_KEY)
        .await?
        .map(|v| v.value)
        .unwrap_or_default();
    let mut lines = Vec::new();
    for key in keys {
        let Some(record) = store.get::<FailoverRecord>(&key).await? else {
            continue;
        };
        let r = &record.value;
        if r.ended.is_some() {
            continue;
        }
        let quiet_ms = now.saturating_sub(r.last_interruption_ms);
        if quiet_ms < settings.stable_ms {
            lines.push(format!(
                "{}: on-demand {} stays raised ({} min without interruptions of {} needed)",
                r.spot,
                r.on_demand,
                quiet_ms / 60_000,
                settings.stable_ms / 60_000
            ));
            continue;
        }
        let found = node_groups.describe(&r.on_demand).await?.map(|g| g.scaling);
        let back = found.and_then(|f| return_sizes(r.before, r.after, f));
        let ended = if let (Some(back), Some(found)) = (back, found) {
            if dry_run {
                lines.push(format!("would return {} to {back}", r.on_demand));
                continue;
            }
            if back != found {
                let token = format!("spot-return-{}", r.at_ms / 1000);
                node_groups
                    .update_scaling(&r.on_demand, back, &token)
                    .await?;
            }
            lines.push(format!(
                "returned {} to {back} (spot {} stable; it was {} before)",
                r.on_demand, r.spot, r.before
            ));
            "returned".to_string()
        } else if !r.applied {
            // The raise never happened: there is nothing to return.
            lines.push(format!(
                "{}: the failover raise never succeeded; nothing to return",
                r.on_demand
            ));
            "never-applied".to_string()
        } else {
            let found = found
                .map(|s| s.to_string())
                .unwrap_or_else(|| "gone".into());
            lines.push(format!(
                "{}: changed after failover (failover left {}, found {found}); left as it is — it was {} before",
                r.on_demand, r.after, r.before
            ));
            format!("left-alone: found {found}")
        };
        if !dry_run {
            let done = FailoverRecord {
                ended: Some(ended),
                ..r.clone()
            };
            store.replace(&key, &done, &record.etag).await?;
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: i32, desired: i32, max: i32) -> Scaling {
        Scaling { min, desired, max }
    }

    #[test]
    fn the_return_restores_only_the_fields_breakwater_owns() {
        let (before, after) = (s(1, 1, 10), s(3, 3, 10));
        // Nobody touched it: back to before.
        assert_eq!(return_sizes(before, after, after), Some(before));
        // Cluster Autoscaler moved desired inside [min, max]: min returns, desired stays theirs.
        assert_eq!(return_sizes(before, after, s(3, 5, 10)), Some(s(1, 5, 10)));
        // A human changed min: theirs wins.
        assert_eq!(return_sizes(before, after, s(4, 4, 10)), None);
        // A raised max returns too, and desired is clamped into the restored bounds.
        assert_eq!(
            return_sizes(s(0, 0, 2), s(2, 2, 2), s(2, 2, 2)),
            Some(s(0, 0, 2))
        );
        assert_eq!(
            return_sizes(s(0, 1, 1), s(3, 3, 3), s(3, 3, 3)),
            Some(s(0, 1, 1))
        );
        assert_eq!(return_sizes(s(0, 1, 1), s(3, 3, 3), s(3, 3, 5)), None);
    }
}

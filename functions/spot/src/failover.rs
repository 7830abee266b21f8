//! Failover to on-demand capacity: interruptions are counted per capacity pool (node group ×
//! instance type × AZ) in a sliding window in the state store; past the threshold, the designated
//! on-demand node group is raised (once: the failover record is created with `If-None-Match`),
//! its previous sizes recorded; after a stable period without interruptions it returns to them —
//! unless someone has resized it since, which is reported instead.

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
        if !dry_run {
            // A lost race here only means another invocation moved the timer on.
            let _ = store.replace(&key, &updated, &active.etag).await;
        }
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
    };
    if dry_run {
        return Ok(FailoverAction::ScaledUp {
            on_demand: on_demand.to_string(),
            before,
            after,
            count,
        });
    }
    // Exactly one failover: the record is created once; an ended one is replaced by CAS.
    let won = match &existing {
        None => store.create(&key, &record).await?.is_some(),
        Some(ended) => store.replace(&key, &record, &ended.etag).await.is_ok(),
    };
    if !won {
        return Ok(FailoverAction::AlreadyFailedOver { count });
    }
    add_to_index(store, &key).await?;
    let token = format!("spot-failover-{}", now / 1000);
    node_groups
        .update_scaling(&on_demand, after, &token)
        .await?;
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
        let ended = if found == Some(r.after) {
            if dry_run {
                lines.push(format!("would return {} to {}", r.on_demand, r.before));
                continue;
            }
            let token = format!("spot-return-{}", r.at_ms / 1000);
            node_groups
                .update_scaling(&r.on_demand, r.before, &token)
                .await?;
            lines.push(format!(
                "returned {} to {} (spot {} stable)",
                r.on_demand, r.before, r.spot
            ));
            "returned".to_string()
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

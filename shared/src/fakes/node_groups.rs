//! A fake of [`NodeGroups`]: EKS managed node groups in memory, general enough for failover,
//! budget and spot: sizes, status, update ids, idempotency tokens and tags. An update is seen
//! `UPDATING` (with its new sizes) for a set number of reads, then `ACTIVE`; an update while
//! one runs is refused as EKS refuses it (`ResourceInUseException`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::{busy, Calls};
use crate::error::{Error, Result};
use crate::ports::{NodeGroup, NodeGroupId, NodeGroups, Scaling};

#[derive(Debug, Default)]
struct State {
    groups: BTreeMap<NodeGroupId, NodeGroup>,
    /// Reads left before the running update of a group ends.
    updating: BTreeMap<NodeGroupId, usize>,
    /// Update ids by idempotency token (EKS `clientRequestToken`).
    tokens: BTreeMap<String, String>,
    reads_per_update: usize,
    updates: u64,
}

/// [`NodeGroups`] in memory.
#[derive(Debug, Default)]
pub struct FakeNodeGroups {
    state: Mutex<State>,
    /// The calls made, by operation (`list`, `describe`, `update_scaling`, `tag`), and failures
    /// to answer with.
    pub calls: Calls,
}

/// The reads of [`FakeNodeGroups`].
pub const READS: &[&str] = &["list", "describe"];

impl FakeNodeGroups {
    /// No node groups; updates end at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every update from now on is seen `UPDATING` for `reads` describes of its group.
    pub fn updates_take(self, reads: usize) -> Self {
        self.state.lock().unwrap().reads_per_update = reads;
        self
    }

    /// An `ACTIVE` on-demand node group `cluster/name` at `scaling`.
    pub fn with_group(self, cluster: &str, name: &str, scaling: Scaling) -> Self {
        let id = NodeGroupId {
            cluster: cluster.into(),
            name: name.into(),
        };
        self.insert(NodeGroup {
            arn: format!("arn:aws:eks:us-west-2:123456789012:nodegroup/{cluster}/{name}/fake"),
            id,
            scaling,
            status: "ACTIVE".into(),
            instance_types: vec!["m5.large".into()],
            capacity_type: "ON_DEMAND".into(),
            tags: BTreeMap::new(),
        });
        self
    }

    /// Adds or replaces a node group as given (any status, capacity type, tags).
    pub fn insert(&self, group: NodeGroup) {
        self.state
            .lock()
            .unwrap()
            .groups
            .insert(group.id.clone(), group);
    }

    /// Sets a group's status (`DEGRADED`, `UPDATING`, …) as if EKS had changed it; it stays so.
    pub fn set_status(&self, id: &NodeGroupId, status: &str) {
        let mut state = self.state.lock().unwrap();
        state.updating.remove(id);
        if let Some(g) = state.groups.get_mut(id) {
            g.status = status.into();
        }
    }

    /// The group as stored now, without counting a call.
    pub fn peek(&self, id: &NodeGroupId) -> Option<NodeGroup> {
        self.state.lock().unwrap().groups.get(id).cloned()
    }
}

impl NodeGroups for FakeNodeGroups {
    async fn list(&self, cluster: &str) -> Result<Vec<NodeGroup>> {
        self.calls.record("list", cluster)?;
        let state = self.state.lock().unwrap();
        Ok(state
            .groups
            .values()
            .filter(|g| g.id.cluster == cluster)
            .cloned()
            .collect())
    }

    async fn describe(&self, id: &NodeGroupId) -> Result<Option<NodeGroup>> {
        self.calls.record("describe", &id.to_string())?;
        let state = &mut *self.state.lock().unwrap();
        if let Some(left) = state.updating.get_mut(id) {
            if *left == 0 {
                state.updating.remove(id);
                if let Some(g) = state.groups.get_mut(id) {
                    g.status = "ACTIVE".into();
                }
            } else {
                *left -= 1;
            }
        }
        Ok(state.groups.get(id).cloned())
    }

    async fn update_scaling(
        &self,
        id: &NodeGroupId,
        scaling: Scaling,
        token: &str,
    ) -> Result<String> {
        self.calls
            .record("update_scaling", &format!("{id} {scaling}"))?;
        let state = &mut *self.state.lock().unwrap();
        let what = format!("scale node group {id} to {scaling}");
        if let Some(update) = state.tokens.get(token) {
            return Ok(update.clone());
        }
        let reads = state.reads_per_update;
        let Some(group) = state.groups.get_mut(id) else {
            return Err(Error::NotFound(format!(
                "{what}: ResourceNotFoundException"
            )));
        };
        if group.status == "UPDATING" {
            return Err(busy(&what, "ResourceInUseException"));
        }
        if scaling.min > scaling.desired || scaling.desired > scaling.max || scaling.max < 1 {
            return Err(Error::Aws(format!("{what}: InvalidParameterException")));
        }
        group.scaling = scaling;
        if reads > 0 {
            group.status = "UPDATING".into();
            state.updating.insert(id.clone(), reads);
        }
        state.updates += 1;
        let update = format!("fake-update-{}", state.updates);
        state.tokens.insert(token.into(), update.clone());
        Ok(update)
    }

    async fn tag(&self, arn: &str, tags: BTreeMap<String, String>) -> Result<()> {
        self.calls.record("tag", arn)?;
        let mut state = self.state.lock().unwrap();
        let group = state
            .groups
            .values_mut()
            .find(|g| g.arn == arn)
            .ok_or_else(|| Error::NotFound(format!("tag {arn}: ResourceNotFoundException")))?;
        group.tags.extend(tags);
        Ok(())
    }
}

//! The restoring steps: failback's re-protection (a new replica in the region left) and a
//! drill's clean-up (the drill's copies removed, the estate as it was).

use std::collections::BTreeMap;

use breakwater::ports::{Dns, DnsRecord, MetricReader, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::Database;

use super::traffic::describe_states;
use super::*;

impl<R: Replicas, N: NodeGroups, D: Dns, M: MetricReader, C: RoutingControls, P: Probe>
    Engine<'_, R, N, D, M, C, P>
{
    /// Failback's re-protection: a replica of the current writer in the primary region.
    pub(super) async fn reprotect(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        if self.begin(shared, StepName::Reprotect).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let (replica, primary) = match &self.plan.database {
            Database::Rds { replica, primary: Some(primary) } => (replica.clone(), primary.clone()),
            Database::Rds { primary: None, .. } => {
                return self.fail(shared, StepName::Reprotect, "failback needs database.primary: the instance to re-create in the primary region".into()).await
            }
            Database::AuroraGlobal { .. } => {
                self.end(shared, StepName::Reprotect, StepState::Skipped, "Aurora global database: the old primary cluster rejoins as a secondary by itself once its region is back".into()).await?;
                return Ok(Progress::Done);
            }
        };
        let Some(writer) = self.ports.secondary_db.instance(&replica).await? else {
            return self
                .fail(
                    shared,
                    StepName::Reprotect,
                    format!(
                        "{replica} does not exist in {}",
                        self.plan.plan.secondary_region
                    ),
                )
                .await;
        };
        if !writer.writable() {
            return self.fail(shared, StepName::Reprotect, format!("{replica} is not the writer (status {}, source {:?}): nothing to fail back from", writer.status, writer.source)).await;
        }
        loop {
            match self.ports.primary_db.instance(&primary).await? {
                Some(db) if db.source.as_deref().is_some_and(|s| s == writer.arn || s == replica) => {
                    if db.status == "available" {
                        let detail = format!("{primary} replicates from {replica}");
                        self.end(shared, StepName::Reprotect, StepState::Done, detail).await?;
                        return Ok(Progress::Done);
                    }
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("{primary} is {}", db.status)));
                    }
                }
                Some(db) => {
                    return self.fail(shared, StepName::Reprotect, format!(
                        "{primary} still exists in {} as an independent database (status {}): delete or rename it first — re-protecting over it would leave two writers",
                        self.plan.plan.primary_region, db.status
                    )).await
                }
                None => {
                    let tags = BTreeMap::from([("breakwater:reprotected-from".to_string(), replica.clone())]);
                    let changed = self.ports.primary_db.create_replica(&primary, &writer.arn, tags).await?;
                    self.acted(shared, "CreateDBInstanceReadReplica", &format!("{primary} of {}", writer.arn), &changed).await?;
                }
            }
        }
    }

    /// A drill's clean-up: node groups, routing controls and records back to what they were, the
    /// promoted drill copy deleted when it is tagged as one — each read back.
    pub(super) async fn cleanup(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        if self.begin(shared, StepName::Cleanup).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let (before, exec_id) = {
            let e = shared.lock().await;
            (e.before.clone(), e.id.clone())
        };
        let mut done = Vec::new();
        for (id, _) in self.plan.plan.node_groups() {
            if let Some(scaling) = before.node_groups.get(&id.name) {
                let token = format!("{}-restore", token(&exec_id, &id.name));
                match self
                    .scale(shared, &id, scaling.min, scaling.desired, &token, deadline)
                    .await?
                {
                    Progress::Done => done.push(format!("{} back to {scaling}", id.name)),
                    other => return self.settle(shared, StepName::Cleanup, other).await,
                }
            }
        }
        if let (Some(rc), false) = (
            &self.plan.plan.traffic.routing_controls,
            before.routing_controls.is_empty(),
        ) {
            // All in one request: restored one by one, the cluster's safety rules could refuse
            // the state in between (both Off).
            let wanted: Vec<(String, bool)> = before
                .routing_controls
                .iter()
                .map(|(arn, on)| (arn.clone(), *on))
                .collect();
            let arns: Vec<String> = wanted.iter().map(|(arn, _)| arn.clone()).collect();
            let cluster = &rc.cluster_endpoints;
            let now = self.ports.switches.states(cluster, &arns).await?;
            if now.iter().zip(&wanted).any(|(n, (_, w))| n != w) {
                let changed = self.set_controls(cluster, &wanted).await?;
                self.acted(
                    shared,
                    "UpdateRoutingControlStates",
                    &format!("{} (restore)", describe_states(&wanted)),
                    &changed,
                )
                .await?;
            }
            let read = self.ports.switches.states(cluster, &arns).await?;
            if read.iter().zip(&wanted).any(|(n, (_, w))| n != w) {
                return self
                    .fail(
                        shared,
                        StepName::Cleanup,
                        format!(
                            "routing controls read back {read:?}, expected {}",
                            describe_states(&wanted)
                        ),
                    )
                    .await;
            }
            done.push(describe_states(&wanted));
        }
        let restore: Vec<DnsRecord> = before.records.values().flatten().cloned().collect();
        if !restore.is_empty() {
            let zone = self.plan.plan.traffic.zone_id.clone().unwrap_or_default();
            {
                shared.lock().await.change_id = None;
            }
            match self
                .write_records(shared, &zone, &restore, false, deadline)
                .await?
            {
                Progress::Done => done.push(format!("{} record(s) restored", restore.len())),
                other => return self.settle(shared, StepName::Cleanup, other).await,
            }
        }
        if let Database::Rds { replica, .. } = &self.plan.database {
            match self.ports.secondary_db.instance(replica).await? {
                Some(db) if db.tags.get("breakwater:drill").map(String::as_str) == Some("true") => {
                    if db.status != "deleting" {
                        let changed = self.ports.secondary_db.delete_instance(replica).await?;
                        self.acted(shared, "DeleteDBInstance", replica, &changed)
                            .await?;
                    }
                    match self.ports.secondary_db.instance(replica).await? {
                        None => done.push(format!("drill copy {replica} deleted")),
                        Some(db) if db.status == "deleting" => {
                            done.push(format!("drill copy {replica} deleting"))
                        }
                        Some(db) => {
                            return self
                                .fail(
                                    shared,
                                    StepName::Cleanup,
                                    format!("{replica} is still {}", db.status),
                                )
                                .await
                        }
                    }
                }
                Some(_) => {
                    self.note(shared, format!("{replica} was promoted by the drill and is not tagged breakwater:drill=true, so it was left in place: re-create the replica")).await?;
                }
                None => done.push(format!("drill copy {replica} already gone")),
            }
        }
        self.end(
            shared,
            StepName::Cleanup,
            StepState::Done,
            format!("restored and read back: {}", done.join("; ")),
        )
        .await?;
        Ok(Progress::Done)
    }
}

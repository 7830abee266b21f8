//! The restoring steps: failback's re-protection (a new replica in the region left) and a
//! drill's clean-up (the drill's copies removed, the estate as it was).

use std::collections::BTreeMap;

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{
    Dns, DnsRecord, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::Database;

use super::traffic::describe_states;
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
                    let placement = self.plan.plan.database.primary_placement();
                    // "If you create an encrypted read replica in a different AWS Region, then you
                    // must specify a KMS key identifier for the destination AWS Region. KMS keys
                    // are specific to the AWS Region that they are created in"
                    // (CreateDBInstanceReadReplica, KmsKeyId,
                    // <https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstanceReadReplica.html>).
                    if writer.encrypted && placement.kms_key_id.is_none() {
                        return self.fail(shared, StepName::Reprotect, format!(
                            "{replica} is encrypted ({}): a replica of it in {} needs a KMS key of that region — set database.primary_kms_key_id in the plan (and the template's FailoverPrimaryKmsKeyArn); nothing was created",
                            writer.kms_key_id.as_deref().unwrap_or("KMS"),
                            self.plan.plan.primary_region
                        )).await;
                    }
                    let tags = BTreeMap::from([("breakwater:reprotected-from".to_string(), replica.clone())]);
                    let changed = match self.ports.primary_db.create_replica(&primary, &writer.arn, &placement, tags).await {
                        Ok(changed) => changed,
                        Err(e) if e.is_retryable() => return Err(e),
                        Err(e) => return self.fail(shared, StepName::Reprotect, format!("CreateDBInstanceReadReplica {primary} of {}: {e}", writer.arn)).await,
                    };
                    let mut target = format!("{primary} of {}", writer.arn);
                    if let Some(key) = &placement.kms_key_id {
                        target.push_str(&format!(", encrypted with {key}"));
                    }
                    if let Some(group) = &placement.subnet_group {
                        target.push_str(&format!(", subnet group {group}"));
                    }
                    if !placement.security_groups.is_empty() {
                        target.push_str(&format!(", security groups {}", placement.security_groups.join(",")));
                    }
                    self.acted(shared, "CreateDBInstanceReadReplica", &target, &changed).await?;
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
        if let (Some(ms), false) = (
            &self.plan.plan.traffic.metric_switches,
            before.metric_switches.is_empty(),
        ) {
            // Each side back to the value its alarm said before (OK: 1, ALARM: 0), read back. A
            // side whose alarm had no state (INSUFFICIENT_DATA: never written) goes to its
            // resting position — the primary on, the secondary off — so that a drill never
            // leaves production traffic on the secondary.
            let mut wanted = Vec::new();
            for (side, resting) in [(&ms.primary, true), (&ms.secondary, false)] {
                match before.metric_switches.get(&side.alarm).map(String::as_str) {
                    Some("OK") => wanted.push((side, true)),
                    Some("ALARM") => wanted.push((side, false)),
                    other => {
                        wanted.push((side, resting));
                        self.note(
                            shared,
                            format!(
                                "alarm {} was {} before the drill: put to its resting position ({})",
                                side.alarm,
                                other.unwrap_or("unknown"),
                                if resting { "on" } else { "off" }
                            ),
                        )
                        .await?
                    }
                }
            }
            let since = shared
                .lock()
                .await
                .steps
                .get(&StepName::Cleanup)
                .and_then(|s| s.started_ms)
                .unwrap_or_else(|| self.now());
            match self
                .flip_metric(shared, ms, &wanted, false, since, deadline)
                .await?
            {
                Progress::Done => done.push(
                    wanted
                        .iter()
                        .map(|(side, on)| {
                            format!(
                                "alarm {} {} again",
                                side.alarm,
                                super::metric_switch::alarm_for(*on)
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                other => return self.settle(shared, StepName::Cleanup, other).await,
            }
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
            let promoted = requested(shared, "PromoteReadReplica", replica).await;
            match self.ports.secondary_db.instance(replica).await? {
                // A drill that failed before its promotion leaves the copy a replica: kept for
                // the next drill (re-creating a cross-region replica takes hours).
                Some(db) if !promoted && db.source.is_some() && db.status != "deleting" => done
                    .push(format!(
                        "drill copy {replica} never promoted: kept as a replica"
                    )),
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
        if let Database::AuroraGlobal {
            global_cluster,
            primary_cluster_arn,
            ..
        } = &self.plan.database
        {
            match primary_cluster_arn {
                Some(primary) => {
                    match self
                        .switch_back(shared, global_cluster, primary, deadline)
                        .await?
                    {
                        Progress::Done => {
                            done.push(format!("{global_cluster}: writer back on {primary}"))
                        }
                        other => return self.settle(shared, StepName::Cleanup, other).await,
                    }
                }
                None => {
                    self.note(shared, format!("{global_cluster}: the plan names no primary_cluster_arn, so the drill's switchover was not moved back")).await?;
                }
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

    /// A drill's Aurora switchover moved back: `SwitchoverGlobalCluster` to the primary cluster
    /// (asked for once), followed until it is the writer and no switchover is in progress.
    async fn switch_back(
        &self,
        shared: &Mutex<Execution>,
        global: &str,
        primary: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let target = format!("{global} → {primary} (restore)");
        loop {
            let cluster = match self
                .observe(global, deadline, || {
                    self.ports.secondary_db.global_cluster(global)
                })
                .await?
            {
                Ok(Some(c)) => c,
                Ok(None) => {
                    return Ok(Progress::Failed(format!(
                        "global cluster {global} does not exist"
                    )))
                }
                Err(waiting) => return Ok(waiting),
            };
            if cluster.writer.as_deref() == Some(primary) && cluster.failover_state.is_none() {
                return Ok(Progress::Done);
            }
            if cluster.failover_state.is_none()
                && !requested(shared, "SwitchoverGlobalCluster", &target).await
            {
                match self
                    .ports
                    .secondary_db
                    .move_global_writer(global, primary, false)
                    .await
                {
                    Ok(changed) => {
                        self.acted(shared, "SwitchoverGlobalCluster", &target, &changed)
                            .await?
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "global cluster busy; observing again");
                    }
                    Err(e) => {
                        return Ok(Progress::Failed(format!(
                            "SwitchoverGlobalCluster {target}: {e}"
                        )))
                    }
                }
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "{global}: moving the writer back to {primary}"
                )));
            }
        }
    }
}

//! The verify step: the new writer, the node groups, the routing controls (or the metric
//! switches' alarms) and records read back,
//! and the secondary's health URL probed, before an execution is called healthy.

use std::time::Duration;

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::estate::{self, DatabaseSeen, Look};
use crate::plan::Database;

use super::*;

/// How long the verify step reads back before it calls the execution failed.
pub const VERIFY_FOR_MS: u64 = 300_000;

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
    /// Reads everything back until it is as planned, for up to [`VERIFY_FOR_MS`] from the step's
    /// start (a health URL that answers a minute after the switch is normal): the execution is
    /// healthy — the RTO's end — only when it is.
    pub(super) async fn verify(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        let (mode, exec_id) = {
            let e = shared.lock().await;
            (e.mode, e.id.clone())
        };
        if self.begin(shared, StepName::Verify).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let started = shared
            .lock()
            .await
            .steps
            .get(&StepName::Verify)
            .and_then(|s| s.started_ms)
            .unwrap_or_else(|| self.now());
        loop {
            let (seen, wrong) = self.read_back(self.back(mode)).await?;
            if wrong.is_empty() {
                let detail = format!("read back: {}", seen.join("; "));
                self.end(shared, StepName::Verify, StepState::Done, detail.clone())
                    .await?;
                self.notify(&exec_id, "healthy", detail, "info").await?;
                return Ok(Progress::Done);
            }
            if self.now() >= started + VERIFY_FOR_MS {
                return self
                    .fail(
                        shared,
                        StepName::Verify,
                        format!(
                            "not as planned after {} s: {}",
                            VERIFY_FOR_MS / 1000,
                            wrong.join("; ")
                        ),
                    )
                    .await;
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "verify: not yet as planned: {}",
                    wrong.join("; ")
                )));
            }
        }
    }

    /// Everything read back once: the database writable, the node groups at size and ACTIVE,
    /// the new side's routing control On, the records in place, and the new side's health
    /// endpoint when named. What is as planned, and what is not.
    async fn read_back(&self, back: bool) -> Result<(Vec<String>, Vec<String>)> {
        let mut seen = Vec::new();
        let mut wrong = Vec::new();
        let (db, instance) = match &self.plan.database {
            Database::Rds { replica, primary } => self.rds_target(back, replica, primary),
            Database::AuroraGlobal { .. } => (&self.ports.secondary_db, String::new()),
        };
        let look = Look {
            db,
            instance: &instance,
            node_groups: !back,
            traffic: Some(!back),
            controls: true,
        };
        let estate = estate::observe(
            self.plan,
            look,
            &self.ports.nodes,
            &self.ports.dns,
            &self.ports.switches,
            &self.ports.metric_switches,
        )
        .await?;
        match (&self.plan.database, estate.database) {
            (Database::Rds { .. }, DatabaseSeen::Instance(live)) => {
                let id = &instance;
                match live {
                    Some(db) if db.writable() => seen.push(format!("{id} writable")),
                    Some(db) => {
                        wrong.push(format!("{id} is {} (source {:?})", db.status, db.source))
                    }
                    None => wrong.push(format!("{id} does not exist")),
                }
            }
            (
                Database::AuroraGlobal {
                    global_cluster,
                    target_cluster_arn,
                    primary_cluster_arn,
                },
                DatabaseSeen::Global(live),
            ) => {
                let writer = live.and_then(|g| g.writer);
                let expected = if back {
                    primary_cluster_arn.clone()
                } else {
                    Some(target_cluster_arn.clone())
                };
                if writer.is_some() && writer == expected {
                    seen.push(format!(
                        "{global_cluster} writer {}",
                        writer.unwrap_or_default()
                    ));
                } else {
                    wrong.push(format!(
                        "{global_cluster} writer is {writer:?}, expected {expected:?}"
                    ));
                }
            }
            _ => unreachable!("the observer reads the plan's own kind of database"),
        }
        for (id, target, live) in estate.node_groups {
            match live {
                Some(g)
                    if g.status == "ACTIVE"
                        && g.scaling.min >= target.min
                        && g.scaling.desired >= target.desired =>
                {
                    seen.push(format!("{} ACTIVE {}", id.name, g.scaling))
                }
                Some(g) => wrong.push(format!("{id} is {} at {}", g.status, g.scaling)),
                None => wrong.push(format!("{id} does not exist")),
            }
        }
        if let Some(eks) = self.plan.plan.eks.as_ref().filter(|_| !back) {
            // The nodes step may have accepted the plan's minimums after its wait: verify asks
            // no more than that.
            let reading = super::capacity::read_capacity(
                &self.ports.capacity,
                eks,
                super::capacity::Enough::Min,
            )
            .await;
            seen.extend(reading.seen);
            wrong.extend(reading.wrong);
        }
        if let (Some(rc), Some((primary_on, secondary_on))) =
            (&self.plan.plan.traffic.routing_controls, estate.controls)
        {
            let (left, to) = rc.sides(!back);
            let (left_on, to_on) = if back {
                (secondary_on, primary_on)
            } else {
                (primary_on, secondary_on)
            };
            if to_on {
                seen.push(format!("routing control {to} On"));
            } else {
                wrong.push(format!("routing control {to} is Off"));
            }
            // The old side still On is not a failure of the failover (a safety rule may keep it
            // on); it is said.
            if left_on {
                seen.push(format!("routing control {left} still On"));
            }
        }
        if let (Some(ms), Some((primary, secondary))) = (
            &self.plan.plan.traffic.metric_switches,
            estate.switch_alarms,
        ) {
            let (left, to) = ms.sides(!back);
            let (left_state, to_state) = if back {
                (secondary, primary)
            } else {
                (primary, secondary)
            };
            // Both count: unlike a routing control kept On by a safety rule, an old side whose
            // alarm is still OK keeps its health check healthy, and Route 53 keeps answering
            // with its (PRIMARY) record.
            for (side, state, on) in [(to, to_state, true), (left, left_state, false)] {
                let want = super::metric_switch::alarm_for(on);
                match state {
                    Some(s) if s.value == want => seen.push(format!(
                        "alarm {} {want} (its health check {})",
                        side.alarm,
                        if on { "healthy" } else { "unhealthy" }
                    )),
                    Some(s) => wrong.push(format!(
                        "alarm {} is {}, expected {want}",
                        side.alarm, s.value
                    )),
                    None => wrong.push(format!("alarm {} does not exist", side.alarm)),
                }
            }
        }
        for (want, live) in estate.records {
            match live {
                Some(r) if r.value == want.value => {
                    seen.push(format!("{} → {}", want.name, r.value))
                }
                other => wrong.push(format!(
                    "{} is {:?}, expected {}",
                    want.name,
                    other.map(|r| r.value),
                    want.value
                )),
            }
        }
        if let Some(url) = self
            .plan
            .plan
            .secondary_health_url
            .as_deref()
            .filter(|_| !back)
        {
            match self.ports.probe.get(url, Duration::from_secs(3)).await {
                Ok(status) => seen.push(format!("{url} answered {status}")),
                Err(e) => wrong.push(format!("{url}: {e}")),
            }
        }
        Ok((seen, wrong))
    }
}

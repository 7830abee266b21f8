//! The verify step: the new writer, the node groups, the health checks and records read back,
//! and the secondary's health URL probed, before an execution is called healthy.

use std::time::Duration;

use breakwater::ports::{Dns, MetricReader, NodeGroups, Replicas};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;

use crate::estate::{self, DatabaseSeen, Look, Switches};
use crate::plan::Database;

use super::*;

impl<R: Replicas, N: NodeGroups, D: Dns, M: MetricReader, P: Probe> Engine<'_, R, N, D, M, P> {
    /// Reads everything back: the database writable, the node groups at size and ACTIVE, the
    /// gate open and the records in place, and the new side's health endpoint when named.
    pub(super) async fn verify(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        let (mode, exec_id) = {
            let e = shared.lock().await;
            (e.mode, e.id.clone())
        };
        if self.begin(shared, StepName::Verify).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let back = self.back(mode);
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
            switches: Switches::One { primary: back },
        };
        let estate = estate::observe(self.plan, look, &self.ports.nodes, &self.ports.dns).await?;
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
        if let Some(checks) = &self.plan.plan.traffic.health_checks {
            let (gate, inverted) = if back {
                (&checks.primary, estate.primary_switch)
            } else {
                (&checks.secondary, estate.gate_switch)
            };
            match inverted.flatten() {
                Some(false) => seen.push(format!("gate {gate} open")),
                other => wrong.push(format!("gate {gate}: inverted = {other:?}")),
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
        if wrong.is_empty() {
            let detail = format!("read back: {}", seen.join("; "));
            self.end(shared, StepName::Verify, StepState::Done, detail.clone())
                .await?;
            self.notify(&exec_id, "healthy", detail, "info").await?;
            Ok(Progress::Done)
        } else {
            self.fail(
                shared,
                StepName::Verify,
                format!("not as planned: {}", wrong.join("; ")),
            )
            .await
        }
    }
}

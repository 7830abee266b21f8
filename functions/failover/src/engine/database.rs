//! The database step: the RPO guard, then an RDS replica promoted or an Aurora global database's
//! writer moved (failover with data loss allowed, switchover without), observed until it writes.

use breakwater::ports::{Dns, MetricReader, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::Database;

use super::*;

impl<R: Replicas, N: NodeGroups, D: Dns, M: MetricReader, C: RoutingControls, P: Probe>
    Engine<'_, R, N, D, M, C, P>
{
    /// The lag of the replica about to be promoted (seconds), `None` when CloudWatch has none.
    pub(super) async fn lag(&self, back: bool) -> Result<Option<f64>> {
        let now = self.now();
        let metrics = if back {
            &self.ports.primary_metrics
        } else {
            &self.ports.metrics
        };
        match &self.plan.database {
            Database::Rds { replica, primary } => {
                let (_, id) = self.rds_target(back, replica, primary);
                // RDS publishes -1 when replication is not active ("If the ReplicaLag metric
                // returns -1, then replication is currently not active", Monitoring MySQL /
                // MariaDB read replicas, Amazon RDS User Guide): the lag is then unknown, never 0.
                Ok(metrics
                    .latest(
                        "AWS/RDS",
                        "ReplicaLag",
                        &[("DBInstanceIdentifier", &id)],
                        now,
                        300_000,
                    )
                    .await?
                    .and_then(|(v, _)| (v >= 0.0).then_some(v)))
            }
            Database::AuroraGlobal {
                target_cluster_arn, ..
            } => {
                let cluster = target_cluster_arn.rsplit(':').next().unwrap_or_default();
                Ok(metrics
                    .latest(
                        "AWS/RDS",
                        "AuroraGlobalDBRPOLag",
                        &[("DBClusterIdentifier", cluster)],
                        now,
                        300_000,
                    )
                    .await?
                    .map(|(v, _)| v / 1000.0))
            }
        }
    }

    /// The RPO guard: `Ok(None)` to go on, `Ok(Some(reason))` to refuse.
    /// Reads the replica lag into the record (while the fence is set: the guard then needs no
    /// second round trip before the promotion).
    pub(super) async fn read_lag(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<f64>> {
        let lag = self.lag(self.back(mode)).await?;
        let now = self.now();
        let mut exec = shared.lock().await;
        exec.lag_seconds = lag;
        exec.lag_read_ms = Some(now);
        Ok(lag)
    }

    /// For an unplanned promotion not yet asked for: the RPO guard's refusal, if it refuses.
    pub(super) async fn refused_by_rpo(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<String>> {
        let asked = shared.lock().await.actions.iter().any(|a| {
            matches!(
                a.operation.as_str(),
                "PromoteReadReplica" | "FailoverGlobalCluster" | "SwitchoverGlobalCluster"
            )
        });
        if !mode.unplanned() || asked {
            return Ok(None);
        }
        Ok(match self.rpo_guard(shared, mode).await? {
            Some(Progress::Failed(reason)) => Some(reason),
            _ => None,
        })
    }

    pub(super) async fn rpo_guard(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<Progress>> {
        let rpo = self.plan.plan.targets.rpo_seconds as f64;
        let (fresh, accepted) = {
            let exec = shared.lock().await;
            let fresh = exec
                .lag_read_ms
                .filter(|at| self.now().saturating_sub(*at) <= 10_000)
                .map(|_| exec.lag_seconds);
            (fresh, exec.accept_data_loss_seconds)
        };
        // The next checkpoint (the promotion's, or the refusal's) records it.
        let lag = match fresh {
            Some(lag) if mode.unplanned() => lag,
            _ => self.read_lag(shared, mode).await?,
        };
        if !mode.unplanned() {
            // Planned: no data loss — wait for the replica to catch up.
            return Ok(match lag {
                Some(l) if l <= 0.0 => None,
                Some(l) => Some(Progress::Waiting(format!(
                    "replica lag {l} s, waiting for 0"
                ))),
                None => Some(Progress::Waiting("replica lag not reported yet".into())),
            });
        }
        let within = lag.is_some_and(|l| l <= rpo);
        if within {
            return Ok(None);
        }
        let shown = lag
            .map(|l| format!("{l} s"))
            .unwrap_or_else(|| "unknown".into());
        match (lag, accepted) {
            (Some(l), Some(a)) if l <= a as f64 => {
                self.note(shared, format!("replica lag {shown} exceeded the RPO of {rpo} s; the invocation accepted up to {a} s of data loss")).await?;
                Ok(None)
            }
            (None, Some(a)) => {
                self.note(shared, format!("replica lag unknown; the invocation accepted up to {a} s of data loss")).await?;
                Ok(None)
            }
            (None, _) => Ok(Some(Progress::Failed(format!(
                "refused: replica lag unknown (no sample in the last 5 minutes, or -1: replication not active), so the RPO of {rpo} s cannot be shown to hold; nothing was promoted. Invoke again with accept_data_loss_seconds to promote anyway"
            )))),
            _ => Ok(Some(Progress::Failed(format!(
                "refused: replica lag {shown} is above the RPO of {rpo} s; nothing was promoted. Invoke again with accept_data_loss_seconds ≥ the lag to promote anyway"
            )))),
        }
    }

    pub(super) async fn database(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        let mode = shared.lock().await.mode;
        if self.begin(shared, StepName::Database).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let progress = match &self.plan.database {
            Database::Rds { replica, primary } => {
                let (ports, id) = self.rds_target(self.back(mode), replica, primary);
                self.promote_rds(shared, mode, ports, &id, deadline).await?
            }
            Database::AuroraGlobal {
                global_cluster,
                target_cluster_arn,
                primary_cluster_arn,
            } => {
                let target = if self.back(mode) {
                    match primary_cluster_arn {
                        Some(w) => w.clone(),
                        None => {
                            return self.fail(shared, StepName::Database, "failback needs database.primary_cluster_arn: the cluster to return the writer to".into()).await
                        }
                    }
                } else {
                    target_cluster_arn.clone()
                };
                self.move_aurora(shared, mode, global_cluster, &target, deadline)
                    .await?
            }
        };
        self.settle(shared, StepName::Database, progress).await
    }

    /// The RPO guard, waiting (planned moves) for the lag to reach 0 until the deadline:
    /// `Ok(())` to promote, `Err(progress)` to stop there.
    pub(super) async fn guard(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        deadline: Instant,
    ) -> Result<std::result::Result<(), Progress>> {
        loop {
            match self.rpo_guard(shared, mode).await? {
                None => return Ok(Ok(())),
                Some(Progress::Waiting(w)) => {
                    if !self.sleep(deadline).await {
                        return Ok(Err(Progress::Waiting(w)));
                    }
                }
                Some(stop) => return Ok(Err(stop)),
            }
        }
    }

    pub(super) async fn database_done(
        &self,
        shared: &Mutex<Execution>,
        exec_id: &str,
        detail: String,
    ) -> Result<Progress> {
        self.end(shared, StepName::Database, StepState::Done, detail.clone())
            .await?;
        self.notify(exec_id, "database", detail, "info").await?;
        Ok(Progress::Done)
    }

    pub(super) async fn promote_rds(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        ports: &R,
        id: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let exec_id = shared.lock().await.id.clone();
        loop {
            let observed = match self.observe(id, deadline, || ports.instance(id)).await? {
                Ok(o) => o,
                Err(waiting) => return Ok(waiting),
            };
            let Some(db) = observed else {
                return Ok(Progress::Failed(format!("DB instance {id} does not exist")));
            };
            if db.writable() {
                let detail = format!("{id} promoted: available, no replication source (writable)");
                return self.database_done(shared, &exec_id, detail).await;
            }
            let requested = requested(shared, "PromoteReadReplica", id).await;
            let ready = db.source.is_some() && db.status == "available";
            if ready && !requested {
                if let Err(stop) = self.guard(shared, mode, deadline).await? {
                    return Ok(stop);
                }
                match ports.promote(id).await {
                    Ok(changed) => {
                        self.acted(shared, "PromoteReadReplica", id, &changed)
                            .await?;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "promotion not accepted yet; observing again");
                    }
                    Err(e) => return Ok(Progress::Failed(format!("PromoteReadReplica {id}: {e}"))),
                }
            }
            // Promoting (modifying, rebooting), backing up, or just promoted: observe again.
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!("{id} is {}", db.status)));
            }
        }
    }

    pub(super) async fn move_aurora(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
        global: &str,
        target: &str,
        deadline: Instant,
    ) -> Result<Progress> {
        let exec_id = shared.lock().await.id.clone();
        let operation = if mode.unplanned() {
            "FailoverGlobalCluster"
        } else {
            "SwitchoverGlobalCluster"
        };
        loop {
            let observed = match self
                .observe(global, deadline, || {
                    self.ports.secondary_db.global_cluster(global)
                })
                .await?
            {
                Ok(o) => o,
                Err(waiting) => return Ok(waiting),
            };
            let Some(cluster) = observed else {
                return Ok(Progress::Failed(format!(
                    "global cluster {global} does not exist"
                )));
            };
            if cluster.writer.as_deref() == Some(target) && cluster.failover_state.is_none() {
                let detail = format!("{global}: writer is {target}");
                return self.database_done(shared, &exec_id, detail).await;
            }
            let requested = requested(shared, operation, global).await;
            if cluster.failover_state.is_none() && !requested {
                // A switchover waits for the secondary itself; only a failover needs the guard.
                if mode.unplanned() {
                    if let Err(stop) = self.guard(shared, mode, deadline).await? {
                        return Ok(stop);
                    }
                }
                match self
                    .ports
                    .secondary_db
                    .move_global_writer(global, target, mode.unplanned())
                    .await
                {
                    Ok(changed) => self.acted(shared, operation, global, &changed).await?,
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "global cluster busy; observing again");
                    }
                    Err(e) => return Ok(Progress::Failed(format!("{operation} {global}: {e}"))),
                }
            }
            if !self.sleep(deadline).await {
                return Ok(Progress::Waiting(format!(
                    "{global} is {} ({})",
                    cluster.status,
                    cluster
                        .failover_state
                        .as_deref()
                        .unwrap_or("no failover state")
                )));
            }
        }
    }
}

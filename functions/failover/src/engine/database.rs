//! The database step: the RPO guard, then an RDS replica promoted or an Aurora global database's
//! writer moved (failover with data loss allowed, switchover without), observed until it writes.

use breakwater::clock::rfc3339;
use breakwater::kube::capacity::Capacity;
use breakwater::ports::{Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::plan::Database;

use super::*;

/// How far back a lag sample may be (ms): RDS publishes its metrics every minute.
const LAG_LOOKBACK_MS: u64 = 300_000;

/// Which sample of the lag to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagAt {
    /// The newest (a planned move waits for the lag to reach 0 now).
    Latest(u64),
    /// The last whole minute at or before this time (ms): the lag before the outage began.
    Before(u64),
}

/// A replica lag as read for the RPO guard (and `precheck`).
#[derive(Debug, Clone, PartialEq)]
pub struct LagReading {
    /// Seconds; `None` when unknown (no sample, or a negative one: replication not active).
    pub seconds: Option<f64>,
    /// The sample as published (the metric's unit) and its minute (ms).
    pub sample: Option<(f64, u64)>,
    /// `AWS/RDS <metric> <dimension>=<value>`, and why this metric when it is a fallback.
    pub metric: String,
}

/// The metric a database's lag is read from: (name, dimension, value, divisor to seconds, why).
async fn lag_metric<R: Replicas>(
    database: &Database,
    target: &str,
    rds: &R,
) -> Result<(&'static str, &'static str, String, f64, Option<String>)> {
    match database {
        // ReplicaLag is in seconds ("ReplicaLag: For read replica configurations, the amount
        // of time a read replica DB instance lags behind the source DB instance … Units:
        // Seconds", Amazon CloudWatch metrics for Amazon RDS,
        // <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html>).
        Database::Rds { .. } => Ok((
            "ReplicaLag",
            "DBInstanceIdentifier",
            target.into(),
            1.0,
            None,
        )),
        Database::AuroraGlobal { global_cluster, .. } => {
            let cluster = target.rsplit(':').next().unwrap_or_default().to_string();
            let global = rds.global_cluster(global_cluster).await?;
            let (engine, version) = global
                .map(|g| {
                    (
                        g.engine.unwrap_or_default(),
                        g.engine_version.unwrap_or_default(),
                    )
                })
                .unwrap_or_default();
            // "For all versions of Aurora PostgreSQL-based global databases, and for Aurora
            // MySQL-based global databases starting with engine versions 3.04.0 and higher or
            // 2.12.0 and higher, use Amazon CloudWatch to view the AuroraGlobalDBRPOLag metric
            // … For lower minor versions of Aurora MySQL-based global databases, view the
            // AuroraGlobalDBReplicationLag metric instead. These metrics show you how far behind
            // (in milliseconds) replication to a secondary cluster is" (Using switchover or
            // failover in Amazon Aurora Global Database, Amazon Aurora User Guide,
            // <https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html>).
            if publishes_rpo_lag(&engine, &version) {
                Ok((
                    "AuroraGlobalDBRPOLag",
                    "DBClusterIdentifier",
                    cluster,
                    1000.0,
                    None,
                ))
            } else {
                Ok((
                    "AuroraGlobalDBReplicationLag",
                    "DBClusterIdentifier",
                    cluster,
                    1000.0,
                    Some(format!(
                        "{engine} {version} does not publish AuroraGlobalDBRPOLag (Aurora MySQL below 3.04.0 / 2.12.0)"
                    )),
                ))
            }
        }
    }
}

/// Whether an Aurora global database of `engine` at `version` publishes `AuroraGlobalDBRPOLag`:
/// every Aurora PostgreSQL, Aurora MySQL from 3.04.0 and from 2.12.0 (versions read
/// `8.0.mysql_aurora.3.04.0`, `5.7.mysql_aurora.2.12.0`). An Aurora MySQL version that cannot be
/// read is taken to be older: the fallback metric exists on every version.
pub fn publishes_rpo_lag(engine: &str, version: &str) -> bool {
    if !engine.starts_with("aurora") || engine == "aurora-postgresql" {
        return true;
    }
    let Some(aurora) = version.split("mysql_aurora.").nth(1) else {
        return false;
    };
    let mut parts = aurora.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => match major {
            0 | 1 => false,
            2 => minor >= 12,
            3 => minor >= 4,
            _ => true,
        },
        _ => false,
    }
}

/// The replica lag the RPO guard reads, and `precheck` with it: of the RDS instance `target`,
/// or of the Aurora cluster (ARN) `target`, whose global database `rds` describes.
pub async fn replica_lag<R: Replicas, M: MetricReader>(
    database: &Database,
    target: &str,
    rds: &R,
    metrics: &M,
    at: LagAt,
) -> Result<LagReading> {
    let (metric, dimension, value, per_second, why) = lag_metric(database, target, rds).await?;
    let dims = [(dimension, value.as_str())];
    let sample = match at {
        LagAt::Latest(now) => {
            metrics
                .latest("AWS/RDS", metric, &dims, now, LAG_LOOKBACK_MS)
                .await?
        }
        LagAt::Before(t) => {
            metrics
                .at_or_before("AWS/RDS", metric, &dims, t, LAG_LOOKBACK_MS)
                .await?
        }
    };
    // RDS publishes -1 when replication is not active ("If the ReplicaLag metric returns -1,
    // then replication is currently not active", Monitoring read replication, Amazon RDS User
    // Guide, <https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Monitoring.html>);
    // Aurora's global lag reads -1 for the primary cluster ("A value of -1 denotes the primary
    // DB cluster (and thus, lag isn't relevant)", aurora_global_db_status). Either way the lag
    // is unknown, never 0.
    let seconds = sample.and_then(|(v, _)| (v >= 0.0).then_some(v / per_second));
    let mut described = format!("AWS/RDS {metric} {dimension}={value}");
    if per_second != 1.0 {
        described.push_str(" (milliseconds)");
    }
    if let Some(why) = why {
        described.push_str(&format!(": {why}"));
    }
    Ok(LagReading {
        seconds,
        sample,
        metric: described,
    })
}

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
    /// The lag of the replica about to be promoted, as of `at`.
    pub(super) async fn lag(&self, back: bool, at: LagAt) -> Result<LagReading> {
        let metrics = if back {
            &self.ports.primary_metrics
        } else {
            &self.ports.metrics
        };
        let target = match &self.plan.database {
            Database::Rds { replica, primary } => self.rds_target(back, replica, primary).1,
            Database::AuroraGlobal {
                target_cluster_arn,
                primary_cluster_arn,
                ..
            } => match (back, primary_cluster_arn) {
                (true, Some(arn)) => arn.clone(),
                _ => target_cluster_arn.clone(),
            },
        };
        replica_lag(
            &self.plan.database,
            &target,
            &self.ports.secondary_db,
            metrics,
            at,
        )
        .await
    }

    /// Reads the replica lag into the record (an unplanned move: before anything moves, the
    /// fence included; the guard then needs no second round trip before the promotion). An
    /// unplanned move reads the lag as it was
    /// before the outage: the last whole minute at or before the quorum began (a manual
    /// command: at or before the command) — a lag that rose after the primary went down is the
    /// outage, not the replica. A planned move reads the latest (it waits for 0).
    pub(super) async fn read_lag(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<f64>> {
        let reference = shared.lock().await.detected_ms;
        let at = if mode.unplanned() {
            LagAt::Before(reference)
        } else {
            LagAt::Latest(self.now())
        };
        let reading = self.lag(self.back(mode), at).await?;
        let now = self.now();
        let mut exec = shared.lock().await;
        exec.lag_seconds = reading.seconds;
        exec.lag_read_ms = Some(now);
        exec.lag_metric = Some(reading.metric);
        exec.lag_sample_value = reading.sample.map(|(v, _)| v);
        exec.lag_sample_ms = reading.sample.map(|(_, t)| t);
        exec.lag_reference_ms = match at {
            LagAt::Before(t) => Some(t),
            LagAt::Latest(_) => None,
        };
        Ok(reading.seconds)
    }

    /// What the guard read, for its notes and refusals.
    async fn lag_shown(&self, shared: &Mutex<Execution>) -> String {
        let exec = shared.lock().await;
        let metric = exec.lag_metric.clone().unwrap_or_default();
        let when = match exec.lag_reference_ms {
            Some(t) => format!(
                "the last whole minute at or before {}, {}",
                rfc3339(t),
                if exec.quorum.is_some() {
                    "when the quorum began"
                } else {
                    "the time of the command"
                }
            ),
            None => "the latest minute".into(),
        };
        match (exec.lag_sample_value, exec.lag_sample_ms) {
            (Some(v), Some(t)) => {
                format!("{metric} = {v} for the minute from {} ({when})", rfc3339(t))
            }
            _ => format!("{metric}: no sample in the 5 minutes up to {when}"),
        }
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

    /// The RPO guard: `Ok(None)` to go on, `Ok(Some(progress))` to wait or refuse.
    pub(super) async fn rpo_guard(
        &self,
        shared: &Mutex<Execution>,
        mode: Mode,
    ) -> Result<Option<Progress>> {
        let rpo = self.plan.plan.targets.rpo_seconds as f64;
        let (fresh, accepted) = {
            let exec = shared.lock().await;
            // A reading of the same minute (an unplanned move reads the lag as it was when the
            // quorum began, whenever it reads it) that found a sample is kept: the promotion,
            // behind a fence that may take long, decides on the reading the guard decided on
            // before anything moved. Otherwise a reading of the last 10 s is kept.
            let same_minute = exec.lag_seconds.is_some()
                && exec.lag_reference_ms.is_some_and(|t| t == exec.detected_ms);
            let fresh = exec
                .lag_read_ms
                .filter(|at| same_minute || self.now().saturating_sub(*at) <= 10_000)
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
        // The sample the guard decides on, in the record (and so in the report).
        let read = self.lag_shown(shared).await;
        let within = lag.is_some_and(|l| l <= rpo);
        if within {
            self.note_with_next_checkpoint(
                shared,
                format!(
                    "RPO guard: replica lag {} s within the RPO of {rpo} s — {read}",
                    lag.unwrap_or_default()
                ),
            )
            .await;
            return Ok(None);
        }
        let shown = lag
            .map(|l| format!("{l} s"))
            .unwrap_or_else(|| "unknown".into());
        match (lag, accepted) {
            (Some(l), Some(a)) if l <= a as f64 => {
                self.note_with_next_checkpoint(shared, format!("replica lag {shown} exceeded the RPO of {rpo} s; the invocation accepted up to {a} s of data loss — {read}")).await;
                Ok(None)
            }
            (None, Some(a)) => {
                self.note_with_next_checkpoint(shared, format!("replica lag unknown; the invocation accepted up to {a} s of data loss — {read}")).await;
                Ok(None)
            }
            (None, _) => Ok(Some(Progress::Failed(format!(
                "refused: replica lag unknown (no sample, or -1: replication not active), so the RPO of {rpo} s cannot be shown to hold; nothing was promoted. Invoke again with accept_data_loss_seconds to promote anyway — {read}"
            )))),
            _ => Ok(Some(Progress::Failed(format!(
                "refused: replica lag {shown} is above the RPO of {rpo} s; nothing was promoted. Invoke again with accept_data_loss_seconds ≥ the lag to promote anyway — {read}"
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
        // Only a real failover may lose data: a drill is a planned switchover, which the
        // clean-up moves back ("Switchover … no data loss", Aurora User Guide, "Using switchover
        // or failover in an Amazon Aurora global database").
        let unplanned = mode == Mode::Failover;
        let operation = if unplanned {
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
                if unplanned {
                    if let Err(stop) = self.guard(shared, mode, deadline).await? {
                        return Ok(stop);
                    }
                }
                match self
                    .ports
                    .secondary_db
                    .move_global_writer(global, target, unplanned)
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

#[cfg(test)]
mod tests {
    use super::publishes_rpo_lag;

    #[test]
    fn aurora_mysql_publishes_the_rpo_lag_from_3_04_and_2_12_and_postgresql_always() {
        for (engine, version, rpo) in [
            ("aurora-mysql", "8.0.mysql_aurora.3.03.1", false),
            ("aurora-mysql", "8.0.mysql_aurora.3.04.0", true),
            ("aurora-mysql", "8.0.mysql_aurora.3.10.0", true),
            ("aurora-mysql", "5.7.mysql_aurora.2.11.4", false),
            ("aurora-mysql", "5.7.mysql_aurora.2.12.0", true),
            ("aurora", "5.6.mysql_aurora.1.23.4", false),
            ("aurora-mysql", "8.0", false),
            ("aurora-postgresql", "11.9", true),
            ("aurora-postgresql", "16.2", true),
        ] {
            assert_eq!(
                publishes_rpo_lag(engine, version),
                rpo,
                "{engine} {version}"
            );
        }
    }
}

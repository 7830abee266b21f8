//! The reconcile loop: runs the execution's steps in order (fence → database, beside the node
//! groups), until each is done, failed, or waiting past the invocation's deadline (then checkpointed for the next).

use std::sync::Arc;

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls};
use breakwater::probe::Probe;
use breakwater::Result;
use tokio::sync::Mutex;
use tokio::time::Instant;

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
    /// Runs (or resumes) the execution as far as it can go in this invocation. The steps'
    /// notifications are sent beside the steps, and all of them before this returns.
    pub async fn reconcile(&self, exec: Execution) -> Result<Execution> {
        let queued = self.notices.open();
        let steps = async {
            let result = self.run(exec).await;
            self.notices.close();
            result
        };
        let (exec, sent) = tokio::join!(steps, self.send_notices(queued));
        let exec = exec?;
        sent?;
        Ok(exec)
    }

    async fn run(&self, exec: Execution) -> Result<Execution> {
        let deadline = Instant::now() + self.pace.budget;
        let mode = exec.mode;
        let fresh =
            exec.actions.is_empty() && exec.steps.values().all(|s| s.state == StepState::Pending);
        if fresh {
            self.notify(
                &exec.id,
                "started",
                format!(
                    "{} of plan {} started ({}); RTO target {} s.",
                    mode.as_str(),
                    self.plan.plan.name,
                    exec.trigger,
                    self.plan.plan.targets.rto_seconds
                ),
                "critical",
            )
            .await?;
        }
        let shared = Arc::new(Mutex::new(exec));
        let steps = mode.steps();
        let mut i = 0;
        while i < steps.len() {
            let step = steps[i];
            let state = shared.lock().await.state(step);
            // The fence is best effort: its failure is recorded and the failover goes on.
            let passed = matches!(state, StepState::Done | StepState::Skipped)
                || (state == StepState::Failed && step == StepName::Fence);
            if passed {
                i += 1;
                continue;
            }
            if state == StepState::Failed {
                break;
            }
            let progress = match step {
                StepName::Fence
                    if steps.get(i + 1) == Some(&StepName::Database)
                        && steps.get(i + 2) == Some(&StepName::Nodes) =>
                {
                    // The RPO guard decides first (one metric read in the healthy region): a
                    // promotion it forbids is refused before anything moves, the fence included.
                    if let Some(refusal) = self.refused_by_rpo(&shared, mode).await? {
                        self.end(&shared, StepName::Database, StepState::Failed, refusal)
                            .await?;
                        break;
                    }
                    // Then the capacity starts at once (polled first, so its checkpoint is the
                    // first written): raising node groups needs no fence, and it is the longest
                    // branch. The promotion waits for the fence (best effort: a refused fence
                    // is recorded and the promotion goes on).
                    let fenced_then_promoted = async {
                        Box::pin(self.fence(&shared)).await?;
                        Box::pin(self.database(&shared, deadline)).await
                    };
                    let (nodes, db) = tokio::join!(
                        Box::pin(self.nodes(&shared, deadline)),
                        fenced_then_promoted
                    );
                    i += 2;
                    both(db?, nodes?)
                }
                StepName::Fence => {
                    // The lag is read while the fence is set (an unplanned promotion follows).
                    let prefetch = async {
                        let database = shared.lock().await.state(StepName::Database);
                        if mode.unplanned() && database == StepState::Pending {
                            self.read_lag(&shared, mode).await.map(drop)
                        } else {
                            Ok(())
                        }
                    };
                    let fence = Box::pin(self.fence(&shared));
                    let (fence, lag) = tokio::join!(fence, prefetch);
                    lag?;
                    fence?
                }
                StepName::Reprotect => Box::pin(self.reprotect(&shared, deadline)).await?,
                StepName::Database if steps.get(i + 1) == Some(&StepName::Nodes) => {
                    // An unplanned promotion the RPO forbids is refused before anything moves:
                    // no node group is raised for a failover that will not happen.
                    if let Some(refusal) = self.refused_by_rpo(&shared, mode).await? {
                        self.end(
                            &shared,
                            StepName::Database,
                            StepState::Failed,
                            refusal.clone(),
                        )
                        .await?;
                        break;
                    }
                    // The two long waits run together; traffic waits for both.
                    let (db, nodes) = tokio::join!(
                        Box::pin(self.database(&shared, deadline)),
                        Box::pin(self.nodes(&shared, deadline))
                    );
                    i += 1;
                    both(db?, nodes?)
                }
                other => Box::pin(self.step(&shared, other, deadline)).await?,
            };
            match progress {
                Progress::Done => i += 1,
                Progress::Waiting(what) => {
                    let exec = shared.lock().await.clone();
                    tracing::info!(execution = %exec.id, waiting_for = %what, "checkpointed; the next tick or event resumes");
                    return Ok(exec);
                }
                Progress::Failed(_) => break,
            }
        }
        let mut exec = shared.lock().await.clone();
        if !exec.finished() {
            let failed = exec
                .steps
                .iter()
                .find(|(name, s)| s.state == StepState::Failed && **name != StepName::Fence);
            if let Some((name, s)) = failed {
                exec.outcome = "failed".into();
                exec.finished_ms = Some(self.now());
                let summary = format!(
                    "{} of plan {} FAILED at {}: {}",
                    mode.as_str(),
                    exec.plan,
                    name.as_str(),
                    s.detail
                );
                self.finish(&mut exec, &summary, "critical").await?;
            }
        }
        Ok(exec)
    }

    pub(super) async fn step(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        deadline: Instant,
    ) -> Result<Progress> {
        match step {
            StepName::Database => Box::pin(self.database(shared, deadline)).await,
            StepName::Nodes => Box::pin(self.nodes(shared, deadline)).await,
            StepName::Traffic => Box::pin(self.traffic(shared, deadline)).await,
            StepName::Verify => Box::pin(self.verify(shared, deadline)).await,
            StepName::Cleanup => Box::pin(self.cleanup(shared, deadline)).await,
            StepName::Report => Box::pin(self.report(shared)).await,
            StepName::Fence => Box::pin(self.fence(shared)).await,
            StepName::Reprotect => Box::pin(self.reprotect(shared, deadline)).await,
        }
    }

    /// The RDS instance that becomes the writer, and the region's client: the replica in the
    /// secondary, or on failback the re-protected primary.
    pub(super) fn rds_target(
        &self,
        back: bool,
        replica: &str,
        primary: &Option<String>,
    ) -> (&R, String) {
        if back {
            (&self.ports.primary_db, primary.clone().unwrap_or_default())
        } else {
            (&self.ports.secondary_db, replica.to_string())
        }
    }

    pub(super) fn back(&self, shared_mode: Mode) -> bool {
        shared_mode == Mode::Failback
    }
}

/// Two steps run together: failed if either failed, waiting if either waits, else done.
fn both(db: Progress, nodes: Progress) -> Progress {
    match (db, nodes) {
        (Progress::Failed(e), _) | (_, Progress::Failed(e)) => Progress::Failed(e),
        (Progress::Waiting(w), _) | (_, Progress::Waiting(w)) => Progress::Waiting(w),
        _ => Progress::Done,
    }
}

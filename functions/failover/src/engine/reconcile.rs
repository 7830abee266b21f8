//! The reconcile loop: runs the execution's steps in order (the RPO guard, then fence → database
//! beside the node groups), until each is done, failed, or waiting past the invocation's
//! deadline (then checkpointed for the next).

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
        if let Err(e) = sent {
            // The failover's own progress stands; the next invocation on this execution (a
            // tick, an event) queues the unsent ones again and the once-only claim sends them.
            tracing::error!(execution = %exec.id, error_type = e.error_type(), error = %e, "a notification was not sent");
        }
        Ok(exec)
    }

    async fn run(&self, exec: Execution) -> Result<Execution> {
        let deadline = Instant::now() + self.pace.budget;
        let mode = exec.mode;
        // The notifications of what is done, "started" first. A resumed execution queues them
        // again: a step is checkpointed done before its notification goes out, so a crash can
        // cut one off, and the once-only claim sends only those that did not go out.
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
        for (step, phase) in [
            (StepName::Database, "database"),
            (StepName::Nodes, "nodes"),
            (StepName::Traffic, "traffic"),
            (StepName::Verify, "healthy"),
        ] {
            if let Some(done) = exec.steps.get(&step).filter(|s| s.state == StepState::Done) {
                self.notify(&exec.id, phase, done.detail.clone(), "info")
                    .await?;
            }
        }
        let shared = Arc::new(Mutex::new(exec));
        let steps = mode.steps();
        let mut i = 0;
        // A drill that failed still puts back what it changed: it goes on at its clean-up.
        let mut cleaning_up = false;
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
                match self.clean_up_after_failure(&shared, mode).await {
                    Some(at) if !cleaning_up => {
                        (i, cleaning_up) = (at, true);
                        continue;
                    }
                    _ => break,
                }
            }
            let progress = match step {
                StepName::Fence
                    if steps.get(i + 1) == Some(&StepName::Database)
                        && steps.get(i + 2) == Some(&StepName::Nodes) =>
                {
                    // A refusal or a failure already recorded stands (a resume after the
                    // invocation that recorded it died before closing the execution).
                    if self.either_failed(&shared).await {
                        match self.clean_up_after_failure(&shared, mode).await {
                            Some(at) if !cleaning_up => {
                                (i, cleaning_up) = (at, true);
                                continue;
                            }
                            _ => break,
                        }
                    }
                    // The RPO guard decides first (one metric read in the healthy region): a
                    // promotion it forbids is refused before anything moves, the fence included.
                    if let Some(refusal) = self.refused_by_rpo(&shared, mode).await? {
                        self.end(&shared, StepName::Database, StepState::Failed, refusal)
                            .await?;
                        // A resumed drill may have raised the node groups already.
                        match self.clean_up_after_failure(&shared, mode).await {
                            Some(at) if !cleaning_up => {
                                (i, cleaning_up) = (at, true);
                                continue;
                            }
                            _ => break,
                        }
                    }
                    // Then the capacity starts at once (polled first, so its checkpoint is the
                    // first written): raising node groups needs no fence, and it is the longest
                    // branch. The promotion waits for the fence (best effort: a refused fence
                    // is recorded and the promotion goes on).
                    let fenced_then_promoted = async {
                        Box::pin(self.fence(&shared)).await?;
                        // A drill or a switchover whose capacity already failed asks for no
                        // promotion it would then have to undo; a failover goes on (the primary
                        // is lost: a writer beats none).
                        let nodes = shared.lock().await.state(StepName::Nodes);
                        if mode != Mode::Failover && nodes == StepState::Failed {
                            return Ok(Progress::Failed("the node groups failed first".into()));
                        }
                        Box::pin(self.database(&shared, deadline)).await
                    };
                    let (nodes, db) = tokio::join!(
                        Box::pin(self.nodes(&shared, deadline)),
                        fenced_then_promoted
                    );
                    i += 2;
                    both(db?, nodes?)
                }
                StepName::Fence => Box::pin(self.fence(&shared)).await?,
                StepName::Reprotect => Box::pin(self.reprotect(&shared, deadline)).await?,
                StepName::Database if steps.get(i + 1) == Some(&StepName::Nodes) => {
                    if self.either_failed(&shared).await {
                        match self.clean_up_after_failure(&shared, mode).await {
                            Some(at) if !cleaning_up => {
                                (i, cleaning_up) = (at, true);
                                continue;
                            }
                            _ => break,
                        }
                    }
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
                        // A resumed drill has set the fence and raised the node groups by now.
                        match self.clean_up_after_failure(&shared, mode).await {
                            Some(at) if !cleaning_up => {
                                (i, cleaning_up) = (at, true);
                                continue;
                            }
                            _ => break,
                        }
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
                // After a failure only the clean-up runs: the report would call it a success.
                Progress::Done if cleaning_up => break,
                Progress::Done => i += 1,
                Progress::Waiting(what) => {
                    let exec = shared.lock().await.clone();
                    tracing::info!(execution = %exec.id, waiting_for = %what, "checkpointed; the next tick or event resumes");
                    return Ok(exec);
                }
                Progress::Failed(_) => match self.clean_up_after_failure(&shared, mode).await {
                    Some(at) if !cleaning_up => (i, cleaning_up) = (at, true),
                    _ => break,
                },
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
                let mut summary = format!(
                    "{} of plan {} FAILED at {}: {}",
                    mode.as_str(),
                    exec.plan,
                    name.as_str(),
                    s.detail
                );
                // A drill's clean-up that failed too may have left production changed: say so.
                if let Some(cleanup) = exec
                    .steps
                    .get(&StepName::Cleanup)
                    .filter(|c| c.state == StepState::Failed && *name != StepName::Cleanup)
                {
                    summary.push_str(&format!(
                        "; the clean-up FAILED too, check what it left: {}",
                        cleanup.detail
                    ));
                }
                self.finish(&mut exec, &summary, "critical").await?;
            }
        }
        Ok(exec)
    }

    /// Where a failed drill goes on: its clean-up step (the node groups, routing controls,
    /// switches and records put back as recorded before the drill and read back, the drill copy
    /// deleted, an Aurora switchover moved back), unless the clean-up is what failed or is
    /// done. Other modes stop at a failure.
    async fn clean_up_after_failure(&self, shared: &Mutex<Execution>, mode: Mode) -> Option<usize> {
        if mode != Mode::Drill {
            return None;
        }
        let at = mode.steps().iter().position(|s| *s == StepName::Cleanup)?;
        let state = shared.lock().await.state(StepName::Cleanup);
        matches!(state, StepState::Pending | StepState::Running).then_some(at)
    }

    /// Whether the database or the node-groups step already failed.
    async fn either_failed(&self, shared: &Mutex<Execution>) -> bool {
        let exec = shared.lock().await;
        [StepName::Database, StepName::Nodes]
            .iter()
            .any(|step| exec.state(*step) == StepState::Failed)
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

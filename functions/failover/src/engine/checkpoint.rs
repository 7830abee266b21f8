//! Checkpoint primitives: every step begins, acts and ends through these, each change written
//! to the execution record before and after the call that makes it, so a crash anywhere is resumed
//! with each change made once; plus the waits (poll until the invocation's deadline).

use std::time::Duration;

use breakwater::kube::capacity::Capacity;
use breakwater::notify::Notification;
use breakwater::ports::{
    Changed, Dns, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::Probe;
use breakwater::{Error, Result};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::*;

/// The steps' notifications on their way to the sender (see `Engine::notify`).
#[derive(Debug, Default)]
pub struct Notices(std::sync::Mutex<Option<UnboundedSender<Notice>>>);

/// One notification of one phase.
#[derive(Debug)]
pub(super) struct Notice {
    exec_id: String,
    phase: String,
    summary: String,
    severity: String,
}

impl Notices {
    /// Opens the queue; its receiving end goes to the sender.
    pub(super) fn open(&self) -> UnboundedReceiver<Notice> {
        let (tx, rx) = unbounded_channel();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
        rx
    }

    /// Closes the queue: the sender ends once it has sent what is in it.
    pub(super) fn close(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Queues `notice`; gives it back when the queue is not open.
    fn queue(&self, notice: Notice) -> std::result::Result<(), Notice> {
        match &*self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(notice).map_err(|e| e.0),
            None => Err(notice),
        }
    }
}

/// Whether this execution already asked for `operation` on `target`.
pub(super) async fn requested(shared: &Mutex<Execution>, operation: &str, target: &str) -> bool {
    shared
        .lock()
        .await
        .actions
        .iter()
        .any(|a| a.operation == operation && a.target == target)
}

pub(super) fn token(execution: &str, what: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{execution}/{what}").as_bytes(),
    );
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("bw-{hex}")
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
    pub(super) fn now(&self) -> u64 {
        self.toolkit.store.clock().now_ms()
    }

    pub(super) async fn save(&self, exec: &Execution) -> Result<()> {
        self.toolkit
            .store
            .put(&Execution::key(&exec.id), exec)
            .await
            .map(drop)
    }

    /// Marks `step` running (checkpointed) unless it already ran; returns its state before.
    pub(super) async fn begin(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
    ) -> Result<StepState> {
        let mut exec = shared.lock().await;
        let now = self.now();
        let entry = exec
            .steps
            .get_mut(&step)
            .ok_or_else(|| Error::CorruptRecord {
                key: Execution::key(""),
                reason: format!("no step {}", step.as_str()),
            })?;
        let before = entry.state;
        if before == StepState::Pending {
            entry.state = StepState::Running;
            entry.started_ms = Some(now);
            tracing::info!(step = step.as_str(), "step begins");
            self.save(&exec).await?;
        }
        Ok(before)
    }

    pub(super) async fn end(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        state: StepState,
        detail: String,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        let now = self.now();
        if let Some(entry) = exec.steps.get_mut(&step) {
            entry.state = state;
            entry.finished_ms = Some(now);
            entry.started_ms.get_or_insert(now);
            entry.detail = detail.clone();
        }
        tracing::info!(step = step.as_str(), state = ?state, detail = %detail, "step ends");
        self.save(&exec).await
    }

    pub(super) async fn acted(
        &self,
        shared: &Mutex<Execution>,
        operation: &str,
        target: &str,
        changed: &Changed,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        let at_ms = self.now();
        tracing::info!(operation, target, request_id = ?changed.request_id, "acted");
        exec.actions.push(Act {
            operation: operation.to_string(),
            target: target.to_string(),
            request_id: changed.request_id.clone(),
            at_ms,
        });
        self.save(&exec).await
    }

    /// Adds `note` to the record without a write of its own: the next checkpoint (always one
    /// right after: the promotion's, the refusal's, the next step's) carries it, and a crash in
    /// between re-reads and notes the same again.
    pub(super) async fn note_with_next_checkpoint(&self, shared: &Mutex<Execution>, note: String) {
        let mut exec = shared.lock().await;
        if !exec.notes.contains(&note) {
            exec.notes.push(note);
        }
    }

    pub(super) async fn note(&self, shared: &Mutex<Execution>, note: String) -> Result<()> {
        let mut exec = shared.lock().await;
        if !exec.notes.contains(&note) {
            exec.notes.push(note);
            self.save(&exec).await?;
        }
        Ok(())
    }

    pub(super) async fn sleep(&self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(self.pace.poll.min(deadline - now)).await;
        true
    }

    /// Notifies a phase once per execution, whatever the crashes and repeats. Inside
    /// `reconcile` the notification is queued for the sender that runs beside the steps, so it
    /// never delays the next one (sending it is three round trips: a claim, the publish, a
    /// mark); elsewhere it is sent now.
    pub(super) async fn notify(
        &self,
        exec_id: &str,
        phase: &str,
        summary: String,
        severity: &str,
    ) -> Result<()> {
        let notice = Notice {
            exec_id: exec_id.to_string(),
            phase: phase.to_string(),
            summary,
            severity: severity.to_string(),
        };
        let notice = match self.notices.queue(notice) {
            Ok(()) => return Ok(()),
            Err(notice) => notice,
        };
        self.send(notice).await
    }

    /// Sends what `notify` queued until the steps are over (the queue closed), each once;
    /// the first failure is the answer once all were tried.
    pub(super) async fn send_notices(&self, mut queued: UnboundedReceiver<Notice>) -> Result<()> {
        let mut failed = None;
        while let Some(notice) = queued.recv().await {
            let phase = notice.phase.clone();
            if let Err(e) = self.send(notice).await {
                tracing::warn!(phase = %phase, error = %e, "notification not sent");
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    async fn send(&self, notice: Notice) -> Result<()> {
        let Notice {
            exec_id,
            phase,
            summary,
            severity,
        } = notice;
        let (exec_id, phase, severity) = (exec_id.as_str(), phase.as_str(), severity.as_str());
        let notification = Notification::new(format!("Failover {exec_id}: {phase}"), summary)
            .attribute("function", "failover")
            .attribute("execution", exec_id)
            .attribute("phase", phase)
            .attribute("severity", severity);
        let notifier = self.toolkit.notifier.clone();
        self.toolkit
            .store
            .once(
                "failover-notify",
                &format!("{exec_id}/{phase}"),
                self.owner,
                // Only a dead invocation can hold this claim (the plan's lease serialises the
                // live ones): after a minute its notification is sent by the next.
                Duration::from_secs(60),
                || async move { notifier.publish(&notification).await.map(|_| ()) },
            )
            .await
            .map(drop)
    }

    pub(super) async fn settle(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        progress: Progress,
    ) -> Result<Progress> {
        match &progress {
            Progress::Done => {}
            Progress::Failed(reason) => {
                self.end(shared, step, StepState::Failed, reason.clone())
                    .await?;
            }
            Progress::Waiting(_) => {}
        }
        Ok(progress)
    }

    pub(super) async fn fail(
        &self,
        shared: &Mutex<Execution>,
        step: StepName,
        reason: String,
    ) -> Result<Progress> {
        self.end(shared, step, StepState::Failed, reason.clone())
            .await?;
        Ok(Progress::Failed(reason))
    }

    /// Reads with `read`; a transient error is read again after a poll, until the deadline
    /// (then `Err(Waiting)`, the step checkpointed for the next invocation).
    pub(super) async fn observe<T, F, Fut>(
        &self,
        what: &str,
        deadline: Instant,
        read: F,
    ) -> Result<std::result::Result<T, Progress>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        loop {
            match read().await {
                Ok(value) => return Ok(Ok(value)),
                Err(e) if e.is_retryable() => {
                    if !self.sleep(deadline).await {
                        return Ok(Err(Progress::Waiting(format!("read {what}: {e}"))));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

//! The traffic steps: the fence (the primary's health check inverted, best effort), then the
//! secondary's gate opened and the records moved, observed until Route 53 reports INSYNC.
//! (The room issue 19 rewrites.)

use std::time::Duration;

use breakwater::ports::{Dns, DnsRecord, MetricReader, NodeGroups, Replicas};
use breakwater::probe::Probe;
use breakwater::{Error, Result};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::*;

impl<R: Replicas, N: NodeGroups, D: Dns, M: MetricReader, P: Probe> Engine<'_, R, N, D, M, P> {
    /// Fence: the side being left reports unhealthy (its health check inverted). Best effort: a
    /// failure is recorded and the failover goes on.
    pub(super) async fn fence(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        let mode = shared.lock().await.mode;
        if self.begin(shared, StepName::Fence).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let Some(checks) = &self.plan.plan.traffic.health_checks else {
            self.end(
                shared,
                StepName::Fence,
                StepState::Skipped,
                "no health-check switch in the plan".into(),
            )
            .await?;
            return Ok(Progress::Done);
        };
        let check = if self.back(mode) {
            &checks.secondary
        } else {
            &checks.primary
        };
        let outcome = async {
            match self.ports.dns.health_check_inverted(check).await? {
                None => Err(Error::NotFound(format!("health check {check}"))),
                Some(true) => Ok(format!("health check {check} already reports unhealthy")),
                Some(false) => {
                    self.remember_check(shared, check, false).await?;
                    let changed = self
                        .ports
                        .dns
                        .set_health_check_inverted(check, true)
                        .await?;
                    self.acted(
                        shared,
                        "UpdateHealthCheck",
                        &format!("{check} Inverted=true"),
                        &changed,
                    )
                    .await?;
                    Ok(format!(
                        "health check {check} inverted: the old side reports unhealthy"
                    ))
                }
            }
        }
        .await;
        let epoch = shared.lock().await.epoch;
        match outcome {
            Ok(detail) => {
                self.end(
                    shared,
                    StepName::Fence,
                    StepState::Done,
                    format!("{detail}; promotion epoch {epoch}"),
                )
                .await?
            }
            Err(e) => {
                self.end(
                    shared,
                    StepName::Fence,
                    StepState::Failed,
                    format!("best effort, going on: {e}"),
                )
                .await?
            }
        }
        Ok(Progress::Done)
    }

    pub(super) async fn remember_check(
        &self,
        shared: &Mutex<Execution>,
        check: &str,
        inverted: bool,
    ) -> Result<()> {
        let mut exec = shared.lock().await;
        if !exec.before.health_checks.contains_key(check) {
            exec.before
                .health_checks
                .insert(check.to_string(), inverted);
            // A drill's clean-up needs it even if the invocation dies right after the act.
            if exec.mode == Mode::Drill {
                self.save(&exec).await?;
            }
        }
        Ok(())
    }

    pub(super) async fn traffic(
        &self,
        shared: &Mutex<Execution>,
        deadline: Instant,
    ) -> Result<Progress> {
        let (mode, exec_id) = {
            let e = shared.lock().await;
            (e.mode, e.id.clone())
        };
        if self.begin(shared, StepName::Traffic).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        let toward_secondary = !self.back(mode);
        let traffic = &self.plan.plan.traffic;
        let mut done = Vec::new();
        if let Some(checks) = &traffic.health_checks {
            let gate = if toward_secondary {
                &checks.secondary
            } else {
                &checks.primary
            };
            match self.ports.dns.health_check_inverted(gate).await {
                Ok(None) => {
                    return self
                        .fail(
                            shared,
                            StepName::Traffic,
                            format!("health check {gate} does not exist"),
                        )
                        .await
                }
                Ok(Some(false)) => done.push(format!("gate {gate} open")),
                Ok(Some(true)) => {
                    self.remember_check(shared, gate, true).await?;
                    match self.ports.dns.set_health_check_inverted(gate, false).await {
                        Ok(changed) => {
                            self.acted(
                                shared,
                                "UpdateHealthCheck",
                                &format!("{gate} Inverted=false"),
                                &changed,
                            )
                            .await?;
                            done.push(format!("gate {gate} opened"));
                        }
                        Err(e) if e.is_retryable() => {
                            return Ok(Progress::Waiting(format!("UpdateHealthCheck {gate}: {e}")))
                        }
                        Err(e) => {
                            return self
                                .fail(
                                    shared,
                                    StepName::Traffic,
                                    format!("UpdateHealthCheck {gate}: {e}"),
                                )
                                .await
                        }
                    }
                }
                Err(e) if e.is_retryable() => {
                    return Ok(Progress::Waiting(format!("GetHealthCheck {gate}: {e}")))
                }
                Err(e) => {
                    return self
                        .fail(
                            shared,
                            StepName::Traffic,
                            format!("GetHealthCheck {gate}: {e}"),
                        )
                        .await
                }
            }
        }
        if !traffic.records.is_empty() {
            match self.records(shared, toward_secondary, deadline).await? {
                Progress::Done => done.push(format!(
                    "{} record(s) INSYNC (clients follow within the TTL: {} s)",
                    traffic.records.len(),
                    traffic.records.iter().map(|r| r.ttl).max().unwrap_or(0)
                )),
                other => return self.settle(shared, StepName::Traffic, other).await,
            }
        }
        let detail = done.join("; ");
        self.end(shared, StepName::Traffic, StepState::Done, detail.clone())
            .await?;
        self.notify(&exec_id, "traffic", detail, "info").await?;
        Ok(Progress::Done)
    }

    /// UPSERTs the records toward one side (unless they already point there), then follows the
    /// change until INSYNC, backing off on throttling and `PriorRequestNotComplete`.
    pub(super) async fn records(
        &self,
        shared: &Mutex<Execution>,
        toward_secondary: bool,
        deadline: Instant,
    ) -> Result<Progress> {
        let traffic = &self.plan.plan.traffic;
        let zone = traffic.zone_id.clone().unwrap_or_default();
        let wanted: Vec<DnsRecord> = traffic
            .records
            .iter()
            .map(|r| r.record(toward_secondary))
            .collect();
        self.write_records(shared, &zone, &wanted, true, deadline)
            .await
    }

    pub(super) async fn write_records(
        &self,
        shared: &Mutex<Execution>,
        zone: &str,
        wanted: &[DnsRecord],
        remember: bool,
        deadline: Instant,
    ) -> Result<Progress> {
        let mut backoff = self.pace.poll;
        loop {
            let mut stale = Vec::new();
            for record in wanted {
                // A throttled read is read again (never skipped: an unread record is not "in place").
                let current = match self
                    .observe(&record.name, deadline, || {
                        self.ports.dns.record(zone, &record.name, &record.kind)
                    })
                    .await?
                {
                    Ok(c) => c,
                    Err(waiting) => return Ok(waiting),
                };
                if remember {
                    let mut exec = shared.lock().await;
                    if !exec.before.records.contains_key(&record.name) {
                        exec.before
                            .records
                            .insert(record.name.clone(), current.clone());
                        if exec.mode == Mode::Drill {
                            self.save(&exec).await?;
                        }
                    }
                }
                if current.as_ref().map(|c| (&c.value, c.ttl)) != Some((&record.value, record.ttl))
                {
                    stale.push(record.clone());
                }
            }
            let change = shared.lock().await.change_id.clone();
            if !stale.is_empty() {
                let comment = format!("breakwater failover {}", shared.lock().await.id);
                match self.ports.dns.upsert(zone, &stale, &comment).await {
                    Ok(changed) => {
                        let names: Vec<&str> = stale.iter().map(|r| r.name.as_str()).collect();
                        {
                            let mut exec = shared.lock().await;
                            exec.change_id = changed.started.clone();
                        }
                        self.acted(
                            shared,
                            "ChangeResourceRecordSets",
                            &format!("UPSERT {} in {zone}", names.join(", ")),
                            &changed,
                        )
                        .await?;
                        backoff = self.pace.poll;
                    }
                    Err(e) if e.is_retryable() => {
                        tracing::info!(error = %e, "Route 53 busy; backing off");
                        if !self.sleep(deadline).await {
                            return Ok(Progress::Waiting(format!("UPSERT: {e}")));
                        }
                        tokio::time::sleep(backoff.min(Duration::from_secs(10))).await;
                        backoff *= 2;
                    }
                    Err(e) => return Ok(Progress::Failed(format!("UPSERT in {zone}: {e}"))),
                }
                continue;
            }
            let Some(change) = change else {
                // Already pointing there and no change of ours to follow (set before, or the
                // change id was lost with a crashed invocation): read back is the proof.
                return Ok(Progress::Done);
            };
            match self.ports.dns.change_status(&change).await {
                Ok(status) if status == "INSYNC" => return Ok(Progress::Done),
                Ok(status) => {
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("change {change} is {status}")));
                    }
                }
                Err(e) if e.is_retryable() => {
                    if !self.sleep(deadline).await {
                        return Ok(Progress::Waiting(format!("GetChange {change}: {e}")));
                    }
                }
                Err(e) => return Ok(Progress::Failed(format!("GetChange {change}: {e}"))),
            }
        }
    }
}

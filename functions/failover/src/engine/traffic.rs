//! The traffic steps, through Route 53 ARC's data plane: the fence (the routing control of the
//! side being left set `Off`, best effort), then one `UpdateRoutingControlStates` that turns the
//! new side's control `On` and the old side's `Off` together, read back. Plans with metric
//! switches instead write the sides' metrics in the secondary region and read the alarms back
//! (`metric_switch`). Plans with neither UPSERT records (the last resort: Route 53's control
//! plane, in us-east-1), observed until Route 53 reports INSYNC.

use std::time::Duration;

use breakwater::kube::capacity::Capacity;
use breakwater::ports::{
    Dns, DnsRecord, MetricReader, MetricSwitches, NodeGroups, Replicas, RoutingControls,
};
use breakwater::probe::Probe;
use breakwater::{Error, Result};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::*;

/// `arn=On, arn=Off` as the records and logs say it.
pub(super) fn describe_states(states: &[(String, bool)]) -> String {
    states
        .iter()
        .map(|(arn, on)| format!("{arn}={}", if *on { "On" } else { "Off" }))
        .collect::<Vec<_>>()
        .join(", ")
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
    /// Fence: the side being left stops taking traffic (its routing control `Off`). Best
    /// effort: a failure is recorded and the failover goes on. A cluster whose safety rule keeps
    /// one side `On` refuses to turn the old side off before the new one is on; the fence then
    /// rides on the traffic step's single request, and says so.
    pub(super) async fn fence(&self, shared: &Mutex<Execution>) -> Result<Progress> {
        let mode = shared.lock().await.mode;
        if self.begin(shared, StepName::Fence).await? == StepState::Done {
            return Ok(Progress::Done);
        }
        if self.plan.plan.traffic.metric_switches.is_some() {
            // Failover records cannot route to nobody: with both health checks unhealthy,
            // Route 53 answers with the PRIMARY record ("When the secondary resource record set
            // is unhealthy, Route 53 responds to DNS queries with the applicable value from the
            // primary resource record set regardless of the health of the primary", Route 53 API
            // Reference, ResourceRecordSet `Failover`). Writing the old side 0 first would fence
            // nothing on a failover and, on a failback, hand traffic to the primary before it is
            // re-protected. The traffic step switches the new side on first, then the old off.
            let epoch = shared.lock().await.epoch;
            self.end(
                shared,
                StepName::Fence,
                StepState::Skipped,
                format!(
                    "metric switches: the old side is switched off by the traffic step, once the \
                     new side is on (failover records cannot route to nobody); promotion epoch {epoch}"
                ),
            )
            .await?;
            return Ok(Progress::Done);
        }
        let Some(rc) = &self.plan.plan.traffic.routing_controls else {
            self.end(
                shared,
                StepName::Fence,
                StepState::Skipped,
                "no routing controls or metric switches in the plan".into(),
            )
            .await?;
            return Ok(Progress::Done);
        };
        let (left, _) = rc.sides(!self.back(mode));
        let cluster = &rc.cluster_endpoints;
        let outcome = async {
            let [on] = self
                .ports
                .switches
                .states(cluster, &[left.to_string()])
                .await?[..]
            else {
                return Err(Error::Internal(
                    "one state asked, another count answered".into(),
                ));
            };
            if !on {
                return Ok((
                    StepState::Done,
                    format!("routing control {left} already Off"),
                ));
            }
            self.remember_controls(shared, rc).await?;
            let wanted = [(left.to_string(), false)];
            match self.ports.switches.set(cluster, &wanted).await {
                Ok(changed) => {
                    self.acted(
                        shared,
                        "UpdateRoutingControlStates",
                        &describe_states(&wanted),
                        &changed,
                    )
                    .await?;
                    Ok((
                        StepState::Done,
                        format!("routing control {left} Off: the old side takes no traffic"),
                    ))
                }
                Err(Error::Conflict(why)) => Ok((
                    StepState::Skipped,
                    format!(
                        "the cluster keeps {left} On until the other side is On ({why}); the \
                         traffic step turns both in one request"
                    ),
                )),
                Err(e) => Err(e),
            }
        }
        .await;
        let epoch = shared.lock().await.epoch;
        match outcome {
            Ok((state, detail)) => {
                self.end(
                    shared,
                    StepName::Fence,
                    state,
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

    /// Keeps the routing controls' states from before the first change (a drill puts them
    /// back), saved at once in a drill.
    async fn remember_controls(
        &self,
        shared: &Mutex<Execution>,
        rc: &crate::plan::RoutingControlPlan,
    ) -> Result<()> {
        if !shared.lock().await.before.routing_controls.is_empty() {
            return Ok(());
        }
        let arns = [rc.primary.clone(), rc.secondary.clone()];
        let states = self
            .ports
            .switches
            .states(&rc.cluster_endpoints, &arns)
            .await?;
        let mut exec = shared.lock().await;
        if exec.before.routing_controls.is_empty() {
            exec.before.routing_controls = arns.into_iter().zip(states).collect();
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
        let detail = if let Some(rc) = &traffic.routing_controls {
            match self.switch(shared, rc, toward_secondary).await? {
                Ok(detail) => detail,
                Err(progress) => return self.settle(shared, StepName::Traffic, progress).await,
            }
        } else if let Some(ms) = &traffic.metric_switches {
            let (left, to) = ms.sides(toward_secondary);
            let since = shared
                .lock()
                .await
                .steps
                .get(&StepName::Traffic)
                .and_then(|s| s.started_ms)
                .unwrap_or_else(|| self.now());
            let wanted = [(to, true), (left, false)];
            match self
                .flip_metric(shared, ms, &wanted, true, since, deadline)
                .await?
            {
                Progress::Done => format!(
                    "alarm {} OK and {} ALARM (read back through DescribeAlarms in {}): the \
                     CLOUDWATCH_METRIC health checks send traffic to {}",
                    to.alarm, left.alarm, self.plan.plan.secondary_region, to.dimension_value
                ),
                other => return self.settle(shared, StepName::Traffic, other).await,
            }
        } else {
            match self.records(shared, toward_secondary, deadline).await? {
                Progress::Done => format!(
                    "{} record(s) INSYNC (clients follow within the TTL: {} s)",
                    traffic.records.len(),
                    traffic.records.iter().map(|r| r.ttl).max().unwrap_or(0)
                ),
                other => return self.settle(shared, StepName::Traffic, other).await,
            }
        };
        self.end(shared, StepName::Traffic, StepState::Done, detail.clone())
            .await?;
        self.notify(&exec_id, "traffic", detail, "info").await?;
        Ok(Progress::Done)
    }

    /// `UpdateRoutingControlStates`, asked again twice, `pace.poll` (5 s) apart, when the cluster
    /// answers with a conflict: an assertion rule's wait period ("an evaluation period … during
    /// which any request against the target routing controls will fail", 5 s by default,
    /// `AWS::Route53RecoveryControl::SafetyRule` `WaitPeriodMs`) ends; a rule that forbids the
    /// change itself refuses the third time too.
    pub(super) async fn set_controls(
        &self,
        cluster: &[breakwater::ports::ClusterEndpoint],
        wanted: &[(String, bool)],
    ) -> Result<breakwater::ports::Changed> {
        let mut attempt = 0;
        loop {
            match self.ports.switches.set(cluster, wanted).await {
                Err(Error::Conflict(why)) if attempt < 2 => {
                    attempt += 1;
                    tracing::info!(conflict = %why, attempt, "ARC refused the change; asking again after the rule's wait period");
                    tokio::time::sleep(self.pace.poll).await;
                }
                other => return other,
            }
        }
    }

    /// The new side `On` and the old `Off` in one request (unless they already are), then read
    /// back. A cluster that cannot be reached on any endpoint is waited for (the next tick tries
    /// again); a refusal (a safety rule, a control that does not exist, a denied call) fails the
    /// step with the cluster's reason.
    async fn switch(
        &self,
        shared: &Mutex<Execution>,
        rc: &crate::plan::RoutingControlPlan,
        toward_secondary: bool,
    ) -> Result<std::result::Result<String, Progress>> {
        let (left, to) = rc.sides(toward_secondary);
        let cluster = &rc.cluster_endpoints;
        let arns = [left.to_string(), to.to_string()];
        let wanted = [(to.to_string(), true), (left.to_string(), false)];
        let outcome = async {
            let now = self.ports.switches.states(cluster, &arns).await?;
            if now[..] != [false, true] {
                self.remember_controls(shared, rc).await?;
                // A conflict that outlasts the retries is the cluster's answer (a safety rule
                // forbids the change: "the error message includes the ARN of the rule that
                // blocked the update", ARC Developer Guide): it fails the step, not waits.
                let changed = self
                    .set_controls(cluster, &wanted)
                    .await
                    .map_err(|e| match e {
                        Error::Conflict(why) => {
                            Error::Aws(format!("refused by the cluster: {why}"))
                        }
                        other => other,
                    })?;
                self.acted(
                    shared,
                    "UpdateRoutingControlStates",
                    &describe_states(&wanted),
                    &changed,
                )
                .await?;
            }
            self.ports.switches.states(cluster, &arns).await
        }
        .await;
        Ok(match outcome {
            Ok(read) if read[..] == [false, true] => Ok(format!(
                "routing control {to} On, {left} Off (read back through the ARC cluster)"
            )),
            Ok(read) => Err(Progress::Failed(format!(
                "routing controls read back {read:?} after {}",
                describe_states(&wanted)
            ))),
            Err(e) if e.is_retryable() => Err(Progress::Waiting(format!(
                "UpdateRoutingControlStates: {e}"
            ))),
            Err(e) => Err(Progress::Failed(format!(
                "UpdateRoutingControlStates {}: {e}",
                describe_states(&wanted)
            ))),
        })
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

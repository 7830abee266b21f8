//! Automatic triggers: alarm changes, RDS events, the primary's heartbeat, the tick — each turned
//! into observations of the plan's signals (with the probes, the replica's lag and alarm signals
//! read again), the board updated, and the quorum judged: watching, not acting, or a failover
//! started or joined.

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
        A: Alarms,
    > FailoverFunction<R, N, D, M, C, W, K, P, A>
{
    pub(crate) async fn automatic(&self, trigger: Trigger, owner: &str) -> Result<Value> {
        if let Trigger::EventBridge(event) = &trigger {
            if event.source == "aws.s3" {
                return self.plan_changed(&event.detail).await;
            }
        }
        // The event is parsed in full before anything is changed (the plan is only read).
        let mut observations_of = None;
        let mut what = String::new();
        let plan = self.stored_plan().await?;
        match trigger {
            Trigger::AlarmAction(action) => {
                let payload = serde_json::to_value(&*action).map_err(|e| invalid(e.to_string()))?;
                let alarm = alarm_from_action(&payload)?;
                what = format!("alarm {} → {}", alarm.name, alarm.state);
                observations_of = Some(signals::from_alarm(&plan.plan, &alarm));
            }
            Trigger::EventBridge(event) => {
                match (event.source.as_str(), event.detail_type.as_str()) {
                    ("aws.cloudwatch", _) => {
                        let alarm = alarm_from_eventbridge(
                            &event.detail,
                            event.resources.as_ref().and_then(|r| r.first()),
                        )?;
                        what = format!("alarm {} → {}", alarm.name, alarm.state);
                        observations_of = Some(signals::from_alarm(&plan.plan, &alarm));
                    }
                    ("aws.rds", _) => {
                        let at = event
                            .time
                            .map(|t| t.timestamp_millis().max(0) as u64)
                            .unwrap_or_else(|| self.now());
                        what = format!(
                            "{} {}",
                            event.detail["EventID"].as_str().unwrap_or("RDS event"),
                            event.detail["SourceIdentifier"]
                                .as_str()
                                .unwrap_or_default()
                        );
                        observations_of =
                            Some(signals::from_rds_event(&plan.plan, &event.detail, at));
                    }
                    ("aws.events", _)
                        if event.region.as_deref() == Some(&plan.plan.primary_region)
                            && self.toolkit.settings.region != plan.plan.primary_region =>
                    {
                        // The primary region's heartbeat, forwarded to this region's bus (the
                        // copy in the primary region takes its own ticks as ticks).
                        let at = event
                            .time
                            .map(|t| t.timestamp_millis().max(0) as u64)
                            .unwrap_or_else(|| self.now());
                        what = format!("heartbeat from {}", plan.plan.primary_region);
                        let beats = signals::from_heartbeat(&plan.plan, at);
                        // A plan without a heartbeat signal takes it as a tick.
                        observations_of = (!beats.is_empty()).then_some(beats);
                    }
                    (source, _) => what = format!("{source} {}", event.detail_type),
                }
            }
            _ => {}
        }
        let unrelated = observations_of.as_ref().is_some_and(Vec::is_empty);
        let tick = observations_of.is_none();
        let mut observations = observations_of.unwrap_or_default();
        // Resume a running execution first: every automatic trigger re-enters it.
        let state = self.plan_state(&plan.plan.name).await?;
        if let Some(active) = state.active {
            // A dry run (or a pause) holds a running execution where it is.
            if self.toolkit.dry_run() {
                return Ok(json!({"outcome": "dry-run", "trigger": what,
                    "would_resume": format!("execution {active}")}));
            }
            let result = self.resume(&plan, &active, owner).await?;
            return Ok(json!({"outcome": "joined", "trigger": what, "execution": result}));
        }
        // An alarm that is none of the plan's signals, an RDS event about another instance: no
        // probe, no write (while an execution runs, any event is a tick for it, above).
        if unrelated {
            let reason = format!("{what}: not one of the signals of plan {}", plan.plan.name);
            tracing::info!(trigger = %what, plan = %plan.plan.name, "not a signal of the plan");
            // An alarm the plan does not know is bad input; another event is only ignored.
            if what.starts_with("alarm ") {
                return Err(invocation::invalid_event(reason));
            }
            return Ok(json!({"outcome": "ignored", "trigger": what, "reason": reason}));
        }
        // The probes run on every automatic trigger (a tick included): from this region.
        for signal in signals::probes(&plan.plan) {
            let url = signal.url.clone().unwrap_or_default();
            let timeout = Duration::from_millis(signal.timeout_ms.unwrap_or(2000));
            let at_ms = self.now();
            let (firing, detail) = match self.ports.probe.get(&url, timeout).await {
                Ok(status) => (false, format!("{url} answered {status}")),
                Err(e) => (true, format!("{url}: {e}")),
            };
            observations.push(Observation {
                signal: signal.name.clone(),
                firing,
                at_ms,
                detail,
            });
        }
        // A tick re-reads the alarm signals the board has firing: an `OK` whose event was lost
        // (a delivery is at least once, not exactly once) must not leave one firing forever.
        // An alarm that cannot be read (its region down) or does not exist keeps its state.
        if tick {
            let board: Option<Board> = self
                .toolkit
                .store
                .get(&board_key(&plan.plan.name))
                .await?
                .map(|v| v.value);
            for signal in signals::of_kind(&plan.plan, "alarm") {
                let firing = board
                    .as_ref()
                    .and_then(|b| b.signals.get(&signal.name))
                    .is_some_and(|s| s.firing);
                let Some(name) = signal.alarm.as_deref().filter(|_| firing) else {
                    continue;
                };
                match self.alarms.state(name).await {
                    Ok(Some(state)) if state.value != "ALARM" => observations.push(Observation {
                        signal: signal.name.clone(),
                        firing: false,
                        at_ms: state.since_ms.unwrap_or_else(|| self.now()),
                        detail: format!(
                            "alarm {name} read again: {} ({})",
                            state.value, state.reason
                        ),
                    }),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::info!(alarm = name, error = %e, "alarm not read again; its signal keeps its state")
                    }
                }
            }
        }
        // The replica's lag, read here in the secondary region: a signal that needs nothing of
        // the primary region.
        for signal in signals::of_kind(&plan.plan, "replica-lag") {
            // A read that fails (throttled, CloudWatch busy) is no observation: the trigger's
            // other observations are still applied.
            match self.replica_lag_sample(&plan).await {
                Ok(sample) => observations.extend(signals::from_replica_lag(signal, sample)),
                Err(e) => {
                    tracing::info!(signal = %signal.name, error = %e, "replica lag not read; no observation")
                }
            }
        }
        let p = plan.plan.clone();
        let obs = observations.clone();
        let now = self.now();
        let board: Board = self
            .toolkit
            .store
            .update(&board_key(&plan.plan.name), move |board: &mut Board| {
                // Every observation is applied (no short-circuit).
                let mut changed = false;
                for o in &obs {
                    changed |= board.apply(&p, o);
                }
                // A heartbeat that stopped arriving fires on whatever trigger comes next.
                for o in board.stale_heartbeats(&p, now) {
                    changed |= board.apply(&p, &o);
                }
                changed
            })
            .await?;
        let quorum = board.quorum(&plan.plan, now);
        tracing::info!(trigger = %what, quorum = %quorum, "signals evaluated");
        if !quorum.met {
            return Ok(json!({"outcome": "watching", "trigger": what, "quorum": quorum}));
        }
        if let Some(window) = plan.plan.detection.maintenance_at(now) {
            return self
                .not_acting(
                    &plan,
                    &format!(
                        "maintenance window {} – {} suppresses automatic failover",
                        window.start, window.end
                    ),
                    &quorum,
                )
                .await;
        }
        if let Some(last) = state.last_started_ms {
            let cooldown = plan.plan.detection.cooldown_seconds * 1000;
            if now < last + cooldown {
                return self
                    .not_acting(
                        &plan,
                        &format!(
                            "cool-down: the last execution began {} s ago (cool-down {} s)",
                            (now - last) / 1000,
                            cooldown / 1000
                        ),
                        &quorum,
                    )
                    .await;
            }
        }
        if self.toolkit.dry_run() {
            let planned = self.plan_mode(&plan).await?;
            return self
                .not_acting(
                    &plan,
                    "dry-run: the plan is returned, nothing is changed",
                    &quorum,
                )
                .await
                .map(|mut v| {
                    v["plan"] = planned;
                    v
                });
        }
        self.check_region(&plan, Mode::Failover)?;
        let mut exec = Execution::new(
            &plan,
            Mode::Failover,
            format!("quorum: {quorum}"),
            quorum.since_ms.unwrap_or(now),
            now,
            owner,
        );
        exec.quorum = Some(quorum);
        self.start(&plan, exec, owner, false).await
    }

    async fn not_acting(
        &self,
        plan: &LoadedPlan,
        reason: &str,
        quorum: &signals::Quorum,
    ) -> Result<Value> {
        tracing::warn!(plan = %plan.plan.name, reason, "quorum met, not acting");
        let mut m = Metrics::new("failover", "not-acting");
        m.add("FailoverSuppressed", 1.0, Unit::Count);
        m.emit(self.now());
        // One notification per quorum formation.
        let notifier = self.toolkit.notifier.clone();
        let note = breakwater::notify::Notification::new(
            format!("Failover {}: quorum met, not acting", plan.plan.name),
            format!("{quorum}. Not acting: {reason}."),
        )
        .attribute("function", "failover")
        .attribute("outcome", "not-acting");
        let _ = self
            .toolkit
            .store
            .once(
                "failover-not-acting",
                &format!("{}/{}", plan.plan.name, quorum.since_ms.unwrap_or(0)),
                "failover",
                Duration::from_secs(900),
                || async move { notifier.publish(&note).await.map(|_| ()) },
            )
            .await?;
        Ok(json!({"outcome": "not-acting", "reason": reason, "quorum": quorum}))
    }

    /// The replica's latest lag in seconds, read in the secondary region, with the sample's
    /// time: RDS `ReplicaLag` (seconds) of the replica; Aurora `AuroraGlobalDBReplicationLag`
    /// (milliseconds) of the secondary cluster ("Monitoring Amazon Aurora global databases",
    /// Aurora User Guide). The last five minutes; `None` when there is no sample.
    async fn replica_lag_sample(&self, plan: &LoadedPlan) -> Result<Option<(f64, u64)>> {
        let now = self.now();
        let metrics = &self.ports.metrics;
        Ok(match &plan.database {
            Database::Rds { replica, .. } => {
                metrics
                    .latest(
                        "AWS/RDS",
                        "ReplicaLag",
                        &[("DBInstanceIdentifier", replica)],
                        now,
                        300_000,
                    )
                    .await?
            }
            Database::AuroraGlobal {
                target_cluster_arn, ..
            } => {
                let cluster = target_cluster_arn.rsplit(':').next().unwrap_or_default();
                metrics
                    .latest(
                        "AWS/RDS",
                        "AuroraGlobalDBReplicationLag",
                        &[("DBClusterIdentifier", cluster)],
                        now,
                        300_000,
                    )
                    .await?
                    .map(|(ms, at)| {
                        if ms < 0.0 {
                            (ms, at)
                        } else {
                            (ms / 1000.0, at)
                        }
                    })
            }
        })
    }
}

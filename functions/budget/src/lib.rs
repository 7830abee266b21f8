//! `budget`: reversible budget enforcement from AWS Budgets alerts.
//!
//! Budgets alerts (plain text on SNS) are hints: each one is confirmed with `DescribeBudget`
//! before anything changes. The confirmed spend sets the level of a reversible ladder (notify →
//! scale non-critical node groups to their floor → stop non-production databases → loud notice, and an optional deny
//! policy on named roles);
//! a scheduled re-evaluation escalates, steps down with hysteresis and restores everything at
//! period rollover. Every change is in a ledger, so that it can be undone exactly.

pub mod announce;
pub mod enforce;
pub mod guardrail;
pub mod hold;
pub mod ladder;
pub mod ledger;
pub mod message;
pub mod money;
pub mod report;
pub mod settings;
pub mod stoppable;
pub mod targets;
#[cfg(test)]
mod template_iam;

use breakwater::clock::civil_date;
use breakwater::events::{Routes, Trigger};
use breakwater::invocation::{self, mark_repeat, Leased};
use breakwater::notify::Notification;
use breakwater::ports::{Budgets, DatabaseKind, Databases, NodeGroups, RolePolicies};
use breakwater::report::picture::Reading;
use breakwater::report::ReportLocation;
use breakwater::state::Versioned;
use breakwater::{Error, Result, Toolkit};
use serde_json::{json, Value};

use crate::announce::{emit, outcome_name};
use crate::enforce::{save, Engine, Outcome};
use crate::ladder::{next_level, Occasion};
use crate::ledger::{EnforcementState, LevelChange};
use crate::message::Message;
use crate::money::Money;
use crate::settings::BudgetSettings;

/// What the budget function is wired to.
const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.events", "Scheduled Event"),
    ("aws.rds", "RDS DB Instance Event"),
    ("aws.rds", "RDS DB Cluster Event"),
];
const COMMANDS: &[&str] = &["evaluate", "restore", "status"];

/// RDS starts a database that has been stopped for seven days: 0154 (instance), 0153 (cluster).
const AUTO_STARTED: &[&str] = &["RDS-EVENT-0154", "RDS-EVENT-0153"];

/// The function: its toolkit, settings and ports.
#[derive(Debug)]
pub struct BudgetFunction<N, D, B, R> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// The budget settings.
    pub settings: BudgetSettings,
    /// EKS node groups.
    pub node_groups: N,
    /// RDS databases.
    pub databases: D,
    /// AWS Budgets.
    pub budgets: B,
    /// IAM role policies (the optional L4 guard-rail).
    pub roles: R,
}

impl<N: NodeGroups, D: Databases, B: Budgets, R: RolePolicies> BudgetFunction<N, D, B, R> {
    fn manages(&self, budget: &str) -> bool {
        self.settings.budgets.iter().any(|b| b == budget)
    }

    fn routes(&self) -> Routes {
        Routes {
            function: "budget",
            eventbridge: EVENTBRIDGE,
            alarm_actions: false,
            sns: true,
            commands: COMMANDS,
            account: Some(self.settings.account.clone()),
            // EventBridge delivers a region's events to that region's bus: anything else is forged.
            regions: vec![self.toolkit.settings.region.clone()],
        }
    }

    /// Handles one invocation. `owner` identifies this invocation (the Lambda request id).
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let trigger = self.routes().route(event)?;
        let event_id = trigger.event_id();
        let span = invocation::event_span("budget", event_id.as_deref());
        invocation::in_span(span, self.dispatch(trigger, owner)).await
    }

    async fn dispatch(&self, trigger: Trigger, owner: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let ttl = self.toolkit.settings.idempotency_ttl;
        match trigger {
            Trigger::Sns(sns) => {
                let mut results = Vec::new();
                for record in &sns.records {
                    let body = record.sns.message.clone();
                    let done = store
                        .once("budget", &record.sns.message_id, owner, ttl, || {
                            self.on_message(&body, owner)
                        })
                        .await?;
                    results.push(mark_repeat(done));
                }
                Ok(if results.len() == 1 {
                    results.remove(0)
                } else {
                    json!({"outcome": "batch", "results": results})
                })
            }
            Trigger::EventBridge(event) if event.detail_type == "Scheduled Event" => {
                let id = event.id.clone().unwrap_or_else(|| owner.to_string());
                let done = store
                    .once("budget", &id, owner, ttl, || async {
                        let mut results = Vec::new();
                        for name in &self.settings.budgets {
                            results.push(
                                self.evaluate(
                                    name,
                                    Occasion::Schedule,
                                    "scheduled re-evaluation",
                                    owner,
                                )
                                .await?,
                            );
                        }
                        Ok(json!({"outcome": "evaluated", "results": results}))
                    })
                    .await?;
                Ok(mark_repeat(done))
            }
            Trigger::EventBridge(event) => {
                let event_code = event.detail["EventID"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let source = event.detail["SourceIdentifier"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if !AUTO_STARTED.contains(&event_code.as_str()) || source.is_empty() {
                    tracing::info!(event_code = %event_code, "RDS event that needs nothing from budget enforcement");
                    return Ok(invocation::Outcome::Ignored(format!(
                        "RDS event {event_code:?} needs nothing"
                    ))
                    .into_value());
                }
                let kind = if event.detail_type.contains("Cluster") {
                    DatabaseKind::Cluster
                } else {
                    DatabaseKind::Instance
                };
                let id = event.id.clone().unwrap_or_else(|| owner.to_string());
                let done = store
                    .once("budget", &id, owner, ttl, || {
                        self.on_auto_start(kind, &source, owner)
                    })
                    .await?;
                Ok(mark_repeat(done))
            }
            Trigger::Command { command, body } => self.on_command(&command, &body, owner).await,
            Trigger::AlarmAction(_) => Err(invocation::invalid_event(
                "budget is not invoked by alarm actions",
            )),
        }
    }

    async fn on_message(&self, body: &str, owner: &str) -> Result<Value> {
        match message::parse(body) {
            Message::Unknown { reason } => {
                tracing::warn!(reason = %reason, "unrecognised message on the budget topic");
                let excerpt: String = body.chars().take(300).collect();
                let note = Notification::new(
                    "budget: unrecognised message on the budget topic",
                    format!("A message on the budget topic was not an AWS Budgets alert ({reason}). Nothing was changed.\n\nIt began:\n{excerpt}"),
                )
                .attribute("function", "budget")
                .attribute("outcome", "unknown-message");
                self.toolkit.notifier.publish(&note).await?;
                emit(
                    "unknown-message",
                    0,
                    &Outcome::default(),
                    self.toolkit.store.clock().now_ms(),
                );
                Ok(json!({"outcome": "unknown-message", "reason": reason}))
            }
            Message::Alert(alert) => {
                if !self.manages(&alert.budget_name) {
                    tracing::warn!(budget = %alert.budget_name, "alert for a budget this deployment does not enforce");
                    return Ok(json!({"outcome": "not-managed", "budget": alert.budget_name}));
                }
                let reason = format!(
                    "{:?} alert: {} of {} (threshold {})",
                    alert.alert_type, alert.amount, alert.budgeted, alert.threshold
                );
                self.evaluate(&alert.budget_name, Occasion::Alert, &reason, owner)
                    .await
            }
        }
    }

    async fn on_auto_start(&self, kind: DatabaseKind, id: &str, owner: &str) -> Result<Value> {
        let mut results = Vec::new();
        for name in &self.settings.budgets {
            let Some(state) = self
                .toolkit
                .store
                .get::<EnforcementState>(&EnforcementState::key(name))
                .await?
            else {
                continue;
            };
            let mut outcome = Outcome::default();
            let engine = self.engine();
            self.leased(name, owner, || {
                Box::pin(engine.restop(&state, kind, id, &mut outcome))
            })
            .await?;
            if !outcome.changed.is_empty() {
                self.notify(
                    name,
                    (state.value.level, state.value.level),
                    "RDS restarted a database after 7 days stopped",
                    &outcome,
                    None,
                    None,
                )
                .await?;
            }
            results.push(
                json!({"budget": name, "changed": outcome.changed, "skipped": outcome.skipped}),
            );
        }
        Ok(json!({"outcome": "auto-start-handled", "database": id, "results": results}))
    }

    async fn on_command(&self, command: &str, body: &Value, owner: &str) -> Result<Value> {
        let budget = body["budget"]
            .as_str()
            .ok_or_else(|| Error::InvalidEvent("budget: the budget's name is required".into()))?;
        if !self.manages(budget) {
            return Err(Error::InvalidEvent(format!(
                "budget {budget:?} is not enforced by this deployment"
            )));
        }
        match command {
            "status" => {
                let state = self
                    .toolkit
                    .store
                    .get::<EnforcementState>(&EnforcementState::key(budget))
                    .await?;
                Ok(json!({"outcome": "status", "state": state.map(|s| s.value)}))
            }
            "evaluate" => {
                self.evaluate(budget, Occasion::Schedule, "manual evaluation", owner)
                    .await
            }
            _ => {
                // restore: a copied payload must not undo the wrong budget's enforcement.
                if body["confirm"].as_str() != Some(budget) {
                    return Err(Error::InvalidEvent(format!(
                        "restore: \"confirm\" must repeat the budget's name {budget:?}"
                    )));
                }
                self.leased(budget, owner, || self.restore_all(budget, "manual restore"))
                    .await
            }
        }
    }

    async fn restore_all(&self, budget: &str, reason: &str) -> Result<Value> {
        let Some(mut state) = self
            .toolkit
            .store
            .get::<EnforcementState>(&EnforcementState::key(budget))
            .await?
        else {
            return Ok(
                json!({"outcome": "noop", "budget": budget, "reason": "nothing was ever enforced"}),
            );
        };
        let before = state.value.level;
        let mut outcome = Outcome::default();
        self.step_down(&mut state, 0, reason, &mut outcome).await?;
        let report = if self.toolkit.dry_run() {
            None
        } else {
            self.write_report(&state.value).await
        };
        self.notify(
            budget,
            (before, state.value.level),
            reason,
            &outcome,
            None,
            report.as_ref(),
        )
        .await?;
        Ok(
            json!({"outcome": outcome_name(self.toolkit.dry_run(), before, 0, &outcome), "budget": budget, "level_before": before, "level_after": 0, "changed": outcome.changed, "left_alone": outcome.left_alone, "failed": outcome.failed}),
        )
    }

    /// Confirms the budget's spend with the API and moves to the level it calls for.
    async fn evaluate(
        &self,
        budget: &str,
        occasion: Occasion,
        reason: &str,
        owner: &str,
    ) -> Result<Value> {
        self.leased(budget, owner, || {
            self.evaluate_held(budget, occasion, reason)
        })
        .await
    }

    async fn evaluate_held(&self, budget: &str, occasion: Occasion, reason: &str) -> Result<Value> {
        let store = &self.toolkit.store;
        let Some(figures) = self
            .budgets
            .describe(&self.settings.account, budget)
            .await?
        else {
            let note = Notification::new(
                format!("budget: {budget} not found"),
                format!(
                    "The budget {budget:?} does not exist in account {}; nothing was changed.",
                    self.settings.account
                ),
            )
            .attribute("function", "budget")
            .attribute("outcome", "unconfirmed");
            self.toolkit.notifier.publish(&note).await?;
            return Ok(
                json!({"outcome": "unconfirmed", "budget": budget, "reason": "budget not found"}),
            );
        };
        // The API's amounts, not the alert text's: up to 45 decimals (see `Money::from_api`).
        let amount = |text: &str, what: &str| {
            Money::from_api(text).ok_or_else(|| {
                Error::Aws(format!(
                    "budget {budget:?}: {what} {text:?} is not an amount"
                ))
            })
        };
        let limit = amount(&figures.limit, "limit")?;
        let actual = amount(&figures.actual, "actual spend")?;
        let forecast = figures
            .forecast
            .as_deref()
            .map(|f| amount(f, "forecast"))
            .transpose()?;
        let actual_pct = actual.percent_of(limit).unwrap_or(0.0);
        let forecast_pct = forecast.and_then(|f| f.percent_of(limit));
        let period = period_key(&figures.time_unit, store.clock().now_ms());

        let key = EnforcementState::key(budget);
        let mut state = match store.get::<EnforcementState>(&key).await? {
            Some(s) => s,
            None => {
                let fresh = EnforcementState::new(budget, &period);
                store.create(&key, &fresh).await?;
                store
                    .get::<EnforcementState>(&key)
                    .await?
                    .ok_or_else(|| Error::Conflict(format!("{key} vanished")))?
            }
        };
        let mut outcome = Outcome::default();
        let level_before = state.value.level;
        if state.value.period != period {
            // Period rollover: everything of the old period is restored before the new one starts.
            let ended = format!("period {} ended", state.value.period);
            self.step_down(&mut state, 0, &ended, &mut outcome).await?;
            if !self.toolkit.dry_run() {
                // The old period's report, its release included, before its readings go.
                self.write_report(&state.value).await;
                state.value = EnforcementState {
                    changes: state.value.changes.clone(),
                    ..EnforcementState::new(budget, &period)
                };
                save(store, &mut state).await?;
            }
        }
        let current = if self.toolkit.dry_run() && state.value.period != period {
            0
        } else {
            state.value.level
        };
        let target = next_level(
            current,
            actual_pct,
            forecast_pct,
            &self.settings.thresholds,
            self.settings.hysteresis,
            occasion,
        );
        let why = format!(
            "{reason}; confirmed: actual {actual} ({actual_pct:.1} %) and forecast {} ({}) of the {limit} limit",
            forecast.map(|f| f.to_string()).unwrap_or_else(|| "n/a".into()),
            forecast_pct.map(|p| format!("{p:.1} %")).unwrap_or_else(|| "n/a".into()),
        );
        if target > current {
            let engine = self.engine();
            for level in current + 1..=target {
                engine.apply_level(&mut state, level, &mut outcome).await?;
                if !self.toolkit.dry_run() {
                    state.value.changes.push(LevelChange {
                        from: level - 1,
                        to: level,
                        at_ms: store.clock().now_ms(),
                        reason: why.clone(),
                        period: Some(state.value.period.clone()),
                    });
                    state.value.level = level;
                    save(store, &mut state).await?;
                }
            }
        } else if target < current {
            self.step_down(&mut state, target, &why, &mut outcome)
                .await?;
        } else if occasion == Occasion::Schedule && current >= 3 {
            // Databases that AWS restarted after seven days are stopped again while L3 holds.
            for key in state.value.ledger.clone() {
                if let Some(entry) = store.get::<ledger::LedgerEntry>(&key).await? {
                    if let ledger::Resource::Database { kind, id } = &entry.value.resource {
                        Box::pin(self.engine().restop(&state, *kind, id, &mut outcome)).await?;
                    }
                }
            }
        }
        let level_after = if self.toolkit.dry_run() {
            target
        } else {
            state.value.level
        };
        let report = if !self.toolkit.dry_run() {
            let now = store.clock().now_ms();
            let readings = &mut state.value.readings;
            readings.push(Reading {
                at_ms: now,
                actual_pct,
                forecast_pct,
            });
            let over = readings.len().saturating_sub(ledger::READINGS_KEPT);
            readings.drain(..over);
            state.value.limit = Some(format!("{limit} {}", figures.unit));
            save(store, &mut state).await?;
            self.write_report(&state.value).await
        } else {
            None
        };
        let changed_level = level_after != level_before;
        if changed_level
            || !outcome.changed.is_empty()
            || !outcome.left_alone.is_empty()
            || !outcome.failed.is_empty()
        {
            let figures_line = format!(
                "actual {actual} of {limit} ({actual_pct:.1} %), forecast {}",
                forecast
                    .map(|f| f.to_string())
                    .unwrap_or_else(|| "n/a".into())
            );
            self.notify(
                budget,
                (level_before, level_after),
                &why,
                &outcome,
                Some(figures_line),
                report.as_ref(),
            )
            .await?;
        }
        let name = outcome_name(self.toolkit.dry_run(), level_before, level_after, &outcome);
        emit(name, level_after, &outcome, store.clock().now_ms());
        Ok(json!({
            "outcome": name,
            "budget": budget,
            "period": period,
            "level_before": level_before,
            "level_after": level_after,
            "limit": limit,
            "actual": actual,
            "forecast": forecast,
            "changed": outcome.changed,
            "left_alone": outcome.left_alone,
            "skipped": outcome.skipped,
            "failed": outcome.failed,
            "saving_per_day_usd": (outcome.saving_per_day_usd * 100.0).round() / 100.0,
        }))
    }

    async fn step_down(
        &self,
        state: &mut Versioned<EnforcementState>,
        to: u8,
        reason: &str,
        outcome: &mut Outcome,
    ) -> Result<()> {
        let engine = self.engine();
        let from = state.value.level;
        for level in (to + 1..=from).rev() {
            // Boxed: a level's future is large (see `Engine::apply_level`).
            Box::pin(engine.restore_level(state, level, outcome)).await?;
            if !self.toolkit.dry_run() {
                state.value.changes.push(LevelChange {
                    from: level,
                    to: level - 1,
                    at_ms: self.toolkit.store.clock().now_ms(),
                    reason: reason.to_string(),
                    period: Some(state.value.period.clone()),
                });
                state.value.level = level - 1;
                save(&self.toolkit.store, state).await?;
            }
        }
        Ok(())
    }

    /// The period's report; one that cannot be written is said in the log and holds nothing
    /// back — the enforcement is in the state and the ledger.
    async fn write_report(&self, state: &EnforcementState) -> Option<ReportLocation> {
        let written = report::period_report(state, &self.settings.thresholds)
            .write(&self.toolkit.store)
            .await;
        written
            .inspect_err(|e| {
                tracing::warn!(budget = %state.budget, error = %e, error_type = e.error_type(), "the period's report was not written");
            })
            .ok()
    }

    fn engine(&self) -> Engine<'_, N, D, R> {
        Engine {
            node_groups: &self.node_groups,
            databases: &self.databases,
            roles: &self.roles,
            store: &self.toolkit.store,
            settings: &self.settings,
            dry_run: self.toolkit.dry_run(),
        }
    }

    /// Runs `work` under the budget's lease; a live lease of another owner is `Conflict`.
    async fn leased<T, F, Fut>(&self, budget: &str, owner: &str, work: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let store = &self.toolkit.store;
        let ttl = self.toolkit.settings.lease_ttl;
        match invocation::with_lease(store, "budget", budget, owner, ttl, work).await? {
            Leased::Done(value) => Ok(value),
            Leased::Held {
                owner,
                expires_at_ms,
            } => Err(Error::Conflict(format!(
                "budget {budget:?} is being enforced by {owner} (lease until {}); retry later",
                breakwater::clock::rfc3339(expires_at_ms)
            ))),
        }
    }

    async fn notify(
        &self,
        budget: &str,
        (from, to): (u8, u8),
        why: &str,
        outcome: &Outcome,
        figures: Option<String>,
        report: Option<&ReportLocation>,
    ) -> Result<()> {
        let mut note = announce::notification(
            budget,
            from,
            to,
            why,
            outcome,
            figures,
            self.toolkit.dry_run(),
            &self.settings.guardrail_roles,
        );
        if let Some(location) = report {
            note.summary.push_str(&format!(
                "\nThe period's report, spend against the ladder: {}\n",
                location.console_url(&self.toolkit.settings.region)
            ));
        }
        self.toolkit.notifier.publish(&note).await?;
        Ok(())
    }
}

/// The period a time falls in, for a budget's time unit.
pub fn period_key(time_unit: &str, now_ms: u64) -> String {
    let (y, m, d) = civil_date(now_ms);
    match time_unit {
        "DAILY" => format!("{y:04}-{m:02}-{d:02}"),
        "QUARTERLY" => format!("{y:04}-Q{}", (m - 1) / 3 + 1),
        "ANNUALLY" => format!("{y:04}"),
        _ => format!("{y:04}-{m:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_time_unit() {
        let t = 1_795_381_516_123; // 2026-11-22
        assert_eq!(period_key("MONTHLY", t), "2026-11");
        assert_eq!(period_key("DAILY", t), "2026-11-22");
        assert_eq!(period_key("QUARTERLY", t), "2026-Q4");
        assert_eq!(period_key("ANNUALLY", t), "2026");
    }
}

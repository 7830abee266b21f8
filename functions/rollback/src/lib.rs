//! `rollback`: roll a Deployment back (or abort an Argo Rollout) when the alarm that guards it
//! goes into `ALARM` because of a deploy, or when a person asks through a signed Slack command or
//! PagerDuty note — and verify after a bake window, escalating when the alarm still fires.
//!
//! Every decision, including "not acting, because…", is a record in the state store and a
//! notification. Alarm deliveries are deduplicated by event id and serialised per workload by a
//! lease; the rollback itself is one JSON patch that `test`s the resourceVersion it was decided
//! on, so a concurrent deploy makes it decide again instead of being overwritten.

pub mod bake;
pub mod chat;
pub mod decide;
pub mod gitops;
pub mod record;
pub mod request;
pub mod settings;
pub mod undo;
pub mod workload;

use std::time::{Duration, Instant};

use breakwater::aws::lambda_invoke::LambdaInvoke;
use breakwater::aws::secrets::AwsSecrets;
use breakwater::events::{Routes, Trigger};
use breakwater::handoff::Handoff;
use breakwater::invocation::{self, LeaseTerms, Leased, Patience};
use breakwater::kube::workloads::Workloads;
use breakwater::kube::KubeClients;
use breakwater::metrics::{Metrics, Unit};
use breakwater::ports::Alarms;
use breakwater::secrets::Secrets;
use breakwater::state::Idempotent;
use breakwater::{Error, Result, Toolkit};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::chat::webhook;
pub use crate::record::{Bake, BakingIndex, Decision, Intent, Marked, Outcome, WorkloadRecord};
use crate::request::{Asker, Request};
use crate::settings::RollbackSettings;
use crate::workload::Workload;
pub use breakwater::events::{
    alarm_from_action, alarm_from_eventbridge, alarm_from_sns, AlarmFields,
};

const EVENTBRIDGE: &[(&str, &str)] = &[
    ("aws.cloudwatch", "CloudWatch Alarm State Change"),
    ("aws.events", "Scheduled Event"),
];
const COMMANDS: &[&str] = &["rollback", "verify", "status", chat::HANDOFF_COMMAND];

/// The function.
#[derive(Debug)]
pub struct RollbackFunction<A> {
    /// Shared settings, store, notifier.
    pub toolkit: Toolkit,
    /// Rollback settings.
    pub settings: RollbackSettings,
    /// CloudWatch alarms (tags, state).
    pub alarms: A,
    /// Kubernetes clients per cluster.
    pub kube: KubeClients,
}

pub(crate) fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidEvent(reason.into())
}

impl<A: Alarms> RollbackFunction<A> {
    fn routes(&self) -> Routes {
        Routes {
            function: "rollback",
            eventbridge: EVENTBRIDGE,
            alarm_actions: true,
            sns: true,
            commands: COMMANDS,
            account: None,
            regions: vec![self.toolkit.settings.region.clone()],
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.toolkit.store.clock().now_ms()
    }

    /// Handles one invocation, its signing secrets read from Secrets Manager / SSM and webhook
    /// work handed to Lambda ([`Self::handle_with`] with the AWS adapters).
    pub async fn handle(&self, event: Value, owner: &str) -> Result<Value> {
        let aws = &self.toolkit.aws;
        self.handle_with(event, owner, &AwsSecrets::new(aws), &LambdaInvoke::new(aws))
            .await
    }

    /// Handles one invocation, reading signing secrets from `secrets` and handing webhook work
    /// to `handoff`. Malformed events are an `InvalidEvent` error (nothing was changed);
    /// Function URL requests get an HTTP answer (their protocol).
    pub async fn handle_with(
        &self,
        event: Value,
        owner: &str,
        secrets: &impl Secrets,
        handoff: &impl Handoff,
    ) -> Result<Value> {
        if webhook::is_http(&event) {
            return Ok(self.on_http_with(&event, owner, secrets, handoff).await);
        }
        let trigger = match self.routes().route(event) {
            Ok(t) => t,
            Err(Error::InvalidEvent(reason)) => return Err(self.rejected(&reason)),
            Err(e) => return Err(e),
        };
        let span = invocation::event_span("rollback", trigger.event_id().as_deref());
        invocation::in_span(span, self.on_trigger(trigger, owner)).await
    }

    async fn on_trigger(&self, trigger: Trigger, owner: &str) -> Result<Value> {
        let id = trigger.event_id().unwrap_or_else(|| owner.to_string());
        let outcome = match trigger {
            Trigger::EventBridge(e) if e.detail_type == "Scheduled Event" => {
                return self.verify_bakes(owner).await
            }
            Trigger::Command { command, .. } if command == "verify" => {
                return self.verify_bakes(owner).await
            }
            Trigger::Command { command, body } if command == "status" => self.status(&body).await,
            Trigger::Command { command, body } if command == chat::HANDOFF_COMMAND => {
                self.on_handed_off(&body, &id, owner).await
            }
            Trigger::EventBridge(e) => {
                let fields =
                    alarm_from_eventbridge(&e.detail, e.resources.as_ref().and_then(|r| r.first()));
                match fields {
                    Ok(f) => self.on_alarm(f, &id, owner).await,
                    Err(e) => Err(e),
                }
            }
            Trigger::AlarmAction(a) => match serde_json::to_value(&*a) {
                Ok(v) => match alarm_from_action(&v) {
                    Ok(f) => self.on_alarm(f, &id, owner).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(invalid(format!("alarm action payload: {e}"))),
            },
            Trigger::Sns(s) => {
                // Every record is read before any acts: a delivery with a bad record is refused
                // whole (`InvalidEvent`), nothing changed, like any other bad input.
                let asks: Result<Vec<_>> = s
                    .records
                    .iter()
                    .map(|r| Ok((sns_ask(&r.sns.message)?, r.sns.message_id.clone())))
                    .collect();
                match asks {
                    Ok(asks) => self.on_sns(asks, owner).await,
                    Err(e) => Err(e),
                }
            }
            Trigger::Command { body, .. } => self.on_command(&body, &id, "invoke", owner).await,
        };
        match outcome {
            Err(Error::InvalidEvent(reason)) => Err(self.rejected(&reason)),
            other => other,
        }
    }

    /// Bad input: logged, counted (`EventsRejected`) and answered with an `InvalidEvent` error;
    /// nothing was changed.
    pub(crate) fn rejected(&self, reason: &str) -> Error {
        tracing::error!(
            reason,
            "rejected a malformed or unexpected event; nothing changed"
        );
        self.count("rejected", "EventsRejected");
        invocation::invalid_event(reason)
    }

    /// One workload of an alarm that this deployment does not manage (a `breakwater:*` tag
    /// naming another cluster): acknowledged and dropped, as spot drops a foreign instance, while
    /// the alarm's other workloads are decided.
    fn foreign_workload(&self, reason: &str) -> Value {
        tracing::warn!(
            reason,
            "a workload of the alarm is not this deployment's; dropped"
        );
        self.count("foreign-cluster", "EventsDropped");
        json!({"outcome": "foreign-cluster", "reason": reason})
    }

    pub(crate) fn count(&self, outcome: &str, metric: &str) {
        let mut m = Metrics::new("rollback", outcome);
        m.add(metric, 1.0, Unit::Count);
        m.emit(self.now_ms());
    }

    /// The asks of one SNS delivery, each read already, in order.
    async fn on_sns(&self, asks: Vec<(SnsAsk, String)>, owner: &str) -> Result<Value> {
        let mut answers = Vec::new();
        for (ask, id) in asks {
            answers.push(match ask {
                SnsAsk::Alarm(f) => self.on_alarm(*f, &id, owner).await?,
                SnsAsk::Command(m) => self.on_command(&m, &id, "sns", owner).await?,
            });
        }
        Ok(json!({"outcome": "sns", "records": answers}))
    }

    /// An alarm transition: only one into ALARM acts; the workloads come from the configured
    /// mapping, else from the alarm's tags.
    async fn on_alarm(&self, alarm: AlarmFields, id: &str, owner: &str) -> Result<Value> {
        if alarm.state != "ALARM" || alarm.previous == "ALARM" {
            tracing::info!(alarm = %alarm.name, state = %alarm.state, previous = %alarm.previous,
                "not a transition into ALARM; nothing to do");
            self.count("ignored", "AlarmsIgnored");
            return Ok(json!({"outcome": "ignored", "alarm": alarm.name,
                "reason": format!("{} → {} is not a transition into ALARM", alarm.previous, alarm.state)}));
        }
        let workloads = match self.settings.alarms.get(&alarm.name) {
            Some(w) => w.clone(),
            None => match &alarm.arn {
                Some(arn) => {
                    let tags = self.alarms.tags(arn).await?;
                    Workload::from_tags(&tags)?.into_iter().collect()
                }
                None => Vec::new(),
            },
        };
        if workloads.is_empty() {
            tracing::warn!(alarm = %alarm.name, "the alarm maps to no workload (no configured mapping, no breakwater:* tags); dropped");
            self.count("unmapped", "AlarmsUnmapped");
            return Ok(json!({"outcome": "unmapped", "alarm": alarm.name,
                "reason": "no workload is mapped to this alarm (BREAKWATER_ROLLBACK_ALARMS or the alarm's breakwater:* tags)"}));
        }
        // One transition is one event, whichever shape delivered it (EventBridge, the alarm
        // action, SNS) and however often: the id is the alarm and the time it entered ALARM.
        let transition = format!("{}@{}", alarm.name, alarm.since_ms);
        tracing::debug!(delivery = id, %transition, "alarm transition");
        let mut decisions = Vec::new();
        for workload in workloads {
            let request = Request {
                workload,
                asker: Asker::Alarm {
                    name: alarm.name.clone(),
                    since_ms: alarm.since_ms,
                },
                to_revision: None,
                event_id: transition.clone(),
            };
            decisions.push(match self.request(request, owner).await {
                Ok(d) => d,
                // A tag naming a cluster this deployment does not manage: that workload only.
                Err(Error::InvalidEvent(reason)) => self.foreign_workload(&reason),
                Err(e) => return Err(e),
            });
        }
        Ok(json!({"outcome": "decided", "alarm": alarm.name, "decisions": decisions}))
    }

    /// `{"command": "status", "workload": "…"}`: the workload's record — the revisions that
    /// alarmed, the last rollback, a pending bake, the last decisions and why.
    async fn status(&self, body: &Value) -> Result<Value> {
        let workload = body["workload"].as_str().ok_or_else(|| {
            invalid("status command: `workload` (cluster/namespace/Kind/name) is required")
        })?;
        let workload = Workload::parse(workload, self.settings.default_cluster())?;
        let record = self.load_record(&workload).await?;
        Ok(json!({"outcome": "status", "workload": workload.to_string(), "record": record}))
    }

    /// `{"command": "rollback", "workload": "cluster/ns/Kind/name", "toRevision": 3,
    /// "requestedBy": "…", "id": "…"}` from a direct invoke or SNS.
    async fn on_command(&self, body: &Value, id: &str, via: &str, owner: &str) -> Result<Value> {
        let workload = body["workload"].as_str().ok_or_else(|| {
            invalid("rollback command: `workload` (cluster/namespace/Kind/name) is required")
        })?;
        let workload = Workload::parse(workload, self.settings.default_cluster())?;
        let to_revision = match body.get("toRevision") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_i64().filter(|n| *n > 0).ok_or_else(|| {
                invalid("rollback command: `toRevision` must be a positive whole number")
            })?),
        };
        let by = body["requestedBy"].as_str().unwrap_or("unnamed");
        let request = Request {
            workload,
            asker: Asker::Person(format!("{via}:{by}")),
            to_revision,
            event_id: id.to_string(),
        };
        self.request(request, owner).await
    }

    /// One request: deduplicated by event id and workload, serialised by the workload's lease.
    pub async fn request(&self, request: Request, owner: &str) -> Result<Value> {
        let started = Instant::now();
        if !self.settings.clusters.contains(&request.workload.cluster) {
            return Err(invalid(format!(
                "cluster {} is not one this deployment manages ({})",
                request.workload.cluster,
                self.settings.clusters.join(", ")
            )));
        }
        // A person can name anything: a workload that is not there is refused before a record
        // is written (an alarm's workload comes from configuration and is decided, and kept).
        if matches!(request.asker, Asker::Person(_)) {
            let exists = self
                .workloads()
                .exists(request.workload.at(), request.workload.kind)
                .await?;
            if !exists {
                return Err(invalid(format!(
                    "{} not found: nothing to roll back",
                    request.workload
                )));
            }
        }
        let store = &self.toolkit.store;
        let key = format!("{}@{}", request.event_id, request.workload);
        let ttl = self.toolkit.settings.idempotency_ttl;
        let span = tracing::info_span!("rollback", workload = %request.workload, trigger = %request.asker.describe());
        let result = store
            .once("rollback", &key, owner, ttl, || {
                self.under_lease(&request.workload, owner, || {
                    self.decide_and_record(&request, &key, started)
                })
            })
            .instrument(span)
            .await;
        match result {
            Ok(done) => {
                let repeat = done.is_repeat();
                let v = serde_json::to_value(done.into_inner())
                    .map_err(|e| Error::Internal(format!("encode decision: {e}")))?;
                Ok(invocation::mark_repeat(if repeat {
                    Idempotent::Repeat(v)
                } else {
                    Idempotent::Fresh(v)
                }))
            }
            Err(Error::Conflict(why)) => {
                tracing::info!(%why, "the same delivery is being handled by another invocation");
                Ok(json!({"outcome": "in-progress", "reason": why}))
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `work` under the workload's lease, waited for a little (another alarm for the same
    /// workload decides in well under a second); still held after that is `Retryable`.
    pub(crate) async fn under_lease<T, F, Fut>(
        &self,
        workload: &Workload,
        owner: &str,
        work: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let id = workload.to_string();
        let terms = LeaseTerms {
            scope: "rollback",
            id: &id,
            owner,
            ttl: self.toolkit.settings.lease_ttl,
            patience: Patience::up_to(LEASE_PATIENCE, Duration::from_millis(200)),
        };
        match invocation::with_kept_lease(&self.toolkit.store, terms, |_| work()).await? {
            Leased::Done(value) => Ok(value),
            Leased::Held { owner: other, .. } => Err(Error::Retryable(format!(
                "the lease of {workload} stayed held by {other} for {} s",
                LEASE_PATIENCE.as_secs()
            ))),
        }
    }
}

/// How long a request waits for the workload's lease another invocation holds.
const LEASE_PATIENCE: Duration = Duration::from_secs(15);

/// What one SNS record asks for.
enum SnsAsk {
    /// A CloudWatch alarm notification.
    Alarm(Box<AlarmFields>),
    /// `{"command": "rollback", …}`.
    Command(Value),
}

/// Reads one SNS record's message; anything else is `InvalidEvent`.
fn sns_ask(message: &str) -> Result<SnsAsk> {
    match serde_json::from_str::<Value>(message) {
        Ok(m) if m.get("AlarmName").is_some() => Ok(SnsAsk::Alarm(Box::new(alarm_from_sns(&m)?))),
        Ok(m) if m.get("command").and_then(Value::as_str) == Some("rollback") => {
            Ok(SnsAsk::Command(m))
        }
        Ok(_) => Err(invalid(
            "SNS message: neither a CloudWatch alarm notification nor a rollback command",
        )),
        Err(e) => Err(invalid(format!("SNS message is not JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_alarm_shapes_read_alike() {
        let eb = json!({"alarmName": "web-p95", "state": {"value": "ALARM", "reason": "r",
            "timestamp": "2026-11-23T03:00:00.000+0000"}, "previousState": {"value": "OK"}});
        let a = alarm_from_eventbridge(&eb, Some(&"arn:a".to_string())).unwrap();
        let action = json!({"alarmArn": "arn:a", "alarmData": eb});
        assert_eq!(alarm_from_action(&action).unwrap(), a);
        let sns = json!({"AlarmName": "web-p95", "NewStateValue": "ALARM", "OldStateValue": "OK",
            "StateChangeTime": "2026-11-23T03:00:00.000+0000", "AlarmArn": "arn:a", "NewStateReason": "r"});
        assert_eq!(alarm_from_sns(&sns).unwrap(), a);
        assert!(alarm_from_eventbridge(
            &json!({"alarmName": "x", "state": {"value": "BAD"}}),
            None
        )
        .is_err());
        assert!(alarm_from_eventbridge(&json!({"state": {"value": "ALARM"}}), None).is_err());
    }
}

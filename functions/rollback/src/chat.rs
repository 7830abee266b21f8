//! People asking in chat: a Slack slash command or a PagerDuty note reaches the Function URL,
//! is verified ([`webhook`]), recorded against replay, acknowledged at once and handed to an
//! asynchronous invocation of this function, which decides like any other request.
//!
//! Slack shows the user an error unless a slash command is answered within 3000 ms (Slack API,
//! "Slash commands": "respond within 3000 milliseconds … or use the response_url"); a decision
//! that starts a cold container (EKS DescribeCluster, S3 records, Kubernetes reads and a patch,
//! SNS) can take longer. So the Function URL request only verifies the signature, records the
//! request (replay protection) and hands the verified command to `Invoke` with
//! `InvocationType: Event` — Lambda queues it and answers 202 at once; the queued invocation
//! decides, records and notifies as any other trigger does, and Lambda retries it (twice) on
//! error, which the decision's idempotency key makes harmless.

pub mod webhook;

use breakwater::handoff::Handoff;
use breakwater::ports::Alarms;
use breakwater::secrets::Secrets;
use breakwater::state::key_segment;
use breakwater::{Error, Result};
use serde_json::{json, Value};

use crate::request::{Asker, Request};
use crate::workload::Workload;
use crate::{invalid, RollbackFunction};
use webhook::{HttpRequest, Unauthorized};

/// The command the queued invocation receives (a direct-invoke command of this function).
pub const HANDOFF_COMMAND: &str = "webhook";

/// The queued invocation's event for a verified manual request.
pub fn handoff_event(source: &str, text: &str, by: &str, id: &str) -> Value {
    json!({"command": HANDOFF_COMMAND, "source": source, "text": text, "requestedBy": by, "id": id})
}

impl<A: Alarms> RollbackFunction<A> {
    /// A Function URL request: verified, then read. Any refusal is a 401 and changes nothing. A
    /// verified request is acknowledged at once and carried out by an asynchronous invocation
    /// (`handoff`): Slack gives a slash command 3000 ms.
    pub async fn on_http_with(
        &self,
        event: &Value,
        owner: &str,
        secrets: &impl Secrets,
        handoff: &impl Handoff,
    ) -> Value {
        let Some(request) = HttpRequest::from_event(event) else {
            return webhook::response(400, &json!({"error": "not a Function URL request"}));
        };
        let now = self.now_ms();
        let refused = |why: Unauthorized| {
            tracing::warn!(reason = %why.0, path = %request.path, "refused an unauthenticated request; nothing changed");
            self.count("unauthorized", "RequestsRefused");
            webhook::response(401, &json!({"error": "unauthorized"}))
        };
        if request.method != "POST" {
            return webhook::response(405, &json!({"error": "POST only"}));
        }
        if request.body.len() > self.settings.max_body_bytes {
            self.count("too-large", "RequestsRefused");
            return webhook::response(413, &json!({"error": "request body too large"}));
        }
        let (source, reference) = match request.path.as_str() {
            "/slack" => ("slack", &self.settings.slack_secret),
            "/pagerduty" => ("pagerduty", &self.settings.pagerduty_secret),
            _ => return webhook::response(404, &json!({"error": "no such route"})),
        };
        let Some(reference) = reference else {
            return refused(Unauthorized(format!("{source} is not configured")));
        };
        let secret = match self
            .settings
            .secrets
            .get(reference, || secrets.read(reference))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // Not judged (nothing was compared), so not a 401; and nothing is done.
                tracing::error!(error = %e, %reference, "could not read the signing secret; the request is not judged");
                self.count("secret-unavailable", "RequestsRefused");
                return webhook::response(503, &json!({"error": "temporarily unavailable"}));
            }
        };
        let (id, answer) = if source == "slack" {
            let signature = match webhook::verify_slack(&secret, &request, now) {
                Ok(s) => s,
                Err(why) => return refused(why),
            };
            let id = webhook::request_id("slack", &signature);
            if !self.first_time("slack", &id, owner).await {
                return refused(Unauthorized("replayed Slack request".into()));
            }
            let answer = self.on_slack(&request, &id, owner, handoff).await;
            (id, answer)
        } else {
            let (id, payload) = match webhook::verify_pagerduty(&secret, &request, now) {
                Ok(p) => p,
                Err(why) => return refused(why),
            };
            if !self.first_time("pagerduty", &id, owner).await {
                return refused(Unauthorized("replayed PagerDuty event".into()));
            }
            let answer = self.on_pagerduty(&payload, &id, owner, handoff).await;
            (id, answer)
        };
        match answer {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "the signed request could not be handed on");
                // It was recorded as seen before the hand-off failed: forget it, so that the
                // sender's retry is taken rather than refused as a replay.
                if let Err(e) = self.toolkit.store.delete(&replay_key(source, &id)).await {
                    tracing::error!(error = %e, "could not forget the failed request's replay record");
                }
                if source == "pagerduty" {
                    // PagerDuty's v3 webhooks retry a delivery that is not answered with a 2xx.
                    return webhook::response(503, &json!({"error": "could not start; retry"}));
                }
                webhook::response(
                    200,
                    &json!({"response_type": "ephemeral",
                    "text": "Breakwater could not start this request; nothing was changed. Try again, or see the function's logs"}),
                )
            }
        }
    }

    /// Whether this signature / event id was never seen (a create-once record). The record names
    /// the invocation: the store takes a conditional write that finds a byte-identical record for
    /// its own lost first attempt, so two replays in the same millisecond must not write the same
    /// bytes.
    async fn first_time(&self, source: &str, id: &str, owner: &str) -> bool {
        let key = replay_key(source, id);
        match self
            .toolkit
            .store
            .create(
                &key,
                &json!({"seen_at_ms": self.now_ms(), "invocation": owner}),
            )
            .await
        {
            Ok(created) => created.is_some(),
            Err(e) => {
                tracing::error!(error = %e, "could not record the request for replay protection; refusing it");
                false
            }
        }
    }

    async fn on_slack(
        &self,
        request: &HttpRequest,
        id: &str,
        owner: &str,
        handoff: &impl Handoff,
    ) -> Result<Value> {
        let form = webhook::form(&request.body);
        let user = form.get("user_id").cloned().unwrap_or_default();
        let team = form.get("team_id").cloned().unwrap_or_default();
        let name = form.get("user_name").cloned().unwrap_or_default();
        // Both lists are checked on the signed body (the signature covers every field), before
        // anything is handed on.
        let refused = [
            (
                &self.settings.slack_teams,
                &team,
                "BREAKWATER_ROLLBACK_SLACK_TEAMS",
                format!("This workspace ({team})"),
            ),
            (
                &self.settings.slack_users,
                &user,
                "BREAKWATER_ROLLBACK_SLACK_USERS",
                format!("<@{user}>"),
            ),
        ]
        .into_iter()
        .find(|(list, who, _, _)| !allowed(list, who));
        if let Some((_, _, list, asker)) = refused {
            tracing::warn!(%team, %user, list, "a Slack command not allowed to roll back was refused");
            return Ok(webhook::response(
                200,
                &json!({"response_type": "ephemeral",
                "text": format!("{asker} is not allowed to roll back ({list}); nothing was changed")}),
            ));
        }
        let text = form.get("text").cloned().unwrap_or_default();
        let by = format!("slack:{user} ({name})");
        let answer = self
            .acknowledge(handoff, "slack", &text, &by, id, owner)
            .await?;
        Ok(webhook::response(
            200,
            &json!({"response_type": "in_channel", "text": answer}),
        ))
    }

    async fn on_pagerduty(
        &self,
        payload: &Value,
        id: &str,
        owner: &str,
        handoff: &impl Handoff,
    ) -> Result<Value> {
        let event = &payload["event"];
        let kind = event["event_type"].as_str().unwrap_or_default();
        if kind != "incident.annotated" {
            return Ok(webhook::response(
                200,
                &json!({"outcome": "ignored",
                "reason": format!("{kind} is not a note; a rollback is asked for with a note \"rollback <workload> [revision]\"")}),
            ));
        }
        let text = event["data"]["content"].as_str().unwrap_or_default();
        let who = event["agent"]["summary"].as_str().unwrap_or("unknown");
        let incident = event["data"]["incident"]["id"].as_str().unwrap_or("?");
        // The agent is the user who wrote the note (`type: user_reference`, `id: P…`); a note
        // written by an integration or a service has no user to match and is refused too.
        let agent = match event["agent"]["type"].as_str() {
            Some("user_reference") => event["agent"]["id"].as_str().unwrap_or_default(),
            _ => "",
        };
        // Only a note that asks for a rollback is checked: PagerDuty sends every note, and an
        // ordinary note by someone not on the list is not a refusal.
        if self.parse_text(text).is_ok() && !allowed(&self.settings.pagerduty_users, agent) {
            let list = "BREAKWATER_ROLLBACK_PAGERDUTY_USERS";
            tracing::warn!(%agent, %who, %incident, list, "a PagerDuty note from a user not allowed to roll back was refused");
            // A 2xx, or PagerDuty retries the delivery; the refusal is the answer.
            return Ok(webhook::response(
                200,
                &json!({"outcome": "refused",
                "reason": format!("{who} ({agent}) is not allowed to roll back ({list}); nothing was changed")}),
            ));
        }
        let by = format!("pagerduty:{who} (incident {incident})");
        let answer = self
            .acknowledge(handoff, "pagerduty", text, &by, id, owner)
            .await?;
        Ok(webhook::response(
            200,
            &json!({"outcome": "accepted", "text": answer}),
        ))
    }

    /// A verified request's answer: a usage error at once; otherwise the request is queued for an
    /// asynchronous invocation of this function and acknowledged.
    async fn acknowledge(
        &self,
        handoff: &impl Handoff,
        source: &str,
        text: &str,
        by: &str,
        id: &str,
        owner: &str,
    ) -> Result<String> {
        let (workload, _) = match self.parse_text(text) {
            Ok(parsed) => parsed,
            Err(usage) => return Ok(usage),
        };
        let queued = handoff_event(source, text, by, id);
        let target = self
            .settings
            .handoff_function
            .as_deref()
            .unwrap_or(&self.toolkit.settings.function_name);
        handoff.queue(target, &queued).await?;
        tracing::info!(request = id, %workload, by, %owner, "acknowledged; the rollback runs in an asynchronous invocation");
        Ok(format!(
            "accepted: Breakwater is deciding on {workload} (request {id}); the outcome goes to the Breakwater notification topic"
        ))
    }

    /// The queued half of a webhook request: decided like any other request.
    pub(crate) async fn on_handed_off(&self, body: &Value, id: &str, owner: &str) -> Result<Value> {
        let text = body["text"].as_str().unwrap_or_default();
        let by = body["requestedBy"]
            .as_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| invalid("webhook command: `requestedBy` is required"))?;
        let answer = self.on_text(text, by, id, owner).await?;
        Ok(json!({"outcome": "handled", "request": id, "text": answer}))
    }

    /// `rollback <workload> [revision]`, or the usage sentence to answer.
    fn parse_text(&self, text: &str) -> std::result::Result<(Workload, Option<i64>), String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let usage = "usage: rollback <namespace>/<name> | <cluster>/<namespace>/<Deployment|Rollout>/<name> [revision]";
        let (workload, revision) = match words.as_slice() {
            [verb, w] if verb.eq_ignore_ascii_case("rollback") => (*w, None),
            [verb, w, r] if verb.eq_ignore_ascii_case("rollback") => (*w, Some(*r)),
            _ => return Err(usage.to_string()),
        };
        let workload = Workload::parse(workload, self.settings.default_cluster())
            .map_err(|e| format!("{e}; {usage}"))?;
        let to_revision = match revision.map(str::parse::<i64>) {
            None => None,
            Some(Ok(n)) if n > 0 => Some(n),
            Some(_) => return Err(format!("the revision must be a positive number; {usage}")),
        };
        Ok((workload, to_revision))
    }

    /// `rollback <workload> [revision]` from a person; answers in a sentence.
    async fn on_text(&self, text: &str, by: &str, id: &str, owner: &str) -> Result<String> {
        let (workload, to_revision) = match self.parse_text(text) {
            Ok(parsed) => parsed,
            Err(usage) => return Ok(usage),
        };
        let request = Request {
            workload,
            asker: Asker::Person(by.to_string()),
            to_revision,
            event_id: id.to_string(),
        };
        match self.request(request, owner).await {
            Ok(d) => Ok(format!(
                "{}: {}",
                d["outcome"].as_str().unwrap_or("decided"),
                d["reason"].as_str().unwrap_or_default()
            )),
            Err(Error::InvalidEvent(why)) => Ok(why),
            Err(e) => Err(e),
        }
    }
}

/// Where a signed request is recorded as seen (replay protection).
/// Whether `who` may ask: an empty allow-list lets anyone; an empty `who` is never on a list.
fn allowed(list: &[String], who: &str) -> bool {
    list.is_empty() || (!who.is_empty() && list.iter().any(|x| x == who))
}

fn replay_key(source: &str, id: &str) -> String {
    format!("rollback/webhooks/{source}/{}.json", key_segment(id))
}

//! Typed event envelopes and a tolerant router: each function declares the triggers it handles,
//! and anything else — an unknown shape, an unknown detail type, a malformed field, an event for
//! another account or region — is a clear [`Error::InvalidEvent`] before anything is changed.

use aws_lambda_events::cloudwatch_alarms::CloudWatchAlarm;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::SnsEvent;
use serde_json::Value;

use crate::error::{Error, Result};

/// A recognised trigger.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// An EventBridge event (AWS service events, CloudTrail calls, alarm state changes, schedules).
    EventBridge(Box<EventBridgeEvent<Value>>),
    /// The payload a CloudWatch alarm sends when it invokes a Lambda function directly.
    AlarmAction(Box<CloudWatchAlarm>),
    /// SNS deliveries (one or more records).
    Sns(Box<SnsEvent>),
    /// A manual invocation: `{"command": "...", ...}`.
    Command {
        /// The command name.
        command: String,
        /// The whole payload.
        body: Value,
    },
}

impl Trigger {
    /// The trigger's own id, for deduplication: the EventBridge event id, the SNS message id(s),
    /// the alarm ARN and time of an alarm action, or the `id` a manual payload carries.
    pub fn event_id(&self) -> Option<String> {
        match self {
            Trigger::EventBridge(e) => e.id.clone(),
            Trigger::AlarmAction(a) => a
                .alarm_arn
                .as_ref()
                .map(|arn| format!("{arn}@{}", a.time.timestamp_millis())),
            Trigger::Sns(s) => {
                let ids: Vec<&str> = s
                    .records
                    .iter()
                    .map(|r| r.sns.message_id.as_str())
                    .collect();
                (!ids.is_empty()).then(|| ids.join("+"))
            }
            Trigger::Command { body, .. } => {
                body.get("id").and_then(Value::as_str).map(str::to_string)
            }
        }
    }
}

/// What one function accepts.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// The function's name, for error messages.
    pub function: &'static str,
    /// Accepted EventBridge `(source, detail-type)` pairs.
    pub eventbridge: &'static [(&'static str, &'static str)],
    /// Whether direct alarm-action payloads are accepted.
    pub alarm_actions: bool,
    /// Whether SNS deliveries are accepted.
    pub sns: bool,
    /// Accepted manual commands.
    pub commands: &'static [&'static str],
    /// The account events must come from, when known.
    pub account: Option<String>,
    /// The regions events may come from; empty for any (a copy of a function acts in its own
    /// region, the failover function in the plan's two).
    pub regions: Vec<String>,
}

impl Routes {
    /// Recognises `event` or says exactly why it is refused.
    pub fn route(&self, event: Value) -> Result<Trigger> {
        let Value::Object(object) = &event else {
            return Err(invalid(format!(
                "expected a JSON object, got {}",
                kind_of(&event)
            )));
        };
        if object.contains_key("detail-type") {
            let parsed: EventBridgeEvent<Value> = serde_json::from_value(event)
                .map_err(|e| invalid(format!("EventBridge event: {e}")))?;
            let accepted = self
                .eventbridge
                .iter()
                .any(|(s, d)| *s == parsed.source && *d == parsed.detail_type);
            if !accepted {
                return Err(invalid(format!(
                    "{} does not handle {:?} from {:?}",
                    self.function, parsed.detail_type, parsed.source
                )));
            }
            self.check_origin(parsed.account.as_deref(), parsed.region.as_deref())?;
            if !parsed.detail.is_object() {
                return Err(invalid(format!(
                    "EventBridge event: detail must be an object, got {}",
                    kind_of(&parsed.detail)
                )));
            }
            return Ok(Trigger::EventBridge(Box::new(parsed)));
        }
        if object.contains_key("alarmData") {
            if !self.alarm_actions {
                return Err(invalid(format!(
                    "{} is not invoked by alarm actions",
                    self.function
                )));
            }
            let parsed: CloudWatchAlarm = serde_json::from_value(event)
                .map_err(|e| invalid(format!("alarm action payload: {e}")))?;
            if parsed.alarm_data.alarm_name.is_empty() {
                return Err(invalid(
                    "alarm action payload: alarmData.alarmName is missing".to_string(),
                ));
            }
            self.check_origin(parsed.account_id.as_deref(), parsed.region.as_deref())?;
            return Ok(Trigger::AlarmAction(Box::new(parsed)));
        }
        if object.contains_key("Records") {
            if !self.sns {
                return Err(invalid(format!(
                    "{} is not subscribed to SNS",
                    self.function
                )));
            }
            let parsed: SnsEvent =
                serde_json::from_value(event).map_err(|e| invalid(format!("SNS event: {e}")))?;
            if parsed.records.is_empty()
                || parsed.records.iter().any(|r| r.event_source != "aws:sns")
            {
                return Err(invalid(
                    "SNS event: expected one or more records from aws:sns".to_string(),
                ));
            }
            return Ok(Trigger::Sns(Box::new(parsed)));
        }
        if let Some(command) = object.get("command") {
            let Some(command) = command.as_str() else {
                return Err(invalid(format!(
                    "command: expected a string, got {}",
                    kind_of(command)
                )));
            };
            if !self.commands.contains(&command) {
                return Err(invalid(format!(
                    "{} has no command {command:?} (it has: {})",
                    self.function,
                    self.commands.join(", ")
                )));
            }
            return Ok(Trigger::Command {
                command: command.to_string(),
                body: event,
            });
        }
        let mut keys: Vec<&str> = object.keys().map(String::as_str).take(8).collect();
        keys.sort_unstable();
        Err(invalid(format!(
            "unrecognised event shape (top-level keys: {})",
            keys.join(", ")
        )))
    }

    fn check_origin(&self, account: Option<&str>, region: Option<&str>) -> Result<()> {
        if let (Some(expected), Some(actual)) = (&self.account, account) {
            if expected != actual {
                return Err(invalid(format!(
                    "event from account {actual}, this deployment serves {expected}"
                )));
            }
        }
        if let Some(actual) = region {
            if !self.regions.is_empty() && !self.regions.iter().any(|r| r == actual) {
                return Err(invalid(format!(
                    "event from region {actual}, this copy serves {}",
                    self.regions.join(" and ")
                )));
            }
        }
        Ok(())
    }
}

/// The fields of an alarm state change, whichever shape delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmFields {
    /// The alarm's name.
    pub name: String,
    /// Its ARN, when the shape carries it.
    pub arn: Option<String>,
    /// The new state.
    pub state: String,
    /// The state before.
    pub previous: String,
    /// When the new state began (ms).
    pub since_ms: u64,
    /// CloudWatch's reason.
    pub reason: String,
}

fn state_time(state: &Value, what: &str) -> Result<u64> {
    state["timestamp"]
        .as_str()
        .and_then(crate::clock::parse_rfc3339)
        .ok_or_else(|| invalid(format!("{what}: state.timestamp is missing or not a time")))
}

fn state_value(state: &Value, what: &str) -> Result<String> {
    match state["value"].as_str() {
        Some(v @ ("OK" | "ALARM" | "INSUFFICIENT_DATA")) => Ok(v.to_string()),
        _ => Err(invalid(format!(
            "{what}: state.value must be OK, ALARM or INSUFFICIENT_DATA"
        ))),
    }
}

/// The fields of an EventBridge `CloudWatch Alarm State Change`.
pub fn alarm_from_eventbridge(detail: &Value, resource: Option<&String>) -> Result<AlarmFields> {
    let what = "alarm state change";
    let name = detail["alarmName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("{what}: detail.alarmName is missing")))?;
    Ok(AlarmFields {
        name: name.to_string(),
        arn: resource.cloned(),
        state: state_value(&detail["state"], what)?,
        previous: detail["previousState"]["value"]
            .as_str()
            .unwrap_or("INSUFFICIENT_DATA")
            .to_string(),
        since_ms: state_time(&detail["state"], what)?,
        reason: detail["state"]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

/// The fields of a direct alarm-action payload (`alarmData`).
pub fn alarm_from_action(payload: &Value) -> Result<AlarmFields> {
    let mut fields = alarm_from_eventbridge(&payload["alarmData"], None)?;
    fields.arn = payload["alarmArn"].as_str().map(str::to_string);
    Ok(fields)
}

/// The fields of a CloudWatch alarm notification delivered by SNS.
pub fn alarm_from_sns(message: &Value) -> Result<AlarmFields> {
    let what = "SNS alarm notification";
    let name = message["AlarmName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("{what}: AlarmName is missing")))?;
    let state = serde_json::json!({"value": message["NewStateValue"], "timestamp": message["StateChangeTime"]});
    Ok(AlarmFields {
        name: name.to_string(),
        arn: message["AlarmArn"].as_str().map(str::to_string),
        state: state_value(&state, what)?,
        previous: message["OldStateValue"]
            .as_str()
            .unwrap_or("INSUFFICIENT_DATA")
            .to_string(),
        since_ms: state_time(&state, what)?,
        reason: message["NewStateReason"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    })
}

fn invalid(reason: String) -> Error {
    Error::InvalidEvent(reason)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROUTES: Routes = Routes {
        function: "probe",
        eventbridge: &[("aws.events", "Scheduled Event")],
        alarm_actions: true,
        sns: true,
        commands: &["write"],
        account: None,
        regions: Vec::new(),
    };

    fn schedule() -> Value {
        json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-22T21:00:00Z",
            "region": "us-west-2", "resources": ["arn:aws:events:us-west-2:123456789012:rule/tick"], "detail": {}
        })
    }

    #[test]
    fn routes_an_accepted_eventbridge_event_with_its_id() {
        let trigger = ROUTES.route(schedule()).unwrap();
        assert!(matches!(trigger, Trigger::EventBridge(_)));
        assert_eq!(
            trigger.event_id().as_deref(),
            Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa")
        );
    }

    #[test]
    fn refuses_unknown_detail_types_and_names_them() {
        let mut event = schedule();
        event["detail-type"] = json!("EC2 Spot Instance Interruption Warning");
        event["source"] = json!("aws.ec2");
        let err = ROUTES.route(event).unwrap_err();
        assert_eq!(err.error_type(), "InvalidEvent");
        assert!(
            err.to_string()
                .contains("EC2 Spot Instance Interruption Warning"),
            "{err}"
        );
    }

    #[test]
    fn refuses_malformed_and_foreign_events_with_a_reason() {
        let cases = [
            (json!([1, 2]), "expected a JSON object"),
            (json!("hello"), "expected a JSON object"),
            (
                json!({"detail-type": 5, "source": "aws.events", "detail": {}}),
                "EventBridge event",
            ),
            (json!({"command": 7}), "command: expected a string"),
            (
                json!({"command": "drop-tables"}),
                "no command \"drop-tables\"",
            ),
            (json!({"hello": "world"}), "unrecognised event shape"),
            (json!({"Records": []}), "SNS event"),
        ];
        for (event, expected) in cases {
            let err = ROUTES.route(event.clone()).unwrap_err();
            assert!(err.to_string().contains(expected), "{event} -> {err}");
        }
        let pinned = Routes {
            account: Some("111111111111".into()),
            regions: vec!["us-east-1".into()],
            ..ROUTES
        };
        let err = pinned.route(schedule()).unwrap_err();
        assert!(err.to_string().contains("account 123456789012"), "{err}");
    }

    #[test]
    fn routes_alarm_actions_and_commands() {
        let alarm = json!({
            "source": "aws.cloudwatch",
            "alarmArn": "arn:aws:cloudwatch:us-west-2:123456789012:alarm:api-p95",
            "accountId": "123456789012", "time": "2026-11-22T21:00:00.000+0000", "region": "us-west-2",
            "alarmData": {"alarmName": "api-p95", "state": {"value": "ALARM", "reason": "r", "timestamp": "2026-11-22T21:00:00.000+0000"},
                          "previousState": {"value": "OK", "reason": "r", "timestamp": "2026-11-22T20:00:00.000+0000"},
                          "configuration": {"metrics": []}}
        });
        let trigger = ROUTES.route(alarm).unwrap();
        assert!(trigger
            .event_id()
            .unwrap()
            .starts_with("arn:aws:cloudwatch:us-west-2:123456789012:alarm:api-p95@"));
        let command = ROUTES
            .route(json!({"command": "write", "id": "c-1"}))
            .unwrap();
        assert_eq!(command.event_id().as_deref(), Some("c-1"));
    }
}

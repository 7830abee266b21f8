//! The EC2 events spot handling reacts to (`aws_lambda_events` has no type for them), parsed
//! from an EventBridge event's `detail`, with the instance id checked: the interruption warning,
//! the rebalance recommendation, the state change, and AWS Health's scheduled changes of EC2
//! instances (retirement, stop, reboot and other maintenance), which aws-node-termination-handler
//! drains at once too.

use breakwater::{Error, Result};
use serde_json::Value;

/// `EC2 Spot Instance Interruption Warning`.
pub const WARNING: &str = "EC2 Spot Instance Interruption Warning";
/// `EC2 Instance Rebalance Recommendation`.
pub const REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
/// `EC2 Instance State-change Notification`.
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";

/// `AWS Health Event` (source `aws.health`; "Reference: AWS Health events Amazon EventBridge
/// schema", <https://docs.aws.amazon.com/health/latest/ug/aws-health-events-eventbridge-schema.html>).
pub const HEALTH: &str = "AWS Health Event";

/// `EC2 Instance-terminate Lifecycle Action` (source `aws.autoscaling`; Amazon EC2 Auto Scaling
/// User Guide, "Auto Scaling events": the event of a termination lifecycle hook).
pub const LIFECYCLE: &str = "EC2 Instance-terminate Lifecycle Action";
/// The transition of a termination hook.
pub const TERMINATING: &str = "autoscaling:EC2_INSTANCE_TERMINATING";

/// What happened to an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpotEvent {
    /// The 2-minute warning: the instance goes about 120 s after `time`.
    Warning {
        /// The instance.
        instance_id: String,
        /// `terminate`, `stop` or `hibernate`.
        action: String,
    },
    /// An early, often false, signal.
    Rebalance {
        /// The instance.
        instance_id: String,
    },
    /// An AWS Health scheduled change of the instance (`eventTypeCategory: scheduledChange`):
    /// drained at once, as aws-node-termination-handler does, without forcing anything before
    /// the change is near.
    Scheduled {
        /// The instance.
        instance_id: String,
        /// `eventTypeCode`, e.g. `AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED`.
        code: String,
        /// `startTime` (ms), when the change begins.
        start_ms: Option<u64>,
    },
    /// An Auto Scaling group holds the instance in `Terminating:Wait` on a termination lifecycle
    /// hook: drained at once, then the action completed (`CONTINUE`), as
    /// aws-node-termination-handler does.
    Lifecycle {
        /// The instance.
        instance_id: String,
        /// The action to complete.
        action: breakwater::ports::LifecycleAction,
    },
    /// The instance changed state.
    StateChange {
        /// The instance.
        instance_id: String,
        /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
        state: String,
    },
}

impl SpotEvent {
    /// The instance the event is about.
    pub fn instance_id(&self) -> &str {
        match self {
            SpotEvent::Warning { instance_id, .. }
            | SpotEvent::Rebalance { instance_id }
            | SpotEvent::Scheduled { instance_id, .. }
            | SpotEvent::Lifecycle { instance_id, .. }
            | SpotEvent::StateChange { instance_id, .. } => instance_id,
        }
    }

    /// Whether a state change ends the story of its instance.
    pub fn ends(&self) -> bool {
        matches!(self, SpotEvent::StateChange { state, .. }
            if matches!(state.as_str(), "stopping" | "stopped" | "shutting-down" | "terminated"))
    }
}

/// `i-` and 8 or 17 hexadecimal digits.
pub fn check_instance_id(id: &str) -> Result<()> {
    let hex = id.strip_prefix("i-").unwrap_or_default();
    if (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::InvalidEvent(format!(
            "{id:?} is not an EC2 instance id"
        )))
    }
}

/// A Health event's `startTime`, `Sat, 05 Jun 2016 15:10:09 GMT` (RFC 1123, as the schema's
/// samples show it), or RFC 3339.
pub fn parse_start_time(text: &str) -> Option<u64> {
    if let Some(ms) = breakwater::clock::parse_rfc3339(text) {
        return Some(ms);
    }
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u32 = day.parse().ok()?;
    breakwater::clock::parse_rfc3339(&format!("{year}-{month:02}-{day:02}T{time}Z"))
}

/// What an AWS Health event asks of spot handling: `Ok(Ok(events))`, one per affected instance,
/// for an EC2 scheduled change; `Ok(Err(why))` for any other Health event (not ours, dropped);
/// `Err(InvalidEvent)` for a malformed one.
pub fn parse_health(detail: &Value) -> Result<std::result::Result<Vec<SpotEvent>, String>> {
    let text = |name: &str| detail[name].as_str().unwrap_or_default();
    if text("service") != "EC2" || text("eventTypeCategory") != "scheduledChange" {
        return Ok(Err(format!(
            "a Health event of service {:?}, category {:?}: only EC2 scheduled changes are drained",
            text("service"),
            text("eventTypeCategory")
        )));
    }
    // A change already over is nothing to drain for (`statusCode`: upcoming, open, closed).
    if text("statusCode") == "closed" {
        return Ok(Err(format!(
            "the scheduled change {} is closed",
            text("eventTypeCode")
        )));
    }
    let code = text("eventTypeCode");
    if code.is_empty() {
        return Err(Error::InvalidEvent(
            "AWS Health Event without detail.eventTypeCode".into(),
        ));
    }
    let start_ms = detail["startTime"].as_str().and_then(parse_start_time);
    let entities = detail["affectedEntities"].as_array().ok_or_else(|| {
        Error::InvalidEvent("AWS Health scheduled change without detail.affectedEntities".into())
    })?;
    let mut events = Vec::new();
    for entity in entities {
        let value = entity["entityValue"].as_str().unwrap_or_default();
        // A Dedicated Host (`h-…`) or another entity is no node of ours.
        if !value.starts_with("i-") {
            continue;
        }
        check_instance_id(value)?;
        events.push(SpotEvent::Scheduled {
            instance_id: value.to_string(),
            code: code.to_string(),
            start_ms,
        });
    }
    Ok(Ok(events))
}

/// What a termination lifecycle event asks: `Ok(Ok(event))`; `Ok(Err(why))` for the test
/// notification Auto Scaling sends when a hook is created, or another transition (not ours);
/// `Err(InvalidEvent)` for a malformed one.
pub fn parse_lifecycle(detail: &Value) -> Result<std::result::Result<SpotEvent, String>> {
    let text = |name: &str| detail[name].as_str().unwrap_or_default();
    let transition = text("LifecycleTransition");
    if transition != TERMINATING || text("Event") == "autoscaling:TEST_NOTIFICATION" {
        return Ok(Err(format!(
            "lifecycle transition {transition:?}: only {TERMINATING} is handled"
        )));
    }
    let field = |name: &str| {
        Some(text(name))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidEvent(format!("{LIFECYCLE} without detail.{name}")))
    };
    let instance_id = field("EC2InstanceId")?;
    check_instance_id(&instance_id)?;
    let action = breakwater::ports::LifecycleAction {
        group: field("AutoScalingGroupName")?,
        hook: field("LifecycleHookName")?,
        token: field("LifecycleActionToken")?,
        instance_id: instance_id.clone(),
    };
    Ok(Ok(SpotEvent::Lifecycle {
        instance_id,
        action,
    }))
}

/// Parses the `detail` of an event of `detail_type`.
pub fn parse(detail_type: &str, detail: &Value) -> Result<SpotEvent> {
    let field = |name: &str| {
        detail[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| Error::InvalidEvent(format!("{detail_type} without detail.{name}")))
    };
    let instance_id = field("instance-id")?;
    check_instance_id(&instance_id)?;
    match detail_type {
        WARNING => {
            let action = field("instance-action")?;
            if !matches!(action.as_str(), "terminate" | "stop" | "hibernate") {
                return Err(Error::InvalidEvent(format!(
                    "instance-action {action:?} is not terminate, stop or hibernate"
                )));
            }
            Ok(SpotEvent::Warning {
                instance_id,
                action,
            })
        }
        REBALANCE => Ok(SpotEvent::Rebalance { instance_id }),
        STATE_CHANGE => Ok(SpotEvent::StateChange {
            instance_id,
            state: field("state")?,
        }),
        other => Err(Error::InvalidEvent(format!(
            "{other:?} is not a spot event"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_health_scheduled_change_names_its_instances_and_its_start() {
        // The schema's sample, as aws-node-termination-handler also quotes it.
        let detail = json!({"eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x",
            "service": "EC2", "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED",
            "eventTypeCategory": "scheduledChange", "startTime": "Sat, 05 Jun 2016 15:10:09 GMT",
            "affectedEntities": [{"entityValue": "i-1234567890abcdef0", "tags": {"stage": "prod"}},
                {"entityValue": "h-0123456789abcdef0"}]});
        let events = parse_health(&detail).unwrap().unwrap();
        assert_eq!(
            events,
            [SpotEvent::Scheduled {
                instance_id: "i-1234567890abcdef0".into(),
                code: "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED".into(),
                start_ms: breakwater::clock::parse_rfc3339("2016-06-05T15:10:09Z"),
            }]
        );
        // Not an EC2 scheduled change: not ours. Malformed: refused.
        let issue = json!({"service": "EC2", "eventTypeCategory": "issue", "eventTypeCode": "AWS_EC2_OPERATIONAL_ISSUE"});
        assert!(parse_health(&issue).unwrap().is_err());
        let mut closed = detail.clone();
        closed["statusCode"] = json!("closed");
        assert!(parse_health(&closed).unwrap().is_err());
        let rds = json!({"service": "RDS", "eventTypeCategory": "scheduledChange"});
        assert!(parse_health(&rds).unwrap().is_err());
        let forged = json!({"service": "EC2", "eventTypeCategory": "scheduledChange",
            "eventTypeCode": "X", "affectedEntities": [{"entityValue": "i-../../etc"}]});
        assert!(matches!(parse_health(&forged), Err(Error::InvalidEvent(_))));
        assert_eq!(parse_start_time("Sat, 05 Jun 2016 25:10:09 GMT"), None);
    }

    #[test]
    fn a_termination_lifecycle_action_names_its_group_hook_token_and_instance() {
        // aws-node-termination-handler's sample (pkg/monitor/sqsevent/asg-lifecycle-event.go).
        let detail = json!({"LifecycleActionToken": "0befcbdb-6ecd-498a-9ff7-ae9b54447cd6",
            "AutoScalingGroupName": "nodes-a", "LifecycleHookName": "cluster-termination-handler",
            "EC2InstanceId": "i-0633ac2b0d9769723", "LifecycleTransition": TERMINATING});
        let Ok(Ok(SpotEvent::Lifecycle {
            instance_id,
            action,
        })) = parse_lifecycle(&detail)
        else {
            panic!("not a lifecycle event");
        };
        assert_eq!(instance_id, "i-0633ac2b0d9769723");
        assert_eq!(
            (action.group.as_str(), action.hook.as_str()),
            ("nodes-a", "cluster-termination-handler")
        );
        let test =
            json!({"Event": "autoscaling:TEST_NOTIFICATION", "AutoScalingGroupName": "nodes-a"});
        assert!(parse_lifecycle(&test).unwrap().is_err());
        let mut no_token = detail.clone();
        no_token["LifecycleActionToken"] = json!("");
        assert!(matches!(
            parse_lifecycle(&no_token),
            Err(Error::InvalidEvent(_))
        ));
    }

    #[test]
    fn parses_the_three_events_and_refuses_the_rest() {
        let w = parse(
            WARNING,
            &json!({"instance-id": "i-1234567890abcdef0", "instance-action": "terminate"}),
        )
        .unwrap();
        assert_eq!(w.instance_id(), "i-1234567890abcdef0");
        assert!(matches!(
            parse(REBALANCE, &json!({"instance-id": "i-0aaa1111"})),
            Ok(SpotEvent::Rebalance { .. })
        ));
        assert!(parse(
            STATE_CHANGE,
            &json!({"instance-id": "i-0aaa1111", "state": "terminated"})
        )
        .unwrap()
        .ends());
        assert!(!parse(
            STATE_CHANGE,
            &json!({"instance-id": "i-0aaa1111", "state": "running"})
        )
        .unwrap()
        .ends());
        for (t, d) in [
            (WARNING, json!({"instance-id": "i-0aaa1111"})),
            (
                WARNING,
                json!({"instance-id": "i-0aaa1111", "instance-action": "explode"}),
            ),
            (
                WARNING,
                json!({"instance-id": "../../etc", "instance-action": "terminate"}),
            ),
            (REBALANCE, json!({})),
            ("EC2 Fleet Error", json!({"instance-id": "i-0aaa1111"})),
        ] {
            assert!(
                matches!(parse(t, &d), Err(Error::InvalidEvent(_))),
                "{t} {d}"
            );
        }
    }
}

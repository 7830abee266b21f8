//! The three EC2 events spot handling reacts to (`aws_lambda_events` has no type for the first
//! two), parsed from an EventBridge event's `detail`, with the instance id checked.

use breakwater::{Error, Result};
use serde_json::Value;

/// `EC2 Spot Instance Interruption Warning`.
pub const WARNING: &str = "EC2 Spot Instance Interruption Warning";
/// `EC2 Instance Rebalance Recommendation`.
pub const REBALANCE: &str = "EC2 Instance Rebalance Recommendation";
/// `EC2 Instance State-change Notification`.
pub const STATE_CHANGE: &str = "EC2 Instance State-change Notification";

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

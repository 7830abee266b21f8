//! Notifications: a human summary for the people on the topic, plus machine-readable message
//! attributes for the subscribers that filter or route, published through the [`Topic`] port
//! (SNS in a deployment: [`crate::aws::sns::SnsTopic`]; `fakes::topic::MemoryTopic` in tests).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::objects::BoxFuture;

/// A topic that fans a message out to its subscribers.
pub trait Topic: Send + Sync + std::fmt::Debug {
    /// The topic's name (its ARN), for messages.
    fn name(&self) -> &str;

    /// Publishes `message` with `subject` and string `attributes`; returns the message id.
    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>>>;
}

/// A bus that routes events to whatever rules match them: EventBridge in a deployment
/// ([`crate::aws::eventbridge::EventBridgeBus`]), `fakes::bus::MemoryBus` in tests.
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// The bus's name or ARN, for messages.
    fn name(&self) -> &str;

    /// Puts one event from `source: breakwater` with `detail_type` and `detail`; returns its id.
    fn put<'a>(
        &'a self,
        detail_type: &'a str,
        detail: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Option<String>>>;
}

/// The `source` of every event Breakwater puts on a bus.
pub const EVENT_SOURCE: &str = "breakwater";

/// SNS allows at most 10 message attributes per message.
const MAX_ATTRIBUTES: usize = 10;

/// One notification.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Notification {
    /// The e-mail subject line (SNS: ASCII, at most 100 characters, no line breaks; sanitised here).
    pub subject: String,
    /// What happened, in sentences, for a person.
    pub summary: String,
    /// Machine-readable attributes (`function`, `kind`, `outcome`, ids); at most 10.
    pub attributes: BTreeMap<String, String>,
    /// Optional structured details appended to the message as JSON.
    pub details: Option<serde_json::Value>,
}

impl Notification {
    /// A notification with a subject and a summary.
    pub fn new(subject: impl Into<String>, summary: impl Into<String>) -> Self {
        Notification {
            subject: subject.into(),
            summary: summary.into(),
            ..Default::default()
        }
    }

    /// Adds a machine-readable attribute.
    pub fn attribute(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attributes.insert(name.to_string(), value.into());
        self
    }

    /// Attaches structured details.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The message body: the summary, then the details as pretty JSON.
    pub fn body(&self) -> String {
        match &self.details {
            Some(details) => format!(
                "{}\n\n-- details --\n{}",
                self.summary,
                serde_json::to_string_pretty(details).unwrap_or_default()
            ),
            None => self.summary.clone(),
        }
    }

    /// The event's `detail-type`: the function and what happened — the `kind` attribute, else
    /// the `phase`, else the `outcome` (`spot drained`, `failover traffic`, `spot paused`);
    /// docs/events.md lists them.
    pub fn detail_type(&self) -> String {
        let function = self
            .attributes
            .get("function")
            .map(String::as_str)
            .unwrap_or("breakwater");
        let what = ["kind", "phase", "outcome"]
            .iter()
            .find_map(|name| self.attributes.get(*name))
            .map(String::as_str)
            .unwrap_or("notice");
        format!("{function} {what}")
    }

    /// The event's `detail`: the attributes, the subject, the summary and the details.
    pub fn event_detail(&self) -> serde_json::Value {
        let mut detail = serde_json::json!({
            "subject": self.subject,
            "summary": self.summary,
            "attributes": self.attributes,
        });
        // Each attribute also at the top level, for rules to match on; never over a field of
        // the envelope.
        for (name, value) in &self.attributes {
            if !matches!(
                name.as_str(),
                "subject" | "summary" | "attributes" | "details" | "topic"
            ) {
                detail[name] = value.clone().into();
            }
        }
        // EventBridge takes at most 256 KB an entry (PutEvents, EventBridge API Reference): the
        // details go along only when the whole detail stays under 200 KB; the SNS message and
        // the report always have them.
        if let Some(details) = &self.details {
            let size = detail.to_string().len() + details.to_string().len();
            if size <= 200 * 1024 {
                detail["details"] = details.clone();
            }
        }
        detail
    }

    /// The subject as SNS accepts it: printable ASCII, one line, at most 100 characters.
    pub fn sns_subject(&self) -> String {
        let cleaned: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    ' '
                }
            })
            .collect();
        let trimmed = cleaned.trim();
        if trimmed.len() <= 100 {
            trimmed.to_string()
        } else {
            format!("{}...", &trimmed[..97])
        }
    }

    fn validate(&self) -> Result<()> {
        if self.attributes.len() > MAX_ATTRIBUTES {
            return Err(Error::Aws(format!(
                "notification has {} attributes, SNS takes {MAX_ATTRIBUTES}",
                self.attributes.len()
            )));
        }
        for (name, value) in &self.attributes {
            let valid_name = !name.is_empty()
                && name.len() <= 256
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
                && !name.starts_with('.')
                && !name.ends_with('.')
                && !name.contains("..")
                && !name.to_ascii_lowercase().starts_with("aws.")
                && !name.to_ascii_lowercase().starts_with("amazon.");
            if !valid_name || value.is_empty() {
                return Err(Error::Aws(format!(
                    "notification attribute {name:?}={value:?} is not valid for SNS"
                )));
            }
        }
        Ok(())
    }
}

/// Publishes notifications to one topic, or only logs them when no topic is configured, and puts
/// each on an event bus too when one is configured.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Arc<dyn Topic>>,
    bus: Option<Arc<dyn EventBus>>,
}

impl Notifier {
    /// A notifier for the SNS topic `topic_arn`.
    pub fn new(sns: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self::over(Arc::new(crate::aws::sns::SnsTopic::new(sns, topic_arn)))
    }

    /// A notifier over any topic (an in-memory fake in tests).
    pub fn over(topic: Arc<dyn Topic>) -> Self {
        Notifier {
            target: Some(topic),
            bus: None,
        }
    }

    /// A notifier that logs and publishes nothing.
    pub fn log_only() -> Self {
        Notifier {
            target: None,
            bus: None,
        }
    }

    /// Puts every notification on `bus` too (`source: breakwater`, one `detail-type` per kind).
    pub fn with_bus(mut self, bus: Arc<dyn EventBus>) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Publishes to the topic and puts the event on the bus, side by side; returns the SNS
    /// message id, or `None` when only logged. The topic failing is the error (the caller's
    /// retry sends again); the bus failing is logged (`error_type`, "the event did not go
    /// out") and is not: the SNS message went, and what was done is not undone or repeated
    /// for the sake of a copy on the bus.
    pub async fn publish(&self, notification: &Notification) -> Result<Option<String>> {
        notification.validate()?;
        tracing::info!(
            subject = %notification.subject,
            attributes = ?notification.attributes,
            summary = %notification.summary,
            "notification"
        );
        let published = async {
            match &self.target {
                Some(topic) => {
                    topic
                        .publish(
                            &notification.sns_subject(),
                            &notification.body(),
                            &notification.attributes,
                        )
                        .await
                }
                None => Ok(None),
            }
        };
        let detail_type = notification.detail_type();
        let mut detail = notification.event_detail();
        // The topic the same notification went to: it tells two stacks in one region apart.
        if let Some(topic) = &self.target {
            detail["topic"] = topic.name().into();
        }
        let put = async {
            match &self.bus {
                Some(bus) => bus.put(&detail_type, &detail).await.map(drop),
                None => Ok(()),
            }
        };
        let (published, put) = tokio::join!(published, put);
        if let Err(e) = put {
            tracing::warn!(
                error_type = e.error_type(),
                error = %e,
                detail_type = %detail_type,
                "the event did not go out"
            );
        }
        published
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_made_safe_for_sns() {
        let n = Notification::new(format!("node drained\n{}", "x".repeat(200)), "s");
        let subject = n.sns_subject();
        assert!(subject.len() <= 100 && !subject.contains('\n'), "{subject}");
        assert_eq!(Notification::new("  ok ✓ ", "s").sns_subject(), "ok");
    }

    #[test]
    fn attributes_that_sns_refuses_are_caught_before_sending() {
        assert!(Notification::new("s", "b")
            .attribute("function", "spot")
            .validate()
            .is_ok());
        assert!(Notification::new("s", "b")
            .attribute("AWS.thing", "x")
            .validate()
            .is_err());
        assert!(Notification::new("s", "b")
            .attribute("has space", "x")
            .validate()
            .is_err());
        assert!(Notification::new("s", "b")
            .attribute("empty", "")
            .validate()
            .is_err());
        let mut many = Notification::new("s", "b");
        for i in 0..11 {
            many = many.attribute(&format!("a{i}"), "x");
        }
        assert!(many.validate().is_err());
    }

    #[test]
    fn the_event_is_typed_by_function_and_kind_and_carries_the_attributes() {
        let n = Notification::new("Spot: drained ip-1", "Drained.")
            .attribute("function", "spot")
            .attribute("outcome", "drained")
            .details(serde_json::json!({"pods": 3}));
        assert_eq!(n.detail_type(), "spot drained");
        let detail = n.event_detail();
        assert_eq!(detail["function"], "spot");
        assert_eq!(detail["outcome"], "drained");
        assert_eq!(detail["subject"], "Spot: drained ip-1");
        assert_eq!(detail["details"]["pods"], 3);
        let paused = Notification::new("s", "b")
            .attribute("function", "budget")
            .attribute("kind", "paused")
            .attribute("outcome", "x");
        assert_eq!(paused.detail_type(), "budget paused");
        let huge = Notification::new("s", "b").details(serde_json::json!("x".repeat(300 * 1024)));
        assert!(huge.event_detail().get("details").is_none());
    }

    #[tokio::test]
    async fn a_notification_goes_to_the_topic_and_the_bus_and_a_failed_put_is_only_logged() {
        use crate::fakes::bus::MemoryBus;
        use crate::fakes::topic::MemoryTopic;
        let topic = Arc::new(MemoryTopic::new("arn:aws:sns:us-east-1:123456789012:t"));
        let bus = Arc::new(MemoryBus::new("default"));
        let notifier = Notifier::over(topic.clone()).with_bus(bus.clone());
        let note = Notification::new("Spot: drained", "Drained.")
            .attribute("function", "spot")
            .attribute("outcome", "drained");
        notifier.publish(&note).await.unwrap();
        assert_eq!(topic.published().len(), 1);
        let events = bus.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail_type, "spot drained");
        assert_eq!(events[0].detail["summary"], "Drained.");
        // A bus that fails does not fail the notification: the SNS message went.
        bus.throttle_next(1);
        notifier.publish(&note).await.unwrap();
        assert_eq!(topic.published().len(), 2);
        assert_eq!(bus.events().len(), 1);
    }

    #[test]
    fn body_carries_the_summary_then_the_details() {
        let n = Notification::new("s", "Node drained.").details(serde_json::json!({"pods": 3}));
        assert!(n.body().starts_with("Node drained.\n\n-- details --\n{"));
        assert!(n.body().contains("\"pods\": 3"));
    }
}

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

/// Publishes notifications to one topic, or only logs them when no topic is configured.
#[derive(Debug, Clone)]
pub struct Notifier {
    target: Option<Arc<dyn Topic>>,
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
        }
    }

    /// A notifier that logs and publishes nothing.
    pub fn log_only() -> Self {
        Notifier { target: None }
    }

    /// Publishes; returns the SNS message id, or `None` when only logged.
    pub async fn publish(&self, notification: &Notification) -> Result<Option<String>> {
        notification.validate()?;
        tracing::info!(
            subject = %notification.subject,
            attributes = ?notification.attributes,
            summary = %notification.summary,
            "notification"
        );
        let Some(topic) = &self.target else {
            return Ok(None);
        };
        topic
            .publish(
                &notification.sns_subject(),
                &notification.body(),
                &notification.attributes,
            )
            .await
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
    fn body_carries_the_summary_then_the_details() {
        let n = Notification::new("s", "Node drained.").details(serde_json::json!({"pods": 3}));
        assert!(n.body().starts_with("Node drained.\n\n-- details --\n{"));
        assert!(n.body().contains("\"pods\": 3"));
    }
}

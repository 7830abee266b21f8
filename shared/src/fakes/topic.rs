//! An in-memory topic: the fake of [`Topic`], keeping every message published, with knobs for
//! a throttled publish and a slow one.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::notify::Topic;
use crate::objects::BoxFuture;

/// A message as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The id the topic gave it.
    pub message_id: String,
    /// The subject.
    pub subject: String,
    /// The message body.
    pub message: String,
    /// The message attributes.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    published: Vec<Published>,
    throttle_next: usize,
    gone: bool,
    latency: std::time::Duration,
}

/// One in-memory topic.
#[derive(Debug, Default)]
pub struct MemoryTopic {
    arn: String,
    inner: Mutex<Inner>,
}

impl MemoryTopic {
    /// A topic named `arn`.
    pub fn new(arn: impl Into<String>) -> Self {
        MemoryTopic {
            arn: arn.into(),
            inner: Mutex::default(),
        }
    }

    /// The next `n` publishes fail as throttled (`Retryable`).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// Every publish answers only after `latency` (tokio time).
    pub fn answers_after(self, latency: std::time::Duration) -> Self {
        self.lock().latency = latency;
        self
    }

    /// The topic is deleted: publishing to it is `NotFound`.
    pub fn delete(&self) {
        self.lock().gone = true;
    }

    /// Every message published so far.
    pub fn published(&self) -> Vec<Published> {
        self.lock().published.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_now(
        &self,
        subject: &str,
        message: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<Option<String>> {
        let mut inner = self.lock();
        if inner.gone {
            return Err(Error::NotFound(format!(
                "publish to {}: NotFound (Topic does not exist)",
                self.arn
            )));
        }
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(Error::Retryable(format!(
                "publish to {}: Throttling (fake)",
                self.arn
            )));
        }
        let message_id = format!("fake-message-{}", inner.published.len() + 1);
        inner.published.push(Published {
            message_id: message_id.clone(),
            subject: subject.to_string(),
            message: message.to_string(),
            attributes: attributes.clone(),
        });
        Ok(Some(message_id))
    }
}

impl Topic for MemoryTopic {
    fn name(&self) -> &str {
        &self.arn
    }

    fn publish<'a>(
        &'a self,
        subject: &'a str,
        message: &'a str,
        attributes: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move {
            let latency = self.lock().latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            self.publish_now(subject, message, attributes)
        })
    }
}

//! The EventBridge adapter of the event-bus port: `PutEvents`, one entry per notification
//! (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html>).
//!
//! `PutEvents` answers 200 even when an entry failed: each failed entry carries an `ErrorCode`
//! and the response a `FailedEntryCount` ("PutEvents", EventBridge API Reference). A failed entry
//! is this adapter's error: `ThrottlingException` and `InternalFailure` are retryable
//! ("PutEventsResultEntry", EventBridge API Reference).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::notify::{EventBus, EVENT_SOURCE};
use crate::objects::BoxFuture;

/// One event bus (`default`, or a bus's name or ARN).
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeBus {
    /// The bus `bus` (its name or ARN).
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        EventBridgeBus {
            client,
            bus: bus.into(),
        }
    }

    async fn send(&self, detail_type: &str, detail: &Value) -> Result<Option<String>> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .build();
        let what = format!("put event {detail_type:?} on bus {}", self.bus);
        let response = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| Error::from_sdk(&what, &e))?;
        let Some(result) = response.entries().first() else {
            return Err(Error::Aws(format!("{what}: no entry in the answer")));
        };
        match result.error_code() {
            None => Ok(result.event_id().map(str::to_string)),
            Some(code) => {
                let message = format!(
                    "{what}: {code} ({})",
                    result.error_message().unwrap_or("no message")
                );
                if matches!(code, "ThrottlingException" | "InternalFailure") {
                    Err(Error::Retryable(message))
                } else {
                    Err(Error::Aws(message))
                }
            }
        }
    }
}

impl EventBus for EventBridgeBus {
    fn name(&self) -> &str {
        &self.bus
    }

    fn put<'a>(
        &'a self,
        detail_type: &'a str,
        detail: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(self.send(detail_type, detail))
    }
}

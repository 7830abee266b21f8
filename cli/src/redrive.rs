//! `redrive`: re-delivers what sits in a function's failure queue to the function, each message
//! deleted only once Lambda has queued its event again (202).
//!
//! Two shapes arrive there ("Capturing records of Lambda asynchronous invocations", Lambda
//! Developer Guide): an on-failure destination (spot, rollback, failover) receives the
//! invocation record, whose `requestPayload` is the event; a dead-letter queue (budget,
//! tiering) receives "only the content of the event". The functions are idempotent per event id
//! (their idempotency records), so an event re-delivered twice acts once. A manual command
//! (`{"command": …}`) has no event id: re-delivered, it acts again, perhaps days after it was
//! asked for and past the template's `MaximumEventAgeInSeconds`. It stays in the queue unless
//! `--include-commands` says otherwise.

use std::fmt::Write as _;

use breakwater::{Error, Result};
use serde_json::Value;

use crate::invoke::Function;

/// The event a failure-queue message carries: an invocation record's `requestPayload`, else
/// the message itself (a dead-letter queue's).
pub fn event_of(body: &str) -> std::result::Result<Value, String> {
    let message: Value =
        serde_json::from_str(body).map_err(|e| format!("the message is not JSON ({e})"))?;
    if message.get("requestContext").is_some() {
        return match message.get("requestPayload") {
            Some(event) if !event.is_null() => Ok(event.clone()),
            _ => Err("an invocation record without its requestPayload".into()),
        };
    }
    Ok(message)
}

/// What the message is, in a few words (for the operator's line): the event, and for an
/// invocation record when and why it failed.
fn describe(event: &Value, body: &str) -> String {
    let what = if let Some(command) = event["command"].as_str() {
        format!("command {command}")
    } else {
        match (event["detail-type"].as_str(), event["id"].as_str()) {
            (Some(kind), Some(id)) => format!("{kind} (event {id})"),
            (Some(kind), None) => kind.to_string(),
            _ => "an event".into(),
        }
    };
    let record: Value = serde_json::from_str(body).unwrap_or_default();
    match record["requestContext"]["condition"].as_str() {
        Some(condition) => format!(
            "{what}, failed {} ({condition}, {} attempts, {})",
            record["timestamp"].as_str().unwrap_or("?"),
            record["requestContext"]["approximateInvokeCount"],
            record["responsePayload"]["errorType"]
                .as_str()
                .unwrap_or("no error type")
        ),
        None => what,
    }
}

/// How a redrive asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// At most this many messages.
    pub max: usize,
    /// List, and leave every message.
    pub dry_run: bool,
    /// Re-deliver manual commands too (they are not de-duplicated: each acts again).
    pub include_commands: bool,
}

/// Re-delivers up to `options.max` messages of `queue_url` to `function`. A failure midway is
/// the error, with the lines of what was already done.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    function: &Function,
    options: Options,
) -> Result<String> {
    let mut out = String::new();
    match pass(sqs, queue_url, function, options, &mut out).await {
        Ok(()) => Ok(out),
        Err(e) => Err(Error::Aws(format!("{out}stopped: {e}"))),
    }
}

async fn pass(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    function: &Function,
    options: Options,
    out: &mut String,
) -> Result<()> {
    let (mut sent, mut kept) = (0, 0);
    let mut seen = std::collections::BTreeSet::new();
    while sent + kept < options.max {
        let batch = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10.min((options.max - sent - kept) as i32).max(1))
            .wait_time_seconds(1)
            // Long enough to act on the batch; a message kept shows again after it.
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| Error::Aws(format!("receiving from {queue_url}: {e:?}")))?;
        let messages = batch.messages();
        if messages.is_empty() {
            break;
        }
        let mut fresh = 0;
        for m in messages {
            let id = m.message_id().unwrap_or("?").to_string();
            let receipt = m.receipt_handle().unwrap_or_default();
            if !seen.insert(id.clone()) {
                // Seen and kept in this pass: received again, made visible again.
                release(sqs, queue_url, receipt).await;
                continue;
            }
            fresh += 1;
            let body = m.body().unwrap_or_default();
            let event = event_of(body);
            let keep = match &event {
                Err(why) => Some(why.clone()),
                Ok(e) if e.get("command").is_some() && !options.include_commands => Some(format!(
                    "{}: a manual command acts again when re-delivered (--include-commands to re-deliver it)",
                    describe(e, body)
                )),
                Ok(_) => None,
            };
            if let Some(why) = keep {
                kept += 1;
                let _ = writeln!(out, "kept {id}: {why}");
                release(sqs, queue_url, receipt).await;
                continue;
            }
            let event = event.unwrap_or_default();
            if options.dry_run {
                kept += 1;
                let _ = writeln!(out, "would re-deliver {id}: {}", describe(&event, body));
                release(sqs, queue_url, receipt).await;
                continue;
            }
            function.start(&event).await?;
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| {
                    Error::Aws(format!(
                        "{id} was re-delivered but not deleted from {queue_url} (it will be delivered again): {e:?}"
                    ))
                })?;
            sent += 1;
            let _ = writeln!(out, "re-delivered {id}: {}", describe(&event, body));
        }
        if fresh == 0 {
            break;
        }
    }
    let _ = writeln!(
        out,
        "{sent} re-delivered to {}, {kept} left in the queue",
        function.name
    );
    Ok(())
}

/// Makes a message received and left visible again at once (ChangeMessageVisibility 0).
async fn release(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let _ = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_record_gives_its_request_payload_and_a_dead_letter_its_body() {
        let record = r#"{"version":"1.0","requestContext":{"condition":"RetriesExhausted"},
            "requestPayload":{"command":"drill"},"responsePayload":{"errorType":"x"}}"#;
        assert_eq!(
            event_of(record).unwrap(),
            serde_json::json!({"command": "drill"})
        );
        let dead_letter = r#"{"detail-type":"Scheduled Event","id":"e1"}"#;
        assert_eq!(event_of(dead_letter).unwrap()["id"], "e1");
        assert!(event_of(r#"{"requestContext":{}}"#).is_err());
        assert!(event_of("not json").is_err());
    }
}

//! Acknowledge, then act: a webhook is answered as soon as it is verified, and the rollback it
//! asks for runs in an asynchronous invocation of this same function.
//!
//! Slack shows the user an error unless a slash command is answered within 3000 ms (Slack API,
//! "Slash commands": "respond within 3000 milliseconds … or use the response_url"); a decision
//! that starts a cold container (EKS DescribeCluster, S3 records, Kubernetes reads and a patch,
//! SNS) can take longer. So the Function URL request only verifies the signature, records the
//! request (replay protection) and hands the verified command to `Invoke` with
//! `InvocationType: Event` — Lambda queues it and answers 202 at once; the queued invocation
//! decides, records and notifies as any other trigger does, and Lambda retries it (twice) on
//! error, which the decision's idempotency key makes harmless.

use breakwater::aws::Aws;
use breakwater::{Error, Result};
use serde_json::{json, Value};

/// The command the queued invocation receives (a direct-invoke command of this function).
pub const COMMAND: &str = "webhook";

/// The queued invocation's event for a verified manual request.
pub fn event(source: &str, text: &str, by: &str, id: &str) -> Value {
    json!({"command": COMMAND, "source": source, "text": text, "requestedBy": by, "id": id})
}

/// Queues `event` for an asynchronous invocation of `function` (`Invoke`, `InvocationType:
/// Event`): Lambda answers 202 when the event is queued, before it runs.
pub async fn invoke_async(aws: &Aws, function: &str, event: &Value) -> Result<()> {
    let out = aws_sdk_lambda::Client::new(aws.config())
        .invoke()
        .function_name(function)
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
        .send()
        .await
        .map_err(|e| Error::from_sdk(&format!("Invoke {function} (Event)"), &e))?;
    match out.status_code() {
        202 => Ok(()),
        other => Err(Error::Retryable(format!(
            "Invoke {function} (Event) answered {other}, not 202: the request was not queued"
        ))),
    }
}

//! The hand-off adapter: Lambda `Invoke` with `InvocationType: Event`, behind
//! [`crate::handoff::Handoff`]. Lambda answers 202 when the event is queued, before it runs, and
//! retries a failed asynchronous invocation twice (AWS Lambda Developer Guide, "How Lambda
//! handles errors and retries with asynchronous invocation",
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>).

use serde_json::Value;

/// The SDK crate, for whoever sets up the functions invoked (tests, the sandbox).
pub use aws_sdk_lambda;

use crate::aws::Aws;
use crate::error::{Error, Result};
use crate::handoff::Handoff;

/// [`Handoff`] over Lambda's `Invoke`.
#[derive(Debug, Clone)]
pub struct LambdaInvoke {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoke {
    /// The adapter with `aws`'s configuration.
    pub fn new(aws: &Aws) -> Self {
        LambdaInvoke {
            client: aws_sdk_lambda::Client::new(aws.config()),
        }
    }
}

impl Handoff for LambdaInvoke {
    async fn queue(&self, function: &str, event: &Value) -> Result<()> {
        let out = self
            .client
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
}

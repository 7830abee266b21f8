//! The hand-off adapter: Lambda `Invoke` with `InvocationType: Event`, behind
//! [`crate::handoff::Handoff`]. Lambda answers 202 when the event is queued, before it runs, and
//! retries a failed asynchronous invocation twice (AWS Lambda Developer Guide, "How Lambda
//! handles errors and retries with asynchronous invocation",
//! <https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html>).

use aws_sdk_lambda::types::InvocationType;
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

    /// `RequestResponse`: the function's answer. A function error (`X-Amz-Function-Error`,
    /// "Invoke", AWS Lambda API Reference) is the error, with the function's own type and
    /// message.
    pub async fn call(&self, function: &str, event: &Value) -> Result<Value> {
        let out = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(aws_sdk_lambda::primitives::Blob::new(event.to_string()))
            .send()
            .await
            .map_err(|e| Error::from_sdk(&format!("Invoke {function}"), &e))?;
        let body: Value = out
            .payload()
            .and_then(|p| serde_json::from_slice(p.as_ref()).ok())
            .unwrap_or(Value::Null);
        match out.function_error() {
            None => Ok(body),
            Some(kind) => Err(Error::Aws(format!(
                "{function} answered an error ({kind}, {}): {}",
                body["errorType"].as_str().unwrap_or("?"),
                body["errorMessage"].as_str().unwrap_or("(no message)")
            ))),
        }
    }
}

impl Handoff for LambdaInvoke {
    async fn queue(&self, function: &str, event: &Value) -> Result<()> {
        let out = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::Event)
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

//! Invoking a deployed function (Lambda `Invoke`): synchronously for an answer (`plan`,
//! `precheck`, a command's preflight), asynchronously for work that outlives a CLI's patience (a
//! drill runs for minutes; `aws lambda invoke` times out after 60 s and retries).

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use breakwater::{Error, Result};
use serde_json::Value;

/// A deployed function.
#[derive(Debug, Clone)]
pub struct Function {
    lambda: aws_sdk_lambda::Client,
    /// Its name or ARN.
    pub name: String,
}

impl Function {
    /// `name` through `lambda`.
    pub fn new(lambda: aws_sdk_lambda::Client, name: &str) -> Self {
        Function {
            lambda,
            name: name.to_string(),
        }
    }

    /// `RequestResponse`: the function's answer; its error (`X-Amz-Function-Error`) is the
    /// error, with the function's message.
    pub async fn call(&self, payload: &Value) -> Result<Value> {
        let out = self
            .lambda
            .invoke()
            .function_name(&self.name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| Error::Aws(format!("invoking {}: {}", self.name, sdk_message(&e))))?;
        let body: Value = out
            .payload()
            .map(|p| serde_json::from_slice(p.as_ref()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        if let Some(kind) = out.function_error() {
            let message = body["errorMessage"].as_str().unwrap_or("(no message)");
            return Err(Error::Aws(format!(
                "{} answered an error ({kind}, {}): {message}",
                self.name,
                body["errorType"].as_str().unwrap_or("?")
            )));
        }
        Ok(body)
    }

    /// `Event`: queued by Lambda (202), run in the background, retried by Lambda on failure and
    /// then sent to the function's failure destination.
    pub async fn start(&self, payload: &Value) -> Result<()> {
        let out = self
            .lambda
            .invoke()
            .function_name(&self.name)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload.to_string()))
            .send()
            .await
            .map_err(|e| Error::Aws(format!("invoking {}: {}", self.name, sdk_message(&e))))?;
        if out.status_code() != 202 {
            return Err(Error::Aws(format!(
                "{} was not queued: Lambda answered {} (expected 202)",
                self.name,
                out.status_code()
            )));
        }
        Ok(())
    }
}

/// An SDK error's service message (`ResourceNotFoundException: Function not found: …`), else the
/// error itself.
pub fn sdk_message<E, R>(e: &aws_sdk_lambda::error::SdkError<E, R>) -> String
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("error"),
            service.message().unwrap_or_default()
        ),
        None => format!("{e}"),
    }
}

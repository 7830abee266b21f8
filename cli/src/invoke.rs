//! A deployed function, invoked through the shared Lambda adapter
//! ([`breakwater::aws::lambda_invoke::LambdaInvoke`]): synchronously for an answer (`plan`,
//! `precheck`, a command's preflight), asynchronously for work that outlives a CLI's patience (a
//! drill runs for minutes; `aws lambda invoke` times out after 60 s and retries).

use breakwater::aws::lambda_invoke::LambdaInvoke;
use breakwater::aws::Aws;
use breakwater::handoff::Handoff;
use breakwater::Result;
use serde_json::Value;

/// A deployed function.
#[derive(Debug, Clone)]
pub struct Function {
    lambda: LambdaInvoke,
    /// Its name or ARN.
    pub name: String,
}

impl Function {
    /// `name`, invoked with `aws`'s configuration.
    pub fn new(aws: &Aws, name: &str) -> Self {
        Function {
            lambda: LambdaInvoke::new(aws),
            name: name.to_string(),
        }
    }

    /// `RequestResponse`: the function's answer; its error is the error.
    pub async fn call(&self, payload: &Value) -> Result<Value> {
        self.lambda.call(&self.name, payload).await
    }

    /// `Event`: queued by Lambda (202), run in the background, retried by Lambda on failure and
    /// then sent to the function's failure destination.
    pub async fn start(&self, payload: &Value) -> Result<()> {
        self.lambda.queue(&self.name, payload).await
    }
}

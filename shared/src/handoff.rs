//! The hand-off port: queue an event for an asynchronous invocation of a function, answered as
//! soon as it is queued, before it runs. The adapter is
//! [`crate::aws::lambda_invoke::LambdaInvoke`] (`Invoke` with `InvocationType: Event`).

use std::future::Future;

use serde_json::Value;

use crate::error::Result;

/// What queues work for a later, asynchronous invocation.
pub trait Handoff: Send + Sync {
    /// Queues `event` for `function`; `Ok` once it is queued (it has not run yet).
    fn queue(&self, function: &str, event: &Value) -> impl Future<Output = Result<()>> + Send;
}

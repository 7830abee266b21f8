//! Serving a handler on the Lambda runtime: every failure, at init or in an invocation, becomes
//! one JSON log line naming its stable error type before it is handed to Lambda.

use std::future::Future;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::error::Error;

/// Logs an init failure (a bad setting names its variable) and hands it to the runtime.
pub fn init_failed(err: Error) -> lambda_runtime::Error {
    tracing::error!(error_type = err.error_type(), error = %err, "init failed");
    err.into()
}

/// Serves `handler(payload, request_id)` until the runtime stops.
pub async fn serve<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(Value, String) -> Fut,
    Fut: Future<Output = Result<Value, Error>>,
{
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        // Boxed: the handlers' futures are deep enough to overflow the compiler's layout queries
        // when nested in the runtime's own; one allocation per invocation is nothing.
        let result = Box::pin(handler(event.payload, event.context.request_id)).await;
        if let Err(err) = &result {
            tracing::error!(error_type = err.error_type(), error = %err, "invocation failed");
        }
        result
    }))
    .await
}

//! The tiering Lambda: wiring only.

use breakwater::aws::buckets::S3Buckets;
use breakwater::aws::cloudwatch::CloudWatchStorage;
use breakwater::config::Env;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tiering::{TieringFunction, TieringSettings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let (toolkit, settings) = match (
        breakwater::Toolkit::from_env(&env).await,
        TieringSettings::from_env(&env).map_err(breakwater::Error::from),
    ) {
        (Ok(toolkit), Ok(settings)) => (toolkit, settings),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error_type = err.error_type(), error = %err, "init failed");
            return Err(err.into());
        }
    };
    let function = TieringFunction {
        buckets: S3Buckets::new(toolkit.aws.s3(), settings.account.clone()),
        metrics: CloudWatchStorage::new(toolkit.aws.cloudwatch()),
        toolkit,
        settings,
    };
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let function = &function;
        async move {
            let result = function
                .handle(event.payload, &event.context.request_id)
                .await;
            if let Err(err) = &result {
                tracing::error!(error_type = err.error_type(), error = %err, "invocation failed");
            }
            result
        }
    }))
    .await
}

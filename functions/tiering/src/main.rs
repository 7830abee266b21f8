//! The tiering Lambda: wiring only.

use breakwater::aws::buckets::S3Buckets;
use breakwater::aws::cloudwatch::CloudWatchStorage;
use breakwater::config::Env;
use breakwater::lambda::{init_failed, serve};
use tiering::regions::S3BucketRegions;
use tiering::{TieringFunction, TieringSettings};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let toolkit = breakwater::Toolkit::from_env(&env)
        .await
        .map_err(init_failed)?;
    let settings = TieringSettings::from_env(&env).map_err(|e| init_failed(e.into()))?;
    let function = TieringFunction {
        buckets: S3Buckets::new(toolkit.aws.s3(), settings.account.clone()),
        metrics: CloudWatchStorage::new(toolkit.aws.cloudwatch()),
        regions: S3BucketRegions::new(toolkit.aws.clone()),
        toolkit,
        settings,
    };
    serve("tiering", &function.toolkit, |event, request_id| {
        let function = &function;
        async move { function.handle(event, &request_id).await }
    })
    .await
}

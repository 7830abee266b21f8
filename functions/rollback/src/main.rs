//! The rollback Lambda: wiring only.

use breakwater::aws::cloudwatch::CloudWatchAlarms;
use breakwater::config::Env;
use breakwater::kube::KubeClients;
use breakwater::lambda::{init_failed, serve};
use rollback::settings::RollbackSettings;
use rollback::RollbackFunction;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let toolkit = breakwater::Toolkit::from_env(&env)
        .await
        .map_err(init_failed)?;
    let settings = RollbackSettings::from_env(&env).map_err(|e| init_failed(e.into()))?;
    let kube = KubeClients::new(env.optional("BREAKWATER_KUBE_ENDPOINT")).map_err(init_failed)?;
    let function = RollbackFunction {
        alarms: CloudWatchAlarms::new(toolkit.aws.cloudwatch()),
        kube,
        toolkit,
        settings,
    };
    serve("rollback", |event, request_id| {
        let function = &function;
        async move { function.handle(event, &request_id).await }
    })
    .await
}

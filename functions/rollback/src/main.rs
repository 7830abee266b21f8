//! The rollback Lambda: wiring only.

use breakwater::aws::cloudwatch::CloudWatchAlarms;
use breakwater::aws::lambda_invoke::LambdaInvoke;
use breakwater::aws::secrets::AwsSecrets;
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
    let secrets = AwsSecrets::new(&toolkit.aws);
    let handoff = LambdaInvoke::new(&toolkit.aws);
    let function = RollbackFunction {
        alarms: CloudWatchAlarms::new(toolkit.aws.cloudwatch()),
        kube,
        toolkit,
        settings,
    };
    serve("rollback", &function.toolkit, |event, request_id| {
        let (function, secrets, handoff) = (&function, &secrets, &handoff);
        async move {
            function
                .handle_with(event, &request_id, secrets, handoff)
                .await
        }
    })
    .await
}

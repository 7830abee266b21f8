//! The spot Lambda: wiring only.

use breakwater::aws::autoscaling::AsgLifecycle;
use breakwater::aws::ec2::Ec2Instances;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::elbv2::ElbTargetGroups;
use breakwater::config::Env;
use breakwater::kube::KubeClients;
use breakwater::lambda::{init_failed, serve};
use spot::settings::SpotSettings;
use spot::SpotFunction;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let toolkit = breakwater::Toolkit::from_env(&env)
        .await
        .map_err(init_failed)?;
    let settings = SpotSettings::from_env(&env).map_err(|e| init_failed(e.into()))?;
    let kube = KubeClients::new(env.optional("BREAKWATER_KUBE_ENDPOINT")).map_err(init_failed)?;
    let function = SpotFunction {
        instances: Ec2Instances::new(toolkit.aws.ec2()),
        node_groups: EksNodeGroups::new(toolkit.aws.eks()),
        target_groups: ElbTargetGroups::new(toolkit.aws.elbv2()),
        lifecycle: AsgLifecycle::new(toolkit.aws.autoscaling()),
        kube,
        toolkit,
        settings,
    };
    serve("spot", &function.toolkit, |event, request_id| {
        let function = &function;
        async move { function.handle(event, &request_id).await }
    })
    .await
}

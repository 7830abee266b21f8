//! The budget Lambda: wiring only.

use breakwater::aws::budgets::AwsBudgets;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::rds::RdsDatabases;
use breakwater::config::Env;
use budget::settings::BudgetSettings;
use budget::BudgetFunction;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let settings = BudgetSettings::from_env(&env).map_err(breakwater::Error::from);
    let toolkit = match (breakwater::Toolkit::from_env(&env).await, settings) {
        (Ok(toolkit), Ok(settings)) => (toolkit, settings),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(error_type = err.error_type(), error = %err, "init failed");
            return Err(err.into());
        }
    };
    let (toolkit, settings) = toolkit;
    let function = BudgetFunction {
        node_groups: EksNodeGroups::new(toolkit.aws.eks()),
        databases: RdsDatabases::new(toolkit.aws.rds()),
        budgets: AwsBudgets::new(toolkit.aws.budgets()),
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

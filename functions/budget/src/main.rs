//! The budget Lambda: wiring only.

use breakwater::aws::budgets::AwsBudgets;
use breakwater::aws::eks::EksNodeGroups;
use breakwater::aws::iam::IamRolePolicies;
use breakwater::aws::rds::RdsDatabases;
use breakwater::config::Env;
use breakwater::lambda::{init_failed, serve};
use budget::settings::BudgetSettings;
use budget::BudgetFunction;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    breakwater::logging::init();
    let env = Env::from_process();
    let toolkit = breakwater::Toolkit::from_env(&env)
        .await
        .map_err(init_failed)?;
    let settings = BudgetSettings::from_env(&env).map_err(|e| init_failed(e.into()))?;
    let function = BudgetFunction {
        node_groups: EksNodeGroups::new(toolkit.aws.eks()),
        databases: RdsDatabases::new(toolkit.aws.rds()),
        budgets: AwsBudgets::new(toolkit.aws.budgets()),
        roles: IamRolePolicies::new(toolkit.aws.iam()),
        toolkit,
        settings,
    };
    serve("budget", &function.toolkit, |event, request_id| {
        let function = &function;
        async move { function.handle(event, &request_id).await }
    })
    .await
}

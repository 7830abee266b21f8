//! The AWS Budgets adapter.

use crate::error::{Error, Result};
use crate::ports::{BudgetFigures, Budgets};

/// [`Budgets`] over the Budgets API.
#[derive(Debug, Clone)]
pub struct AwsBudgets {
    client: aws_sdk_budgets::Client,
}

impl AwsBudgets {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_budgets::Client) -> Self {
        AwsBudgets { client }
    }
}

impl Budgets for AwsBudgets {
    async fn describe(&self, account: &str, name: &str) -> Result<Option<BudgetFigures>> {
        let response = match self
            .client
            .describe_budget()
            .account_id(account)
            .budget_name(name)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(Error::from_sdk(&format!("describe budget {name:?}"), &e)),
        };
        let Some(budget) = response.budget else {
            return Ok(None);
        };
        let limit = budget.budget_limit.as_ref();
        let spend = budget.calculated_spend.as_ref();
        Ok(Some(BudgetFigures {
            name: budget.budget_name.clone(),
            limit: limit.map(|l| l.amount.clone()).unwrap_or_default(),
            actual: spend
                .and_then(|s| s.actual_spend.as_ref())
                .map(|a| a.amount.clone())
                .unwrap_or_else(|| "0".into()),
            forecast: spend
                .and_then(|s| s.forecasted_spend.as_ref())
                .map(|f| f.amount.clone()),
            time_unit: budget.time_unit.as_str().to_string(),
            unit: limit
                .map(|l| l.unit.clone())
                .unwrap_or_else(|| "USD".into()),
        }))
    }
}

//! In-memory AWS Budgets: the fake of [`Budgets`], with each budget's figures as the API would
//! describe them, the calls made, and a knob for a throttled call.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ports::{BudgetFigures, Budgets};

#[derive(Debug, Default)]
struct Inner {
    budgets: BTreeMap<(String, String), BudgetFigures>,
    calls: Vec<String>,
    throttle_next: usize,
}

/// The budgets of some accounts.
#[derive(Debug, Default)]
pub struct MemoryBudgets {
    inner: Mutex<Inner>,
}

impl MemoryBudgets {
    /// No budgets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates or replaces the budget `figures.name` of `account`.
    pub fn set(&self, account: &str, figures: BudgetFigures) {
        self.lock()
            .budgets
            .insert((account.to_string(), figures.name.clone()), figures);
    }

    /// The next `n` calls fail as throttled (`Retryable`).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// The budget names described so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Budgets for MemoryBudgets {
    async fn describe(&self, account: &str, name: &str) -> Result<Option<BudgetFigures>> {
        let mut inner = self.lock();
        inner.calls.push(name.to_string());
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(Error::Retryable(format!(
                "describe budget {name:?}: ThrottlingException (fake)"
            )));
        }
        Ok(inner
            .budgets
            .get(&(account.to_string(), name.to_string()))
            .cloned())
    }
}

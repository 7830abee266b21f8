//! An in-memory [`Handoff`]: the events queued, per function, recorded in order; a function that
//! does not exist refused as Lambda refuses it; a knob to fail the next hand-off (Lambda's own
//! failure, nothing queued).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::error::{Error, Result};
use crate::handoff::Handoff;

#[derive(Debug, Default)]
struct State {
    functions: Option<BTreeSet<String>>,
    queued: Vec<(String, Value)>,
    fail_next: Option<Error>,
}

/// Queued invocations kept in memory; clones share them. Every function name is taken until
/// [`FakeHandoff::only_functions`] says which exist.
#[derive(Debug, Clone, Default)]
pub struct FakeHandoff {
    state: Arc<Mutex<State>>,
}

impl FakeHandoff {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Only these functions exist; a hand-off to any other is refused.
    pub fn only_functions(&self, names: &[&str]) {
        self.state().functions = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// The next hand-off fails with `error` and queues nothing.
    pub fn fail_next(&self, error: Error) {
        self.state().fail_next = Some(error);
    }

    /// What was queued: `(function, event)`, oldest first.
    pub fn queued(&self) -> Vec<(String, Value)> {
        self.state().queued.clone()
    }
}

impl Handoff for FakeHandoff {
    async fn queue(&self, function: &str, event: &Value) -> Result<()> {
        let mut state = self.state();
        if let Some(error) = state.fail_next.take() {
            return Err(error);
        }
        if state
            .functions
            .as_ref()
            .is_some_and(|known| !known.contains(function))
        {
            return Err(Error::NotFound(format!(
                "Invoke {function} (Event): ResourceNotFoundException (function not found)"
            )));
        }
        state.queued.push((function.to_string(), event.clone()));
        Ok(())
    }
}

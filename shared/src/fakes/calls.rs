//! What the fakes of the failover ports share: the log of calls made (so a test can assert
//! "nothing changed" or "one promotion"), and failures scheduled for a given call of an operation.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The calls a fake received, by operation, and the failures it is told to answer with.
#[derive(Debug, Default)]
pub struct Calls {
    made: Mutex<Vec<(&'static str, String)>>,
    failures: Mutex<VecDeque<(&'static str, usize, Error)>>,
}

impl Calls {
    /// Records a call of `operation` on `target`; a failure scheduled for it is returned (the
    /// failed call still counts, as a refused request does).
    pub fn record(&self, operation: &'static str, target: &str) -> Result<()> {
        let n = {
            let mut made = self.made.lock().unwrap();
            made.push((operation, target.to_string()));
            made.iter().filter(|(o, _)| *o == operation).count()
        };
        let mut failures = self.failures.lock().unwrap();
        match failures
            .iter()
            .position(|(o, at, _)| *o == operation && *at == n)
        {
            Some(i) => Err(failures.remove(i).expect("found").2),
            None => Ok(()),
        }
    }

    /// The next call of `operation` fails with `error`.
    pub fn fail_next(&self, operation: &'static str, error: Error) {
        self.fail_call(operation, self.count(operation) + 1, error);
    }

    /// The `n`-th call of `operation` (counted from the fake's creation, 1-based) fails with `error`.
    pub fn fail_call(&self, operation: &'static str, n: usize, error: Error) {
        self.failures
            .lock()
            .unwrap()
            .push_back((operation, n, error));
    }

    /// How many calls of `operation` were made (failed ones included).
    pub fn count(&self, operation: &str) -> usize {
        self.made
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| *o == operation)
            .count()
    }

    /// Every call, in order, as `operation target`.
    pub fn all(&self) -> Vec<String> {
        self.made
            .lock()
            .unwrap()
            .iter()
            .map(|(o, t)| format!("{o} {t}"))
            .collect()
    }

    /// The calls that change something (every operation but the reads named in `reads`).
    pub fn changes(&self, reads: &[&str]) -> Vec<String> {
        self.made
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| !reads.contains(o))
            .map(|(o, t)| format!("{o} {t}"))
            .collect()
    }
}

/// A throttled call, as the adapters classify one (`Throttling: Rate exceeded`).
pub fn throttled(what: &str) -> Error {
    Error::Retryable(format!("{what}: Throttling: Rate exceeded"))
}

/// A call refused because another change is in progress (`ResourceInUseException`,
/// `PriorRequestNotComplete`, `InvalidDBInstanceState`), as the adapters classify one.
pub fn busy(what: &str, code: &str) -> Error {
    Error::Conflict(format!("{what}: {code} (in progress; try again later)"))
}

//! An in-memory event bus: the fake of [`EventBus`], keeping every event put on it.

use std::sync::Mutex;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::notify::EventBus;
use crate::objects::BoxFuture;

/// An event as put.
#[derive(Debug, Clone, PartialEq)]
pub struct PutEvent {
    /// The id the bus gave it.
    pub id: String,
    /// Its `detail-type`.
    pub detail_type: String,
    /// Its `detail`.
    pub detail: Value,
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<PutEvent>,
    throttle_next: usize,
}

/// One in-memory bus.
#[derive(Debug, Default)]
pub struct MemoryBus {
    name: String,
    inner: Mutex<Inner>,
}

impl MemoryBus {
    /// A bus named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        MemoryBus {
            name: name.into(),
            inner: Mutex::default(),
        }
    }

    /// The next `n` puts fail as throttled (`Retryable`), as a failed entry does.
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// Every event put so far.
    pub fn events(&self) -> Vec<PutEvent> {
        self.lock().events.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn put_now(&self, detail_type: &str, detail: &Value) -> Result<Option<String>> {
        let mut inner = self.lock();
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(Error::Retryable(format!(
                "put event {detail_type:?} on bus {}: ThrottlingException",
                self.name
            )));
        }
        let id = format!("event-{}", inner.events.len() + 1);
        inner.events.push(PutEvent {
            id: id.clone(),
            detail_type: detail_type.to_string(),
            detail: detail.clone(),
        });
        Ok(Some(id))
    }
}

impl EventBus for MemoryBus {
    fn name(&self) -> &str {
        &self.name
    }

    fn put<'a>(
        &'a self,
        detail_type: &'a str,
        detail: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        Box::pin(async move { self.put_now(detail_type, detail) })
    }
}

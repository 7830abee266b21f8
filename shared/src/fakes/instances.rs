//! In-memory EC2 instances: the fake of [`Instances`], described as EC2 tags and places them,
//! with the calls made and a knob for a throttled call.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ports::{InstanceInfo, Instances};

#[derive(Debug, Default)]
struct Inner {
    instances: BTreeMap<String, InstanceInfo>,
    calls: Vec<String>,
    throttle_next: usize,
}

/// The instances of one region.
#[derive(Debug, Default)]
pub struct MemoryInstances {
    inner: Mutex<Inner>,
}

impl MemoryInstances {
    /// No instances.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an instance.
    pub fn launch(&self, instance: InstanceInfo) {
        self.lock().instances.insert(instance.id.clone(), instance);
    }

    /// The next `n` calls fail as throttled (`Retryable`, EC2's `RequestLimitExceeded`).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// The instance ids described so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Instances for MemoryInstances {
    async fn describe(&self, id: &str) -> Result<Option<InstanceInfo>> {
        let mut inner = self.lock();
        inner.calls.push(id.to_string());
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(Error::Retryable(format!(
                "describe instance {id}: RequestLimitExceeded (fake)"
            )));
        }
        Ok(inner.instances.get(id).cloned())
    }
}

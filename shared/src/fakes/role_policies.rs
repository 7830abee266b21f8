//! In-memory IAM roles and their inline policies: the fake of [`RolePolicies`], with the calls
//! made and a knob for a throttled call.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::ports::{InlinePolicy, RolePolicies};

#[derive(Debug, Default)]
struct Role {
    tags: BTreeMap<String, String>,
    policies: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    roles: BTreeMap<String, Role>,
    calls: Vec<String>,
    throttle_next: usize,
}

/// The IAM roles of an account.
#[derive(Debug, Default)]
pub struct MemoryRolePolicies {
    inner: Mutex<Inner>,
}

impl MemoryRolePolicies {
    /// No roles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates the role `name` with `tags` (replacing one of that name).
    pub fn create_role(&self, name: &str, tags: &[(&str, &str)]) {
        self.lock().roles.insert(
            name.to_string(),
            Role {
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                policies: BTreeMap::new(),
            },
        );
    }

    /// The next `n` calls fail as throttled (`Retryable`).
    pub fn throttle_next(&self, n: usize) {
        self.lock().throttle_next += n;
    }

    /// The calls made so far (`get role/name`, `put role/name`, …), in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self, call: String) -> Result<std::sync::MutexGuard<'_, Inner>> {
        let mut inner = self.lock();
        inner.calls.push(call.clone());
        if inner.throttle_next > 0 {
            inner.throttle_next -= 1;
            return Err(Error::Retryable(format!("{call}: Throttling (fake)")));
        }
        Ok(inner)
    }
}

impl RolePolicies for MemoryRolePolicies {
    async fn role_tags(&self, role: &str) -> Result<Option<BTreeMap<String, String>>> {
        let inner = self.enter(format!("tags {role}"))?;
        Ok(inner.roles.get(role).map(|r| r.tags.clone()))
    }

    async fn get(&self, role: &str, name: &str) -> Result<InlinePolicy> {
        let inner = self.enter(format!("get {role}/{name}"))?;
        Ok(match inner.roles.get(role) {
            None => InlinePolicy::NoRole,
            Some(r) => match r.policies.get(name) {
                None => InlinePolicy::Absent,
                Some(document) => InlinePolicy::Present {
                    document: document.clone(),
                },
            },
        })
    }

    async fn put(&self, role: &str, name: &str, document: &str) -> Result<()> {
        let mut inner = self.enter(format!("put {role}/{name}"))?;
        let Some(r) = inner.roles.get_mut(role) else {
            return Err(Error::NotFound(format!(
                "put inline policy {name} on role {role}: NoSuchEntity (fake)"
            )));
        };
        r.policies.insert(name.to_string(), document.to_string());
        Ok(())
    }

    async fn delete(&self, role: &str, name: &str) -> Result<()> {
        let mut inner = self.enter(format!("delete {role}/{name}"))?;
        if let Some(r) = inner.roles.get_mut(role) {
            r.policies.remove(name);
        }
        Ok(())
    }
}

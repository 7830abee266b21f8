//! A fake of [`Alarms`]: CloudWatch alarm states and tags in memory.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::Calls;
use crate::error::Result;
use crate::ports::{AlarmState, Alarms};

#[derive(Debug, Default)]
struct State {
    alarms: BTreeMap<String, AlarmState>,
    tags: BTreeMap<String, BTreeMap<String, String>>,
}

/// [`Alarms`] in memory.
#[derive(Debug, Default)]
pub struct FakeAlarms {
    state: Mutex<State>,
    /// The calls made (`state`, `tags`), and failures to answer with.
    pub calls: Calls,
}

impl FakeAlarms {
    /// No alarms.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the alarm `name` to `value` (`OK`, `ALARM`, `INSUFFICIENT_DATA`) since `since_ms`.
    pub fn set(&self, name: &str, value: &str, since_ms: u64, reason: &str) {
        self.state.lock().unwrap().alarms.insert(
            name.into(),
            AlarmState {
                value: value.into(),
                since_ms: Some(since_ms),
                reason: reason.into(),
            },
        );
    }

    /// Tags the alarm of ARN `arn`.
    pub fn tag(&self, arn: &str, tags: &[(&str, &str)]) {
        self.state
            .lock()
            .unwrap()
            .tags
            .entry(arn.into())
            .or_default()
            .extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    }
}

impl Alarms for FakeAlarms {
    async fn state(&self, name: &str) -> Result<Option<AlarmState>> {
        self.calls.record("state", name)?;
        Ok(self.state.lock().unwrap().alarms.get(name).cloned())
    }

    async fn tags(&self, arn: &str) -> Result<BTreeMap<String, String>> {
        self.calls.record("tags", arn)?;
        Ok(self
            .state
            .lock()
            .unwrap()
            .tags
            .get(arn)
            .cloned()
            .unwrap_or_default())
    }
}

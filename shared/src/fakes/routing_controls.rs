//! A fake of [`RoutingControls`]: an ARC cluster's routing controls in memory, with assertion
//! safety rules ("at least N of these controls On") evaluated on the state a change would
//! produce, as the cluster does: a change that breaks one is refused with a conflict and changes
//! nothing. The endpoints are not modelled (the adapter's rotation is the contract test's).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::calls::Calls;
use crate::error::{Error, Result};
use crate::ports::{Changed, ClusterEndpoint, RoutingControls};

#[derive(Debug, Default)]
struct State {
    controls: BTreeMap<String, bool>,
    rules: Vec<(String, Vec<String>, usize)>,
    requests: u64,
    latency: std::time::Duration,
}

/// [`RoutingControls`] in memory.
#[derive(Debug, Default)]
pub struct FakeRoutingControls {
    state: Mutex<State>,
    /// The calls made (`states`, `set`), and failures to answer with.
    pub calls: Calls,
}

/// The reads of [`FakeRoutingControls`].
pub const READS: &[&str] = &["states"];

fn on_off(on: bool) -> &'static str {
    if on {
        "On"
    } else {
        "Off"
    }
}

impl FakeRoutingControls {
    /// A cluster without routing controls.
    pub fn new() -> Self {
        Self::default()
    }

    /// A routing control, `On` or not.
    pub fn with_control(self, arn: &str, on: bool) -> Self {
        self.state.lock().unwrap().controls.insert(arn.into(), on);
        self
    }

    /// An assertion rule: at least `at_least` of `controls` stay `On` (ARC's `ATLEAST` rule).
    pub fn with_assertion_rule(self, name: &str, controls: &[&str], at_least: usize) -> Self {
        self.state.lock().unwrap().rules.push((
            name.into(),
            controls.iter().map(|c| c.to_string()).collect(),
            at_least,
        ));
        self
    }

    /// Every call answers only after `latency` (tokio time): a cluster whose first endpoints
    /// tried are down, so the adapter's rotation takes that long.
    pub fn answers_after(self, latency: std::time::Duration) -> Self {
        self.state.lock().unwrap().latency = latency;
        self
    }

    async fn wait(&self) {
        let latency = self.state.lock().unwrap().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    /// The control's state now, without counting a call.
    pub fn peek(&self, arn: &str) -> Option<bool> {
        self.state.lock().unwrap().controls.get(arn).copied()
    }
}

impl RoutingControls for FakeRoutingControls {
    async fn states(&self, _cluster: &[ClusterEndpoint], controls: &[String]) -> Result<Vec<bool>> {
        self.wait().await;
        self.calls.record("states", &controls.join(","))?;
        let state = self.state.lock().unwrap();
        controls
            .iter()
            .map(|arn| {
                state.controls.get(arn).copied().ok_or_else(|| {
                    Error::NotFound(format!(
                        "GetRoutingControlState {arn}: ResourceNotFoundException"
                    ))
                })
            })
            .collect()
    }

    async fn set(
        &self,
        _cluster: &[ClusterEndpoint],
        states: &[(String, bool)],
    ) -> Result<Changed> {
        let asked: Vec<String> = states
            .iter()
            .map(|(arn, on)| format!("{arn}={}", on_off(*on)))
            .collect();
        self.wait().await;
        self.calls.record("set", &asked.join(","))?;
        let state = &mut *self.state.lock().unwrap();
        let mut next = state.controls.clone();
        for (arn, on) in states {
            match next.get_mut(arn) {
                Some(current) => *current = *on,
                None => {
                    return Err(Error::NotFound(format!(
                        "UpdateRoutingControlStates {arn}: ResourceNotFoundException"
                    )))
                }
            }
        }
        for (name, controls, at_least) in &state.rules {
            let on = controls
                .iter()
                .filter(|c| next.get(*c) == Some(&true))
                .count();
            if on < *at_least {
                return Err(Error::Conflict(format!(
                    "UpdateRoutingControlStates {}: ConflictException (safety rule {name}: at \
                     least {at_least} of {} must be On)",
                    asked.join(", "),
                    controls.join(", ")
                )));
            }
        }
        state.controls = next;
        state.requests += 1;
        Ok(Changed {
            request_id: Some(format!("fake-arc-{}", state.requests)),
            started: None,
        })
    }
}

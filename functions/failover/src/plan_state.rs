//! The state kept per plan: the running execution and when the last began and ended (the
//! cool-down counts from it), and where it and the plan's signal board live in the state store.

use breakwater::state::key_segment;
use serde::{Deserialize, Serialize};

/// Per plan: the running execution and when the last began and ended.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanState {
    /// The execution running now.
    pub active: Option<String>,
    /// The last execution.
    pub last: Option<String>,
    /// When the last began (ms): the cool-down counts from it.
    pub last_started_ms: Option<u64>,
    /// When the last ended (ms).
    pub last_finished_ms: Option<u64>,
}

/// The state-store key of a plan's state.
pub fn plan_key(plan: &str) -> String {
    format!("failover/plans/{}.json", key_segment(plan))
}

pub fn board_key(plan: &str) -> String {
    format!("failover/signals/{}.json", key_segment(plan))
}

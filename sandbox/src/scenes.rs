//! The scenes the game day, the benches and the tests build on the seeded estate, one per function
//! under [`crate::functions`] (re-exported here, where the tests find them), and the events the
//! schedules deliver.

pub use crate::functions::budget::scene::{
    budget_alert_text, budget_scene, set_spend, sns_event, BudgetScene,
};
pub use crate::functions::spot::scene::{
    instance_network, spot_nodes, spot_scene, target_group, targets_listed, SpotScene,
};
pub use crate::functions::tiering::scene::s3_storage_metrics;

use std::path::Path;

use crate::seed::ACCOUNT;
use crate::SandboxError;

/// The EventBridge `Scheduled Event` a function's schedule rule delivers at `time_ms`.
pub fn schedule_event(id: &str, region: &str, time_ms: u64) -> serde_json::Value {
    serde_json::json!({"version": "0", "id": id, "detail-type": "Scheduled Event",
        "source": "aws.events", "account": ACCOUNT, "time": breakwater::clock::rfc3339(time_ms),
        "region": region, "resources": [], "detail": {}})
}

/// An event from a JSON file (`events/…`).
pub fn read_event(path: &Path) -> Result<serde_json::Value, SandboxError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SandboxError::Io(format!("read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| SandboxError::Io(format!("{} is not JSON: {e}", path.display())))
}

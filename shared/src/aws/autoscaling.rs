//! The Amazon EC2 Auto Scaling adapter: a termination lifecycle action completed once the node
//! is drained.

pub use aws_sdk_autoscaling;

use crate::error::{Error, Result};
use crate::ports::{LifecycleAction, LifecycleHooks};

/// [`LifecycleHooks`] over the Auto Scaling API of one region.
#[derive(Debug, Clone)]
pub struct AsgLifecycle {
    client: aws_sdk_autoscaling::Client,
}

impl AsgLifecycle {
    /// The adapter over `client`.
    pub fn new(client: aws_sdk_autoscaling::Client) -> Self {
        AsgLifecycle { client }
    }
}

impl LifecycleHooks for AsgLifecycle {
    /// `CompleteLifecycleAction` with `CONTINUE`, naming the action by its token and instance
    /// (Amazon EC2 Auto Scaling API Reference). An action that is no longer waiting is a
    /// `ValidationError` ("No active Lifecycle Action found …"): `false`, not an error — a
    /// repeated delivery, or a hook whose heartbeat timeout passed.
    async fn complete(&self, action: &LifecycleAction) -> Result<bool> {
        let sent = self
            .client
            .complete_lifecycle_action()
            .auto_scaling_group_name(&action.group)
            .lifecycle_hook_name(&action.hook)
            .lifecycle_action_token(&action.token)
            .instance_id(&action.instance_id)
            .lifecycle_action_result("CONTINUE")
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .and_then(|s| {
                        aws_smithy_types::error::metadata::ProvideErrorMetadata::message(s)
                    })
                    .is_some_and(|m| m.contains("No active Lifecycle Action")) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::from_sdk(
                &format!(
                    "complete lifecycle action {}/{} for {}",
                    action.group, action.hook, action.instance_id
                ),
                &e,
            )),
        }
    }
}

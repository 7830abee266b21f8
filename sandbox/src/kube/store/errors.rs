//! The API server's errors, answered as a `Status` object with the code and reason a client
//! acts on (<https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-deletion>).

use serde_json::{json, Value};

use super::ResourceKind;

/// An API error, answered as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// `NotFound`, `Conflict`, `TooManyRequests`, …
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// `details`, when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    pub(super) fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub(super) fn not_found(kind: &ResourceKind, name: &str) -> Self {
        let group = if kind.group.is_empty() {
            String::new()
        } else {
            format!(".{}", kind.group)
        };
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("{}{group} \"{name}\" not found", kind.plural),
        );
        e.details = Some(json!({"name": name, "group": kind.group, "kind": kind.plural}));
        e
    }

    pub(super) fn conflict(kind: &ResourceKind, name: &str, why: &str) -> Self {
        let group = if kind.group.is_empty() {
            String::new()
        } else {
            format!(".{}", kind.group)
        };
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}{group} \"{name}\": {why}",
                kind.plural
            ),
        )
    }

    /// A bad request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

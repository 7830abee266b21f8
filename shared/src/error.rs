//! The one error type of the shared crate, with the stable `errorType` a Lambda caller sees.
//!
//! How an AWS SDK error maps onto it lives with the adapters, in [`crate::aws::errors`].

use lambda_runtime::Diagnostic;

/// Everything that can go wrong in Breakwater's shared plumbing.
///
/// Each variant maps to one stable `errorType` (see [`Error::error_type`]) so that an operator,
/// an EventBridge on-failure destination or a test can tell the cases apart without parsing text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The event is malformed or of a kind this function does not handle; nothing was changed.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// A setting is missing or malformed; the message names the environment variable.
    #[error("configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    /// The resource does not exist (or not yet: S3 answers `NoSuchBucket` for a moment after creation).
    #[error("not found: {0}")]
    NotFound(String),
    /// The caller may not act on the resource (another account's bucket, a denied action).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A conditional write lost a race (precondition failed) or a lease is held by someone else.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A transient failure (throttling, 5xx, timeout, dropped connection) that a retry may fix.
    #[error("retryable: {0}")]
    Retryable(String),
    /// An AWS call failed in a way a retry will not fix.
    #[error("aws: {0}")]
    Aws(String),
    /// A bug or an impossible state inside Breakwater (a value that would not encode as JSON).
    #[error("internal: {0}")]
    Internal(String),
    /// A stored record could not be read back as the shape this version expects.
    #[error("corrupt record {key}: {reason}")]
    CorruptRecord {
        /// The state-store key of the record.
        key: String,
        /// What did not parse.
        reason: String,
    },
}

impl Error {
    /// The stable error type reported to Lambda as `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::Config(_) => "Config",
            Error::NotFound(_) => "NotFound",
            Error::Forbidden(_) => "Forbidden",
            Error::Conflict(_) => "Conflict",
            Error::Retryable(_) => "Retryable",
            Error::Aws(_) => "Aws",
            Error::Internal(_) => "Internal",
            Error::CorruptRecord { .. } => "CorruptRecord",
        }
    }

    /// Whether a later attempt of the same work may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Retryable(_) | Error::Conflict(_))
    }
}

impl From<Error> for Diagnostic {
    fn from(err: Error) -> Self {
        Diagnostic {
            error_type: err.error_type().to_string(),
            error_message: err.to_string(),
        }
    }
}

/// The result type of the shared crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_stable_error_type() {
        let cases = [
            (Error::InvalidEvent("x".into()), "InvalidEvent"),
            (Error::Conflict("x".into()), "Conflict"),
            (Error::NotFound("x".into()), "NotFound"),
            (Error::Forbidden("x".into()), "Forbidden"),
            (Error::Retryable("x".into()), "Retryable"),
            (Error::Aws("x".into()), "Aws"),
            (Error::Internal("x".into()), "Internal"),
            (
                Error::CorruptRecord {
                    key: "k".into(),
                    reason: "r".into(),
                },
                "CorruptRecord",
            ),
        ];
        for (err, expected) in cases {
            let message = err.to_string();
            let diagnostic = Diagnostic::from(err);
            assert_eq!(diagnostic.error_type, expected);
            assert_eq!(diagnostic.error_message, message);
        }
    }
}

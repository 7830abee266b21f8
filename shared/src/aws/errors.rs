//! How an AWS SDK error maps onto Breakwater's [`Error`]: throttling, 5xx and broken connections
//! are retryable, missing resources `NotFound`, denials `Forbidden`, the rest `Aws`.
//!
//! Error codes as the services document them, e.g. "Error responses" in the Amazon S3 API
//! Reference (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html) and "Common
//! errors" of the EC2/RDS/EKS APIs (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html).

use aws_smithy_runtime_api::client::result::SdkError;

use crate::error::Error;

/// The whole chain of an SDK error (the `Display` of an `SdkError` alone says only "dispatch failure").
pub fn describe_sdk_error(err: &(dyn std::error::Error + 'static)) -> String {
    aws_smithy_types::error::display::DisplayErrorContext(err).to_string()
}

/// The HTTP status of the response behind an SDK error, when there was one.
pub fn http_status<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// The service error codes that a later attempt may not meet.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "SlowDown",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "InternalServerException",
    "EndpointTemporarilyUnavailableException",
];

/// The service error codes of a resource that does not exist.
const NOT_FOUND_CODES: &[&str] = &[
    "NoSuchBucket",
    "NotFound",
    "ResourceNotFound",
    "ResourceNotFoundException",
    "NoSuchKey",
];

/// The service error codes of a denied action.
const FORBIDDEN_CODES: &[&str] = &["AccessDenied", "AccessDeniedException", "Forbidden"];

/// Whether a service error code is a transient one (throttling, an internal error).
pub fn is_retryable_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

impl Error {
    /// Like [`Error::from_sdk`], except that an error the caller recognised as "busy — an
    /// operation is already in progress" (`busy`, the service's `code`) becomes
    /// [`Error::Conflict`]: wait, observe, and try again.
    pub fn from_sdk_busy<E, R>(what: &str, err: &SdkError<E, R>, busy: bool, code: &str) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        if busy {
            Error::Conflict(format!("{what}: {code} (in progress; try again later)"))
        } else {
            Error::from_sdk(what, err)
        }
    }

    /// Classifies an SDK error: transient ones (throttling, 5xx, timeouts, I/O) become
    /// [`Error::Retryable`], the rest [`Error::Aws`]; `what` says which call on which input failed.
    pub fn from_sdk<E, R>(what: &str, err: &SdkError<E, R>) -> Self
    where
        E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let detail = match err {
            SdkError::ServiceError(service) => {
                let e = service.err();
                format!(
                    "{} ({})",
                    e.code().unwrap_or("unknown code"),
                    e.message().unwrap_or("no message")
                )
            }
            other => describe_sdk_error(other),
        };
        let transient = match err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(service) => service.err().code().is_some_and(is_retryable_code),
            _ => false,
        };
        let code = match err {
            SdkError::ServiceError(service) => service.err().code(),
            _ => None,
        };
        if code.is_some_and(|c| NOT_FOUND_CODES.contains(&c)) {
            Error::NotFound(format!("{what}: {detail}"))
        } else if code.is_some_and(|c| FORBIDDEN_CODES.contains(&c)) {
            Error::Forbidden(format!("{what}: {detail}"))
        } else if transient {
            Error::Retryable(format!("{what}: {detail}"))
        } else {
            Error::Aws(format!("{what}: {detail}"))
        }
    }
}

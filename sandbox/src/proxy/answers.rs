//! The answers the fault proxy gives in place of upstream's: each fault worded as the service's
//! own protocol words it (query XML, JSON, RPC v2 CBOR, REST-JSON, S3 XML, a Kubernetes `Status`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};

use super::{Call, Fault, KUBERNETES};

/// Signing names of the REST-JSON services Breakwater calls.
pub(super) const REST_JSON_SERVICES: &[&str] = &["eks", "lambda", "budgets"];

/// `{"__type": code, "message": message}` in CBOR (Smithy RPC v2), short strings only.
pub(super) fn cbor_error(code: &str, message: &str) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, s: &str) {
        let n = s.len();
        if n < 24 {
            out.push(0x60 | n as u8);
        } else {
            out.push(0x78);
            out.push(n.min(255) as u8);
        }
        out.extend_from_slice(&s.as_bytes()[..n.min(255)]);
    }
    let mut out = vec![0xa2];
    for (k, v) in [("__type", code), ("message", message)] {
        text(&mut out, k);
        text(&mut out, v);
    }
    out
}

pub(super) fn fault_response(
    fault: &Fault,
    call: &Call,
    headers: &hyper::HeaderMap,
) -> Response<Full<Bytes>> {
    // The error shape follows the service's protocol, never the payload's content type (an S3
    // object may well be application/json).
    let cbor = headers
        .get("smithy-protocol")
        .is_some_and(|v| v.as_bytes() == b"rpc-v2-cbor");
    let json = call.service != "s3"
        && (cbor
            || headers.contains_key("x-amz-target")
            || headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/x-amz-json"))
            || REST_JSON_SERVICES.contains(&call.service.as_str()));
    if call.service == KUBERNETES {
        return kube_fault_response(fault, call);
    }
    let (status, code, message) = match (fault, call.service.as_str()) {
        (Fault::AccessDenied, "s3") => (403, "AccessDenied", "Access Denied"),
        (Fault::AccessDenied, "ec2") => (
            403,
            "UnauthorizedOperation",
            "You are not authorized to perform this operation.",
        ),
        (Fault::AccessDenied, _) if json => (
            403,
            "AccessDeniedException",
            "User is not authorized to perform this action",
        ),
        (Fault::AccessDenied, _) => (
            403,
            "AccessDenied",
            "User is not authorized to perform this action",
        ),
        (Fault::Conflict, "s3") => (
            409,
            "ConditionalRequestConflict",
            "A conflicting conditional action is currently in progress against this resource. Try again.",
        ),
        (Fault::Conflict, "eks") => (
            409,
            "ResourceInUseException",
            "An update is already in progress",
        ),
        (Fault::Conflict, _) => (409, "ConflictException", "A conflicting operation is in progress"),
        (Fault::PreconditionFailed, _) => (
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        ),
        (Fault::Throttle, "s3") => (503, "SlowDown", "Please reduce your request rate."),
        (Fault::Throttle, "ec2") => (503, "RequestLimitExceeded", "Request limit exceeded."),
        (Fault::Throttle, _) if json => (400, "ThrottlingException", "Rate exceeded"),
        (Fault::Throttle, _) => (400, "Throttling", "Rate exceeded"),
        (Fault::TooManyRequests, _) => (429, "TooManyRequestsException", "Too many requests"),
        (_, "s3") => (
            500,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (_, _) => (
            500,
            "InternalFailure",
            "The request processing has failed because of an unknown error.",
        ),
    };
    let request_id = "fault-proxy-0000";
    let builder = Response::builder()
        .status(status)
        .header("x-amzn-requestid", request_id)
        .header("x-amz-request-id", request_id);
    let response = if cbor {
        builder
            .header("smithy-protocol", "rpc-v2-cbor")
            .header("content-type", "application/cbor")
            .body(Full::new(Bytes::from(cbor_error(code, message))))
    } else if json {
        builder
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-errortype", code)
            .body(Full::new(Bytes::from(format!(
                r#"{{"__type":"{code}","message":"{message}"}}"#
            ))))
    } else if call.service == "ec2" {
        // The EC2 query protocol's own error document.
        builder.header("content-type", "text/xml").body(Full::new(Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        ))))
    } else if call.service == "s3" {
        builder.header("content-type", "application/xml").body(Full::new(Bytes::from(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        ))))
    } else {
        builder.header("content-type", "text/xml").body(Full::new(Bytes::from(format!(
            "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        ))))
    };
    response.unwrap_or_default()
}

/// The Kubernetes API's answer to a fault: a `Status` object (kind `Status`, `status: Failure`,
/// a `reason`, the `code`), as the API server sends it; a 429 carries `Retry-After` and
/// `details.retryAfterSeconds` (StatusReasonTooManyRequests, Kubernetes API conventions).
pub(super) fn kube_fault_response(fault: &Fault, call: &Call) -> Response<Full<Bytes>> {
    let what = call.path.split('?').next().unwrap_or_default();
    let (code, reason, message) = match fault {
        Fault::Throttle | Fault::TooManyRequests => (
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later"
                .to_string(),
        ),
        Fault::AccessDenied => (
            403,
            "Forbidden",
            format!("{what} is forbidden: the caller may not {}", call.operation),
        ),
        Fault::Conflict | Fault::PreconditionFailed => (
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {what}: the object has been modified; please apply your changes to the latest version and try again"),
        ),
        _ => (
            500,
            "InternalError",
            "an error on the server (\"fault proxy\") has prevented the request from succeeding"
                .to_string(),
        ),
    };
    let mut status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code});
    let mut builder = Response::builder()
        .status(code)
        .header("content-type", "application/json");
    if code == 429 {
        status["details"] = serde_json::json!({"retryAfterSeconds": 1});
        builder = builder.header("retry-after", "1");
    }
    builder
        .body(Full::new(Bytes::from(status.to_string())))
        .unwrap_or_default()
}

pub(super) fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text.to_string())))
        .unwrap_or_default()
}

//! The Runtime API's side of the emulator: `/next` hands out the queued event, `/response` and
//! `/error` settle it, `/init/error` records an init failure
//! (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use super::{epoch_ms, FunctionError, SharedHandle, ACCOUNT, PREFIX};

pub(super) async fn handle(
    shared: Arc<SharedHandle>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let shared = &shared.0;
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#));
    };
    if method == Method::GET && rest == "/invocation/next" {
        let _ = shared.first_next.set(Instant::now());
        let next = shared.queue.lock().await.recv().await;
        let Some(pending) = next else {
            return Ok(reply(StatusCode::GONE, r#"{"errorType":"Shutdown"}"#));
        };
        shared
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pending.request_id.clone(), pending.reply);
        shared
            .handed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pending.request_id.clone(), Instant::now());
        let arn = format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            shared.region, shared.function_name
        );
        let trace = format!(
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
            epoch_ms() / 1000,
            epoch_ms(),
            epoch_ms()
        );
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &pending.request_id)
            .header(
                "lambda-runtime-deadline-ms",
                pending.deadline_ms.to_string(),
            )
            .header("lambda-runtime-invoked-function-arn", arn)
            .header("lambda-runtime-trace-id", trace)
            .body(Full::new(pending.body))
            .unwrap_or_default();
        return Ok(response);
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == Method::POST && rest == "/init/error" {
        *shared.init_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(parse_error(&body));
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == Method::POST {
        if let Some(id_and_kind) = rest.strip_prefix("/invocation/") {
            if let Some((id, kind)) = id_and_kind.split_once('/') {
                let outcome = match kind {
                    "response" => Ok(serde_json::from_slice(&body).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&body).into_owned())
                    })),
                    "error" => Err(parse_error(&body)),
                    _ => return Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#)),
                };
                let sender = shared
                    .in_flight
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(id);
                return Ok(match sender {
                    Some(sender) => {
                        let _ = sender.send(outcome);
                        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
                    }
                    None => reply(
                        StatusCode::BAD_REQUEST,
                        r#"{"errorType":"InvalidRequestID"}"#,
                    ),
                });
            }
        }
    }
    Ok(reply(StatusCode::NOT_FOUND, r#"{"errorType":"NotFound"}"#))
}

pub(super) fn parse_error(body: &[u8]) -> FunctionError {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    FunctionError {
        error_type: v["errorType"].as_str().unwrap_or("Unknown").to_string(),
        error_message: v["errorMessage"].as_str().unwrap_or_default().to_string(),
    }
}

pub(super) fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap_or_default()
}

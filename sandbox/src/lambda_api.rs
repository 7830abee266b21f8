//! A Lambda API emulator, `Invoke` only: what the `breakwater` command and the AWS CLI call to
//! start a function (`aws lambda invoke`, `breakwater drill`), answered by the real function
//! binary under the Runtime API emulator ([`FunctionProcess`]), one warm process per function.
//!
//! It follows the Invoke reference (<https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>):
//! - `POST /2015-03-31/functions/{FunctionName}/invocations`; the name, the ARN or the partial
//!   ARN (`123456789012:function:name`), an optional `:qualifier`;
//! - `X-Amz-Invocation-Type`: `RequestResponse` (the default: 200 and the function's answer, a
//!   function error as `X-Amz-Function-Error: Unhandled` with the error document), `Event`
//!   (202 at once; queued and run in order) or `DryRun` (204);
//! - "For synchronous invocations, the maximum payload size is 6 MB. For asynchronous
//!   invocations, the maximum payload size is 1 MB": 413 `RequestTooLargeException` beyond;
//! - a body that is not JSON: 400 `InvalidRequestContentException`; an unknown function, or one
//!   deployed in another region than the request is signed for: 404
//!   `ResourceNotFoundException` (functions are regional);
//! - an asynchronous invocation that fails is retried `MaximumRetryAttempts` times, then its
//!   invocation record goes to the on-failure destination (an SQS queue), shaped as "Capturing
//!   records of Lambda asynchronous invocations" shows it (`requestContext.condition`
//!   `RetriesExhausted`, `requestPayload`, `responseContext`, `responsePayload`), or, for a
//!   function with a dead-letter queue instead, the event alone.
//!
//! - a function runs at most its reserved concurrency of invocations at once (one process each,
//!   kept warm); a synchronous invocation beyond it is answered 429 `TooManyRequestsException`.
//!
//! Departures, named: Lambda waits about 1 and then 2 minutes before its retries
//! ("Error handling and automatic retries"); here the waits are [`Deployment::retry_waits`]
//! (seconds, so that a local run ends). The asynchronous invocations of one function run one
//! after another, in the order they arrived. A qualifier other than `$LATEST` names no version
//! here (404).

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::loopback::{credential_scope, percent_decode, query_value, Loopback};
use crate::runtime::{FunctionError, FunctionProcess, ACCOUNT};
use crate::SandboxError;

/// "For synchronous invocations, the maximum payload size is 6 MB."
pub const SYNC_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
/// "For asynchronous invocations, the maximum payload size is 1 MB."
pub const ASYNC_PAYLOAD_LIMIT: usize = 1024 * 1024;

/// Where a failed asynchronous invocation goes once its retries are spent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnFailure {
    /// Nowhere: it is dropped (logged).
    Drop,
    /// An on-failure destination: the invocation record.
    Destination(String),
    /// A dead-letter queue: the event alone.
    DeadLetter(String),
}

/// A function deployed in the emulator.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Its name (what `FunctionName` names).
    pub name: String,
    /// Its region.
    pub region: String,
    /// The binary (its file name is the function of the template: its role is enforced).
    pub binary: PathBuf,
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// `EventInvokeConfig.MaximumRetryAttempts`.
    pub max_retries: u32,
    /// The waits before each retry (Lambda: about 1 and 2 minutes).
    pub retry_waits: Vec<Duration>,
    /// The failure destination (an SQS queue URL).
    pub on_failure: OnFailure,
    /// The function's timeout.
    pub timeout: Duration,
    /// `ReservedConcurrentExecutions`: how many invocations run at once.
    pub concurrency: usize,
}

impl Deployment {
    /// Its ARN.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{}:{ACCOUNT}:function:{}",
            self.region, self.name
        )
    }
}

/// One invocation the emulator answered, for checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Invoked {
    /// The function.
    pub function: String,
    /// `RequestResponse`, `Event` or `DryRun`.
    pub invocation_type: String,
    /// The event.
    pub payload: Value,
    /// The answer, or the error the function reported (`None` until an event has run).
    pub outcome: Option<Result<Value, String>>,
}

/// A warm process, and how many lines of its output went to the log.
struct Running {
    process: FunctionProcess,
    printed: usize,
}

type Environment = tokio::sync::Mutex<Option<Running>>;

struct Slot {
    deployment: Deployment,
    /// One execution environment per concurrent invocation.
    environments: Vec<Environment>,
    /// The asynchronous invocations waiting, in arrival order (one worker runs them).
    events: tokio::sync::mpsc::UnboundedSender<(Bytes, Value, usize, String)>,
}

impl Slot {
    /// A free execution environment, if any.
    fn free(&self) -> Option<tokio::sync::MutexGuard<'_, Option<Running>>> {
        self.environments.iter().find_map(|e| e.try_lock().ok())
    }
}

struct Shared {
    slots: Vec<Arc<Slot>>,
    sqs: aws_sdk_sqs::Client,
    invoked: Mutex<Vec<Invoked>>,
    /// Where the functions' log lines go (`None`: kept in the processes only).
    log: Option<Arc<Mutex<std::fs::File>>>,
    /// One task per function running its asynchronous invocations.
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The emulator, serving on a loopback port until dropped.
pub struct LambdaApi {
    loopback: Loopback,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for LambdaApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaApi")
            .field("addr", &self.loopback.addr)
            .finish()
    }
}

impl LambdaApi {
    /// Serves `deployments`; failure records go through `sqs`; the functions' log lines are
    /// appended to `log` when given.
    pub async fn start(
        deployments: Vec<Deployment>,
        sqs: aws_sdk_sqs::Client,
        log: Option<PathBuf>,
    ) -> Result<Self, SandboxError> {
        let log = match log {
            Some(path) => Some(Arc::new(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| SandboxError::Io(format!("{}: {e}", path.display())))?,
            ))),
            None => None,
        };
        let mut queues = Vec::new();
        let slots = deployments
            .into_iter()
            .map(|deployment| {
                let (events, queue) = tokio::sync::mpsc::unbounded_channel();
                queues.push(queue);
                Arc::new(Slot {
                    environments: (0..deployment.concurrency.max(1))
                        .map(|_| tokio::sync::Mutex::new(None))
                        .collect(),
                    deployment,
                    events,
                })
            })
            .collect::<Vec<_>>();
        let shared = Arc::new(Shared {
            slots,
            sqs,
            invoked: Mutex::new(Vec::new()),
            log,
            workers: Mutex::new(Vec::new()),
        });
        for (slot, mut queue) in shared.slots.clone().into_iter().zip(queues) {
            let worker_shared = Arc::downgrade(&shared);
            let worker = tokio::spawn(async move {
                while let Some((body, payload, index, request_id)) = queue.recv().await {
                    let Some(shared) = worker_shared.upgrade() else {
                        return;
                    };
                    run_event(&shared, &slot, body, payload, index, &request_id).await;
                }
            });
            lock(&shared.workers).push(worker);
        }
        let serving = shared.clone();
        let loopback = Loopback::serve(move |req| handle(serving.clone(), req)).await?;
        Ok(LambdaApi { loopback, shared })
    }

    /// `http://127.0.0.1:PORT`: the value of `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn endpoint(&self) -> String {
        self.loopback.endpoint()
    }

    /// Every invocation so far, in the order they arrived.
    pub fn invoked(&self) -> Vec<Invoked> {
        lock(&self.shared.invoked).clone()
    }
}

impl Drop for LambdaApi {
    fn drop(&mut self) {
        self.loopback.task.abort();
        for worker in lock(&self.shared.workers).drain(..) {
            worker.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `FunctionName` read: the ARN's region (it wins over the signature's), the name, the
/// qualifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The full ARN's region.
    pub region: Option<String>,
    /// The function's name.
    pub name: String,
    /// `:qualifier`, when given.
    pub qualifier: Option<String>,
}

/// Reads a `FunctionName`: `name[:qualifier]`, `ACCOUNT:function:name[:qualifier]` or
/// `arn:aws:lambda:REGION:ACCOUNT:function:name[:qualifier]` (the reference's name formats).
pub fn function_name(raw: &str) -> Named {
    let decoded = percent_decode(raw);
    let parts: Vec<&str> = decoded.split(':').collect();
    let (region, rest) = match parts.as_slice() {
        ["arn", _, "lambda", region, _, "function", rest @ ..] => (Some(region.to_string()), rest),
        [_, "function", rest @ ..] => (None, rest),
        rest => (None, rest),
    };
    Named {
        region,
        name: rest.first().copied().unwrap_or_default().to_string(),
        qualifier: rest.get(1).map(|q| q.to_string()),
    }
}

/// The region a SigV4 request is signed for (`Credential=AKID/DATE/REGION/lambda/aws4_request`).
fn signed_region(req: &Request<Incoming>) -> Option<String> {
    let auth = req.headers().get("authorization")?.to_str().ok()?;
    credential_scope(auth).get(2).map(|r| r.to_string())
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-errortype", kind)
        .body(Full::new(Bytes::from(
            json!({"Type": "User", "message": message}).to_string(),
        )))
        .unwrap_or_default()
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let raw_name = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"));
    let (Some(raw_name), &Method::POST) = (raw_name, req.method()) else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "UnknownOperationException",
            &format!("{} {path}: this emulator answers Invoke only", req.method()),
        ));
    };
    let named = function_name(raw_name);
    let qualifier = named
        .qualifier
        .clone()
        .or_else(|| query_value(req.uri().query().unwrap_or_default(), "Qualifier"));
    let name = named.name;
    let region = named
        .region
        .or_else(|| signed_region(&req))
        .unwrap_or_default();
    let invocation_type = req
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_string();
    let Some(slot) = shared
        .slots
        .iter()
        .find(|s| s.deployment.name == name && s.deployment.region == region)
        .filter(|_| qualifier.as_deref().is_none_or(|q| q == "$LATEST"))
        .cloned()
    else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: arn:aws:lambda:{region}:{ACCOUNT}:function:{name}"),
        ));
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Ok(error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestContentException",
                &format!("the request body did not arrive: {e}"),
            ))
        }
    };
    let limit = if invocation_type == "Event" {
        ASYNC_PAYLOAD_LIMIT
    } else {
        SYNC_PAYLOAD_LIMIT
    };
    if body.len() > limit {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!(
                "Request must be smaller than {limit} bytes for the {invocation_type} invocation type"
            ),
        ));
    }
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return Ok(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                ))
            }
        }
    };
    let index = {
        let mut invoked = lock(&shared.invoked);
        invoked.push(Invoked {
            function: name.clone(),
            invocation_type: invocation_type.clone(),
            payload: payload.clone(),
            outcome: None,
        });
        invoked.len() - 1
    };
    match invocation_type.as_str() {
        "DryRun" => Ok(Response::builder()
            .status(StatusCode::NO_CONTENT)
            .body(Full::new(Bytes::new()))
            .unwrap_or_default()),
        "Event" => {
            // Queued before the answer goes out: run in arrival order by the function's worker.
            let id = request_id();
            let _ = slot.events.send((body, payload, index, id.clone()));
            Ok(Response::builder()
                .status(StatusCode::ACCEPTED)
                .header("x-amzn-requestid", id)
                .body(Full::new(Bytes::new()))
                .unwrap_or_default())
        }
        "RequestResponse" => {
            let Some(mut environment) = slot.free() else {
                let mut busy = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequestsException",
                    "Rate Exceeded.",
                );
                *busy.body_mut() = Full::new(Bytes::from(
                    json!({"Type": "User", "message": "Rate Exceeded.",
                        "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded"})
                    .to_string(),
                ));
                return Ok(busy);
            };
            let outcome = invoke(&shared, &slot, &mut environment, body).await;
            drop(environment);
            lock(&shared.invoked)[index].outcome = Some(outcome_of(&outcome));
            let (function_error, document) = match outcome {
                Ok(v) => (None, v),
                Err(e) => (
                    Some("Unhandled"),
                    json!({"errorType": e.error_type, "errorMessage": e.error_message}),
                ),
            };
            let mut response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("x-amzn-requestid", request_id())
                .header("x-amz-executed-version", "$LATEST");
            if let Some(kind) = function_error {
                response = response.header("x-amz-function-error", kind);
            }
            Ok(response
                .body(Full::new(Bytes::from(document.to_string())))
                .unwrap_or_default())
        }
        other => Ok(error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValueException",
            &format!("InvocationType {other:?}: one of RequestResponse, Event, DryRun"),
        )),
    }
}

fn outcome_of(outcome: &Result<Value, FunctionError>) -> Result<Value, String> {
    outcome
        .clone()
        .map_err(|e| format!("{}: {}", e.error_type, e.error_message))
}

/// A request id, unique in this process (a UUID's shape).
fn request_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ms = breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock);
    format!("{:08x}-{:04x}-4000-8000-{:012x}", ms >> 16, n & 0xffff, ms)
}

/// One attempt: starts the process if it is not running (a cold start), invokes, and writes
/// its new log lines. A process that crashed or timed out is dropped: the next attempt starts
/// a new one, as Lambda replaces an execution environment.
async fn invoke(
    shared: &Shared,
    slot: &Slot,
    environment: &mut Option<Running>,
    body: Bytes,
) -> Result<Value, FunctionError> {
    let d = &slot.deployment;
    if environment.is_none() {
        let started = FunctionProcess::start(&d.binary, &d.name, &d.region, &d.env).await;
        let started = match started {
            Ok(p) => p.with_timeout(d.timeout),
            Err(e) => return Err(failed("Runtime.InitError", &e)),
        };
        let mut running = Running {
            process: started,
            printed: 0,
        };
        if let Err(e) = running.process.wait_init().await {
            write_log(shared, slot, &mut running);
            return Err(failed("Runtime.InitError", &e));
        }
        *environment = Some(running);
    }
    let Some(running) = environment.as_mut() else {
        return Err(FunctionError {
            error_type: "Runtime.Unknown".into(),
            error_message: "no process".into(),
        });
    };
    let result = running.process.invoke_raw(body).await;
    write_log(shared, slot, running);
    match result {
        Ok(invocation) => invocation.outcome,
        Err(e) => {
            *environment = None;
            Err(failed("Runtime.ExitError", &e))
        }
    }
}

fn failed(kind: &str, e: &SandboxError) -> FunctionError {
    FunctionError {
        error_type: kind.into(),
        error_message: e.to_string(),
    }
}

fn write_log(shared: &Shared, slot: &Slot, running: &mut Running) {
    let lines = running.process.output();
    for line in lines.iter().skip(running.printed) {
        log_line(shared, &slot.deployment.name, line);
    }
    running.printed = lines.len();
}

fn log_line(shared: &Shared, function: &str, line: &str) {
    use std::io::Write as _;
    if let Some(log) = &shared.log {
        let _ = writeln!(lock(log), "{function} | {line}");
    }
}

/// An asynchronous invocation: the attempts, then the failure destination.
async fn run_event(
    shared: &Shared,
    slot: &Slot,
    body: Bytes,
    payload: Value,
    index: usize,
    request_id: &str,
) {
    let d = &slot.deployment;
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        // A free environment (a synchronous invocation may hold them all for a while); none is
        // held during the waits between attempts.
        let mut environment = loop {
            if let Some(free) = slot.free() {
                break free;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let outcome = invoke(shared, slot, &mut environment, body.clone()).await;
        drop(environment);
        if outcome.is_ok() || attempts > d.max_retries {
            break outcome;
        }
        let wait = d
            .retry_waits
            .get(attempts as usize - 1)
            .copied()
            .unwrap_or(Duration::from_secs(1));
        tokio::time::sleep(wait).await;
    };
    lock(&shared.invoked)[index].outcome = Some(outcome_of(&outcome));
    let Err(e) = outcome else { return };
    let (queue, message) = match &d.on_failure {
        OnFailure::Drop => {
            log_line(
                shared,
                &d.name,
                &format!(
                    "the event was dropped after {attempts} attempts: {}",
                    e.error_message
                ),
            );
            return;
        }
        OnFailure::DeadLetter(queue) => (queue, payload.to_string()),
        OnFailure::Destination(queue) => (
            queue,
            invocation_record(d, request_id, &payload, &e, attempts).to_string(),
        ),
    };
    let sent = shared
        .sqs
        .send_message()
        .queue_url(queue)
        .message_body(message)
        .send()
        .await;
    if let Err(err) = sent {
        log_line(
            shared,
            &d.name,
            &format!("the failure record did not reach {queue}: {err:?}"),
        );
    }
}

/// The record Lambda sends to an on-failure destination once the retries are spent.
pub fn invocation_record(
    d: &Deployment,
    request_id: &str,
    payload: &Value,
    error: &FunctionError,
    attempts: u32,
) -> Value {
    json!({
        "version": "1.0",
        "timestamp": breakwater::clock::rfc3339(breakwater::clock::Clock::now_ms(&breakwater::clock::SystemClock)),
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("{}:$LATEST", d.arn()),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts
        },
        "requestPayload": payload,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "responsePayload": {"errorType": error.error_type, "errorMessage": error.error_message}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_named_by_name_partial_arn_or_arn() {
        let named = |region: Option<&str>, name: &str, qualifier: Option<&str>| Named {
            region: region.map(str::to_string),
            name: name.into(),
            qualifier: qualifier.map(str::to_string),
        };
        assert_eq!(function_name("f"), named(None, "f", None));
        assert_eq!(
            function_name("f:$LATEST"),
            named(None, "f", Some("$LATEST"))
        );
        assert_eq!(
            function_name("myfunction:prod"),
            named(None, "myfunction", Some("prod"))
        );
        assert_eq!(
            function_name("123456789012:function:f"),
            named(None, "f", None)
        );
        assert_eq!(
            function_name("arn%3Aaws%3Alambda%3Aus-west-2%3A123456789012%3Afunction%3Af%3Aprod"),
            named(Some("us-west-2"), "f", Some("prod"))
        );
    }
}

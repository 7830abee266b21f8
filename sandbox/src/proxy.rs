//! A fault-injecting HTTP proxy between a client and its server — the SDK and moto, or kube-rs
//! and the Kubernetes API emulator: by rule (service, operation, region, probability, count) it
//! answers with throttling, 5xx, 403, 409/412 conflicts, added latency, a dropped connection, or a
//! change that took effect upstream whose answer is lost, in the error shape of the service's
//! protocol, and it logs every call it saw.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use crate::loopback::Loopback;
use crate::SandboxError;

mod answers;
mod calls;

use answers::{fault_response, plain};
use calls::classify;
pub use calls::{Call, KUBERNETES};

/// What a rule does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The service's throttling error (S3: 503 `SlowDown`; EC2: 503 `RequestLimitExceeded`;
    /// others: 400 `Throttling`/`ThrottlingException`).
    Throttle,
    /// HTTP 429 `TooManyRequestsException`.
    TooManyRequests,
    /// HTTP 500 `InternalError`.
    ServerError,
    /// Forward the request after a delay.
    Latency(Duration),
    /// Close the connection without answering.
    Drop,
    /// Forward the request (it takes effect upstream) and never answer: the caller is stuck as
    /// a process killed right after the call would be. Tests drop the caller at this point.
    Hang,
    /// Forward the request (it takes effect upstream), then close the connection instead of
    /// answering: the change was made but the caller cannot know, and its SDK retries the same
    /// request — the classic exactly-once test.
    ResetAfterCommit,
    /// HTTP 403 as a caller without the permission gets it: S3 `AccessDenied`, EC2
    /// `UnauthorizedOperation`, JSON protocols `AccessDeniedException`, Kubernetes `Forbidden`.
    AccessDenied,
    /// HTTP 409: S3 `ConditionalRequestConflict` (a conditional write raced another, "retry on
    /// 409"), EKS `ResourceInUseException`, Kubernetes `Conflict` (the object was modified).
    Conflict,
    /// HTTP 412 `PreconditionFailed` (S3: the `If-None-Match` / `If-Match` condition did not hold).
    PreconditionFailed,
}

impl Fault {
    /// Whether the request still reaches upstream (and may take effect there).
    fn forwards(name: &str) -> bool {
        ["Latency", "Hang", "ResetAfterCommit"]
            .iter()
            .any(|f| name.starts_with(f))
    }

    /// Whether the service could answer `call` so: S3 refuses only a conditional write with 412
    /// or 409 (`If-None-Match` / `If-Match`); the Kubernetes API answers 409 to an update (PUT)
    /// of a stale resourceVersion (a merge patch is retried inside the server, and an
    /// eviction's conflicts come back as 429); EKS answers 409 to a change while another runs.
    fn can_answer(&self, call: &Call, conditional: bool) -> bool {
        match self {
            Fault::PreconditionFailed => call.service == "s3" && conditional && call.mutates(),
            Fault::Conflict if call.service == "s3" => conditional && call.mutates(),
            Fault::Conflict if call.service == KUBERNETES => call.operation.starts_with("Update"),
            // Elsewhere only a service with a 409 for a change in progress (EKS
            // `ResourceInUseException`); SNS, SQS and the others answer no 409 to a change.
            Fault::Conflict => call.service == "eks" && call.mutates(),
            _ => true,
        }
    }
}

/// When a fault applies. Unset fields match anything.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The signing name (`s3`, `sns`, `eks`, …).
    pub service: Option<String>,
    /// The operation (`PutObject`, `Publish`, …).
    pub operation: Option<String>,
    /// The region from the request's signature.
    pub region: Option<String>,
    /// A whole region lost ([`Rule::region_outage`]): its own requests, and when it is
    /// `us-east-1` the global services whose control planes live there, however signed.
    pub outage: Option<String>,
    /// The chance (0..=1) that a matching request is hit.
    pub probability: f64,
    /// At most this many hits, then the rule is spent.
    pub count: Option<u32>,
    /// Matching requests to let through untouched before the rule applies.
    pub skip: u32,
    /// What to do.
    pub fault: Fault,
}

impl Rule {
    /// A rule hitting every request with `fault`.
    pub fn always(fault: Fault) -> Self {
        Rule {
            service: None,
            operation: None,
            region: None,
            outage: None,
            probability: 1.0,
            count: None,
            skip: 0,
            fault,
        }
    }

    /// Restricts the rule to one service.
    pub fn service(mut self, service: &str) -> Self {
        self.service = Some(service.to_string());
        self
    }

    /// Restricts the rule to one operation.
    pub fn operation(mut self, operation: &str) -> Self {
        self.operation = Some(operation.to_string());
        self
    }

    /// Restricts the rule to one region.
    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }

    /// The loss of a whole region, from the moment the rule is added: every request signed for
    /// `region` is dropped (the connection closes unanswered, as an unreachable endpoint looks to
    /// the SDK), and when `region` is `us-east-1`, so is every request to a global service whose
    /// control plane is homed there — Route 53's API, IAM, STS's global endpoint, AWS Budgets —
    /// whatever region the sandbox's client signed it for ("AWS Fault Isolation Boundaries",
    /// global services: "the control plane … is hosted in the us-east-1 Region"). The data
    /// planes of other regions keep answering.
    pub fn region_outage(region: &str) -> Self {
        Rule {
            outage: Some(region.to_string()),
            ..Rule::always(Fault::Drop)
        }
    }

    /// Hits only with this probability.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p.clamp(0.0, 1.0);
        self
    }

    /// Hits at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.count = Some(n);
        self
    }

    /// Lets the first `n` matching requests through untouched.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    fn matches(&self, call: &Call) -> bool {
        self.service.as_ref().is_none_or(|s| *s == call.service)
            && self.operation.as_ref().is_none_or(|o| *o == call.operation)
            && self.region.as_ref().is_none_or(|r| *r == call.region)
            && self.outage.as_ref().is_none_or(|r| {
                *r == call.region
                    || (r == GLOBAL_HOME && GLOBAL_SERVICES.contains(&call.service.as_str()))
            })
    }
}

/// Where the control planes of AWS's global services live.
const GLOBAL_HOME: &str = "us-east-1";
/// Global services (by signing name) whose control plane is in [`GLOBAL_HOME`]: Route 53's API,
/// IAM, AWS Budgets, and STS (its global endpoint; the sandbox cannot tell it from a regional one,
/// so a lost us-east-1 takes every STS call with it — the stricter reading).
const GLOBAL_SERVICES: [&str; 4] = ["route53", "iam", "budgets", "sts"];

#[derive(Debug)]
struct State {
    upstream: String,
    started: std::time::Instant,
    rules: Mutex<Vec<(Rule, u32, u32)>>,
    calls: Mutex<Vec<Call>>,
    rng: Mutex<u64>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A running fault proxy.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port forwarding to `upstream` (`http://127.0.0.1:PORT`).
    /// `seed` makes the probabilistic rules repeatable.
    pub async fn start(upstream: &str, seed: u64) -> Result<Self, SandboxError> {
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            started: std::time::Instant::now(),
            rules: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            rng: Mutex::new(seed | 1),
            client: Client::builder(TokioExecutor::new()).build_http(),
        });
        let serving = state.clone();
        let server = Loopback::serve(move |req| forward(serving.clone(), req)).await?;
        let (addr, task) = (server.addr, server.task);
        Ok(FaultProxy { addr, state, task })
    }

    /// The endpoint URL to give the SDK instead of moto's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a rule (rules are tried in order; the first that matches and fires wins).
    pub fn add_rule(&self, rule: Rule) {
        self.state
            .rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((rule, 0, 0));
    }

    /// Removes every rule.
    pub fn clear_rules(&self) {
        self.state
            .rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Every call seen so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The wall time (µs) during which at least one forwarded request — of the calls from the
    /// `first`-th on — was waiting on upstream: the union of their upstream intervals (parallel
    /// calls count once).
    pub fn upstream_busy_us(&self, first: usize) -> u64 {
        let mut spans: Vec<(u64, u64)> = self
            .calls()
            .iter()
            .skip(first)
            .filter_map(|c| c.upstream_us.map(|(sent, took)| (sent, sent + took)))
            .collect();
        spans.sort_unstable();
        let (mut total, mut end) = (0, 0);
        for (a, b) in spans {
            if b > end {
                total += b - a.max(end);
                end = b;
            }
        }
        total
    }

    /// How many calls so far changed something upstream (the step boundaries of a game day).
    pub fn mutations_done(&self) -> usize {
        self.state
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|c| c.mutates() && c.succeeded())
            .count()
    }

    /// The share of calls the rules that apply to every call hit (the mix of a game day):
    /// the sum of their probabilities, at most 1.
    pub fn fault_share(&self) -> f64 {
        let rules = self.state.rules.lock().unwrap_or_else(|p| p.into_inner());
        rules
            .iter()
            .filter(|(r, _, _)| {
                r.service.is_none()
                    && r.operation.is_none()
                    && r.region.is_none()
                    && r.count.is_none()
            })
            .map(|(r, _, _)| r.probability)
            .sum::<f64>()
            .min(1.0)
    }

    /// How many faults were injected so far.
    pub fn faults_injected(&self) -> usize {
        self.calls().iter().filter(|c| c.fault.is_some()).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Errors the proxy answers with instead of forwarding, or `Drop` as a service error.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for Dropped {}

async fn forward(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut call = classify(&parts, &body);
    call.arrived_us = state.started.elapsed().as_micros() as u64;
    let conditional =
        parts.headers.contains_key("if-match") || parts.headers.contains_key("if-none-match");
    let fault = choose_fault(&state, &call, conditional);
    call.fault = fault.as_ref().map(|f| format!("{f:?}"));
    let record = |call: Call| {
        state
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(call)
    };
    match fault {
        Some(Fault::Drop) => {
            record(call);
            return Err(Dropped);
        }
        Some(Fault::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Hang | Fault::ResetAfterCommit) => {}
        Some(fault) => {
            let response = fault_response(&fault, &call, &parts.headers);
            call.status = Some(response.status().as_u16());
            record(call);
            return Ok(response);
        }
        None => {}
    }
    let uri = format!(
        "{}{}",
        state.upstream,
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );
    let mut upstream = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        upstream = upstream.header(name, value);
    }
    let Ok(upstream) = upstream.body(Full::new(body)) else {
        call.status = Some(502);
        record(call);
        return Ok(plain(StatusCode::BAD_GATEWAY, "bad request to forward"));
    };
    // The exchange with upstream runs on its own task: a caller that goes away mid-call (a
    // killed function) does not cancel a request that has reached upstream, and the call is
    // logged with upstream's answer all the same — as AWS would have processed it.
    let exchange = {
        let state = state.clone();
        tokio::spawn(async move {
            let sent = std::time::Instant::now();
            let sent_us = state.started.elapsed().as_micros() as u64;
            let response = match state.client.request(upstream).await {
                Ok(response) => response,
                Err(err) => {
                    state
                        .calls
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(call);
                    return Err(format!("upstream: {err}"));
                }
            };
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            call.status = Some(parts.status.as_u16());
            call.upstream_us = Some((sent_us, sent.elapsed().as_micros() as u64));
            let fault = call.fault.clone();
            state
                .calls
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(call);
            Ok((parts, body, fault))
        })
    };
    match exchange.await {
        Ok(Ok((parts, body, fault))) => match fault.as_deref() {
            Some("Hang") => std::future::pending().await,
            Some("ResetAfterCommit") => Err(Dropped),
            _ => Ok(Response::from_parts(parts, Full::new(body))),
        },
        // Upstream could not be reached or cut the connection: the client sees what it would
        // see without the proxy, a broken connection (never a 502 no AWS service sends).
        Ok(Err(_upstream)) => Err(Dropped),
        Err(join) => Ok(plain(
            StatusCode::BAD_GATEWAY,
            &format!("proxy task: {join}"),
        )),
    }
}

fn choose_fault(state: &State, call: &Call, conditional: bool) -> Option<Fault> {
    let mut rules = state.rules.lock().unwrap_or_else(|p| p.into_inner());
    for (rule, hits, seen) in rules.iter_mut() {
        if rule.count.is_some_and(|max| *hits >= max)
            || !rule.matches(call)
            || !rule.fault.can_answer(call, conditional)
        {
            continue;
        }
        *seen += 1;
        if *seen <= rule.skip {
            continue;
        }
        if next_unit(&state.rng) < rule.probability {
            *hits += 1;
            return Some(rule.fault.clone());
        }
    }
    None
}

/// xorshift64*: repeatable for a seed, good enough to spread faults.
fn next_unit(rng: &Mutex<u64>) -> f64 {
    let mut x = rng.lock().unwrap_or_else(|p| p.into_inner());
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
    (v >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::answers::*;
    use super::calls::*;
    use super::*;

    #[test]
    fn rpc_v2_errors_are_cbor() {
        assert_eq!(
            cbor_error("Throttling", "x"),
            [
                &[0xa2, 0x66][..],
                b"__type",
                &[0x6a],
                b"Throttling",
                &[0x67],
                b"message",
                &[0x61],
                b"x"
            ]
            .concat()
        );
    }

    #[test]
    fn names_rpc_v2_operations_and_hashes_bodies() {
        let (parts, _) = Request::builder()
            .method("POST")
            .uri("/service/GraniteServiceVersion20100801/operation/ListTagsForResource")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20261123/us-east-1/monitoring/aws4_request, SignedHeaders=host",
            )
            .body(())
            .unwrap()
            .into_parts();
        let call = classify(&parts, &Bytes::from_static(b"a"));
        assert_eq!(
            (call.service.as_str(), call.operation.as_str()),
            ("monitoring", "ListTagsForResource")
        );
        assert!(!call.mutates());
        assert_eq!(
            call.body_hash,
            classify(&parts, &Bytes::from_static(b"a")).body_hash
        );
        assert_ne!(
            call.body_hash,
            classify(&parts, &Bytes::from_static(b"b")).body_hash
        );
    }

    #[test]
    fn names_s3_operations_from_the_rest_shape() {
        assert_eq!(
            s3_operation("PUT", "/bucket/key/a.json", "", false),
            "PutObject"
        );
        assert_eq!(s3_operation("PUT", "/bucket/key", "", true), "CopyObject");
        assert_eq!(s3_operation("PUT", "/bucket", "", false), "CreateBucket");
        assert_eq!(
            s3_operation("PUT", "/bucket", "lifecycle", false),
            "PutBucketLifecycleConfiguration"
        );
        assert_eq!(
            s3_operation("GET", "/bucket", "tagging", false),
            "GetBucketTagging"
        );
        assert_eq!(
            s3_operation("DELETE", "/bucket", "lifecycle", false),
            "DeleteBucketLifecycle"
        );
        assert_eq!(s3_operation("GET", "/", "", false), "ListBuckets");
        assert_eq!(
            s3_operation("GET", "/bucket", "list-type=2&prefix=a", false),
            "ListObjects"
        );
    }

    #[test]
    fn names_kubernetes_operations_from_the_path() {
        let op = |method: &str, path: &str, query: &str| kube_operation(method, path, query);
        assert_eq!(
            op("PATCH", "/api/v1/nodes/ip-10-0-0-1.ec2.internal", "").as_deref(),
            Some("Patch nodes")
        );
        assert_eq!(
            op("POST", "/api/v1/namespaces/shop/pods/web-1/eviction", "").as_deref(),
            Some("Create pods/eviction")
        );
        assert_eq!(
            op("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn").as_deref(),
            Some("List pods")
        );
        assert_eq!(
            op("PUT", "/apis/apps/v1/namespaces/shop/deployments/web", "").as_deref(),
            Some("Update deployments")
        );
        assert_eq!(
            op("GET", "/api/v1/namespaces/shop", "").as_deref(),
            Some("Get namespaces")
        );
        assert_eq!(op("GET", "/apis", "").as_deref(), Some("Get discovery"));
        assert_eq!(op("POST", "/", ""), None);
        let call = |operation: &str| Call {
            operation: operation.into(),
            ..Call {
                service: KUBERNETES.into(),
                operation: String::new(),
                region: String::new(),
                method: String::new(),
                path: String::new(),
                status: Some(200),
                fault: None,
                arrived_us: 0,
                upstream_us: None,
                body_hash: 0,
            }
        };
        assert!(call("Patch nodes").mutates());
        assert!(call("Create pods/eviction").mutates());
        assert!(!call("List pods").mutates());
        assert!(!call("Watch pods").mutates());
        // 409 only where the API server answers it: an update, not a patch or an eviction.
        assert!(Fault::Conflict.can_answer(&call("Update deployments"), false));
        assert!(!Fault::Conflict.can_answer(&call("Patch nodes"), false));
        assert!(!Fault::Conflict.can_answer(&call("Create pods/eviction"), false));
        // Among AWS services: EKS's change in progress, never an SNS publish.
        let aws = |service: &str, operation: &str| Call {
            service: service.into(),
            ..call(operation)
        };
        assert!(Fault::Conflict.can_answer(&aws("eks", "UpdateNodegroupConfig"), false));
        assert!(!Fault::Conflict.can_answer(&aws("sns", "Publish"), false));
    }

    #[test]
    fn a_change_whose_answer_was_lost_counts_as_made() {
        let made = Call {
            service: "s3".into(),
            operation: "PutObject".into(),
            region: "us-east-1".into(),
            method: "PUT".into(),
            path: "/b/k".into(),
            status: Some(200),
            fault: Some("ResetAfterCommit".into()),
            arrived_us: 0,
            upstream_us: None,
            body_hash: 0,
        };
        assert!(made.succeeded());
        let refused = Call {
            fault: Some("PreconditionFailed".into()),
            status: Some(412),
            ..made.clone()
        };
        assert!(!refused.succeeded());
    }

    #[test]
    fn probabilities_are_repeatable_for_a_seed_and_near_their_rate() {
        let a = Mutex::new(42u64 | 1);
        let b = Mutex::new(42u64 | 1);
        let xs: Vec<f64> = (0..1000).map(|_| next_unit(&a)).collect();
        let ys: Vec<f64> = (0..1000).map(|_| next_unit(&b)).collect();
        assert_eq!(xs, ys);
        let hits = xs.iter().filter(|x| **x < 0.2).count();
        assert!((150..250).contains(&hits), "{hits}");
    }
}

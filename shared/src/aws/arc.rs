//! The Route 53 ARC routing-control adapter: the cluster's data plane, reached through its five
//! regional endpoints, none of which is Route 53's control plane in us-east-1.
//!
//! What the docs ask of a caller, and what this adapter does:
//! - "You must specify one of these Regional endpoints (the AWS Region and the endpoint URL) when
//!   you make calls to the cluster … you must also specify the --region of the Regional
//!   endpoint" — each endpoint gets its own client, signed for its own region.
//! - "We recommend that your systems rotate through the regional endpoints, and be prepared to
//!   retry with each of the available endpoints"; "ARC ensures that at least three out of the
//!   five Regional cluster endpoints are always accessible"
//!   (<https://docs.aws.amazon.com/r53recovery/latest/dg/routing-control.update.api.html>,
//!   <https://docs.aws.amazon.com/r53recovery/latest/dg/getting-started-cli-routing.control-state.html>)
//!   — each call starts at a random endpoint and moves on to the next when one does not answer
//!   (a connection that fails or times out, a 5xx, `EndpointTemporarilyUnavailableException`,
//!   `ThrottlingException`), with one attempt per endpoint, so a dead endpoint costs one short
//!   timeout, not the SDK's three retries. An answer that another endpoint would give alike
//!   (`ConflictException` from a safety rule, `ValidationException`, `ResourceNotFoundException`,
//!   `AccessDeniedException`) ends the call.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_route53recoverycluster::operation::RequestId;
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;

use crate::error::{Error, Result};
use crate::ports::{Changed, ClusterEndpoint, RoutingControls};

/// How long one endpoint is given to connect, and to answer, before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// [`RoutingControls`] over the ARC cluster API (`aws-sdk-route53recoverycluster`).
#[derive(Debug)]
pub struct ArcRoutingControls {
    base: SdkConfig,
    clients: Mutex<HashMap<ClusterEndpoint, aws_sdk_route53recoverycluster::Client>>,
}

impl ArcRoutingControls {
    /// The adapter, building one client per endpoint from `base` (credentials, HTTP client) on
    /// first use.
    pub fn new(base: &SdkConfig) -> Self {
        ArcRoutingControls {
            base: base.clone(),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, endpoint: &ClusterEndpoint) -> aws_sdk_route53recoverycluster::Client {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .entry(endpoint.clone())
            .or_insert_with(|| {
                let config = aws_sdk_route53recoverycluster::config::Builder::from(&self.base)
                    .region(Region::new(endpoint.region.clone()))
                    .endpoint_url(endpoint.endpoint.clone())
                    .retry_config(RetryConfig::standard().with_max_attempts(1))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(CONNECT_TIMEOUT)
                            .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                            .build(),
                    )
                    .build();
                aws_sdk_route53recoverycluster::Client::from_conf(config)
            })
            .clone()
    }

    /// Runs `call` against the endpoints in turn, from a random one, until one answers; the
    /// error of the last endpoint when none does, naming each endpoint's failure.
    async fn on_cluster<T, F, Fut>(
        &self,
        cluster: &[ClusterEndpoint],
        what: &str,
        call: F,
    ) -> Result<T>
    where
        F: Fn(aws_sdk_route53recoverycluster::Client) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, Attempt>>,
    {
        if cluster.is_empty() {
            return Err(Error::InvalidEvent(format!(
                "{what}: the plan names no cluster endpoint"
            )));
        }
        let start = random_index(cluster.len());
        let mut failures = Vec::new();
        for i in 0..cluster.len() {
            let endpoint = &cluster[(start + i) % cluster.len()];
            match call(self.client(endpoint)).await {
                Ok(value) => {
                    if !failures.is_empty() {
                        tracing::warn!(
                            what,
                            answered = %endpoint.region,
                            unavailable = %failures.join("; "),
                            "ARC cluster endpoint(s) unavailable; another answered"
                        );
                    }
                    return Ok(value);
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::NextEndpoint(reason)) => failures.push(format!(
                    "{} ({}): {reason}",
                    endpoint.region, endpoint.endpoint
                )),
            }
        }
        Err(Error::Retryable(format!(
            "{what}: no endpoint of the ARC cluster answered: {}",
            failures.join("; ")
        )))
    }
}

/// How one endpoint's attempt ended, when it did not succeed.
#[derive(Debug)]
enum Attempt {
    /// The endpoint did not answer, or answered that it cannot now: try the next.
    NextEndpoint(String),
    /// An answer every endpoint would give.
    Final(Error),
}

/// Codes of an endpoint that cannot answer now (Routing Control API Reference, "Errors" of
/// `UpdateRoutingControlStates`: `EndpointTemporarilyUnavailableException` — "The cluster
/// endpoint isn't available. Try another cluster endpoint.").
const NEXT_ENDPOINT_CODES: &[&str] = &[
    "EndpointTemporarilyUnavailableException",
    "ThrottlingException",
    "InternalServerException",
];

fn attempt<E>(what: &str, err: SdkError<E, HttpResponse>) -> Attempt
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Attempt::NextEndpoint(super::describe_sdk_error(&err))
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let status = service.raw().status().as_u16();
            if NEXT_ENDPOINT_CODES.contains(&code) || status >= 500 {
                Attempt::NextEndpoint(format!(
                    "{code} ({})",
                    service.err().message().unwrap_or("no message")
                ))
            } else if code == "ConflictException" {
                // A safety rule forbids the state the change would produce (or another change
                // raced it): the same on every endpoint.
                Attempt::Final(Error::Conflict(format!(
                    "{what}: {code} ({})",
                    service.err().message().unwrap_or("no message")
                )))
            } else {
                Attempt::Final(Error::from_sdk(what, &err))
            }
        }
        _ => Attempt::Final(Error::from_sdk(what, &err)),
    }
}

/// A start in `0..n` that differs from call to call (spreading callers over the endpoints), from
/// the standard library's per-process random hash keys.
fn random_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    (hasher.finish() % n.max(1) as u64) as usize
}

fn state(on: bool) -> RoutingControlState {
    if on {
        RoutingControlState::On
    } else {
        RoutingControlState::Off
    }
}

impl RoutingControls for ArcRoutingControls {
    async fn states(&self, cluster: &[ClusterEndpoint], controls: &[String]) -> Result<Vec<bool>> {
        let mut states = Vec::with_capacity(controls.len());
        for arn in controls {
            let what = format!("GetRoutingControlState {arn}");
            let on = self
                .on_cluster(cluster, &what, |client| {
                    let what = what.clone();
                    async move {
                        client
                            .get_routing_control_state()
                            .routing_control_arn(arn)
                            .send()
                            .await
                            .map(|out| *out.routing_control_state() == RoutingControlState::On)
                            .map_err(|e| attempt(&what, e))
                    }
                })
                .await?;
            states.push(on);
        }
        Ok(states)
    }

    async fn set(&self, cluster: &[ClusterEndpoint], states: &[(String, bool)]) -> Result<Changed> {
        let entries = states
            .iter()
            .map(|(arn, on)| {
                UpdateRoutingControlStateEntry::builder()
                    .routing_control_arn(arn)
                    .routing_control_state(state(*on))
                    .build()
                    .map_err(|e| Error::Internal(format!("routing control entry {arn}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let what = format!(
            "UpdateRoutingControlStates {}",
            states
                .iter()
                .map(|(arn, on)| format!("{arn}={}", if *on { "On" } else { "Off" }))
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.on_cluster(cluster, &what, |client| {
            let (what, entries) = (what.clone(), entries.clone());
            async move {
                client
                    .update_routing_control_states()
                    .set_update_routing_control_state_entries(Some(entries))
                    .send()
                    .await
                    .map(|out| Changed {
                        request_id: out.request_id().map(str::to_string),
                        started: None,
                    })
                    .map_err(|e| attempt(&what, e))
            }
        })
        .await
    }
}

//! What the functions do to a cluster, with the wire format checked against the API server's
//! (through the sandbox emulator and the real `kubectl`): cordon with a taint and the
//! load-balancer exclusion label, and the `pods/eviction` subresource.
//!
//! kube-rs 5's `Api::evict` serialises `EvictParams` with a `delete_options` field, which the API
//! server ignores: the grace period and the UID precondition would be silently lost. [`evict`]
//! posts a `policy/v1` `Eviction` whose `deleteOptions` the server reads.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The taint put on a node being drained.
pub const DRAIN_TAINT: &str = "breakwater.io/draining";
/// The label that takes a node out of load balancers (`kube-controller-manager`'s service controller).
pub const EXCLUDE_FROM_LB: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// What an eviction request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// 201: the pod is terminating.
    Evicted,
    /// 404: the pod is already gone.
    Gone,
    /// 409: the UID precondition failed (the pod was replaced): nothing to do for this one.
    Replaced,
    /// 429 with a `DisruptionBudget` cause: the budget does not allow it now.
    Blocked {
        /// The server's explanation (names the budget, the healthy pods needed and present).
        reason: String,
    },
    /// 429 without a budget cause: API throttling; retry after this long.
    Throttled {
        /// `Retry-After`, or 1 s when absent.
        retry_after: Duration,
    },
    /// 500 "more than one PodDisruptionBudget": evicting cannot work; escalate.
    MultipleBudgets,
}

/// The body of an eviction: `deleteOptions` with the UID precondition and the grace period.
pub fn eviction_body(namespace: &str, name: &str, uid: &str, grace_seconds: Option<i64>) -> Value {
    let mut delete_options =
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}});
    if let Some(grace) = grace_seconds {
        delete_options["gracePeriodSeconds"] = json!(grace);
    }
    json!({
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": namespace},
        "deleteOptions": delete_options,
    })
}

/// An API server's answer: the status, the JSON body (`Null` when none) and `Retry-After`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON (a `Status` for errors).
    pub body: Value,
    /// `Retry-After` seconds, when sent.
    pub retry_after: Option<u64>,
}

impl Answer {
    /// The `Status` message of an error answer.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

/// Sends one request with a JSON body (or none) and reads the answer whatever its status:
/// the callers classify (kube-rs's typed calls turn every non-2xx into an opaque error).
pub async fn send_json(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Answer> {
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let request = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(bytes))
        .map_err(|e| Error::Aws(format!("{what}: {e}")))?;
    let response = client
        .send(request)
        .await
        .map_err(|e| super::from_kube(what, &e))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes = response
        .into_body()
        .collect_bytes()
        .await
        .map_err(|e| super::from_kube(what, &e))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        body,
        retry_after,
    })
}

/// The error for an answer nobody expected: 401/403 forbidden, 429/5xx retryable.
pub fn unexpected(what: &str, answer: &Answer) -> Error {
    let detail = format!("{what}: {} {}", answer.status, answer.message());
    match answer.status {
        401 | 403 => Error::Forbidden(detail),
        404 => Error::NotFound(detail),
        409 => Error::Conflict(detail),
        429 | 500..=599 => Error::Retryable(detail),
        _ => Error::Aws(detail),
    }
}

/// Asks the API server to evict one pod.
pub async fn evict(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    uid: &str,
    grace_seconds: Option<i64>,
) -> Result<Eviction> {
    let body = eviction_body(namespace, name, uid, grace_seconds);
    let what = format!("evict pod {namespace}/{name}");
    let answer = send_json(
        client,
        http::Method::POST,
        &format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"),
        "application/json",
        Some(&body),
        &what,
    )
    .await?;
    let message = answer.message().to_string();
    Ok(match answer.status {
        200 | 201 => Eviction::Evicted,
        404 => Eviction::Gone,
        409 => Eviction::Replaced,
        429 => {
            let causes = answer.body["details"]["causes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            match causes.iter().find(|c| c["reason"] == "DisruptionBudget") {
                Some(cause) => Eviction::Blocked {
                    reason: cause["message"].as_str().unwrap_or(&message).to_string(),
                },
                None => Eviction::Throttled {
                    retry_after: Duration::from_secs(answer.retry_after.unwrap_or(1)),
                },
            }
        }
        500 if message.contains("more than one PodDisruptionBudget") => Eviction::MultipleBudgets,
        _ => return Err(unexpected(&what, &answer)),
    })
}

/// The strategic merge patch that cordons a node, taints it `NoSchedule` and takes it out of
/// external load balancers — one request, so a node is never half-cordoned.
pub fn cordon_patch(reason: &str) -> Value {
    json!({
        "metadata": {"labels": {EXCLUDE_FROM_LB: "true"}},
        "spec": {
            "unschedulable": true,
            "taints": [{"key": DRAIN_TAINT, "value": reason, "effect": "NoSchedule"}],
        },
    })
}

/// The strategic merge patch that undoes [`cordon_patch`] (for a rebalance that came to nothing).
pub fn uncordon_patch() -> Value {
    json!({
        "metadata": {"labels": {EXCLUDE_FROM_LB: null}},
        "spec": {
            "unschedulable": null,
            "taints": [{"key": DRAIN_TAINT, "$patch": "delete"}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eviction_body_carries_delete_options_as_the_server_reads_them() {
        let body = eviction_body("shop", "web-0", "uid-1", Some(12));
        assert_eq!(body["deleteOptions"]["gracePeriodSeconds"], 12);
        assert_eq!(body["deleteOptions"]["preconditions"]["uid"], "uid-1");
        assert!(body.get("delete_options").is_none());
        assert!(eviction_body("a", "b", "c", None)["deleteOptions"]
            .get("gracePeriodSeconds")
            .is_none());
    }
}

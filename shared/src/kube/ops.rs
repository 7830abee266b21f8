//! What the functions do to a cluster, with the wire format checked against the API server's
//! (through the sandbox emulator and the real `kubectl`): cordon with a taint and the
//! load-balancer exclusion label (read, edit the atomic taint list, write it under the node's
//! `resourceVersion`), and the `pods/eviction` subresource.
//!
//! kube-rs 5's `Api::evict` serialises `EvictParams` with a `delete_options` field, which the API
//! server ignores: the grace period and the UID precondition would be silently lost. [`evict`]
//! posts a `policy/v1` `Eviction` whose `deleteOptions` the server reads.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Api, Patch, PatchParams};
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
///
/// A GET is tried again ([`super::READ_ATTEMPTS`] in all) while the server answers 429 or a 5xx
/// or the connection drops; a write is sent once (its callers know whether it may be repeated).
pub async fn send_json(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
    what: &str,
) -> Result<Answer> {
    let mut attempt = 1;
    loop {
        let answer = send_json_once(client, method.clone(), path, content_type, body, what).await;
        let retry_after = match &answer {
            Ok(a) if a.status == 429 || a.status >= 500 => a.retry_after,
            Err(Error::Retryable(_)) => None,
            _ => return answer,
        };
        if method != http::Method::GET || attempt >= super::READ_ATTEMPTS {
            return answer;
        }
        tracing::warn!(
            what,
            attempt,
            "a Kubernetes read failed transiently; trying again"
        );
        tokio::time::sleep(super::read_pause(attempt, retry_after)).await;
        attempt += 1;
    }
}

async fn send_json_once(
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

/// How many times a node write that lost a race (409) reads the node again and retries.
pub const NODE_WRITE_ATTEMPTS: usize = 5;

/// What a node write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeWrite {
    /// The node was changed (after this many lost races).
    Changed {
        /// 409 Conflicts answered before the write went through.
        conflicts: usize,
    },
    /// The node was already as wanted: nothing was sent.
    Unchanged,
    /// The node does not exist.
    Gone,
}

fn drain_taint(reason: &str) -> Taint {
    Taint {
        key: DRAIN_TAINT.to_string(),
        value: Some(reason.to_string()),
        effect: "NoSchedule".to_string(),
        time_added: None,
    }
}

fn has_exclusion_label(node: &Node) -> bool {
    node.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.get(EXCLUDE_FROM_LB).map(String::as_str) == Some("true"))
}

/// The strategic merge patch that cordons `node` (as read): `spec.unschedulable` (what
/// `kubectl cordon` sends), the load-balancer exclusion label, and the node's **whole** taint
/// list with Breakwater's `NoSchedule` taint added or updated and everyone else's kept as read.
/// `NodeSpec.Taints` has no `patchStrategy` (k8s.io/api core/v1 `types.go`; k8s-openapi's
/// `NodeSpec` merges it `atomic`), so the list sent replaces the stored one — which is why it is
/// sent with the node's `resourceVersion` as a precondition (409 if anyone wrote in between),
/// as `kubectl taint` edits the list it read. `None` when the node is already cordoned so.
pub fn cordon_patch(node: &Node, reason: &str) -> Option<Value> {
    let spec = node.spec.clone().unwrap_or_default();
    let mut taints = spec.taints.clone().unwrap_or_default();
    let ours = drain_taint(reason);
    match taints
        .iter_mut()
        .find(|t| t.key == DRAIN_TAINT && t.effect == ours.effect)
    {
        Some(found) if *found == ours => {}
        Some(found) => *found = ours,
        None => taints.push(ours),
    }
    // A taint of ours under another effect (none is ever written, but a human may copy it) is
    // left alone: only the `NoSchedule` one is Breakwater's.
    if spec.unschedulable == Some(true)
        && has_exclusion_label(node)
        && spec.taints.as_ref() == Some(&taints)
    {
        return None;
    }
    Some(json!({
        "metadata": {
            "resourceVersion": node.metadata.resource_version,
            "labels": {EXCLUDE_FROM_LB: "true"},
        },
        "spec": {"unschedulable": true, "taints": taints},
    }))
}

/// The strategic merge patch that undoes [`cordon_patch`] on `node` (as read): the taint list
/// without Breakwater's taint (the others' kept; `null` when none is left, as a two-way merge
/// patch of an `omitempty` list gives), `unschedulable` and the exclusion label removed, under
/// the node's `resourceVersion`. `None` when there is nothing of Breakwater's to undo: without
/// Breakwater's taint (which [`cordon_patch`] writes in the same request as the rest) the node
/// was cordoned by someone else — a person's `kubectl cordon` — and stays as it is.
pub fn uncordon_patch(node: &Node) -> Option<Value> {
    let spec = node.spec.clone().unwrap_or_default();
    let before = spec.taints.clone().unwrap_or_default();
    let taints: Vec<Taint> = before
        .iter()
        .filter(|t| !(t.key == DRAIN_TAINT && t.effect == "NoSchedule"))
        .cloned()
        .collect();
    if taints.len() == before.len() {
        return None;
    }
    Some(json!({
        "metadata": {
            "resourceVersion": node.metadata.resource_version,
            "labels": {EXCLUDE_FROM_LB: null},
        },
        "spec": {
            "unschedulable": null,
            "taints": if taints.is_empty() { Value::Null } else { json!(taints) },
        },
    }))
}

/// Reads `node`, computes the patch with `edit`, and writes it under the node's
/// `resourceVersion`; a 409 (someone wrote in between) reads again and retries, at most
/// [`NODE_WRITE_ATTEMPTS`] times.
async fn edit_node(
    client: &kube::Client,
    name: &str,
    what: &str,
    edit: impl Fn(&Node) -> Option<Value>,
) -> Result<NodeWrite> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut transient_failure = None;
    for conflicts in 0..NODE_WRITE_ATTEMPTS {
        let node = match super::read_with_retries(|| nodes.get_opt(name)).await {
            Ok(Some(n)) => n,
            Ok(None) => return Ok(NodeWrite::Gone),
            Err(e) => return Err(super::from_kube(&format!("{what} {name}: read"), &e)),
        };
        let Some(patch) = edit(&node) else {
            return Ok(NodeWrite::Unchanged);
        };
        match nodes
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => return Ok(NodeWrite::Changed { conflicts }),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!(
                    node = name,
                    attempt = conflicts + 1,
                    "node changed since read; reading again"
                );
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(NodeWrite::Gone),
            // Under the resourceVersion precondition a write whose answer was lost or refused
            // for the moment is safe to make again from a fresh read: if it took effect, the
            // read shows it and the edit is `None`.
            Err(e) if super::transient(&e) => {
                tracing::warn!(node = name, error = %e, "node write failed transiently; reading again");
                transient_failure = Some(super::from_kube(&format!("{what} {name}"), &e));
                tokio::time::sleep(super::read_pause(
                    u32::try_from(conflicts)
                        .unwrap_or(u32::MAX)
                        .saturating_add(1),
                    None,
                ))
                .await;
            }
            Err(e) => return Err(super::from_kube(&format!("{what} {name}"), &e)),
        }
    }
    Err(transient_failure.unwrap_or_else(|| {
        Error::Conflict(format!(
            "{what} {name}: the node changed under {NODE_WRITE_ATTEMPTS} writes in a row"
        ))
    }))
}

/// Cordons `name`: unschedulable, Breakwater's `NoSchedule` taint added to the node's taints,
/// out of external load balancers (see [`cordon_patch`]).
pub async fn cordon(client: &kube::Client, name: &str, reason: &str) -> Result<NodeWrite> {
    edit_node(client, name, "cordon", |n| cordon_patch(n, reason)).await
}

/// Undoes [`cordon`] on `name`, keeping every taint that is not Breakwater's.
pub async fn uncordon(client: &kube::Client, name: &str) -> Result<NodeWrite> {
    edit_node(client, name, "uncordon", uncordon_patch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(v: Value) -> Node {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cordon_adds_only_our_taint_to_the_whole_list_under_the_resource_version() {
        // GIVEN a node with another controller's taint
        let n = node(
            json!({"metadata": {"name": "n", "resourceVersion": "41", "labels": {"a": "b"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
                                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                                 "timeAdded": "2026-11-23T00:00:00Z"}]}}),
        );
        // WHEN the cordon patch is made from it
        let patch = cordon_patch(&n, "spot-interruption").unwrap();
        // THEN it carries the whole list (theirs as read, ours added), the precondition, and what
        // kubectl cordon sends
        assert_eq!(patch["metadata"]["resourceVersion"], "41");
        assert_eq!(patch["spec"]["unschedulable"], true);
        assert_eq!(patch["metadata"]["labels"][EXCLUDE_FROM_LB], "true");
        assert_eq!(
            patch["spec"]["taints"],
            json!([{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
                   {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-23T00:00:00Z"},
                   {"key": DRAIN_TAINT, "value": "spot-interruption", "effect": "NoSchedule"}])
        );
        // AND a node already cordoned so needs no write; a new reason updates our taint in place
        let mut cordoned = n.clone();
        cordoned
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(EXCLUDE_FROM_LB.into(), "true".into());
        let spec = cordoned.spec.as_mut().unwrap();
        spec.unschedulable = Some(true);
        spec.taints = serde_json::from_value(patch["spec"]["taints"].clone()).unwrap();
        assert_eq!(cordon_patch(&cordoned, "spot-interruption"), None);
        let again = cordon_patch(&cordoned, "rebalance-recommendation").unwrap();
        assert_eq!(again["spec"]["taints"].as_array().unwrap().len(), 3);
        assert_eq!(
            again["spec"]["taints"][2]["value"],
            "rebalance-recommendation"
        );

        // WHEN it is uncordoned
        let undo = uncordon_patch(&cordoned).unwrap();
        // THEN only our taint goes; theirs stay, and the precondition is sent
        assert_eq!(
            undo["spec"]["taints"],
            json!(n.spec.as_ref().unwrap().taints)
        );
        assert_eq!(undo["spec"]["unschedulable"], Value::Null);
        assert_eq!(undo["metadata"]["labels"][EXCLUDE_FROM_LB], Value::Null);
        assert_eq!(undo["metadata"]["resourceVersion"], "41");
        assert!(!undo.to_string().contains("$patch"));
        // AND with no taint left the list is removed; nothing of ours: no write
        let alone = node(
            json!({"metadata": {"name": "m", "resourceVersion": "7", "labels": {EXCLUDE_FROM_LB: "true"}},
            "spec": {"unschedulable": true, "taints": [{"key": DRAIN_TAINT, "value": "x", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            uncordon_patch(&alone).unwrap()["spec"]["taints"],
            Value::Null
        );
        assert_eq!(uncordon_patch(&n), None);
    }

    #[test]
    fn a_persons_cordon_and_our_key_under_another_effect_are_left_alone() {
        // GIVEN a node a person cordoned (`kubectl cordon`: unschedulable, no taint of ours) and
        // a taint with our key under another effect
        let n = node(json!({"metadata": {"name": "n", "resourceVersion": "5"},
            "spec": {"unschedulable": true,
                     "taints": [{"key": DRAIN_TAINT, "value": "copied", "effect": "NoExecute"}]}}));
        // THEN uncordon leaves the person's cordon as it is
        assert_eq!(uncordon_patch(&n), None);
        // AND cordon adds our NoSchedule taint beside the other one instead of rewriting it
        let patch = cordon_patch(&n, "spot-interruption").unwrap();
        assert_eq!(
            patch["spec"]["taints"],
            json!([{"key": DRAIN_TAINT, "value": "copied", "effect": "NoExecute"},
                   {"key": DRAIN_TAINT, "value": "spot-interruption", "effect": "NoSchedule"}])
        );
    }

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

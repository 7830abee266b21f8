//! The API server's HTTP side: routing a request to the store by group, version, kind and
//! subresource, discovery, throttles and interjections, the request log, and the answer as the
//! real server words it (<https://kubernetes.io/docs/reference/using-api/api-concepts/>).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::store::{find_kind, ApiError, Cluster, ResourceKind, KINDS};
use super::{lock, KubeRequest, State};
use crate::loopback::query_value;

fn respond(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) async fn handle(
    state: &State,
    req: Request<hyper::body::Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let content_type = header("content-type")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let json_body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let throttled = {
        let mut rules = lock(&state.throttles);
        rules
            .iter_mut()
            .find(|r| {
                r.times > 0
                    && r.method
                        .as_deref()
                        .is_none_or(|m| m == parts.method.as_str())
                    && path.contains(&r.path_contains)
            })
            .map(|r| {
                r.times -= 1;
                r.retry_after_seconds
            })
    };
    let interjection = {
        let mut pending = lock(&state.interjections);
        pending
            .iter()
            .position(|i| i.method == parts.method.as_str() && path.contains(&i.path_contains))
            .map(|at| pending.remove(at))
    };
    if let Some(interjection) = interjection {
        (interjection.change)(&mut state.cluster());
    }
    let (status, answer) = if let Some(seconds) = throttled {
        let e = ApiError {
            code: 429,
            reason: "TooManyRequests",
            message: "Too many requests, please try again later.".into(),
            details: Some(json!({"retryAfterSeconds": seconds})),
        };
        let mut response = respond(429, &e.status());
        response.headers_mut().insert(
            hyper::header::RETRY_AFTER,
            hyper::header::HeaderValue::from(seconds),
        );
        log(
            state,
            &parts.method,
            &path,
            &query,
            &content_type,
            json_body,
            429,
            header("authorization"),
        );
        return response;
    } else if parts.method == Method::GET
        && query_value(&query, "watch").is_some_and(|w| w == "true" || w == "1")
    {
        // Logged when accepted, as the server's audit log records a request it has received.
        let opened = super::watch::open(state, &path, &query);
        let status = opened.as_ref().map_or_else(|e| e.code, |_| 200);
        log(
            state,
            &parts.method,
            &path,
            &query,
            &content_type,
            json_body,
            status,
            header("authorization"),
        );
        let answer = match opened {
            Ok(watch) => watch.events(state).await,
            Err(e) => Err(e),
        };
        return match answer {
            Ok(events) => {
                let mut response = respond(200, &Value::Null);
                *response.body_mut() = Full::new(Bytes::from(events));
                response
            }
            Err(e) => respond(e.code, &e.status()),
        };
    } else if !body.is_empty() && json_body.is_null() && parts.method != Method::GET {
        (
            400,
            ApiError::bad_request("the request body is not JSON").status(),
        )
    } else {
        match route(
            state,
            &parts.method,
            &path,
            &query,
            &content_type,
            &json_body,
        ) {
            Ok((status, value)) => (status, value),
            Err(e) => (e.code, e.status()),
        }
    };
    // Server-side printing, as kubectl's `get` asks for it.
    let answer = if parts.method == Method::GET
        && status == 200
        && super::table::wanted(&header("accept"))
        && (answer.get("items").is_some() || answer["metadata"]["name"].is_string())
    {
        super::table::table(&answer, state.cluster().now_ms)
    } else {
        answer
    };
    log(
        state,
        &parts.method,
        &path,
        &query,
        &content_type,
        json_body,
        status,
        header("authorization"),
    );
    respond(status, &answer)
}

#[allow(clippy::too_many_arguments)]
fn log(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: Value,
    status: u16,
    authorization: String,
) {
    lock(&state.log).push(KubeRequest {
        method: method.to_string(),
        path: if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        },
        content_type: content_type.to_string(),
        body,
        status,
        authorization,
    });
}

fn discovery_resources(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for k in KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
    {
        let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
        resources.push(
            json!({"name": k.plural, "singularName": k.singular, "namespaced": k.namespaced,
            "kind": k.kind, "verbs": verbs, "shortNames": k.short_names}),
        );
        if k.has_status {
            resources.push(
                json!({"name": format!("{}/status", k.plural), "singularName": "",
                "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if k.plural == "pods" {
            resources.push(
                json!({"name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}),
            );
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn groups() -> Value {
    let mut names: Vec<(&str, &str)> = KINDS
        .iter()
        .filter(|k| !k.group.is_empty())
        .map(|k| (k.group, k.version))
        .collect();
    names.dedup();
    let groups: Vec<Value> = names
        .iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn route(
    state: &State,
    method: &Method,
    path: &str,
    query: &str,
    content_type: &str,
    body: &Value,
) -> Result<(u16, Value), ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    // Discovery.
    match (method, segments.as_slice()) {
        (&Method::GET, ["api"]) => {
            return Ok((
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            ))
        }
        (&Method::GET, ["apis"]) => return Ok((200, groups())),
        (&Method::GET, ["version"]) => {
            return Ok((
                200,
                json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-breakwater-emulator",
                "platform": "linux/amd64"}),
            ))
        }
        (&Method::GET, ["api", "v1"]) => return Ok((200, discovery_resources("", "v1"))),
        (&Method::GET, ["apis", group, version]) => {
            if KINDS
                .iter()
                .any(|k| k.group == *group && k.version == *version)
            {
                return Ok((200, discovery_resources(group, version)));
            }
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
            });
        }
        _ => {}
    }
    let (kind, namespace, tail) = target(&segments)?;
    let ns = namespace.unwrap_or("");
    let dry_run = query_value(query, "dryRun").is_some_and(|v| v == "All");
    let mut guard = state.cluster();
    // dryRun=All: the same rules on a copy that is thrown away.
    let mut copy;
    let cluster: &mut Cluster = if dry_run {
        copy = guard.clone();
        &mut copy
    } else {
        &mut guard
    };
    match (method, tail) {
        (&Method::GET, []) => {
            let items = cluster.list(
                kind,
                namespace,
                query_value(query, "labelSelector").as_deref(),
                query_value(query, "fieldSelector").as_deref(),
            )?;
            let items: Vec<Value> = items.into_iter().collect();
            Ok((
                200,
                json!({"kind": format!("{}List", kind.kind), "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": cluster.resource_version()}, "items": items}),
            ))
        }
        (&Method::POST, []) => {
            if kind.namespaced && namespace.is_none() {
                return Err(ApiError::bad_request(
                    "a namespaced resource is created in a namespace",
                ));
            }
            cluster.create(kind, ns, body.clone()).map(|v| (201, v))
        }
        (&Method::GET, [name]) => cluster
            .get(kind, ns, name)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| not_found(kind, name)),
        (&Method::GET, [name, "status"]) => cluster
            .get(kind, ns, name)
            .cloned()
            .map(|v| (200, v))
            .ok_or_else(|| not_found(kind, name)),
        (&Method::PUT, [name]) => cluster
            .replace(kind, ns, name, body.clone(), false)
            .map(|v| (200, v)),
        (&Method::PUT, [name, "status"]) if kind.has_status => cluster
            .replace(kind, ns, name, body.clone(), true)
            .map(|v| (200, v)),
        (&Method::PATCH, [name]) => cluster
            .patch(kind, ns, name, content_type, body, false)
            .map(|v| (200, v)),
        (&Method::PATCH, [name, "status"]) if kind.has_status => cluster
            .patch(kind, ns, name, content_type, body, true)
            .map(|v| (200, v)),
        (&Method::DELETE, [name]) => {
            let mut options = if body.is_null() {
                json!({})
            } else {
                body.clone()
            };
            if let Some(g) =
                query_value(query, "gracePeriodSeconds").and_then(|g| g.parse::<i64>().ok())
            {
                options["gracePeriodSeconds"] = json!(g);
            }
            cluster.delete(kind, ns, name, &options).map(|v| (200, v))
        }
        (&Method::POST, [name, "eviction"]) if kind.plural == "pods" => {
            cluster.evict(ns, name, body).map(|v| (201, v))
        }
        _ => Err(ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!("{method} is not supported on {path}"),
            details: None,
        }),
    }
}

/// What a path names: the kind, the namespace (when the path has one), and what follows the
/// kind's plural (a name, a subresource).
pub(super) fn target<'a>(
    segments: &'a [&'a str],
) -> Result<(&'static ResourceKind, Option<&'a str>, &'a [&'a str]), ApiError> {
    let no_such = || ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: None,
    };
    let (group, version, rest) = match segments {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(no_such()),
    };
    // /namespaces/{ns}/{plural}/… or /{plural}/…
    let (namespace, rest): (Option<&str>, &[&str]) = match rest {
        ["namespaces", ns, plural, ..]
            if find_kind(group, version, plural).is_some_and(|k| k.namespaced) =>
        {
            (Some(*ns), &rest[2..])
        }
        _ => (None, rest),
    };
    let Some((plural, tail)) = rest.split_first() else {
        return Err(ApiError::bad_request("no resource in the path"));
    };
    let kind = find_kind(group, version, plural).ok_or_else(no_such)?;
    Ok((kind, namespace, tail))
}

fn not_found(kind: &ResourceKind, name: &str) -> ApiError {
    let group = if kind.group.is_empty() {
        String::new()
    } else {
        format!(".{}", kind.group)
    };
    ApiError {
        code: 404,
        reason: "NotFound",
        message: format!("{}{group} \"{name}\" not found", kind.plural),
        details: Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
    }
}

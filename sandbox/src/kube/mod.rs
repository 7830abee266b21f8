//! The Kubernetes API emulator: a small stateful API server on loopback that implements, with the
//! real server's semantics, what the functions and `kubectl cordon` / `drain` / `rollout undo`
//! use — discovery, nodes, pods with graceful deletion and the eviction subresource, PDBs,
//! DaemonSets, Deployments, ReplicaSets, Argo Rollouts, Events, the three patch formats,
//! `dryRun=All`, resourceVersion conflicts and injectable 429s. Time is the emulator's own clock:
//! manual, or real time sped up by a factor.

pub mod fixtures;
pub mod patch;
pub mod store;
pub mod validation;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use crate::loopback::Loopback;
use crate::SandboxError;
use store::{find_kind, ApiError, Cluster, ResourceKind, KINDS};

/// One request the emulator answered (for checks of what went over the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeRequest {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `Content-Type`.
    pub content_type: String,
    /// The JSON body (`Null` when none or not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// The `Authorization` header.
    pub authorization: String,
}

/// A throttling rule: the next `times` requests whose method and path match get a 429.
#[derive(Debug, Clone)]
pub struct Throttle {
    /// Only this method (`None`: any).
    pub method: Option<String>,
    /// Only paths containing this.
    pub path_contains: String,
    /// How many requests.
    pub times: u32,
    /// The `Retry-After` seconds sent.
    pub retry_after_seconds: u32,
}

/// A change made to the cluster just before the next matching request is served: what another
/// client did between a function's read and its write.
pub struct Interjection {
    /// Only this method.
    pub method: String,
    /// Only paths containing this.
    pub path_contains: String,
    /// The change.
    pub change: Box<dyn FnOnce(&mut Cluster) + Send>,
}

impl std::fmt::Debug for Interjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interjection({} {})", self.method, self.path_contains)
    }
}

#[derive(Debug)]
struct Clock {
    started: Instant,
    base_ms: u64,
    factor: f64,
}

#[derive(Debug)]
struct State {
    cluster: Mutex<Cluster>,
    clock: Mutex<Clock>,
    throttles: Mutex<Vec<Throttle>>,
    interjections: Mutex<Vec<Interjection>>,
    log: Mutex<Vec<KubeRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn now_ms(&self) -> u64 {
        let clock = lock(&self.clock);
        clock.base_ms + (clock.started.elapsed().as_secs_f64() * 1000.0 * clock.factor) as u64
    }

    /// The cluster, with the clock brought up to now.
    fn cluster(&self) -> MutexGuard<'_, Cluster> {
        let now = self.now_ms();
        let mut cluster = lock(&self.cluster);
        cluster.advance_to(now);
        cluster
    }
}

/// A running emulator.
#[derive(Debug)]
pub struct KubeEmulator {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KubeEmulator {
    /// Starts an empty cluster on a free loopback port, its clock at `now_ms` and running at
    /// `factor` × real time (0: stopped, moved only by [`KubeEmulator::advance`]).
    pub async fn start(now_ms: u64, factor: f64) -> Result<Self, SandboxError> {
        let state = Arc::new(State {
            cluster: Mutex::new(Cluster::new(now_ms)),
            clock: Mutex::new(Clock {
                started: Instant::now(),
                base_ms: now_ms,
                factor,
            }),
            throttles: Mutex::new(Vec::new()),
            interjections: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let serving = state.clone();
        let server = Loopback::serve(move |req| {
            let state = serving.clone();
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        })
        .await?;
        let (addr, task) = (server.addr, server.task);
        Ok(KubeEmulator { addr, state, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The emulator's clock.
    pub fn now_ms(&self) -> u64 {
        self.state.now_ms()
    }

    /// Moves the clock on by `ms` (the kubelet and the controllers act).
    pub fn advance(&self, ms: u64) {
        {
            let mut clock = lock(&self.state.clock);
            clock.base_ms += ms;
        }
        drop(self.state.cluster());
    }

    /// Runs `f` over the cluster (seeding, reading back, knobs).
    pub fn with<T>(&self, f: impl FnOnce(&mut Cluster) -> T) -> T {
        f(&mut self.state.cluster())
    }

    /// Creates an object (as a client would, with the server's defaults).
    pub fn create(&self, plural: &str, namespace: &str, obj: Value) -> Result<Value, ApiError> {
        let kind = KINDS
            .iter()
            .find(|k| k.plural == plural)
            .ok_or_else(|| ApiError::bad_request(format!("no resource {plural}")))?;
        self.with(|c| c.create(kind, namespace, obj))
    }

    /// One object, read back.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let kind = KINDS.iter().find(|k| k.plural == plural)?;
        self.with(|c| c.get(kind, namespace, name).cloned())
    }

    /// Every object of a kind (all namespaces).
    pub fn list(&self, plural: &str) -> Vec<Value> {
        let Some(kind) = KINDS.iter().find(|k| k.plural == plural) else {
            return Vec::new();
        };
        self.with(|c| c.list(kind, None, None, None).unwrap_or_default())
    }

    /// Adds a throttling rule.
    pub fn throttle(&self, rule: Throttle) {
        lock(&self.state.throttles).push(rule);
    }

    /// Makes `change` just before the next request matching `method` and `path_contains`.
    pub fn interject(
        &self,
        method: &str,
        path_contains: &str,
        change: impl FnOnce(&mut Cluster) + Send + 'static,
    ) {
        lock(&self.state.interjections).push(Interjection {
            method: method.to_string(),
            path_contains: path_contains.to_string(),
            change: Box::new(change),
        });
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<KubeRequest> {
        lock(&self.state.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }

    /// Writes a kubeconfig for `kubectl` that points at the emulator; returns its path.
    pub fn write_kubeconfig(&self, dir: &Path) -> Result<PathBuf, SandboxError> {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\n\
             users:\n- name: emulator\n  user:\n    token: sandbox-token\ncontexts:\n- name: emulator\n  \
             context:\n    cluster: emulator\n    user: emulator\ncurrent-context: emulator\n",
            self.endpoint()
        );
        std::fs::write(&path, text).map_err(|e| SandboxError::Io(e.to_string()))?;
        Ok(path)
    }
}

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

fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(state: &State, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
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
        let verbs = json!(["create", "delete", "get", "list", "patch", "update"]);
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
    let (group, version, rest) = match segments.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => {
            return Err(ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
            })
        }
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
    let Some(kind) = find_kind(group, version, plural) else {
        return Err(ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: None,
        });
    };
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

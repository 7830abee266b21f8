//! The Kubernetes API emulator: a small stateful API server on loopback that implements, with the
//! real server's semantics, what the functions and `kubectl cordon` / `drain` / `rollout undo`
//! use — discovery, nodes, pods with graceful deletion and the eviction subresource, PDBs,
//! DaemonSets, Deployments, ReplicaSets, Argo Rollouts, Events, the three patch formats,
//! `dryRun=All`, resourceVersion conflicts, watches and injectable 429s. Time is the emulator's
//! own clock: manual, or real time sped up by a factor.

mod api;
pub mod fixtures;
pub mod node_groups;
pub mod patch;
pub mod store;
mod table;
pub mod validation;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde_json::Value;

use crate::loopback::Loopback;
use crate::SandboxError;
use api::handle;
use store::{ApiError, Cluster, KINDS};

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
    /// The store's resourceVersion, sent to the open watches when it moves.
    moved: tokio::sync::watch::Sender<u64>,
    /// How many watches are waiting (the clock is kept moving for them).
    watching: std::sync::atomic::AtomicUsize,
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
    ticker: tokio::task::JoinHandle<()>,
}

impl Drop for KubeEmulator {
    fn drop(&mut self) {
        self.task.abort();
        self.ticker.abort();
    }
}

/// How often the clock is brought up to now while a watch waits: the kubelet and the
/// controllers act on time (a replacement becomes Ready, a terminating pod goes) with no request
/// to carry them.
const TICK: std::time::Duration = std::time::Duration::from_millis(2);

/// Keeps the clock moving while watches wait, and tells them when the store changed.
async fn tick(state: Arc<State>) {
    loop {
        let idle = state.watching.load(std::sync::atomic::Ordering::SeqCst) == 0;
        tokio::time::sleep(if idle { TICK * 10 } else { TICK }).await;
        if idle {
            continue;
        }
        let rv = state.cluster().resource_version().parse().unwrap_or(0);
        state.moved.send_if_modified(|seen| {
            let moved = *seen != rv;
            *seen = rv;
            moved
        });
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
            moved: tokio::sync::watch::Sender::new(0),
            watching: std::sync::atomic::AtomicUsize::new(0),
            throttles: Mutex::new(Vec::new()),
            interjections: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let ticker = tokio::spawn(tick(state.clone()));
        let serving = state.clone();
        let server = Loopback::serve(move |req| {
            let state = serving.clone();
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        })
        .await?;
        let (addr, task) = (server.addr, server.task);
        Ok(KubeEmulator {
            addr,
            state,
            task,
            ticker,
        })
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

//! A Lambda Runtime API emulator: runs a function's real binary as a child process with
//! `AWS_LAMBDA_RUNTIME_API` pointing here, hands it events, collects responses and errors, and
//! measures init time (exec → first `/next`), per-invoke time and peak RSS.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use crate::loopback::Loopback;
use crate::SandboxError;

mod api;
mod chaos;

use api::handle;
pub use chaos::Chaos;
use chaos::CHAOS;

const PREFIX: &str = "/2018-06-01/runtime";
/// The variable that sets a function's clock in the sandbox.
const SANDBOX_NOW: &str = "BREAKWATER_SANDBOX_NOW_MS";
/// The account the emulator reports in function ARNs (moto's default account).
pub const ACCOUNT: &str = "123456789012";

/// An error the function reported (`/invocation/{id}/error` or `/init/error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// The stable `errorType`.
    pub error_type: String,
    /// The message.
    pub error_message: String,
}

/// One invocation's outcome and timing.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The request id the function saw.
    pub request_id: String,
    /// The response, or the error the function reported.
    pub outcome: Result<Value, FunctionError>,
    /// From handing the event out on `/next` to receiving the response.
    pub duration: Duration,
}

impl Invocation {
    /// The function's response, or the error it reported as a [`SandboxError::Function`].
    pub fn answer(&self) -> Result<Value, SandboxError> {
        self.outcome
            .clone()
            .map_err(|e| SandboxError::Function(format!("{}: {}", e.error_type, e.error_message)))
    }
}

struct Pending {
    request_id: String,
    body: Bytes,
    deadline_ms: u64,
    reply: oneshot::Sender<Result<Value, FunctionError>>,
}

struct Shared {
    function_name: String,
    region: String,
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Pending>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Value, FunctionError>>>>,
    handed_out: Mutex<HashMap<String, Instant>>,
    first_next: OnceLock<Instant>,
    init_error: Mutex<Option<FunctionError>>,
}

/// A function binary running under the emulator.
#[derive(Debug)]
pub struct FunctionProcess {
    child: tokio::process::Child,
    pid: u32,
    spawned_at: Instant,
    queue: mpsc::UnboundedSender<Pending>,
    shared: Arc<SharedHandle>,
    output: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
    timeout: Duration,
    counter: AtomicU64,
    /// How it was started (binary, name, region, environment): a restart after a crash.
    spec: (std::path::PathBuf, String, String, Vec<(String, String)>),
    /// The function's clock: what it read at an instant (`BREAKWATER_SANDBOX_NOW_MS`, else the
    /// system clock). A restarted process goes on from it instead of starting over.
    clock: (u64, Instant),
}

/// `Shared` behind a `Debug` wrapper.
struct SharedHandle(Shared);

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("function_name", &self.0.function_name)
            .finish()
    }
}

/// The function a binary is (its file name: `target/release/spot` is `spot`).
fn binary_function(binary: &Path) -> String {
    binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl FunctionProcess {
    /// Starts `binary` with exactly the environment `env` (plus the Lambda runtime variables).
    pub async fn start(
        binary: &Path,
        function_name: &str,
        region: &str,
        env: &[(String, String)],
    ) -> Result<Self, SandboxError> {
        if !binary.exists() {
            return Err(SandboxError::Io(format!(
                "{} does not exist: build it first (`cargo build --bins`)",
                binary.display()
            )));
        }
        let (queue, receiver) = mpsc::unbounded_channel();
        let shared = Arc::new(SharedHandle(Shared {
            function_name: function_name.to_string(),
            region: region.to_string(),
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            handed_out: Mutex::new(HashMap::new()),
            first_next: OnceLock::new(),
            init_error: Mutex::new(None),
        }));
        let serving = shared.clone();
        let loopback = Loopback::serve(move |req| handle(serving.clone(), req)).await?;
        let (addr, server) = (loopback.addr, loopback.task);

        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_REGION", region)
            .env("AWS_DEFAULT_REGION", region)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            // A function of the template runs with its role's credentials, never the sandbox's.
            .envs(crate::iam::role_env(&binary_function(binary), region, env))
            .envs(CHAOS.get().map(|c| c.env.clone()).unwrap_or_default())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let spawned_at = Instant::now();
        let clock_ms = env
            .iter()
            .rev()
            .find(|(k, _)| k == SANDBOX_NOW)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(epoch_ms);
        let mut child = command
            .spawn()
            .map_err(|e| SandboxError::Io(format!("start {}: {e}", binary.display())))?;
        let pid = child.id().unwrap_or_default();
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        {
            let output = output.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    output.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        Ok(FunctionProcess {
            child,
            pid,
            spawned_at,
            queue,
            shared,
            output,
            server,
            timeout: Duration::from_secs(60),
            counter: AtomicU64::new(0),
            spec: (
                binary.to_path_buf(),
                function_name.to_string(),
                region.to_string(),
                env.to_vec(),
            ),
            clock: (clock_ms, spawned_at),
        })
    }

    /// What the function's clock reads now (its `BREAKWATER_SANDBOX_NOW_MS` moved on by the
    /// time since, and by every [`FunctionProcess::advance`]).
    pub fn now_ms(&self) -> u64 {
        self.clock.0 + self.clock.1.elapsed().as_millis() as u64
    }

    /// Lets `by` pass for the function: the process is started again (as Lambda may start a new
    /// execution environment at any time) with its clock `by` later than it reads now, while no
    /// real time passes. The scenes move the clock to a schedule's next tick this way.
    pub async fn advance(&mut self, by: Duration) -> Result<(), SandboxError> {
        self.clock.0 += by.as_millis() as u64;
        self.restart().await
    }

    /// Starts the same binary again, as Lambda starts a new execution environment after one
    /// died; the next invocations go to it. Its clock goes on from where this one's is: a
    /// claim the dead process took looks as old as it is.
    pub async fn restart(&mut self) -> Result<(), SandboxError> {
        let (binary, name, region, mut env) = self.spec.clone();
        env.retain(|(k, _)| k != SANDBOX_NOW);
        env.push((SANDBOX_NOW.to_string(), self.now_ms().to_string()));
        let timeout = self.timeout;
        let mut fresh = FunctionProcess::start(&binary, &name, &region, &env)
            .await?
            .with_timeout(timeout);
        fresh.wait_init().await?;
        self.kill().await;
        // The lineage keeps the environment it was given (a later restart sets the clock anew).
        fresh.spec.3.clone_from(&self.spec.3);
        *self = fresh;
        Ok(())
    }

    /// Sets how long an invocation may take before it counts as timed out (default 60 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Invokes the function with `event` and waits for its response or error.
    pub async fn invoke(&mut self, event: &Value) -> Result<Invocation, SandboxError> {
        let body =
            Bytes::from(serde_json::to_vec(event).map_err(|e| SandboxError::Io(e.to_string()))?);
        self.invoke_raw(body).await
    }

    /// Invokes the function with raw bytes (malformed payloads included). Under [`Chaos`], as
    /// Lambda does for an asynchronous event: an attempt may be killed at a step boundary, and a
    /// failed or killed attempt is retried (in a new process after a crash).
    pub async fn invoke_raw(&mut self, body: Bytes) -> Result<Invocation, SandboxError> {
        let Some(chaos) = CHAOS.get() else {
            return self.invoke_once(body).await;
        };
        let name = self.spec.1.clone();
        let mut last = None;
        for attempt in 1..=chaos.attempts {
            let kill_after = if attempt < chaos.attempts {
                chaos.kill_point()
            } else {
                None
            };
            let watcher = kill_after.map(|k| {
                let target = chaos.mutations_done() + k;
                let pid = self.pid;
                let name = name.clone();
                tokio::spawn(async move {
                    while chaos.mutations_done() < target {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let _ = std::process::Command::new("kill")
                        .args(["-9", &pid.to_string()])
                        .status();
                    chaos.note(&name, &format!("killed after its {k}th change took effect"));
                })
            });
            let result = self.invoke_once(body.clone()).await;
            if let Some(w) = watcher {
                w.abort();
            }
            let what = match result {
                Ok(invocation) => {
                    let Err(e) = &invocation.outcome else {
                        return Ok(invocation);
                    };
                    let what = format!("failed ({}: {})", e.error_type, e.error_message);
                    last = Some(Ok(invocation));
                    what
                }
                Err(err) => {
                    let what = format!("ended with the process: {err}");
                    last = Some(Err(err));
                    what
                }
            };
            if attempt == chaos.attempts {
                chaos.note(
                    &name,
                    &format!("lost: attempt {attempt} {what}; no attempt is left (the event goes to the dead-letter queue)"),
                );
                break;
            }
            // Lambda waits about a minute before the second attempt and two before the third;
            // the retry runs in a new execution environment whose clock has moved on by as
            // much (a dead attempt's claims have lapsed by then).
            let wait = chaos.retry_waits[(attempt as usize - 1).min(1)];
            chaos.note(
                &name,
                &format!(
                    "attempt {attempt} {what}; delivered again {} s later",
                    wait.as_secs()
                ),
            );
            let real = chaos.real(wait);
            tokio::time::sleep(real).await;
            self.advance(wait.saturating_sub(real)).await?;
        }
        last.unwrap_or_else(|| Err(SandboxError::Function("no attempt was made".into())))
    }

    async fn invoke_once(&mut self, body: Bytes) -> Result<Invocation, SandboxError> {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let request_id = format!("{:08x}-0000-4000-8000-{:012x}", self.pid, n);
        let (reply, response) = oneshot::channel();
        let deadline_ms = epoch_ms() + self.timeout.as_millis() as u64;
        self.queue
            .send(Pending {
                request_id: request_id.clone(),
                body,
                deadline_ms,
                reply,
            })
            .map_err(|_| SandboxError::Function("the emulator stopped".into()))?;
        let outcome = tokio::select! {
            r = response => r.map_err(|_| SandboxError::Function("the emulator dropped the invocation".into()))?,
            status = self.child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                return Err(SandboxError::Function(format!("function process exited ({status}) during invocation {request_id}{}", self.init_error_suffix())));
            }
            _ = tokio::time::sleep(self.timeout) => {
                return Err(SandboxError::Function(format!("invocation {request_id} timed out after {:?}", self.timeout)));
            }
        };
        let handed_out = self
            .shared
            .0
            .handed_out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request_id);
        let duration = handed_out.map(|t| t.elapsed()).unwrap_or_default();
        Ok(Invocation {
            request_id,
            outcome,
            duration,
        })
    }

    /// The init error the function reported, else its last output lines (what an operator would
    /// read in the log after a `Runtime.ExitError`).
    fn init_error_suffix(&self) -> String {
        if let Some(e) = &*self
            .shared
            .0
            .init_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
        {
            return format!("; init error {}: {}", e.error_type, e.error_message);
        }
        let output = self.output();
        let tail: Vec<&str> = output
            .iter()
            .rev()
            .take(3)
            .rev()
            .map(String::as_str)
            .collect();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; last output: {}", tail.join(" | "))
        }
    }

    /// Waits until the function asks for its first event and returns the init time
    /// (exec → first `/next`).
    pub async fn wait_init(&mut self) -> Result<Duration, SandboxError> {
        let started = Instant::now();
        while started.elapsed() < self.timeout {
            if let Some(at) = self.shared.0.first_next.get() {
                return Ok(at.duration_since(self.spawned_at));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                tokio::time::sleep(Duration::from_millis(50)).await;
                return Err(SandboxError::Function(format!(
                    "function exited during init ({status}){}",
                    self.init_error_suffix()
                )));
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        Err(SandboxError::Function(
            "the function never asked for an event".into(),
        ))
    }

    /// The init time, once the function has asked for its first event.
    pub fn init_duration(&self) -> Option<Duration> {
        self.shared
            .0
            .first_next
            .get()
            .map(|at| at.duration_since(self.spawned_at))
    }

    /// The process's peak resident set size in KiB (`VmHWM`), while it runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Everything the function wrote to stdout and stderr so far, line by line.
    pub fn output(&self) -> Vec<String> {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Kills the process (a crash at a chosen moment, or the end of a run).
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        self.server.abort();
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

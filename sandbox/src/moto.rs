//! moto's server on a free loopback port, from the project's Python environment: start it, wait
//! until it answers, reset it, stop it (by handle or by process id).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{workspace_root, SandboxError};

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

/// How the server's lifetime is tied to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// The server exits when the process that started it exits (tests, the demo).
    TiedToParent,
    /// The server runs until stopped by its process id (`sandbox up` / `sandbox down`).
    Detached,
}

impl Moto {
    /// Starts moto on a free loopback port and waits until it answers.
    pub fn start(lifetime: Lifetime) -> Result<Self, SandboxError> {
        let python = python()?;
        let script = workspace_root().join("sandbox/moto_sandbox.py");
        let logs = workspace_root().join("target/sandbox");
        std::fs::create_dir_all(&logs)
            .map_err(|e| SandboxError::Io(format!("create {}: {e}", logs.display())))?;
        let mut last_error = String::new();
        // A port found free can be taken before moto binds it: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            let log = logs.join(format!("moto-{port}.log"));
            let log_file = std::fs::File::create(&log)
                .map_err(|e| SandboxError::Io(format!("create {}: {e}", log.display())))?;
            let err_file = log_file
                .try_clone()
                .map_err(|e| SandboxError::Io(e.to_string()))?;
            let mut command = Command::new(&python);
            command.arg(&script).arg(port.to_string());
            if lifetime == Lifetime::TiedToParent {
                command.arg("--watch-parent");
            }
            let child = command
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file)
                .spawn()
                .map_err(|e| SandboxError::Io(format!("start {}: {e}", python.display())))?;
            let mut moto = Moto {
                child: Some(child),
                port,
                log,
            };
            match moto.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(moto),
                Err(e) => {
                    last_error = e.to_string();
                    moto.stop();
                }
            }
        }
        Err(SandboxError::Moto(last_error))
    }

    /// The endpoint URL to give the SDK (`AWS_ENDPOINT_URL`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's log file (moto writes the reason for an HTML 500 there).
    pub fn log(&self) -> &Path {
        &self.log
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), SandboxError> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(5).collect();
                    return Err(SandboxError::Moto(format!(
                        "moto exited with {status}: {}",
                        tail.join(" / ")
                    )));
                }
            }
            if http_request(self.port, "GET", "/moto-api/data.json")
                .is_ok_and(|status| status == 200)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(SandboxError::Moto(format!(
            "moto did not answer on port {} within {timeout:?}",
            self.port
        )))
    }

    /// Clears every resource in every region and account.
    pub fn reset(&self) -> Result<(), SandboxError> {
        match http_request(self.port, "POST", "/moto-api/reset")? {
            200 => Ok(()),
            status => Err(SandboxError::Moto(format!("reset answered HTTP {status}"))),
        }
    }

    /// The termination lifecycle actions Auto Scaling holds open (`sandbox/moto_autoscaling_lifecycle.py`:
    /// the sandbox's stand-in for the events that carry their tokens): `{account, region,
    /// group, hook, instance, token}` each.
    pub fn lifecycle_actions(&self) -> Result<Vec<serde_json::Value>, SandboxError> {
        use std::io::{Read, Write};
        let port = self.port;
        let mut stream = connect(port)?;
        write!(stream, "GET /_sandbox/autoscaling/lifecycle-actions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .map_err(|e| SandboxError::Io(e.to_string()))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| SandboxError::Io(format!("read from 127.0.0.1:{port}: {e}")))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        serde_json::from_str(body)
            .map_err(|e| SandboxError::Moto(format!("lifecycle actions: {e}: {body:?}")))
    }

    /// Leaves the server running after this handle is dropped (for `sandbox up`).
    pub fn detach(mut self) -> u32 {
        self.child.take().map(|c| c.id()).unwrap_or_default()
    }

    /// Stops the server and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a detached server by its process id (`kill -TERM`, then `-KILL` if it lingers).
pub fn stop_pid(pid: u32) -> Result<(), SandboxError> {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    if !alive(pid) {
        return Ok(());
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    for _ in 0..50 {
        if !alive(pid) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
    Ok(())
}

/// The Python that has moto: `BREAKWATER_PYTHON`, else the project's `.venv`.
pub fn python() -> Result<PathBuf, SandboxError> {
    if let Some(p) = std::env::var_os("BREAKWATER_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        Ok(venv)
    } else {
        Err(SandboxError::Moto(format!(
            "{} not found: run `make setup` first",
            venv.display()
        )))
    }
}

pub use crate::loopback::free_port;

/// A connection to the server on loopback (2-s connect, 30-s read timeouts).
fn connect(port: u16) -> Result<std::net::TcpStream, SandboxError> {
    let stream = std::net::TcpStream::connect_timeout(
        &([127, 0, 0, 1], port).into(),
        Duration::from_secs(2),
    )
    .map_err(|e| SandboxError::Io(format!("connect 127.0.0.1:{port}: {e}")))?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
    Ok(stream)
}

/// A minimal blocking HTTP/1.1 request to 127.0.0.1 returning the status code (readiness and reset
/// must not need an async runtime).
fn http_request(port: u16, method: &str, path: &str) -> Result<u16, SandboxError> {
    use std::io::{Read, Write};
    let mut stream = connect(port)?;
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .map_err(|e| SandboxError::Io(e.to_string()))?;
    let mut head = [0u8; 16];
    stream
        .read_exact(&mut head)
        .map_err(|e| SandboxError::Io(format!("read from 127.0.0.1:{port}: {e}")))?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SandboxError::Io(format!("not an HTTP response: {text:?}")))
}

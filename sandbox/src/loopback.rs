//! The one loopback HTTP/1.1 server loop the sandbox's emulators share (the Lambda Runtime API,
//! the fault proxy, the Kubernetes API): bind a free port on 127.0.0.1, serve each connection
//! on its own task with the caller's handler, until the task is aborted.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::SandboxError;

/// A server answering on a free loopback port.
#[derive(Debug)]
pub struct Loopback {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The accept loop (abort it to stop serving).
    pub task: JoinHandle<()>,
}

impl Loopback {
    /// Binds `127.0.0.1:0` and serves every request with `handle` (an error from it drops the
    /// connection, as the fault proxy does on purpose).
    pub async fn serve<H, F, E>(handle: H) -> Result<Self, SandboxError>
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Result<Response<Full<Bytes>>, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| SandboxError::Io(format!("bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SandboxError::Io(e.to_string()))?;
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handle = handle.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(handle);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Loopback { addr, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A port that was free a moment ago on 127.0.0.1 (for a server started elsewhere, or for an
/// address nothing answers on).
pub fn free_port() -> Result<u16, SandboxError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| SandboxError::Io(format!("bind 127.0.0.1:0: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| SandboxError::Io(e.to_string()))
}

/// The value of `key` in a query string, percent-decoded.
pub(crate) fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

/// `%XX` escapes decoded, a `+` as a space (form encoding).
pub(crate) fn percent_decode(text: &str) -> String {
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

/// The SigV4 credential scope of an `Authorization` header, split at `/`:
/// `[access key, date, region, service, "aws4_request"]` (empty when unsigned).
pub(crate) fn credential_scope(authorization: &str) -> Vec<&str> {
    authorization
        .split("Credential=")
        .nth(1)
        .and_then(|s| s.split([',', ' ']).next())
        .map(|s| s.split('/').collect())
        .unwrap_or_default()
}

//! Kubernetes access to EKS clusters: the cluster endpoint and CA from `eks:DescribeCluster`, a
//! bearer token the function makes itself ([`token`]), and a kube-rs client over rustls + ring.
//! In the sandbox, `BREAKWATER_KUBE_ENDPOINT` (loopback only) replaces the endpoint.

pub mod capacity;
pub mod nodes;
pub mod ops;
pub mod pods;
pub mod rollout;
pub mod token;
pub mod workloads;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use aws_credential_types::provider::ProvideCredentials;
use base64::Engine;

use crate::aws::Aws;
use crate::error::{Error, Result};

/// Where a cluster's API server is, and the CA its certificate is signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// `https://….eks.amazonaws.com`, or the sandbox's `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The CA certificate (DER), `None` for a plain-HTTP sandbox endpoint.
    pub ca_der: Option<Vec<u8>>,
}

/// The DER bytes of the first certificate of a PEM bundle (EKS gives base64 of the PEM).
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END CERTIFICATE-----"))
        .map(str::trim)
        .collect();
    if body.is_empty() {
        return Err(Error::Aws("the cluster CA is not a PEM certificate".into()));
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| Error::Aws(format!("the cluster CA is not valid base64: {e}")))
}

/// Whether `endpoint` is plain HTTP on loopback (the only override honoured).
pub fn is_loopback(endpoint: &str) -> bool {
    endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:")
}

/// Kubernetes clients per cluster for a warm container: the endpoint and CA are looked up once,
/// the token is remade every [`token::TOKEN_REUSE`].
pub struct KubeClients {
    override_endpoint: Option<String>,
    access: Mutex<HashMap<String, ClusterAccess>>,
    clients: Mutex<HashMap<String, (String, kube::Client)>>,
    tokens: token::TokenCache,
}

impl std::fmt::Debug for KubeClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClients")
            .field("override_endpoint", &self.override_endpoint)
            .field("clusters", &lock(&self.access).keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl KubeClients {
    /// `override_endpoint` (from `BREAKWATER_KUBE_ENDPOINT`) must be a loopback HTTP URL.
    pub fn new(override_endpoint: Option<String>) -> Result<Self> {
        if let Some(e) = &override_endpoint {
            if !is_loopback(e) {
                return Err(crate::config::ConfigError {
                    variable: "BREAKWATER_KUBE_ENDPOINT",
                    reason: format!(
                        "{e:?} is not a loopback http:// URL (it exists for the sandbox)"
                    ),
                }
                .into());
            }
        }
        Ok(KubeClients {
            override_endpoint,
            access: Mutex::new(HashMap::new()),
            clients: Mutex::new(HashMap::new()),
            tokens: token::TokenCache::default(),
        })
    }

    /// The endpoint and CA of `cluster` (DescribeCluster, once per container).
    pub async fn access(&self, aws: &Aws, cluster: &str) -> Result<ClusterAccess> {
        if let Some(found) = lock(&self.access).get(cluster) {
            return Ok(found.clone());
        }
        let access = match &self.override_endpoint {
            Some(endpoint) => ClusterAccess {
                endpoint: endpoint.clone(),
                ca_der: None,
            },
            None => {
                let described = aws
                    .eks()
                    .describe_cluster()
                    .name(cluster)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk(&format!("describe cluster {cluster}"), &e))?;
                let c = described
                    .cluster
                    .ok_or_else(|| Error::NotFound(format!("cluster {cluster}")))?;
                let endpoint = c
                    .endpoint
                    .ok_or_else(|| Error::Aws(format!("cluster {cluster} has no endpoint yet")))?;
                let pem = c
                    .certificate_authority
                    .and_then(|a| a.data)
                    .ok_or_else(|| Error::Aws(format!("cluster {cluster} has no CA data")))?;
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(pem.trim())
                    .map_err(|e| Error::Aws(format!("cluster {cluster} CA data: {e}")))?;
                ClusterAccess {
                    endpoint,
                    ca_der: Some(pem_to_der(&String::from_utf8_lossy(&pem))?),
                }
            }
        };
        lock(&self.access).insert(cluster.to_string(), access.clone());
        Ok(access)
    }

    /// A client of `cluster` authenticated with a fresh-enough token.
    pub async fn client(&self, aws: &Aws, cluster: &str, now_ms: u64) -> Result<kube::Client> {
        let access = self.access(aws, cluster).await?;
        let credentials = match aws.config().credentials_provider() {
            Some(provider) => provider.provide_credentials().await.map_err(|e| {
                Error::Config(crate::config::ConfigError {
                    variable: "AWS_ACCESS_KEY_ID",
                    reason: format!("no credentials to sign the EKS token: {e}"),
                })
            })?,
            None => {
                return Err(Error::Config(crate::config::ConfigError {
                    variable: "AWS_ACCESS_KEY_ID",
                    reason: "no credentials provider to sign the EKS token".into(),
                }))
            }
        };
        let region = aws.region().to_string();
        let at = UNIX_EPOCH + Duration::from_millis(now_ms);
        let token = self.tokens.get_or_make(cluster, now_ms, || {
            token::eks_token(&credentials, &region, cluster, at)
        })?;
        if let Some((made_with, client)) = lock(&self.clients).get(cluster) {
            if *made_with == token {
                return Ok(client.clone());
            }
        }
        let client = build_client(&access, &token)?;
        lock(&self.clients).insert(cluster.to_string(), (token, client.clone()));
        Ok(client)
    }
}

// Here, beside `KubeClients` (sandbox/iam_contract.py reads an adapter's impls from its file).
impl nodes::Clusters for KubeClients {
    type Cluster = kube::Client;

    async fn cluster(&self, aws: &Aws, name: &str, now_ms: u64) -> Result<kube::Client> {
        self.client(aws, name, now_ms).await
    }
}

/// A kube-rs client for `access` with a bearer `token`.
pub fn build_client(access: &ClusterAccess, token: &str) -> Result<kube::Client> {
    let url: http::Uri = access
        .endpoint
        .parse()
        .map_err(|e| Error::Aws(format!("cluster endpoint {:?}: {e}", access.endpoint)))?;
    let mut config = kube::Config::new(url);
    config.root_cert = access.ca_der.clone().map(|der| vec![der]);
    config.auth_info.token = Some(secrecy::SecretString::from(token.to_string()));
    // The 2-minute warning leaves no room for a hung connection.
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = Some(Duration::from_secs(10));
    config.write_timeout = Some(Duration::from_secs(10));
    // kube-rs retries every 429 by default (15 times, backoff up to 1,000 s) — including an
    // eviction refused by a PodDisruptionBudget, which would hang a 2-minute drain for minutes.
    // The callers retry themselves, bounded by their deadline.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| Error::Aws(format!("Kubernetes client: {e}")))
}

/// How many times, in all, a read is tried when the API server throttles it, fails it with a 5xx,
/// or the connection drops.
pub const READ_ATTEMPTS: u32 = 3;
/// The longest pause before trying a read again, whatever `Retry-After` says: a drain's 2-minute
/// deadline keeps its room.
const READ_PAUSE_CAP: Duration = Duration::from_secs(2);

/// Whether a kube-rs error is worth another try of the same read: 429, a 5xx, or no answer.
pub fn transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The pause before try `attempt + 1`: the server's `Retry-After` when it sent one, else 200 ms
/// doubled per try; never more than [`READ_PAUSE_CAP`].
pub fn read_pause(attempt: u32, retry_after_seconds: Option<u64>) -> Duration {
    let backoff = Duration::from_millis(200 * (1 << attempt.saturating_sub(1).min(4)));
    retry_after_seconds
        .map(Duration::from_secs)
        .unwrap_or(backoff)
        .min(READ_PAUSE_CAP)
}

/// Runs a read (GET or LIST — safe to repeat, "Kubernetes API Concepts") up to [`READ_ATTEMPTS`]
/// times while it fails transiently ([`transient`]), pausing [`read_pause`] in between, as
/// client-go does for a throttled or failed request. A kube-rs client here has its own retries off
/// (an eviction's 429 is an answer, not a fault), so reads get them here.
pub async fn read_with_retries<T, F, Fut>(mut read: F) -> std::result::Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(e) if attempt < READ_ATTEMPTS && transient(&e) => {
                let retry_after = match &e {
                    kube::Error::Api(status) => status
                        .details
                        .as_ref()
                        .map(|d| u64::from(d.retry_after_seconds))
                        .filter(|s| *s > 0),
                    _ => None,
                };
                tracing::warn!(error = %e, attempt, "a Kubernetes read failed transiently; trying again");
                tokio::time::sleep(read_pause(attempt, retry_after)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// How long one watch stream is asked to last (`timeoutSeconds`): under the client's 10-s read
/// timeout, so that a quiet stream is ended by the server, not cut by the client.
const WATCH_SPAN_S: u64 = 8;

/// The pause before watching again after a stream that brought nothing, and before listing again
/// after an `ERROR` event: never a hot loop against the API server.
const WATCH_AGAIN_PAUSE: Duration = Duration::from_millis(100);

/// How one watch stream ended.
enum Watched {
    /// The object settled, or is gone.
    Settled,
    /// The stream ended (the server's timeout, or cut): watch again from the last version seen.
    Ended,
    /// An `ERROR` event (410 Expired: the version is too old): list again.
    Relist,
}

/// How a wait for an object ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waited {
    /// It was already so (gone, or settled) at the first look.
    Already,
    /// It came to that while watched.
    Came,
    /// The time was up first.
    TimedOut,
}

impl Waited {
    /// Gone or settled, at once or later.
    pub fn came(self) -> bool {
        self != Waited::TimedOut
    }
}

/// The time the first look of a wait may take even when the wait is shorter (a wait of zero is
/// one read).
const FIRST_LOOK: Duration = Duration::from_secs(2);

/// Waits, at most `wait`, until the object `name` is gone or `settled` says so of it. It lists
/// the object (by `metadata.name`), then watches it from the list's resourceVersion — streams, no
/// polling — as client-go's reflector does
/// (<https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>).
/// The list's version, not a GET's: a single object's version is that of its last change, which
/// the watch cache may no longer hold (410). When the server ends a stream (it may, at any time)
/// it watches again from the last version it saw; after a 410 or an `ERROR` event it lists again.
/// Every list is bounded by the time left (the first one by [`FIRST_LOOK`] at least).
pub async fn wait_for<K>(
    api: &kube::Api<K>,
    name: &str,
    wait: Duration,
    settled: impl Fn(&K) -> bool,
) -> Result<Waited>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    use futures_util::TryStreamExt;
    use kube::api::{ListParams, WatchEvent, WatchParams};
    let until = tokio::time::Instant::now() + wait;
    let left = || until.saturating_duration_since(tokio::time::Instant::now());
    let what = format!("watch {name}");
    let fields = format!("metadata.name={name}");
    let by_name = ListParams::default().fields(&fields);
    let mut first = true;
    loop {
        let bound = if first {
            left().max(FIRST_LOOK)
        } else {
            left()
        };
        let Ok(listed) =
            tokio::time::timeout(bound, read_with_retries(|| api.list(&by_name))).await
        else {
            return Ok(Waited::TimedOut);
        };
        let listed = listed.map_err(|e| from_kube(&what, &e))?;
        let already = if first { Waited::Already } else { Waited::Came };
        first = false;
        let Some(current) = listed.items.first() else {
            return Ok(already);
        };
        if settled(current) {
            return Ok(already);
        }
        let mut version = listed.metadata.resource_version.clone().unwrap_or_default();
        loop {
            let span = left();
            if span.is_zero() {
                return Ok(Waited::TimedOut);
            }
            let seconds = u32::try_from(span.as_secs().clamp(1, WATCH_SPAN_S)).unwrap_or(1);
            let params = WatchParams::default().fields(&fields).timeout(seconds);
            let before = version.clone();
            let watched = tokio::time::timeout(span, async {
                let stream = api.watch(&params, &version).await?;
                futures_util::pin_mut!(stream);
                loop {
                    let event = match stream.try_next().await {
                        Ok(Some(event)) => event,
                        Ok(None) => return Ok(Watched::Ended),
                        // A stream cut midway (a read timeout, a dropped connection).
                        Err(e) => {
                            tracing::debug!(error = %e, "a watch stream was cut; watching again");
                            return Ok(Watched::Ended);
                        }
                    };
                    match event {
                        WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                            if settled(&o) {
                                return Ok(Watched::Settled);
                            }
                            if let Some(v) = o.meta().resource_version.clone() {
                                version = v;
                            }
                        }
                        WatchEvent::Deleted(_) => return Ok(Watched::Settled),
                        WatchEvent::Bookmark(b) => version = b.metadata.resource_version,
                        WatchEvent::Error(_) => return Ok(Watched::Relist),
                    }
                }
            })
            .await;
            match watched {
                Err(_) => return Ok(Waited::TimedOut),
                Ok(Ok(Watched::Settled)) => return Ok(Waited::Came),
                // Watched again from the last version seen; after a pause when the stream
                // brought nothing new (never a hot loop), and from a new list when there is no
                // version to watch from.
                Ok(Ok(Watched::Ended)) if version != before && !version.is_empty() => {}
                Ok(Ok(Watched::Ended)) => {
                    tokio::time::sleep(WATCH_AGAIN_PAUSE.min(left())).await;
                    if version.is_empty() {
                        break;
                    }
                }
                Ok(Ok(Watched::Relist)) => {
                    tokio::time::sleep(WATCH_AGAIN_PAUSE.min(left())).await;
                    break;
                }
                // 410 Gone as the answer's status, not as an event: the version is too old.
                Ok(Err(kube::Error::Api(status))) if status.code == 410 => {
                    tokio::time::sleep(WATCH_AGAIN_PAUSE.min(left())).await;
                    break;
                }
                Ok(Err(e)) if transient(&e) => {
                    tracing::warn!(error = %e, "a Kubernetes watch failed transiently; listing again");
                    tokio::time::sleep(read_pause(1, None).min(left())).await;
                    break;
                }
                Ok(Err(e)) => return Err(from_kube(&what, &e)),
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Classifies a kube-rs error the way [`Error::from_sdk`] does AWS ones.
pub fn from_kube(what: &str, err: &kube::Error) -> Error {
    match err {
        kube::Error::Api(status) => {
            let detail = format!(
                "{what}: {} ({}, {})",
                status.message, status.reason, status.code
            );
            match status.code {
                404 => Error::NotFound(detail),
                409 => Error::Conflict(detail),
                401 | 403 => Error::Forbidden(detail),
                429 | 500..=599 => Error::Retryable(detail),
                _ => Error::Aws(detail),
            }
        }
        other => Error::Retryable(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_pauses_as_the_server_asks_but_never_past_the_cap() {
        assert_eq!(read_pause(1, None), Duration::from_millis(200));
        assert_eq!(read_pause(2, None), Duration::from_millis(400));
        assert_eq!(read_pause(1, Some(1)), Duration::from_secs(1));
        assert_eq!(read_pause(1, Some(30)), READ_PAUSE_CAP);
    }

    #[test]
    fn reads_the_first_certificate_of_a_pem_bundle() {
        let pem = "-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n";
        assert_eq!(pem_to_der(pem).unwrap(), vec![0, 1, 2, 3, 4]);
        assert!(pem_to_der("not a certificate").is_err());
    }

    #[test]
    fn only_a_loopback_override_is_honoured() {
        assert!(KubeClients::new(Some("http://127.0.0.1:8080".into())).is_ok());
        let err = KubeClients::new(Some("https://evil.example.com".into())).unwrap_err();
        assert!(
            err.to_string().contains("BREAKWATER_KUBE_ENDPOINT"),
            "{err}"
        );
    }
}

//! What the integration tests share: one moto server per test module (it exits with the binary),
//! unique names per test, and clients pointed at an endpoint.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use breakwater::aws::Aws;
use breakwater::clock::Clock;
use breakwater::state::StateStore;
use breakwater_sandbox::moto::{Lifetime, Moto};

/// Defines `moto()` in the calling module: the module's own moto server, started on first use.
/// Each module keeps the server to itself, as when every file was its own test binary: a sweep
/// or a listing in one module never sees another module's buckets, budgets or alarms.
macro_rules! moto_server {
    () => {
        /// This module's moto server.
        fn moto() -> &'static breakwater_sandbox::moto::Moto {
            static MOTO: std::sync::OnceLock<breakwater_sandbox::moto::Moto> =
                std::sync::OnceLock::new();
            MOTO.get_or_init($crate::common::start_moto)
        }
    };
}
pub(crate) use moto_server;

/// A moto server that exits with the test binary.
pub fn start_moto() -> Moto {
    Moto::start(Lifetime::TiedToParent).expect("moto starts (run `make setup` if .venv is missing)")
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Clients pointed at `endpoint` in `region`.
pub async fn aws(endpoint: &str, region: &str) -> Aws {
    Aws::for_endpoint(endpoint, region).await
}

/// Tags `bucket` with `tags` (PutBucketTagging replaces the whole set).
pub async fn tag_bucket(s3: &aws_sdk_s3::Client, bucket: &str, tags: &[(&str, &str)]) {
    use aws_sdk_s3::types::{Tag, Tagging};
    let set = tags
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
        .collect();
    s3.put_bucket_tagging()
        .bucket(bucket)
        .tagging(Tagging::builder().set_tag_set(Some(set)).build().unwrap())
        .send()
        .await
        .unwrap();
}

/// A fresh bucket in us-east-1 of `moto` and a store over it.
pub async fn fresh_store(moto: &Moto, clock: Arc<dyn Clock>) -> StateStore {
    let aws = aws(&moto.endpoint(), "us-east-1").await;
    let bucket = unique("state");
    aws.s3()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    StateStore::new(aws.s3(), bucket, clock)
}

/// The raw JSON of an object, read straight from `moto`.
pub async fn read_object(moto: &Moto, bucket: &str, key: &str) -> Option<serde_json::Value> {
    let aws = aws(&moto.endpoint(), "us-east-1").await;
    serde_json::from_slice(&object_bytes(&aws, bucket, key).await.ok()?).ok()
}

/// An object's text, read straight from moto in the bucket's region.
pub async fn read_text(direct: &breakwater::aws::Aws, bucket: &str, key: &str) -> String {
    let bytes = object_bytes(direct, bucket, key)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    String::from_utf8(bytes).unwrap()
}

async fn object_bytes(
    aws: &breakwater::aws::Aws,
    bucket: &str,
    key: &str,
) -> Result<Vec<u8>, String> {
    let object = aws
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let bytes = object.body.collect().await.map_err(|e| e.to_string())?;
    Ok(bytes.into_bytes().to_vec())
}

/// `kubectl`, when one is on the PATH (Debian's kubernetes-client provides one).
pub fn kubectl() -> Option<String> {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .ok()?;
    found.status.success().then(|| "kubectl".to_string())
}

/// Asserts that a ClusterRole file grants every request in `requests`, as the API server's
/// authorizer reads them: a panic names the first request it does not.
pub fn assert_rbac_allows(yaml: &str, requests: &[breakwater_sandbox::kube::KubeRequest]) {
    let allowed = rbac_rules(yaml);
    assert!(!requests.is_empty());
    for r in requests {
        let asked = authorization(&r.method, &r.path);
        assert!(
            allowed.contains(&asked),
            "{} {} needs {asked:?}, which the ClusterRole does not grant ({allowed:?})",
            r.method,
            r.path
        );
    }
}

/// The (API group, resource, verb) a request needs, as the API server's authorizer reads it
/// (<https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb>:
/// GET of a collection is `list`, or `watch` with `?watch=true`; of one object `get`; POST
/// `create`; PATCH `patch`; DELETE `delete`; a subresource is `resource/subresource`).
fn authorization(method: &str, path: &str) -> (String, String, String) {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let watch = query
        .split('&')
        .any(|pair| pair == "watch=true" || pair == "watch=1");
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest.to_vec()),
        ["apis", group, _version, rest @ ..] => (group.to_string(), rest.to_vec()),
        _ => panic!("not a resource path: {path}"),
    };
    let rest = match rest.as_slice() {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest.to_vec(),
        other => other.to_vec(),
    };
    let resource = match rest.as_slice() {
        [plural, _name, sub] => format!("{plural}/{sub}"),
        [plural, ..] => plural.to_string(),
        [] => panic!("no resource in {path}"),
    };
    let verb = match (method, rest.len()) {
        ("GET", 1) if watch => "watch",
        ("GET", 1) => "list",
        ("GET", _) => "get",
        ("POST", _) => "create",
        ("PATCH", _) => "patch",
        ("PUT", _) => "update",
        ("DELETE", _) => "delete",
        (m, _) => panic!("no verb for {m} {path}"),
    };
    (group, resource, verb.to_string())
}

/// Every (API group, resource, verb) a ClusterRole's rules grant (the flow style the files use).
fn rbac_rules(yaml: &str) -> Vec<(String, String, String)> {
    let list = |line: &str| -> Vec<String> {
        let inner = line.split_once('[').map(|(_, r)| r).unwrap_or_default();
        inner
            .trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect()
    };
    let mut rules = Vec::new();
    let (mut groups, mut resources) = (Vec::new(), Vec::new());
    for line in yaml.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("- apiGroups:") {
            groups = list(rest);
        } else if let Some(rest) = line.strip_prefix("resources:") {
            resources = list(rest);
        } else if let Some(rest) = line.strip_prefix("verbs:") {
            for g in &groups {
                for r in &resources {
                    for v in list(rest) {
                        rules.push((g.clone(), r.clone(), v));
                    }
                }
            }
        }
    }
    rules
}

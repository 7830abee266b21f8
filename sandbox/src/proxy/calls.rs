//! What the fault proxy records of a request, and how it tells the service, region and operation
//! from the bytes alone: the SigV4 credential scope, `X-Amz-Target`, the query protocol's
//! `Action`, the REST shapes of S3 and the REST-JSON services, and the Kubernetes API's paths
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>).

use bytes::Bytes;

use super::Fault;

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The signing name of the service (`kubernetes` for the Kubernetes API).
    pub service: String,
    /// The operation, as well as the proxy can tell.
    pub operation: String,
    /// The region of the signature.
    pub region: String,
    /// HTTP method and path.
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The status returned to the client (`None` when the connection was dropped); for
    /// [`Fault::ResetAfterCommit`], upstream's status, which the client never saw.
    pub status: Option<u16>,
    /// The fault injected, if any.
    pub fault: Option<String>,
    /// When the request arrived (µs since the proxy started).
    pub arrived_us: u64,
    /// When it was sent upstream and how long upstream took to answer (µs), for forwarded
    /// requests.
    pub upstream_us: Option<(u64, u64)>,
    /// A hash of the request body: two calls with the same operation, path and body asked for
    /// the same thing.
    pub body_hash: u64,
}

impl Call {
    /// Whether the call changes something (anything but `Get*`, `List*`, `Describe*`, `Head*`,
    /// `Watch*`).
    pub fn mutates(&self) -> bool {
        !["Get", "List", "Describe", "Head", "Watch"]
            .iter()
            .any(|p| self.operation.starts_with(p))
    }

    /// Whether upstream carried it out (a 2xx that no fault replaced; a change whose answer was
    /// lost on the way back was carried out all the same).
    pub fn succeeded(&self) -> bool {
        self.fault.as_deref().is_none_or(Fault::forwards)
            && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Service, region and operation from the SigV4 credential scope, `X-Amz-Target`, the query
/// protocol's `Action`, or (for S3) the REST shape of the request.
pub(super) fn classify(parts: &hyper::http::request::Parts, body: &Bytes) -> Call {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let authorization = header("authorization");
    let scope = crate::loopback::credential_scope(&authorization);
    let region = scope.get(2).copied().unwrap_or("unknown").to_string();
    let service = scope.get(3).copied().unwrap_or("unknown").to_string();
    let query = parts.uri.query().unwrap_or_default();
    if scope.is_empty() {
        if let Some(operation) = kube_operation(parts.method.as_str(), parts.uri.path(), query) {
            return Call {
                service: KUBERNETES.to_string(),
                operation,
                region: String::new(),
                ..call_of(parts, body)
            };
        }
    }
    let target = header("x-amz-target");
    let rpc_v2 = parts
        .uri
        .path()
        .strip_prefix("/service/")
        .and_then(|p| p.split_once("/operation/"))
        .map(|(_, op)| op.to_string());
    let operation = if let Some(op) = target.rsplit('.').next().filter(|_| !target.is_empty()) {
        op.to_string()
    } else if let Some(op) = rpc_v2 {
        // Smithy RPC v2 CBOR (CloudWatch): POST /service/<Service>/operation/<Operation>.
        op
    } else if let Some(action) =
        form_value(&String::from_utf8_lossy(body), "Action").or_else(|| form_value(query, "Action"))
    {
        action
    } else if service == "s3" {
        s3_operation(
            parts.method.as_str(),
            parts.uri.path(),
            query,
            parts.headers.contains_key("x-amz-copy-source"),
        )
    } else {
        rest_operation(parts.method.as_str(), parts.uri.path())
            .map(str::to_string)
            .unwrap_or_else(|| format!("{} {}", parts.method, parts.uri.path()))
    };
    Call {
        service,
        operation,
        region,
        ..call_of(parts, body)
    }
}

/// The service name the proxy gives Kubernetes API calls (they carry no SigV4 scope).
pub const KUBERNETES: &str = "kubernetes";

pub(super) fn call_of(parts: &hyper::http::request::Parts, body: &Bytes) -> Call {
    Call {
        service: String::new(),
        operation: String::new(),
        region: String::new(),
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        status: None,
        fault: None,
        arrived_us: 0,
        upstream_us: None,
        body_hash: {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut h);
            h.finish()
        },
    }
}

/// A Kubernetes API request as `<Verb> <resource>[/<subresource>]` (`Patch nodes`, `Create
/// pods/eviction`, `List pods`); `None` when the path is not the API's.
pub(super) fn kube_operation(method: &str, path: &str, query: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        ["api" | "apis" | "version", ..] => return Some("Get discovery".into()),
        _ => return None,
    };
    let rest = match rest {
        ["namespaces", _, tail @ ..] if !tail.is_empty() => tail,
        other => other,
    };
    let (resource, name, sub) = (rest.first()?, rest.get(1), rest.get(2));
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, name) {
        ("GET", _) if watch => "Watch",
        ("GET", Some(_)) => "Get",
        ("GET", None) => "List",
        ("POST", _) => "Create",
        ("PUT", _) => "Update",
        ("PATCH", _) => "Patch",
        ("DELETE", _) => "Delete",
        (other, _) => other,
    };
    Some(match sub {
        Some(sub) => format!("{verb} {resource}/{sub}"),
        None => format!("{verb} {resource}"),
    })
}

pub(super) fn form_value(form: &str, key: &str) -> Option<String> {
    form.split('&').find_map(|pair| {
        pair.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

pub(super) fn s3_operation(method: &str, path: &str, query: &str, copy: bool) -> String {
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let bucket = segments.next().unwrap_or_default();
    let has_key = segments.next().is_some_and(|k| !k.is_empty());
    let has = |q: &str| {
        query
            .split('&')
            .any(|p| p == q || p.starts_with(&format!("{q}=")))
    };
    let sub = [
        "lifecycle",
        "tagging",
        "versioning",
        "policy",
        "encryption",
        "location",
        "notification",
        "replication",
        "object-lock",
    ]
    .into_iter()
    .find(|s| has(s));
    let sub_name = |s: &str| match s {
        "lifecycle" => "BucketLifecycleConfiguration".to_string(),
        "object-lock" => "ObjectLockConfiguration".to_string(),
        other => format!("Bucket{}{}", other[..1].to_uppercase(), &other[1..]),
    };
    match (method, has_key, sub) {
        ("GET", _, _) if bucket.is_empty() => "ListBuckets".to_string(),
        ("PUT", true, _) if copy => "CopyObject".to_string(),
        ("PUT", true, Some("tagging")) => "PutObjectTagging".to_string(),
        ("PUT", true, _) => "PutObject".to_string(),
        ("GET", true, _) => "GetObject".to_string(),
        ("HEAD", true, _) => "HeadObject".to_string(),
        ("DELETE", true, _) => "DeleteObject".to_string(),
        ("PUT", false, Some(s)) => format!("Put{}", sub_name(s)),
        ("GET", false, Some(s)) => format!("Get{}", sub_name(s)),
        ("DELETE", false, Some("lifecycle")) => "DeleteBucketLifecycle".to_string(),
        ("DELETE", false, Some(s)) => format!("Delete{}", sub_name(s)),
        ("PUT", false, None) => "CreateBucket".to_string(),
        ("GET", false, None) => "ListObjects".to_string(),
        ("HEAD", false, _) => "HeadBucket".to_string(),
        ("DELETE", false, None) => "DeleteBucket".to_string(),
        ("POST", false, _) if has("delete") => "DeleteObjects".to_string(),
        (m, _, _) => format!("{m} {path}"),
    }
}

/// The operation of a REST (EKS, Route 53) request, for those Breakwater calls.
pub(super) fn rest_operation(method: &str, path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    Some(match (method, segments.as_slice()) {
        ("POST", ["clusters", _, "node-groups", _, "update-config"]) => "UpdateNodegroupConfig",
        ("GET", ["clusters", _, "node-groups", _]) => "DescribeNodegroup",
        ("GET", ["clusters", _, "node-groups"]) => "ListNodegroups",
        ("GET", ["clusters", _]) => "DescribeCluster",
        ("GET", [_, "healthcheck", _]) => "GetHealthCheck",
        ("POST", [_, "healthcheck", _]) => "UpdateHealthCheck",
        ("POST", [_, "healthcheck"]) => "CreateHealthCheck",
        ("POST", [_, "hostedzone", _, "rrset"]) => "ChangeResourceRecordSets",
        ("GET", [_, "hostedzone", _, "rrset"]) => "ListResourceRecordSets",
        ("POST", [_, "hostedzone"]) => "CreateHostedZone",
        ("GET", [_, "change", _]) => "GetChange",
        _ => return None,
    })
}

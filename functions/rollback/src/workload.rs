//! What a rollback acts on: `cluster/namespace/Kind/name`, from alarm tags, configuration or a
//! command. Names are checked as Kubernetes checks them, so a forged tag cannot reach a path.

use std::collections::BTreeMap;
use std::fmt;

use breakwater::kube::workloads::ObjectAt;
use breakwater::{Error, Result};
use serde::{Deserialize, Serialize};

/// The kinds a rollback knows (Deployment, Argo Rollout).
pub use breakwater::kube::workloads::WorkloadKind as Kind;

/// One workload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Workload {
    /// The EKS cluster.
    pub cluster: String,
    /// The namespace.
    pub namespace: String,
    /// Deployment or Rollout.
    pub kind: Kind,
    /// The object's name.
    pub name: String,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{:?}/{}",
            self.cluster, self.namespace, self.kind, self.name
        )
    }
}

/// The alarm tags that name a workload.
pub const TAG_CLUSTER: &str = "breakwater:cluster";
/// Namespace tag.
pub const TAG_NAMESPACE: &str = "breakwater:namespace";
/// Kind tag (`Deployment` when absent).
pub const TAG_KIND: &str = "breakwater:kind";
/// Name tag.
pub const TAG_NAME: &str = "breakwater:workload";

fn dns_label(text: &str, max: usize) -> bool {
    !text.is_empty()
        && text.len() <= max
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !text.starts_with(['-', '.'])
        && !text.ends_with(['-', '.'])
}

fn cluster_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 100
        && text.as_bytes()[0].is_ascii_alphanumeric()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn kind(text: &str) -> Result<Kind> {
    match text {
        "Deployment" | "deployment" | "deploy" => Ok(Kind::Deployment),
        "Rollout" | "rollout" => Ok(Kind::Rollout),
        other => Err(invalid(format!(
            "kind {other:?} is neither Deployment nor Rollout"
        ))),
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidEvent(reason)
}

impl Workload {
    /// A checked workload.
    pub fn new(cluster: &str, namespace: &str, kind: Kind, name: &str) -> Result<Self> {
        if !cluster_name(cluster) {
            return Err(invalid(format!("{cluster:?} is not an EKS cluster name")));
        }
        if !dns_label(namespace, 63) || namespace.contains('.') {
            return Err(invalid(format!("{namespace:?} is not a namespace name")));
        }
        if !dns_label(name, 253) {
            return Err(invalid(format!("{name:?} is not a Kubernetes object name")));
        }
        Ok(Workload {
            cluster: cluster.into(),
            namespace: namespace.into(),
            kind,
            name: name.into(),
        })
    }

    /// `cluster/namespace/Kind/name`, or `namespace/name` / `namespace/Kind/name` in
    /// `default_cluster`.
    pub fn parse(text: &str, default_cluster: Option<&str>) -> Result<Self> {
        let parts: Vec<&str> = text.trim().split('/').collect();
        let missing = || {
            invalid(format!(
                "{text:?}: expected cluster/namespace/Kind/name (or namespace/name with a default cluster)"
            ))
        };
        match parts.as_slice() {
            [cluster, namespace, k, name] => Self::new(cluster, namespace, kind(k)?, name),
            [namespace, k, name] => Self::new(
                default_cluster.ok_or_else(missing)?,
                namespace,
                kind(k)?,
                name,
            ),
            [namespace, name] => Self::new(
                default_cluster.ok_or_else(missing)?,
                namespace,
                Kind::Deployment,
                name,
            ),
            _ => Err(missing()),
        }
    }

    /// The workload an alarm's tags name, `None` when they name none; half a mapping is an error.
    pub fn from_tags(tags: &BTreeMap<String, String>) -> Result<Option<Self>> {
        let get = |k: &str| tags.get(k).map(String::as_str);
        match (get(TAG_CLUSTER), get(TAG_NAMESPACE), get(TAG_NAME)) {
            (None, None, None) => Ok(None),
            (Some(c), Some(ns), Some(name)) => {
                Self::new(c, ns, kind(get(TAG_KIND).unwrap_or("Deployment"))?, name).map(Some)
            }
            _ => Err(invalid(format!(
                "the alarm's tags name a workload only in part: {TAG_CLUSTER}, {TAG_NAMESPACE} and {TAG_NAME} are all needed"
            ))),
        }
    }

    /// The state-store key segment.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{:?}/{}",
            breakwater::state::key_segment(&self.cluster),
            breakwater::state::key_segment(&self.namespace),
            self.kind,
            breakwater::state::key_segment(&self.name)
        )
    }
}

impl Workload {
    /// Where the workload is, for the [`Workloads`] port.
    pub fn at(&self) -> ObjectAt<'_> {
        ObjectAt {
            cluster: &self.cluster,
            namespace: &self.namespace,
            name: &self.name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms_and_refuses_paths() {
        let w = Workload::parse("prod/shop/Deployment/web", None).unwrap();
        assert_eq!(w.to_string(), "prod/shop/Deployment/web");
        assert_eq!(Workload::parse("shop/web", Some("prod")).unwrap(), w);
        assert_eq!(
            Workload::parse("shop/rollout/web", Some("prod"))
                .unwrap()
                .kind,
            Kind::Rollout
        );
        for bad in [
            "shop/web",
            "prod/../x/Deployment/web",
            "prod/shop/Job/web",
            "prod/Shop/Deployment/web",
            "",
            "a/b/c/d/e",
        ] {
            assert!(Workload::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_name_all_or_nothing() {
        let mut tags = BTreeMap::new();
        assert_eq!(Workload::from_tags(&tags).unwrap(), None);
        tags.insert(TAG_CLUSTER.to_string(), "prod".to_string());
        assert!(Workload::from_tags(&tags).is_err());
        tags.insert(TAG_NAMESPACE.to_string(), "shop".to_string());
        tags.insert(TAG_NAME.to_string(), "web".to_string());
        assert_eq!(
            Workload::from_tags(&tags).unwrap().unwrap().to_string(),
            "prod/shop/Deployment/web"
        );
    }
}

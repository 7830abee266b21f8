//! What a Deployment's rollout history is made of, as the controller and `kubectl rollout undo`
//! read it: the revision annotations, the `pod-template-hash` label, the annotations the
//! controller keeps for itself, and template equality ignoring the hash.

use serde_json::{Map, Value};

/// The revision annotation (on the Deployment and each ReplicaSet).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions of a reused ReplicaSet.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The label that tells a Deployment's ReplicaSets apart.
pub const TEMPLATE_HASH: &str = "pod-template-hash";
/// An Argo Rollout's revision annotation, on the Rollout and its ReplicaSets (Argo Rollouts,
/// "Rollback Windows": a rollback is a new revision, as a Deployment's is).
pub const ROLLOUT_REVISION: &str = "rollout.argoproj.io/revision";
/// The label an Argo Rollout's ReplicaSets and pods carry instead of `pod-template-hash`.
pub const ROLLOUT_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
/// The annotation `kubectl rollout history` shows.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// Annotations neither the controller copies onto ReplicaSets nor `kubectl rollout undo` copies
/// back onto the Deployment.
pub const CONTROLLER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// A value as the API server holds it once decoded into its Go type: `null` fields and empty
/// objects are what Go's encoder writes for unset fields (`creationTimestamp: null`,
/// `resources: {}`), so they are dropped before templates are compared.
pub fn semantic(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), semantic(v)))
                .filter(|(_, v)| !v.as_object().is_some_and(Map::is_empty))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(semantic).collect()),
        other => other.clone(),
    }
}

/// A pod template without its `pod-template-hash` label (or an Argo Rollout's
/// `rollouts-pod-template-hash`).
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(TEMPLATE_HASH);
        labels.remove(ROLLOUT_TEMPLATE_HASH);
    }
    t
}

/// A ReplicaSet's template hash: its `pod-template-hash` label, or an Argo Rollout's
/// `rollouts-pod-template-hash`.
pub fn hash_of(rs: &Value) -> &str {
    let labels = &rs["metadata"]["labels"];
    labels[TEMPLATE_HASH]
        .as_str()
        .or_else(|| labels[ROLLOUT_TEMPLATE_HASH].as_str())
        .unwrap_or_default()
}

/// Whether two pod templates are equal ignoring `pod-template-hash` (`EqualIgnoreHash`).
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    semantic(&without_hash(a)) == semantic(&without_hash(b))
}

/// An object's revision annotation, a Deployment's or an Argo Rollout's (0 when absent or not a
/// number).
pub fn revision_of(obj: &Value) -> i64 {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION).or_else(|| a.get(ROLLOUT_REVISION)))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The UID of an object's controlling owner.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|o| o["controller"] == true)
        .and_then(|o| o["uid"].as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_compare_without_the_hash_and_go_zero_values() {
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "web:1"}]}});
        let go = json!({"metadata": {"labels": {"app": "web", TEMPLATE_HASH: "x"}, "creationTimestamp": null}, "spec": {"containers": [{"name": "web", "image": "web:1", "resources": {}}]}});
        assert!(equal_ignore_hash(&t, &go));
        let mut other = t.clone();
        other["spec"]["containers"][0]["image"] = json!("web:2");
        assert!(!equal_ignore_hash(&other, &t));
        assert_eq!(
            revision_of(&json!({"metadata": {"annotations": {REVISION: "7"}}})),
            7
        );
        assert_eq!(revision_of(&json!({})), 0);
    }
}

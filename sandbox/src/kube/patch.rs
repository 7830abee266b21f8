//! The three patch formats the API server accepts for JSON: JSON merge patch (RFC 7386), JSON
//! patch (RFC 6902, with `test`) and strategic merge patch (merge patch, except that lists with a
//! merge key are merged by that key and `$patch` / `$setElementOrder` / `$retainKeys` /
//! `$deleteFromPrimitiveList` directives are honoured).

use serde_json::{Map, Value};

/// Why a patch could not be applied, split the way the API server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatchError {
    /// The patch document is malformed (400).
    BadRequest(String),
    /// It is well-formed but cannot be applied, e.g. a failed `test` (422).
    Unprocessable(String),
}

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else { return };
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            merge_patch(map.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// How strategic merge patch treats a list field: what the field's Go type declares with its
/// `patchStrategy` / `patchMergeKey` tags (k8s.io/api core/v1 and apps/v1 `types.go`,
/// k8s.io/apimachinery meta/v1 `types.go`; k8s-openapi's `DeepMerge` impls agree). A list
/// without a tag is atomic: the patch's list replaces the stored one as it is
/// (`strategicpatch.mergeSliceHandler`: anything but `merge` returns the patch's slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// No `patchStrategy`: replaced whole (`NodeSpec.Taints`, `PodSpec.Tolerations`, …).
    Atomic,
    /// `patchStrategy:"merge"` with this `patchMergeKey`: merged element by element.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of scalars (`finalizers`, `podCIDRs`): a set union.
    MergePrimitives,
}

/// Whether `path` (from the object's root) is a `PodSpec`: a Pod's `spec`, or the `spec` of
/// any pod template (Deployments, ReplicaSets, DaemonSets, Jobs…).
fn is_pod_spec(kind: &str, path: &[&str]) -> bool {
    (kind == "Pod" && path == ["spec"]) || path.ends_with(&["template", "spec"])
}

/// The strategy of the list at `path` (object keys from the root; a list element's fields
/// continue its list's path) in an object of `kind`, for the kinds the emulator serves.
pub fn list_strategy(kind: &str, path: &[String]) -> ListStrategy {
    use ListStrategy::{Atomic, MergeByKey, MergePrimitives};
    let p: Vec<&str> = path.iter().map(String::as_str).collect();
    let Some((field, parent)) = p.split_last() else {
        return Atomic;
    };
    match (parent, *field) {
        // ObjectMeta.
        (["metadata"], "ownerReferences") => return MergeByKey("uid"),
        (["metadata"], "finalizers") => return MergePrimitives,
        // Every served built-in kind's status conditions (Pod, Node, Namespace, Deployment,
        // ReplicaSet, DaemonSet, PodDisruptionBudget) merge by `type`.
        (["status"], "conditions") => return MergeByKey("type"),
        _ => {}
    }
    match (kind, parent, *field) {
        ("Node", ["spec"], "podCIDRs") => return MergePrimitives,
        ("Node", ["status"], "addresses") => return MergeByKey("type"),
        ("Pod", ["status"], "hostIPs" | "podIPs") => return MergeByKey("ip"),
        ("Pod", ["status"], "resourceClaimStatuses") => return MergeByKey("name"),
        _ => {}
    }
    if is_pod_spec(kind, parent) {
        return match *field {
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "volumes"
            | "imagePullSecrets"
            | "schedulingGates"
            | "resourceClaims" => MergeByKey("name"),
            "hostAliases" => MergeByKey("ip"),
            "topologySpreadConstraints" => MergeByKey("topologyKey"),
            _ => Atomic,
        };
    }
    if let Some((containers, pod_spec)) = parent.split_last() {
        if matches!(
            *containers,
            "containers" | "initContainers" | "ephemeralContainers"
        ) && is_pod_spec(kind, pod_spec)
        {
            return match *field {
                "ports" => MergeByKey("containerPort"),
                "env" => MergeByKey("name"),
                "volumeMounts" => MergeByKey("mountPath"),
                "volumeDevices" => MergeByKey("devicePath"),
                _ => Atomic,
            };
        }
    }
    Atomic
}

/// A strategic merge patch on an object of `kind` (`Node`, `Pod`, `Deployment`, …).
pub fn strategic_merge_patch(
    kind: &str,
    target: &mut Value,
    patch: &Value,
) -> Result<(), PatchError> {
    if !patch.is_object() {
        return Err(PatchError::BadRequest(
            "a strategic merge patch must be a JSON object".into(),
        ));
    }
    smp(kind, &mut Vec::new(), target, patch)
}

fn smp(
    kind: &str,
    path: &mut Vec<String>,
    target: &mut Value,
    patch: &Value,
) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = patch.clone();
        replaced.remove("$patch");
        *target = Value::Object(replaced);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(map) = target else {
        return Ok(());
    };
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        map.retain(|k, _| keep.contains(&k.as_str()) || patch.contains_key(k));
    }
    for (key, value) in patch {
        if key.starts_with('$') {
            if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
                if let (Some(Value::Array(list)), Value::Array(gone)) = (map.get_mut(field), value)
                {
                    list.retain(|v| !gone.contains(v));
                }
            }
            // `$setElementOrder/…` only orders merged lists; `$patch`/`$retainKeys` were handled above.
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        path.push(key.clone());
        let result = match value {
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                map.remove(key);
                Ok(())
            }
            Value::Object(_) => smp(
                kind,
                path,
                map.entry(key.clone()).or_insert(Value::Null),
                value,
            ),
            Value::Array(items) => match list_strategy(kind, path) {
                ListStrategy::MergeByKey(merge_key) => {
                    let current = match map.remove(key) {
                        Some(Value::Array(list)) => list,
                        _ => Vec::new(),
                    };
                    let order = patch.get(&format!("$setElementOrder/{key}"));
                    merge_list(kind, path, current, items, merge_key, order).map(|merged| {
                        map.insert(key.clone(), Value::Array(merged));
                    })
                }
                ListStrategy::MergePrimitives => {
                    let list = map
                        .entry(key.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = list {
                        for item in items {
                            if !list.contains(item) {
                                list.push(item.clone());
                            }
                        }
                    }
                    Ok(())
                }
                ListStrategy::Atomic => {
                    // The patch's list as it is: a `$patch` marker in an element is no directive
                    // here, and the typed decoding drops it as an unknown field.
                    let replaced = items
                        .iter()
                        .map(|item| match item {
                            Value::Object(o) => Value::Object(
                                o.iter()
                                    .filter(|(k, _)| !k.starts_with('$'))
                                    .map(|(k, v)| (k.clone(), v.clone()))
                                    .collect(),
                            ),
                            other => other.clone(),
                        })
                        .collect();
                    map.insert(key.clone(), Value::Array(replaced));
                    Ok(())
                }
            },
            other => {
                map.insert(key.clone(), other.clone());
                Ok(())
            }
        };
        path.pop();
        result?;
    }
    Ok(())
}

fn merge_list(
    kind: &str,
    path: &mut Vec<String>,
    current: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    order: Option<&Value>,
) -> Result<Vec<Value>, PatchError> {
    // `mergeSliceWithSpecialElements`: deletions apply to the stored list; a `replace` element
    // makes the patch's other elements the whole list.
    let mut current = current;
    let mut items = Vec::new();
    let mut replace = false;
    for item in patch {
        match item.get("$patch").and_then(Value::as_str) {
            None => items.push(item),
            Some("delete") => {
                let Some(key) = item.get(merge_key) else {
                    return Err(PatchError::BadRequest(format!(
                        "map: {item} does not contain declared merge key: {merge_key}"
                    )));
                };
                current.retain(|c| c.get(merge_key) != Some(key));
            }
            Some("replace") => replace = true,
            Some(other) => {
                return Err(PatchError::BadRequest(format!(
                    "Unknown patch type: {other} in map: {item}"
                )))
            }
        }
    }
    if replace {
        current.clear();
    }
    for item in items {
        let Some(key) = item.get(merge_key) else {
            return Err(PatchError::BadRequest(format!(
                "map: {item} does not contain declared merge key: {merge_key}"
            )));
        };
        match current.iter().position(|c| c.get(merge_key) == Some(key)) {
            Some(i) => smp(kind, path, &mut current[i], item)?,
            None => {
                let mut added = Value::Null;
                smp(kind, path, &mut added, item)?;
                current.push(added);
            }
        }
    }
    if let Some(Value::Array(order)) = order {
        let rank = |v: &Value| {
            order
                .iter()
                .position(|o| o.get(merge_key) == v.get(merge_key))
                .unwrap_or(usize::MAX)
        };
        current.sort_by_key(rank);
    }
    Ok(current)
}

/// RFC 6902: `add`, `remove`, `replace`, `move`, `copy`, `test`.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::BadRequest(
            "a JSON patch must be an array of operations".into(),
        ));
    };
    let mut working = target.clone();
    for op in ops {
        let name = op["op"]
            .as_str()
            .ok_or_else(|| PatchError::BadRequest(format!("operation without op: {op}")))?;
        let path = op["path"]
            .as_str()
            .ok_or_else(|| PatchError::BadRequest(format!("operation without path: {op}")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::BadRequest(format!("{name} without value: {op}")))
        };
        match name {
            "add" => add(&mut working, path, value()?)?,
            "remove" => {
                remove(&mut working, path)?;
            }
            "replace" => {
                remove(&mut working, path)?;
                add(&mut working, path, value()?)?;
            }
            "move" | "copy" => {
                let from = op["from"]
                    .as_str()
                    .ok_or_else(|| PatchError::BadRequest(format!("{name} without from")))?;
                let moved = if name == "move" {
                    remove(&mut working, from)?
                } else {
                    working
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| missing(from))?
                };
                add(&mut working, path, moved)?;
            }
            "test" => {
                let expected = value()?;
                if working.pointer(path) != Some(&expected) {
                    return Err(PatchError::Unprocessable(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => return Err(PatchError::BadRequest(format!("Unexpected kind: {other}"))),
        }
    }
    *target = working;
    Ok(())
}

fn missing(path: &str) -> PatchError {
    PatchError::Unprocessable(format!("doc is missing path: {path:?}"))
}

fn split(path: &str) -> Result<(String, String), PatchError> {
    let Some(at) = path.rfind('/') else {
        return Err(PatchError::BadRequest(format!("invalid path {path:?}")));
    };
    let last = path[at + 1..].replace("~1", "/").replace("~0", "~");
    Ok((path[..at].to_string(), last))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(&parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(list) => {
            if last == "-" {
                list.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing(path))?;
                if i > list.len() {
                    return Err(missing(path));
                }
                list.insert(i, value);
            }
        }
        _ => return Err(missing(path)),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split(path)?;
    match doc.pointer_mut(&parent).ok_or_else(|| missing(path))? {
        Value::Object(map) => map.remove(&last).ok_or_else(|| missing(path)),
        Value::Array(list) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i >= list.len() {
                return Err(missing(path));
            }
            Ok(list.remove(i))
        }
        _ => Err(missing(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn strategic_merge_replaces_the_atomic_taint_list_as_the_api_server_does() {
        // GIVEN a node with two taints of two controllers
        let mut node = json!({"spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]}});
        // WHEN a strategic merge patch names one taint (NodeSpec.Taints has no patchStrategy)
        strategic_merge_patch(
            "Node",
            &mut node,
            &json!({"spec": {"taints": [{"key": "c", "effect": "NoSchedule"}], "unschedulable": true}}),
        )
        .unwrap();
        // THEN the list is the patch's: the others' taints are gone, nothing is merged by key
        assert_eq!(
            node,
            json!({"spec": {"taints": [{"key": "c", "effect": "NoSchedule"}], "unschedulable": true}})
        );
        // AND a `$patch: delete` element is no directive in an atomic list: it becomes a taint
        // without an effect (which validation then refuses)
        strategic_merge_patch(
            "Node",
            &mut node,
            &json!({"spec": {"taints": [{"key": "c", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(node["spec"]["taints"], json!([{"key": "c"}]));
    }

    #[test]
    fn strategic_merge_merges_the_lists_whose_types_declare_a_merge_key() {
        let mut deployment = json!({"metadata": {"finalizers": ["x"], "ownerReferences": [{"uid": "1", "name": "a"}]},
            "spec": {"template": {"spec": {
                "containers": [{"name": "web", "image": "web:1", "env": [{"name": "A", "value": "1"}],
                                "args": ["--a"]},
                               {"name": "sidecar", "image": "s:1"}],
                "tolerations": [{"key": "t"}]}}}});
        strategic_merge_patch(
            "Deployment",
            &mut deployment,
            &json!({"metadata": {"finalizers": ["y"], "ownerReferences": [{"uid": "1", "name": "b"}]},
                "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
                "containers": [{"name": "web", "image": "web:2", "env": [{"name": "B", "value": "2"}],
                                "args": ["--b"]}],
                "tolerations": [{"key": "u"}]}}}}),
        )
        .unwrap();
        let spec = &deployment["spec"]["template"]["spec"];
        assert_eq!(deployment["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(
            deployment["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "b"}])
        );
        assert_eq!(spec["containers"][0]["name"], "sidecar", "ordered");
        assert_eq!(spec["containers"][1]["image"], "web:2", "merged by name");
        assert_eq!(
            spec["containers"][1]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
            "env merges by name"
        );
        assert_eq!(
            spec["containers"][1]["args"],
            json!(["--b"]),
            "args are atomic"
        );
        assert_eq!(
            spec["tolerations"],
            json!([{"key": "u"}]),
            "tolerations are atomic"
        );
        // `$patch: delete` and `$patch: replace` inside a merged list.
        strategic_merge_patch(
            "Deployment",
            &mut deployment,
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}}),
        )
        .unwrap();
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        strategic_merge_patch(
            "Deployment",
            &mut deployment,
            &json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "new", "image": "n:1"}]}}}}),
        )
        .unwrap();
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"],
            json!([{"name": "new", "image": "n:1"}])
        );
        // A merged element without its merge key is refused.
        assert!(matches!(
            strategic_merge_patch(
                "Pod",
                &mut json!({}),
                &json!({"spec": {"containers": [{"image": "x"}]}})
            ),
            Err(PatchError::BadRequest(_))
        ));
        // The same field name under another parent follows that parent's type.
        assert_eq!(
            list_strategy("Node", &["spec".into(), "taints".into()]),
            ListStrategy::Atomic
        );
        assert_eq!(
            list_strategy("Pod", &["spec".into(), "containers".into(), "ports".into()]),
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            list_strategy("Node", &["status".into(), "addresses".into()]),
            ListStrategy::MergeByKey("type")
        );
    }

    #[test]
    fn json_patch_applies_atomically_and_tests() {
        let mut doc = json!({"metadata": {"resourceVersion": "5"}, "spec": {"taints": []}});
        let before = doc.clone();
        let err = json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/spec/taints/-", "value": {"key": "k"}},
                {"op": "test", "path": "/metadata/resourceVersion", "value": "4"}
            ]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Unprocessable(
                "testing value /metadata/resourceVersion failed: test failed".into()
            )
        );
        assert_eq!(doc, before, "nothing applied when one operation fails");
        json_patch(
            &mut doc,
            &json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
                {"op": "add", "path": "/spec/taints/-", "value": {"key": "k"}},
                {"op": "replace", "path": "/spec/unschedulable", "value": true}
            ]),
        )
        .unwrap_err();
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/spec/taints/-", "value": {"key": "k"}},
                {"op": "add", "path": "/metadata/labels", "value": {"a/b": "1"}},
                {"op": "remove", "path": "/metadata/labels/a~1b"}
            ]),
        )
        .unwrap();
        assert_eq!(doc["spec"]["taints"], json!([{"key": "k"}]));
        assert_eq!(doc["metadata"]["labels"], json!({}));
        assert!(matches!(
            json_patch(&mut doc, &json!({"op": "add"})),
            Err(PatchError::BadRequest(_))
        ));
    }
}

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

/// The merge key of a list field, as the Kubernetes types declare it (`patchMergeKey`), for the
/// fields the emulated resources carry.
fn merge_key(field: &str) -> Option<&'static str> {
    Some(match field {
        "taints" => "key",
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "ports" => "containerPort",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "addresses" => "type",
        _ => return None,
    })
}

/// Primitive lists that strategic merge patch merges instead of replacing.
fn merges_primitives(field: &str) -> bool {
    field == "finalizers"
}

/// A strategic merge patch.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::BadRequest(
            "a strategic merge patch must be a JSON object".into(),
        ));
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
            // `$setElementOrder/…` only orders; `$patch`/`$retainKeys` were handled above.
            continue;
        }
        if value.is_null() {
            map.remove(key);
            continue;
        }
        match value {
            Value::Object(inner)
                if inner.get("$patch").and_then(Value::as_str) == Some("delete") =>
            {
                map.remove(key);
            }
            Value::Object(_) => {
                strategic_merge_patch(map.entry(key.clone()).or_insert(Value::Null), value)?;
            }
            Value::Array(items) => {
                if let Some(merge_key) = merge_key(key) {
                    let current = match map.remove(key) {
                        Some(Value::Array(list)) => list,
                        _ => Vec::new(),
                    };
                    let order = patch.get(&format!("$setElementOrder/{key}"));
                    map.insert(
                        key.clone(),
                        Value::Array(merge_list(current, items, merge_key, order)?),
                    );
                } else if merges_primitives(key) {
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
                } else {
                    map.insert(key.clone(), value.clone());
                }
            }
            other => {
                map.insert(key.clone(), other.clone());
            }
        }
    }
    Ok(())
}

fn merge_list(
    mut current: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    order: Option<&Value>,
) -> Result<Vec<Value>, PatchError> {
    if patch.len() == 1 && patch[0].get("$patch").and_then(Value::as_str) == Some("replace") {
        return Ok(Vec::new());
    }
    for item in patch {
        let Some(key) = item.get(merge_key) else {
            return Err(PatchError::BadRequest(format!(
                "map: {item} does not contain declared merge key: {merge_key}"
            )));
        };
        let position = current.iter().position(|c| c.get(merge_key) == Some(key));
        if item.get("$patch").and_then(Value::as_str) == Some("delete") {
            if let Some(i) = position {
                current.remove(i);
            }
            continue;
        }
        match position {
            Some(i) => strategic_merge_patch(&mut current[i], item)?,
            None => {
                let mut added = Value::Null;
                strategic_merge_patch(&mut added, item)?;
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
    fn strategic_merge_merges_taints_by_key_and_honours_directives() {
        let mut node = json!({"spec": {"taints": [
            {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]}});
        strategic_merge_patch(
            &mut node,
            &json!({"spec": {
                "$setElementOrder/taints": [{"key": "c"}, {"key": "a"}],
                "taints": [{"key": "c", "effect": "NoSchedule"}, {"key": "b", "$patch": "delete"}],
                "unschedulable": true}}),
        )
        .unwrap();
        assert_eq!(
            node,
            json!({"spec": {"taints": [{"key": "c", "effect": "NoSchedule"}, {"key": "a", "effect": "NoSchedule"}],
                "unschedulable": true}})
        );
        let mut pod =
            json!({"metadata": {"finalizers": ["x"]}, "spec": {"tolerations": [{"key": "t"}]}});
        strategic_merge_patch(
            &mut pod,
            &json!({"metadata": {"finalizers": ["y"]}, "spec": {"tolerations": [{"key": "u"}]}}),
        )
        .unwrap();
        assert_eq!(pod["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([{"key": "u"}]),
            "no merge key: replaced"
        );
        assert!(matches!(
            strategic_merge_patch(&mut pod, &json!({"spec": {"containers": [{"image": "x"}]}})),
            Err(PatchError::BadRequest(_))
        ));
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

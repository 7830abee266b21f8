//! The API server's validation of what it stores, for the rules the functions rely on: label and
//! annotation keys and label values (`ValidateObjectMeta`), and a Node's taints
//! (`validateNodeTaints` in kubernetes `pkg/apis/core/validation/validation.go`: the key is a
//! qualified name, the value a label value, the effect one of `NoSchedule`, `PreferNoSchedule`,
//! `NoExecute`, and no two taints share key and effect). An invalid object is refused with 422
//! `Invalid`, a `Status` whose `details.causes` name each field, as `errors.NewInvalid` builds it.

use serde_json::{json, Value};

use super::store::{ApiError, ResourceKind};

/// One invalid field (`field.Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueDuplicate`, `FieldValueInvalid`.
    pub reason: &'static str,
    /// `spec.taints[0].effect`.
    pub field: String,
    /// The error's body (`Required value`, `Unsupported value: "X": supported values: …`).
    pub body: String,
}

impl FieldError {
    fn required(field: String) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field,
            body: "Required value".into(),
        }
    }

    fn invalid(field: String, value: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field,
            body: format!("Invalid value: {value:?}: {detail}"),
        }
    }
}

/// The 422 `Invalid` answer for `errors` on the object `name` of `kind`.
pub fn invalid(kind: &ResourceKind, name: &str, errors: &[FieldError]) -> ApiError {
    let listed: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.body))
        .collect();
    let aggregate = if listed.len() == 1 {
        listed[0].clone()
    } else {
        format!("[{}]", listed.join(", "))
    };
    let group = if kind.group.is_empty() {
        String::new()
    } else {
        format!(".{}", kind.group)
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.body, "field": e.field}))
        .collect();
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{}{group} {name:?} is invalid: {aggregate}", kind.kind),
        details: Some(
            json!({"name": name, "group": kind.group, "kind": kind.kind, "causes": causes}),
        ),
    }
}

fn name_part_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn dns_subdomain_ok(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 253
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.'))
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain, the name ≤ 63 characters of
/// `[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]`.
pub fn qualified_name_ok(text: &str) -> bool {
    match text.split('/').collect::<Vec<_>>().as_slice() {
        [name] => name_part_ok(name),
        [prefix, name] => dns_subdomain_ok(prefix) && name_part_ok(name),
        _ => false,
    }
}

/// `IsValidLabelValue`: empty, or a name part.
pub fn label_value_ok(text: &str) -> bool {
    text.is_empty() || name_part_ok(text)
}

const QUALIFIED: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

fn validate_meta(obj: &Value, errors: &mut Vec<FieldError>) {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !qualified_name_ok(k) {
                errors.push(FieldError::invalid("metadata.labels".into(), k, QUALIFIED));
            }
            let value = v.as_str().unwrap_or_default();
            if !v.is_string() || !label_value_ok(value) {
                errors.push(FieldError::invalid(
                    "metadata.labels".into(),
                    value,
                    LABEL_VALUE,
                ));
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for k in annotations.keys() {
            if !qualified_name_ok(&k.to_lowercase()) {
                errors.push(FieldError::invalid(
                    "metadata.annotations".into(),
                    k,
                    QUALIFIED,
                ));
            }
        }
    }
}

fn validate_taints(taints: &[Value], errors: &mut Vec<FieldError>) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, taint) in taints.iter().enumerate() {
        let at = format!("spec.taints[{i}]");
        let key = taint["key"].as_str().unwrap_or_default();
        let value = taint["value"].as_str().unwrap_or_default();
        let effect = taint["effect"].as_str().unwrap_or_default();
        if key.is_empty() {
            errors.push(FieldError::required(format!("{at}.key")));
        } else if !qualified_name_ok(key) {
            errors.push(FieldError::invalid(format!("{at}.key"), key, QUALIFIED));
        }
        if !label_value_ok(value) {
            errors.push(FieldError::invalid(
                format!("{at}.value"),
                value,
                LABEL_VALUE,
            ));
        }
        if effect.is_empty() {
            errors.push(FieldError::required(format!("{at}.effect")));
        } else if !EFFECTS.contains(&effect) {
            errors.push(FieldError {
                reason: "FieldValueNotSupported",
                field: format!("{at}.effect"),
                body: format!(
                    "Unsupported value: {effect:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                ),
            });
        }
        let pair = (key.to_string(), effect.to_string());
        if seen.contains(&pair) {
            errors.push(FieldError {
                reason: "FieldValueDuplicate",
                field: at,
                body: format!(
                    "Duplicate value: core.Taint{{Key:{key:?}, Value:{value:?}, Effect:{effect:?}, TimeAdded:<nil>}}: taints must be unique by key and effect pair"
                ),
            });
            continue;
        }
        seen.push(pair);
    }
}

/// The validation errors of `obj` as an object of `kind` (empty when it is valid).
pub fn validate(kind: &ResourceKind, obj: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_meta(obj, &mut errors);
    if kind.kind == "Node" {
        match obj.pointer("/spec/taints") {
            None | Some(Value::Null) => {}
            Some(Value::Array(taints)) => validate_taints(taints, &mut errors),
            Some(other) => errors.push(FieldError::invalid(
                "spec.taints".into(),
                &other.to_string(),
                "must be a list of taints",
            )),
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::store::find_kind;

    #[test]
    fn node_taints_are_validated_as_the_api_server_does() {
        let nodes = find_kind("", "v1", "nodes").unwrap();
        let node = |taints: Value| json!({"metadata": {"name": "n"}, "spec": {"taints": taints}});
        assert!(validate(
            nodes,
            &node(
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}])
            )
        )
        .is_empty());
        let errors = validate(
            nodes,
            &node(json!([
                {"key": "a"},
                {"key": "b", "effect": "Sometimes"},
                {"key": "c", "effect": "NoSchedule"},
                {"key": "c", "value": "x", "effect": "NoSchedule"},
                {"key": "-bad-", "value": "not ok!", "effect": "NoSchedule"}
            ])),
        );
        let reasons: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("spec.taints[0].effect", "FieldValueRequired"),
                ("spec.taints[1].effect", "FieldValueNotSupported"),
                ("spec.taints[3]", "FieldValueDuplicate"),
                ("spec.taints[4].key", "FieldValueInvalid"),
                ("spec.taints[4].value", "FieldValueInvalid"),
            ]
        );
        let status = invalid(nodes, "n", &errors[..1]).status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            "Node \"n\" is invalid: spec.taints[0].effect: Required value"
        );
        assert_eq!(
            status["details"]["causes"][0],
            json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.taints[0].effect"})
        );
    }

    #[test]
    fn qualified_names_and_label_values() {
        for ok in [
            "a",
            "breakwater.io/draining",
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "A_b.c-1",
        ] {
            assert!(qualified_name_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a/",
            "/a",
            "a/b/c",
            "Example.com/a",
            &"x".repeat(64),
        ] {
            assert!(!qualified_name_ok(bad), "{bad}");
        }
        assert!(label_value_ok("") && label_value_ok("spot-interruption"));
        assert!(!label_value_ok("a b") && !label_value_ok(&"x".repeat(64)));
    }
}

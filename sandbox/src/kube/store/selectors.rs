//! Label selectors (the object form of policy/v1 and apps/v1, and the string form of a list's
//! `labelSelector`) and the field selectors the emulator supports on pods
//! (<https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors>).

use serde_json::Value;

use super::{ApiError, ResourceKind};

/// Whether a `LabelSelector` object matches `labels` (a missing selector matches nothing; an
/// empty one, everything — policy/v1's rule).
pub fn selector_matches(selector: Option<&Value>, labels: &Value) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return false;
    };
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let by_label = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .is_none_or(|m| m.iter().all(|(k, v)| label(k) == v.as_str()));
    let by_expression = selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .is_none_or(|exprs| {
            exprs.iter().all(|e| {
                let k = e["key"].as_str().unwrap_or_default();
                let values: Vec<&str> = e["values"]
                    .as_array()
                    .map(|v| v.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                match e["operator"].as_str().unwrap_or_default() {
                    "In" => label(k).is_some_and(|v| values.contains(&v)),
                    "NotIn" => label(k).is_none_or(|v| !values.contains(&v)),
                    "Exists" => label(k).is_some(),
                    "DoesNotExist" => label(k).is_none(),
                    _ => false,
                }
            })
        });
    by_label && by_expression
}

/// A label selector in its string form (`a=b,c!=d,e in (x,y),!f,g`).
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSelector(Vec<(String, String, Vec<String>)>);

impl LabelSelector {
    /// Parses the string form.
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // A term ends at a comma outside parentheses.
            let mut depth = 0;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    *c == ',' && depth == 0
                })
                .map(|(i, _)| i)
                .unwrap_or(rest.len());
            let term = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            let bad = || ApiError::bad_request(format!("unable to parse requirement: {term:?}"));
            if let Some(k) = term.strip_prefix('!') {
                terms.push((k.trim().into(), "!".into(), vec![]));
            } else if let Some((k, v)) = term.split_once("!=") {
                terms.push((k.trim().into(), "!=".into(), vec![v.trim().into()]));
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                terms.push((k.trim().into(), "=".into(), vec![v.trim().into()]));
            } else if let Some((k, set)) = term
                .split_once(" notin ")
                .or_else(|| term.split_once(" in "))
            {
                let op = if term.contains(" notin ") {
                    "notin"
                } else {
                    "in"
                };
                let set = set
                    .trim()
                    .strip_prefix('(')
                    .and_then(|s| s.strip_suffix(')'))
                    .ok_or_else(bad)?;
                terms.push((
                    k.trim().into(),
                    op.into(),
                    set.split(',').map(|s| s.trim().to_string()).collect(),
                ));
            } else if !term.is_empty() && !term.contains(' ') {
                terms.push((term.into(), "exists".into(), vec![]));
            } else {
                return Err(bad());
            }
        }
        Ok(LabelSelector(terms))
    }

    /// Whether an object's labels match.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|(k, op, values)| match op.as_str() {
            "=" => label(k) == values.first().map(String::as_str),
            "!=" => label(k) != values.first().map(String::as_str),
            "in" => label(k).is_some_and(|v| values.iter().any(|w| w == v)),
            "notin" => label(k).is_none_or(|v| !values.iter().any(|w| w == v)),
            "exists" => label(k).is_some(),
            "!" => label(k).is_none(),
            _ => false,
        })
    }
}

const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

pub(super) fn parse_field_selector(
    kind: &ResourceKind,
    text: &str,
) -> Result<Vec<(String, bool, String)>, ApiError> {
    text.split(',')
        .map(|term| {
            let (path, eq, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!("invalid selector: {term:?}")));
            };
            let path = path.trim();
            let allowed = matches!(path, "metadata.name" | "metadata.namespace")
                || (kind.plural == "pods" && POD_FIELDS.contains(&path))
                || (kind.plural == "nodes" && path == "spec.unschedulable")
                || (kind.plural == "events" && path.starts_with("involvedObject."));
            if !allowed {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {path}"
                )));
            }
            Ok((path.to_string(), eq, value.trim().to_string()))
        })
        .collect()
}

pub(super) fn field_value(obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

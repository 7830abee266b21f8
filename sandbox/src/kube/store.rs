//! The emulated cluster's state and the API server's rules over it: creation defaults,
//! resourceVersion and generation, status subresources, optimistic concurrency, graceful pod
//! deletion with preconditions, the eviction subresource with PodDisruptionBudgets, and the small
//! controllers behind them (PDB status, a ReplicaSet controller that replaces pods elsewhere, a
//! kubelet that removes deleted pods after their grace period on the emulator's clock).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use breakwater::kube::rollout::controller_uid;

use super::patch::{self, PatchError};
use super::validation;

pub mod deployments;

/// A resource type the emulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceKind {
    /// URL plural (`pods`).
    pub plural: &'static str,
    /// Singular name for discovery (`pod`).
    pub singular: &'static str,
    /// `Pod`.
    pub kind: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    /// Version.
    pub version: &'static str,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for discovery.
    pub short_names: &'static [&'static str],
    /// Whether it has a `status` subresource.
    pub has_status: bool,
}

impl ResourceKind {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

macro_rules! kind {
    ($plural:literal, $singular:literal, $kind:literal, $group:literal, $version:literal,
     $namespaced:literal, $short:expr, $status:literal $(,)?) => {
        ResourceKind {
            plural: $plural,
            singular: $singular,
            kind: $kind,
            group: $group,
            version: $version,
            namespaced: $namespaced,
            short_names: $short,
            has_status: $status,
        }
    };
}

/// Everything the emulator serves.
pub const KINDS: &[ResourceKind] = &[
    kind!(
        "namespaces",
        "namespace",
        "Namespace",
        "",
        "v1",
        false,
        &["ns"],
        true,
    ),
    kind!("nodes", "node", "Node", "", "v1", false, &["no"], true),
    kind!("pods", "pod", "Pod", "", "v1", true, &["po"], true),
    kind!("events", "event", "Event", "", "v1", true, &["ev"], false),
    kind!(
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        "policy",
        "v1",
        true,
        &["pdb"],
        true,
    ),
    kind!(
        "daemonsets",
        "daemonset",
        "DaemonSet",
        "apps",
        "v1",
        true,
        &["ds"],
        true,
    ),
    kind!(
        "deployments",
        "deployment",
        "Deployment",
        "apps",
        "v1",
        true,
        &["deploy"],
        true,
    ),
    kind!(
        "replicasets",
        "replicaset",
        "ReplicaSet",
        "apps",
        "v1",
        true,
        &["rs"],
        true,
    ),
    kind!(
        "rollouts",
        "rollout",
        "Rollout",
        "argoproj.io",
        "v1alpha1",
        true,
        &["ro"],
        true,
    ),
];

/// The kind served at `group/version/plural`.
pub fn find_kind(group: &str, version: &str, plural: &str) -> Option<&'static ResourceKind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

/// An API error, answered as a `Status`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// `NotFound`, `Conflict`, `TooManyRequests`, …
    pub reason: &'static str,
    /// The message.
    pub message: String,
    /// `details`, when there are any.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn not_found(kind: &ResourceKind, name: &str) -> Self {
        let group = if kind.group.is_empty() {
            String::new()
        } else {
            format!(".{}", kind.group)
        };
        let mut e = ApiError::new(
            404,
            "NotFound",
            format!("{}{group} \"{name}\" not found", kind.plural),
        );
        e.details = Some(json!({"name": name, "group": kind.group, "kind": kind.plural}));
        e
    }

    fn conflict(kind: &ResourceKind, name: &str, why: &str) -> Self {
        let group = if kind.group.is_empty() {
            String::new()
        } else {
            format!(".{}", kind.group)
        };
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {}{group} \"{name}\": {why}",
                kind.plural
            ),
        )
    }

    /// A bad request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

type Key = (String, String, String);

/// The cluster: every object, and the clocks of what happens later.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    objects: BTreeMap<Key, Value>,
    resource_version: u64,
    uids: u64,
    /// The emulator's clock (ms since the epoch).
    pub now_ms: u64,
    /// Pods being deleted: when the kubelet removes them.
    removals: BTreeMap<Key, u64>,
    /// Replacement pods: when they become Ready.
    readiness: BTreeMap<Key, u64>,
    /// PDBs whose status the disruption controller has not caught up with.
    stale_pdbs: BTreeSet<(String, String)>,
    /// How long a replacement pod takes to become Ready.
    pub pod_ready_delay_ms: u64,
    /// While seeding: the ReplicaSet controller creates nothing.
    pub replication_paused: bool,
}

fn key(kind: &ResourceKind, namespace: &str, name: &str) -> Key {
    let ns = if kind.namespaced { namespace } else { "" };
    (kind.plural.to_string(), ns.to_string(), name.to_string())
}

fn pods_kind() -> &'static ResourceKind {
    find_kind("", "v1", "pods").unwrap_or(&KINDS[2])
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Whether the pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some()
}

impl Cluster {
    /// An empty cluster at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Cluster {
            now_ms,
            pod_ready_delay_ms: 2_000,
            ..Cluster::default()
        }
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// The current resourceVersion of the whole store.
    pub fn resource_version(&self) -> String {
        self.resource_version.to_string()
    }

    /// One object.
    pub fn get(&self, kind: &ResourceKind, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(kind, namespace, name))
    }

    /// Objects of a kind (in one namespace, or all), filtered by selectors.
    pub fn list(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        let labels = labels
            .filter(|s| !s.is_empty())
            .map(LabelSelector::parse)
            .transpose()?;
        let fields = fields
            .filter(|s| !s.is_empty())
            .map(|s| parse_field_selector(kind, s))
            .transpose()?;
        Ok(self
            .objects
            .iter()
            .filter(|((plural, ns, _), _)| {
                plural == kind.plural && namespace.is_none_or(|want| want == ns)
            })
            .map(|(_, obj)| obj)
            .filter(|obj| labels.as_ref().is_none_or(|s| s.matches(obj)))
            .filter(|obj| {
                fields.as_ref().is_none_or(|f| {
                    f.iter()
                        .all(|(path, op_eq, value)| (field_value(obj, path) == *value) == *op_eq)
                })
            })
            .cloned()
            .collect())
    }

    /// Creates an object with the server's defaults.
    pub fn create(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be an object"));
        }
        let mut name = str_at(&obj, "/metadata/name").to_string();
        if name.is_empty() {
            let generate = str_at(&obj, "/metadata/generateName").to_string();
            if generate.is_empty() {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("{} \"\" is invalid: metadata.name: Required value: name or generateName is required", kind.kind),
                ));
            }
            self.uids += 1;
            name = format!("{generate}{:05x}", self.uids * 7919 % 0xfffff);
        }
        if kind.namespaced {
            let declared = str_at(&obj, "/metadata/namespace");
            if !declared.is_empty() && declared != namespace {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        let k = key(kind, namespace, &name);
        if self.objects.contains_key(&k) {
            let mut e = ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.plural),
            );
            e.details = Some(json!({"name": name, "kind": kind.plural}));
            return Err(e);
        }
        self.uids += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uids);
        let rv = self.next_rv();
        let now = breakwater::clock::rfc3339(self.now_ms);
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        let meta = obj
            .as_object_mut()
            .and_then(|o| {
                o.entry("metadata")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
            })
            .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
        meta.insert("name".into(), json!(name));
        if kind.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        let errors = validation::validate(kind, &obj);
        if !errors.is_empty() {
            return Err(validation::invalid(kind, &name, &errors));
        }
        if kind.plural == "pods" {
            if obj.pointer("/status/phase").is_none() {
                obj["status"] = json!({"phase": "Pending"});
            }
            if obj.pointer("/spec/terminationGracePeriodSeconds").is_none() {
                obj["spec"]["terminationGracePeriodSeconds"] = json!(30);
            }
        }
        self.objects.insert(k, obj.clone());
        self.settle();
        Ok(self.get(kind, namespace, &name).cloned().unwrap_or(obj))
    }

    /// Replaces an object (PUT), or only its status (`status_only`).
    pub fn replace(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        new: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let k = key(kind, namespace, name);
        let Some(old) = self.objects.get(&k).cloned() else {
            return Err(ApiError::not_found(kind, name));
        };
        let sent_rv = str_at(&new, "/metadata/resourceVersion");
        if !sent_rv.is_empty() && sent_rv != str_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if !str_at(&new, "/metadata/name").is_empty() && str_at(&new, "/metadata/name") != name {
            return Err(ApiError::bad_request(
                "the name of the object does not match the name on the URL",
            ));
        }
        let mut updated = if status_only {
            let mut o = old.clone();
            o["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            o
        } else {
            let mut o = new;
            if kind.has_status {
                match old.get("status") {
                    Some(s) => o["status"] = s.clone(),
                    None => {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            o
        };
        // What the server owns is kept from the stored object.
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old.pointer(&format!("/metadata/{field}")) {
                Some(v) => updated["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = updated["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        updated["apiVersion"] = json!(kind.api_version());
        updated["kind"] = json!(kind.kind);
        let errors = validation::validate(kind, &updated);
        if !errors.is_empty() {
            return Err(validation::invalid(kind, name, &errors));
        }
        if updated == old {
            return Ok(old);
        }
        if !status_only && updated.get("spec") != old.get("spec") {
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            updated["metadata"]["generation"] = json!(generation + 1);
        }
        updated["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects.insert(k, updated);
        self.settle();
        self.get(kind, namespace, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(kind, name))
    }

    /// Applies a patch of `content_type` (strategic / merge / JSON patch).
    pub fn patch(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        content_type: &str,
        body: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let Some(old) = self.get(kind, namespace, name).cloned() else {
            return Err(ApiError::not_found(kind, name));
        };
        let mut patched = old.clone();
        let result = match content_type {
            "application/json-patch+json" => patch::json_patch(&mut patched, body),
            "application/merge-patch+json" => {
                patch::merge_patch(&mut patched, body);
                Ok(())
            }
            "application/strategic-merge-patch+json" => {
                if kind.group == "argoproj.io" {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources",
                    ));
                }
                patch::strategic_merge_patch(kind.kind, &mut patched, body)
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {other:?})"),
                ))
            }
        };
        match result {
            Ok(()) => {}
            Err(PatchError::BadRequest(m)) => return Err(ApiError::bad_request(m)),
            Err(PatchError::Unprocessable(m)) => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!("the server rejected our request due to an error in our request: {m}"),
                ))
            }
        }
        // A resourceVersion in the patched object is a precondition.
        let sent = str_at(&patched, "/metadata/resourceVersion").to_string();
        if sent != str_at(&old, "/metadata/resourceVersion") {
            return Err(ApiError::conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.replace(kind, namespace, name, patched, status_only)
    }

    /// Deletes an object; pods on a node go gracefully (the kubelet removes them later).
    pub fn delete(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<Value, ApiError> {
        let k = key(kind, namespace, name);
        let Some(old) = self.objects.get(&k).cloned() else {
            return Err(ApiError::not_found(kind, name));
        };
        let uid = options
            .pointer("/preconditions/uid")
            .and_then(Value::as_str);
        if let Some(uid) = uid.filter(|u| *u != str_at(&old, "/metadata/uid")) {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    str_at(&old, "/metadata/uid")
                ),
            ));
        }
        let rv = options
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str);
        if let Some(rv) = rv.filter(|r| *r != str_at(&old, "/metadata/resourceVersion")) {
            return Err(ApiError::conflict(
                kind,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    str_at(&old, "/metadata/resourceVersion")
                ),
            ));
        }
        if kind.plural != "pods" {
            self.objects.remove(&k);
            self.next_rv();
            self.settle();
            return Ok(
                json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "group": kind.group, "kind": kind.plural, "uid": str_at(&old, "/metadata/uid")}}),
            );
        }
        let phase = str_at(&old, "/status/phase");
        let unscheduled = str_at(&old, "/spec/nodeName").is_empty();
        let requested = options.get("gracePeriodSeconds").and_then(Value::as_i64);
        let mut grace = requested
            .or_else(|| {
                old.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
            })
            .unwrap_or(30)
            .max(0);
        if unscheduled || phase == "Succeeded" || phase == "Failed" {
            grace = 0;
        }
        let at = self.now_ms + u64::try_from(grace).unwrap_or(0) * 1000;
        if let Some(&current) = self.removals.get(&k) {
            // Already terminating: a shorter grace period shortens it; a longer one does not.
            if at >= current {
                return Ok(old);
            }
        }
        if grace == 0 {
            self.objects.remove(&k);
            self.removals.remove(&k);
            self.readiness.remove(&k);
            self.next_rv();
            self.settle();
            let mut gone = old;
            gone["metadata"]["deletionTimestamp"] = json!(breakwater::clock::rfc3339(self.now_ms));
            gone["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Ok(gone);
        }
        let mut deleting = old;
        deleting["metadata"]["deletionTimestamp"] = json!(breakwater::clock::rfc3339(at));
        deleting["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
        deleting["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects.insert(k.clone(), deleting.clone());
        self.removals.insert(k, at);
        self.settle();
        Ok(deleting)
    }

    /// The `pods/eviction` subresource, with the API server's PodDisruptionBudget rules.
    pub fn evict(
        &mut self,
        namespace: &str,
        name: &str,
        eviction: &Value,
    ) -> Result<Value, ApiError> {
        let pods = pods_kind();
        let Some(pod) = self.get(pods, namespace, name).cloned() else {
            return Err(ApiError::not_found(pods, name));
        };
        let declared = str_at(eviction, "/metadata/name");
        if !declared.is_empty() && declared != name {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} vs {declared}"
            )));
        }
        let options = eviction
            .get("deleteOptions")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let success = || json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        let phase = str_at(&pod, "/status/phase");
        if matches!(phase, "Succeeded" | "Failed" | "Pending") || terminating(&pod) {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        }
        let labels = pod
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or(json!({}));
        let budgets: Vec<Value> = self
            .list(
                find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]),
                Some(namespace),
                None,
                None,
            )?
            .into_iter()
            .filter(|pdb| selector_matches(pdb.pointer("/spec/selector"), &labels))
            .collect();
        if budgets.len() > 1 {
            return Err(ApiError::new(
                500,
                "InternalError",
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some(pdb) = budgets.into_iter().next() else {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        };
        let pdb_name = str_at(&pdb, "/metadata/name").to_string();
        let generation = pdb
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let observed = pdb
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let too_many = |message: String| {
            let mut e = ApiError::new(
                429,
                "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            e.details =
                Some(json!({"causes": [{"reason": "DisruptionBudget", "message": message}]}));
            e
        };
        if observed < generation {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} is still being processed by the server."
            )));
        }
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let healthy = pdb
            .pointer("/status/currentHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let desired = pdb
            .pointer("/status/desiredHealthy")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        // An unready pod may go whenever the budget is met (policy/v1's IfHealthyBudget).
        if !pod_ready(&pod) && healthy >= desired {
            self.delete(pods, namespace, name, &options)?;
            return Ok(success());
        }
        if allowed < 0 {
            return Err(ApiError::new(
                403,
                "Forbidden",
                "pdb disruptions allowed is negative",
            ));
        }
        if allowed == 0 {
            return Err(too_many(format!(
                "The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"
            )));
        }
        // Validate the deletion first, so that a failed precondition spends no disruption.
        let mut trial = self.clone();
        trial.delete(pods, namespace, name, &options)?;
        let pdb_kind = find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]);
        let k = key(pdb_kind, namespace, &pdb_name);
        let rv = self.next_rv();
        if let Some(stored) = self.objects.get_mut(&k) {
            stored["status"]["disruptionsAllowed"] = json!(allowed - 1);
            stored["status"]["disruptedPods"][name] =
                json!(breakwater::clock::rfc3339(self.now_ms));
            stored["metadata"]["resourceVersion"] = json!(rv);
        }
        self.delete(pods, namespace, name, &options)?;
        Ok(success())
    }

    /// Marks a PDB's status stale (its observedGeneration behind) until [`Cluster::refresh_pdb`].
    pub fn mark_pdb_stale(&mut self, namespace: &str, name: &str) {
        self.stale_pdbs
            .insert((namespace.to_string(), name.to_string()));
        let pdb_kind = find_kind("policy", "v1", "poddisruptionbudgets").unwrap_or(&KINDS[4]);
        if let Some(pdb) = self.objects.get_mut(&key(pdb_kind, namespace, name)) {
            let generation = pdb
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            pdb["status"]["observedGeneration"] = json!(generation - 1);
        }
    }

    /// Lets the disruption controller catch up with a stale PDB.
    pub fn refresh_pdb(&mut self, namespace: &str, name: &str) {
        self.stale_pdbs
            .remove(&(namespace.to_string(), name.to_string()));
        self.settle();
    }

    /// Pauses or resumes the ReplicaSet controller (seed pods of a ReplicaSet while paused).
    pub fn pause_replication(&mut self, paused: bool) {
        self.replication_paused = paused;
        self.settle();
    }

    /// Moves the clock on and lets the kubelet and the controllers act.
    pub fn advance_to(&mut self, now_ms: u64) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
        self.settle();
    }

    /// The kubelet, the ReplicaSet controller and the disruption controller, until nothing changes.
    fn settle(&mut self) {
        for _ in 0..8 {
            let mut changed = false;
            let now = self.now_ms;
            let due: Vec<Key> = self
                .removals
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in due {
                self.removals.remove(&k);
                self.readiness.remove(&k);
                self.objects.remove(&k);
                self.next_rv();
                changed = true;
            }
            let ready: Vec<Key> = self
                .readiness
                .iter()
                .filter(|(_, at)| **at <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for k in ready {
                self.readiness.remove(&k);
                let rv = self.next_rv();
                if let Some(pod) = self.objects.get_mut(&k) {
                    pod["status"]["phase"] = json!("Running");
                    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
                    pod["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
            if !self.replication_paused {
                changed |= self.deploy();
                changed |= self.replicate();
            }
            changed |= self.recompute_pdbs();
            if !changed {
                break;
            }
        }
    }

    /// Keeps each ReplicaSet's replicas, creating missing pods on a schedulable node other than
    /// the one the last pod left (Running, Ready after `pod_ready_delay_ms`).
    fn replicate(&mut self) -> bool {
        let mut changed = false;
        let sets: Vec<Value> = self
            .objects
            .iter()
            .filter(|((plural, _, _), _)| plural == "replicasets")
            .map(|(_, v)| v.clone())
            .collect();
        for rs in sets {
            let want = rs
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let uid = str_at(&rs, "/metadata/uid").to_string();
            let namespace = str_at(&rs, "/metadata/namespace").to_string();
            let owned: Vec<&Value> = self
                .objects
                .iter()
                .filter(|((plural, ns, _), _)| plural == "pods" && *ns == namespace)
                .map(|(_, p)| p)
                .filter(|p| controller_uid(p) == Some(uid.as_str()))
                .collect();
            let live = owned.iter().filter(|p| !terminating(p)).count() as i64;
            let busy: BTreeSet<String> = owned
                .iter()
                .filter(|p| terminating(p))
                .map(|p| str_at(p, "/spec/nodeName").to_string())
                .collect();
            let ready = owned
                .iter()
                .filter(|p| !terminating(p) && pod_ready(p))
                .count();
            // Too many: the newest go first (the controller's preference, simplified).
            let mut surplus: Vec<(String, String)> = owned
                .iter()
                .filter(|p| !terminating(p))
                .map(|p| {
                    (
                        str_at(p, "/metadata/creationTimestamp").to_string(),
                        str_at(p, "/metadata/name").to_string(),
                    )
                })
                .collect();
            surplus.sort();
            let excess = usize::try_from(live - want).unwrap_or(0);
            for (_, pod) in surplus.into_iter().rev().take(excess) {
                // A graceful delete without settling (this runs inside `settle`).
                let k = key(pods_kind(), &namespace, &pod);
                let rv = self.next_rv();
                let Some(stored) = self.objects.get_mut(&k) else {
                    continue;
                };
                let grace = stored
                    .pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .unwrap_or(30);
                let at = self.now_ms + grace * 1000;
                stored["metadata"]["deletionTimestamp"] = json!(breakwater::clock::rfc3339(at));
                stored["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                stored["metadata"]["resourceVersion"] = json!(rv);
                self.removals.insert(k, at);
                changed = true;
            }
            for _ in live..want {
                let Some(node) = self.schedulable_node(&busy) else {
                    break;
                };
                let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
                let mut pod = json!({
                    "metadata": template.get("metadata").cloned().unwrap_or(json!({})),
                    "spec": template.get("spec").cloned().unwrap_or(json!({})),
                });
                pod["metadata"]["generateName"] =
                    json!(format!("{}-", str_at(&rs, "/metadata/name")));
                pod["metadata"]["ownerReferences"] = json!([{
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": str_at(&rs, "/metadata/name"),
                    "uid": uid, "controller": true, "blockOwnerDeletion": true}]);
                pod["spec"]["nodeName"] = json!(node);
                pod["status"] = json!({"phase": "Pending"});
                if let Ok(created) = self.create_quietly(&namespace, pod) {
                    let k = key(pods_kind(), &namespace, str_at(&created, "/metadata/name"));
                    self.readiness
                        .insert(k, self.now_ms + self.pod_ready_delay_ms);
                    changed = true;
                }
            }
            let status = json!({"replicas": live.max(0), "readyReplicas": ready,
                "availableReplicas": ready, "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
            let k = key(
                find_kind("apps", "v1", "replicasets").unwrap_or(&KINDS[7]),
                &namespace,
                str_at(&rs, "/metadata/name"),
            );
            if self.objects.get(&k).and_then(|o| o.get("status")) != Some(&status) {
                let rv = self.next_rv();
                if let Some(stored) = self.objects.get_mut(&k) {
                    stored["status"] = status;
                    stored["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
        }
        changed
    }

    fn create_quietly(&mut self, namespace: &str, mut pod: Value) -> Result<Value, ApiError> {
        if pod.pointer("/spec/terminationGracePeriodSeconds").is_none() {
            pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
        }
        Ok(self.insert_new(pods_kind(), namespace, pod))
    }

    /// A controller's create: the server's metadata (a name from `generateName` when none), no
    /// settling (`create` settles, which would recurse into the controllers).
    fn insert_new(&mut self, kind: &ResourceKind, namespace: &str, mut obj: Value) -> Value {
        self.uids += 1;
        let mut name = str_at(&obj, "/metadata/name").to_string();
        if name.is_empty() {
            name = format!(
                "{}{:05x}",
                str_at(&obj, "/metadata/generateName"),
                self.uids * 7919 % 0xfffff
            );
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        obj["metadata"]["name"] = json!(name);
        obj["metadata"]["namespace"] = json!(namespace);
        obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
        obj["metadata"]["creationTimestamp"] = json!(breakwater::clock::rfc3339(self.now_ms));
        obj["metadata"]["generation"] = json!(1);
        obj["metadata"]["resourceVersion"] = json!(self.next_rv());
        self.objects
            .insert(key(kind, namespace, &name), obj.clone());
        obj
    }

    fn schedulable_node(&self, avoid: &BTreeSet<String>) -> Option<String> {
        let nodes: Vec<&Value> = self
            .objects
            .iter()
            .filter(|((plural, _, _), _)| plural == "nodes")
            .map(|(_, n)| n)
            .filter(|n| n.pointer("/spec/unschedulable") != Some(&json!(true)))
            .filter(|n| {
                !n.pointer("/spec/taints")
                    .and_then(Value::as_array)
                    .is_some_and(|t| {
                        t.iter()
                            .any(|t| t["effect"] == "NoSchedule" || t["effect"] == "NoExecute")
                    })
            })
            .collect();
        let count = |node: &str| {
            self.objects
                .iter()
                .filter(|((plural, _, _), p)| {
                    plural == "pods" && str_at(p, "/spec/nodeName") == node
                })
                .count()
        };
        nodes
            .iter()
            .map(|n| str_at(n, "/metadata/name").to_string())
            .filter(|n| !avoid.contains(n))
            .min_by_key(|n| count(n))
    }

    fn recompute_pdbs(&mut self) -> bool {
        let mut changed = false;
        let keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(plural, _, _)| plural == "poddisruptionbudgets")
            .cloned()
            .collect();
        for k in keys {
            if self.stale_pdbs.contains(&(k.1.clone(), k.2.clone())) {
                continue;
            }
            let Some(pdb) = self.objects.get(&k).cloned() else {
                continue;
            };
            let selector = pdb.pointer("/spec/selector").cloned();
            let pods: Vec<&Value> = self
                .objects
                .iter()
                .filter(|((plural, ns, _), _)| plural == "pods" && *ns == k.1)
                .map(|(_, p)| p)
                .filter(|p| {
                    selector_matches(
                        selector.as_ref(),
                        &p.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    )
                })
                .collect();
            let healthy = pods
                .iter()
                .filter(|p| !terminating(p) && pod_ready(p))
                .count() as i64;
            let expected = self.expected_pods(&k.1, &pods);
            let desired = desired_healthy(&pdb, expected);
            let allowed = (healthy - desired).max(0);
            let generation = pdb
                .pointer("/metadata/generation")
                .cloned()
                .unwrap_or(json!(1));
            let disrupted: Map<String, Value> = pdb
                .pointer("/status/disruptedPods")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter(|(name, _)| {
                            pods.iter().any(|p| {
                                str_at(p, "/metadata/name") == name.as_str() && !terminating(p)
                            })
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            let status = json!({
                "observedGeneration": generation,
                "disruptionsAllowed": allowed,
                "currentHealthy": healthy,
                "desiredHealthy": desired,
                "expectedPods": expected,
                "disruptedPods": disrupted,
            });
            if pdb.get("status") != Some(&status) {
                let rv = self.next_rv();
                if let Some(stored) = self.objects.get_mut(&k) {
                    stored["status"] = status;
                    stored["metadata"]["resourceVersion"] = json!(rv);
                }
                changed = true;
            }
        }
        changed
    }

    /// The disruption controller's expected count: the replicas of the pods' ReplicaSets when
    /// every pod has one, else the number of pods.
    fn expected_pods(&self, namespace: &str, pods: &[&Value]) -> i64 {
        let owners: BTreeSet<&str> = pods.iter().filter_map(|p| controller_uid(p)).collect();
        if pods.is_empty() || pods.iter().any(|p| controller_uid(p).is_none()) {
            return pods.len() as i64;
        }
        let mut total = 0;
        for uid in owners {
            let Some(rs) = self.objects.iter().find(|((plural, ns, _), o)| {
                plural == "replicasets" && ns == namespace && str_at(o, "/metadata/uid") == uid
            }) else {
                return pods.len() as i64;
            };
            total +=
                rs.1.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
        }
        total
    }
}

fn int_or_percent(value: &Value, expected: i64, round_up: bool) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap_or(0),
        Value::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let scaled = pct * expected;
            if round_up {
                (scaled + 99) / 100
            } else {
                scaled / 100
            }
        }
        _ => 0,
    }
}

fn desired_healthy(pdb: &Value, expected: i64) -> i64 {
    if let Some(min) = pdb.pointer("/spec/minAvailable") {
        return int_or_percent(min, expected, true);
    }
    if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
        return (expected - int_or_percent(max, expected, true)).max(0);
    }
    1
}

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

fn parse_field_selector(
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

fn field_value(obj: &Value, path: &str) -> String {
    let pointer = format!("/{}", path.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

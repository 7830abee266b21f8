//! The emulated cluster's state and the API server's rules over it: creation defaults,
//! resourceVersion and generation, status subresources, optimistic concurrency and graceful pod
//! deletion with preconditions. Beside it, one module each: the kinds served, the API errors,
//! the eviction subresource with PodDisruptionBudgets, the small controllers (PDB status, a
//! ReplicaSet controller that replaces pods elsewhere, a kubelet that removes deleted pods after
//! their grace period on the emulator's clock), label and field selectors, Deployments, and the
//! nodes of EKS managed node groups (registered not Ready, Ready after a boot delay).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{json, Value};

use super::patch::{self, PatchError};
use super::validation;

mod controllers;
pub mod deployments;
mod errors;
mod eviction;
pub mod gitops;
mod kinds;
pub mod node_groups;
mod rollouts;
mod selectors;

pub use errors::ApiError;
pub use kinds::{find_kind, ResourceKind, KINDS};
use selectors::{field_value, parse_field_selector};
pub use selectors::{selector_matches, LabelSelector};

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
    /// Nodes of managed node groups still booting: when their kubelet reports Ready.
    node_boots: BTreeMap<Key, u64>,
    /// Deployments still progressing: when their progress deadline passes.
    progress_deadlines: BTreeMap<Key, u64>,
    /// Names handed to node-group nodes so far.
    node_serial: u64,
    /// PDBs whose status the disruption controller has not caught up with.
    stale_pdbs: BTreeSet<(String, String)>,
    /// Objects removed lately: the resourceVersion of their removal, and their last state (a
    /// watch from an older resourceVersion reports them `DELETED`).
    /// (Shared by copies until one of them removes something: a trial or `dryRun` copy is cheap.)
    removed: Arc<std::collections::VecDeque<(u64, Key, Value)>>,
    /// The resourceVersion of the last removal dropped from that log (0: none yet).
    removed_dropped: u64,
    /// The resourceVersion and the time at which the controllers last settled.
    settled: (u64, u64),
    /// How long a replacement pod takes to become Ready.
    pub pod_ready_delay_ms: u64,
    /// While seeding: the ReplicaSet controller creates nothing.
    pub replication_paused: bool,
    /// Git: the commits of each repository URL, oldest first ([`gitops`]).
    git: BTreeMap<String, Vec<gitops::Commit>>,
}

/// A delete's preconditions (`uid`, `resourceVersion`) against the object: 409 when one fails.
fn preconditions_hold(
    kind: &ResourceKind,
    name: &str,
    old: &Value,
    options: &Value,
) -> Result<(), ApiError> {
    let uid = options
        .pointer("/preconditions/uid")
        .and_then(Value::as_str);
    if let Some(uid) = uid.filter(|u| *u != str_at(old, "/metadata/uid")) {
        return Err(ApiError::conflict(
            kind,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                str_at(old, "/metadata/uid")
            ),
        ));
    }
    let rv = options
        .pointer("/preconditions/resourceVersion")
        .and_then(Value::as_str);
    if let Some(rv) = rv.filter(|r| *r != str_at(old, "/metadata/resourceVersion")) {
        return Err(ApiError::conflict(
        kind,
        name,
        &format!(
            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
            str_at(old, "/metadata/resourceVersion")
        ),
        ));
    }
    Ok(())
}

/// How many removed objects are kept for watches.
const REMOVED_KEPT: usize = 10_000;

/// The items of `objects` of `kind` in `namespace` (all when `None`) that the label and field
/// selectors match.
fn select<'a>(
    kind: &ResourceKind,
    namespace: Option<&str>,
    labels: Option<&str>,
    fields: Option<&str>,
    objects: impl Iterator<Item = (&'a Key, &'a Value)>,
) -> Result<Vec<&'a Value>, ApiError> {
    let labels = labels
        .filter(|s| !s.is_empty())
        .map(LabelSelector::parse)
        .transpose()?;
    let fields = fields
        .filter(|s| !s.is_empty())
        .map(|s| parse_field_selector(kind, s))
        .transpose()?;
    Ok(objects
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
        .collect())
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

    /// Removes an object for good, with a resourceVersion of its own, and keeps its last state
    /// for watches (the most recent [`REMOVED_KEPT`]).
    fn forget(&mut self, k: &Key) -> Option<Value> {
        let mut last = self.objects.remove(k)?;
        let rv = self.next_rv();
        last["metadata"]["resourceVersion"] = json!(rv);
        let removed = Arc::make_mut(&mut self.removed);
        removed.push_back((self.resource_version, k.clone(), last.clone()));
        if removed.len() > REMOVED_KEPT {
            if let Some((rv, _, _)) = removed.pop_front() {
                self.removed_dropped = rv;
            }
        }
        Some(last)
    }

    /// The objects of `kind` removed after resourceVersion `after` that the selectors match, as
    /// they were, with their removal's resourceVersion (oldest first); `None` when `after` is
    /// older than what is kept (the real server's "410 Gone: too old resource version").
    pub fn removed_since(
        &self,
        kind: &ResourceKind,
        namespace: Option<&str>,
        labels: Option<&str>,
        fields: Option<&str>,
        after: u64,
    ) -> Result<Option<Vec<Value>>, ApiError> {
        if after < self.removed_dropped {
            return Ok(None);
        }
        // Kept in the order of their removal: the recent ones are at the back.
        let first = self.removed.partition_point(|(rv, _, _)| *rv <= after);
        let recent = self.removed.range(first..).map(|(_, k, obj)| (k, obj));
        Ok(Some(
            select(kind, namespace, labels, fields, recent)?
                .into_iter()
                .cloned()
                .collect(),
        ))
    }

    /// The objects of one resource (`plural`), in `namespace` or in all: a range of the store,
    /// not a scan of it.
    pub(super) fn objects_of<'a>(
        &'a self,
        plural: &str,
        namespace: Option<&str>,
    ) -> std::collections::btree_map::Range<'a, Key, Value> {
        // Keys sort by (plural, namespace, name): "ns\0" comes after every name in "ns" and
        // before any longer namespace.
        let (from, to) = match namespace {
            Some(ns) => (
                (plural.to_string(), ns.to_string(), String::new()),
                (plural.to_string(), format!("{ns}\0"), String::new()),
            ),
            None => (
                (plural.to_string(), String::new(), String::new()),
                (format!("{plural}\0"), String::new(), String::new()),
            ),
        };
        self.objects.range(from..to)
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
        let namespace = namespace.filter(|_| kind.namespaced);
        // One object by name (what a watch of one object asks): no range to go through.
        let named = fields
            .and_then(|f| f.strip_prefix("metadata.name="))
            .filter(|name| !name.contains([',', '=', '!']));
        if let (Some(name), Some(ns)) = (named, namespace.or((!kind.namespaced).then_some(""))) {
            let k = key(kind, ns, name);
            let found = self.objects.get_key_value(&k).into_iter();
            return Ok(select(
                kind,
                Some(ns).filter(|_| kind.namespaced),
                labels,
                None,
                found,
            )?
            .into_iter()
            .cloned()
            .collect());
        }
        let objects = self.objects_of(kind.plural, namespace);
        Ok(select(kind, namespace, labels, fields, objects)?
            .into_iter()
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
                if kind.custom() {
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

    /// Whether a delete of the object would be accepted (it exists, its preconditions hold),
    /// without deleting it.
    pub(super) fn deletable(
        &self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        options: &Value,
    ) -> Result<(), ApiError> {
        let old = self
            .objects
            .get(&key(kind, namespace, name))
            .ok_or_else(|| ApiError::not_found(kind, name))?;
        preconditions_hold(kind, name, old, options)
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
        preconditions_hold(kind, name, &old, options)?;
        if kind.plural != "pods" {
            self.forget(&k);
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
            self.forget(&k);
            self.removals.remove(&k);
            self.readiness.remove(&k);
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
}

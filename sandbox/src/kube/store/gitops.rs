//! Git, and the GitOps controllers that keep a cluster on it: Argo CD's application controller
//! and Flux's source and kustomize controllers — what a rollback of a GitOps-owned workload is
//! up against, so that a test of it can fail.
//!
//! - **Git** is a list of commits per repository URL; a commit is the manifests themselves (no
//!   rendering: no Kustomize, Helm or plugins). Tests push with [`Cluster::git_push`].
//! - **Argo CD** (`argoproj.io/v1alpha1` Application; "Automated Sync Policy",
//!   <https://argo-cd.readthedocs.io/en/stable/user-guide/auto_sync/>): `status.sync.revision`
//!   is the head of `spec.source.repoURL` and `status.sync.status` whether every manifest is
//!   live as written — also while automated sync is off. With `spec.syncPolicy.automated` (and
//!   not `enabled: false`) an OutOfSync application is synced once per new commit, and with
//!   `selfHeal` also when the live state drifted from the commit already synced. A sync applies
//!   each manifest (merged into the live object, as `kubectl apply` adds what the manifest
//!   says) with Argo CD's tracking annotation, and records
//!   `status.operationState.syncResult.revision`. Manifests can be Applications (app of apps).
//! - **Flux**: a `source.toolkit.fluxcd.io/v1` GitRepository's `status.artifact.revision` is
//!   `<branch>@sha1:<commit>`; a `kustomize.toolkit.fluxcd.io/v1` Kustomization not
//!   `spec.suspend`ed applies its source's manifests, correcting drift, with Flux's
//!   `kustomize.toolkit.fluxcd.io/name`/`namespace` labels, and records
//!   `status.lastAppliedRevision`.
//!
//! Not modelled: Argo CD's polling interval and self-heal delay (a push or a drift is acted on at
//! the controllers' next pass), Flux's interval likewise, prune, hooks and waves, sync windows,
//! ApplicationSets' controller and HelmReleases' (stored and served, never reconciled).

use serde_json::{json, Value};

use super::{find_kind, key, str_at, Cluster, ResourceKind, KINDS};
use crate::kube::patch;

/// One commit: its id and the manifests it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// A 40-hex-digit id.
    pub sha: String,
    /// The objects as written in the repository.
    pub manifests: Vec<Value>,
}

fn kind_of(manifest: &Value) -> Option<&'static ResourceKind> {
    let api_version = manifest["apiVersion"].as_str()?;
    let kind = manifest["kind"].as_str()?;
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// A commit id: 40 hex digits from the repository, the commit's place and its content (FNV-1a).
fn commit_id(repo: &str, n: usize, manifests: &[Value]) -> String {
    let text = format!("{repo}\n{n}\n{}", Value::Array(manifests.to_vec()));
    let mut parts = [
        0xcbf2_9ce4_8422_2325_u64,
        0x8422_2325_cbf2_9ce4,
        0x100_0000_01b3,
    ];
    for (i, h) in parts.iter_mut().enumerate() {
        for b in text.bytes().chain(std::iter::once(i as u8)) {
            *h ^= u64::from(b);
            *h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{:016x}{:016x}{:08x}", parts[0], parts[1], parts[2] as u32)
}

/// Whether `manifest` is live as written: merging it into the live object changes nothing.
fn in_sync(live: Option<&Value>, manifest: &Value) -> bool {
    live.is_some_and(|live| {
        let mut merged = live.clone();
        patch::merge_patch(&mut merged, &desired(manifest));
        &merged == live
    })
}

/// What a manifest asks for: everything but `status`.
fn desired(manifest: &Value) -> Value {
    let mut m = manifest.clone();
    if let Some(o) = m.as_object_mut() {
        o.remove("status");
    }
    m
}

impl Cluster {
    /// Pushes a commit of `manifests` to `repo`; its id.
    pub fn git_push(&mut self, repo: &str, manifests: Vec<Value>) -> String {
        let commits = self.git.entry(repo.to_string()).or_default();
        let sha = commit_id(repo, commits.len(), &manifests);
        commits.push(Commit {
            sha: sha.clone(),
            manifests,
        });
        self.settle();
        sha
    }

    /// The head commit of `repo`.
    pub fn git_head(&self, repo: &str) -> Option<&Commit> {
        self.git.get(repo).and_then(|c| c.last())
    }

    /// Argo CD and Flux, one pass: whether anything changed.
    pub(super) fn gitops(&mut self) -> bool {
        let mut changed = self.argo_cd();
        changed |= self.flux_sources();
        changed |= self.flux_kustomizations();
        changed
    }

    /// Applies `manifests` (into `namespace` when they name none), each marked by `mark`:
    /// created when missing, merged into the live object otherwise. Whether any was written,
    /// and what failed (as the tools report it in the object's status).
    fn apply(
        &mut self,
        manifests: &[Value],
        namespace: &str,
        mark: &dyn Fn(&mut Value, &str),
    ) -> (bool, Vec<String>) {
        let mut wrote = false;
        let mut failed = Vec::new();
        for manifest in manifests {
            let Some(kind) = kind_of(manifest) else {
                failed.push(format!(
                    "no matches for kind {:?} in version {:?}",
                    str_at(manifest, "/kind"),
                    str_at(manifest, "/apiVersion")
                ));
                continue;
            };
            let ns = if kind.namespaced {
                manifest["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(namespace)
                    .to_string()
            } else {
                String::new()
            };
            let name = str_at(manifest, "/metadata/name").to_string();
            let mut want = desired(manifest);
            mark(&mut want, &ns);
            if in_sync(self.get(kind, &ns, &name), &want) {
                continue;
            }
            let result = match self.get(kind, &ns, &name) {
                Some(_) => self.patch(
                    kind,
                    &ns,
                    &name,
                    "application/merge-patch+json",
                    &want,
                    false,
                ),
                None => self.create(kind, &ns, want),
            };
            match result {
                Ok(_) => wrote = true,
                Err(e) => failed.push(format!("{} {name}: {}", kind.kind, e.message)),
            }
        }
        (wrote, failed)
    }

    fn write_status(
        &mut self,
        kind: &ResourceKind,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> bool {
        let k = key(kind, namespace, name);
        let Some(obj) = self.objects.get(&k) else {
            return false;
        };
        let mut merged = obj["status"].clone();
        patch::merge_patch(&mut merged, &status);
        if merged == obj["status"] {
            return false;
        }
        let rv = self.next_rv();
        if let Some(obj) = self.objects.get_mut(&k) {
            obj["status"] = merged;
            obj["metadata"]["resourceVersion"] = json!(rv);
        }
        true
    }

    fn argo_cd(&mut self) -> bool {
        let Some(apps_kind) = find_kind("argoproj.io", "v1alpha1", "applications") else {
            return false;
        };
        let apps: Vec<Value> = self
            .objects_of("applications", None)
            .map(|(_, a)| a.clone())
            .collect();
        let mut changed = false;
        for app in apps {
            let (ns, name) = (
                str_at(&app, "/metadata/namespace"),
                str_at(&app, "/metadata/name"),
            );
            let Some(head) = self.git_head(str_at(&app, "/spec/source/repoURL")).cloned() else {
                continue;
            };
            let dest = app["spec"]["destination"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            // Argo CD's annotation tracking: `<app>:<group>/<Kind>:<ns>/<name>`, the app as
            // `<namespace>_<name>` outside Argo CD's namespace.
            let app_id = if ns == "argocd" {
                name.to_string()
            } else {
                format!("{ns}_{name}")
            };
            let mark = |m: &mut Value, obj_ns: &str| {
                let group = m["apiVersion"]
                    .as_str()
                    .and_then(|a| a.split_once('/'))
                    .map(|(g, _)| g.to_string())
                    .unwrap_or_default();
                let id = format!(
                    "{app_id}:{group}/{}:{obj_ns}/{}",
                    str_at(m, "/kind"),
                    str_at(m, "/metadata/name")
                );
                m["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = json!(id);
            };
            let synced = |c: &Cluster| {
                head.manifests.iter().all(|m| {
                    let Some(kind) = kind_of(m) else { return true };
                    let mut want = desired(m);
                    let obj_ns = if kind.namespaced {
                        m["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or(&dest)
                            .to_string()
                    } else {
                        String::new()
                    };
                    mark(&mut want, &obj_ns);
                    in_sync(c.get(kind, &obj_ns, str_at(m, "/metadata/name")), &want)
                })
            };
            let automated = &app["spec"]["syncPolicy"]["automated"];
            let on = automated.is_object() && automated["enabled"] != false;
            let last = app["status"]["operationState"]["syncResult"]["revision"].as_str();
            let out_of_sync = !synced(self);
            let (ns, name) = (ns.to_string(), name.to_string());
            if on && out_of_sync && (automated["selfHeal"] == true || last != Some(&head.sha)) {
                let (wrote, failed) = self.apply(&head.manifests, &dest, &mark);
                let mut history = app["status"]["history"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                history.push(json!({"id": history.len(), "revision": head.sha,
                    "deployedAt": breakwater::clock::rfc3339(self.now_ms)}));
                let (phase, message) = if failed.is_empty() {
                    ("Succeeded", "successfully synced".to_string())
                } else {
                    ("Failed", failed.join("; "))
                };
                changed |= wrote;
                changed |= self.write_status(
                    apps_kind,
                    &ns,
                    &name,
                    json!({
                    "operationState": {"phase": phase, "message": message,
                        "syncResult": {"revision": head.sha}},
                    "history": history}),
                );
            }
            let status = if synced(self) { "Synced" } else { "OutOfSync" };
            changed |= self.write_status(
                apps_kind,
                &ns,
                &name,
                json!({"sync": {"status": status, "revision": head.sha}}),
            );
        }
        changed
    }

    fn flux_sources(&mut self) -> bool {
        let Some(kind) = find_kind("source.toolkit.fluxcd.io", "v1", "gitrepositories") else {
            return false;
        };
        let sources: Vec<Value> = self
            .objects_of("gitrepositories", None)
            .map(|(_, s)| s.clone())
            .filter(|s| s["spec"]["suspend"] != true)
            .collect();
        let mut changed = false;
        for source in sources {
            let Some(head) = self.git_head(str_at(&source, "/spec/url")) else {
                continue;
            };
            // GitRepository's default reference is the `master` branch.
            let branch = source["spec"]["ref"]["branch"].as_str().unwrap_or("master");
            let revision = format!("{branch}@sha1:{}", head.sha);
            let (ns, name) = (
                str_at(&source, "/metadata/namespace").to_string(),
                str_at(&source, "/metadata/name").to_string(),
            );
            changed |= self.write_status(
                kind,
                &ns,
                &name,
                json!({"artifact": {"revision": revision}}),
            );
        }
        changed
    }

    fn flux_kustomizations(&mut self) -> bool {
        let Some(ks_kind) = find_kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations") else {
            return false;
        };
        let Some(source_kind) = find_kind("source.toolkit.fluxcd.io", "v1", "gitrepositories")
        else {
            return false;
        };
        let all: Vec<Value> = self
            .objects_of("kustomizations", None)
            .map(|(_, k)| k.clone())
            .filter(|k| k["spec"]["suspend"] != true)
            .collect();
        let mut changed = false;
        for ks in all {
            let (ns, name) = (
                str_at(&ks, "/metadata/namespace").to_string(),
                str_at(&ks, "/metadata/name").to_string(),
            );
            let source_ns = ks["spec"]["sourceRef"]["namespace"].as_str().unwrap_or(&ns);
            let Some(source) =
                self.get(source_kind, source_ns, str_at(&ks, "/spec/sourceRef/name"))
            else {
                continue;
            };
            let revision = str_at(source, "/status/artifact/revision").to_string();
            let Some(head) = self.git_head(str_at(source, "/spec/url")).cloned() else {
                continue;
            };
            let target = ks["spec"]["targetNamespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let mark = |m: &mut Value, _: &str| {
                m["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] = json!(name);
                m["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] = json!(ns);
            };
            let (wrote, failed) = self.apply(&head.manifests, &target, &mark);
            changed |= wrote;
            let status = if failed.is_empty() {
                json!({"lastAppliedRevision": revision, "lastAttemptedRevision": revision,
                    "conditions": [{"type": "Ready", "status": "True",
                        "reason": "ReconciliationSucceeded",
                        "message": format!("Applied revision: {revision}")}]})
            } else {
                json!({"lastAttemptedRevision": revision,
                    "conditions": [{"type": "Ready", "status": "False",
                        "reason": "ReconciliationFailed", "message": failed.join("; ")}]})
            };
            changed |= self.write_status(ks_kind, &ns, &name, status);
        }
        changed
    }
}

//! The resource types the emulator serves: group, version, plural, scope, and which carry a status subresource.

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
    /// A custom resource (a CRD's: no strategic merge patch).
    pub fn custom(&self) -> bool {
        self.group.contains('.') && !self.group.ends_with(".k8s.io")
    }

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
    // Argo CD and Flux, with the controllers of `gitops.rs`. Argo CD's Application CRD has no
    // status subresource (its controller writes the whole object); Flux's CRDs have one.
    kind!(
        "applications",
        "application",
        "Application",
        "argoproj.io",
        "v1alpha1",
        true,
        &["app", "apps"],
        false,
    ),
    kind!(
        "applicationsets",
        "applicationset",
        "ApplicationSet",
        "argoproj.io",
        "v1alpha1",
        true,
        &["appset", "appsets"],
        false,
    ),
    kind!(
        "kustomizations",
        "kustomization",
        "Kustomization",
        "kustomize.toolkit.fluxcd.io",
        "v1",
        true,
        &["ks"],
        true,
    ),
    kind!(
        "helmreleases",
        "helmrelease",
        "HelmRelease",
        "helm.toolkit.fluxcd.io",
        "v2",
        true,
        &["hr"],
        true,
    ),
    kind!(
        "gitrepositories",
        "gitrepository",
        "GitRepository",
        "source.toolkit.fluxcd.io",
        "v1",
        true,
        &["gitrepo"],
        true,
    ),
    // RBAC, stored as written: what `kubectl apply -f deploy/kubernetes/*-rbac.yaml` creates
    // (docs/deploy-two-regions.md). The emulator authorizes nothing by them: every request is
    // allowed, as it is for a cluster admin.
    kind!(
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        "rbac.authorization.k8s.io",
        "v1",
        false,
        &[],
        false,
    ),
    kind!(
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        false,
        &[],
        false,
    ),
];

/// The kind served at `group/version/plural`.
pub fn find_kind(group: &str, version: &str, plural: &str) -> Option<&'static ResourceKind> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
}

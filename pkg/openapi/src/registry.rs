//! Which kinds exist, under which definition names, and which resources serve them.
//!
//! [`BUILTIN_KINDS`] maps every (group, version, kind) this workspace knows to its
//! k8s-openapi type, and so to upstream's definition name. [`ServedResource`] is what the
//! API server tells the document builders about a REST resource; [`builtin_served_resources`]
//! gives upstream's defaults (plural, scope, verbs, subresources) for the built-in kinds.

use k8s_openapi::api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::{JsonSchema, SchemaGenerator};

/// A group, version and kind, as `x-kubernetes-group-version-kind` spells them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupVersionKind {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl GroupVersionKind {
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        GroupVersionKind {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.version)
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

pub(crate) fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

/// One top-level kind: its definition and how to generate it.
pub struct BuiltinKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Upstream's definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: &'static str,
    /// Whether the kind has a `<Kind>List` definition (it is served with `list`).
    pub listable: bool,
    pub(crate) register: fn(&mut SchemaGenerator),
    pub(crate) schema_name: fn() -> std::borrow::Cow<'static, str>,
}

impl BuiltinKind {
    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::new(self.group, self.version, self.kind)
    }

    /// The name k8s-openapi's `JsonSchema` impl gives the type (equal to `definition`).
    pub fn schema_name(&self) -> std::borrow::Cow<'static, str> {
        (self.schema_name)()
    }

    /// The `<Kind>List` definition name, when the kind is listable.
    pub fn list_definition(&self) -> Option<String> {
        self.listable.then(|| format!("{}List", self.definition))
    }
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) {
    generator.subschema_for::<T>();
}

macro_rules! builtin_kinds {
    ($( $group:literal $version:literal $kind:literal $listable:literal => $ty:ty, $def:literal; )*) => {
        /// Every kind the API server can serve, with its definition name.
        pub static BUILTIN_KINDS: &[BuiltinKind] = &[
            $( BuiltinKind {
                group: $group,
                version: $version,
                kind: $kind,
                definition: $def,
                listable: $listable,
                register: register::<$ty>,
                schema_name: <$ty as JsonSchema>::schema_name,
            }, )*
        ];
    };
}

builtin_kinds! {
    "" "v1" "Namespace" true => api::core::v1::Namespace, "io.k8s.api.core.v1.Namespace";
    "" "v1" "Pod" true => api::core::v1::Pod, "io.k8s.api.core.v1.Pod";
    "" "v1" "Service" true => api::core::v1::Service, "io.k8s.api.core.v1.Service";
    "" "v1" "Endpoints" true => api::core::v1::Endpoints, "io.k8s.api.core.v1.Endpoints";
    "" "v1" "ConfigMap" true => api::core::v1::ConfigMap, "io.k8s.api.core.v1.ConfigMap";
    "" "v1" "Secret" true => api::core::v1::Secret, "io.k8s.api.core.v1.Secret";
    "" "v1" "ServiceAccount" true => api::core::v1::ServiceAccount, "io.k8s.api.core.v1.ServiceAccount";
    "" "v1" "Node" true => api::core::v1::Node, "io.k8s.api.core.v1.Node";
    "" "v1" "Event" true => api::core::v1::Event, "io.k8s.api.core.v1.Event";
    "" "v1" "LimitRange" true => api::core::v1::LimitRange, "io.k8s.api.core.v1.LimitRange";
    "" "v1" "ResourceQuota" true => api::core::v1::ResourceQuota, "io.k8s.api.core.v1.ResourceQuota";
    "" "v1" "PersistentVolume" true => api::core::v1::PersistentVolume, "io.k8s.api.core.v1.PersistentVolume";
    "" "v1" "PersistentVolumeClaim" true => api::core::v1::PersistentVolumeClaim, "io.k8s.api.core.v1.PersistentVolumeClaim";
    "" "v1" "ReplicationController" true => api::core::v1::ReplicationController, "io.k8s.api.core.v1.ReplicationController";
    "" "v1" "PodTemplate" true => api::core::v1::PodTemplate, "io.k8s.api.core.v1.PodTemplate";
    "" "v1" "Binding" false => api::core::v1::Binding, "io.k8s.api.core.v1.Binding";
    "" "v1" "ComponentStatus" true => api::core::v1::ComponentStatus, "io.k8s.api.core.v1.ComponentStatus";
    "apps" "v1" "Deployment" true => api::apps::v1::Deployment, "io.k8s.api.apps.v1.Deployment";
    "apps" "v1" "ReplicaSet" true => api::apps::v1::ReplicaSet, "io.k8s.api.apps.v1.ReplicaSet";
    "apps" "v1" "StatefulSet" true => api::apps::v1::StatefulSet, "io.k8s.api.apps.v1.StatefulSet";
    "apps" "v1" "DaemonSet" true => api::apps::v1::DaemonSet, "io.k8s.api.apps.v1.DaemonSet";
    "apps" "v1" "ControllerRevision" true => api::apps::v1::ControllerRevision, "io.k8s.api.apps.v1.ControllerRevision";
    "batch" "v1" "Job" true => api::batch::v1::Job, "io.k8s.api.batch.v1.Job";
    "batch" "v1" "CronJob" true => api::batch::v1::CronJob, "io.k8s.api.batch.v1.CronJob";
    "autoscaling" "v1" "HorizontalPodAutoscaler" true => api::autoscaling::v1::HorizontalPodAutoscaler, "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler";
    "autoscaling" "v1" "Scale" false => api::autoscaling::v1::Scale, "io.k8s.api.autoscaling.v1.Scale";
    "autoscaling" "v2" "HorizontalPodAutoscaler" true => api::autoscaling::v2::HorizontalPodAutoscaler, "io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler";
    "coordination.k8s.io" "v1" "Lease" true => api::coordination::v1::Lease, "io.k8s.api.coordination.v1.Lease";
    "discovery.k8s.io" "v1" "EndpointSlice" true => api::discovery::v1::EndpointSlice, "io.k8s.api.discovery.v1.EndpointSlice";
    "events.k8s.io" "v1" "Event" true => api::events::v1::Event, "io.k8s.api.events.v1.Event";
    "networking.k8s.io" "v1" "Ingress" true => api::networking::v1::Ingress, "io.k8s.api.networking.v1.Ingress";
    "networking.k8s.io" "v1" "IngressClass" true => api::networking::v1::IngressClass, "io.k8s.api.networking.v1.IngressClass";
    "networking.k8s.io" "v1" "NetworkPolicy" true => api::networking::v1::NetworkPolicy, "io.k8s.api.networking.v1.NetworkPolicy";
    "policy" "v1" "PodDisruptionBudget" true => api::policy::v1::PodDisruptionBudget, "io.k8s.api.policy.v1.PodDisruptionBudget";
    "policy" "v1" "Eviction" false => api::policy::v1::Eviction, "io.k8s.api.policy.v1.Eviction";
    "rbac.authorization.k8s.io" "v1" "Role" true => api::rbac::v1::Role, "io.k8s.api.rbac.v1.Role";
    "rbac.authorization.k8s.io" "v1" "RoleBinding" true => api::rbac::v1::RoleBinding, "io.k8s.api.rbac.v1.RoleBinding";
    "rbac.authorization.k8s.io" "v1" "ClusterRole" true => api::rbac::v1::ClusterRole, "io.k8s.api.rbac.v1.ClusterRole";
    "rbac.authorization.k8s.io" "v1" "ClusterRoleBinding" true => api::rbac::v1::ClusterRoleBinding, "io.k8s.api.rbac.v1.ClusterRoleBinding";
    "certificates.k8s.io" "v1" "CertificateSigningRequest" true => api::certificates::v1::CertificateSigningRequest, "io.k8s.api.certificates.v1.CertificateSigningRequest";
    "storage.k8s.io" "v1" "StorageClass" true => api::storage::v1::StorageClass, "io.k8s.api.storage.v1.StorageClass";
    "storage.k8s.io" "v1" "CSIDriver" true => api::storage::v1::CSIDriver, "io.k8s.api.storage.v1.CSIDriver";
    "storage.k8s.io" "v1" "CSINode" true => api::storage::v1::CSINode, "io.k8s.api.storage.v1.CSINode";
    "storage.k8s.io" "v1" "VolumeAttachment" true => api::storage::v1::VolumeAttachment, "io.k8s.api.storage.v1.VolumeAttachment";
    "scheduling.k8s.io" "v1" "PriorityClass" true => api::scheduling::v1::PriorityClass, "io.k8s.api.scheduling.v1.PriorityClass";
    "authentication.k8s.io" "v1" "TokenReview" false => api::authentication::v1::TokenReview, "io.k8s.api.authentication.v1.TokenReview";
    "authentication.k8s.io" "v1" "TokenRequest" false => api::authentication::v1::TokenRequest, "io.k8s.api.authentication.v1.TokenRequest";
    "authentication.k8s.io" "v1" "SelfSubjectReview" false => api::authentication::v1::SelfSubjectReview, "io.k8s.api.authentication.v1.SelfSubjectReview";
    "authorization.k8s.io" "v1" "SubjectAccessReview" false => api::authorization::v1::SubjectAccessReview, "io.k8s.api.authorization.v1.SubjectAccessReview";
    "authorization.k8s.io" "v1" "SelfSubjectAccessReview" false => api::authorization::v1::SelfSubjectAccessReview, "io.k8s.api.authorization.v1.SelfSubjectAccessReview";
    "authorization.k8s.io" "v1" "SelfSubjectRulesReview" false => api::authorization::v1::SelfSubjectRulesReview, "io.k8s.api.authorization.v1.SelfSubjectRulesReview";
    "authorization.k8s.io" "v1" "LocalSubjectAccessReview" false => api::authorization::v1::LocalSubjectAccessReview, "io.k8s.api.authorization.v1.LocalSubjectAccessReview";
}

/// Meta kinds upstream tags with the core `v1` group-version only.
pub(crate) const CORE_META_KINDS: &[(&str, &str)] = &[
    ("Status", "io.k8s.apimachinery.pkg.apis.meta.v1.Status"),
    (
        "APIResourceList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
    ),
    ("APIGroup", "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup"),
    (
        "APIGroupList",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
    ),
    (
        "APIVersions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
    ),
];

/// Meta kinds upstream tags with every group-version (they travel in every group).
pub(crate) const EVERY_GROUP_META_KINDS: &[(&str, &str)] = &[
    (
        "DeleteOptions",
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
    ),
    (
        "WatchEvent",
        "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent",
    ),
];

/// Registers the meta types that are not reachable from any kind but that documents and
/// clients use.
pub(crate) fn register_meta_types(generator: &mut SchemaGenerator) {
    register::<meta::Status>(generator);
    register::<meta::DeleteOptions>(generator);
    register::<meta::WatchEvent<()>>(generator);
    register::<meta::APIResourceList>(generator);
    register::<meta::APIGroup>(generator);
    register::<meta::APIGroupList>(generator);
    register::<meta::APIVersions>(generator);
    register::<meta::Patch>(generator);
    register::<meta::ListMeta>(generator);
    register::<k8s_openapi::apimachinery::pkg::version::Info>(generator);
}

/// The definition name of a built-in kind.
pub fn definition_for(group: &str, version: &str, kind: &str) -> Option<&'static str> {
    find_kind(group, version, kind).map(|k| k.definition)
}

pub fn find_kind(group: &str, version: &str, kind: &str) -> Option<&'static BuiltinKind> {
    BUILTIN_KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.kind == kind)
}

/// A subresource of a served resource that has a kind of its own (`status`, `scale`,
/// `binding`, `eviction`, `token`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedSubresource {
    /// `status`, `scale`, ...
    pub name: String,
    pub gvk: GroupVersionKind,
    pub definition: String,
    pub verbs: Vec<String>,
}

/// A REST resource the API server serves, as the document builders need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedResource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    /// Of `get list watch create update patch delete deletecollection`.
    pub verbs: Vec<String>,
    pub subresources: Vec<ServedSubresource>,
    /// The kind's definition name, e.g. `io.k8s.api.core.v1.Pod`.
    pub definition: String,
}

impl ServedResource {
    pub fn gvk(&self) -> GroupVersionKind {
        GroupVersionKind::new(&self.group, &self.version, &self.kind)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The `<Kind>List` definition.
    pub fn list_definition(&self) -> String {
        format!("{}List", self.definition)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const READ_VERBS: &[&str] = &["get", "patch", "update"];

fn verbs(list: &[&str]) -> Vec<String> {
    list.iter().map(|v| (*v).to_owned()).collect()
}

fn sub(
    name: &str,
    group: &str,
    version: &str,
    kind: &str,
    verb_list: &[&str],
) -> ServedSubresource {
    let definition = definition_for(group, version, kind)
        .map(str::to_owned)
        .unwrap_or_default();
    ServedSubresource {
        name: name.to_owned(),
        gvk: GroupVersionKind::new(group, version, kind),
        definition,
        verbs: verbs(verb_list),
    }
}

/// Upstream's resources for the built-in kinds: plural, scope, verbs and the subresources
/// that have kinds. The API server can filter or extend this list.
pub fn builtin_served_resources() -> Vec<ServedResource> {
    // (group, version, kind, plural, namespaced, verbs, subresources)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        bool,
        &'static [&'static str],
        &'static [&'static str],
    );
    const ROWS: &[Row] = &[
        (
            "",
            "v1",
            "Namespace",
            "namespaces",
            false,
            &[
                "create", "delete", "get", "list", "patch", "update", "watch",
            ],
            &["status", "finalize"],
        ),
        (
            "",
            "v1",
            "Pod",
            "pods",
            true,
            ALL_VERBS,
            &[
                "status",
                "ephemeralcontainers",
                "resize",
                "binding",
                "eviction",
            ],
        ),
        (
            "",
            "v1",
            "Service",
            "services",
            true,
            ALL_VERBS,
            &["status"],
        ),
        ("", "v1", "Endpoints", "endpoints", true, ALL_VERBS, &[]),
        ("", "v1", "ConfigMap", "configmaps", true, ALL_VERBS, &[]),
        ("", "v1", "Secret", "secrets", true, ALL_VERBS, &[]),
        (
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            ALL_VERBS,
            &["token"],
        ),
        ("", "v1", "Node", "nodes", false, ALL_VERBS, &["status"]),
        ("", "v1", "Event", "events", true, ALL_VERBS, &[]),
        ("", "v1", "LimitRange", "limitranges", true, ALL_VERBS, &[]),
        (
            "",
            "v1",
            "ResourceQuota",
            "resourcequotas",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "",
            "v1",
            "PersistentVolume",
            "persistentvolumes",
            false,
            ALL_VERBS,
            &["status"],
        ),
        (
            "",
            "v1",
            "PersistentVolumeClaim",
            "persistentvolumeclaims",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "",
            "v1",
            "ReplicationController",
            "replicationcontrollers",
            true,
            ALL_VERBS,
            &["status", "scale"],
        ),
        (
            "",
            "v1",
            "PodTemplate",
            "podtemplates",
            true,
            ALL_VERBS,
            &[],
        ),
        ("", "v1", "Binding", "bindings", true, &["create"], &[]),
        (
            "",
            "v1",
            "ComponentStatus",
            "componentstatuses",
            false,
            &["get", "list"],
            &[],
        ),
        (
            "apps",
            "v1",
            "Deployment",
            "deployments",
            true,
            ALL_VERBS,
            &["status", "scale"],
        ),
        (
            "apps",
            "v1",
            "ReplicaSet",
            "replicasets",
            true,
            ALL_VERBS,
            &["status", "scale"],
        ),
        (
            "apps",
            "v1",
            "StatefulSet",
            "statefulsets",
            true,
            ALL_VERBS,
            &["status", "scale"],
        ),
        (
            "apps",
            "v1",
            "DaemonSet",
            "daemonsets",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "apps",
            "v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            ALL_VERBS,
            &[],
        ),
        ("batch", "v1", "Job", "jobs", true, ALL_VERBS, &["status"]),
        (
            "batch",
            "v1",
            "CronJob",
            "cronjobs",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "autoscaling",
            "v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            ALL_VERBS,
            &["status"],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            ALL_VERBS,
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "certificates.k8s.io",
            "v1",
            "CertificateSigningRequest",
            "certificatesigningrequests",
            false,
            ALL_VERBS,
            &["status", "approval"],
        ),
        (
            "storage.k8s.io",
            "v1",
            "StorageClass",
            "storageclasses",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "storage.k8s.io",
            "v1",
            "CSIDriver",
            "csidrivers",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "storage.k8s.io",
            "v1",
            "CSINode",
            "csinodes",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "storage.k8s.io",
            "v1",
            "VolumeAttachment",
            "volumeattachments",
            false,
            ALL_VERBS,
            &["status"],
        ),
        (
            "scheduling.k8s.io",
            "v1",
            "PriorityClass",
            "priorityclasses",
            false,
            ALL_VERBS,
            &[],
        ),
        (
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
            &["create"],
            &[],
        ),
        (
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            &["create"],
            &[],
        ),
        (
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            &["create"],
            &[],
        ),
        (
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            &["create"],
            &[],
        ),
        (
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            &["create"],
            &[],
        ),
        (
            "authorization.k8s.io",
            "v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
            &["create"],
            &[],
        ),
    ];

    ROWS.iter()
        .map(
            |&(group, version, kind, plural, namespaced, verb_list, subs)| {
                let subresources = subs
                    .iter()
                    .map(|name| match *name {
                        "scale" => sub(name, "autoscaling", "v1", "Scale", READ_VERBS),
                        "binding" => sub(name, "", "v1", "Binding", &["create"]),
                        "eviction" => sub(name, "policy", "v1", "Eviction", &["create"]),
                        "token" => sub(
                            name,
                            "authentication.k8s.io",
                            "v1",
                            "TokenRequest",
                            &["create"],
                        ),
                        "finalize" => sub(name, group, version, kind, &["update"]),
                        "approval" => sub(name, group, version, kind, READ_VERBS),
                        _ => sub(name, group, version, kind, READ_VERBS),
                    })
                    .collect();
                ServedResource {
                    group: group.to_owned(),
                    version: version.to_owned(),
                    kind: kind.to_owned(),
                    plural: plural.to_owned(),
                    namespaced,
                    verbs: verbs(verb_list),
                    subresources,
                    definition: definition_for(group, version, kind)
                        .map(str::to_owned)
                        .unwrap_or_default(),
                }
            },
        )
        .collect()
}

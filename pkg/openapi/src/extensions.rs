//! Upstream's `x-kubernetes-*` vendor extensions that k8s-openapi's schemas lack.
//!
//! The table below was written from upstream's published OpenAPI spec
//! (`api/openapi-spec`), restricted to the groups this API server serves. kubectl relies on
//! the patch extensions (strategic merge patch on apply) and server-side apply on the list
//! and map types; a test checks that every entry names a property k8s-openapi has, so the
//! table cannot silently drift from the generated schemas.

use serde_json::{Map, Value};

/// One extension on a property.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ext {
    /// `x-kubernetes-patch-strategy`
    Strategy(&'static str),
    /// `x-kubernetes-patch-merge-key`
    MergeKey(&'static str),
    /// `x-kubernetes-list-type`
    ListType(&'static str),
    /// `x-kubernetes-list-map-keys`
    ListMapKeys(&'static [&'static str]),
    /// `x-kubernetes-map-type`
    MapType(&'static str),
}

use Ext::*;

impl Ext {
    fn key(self) -> &'static str {
        match self {
            Strategy(_) => "x-kubernetes-patch-strategy",
            MergeKey(_) => "x-kubernetes-patch-merge-key",
            ListType(_) => "x-kubernetes-list-type",
            ListMapKeys(_) => "x-kubernetes-list-map-keys",
            MapType(_) => "x-kubernetes-map-type",
        }
    }

    fn value(self) -> Value {
        match self {
            Strategy(v) | MergeKey(v) | ListType(v) | MapType(v) => Value::String(v.to_owned()),
            ListMapKeys(keys) => Value::Array(
                keys.iter()
                    .map(|k| Value::String((*k).to_owned()))
                    .collect(),
            ),
        }
    }
}

/// Adds the table's extensions to `schemas` (keyed by definition name). Returns the
/// entries whose definition or property does not exist, for the drift test.
pub(crate) fn apply(schemas: &mut Map<String, Value>) -> Vec<String> {
    let mut missing = Vec::new();
    for (definition, fields) in FIELD_EXTENSIONS {
        let properties = schemas
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(Value::as_object_mut);
        let Some(properties) = properties else {
            missing.push((*definition).to_owned());
            continue;
        };
        for (field, extensions) in *fields {
            let Some(Value::Object(property)) = properties.get_mut(*field) else {
                missing.push(format!("{definition}.{field}"));
                continue;
            };
            for ext in *extensions {
                property.insert(ext.key().to_owned(), ext.value());
            }
        }
    }
    for definition in ATOMIC_TYPES {
        match schemas.get_mut(*definition).and_then(Value::as_object_mut) {
            Some(schema) => {
                schema.insert(
                    MapType("atomic").key().to_owned(),
                    MapType("atomic").value(),
                );
            }
            None => missing.push((*definition).to_owned()),
        }
    }
    missing
}

/// Per definition, the properties and their extensions.
type FieldTable = &'static [(&'static str, &'static [(&'static str, &'static [Ext])])];

pub(crate) const FIELD_EXTENSIONS: FieldTable = &[
    (
        "io.k8s.api.apps.v1.DaemonSetStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &[("strategy", &[Strategy("retainKeys")])],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.apps.v1.ReplicaSetStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        &[("volumeClaimTemplates", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.authentication.v1.TokenRequestSpec",
        &[("audiences", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authentication.v1.TokenReviewSpec",
        &[("audiences", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authentication.v1.TokenReviewStatus",
        &[("audiences", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authentication.v1.UserInfo",
        &[("groups", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authorization.v1.FieldSelectorAttributes",
        &[("requirements", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authorization.v1.LabelSelectorAttributes",
        &[("requirements", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authorization.v1.NonResourceRule",
        &[
            ("nonResourceURLs", &[ListType("atomic")]),
            ("verbs", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.authorization.v1.ResourceRule",
        &[
            ("apiGroups", &[ListType("atomic")]),
            ("resourceNames", &[ListType("atomic")]),
            ("resources", &[ListType("atomic")]),
            ("verbs", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.authorization.v1.SubjectAccessReviewSpec",
        &[("groups", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.authorization.v1.SubjectRulesReviewStatus",
        &[
            ("nonResourceRules", &[ListType("atomic")]),
            ("resourceRules", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingRules",
        &[("policies", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerSpec",
        &[("metrics", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus",
        &[
            (
                "conditions",
                &[
                    Strategy("merge"),
                    MergeKey("type"),
                    ListType("map"),
                    ListMapKeys(&["type"]),
                ],
            ),
            ("currentMetrics", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.batch.v1.CronJobStatus",
        &[("active", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.batch.v1.JobStatus",
        &[(
            "conditions",
            &[Strategy("merge"), MergeKey("type"), ListType("atomic")],
        )],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicy",
        &[("rules", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        &[("values", &[ListType("set")])],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyRule",
        &[("onPodConditions", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.batch.v1.SuccessPolicy",
        &[("rules", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.batch.v1.UncountedTerminatedPods",
        &[
            ("failed", &[ListType("set")]),
            ("succeeded", &[ListType("set")]),
        ],
    ),
    (
        "io.k8s.api.certificates.v1.CertificateSigningRequestSpec",
        &[
            ("groups", &[ListType("atomic")]),
            ("usages", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.certificates.v1.CertificateSigningRequestStatus",
        &[("conditions", &[ListType("map"), ListMapKeys(&["type"])])],
    ),
    (
        "io.k8s.api.core.v1.Capabilities",
        &[
            ("add", &[ListType("atomic")]),
            ("drop", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.CephFSPersistentVolumeSource",
        &[("monitors", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.CephFSVolumeSource",
        &[("monitors", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ComponentStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapProjection",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ConfigMapVolumeSource",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.Container",
        &[
            ("args", &[ListType("atomic")]),
            ("command", &[ListType("atomic")]),
            (
                "env",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            ("envFrom", &[ListType("atomic")]),
            (
                "ports",
                &[
                    Strategy("merge"),
                    MergeKey("containerPort"),
                    ListType("map"),
                    ListMapKeys(&["containerPort", "protocol"]),
                ],
            ),
            ("resizePolicy", &[ListType("atomic")]),
            (
                "volumeDevices",
                &[
                    Strategy("merge"),
                    MergeKey("devicePath"),
                    ListType("map"),
                    ListMapKeys(&["devicePath"]),
                ],
            ),
            (
                "volumeMounts",
                &[
                    Strategy("merge"),
                    MergeKey("mountPath"),
                    ListType("map"),
                    ListMapKeys(&["mountPath"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.ContainerImage",
        &[("names", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ContainerStatus",
        &[
            (
                "allocatedResourcesStatus",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            (
                "volumeMounts",
                &[
                    Strategy("merge"),
                    MergeKey("mountPath"),
                    ListType("map"),
                    ListMapKeys(&["mountPath"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIProjection",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.DownwardAPIVolumeSource",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.EndpointSubset",
        &[
            ("addresses", &[ListType("atomic")]),
            ("notReadyAddresses", &[ListType("atomic")]),
            ("ports", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.Endpoints",
        &[("subsets", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        &[
            ("args", &[ListType("atomic")]),
            ("command", &[ListType("atomic")]),
            (
                "env",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            ("envFrom", &[ListType("atomic")]),
            (
                "ports",
                &[
                    Strategy("merge"),
                    MergeKey("containerPort"),
                    ListType("map"),
                    ListMapKeys(&["containerPort", "protocol"]),
                ],
            ),
            ("resizePolicy", &[ListType("atomic")]),
            (
                "volumeDevices",
                &[
                    Strategy("merge"),
                    MergeKey("devicePath"),
                    ListType("map"),
                    ListMapKeys(&["devicePath"]),
                ],
            ),
            (
                "volumeMounts",
                &[
                    Strategy("merge"),
                    MergeKey("mountPath"),
                    ListType("map"),
                    ListMapKeys(&["mountPath"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.ExecAction",
        &[("command", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.FCVolumeSource",
        &[
            ("targetWWNs", &[ListType("atomic")]),
            ("wwids", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.HTTPGetAction",
        &[("httpHeaders", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.HostAlias",
        &[("hostnames", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ISCSIPersistentVolumeSource",
        &[("portals", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ISCSIVolumeSource",
        &[("portals", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.LimitRangeSpec",
        &[("limits", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.LinuxContainerUser",
        &[("supplementalGroups", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerIngress",
        &[("ports", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.LoadBalancerStatus",
        &[("ingress", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.NamespaceSpec",
        &[("finalizers", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.core.v1.NodeAffinity",
        &[(
            "preferredDuringSchedulingIgnoredDuringExecution",
            &[ListType("atomic")],
        )],
    ),
    (
        "io.k8s.api.core.v1.NodeSelector",
        &[("nodeSelectorTerms", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorRequirement",
        &[("values", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorTerm",
        &[
            ("matchExpressions", &[ListType("atomic")]),
            ("matchFields", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeSpec",
        &[
            ("podCIDRs", &[Strategy("merge"), ListType("set")]),
            ("taints", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &[
            (
                "addresses",
                &[
                    Strategy("merge"),
                    MergeKey("type"),
                    ListType("map"),
                    ListMapKeys(&["type"]),
                ],
            ),
            (
                "conditions",
                &[
                    Strategy("merge"),
                    MergeKey("type"),
                    ListType("map"),
                    ListMapKeys(&["type"]),
                ],
            ),
            ("images", &[ListType("atomic")]),
            ("runtimeHandlers", &[ListType("atomic")]),
            ("volumesAttached", &[ListType("atomic")]),
            ("volumesInUse", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &[("accessModes", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimStatus",
        &[
            ("accessModes", &[ListType("atomic")]),
            ("allocatedResourceStatuses", &[MapType("granular")]),
            (
                "conditions",
                &[
                    Strategy("merge"),
                    MergeKey("type"),
                    ListType("map"),
                    ListMapKeys(&["type"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeSpec",
        &[
            ("accessModes", &[ListType("atomic")]),
            ("claimRef", &[MapType("granular")]),
            ("mountOptions", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAffinity",
        &[
            (
                "preferredDuringSchedulingIgnoredDuringExecution",
                &[ListType("atomic")],
            ),
            (
                "requiredDuringSchedulingIgnoredDuringExecution",
                &[ListType("atomic")],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAffinityTerm",
        &[
            ("matchLabelKeys", &[ListType("atomic")]),
            ("mismatchLabelKeys", &[ListType("atomic")]),
            ("namespaces", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodAntiAffinity",
        &[
            (
                "preferredDuringSchedulingIgnoredDuringExecution",
                &[ListType("atomic")],
            ),
            (
                "requiredDuringSchedulingIgnoredDuringExecution",
                &[ListType("atomic")],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodDNSConfig",
        &[
            ("nameservers", &[ListType("atomic")]),
            ("options", &[ListType("atomic")]),
            ("searches", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSecurityContext",
        &[
            ("supplementalGroups", &[ListType("atomic")]),
            ("sysctls", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        &[
            (
                "containers",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            (
                "ephemeralContainers",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            (
                "hostAliases",
                &[
                    Strategy("merge"),
                    MergeKey("ip"),
                    ListType("map"),
                    ListMapKeys(&["ip"]),
                ],
            ),
            (
                "imagePullSecrets",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            (
                "initContainers",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            ("nodeSelector", &[MapType("atomic")]),
            ("readinessGates", &[ListType("atomic")]),
            (
                "resourceClaims",
                &[
                    Strategy("merge,retainKeys"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            (
                "schedulingGates",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
            ("tolerations", &[ListType("atomic")]),
            (
                "topologySpreadConstraints",
                &[
                    Strategy("merge"),
                    MergeKey("topologyKey"),
                    ListType("map"),
                    ListMapKeys(&["topologyKey", "whenUnsatisfiable"]),
                ],
            ),
            (
                "volumes",
                &[
                    Strategy("merge,retainKeys"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        &[
            (
                "conditions",
                &[
                    Strategy("merge"),
                    MergeKey("type"),
                    ListType("map"),
                    ListMapKeys(&["type"]),
                ],
            ),
            ("containerStatuses", &[ListType("atomic")]),
            ("ephemeralContainerStatuses", &[ListType("atomic")]),
            (
                "hostIPs",
                &[Strategy("merge"), MergeKey("ip"), ListType("atomic")],
            ),
            ("initContainerStatuses", &[ListType("atomic")]),
            (
                "podIPs",
                &[
                    Strategy("merge"),
                    MergeKey("ip"),
                    ListType("map"),
                    ListMapKeys(&["ip"]),
                ],
            ),
            (
                "resourceClaimStatuses",
                &[
                    Strategy("merge,retainKeys"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.ProjectedVolumeSource",
        &[("sources", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.RBDPersistentVolumeSource",
        &[("monitors", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.RBDVolumeSource",
        &[("monitors", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerSpec",
        &[("selector", &[MapType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ReplicationControllerStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.core.v1.ResourceQuotaSpec",
        &[("scopes", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ResourceRequirements",
        &[("claims", &[ListType("map"), ListMapKeys(&["name"])])],
    ),
    (
        "io.k8s.api.core.v1.ResourceStatus",
        &[(
            "resources",
            &[ListType("map"), ListMapKeys(&["resourceID"])],
        )],
    ),
    (
        "io.k8s.api.core.v1.ScopeSelector",
        &[("matchExpressions", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ScopedResourceSelectorRequirement",
        &[("values", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.SecretProjection",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.SecretVolumeSource",
        &[("items", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.ServiceAccount",
        &[
            ("imagePullSecrets", &[ListType("atomic")]),
            (
                "secrets",
                &[
                    Strategy("merge"),
                    MergeKey("name"),
                    ListType("map"),
                    ListMapKeys(&["name"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        &[
            ("clusterIPs", &[ListType("atomic")]),
            ("externalIPs", &[ListType("atomic")]),
            ("ipFamilies", &[ListType("atomic")]),
            ("loadBalancerSourceRanges", &[ListType("atomic")]),
            (
                "ports",
                &[
                    Strategy("merge"),
                    MergeKey("port"),
                    ListType("map"),
                    ListMapKeys(&["port", "protocol"]),
                ],
            ),
            ("selector", &[MapType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.core.v1.ServiceStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.core.v1.TopologySelectorLabelRequirement",
        &[("values", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.TopologySelectorTerm",
        &[("matchLabelExpressions", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        &[("matchLabelKeys", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.discovery.v1.Endpoint",
        &[("addresses", &[ListType("set")])],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointHints",
        &[
            ("forNodes", &[ListType("atomic")]),
            ("forZones", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointSlice",
        &[
            ("endpoints", &[ListType("atomic")]),
            ("ports", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.networking.v1.HTTPIngressRuleValue",
        &[("paths", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.networking.v1.IPBlock",
        &[("except", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.networking.v1.IngressLoadBalancerIngress",
        &[("ports", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.networking.v1.IngressLoadBalancerStatus",
        &[("ingress", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.networking.v1.IngressSpec",
        &[
            ("rules", &[ListType("atomic")]),
            ("tls", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.networking.v1.IngressTLS",
        &[("hosts", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyEgressRule",
        &[
            ("ports", &[ListType("atomic")]),
            ("to", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyIngressRule",
        &[
            ("from", &[ListType("atomic")]),
            ("ports", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicySpec",
        &[
            ("egress", &[ListType("atomic")]),
            ("ingress", &[ListType("atomic")]),
            ("policyTypes", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        &[("selector", &[Strategy("replace")])],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetStatus",
        &[(
            "conditions",
            &[
                Strategy("merge"),
                MergeKey("type"),
                ListType("map"),
                ListMapKeys(&["type"]),
            ],
        )],
    ),
    (
        "io.k8s.api.rbac.v1.AggregationRule",
        &[("clusterRoleSelectors", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.rbac.v1.ClusterRole",
        &[("rules", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.rbac.v1.ClusterRoleBinding",
        &[("subjects", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.rbac.v1.PolicyRule",
        &[
            ("apiGroups", &[ListType("atomic")]),
            ("nonResourceURLs", &[ListType("atomic")]),
            ("resourceNames", &[ListType("atomic")]),
            ("resources", &[ListType("atomic")]),
            ("verbs", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.api.rbac.v1.Role",
        &[("rules", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.rbac.v1.RoleBinding",
        &[("subjects", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.storage.v1.CSIDriverSpec",
        &[
            ("tokenRequests", &[ListType("atomic")]),
            ("volumeLifecycleModes", &[ListType("set")]),
        ],
    ),
    (
        "io.k8s.api.storage.v1.CSINodeDriver",
        &[("topologyKeys", &[ListType("atomic")])],
    ),
    (
        "io.k8s.api.storage.v1.CSINodeSpec",
        &[(
            "drivers",
            &[
                Strategy("merge"),
                MergeKey("name"),
                ListType("map"),
                ListMapKeys(&["name"]),
            ],
        )],
    ),
    (
        "io.k8s.api.storage.v1.StorageClass",
        &[
            ("allowedTopologies", &[ListType("atomic")]),
            ("mountOptions", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroup",
        &[
            ("serverAddressByClientCIDRs", &[ListType("atomic")]),
            ("versions", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIGroupList",
        &[("groups", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResource",
        &[
            ("categories", &[ListType("atomic")]),
            ("shortNames", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList",
        &[("resources", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.APIVersions",
        &[
            ("serverAddressByClientCIDRs", &[ListType("atomic")]),
            ("versions", &[ListType("atomic")]),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
        &[("dryRun", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.FieldSelectorRequirement",
        &[("values", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
        &[("matchExpressions", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement",
        &[("values", &[ListType("atomic")])],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
        &[
            ("finalizers", &[Strategy("merge"), ListType("set")]),
            ("managedFields", &[ListType("atomic")]),
            (
                "ownerReferences",
                &[
                    Strategy("merge"),
                    MergeKey("uid"),
                    ListType("map"),
                    ListMapKeys(&["uid"]),
                ],
            ),
        ],
    ),
    (
        "io.k8s.apimachinery.pkg.apis.meta.v1.StatusDetails",
        &[("causes", &[ListType("atomic")])],
    ),
];

pub(crate) const ATOMIC_TYPES: &[&str] = &[
    "io.k8s.api.autoscaling.v1.CrossVersionObjectReference",
    "io.k8s.api.core.v1.ConfigMapKeySelector",
    "io.k8s.api.core.v1.EndpointAddress",
    "io.k8s.api.core.v1.EndpointPort",
    "io.k8s.api.core.v1.LocalObjectReference",
    "io.k8s.api.core.v1.NodeSelector",
    "io.k8s.api.core.v1.NodeSelectorTerm",
    "io.k8s.api.core.v1.ObjectFieldSelector",
    "io.k8s.api.core.v1.ObjectReference",
    "io.k8s.api.core.v1.ResourceFieldSelector",
    "io.k8s.api.core.v1.ScopeSelector",
    "io.k8s.api.core.v1.SecretKeySelector",
    "io.k8s.api.core.v1.SecretReference",
    "io.k8s.api.core.v1.TopologySelectorTerm",
    "io.k8s.api.core.v1.TypedLocalObjectReference",
    "io.k8s.api.discovery.v1.EndpointPort",
    "io.k8s.api.networking.v1.ServiceBackendPort",
    "io.k8s.api.rbac.v1.RoleRef",
    "io.k8s.api.rbac.v1.Subject",
    "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector",
    "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference",
];

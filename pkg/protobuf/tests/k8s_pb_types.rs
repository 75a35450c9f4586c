//! Real messages encoded by prost with k8s-pb's structs, wrapped in the envelope, decode
//! to upstream's JSON, which k8s-openapi's types accept and write back unchanged.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use base64::Engine as _;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::certificates::v1 as certificates;
use k8s_pb::api::coordination::v1 as coordination;
use k8s_pb::api::core::v1 as core;
use k8s_pb::api::policy::v1 as policy;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

/// 2024-01-02T03:04:05Z
const T: i64 = 1_704_164_645;

fn envelope(api_version: &str, kind: &str, object: &impl Message) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(object.encode_to_vec()),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = b"k8s\0".to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

/// Decodes, compares with `want`, and checks k8s-openapi's type takes the JSON and writes
/// it back identically (so no field name is unknown to it).
fn check<T: DeserializeOwned + Serialize>(body: &[u8], want: Value) -> T {
    let (_, got) = k8s_protobuf::decode_envelope(body).unwrap();
    assert_eq!(
        got,
        want,
        "\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    let typed: T = serde_json::from_value(got.clone()).unwrap();
    assert_eq!(
        numbers_as_f64(serde_json::to_value(&typed).unwrap()),
        numbers_as_f64(got)
    );
    typed
}

/// k8s-openapi writes an f64 of 1 as `1.0` where Go (and this crate) write `1`.
fn numbers_as_f64(value: Value) -> Value {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n), Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, numbers_as_f64(v)))
                .collect(),
        ),
        other => other,
    }
}

fn meta(name: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    })
}

fn q(s: &str) -> Quantity {
    Quantity {
        string: Some(s.into()),
    }
}

fn int_port(port: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(port),
        str_val: None,
    })
}

fn str_port(port: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: None,
        str_val: Some(port.into()),
    })
}

fn strings(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn configmap_with_data_and_binary_data() {
    let cm = core::ConfigMap {
        metadata: meta("cm"),
        data: strings(&[("a", "b"), ("config.yaml", "x: 1\n")]),
        binary_data: [("blob".to_string(), vec![0u8, 1, 2, 255])].into(),
        immutable: Some(true),
    };
    check::<k8s_openapi::api::core::v1::ConfigMap>(
        &envelope("v1", "ConfigMap", &cm),
        json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "cm", "namespace": "default"},
            "immutable": true,
            "data": {"a": "b", "config.yaml": "x: 1\n"},
            "binaryData": {"blob": "AAEC/w=="}
        }),
    );
}

#[test]
fn secret_with_bytes() {
    let secret = core::Secret {
        metadata: meta("s"),
        data: [("password".to_string(), b"hunter2".to_vec())].into(),
        string_data: BTreeMap::new(),
        r#type: Some("Opaque".into()),
        immutable: None,
    };
    let typed = check::<k8s_openapi::api::core::v1::Secret>(
        &envelope("v1", "Secret", &secret),
        json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "s", "namespace": "default"},
            "data": {"password": "aHVudGVyMg=="},
            "type": "Opaque"
        }),
    );
    assert_eq!(typed.data.unwrap()["password"].0, b"hunter2");
}

#[test]
fn service_with_int_or_string_target_ports() {
    let svc = core::Service {
        metadata: meta("web"),
        spec: Some(core::ServiceSpec {
            ports: vec![
                core::ServicePort {
                    name: Some("http".into()),
                    protocol: Some("TCP".into()),
                    port: Some(80),
                    target_port: int_port(8080),
                    ..Default::default()
                },
                core::ServicePort {
                    name: Some("https".into()),
                    protocol: Some("TCP".into()),
                    port: Some(443),
                    target_port: str_port("https"),
                    node_port: Some(30443),
                    ..Default::default()
                },
            ],
            selector: strings(&[("app", "web")]),
            cluster_ip: Some("10.0.0.10".into()),
            cluster_ips: vec!["10.0.0.10".into(), "fd00::10".into()],
            r#type: Some("NodePort".into()),
            session_affinity: Some("None".into()),
            ip_families: vec!["IPv4".into(), "IPv6".into()],
            ip_family_policy: Some("PreferDualStack".into()),
            allocate_load_balancer_node_ports: Some(false),
            ..Default::default()
        }),
        status: None,
    };
    check::<k8s_openapi::api::core::v1::Service>(
        &envelope("v1", "Service", &svc),
        json!({
            "kind": "Service", "apiVersion": "v1",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https", "nodePort": 30443}
                ],
                "selector": {"app": "web"},
                "clusterIP": "10.0.0.10",
                "clusterIPs": ["10.0.0.10", "fd00::10"],
                "type": "NodePort",
                "sessionAffinity": "None",
                "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack",
                "allocateLoadBalancerNodePorts": false
            }
        }),
    );
}

fn pod_template() -> core::PodTemplateSpec {
    let container = core::Container {
        name: Some("app".into()),
        image: Some("nginx:1.27".into()),
        command: vec!["nginx".into()],
        args: vec!["-g".into(), "daemon off;".into()],
        ports: vec![core::ContainerPort {
            name: Some("http".into()),
            container_port: Some(80),
            protocol: Some("TCP".into()),
            ..Default::default()
        }],
        env: vec![
            core::EnvVar {
                name: Some("MODE".into()),
                value: Some("prod".into()),
                value_from: None,
            },
            core::EnvVar {
                name: Some("TOKEN".into()),
                value: None,
                value_from: Some(core::EnvVarSource {
                    secret_key_ref: Some(core::SecretKeySelector {
                        local_object_reference: Some(core::LocalObjectReference {
                            name: Some("creds".into()),
                        }),
                        key: Some("token".into()),
                        optional: Some(false),
                    }),
                    ..Default::default()
                }),
            },
        ],
        resources: Some(core::ResourceRequirements {
            limits: [
                ("cpu".to_string(), q("500m")),
                ("memory".to_string(), q("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_string(), q("250m"))].into(),
            claims: vec![],
        }),
        volume_mounts: vec![core::VolumeMount {
            name: Some("config".into()),
            read_only: Some(true),
            mount_path: Some("/etc/nginx/conf.d".into()),
            ..Default::default()
        }],
        liveness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                http_get: Some(core::HttpGetAction {
                    path: Some("/healthz".into()),
                    port: str_port("http"),
                    scheme: Some("HTTP".into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            failure_threshold: Some(3),
            ..Default::default()
        }),
        readiness_probe: Some(core::Probe {
            handler: Some(core::ProbeHandler {
                exec: Some(core::ExecAction {
                    command: vec!["cat".into(), "/tmp/ready".into()],
                }),
                ..Default::default()
            }),
            timeout_seconds: Some(2),
            ..Default::default()
        }),
        image_pull_policy: Some("IfNotPresent".into()),
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    core::PodTemplateSpec {
        metadata: Some(meta::ObjectMeta {
            labels: strings(&[("app", "web")]),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            volumes: vec![
                core::Volume {
                    name: Some("config".into()),
                    volume_source: Some(core::VolumeSource {
                        config_map: Some(core::ConfigMapVolumeSource {
                            local_object_reference: Some(core::LocalObjectReference {
                                name: Some("nginx-conf".into()),
                            }),
                            default_mode: Some(0o644),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                },
                core::Volume {
                    name: Some("scratch".into()),
                    volume_source: Some(core::VolumeSource {
                        empty_dir: Some(core::EmptyDirVolumeSource {
                            medium: Some("Memory".into()),
                            size_limit: Some(q("64Mi")),
                        }),
                        ..Default::default()
                    }),
                },
            ],
            containers: vec![container],
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(30),
            host_ipc: Some(true),
            node_selector: strings(&[("kubernetes.io/os", "linux")]),
            tolerations: vec![core::Toleration {
                key: Some("node-role.kubernetes.io/control-plane".into()),
                operator: Some("Exists".into()),
                effect: Some("NoSchedule".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_with_full_pod_template() {
    let deployment = apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("7c9e6679-7425-40de-944b-e07fc1f90ae7".into()),
            resource_version: Some("42".into()),
            generation: Some(3),
            creation_timestamp: Some(meta::Time {
                seconds: Some(T),
                nanos: Some(0),
            }),
            labels: strings(&[("app", "web"), ("tier", "frontend")]),
            annotations: strings(&[("deployment.kubernetes.io/revision", "2")]),
            ..Default::default()
        }),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: strings(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: Some("tier".into()),
                    operator: Some("In".into()),
                    values: vec!["frontend".into()],
                }],
            }),
            template: Some(pod_template()),
            strategy: Some(apps::DeploymentStrategy {
                r#type: Some("RollingUpdate".into()),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_unavailable: int_port(0),
                    max_surge: str_port("25%"),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    };
    let typed = check::<k8s_openapi::api::apps::v1::Deployment>(
        &envelope("apps/v1", "Deployment", &deployment),
        json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {
                "name": "web", "namespace": "default",
                "uid": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "resourceVersion": "42",
                "generation": 3, "creationTimestamp": "2024-01-02T03:04:05Z",
                "labels": {"app": "web", "tier": "frontend"},
                "annotations": {"deployment.kubernetes.io/revision": "2"}
            },
            "spec": {
                "replicas": 0,
                "selector": {
                    "matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]
                },
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "volumes": [
                            {"name": "config", "configMap": {"name": "nginx-conf", "defaultMode": 420}},
                            {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
                        ],
                        "containers": [{
                            "name": "app",
                            "image": "nginx:1.27",
                            "command": ["nginx"],
                            "args": ["-g", "daemon off;"],
                            "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token", "optional": false}}}
                            ],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"}
                            },
                            "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/nginx/conf.d"}],
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3
                            },
                            "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]}, "timeoutSeconds": 2},
                            "imagePullPolicy": "IfNotPresent",
                            "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": true}
                        }],
                        "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "hostIPC": true,
                        "tolerations": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]
                    }
                },
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600
            }
        }),
    );
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(0), "a pointer's zero survives");
    let container = &spec.template.spec.unwrap().containers[0];
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .as_ref()
        .unwrap();
    assert_eq!(limits["cpu"].0, "500m");
}

#[test]
fn eviction_with_delete_options() {
    let eviction = policy::Eviction {
        metadata: meta("web-1"),
        delete_options: Some(meta::DeleteOptions {
            grace_period_seconds: Some(0),
            preconditions: Some(meta::Preconditions {
                uid: Some("u-1".into()),
                resource_version: None,
            }),
            dry_run: vec!["All".into()],
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::policy::v1::Eviction>(
        &envelope("policy/v1", "Eviction", &eviction),
        json!({
            "kind": "Eviction", "apiVersion": "policy/v1",
            "metadata": {"name": "web-1", "namespace": "default"},
            "deleteOptions": {"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"}, "dryRun": ["All"]}
        }),
    );
}

#[test]
fn delete_options_under_any_group_version() {
    let opts = meta::DeleteOptions {
        propagation_policy: Some("Foreground".into()),
        orphan_dependents: Some(false),
        ..Default::default()
    };
    for gv in ["meta.k8s.io/v1", "apps/v1", "v1"] {
        check::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(
            &envelope(gv, "DeleteOptions", &opts),
            json!({
                "kind": "DeleteOptions", "apiVersion": gv,
                "orphanDependents": false, "propagationPolicy": "Foreground"
            }),
        );
    }
}

#[test]
fn certificate_signing_request_with_request_bytes() {
    let pem = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n";
    let csr = certificates::CertificateSigningRequest {
        metadata: Some(meta::ObjectMeta {
            name: Some("node-csr".into()),
            ..Default::default()
        }),
        spec: Some(certificates::CertificateSigningRequestSpec {
            request: Some(pem.to_vec()),
            signer_name: Some("kubernetes.io/kube-apiserver-client-kubelet".into()),
            expiration_seconds: Some(3600),
            usages: vec!["digital signature".into(), "client auth".into()],
            username: Some("system:node:n1".into()),
            groups: vec!["system:nodes".into()],
            extra: [(
                "scopes".to_string(),
                certificates::ExtraValue {
                    items: vec!["a".into(), "b".into()],
                },
            )]
            .into(),
            ..Default::default()
        }),
        status: Some(certificates::CertificateSigningRequestStatus {
            conditions: vec![certificates::CertificateSigningRequestCondition {
                r#type: Some("Approved".into()),
                status: Some("True".into()),
                reason: Some("KubectlApprove".into()),
                message: Some("approved".into()),
                last_update_time: Some(meta::Time {
                    seconds: Some(T),
                    nanos: Some(0),
                }),
                last_transition_time: Some(meta::Time {
                    seconds: Some(T + 60),
                    nanos: Some(0),
                }),
            }],
            certificate: None,
        }),
    };
    let request_b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    let typed = check::<k8s_openapi::api::certificates::v1::CertificateSigningRequest>(
        &envelope("certificates.k8s.io/v1", "CertificateSigningRequest", &csr),
        json!({
            "kind": "CertificateSigningRequest", "apiVersion": "certificates.k8s.io/v1",
            "metadata": {"name": "node-csr"},
            "spec": {
                "request": request_b64,
                "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                "expirationSeconds": 3600,
                "usages": ["digital signature", "client auth"],
                "username": "system:node:n1",
                "groups": ["system:nodes"],
                "extra": {"scopes": ["a", "b"]}
            },
            "status": {"conditions": [{
                "type": "Approved", "status": "True", "reason": "KubectlApprove", "message": "approved",
                "lastUpdateTime": "2024-01-02T03:04:05Z", "lastTransitionTime": "2024-01-02T03:05:05Z"
            }]}
        }),
    );
    assert_eq!(typed.spec.request.0, pem);
}

#[test]
fn lease_with_micro_time() {
    let lease = coordination::Lease {
        metadata: Some(meta::ObjectMeta {
            name: Some("kube-scheduler".into()),
            namespace: Some("kube-system".into()),
            ..Default::default()
        }),
        spec: Some(coordination::LeaseSpec {
            holder_identity: Some("node1_abc".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(T),
                nanos: Some(123_456_789),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(T + 2),
                nanos: Some(0),
            }),
            lease_transitions: Some(0),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::coordination::v1::Lease>(
        &envelope("coordination.k8s.io/v1", "Lease", &lease),
        json!({
            "kind": "Lease", "apiVersion": "coordination.k8s.io/v1",
            "metadata": {"name": "kube-scheduler", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "node1_abc",
                "leaseDurationSeconds": 15,
                "acquireTime": "2024-01-02T03:04:05.123456Z",
                "renewTime": "2024-01-02T03:04:07.000000Z",
                "leaseTransitions": 0
            }
        }),
    );
}

#[test]
fn custom_resource_definition_schema() {
    let string = |desc: &str| apiext::JsonSchemaProps {
        r#type: Some("string".into()),
        description: Some(desc.into()),
        ..Default::default()
    };
    let spec_schema = apiext::JsonSchemaProps {
        r#type: Some("object".into()),
        required: vec!["size".into()],
        properties: [
            ("size".to_string(), string("how big")),
            (
                "replicas".to_string(),
                apiext::JsonSchemaProps {
                    r#type: Some("integer".into()),
                    minimum: Some(1.0),
                    maximum: Some(10.5),
                    default: Some(apiext::Json {
                        raw: Some(b"3".to_vec()),
                    }),
                    ..Default::default()
                },
            ),
            (
                "tags".to_string(),
                apiext::JsonSchemaProps {
                    r#type: Some("array".into()),
                    items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                        schema: Some(Box::new(string("a tag"))),
                        j_son_schemas: vec![],
                    })),
                    ..Default::default()
                },
            ),
        ]
        .into(),
        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        metadata: Some(meta::ObjectMeta {
            name: Some("widgets.example.com".into()),
            ..Default::default()
        }),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: Some("example.com".into()),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: Some("widgets".into()),
                singular: Some("widget".into()),
                kind: Some("Widget".into()),
                list_kind: Some("WidgetList".into()),
                ..Default::default()
            }),
            scope: Some("Namespaced".into()),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: Some("v1".into()),
                served: Some(true),
                storage: Some(true),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(apiext::JsonSchemaProps {
                        r#type: Some("object".into()),
                        properties: [("spec".to_string(), spec_schema)].into(),
                        ..Default::default()
                    }),
                }),
                subresources: Some(apiext::CustomResourceSubresources {
                    status: Some(apiext::CustomResourceSubresourceStatus {}),
                    scale: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    check::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(
        &envelope("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd),
        json!({
            "kind": "CustomResourceDefinition", "apiVersion": "apiextensions.k8s.io/v1",
            "metadata": {"name": "widgets.example.com"},
            "spec": {
                "group": "example.com",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                "scope": "Namespaced",
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "properties": {"spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "replicas": {"type": "integer", "default": 3, "maximum": 10.5, "minimum": 1},
                                "size": {"description": "how big", "type": "string"},
                                "tags": {"type": "array", "items": {"description": "a tag", "type": "string"}}
                            },
                            "additionalProperties": false,
                            "x-kubernetes-preserve-unknown-fields": true
                        }}
                    }},
                    "subresources": {"status": {}}
                }]
            }
        }),
    );
}

#[test]
fn garbage_never_panics() {
    // A deterministic xorshift stream: mutate real bodies byte by byte and at random.
    let bodies = [
        envelope(
            "v1",
            "ConfigMap",
            &core::ConfigMap {
                metadata: meta("cm"),
                data: strings(&[("a", "b")]),
                ..Default::default()
            },
        ),
        envelope(
            "apps/v1",
            "Deployment",
            &apps::Deployment {
                metadata: meta("d"),
                spec: Some(apps::DeploymentSpec {
                    template: Some(pod_template()),
                    ..Default::default()
                }),
                status: None,
            },
        ),
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for body in &bodies {
        for cut in 0..body.len() {
            errors += usize::from(k8s_protobuf::decode_envelope(&body[..cut]).is_err());
        }
        for _ in 0..2000 {
            let mut mutated = body.clone();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % mutated.len();
                mutated[i] = next() as u8;
            }
            errors += usize::from(k8s_protobuf::decode_envelope(&mutated).is_err());
        }
    }
    for _ in 0..2000 {
        let len = (next() % 64) as usize;
        let mut junk = b"k8s\0".to_vec();
        junk.extend((0..len).map(|_| next() as u8));
        errors += usize::from(k8s_protobuf::decode_envelope(&junk).is_err());
    }
    assert!(
        errors > 1000,
        "mutations should mostly be rejected, got {errors} errors"
    );
}

//! Pod specs as every workload embeds them: upstream's defaulting (`SetDefaults_PodSpec`,
//! `_Container`, `_Probe`, `_Volume`, ... of `pkg/apis/core/v1/defaults.go`) and validation
//! (`ValidatePodSpec`, `ValidatePodTemplateSpec` of `pkg/apis/core/validation`), shared by
//! pods, pod templates, replication controllers and the apps and batch workloads.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::core::v1::{
    Container, EphemeralContainer, HTTPGetAction, LifecycleHandler, Pod, PodSpec, PodTemplateSpec,
    Probe, SecurityContext, Toleration, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::registry::core::resourcelist;

/// What differs between validating a pod and a pod template (upstream's
/// `PodValidationOptions.ResourceIsPod`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PodValidationOptions {
    pub resource_is_pod: bool,
}

const IS_NEGATIVE: &str = validation::IS_NEGATIVE_ERROR_MSG;
const NOT_POSITIVE: &str = "must be greater than zero";
const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

fn unset(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

fn set_default(v: &mut Option<String>, value: &str) {
    if unset(v) {
        *v = Some(value.to_string());
    }
}

// ---------------------------------------------------------------------------------------
// Defaulting.
// ---------------------------------------------------------------------------------------

/// The pull policy for an image: `Always` for `:latest` or an untagged, undigested image,
/// `IfNotPresent` otherwise (also for references that do not parse, as upstream).
pub fn default_pull_policy(image: &str) -> &'static str {
    let image = image.trim();
    let valid = !image.is_empty()
        && !image.chars().any(char::is_whitespace)
        && !repository_path(image)
            .chars()
            .any(|c| c.is_ascii_uppercase());
    if !valid {
        return "IfNotPresent";
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let tag = name[last_slash..].split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

/// The repository path of a reference without its registry host, which upstream requires
/// in lower case.
fn repository_path(image: &str) -> &str {
    let name = image.split('@').next().unwrap_or(image);
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => name,
    }
}

/// `SetDefaults_PodSpec` and every defaulter of the types a pod spec holds.
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_default(&mut spec.dns_policy, "ClusterFirst");
    set_default(&mut spec.restart_policy, "Always");
    spec.security_context.get_or_insert_with(Default::default);
    spec.termination_grace_period_seconds.get_or_insert(30);
    set_default(&mut spec.scheduler_name, "default-scheduler");
    for c in &mut spec.containers {
        default_container(c);
    }
    for c in spec.init_containers.iter_mut().flatten() {
        default_container(c);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        default_ephemeral_container(c);
    }
    for v in spec.volumes.iter_mut().flatten() {
        default_volume(v);
    }
    resourcelist::normalize(&mut spec.overhead);
    if let Some(r) = spec.resources.as_mut() {
        resourcelist::normalize(&mut r.limits);
        resourcelist::normalize(&mut r.requests);
    }
}

/// Defaults of a pod template (its spec exists even when the client left it out).
pub fn default_pod_template_spec(template: &mut PodTemplateSpec) {
    default_pod_spec(template.spec.get_or_insert_with(Default::default));
}

/// `SetDefaults_Pod` (only for pods, not templates), then the spec's defaults.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(Default::default);
    let containers = spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten());
    for c in containers {
        // Requests default to limits, so that a container with only limits is Guaranteed.
        if let Some(r) = c.resources.as_mut() {
            if let Some(limits) = r.limits.clone() {
                let requests = r.requests.get_or_insert_with(Default::default);
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
    spec.enable_service_links.get_or_insert(true);
    if spec.host_network == Some(true) {
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for port in containers.flat_map(|c| c.ports.iter_mut().flatten()) {
            if port.host_port.unwrap_or(0) == 0 {
                port.host_port = Some(port.container_port);
            }
        }
    }
    default_pod_spec(spec);
}

pub fn default_container(c: &mut Container) {
    if unset(&c.image_pull_policy) {
        c.image_pull_policy = Some(default_pull_policy(s(&c.image)).to_string());
    }
    set_default(&mut c.termination_message_path, "/dev/termination-log");
    set_default(&mut c.termination_message_policy, "File");
    for p in c.ports.iter_mut().flatten() {
        set_default(&mut p.protocol, "TCP");
    }
    for e in c.env.iter_mut().flatten() {
        if let Some(f) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            set_default(&mut f.api_version, "v1");
        }
    }
    if let Some(r) = c.resources.as_mut() {
        resourcelist::normalize(&mut r.limits);
        resourcelist::normalize(&mut r.requests);
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = h.http_get.as_mut() {
                default_http_get(g);
            }
        }
    }
}

/// Ephemeral containers share the container defaults.
pub fn default_ephemeral_container(ec: &mut EphemeralContainer) {
    let mut c = to_container(ec);
    default_container(&mut c);
    let target = ec.target_container_name.take();
    *ec = from_container(c);
    ec.target_container_name = target;
}

/// The fields an ephemeral container shares with a container (upstream converts between
/// the two types directly; here serde does it, dropping only `targetContainerName`).
pub fn to_container(ec: &EphemeralContainer) -> Container {
    serde_json::to_value(ec)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn from_container(c: Container) -> EphemeralContainer {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn default_probe(p: &mut Probe) {
    for (field, default) in [
        (&mut p.timeout_seconds, 1),
        (&mut p.period_seconds, 10),
        (&mut p.success_threshold, 1),
        (&mut p.failure_threshold, 3),
    ] {
        if field.unwrap_or(0) == 0 {
            *field = Some(default);
        }
    }
    if let Some(g) = p.http_get.as_mut() {
        default_http_get(g);
    }
    if let Some(g) = p.grpc.as_mut() {
        g.service.get_or_insert_with(String::new);
    }
}

fn default_http_get(g: &mut HTTPGetAction) {
    set_default(&mut g.path, "/");
    set_default(&mut g.scheme, "HTTP");
}

/// Volume file permissions default to 0644.
const DEFAULT_MODE: i32 = 0o644;

pub fn default_volume(v: &mut Volume) {
    if volume_sources(v).is_empty() {
        v.empty_dir = Some(Default::default());
    }
    if let Some(src) = v.secret.as_mut() {
        src.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(src) = v.config_map.as_mut() {
        src.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(src) = v.downward_api.as_mut() {
        src.default_mode.get_or_insert(DEFAULT_MODE);
        for f in src.items.iter_mut().flatten() {
            if let Some(r) = f.field_ref.as_mut() {
                set_default(&mut r.api_version, "v1");
            }
        }
    }
    if let Some(src) = v.projected.as_mut() {
        src.default_mode.get_or_insert(DEFAULT_MODE);
        for p in src.sources.iter_mut().flatten() {
            if let Some(t) = p.service_account_token.as_mut() {
                t.expiration_seconds.get_or_insert(3600);
            }
            for f in p
                .downward_api
                .iter_mut()
                .flat_map(|d| d.items.iter_mut().flatten())
            {
                if let Some(r) = f.field_ref.as_mut() {
                    set_default(&mut r.api_version, "v1");
                }
            }
        }
    }
    if let Some(src) = v.host_path.as_mut() {
        src.type_.get_or_insert_with(String::new);
    }
    if let Some(src) = v.iscsi.as_mut() {
        set_default(&mut src.iscsi_interface, "default");
    }
    if let Some(src) = v.rbd.as_mut() {
        set_default(&mut src.pool, "rbd");
        set_default(&mut src.user, "admin");
        set_default(&mut src.keyring, "/etc/ceph/keyring");
    }
    if let Some(src) = v.azure_disk.as_mut() {
        set_default(&mut src.caching_mode, "ReadWrite");
        set_default(&mut src.fs_type, "ext4");
        src.read_only.get_or_insert(false);
        set_default(&mut src.kind, "Shared");
    }
    if let Some(src) = v.scale_io.as_mut() {
        set_default(&mut src.storage_mode, "ThinProvisioned");
        set_default(&mut src.fs_type, "xfs");
    }
    if let Some(src) = v.image.as_mut() {
        if unset(&src.pull_policy) {
            let policy = match default_pull_policy(s(&src.reference)) {
                // Unlike containers, an untagged image volume is not pulled every time.
                "Always" if !s(&src.reference).contains(":latest") => "IfNotPresent",
                p => p,
            };
            src.pull_policy = Some(policy.to_string());
        }
    }
    if let Some(t) = v
        .ephemeral
        .as_mut()
        .and_then(|e| e.volume_claim_template.as_mut())
    {
        crate::registry::core::persistentvolumeclaim::default_pvc_spec(&mut t.spec);
    }
}

/// The volume sources set on a volume, named as upstream's validation names them, in
/// upstream's order.
pub fn volume_sources(v: &Volume) -> Vec<&'static str> {
    let present = [
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephFS", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        // Upstream's path for this error carries the typo.
        ("downwarAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storageos.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ];
    present
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| n)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Validation.
// ---------------------------------------------------------------------------------------

/// What container validation needs to know about a valid volume.
#[derive(Debug, Clone, Copy)]
struct VolumeInfo {
    /// A PersistentVolumeClaim or generic ephemeral volume (usable as a block device).
    claim: bool,
    image: bool,
}

type Volumes = HashMap<String, VolumeInfo>;

/// A pod template's metadata and spec (upstream's `ValidatePodTemplateSpec`), at `path`
/// (e.g. `spec.template`).
pub fn validate_pod_template_spec(template: &PodTemplateSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let meta = template.metadata.clone().unwrap_or_default();
    errs.extend(validation::validate_labels(
        &meta.labels.clone().unwrap_or_default(),
        &path.child("labels"),
    ));
    let annotations = meta.annotations.clone().unwrap_or_default();
    errs.extend(validation::validate_annotations(
        &annotations,
        &path.child("annotations"),
    ));
    let spec = template.spec.clone().unwrap_or_default();
    errs.extend(validate_pod_specific_annotations(
        &annotations,
        &spec,
        &path.child("annotations"),
    ));
    errs.extend(validate_pod_spec(
        &spec,
        None,
        &path.child("spec"),
        PodValidationOptions::default(),
    ));
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// Annotations with meaning for pods (upstream's `ValidatePodSpecificAnnotations`).
pub fn validate_pod_specific_annotations(
    annotations: &BTreeMap<String, String>,
    spec: &PodSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(v) = annotations.get("kubernetes.io/config.mirror") {
        if unset(&spec.node_name) {
            errs.push(FieldError::invalid(
                &path.key("kubernetes.io/config.mirror"),
                v.as_str(),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(v) = annotations.get("controller.kubernetes.io/pod-deletion-cost") {
        if v.parse::<i32>().is_err() {
            errs.push(FieldError::invalid(
                &path.key("controller.kubernetes.io/pod-deletion-cost"),
                v.as_str(),
                "must be a 32bit integer",
            ));
        }
    }
    errs
}

/// Upstream's `ValidatePodSpec`. `pod_name` is the pod's name when validating a pod (for
/// the names of generic ephemeral volumes' claims).
pub fn validate_pod_spec(
    spec: &PodSpec,
    pod_name: Option<&str>,
    path: &Path,
    opts: PodValidationOptions,
) -> ErrorList {
    let mut errs = Vec::new();
    if spec.termination_grace_period_seconds.is_none() {
        errs.push(FieldError::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        ));
    }
    let grace = spec.termination_grace_period_seconds;
    let security = spec.security_context.clone().unwrap_or_default();
    let host_users = spec.host_users.unwrap_or(true);
    let (vols, vol_errs) = validate_volumes(
        spec.volumes.as_deref().unwrap_or_default(),
        pod_name,
        &path.child("volumes"),
        opts,
    );
    errs.extend(vol_errs);
    let claims = validate_resource_claims(spec, &path.child("resourceClaims"));
    let restart = s(&spec.restart_policy);
    let ctx = ContainerContext {
        volumes: &vols,
        claims: &claims,
        grace,
        restart_policy: restart,
        host_users,
        opts,
    };
    errs.extend(validate_containers(
        &spec.containers,
        &path.child("containers"),
        &ctx,
    ));
    let init = spec.init_containers.as_deref().unwrap_or_default();
    errs.extend(validate_init_containers(
        init,
        &spec.containers,
        &path.child("initContainers"),
        &ctx,
    ));
    errs.extend(validate_ephemeral_containers(
        spec.ephemeral_containers.as_deref().unwrap_or_default(),
        &spec.containers,
        init,
        &path.child("ephemeralContainers"),
        &ctx,
    ));
    errs.extend(validate_host_network_deps(spec, path, opts));
    errs.extend(enum_field(
        &spec.restart_policy,
        &["Always", "OnFailure", "Never"],
        &path.child("restartPolicy"),
    ));
    errs.extend(enum_field(
        &spec.dns_policy,
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        &path.child("dnsPolicy"),
    ));
    if let Some(ns) = &spec.node_selector {
        errs.extend(validation::validate_labels(ns, &path.child("nodeSelector")));
    }
    errs.extend(validate_pod_security_context(
        &security,
        spec,
        &path.child("securityContext"),
    ));
    if let Some(a) = &spec.affinity {
        errs.extend(validate_affinity(a, &path.child("affinity")));
    }
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    for (i, gate) in spec.readiness_gates.iter().flatten().enumerate() {
        errs.extend(qualified_name(
            &gate.condition_type,
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut gates = BTreeSet::new();
    for (i, gate) in spec.scheduling_gates.iter().flatten().enumerate() {
        let p = path.child("schedulingGates").index(i);
        errs.extend(qualified_name(&gate.name, &p));
        if !gates.insert(gate.name.as_str()) {
            errs.push(FieldError::duplicate(&p, gate.name.as_str()));
        }
    }
    errs.extend(validate_topology_spread(
        spec,
        &path.child("topologySpreadConstraints"),
    ));
    if !host_users {
        for (flag, name) in [
            (spec.host_network, "hostNetwork"),
            (spec.host_pid, "HostPID"),
            (spec.host_ipc, "HostIPC"),
        ] {
            if flag == Some(true) {
                errs.push(FieldError::forbidden(
                    &path.child(name),
                    "when `pod.Spec.HostUsers` is false",
                ));
            }
        }
    }
    if !unset(&spec.service_account_name) {
        let name = s(&spec.service_account_name);
        for msg in validation::validate_service_account_name(name, false) {
            errs.push(FieldError::invalid(
                &path.child("serviceAccountName"),
                name,
                msg,
            ));
        }
    }
    if !unset(&spec.node_name) {
        let name = s(&spec.node_name);
        for msg in validation::name_is_dns_subdomain(name, false) {
            errs.push(FieldError::invalid(&path.child("nodeName"), name, msg));
        }
    }
    if let Some(v) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&v) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                v,
                validation::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if !unset(value) {
            errs.extend(dns1123_label(s(value), &path.child(field)));
        }
    }
    errs.extend(validate_tolerations(
        spec.tolerations.as_deref().unwrap_or_default(),
        &path.child("tolerations"),
    ));
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(validation::is_valid_ip(&p.child("ip"), &alias.ip));
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            errs.extend(dns1123_subdomain(host, &p.child("hostnames").index(j)));
        }
    }
    for (field, value) in [
        ("priorityClassName", &spec.priority_class_name),
        ("runtimeClassName", &spec.runtime_class_name),
    ] {
        if value.is_some() && !(field == "priorityClassName" && unset(value)) {
            for msg in validation::name_is_dns_subdomain(s(value), false) {
                errs.push(FieldError::invalid(&path.child(field), s(value), msg));
            }
        }
    }
    if spec.preemption_policy.is_some() {
        errs.extend(enum_field(
            &spec.preemption_policy,
            &["PreemptLowerPriority", "Never"],
            &path.child("preemptionPolicy"),
        ));
    }
    if spec.overhead.is_some() {
        errs.extend(resourcelist::validate_requirements(
            spec.overhead.as_ref(),
            None,
            &path.child("overhead"),
        ));
    }
    if let Some(os) = &spec.os {
        if os.name.is_empty() {
            errs.push(FieldError::required(
                &path.child("os").child("name"),
                "cannot be empty",
            ));
        } else if !["linux", "windows"].contains(&os.name.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("os"),
                os.name.as_str(),
                &["linux", "windows"],
            ));
        }
    }
    errs
}

/// A required enum: `Required` when empty, `Unsupported value` when unknown.
fn enum_field(value: &Option<String>, supported: &[&str], path: &Path) -> ErrorList {
    match value.as_deref() {
        None | Some("") => vec![FieldError::required(path, "")],
        Some(v) if supported.contains(&v) => Vec::new(),
        Some(v) => vec![FieldError::not_supported(path, v, supported)],
    }
}

fn dns1123_label(value: &str, path: &Path) -> ErrorList {
    validation::is_dns1123_label(value)
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn dns1123_subdomain(value: &str, path: &Path) -> ErrorList {
    validation::is_dns1123_subdomain(value)
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn qualified_name(value: &str, path: &Path) -> ErrorList {
    validation::is_qualified_name(value)
        .into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn nonnegative(value: Option<i32>, path: &Path) -> ErrorList {
    match value {
        Some(v) if v < 0 => vec![FieldError::invalid(path, v, IS_NEGATIVE)],
        _ => Vec::new(),
    }
}

fn file_mode(mode: Option<i32>, path: &Path) -> ErrorList {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid(path, m, FILE_MODE_ERROR)],
        _ => Vec::new(),
    }
}

fn validate_resource_claims(spec: &PodSpec, path: &Path) -> BTreeSet<String> {
    let _ = path;
    spec.resource_claims
        .iter()
        .flatten()
        .filter(|c| !c.name.is_empty())
        .map(|c| c.name.clone())
        .collect()
}

// --- Volumes -----------------------------------------------------------------------------

fn validate_volumes(
    volumes: &[Volume],
    pod_name: Option<&str>,
    path: &Path,
    opts: PodValidationOptions,
) -> (Volumes, ErrorList) {
    let mut errs = Vec::new();
    let mut valid = Volumes::new();
    let created_claims: BTreeSet<String> = match pod_name.filter(|n| !n.is_empty()) {
        Some(pod) => volumes
            .iter()
            .filter(|v| v.ephemeral.is_some())
            .map(|v| format!("{pod}-{}", v.name))
            .collect(),
        None => BTreeSet::new(),
    };
    for (i, vol) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        let mut el = validate_volume_source(vol, &p, pod_name, opts);
        if vol.name.is_empty() {
            el.push(FieldError::required(&name_path, ""));
        } else {
            el.extend(dns1123_label(&vol.name, &name_path));
        }
        if valid.contains_key(&vol.name) {
            el.push(FieldError::duplicate(&name_path, vol.name.as_str()));
        }
        if el.is_empty() {
            valid.insert(
                vol.name.clone(),
                VolumeInfo {
                    claim: vol.persistent_volume_claim.is_some() || vol.ephemeral.is_some(),
                    image: vol.image.is_some(),
                },
            );
        } else {
            errs.extend(el);
        }
        if let Some(claim) = &vol.persistent_volume_claim {
            if created_claims.contains(&claim.claim_name) {
                errs.push(FieldError::invalid(
                    &p.child("persistentVolumeClaim").child("claimName"),
                    claim.claim_name.as_str(),
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    (valid, errs)
}

fn validate_volume_source(
    v: &Volume,
    path: &Path,
    pod_name: Option<&str>,
    opts: PodValidationOptions,
) -> ErrorList {
    let sources = volume_sources(v);
    let mut errs = Vec::new();
    if sources.is_empty() {
        errs.push(FieldError::required(path, "must specify a volume type"));
        return errs;
    }
    for extra in &sources[1..] {
        errs.push(FieldError::forbidden(
            &path.child(extra),
            "may not specify more than 1 volume type",
        ));
    }
    // Only the first source is validated, as upstream does.
    match sources[0] {
        "emptyDir" => {
            let limit = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if let Some(q) = limit {
                let negative = resourcelist::parse(q, path).map(|q| q.sign() < 0);
                if !matches!(negative, Ok(false)) {
                    errs.push(FieldError::forbidden(
                        &path.child("emptyDir").child("sizeLimit"),
                        "SizeLimit field must be a valid resource quantity",
                    ));
                }
            }
        }
        "hostPath" => {
            if let Some(h) = &v.host_path {
                errs.extend(validate_host_path(
                    &h.path,
                    h.type_.as_deref(),
                    &path.child("hostPath"),
                ));
            }
        }
        "gitRepo" => {
            if let Some(g) = &v.git_repo {
                let p = path.child("gitRepo");
                if g.repository.is_empty() {
                    errs.push(FieldError::required(&p.child("repository"), ""));
                }
                errs.extend(local_descending_path(
                    s(&g.directory),
                    &p.child("directory"),
                ));
            }
        }
        "secret" => {
            if let Some(src) = &v.secret {
                let p = path.child("secret");
                if unset(&src.secret_name) {
                    errs.push(FieldError::required(&p.child("secretName"), ""));
                }
                errs.extend(file_mode(src.default_mode, &p.child("defaultMode")));
                for (i, kp) in src.items.iter().flatten().enumerate() {
                    errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
                }
            }
        }
        "configMap" => {
            if let Some(src) = &v.config_map {
                let p = path.child("configMap");
                if src.name.is_empty() {
                    errs.push(FieldError::required(&p.child("name"), ""));
                }
                errs.extend(file_mode(src.default_mode, &p.child("defaultMode")));
                for (i, kp) in src.items.iter().flatten().enumerate() {
                    errs.extend(validate_key_to_path(kp, &p.child("items").index(i)));
                }
            }
        }
        "persistentVolumeClaim"
            if v.persistent_volume_claim
                .as_ref()
                .is_some_and(|c| c.claim_name.is_empty()) =>
        {
            errs.push(FieldError::required(
                &path.child("persistentVolumeClaim").child("claimName"),
                "",
            ));
        }
        "nfs" => {
            if let Some(n) = &v.nfs {
                let p = path.child("nfs");
                if n.server.is_empty() {
                    errs.push(FieldError::required(&p.child("server"), ""));
                }
                if n.path.is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                }
                if !n.path.starts_with('/') {
                    errs.push(FieldError::invalid(
                        &p.child("path"),
                        n.path.as_str(),
                        "must be an absolute path",
                    ));
                }
            }
        }
        "downwarAPI" => {
            if let Some(d) = &v.downward_api {
                let p = path.child("downwardAPI");
                errs.extend(file_mode(d.default_mode, &p.child("defaultMode")));
                for f in d.items.iter().flatten() {
                    errs.extend(validate_downward_api_file(f, &p));
                }
            }
        }
        "projected" => {
            if let Some(pr) = &v.projected {
                errs.extend(validate_projected(pr, &path.child("projected")));
            }
        }
        "csi" => {
            if let Some(c) = &v.csi {
                let p = path.child("csi");
                errs.extend(validate_csi_driver_name(&c.driver, &p.child("driver")));
                if let Some(r) = &c.node_publish_secret_ref {
                    if r.name.is_empty() {
                        errs.push(FieldError::required(
                            &p.child("nodePublishSecretRef").child("name"),
                            "",
                        ));
                    } else {
                        for msg in validation::name_is_dns_subdomain(&r.name, false) {
                            errs.push(FieldError::invalid(&p.child("name"), r.name.as_str(), msg));
                        }
                    }
                }
            }
        }
        "ephemeral" => {
            let p = path.child("ephemeral");
            match v
                .ephemeral
                .as_ref()
                .and_then(|e| e.volume_claim_template.as_ref())
            {
                None => errs.push(FieldError::required(&p.child("volumeClaimTemplate"), "")),
                Some(t) => {
                    let tp = p.child("volumeClaimTemplate");
                    let meta = t.metadata.clone().unwrap_or_default();
                    errs.extend(validate_template_object_meta(&meta, &tp.child("metadata")));
                    errs.extend(
                        crate::registry::core::persistentvolumeclaim::validate_pvc_spec(
                            &t.spec,
                            &tp.child("spec"),
                        ),
                    );
                    if let Some(pod) = pod_name.filter(|n| !n.is_empty() && !v.name.is_empty()) {
                        let claim = format!("{pod}-{}", v.name);
                        for msg in validation::name_is_dns_subdomain(&claim, false) {
                            errs.push(FieldError::invalid(
                                &path.child("name"),
                                v.name.as_str(),
                                format!("PVC name {claim:?}: {msg}"),
                            ));
                        }
                    }
                }
            }
        }
        "image" => {
            if let Some(img) = &v.image {
                let p = path.child("image");
                if opts.resource_is_pod && unset(&img.reference) {
                    errs.push(FieldError::required(&p.child("reference"), ""));
                }
                errs.extend(pull_policy(&img.pull_policy, &p.child("pullPolicy")));
            }
        }
        "iscsi" => {
            if let Some(i) = &v.iscsi {
                let p = path.child("iscsi");
                if i.target_portal.is_empty() {
                    errs.push(FieldError::required(&p.child("targetPortal"), ""));
                }
                if i.iqn.is_empty() {
                    errs.push(FieldError::required(&p.child("iqn"), ""));
                }
                if !(0..=255).contains(&i.lun) {
                    errs.push(FieldError::invalid(
                        &p.child("lun"),
                        i.lun,
                        validation::inclusive_range_error(0, 255),
                    ));
                }
            }
        }
        "rbd" => {
            if let Some(r) = &v.rbd {
                let p = path.child("rbd");
                if r.monitors.is_empty() {
                    errs.push(FieldError::required(&p.child("monitors"), ""));
                }
                if r.image.is_empty() {
                    errs.push(FieldError::required(&p.child("image"), ""));
                }
            }
        }
        "cephFS" if v.cephfs.as_ref().is_some_and(|c| c.monitors.is_empty()) => {
            errs.push(FieldError::required(
                &path.child("cephfs").child("monitors"),
                "",
            ));
        }
        "glusterfs" => {
            if let Some(g) = &v.glusterfs {
                let p = path.child("glusterfs");
                if g.endpoints.is_empty() {
                    errs.push(FieldError::required(&p.child("endpoints"), ""));
                }
                if g.path.is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                }
            }
        }
        "flexVolume" if v.flex_volume.as_ref().is_some_and(|f| f.driver.is_empty()) => {
            errs.push(FieldError::required(
                &path.child("flexVolume").child("driver"),
                "",
            ));
        }
        "azureFile" => {
            if let Some(a) = &v.azure_file {
                let p = path.child("azureFile");
                if a.secret_name.is_empty() {
                    errs.push(FieldError::required(&p.child("secretName"), ""));
                }
                if a.share_name.is_empty() {
                    errs.push(FieldError::required(&p.child("shareName"), ""));
                }
            }
        }
        "awsElasticBlockStore"
            if v.aws_elastic_block_store
                .as_ref()
                .is_some_and(|a| a.volume_id.is_empty()) =>
        {
            errs.push(FieldError::required(
                &path.child("awsElasticBlockStore").child("volumeID"),
                "",
            ));
        }
        "gcePersistentDisk"
            if v.gce_persistent_disk
                .as_ref()
                .is_some_and(|g| g.pd_name.is_empty()) =>
        {
            errs.push(FieldError::required(
                &path.child("persistentDisk").child("pdName"),
                "",
            ));
        }
        "cinder" if v.cinder.as_ref().is_some_and(|c| c.volume_id.is_empty()) => {
            errs.push(FieldError::required(
                &path.child("cinder").child("volumeID"),
                "",
            ));
        }
        _ => {}
    }
    errs
}

pub fn validate_host_path(host_path: &str, ty: Option<&str>, path: &Path) -> ErrorList {
    if host_path.is_empty() {
        return vec![FieldError::required(&path.child("path"), "")];
    }
    let mut errs = no_backsteps(host_path, &path.child("path"));
    const TYPES: &[&str] = &[
        "",
        "BlockDevice",
        "CharDevice",
        "Directory",
        "DirectoryOrCreate",
        "File",
        "FileOrCreate",
        "Socket",
    ];
    if let Some(t) = ty.filter(|t| !TYPES.contains(t)) {
        errs.push(FieldError::not_supported(&path.child("type"), t, TYPES));
    }
    errs
}

fn validate_csi_driver_name(driver: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if driver.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    if driver.len() > 63 {
        errs.push(FieldError::too_long(path, 63));
    }
    for msg in validation::is_dns1123_subdomain(&driver.to_lowercase()) {
        errs.push(FieldError::invalid(path, driver, msg));
    }
    errs
}

/// Only labels and annotations may be set in an embedded template's metadata.
fn validate_template_object_meta(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    path: &Path,
) -> ErrorList {
    let mut errs = validation::validate_annotations(
        &meta.annotations.clone().unwrap_or_default(),
        &path.child("annotations"),
    );
    errs.extend(validation::validate_labels(
        &meta.labels.clone().unwrap_or_default(),
        &path.child("labels"),
    ));
    let mut rest = meta.clone();
    rest.labels = None;
    rest.annotations = None;
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(&rest) {
        for key in fields.keys() {
            errs.push(FieldError::forbidden(&path.child(key), "cannot be set"));
        }
    }
    errs
}

fn no_backsteps(target: &str, path: &Path) -> ErrorList {
    if target.split('/').any(|p| p == "..") {
        vec![FieldError::invalid(path, target, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn local_descending_path(target: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if target.starts_with('/') {
        errs.push(FieldError::invalid(path, target, "must be a relative path"));
    }
    errs.extend(no_backsteps(target, path));
    errs
}

fn local_non_reserved_path(target: &str, path: &Path) -> ErrorList {
    let mut errs = local_descending_path(target, path);
    if target.starts_with("..") && !target.starts_with("../") {
        errs.push(FieldError::invalid(
            path,
            target,
            "must not start with '..'",
        ));
    }
    errs
}

fn validate_key_to_path(kp: &k8s_openapi::api::core::v1::KeyToPath, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if kp.key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    }
    if kp.path.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(&kp.path, &path.child("path")));
    errs.extend(file_mode(kp.mode, &path.child("mode")));
    errs
}

const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn validate_downward_api_file(
    f: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if f.path.is_empty() {
        errs.push(FieldError::required(&path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(&f.path, &path.child("path")));
    match (&f.field_ref, &f.resource_field_ref) {
        (Some(r), other) => {
            errs.extend(validate_object_field_selector(
                r,
                VOLUME_FIELD_PATHS,
                &path.child("fieldRef"),
            ));
            if other.is_some() {
                errs.push(FieldError::invalid(
                    path,
                    "resource",
                    "fieldRef and resourceFieldRef can not be specified simultaneously",
                ));
            }
        }
        (None, Some(r)) => {
            errs.extend(validate_resource_field_selector(
                r,
                &path.child("resourceFieldRef"),
                true,
            ));
        }
        (None, None) => errs.push(FieldError::required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        )),
    }
    errs.extend(file_mode(f.mode, &path.child("mode")));
    errs
}

fn validate_projected(
    pr: &k8s_openapi::api::core::v1::ProjectedVolumeSource,
    path: &Path,
) -> ErrorList {
    let mut errs = file_mode(pr.default_mode, &path.child("defaultMode"));
    let mut paths = BTreeSet::new();
    let mut claim_path = |p: &str, errs: &mut ErrorList, value: &str| {
        if !p.is_empty() && !paths.insert(p.to_string()) {
            errs.push(FieldError::invalid(
                path,
                value,
                "conflicting duplicate paths",
            ));
        }
    };
    for (i, src) in pr.sources.iter().flatten().enumerate() {
        let sp = path.child("sources").index(i);
        let mut count = 0;
        if let Some(sec) = &src.secret {
            count += 1;
            let p = sp.child("secret");
            if sec.name.is_empty() {
                errs.push(FieldError::required(&p.child("name"), ""));
            }
            for (j, kp) in sec.items.iter().flatten().enumerate() {
                errs.extend(validate_key_to_path(kp, &p.child("items").index(j)));
                claim_path(&kp.path, &mut errs, &sec.name);
            }
        }
        if let Some(cm) = &src.config_map {
            count += 1;
            let p = sp.child("configMap");
            if cm.name.is_empty() {
                errs.push(FieldError::required(&p.child("name"), ""));
            }
            for (j, kp) in cm.items.iter().flatten().enumerate() {
                errs.extend(validate_key_to_path(kp, &p.child("items").index(j)));
                claim_path(&kp.path, &mut errs, &cm.name);
            }
        }
        if let Some(d) = &src.downward_api {
            count += 1;
            let p = sp.child("downwardAPI");
            for f in d.items.iter().flatten() {
                errs.extend(validate_downward_api_file(f, &p));
                claim_path(&f.path, &mut errs, &f.path);
            }
        }
        if let Some(t) = &src.service_account_token {
            count += 1;
            let p = sp.child("serviceAccountToken");
            let exp = t.expiration_seconds.unwrap_or(0);
            if exp < 600 {
                errs.push(FieldError::invalid(
                    &p.child("expirationSeconds"),
                    exp,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(FieldError::invalid(
                    &p.child("expirationSeconds"),
                    exp,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            if t.path.is_empty() {
                errs.push(FieldError::required(&path.child("path"), ""));
            } else {
                errs.extend(local_non_reserved_path(&t.path, &path.child("path")));
            }
        }
        if let Some(b) = &src.cluster_trust_bundle {
            count += 1;
            let p = sp.child("clusterTrustBundle");
            match (&b.name, &b.signer_name) {
                (Some(_), Some(_)) => errs.push(FieldError::invalid(
                    &p,
                    serde_json::to_value(b).unwrap_or_default(),
                    "only one of name and signerName may be used",
                )),
                (Some(n), None) if n.is_empty() => errs.push(FieldError::required(
                    &p.child("name"),
                    "must be a valid object name",
                )),
                (None, Some(n)) if n.is_empty() => errs.push(FieldError::required(
                    &p.child("signerName"),
                    "must be a valid signer name",
                )),
                (None, None) => errs.push(FieldError::required(
                    &p,
                    "either name or signerName must be specified",
                )),
                _ => {}
            }
            if b.path.is_empty() {
                errs.push(FieldError::required(&p.child("path"), ""));
            }
            errs.extend(local_non_reserved_path(&b.path, &p.child("path")));
            claim_path(&b.path, &mut errs, &b.path);
        }
        if count > 1 {
            errs.push(FieldError::forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

/// `fieldRef` of the downward API (upstream's `validateObjectFieldSelector`).
fn validate_object_field_selector(
    fs: &k8s_openapi::api::core::v1::ObjectFieldSelector,
    supported: &[&str],
    path: &Path,
) -> ErrorList {
    if unset(&fs.api_version) {
        return vec![FieldError::required(&path.child("apiVersion"), "")];
    }
    if fs.field_path.is_empty() {
        return vec![FieldError::required(&path.child("fieldPath"), "")];
    }
    let version = s(&fs.api_version);
    let label = fs.field_path.as_str();
    let subscripted = split_subscript(label);
    let converted = if version != "v1" {
        Err(format!("unsupported pod version: {version}"))
    } else if let Some((p, _)) = subscripted {
        if matches!(p, "metadata.annotations" | "metadata.labels") {
            Ok(label.to_string())
        } else {
            Err(format!("field label does not support subscript: {label}"))
        }
    } else {
        match label {
            "metadata.annotations"
            | "metadata.labels"
            | "metadata.name"
            | "metadata.namespace"
            | "metadata.uid"
            | "spec.nodeName"
            | "spec.restartPolicy"
            | "spec.serviceAccountName"
            | "spec.schedulerName"
            | "status.phase"
            | "status.hostIP"
            | "status.hostIPs"
            | "status.podIP"
            | "status.podIPs" => Ok(label.to_string()),
            "spec.host" => Ok("spec.nodeName".to_string()),
            _ => Err(format!("field label not supported: {label}")),
        }
    };
    let internal = match converted {
        Ok(p) => p,
        Err(e) => {
            return vec![FieldError::invalid(
                &path.child("fieldPath"),
                label,
                format!("error converting fieldPath: {e}"),
            )]
        }
    };
    match split_subscript(&internal) {
        Some(("metadata.annotations", sub)) => qualified_name(&sub.to_lowercase(), path),
        Some(("metadata.labels", sub)) => qualified_name(sub, path),
        Some((p, _)) => vec![FieldError::invalid(path, p, "does not support subscript")],
        None if !supported.contains(&internal.as_str()) => vec![FieldError::not_supported(
            &path.child("fieldPath"),
            internal.as_str(),
            supported,
        )],
        None => Vec::new(),
    }
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn split_subscript(p: &str) -> Option<(&str, &str)> {
    let inner = p.strip_suffix("']")?;
    let (path, sub) = inner.split_once("['")?;
    Some((path, sub))
}

fn validate_resource_field_selector(
    fs: &k8s_openapi::api::core::v1::ResourceFieldSelector,
    path: &Path,
    volume: bool,
) -> ErrorList {
    let mut errs = Vec::new();
    let resource = fs.resource.as_str();
    if volume && unset(&fs.container_name) {
        errs.push(FieldError::required(&path.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(FieldError::required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(FieldError::not_supported(
            &path.child("resource"),
            resource,
            RESOURCE_FIELD_PATHS,
        ));
    }
    if let Some(d) = &fs.divisor {
        let divisor = apimachinery::quantity::Quantity::try_from(d).ok();
        if divisor.as_ref().is_some_and(|q| !q.is_zero()) {
            let text = d.0.as_str();
            let bytes = [
                "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
            ];
            let detail = match resource {
                "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&text) => {
                    Some("only divisor's values 1m and 1 are supported with the cpu resource")
                }
                "limits.memory" | "requests.memory" if !bytes.contains(&text) => Some(
                    "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
                ),
                "limits.ephemeral-storage" | "requests.ephemeral-storage"
                    if !bytes.contains(&text) =>
                {
                    Some("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource")
                }
                _ => None,
            };
            if let Some(detail) = detail {
                errs.push(FieldError::invalid(
                    &path.child("divisor"),
                    resource,
                    detail,
                ));
            }
        }
    }
    errs
}

// --- Containers --------------------------------------------------------------------------

struct ContainerContext<'a> {
    volumes: &'a Volumes,
    claims: &'a BTreeSet<String>,
    grace: Option<i64>,
    restart_policy: &'a str,
    host_users: bool,
    opts: PodValidationOptions,
}

fn validate_containers(
    containers: &[Container],
    path: &Path,
    ctx: &ContainerContext<'_>,
) -> ErrorList {
    if containers.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, &p, ctx));
        if !names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        }
        if let Some(l) = &c.lifecycle {
            errs.extend(validate_lifecycle(l, ctx.grace, &p.child("lifecycle")));
        }
        errs.extend(validate_probes(c, &p, ctx.grace));
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(containers, path));
    errs
}

fn validate_probes(c: &Container, p: &Path, grace: Option<i64>) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(probe) = &c.liveness_probe {
        let pp = p.child("livenessProbe");
        errs.extend(validate_probe(probe, grace, &pp));
        if probe.success_threshold.unwrap_or(0) != 1 {
            errs.push(FieldError::invalid(
                &pp.child("successThreshold"),
                probe.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
    if let Some(probe) = &c.readiness_probe {
        let pp = p.child("readinessProbe");
        errs.extend(validate_probe(probe, grace, &pp));
        if let Some(t) = probe.termination_grace_period_seconds {
            errs.push(FieldError::invalid(
                &pp.child("terminationGracePeriodSeconds"),
                t,
                "must not be set for readinessProbes",
            ));
        }
    }
    if let Some(probe) = &c.startup_probe {
        let pp = p.child("startupProbe");
        errs.extend(validate_probe(probe, grace, &pp));
        if probe.success_threshold.unwrap_or(0) != 1 {
            errs.push(FieldError::invalid(
                &pp.child("successThreshold"),
                probe.success_threshold.unwrap_or(0),
                "must be 1",
            ));
        }
    }
    errs
}

fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

fn validate_init_containers(
    containers: &[Container],
    regular: &[Container],
    path: &Path,
    ctx: &ContainerContext<'_>,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut names: BTreeSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, c) in containers.iter().enumerate() {
        let p = path.index(i);
        errs.extend(validate_container_common(c, &p, ctx));
        if let Some(r) = c.restart_policy.as_deref() {
            if r != "Always" {
                errs.push(FieldError::not_supported(
                    &p.child("restartPolicy"),
                    r,
                    &["Always"],
                ));
            }
        }
        if names.contains(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), c.name.as_str()));
        } else if !c.name.is_empty() {
            names.insert(c.name.as_str());
        }
        // Init containers run one at a time, so only a container's own ports can collide.
        errs.extend(host_port_conflicts(std::slice::from_ref(c), path));
        if is_restartable(c) {
            if let Some(l) = &c.lifecycle {
                errs.extend(validate_lifecycle(l, ctx.grace, &p.child("lifecycle")));
            }
            errs.extend(validate_probes(c, &p, ctx.grace));
        } else {
            for (set, field) in [
                (c.lifecycle.is_some(), "lifecycle"),
                (c.liveness_probe.is_some(), "livenessProbe"),
                (c.readiness_probe.is_some(), "readinessProbe"),
                (c.startup_probe.is_some(), "startupProbe"),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    errs
}

fn validate_ephemeral_containers(
    ephemeral: &[EphemeralContainer],
    containers: &[Container],
    init: &[Container],
    path: &Path,
    ctx: &ContainerContext<'_>,
) -> ErrorList {
    let mut errs = Vec::new();
    let others: BTreeSet<&str> = containers
        .iter()
        .chain(init)
        .map(|c| c.name.as_str())
        .collect();
    let mut all = others.clone();
    for (i, ec) in ephemeral.iter().enumerate() {
        let p = path.index(i);
        let c = to_container(ec);
        errs.extend(validate_container_common(&c, &p, ctx));
        errs.extend(validate_container_only_for_pod(&c, &p));
        if !all.insert(ec.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), ec.name.as_str()));
        }
        if let Some(target) = ec
            .target_container_name
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            if !others.contains(target) {
                errs.push(FieldError::not_found(
                    &p.child("targetContainerName"),
                    target,
                ));
            }
        }
        let resources_set = ec
            .resources
            .as_ref()
            .is_some_and(|r| r.limits.is_some() || r.requests.is_some() || r.claims.is_some());
        for (set, field) in [
            (ec.ports.as_ref().is_some_and(|p| !p.is_empty()), "ports"),
            (resources_set, "resources"),
            (
                ec.resize_policy.as_ref().is_some_and(|r| !r.is_empty()),
                "resizePolicy",
            ),
            (ec.restart_policy.is_some(), "restartPolicy"),
            (ec.liveness_probe.is_some(), "livenessProbe"),
            (ec.readiness_probe.is_some(), "readinessProbe"),
            (ec.startup_probe.is_some(), "startupProbe"),
            (ec.lifecycle.is_some(), "lifecycle"),
        ] {
            if set {
                errs.push(FieldError::forbidden(
                    &p.child(field),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, m) in ec.volume_mounts.iter().flatten().enumerate() {
            let mp = p.child("volumeMounts").index(j);
            if !unset(&m.sub_path) {
                errs.push(FieldError::forbidden(
                    &mp.child("subPath"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
            if !unset(&m.sub_path_expr) {
                errs.push(FieldError::forbidden(
                    &mp.child("subPathExpr"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    errs
}

/// Checks only pods (not templates) get: images without surrounding whitespace.
pub fn validate_container_only_for_pod(c: &Container, path: &Path) -> ErrorList {
    let image = s(&c.image);
    if image.len() != image.trim().len() {
        vec![FieldError::invalid(
            &path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        )]
    } else {
        Vec::new()
    }
}

fn pull_policy(policy: &Option<String>, path: &Path) -> ErrorList {
    enum_field(policy, &["Always", "IfNotPresent", "Never"], path)
}

fn validate_container_common(c: &Container, path: &Path, ctx: &ContainerContext<'_>) -> ErrorList {
    let mut errs = Vec::new();
    let name_path = path.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&name_path, ""));
    } else {
        errs.extend(dns1123_label(&c.name, &name_path));
    }
    if unset(&c.image) {
        errs.push(FieldError::required(&path.child("image"), ""));
    }
    match c.termination_message_policy.as_deref() {
        Some("File" | "FallbackToLogsOnError") => {}
        None | Some("") => errs.push(FieldError::required(
            &path.child("terminationMessagePolicy"),
            "",
        )),
        Some(other) => errs.push(FieldError::not_supported(
            &path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_container_ports(c, &path.child("ports")));
    errs.extend(validate_env(c, &path.child("env")));
    errs.extend(validate_env_from(c, &path.child("envFrom")));
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let devices = c.volume_devices.as_deref().unwrap_or_default();
    errs.extend(validate_volume_mounts(
        c,
        mounts,
        devices,
        ctx.volumes,
        &path.child("volumeMounts"),
    ));
    errs.extend(validate_volume_devices(
        mounts,
        devices,
        ctx.volumes,
        &path.child("volumeDevices"),
    ));
    errs.extend(pull_policy(
        &c.image_pull_policy,
        &path.child("imagePullPolicy"),
    ));
    let resources = c.resources.clone().unwrap_or_default();
    let rp = path.child("resources");
    errs.extend(resourcelist::validate_requirements(
        resources.limits.as_ref(),
        resources.requests.as_ref(),
        &rp,
    ));
    errs.extend(validate_claim_references(
        &resources,
        ctx.claims,
        &rp.child("claims"),
    ));
    errs.extend(validate_resize_policy(
        c,
        ctx.restart_policy,
        &path.child("resizePolicy"),
    ));
    if let Some(sc) = &c.security_context {
        errs.extend(validate_security_context(
            sc,
            &path.child("securityContext"),
            ctx.host_users,
        ));
    }
    let _ = ctx.opts;
    errs
}

fn validate_container_ports(c: &Container, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let p = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = validation::is_valid_port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(FieldError::invalid(&p.child("name"), name, m));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(&p.child("name"), name));
            }
        }
        if port.container_port == 0 {
            errs.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for m in validation::is_valid_port_num(port.container_port) {
                errs.push(FieldError::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    m,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            for m in validation::is_valid_port_num(hp) {
                errs.push(FieldError::invalid(&p.child("hostPort"), hp, m));
            }
        }
        errs.extend(port_protocol(&port.protocol, &p.child("protocol")));
    }
    errs
}

/// A port protocol: required, TCP, UDP or SCTP.
pub fn port_protocol(protocol: &Option<String>, path: &Path) -> ErrorList {
    enum_field(protocol, &["SCTP", "TCP", "UDP"], path)
}

fn host_port_conflicts(containers: &[Container], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (ci, c) in containers.iter().enumerate() {
        for (pi, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", s(&port.protocol), s(&port.host_ip));
            if !seen.insert(key.clone()) {
                errs.push(FieldError::duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    key,
                ));
            }
        }
    }
    errs
}

fn validate_env(c: &Container, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in c.env.iter().flatten().enumerate() {
        let p = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        } else {
            for m in validation::is_relaxed_env_var_name(&ev.name) {
                errs.push(FieldError::invalid(&p.child("name"), ev.name.as_str(), m));
            }
        }
        let Some(from) = &ev.value_from else { continue };
        let fp = p.child("valueFrom");
        let mut count = 0;
        if let Some(f) = &from.field_ref {
            count += 1;
            errs.extend(validate_object_field_selector(
                f,
                ENV_FIELD_PATHS,
                &fp.child("fieldRef"),
            ));
        }
        if let Some(r) = &from.resource_field_ref {
            count += 1;
            errs.extend(validate_resource_field_selector(
                r,
                &fp.child("resourceFieldRef"),
                false,
            ));
        }
        if let Some(r) = &from.config_map_key_ref {
            count += 1;
            errs.extend(validate_key_selector(
                &r.name,
                &r.key,
                &fp.child("configMapKeyRef"),
            ));
        }
        if let Some(r) = &from.secret_key_ref {
            count += 1;
            errs.extend(validate_key_selector(
                &r.name,
                &r.key,
                &fp.child("secretKeyRef"),
            ));
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            ));
        } else if !unset(&ev.value) {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "may not be specified when `value` is not empty",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                &fp,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_key_selector(name: &str, key: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for m in validation::name_is_dns_subdomain(name, false) {
        errs.push(FieldError::invalid(&path.child("name"), name, m));
    }
    if key.is_empty() {
        errs.push(FieldError::required(&path.child("key"), ""));
    } else {
        for m in validation::is_config_map_key(key) {
            errs.push(FieldError::invalid(&path.child("key"), key, m));
        }
    }
    errs
}

fn validate_env_from(c: &Container, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, ev) in c.env_from.iter().flatten().enumerate() {
        let p = path.index(i);
        if let Some(prefix) = ev.prefix.as_deref().filter(|p| !p.is_empty()) {
            for m in validation::is_relaxed_env_var_name(prefix) {
                errs.push(FieldError::invalid(&p.child("prefix"), prefix, m));
            }
        }
        let mut count = 0;
        for (name, field) in [
            (
                ev.config_map_ref.as_ref().map(|r| r.name.as_str()),
                "configMapRef",
            ),
            (ev.secret_ref.as_ref().map(|r| r.name.as_str()), "secretRef"),
        ] {
            let Some(name) = name else { continue };
            count += 1;
            let np = p.child(field).child("name");
            if name.is_empty() {
                errs.push(FieldError::required(&np, ""));
            } else {
                for m in validation::name_is_dns_subdomain(name, true) {
                    errs.push(FieldError::invalid(&np, name, m));
                }
            }
        }
        if count == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

fn validate_volume_mounts(
    c: &Container,
    mounts: &[k8s_openapi::api::core::v1::VolumeMount],
    devices: &[k8s_openapi::api::core::v1::VolumeDevice],
    volumes: &Volumes,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let p = path.index(i);
        if m.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if !volumes.contains_key(&m.name) {
            errs.push(FieldError::not_found(&p.child("name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&p.child("mountPath"), ""));
        }
        if !points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
        if devices.iter().any(|d| d.name == m.name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                m.name.as_str(),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.iter().any(|d| d.device_path == m.mount_path) {
            errs.push(FieldError::invalid(
                &p.child("mountPath"),
                m.mount_path.as_str(),
                "must not already exist as a path in volumeDevices",
            ));
        }
        if volumes.get(&m.name).is_some_and(|v| v.image) {
            if !unset(&m.sub_path) {
                errs.push(FieldError::invalid(
                    &p.child("subPath"),
                    s(&m.sub_path),
                    "not allowed in image volume sources",
                ));
            }
            if !unset(&m.sub_path_expr) {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    s(&m.sub_path_expr),
                    "not allowed in image volume sources",
                ));
            }
        }
        // Upstream reports subPath problems on the list's path.
        if !unset(&m.sub_path) {
            errs.extend(local_descending_path(
                s(&m.sub_path),
                &path.child("subPath"),
            ));
        }
        if !unset(&m.sub_path_expr) {
            if !unset(&m.sub_path) {
                errs.push(FieldError::invalid(
                    &p.child("subPathExpr"),
                    s(&m.sub_path_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(
                s(&m.sub_path_expr),
                &path.child("subPathExpr"),
            ));
        }
        if let Some(prop) = m.mount_propagation.as_deref() {
            let pp = path.child("mountPropagation");
            const MODES: &[&str] = &["Bidirectional", "HostToContainer", "None"];
            if !MODES.contains(&prop) {
                errs.push(FieldError::not_supported(&pp, prop, MODES));
            }
            let privileged = c
                .security_context
                .as_ref()
                .and_then(|sc| sc.privileged)
                .unwrap_or(false);
            if prop == "Bidirectional" && !privileged {
                errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m.recursive_read_only.as_deref() {
            let rp = path.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if m.read_only != Some(true) {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.mount_propagation.as_deref().is_some_and(|p| p != "None") {
                        errs.push(FieldError::forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    &rp,
                    other,
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    errs
}

fn validate_volume_devices(
    mounts: &[k8s_openapi::api::core::v1::VolumeMount],
    devices: &[k8s_openapi::api::core::v1::VolumeDevice],
    volumes: &Volumes,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    let mut paths = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let p = path.index(i);
        if d.name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if names.contains(d.name.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                d.name.as_str(),
                "must be unique",
            ));
        }
        match volumes.get(&d.name) {
            Some(v) if !v.claim => errs.push(FieldError::invalid(
                &p.child("name"),
                d.name.as_str(),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            )),
            Some(_) => {}
            None => errs.push(FieldError::not_found(&p.child("name"), d.name.as_str())),
        }
        if d.device_path.is_empty() {
            errs.push(FieldError::required(&p.child("devicePath"), ""));
        }
        if paths.contains(d.device_path.as_str()) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "must be unique",
            ));
        }
        if !d.device_path.is_empty() && d.device_path.split('/').any(|s| s == "..") {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(d.device_path.as_str());
        }
        if mounts.iter().any(|m| m.name == d.name) {
            errs.push(FieldError::invalid(
                &p.child("name"),
                d.name.as_str(),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.iter().any(|m| m.mount_path == d.device_path) {
            errs.push(FieldError::invalid(
                &p.child("devicePath"),
                d.device_path.as_str(),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !d.name.is_empty() {
            names.insert(d.name.as_str());
        }
    }
    errs
}

fn validate_claim_references(
    r: &k8s_openapi::api::core::v1::ResourceRequirements,
    pod_claims: &BTreeSet<String>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, claim) in r.claims.iter().flatten().enumerate() {
        let p = path.index(i);
        if claim.name.is_empty() {
            errs.push(FieldError::required(&p, ""));
            continue;
        }
        let key = match claim.request.as_deref().filter(|r| !r.is_empty()) {
            Some(req) => format!("{}/{req}", claim.name),
            None => claim.name.clone(),
        };
        if !seen.insert(key.clone()) {
            errs.push(FieldError::duplicate(&p, key));
        }
        if !pod_claims.contains(&claim.name) {
            let mut e = FieldError::not_found(&p, claim.name.as_str());
            e.detail = if pod_claims.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_string()
            } else {
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    pod_claims.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            errs.push(e);
        }
    }
    errs
}

fn validate_resize_policy(c: &Container, pod_restart: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, rp) in c.resize_policy.iter().flatten().enumerate() {
        if !seen.insert(rp.resource_name.as_str()) {
            errs.push(FieldError::duplicate(
                &path.index(i),
                rp.resource_name.as_str(),
            ));
        }
        match rp.resource_name.as_str() {
            "cpu" | "memory" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(path, other, &["cpu", "memory"])),
        }
        match rp.restart_policy.as_str() {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(FieldError::required(path, "")),
            other => errs.push(FieldError::not_supported(
                path,
                other,
                &["NotRequired", "RestartContainer"],
            )),
        }
        if pod_restart == "Never" && rp.restart_policy != "NotRequired" {
            errs.push(FieldError::invalid(
                path,
                rp.restart_policy.as_str(),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

fn validate_security_context(sc: &SecurityContext, path: &Path, host_users: bool) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(uid) = sc.run_as_user {
        for m in validation::is_valid_user_id(uid) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), uid, m));
        }
    }
    if let Some(gid) = sc.run_as_group {
        for m in validation::is_valid_group_id(gid) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), gid, m));
        }
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if !["Default", "Unmasked"].contains(&pm) {
            errs.push(FieldError::not_supported(
                &path.child("procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            errs.push(FieldError::invalid(
                &path.child("procMount"),
                pm,
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(validate_seccomp(
        sc.seccomp_profile.as_ref(),
        &path.child("seccompProfile"),
    ));
    if sc.allow_privilege_escalation == Some(false) {
        let value = serde_json::to_value(sc).unwrap_or_default();
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                path,
                value.clone(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        let caps = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
        if caps.is_some_and(|a| a.iter().any(|c| c == "CAP_SYS_ADMIN")) {
            errs.push(FieldError::invalid(
                path,
                value,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    errs.extend(validate_app_armor(
        sc.app_armor_profile.as_ref(),
        &path.child("appArmorProfile"),
    ));
    errs
}

fn validate_seccomp(
    sp: Option<&k8s_openapi::api::core::v1::SeccompProfile>,
    path: &Path,
) -> ErrorList {
    let Some(sp) = sp else { return Vec::new() };
    let mut errs = Vec::new();
    match sp.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    if sp.type_ == "Localhost" {
        match sp.localhost_profile.as_deref() {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(p) => errs.extend(local_descending_path(p, &path.child("localhostProfile"))),
        }
    } else if sp.localhost_profile.is_some() {
        errs.push(FieldError::invalid(
            &path.child("localhostProfile"),
            serde_json::to_value(sp).unwrap_or_default(),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

fn validate_app_armor(
    p: Option<&k8s_openapi::api::core::v1::AppArmorProfile>,
    path: &Path,
) -> ErrorList {
    let Some(p) = p else { return Vec::new() };
    let mut errs = Vec::new();
    match p.type_.as_str() {
        "Localhost" => match p.localhost_profile.as_deref() {
            None => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when AppArmor type is Localhost",
            )),
            Some(lp) if lp.trim() != lp => errs.push(FieldError::invalid(
                &path.child("localhostProfile"),
                lp,
                "must not be padded with whitespace",
            )),
            Some("") => errs.push(FieldError::required(
                &path.child("localhostProfile"),
                "must be set when AppArmor type is Localhost",
            )),
            Some(_) => {}
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(lp) = p.localhost_profile.as_deref() {
                errs.push(FieldError::invalid(
                    &path.child("localhostProfile"),
                    lp,
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            &path.child("type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(FieldError::not_supported(
            &path.child("type"),
            other,
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

fn validate_pod_security_context(
    sc: &k8s_openapi::api::core::v1::PodSecurityContext,
    spec: &PodSpec,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(g) = sc.fs_group {
        for m in validation::is_valid_group_id(g) {
            errs.push(FieldError::invalid(&path.child("fsGroup"), g, m));
        }
    }
    if let Some(u) = sc.run_as_user {
        for m in validation::is_valid_user_id(u) {
            errs.push(FieldError::invalid(&path.child("runAsUser"), u, m));
        }
    }
    if let Some(g) = sc.run_as_group {
        for m in validation::is_valid_group_id(g) {
            errs.push(FieldError::invalid(&path.child("runAsGroup"), g, m));
        }
    }
    for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
        for m in validation::is_valid_group_id(*g) {
            errs.push(FieldError::invalid(
                &path.child("supplementalGroups").index(i),
                *g,
                m,
            ));
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(FieldError::invalid(
            &path.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    let mut names = BTreeSet::new();
    for (i, sysctl) in sc.sysctls.iter().flatten().enumerate() {
        let p = path.child("sysctls").index(i).child("name");
        if sysctl.name.is_empty() {
            errs.push(FieldError::required(&p, ""));
        } else if !is_valid_sysctl_name(&sysctl.name) {
            errs.push(FieldError::invalid(
                &p,
                sysctl.name.as_str(),
                format!("must have at most 253 characters and match regex {SYSCTL_REGEX}"),
            ));
        } else if names.contains(sysctl.name.as_str()) {
            errs.push(FieldError::duplicate(&p, sysctl.name.as_str()));
        }
        names.insert(sysctl.name.as_str());
    }
    if let Some(p) = sc.fs_group_change_policy.as_deref() {
        if !["Always", "OnRootMismatch"].contains(&p) {
            errs.push(FieldError::not_supported(
                &path.child("fsGroupChangePolicy"),
                p,
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs.extend(validate_seccomp(
        sc.seccomp_profile.as_ref(),
        &path.child("seccompProfile"),
    ));
    errs.extend(validate_app_armor(
        sc.app_armor_profile.as_ref(),
        &path.child("appArmorProfile"),
    ));
    if let Some(p) = sc.supplemental_groups_policy.as_deref() {
        if !["Merge", "Strict"].contains(&p) {
            errs.push(FieldError::not_supported(
                &path.child("supplementalGroupsPolicy"),
                p,
                &["Merge", "Strict"],
            ));
        }
    }
    if let Some(p) = sc.se_linux_change_policy.as_deref() {
        if !["MountOption", "Recursive"].contains(&p) {
            errs.push(FieldError::not_supported(
                &path.child("seLinuxChangePolicy"),
                p,
                &["MountOption", "Recursive"],
            ));
        }
    }
    errs
}

const SYSCTL_REGEX: &str =
    "^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";

fn is_valid_sysctl_name(name: &str) -> bool {
    if name.len() > 253 {
        return false;
    }
    name.split(['.', '/']).all(|seg| {
        let b = seg.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    })
}

fn validate_probe(p: &Probe, grace: Option<i64>, path: &Path) -> ErrorList {
    let handler = Handler {
        exec: p.exec.is_some(),
        exec_command_empty: p
            .exec
            .as_ref()
            .is_some_and(|e| e.command.as_ref().is_none_or(Vec::is_empty)),
        http_get: p.http_get.as_ref(),
        tcp_port: p.tcp_socket.as_ref().map(|t| &t.port),
        grpc_port: p.grpc.as_ref().map(|g| g.port),
        sleep: None,
    };
    let mut errs = validate_handler(&handler, grace, path);
    errs.extend(nonnegative(
        p.initial_delay_seconds,
        &path.child("initialDelaySeconds"),
    ));
    errs.extend(nonnegative(
        p.timeout_seconds,
        &path.child("timeoutSeconds"),
    ));
    errs.extend(nonnegative(p.period_seconds, &path.child("periodSeconds")));
    errs.extend(nonnegative(
        p.success_threshold,
        &path.child("successThreshold"),
    ));
    errs.extend(nonnegative(
        p.failure_threshold,
        &path.child("failureThreshold"),
    ));
    if let Some(t) = p.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    errs
}

struct Handler<'a> {
    exec: bool,
    exec_command_empty: bool,
    http_get: Option<&'a HTTPGetAction>,
    tcp_port: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep: Option<i64>,
}

fn lifecycle_handler(h: &LifecycleHandler) -> Handler<'_> {
    Handler {
        exec: h.exec.is_some(),
        exec_command_empty: h
            .exec
            .as_ref()
            .is_some_and(|e| e.command.as_ref().is_none_or(Vec::is_empty)),
        http_get: h.http_get.as_ref(),
        tcp_port: h.tcp_socket.as_ref().map(|t| &t.port),
        grpc_port: None,
        sleep: h.sleep.as_ref().map(|s| s.seconds),
    }
}

fn validate_lifecycle(
    l: &k8s_openapi::api::core::v1::Lifecycle,
    grace: Option<i64>,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(h) = &l.post_start {
        errs.extend(validate_handler(
            &lifecycle_handler(h),
            grace,
            &path.child("postStart"),
        ));
    }
    if let Some(h) = &l.pre_stop {
        errs.extend(validate_handler(
            &lifecycle_handler(h),
            grace,
            &path.child("preStop"),
        ));
    }
    errs
}

fn validate_handler(h: &Handler<'_>, grace: Option<i64>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let mut count = 0;
    let mut take = |name: &str, errs: &mut ErrorList| -> bool {
        if count > 0 {
            errs.push(FieldError::forbidden(
                &path.child(name),
                "may not specify more than 1 handler type",
            ));
            false
        } else {
            count += 1;
            true
        }
    };
    if h.exec && take("exec", &mut errs) && h.exec_command_empty {
        errs.push(FieldError::required(
            &path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(g) = h.http_get {
        if take("httpGet", &mut errs) {
            let p = path.child("httpGet");
            if unset(&g.path) {
                errs.push(FieldError::required(&p.child("path"), ""));
            }
            errs.extend(port_num_or_name(&g.port, &p.child("port")));
            let scheme = s(&g.scheme);
            if !["HTTP", "HTTPS"].contains(&scheme) {
                errs.push(FieldError::not_supported(
                    &p.child("scheme"),
                    scheme,
                    &["HTTP", "HTTPS"],
                ));
            }
            for header in g.http_headers.iter().flatten() {
                for m in validation::is_http_header_name(&header.name) {
                    errs.push(FieldError::invalid(
                        &p.child("httpHeaders"),
                        header.name.as_str(),
                        m,
                    ));
                }
            }
        }
    }
    if let Some(port) = h.tcp_port {
        if take("tcpSocket", &mut errs) {
            errs.extend(port_num_or_name(
                port,
                &path.child("tcpSocket").child("port"),
            ));
        }
    }
    if let Some(port) = h.grpc_port {
        if take("grpc", &mut errs) {
            for m in validation::is_valid_port_num(port) {
                errs.push(FieldError::invalid(
                    &path.child("grpc").child("port"),
                    port,
                    m,
                ));
            }
        }
    }
    if let Some(seconds) = h.sleep {
        if take("sleep", &mut errs) {
            if let Some(g) = grace {
                if seconds < 0 || seconds > g {
                    errs.push(FieldError::invalid(
                        &path.child("sleep"),
                        seconds,
                        format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// A port given as a number or an IANA service name.
pub fn port_num_or_name(port: &IntOrString, path: &Path) -> ErrorList {
    match port {
        IntOrString::Int(n) => validation::is_valid_port_num(*n)
            .into_iter()
            .map(|m| FieldError::invalid(path, *n, m))
            .collect(),
        IntOrString::String(name) => validation::is_valid_port_name(name)
            .into_iter()
            .map(|m| FieldError::invalid(path, name.as_str(), m))
            .collect(),
    }
}

fn validate_host_network_deps(
    spec: &PodSpec,
    path: &Path,
    opts: PodValidationOptions,
) -> ErrorList {
    let mut errs = Vec::new();
    if spec.host_network != Some(true) {
        return errs;
    }
    for (i, c) in spec.containers.iter().enumerate() {
        for (j, port) in c.ports.iter().flatten().enumerate() {
            let hp = port.host_port.unwrap_or(0);
            if (opts.resource_is_pod || hp != 0) && hp != port.container_port {
                errs.push(FieldError::invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    hp,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

// --- Scheduling --------------------------------------------------------------------------

/// Upstream's `ValidateTolerations`.
pub fn validate_tolerations(tolerations: &[Toleration], path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    for (i, t) in tolerations.iter().enumerate() {
        let p = path.index(i);
        let key = s(&t.key);
        let op = s(&t.operator);
        let effect = s(&t.effect);
        let value = s(&t.value);
        if !key.is_empty() {
            errs.extend(validation::validate_label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = validation::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(taint_effect(effect, &p.child("effect")));
        }
    }
    errs
}

/// A taint effect (NoSchedule, PreferNoSchedule, NoExecute).
pub fn taint_effect(effect: &str, path: &Path) -> ErrorList {
    const EFFECTS: &[&str] = &["NoSchedule", "PreferNoSchedule", "NoExecute"];
    if effect.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    if EFFECTS.contains(&effect) {
        Vec::new()
    } else {
        vec![FieldError::not_supported(path, effect, EFFECTS)]
    }
}

/// Upstream's `ValidateNodeSelector` (a required node affinity or a PV's node affinity).
pub fn validate_node_selector(
    sel: &k8s_openapi::api::core::v1::NodeSelector,
    allow_invalid_values: bool,
    path: &Path,
) -> ErrorList {
    let terms_path = path.child("nodeSelectorTerms");
    if sel.node_selector_terms.is_empty() {
        return vec![FieldError::required(
            &terms_path,
            "must have at least one node selector term",
        )];
    }
    let mut errs = Vec::new();
    for (i, term) in sel.node_selector_terms.iter().enumerate() {
        errs.extend(validate_node_selector_term(
            term,
            allow_invalid_values,
            &terms_path.index(i),
        ));
    }
    errs
}

fn validate_node_selector_term(
    term: &k8s_openapi::api::core::v1::NodeSelectorTerm,
    allow_invalid_values: bool,
    path: &Path,
) -> ErrorList {
    let mut errs = Vec::new();
    for (j, req) in term.match_expressions.iter().flatten().enumerate() {
        let p = path.child("matchExpressions").index(j);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                &p.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                &p.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "Gt" | "Lt" if values.len() != 1 => errs.push(FieldError::required(
                &p.child("values"),
                "must be specified single value when `operator` is 'Lt' or 'Gt'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(validation::validate_label_name(&req.key, &p.child("key")));
        if !allow_invalid_values {
            for (k, v) in values.iter().enumerate() {
                for m in validation::is_valid_label_value(v) {
                    errs.push(FieldError::invalid(
                        &p.child("values").index(k),
                        v.as_str(),
                        m,
                    ));
                }
            }
        }
    }
    for (j, req) in term.match_fields.iter().flatten().enumerate() {
        let p = path.child("matchFields").index(j);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" | "NotIn" => {
                if values.len() != 1 {
                    errs.push(FieldError::required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        if req.key != "metadata.name" {
            errs.push(FieldError::invalid(
                &p.child("key"),
                req.key.as_str(),
                "not a valid field selector key",
            ));
        } else {
            for (k, v) in values.iter().enumerate() {
                for m in validation::name_is_dns_subdomain(v, false) {
                    errs.push(FieldError::invalid(
                        &p.child("values").index(k),
                        v.as_str(),
                        m,
                    ));
                }
            }
        }
    }
    errs
}

fn validate_affinity(a: &k8s_openapi::api::core::v1::Affinity, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(req) = &na.required_during_scheduling_ignored_during_execution {
            errs.extend(validate_node_selector(
                req,
                false,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        for (i, term) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .enumerate()
        {
            let tp = p
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&term.weight) {
                errs.push(FieldError::invalid(
                    &tp.child("weight"),
                    term.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_node_selector_term(
                &term.preference,
                true,
                &tp.child("preference"),
            ));
        }
    }
    let pod_affinities = [
        (
            "podAffinity",
            a.pod_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            a.pod_anti_affinity.as_ref().map(|p| {
                (
                    &p.required_during_scheduling_ignored_during_execution,
                    &p.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ];
    for (name, terms) in pod_affinities {
        let Some((required, preferred)) = terms else {
            continue;
        };
        let p = path.child(name);
        for (i, term) in required.iter().flatten().enumerate() {
            errs.extend(validate_pod_affinity_term(
                term,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution")
                    .index(i),
            ));
        }
        for (i, w) in preferred.iter().flatten().enumerate() {
            let wp = p
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            if !(1..=100).contains(&w.weight) {
                errs.push(FieldError::invalid(
                    &wp.child("weight"),
                    w.weight,
                    "must be in the range 1-100",
                ));
            }
            errs.extend(validate_pod_affinity_term(
                &w.pod_affinity_term,
                &wp.child("podAffinityTerm"),
            ));
        }
    }
    errs
}

fn validate_pod_affinity_term(
    t: &k8s_openapi::api::core::v1::PodAffinityTerm,
    path: &Path,
) -> ErrorList {
    let opts = LabelSelectorValidationOptions::default();
    let mut errs = validation::validate_label_selector(
        t.label_selector.as_ref(),
        opts,
        &path.child("labelSelector"),
    );
    errs.extend(validation::validate_label_selector(
        t.namespace_selector.as_ref(),
        opts,
        &path.child("namespaceSelector"),
    ));
    for ns in t.namespaces.iter().flatten() {
        for m in validation::validate_namespace_name(ns, false) {
            errs.push(FieldError::invalid(
                &path.child("namespace"),
                ns.as_str(),
                m,
            ));
        }
    }
    for (field, keys) in [
        ("matchLabelKeys", &t.match_label_keys),
        ("mismatchLabelKeys", &t.mismatch_label_keys),
    ] {
        let keys = keys.as_deref().unwrap_or_default();
        if keys.is_empty() {
            continue;
        }
        if t.label_selector.is_none() {
            errs.push(FieldError::forbidden(
                &path.child(field),
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            errs.extend(validation::validate_label_name(
                k,
                &path.child(field).index(i),
            ));
        }
    }
    if t.topology_key.is_empty() {
        errs.push(FieldError::required(
            &path.child("topologyKey"),
            "can not be empty",
        ));
    }
    errs.extend(validation::validate_label_name(
        &t.topology_key,
        &path.child("topologyKey"),
    ));
    errs
}

fn validate_dns_config(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let config = spec.dns_config.as_ref();
    if spec.dns_policy.as_deref() == Some("None") {
        match config {
            None => {
                return vec![FieldError::required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )]
            }
            Some(c) if c.nameservers.as_ref().is_none_or(Vec::is_empty) => {
                return vec![FieldError::required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )]
            }
            _ => {}
        }
    }
    let Some(c) = config else { return errs };
    let nameservers = c.nameservers.as_deref().unwrap_or_default();
    if nameservers.len() > 3 {
        errs.push(FieldError::invalid(
            &path.child("nameservers"),
            serde_json::to_value(nameservers).unwrap_or_default(),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        errs.extend(validation::is_valid_ip(
            &path.child("nameservers").index(i),
            ns,
        ));
    }
    let searches = c.searches.as_deref().unwrap_or_default();
    if searches.len() > 32 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            serde_json::to_value(searches).unwrap_or_default(),
            "must not have more than 32 search paths",
        ));
    }
    if searches.join(" ").len() > 2048 {
        errs.push(FieldError::invalid(
            &path.child("searches"),
            serde_json::to_value(searches).unwrap_or_default(),
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        // RelaxedDNSSearchValidation: "." and underscores are accepted.
        if search == "." {
            continue;
        }
        let trimmed = search.strip_suffix('.').unwrap_or(search);
        let relaxed = trimmed.replace('_', "a");
        for m in validation::is_dns1123_subdomain(&relaxed.to_lowercase()) {
            errs.push(FieldError::invalid(
                &path.child("searches").index(i),
                trimmed,
                m,
            ));
        }
    }
    for (i, opt) in c.options.iter().flatten().enumerate() {
        if unset(&opt.name) {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

fn validate_topology_spread(spec: &PodSpec, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    let constraints = spec
        .topology_spread_constraints
        .as_deref()
        .unwrap_or_default();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                NOT_POSITIVE,
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                &p.child("topologyKey"),
                "can not be empty",
            ));
        }
        if !["DoNotSchedule", "ScheduleAnyway"].contains(&c.when_unsatisfiable.as_str()) {
            errs.push(FieldError::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        let repeated = constraints[i + 1..].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        });
        if repeated {
            errs.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(min) = c.min_domains {
            if min <= 0 {
                errs.push(FieldError::invalid(
                    &p.child("minDomains"),
                    min,
                    NOT_POSITIVE,
                ));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    &p.child("minDomains"),
                    min,
                    format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (field, policy) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            if let Some(v) = policy.as_deref() {
                if !["Honor", "Ignore"].contains(&v) {
                    errs.push(FieldError::not_supported(
                        &p.child(field),
                        v,
                        &["Honor", "Ignore"],
                    ));
                }
            }
        }
        let keys = c.match_label_keys.as_deref().unwrap_or_default();
        if !keys.is_empty() {
            let selector_keys: BTreeSet<&str> = c
                .label_selector
                .as_ref()
                .map(|sel| {
                    sel.match_labels
                        .iter()
                        .flatten()
                        .map(|(k, _)| k.as_str())
                        .chain(
                            sel.match_expressions
                                .iter()
                                .flatten()
                                .map(|e| e.key.as_str()),
                        )
                        .collect()
                })
                .unwrap_or_default();
            if c.label_selector.is_none() {
                errs.push(FieldError::forbidden(
                    &p.child("matchLabelKeys"),
                    "must not be specified when labelSelector is not set",
                ));
            }
            for (j, k) in keys.iter().enumerate() {
                let kp = p.child("matchLabelKeys").index(j);
                errs.extend(validation::validate_label_name(k, &kp));
                if selector_keys.contains(k.as_str()) {
                    errs.push(FieldError::invalid(
                        &kp,
                        k.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
        }
        errs.extend(validation::validate_label_selector(
            c.label_selector.as_ref(),
            LabelSelectorValidationOptions::default(),
            &p.child("labelSelector"),
        ));
    }
    errs
}

/// `name1,name2` and `image1,image2` of a template's containers (upstream's
/// `layoutContainerCells`), for the wide columns of workloads.
pub fn container_cells(spec: Option<&PodSpec>) -> (String, String) {
    let containers = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let names = containers
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(",");
    let images = containers
        .iter()
        .map(|c| s(&c.image))
        .collect::<Vec<_>>()
        .join(",");
    (names, images)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> PodSpec {
        serde_json::from_value(v).unwrap()
    }

    fn defaulted(v: serde_json::Value) -> PodSpec {
        let mut s = spec(v);
        default_pod_spec(&mut s);
        s
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn pull_policies() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.25"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("nginx@sha256:abcd"), "IfNotPresent");
        assert_eq!(
            default_pull_policy("registry.k8s.io/pause:3.10"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy(""), "IfNotPresent");
    }

    #[test]
    fn spec_defaults() {
        let s = defaulted(json!({
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}],
            "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}],
        }));
        assert_eq!(s.restart_policy.as_deref(), Some("Always"));
        assert_eq!(s.dns_policy.as_deref(), Some("ClusterFirst"));
        assert_eq!(s.scheduler_name.as_deref(), Some("default-scheduler"));
        assert_eq!(s.termination_grace_period_seconds, Some(30));
        assert!(s.security_context.is_some());
        let c = &s.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("Always"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        assert_eq!(
            c.ports.as_ref().unwrap()[0].protocol.as_deref(),
            Some("TCP")
        );
        let probe = c.liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        let get = probe.http_get.as_ref().unwrap();
        assert_eq!(
            (get.path.as_deref(), get.scheme.as_deref()),
            (Some("/"), Some("HTTP"))
        );
        let env = c.env.as_ref().unwrap()[0].value_from.as_ref().unwrap();
        assert_eq!(
            env.field_ref.as_ref().unwrap().api_version.as_deref(),
            Some("v1")
        );
        let vols = s.volumes.as_ref().unwrap();
        assert!(vols[0].empty_dir.is_some());
        assert_eq!(vols[1].secret.as_ref().unwrap().default_mode, Some(420));
    }

    #[test]
    fn valid_spec_passes() {
        let s = defaulted(json!({
            "containers": [{"name": "web", "image": "nginx:1.25",
                "ports": [{"containerPort": 80, "name": "http"}],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}}],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {"disk": "ssd"},
        }));
        let errs = validate_pod_spec(
            &s,
            Some("p"),
            &Path::new("spec"),
            PodValidationOptions {
                resource_is_pod: true,
            },
        );
        assert!(errs.is_empty(), "{:?}", messages(&errs));
    }

    #[test]
    fn typical_errors() {
        let s = defaulted(json!({
            "containers": [
                {"name": "Web", "image": "", "volumeMounts": [{"name": "missing", "mountPath": "/m"}]},
                {"name": "dup", "image": "x"},
            ],
            "initContainers": [{"name": "dup", "image": "x"}],
            "volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/tmp"}}],
            "restartPolicy": "Sometimes",
            "tolerations": [{"operator": "Equal", "value": "x"}],
        }));
        let errs = messages(&validate_pod_spec(
            &s,
            None,
            &Path::new("spec"),
            PodValidationOptions::default(),
        ));
        let expect = [
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
            "spec.containers[0].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.containers[0].image: Required value",
            "spec.containers[0].volumeMounts[0].name: Not found: \"missing\"",
            "spec.initContainers[0].name: Duplicate value: \"dup\"",
            "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
            "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ];
        for e in expect {
            assert!(errs.iter().any(|m| m == e), "missing {e}\n in {errs:#?}");
        }
    }

    #[test]
    fn containers_required_and_probe_rules() {
        let s = defaulted(json!({"containers": []}));
        let errs = messages(&validate_pod_spec(
            &s,
            None,
            &Path::new("spec"),
            PodValidationOptions::default(),
        ));
        assert!(errs.contains(&"spec.containers: Required value".to_string()));

        let s = defaulted(json!({"containers": [{"name": "c", "image": "i",
            "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2},
            "readinessProbe": {"tcpSocket": {"port": "http"}, "terminationGracePeriodSeconds": 5}}]}));
        let errs = messages(&validate_pod_spec(
            &s,
            None,
            &Path::new("spec"),
            PodValidationOptions::default(),
        ));
        assert!(
            errs.contains(
                &"spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
                    .to_string()
            ),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes".to_string()), "{errs:?}");
    }

    #[test]
    fn env_and_ports() {
        let mut s = defaulted(json!({"containers": [{"name": "c", "image": "i",
            "env": [{"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}],
            "ports": [{"containerPort": 0}, {"containerPort": 70000, "protocol": "ICMP"}]}]}));
        s.containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                container_port: 80,
                host_port: Some(8080),
                protocol: Some("TCP".into()),
                ..Default::default()
            });
        s.containers[0].ports.as_mut().unwrap().push(ContainerPort {
            container_port: 81,
            host_port: Some(8080),
            protocol: Some("TCP".into()),
            ..Default::default()
        });
        let errs = messages(&validate_pod_spec(
            &s,
            None,
            &Path::new("spec"),
            PodValidationOptions::default(),
        ));
        for e in [
            "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty",
            "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\"",
            "spec.containers[0].ports[0].containerPort: Required value",
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.containers[0].ports[3].hostPort: Duplicate value: \"TCP//8080\"",
        ] {
            assert!(errs.iter().any(|m| m == e), "missing {e}\n in {errs:#?}");
        }
    }

    #[test]
    fn template_spec_checks_labels_and_ephemeral() {
        let mut t: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"labels": {"app": "-bad-"}},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "ephemeralContainers": [{"name": "e", "image": "i"}]},
        }))
        .unwrap();
        default_pod_template_spec(&mut t);
        let errs = messages(&validate_pod_template_spec(
            &t,
            &Path::new("spec").child("template"),
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.template.labels: Invalid value: \"-bad-\"")),
            "{errs:?}"
        );
        assert!(errs.contains(&"spec.template.spec.ephemeralContainers: Forbidden: ephemeral containers not allowed in pod template".to_string()));
    }
}

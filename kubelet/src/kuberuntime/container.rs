//! A container's CRI configuration (upstream's generateContainerConfig): image, command
//! and args with `$(VAR)` expansion, working dir, environment, mounts, labels and the
//! annotations the kubelet reads back after a restart, log path, security context and
//! resources.

use std::collections::HashMap;

use cri::api;
use cri::labels;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::env::expand;
use super::hash::container_hash;
use super::sandbox::pod_labels;

/// Paths upstream masks in unprivileged containers (securitycontext.defaultMaskedPaths).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

pub struct ContainerInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub image_ref: String,
    pub restart_count: u32,
    pub env: Vec<(String, String)>,
    pub mounts: Vec<api::Mount>,
    pub resources: api::LinuxContainerResources,
}

pub fn termination_message_path(c: &Container) -> String {
    c.termination_message_path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.into())
}

pub fn termination_grace_period(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
}

pub fn container_config(input: &ContainerInputs<'_>) -> api::ContainerConfig {
    let c = input.container;
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let lookup = |name: &str| {
        input
            .env
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let command = c
        .command
        .iter()
        .flatten()
        .map(|s| expand(s, &lookup))
        .collect();
    let args = c
        .args
        .iter()
        .flatten()
        .map(|s| expand(s, &lookup))
        .collect();
    let mut container_labels = pod_labels(pod);
    container_labels.insert(labels::CONTAINER_NAME.into(), c.name.clone());
    let mut annotations: HashMap<String, String> = HashMap::from([
        (labels::CONTAINER_HASH.into(), container_hash(c)),
        (
            labels::CONTAINER_RESTART_COUNT.into(),
            input.restart_count.to_string(),
        ),
        (
            labels::CONTAINER_TERMINATION_MESSAGE_PATH.into(),
            termination_message_path(c),
        ),
        (
            labels::CONTAINER_TERMINATION_MESSAGE_POLICY.into(),
            c.termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        ),
        (
            labels::POD_TERMINATION_GRACE_PERIOD.into(),
            termination_grace_period(pod).to_string(),
        ),
    ]);
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
        if let Ok(json) = serde_json::to_string(pre_stop) {
            annotations.insert(labels::CONTAINER_PRESTOP_HANDLER.into(), json);
        }
    }
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
        if let Ok(json) = serde_json::to_string(ports) {
            annotations.insert(labels::CONTAINER_PORTS.into(), json);
        }
    }
    if let Some(grace) = pod.metadata.deletion_grace_period_seconds {
        annotations.insert(labels::POD_DELETION_GRACE_PERIOD.into(), grace.to_string());
    }
    let sc = c.security_context.clone().unwrap_or_default();
    let pod_sc = spec.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged.unwrap_or(false);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let cap_name = |s: &String| {
        if s.starts_with("CAP_") || s == "ALL" {
            s.clone()
        } else {
            format!("CAP_{s}")
        }
    };
    let run_as_user = sc.run_as_user.or(pod_sc.run_as_user);
    let run_as_group = sc.run_as_group.or(pod_sc.run_as_group);
    let pid = if spec.host_pid.unwrap_or(false) {
        api::NamespaceMode::Node
    } else if spec.share_process_namespace.unwrap_or(false) {
        api::NamespaceMode::Pod
    } else {
        api::NamespaceMode::Container
    };
    let node_or_pod = |host: Option<bool>| {
        if host.unwrap_or(false) {
            api::NamespaceMode::Node as i32
        } else {
            api::NamespaceMode::Pod as i32
        }
    };
    let security_context = api::LinuxContainerSecurityContext {
        capabilities: Some(api::Capability {
            add_capabilities: caps.add.iter().flatten().map(cap_name).collect(),
            drop_capabilities: caps.drop.iter().flatten().map(cap_name).collect(),
            add_ambient_capabilities: Vec::new(),
        }),
        privileged,
        namespace_options: Some(api::NamespaceOption {
            network: node_or_pod(spec.host_network),
            pid: pid as i32,
            ipc: node_or_pod(spec.host_ipc),
            ..Default::default()
        }),
        run_as_user: run_as_user.map(|value| api::Int64Value { value }),
        run_as_group: run_as_group.map(|value| api::Int64Value { value }),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: pod_sc.supplemental_groups.clone().unwrap_or_default(),
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: if privileged {
            Vec::new()
        } else {
            DEFAULT_MASKED_PATHS.iter().map(|s| s.to_string()).collect()
        },
        readonly_paths: if privileged {
            Vec::new()
        } else {
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect()
        },
        ..Default::default()
    };
    api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: c.name.clone(),
            attempt: input.restart_count,
        }),
        image: Some(api::ImageSpec {
            image: input.image_ref.clone(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: input
            .env
            .iter()
            .map(|(key, value)| api::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: input.mounts.clone(),
        labels: container_labels,
        annotations,
        log_path: format!("{}/{}.log", c.name, input.restart_count),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(api::LinuxContainerConfig {
            resources: Some(input.resources.clone()),
            security_context: Some(security_context),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_shape() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"securityContext": {"runAsUser": 1000},
                     "containers": [{"name": "c", "image": "busybox",
                        "command": ["sh", "-c"], "args": ["echo $(GREETING) $(MISSING)"],
                        "workingDir": "/tmp",
                        "securityContext": {"runAsGroup": 2000, "readOnlyRootFilesystem": true,
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}},
                        "lifecycle": {"preStop": {"exec": {"command": ["sleep", "1"]}}}}]}
        }))
        .unwrap();
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let config = container_config(&ContainerInputs {
            pod: &pod,
            container: c,
            image_ref: "sha256:abc".into(),
            restart_count: 3,
            env: vec![("GREETING".into(), "hi".into())],
            mounts: vec![],
            resources: Default::default(),
        });
        assert_eq!(config.args, vec!["echo hi $(MISSING)"]);
        assert_eq!(config.command, vec!["sh", "-c"]);
        assert_eq!(config.log_path, "c/3.log");
        assert_eq!(config.metadata.as_ref().unwrap().attempt, 3);
        assert_eq!(config.labels[labels::CONTAINER_NAME], "c");
        assert_eq!(config.labels[labels::MANAGED], "kubelet");
        assert_eq!(config.annotations[labels::CONTAINER_RESTART_COUNT], "3");
        assert_eq!(
            config.annotations[labels::CONTAINER_HASH],
            container_hash(c)
        );
        assert!(config.annotations[labels::CONTAINER_PRESTOP_HANDLER].contains("sleep"));
        let sc = config.linux.unwrap().security_context.unwrap();
        assert_eq!(sc.run_as_user.unwrap().value, 1000);
        assert_eq!(sc.run_as_group.unwrap().value, 2000);
        assert!(sc.readonly_rootfs && sc.no_new_privs && !sc.privileged);
        let caps = sc.capabilities.unwrap();
        assert_eq!(caps.add_capabilities, vec!["CAP_NET_ADMIN"]);
        assert_eq!(caps.drop_capabilities, vec!["ALL"]);
        assert!(!sc.masked_paths.is_empty());
    }
}

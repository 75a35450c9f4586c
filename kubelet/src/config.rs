//! KubeletConfiguration (kubelet.config.k8s.io/v1beta1): the fields this kubelet honours,
//! with upstream's defaults. Unknown fields are accepted and ignored, as upstream's lenient
//! decoding does, so kubeadm-generated files load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use apimachinery::duration::parse_go_duration;
use serde::{Deserialize, Deserializer};

use crate::options::Options;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("decoding {path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: kind must be KubeletConfiguration and apiVersion kubelet.config.k8s.io/v1beta1, got {kind} {api_version}")]
    WrongKind {
        path: PathBuf,
        kind: String,
        api_version: String,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    /// Directory of static pod manifests; empty disables static pods.
    pub static_pod_path: Option<PathBuf>,
    #[serde(deserialize_with = "go_duration")]
    pub sync_frequency: Duration,
    #[serde(deserialize_with = "go_duration")]
    pub file_check_frequency: Duration,
    pub address: String,
    pub port: u16,
    pub read_only_port: u16,
    pub healthz_port: u16,
    pub healthz_bind_address: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub authentication: Authentication,
    pub cluster_domain: String,
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<String>,
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Option<String>,
    pub max_pods: u32,
    pub pod_pids_limit: i64,
    pub resolv_conf: PathBuf,
    #[serde(deserialize_with = "go_duration")]
    pub node_status_update_frequency: Duration,
    #[serde(deserialize_with = "go_duration")]
    pub node_status_report_frequency: Duration,
    pub node_lease_duration_seconds: i32,
    pub image_gc_high_threshold_percent: u8,
    pub image_gc_low_threshold_percent: u8,
    #[serde(deserialize_with = "go_duration")]
    pub image_minimum_gc_age: Duration,
    pub serialize_image_pulls: bool,
    pub eviction_hard: BTreeMap<String, String>,
    pub cgroup_driver: String,
    pub cgroup_root: String,
    pub cgroups_per_qos: bool,
    pub container_runtime_endpoint: String,
    pub pod_logs_dir: PathBuf,
    pub container_log_max_size: String,
    pub container_log_max_files: u32,
    #[serde(deserialize_with = "go_duration")]
    pub runtime_request_timeout: Duration,
    pub register_node: bool,
    pub register_with_taints: Vec<k8s_openapi::api::core::v1::Taint>,
    pub node_labels: BTreeMap<String, String>,
    pub system_reserved: BTreeMap<String, String>,
    pub kube_reserved: BTreeMap<String, String>,
    pub fail_swap_on: bool,
    /// `--cert-dir` (not a configuration file field): where the self-signed serving
    /// certificate lives when tlsCertFile is not set; `None` means `<root-dir>/pki`.
    #[serde(skip)]
    pub cert_directory: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Authentication {
    pub x509: X509Authentication,
    pub anonymous: AnonymousAuthentication,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct X509Authentication {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AnonymousAuthentication {
    pub enabled: bool,
}

impl Default for KubeletConfiguration {
    fn default() -> Self {
        let eviction_hard = [
            ("memory.available", "100Mi"),
            ("nodefs.available", "10%"),
            ("nodefs.inodesFree", "5%"),
            ("imagefs.available", "15%"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Self {
            api_version: "kubelet.config.k8s.io/v1beta1".into(),
            kind: "KubeletConfiguration".into(),
            static_pod_path: None,
            sync_frequency: Duration::from_secs(60),
            file_check_frequency: Duration::from_secs(20),
            address: "0.0.0.0".into(),
            port: 10250,
            read_only_port: 0,
            healthz_port: 10248,
            healthz_bind_address: "127.0.0.1".into(),
            tls_cert_file: None,
            tls_private_key_file: None,
            authentication: Authentication::default(),
            cluster_domain: String::new(),
            cluster_dns: Vec::new(),
            pod_cidr: None,
            max_pods: 110,
            pod_pids_limit: -1,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            node_status_update_frequency: Duration::from_secs(10),
            node_status_report_frequency: Duration::from_secs(300),
            node_lease_duration_seconds: 40,
            image_gc_high_threshold_percent: 85,
            image_gc_low_threshold_percent: 80,
            image_minimum_gc_age: Duration::from_secs(120),
            serialize_image_pulls: true,
            eviction_hard,
            cgroup_driver: "cgroupfs".into(),
            cgroup_root: String::new(),
            cgroups_per_qos: true,
            container_runtime_endpoint: "unix:///run/containerd/containerd.sock".into(),
            pod_logs_dir: PathBuf::from("/var/log/pods"),
            container_log_max_size: "10Mi".into(),
            container_log_max_files: 5,
            runtime_request_timeout: Duration::from_secs(120),
            register_node: true,
            register_with_taints: Vec::new(),
            node_labels: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
            kube_reserved: BTreeMap::new(),
            fail_swap_on: true,
            cert_directory: None,
        }
    }
}

fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_go_duration(&s).map_err(serde::de::Error::custom)
}

impl KubeletConfiguration {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: Self = serde_saphyr::from_str(&text).map_err(|e| ConfigError::Decode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if config.kind != "KubeletConfiguration"
            || config.api_version != "kubelet.config.k8s.io/v1beta1"
        {
            return Err(ConfigError::WrongKind {
                path: path.to_path_buf(),
                kind: config.kind,
                api_version: config.api_version,
            });
        }
        Ok(config)
    }

    /// The configuration the kubelet runs with: the file (or defaults), then flags on top.
    pub fn resolve(options: &Options) -> Result<Self, ConfigError> {
        let mut config = match &options.config {
            Some(path) => Self::load(path)?,
            None => Self::default(),
        };
        if let Some(endpoint) = &options.container_runtime_endpoint {
            config.container_runtime_endpoint = endpoint.clone();
        }
        if let Some(path) = &options.pod_manifest_path {
            config.static_pod_path = Some(path.clone());
        }
        if let Some(dir) = &options.cert_dir {
            config.cert_directory = Some(dir.clone());
        }
        if config.static_pod_path.as_deref() == Some(Path::new("")) {
            config.static_pod_path = None;
        }
        for label in &options.node_labels {
            let (k, v) = label.split_once('=').ok_or_else(|| {
                ConfigError::Invalid(format!("--node-labels: {label:?} is not key=value"))
            })?;
            config.node_labels.insert(k.to_string(), v.to_string());
        }
        for taint in &options.register_with_taints {
            config.register_with_taints.push(parse_taint(taint)?);
        }
        if config.image_gc_low_threshold_percent > config.image_gc_high_threshold_percent {
            return Err(ConfigError::Invalid(format!(
                "imageGCLowThresholdPercent ({}) must not exceed imageGCHighThresholdPercent ({})",
                config.image_gc_low_threshold_percent, config.image_gc_high_threshold_percent
            )));
        }
        Ok(config)
    }
}

/// `key[=value]:Effect`, the `--register-with-taints` syntax.
fn parse_taint(s: &str) -> Result<k8s_openapi::api::core::v1::Taint, ConfigError> {
    let invalid = || ConfigError::Invalid(format!("invalid taint {s:?}: want key[=value]:Effect"));
    let (kv, effect) = s.rsplit_once(':').ok_or_else(invalid)?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(invalid());
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(invalid());
    }
    Ok(k8s_openapi::api::core::v1::Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
             staticPodPath: /etc/kubernetes/manifests\nclusterDNS: [10.96.0.10]\n\
             clusterDomain: cluster.local\nsyncFrequency: 1m30s\nmaxPods: 30\n\
             someFutureField: true\n\
             authentication: {x509: {clientCAFile: /etc/kubernetes/pki/ca.crt}, anonymous: {enabled: true}}\n",
        )
        .unwrap();
        let options = Options::parse_from([
            "kubelet",
            "--config",
            path.to_str().unwrap(),
            "--container-runtime-endpoint=unix:///tmp/c.sock",
            "--node-labels=a=b,c=d",
            "--register-with-taints=dedicated=infra:NoSchedule",
        ]);
        let c = KubeletConfiguration::resolve(&options).unwrap();
        assert_eq!(
            c.static_pod_path,
            Some(PathBuf::from("/etc/kubernetes/manifests"))
        );
        assert_eq!(c.cluster_dns, vec!["10.96.0.10"]);
        assert_eq!(c.sync_frequency, Duration::from_secs(90));
        assert_eq!(c.max_pods, 30);
        assert_eq!(
            c.authentication.x509.client_ca_file,
            Some(PathBuf::from("/etc/kubernetes/pki/ca.crt"))
        );
        assert!(c.authentication.anonymous.enabled);
        assert_eq!(c.port, 10250);
        assert_eq!(c.container_runtime_endpoint, "unix:///tmp/c.sock");
        assert_eq!(c.node_labels.get("c").map(String::as_str), Some("d"));
        assert_eq!(c.register_with_taints[0].effect, "NoSchedule");
        assert_eq!(c.register_with_taints[0].value.as_deref(), Some("infra"));
    }

    #[test]
    fn rejects_wrong_kind_and_bad_taints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "apiVersion: v1\nkind: Pod\n").unwrap();
        assert!(matches!(
            KubeletConfiguration::load(&path),
            Err(ConfigError::WrongKind { .. })
        ));
        assert!(parse_taint("a=b:Sometimes").is_err());
        assert!(parse_taint(":NoSchedule").is_err());
        assert_eq!(parse_taint("a:NoExecute").unwrap().value, None);
    }
}

//! The pod sandbox's CRI configuration: metadata, hostname, DNS, port mappings, log
//! directory, cgroup parent, namespaces and sysctls (upstream's
//! generatePodSandboxConfig and pkg/kubelet/network/dns), and the kubelet-managed
//! /etc/hosts file.

use std::collections::HashMap;
use std::path::Path;

use cri::api::{self, NamespaceMode};
use cri::labels;
use k8s_openapi::api::core::v1::Pod;

use crate::config::KubeletConfiguration;

/// Upstream's limits on resolv.conf contents.
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_NAMESERVERS: usize = 3;

/// Kubelet labels identifying the pod on its sandbox and containers.
pub fn pod_labels(pod: &Pod) -> HashMap<String, String> {
    let m = &pod.metadata;
    HashMap::from([
        (
            labels::POD_NAME.to_string(),
            m.name.clone().unwrap_or_default(),
        ),
        (
            labels::POD_NAMESPACE.to_string(),
            m.namespace.clone().unwrap_or_default(),
        ),
        (
            labels::POD_UID.to_string(),
            m.uid.clone().unwrap_or_default(),
        ),
        (
            labels::MANAGED.to_string(),
            labels::MANAGED_VALUE.to_string(),
        ),
    ])
}

pub fn host_network(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
}

/// The pod's host name and domain (upstream's GeneratePodHostNameAndDomain).
pub fn hostname_and_domain(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let mut hostname = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
    hostname.truncate(63);
    let hostname = hostname.trim_end_matches(['-', '.']).to_string();
    let domain = spec.subdomain.filter(|s| !s.is_empty()).map(|sub| {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        format!("{sub}.{ns}.svc.{cluster_domain}")
    });
    (hostname, domain)
}

/// nameservers, searches and options of a resolv.conf.
pub fn parse_resolv_conf(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("nameserver") => ns.extend(fields.next().map(str::to_string)),
            Some("search") => search = fields.map(str::to_string).collect(),
            Some("options") => opts.extend(fields.map(str::to_string)),
            _ => {}
        }
    }
    (ns, search, opts)
}

/// The pod's DNS configuration by dnsPolicy, merged with its dnsConfig.
pub fn dns_config(pod: &Pod, config: &KubeletConfiguration, host_resolv: &str) -> api::DnsConfig {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec
        .dns_policy
        .clone()
        .unwrap_or_else(|| "ClusterFirst".into());
    let host_net = spec.host_network.unwrap_or(false);
    let (host_ns, host_search, host_opts) = parse_resolv_conf(host_resolv);
    let cluster_first = match policy.as_str() {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_net,
        _ => false,
    };
    let mut out = api::DnsConfig::default();
    if policy == "None" {
        // Only dnsConfig.
    } else if cluster_first && !config.cluster_dns.is_empty() {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let domain = &config.cluster_domain;
        out.servers = config.cluster_dns.clone();
        out.searches = if domain.is_empty() {
            Vec::new()
        } else {
            vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.clone(),
            ]
        };
        out.searches.extend(host_search);
        out.options = vec!["ndots:5".into()];
    } else {
        // Default, or ClusterFirst without cluster DNS (upstream falls back to Default).
        out.servers = host_ns;
        out.searches = host_search;
        out.options = host_opts;
    }
    if let Some(dc) = &spec.dns_config {
        for s in dc.nameservers.iter().flatten() {
            if !out.servers.contains(s) {
                out.servers.push(s.clone());
            }
        }
        for s in dc.searches.iter().flatten() {
            if !out.searches.contains(s) {
                out.searches.push(s.clone());
            }
        }
        for o in dc.options.iter().flatten() {
            let rendered = match &o.value {
                Some(v) => format!("{}:{v}", o.name.clone().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let name = o.name.clone().unwrap_or_default();
            out.options
                .retain(|x| x.split(':').next() != Some(name.as_str()));
            out.options.push(rendered);
        }
    }
    out.servers.truncate(MAX_DNS_NAMESERVERS);
    out.searches.truncate(MAX_DNS_SEARCH_PATHS);
    out
}

fn protocol(p: Option<&str>) -> i32 {
    match p {
        Some("UDP") => api::Protocol::Udp as i32,
        Some("SCTP") => api::Protocol::Sctp as i32,
        _ => api::Protocol::Tcp as i32,
    }
}

pub struct SandboxInputs<'a> {
    pub pod: &'a Pod,
    pub attempt: u32,
    pub config: &'a KubeletConfiguration,
    pub host_resolv: &'a str,
    pub log_directory: String,
    pub cgroup_parent: String,
}

pub fn sandbox_config(input: &SandboxInputs<'_>) -> api::PodSandboxConfig {
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let host_net = spec.host_network.unwrap_or(false);
    let (hostname, _) = hostname_and_domain(pod, &input.config.cluster_domain);
    let mut sandbox_labels: HashMap<String, String> = pod
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    sandbox_labels.extend(pod_labels(pod));
    let annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let port_mappings = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) != 0)
        .map(|p| api::PortMapping {
            protocol: protocol(p.protocol.as_deref()),
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or(0),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let sc = spec.security_context.clone().unwrap_or_default();
    let ns_mode = |host: Option<bool>| {
        if host.unwrap_or(false) {
            NamespaceMode::Node as i32
        } else {
            NamespaceMode::Pod as i32
        }
    };
    let privileged = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .any(|c| {
            c.security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false)
        });
    let sysctls = sc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            attempt: input.attempt,
        }),
        hostname: if host_net { String::new() } else { hostname },
        log_directory: input.log_directory.clone(),
        dns_config: Some(dns_config(pod, input.config, input.host_resolv)),
        port_mappings,
        labels: sandbox_labels,
        annotations,
        linux: Some(api::LinuxPodSandboxConfig {
            cgroup_parent: input.cgroup_parent.clone(),
            security_context: Some(api::LinuxSandboxSecurityContext {
                namespace_options: Some(api::NamespaceOption {
                    network: ns_mode(spec.host_network),
                    pid: if spec.host_pid.unwrap_or(false) {
                        NamespaceMode::Node as i32
                    } else {
                        NamespaceMode::Container as i32
                    },
                    ipc: ns_mode(spec.host_ipc),
                    ..Default::default()
                }),
                run_as_user: sc.run_as_user.map(|value| api::Int64Value { value }),
                run_as_group: sc.run_as_group.map(|value| api::Int64Value { value }),
                supplemental_groups: sc.supplemental_groups.clone().unwrap_or_default(),
                privileged,
                ..Default::default()
            }),
            sysctls,
            ..Default::default()
        }),
        windows: None,
    }
}

/// The kubelet-managed /etc/hosts of a pod (upstream's managedHostsFileContent).
pub fn hosts_file(pod: &Pod, pod_ips: &[String], cluster_domain: &str, host_hosts: &str) -> String {
    if host_network(pod) {
        return format!("# Kubernetes-managed hosts file (host network).\n{host_hosts}");
    }
    let (hostname, domain) = hostname_and_domain(pod, cluster_domain);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        match &domain {
            Some(d) => out.push_str(&format!("{ip}\t{hostname}.{d}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.clone())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            out.push_str(&format!(
                "{}\t{}\n",
                a.ip,
                a.hostnames.unwrap_or_default().join("\t")
            ));
        }
    }
    out
}

/// `<podLogsDir>/<namespace>_<name>_<uid>`.
pub fn log_directory(pod_logs_dir: &Path, pod: &Pod) -> String {
    let m = &pod.metadata;
    pod_logs_dir
        .join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default(),
            m.uid.as_deref().unwrap_or_default()
        ))
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "prod", "uid": "u1", "labels": {"app": "web"}},
            "spec": spec
        }))
        .unwrap()
    }

    const HOST: &str = "nameserver 192.0.2.53\nsearch example.com corp\noptions rotate\n";

    #[test]
    fn dns_policies() {
        let config = KubeletConfiguration {
            cluster_dns: vec!["10.96.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let p = pod(json!({"containers": []}));
        let d = dns_config(&p, &config, HOST);
        assert_eq!(d.servers, vec!["10.96.0.10"]);
        assert_eq!(
            d.searches,
            vec![
                "prod.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "example.com",
                "corp"
            ]
        );
        assert_eq!(d.options, vec!["ndots:5"]);
        let p = pod(json!({"containers": [], "dnsPolicy": "Default"}));
        let d = dns_config(&p, &config, HOST);
        assert_eq!(d.servers, vec!["192.0.2.53"]);
        assert_eq!(d.options, vec!["rotate"]);
        let p = pod(json!({"containers": [], "dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.b"], "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let d = dns_config(&p, &config, HOST);
        assert_eq!(d.servers, vec!["1.1.1.1"]);
        assert_eq!(d.searches, vec!["a.b"]);
        assert_eq!(d.options, vec!["ndots:2", "edns0"]);
        // ClusterFirst with dnsConfig: options override by name.
        let p = pod(
            json!({"containers": [], "dnsConfig": {"options": [{"name": "ndots", "value": "1"}]}}),
        );
        assert_eq!(dns_config(&p, &config, HOST).options, vec!["ndots:1"]);
        // hostNetwork + ClusterFirst means the host's DNS.
        let p = pod(json!({"containers": [], "hostNetwork": true}));
        assert_eq!(dns_config(&p, &config, HOST).servers, vec!["192.0.2.53"]);
    }

    #[test]
    fn sandbox_shape_and_hosts() {
        let config = KubeletConfiguration {
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let p = pod(json!({"hostname": "h", "subdomain": "s", "containers": [
            {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]}],
            "securityContext": {"sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]}}));
        let c = sandbox_config(&SandboxInputs {
            pod: &p,
            attempt: 2,
            config: &config,
            host_resolv: HOST,
            log_directory: "/l/prod_web-0_u1".into(),
            cgroup_parent: "/kubepods/besteffort/podu1".into(),
        });
        assert_eq!(c.hostname, "h");
        assert_eq!(c.metadata.as_ref().unwrap().attempt, 2);
        assert_eq!(c.port_mappings.len(), 1);
        assert_eq!(c.port_mappings[0].host_port, 8080);
        assert_eq!(c.labels[labels::POD_UID], "u1");
        assert_eq!(c.labels["app"], "web");
        let linux = c.linux.unwrap();
        assert_eq!(linux.sysctls["net.core.somaxconn"], "1024");
        assert_eq!(
            linux
                .security_context
                .unwrap()
                .namespace_options
                .unwrap()
                .network,
            NamespaceMode::Pod as i32
        );
        let hosts = hosts_file(&p, &["10.0.0.5".into()], "cluster.local", "");
        assert!(
            hosts.contains("10.0.0.5\th.s.prod.svc.cluster.local\th\n"),
            "{hosts}"
        );
        assert_eq!(
            log_directory(Path::new("/var/log/pods"), &p),
            "/var/log/pods/prod_web-0_u1"
        );
    }
}

//! Command-line flags, named and defaulted as upstream's kube-controller-manager flags.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

fn parse_duration(s: &str) -> Result<Duration, String> {
    apimachinery::duration::parse_go_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Parser)]
#[command(
    name = "kube-controller-manager",
    about = "The Kubernetes controller manager, in Rust"
)]
pub struct Options {
    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Start a leader election client and gain leadership before executing the main loop.
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub leader_elect: bool,

    /// The duration that non-leader candidates will wait before trying to acquire
    /// leadership.
    #[arg(long = "leader-elect-lease-duration", default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,

    /// The name of the Lease used for leader election.
    #[arg(
        long = "leader-elect-resource-name",
        default_value = "kube-controller-manager"
    )]
    pub leader_elect_resource_name: String,

    /// The namespace of the Lease used for leader election.
    #[arg(
        long = "leader-elect-resource-namespace",
        default_value = "kube-system"
    )]
    pub leader_elect_resource_namespace: String,

    /// A list of controllers to enable. '*' enables all on-by-default controllers, 'foo'
    /// enables the controller named 'foo', '-foo' disables the controller named 'foo'.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,

    /// The port on which to serve HTTPS (/healthz, /metrics). 0 picks a free port.
    #[arg(long = "secure-port", default_value_t = 10257)]
    pub secure_port: u16,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    #[arg(long = "concurrent-deployment-syncs", default_value_t = 5)]
    pub concurrent_deployment_syncs: u16,
    #[arg(long = "concurrent-replicaset-syncs", default_value_t = 5)]
    pub concurrent_replicaset_syncs: u16,
    #[arg(long = "concurrent-rc-syncs", default_value_t = 5)]
    pub concurrent_rc_syncs: u16,
    #[arg(long = "concurrent-statefulset-syncs", default_value_t = 5)]
    pub concurrent_statefulset_syncs: u16,
    #[arg(long = "concurrent-daemonset-syncs", default_value_t = 2)]
    pub concurrent_daemonset_syncs: u16,
    #[arg(long = "concurrent-job-syncs", default_value_t = 5)]
    pub concurrent_job_syncs: u16,
    #[arg(long = "concurrent-cron-job-syncs", default_value_t = 5)]
    pub concurrent_cron_job_syncs: u16,
    #[arg(long = "concurrent-endpoint-syncs", default_value_t = 5)]
    pub concurrent_endpoint_syncs: u16,
    #[arg(long = "concurrent-service-endpoint-syncs", default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: u16,
    #[arg(long = "concurrent-namespace-syncs", default_value_t = 10)]
    pub concurrent_namespace_syncs: u16,
    #[arg(long = "concurrent-gc-syncs", default_value_t = 20)]
    pub concurrent_gc_syncs: u16,
    #[arg(long = "concurrent-resource-quota-syncs", default_value_t = 5)]
    pub concurrent_resource_quota_syncs: u16,
    /// If set, this root certificate authority is published in every namespace's
    /// `kube-root-ca.crt` ConfigMap; otherwise the kubeconfig's certificate authority.
    #[arg(long = "root-ca-file")]
    pub root_ca_file: Option<PathBuf>,
    #[arg(long = "concurrent-serviceaccount-token-syncs", default_value_t = 5)]
    pub concurrent_serviceaccount_token_syncs: u16,
    #[arg(long = "concurrent-ttl-after-finished-syncs", default_value_t = 5)]
    pub concurrent_ttl_after_finished_syncs: u16,

    /// CIDR Range for Pods in cluster (with --allocate-node-cidrs); one CIDR, or an IPv4
    /// and an IPv6 CIDR separated by a comma (dual stack).
    #[arg(long = "cluster-cidr", value_delimiter = ',')]
    pub cluster_cidr: Vec<ipnet::IpNet>,

    /// Should CIDRs for pods be allocated and set on the nodes.
    #[arg(long = "allocate-node-cidrs", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub allocate_node_cidrs: bool,

    /// Mask size for node CIDRs in the cluster (single stack; 24 for IPv4, 64 for IPv6
    /// when unset).
    #[arg(long = "node-cidr-mask-size")]
    pub node_cidr_mask_size: Option<u8>,

    /// Mask size for IPv4 node CIDRs in a dual-stack cluster.
    #[arg(long = "node-cidr-mask-size-ipv4")]
    pub node_cidr_mask_size_ipv4: Option<u8>,

    /// Mask size for IPv6 node CIDRs in a dual-stack cluster.
    #[arg(long = "node-cidr-mask-size-ipv6")]
    pub node_cidr_mask_size_ipv6: Option<u8>,

    /// CIDR range for services (excluded from node CIDRs when it overlaps the cluster
    /// CIDR).
    #[arg(long = "service-cluster-ip-range")]
    pub service_cluster_ip_range: Option<ipnet::IpNet>,

    /// Secondary CIDR range for services (dual stack), excluded like the first.
    #[arg(long = "secondary-service-cluster-ip-range")]
    pub secondary_service_cluster_ip_range: Option<ipnet::IpNet>,

    /// Amount of time a running node may go unresponsive before it is marked unhealthy
    /// (50s since upstream 1.32, kubernetes/kubernetes#126287; 40s before).
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,

    /// The period for syncing NodeStatus in the node lifecycle controller.
    #[arg(long = "node-monitor-period", default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,

    /// Amount of time which we allow starting Node to be unresponsive before marking it
    /// unhealthy.
    #[arg(long = "node-startup-grace-period", default_value = "1m0s", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,

    /// Number of nodes per second on which pods are deleted in case of node failure when
    /// a zone is healthy.
    #[arg(long = "node-eviction-rate", default_value_t = 0.1)]
    pub node_eviction_rate: f32,

    /// Number of nodes per second on which pods are deleted in case of node failure when
    /// a zone is unhealthy (0 in clusters smaller than --large-cluster-size-threshold).
    #[arg(long = "secondary-node-eviction-rate", default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f32,

    /// Number of nodes from which the node lifecycle controller treats the cluster as
    /// large for the eviction logic.
    #[arg(long = "large-cluster-size-threshold", default_value_t = 50)]
    pub large_cluster_size_threshold: u32,

    /// Fraction of Nodes in a zone which needs to be not Ready (minimum 3) for the zone
    /// to be treated as unhealthy.
    #[arg(long = "unhealthy-zone-threshold", default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f32,

    /// Number of terminated pods that can exist before the terminated pod garbage
    /// collector starts deleting terminated pods.
    #[arg(long = "terminated-pod-gc-threshold", default_value_t = 12500)]
    pub terminated_pod_gc_threshold: usize,

    /// The maximum number of endpoints that will be added to an EndpointSlice.
    #[arg(long = "max-endpoints-per-slice", default_value_t = 100)]
    pub max_endpoints_per_slice: usize,

    /// The period for syncing quota usage status in the system.
    #[arg(long = "resource-quota-sync-period", default_value = "5m0s", value_parser = parse_duration)]
    pub resource_quota_sync_period: Duration,

    /// The instance prefix for the cluster.
    #[arg(long = "cluster-name", default_value = "kubernetes")]
    pub cluster_name: String,
}

/// Upstream's older controller names (still accepted as aliases since 1.28) that are
/// not simply a registered name.
const ALIASES: &[(&str, &str)] = &[
    ("nodelifecycle", "node-lifecycle"),
    ("nodeipam", "node-ipam"),
    ("garbagecollector", "garbage-collector"),
    ("ttl-after-finished", "ttl-after-finished"),
];

/// Whether a `--controllers` entry names the controller registered as `name`: its
/// name, upstream's current name (`<name>-controller`), or an old alias.
fn names(entry: &str, name: &str) -> bool {
    entry == name
        || entry.strip_suffix("-controller") == Some(name)
        || ALIASES
            .iter()
            .any(|(alias, n)| *alias == entry && *n == name)
}

impl Options {
    /// Whether `--controllers` enables the controller `name`.
    pub fn enabled(&self, name: &str, on_by_default: bool) -> bool {
        let mut enabled = false;
        for entry in &self.controllers {
            let entry = entry.trim();
            if names(entry, name) {
                return true;
            }
            if entry.strip_prefix('-').is_some_and(|e| names(e, name)) {
                return false;
            }
            if entry == "*" {
                enabled = on_by_default;
            }
        }
        enabled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_selection_follows_upstream() {
        let o = Options::parse_from(["kcm", "--controllers=*,-job,bootstrapsigner"]);
        assert!(o.enabled("deployment", true));
        assert!(!o.enabled("job", true));
        assert!(o.enabled("bootstrapsigner", false));
        assert!(!o.enabled("tokencleaner", false));
        let o = Options::parse_from(["kcm", "--controllers=deployment"]);
        assert!(o.enabled("deployment", true));
        assert!(!o.enabled("replicaset", true));
    }

    #[test]
    fn upstream_controller_names_and_aliases_are_accepted() {
        let o = Options::parse_from([
            "kcm",
            "--controllers=node-lifecycle-controller,nodeipam,replicaset-controller,taint-eviction-controller",
        ]);
        assert!(o.enabled("node-lifecycle", true));
        assert!(o.enabled("node-ipam", true));
        assert!(o.enabled("replicaset", true));
        assert!(o.enabled("taint-eviction-controller", true));
        assert!(!o.enabled("deployment", true));
        let o = Options::parse_from(["kcm", "--controllers=*,-nodelifecycle,-job-controller"]);
        assert!(!o.enabled("node-lifecycle", true));
        assert!(!o.enabled("job", true));
        assert!(o.enabled("node-ipam", true));
    }

    #[test]
    fn bool_flags_take_an_optional_value_as_pflag_does() {
        let o = Options::parse_from(["kcm", "--allocate-node-cidrs", "--leader-elect=false"]);
        assert!(o.allocate_node_cidrs);
        assert!(!o.leader_elect);
        let o = Options::parse_from(["kcm", "--allocate-node-cidrs=false"]);
        assert!(!o.allocate_node_cidrs);
        assert!(o.leader_elect);
    }
}

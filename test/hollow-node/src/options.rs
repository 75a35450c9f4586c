//! Command-line flags. Names follow the kubelet where the kubelet has the same knob
//! (`--node-labels`, `--register-with-taints`, `--node-status-update-frequency`); the
//! rest are the hollow node's own.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;

fn parse_duration(s: &str) -> Result<Duration, String> {
    apimachinery::duration::parse_go_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "hollow-node",
    about = "A hollow kubelet: registers Nodes, renews their Leases and moves pods bound to them through Pending -> Running -> Ready (-> Succeeded/Failed) without running anything"
)]
pub struct Options {
    /// Path to a kubeconfig file.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// How many nodes this process simulates.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,

    /// Nodes are named `<prefix>-0` .. `<prefix>-<N-1>`.
    #[arg(long = "name-prefix", default_value = "hollow-node")]
    pub name_prefix: String,

    /// CPU capacity of each node.
    #[arg(long, default_value = "4")]
    pub cpu: String,

    /// Memory capacity of each node.
    #[arg(long, default_value = "16Gi")]
    pub memory: String,

    /// Pod capacity of each node.
    #[arg(long, default_value_t = 110)]
    pub pods: u32,

    /// Ephemeral storage capacity of each node.
    #[arg(long = "ephemeral-storage", default_value = "100Gi")]
    pub ephemeral_storage: String,

    /// Extra labels of each node, `key=value,...`.
    #[arg(long = "node-labels", value_delimiter = ',', value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,

    /// Taints of each node at registration, `key[=value]:Effect,...`.
    #[arg(long = "register-with-taints", value_delimiter = ',', value_parser = parse_taint)]
    pub register_with_taints: Vec<Taint>,

    /// Pod IPs of node i come from the /24 at this address + i*256, unless the node has
    /// `spec.podCIDR` (set by the node-ipam controller), which then wins.
    #[arg(long = "pod-cidr-base", default_value = "10.244.0.0")]
    pub pod_cidr_base: Ipv4Addr,

    /// Node i gets InternalIP this address + i + 1.
    #[arg(long = "node-ip-base", default_value = "172.16.0.0")]
    pub node_ip_base: Ipv4Addr,

    /// How long the containers of a pod with restartPolicy Never/OnFailure run before
    /// they exit.
    #[arg(long = "pod-run-duration", default_value = "2s", value_parser = parse_duration)]
    pub pod_run_duration: Duration,

    /// How long containers take to stop after their pod is deleted (capped by the
    /// pod's grace period). Real containers usually exit on SIGTERM well before the
    /// grace period; a short default keeps scale-downs fast.
    #[arg(long = "pod-stop-duration", default_value = "1s", value_parser = parse_duration)]
    pub pod_stop_duration: Duration,

    /// How often each node's Lease is renewed (renewals of the nodes are spread over
    /// the interval).
    #[arg(long = "lease-renew-interval", default_value = "10s", value_parser = parse_duration)]
    pub lease_renew_interval: Duration,

    /// leaseDurationSeconds of the node Leases.
    #[arg(long = "node-lease-duration-seconds", default_value_t = 40)]
    pub node_lease_duration_seconds: i32,

    /// How often each node posts its status (the heartbeat in its conditions); with
    /// Leases upstream posts unchanged status every 5 minutes.
    #[arg(long = "node-status-update-frequency", default_value = "5m", value_parser = parse_duration)]
    pub node_status_update_frequency: Duration,

    /// Maximum concurrent API requests of each kind (pod updates, lease renewals,
    /// registrations).
    #[arg(long, default_value_t = 32)]
    pub concurrency: u16,
}

pub fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("invalid label {s:?}, want key=value")),
    }
}

/// `key[=value]:Effect`, as the kubelet's `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid taint {s:?}, want key[=value]:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!("invalid taint effect {effect:?} in {s:?}"));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v.to_string())),
        None => (kv, None),
    };
    if key.is_empty() {
        return Err(format!("invalid taint {s:?}: empty key"));
    }
    Ok(Taint {
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
    fn flags_parse() {
        let o = Options::try_parse_from([
            "hollow-node",
            "--nodes=3",
            "--node-labels=a=b,zone=z1",
            "--register-with-taints=dedicated=gpu:NoSchedule,bare:NoExecute",
            "--pod-run-duration=500ms",
        ])
        .unwrap();
        assert_eq!(o.nodes, 3);
        assert_eq!(
            o.node_labels,
            vec![("a".into(), "b".into()), ("zone".into(), "z1".into())]
        );
        assert_eq!(o.register_with_taints.len(), 2);
        assert_eq!(o.register_with_taints[0].value.as_deref(), Some("gpu"));
        assert_eq!(o.register_with_taints[1].value, None);
        assert_eq!(o.register_with_taints[1].effect, "NoExecute");
        assert_eq!(o.pod_run_duration, Duration::from_millis(500));
        assert_eq!(o.lease_renew_interval, Duration::from_secs(10));
        assert_eq!(o.node_status_update_frequency, Duration::from_secs(300));
    }

    #[test]
    fn bad_taints_are_rejected() {
        assert!(parse_taint("k=v").is_err());
        assert!(parse_taint("k=v:Sometimes").is_err());
        assert!(parse_taint("=v:NoSchedule").is_err());
    }
}

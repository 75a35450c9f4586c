//! Command-line flags, named and defaulted as upstream's kube-scheduler flags.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "kube-scheduler", about = "The Kubernetes scheduler, in Rust")]
pub struct Options {
    /// The path to the configuration file (KubeSchedulerConfiguration).
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Path to kubeconfig file with authorization and master location information.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// Start a leader election client and gain leadership before executing the main loop.
    /// Overrides the configuration file's leaderElection.leaderElect when given.
    #[arg(long = "leader-elect", num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub leader_elect: Option<bool>,

    /// The name of the Lease used for leader election.
    #[arg(long = "leader-elect-resource-name")]
    pub leader_elect_resource_name: Option<String>,

    /// The namespace of the Lease used for leader election.
    #[arg(long = "leader-elect-resource-namespace")]
    pub leader_elect_resource_namespace: Option<String>,

    /// The port on which to serve HTTPS (/healthz, /metrics). 0 picks a free port.
    #[arg(long = "secure-port", default_value_t = 10259)]
    pub secure_port: u16,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
}

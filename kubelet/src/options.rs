//! Upstream's kubelet flags that still matter (most settings live in `--config`).

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(name = "kubelet", about = "The Kubernetes node agent")]
pub struct Options {
    /// Path to a kubeconfig file with the API server's location and the kubelet's credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,

    /// A KubeletConfiguration (kubelet.config.k8s.io/v1beta1) file.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// The CRI endpoint (unix:///path). Overrides the config file's containerRuntimeEndpoint.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,

    /// The node's IP address; defaults to the address of the interface of the default route.
    #[arg(long)]
    pub node_ip: Option<String>,

    /// Name of the Node object instead of the host name.
    #[arg(long)]
    pub hostname_override: Option<String>,

    /// Directory for the kubelet's files (volumes, plugins, serving certificate).
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub root_dir: PathBuf,

    /// Directory of the serving certificate and key when tlsCertFile is not configured.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,

    /// Labels to add when registering the node (key=value,...).
    #[arg(long, value_delimiter = ',')]
    pub node_labels: Vec<String>,

    /// Taints to add when registering the node (key=value:Effect,...).
    #[arg(long, value_delimiter = ',')]
    pub register_with_taints: Vec<String>,

    /// Static pod directory; overrides the config file's staticPodPath (deprecated upstream).
    #[arg(long)]
    pub pod_manifest_path: Option<PathBuf>,

    /// Log verbosity, accepted for compatibility (use RUST_LOG for filtering).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

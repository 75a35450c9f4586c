//! Command-line flags, named and defaulted as upstream's kube-apiserver flags.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "kube-apiserver", version = crate::version::GIT_VERSION, about = "The Kubernetes API server, in Rust")]
pub struct Options {
    /// List of etcd servers to connect with (scheme://ip:port), comma separated.
    #[arg(
        long = "etcd-servers",
        value_delimiter = ',',
        required_unless_present = "storage_backend_memory"
    )]
    pub etcd_servers: Vec<String>,

    /// The prefix to prepend to all resource paths in etcd.
    #[arg(long = "etcd-prefix", default_value = "/registry")]
    pub etcd_prefix: String,

    /// Test-only: keep everything in process memory instead of etcd.
    #[arg(
        long = "storage-backend-memory-for-tests",
        id = "storage_backend_memory",
        hide = true
    )]
    pub storage_backend_memory: bool,

    /// The port on which to serve HTTPS with authentication and authorization.
    #[arg(long = "secure-port", default_value_t = 6443)]
    pub secure_port: u16,

    /// The IP address on which to listen for the --secure-port port.
    #[arg(long = "bind-address", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// The IP address on which to advertise the apiserver to members of the cluster.
    #[arg(long = "advertise-address")]
    pub advertise_address: Option<IpAddr>,

    /// File containing the default x509 certificate for HTTPS.
    #[arg(long = "tls-cert-file")]
    pub tls_cert_file: Option<PathBuf>,

    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long = "tls-private-key-file")]
    pub tls_private_key_file: Option<PathBuf>,

    /// The directory where the self-signed TLS certificate is written when
    /// --tls-cert-file and --tls-private-key-file are not given.
    #[arg(long = "cert-dir", default_value = "/var/run/kubernetes")]
    pub cert_dir: PathBuf,

    /// Enables client certificate authentication: clients presenting a certificate
    /// signed by one of these authorities are authenticated with the certificate's CN
    /// as user name and O as groups.
    #[arg(long = "client-ca-file")]
    pub client_ca_file: Option<PathBuf>,

    /// If set, the file that will be used to secure the secure port of the API server
    /// via token authentication (CSV: token,user,uid,"group1,group2").
    #[arg(long = "token-auth-file")]
    pub token_auth_file: Option<PathBuf>,

    /// File containing PEM-encoded x509 RSA or ECDSA private or public keys, used to
    /// verify ServiceAccount tokens. May be given several times (key rotation).
    #[arg(long = "service-account-key-file")]
    pub service_account_key_files: Vec<PathBuf>,

    /// Path to the file that contains the current private key of the service account
    /// token issuer. Without it a key is generated under --cert-dir (sa.key).
    #[arg(long = "service-account-signing-key-file")]
    pub service_account_signing_key_file: Option<PathBuf>,

    /// Identifier of the service account token issuer (the `iss` claim). May be given
    /// several times: the first issues tokens, all are accepted.
    #[arg(long = "service-account-issuer", default_value = crate::serviceaccount::DEFAULT_ISSUER)]
    pub service_account_issuer: Vec<String>,

    /// Identifiers of the API. Tokens must name one of them as audience; TokenRequests
    /// without audiences get them. Defaults to the issuers.
    #[arg(long = "api-audiences", value_delimiter = ',')]
    pub api_audiences: Vec<String>,

    /// The maximum validity duration of a token created by the service account token
    /// issuer, in seconds (upstream takes a duration; seconds or a Go duration like 24h).
    #[arg(long = "service-account-max-token-expiration", value_parser = parse_duration_seconds)]
    pub service_account_max_token_expiration: Option<i64>,

    /// Turns on projected service account expiration extension during token generation
    /// (tokens of 3607 s bound to pods are valid for a year, with `warnafter`).
    #[arg(long = "service-account-extend-token-expiration", default_value_t = true, action = clap::ArgAction::Set)]
    pub service_account_extend_token_expiration: bool,

    /// Enables anonymous requests to the secure port of the API server.
    #[arg(long = "anonymous-auth", default_value_t = true, action = clap::ArgAction::Set)]
    pub anonymous_auth: bool,

    /// Ordered list of plug-ins to do authorization on secure port.
    #[arg(
        long = "authorization-mode",
        value_delimiter = ',',
        default_value = "AlwaysAllow"
    )]
    pub authorization_mode: Vec<crate::authz::Mode>,

    /// A CIDR notation IP range from which to assign service cluster IPs.
    #[arg(long = "service-cluster-ip-range", default_value = "10.96.0.0/12")]
    pub service_cluster_ip_range: ipnet::IpNet,

    /// A port range to reserve for services with NodePort visibility.
    #[arg(long = "service-node-port-range", default_value = "30000-32767")]
    pub service_node_port_range: String,

    /// Admission plugins that should be enabled in addition to default enabled ones.
    #[arg(long = "enable-admission-plugins", value_delimiter = ',')]
    pub enable_admission_plugins: Vec<String>,

    /// Admission plugins that should be disabled although they are in the default list.
    #[arg(long = "disable-admission-plugins", value_delimiter = ',')]
    pub disable_admission_plugins: Vec<String>,

    /// Events each resource's watch cache keeps for watchers resuming from an older
    /// resourceVersion (older ones get 410 Gone and re-list). 0 disables the cache.
    #[arg(long = "default-watch-cache-size", default_value_t = 100)]
    pub default_watch_cache_size: usize,

    /// Indicates the tolerationSeconds of the toleration for notReady:NoExecute that is
    /// added by default to every pod that does not already have such a toleration.
    #[arg(long = "default-not-ready-toleration-seconds", default_value_t = 300)]
    pub default_not_ready_toleration_seconds: i64,

    /// Indicates the tolerationSeconds of the toleration for unreachable:NoExecute that
    /// is added by default to every pod that does not already have such a toleration.
    #[arg(long = "default-unreachable-toleration-seconds", default_value_t = 300)]
    pub default_unreachable_toleration_seconds: i64,

    /// An optional field indicating the minimum number of seconds a handler must keep a
    /// request open before timing it out (watches).
    #[arg(long = "min-request-timeout", default_value_t = 1800)]
    pub min_request_timeout: u64,

    /// How long to wait for in-flight requests to finish after SIGTERM.
    #[arg(long = "shutdown-drain-timeout-seconds", default_value_t = 60)]
    pub shutdown_drain_timeout_seconds: u64,

    /// Time to keep answering (with /readyz failing) after SIGTERM before closing the
    /// listener, so load balancers notice.
    #[arg(long = "shutdown-delay-duration-seconds", default_value_t = 0)]
    pub shutdown_delay_seconds: u64,

    /// Client certificate the server presents to kubelets (logs, exec, attach,
    /// port-forward, node proxy).
    #[arg(long = "kubelet-client-certificate")]
    pub kubelet_client_certificate: Option<PathBuf>,

    /// Key of --kubelet-client-certificate.
    #[arg(long = "kubelet-client-key")]
    pub kubelet_client_key: Option<PathBuf>,

    /// CA bundle that kubelet serving certificates must chain to; without it the kubelet's
    /// certificate is not verified (as upstream).
    #[arg(long = "kubelet-certificate-authority")]
    pub kubelet_certificate_authority: Option<PathBuf>,

    /// Node address types to connect to kubelets with, in order of preference.
    /// (Upstream's default starts with Hostname; this is kubeadm's setting, since node
    /// names rarely resolve.)
    #[arg(
        long = "kubelet-preferred-address-types",
        value_delimiter = ',',
        default_value = "InternalIP,ExternalIP,Hostname,InternalDNS,ExternalDNS"
    )]
    pub kubelet_preferred_address_types: Vec<String>,
}

impl Options {
    /// The `(first, last)` node port range.
    pub fn node_port_range(&self) -> Result<(u16, u16), String> {
        let (a, b) = self
            .service_node_port_range
            .split_once('-')
            .ok_or_else(|| {
                format!(
                    "invalid --service-node-port-range {:?}",
                    self.service_node_port_range
                )
            })?;
        let parse = |s: &str| {
            s.trim()
                .parse::<u16>()
                .map_err(|e| format!("invalid port {s:?}: {e}"))
        };
        let (a, b) = (parse(a)?, parse(b)?);
        if a > b {
            return Err(format!(
                "invalid --service-node-port-range {:?}",
                self.service_node_port_range
            ));
        }
        Ok((a, b))
    }
}

/// Seconds, or a Go-style duration (`1h`, `30m`, `90s`, `1h30m`).
fn parse_duration_seconds(s: &str) -> Result<i64, String> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let mut total = 0i64;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number
            .parse()
            .map_err(|_| format!("invalid duration {s:?}"))?;
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("invalid duration {s:?}")),
        };
    }
    if !number.is_empty() {
        return Err(format!("invalid duration {s:?}: missing unit"));
    }
    Ok(total)
}

//! The API server as a client of kubelets (upstream's pkg/kubelet/client): the TLS
//! configuration from `--kubelet-client-certificate`/`--kubelet-client-key`/
//! `--kubelet-certificate-authority`, and where a node's kubelet listens (its status
//! addresses in `--kubelet-preferred-address-types` order, the port from
//! `status.daemonEndpoints.kubeletEndpoint`).

use std::sync::Arc;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;

use crate::options::Options;

/// The kubelet port when a node does not report one.
pub const DEFAULT_KUBELET_PORT: u16 = 10250;

#[derive(Clone, Debug)]
pub struct KubeletClient {
    pub tls: Arc<rustls::ClientConfig>,
    pub preferred_address_types: Vec<String>,
}

impl KubeletClient {
    pub fn from_options(opts: &Options) -> anyhow::Result<Self> {
        let roots = match &opts.kubelet_certificate_authority {
            Some(path) => Some(pki::certificates_from_pem(path)?),
            None => None,
        };
        let identity = match (&opts.kubelet_client_certificate, &opts.kubelet_client_key) {
            (Some(cert), Some(key)) => Some((
                pki::certificates_from_pem(cert)?,
                pki::private_key_from_pem(key)?,
            )),
            (None, None) => None,
            _ => anyhow::bail!(
                "--kubelet-client-certificate and --kubelet-client-key must be given together"
            ),
        };
        let tls =
            httpproxy::client_config(roots, identity).context("kubelet client TLS settings")?;
        Ok(KubeletClient {
            tls: Arc::new(tls),
            preferred_address_types: opts.kubelet_preferred_address_types.clone(),
        })
    }

    /// Host and port of the node's kubelet, or why there is none.
    pub fn location(&self, node: &Node) -> Result<(String, u16), String> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let status = node.status.clone().unwrap_or_default();
        let addresses = status.addresses.unwrap_or_default();
        let host = self
            .preferred_address_types
            .iter()
            .find_map(|t| {
                addresses
                    .iter()
                    .find(|a| &a.type_ == t && !a.address.is_empty())
            })
            .map(|a| a.address.clone())
            .ok_or_else(|| {
                format!(
                    "no preferred addresses found; known addresses: [{}]",
                    addresses
                        .iter()
                        .map(|a| format!("{{{} {}}}", a.type_, a.address))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
        let port = status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port)
            .filter(|p| *p > 0)
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(DEFAULT_KUBELET_PORT);
        let _ = name;
        Ok((host, port))
    }

    pub fn backend(&self, host: String, port: u16) -> httpproxy::Backend {
        httpproxy::Backend {
            host,
            port,
            tls: Some(Arc::clone(&self.tls)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn address_preference_and_port() {
        let opts = Options::parse_from(["kube-apiserver", "--storage-backend-memory-for-tests"]);
        let client = KubeletClient::from_options(&opts).unwrap();
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {
                "addresses": [
                    {"type": "Hostname", "address": "n"},
                    {"type": "InternalIP", "address": "10.0.0.5"}
                ],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 12345}}
            }
        }))
        .unwrap();
        assert_eq!(
            client.location(&node).unwrap(),
            ("10.0.0.5".to_string(), 12345)
        );
        let bare: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"addresses": [{"type": "Hostname", "address": "n"}]}
        }))
        .unwrap();
        assert_eq!(client.location(&bare).unwrap(), ("n".to_string(), 10250));
        let none: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).unwrap();
        assert!(client.location(&none).is_err());
    }
}

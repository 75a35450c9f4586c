//! The kubelet's view of a container runtime: the CRI v1 gRPC API (`runtime.v1`) spoken to
//! containerd over its Unix socket, plus the label and annotation keys upstream's kubelet
//! puts on sandboxes and containers, so that anything reading the runtime (the kubelet's
//! own restart adoption, its streaming server, tests) finds pods the same way.

pub mod labels;

use std::collections::HashMap;
use std::path::PathBuf;

use api::image_service_client::ImageServiceClient;
use api::runtime_service_client::RuntimeServiceClient;
use hyper_util::rt::TokioIo;
pub use k8s_cri::v1 as api;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported container runtime endpoint {0:?}: only unix:// sockets are supported")]
    UnsupportedEndpoint(String),
    #[error("connecting to the container runtime at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("container runtime: {0}")]
    Status(#[from] tonic::Status),
}

/// Both CRI services on one HTTP/2 connection. Clones share the connection.
#[derive(Clone, Debug)]
pub struct Cri {
    pub runtime: RuntimeServiceClient<Channel>,
    pub image: ImageServiceClient<Channel>,
}

/// Accepts upstream's `--container-runtime-endpoint` forms: `unix:///path` or a bare path.
pub fn socket_path(endpoint: &str) -> Result<PathBuf, Error> {
    if let Some(path) = endpoint.strip_prefix("unix://") {
        Ok(PathBuf::from(path))
    } else if endpoint.starts_with('/') {
        Ok(PathBuf::from(endpoint))
    } else {
        Err(Error::UnsupportedEndpoint(endpoint.to_string()))
    }
}

/// Connects lazily-reconnecting clients: a runtime restart does not need a kubelet restart.
pub async fn connect(endpoint: &str) -> Result<Cri, Error> {
    let path = socket_path(endpoint)?;
    // The URI is a placeholder: the connector ignores it and dials the socket.
    let channel = Endpoint::from_static("http://cri.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|source| Error::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        image: ImageServiceClient::new(channel),
    })
}

/// As [`connect`], without dialling now: the first call connects (and fails if the
/// runtime is not there). For components that start before the runtime, and tests.
pub fn connect_lazy(endpoint: &str) -> Result<Cri, Error> {
    let path = socket_path(endpoint)?;
    let channel = Endpoint::from_static("http://cri.invalid").connect_with_connector_lazy(
        tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }),
    );
    Ok(Cri {
        runtime: RuntimeServiceClient::new(channel.clone()),
        image: ImageServiceClient::new(channel),
    })
}

impl Cri {
    /// The sandboxes and the containers whose labels include all of `selector`.
    pub async fn list_labelled(
        &self,
        selector: HashMap<String, String>,
    ) -> Result<(Vec<api::PodSandbox>, Vec<api::Container>), tonic::Status> {
        let mut runtime = self.runtime.clone();
        let sandboxes = runtime
            .list_pod_sandbox(api::ListPodSandboxRequest {
                filter: Some(api::PodSandboxFilter {
                    label_selector: selector.clone(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .items;
        let containers = runtime
            .list_containers(api::ListContainersRequest {
                filter: Some(api::ContainerFilter {
                    label_selector: selector,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .containers;
        Ok((sandboxes, containers))
    }

    /// `Version` of the runtime: (runtime name, runtime version), e.g. ("containerd", "1.6.20").
    pub async fn version(&self) -> Result<(String, String), Error> {
        let v = self
            .runtime
            .clone()
            .version(api::VersionRequest {
                version: "v1".into(),
            })
            .await?
            .into_inner();
        Ok((v.runtime_name, v.runtime_version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_forms() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(
            socket_path("/tmp/c.sock").unwrap(),
            PathBuf::from("/tmp/c.sock")
        );
        assert!(matches!(
            socket_path("tcp://127.0.0.1:1"),
            Err(Error::UnsupportedEndpoint(_))
        ));
    }
}

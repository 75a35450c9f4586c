//! A client from `--kubeconfig` (or the in-cluster service account, or the usual
//! `KUBECONFIG` / `~/.kube/config` lookup), identifying itself with a user agent as
//! upstream components do (`kube-controller-manager/v1.33.0`).

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig given and none found ({0})")]
    Infer(kube::config::InferConfigError),
    #[error("building the client: {0}")]
    Client(#[from] kube::Error),
}

/// The client configuration for `kubeconfig` (or inferred when `None`).
pub async fn load(kubeconfig: Option<&Path>) -> Result<Config, ConfigError> {
    match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|source| ConfigError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|source| ConfigError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })
        }
        None => Config::infer().await.map_err(ConfigError::Infer),
    }
}

/// A client for `component` (its name is the user agent, which the API server also uses
/// as the field manager of writes without one).
pub async fn client(kubeconfig: Option<&Path>, component: &str) -> Result<Client, ConfigError> {
    let config = load(kubeconfig).await?;
    client_from(config, component)
}

pub fn client_from(mut config: Config, component: &str) -> Result<Client, ConfigError> {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(&format!("{component}/v1.33.0 (linux/amd64) kubernetes-rs"))
            .unwrap_or(http::HeaderValue::from_static("kubernetes-rs")),
    ));
    Ok(Client::try_from(config)?)
}

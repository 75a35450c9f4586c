//! Volume manager: prepares a pod's volumes on the host under
//! `<root-dir>/pods/<uid>/volumes/<plugin>/<name>` before its containers start, and turns
//! a container's volumeMounts into CRI mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {message}")]
    Setup { volume: String, message: String },
    #[error("volume {0:?} has a type this kubelet does not support")]
    Unsupported(String),
    #[error("container {container:?} mounts unknown volume {volume:?}")]
    UnknownVolume { container: String, volume: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A volume ready on the host.
#[derive(Debug, Clone)]
pub struct MountedVolume {
    pub host_path: PathBuf,
    pub read_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, MountedVolume>,
}

#[derive(Clone)]
pub struct VolumeManager {
    root_dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl VolumeManager {
    pub fn new(root_dir: PathBuf) -> Self {
        Self { root_dir }
    }

    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(pod_uid)
    }

    /// Idempotent: called on every pod sync, so content-backed volumes stay current.
    pub async fn setup(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut out = PodVolumes::default();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let mounted = if volume.empty_dir.is_some() {
                let dir = self
                    .pod_dir(&uid)
                    .join("volumes/kubernetes.io~empty-dir")
                    .join(&volume.name);
                tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
                MountedVolume {
                    host_path: dir,
                    read_only: false,
                }
            } else if let Some(host_path) = &volume.host_path {
                MountedVolume {
                    host_path: PathBuf::from(&host_path.path),
                    read_only: false,
                }
            } else {
                return Err(VolumeError::Unsupported(volume.name.clone()));
            };
            out.volumes.insert(volume.name.clone(), mounted);
        }
        Ok(out)
    }

    /// Removes everything the pod's volumes left on the host.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        let dir = self.pod_dir(pod_uid).join("volumes");
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(e)),
            _ => Ok(()),
        }
    }
}

impl PodVolumes {
    pub fn container_mounts(
        &self,
        container: &Container,
    ) -> Result<Vec<cri::api::Mount>, VolumeError> {
        container
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| {
                let volume =
                    self.volumes
                        .get(&m.name)
                        .ok_or_else(|| VolumeError::UnknownVolume {
                            container: container.name.clone(),
                            volume: m.name.clone(),
                        })?;
                Ok(cri::api::Mount {
                    container_path: m.mount_path.clone(),
                    host_path: volume.host_path.to_string_lossy().into_owned(),
                    readonly: volume.read_only || m.read_only.unwrap_or(false),
                    ..Default::default()
                })
            })
            .collect()
    }
}

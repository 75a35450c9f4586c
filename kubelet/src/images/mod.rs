//! Image manager: makes a container's image present according to its imagePullPolicy,
//! with upstream's waiting reasons. No registry is reachable here, so in practice images
//! are imported ahead of time (hack/build-images.sh) and a pull only succeeds for
//! runtimes that can reach one.

use cri::api::{ImageSpec, ImageStatusRequest, PullImageRequest};
use cri::Cri;
use k8s_openapi::api::core::v1::Container;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error("Failed to pull image \"{image}\": {message}")]
    Pull { image: String, message: String },
    #[error("Failed to inspect image \"{image}\": {message}")]
    Inspect { image: String, message: String },
    #[error("InvalidImageName: container {0} has no image")]
    InvalidName(String),
}

impl ImageError {
    /// The container's `state.waiting.reason` for this error, as upstream.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::NeverPull(_) => "ErrImageNeverPull",
            ImageError::Pull { .. } => "ErrImagePull",
            ImageError::Inspect { .. } => "ImageInspectError",
            ImageError::InvalidName(_) => "InvalidImageName",
        }
    }
}

#[derive(Clone)]
pub struct ImageManager {
    cri: Cri,
}

impl ImageManager {
    pub fn new(cri: Cri) -> Self {
        Self { cri }
    }

    /// Returns the image reference (the runtime's image id) to create the container from.
    pub async fn ensure(&self, container: &Container) -> Result<String, ImageError> {
        let image = container
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ImageError::InvalidName(container.name.clone()))?;
        let spec = ImageSpec {
            image: image.clone(),
            ..Default::default()
        };
        let policy = container
            .image_pull_policy
            .as_deref()
            .unwrap_or("IfNotPresent");
        if policy != "Always" {
            let status = self
                .cri
                .image
                .clone()
                .image_status(ImageStatusRequest {
                    image: Some(spec.clone()),
                    verbose: false,
                })
                .await
                .map_err(|e| ImageError::Inspect {
                    image: image.clone(),
                    message: e.message().to_string(),
                })?
                .into_inner();
            if let Some(found) = status.image {
                return Ok(found.id);
            }
            if policy == "Never" {
                return Err(ImageError::NeverPull(image));
            }
        }
        let pulled = self
            .cri
            .image
            .clone()
            .pull_image(PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: None,
            })
            .await
            .map_err(|e| ImageError::Pull {
                image: image.clone(),
                message: e.message().to_string(),
            })?
            .into_inner();
        Ok(pulled.image_ref)
    }
}

//! Image manager: makes a container's image present according to its imagePullPolicy,
//! with upstream's waiting reasons, events and pull back-off (per pod and image: 10 s
//! doubling to 300 s; while backing off the container waits with `ImagePullBackOff`).
//! No registry is reachable here, so in practice images are imported ahead of time
//! (hack/build-images.sh) and a pull only succeeds for runtimes that can reach one.
//!
//! [`gc`] removes unused images when the image filesystem fills up.

pub mod backoff;
pub mod gc;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use cri::api::{ImageSpec, ImageStatusRequest, PullImageRequest};
use cri::Cri;
use k8s_openapi::api::core::v1::Container;

pub use backoff::Backoff;
pub use gc::{ImageGcManager, ImageGcPolicy};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("Container image \"{0}\" is not present with pull policy of Never")]
    NeverPull(String),
    #[error("Failed to pull image \"{image}\": {message}")]
    Pull { image: String, message: String },
    #[error("Back-off pulling image \"{0}\"")]
    BackOff(String),
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
            ImageError::BackOff(_) => "ImagePullBackOff",
            ImageError::Inspect { .. } => "ImageInspectError",
            ImageError::InvalidName(_) => "InvalidImageName",
        }
    }

    /// The container's `state.waiting.message`: for a failed pull the runtime's error
    /// itself (upstream passes the CRI error through), otherwise the event's text.
    pub fn waiting_message(&self) -> String {
        match self {
            ImageError::Pull { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The event upstream records on the pod for this error.
    pub fn event(&self) -> ImageEvent {
        let (type_, reason) = match self {
            ImageError::NeverPull(_) => (EventType::Warning, "ErrImageNeverPull"),
            ImageError::Pull { .. } => (EventType::Warning, "Failed"),
            ImageError::BackOff(_) => (EventType::Normal, "BackOff"),
            ImageError::Inspect { .. } => (EventType::Warning, "InspectFailed"),
            ImageError::InvalidName(_) => (EventType::Warning, "InspectFailed"),
        };
        ImageEvent {
            type_,
            reason,
            message: self.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// An event for the pod (involved object: the container's field path), as upstream's
/// image manager records them: Pulling, Pulled, Failed, BackOff, ErrImageNeverPull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageEvent {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

impl ImageEvent {
    fn normal(reason: &'static str, message: String) -> Self {
        ImageEvent {
            type_: EventType::Normal,
            reason,
            message,
        }
    }
}

/// Upstream's applyDefaultImageTag: an image without tag or digest means `:latest`.
pub fn with_default_tag(image: &str) -> String {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || name.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The pull policy the API server defaults when a container has none: `Always` for
/// `:latest` (or untagged) images, else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    if with_default_tag(image).ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

#[derive(Clone)]
pub struct ImageManager {
    cri: Cri,
    backoff: Arc<Mutex<Backoff>>,
    /// serializeImagePulls (upstream's default): one pull at a time.
    pull_lock: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl ImageManager {
    /// Serialized pulls, upstream's back-off.
    pub fn new(cri: Cri) -> Self {
        Self::with_backoff(cri, Backoff::kubelet_default())
    }

    pub fn with_backoff(cri: Cri, backoff: Backoff) -> Self {
        Self {
            cri,
            backoff: Arc::new(Mutex::new(backoff)),
            pull_lock: Some(Arc::new(tokio::sync::Mutex::new(()))),
        }
    }

    /// KubeletConfiguration's serializeImagePulls: false lets pulls run in parallel.
    pub fn serialize_pulls(mut self, serialize: bool) -> Self {
        self.pull_lock = serialize.then(|| Arc::new(tokio::sync::Mutex::new(())));
        self
    }

    /// Returns the image reference (the runtime's image id) to create the container from.
    /// Without back-off or events; see [`ImageManager::ensure_image`].
    pub async fn ensure(&self, container: &Container) -> Result<String, ImageError> {
        self.ensure_image("", container).await.0
    }

    /// Upstream's EnsureImageExists: the image reference to create the container from,
    /// and the events to record on the pod whatever the outcome. Pull failures back off
    /// per (pod, image): during the back-off the result is [`ImageError::BackOff`]
    /// without asking the runtime.
    pub async fn ensure_image(
        &self,
        pod_uid: &str,
        container: &Container,
    ) -> (Result<String, ImageError>, Vec<ImageEvent>) {
        let mut events = Vec::new();
        let result = self.ensure_inner(pod_uid, container, &mut events).await;
        if let Err(e) = &result {
            events.push(e.event());
        }
        (result, events)
    }

    async fn ensure_inner(
        &self,
        pod_uid: &str,
        container: &Container,
        events: &mut Vec<ImageEvent>,
    ) -> Result<String, ImageError> {
        let image = container
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ImageError::InvalidName(container.name.clone()))?;
        let spec = ImageSpec {
            image: with_default_tag(&image),
            ..Default::default()
        };
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_string());
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
                events.push(ImageEvent::normal(
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                ));
                return Ok(found.id);
            }
            if policy == "Never" {
                return Err(ImageError::NeverPull(image));
            }
        }

        let key = format!("{pod_uid}_{image}");
        if self.lock().is_in_backoff_since_update(&key, Instant::now()) {
            return Err(ImageError::BackOff(image));
        }
        events.push(ImageEvent::normal(
            "Pulling",
            format!("Pulling image \"{image}\""),
        ));
        let start = Instant::now();
        let _serialized = match &self.pull_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        let pull_start = Instant::now();
        let pulled = self
            .cri
            .image
            .clone()
            .pull_image(PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: None,
            })
            .await;
        drop(_serialized);
        match pulled {
            Ok(pulled) => {
                let took = pull_start.elapsed();
                {
                    let mut backoff = self.lock();
                    backoff.reset(&key);
                    backoff.gc(Instant::now());
                }
                let image_ref = pulled.into_inner().image_ref;
                let size = self.image_size(&image_ref).await;
                events.push(ImageEvent::normal(
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {size} bytes.",
                        go_duration(took),
                        go_duration(start.elapsed())
                    ),
                ));
                Ok(image_ref)
            }
            Err(e) => {
                self.lock().next(&key, Instant::now());
                Err(ImageError::Pull {
                    image,
                    message: e.message().to_string(),
                })
            }
        }
    }

    async fn image_size(&self, image_ref: &str) -> u64 {
        self.cri
            .image
            .clone()
            .image_status(ImageStatusRequest {
                image: Some(ImageSpec {
                    image: image_ref.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .ok()
            .and_then(|s| s.into_inner().image)
            .map(|i| i.size)
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Backoff> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.backoff.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Go's time.Duration formatting truncated to milliseconds ("1.234s", "250ms").
fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        let s = format!("{:.3}", d.as_secs_f64());
        format!("{}s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn default_tags_and_policies() {
        assert_eq!(with_default_tag("busybox"), "busybox:latest");
        assert_eq!(with_default_tag("busybox:1.35"), "busybox:1.35");
        assert_eq!(
            with_default_tag("localhost:5000/x"),
            "localhost:5000/x:latest"
        );
        assert_eq!(with_default_tag("x@sha256:abc"), "x@sha256:abc");
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.22"), "IfNotPresent");
    }

    #[test]
    fn errors_map_to_upstream_reasons_and_events() {
        let e = ImageError::BackOff("busybox:9".into());
        assert_eq!(e.reason(), "ImagePullBackOff");
        assert_eq!(e.waiting_message(), "Back-off pulling image \"busybox:9\"");
        assert_eq!(e.event().reason, "BackOff");
        assert_eq!(e.event().type_, EventType::Normal);
        let e = ImageError::Pull {
            image: "x:1".into(),
            message: "failed to resolve".into(),
        };
        assert_eq!(e.reason(), "ErrImagePull");
        assert_eq!(e.waiting_message(), "failed to resolve");
        assert_eq!(
            e.event().message,
            "Failed to pull image \"x:1\": failed to resolve"
        );
        assert_eq!(e.event().type_, EventType::Warning);
        let e = ImageError::NeverPull("x:1".into());
        assert_eq!(
            e.waiting_message(),
            "Container image \"x:1\" is not present with pull policy of Never"
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
    }
}

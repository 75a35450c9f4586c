//! Image garbage collection by disk usage, as upstream's realImageGCManager: when the
//! image filesystem (the runtime's ImageFsInfo mountpoint, measured with statvfs) is at
//! least `imageGCHighThresholdPercent` full, remove unused images, least recently used
//! first, until usage is back at `imageGCLowThresholdPercent`. Images younger than
//! `imageMinimumGCAge` (since this kubelet first saw them), images any container (running
//! or exited) uses, pinned images and the sandbox image are never removed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cri::api::{
    ImageFsInfoRequest, ImageSpec, ListContainersRequest, ListImagesRequest, RemoveImageRequest,
};
use cri::Cri;
use tokio_util::sync::CancellationToken;

use super::{EventType, ImageEvent};

/// Upstream's ImageGCPeriod.
pub const IMAGE_GC_PERIOD: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("container runtime: {0}")]
    Cri(#[from] tonic::Status),
    #[error("the runtime reports no image filesystem")]
    NoImageFs,
    #[error("statfs {mountpoint}: {source}")]
    Statfs {
        mountpoint: String,
        source: nix::Error,
    },
    #[error("Failed to garbage collect required amount of images. Attempted to free {attempted} bytes, but only found {freed} bytes eligible to free.")]
    NotEnoughFreed { attempted: u64, freed: u64 },
}

impl GcError {
    /// The Node event upstream records for a failed collection.
    pub fn event(&self) -> ImageEvent {
        let reason = match self {
            GcError::NotEnoughFreed { .. } => "FreeDiskSpaceFailed",
            _ => "ImageGCFailed",
        };
        ImageEvent {
            type_: EventType::Warning,
            reason,
            message: self.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ImageGcPolicy {
    /// Usage (percent of the image filesystem) at or above which GC runs; 100 disables.
    pub high_threshold_percent: u8,
    /// Usage GC frees down to.
    pub low_threshold_percent: u8,
    /// Images first seen less than this long ago are kept.
    pub min_age: Duration,
}

impl ImageGcPolicy {
    pub fn from_config(config: &crate::config::KubeletConfiguration) -> Self {
        ImageGcPolicy {
            high_threshold_percent: config.image_gc_high_threshold_percent,
            low_threshold_percent: config.image_gc_low_threshold_percent,
            min_age: config.image_minimum_gc_age,
        }
    }
}

impl Default for ImageGcPolicy {
    fn default() -> Self {
        ImageGcPolicy {
            high_threshold_percent: 85,
            low_threshold_percent: 80,
            min_age: Duration::from_secs(120),
        }
    }
}

/// The image filesystem's size and free space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStats {
    pub capacity: u64,
    pub available: u64,
}

/// Bytes to free for `stats` under `policy`, or None when usage is below the high
/// threshold (or GC is disabled).
pub fn bytes_to_free(stats: FsStats, policy: &ImageGcPolicy) -> Option<u64> {
    if policy.high_threshold_percent >= 100 || stats.capacity == 0 {
        return None;
    }
    let available = stats.available.min(stats.capacity);
    let usage_percent = 100 - (u128::from(available) * 100 / u128::from(stats.capacity)) as u64;
    if usage_percent < u64::from(policy.high_threshold_percent) {
        return None;
    }
    let target_available =
        u128::from(stats.capacity) * u128::from(100 - policy.low_threshold_percent.min(100)) / 100;
    let amount = target_available.saturating_sub(u128::from(available));
    (amount > 0).then_some(amount as u64)
}

#[derive(Debug, Clone)]
struct ImageRecord {
    first_detected: Instant,
    last_used: Instant,
    size: u64,
    pinned: bool,
    tags: Vec<String>,
}

/// Candidates in removal order: unused, unpinned, not the sandbox image, old enough;
/// least recently used first (then oldest first).
fn removal_order(
    records: &HashMap<String, ImageRecord>,
    in_use: &HashSet<String>,
    sandbox_image: &str,
    min_age: Duration,
    now: Instant,
) -> Vec<(String, u64)> {
    let mut candidates: Vec<(&String, &ImageRecord)> = records
        .iter()
        .filter(|(id, r)| {
            !in_use.contains(*id)
                && !r.pinned
                && !r.tags.iter().any(|t| t == sandbox_image)
                && now.saturating_duration_since(r.first_detected) >= min_age
        })
        .collect();
    candidates.sort_by(|a, b| {
        (a.1.last_used, a.1.first_detected, a.0).cmp(&(b.1.last_used, b.1.first_detected, b.0))
    });
    candidates
        .into_iter()
        .map(|(id, r)| (id.clone(), r.size))
        .collect()
}

#[derive(Clone)]
pub struct ImageGcManager {
    cri: Cri,
    policy: ImageGcPolicy,
    /// The CRI sandbox (pause) image, normalized (`registry.k8s.io/pause:3.10`).
    sandbox_image: String,
    records: Arc<Mutex<HashMap<String, ImageRecord>>>,
}

impl ImageGcManager {
    pub fn new(cri: Cri, policy: ImageGcPolicy, sandbox_image: impl Into<String>) -> Self {
        ImageGcManager {
            cri,
            policy,
            sandbox_image: sandbox_image.into(),
            records: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<String, ImageRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Capacity and free space of the runtime's image filesystem.
    pub async fn image_fs_stats(&self) -> Result<FsStats, GcError> {
        let info = self
            .cri
            .image
            .clone()
            .image_fs_info(ImageFsInfoRequest {})
            .await?
            .into_inner();
        let mountpoint = info
            .image_filesystems
            .first()
            .and_then(|fs| fs.fs_id.as_ref())
            .map(|id| id.mountpoint.clone())
            .ok_or(GcError::NoImageFs)?;
        statfs(Path::new(&mountpoint)).map_err(|source| GcError::Statfs { mountpoint, source })
    }

    /// Refreshes the records from the runtime; returns the ids of images in use by any
    /// container (running or not).
    pub async fn detect_images(&self, now: Instant) -> Result<HashSet<String>, GcError> {
        let images = self
            .cri
            .image
            .clone()
            .list_images(ListImagesRequest { filter: None })
            .await?
            .into_inner()
            .images;
        let containers = self
            .cri
            .runtime
            .clone()
            .list_containers(ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers;
        let mut in_use = HashSet::new();
        for c in containers {
            in_use.insert(c.image_ref.clone());
            if let Some(spec) = c.image {
                in_use.insert(spec.image);
            }
        }
        let mut records = self.records();
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        records.retain(|id, _| present.contains(id.as_str()));
        for image in &images {
            let used = in_use.contains(&image.id)
                || image.repo_tags.iter().any(|t| in_use.contains(t))
                || image.repo_digests.iter().any(|d| in_use.contains(d));
            let record = records.entry(image.id.clone()).or_insert(ImageRecord {
                first_detected: now,
                last_used: now,
                size: 0,
                pinned: false,
                tags: Vec::new(),
            });
            if used {
                record.last_used = now;
            }
            record.size = image.size;
            record.pinned = image.pinned;
            record.tags = image.repo_tags.clone();
        }
        let in_use_ids = images
            .iter()
            .filter(|i| {
                in_use.contains(&i.id)
                    || i.repo_tags.iter().any(|t| in_use.contains(t))
                    || i.repo_digests.iter().any(|d| in_use.contains(d))
            })
            .map(|i| i.id.clone())
            .collect();
        Ok(in_use_ids)
    }

    /// Removes eligible images until `bytes` are freed; returns the bytes freed.
    pub async fn free_space(&self, bytes: u64, now: Instant) -> Result<u64, GcError> {
        let in_use = self.detect_images(now).await?;
        let order = removal_order(
            &self.records(),
            &in_use,
            &self.sandbox_image,
            self.policy.min_age,
            now,
        );
        let mut freed = 0u64;
        for (id, size) in order {
            if freed >= bytes {
                break;
            }
            tracing::info!(image = %id, size, "image GC: removing unused image");
            let removed = self
                .cri
                .image
                .clone()
                .remove_image(RemoveImageRequest {
                    image: Some(ImageSpec {
                        image: id.clone(),
                        ..Default::default()
                    }),
                })
                .await;
            match removed {
                Ok(_) => {
                    self.records().remove(&id);
                    freed += size;
                }
                // One image failing (e.g. a container created meanwhile) must not stop
                // the collection.
                Err(e) => tracing::warn!(image = %id, "image GC: removing image: {}", e.message()),
            }
        }
        Ok(freed)
    }

    /// One collection: frees space if the image filesystem is above the high threshold.
    /// Returns the bytes freed.
    pub async fn garbage_collect(&self) -> Result<u64, GcError> {
        let now = Instant::now();
        let stats = self.image_fs_stats().await?;
        let Some(amount) = bytes_to_free(stats, &self.policy) else {
            // Keep the records current, so that ages and last use are right when needed.
            self.detect_images(now).await?;
            return Ok(0);
        };
        tracing::info!(
            capacity = stats.capacity,
            available = stats.available,
            amount,
            "image GC: image filesystem above the high threshold"
        );
        let freed = self.free_space(amount, now).await?;
        if freed < amount {
            return Err(GcError::NotEnoughFreed {
                attempted: amount,
                freed,
            });
        }
        Ok(freed)
    }

    /// Collects every `period` until `shutdown`; failures go to `on_failure` (the caller
    /// records them as Node events).
    pub async fn run(
        self,
        period: Duration,
        shutdown: CancellationToken,
        on_failure: impl Fn(ImageEvent) + Send,
    ) {
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.garbage_collect().await {
                tracing::warn!("image garbage collection failed: {e}");
                on_failure(e.event());
            }
        }
    }
}

/// The sandbox (pause) image the runtime uses, from the CRI's verbose Status (containerd
/// reports its CRI config under `info["config"]`, with `sandboxImage`). The kubelet keeps
/// it out of image GC without a flag of its own (upstream's --pod-infra-container-image
/// is deprecated for the same reason).
pub async fn runtime_sandbox_image(cri: &Cri) -> Option<String> {
    let status = cri
        .runtime
        .clone()
        .status(cri::api::StatusRequest { verbose: true })
        .await
        .ok()?
        .into_inner();
    let config: serde_json::Value = serde_json::from_str(status.info.get("config")?).ok()?;
    config["sandboxImage"].as_str().map(str::to_string)
}

fn statfs(path: &Path) -> Result<FsStats, nix::Error> {
    let s = nix::sys::statvfs::statvfs(path)?;
    let frsize = s.fragment_size();
    Ok(FsStats {
        capacity: s.blocks().saturating_mul(frsize),
        available: s.blocks_available().saturating_mul(frsize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(high: u8, low: u8) -> ImageGcPolicy {
        ImageGcPolicy {
            high_threshold_percent: high,
            low_threshold_percent: low,
            min_age: Duration::from_secs(120),
        }
    }

    #[test]
    fn thresholds() {
        let fs = |capacity, available| FsStats {
            capacity,
            available,
        };
        // 80% used, high 85: nothing to do.
        assert_eq!(bytes_to_free(fs(1000, 200), &policy(85, 80)), None);
        // 90% used: free down to 80% used (200 available).
        assert_eq!(bytes_to_free(fs(1000, 100), &policy(85, 80)), Some(100));
        // Exactly at the high threshold counts.
        assert_eq!(bytes_to_free(fs(1000, 150), &policy(85, 80)), Some(50));
        // 100 disables GC.
        assert_eq!(bytes_to_free(fs(1000, 0), &policy(100, 80)), None);
        // Low 0: everything used must go.
        assert_eq!(bytes_to_free(fs(1000, 400), &policy(0, 0)), Some(600));
        assert_eq!(bytes_to_free(fs(0, 0), &policy(85, 80)), None);
    }

    #[test]
    fn order_and_exclusions() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let rec = |first: u64, last: u64, size, pinned, tag: &str| ImageRecord {
            first_detected: t0 + s(first),
            last_used: t0 + s(last),
            size,
            pinned,
            tags: vec![tag.to_string()],
        };
        let records: HashMap<String, ImageRecord> = [
            ("old-lru".to_string(), rec(0, 10, 1, false, "a:1")),
            ("recent".to_string(), rec(0, 100, 2, false, "b:1")),
            ("older-lru".to_string(), rec(0, 5, 3, false, "c:1")),
            ("young".to_string(), rec(250, 250, 4, false, "d:1")),
            ("pinned".to_string(), rec(0, 0, 5, true, "e:1")),
            (
                "pause".to_string(),
                rec(0, 0, 6, false, "registry.k8s.io/pause:3.10"),
            ),
            ("used".to_string(), rec(0, 0, 7, false, "f:1")),
        ]
        .into_iter()
        .collect();
        let in_use: HashSet<String> = ["used".to_string()].into_iter().collect();
        let order = removal_order(
            &records,
            &in_use,
            "registry.k8s.io/pause:3.10",
            s(120),
            t0 + s(300),
        );
        assert_eq!(
            order,
            vec![
                ("older-lru".to_string(), 3),
                ("old-lru".to_string(), 1),
                ("recent".to_string(), 2)
            ]
        );
    }

    #[test]
    fn statfs_of_root() {
        let s = statfs(Path::new("/")).unwrap();
        assert!(s.capacity > 0 && s.available <= s.capacity);
    }
}

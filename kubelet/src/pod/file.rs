//! Static pods from the manifest directory (staticPodPath): every file a Pod in YAML or
//! JSON, re-read when the directory changes (checked every second) and every
//! fileCheckFrequency. As upstream's file source: the pod's name gets `-<nodeName>`, its
//! UID is a hash of the manifest, the node name and the file, and it is annotated with
//! its source, hash and first-seen time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Pod, Toleration};
use sha2::{Digest, Sha256};

use super::{PodManager, CONFIG_HASH_ANNOTATION, CONFIG_SEEN_ANNOTATION, CONFIG_SOURCE_ANNOTATION};

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {message}")]
    Decode { path: PathBuf, message: String },
    #[error("{path}: kind must be Pod and apiVersion v1")]
    NotAPod { path: PathBuf },
}

/// Decodes one manifest and applies the static pod rules.
pub fn static_pod(path: &Path, text: &str, node_name: &str) -> Result<Pod, ManifestError> {
    let decode_err = |message: String| ManifestError::Decode {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| decode_err(e.to_string()))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| decode_err(e.to_string()))?
    };
    if value.get("kind").and_then(|k| k.as_str()) != Some("Pod")
        || value.get("apiVersion").and_then(|k| k.as_str()) != Some("v1")
    {
        return Err(ManifestError::NotAPod {
            path: path.to_path_buf(),
        });
    }
    let mut pod: Pod = serde_json::from_value(value).map_err(|e| decode_err(e.to_string()))?;
    let mut hasher = Sha256::new();
    hasher.update(text.as_bytes());
    hasher.update(node_name.as_bytes());
    hasher.update(path.to_string_lossy().as_bytes());
    let digest = hasher.finalize();
    let uid: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(decode_err("metadata.name is required".into()));
    }
    pod.metadata.name = Some(format!("{name}-{node_name}"));
    if pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
    {
        pod.metadata.namespace = Some("default".into());
    }
    pod.metadata.uid = Some(uid.clone());
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(CONFIG_HASH_ANNOTATION.into(), uid);
    annotations.insert(CONFIG_SOURCE_ANNOTATION.into(), "file".into());
    annotations.insert(
        CONFIG_SEEN_ANNOTATION.into(),
        jiff::Timestamp::now().to_string(),
    );
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node_name.to_string());
    // Static pods tolerate every NoExecute taint, as upstream.
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    Ok(pod)
}

fn listing(dir: &Path) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file().then(|| {
                        (
                            e.path(),
                            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                            m.len(),
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

pub fn read_dir(dir: &Path, node_name: &str) -> Vec<Pod> {
    let mut pods = Vec::new();
    for (path, _, _) in listing(dir) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match static_pod(&path, &text, node_name) {
            Ok(p) => pods.push(p),
            Err(e) => tracing::warn!(error = %e, "skipping static pod manifest"),
        }
    }
    pods
}

pub async fn run(mgr: Arc<PodManager>) {
    let Some(dir) = mgr.ctx.config.static_pod_path.clone() else {
        return;
    };
    let full_every = mgr
        .ctx
        .config
        .file_check_frequency
        .max(Duration::from_secs(1));
    let mut last_listing = None;
    let mut last_full = Instant::now();
    let mut first = true;
    loop {
        let now_listing = listing(&dir);
        if first || last_listing.as_ref() != Some(&now_listing) || last_full.elapsed() >= full_every
        {
            mgr.replace_static_pods(read_dir(&dir, &mgr.ctx.node_name));
            last_listing = Some(now_listing);
            last_full = Instant::now();
            first = false;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = mgr.ctx.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_pod_rules() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
        let p = static_pod(Path::new("/m/web.yaml"), yaml, "node-1").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("web-node-1"));
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        let uid = p.metadata.uid.clone().unwrap();
        assert_eq!(uid.len(), 32);
        let a = p.metadata.annotations.clone().unwrap();
        assert_eq!(a[CONFIG_SOURCE_ANNOTATION], "file");
        assert_eq!(a[CONFIG_HASH_ANNOTATION], uid);
        assert_eq!(
            p.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        // Same content: same uid; changed content or other node: another one.
        let again = static_pod(Path::new("/m/web.yaml"), yaml, "node-1").unwrap();
        assert_eq!(again.metadata.uid.unwrap(), uid);
        let other = static_pod(
            Path::new("/m/web.yaml"),
            &yaml.replace("busybox", "busybox:1.35"),
            "node-1",
        )
        .unwrap();
        assert_ne!(other.metadata.uid.unwrap(), uid);
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},"spec":{"containers":[]}}"#;
        let p = static_pod(Path::new("/m/j.json"), json, "n").unwrap();
        assert_eq!(p.metadata.namespace.as_deref(), Some("kube-system"));
        assert!(static_pod(Path::new("/m/x"), "apiVersion: v1\nkind: Service\n", "n").is_err());
    }
}

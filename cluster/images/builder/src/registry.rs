//! A pull-only OCI distribution registry on loopback serving the image archives of a
//! directory, so that containerd can really pull (imagePullPolicy Always, `:latest`
//! images) without any network: containerd's `hosts.toml` for docker.io and
//! registry.k8s.io points at it ([`hosts_toml`]).
//!
//! Repositories are the image names without their registry host
//! (`docker.io/library/busybox:1.35` → `library/busybox`, tag `1.35`;
//! `registry.k8s.io/pause:3.10` → `pause`), as containerd asks for them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::Error;

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

#[derive(Default)]
struct Store {
    /// (repository, tag) → manifest digest.
    tags: HashMap<(String, String), String>,
    /// digest → content.
    blobs: HashMap<String, Bytes>,
}

/// The registry's content: every `*.tar` OCI archive of a directory.
#[derive(Clone)]
pub struct Registry {
    dir: PathBuf,
    store: Arc<RwLock<Store>>,
    /// "METHOD path" of every request, for tests and logs.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Splits a full reference into (repository without the registry host, tag).
fn repository_and_tag(name: &str) -> Option<(String, String)> {
    let (reference, tag) = crate::split_reference(name).ok()?;
    let (_, repository) = reference.split_once('/')?;
    Some((repository.to_string(), tag.to_string()))
}

impl Registry {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let r = Registry {
            dir: dir.into(),
            store: Arc::default(),
            requests: Arc::default(),
        };
        r.rescan()?;
        Ok(r)
    }

    /// Loads every archive of the directory (again).
    pub fn rescan(&self) -> Result<(), Error> {
        let mut store = Store::default();
        let entries = std::fs::read_dir(&self.dir).map_err(crate::io_err(&self.dir))?;
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.ends_with(".tar") && !name.starts_with('.') {
                load_archive(&path, &mut store)?;
            }
        }
        *self.store.write().unwrap_or_else(|p| p.into_inner()) = store;
        Ok(())
    }

    /// The (repository, tag) pairs served.
    pub fn tags(&self) -> Vec<(String, String)> {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        let mut tags: Vec<_> = store.tags.keys().cloned().collect();
        tags.sort();
        tags
    }

    fn lookup_manifest(&self, repository: &str, reference: &str) -> Option<(String, Bytes)> {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        let digest = if reference.starts_with("sha256:") {
            reference.to_string()
        } else {
            store
                .tags
                .get(&(repository.to_string(), reference.to_string()))?
                .clone()
        };
        store.blobs.get(&digest).map(|b| (digest, b.clone()))
    }

    fn lookup_blob(&self, digest: &str) -> Option<Bytes> {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        store.blobs.get(digest).cloned()
    }

    /// The requests served so far ("GET /v2/library/busybox/manifests/1.35").
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{method} {path}"));
        let not_found = || {
            let mut r = Response::new(Full::new(Bytes::from_static(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"not found"}]}"#,
            )));
            *r.status_mut() = StatusCode::NOT_FOUND;
            r
        };
        if method != Method::GET && method != Method::HEAD {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return r;
        }
        let content = |body: Bytes, content_type: &str, digest: Option<&str>| {
            let len = body.len();
            let body = if method == Method::HEAD {
                Bytes::new()
            } else {
                body
            };
            let mut builder = Response::builder()
                .header("content-type", content_type)
                .header("content-length", len)
                .header("docker-distribution-api-version", "registry/2.0");
            if let Some(d) = digest {
                builder = builder.header("docker-content-digest", d);
            }
            builder
                .body(Full::new(body))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        };
        let Some(rest) = path.strip_prefix("/v2/") else {
            return not_found();
        };
        if rest.is_empty() {
            return content(Bytes::from_static(b"{}"), "application/json", None);
        }
        if let Some((repository, reference)) = rest.rsplit_once("/manifests/") {
            if self.lookup_manifest(repository, reference).is_none() {
                // An archive written since the last scan (e.g. nginx built on demand).
                let _ = self.rescan();
            }
            return match self.lookup_manifest(repository, reference) {
                Some((digest, body)) => content(body, MANIFEST_TYPE, Some(&digest)),
                None => not_found(),
            };
        }
        if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
            return match self.lookup_blob(digest) {
                Some(body) => content(body, "application/octet-stream", Some(digest)),
                None => not_found(),
            };
        }
        not_found()
    }

    /// Serves on `listener` until the task is dropped.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = self.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let response = registry.respond(req.method(), req.uri().path());
                        async move { Ok::<_, Infallible>(response) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Binds `addr` and serves in the background of the current tokio runtime.
    pub async fn spawn(self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(crate::io_err(format!("bind {addr}")))?;
        let local = listener
            .local_addr()
            .map_err(crate::io_err(format!("bind {addr}")))?;
        tokio::spawn(self.serve(listener));
        Ok(local)
    }
}

fn load_archive(path: &Path, store: &mut Store) -> Result<(), Error> {
    let file = std::fs::File::open(path).map_err(crate::io_err(path))?;
    let mut archive = tar::Archive::new(file);
    let mut index = None;
    for entry in archive.entries().map_err(crate::io_err(path))? {
        let mut entry = entry.map_err(crate::io_err(path))?;
        let name = entry
            .path()
            .map_err(crate::io_err(path))?
            .to_string_lossy()
            .to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(crate::io_err(path))?;
        if name == "index.json" {
            index = Some(data);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            if !hex.is_empty() {
                store
                    .blobs
                    .insert(format!("sha256:{hex}"), Bytes::from(data));
            }
        }
    }
    let index: serde_json::Value = index
        .and_then(|i| serde_json::from_slice(&i).ok())
        .unwrap_or_default();
    for m in index["manifests"].as_array().into_iter().flatten() {
        let (Some(digest), Some(name)) = (
            m["digest"].as_str(),
            m["annotations"]["io.containerd.image.name"].as_str(),
        ) else {
            continue;
        };
        if let Some(key) = repository_and_tag(name) {
            store.tags.insert(key, digest.to_string());
        }
    }
    Ok(())
}

/// containerd `hosts.toml` (registry `config_path` layout: `<dir>/<host>/hosts.toml`)
/// sending every pull of `host` to the local registry at `addr`, and nowhere else.
pub fn hosts_toml(addr: SocketAddr) -> String {
    format!(
        "server = \"http://{addr}\"\n\n[host.\"http://{addr}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// The registries whose images we build: the hosts to point at the local registry.
pub const REGISTRY_HOSTS: &[&str] = &["docker.io", "registry.k8s.io"];

/// Writes `<config_path>/<host>/hosts.toml` for each of [`REGISTRY_HOSTS`].
pub fn write_hosts(config_path: &Path, addr: SocketAddr) -> Result<(), Error> {
    for host in REGISTRY_HOSTS {
        let dir = config_path.join(host);
        std::fs::create_dir_all(&dir).map_err(crate::io_err(&dir))?;
        let file = dir.join("hosts.toml");
        std::fs::write(&file, hosts_toml(addr)).map_err(crate::io_err(&file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories() {
        assert_eq!(
            repository_and_tag("docker.io/library/busybox:1.35"),
            Some(("library/busybox".into(), "1.35".into()))
        );
        assert_eq!(
            repository_and_tag("registry.k8s.io/pause:3.10"),
            Some(("pause".into(), "3.10".into()))
        );
    }

    #[tokio::test]
    async fn serves_manifests_and_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let mut image =
            crate::Image::new(["docker.io/library/t:1", "docker.io/library/t:latest"]).unwrap();
        image.file("/hello", "hi", 0o644).unwrap();
        let config_digest = image.write_archive(&dir.path().join("t.tar")).unwrap();
        let registry = Registry::new(dir.path()).unwrap();
        assert_eq!(
            registry.tags(),
            vec![
                ("library/t".to_string(), "1".to_string()),
                ("library/t".to_string(), "latest".to_string())
            ]
        );
        let r = registry.respond(&Method::GET, "/v2/");
        assert_eq!(r.status(), StatusCode::OK);
        let r = registry.respond(&Method::HEAD, "/v2/library/t/manifests/latest");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], MANIFEST_TYPE);
        let digest = r.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_string();
        let r = registry.respond(&Method::GET, &format!("/v2/library/t/manifests/{digest}"));
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(crate::digest(&body), digest);
        let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(manifest["config"]["digest"], config_digest.as_str());
        let r = registry.respond(
            &Method::GET,
            &format!("/v2/library/t/blobs/{config_digest}"),
        );
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            registry
                .respond(&Method::GET, "/v2/library/t/manifests/2")
                .status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            registry
                .respond(&Method::GET, "/v2/library/other/manifests/1")
                .status(),
            StatusCode::NOT_FOUND
        );
        assert!(hosts_toml("127.0.0.1:5000".parse().unwrap())
            .starts_with("server = \"http://127.0.0.1:5000\""));
    }
}

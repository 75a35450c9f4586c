//! OCI image archives without a registry.
//!
//! An [`Image`] is a rootfs description (directories, files, symlinks, binaries with the
//! shared libraries `ldd` lists) plus the runtime config (Entrypoint, Cmd, Env,
//! WorkingDir). [`Image::write_archive`] packs it as an OCI image layout in a tar file
//! (`oci-layout`, `index.json`, `blobs/sha256/{layer,config,manifest}`) that
//! `ctr -n k8s.io images import FILE` loads under each of the image's names.
//!
//! Layers are uncompressed tars with fixed timestamps and owners, so the same input gives
//! the same digests (an unchanged image keeps its image id across rebuilds).

pub mod registry;
pub mod standard;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("image path {0:?} must be absolute and normal (no `..`)")]
    BadPath(String),
    #[error(
        "image reference {0:?} must be a full name with a tag, e.g. docker.io/library/busybox:1.35"
    )]
    BadReference(String),
    #[error("running {command}: {message}")]
    Command { command: String, message: String },
}

fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// One rootfs entry.
#[derive(Clone, Debug, PartialEq)]
enum Entry {
    Dir { mode: u32 },
    File { data: Vec<u8>, mode: u32 },
    Symlink { target: String },
}

/// An image: rootfs plus runtime config, under one or more full references.
#[derive(Clone, Debug, Default)]
pub struct Image {
    names: Vec<String>,
    entries: BTreeMap<PathBuf, Entry>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub exposed_ports: Vec<String>,
}

/// The PATH Docker's official images set.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Splits `registry/repo:tag` into (reference without tag, tag).
pub fn split_reference(reference: &str) -> Result<(&str, &str), Error> {
    let slash = reference.rfind('/').unwrap_or(0);
    match reference.rfind(':') {
        Some(colon) if colon > slash && reference[..slash].contains('.') => {
            Ok((&reference[..colon], &reference[colon + 1..]))
        }
        _ => Err(Error::BadReference(reference.to_string())),
    }
}

fn normalize(path: &str) -> Result<PathBuf, Error> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(Error::BadPath(path.to_string()));
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::BadPath(path.to_string()))
            }
        }
    }
    Ok(out)
}

impl Image {
    /// `names`: full references with tags (`registry.k8s.io/pause:3.10`).
    pub fn new<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Result<Self, Error> {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        for n in &names {
            split_reference(n)?;
        }
        if names.is_empty() {
            return Err(Error::BadReference(String::new()));
        }
        Ok(Image {
            names,
            env: vec![DEFAULT_PATH.to_string()],
            ..Default::default()
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn parents(&mut self, path: &Path) {
        let mut p = path.parent();
        while let Some(dir) = p {
            if dir.as_os_str().is_empty() {
                break;
            }
            self.entries
                .entry(dir.to_path_buf())
                .or_insert(Entry::Dir { mode: 0o755 });
            p = dir.parent();
        }
    }

    fn insert(&mut self, path: &str, entry: Entry) -> Result<&mut Self, Error> {
        let p = normalize(path)?;
        if p.as_os_str().is_empty() {
            return Err(Error::BadPath(path.to_string()));
        }
        self.parents(&p);
        self.entries.insert(p, entry);
        Ok(self)
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> Result<&mut Self, Error> {
        self.insert(path, Entry::Dir { mode })
    }

    pub fn file(
        &mut self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: u32,
    ) -> Result<&mut Self, Error> {
        self.insert(
            path,
            Entry::File {
                data: data.into(),
                mode,
            },
        )
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<&mut Self, Error> {
        self.insert(
            path,
            Entry::Symlink {
                target: target.to_string(),
            },
        )
    }

    /// Copies a host file (following symlinks) with its permission bits.
    pub fn host_file(&mut self, src: impl AsRef<Path>, dst: &str) -> Result<&mut Self, Error> {
        use std::os::unix::fs::PermissionsExt;
        let src = src.as_ref();
        let data = std::fs::read(src).map_err(io_err(src))?;
        let mode = std::fs::metadata(src)
            .map_err(io_err(src))?
            .permissions()
            .mode()
            & 0o7777;
        self.file(dst, data, mode)
    }

    /// Copies a host binary plus every shared library `ldd` lists for it (and the dynamic
    /// loader), each at its host path, so a glibc-linked binary runs in the image.
    pub fn host_binary(&mut self, src: impl AsRef<Path>, dst: &str) -> Result<&mut Self, Error> {
        let src = src.as_ref();
        self.host_file(src, dst)?;
        for lib in shared_libraries(src)? {
            let path = lib.to_string_lossy().to_string();
            if !self.entries.contains_key(&normalize(&path)?) {
                self.host_file(&lib, &path)?;
            }
        }
        Ok(self)
    }

    /// Copies a host directory tree (files, directories, symlinks as they are) to `dst`.
    pub fn host_tree(&mut self, src: impl AsRef<Path>, dst: &str) -> Result<&mut Self, Error> {
        use std::os::unix::fs::PermissionsExt;
        let src = src.as_ref();
        let meta = std::fs::symlink_metadata(src).map_err(io_err(src))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(src).map_err(io_err(src))?;
            return self.symlink(dst, &target.to_string_lossy());
        }
        if meta.is_dir() {
            self.dir(dst, meta.permissions().mode() & 0o7777)?;
            let mut children: Vec<_> = std::fs::read_dir(src)
                .map_err(io_err(src))?
                .collect::<Result<_, _>>()
                .map_err(io_err(src))?;
            children.sort_by_key(|e| e.file_name());
            for child in children {
                let name = child.file_name().to_string_lossy().to_string();
                let dst = format!("{}/{}", dst.trim_end_matches('/'), name);
                self.host_tree(child.path(), &dst)?;
            }
            return Ok(self);
        }
        self.host_file(src, dst)
    }

    /// The layer: an uncompressed tar of the rootfs, parents before children.
    pub fn layer(&self) -> Result<Vec<u8>, Error> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            let tar_err = io_err(path.clone());
            match entry {
                Entry::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder
                        .append_data(&mut header, path, std::io::empty())
                        .map_err(tar_err)?;
                }
                Entry::File { data, mode } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                    builder
                        .append_data(&mut header, path, data.as_slice())
                        .map_err(tar_err)?;
                }
                Entry::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, target)
                        .map_err(tar_err)?;
                }
            }
        }
        builder.into_inner().map_err(io_err("layer"))
    }

    fn config_json(&self, layer_digest: &str) -> serde_json::Value {
        let mut config = serde_json::Map::new();
        if !self.user.is_empty() {
            config.insert("User".into(), json!(self.user));
        }
        if !self.exposed_ports.is_empty() {
            let ports: serde_json::Map<_, _> = self
                .exposed_ports
                .iter()
                .map(|p| (p.clone(), json!({})))
                .collect();
            config.insert("ExposedPorts".into(), ports.into());
        }
        config.insert("Env".into(), json!(self.env));
        if !self.entrypoint.is_empty() {
            config.insert("Entrypoint".into(), json!(self.entrypoint));
        }
        if !self.cmd.is_empty() {
            config.insert("Cmd".into(), json!(self.cmd));
        }
        if !self.working_dir.is_empty() {
            config.insert("WorkingDir".into(), json!(self.working_dir));
        }
        json!({
            "created": "1970-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "image-builder"}],
        })
    }

    /// Writes the OCI archive to `out` (atomically: a temporary file renamed into place,
    /// so concurrent builders and importers never see half an archive). Returns the image
    /// id (the config's digest), which is what the CRI reports as the image's id.
    pub fn write_archive(&self, out: &Path) -> Result<String, Error> {
        let layer = self.layer()?;
        let layer_digest = digest(&layer);
        let config =
            serde_json::to_vec(&self.config_json(&layer_digest)).map_err(|e| Error::Io {
                path: out.into(),
                source: e.into(),
            })?;
        let config_digest = digest(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer.len(),
            }],
        }))
        .map_err(|e| Error::Io {
            path: out.into(),
            source: e.into(),
        })?;
        let manifest_digest = digest(&manifest);
        let mut manifests = Vec::new();
        for name in &self.names {
            let (_, tag) = split_reference(name)?;
            manifests.push(json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest.len(),
                "platform": {"architecture": "amd64", "os": "linux"},
                // containerd names the image by io.containerd.image.name; the OCI
                // annotation holds the tag, as `docker save` writes it.
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }));
        }
        let index = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        }))
        .map_err(|e| Error::Io {
            path: out.into(),
            source: e.into(),
        })?;

        let dir = out.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            out.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id()
        ));
        let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
        let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        let files: [(String, &[u8]); 5] = [
            ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json".into(), &index),
            (blob(&manifest_digest), &manifest),
            (blob(&config_digest), &config),
            (blob(&layer_digest), &layer),
        ];
        for dir_name in ["blobs", "blobs/sha256"] {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_mtime(0);
            header.set_size(0);
            archive
                .append_data(&mut header, dir_name, std::io::empty())
                .map_err(io_err(&tmp))?;
        }
        for (name, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_size(data.len() as u64);
            archive
                .append_data(&mut header, name, data)
                .map_err(io_err(&tmp))?;
        }
        let mut w = archive.into_inner().map_err(io_err(&tmp))?;
        w.flush().map_err(io_err(&tmp))?;
        drop(w);
        std::fs::rename(&tmp, out).map_err(io_err(out))?;
        Ok(config_digest)
    }
}

pub fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The shared libraries (and the loader) `ldd` lists for a binary; none when it is static.
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| Error::Command {
            command: format!("ldd {}", binary.display()),
            message: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // "not a dynamic executable" (a static binary) exits non-zero.
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("not a dynamic executable") || text.contains("statically linked") {
            return Ok(Vec::new());
        }
        return Err(Error::Command {
            command: format!("ldd {}", binary.display()),
            message: stderr.trim().to_string(),
        });
    }
    if let Some(missing) = text.lines().find(|l| l.contains("not found")) {
        return Err(Error::Command {
            command: format!("ldd {}", binary.display()),
            message: format!("missing library: {}", missing.trim()),
        });
    }
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"; "linux-vdso.so.1 (0x...)" has no file.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    libs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            split_reference("registry.k8s.io/pause:3.10").unwrap(),
            ("registry.k8s.io/pause", "3.10")
        );
        assert_eq!(
            split_reference("docker.io/library/busybox:latest").unwrap(),
            ("docker.io/library/busybox", "latest")
        );
        assert!(split_reference("busybox:1.35").is_err());
        assert!(split_reference("docker.io/library/busybox").is_err());
        assert!(split_reference("localhost:5000/x").is_err());
    }

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }

    #[test]
    fn binaries_bring_their_libraries() {
        let mut image = Image::new(["registry.k8s.io/test:v1"]).unwrap();
        image
            .host_binary("/bin/true", "/usr/local/bin/true")
            .unwrap();
        let paths: Vec<String> = image
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File { .. }))
            .map(|(p, _)| p.to_string_lossy().to_string())
            .collect();
        assert!(paths.contains(&"usr/local/bin/true".to_string()));
        assert!(paths.iter().any(|p| p.ends_with("/libc.so.6")), "{paths:?}");
        assert!(paths.iter().any(|p| p.contains("ld-linux")), "{paths:?}");
        // A static binary needs nothing else.
        assert_eq!(
            shared_libraries(Path::new("/bin/busybox")).unwrap(),
            Vec::<PathBuf>::new()
        );
    }

    #[test]
    fn archive_layout_and_reproducibility() {
        let dir = tempfile::tempdir().unwrap();
        let mut image =
            Image::new(["docker.io/library/test:1", "docker.io/library/test:latest"]).unwrap();
        image
            .file("/bin/hello", "#!/bin/sh\necho hi\n", 0o755)
            .unwrap();
        image.symlink("/usr/bin/hi", "/bin/hello").unwrap();
        image.dir("/tmp", 0o1777).unwrap();
        image.cmd = vec!["hello".into()];
        image.working_dir = "/tmp".into();
        assert!(image.file("relative", "", 0o644).is_err());
        assert!(image.file("/a/../b", "", 0o644).is_err());

        let a = dir.path().join("a.tar");
        let b = dir.path().join("b.tar");
        let id = image.write_archive(&a).unwrap();
        assert_eq!(image.write_archive(&b).unwrap(), id);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

        let mut blobs = BTreeMap::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&a).unwrap());
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            blobs.insert(name, data);
        }
        let layout: serde_json::Value = serde_json::from_slice(&blobs["oci-layout"]).unwrap();
        assert_eq!(layout["imageLayoutVersion"], "1.0.0");
        let index: serde_json::Value = serde_json::from_slice(&blobs["index.json"]).unwrap();
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            manifests[1]["annotations"]["io.containerd.image.name"],
            "docker.io/library/test:latest"
        );
        assert_eq!(
            manifests[1]["annotations"]["org.opencontainers.image.ref.name"],
            "latest"
        );
        let blob = |d: &serde_json::Value| {
            let d = d.as_str().unwrap();
            let data = &blobs[&format!("blobs/sha256/{}", d.trim_start_matches("sha256:"))];
            assert_eq!(digest(data), d, "blob content matches its digest");
            data.clone()
        };
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(&manifests[0]["digest"])).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
        assert_eq!(manifest["config"]["digest"], id.as_str());
        assert_eq!(config["config"]["Cmd"], json!(["hello"]));
        assert_eq!(config["config"]["WorkingDir"], "/tmp");
        assert_eq!(config["config"]["Env"], json!([DEFAULT_PATH]));
        let layer = blob(&manifest["layers"][0]["digest"]);
        assert_eq!(config["rootfs"]["diff_ids"][0], digest(&layer).as_str());

        let mut entries = Vec::new();
        let mut layer_tar = tar::Archive::new(layer.as_slice());
        for e in layer_tar.entries().unwrap() {
            let e = e.unwrap();
            entries.push((
                e.path().unwrap().to_string_lossy().to_string(),
                e.header().mode().unwrap(),
                e.header().entry_type(),
            ));
        }
        assert_eq!(
            entries,
            vec![
                ("bin".to_string(), 0o755, tar::EntryType::Directory),
                ("bin/hello".to_string(), 0o755, tar::EntryType::Regular),
                ("tmp".to_string(), 0o1777, tar::EntryType::Directory),
                ("usr".to_string(), 0o755, tar::EntryType::Directory),
                ("usr/bin".to_string(), 0o755, tar::EntryType::Directory),
                ("usr/bin/hi".to_string(), 0o777, tar::EntryType::Symlink),
            ]
        );
    }
}

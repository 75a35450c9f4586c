//! Upstream's AtomicWriter (`pkg/volume/util/atomic_writer.go`): the content of a
//! configMap, secret, downwardAPI or projected volume is replaced all at once, so a
//! container never sees half of an update.
//!
//! Layout of a target directory:
//! ```text
//! ..2026_11_25_09_10_11.123456789/   the current payload (a timestamped directory)
//! ..data -> ..2026_11_25_09_10_11.123456789
//! key1 -> ..data/key1                 one symlink per top-level payload entry
//! dir -> ..data/dir
//! ```
//! An update writes a new timestamped directory, points a temporary symlink `..data_tmp`
//! at it and renames that over `..data` (rename(2) is atomic), then adds the user-visible
//! symlinks of new entries, removes those of vanished entries and finally the old
//! directory. Containers bind-mount the target directory, so they resolve `key1` through
//! `..data` and see the new content at once.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";
/// Upstream's limits on one payload path and on each of its components.
const MAX_PATH_LEN: usize = 4096;
const MAX_COMPONENT_LEN: usize = 255;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
}

/// Relative path → file.
pub type Payload = BTreeMap<String, FileProjection>;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    InvalidPath(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Upstream's `validatePath`: relative, no `..` component, not starting with `..`, and
/// within the length limits.
pub fn validate_path(path: &str) -> Result<(), WriteError> {
    let invalid = |why: &str| {
        Err(WriteError::InvalidPath(format!(
            "invalid path {path:?}: {why}"
        )))
    };
    if path.is_empty() {
        return invalid("must not be empty");
    }
    if path.len() > MAX_PATH_LEN {
        return invalid(&format!(
            "must be less than or equal to {MAX_PATH_LEN} characters"
        ));
    }
    if Path::new(path).is_absolute() {
        return invalid("must be relative path");
    }
    if path.starts_with("..") {
        return invalid("must not start with '..'");
    }
    for component in path.split('/') {
        if component.len() > MAX_COMPONENT_LEN {
            return invalid(&format!(
                "each path segment must be less than or equal to {MAX_COMPONENT_LEN} characters"
            ));
        }
        if component == ".." {
            return invalid("must not contain '..'");
        }
    }
    Ok(())
}

/// The first component of a payload path: what gets a user-visible symlink.
fn top_level(path: &str) -> &str {
    path.split('/')
        .find(|c| !c.is_empty() && *c != ".")
        .unwrap_or(path)
}

/// Writes `payload` into `target` atomically (see the module docs). Returns whether
/// anything changed. Idempotent: an unchanged payload writes nothing.
pub fn write(target: &Path, payload: &Payload) -> Result<bool, WriteError> {
    write_owned(target, payload, None)
}

/// [`write`] for a pod with an `fsGroup`: the files and directories belong to that group
/// and are group-readable (directories setgid), as upstream's `SetVolumeOwnership` does
/// for read-only volumes.
pub fn write_owned(
    target: &Path,
    payload: &Payload,
    group: Option<u32>,
) -> Result<bool, WriteError> {
    let grouped;
    let payload = match group {
        Some(_) => {
            grouped = payload
                .iter()
                .map(|(k, f)| {
                    let mut f = f.clone();
                    f.mode |= 0o440;
                    (k.clone(), f)
                })
                .collect::<Payload>();
            &grouped
        }
        None => payload,
    };
    for path in payload.keys() {
        validate_path(path)?;
    }
    std::fs::create_dir_all(target).map_err(io(target))?;
    let data_link = target.join(DATA_DIR);
    let old_dir_name = std::fs::read_link(&data_link).ok();
    let old_payload = match &old_dir_name {
        Some(name) => read_payload(&target.join(name))?,
        None => Payload::new(),
    };
    let changed = old_dir_name.is_none() || old_payload != *payload;
    if changed {
        let new_dir = new_timestamped_dir(target)?;
        write_payload(&new_dir, payload)?;
        if let Some(gid) = group {
            set_group(&new_dir, gid)?;
        }
        let tmp_link = target.join(DATA_DIR_TMP);
        match std::fs::remove_file(&tmp_link) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&tmp_link)(e)),
            _ => {}
        }
        let new_name = new_dir
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| new_dir.clone());
        std::os::unix::fs::symlink(&new_name, &tmp_link).map_err(io(&tmp_link))?;
        std::fs::rename(&tmp_link, &data_link).map_err(io(&data_link))?;
    }
    // User-visible entries: created when missing (also after an unchanged payload, in case
    // an earlier write was interrupted between the swap and here).
    let new_top: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for name in &new_top {
        let link = target.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA_DIR).join(name), &link).map_err(io(&link))?;
        }
    }
    if changed {
        for old in old_payload.keys().map(|p| top_level(p)) {
            if !new_top.contains(old) {
                let link = target.join(old);
                match std::fs::remove_file(&link) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&link)(e)),
                    _ => {}
                }
            }
        }
        if let Some(old) = old_dir_name {
            let old = target.join(old);
            // Only ever remove a timestamped directory of ours, never through a stray link.
            if old.parent() == Some(target) && is_timestamped(&old) {
                std::fs::remove_dir_all(&old).map_err(io(&old))?;
            }
        }
    }
    Ok(changed)
}

fn is_timestamped(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("..") && n != DATA_DIR && n != DATA_DIR_TMP)
}

/// `..<UTC time as 2006_01_02_15_04_05>.<random digits>`, as upstream's MkdirTemp.
fn new_timestamped_dir(target: &Path) -> Result<PathBuf, WriteError> {
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.")
        .to_string();
    let mut attempt = 0u32;
    loop {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = target.join(format!("{stamp}{}", nanos.wrapping_add(attempt)));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(&dir))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(io(&dir)(e)),
        }
    }
}

fn write_payload(dir: &Path, payload: &Payload) -> Result<(), WriteError> {
    for (rel, file) in payload {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &file.data).map_err(io(&path))?;
        // Set after writing: the process umask must not narrow the requested mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode & 0o7777))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Gives a written payload directory to `gid`: group-owned, directories setgid and
/// group-searchable.
fn set_group(dir: &Path, gid: u32) -> Result<(), WriteError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        std::os::unix::fs::chown(&current, None, Some(gid)).map_err(io(&current))?;
        let meta = std::fs::symlink_metadata(&current).map_err(io(&current))?;
        if meta.is_dir() {
            let mode = meta.permissions().mode() | 0o2550;
            std::fs::set_permissions(&current, std::fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io(&current))?;
            for entry in std::fs::read_dir(&current).map_err(io(&current))? {
                stack.push(entry.map_err(io(&current))?.path());
            }
        }
    }
    Ok(())
}

/// The files under a timestamped directory, as a payload (to compare with a new one).
fn read_payload(dir: &Path) -> Result<Payload, WriteError> {
    let mut out = Payload::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Payload::new()),
            Err(e) => return Err(io(&current)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io(&current))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(io(&path))?;
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => s.to_str(),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("/");
            let data = std::fs::read(&path).map_err(io(&path))?;
            out.insert(
                rel,
                FileProjection {
                    data,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn file(data: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: data.as_bytes().to_vec(),
            mode,
        }
    }

    fn timestamped_dirs(target: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(target)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA_DIR)
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_upstream_layout_and_swaps_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vol");
        let mut payload = Payload::new();
        payload.insert("a".into(), file("one", 0o644));
        payload.insert("sub/b".into(), file("two", 0o400));
        assert!(write(&target, &payload).unwrap());

        let data = std::fs::read_link(target.join("..data")).unwrap();
        let name = data.to_str().unwrap();
        assert!(name.starts_with(".."), "{name}");
        // ..YYYY_MM_DD_HH_MM_SS.<digits>
        assert_eq!(name.as_bytes()[6], b'_', "{name}");
        assert_eq!(
            std::fs::read_link(target.join("a")).unwrap(),
            Path::new("..data/a")
        );
        assert_eq!(
            std::fs::read_link(target.join("sub")).unwrap(),
            Path::new("..data/sub")
        );
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "one");
        assert_eq!(
            std::fs::read_to_string(target.join("sub/b")).unwrap(),
            "two"
        );
        let mode = std::fs::metadata(target.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);

        // Unchanged: nothing written, same timestamped directory.
        assert!(!write(&target, &payload).unwrap());
        assert_eq!(std::fs::read_link(target.join("..data")).unwrap(), data);

        // Update: new content, "sub" gone, "c" new; the old directory removed.
        let mut next = Payload::new();
        next.insert("a".into(), file("uno", 0o644));
        next.insert("c".into(), file("three", 0o644));
        assert!(write(&target, &next).unwrap());
        assert_ne!(std::fs::read_link(target.join("..data")).unwrap(), data);
        assert_eq!(std::fs::read_to_string(target.join("a")).unwrap(), "uno");
        assert_eq!(std::fs::read_to_string(target.join("c")).unwrap(), "three");
        assert!(std::fs::symlink_metadata(target.join("sub")).is_err());
        assert_eq!(timestamped_dirs(&target).len(), 1);

        // A mode change alone is an update too.
        next.insert("c".into(), file("three", 0o600));
        assert!(write(&target, &next).unwrap());

        // Empty payload: only ..data and an empty timestamped directory remain.
        assert!(write(&target, &Payload::new()).unwrap());
        let names: Vec<_> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(".."))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_reader_holding_the_old_link_sees_a_whole_payload() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vol");
        let mut payload = Payload::new();
        payload.insert("k".into(), file("v1", 0o644));
        write(&target, &payload).unwrap();
        for i in 2..20 {
            payload.insert("k".into(), file(&format!("v{i}"), 0o644));
            write(&target, &payload).unwrap();
            assert_eq!(
                std::fs::read_to_string(target.join("k")).unwrap(),
                format!("v{i}")
            );
            assert_eq!(timestamped_dirs(&target).len(), 1);
        }
    }

    /// Needs root (chown to another group).
    #[test]
    fn fs_group_owns_the_payload() {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("vol");
        let mut payload = Payload::new();
        payload.insert("a/b".into(), file("x", 0o600));
        assert!(write_owned(&target, &payload, Some(4321)).unwrap());
        let meta = std::fs::metadata(target.join("a/b")).unwrap();
        assert_eq!(meta.gid(), 4321);
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        let dir_meta = std::fs::metadata(target.join("a")).unwrap();
        assert_eq!(dir_meta.gid(), 4321);
        assert_ne!(dir_meta.permissions().mode() & 0o2000, 0);
        // Stable: the group bits are part of what is compared.
        assert!(!write_owned(&target, &payload, Some(4321)).unwrap());
    }

    #[test]
    fn rejects_paths_like_upstream() {
        for bad in ["", "/abs", "../x", "..x", "a/../b", "a/.."] {
            assert!(validate_path(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_path(&"x".repeat(256)).is_err());
        for good in ["a", "a/b", "a..b", "a/.b", "x/y/z.txt"] {
            validate_path(good).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut payload = Payload::new();
        payload.insert("../escape".into(), file("x", 0o644));
        let err = write(dir.path(), &payload).unwrap_err().to_string();
        assert!(err.contains("must not start with '..'"), "{err}");
    }
}

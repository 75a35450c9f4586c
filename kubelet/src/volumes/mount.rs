//! Host mounts the volume manager makes itself: tmpfs for memory-backed emptyDirs and for
//! secret, downwardAPI and projected volumes (as upstream, whose plugins wrap a
//! `medium: Memory` emptyDir), and the disk usage walk behind emptyDir sizeLimit.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    mount_points_under(path).iter().any(|p| p == path)
}

/// Every mount point at or below `dir`, deepest first (the order to unmount them in).
pub fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("x");
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mounts a tmpfs of at most `size_bytes` on `dir` (created 0777 like an emptyDir) unless
/// one is there already.
pub fn mount_tmpfs(dir: &Path, size_bytes: Option<u64>) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut data = String::from("mode=0777");
    if let Some(size) = size_bytes.filter(|s| *s > 0) {
        data.push_str(&format!(",size={size}"));
    }
    rustix::mount::mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        std::ffi::CString::new(data)
            .map_err(|_| std::io::Error::other("NUL in mount options"))?
            .as_c_str(),
    )
    .map_err(std::io::Error::from)
}

/// Unmounts every mount at or below `dir` (deepest first).
pub fn unmount_all_under(dir: &Path) -> std::io::Result<()> {
    for point in mount_points_under(dir) {
        if let Err(e) = rustix::mount::unmount(&point, UnmountFlags::empty()) {
            tracing::warn!(path = %point.display(), error = %e, "unmount failed, detaching lazily");
            rustix::mount::unmount(&point, UnmountFlags::DETACH).map_err(std::io::Error::from)?;
        }
    }
    Ok(())
}

/// Disk usage of a directory tree in bytes (allocated blocks, as `du`), not crossing into
/// other file systems.
pub fn disk_usage(dir: &Path) -> u64 {
    let Ok(root) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    let device = root.dev();
    let mut total = root.blocks() * 512;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != device {
                continue;
            }
            total += meta.blocks() * 512;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\"), "/x\\");
    }

    #[test]
    fn usage_counts_blocks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), vec![1u8; 64 * 1024]).unwrap();
        assert!(disk_usage(dir.path()) >= 64 * 1024);
    }

    /// Needs CAP_SYS_ADMIN (the kubelet runs as root); skipped otherwise.
    #[test]
    fn tmpfs_mount_and_unmount() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("mem");
        match mount_tmpfs(&target, Some(1024 * 1024)) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return,
            r => r.unwrap(),
        }
        assert!(is_mount_point(&target));
        // Idempotent.
        mount_tmpfs(&target, Some(1024 * 1024)).unwrap();
        assert_eq!(mount_points_under(dir.path()).len(), 1);
        // The size limit holds.
        assert!(std::fs::write(target.join("big"), vec![0u8; 2 * 1024 * 1024]).is_err());
        unmount_all_under(dir.path()).unwrap();
        assert!(!is_mount_point(&target));
    }
}

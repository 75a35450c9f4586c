//! hostPath type checks, as upstream's `pkg/volume/hostpath` `checkType`: the
//! `...OrCreate` types create what is missing (a directory 0755 with its parents, an empty
//! file 0644), the others require the path to exist with that type; `""` checks nothing.

use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Checks (and for the `...OrCreate` types prepares) `path` for `path_type`. The error is
/// upstream's message.
pub fn check_type(path: &Path, path_type: &str) -> Result<(), String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).ok();
    let file_type = meta.as_ref().map(|m| m.file_type());
    match path_type {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => make_dir(path),
        "DirectoryOrCreate" | "Directory" => match file_type {
            Some(t) if t.is_dir() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            )),
        },
        "FileOrCreate" if meta.is_none() => make_file(path),
        "FileOrCreate" | "File" => match file_type {
            Some(t) if t.is_file() => Ok(()),
            _ => Err(format!("hostPath type check failed: {shown} is not a file")),
        },
        "Socket" => match file_type {
            Some(t) if t.is_socket() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a socket file"
            )),
        },
        "CharDevice" => match file_type {
            Some(t) if t.is_char_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a character device"
            )),
        },
        "BlockDevice" => match file_type {
            Some(t) if t.is_block_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a block device"
            )),
        },
        other => Err(format!("{other} is an invalid volume type")),
    }
}

fn make_dir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| e.to_string())
}

/// Upstream opens with O_CREATE only: the parent directory must exist.
fn make_file(path: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn types_as_upstream() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let file = d.join("file");
        std::fs::write(&file, "x").unwrap();
        let sock = d.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();

        // Unchecked.
        check_type(&d.join("missing"), "").unwrap();

        // Directory types.
        check_type(d, "Directory").unwrap();
        assert_eq!(
            check_type(&file, "Directory").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert!(check_type(&d.join("nope"), "Directory").is_err());
        let created = d.join("a/b/c");
        check_type(&created, "DirectoryOrCreate").unwrap();
        assert!(created.is_dir());
        let mode = std::fs::metadata(&created).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert!(check_type(&file, "DirectoryOrCreate").is_err());

        // File types.
        check_type(&file, "File").unwrap();
        assert_eq!(
            check_type(d, "File").unwrap_err(),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        let new_file = d.join("new");
        check_type(&new_file, "FileOrCreate").unwrap();
        assert!(new_file.is_file());
        assert!(check_type(d, "FileOrCreate").is_err());
        // No parent created for FileOrCreate, as upstream.
        assert!(check_type(&d.join("x/y"), "FileOrCreate").is_err());

        // Special files.
        check_type(&sock, "Socket").unwrap();
        assert_eq!(
            check_type(&file, "Socket").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a socket file",
                file.display()
            )
        );
        check_type(Path::new("/dev/null"), "CharDevice").unwrap();
        assert_eq!(
            check_type(&file, "CharDevice").unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a character device",
                file.display()
            )
        );
        assert_eq!(
            check_type(Path::new("/dev/null"), "BlockDevice").unwrap_err(),
            "hostPath type check failed: /dev/null is not a block device"
        );
        assert_eq!(
            check_type(d, "Weird").unwrap_err(),
            "Weird is an invalid volume type"
        );
    }
}

//! The images every cluster needs, built from what the host has (see
//! `cluster/images/README.md` for the naming scheme):
//! - `registry.k8s.io/pause:3.10`: our `pause` binary (the CRI sandbox image);
//! - `docker.io/library/busybox:1.35` and `:latest`: Debian's busybox-static with its
//!   applet links, `/etc/passwd`, `/etc/group` and `/tmp`.
//! - `docker.io/library/nginx:1.22`: Debian's nginx package, serving its default page.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Image};

pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:1.35";
pub const BUSYBOX_LATEST: &str = "docker.io/library/busybox:latest";
pub const NGINX_IMAGE: &str = "docker.io/library/nginx:1.22";
pub const NGINX_LATEST: &str = "docker.io/library/nginx:latest";

/// Archive file names in the images directory.
pub const PAUSE_ARCHIVE: &str = "pause-3.10.tar";
pub const BUSYBOX_ARCHIVE: &str = "busybox-1.35.tar";
pub const NGINX_ARCHIVE: &str = "nginx-1.22.tar";

/// Where Debian's busybox-static puts the binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

fn command_error(command: &str, message: impl ToString) -> Error {
    Error::Command {
        command: command.to_string(),
        message: message.to_string(),
    }
}

/// The images directory under a cargo target dir (`$CARGO_TARGET_DIR/images`).
pub fn images_dir(target_dir: &Path) -> PathBuf {
    target_dir.join("images")
}

pub fn pause(pause_binary: &Path) -> Result<Image, Error> {
    let mut image = Image::new([PAUSE_IMAGE])?;
    image.host_binary(pause_binary, "/pause")?;
    image.entrypoint = vec!["/pause".into()];
    // Upstream's pause image runs as 65535 (nobody): it needs no privileges.
    image.user = "65535:65535".into();
    image.env.clear();
    Ok(image)
}

pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n";
pub const GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

pub fn busybox(busybox_binary: &Path) -> Result<Image, Error> {
    let mut image = Image::new([BUSYBOX_IMAGE, BUSYBOX_LATEST])?;
    image.host_binary(busybox_binary, "/bin/busybox")?;
    let out = Command::new(busybox_binary)
        .arg("--list-full")
        .output()
        .map_err(|e| command_error("busybox --list-full", e))?;
    if !out.status.success() {
        return Err(command_error(
            "busybox --list-full",
            String::from_utf8_lossy(&out.stderr),
        ));
    }
    for applet in String::from_utf8_lossy(&out.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        image.symlink(&format!("/{applet}"), "/bin/busybox")?;
    }
    image.file("/etc/passwd", PASSWD, 0o644)?;
    image.file("/etc/group", GROUP, 0o644)?;
    image.dir("/tmp", 0o1777)?;
    image.dir("/root", 0o700)?;
    image.dir("/home", 0o755)?;
    image.dir("/var/www", 0o755)?;
    image.cmd = vec!["sh".into()];
    Ok(image)
}

/// nginx from Debian's packages, unpacked (never installed) into `work`: `apt-get
/// download` of nginx and its nginx-common config, `dpkg -x` each. The binary goes in
/// with the libraries `ldd` lists.
pub fn nginx(work: &Path) -> Result<Image, Error> {
    let root = work.join("root");
    std::fs::create_dir_all(&root).map_err(crate::io_err(&root))?;
    for package in ["nginx", "nginx-common"] {
        let existing = find_deb(work, package)?;
        let deb = match existing {
            Some(deb) => deb,
            None => {
                let download = || {
                    Command::new("apt-get")
                        .args(["download", "-qq", package])
                        .current_dir(work)
                        .status()
                        .map_err(|e| command_error("apt-get download", e))
                };
                let mut status = download()?;
                if !status.success() {
                    // A fresh machine may have no package lists yet.
                    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
                    status = download()?;
                }
                if !status.success() {
                    return Err(command_error(
                        &format!("apt-get download {package}"),
                        format!("{status} (run apt-get update first?)"),
                    ));
                }
                find_deb(work, package)?
                    .ok_or_else(|| command_error("apt-get download", "no .deb appeared"))?
            }
        };
        let status = Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .status()
            .map_err(|e| command_error("dpkg -x", e))?;
        if !status.success() {
            return Err(command_error("dpkg -x", status));
        }
    }

    let mut image = Image::new([NGINX_IMAGE, NGINX_LATEST])?;
    // Debian's binary is linked against the host's libraries; ldd on the extracted copy
    // resolves them from the host, which has the same Debian release.
    image.host_binary(root.join("usr/sbin/nginx"), "/usr/sbin/nginx")?;
    image.host_tree(root.join("etc/nginx"), "/etc/nginx")?;
    image.host_tree(root.join("usr/share/nginx"), "/usr/share/nginx")?;
    // What nginx-common's postinst would do: enable the default site.
    image.symlink(
        "/etc/nginx/sites-enabled/default",
        "/etc/nginx/sites-available/default",
    )?;
    // nginx resolves the `www-data` user of its config through NSS (files backend; built
    // into glibc since 2.34, a separate library before).
    if let Some(nss) = glibc_nss_files() {
        let path = nss.to_string_lossy().to_string();
        image.host_binary(&nss, &path)?;
    }
    image.file(
        "/etc/nsswitch.conf",
        "passwd: files\ngroup: files\nhosts: files dns\n",
        0o644,
    )?;
    image.file(
        "/etc/passwd",
        format!("{PASSWD}www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"),
        0o644,
    )?;
    image.file("/etc/group", format!("{GROUP}www-data:x:33:\n"), 0o644)?;
    image.dir("/var/www/html", 0o755)?;
    let index = root.join("usr/share/nginx/html/index.html");
    if index.exists() {
        image.host_file(&index, "/var/www/html/index.nginx-debian.html")?;
    }
    for dir in ["/var/log/nginx", "/var/lib/nginx", "/run", "/tmp"] {
        image.dir(dir, if dir == "/tmp" { 0o1777 } else { 0o755 })?;
    }
    // As the official image: logs to the container's stdout/stderr.
    image.symlink("/var/log/nginx/access.log", "/dev/stdout")?;
    image.symlink("/var/log/nginx/error.log", "/dev/stderr")?;
    image.entrypoint = Vec::new();
    image.cmd = vec!["nginx".into(), "-g".into(), "daemon off;".into()];
    image.exposed_ports = vec!["80/tcp".into()];
    Ok(image)
}

fn glibc_nss_files() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libnss_files.so.2",
        "/usr/lib/x86_64-linux-gnu/libnss_files.so.2",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>, Error> {
    let prefix = format!("{package}_");
    for e in std::fs::read_dir(dir).map_err(crate::io_err(dir))? {
        let e = e.map_err(crate::io_err(dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".deb") {
            return Ok(Some(e.path()));
        }
    }
    Ok(None)
}

/// Whether `archive` must be (re)built: missing, or older than one of its inputs.
fn stale(archive: &Path, inputs: &[&Path]) -> bool {
    let Ok(built) = std::fs::metadata(archive).and_then(|m| m.modified()) else {
        return true;
    };
    inputs.iter().any(|i| {
        std::fs::metadata(i)
            .and_then(|m| m.modified())
            .map(|t| t > built)
            .unwrap_or(false)
    })
}

/// Builds the pause and busybox archives into `dir` unless they are up to date, under an
/// exclusive lock on `dir/.lock` (test processes running in parallel share one build).
/// Returns the archive paths.
pub fn ensure(dir: &Path, pause_binary: &Path) -> Result<Vec<PathBuf>, Error> {
    std::fs::create_dir_all(dir).map_err(crate::io_err(dir))?;
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path).map_err(crate::io_err(&lock_path))?;
    lock.lock().map_err(crate::io_err(&lock_path))?;
    let pause_archive = dir.join(PAUSE_ARCHIVE);
    if stale(&pause_archive, &[pause_binary]) {
        pause(pause_binary)?.write_archive(&pause_archive)?;
    }
    let busybox_archive = dir.join(BUSYBOX_ARCHIVE);
    if stale(&busybox_archive, &[Path::new(HOST_BUSYBOX)]) {
        busybox(Path::new(HOST_BUSYBOX))?.write_archive(&busybox_archive)?;
    }
    Ok(vec![pause_archive, busybox_archive])
}

/// Builds the nginx archive into `dir` unless it exists (the .debs are kept in
/// `dir/nginx-work`, so only the first build needs the package registry). Locked like
/// [`ensure`].
pub fn ensure_nginx(dir: &Path) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(crate::io_err(dir))?;
    let lock_path = dir.join(".lock");
    let lock = File::create(&lock_path).map_err(crate::io_err(&lock_path))?;
    lock.lock().map_err(crate::io_err(&lock_path))?;
    let archive = dir.join(NGINX_ARCHIVE);
    if !archive.exists() {
        let work = dir.join("nginx-work");
        std::fs::create_dir_all(&work).map_err(crate::io_err(&work))?;
        nginx(&work)?.write_archive(&archive)?;
    }
    Ok(archive)
}

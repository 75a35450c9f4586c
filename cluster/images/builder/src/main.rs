//! `image-builder`: writes the cluster's standard OCI image archives.
//!
//!   image-builder standard --out DIR --pause-binary PATH   pause + busybox (when stale)
//!   image-builder nginx --out DIR [--work DIR]              nginx from Debian's packages
//!   image-builder serve --dir DIR [--listen 127.0.0.1:5000] [--hosts-dir D]
//!                                                           local pull-only registry
//!   image-builder binary --name REF --binary PATH --out FILE [--entrypoint /x]
//!                                                           one binary (+ its libraries)
//!
//! `hack/build-images.sh` drives it and imports the archives into containerd.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use image_builder::{standard, Image};

#[derive(Parser)]
#[command(about = "Builds OCI image archives without a registry")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The pause (sandbox) image and the busybox image.
    Standard {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        pause_binary: PathBuf,
    },
    /// nginx:1.22 from Debian's nginx package (apt-get download + dpkg -x, never installed).
    Nginx {
        #[arg(long)]
        out: PathBuf,
        /// Where the .debs are downloaded and unpacked (default: OUT/nginx-work).
        #[arg(long)]
        work: Option<PathBuf>,
    },
    /// A pull-only registry on loopback serving every archive of DIR (point containerd's
    /// registry config_path hosts.toml for docker.io and registry.k8s.io at it).
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: std::net::SocketAddr,
        /// Also write <DIR>/<host>/hosts.toml files pointing at this registry here.
        #[arg(long)]
        hosts_dir: Option<PathBuf>,
    },
    /// An image of one host binary (plus the libraries ldd lists) as its entrypoint.
    Binary {
        /// Full reference with tag, repeatable.
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        #[arg(long)]
        binary: PathBuf,
        /// Path of the binary in the image (default: /usr/local/bin/<file name>).
        #[arg(long)]
        entrypoint: Option<String>,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Standard { out, pause_binary } => {
            for archive in standard::ensure(&out, &pause_binary)? {
                println!("{}", archive.display());
            }
        }
        Cmd::Nginx { out, work } => {
            let work = work.unwrap_or_else(|| out.join("nginx-work"));
            std::fs::create_dir_all(&work).with_context(|| work.display().to_string())?;
            let archive = out.join(standard::NGINX_ARCHIVE);
            standard::nginx(&work)?.write_archive(&archive)?;
            println!("{}", archive.display());
        }
        Cmd::Serve {
            dir,
            listen,
            hosts_dir,
        } => {
            anyhow::ensure!(
                listen.ip().is_loopback(),
                "the registry only listens on loopback"
            );
            let registry = image_builder::registry::Registry::new(&dir)?;
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(async move {
                let addr = registry.clone().spawn(listen).await?;
                if let Some(hosts) = hosts_dir {
                    image_builder::registry::write_hosts(&hosts, addr)?;
                }
                for (repository, tag) in registry.tags() {
                    println!("serving {repository}:{tag} on {addr}");
                }
                tokio::signal::ctrl_c().await?;
                anyhow::Ok(())
            })?;
        }
        Cmd::Binary {
            names,
            binary,
            entrypoint,
            out,
        } => {
            let file_name = binary
                .file_name()
                .context("binary has no file name")?
                .to_string_lossy()
                .to_string();
            let path = entrypoint.unwrap_or_else(|| format!("/usr/local/bin/{file_name}"));
            let mut image = Image::new(names)?;
            image.host_binary(&binary, &path)?;
            image.dir("/tmp", 0o1777)?;
            image.entrypoint = vec![path];
            image.write_archive(&out)?;
            println!("{}", out.display());
        }
    }
    Ok(())
}

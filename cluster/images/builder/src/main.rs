//! `image-builder`: writes the cluster's standard OCI image archives.
//!
//!   image-builder standard --out DIR --pause-binary PATH   pause + busybox (when stale)
//!   image-builder nginx --out DIR [--work DIR]              nginx from Debian's packages
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

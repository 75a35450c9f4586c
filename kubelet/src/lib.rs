//! The kubelet, shaped like upstream's pkg/kubelet:
//! - `options`, `config`: flags and the KubeletConfiguration file (flags win, as upstream).
//! - `run`: wires the API client, the CRI client and the loops below together.
//!
//! On-disk layout under `--root-dir` (default /var/lib/kubelet), as upstream:
//! `pods/<uid>/volumes/<plugin>/<volume>` (plugin e.g. `kubernetes.io~empty-dir`),
//! `pods/<uid>/containers/<container>/<n>` (termination message files),
//! `pki/` (kubelet serving certificate when none is configured).
//! Container logs: `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log`.

pub mod cm;
pub mod config;
pub mod healthz;
pub mod images;
pub mod kuberuntime;
pub mod node;
pub mod options;
pub mod pod;
pub mod prober;
pub mod run;
pub mod server;
pub mod status;
pub mod volumes;

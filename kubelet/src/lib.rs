//! The kubelet, shaped like upstream's pkg/kubelet:
//! - `options`, `config`: flags and the KubeletConfiguration file (flags win, as upstream).
//! - `run`: wires the API client, the CRI client and the loops below together.
//! - `node`: Node registration, status (on change, at least every
//!   nodeStatusReportFrequency) and the Lease in kube-node-lease.
//! - `pod`: pod sources (API watch with spec.nodeName, static pod files), mirror pods,
//!   one worker per pod, the PLEG relist (1 s) and orphan removal.
//! - `kuberuntime`: the CRI side of a sync (sandbox, init containers, containers,
//!   CrashLoopBackOff, hooks, graceful kill), `status`: pod status and its writer,
//!   `cm`: QoS classes and cgroups, `images`, `volumes`, `prober`, `server`.
//!
//! Deliberate differences from upstream: a static pod's UID is the first 16 bytes of a
//! SHA-256 over the manifest's bytes, the node name and the file path (upstream: MD5 over
//! Go's deep-hash of the decoded pod), so the same file on the same node gives the same
//! pod across restarts, as upstream; the container hash is FNV-1a over the container's
//! JSON (upstream hashes Go's struct dump), so hashes differ from a Go kubelet's and a
//! Go kubelet's containers would be replaced once, never ours; PLEG relists every second
//! without upstream's evented PLEG.
//!
//! On-disk layout under `--root-dir` (default /var/lib/kubelet), as upstream:
//! `pods/<uid>/volumes/<plugin>/<volume>` (plugin e.g. `kubernetes.io~empty-dir`),
//! `pods/<uid>/containers/<container>/<n>` (termination message files),
//! `pki/` (kubelet serving certificate when none is configured).
//! Container logs: `<podLogsDir>/<namespace>_<name>_<uid>/<container>/<restartCount>.log`.

pub mod cm;
pub mod config;
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

//! `hollow-node`: a hollow kubelet for tests and benchmarks (in the spirit of kubemark
//! and KWOK). One process simulates many nodes: it registers the Nodes, renews their
//! Leases in `kube-node-lease`, posts node status now and then, and walks each pod
//! bound to one of its nodes through Pending → Running/Ready (→ Succeeded/Failed for
//! restartPolicy Never/OnFailure), deleting pods marked for deletion once their
//! containers "stopped". Nothing runs: pod IPs are made up from the node's pod CIDR.
//!
//! Built for scale: one watch of all pods and one of all nodes for the whole process
//! (filtered by the set of its node names), lease renewals spread evenly over the
//! interval, bounded concurrency for every kind of request. SIGTERM stops it cleanly;
//! SIGKILL simulates losing the nodes (their Leases stop being renewed).

mod ipam;
mod node;
mod options;
mod pods;
mod run;

use clap::Parser;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::process::init_logging();
    let options = options::Options::parse();
    let shutdown = client::process::shutdown_on_signals();
    run::run(options, shutdown).await
}

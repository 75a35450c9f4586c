use clap::Parser;
use kube_scheduler::options::Options;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::process::init_logging();
    let options = Options::parse();
    let shutdown = client::process::shutdown_on_signals();
    kube_scheduler::run::run(options, shutdown).await
}

use clap::Parser;
use kube_controller_manager::options::Options;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::process::init_logging();
    let options = Options::parse();
    let shutdown = client::process::shutdown_on_signals();
    kube_controller_manager::run::run(options, shutdown).await
}

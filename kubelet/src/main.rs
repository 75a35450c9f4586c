use clap::Parser;
use kubelet::options::Options;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::process::init_logging();
    let options = Options::parse();
    let shutdown = client::process::shutdown_on_signals();
    kubelet::run::run(options, shutdown).await
}

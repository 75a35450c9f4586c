//! Wires the kubelet together: configuration, the API client, the CRI client, then the
//! loops (node status and lease, pod sources, pod workers, the kubelet server).

use std::net::{IpAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::KubeletConfiguration;
use crate::kuberuntime::RuntimeManager;
use crate::node;
use crate::options::Options;
use crate::pod::PodManager;

/// What every kubelet loop needs; cheap to clone.
#[derive(Clone)]
pub struct Context {
    pub client: kube::Client,
    pub cri: cri::Cri,
    pub config: Arc<KubeletConfiguration>,
    pub node_name: String,
    pub node_ip: IpAddr,
    pub root_dir: PathBuf,
    pub shutdown: CancellationToken,
}

pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let config = KubeletConfiguration::resolve(&options)?;
    let node_name = node_name(&options)?;
    let node_ip = match &options.node_ip {
        Some(ip) => ip.parse().with_context(|| format!("--node-ip {ip:?}"))?,
        None => default_route_ip().context("cannot find the node's IP address; set --node-ip")?,
    };
    let client = client::config::client(options.kubeconfig.as_deref(), "kubelet").await?;
    let cri = cri::connect(&config.container_runtime_endpoint).await?;
    let (runtime, runtime_version) = cri.version().await?;
    tracing::info!(node = %node_name, %node_ip, %runtime, %runtime_version, "kubelet starting");
    std::fs::create_dir_all(&options.root_dir)
        .with_context(|| format!("creating --root-dir {}", options.root_dir.display()))?;
    std::fs::create_dir_all(&config.pod_logs_dir)
        .with_context(|| format!("creating podLogsDir {}", config.pod_logs_dir.display()))?;
    let ctx = Context {
        client,
        cri,
        config: Arc::new(config),
        node_name,
        node_ip,
        root_dir: options.root_dir.clone(),
        shutdown: shutdown.clone(),
    };
    let events = client::events::EventSink::new(
        ctx.client.clone(),
        "kubelet",
        &ctx.node_name,
        &tokio::runtime::Handle::current(),
        shutdown.clone(),
    );
    let runtime_manager = RuntimeManager::new(ctx.clone(), events.clone());
    let (probe_updates, mut probe_updates_rx) = tokio::sync::mpsc::unbounded_channel();
    let (probe_events, mut probe_events_rx) =
        tokio::sync::mpsc::unbounded_channel::<crate::prober::ProbeEvent>();
    let prober = crate::prober::ProbeManager::with_events(
        ctx.cri.clone(),
        probe_updates,
        Some(probe_events),
    );
    let pods = PodManager::new(ctx.clone(), runtime_manager, Some(prober), None);
    let mut tasks = tokio::task::JoinSet::new();
    // Probe results wake the pod's worker; probe failures become Unhealthy events.
    let waker = Arc::clone(&pods);
    tasks.spawn(async move {
        while let Some(uid) = probe_updates_rx.recv().await {
            waker.notify(&uid);
        }
    });
    tasks.spawn(async move {
        while let Some(e) = probe_events_rx.recv().await {
            let reference = k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(e.pod_name),
                namespace: Some(e.namespace),
                uid: Some(e.pod_uid),
                field_path: Some(format!("spec.containers{{{}}}", e.container)),
                ..Default::default()
            };
            events.warning(reference, e.reason, "Probe", e.message);
        }
    });
    tasks.spawn(node::run_status(
        ctx.clone(),
        format!("{runtime}://{runtime_version}"),
    ));
    tasks.spawn(node::run_lease(ctx.clone()));
    let (healthz_address, healthz_port) = (
        ctx.config.healthz_bind_address.clone(),
        ctx.config.healthz_port,
    );
    let healthz_shutdown = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) =
            crate::healthz::serve(&healthz_address, healthz_port, healthz_shutdown).await
        {
            tracing::error!(error = %e, "healthz server");
        }
    });
    tasks.spawn(crate::pod::source::run(Arc::clone(&pods)));
    tasks.spawn(crate::pod::file::run(Arc::clone(&pods)));
    tasks.spawn(crate::pod::pleg::run(Arc::clone(&pods)));
    let running: crate::server::PodsFn = {
        let pods = Arc::clone(&pods);
        Arc::new(move || pods.pods())
    };
    tasks.spawn(async move {
        if let Err(e) = crate::server::serve(ctx.clone(), running).await {
            tracing::error!(error = %e, "kubelet server");
        }
    });
    shutdown.cancelled().await;
    // Pods keep running: a kubelet restart adopts them.
    tasks.shutdown().await;
    tracing::info!("kubelet stopped");
    Ok(())
}

/// Node names are lower-cased host names, as upstream's `nodeutil.GetHostname`.
fn node_name(options: &Options) -> anyhow::Result<String> {
    let name = match &options.hostname_override {
        Some(name) => name.trim().to_string(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name")?
            .trim()
            .to_string(),
    };
    anyhow::ensure!(!name.is_empty(), "empty node name");
    Ok(name.to_lowercase())
}

/// The source address the kernel picks for the default route. Connecting a UDP socket only
/// selects a route; no packet is sent.
fn default_route_ip() -> std::io::Result<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect("192.0.2.1:9")?;
    Ok(socket.local_addr()?.ip())
}

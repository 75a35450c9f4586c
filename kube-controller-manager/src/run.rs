//! Starting the manager: health endpoint, leader election, then every enabled controller
//! on shared informers, until SIGTERM or the loss of the lease.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use client::leader::LeaderElection;
use client::serving::{self, Health};
use client::SharedInformers;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::controllers;
use crate::options::Options;

/// This replica's identity in the lease (upstream: `<hostname>_<uuid>`).
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// Start the enabled controllers and run them until `shutdown` is cancelled.
pub async fn run_controllers(ctx: Context, health: Health) -> anyhow::Result<()> {
    let mut running = Vec::new();
    for controller in controllers::all() {
        if !ctx
            .options
            .enabled(controller.name, controller.enabled_by_default)
        {
            tracing::info!(controller = controller.name, "controller disabled");
            continue;
        }
        let future = (controller.start)(&ctx)
            .with_context(|| format!("starting the {} controller", controller.name))?;
        tracing::info!(controller = controller.name, "started controller");
        running.push(future);
    }
    ctx.informers.start();
    // The controllers run once the caches are synced, so none of them waits for a
    // store's readiness concurrently with another (see `wait_for_cache_sync`).
    tokio::select! {
        _ = ctx.informers.wait_for_cache_sync() => {}
        _ = ctx.shutdown.cancelled() => return Ok(()),
    }
    tracing::info!("caches synced");
    let running: Vec<_> = running.into_iter().map(tokio::spawn).collect();
    health.set_ready(true);
    ctx.shutdown.cancelled().await;
    for task in running {
        task.abort();
    }
    Ok(())
}

pub async fn run(options: Options, shutdown: CancellationToken) -> anyhow::Result<()> {
    let options = Arc::new(options);
    let client =
        client::config::client(options.kubeconfig.as_deref(), "kube-controller-manager").await?;
    let metrics = Arc::new(Mutex::new(Registry::default()));
    let health = Health {
        registry: Arc::clone(&metrics),
        ready: Default::default(),
    };
    let addr = SocketAddr::new(options.bind_address, options.secure_port);
    let (bound, _server) = serving::serve(
        addr,
        "kube-controller-manager",
        health.clone(),
        shutdown.clone().cancelled_owned(),
    )
    .await?;
    tracing::info!(%bound, "serving /healthz and /metrics");
    let ctx = Context {
        client: client.clone(),
        informers: SharedInformers::new(client.clone()),
        options: Arc::clone(&options),
        metrics,
        shutdown: shutdown.clone(),
    };
    if !options.leader_elect {
        return run_controllers(ctx, health).await;
    }
    let mut election = LeaderElection::new(&options.leader_elect_resource_name, identity());
    election.namespace = options.leader_elect_resource_namespace.clone();
    election.lease_duration = options.leader_elect_lease_duration;
    let work = async {
        if let Err(e) = run_controllers(ctx, health).await {
            tracing::error!(error = %e, "controllers failed");
        }
    };
    election.run(client, work).await.map_err(Into::into)
}

//! One pod's worker: sync until the pod is gone, then clean up (upstream's podWorkers
//! loop with SyncPod / SyncTerminatingPod / SyncTerminatedPod folded into one task).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};

use super::{is_static, mirror, PodManager};
use crate::kuberuntime::{sandbox, PodSyncState, RuntimePod};
use crate::status::{self, StatusInputs};

pub async fn run(mgr: Arc<PodManager>, uid: String) {
    let mut state = PodSyncState::default();
    let mut terminated_api_pod = false;
    loop {
        let Some((pod, removed, notify)) = mgr.snapshot(&uid) else {
            return;
        };
        let mut wait = mgr.ctx.config.sync_frequency;
        let rp = match mgr.runtime.inspect(&uid).await {
            Ok(rp) => Some(rp),
            Err(e) => {
                tracing::warn!(pod = %super::full_name(&pod), error = %e, "inspecting pod in the runtime");
                wait = Duration::from_secs(1);
                None
            }
        };
        if let Some(rp) = rp {
            let deleting = removed || pod.metadata.deletion_timestamp.is_some();
            if deleting {
                if !terminated_api_pod {
                    terminate(&mgr, &pod, &rp).await;
                }
                if removed {
                    if is_static(&pod) {
                        mirror::remove(&mgr, &pod).await;
                    }
                    mgr.status.forget(&uid);
                    mgr.drop_entry(&uid);
                    tracing::info!(pod = %super::full_name(&pod), "pod removed");
                    return;
                }
                // An API pod: delete the object now that nothing runs; the watch then
                // reports it gone and the worker stops.
                if !terminated_api_pod && !is_static(&pod) {
                    terminated_api_pod = delete_api_pod(&mgr, &pod).await;
                }
                if !terminated_api_pod {
                    wait = Duration::from_secs(1);
                }
            } else {
                wait = wait.min(sync(&mgr, &pod, &rp, &mut state).await.unwrap_or(wait));
            }
        }
        tokio::select! {
            () = notify.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = mgr.ctx.shutdown.cancelled() => return,
        }
    }
}

/// Kills the pod with its grace period and removes everything it left in the runtime.
async fn terminate(mgr: &PodManager, pod: &Pod, rp: &RuntimePod) {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = pod.metadata.deletion_grace_period_seconds;
    mgr.runtime.kill_pod(Some(pod), rp, grace).await;
    let rp = mgr
        .runtime
        .inspect(&uid)
        .await
        .unwrap_or_else(|_| rp.clone());
    mgr.runtime
        .remove_pod(&uid, &rp, mgr.runtime.pod_cgroup(pod))
        .await;
}

/// Deletes the API object with grace 0 and a uid precondition, as upstream's status
/// manager does once a deleted pod's containers are gone. True when done.
async fn delete_api_pod(mgr: &PodManager, pod: &Pod) -> bool {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(mgr.ctx.client.clone(), &ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => true,
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => true,
        Err(e) => {
            tracing::warn!(pod = %super::full_name(pod), error = %e, "deleting pod");
            false
        }
    }
}

/// One sync of a live pod: runtime actions, then status. Returns when to sync again.
async fn sync(
    mgr: &PodManager,
    pod: &Pod,
    rp: &RuntimePod,
    state: &mut PodSyncState,
) -> Option<Duration> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let static_pod = is_static(pod);
    let mirror = if static_pod {
        mirror::ensure(mgr, pod).await
    } else {
        None
    };
    // The status the API has (a static pod's lives on its mirror).
    let mut pod_with_status = pod.clone();
    if static_pod {
        pod_with_status.status = mirror.as_ref().and_then(|m| m.status.clone());
    }
    let terminal = matches!(
        pod_with_status
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    );
    let mut retry = None;
    register_probes(mgr, pod, rp, state);
    let rp = if terminal {
        // A finished pod is never started again; its sandbox is stopped.
        if rp.sandboxes.iter().any(|s| s.ready) {
            mgr.runtime.kill_pod(Some(pod), rp, None).await;
            mgr.runtime
                .inspect(&uid)
                .await
                .unwrap_or_else(|_| rp.clone())
        } else {
            rp.clone()
        }
    } else {
        let outcome = mgr.runtime.sync_pod(pod, rp, state).await;
        retry = outcome.retry_after;
        match mgr.runtime.inspect(&uid).await {
            Ok(rp) => rp,
            Err(_) => return Some(Duration::from_secs(1)),
        }
    };
    register_probes(mgr, pod, &rp, state);
    let log_dir = sandbox::log_directory(&mgr.ctx.config.pod_logs_dir, pod);
    let message = |info: &crate::kuberuntime::ContainerInfo| {
        mgr.runtime.termination_message(info, Some(&log_dir))
    };
    let status = status::generate(&StatusInputs {
        pod: &pod_with_status,
        runtime: &rp,
        reasons: &state.reasons,
        probes: mgr.probes.as_ref(),
        node_ip: mgr.ctx.node_ip.to_string(),
        message: &message,
    });
    let now_terminal = matches!(status.phase.as_deref(), Some("Succeeded") | Some("Failed"));
    let target = if static_pod {
        mirror.as_ref()
    } else {
        Some(pod)
    };
    if let Some(target) = target {
        let ns = target.metadata.namespace.clone().unwrap_or_default();
        let name = target.metadata.name.clone().unwrap_or_default();
        let api_uid = target.metadata.uid.clone().unwrap_or_default();
        if let Err(e) = mgr
            .status
            .set(&mgr.ctx.client, &ns, &name, &api_uid, &status)
            .await
        {
            tracing::debug!(pod = %super::full_name(pod), error = %e, "updating pod status");
            retry = Some(retry.map_or(Duration::from_secs(1), |r| r.min(Duration::from_secs(1))));
        }
    }
    if now_terminal && !terminal && rp.sandboxes.iter().any(|s| s.ready) {
        mgr.runtime.kill_pod(Some(pod), &rp, None).await;
    }
    retry
}

/// Hands every running container of the current sandbox to the prober (a no-op for
/// containers it already probes; adopted containers get probed after a kubelet restart)
/// and collects the containers whose liveness or startup failed.
fn register_probes(mgr: &PodManager, pod: &Pod, rp: &RuntimePod, state: &mut PodSyncState) {
    let Some(prober) = &mgr.prober else { return };
    let Some(spec) = &pod.spec else { return };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let Some(sandbox) = rp.current_sandbox() else {
        return;
    };
    let pod_ip = if sandbox::host_network(pod) {
        mgr.ctx.node_ip.to_string()
    } else {
        sandbox.ips.first().cloned().unwrap_or_default()
    };
    for c in &spec.containers {
        match rp.latest_in_sandbox(&c.name) {
            Some(info) if info.running() => {
                prober.add_container(pod, c, &info.id, &pod_ip);
                if let Some(reason) = prober.failed(&uid, &c.name) {
                    if !state.restart_requested.iter().any(|(n, _)| n == &c.name) {
                        state.restart_requested.push((c.name.clone(), reason));
                    }
                }
            }
            _ => prober.remove_container(&uid, &c.name),
        }
    }
}

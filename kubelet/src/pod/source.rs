//! The API source: pods bound to this node, through a kube-runtime watcher with the
//! `spec.nodeName` field selector (upstream's apiserver source).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::Api;

use super::{is_mirror, PodManager};

pub async fn run(mgr: Arc<PodManager>) {
    let api: Api<Pod> = Api::all(mgr.ctx.client.clone());
    let config = watcher::Config::default().fields(&format!("spec.nodeName={}", mgr.ctx.node_name));
    let mut stream = watcher::watcher(api, config).boxed();
    let mut initial: Vec<Pod> = Vec::new();
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = mgr.ctx.shutdown.cancelled() => return,
        };
        let Some(event) = next else { return };
        match event {
            Ok(Event::Init) => initial.clear(),
            Ok(Event::InitApply(pod)) => initial.push(pod),
            Ok(Event::InitDone) => mgr.replace_api_pods(std::mem::take(&mut initial)),
            Ok(Event::Apply(pod)) => {
                if is_mirror(&pod) {
                    mgr.set_mirror(pod);
                } else {
                    mgr.upsert(pod);
                }
            }
            Ok(Event::Delete(pod)) => {
                if is_mirror(&pod) {
                    mgr.delete_mirror(&pod);
                } else if let Some(uid) = &pod.metadata.uid {
                    mgr.remove(uid);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "watching pods");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

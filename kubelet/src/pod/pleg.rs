//! The pod lifecycle event generator (upstream's generic PLEG): relists the kubelet's
//! sandboxes and containers every second and wakes the worker of every pod whose runtime
//! state changed. Pods the runtime has but no source knows are killed and removed once
//! both sources have listed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use cri::labels;
use parking_lot::Mutex;

use super::PodManager;

const RELIST_PERIOD: Duration = Duration::from_secs(1);

type Fingerprint = Vec<(String, i32)>;

async fn relist(mgr: &PodManager) -> Result<BTreeMap<String, Fingerprint>, tonic::Status> {
    let selector = HashMap::from([(
        labels::MANAGED.to_string(),
        labels::MANAGED_VALUE.to_string(),
    )]);
    let (sandboxes, containers) = mgr.ctx.cri.list_labelled(selector).await?;
    let mut out: BTreeMap<String, Fingerprint> = BTreeMap::new();
    for s in sandboxes {
        if let Some(uid) = s.labels.get(labels::POD_UID) {
            out.entry(uid.clone()).or_default().push((s.id, s.state));
        }
    }
    for c in containers {
        if let Some(uid) = c.labels.get(labels::POD_UID) {
            out.entry(uid.clone())
                .or_default()
                .push((c.id, c.state + 10));
        }
    }
    for f in out.values_mut() {
        f.sort();
    }
    Ok(out)
}

pub async fn run(mgr: Arc<PodManager>) {
    let mut previous: BTreeMap<String, Fingerprint> = BTreeMap::new();
    let cleaning: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELIST_PERIOD) => {}
            () = mgr.ctx.shutdown.cancelled() => return,
        }
        let current = match relist(&mgr).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e.message(), "relisting the runtime");
                continue;
            }
        };
        for (uid, fp) in &current {
            if previous.get(uid) != Some(fp) {
                mgr.notify(uid);
            }
        }
        if mgr.sources_ready() {
            for uid in current.keys() {
                if mgr.knows(uid) || !cleaning.lock().insert(uid.clone()) {
                    continue;
                }
                let mgr = Arc::clone(&mgr);
                let cleaning = Arc::clone(&cleaning);
                let uid = uid.clone();
                tokio::spawn(async move {
                    tracing::info!(pod = %uid, "removing orphaned pod");
                    if let Ok(rp) = mgr.runtime.inspect(&uid).await {
                        mgr.runtime.kill_pod(None, &rp, Some(0)).await;
                        let rp = mgr.runtime.inspect(&uid).await.unwrap_or(rp);
                        mgr.runtime.remove_pod(&uid, &rp, None).await;
                    }
                    cleaning.lock().remove(&uid);
                });
            }
        }
        previous = current;
    }
}

//! Container manager pieces: QoS classes, the cgroup each pod runs under (cgroupfs driver,
//! cgroup v1, `cgroupsPerQOS`), and the CPU/OOM figures upstream derives from requests and
//! limits (pkg/kubelet/cm, pkg/kubelet/qos).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apimachinery::quantity::Quantity as Q;
use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const GUARANTEED: &str = "Guaranteed";
pub const BURSTABLE: &str = "Burstable";
pub const BEST_EFFORT: &str = "BestEffort";

const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
const MIN_QUOTA_PERIOD: i64 = 1000;
pub const QUOTA_PERIOD: i64 = 100_000;
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

pub fn quantity_milli(q: &Quantity) -> Option<i64> {
    Q::parse(&q.0).ok().map(|q| q.milli_value())
}

pub fn quantity_value(q: &Quantity) -> Option<i64> {
    Q::parse(&q.0).ok().map(|q| q.value())
}

fn resources(c: &Container) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let r = c.resources.clone().unwrap_or_default();
    let limits = r.limits.unwrap_or_default();
    let mut requests = r.requests.unwrap_or_default();
    // The API server defaults requests to limits; static pods skip the API server.
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    (requests, limits)
}

/// Upstream's GetPodQOS over cpu and memory of all containers (init included).
pub fn qos_class(pod: &Pod) -> &'static str {
    let Some(spec) = &pod.spec else {
        return BEST_EFFORT;
    };
    let mut requests: BTreeMap<&str, i64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i64> = BTreeMap::new();
    let mut guaranteed = true;
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        let (req, lim) = resources(c);
        for name in ["cpu", "memory"] {
            if let Some(v) = req.get(name).and_then(quantity_milli).filter(|v| *v != 0) {
                *requests.entry(name).or_default() += v;
            }
            if let Some(v) = lim.get(name).and_then(quantity_milli).filter(|v| *v != 0) {
                *limits.entry(name).or_default() += v;
            } else {
                guaranteed = false;
            }
            // A limit without the same request is not Guaranteed either.
            if req.get(name).and_then(quantity_milli) != lim.get(name).and_then(quantity_milli) {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return BEST_EFFORT;
    }
    if guaranteed && limits.len() == 2 && requests == limits {
        return GUARANTEED;
    }
    BURSTABLE
}

/// The pod's cgroup (cgroupfs syntax) below `cgroupRoot`, as upstream's pod container
/// manager names it: `kubepods/pod<uid>`, `kubepods/burstable/pod<uid>`,
/// `kubepods/besteffort/pod<uid>`.
pub fn pod_cgroup(cgroup_root: &str, pod: &Pod) -> String {
    let root = cgroup_root.trim_end_matches('/');
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let qos = match qos_class(pod) {
        GUARANTEED => String::new(),
        BURSTABLE => "/burstable".into(),
        _ => "/besteffort".into(),
    };
    format!("{root}/kubepods{qos}/pod{uid}")
}

/// Removes a pod's cgroup in every v1 hierarchy once nothing runs in it (runc creates the
/// directories but never removes the parents).
pub fn remove_pod_cgroup(cgroup: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for e in entries.flatten() {
        let dir = e.path().join(cgroup.trim_start_matches('/'));
        if dir.is_dir() {
            remove_tree(&dir);
        }
    }
}

/// Depth-first rmdir (cgroup directories only hold pseudo files, so rmdir is the way).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_tree(&e.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not remove cgroup");
    }
}

/// Every v1 hierarchy's directory for `cgroup` (tests and cleanup).
pub fn hierarchy_dirs(cgroup: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path().join(cgroup.trim_start_matches('/')))
                .collect()
        })
        .unwrap_or_default()
}

/// Upstream's MilliCPUToShares.
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli == 0 {
        return MIN_SHARES;
    }
    (milli * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// Upstream's MilliCPUToQuota for the default 100 ms period.
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    if milli == 0 {
        return 0;
    }
    (milli * period / 1000).max(MIN_QUOTA_PERIOD)
}

/// Upstream's GetContainerOOMScoreAdjust.
pub fn oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i64 {
    match qos_class(pod) {
        GUARANTEED => return GUARANTEED_OOM_SCORE_ADJ,
        BEST_EFFORT => return BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {}
    }
    let (requests, _) = resources(container);
    let request = requests.get("memory").and_then(quantity_value).unwrap_or(0);
    if memory_capacity <= 0 {
        return BEST_EFFORT_OOM_SCORE_ADJ - 1;
    }
    let adj = 1000 - (1000 * request) / memory_capacity;
    if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
        return 1000 + GUARANTEED_OOM_SCORE_ADJ;
    }
    if adj == BEST_EFFORT_OOM_SCORE_ADJ {
        return adj - 1;
    }
    adj
}

/// The container's CRI Linux resources: shares from requests, quota and memory from limits.
pub fn container_resources(
    pod: &Pod,
    container: &Container,
    memory_capacity: i64,
) -> cri::api::LinuxContainerResources {
    let (requests, limits) = resources(container);
    let cpu_request = requests.get("cpu").and_then(quantity_milli).unwrap_or(0);
    let cpu_limit = limits.get("cpu").and_then(quantity_milli).unwrap_or(0);
    let memory_limit = limits.get("memory").and_then(quantity_value).unwrap_or(0);
    let quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    cri::api::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        cpu_quota: quota,
        cpu_period: if quota > 0 { QUOTA_PERIOD } else { 0 },
        memory_limit_in_bytes: memory_limit,
        oom_score_adj: oom_score_adj(pod, container, memory_capacity),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1"},
            "spec": {"containers": containers}
        }))
        .unwrap()
    }

    #[test]
    fn qos_classes_and_cgroups() {
        let be = pod(json!([{"name": "a"}]));
        assert_eq!(qos_class(&be), BEST_EFFORT);
        assert_eq!(pod_cgroup("", &be), "/kubepods/besteffort/podu1");
        let g = pod(json!([{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]));
        assert_eq!(qos_class(&g), GUARANTEED);
        assert_eq!(pod_cgroup("/k8s-x/", &g), "/k8s-x/kubepods/podu1");
        let b = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]));
        assert_eq!(qos_class(&b), BURSTABLE);
        assert_eq!(pod_cgroup("/r", &b), "/r/kubepods/burstable/podu1");
        let b2 = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]),
        );
        assert_eq!(qos_class(&b2), BURSTABLE);
    }

    #[test]
    fn cpu_and_oom_figures() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD), 25_000);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD), 1000);
        let b = pod(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]));
        let c = &b.spec.as_ref().unwrap().containers[0];
        assert_eq!(oom_score_adj(&b, c, 4 << 30), 750);
        assert_eq!(oom_score_adj(&b, c, 1 << 30), 3);
        let r = container_resources(&b, c, 4 << 30);
        assert_eq!(r.cpu_shares, 2);
        assert_eq!(r.memory_limit_in_bytes, 0);
        let g =
            pod(json!([{"name": "a", "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}]));
        let r = container_resources(&g, &g.spec.as_ref().unwrap().containers[0], 4 << 30);
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.cpu_period),
            (512, 50_000, 100_000)
        );
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(r.oom_score_adj, -997);
    }
}

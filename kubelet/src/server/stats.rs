//! Resource usage: `/stats/summary` (upstream's statsapi `Summary`: node from /proc, pods
//! and containers from CRI ListContainerStats), `/metrics/resource` (the stable resource
//! metrics the metrics-server scrapes, with upstream's names and per-sample timestamps,
//! written by hand because prometheus-client has no sample timestamps) and `/metrics`
//! (the kubelet's own metrics).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use http::{header, Response, StatusCode};
use parking_lot::Mutex;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::{json, Map, Value};

use super::{full, json, text, Body, Server};
use cri::api;
use cri::labels;

/// Kernel clock ticks per second (USER_HZ), fixed at 100 on Linux.
const USER_HZ: u64 = 100;

/// Node CPU time from /proc/stat, in nanoseconds: busy time of all CPUs.
pub fn node_cpu_nanos(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| v.get(i))
        .sum();
    Some(busy * (1_000_000_000 / USER_HZ))
}

/// Boot time (seconds since the epoch) from /proc/stat.
fn boot_time(proc_stat: &str) -> Option<i64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Node memory from /proc/meminfo, in bytes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct NodeMemory {
    pub total: u64,
    pub available: u64,
    pub usage: u64,
    pub working_set: u64,
}

pub fn node_memory(meminfo: &str) -> NodeMemory {
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let total = field("MemTotal");
    let usage = total.saturating_sub(field("MemFree"));
    NodeMemory {
        total,
        available: field("MemAvailable"),
        usage,
        // As cAdvisor: usage minus the inactive file cache, which the kernel can reclaim.
        working_set: usage.saturating_sub(field("Inactive(file)")),
    }
}

/// Remembers the previous node CPU sample to report a rate (usageNanoCores).
#[derive(Default)]
pub(crate) struct CpuSampler {
    last: Mutex<Option<(Instant, u64)>>,
}

impl CpuSampler {
    /// (cumulative nanoseconds, nano cores over the time since the previous sample).
    async fn sample(&self) -> Option<(u64, Option<u64>)> {
        let read =
            || -> Option<u64> { node_cpu_nanos(&std::fs::read_to_string("/proc/stat").ok()?) };
        let first = self.last.lock().is_none();
        if first {
            let now = read()?;
            *self.last.lock() = Some((Instant::now(), now));
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let now = read()?;
        let at = Instant::now();
        let mut last = self.last.lock();
        let rate = last.and_then(|(then, prev)| {
            let dt = at.duration_since(then).as_secs_f64();
            (dt > 0.0).then(|| (now.saturating_sub(prev) as f64 / dt) as u64)
        });
        *last = Some((at, now));
        Some((now, rate))
    }
}

fn rfc3339_nanos(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(nanos as i128)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Containers of kubelet-managed pods with their stats and start times.
struct ContainerUsage {
    namespace: String,
    pod: String,
    uid: String,
    name: String,
    created_at: i64,
    stats: api::ContainerStats,
}

async fn container_usage(server: &Server) -> Result<Vec<ContainerUsage>, tonic::Status> {
    let mut runtime = server.ctx.cri.runtime.clone();
    let managed = std::collections::HashMap::from([(
        labels::MANAGED.to_string(),
        labels::MANAGED_VALUE.to_string(),
    )]);
    let running = runtime
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                state: Some(api::ContainerStateValue {
                    state: api::ContainerState::ContainerRunning as i32,
                }),
                label_selector: managed.clone(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .containers;
    let stats = runtime
        .list_container_stats(api::ListContainerStatsRequest {
            filter: Some(api::ContainerStatsFilter {
                label_selector: managed,
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .stats;
    let mut out = Vec::new();
    for c in running {
        let Some(s) = stats
            .iter()
            .find(|s| s.attributes.as_ref().is_some_and(|a| a.id == c.id))
        else {
            continue;
        };
        let label = |k: &str| c.labels.get(k).cloned().unwrap_or_default();
        out.push(ContainerUsage {
            namespace: label(labels::POD_NAMESPACE),
            pod: label(labels::POD_NAME),
            uid: label(labels::POD_UID),
            name: label(labels::CONTAINER_NAME),
            created_at: c.created_at,
            stats: s.clone(),
        });
    }
    Ok(out)
}

fn cpu_json(cpu: Option<&api::CpuUsage>) -> Value {
    let Some(cpu) = cpu else {
        return json!({"time": now_rfc3339()});
    };
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339_nanos(cpu.timestamp)));
    if let Some(v) = &cpu.usage_nano_cores {
        m.insert("usageNanoCores".into(), json!(v.value));
    }
    if let Some(v) = &cpu.usage_core_nano_seconds {
        m.insert("usageCoreNanoSeconds".into(), json!(v.value));
    }
    Value::Object(m)
}

fn memory_json(mem: Option<&api::MemoryUsage>) -> Value {
    let Some(mem) = mem else {
        return json!({"time": now_rfc3339()});
    };
    let mut m = Map::new();
    m.insert("time".into(), json!(rfc3339_nanos(mem.timestamp)));
    for (key, v) in [
        ("availableBytes", &mem.available_bytes),
        ("usageBytes", &mem.usage_bytes),
        ("workingSetBytes", &mem.working_set_bytes),
        ("rssBytes", &mem.rss_bytes),
        ("pageFaults", &mem.page_faults),
        ("majorPageFaults", &mem.major_page_faults),
    ] {
        if let Some(v) = v {
            m.insert(key.into(), json!(v.value));
        }
    }
    Value::Object(m)
}

fn sum_json(items: &[&ContainerUsage]) -> (Value, Value) {
    let now = now_rfc3339();
    let cpu_total: u64 = items
        .iter()
        .filter_map(|c| c.stats.cpu.as_ref()?.usage_core_nano_seconds.as_ref())
        .map(|v| v.value)
        .sum();
    let cores: u64 = items
        .iter()
        .filter_map(|c| c.stats.cpu.as_ref()?.usage_nano_cores.as_ref())
        .map(|v| v.value)
        .sum();
    let ws: u64 = items
        .iter()
        .filter_map(|c| c.stats.memory.as_ref()?.working_set_bytes.as_ref())
        .map(|v| v.value)
        .sum();
    let usage: u64 = items
        .iter()
        .filter_map(|c| c.stats.memory.as_ref()?.usage_bytes.as_ref())
        .map(|v| v.value)
        .sum();
    (
        json!({"time": now, "usageNanoCores": cores, "usageCoreNanoSeconds": cpu_total}),
        json!({"time": now, "usageBytes": usage, "workingSetBytes": ws}),
    )
}

pub(crate) async fn summary(server: &Server) -> Response<Body> {
    let containers = match container_usage(server).await {
        Ok(c) => c,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("failed to get container stats: {}", e.message()),
            )
        }
    };
    let proc_stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let now = now_rfc3339();
    let mut node_cpu = json!({"time": now});
    if let Some((total, rate)) = server.stats.sample().await {
        node_cpu["usageCoreNanoSeconds"] = json!(total);
        if let Some(rate) = rate {
            node_cpu["usageNanoCores"] = json!(rate);
        }
    }
    let mem = node_memory(&meminfo);
    let mut node = json!({
        "nodeName": server.ctx.node_name,
        "cpu": node_cpu,
        "memory": {
            "time": now,
            "availableBytes": mem.available,
            "usageBytes": mem.usage,
            "workingSetBytes": mem.working_set,
        },
        "systemContainers": [],
    });
    if let Some(boot) = boot_time(&proc_stat) {
        node["startTime"] = json!(rfc3339_nanos(boot * 1_000_000_000));
    }
    let pods = (server.pods)();
    let mut by_pod: BTreeMap<(String, String, String), Vec<&ContainerUsage>> = BTreeMap::new();
    for c in &containers {
        by_pod
            .entry((c.namespace.clone(), c.pod.clone(), c.uid.clone()))
            .or_default()
            .push(c);
    }
    let pod_stats: Vec<Value> = by_pod
        .iter()
        .map(|((namespace, name, uid), items)| {
            let start = pods
                .iter()
                .find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
                .and_then(|p| p.status.as_ref()?.start_time.as_ref())
                .map(|t| t.0.to_string())
                .or_else(|| items.iter().map(|c| c.created_at).min().map(rfc3339_nanos));
            let (cpu, memory) = sum_json(items);
            let containers: Vec<Value> = items
                .iter()
                .map(|c| {
                    let mut v = json!({
                        "name": c.name,
                        "startTime": rfc3339_nanos(c.created_at),
                        "cpu": cpu_json(c.stats.cpu.as_ref()),
                        "memory": memory_json(c.stats.memory.as_ref()),
                    });
                    if let Some(fs) = &c.stats.writable_layer {
                        v["rootfs"] = json!({
                            "time": rfc3339_nanos(fs.timestamp),
                            "usedBytes": fs.used_bytes.as_ref().map(|u| u.value),
                            "inodesUsed": fs.inodes_used.as_ref().map(|u| u.value),
                        });
                    }
                    v
                })
                .collect();
            json!({
                "podRef": {"name": name, "namespace": namespace, "uid": uid},
                "startTime": start,
                "containers": containers,
                "cpu": cpu,
                "memory": memory,
            })
        })
        .collect();
    json(&json!({"node": node, "pods": pod_stats}))
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn resource_metrics(server: &Server) -> Response<Body> {
    let containers = container_usage(server).await;
    let now_ms = jiff::Timestamp::now().as_millisecond();
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64, i64)]| {
        let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value, ts) in samples {
            let _ = writeln!(out, "{name}{labels} {value} {ts}");
        }
    };
    let list = containers.as_deref().unwrap_or_default();
    let container_labels = |c: &ContainerUsage| {
        format!(
            "{{container=\"{}\",namespace=\"{}\",pod=\"{}\"}}",
            escape(&c.name),
            escape(&c.namespace),
            escape(&c.pod)
        )
    };
    let ms = |nanos: i64| if nanos > 0 { nanos / 1_000_000 } else { now_ms };
    let cpu: Vec<_> = list
        .iter()
        .filter_map(|c| {
            let cpu = c.stats.cpu.as_ref()?;
            let v = cpu.usage_core_nano_seconds.as_ref()?.value as f64 / 1e9;
            Some((container_labels(c), v, ms(cpu.timestamp)))
        })
        .collect();
    family(
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the container in core-seconds",
        &cpu,
    );
    let mem: Vec<_> = list
        .iter()
        .filter_map(|c| {
            let m = c.stats.memory.as_ref()?;
            let v = m.working_set_bytes.as_ref()?.value as f64;
            Some((container_labels(c), v, ms(m.timestamp)))
        })
        .collect();
    family(
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set of the container in bytes",
        &mem,
    );
    let start: Vec<_> = list
        .iter()
        .map(|c| (container_labels(c), c.created_at as f64 / 1e9, now_ms))
        .collect();
    family(
        "container_start_time_seconds",
        "gauge",
        "Start time of the container since unix epoch in seconds",
        &start,
    );
    let proc_stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    if let Some(nanos) = node_cpu_nanos(&proc_stat) {
        family(
            "node_cpu_usage_seconds_total",
            "counter",
            "Cumulative cpu time consumed by the node in core-seconds",
            &[(String::new(), nanos as f64 / 1e9, now_ms)],
        );
    }
    family(
        "node_memory_working_set_bytes",
        "gauge",
        "Current working set of the node in bytes",
        &[(
            String::new(),
            node_memory(&meminfo).working_set as f64,
            now_ms,
        )],
    );
    let mut pods: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for c in list {
        let e = pods
            .entry((c.namespace.clone(), c.pod.clone()))
            .or_default();
        if let Some(v) = c
            .stats
            .cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
        {
            e.0 += v.value as f64 / 1e9;
        }
        if let Some(v) = c
            .stats
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
        {
            e.1 += v.value as f64;
        }
    }
    let pod_labels =
        |ns: &str, pod: &str| format!("{{namespace=\"{}\",pod=\"{}\"}}", escape(ns), escape(pod));
    let pod_cpu: Vec<_> = pods
        .iter()
        .map(|((ns, p), (cpu, _))| (pod_labels(ns, p), *cpu, now_ms))
        .collect();
    family(
        "pod_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed by the pod in core-seconds",
        &pod_cpu,
    );
    let pod_mem: Vec<_> = pods
        .iter()
        .map(|((ns, p), (_, mem))| (pod_labels(ns, p), *mem, now_ms))
        .collect();
    family(
        "pod_memory_working_set_bytes",
        "gauge",
        "Current working set of the pod in bytes",
        &pod_mem,
    );
    let _ = writeln!(
        out,
        "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise"
    );
    let _ = writeln!(out, "# TYPE resource_scrape_error gauge");
    let _ = writeln!(
        out,
        "resource_scrape_error {}",
        u8::from(containers.is_err())
    );
    exposition(out)
}

fn exposition(body: String) -> Response<Body> {
    let mut resp = Response::new(full(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// The kubelet's own metrics (upstream names), computed at scrape time from the runtime.
pub(crate) async fn metrics(server: &Server) -> Response<Body> {
    let mut registry = Registry::default();
    let running_pods = Gauge::<i64>::default();
    let running_containers = Family::<Vec<(String, String)>, Gauge<i64>>::default();
    registry.register(
        "kubelet_running_pods",
        "Number of pods that have a running pod sandbox",
        running_pods.clone(),
    );
    registry.register(
        "kubelet_running_containers",
        "Number of containers currently running",
        running_containers.clone(),
    );
    let mut runtime = server.ctx.cri.runtime.clone();
    let managed = std::collections::HashMap::from([(
        labels::MANAGED.to_string(),
        labels::MANAGED_VALUE.to_string(),
    )]);
    if let Ok(r) = runtime
        .list_pod_sandbox(api::ListPodSandboxRequest {
            filter: Some(api::PodSandboxFilter {
                label_selector: managed.clone(),
                state: Some(api::PodSandboxStateValue {
                    state: api::PodSandboxState::SandboxReady as i32,
                }),
                ..Default::default()
            }),
        })
        .await
    {
        running_pods.set(r.into_inner().items.len() as i64);
    }
    if let Ok(r) = runtime
        .list_containers(api::ListContainersRequest {
            filter: Some(api::ContainerFilter {
                label_selector: managed,
                ..Default::default()
            }),
        })
        .await
    {
        for c in r.into_inner().containers {
            let state = match api::ContainerState::try_from(c.state) {
                Ok(api::ContainerState::ContainerCreated) => "created",
                Ok(api::ContainerState::ContainerRunning) => "running",
                Ok(api::ContainerState::ContainerExited) => "exited",
                _ => "unknown",
            };
            running_containers
                .get_or_create(&vec![("container_state".into(), state.into())])
                .inc();
        }
    }
    let mut out = String::new();
    if encode(&mut out, &registry).is_err() {
        return text(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics");
    }
    exposition(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn proc_files() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\nbtime 1700000000\n";
        assert_eq!(node_cpu_nanos(stat), Some(161 * 10_000_000));
        assert_eq!(boot_time(stat), Some(1_700_000_000));
        let meminfo = "MemTotal:       1000 kB\nMemFree:         200 kB\nMemAvailable:    600 kB\nInactive(file):  300 kB\n";
        assert_eq!(
            node_memory(meminfo),
            NodeMemory {
                total: 1_024_000,
                available: 614_400,
                usage: 819_200,
                working_set: 512_000,
            }
        );
    }
}

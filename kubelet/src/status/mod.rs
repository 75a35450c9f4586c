//! Pod status (upstream's generateAPIPodStatus, getPhase and the status manager): built
//! from the spec and what the runtime reports, written through the pods/status
//! subresource only when it changed.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use parking_lot::Mutex;
use serde_json::json;

use crate::cm;
use crate::kuberuntime::{should_restart, ContainerInfo, Reasons, RuntimePod};

/// Conditions the kubelet owns; others (PodScheduled, DisruptionTarget, readiness gates)
/// are carried over from the current status.
const KUBELET_CONDITIONS: &[&str] = &[
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

fn ts(ns: i64) -> Option<Time> {
    if ns <= 0 {
        return None;
    }
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .ok()
        .map(Time)
}

/// Probe results the status needs (the prober fills them; without probes a running
/// container is ready and started).
pub trait ProbeResults: Send + Sync {
    fn ready(&self, uid: &str, container: &str) -> bool;
    fn started(&self, uid: &str, container: &str) -> bool;
}

/// No prober: running means ready and started.
pub struct NoProbes;

impl ProbeResults for NoProbes {
    fn ready(&self, _: &str, _: &str) -> bool {
        true
    }
    fn started(&self, _: &str, _: &str) -> bool {
        true
    }
}

fn terminated(info: &ContainerInfo, message: String) -> ContainerStateTerminated {
    let reason = if info.reason.is_empty() {
        if info.exit_code == 0 {
            "Completed".to_string()
        } else {
            "Error".to_string()
        }
    } else {
        info.reason.clone()
    };
    ContainerStateTerminated {
        exit_code: info.exit_code,
        reason: Some(reason),
        message: (!message.is_empty()).then_some(message),
        started_at: ts(info.started_at),
        finished_at: ts(info.finished_at),
        container_id: Some(format!("containerd://{}", info.id)),
        signal: None,
    }
}

pub struct StatusInputs<'a> {
    pub pod: &'a Pod,
    pub runtime: &'a RuntimePod,
    pub reasons: &'a Reasons,
    pub probes: &'a dyn ProbeResults,
    pub node_ip: String,
    /// Reads a terminated container's termination message.
    pub message: &'a dyn Fn(&ContainerInfo) -> String,
}

fn container_status(
    input: &StatusInputs<'_>,
    c: &k8s_openapi::api::core::v1::Container,
    default_waiting: &str,
    init: bool,
) -> ContainerStatus {
    let uid = input.pod.metadata.uid.as_deref().unwrap_or_default();
    let rp = input.runtime;
    let latest = rp.latest(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: String::new(),
        ready: false,
        restart_count: 0,
        started: Some(false),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(default_waiting.to_string()),
                message: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    if let Some(info) = latest {
        st.container_id = Some(format!("containerd://{}", info.id));
        st.image_id = info.image_ref.clone();
        st.restart_count = info.restart_count;
        if info.running() {
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: ts(info.started_at),
                }),
                ..Default::default()
            });
            st.started = Some(input.probes.started(uid, &c.name));
            st.ready = !init && st.started == Some(true) && input.probes.ready(uid, &c.name);
        } else if info.exited() {
            st.state = Some(ContainerState {
                terminated: Some(terminated(info, (input.message)(info))),
                ..Default::default()
            });
            // A succeeded init container counts as ready, as upstream.
            st.ready = init && info.exit_code == 0;
        }
        if let Some(prev) = rp.previous(&c.name).filter(|p| p.exited()) {
            st.last_state = Some(ContainerState {
                terminated: Some(terminated(prev, (input.message)(prev))),
                ..Default::default()
            });
        }
    }
    // A container that failed to start (or waits in back-off) is Waiting with the reason.
    if let Some((reason, message)) = input.reasons.get(&c.name) {
        let running = st.state.as_ref().is_some_and(|s| s.running.is_some());
        if !running {
            if let Some(term) = st.state.as_ref().and_then(|s| s.terminated.clone()) {
                st.last_state = Some(ContainerState {
                    terminated: Some(term),
                    ..Default::default()
                });
            }
            st.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: Some(message.clone()),
                }),
                ..Default::default()
            });
        }
    }
    st
}

/// Upstream's getPhase.
pub fn phase(pod: &Pod, init: &[ContainerStatus], regular: &[ContainerStatus]) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let (mut pending_init, mut failed_init) = (0, 0);
    for s in init {
        let state = s.state.clone().unwrap_or_default();
        if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.waiting.is_some() {
            let last_failed = s
                .last_state
                .as_ref()
                .and_then(|l| l.terminated.as_ref())
                .is_some_and(|t| t.exit_code != 0);
            if last_failed {
                failed_init += 1;
            } else {
                pending_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in regular {
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.waiting.is_some() {
            if s.last_state
                .as_ref()
                .is_some_and(|l| l.terminated.is_some())
            {
                stopped += 1;
            } else {
                waiting += 1;
            }
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || (failed_init > 0 && policy != "Never") {
        return "Pending";
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        return match policy {
            "Always" => "Running",
            "OnFailure" if stopped == succeeded => "Succeeded",
            "OnFailure" => "Running",
            _ if stopped == succeeded => "Succeeded",
            _ => "Failed",
        };
    }
    "Pending"
}

fn cond(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// The status the kubelet reports for `pod` now.
pub fn generate(input: &StatusInputs<'_>) -> PodStatus {
    let pod = input.pod;
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let rp = input.runtime;
    let sandbox_ready = rp.current_sandbox().is_some_and(|s| s.ready);
    let init_done = spec.init_containers.iter().flatten().all(|ic| {
        rp.latest(&ic.name)
            .is_some_and(|c| c.exited() && c.exit_code == 0)
    });
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(input, c, "PodInitializing", true))
        .collect();
    let default_waiting = if init_done {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(input, c, default_waiting, false))
        .collect();
    let phase = phase(pod, &init_statuses, &statuses);
    let terminal = phase == "Succeeded" || phase == "Failed";

    let pod_ips: Vec<String> = if spec.host_network.unwrap_or(false) {
        vec![input.node_ip.clone()]
    } else if let Some(s) = rp.current_sandbox().filter(|s| s.ready) {
        s.ips.clone()
    } else {
        // A stopped sandbox keeps the pod's last IPs, as upstream's status manager.
        old.pod_ips.iter().flatten().map(|p| p.ip.clone()).collect()
    };

    let incomplete_init: Vec<&str> = init_statuses
        .iter()
        .filter(|s| {
            s.state
                .as_ref()
                .is_none_or(|st| st.terminated.as_ref().is_none_or(|t| t.exit_code != 0))
        })
        .map(|s| s.name.as_str())
        .collect();
    let unready: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.ready)
        .map(|s| s.name.as_str())
        .collect();
    let mut conditions = vec![
        cond("PodReadyToStartContainers", sandbox_ready, None, None),
        cond(
            "Initialized",
            init_done,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete_init.join(" ")
            )),
        ),
    ];
    let (ready_reason, ready_msg) = if terminal {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let all_ready = unready.is_empty() && !terminal;
    conditions.push(cond(
        "ContainersReady",
        all_ready,
        Some(ready_reason),
        ready_msg.clone(),
    ));
    conditions.push(cond("Ready", all_ready, Some(ready_reason), ready_msg));
    // Keep transition times for unchanged conditions; carry over conditions owned by others.
    let now = Time(jiff::Timestamp::now());
    for c in &mut conditions {
        let previous = old.conditions.iter().flatten().find(|o| o.type_ == c.type_);
        c.last_transition_time = match previous {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
    }
    for o in old.conditions.iter().flatten() {
        if !KUBELET_CONDITIONS.contains(&o.type_.as_str()) {
            conditions.push(o.clone());
        }
    }
    if !conditions.iter().any(|c| c.type_ == "PodScheduled") {
        conditions.push(PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(now.clone()),
            ..Default::default()
        });
    }
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: Some(input.node_ip.clone()),
        host_ips: Some(vec![HostIP {
            ip: input.node_ip.clone(),
        }]),
        pod_ip: pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty())
            .then(|| pod_ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect()),
        qos_class: Some(cm::qos_class(pod).to_string()),
        start_time: old.start_time.clone().or(Some(now)),
        container_statuses: Some(statuses),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        // Fields owned by others survive the merge patch untouched.
        nominated_node_name: None,
        ..Default::default()
    }
}

/// True when no container will run again: every container exited and none restarts.
pub fn all_done(pod: &Pod, rp: &RuntimePod) -> bool {
    let Some(spec) = &pod.spec else { return true };
    spec.containers.iter().all(|c| {
        rp.latest(&c.name)
            .is_some_and(|i| i.exited() && !should_restart(pod, i.exit_code))
    })
}

/// Status with timestamps of conditions removed: what "changed" means.
fn comparable(status: &PodStatus) -> serde_json::Value {
    let mut s = status.clone();
    for c in s.conditions.iter_mut().flatten() {
        c.last_transition_time = None;
        c.last_probe_time = None;
    }
    s.start_time = None;
    serde_json::to_value(s).unwrap_or_default()
}

/// Writes pod statuses through pods/status, skipping unchanged ones.
#[derive(Default)]
pub struct StatusManager {
    last: Mutex<HashMap<String, serde_json::Value>>,
}

impl StatusManager {
    /// Patches `status` onto the API pod `namespace/name` (uid `api_uid`) if it changed
    /// since the last write. Returns the pod as stored when it wrote.
    pub async fn set(
        &self,
        client: &kube::Client,
        namespace: &str,
        name: &str,
        api_uid: &str,
        status: &PodStatus,
    ) -> Result<Option<Pod>, kube::Error> {
        let key = comparable(status);
        if self.last.lock().get(api_uid) == Some(&key) {
            return Ok(None);
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
        // The uid makes the patch fail rather than land on a pod recreated under the name.
        let patch = json!({ "metadata": { "uid": api_uid }, "status": status });
        let pod = api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        self.last.lock().insert(api_uid.to_string(), key);
        Ok(Some(pod))
    }

    pub fn forget(&self, api_uid: &str) {
        self.last.lock().remove(api_uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kuberuntime::SandboxInfo;
    use cri::api::ContainerState as CS;
    use serde_json::json;

    fn pod(policy: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "initContainers": [{"name": "init", "image": "busybox"}],
                     "containers": [{"name": "a", "image": "busybox"}]},
            "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}
        }))
        .unwrap()
    }

    fn info(name: &str, state: CS, exit: i32, created: i64, restarts: i32) -> ContainerInfo {
        ContainerInfo {
            id: format!("{name}-{created}"),
            sandbox_id: "s".into(),
            name: name.into(),
            state,
            created_at: created,
            started_at: created,
            finished_at: if state == CS::ContainerExited {
                created + 1
            } else {
                0
            },
            exit_code: exit,
            reason: String::new(),
            message: String::new(),
            image: "busybox".into(),
            image_ref: "sha256:x".into(),
            hash: String::new(),
            restart_count: restarts,
            annotations: Default::default(),
            mounts: vec![],
            log_path: String::new(),
        }
    }

    fn rp(containers: Vec<ContainerInfo>) -> RuntimePod {
        let mut containers = containers;
        containers.sort_by_key(|x| std::cmp::Reverse(x.created_at));
        RuntimePod {
            sandboxes: vec![SandboxInfo {
                id: "s".into(),
                attempt: 0,
                ready: true,
                created_at: 1,
                ips: vec!["10.1.0.5".into()],
                host_network: false,
            }],
            containers,
        }
    }

    fn gen(pod: &Pod, rp: &RuntimePod, reasons: &Reasons) -> PodStatus {
        generate(&StatusInputs {
            pod,
            runtime: rp,
            reasons,
            probes: &NoProbes,
            node_ip: "192.0.2.1".into(),
            message: &|_| String::new(),
        })
    }

    fn condition(s: &PodStatus, t: &str) -> String {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
            .unwrap()
    }

    #[test]
    fn initializing_then_running_then_done() {
        let p = pod("Never");
        let none = Reasons::new();
        let s = gen(
            &p,
            &rp(vec![info("init", CS::ContainerRunning, 0, 10, 0)]),
            &none,
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(condition(&s, "Initialized"), "False");
        assert_eq!(condition(&s, "PodScheduled"), "True");
        let waiting = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("PodInitializing"));

        let running = rp(vec![
            info("init", CS::ContainerExited, 0, 10, 0),
            info("a", CS::ContainerRunning, 0, 20, 0),
        ]);
        let s = gen(&p, &running, &none);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(condition(&s, "Ready"), "True");
        assert_eq!(s.pod_ip.as_deref(), Some("10.1.0.5"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.container_id.as_deref(), Some("containerd://a-20"));
        assert!(a.ready);

        let done = rp(vec![
            info("init", CS::ContainerExited, 0, 10, 0),
            info("a", CS::ContainerExited, 3, 20, 0),
        ]);
        let s = gen(&p, &done, &none);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let t = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
        let ready = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.reason.as_deref(), Some("PodCompleted"));
        assert!(all_done(&p, &done));
    }

    #[test]
    fn crash_loop_shows_waiting_with_last_state() {
        let p = pod("Always");
        let looping = rp(vec![
            info("init", CS::ContainerExited, 0, 10, 0),
            info("a", CS::ContainerExited, 1, 20, 0),
            info("a", CS::ContainerExited, 1, 30, 1),
        ]);
        let reasons = Reasons::from([(
            "a".to_string(),
            ("CrashLoopBackOff".to_string(), "back-off 10s".to_string()),
        )]);
        let s = gen(&p, &looping, &reasons);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let a = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(a.restart_count, 1);
        assert_eq!(
            a.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            a.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .exit_code,
            1
        );
        assert_eq!(condition(&s, "ContainersReady"), "False");
        assert!(!all_done(&p, &looping));
    }

    #[test]
    fn failed_init_under_never_fails_the_pod() {
        let p = pod("Never");
        let s = gen(
            &p,
            &rp(vec![info("init", CS::ContainerExited, 2, 10, 0)]),
            &Reasons::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        let p = pod("OnFailure");
        let s = gen(
            &p,
            &rp(vec![info("init", CS::ContainerExited, 2, 10, 0)]),
            &Reasons::new(),
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
    }
}

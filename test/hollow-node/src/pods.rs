//! What a pod on a hollow node looks like at each step, in the kubelet's shapes:
//! Running and Ready at once (no image pulls, no probes), then, for restartPolicy
//! Never/OnFailure, exited after the run duration with the exit code of the
//! `hollow-node.k8s-rs.io/exit-code` annotation (0 when absent).
//!
//! The hollow node remembers what it made of each pod (a [`Track`]) and writes the
//! pod's status whenever the object differs from it; after a restart it picks the
//! track up again from the status it wrote before.

use std::net::IpAddr;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, HostIP, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;
use sha2::{Digest, Sha256};

pub const EXIT_CODE_ANNOTATION: &str = "hollow-node.k8s-rs.io/exit-code";
pub const CONTAINER_ID_PREFIX: &str = "hollow://";

/// The pod conditions the kubelet owns; others (DisruptionTarget, readiness gates) are
/// kept as they are.
const OWN_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
    "PodScheduled",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Succeeded,
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
        }
    }
}

/// One exit of the containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub code: i32,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

/// What the hollow node made of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub ips: Vec<IpAddr>,
    pub host_ip: String,
    pub start_time: Timestamp,
    /// When the current run of the containers started.
    pub started_at: Timestamp,
    pub restarts: i32,
    /// The previous run's exit (lastState), or the final one when terminal.
    pub last_exit: Option<Exit>,
    pub phase: Phase,
    /// The pod's status reason when the kubelet ended it (`DeadlineExceeded`).
    pub reason: Option<String>,
}

/// Upstream's reason and message for a pod stopped at its activeDeadlineSeconds.
pub const DEADLINE_REASON: &str = "DeadlineExceeded";
pub const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

pub fn short_hash(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn full_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether the pod's containers exit by themselves (restartPolicy Never/OnFailure).
pub fn runs_to_completion(pod: &Pod) -> bool {
    restart_policy(pod) != "Always"
}

/// The exit code the pod's containers end with.
pub fn exit_code(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXIT_CODE_ANNOTATION))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

impl Track {
    pub fn new(ips: Vec<IpAddr>, host_ip: String, now: Timestamp) -> Self {
        Track {
            ips,
            host_ip,
            start_time: now,
            started_at: now,
            restarts: 0,
            last_exit: None,
            phase: Phase::Running,
            reason: None,
        }
    }

    /// Advance the pod to `now`: a pod past its `activeDeadlineSeconds` is stopped
    /// (Failed, DeadlineExceeded, as the kubelet does); containers of a
    /// run-to-completion pod exit once `run` is over. Returns when the next step is
    /// due, if any.
    pub fn advance(&mut self, pod: &Pod, run: Duration, now: Timestamp) -> Option<Duration> {
        if self.phase != Phase::Running {
            return None;
        }
        let deadline_left = match pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) {
            Some(seconds) => {
                let left = SignedDuration::from_secs(seconds) - now.duration_since(self.start_time);
                if !left.is_positive() {
                    self.last_exit = Some(Exit {
                        code: 137,
                        started_at: self.started_at,
                        finished_at: now,
                    });
                    self.phase = Phase::Failed;
                    self.reason = Some(DEADLINE_REASON.to_string());
                    return None;
                }
                Duration::try_from(left).ok()
            }
            None => None,
        };
        let run_left = self.advance_run(pod, run, now);
        match (run_left, deadline_left) {
            (Some(a), Some(b)) if self.phase == Phase::Running => Some(a.min(b)),
            (None, Some(b)) if self.phase == Phase::Running => Some(b),
            (a, _) => a,
        }
    }

    fn advance_run(&mut self, pod: &Pod, run: Duration, now: Timestamp) -> Option<Duration> {
        if !runs_to_completion(pod) {
            return None;
        }
        let run = SignedDuration::try_from(run).unwrap_or(SignedDuration::MAX);
        let elapsed = now.duration_since(self.started_at);
        if elapsed < run {
            return Duration::try_from(run - elapsed).ok();
        }
        let code = exit_code(pod);
        let exit = Exit {
            code,
            started_at: self.started_at,
            finished_at: now,
        };
        self.last_exit = Some(exit);
        if code == 0 {
            self.phase = Phase::Succeeded;
            None
        } else if restart_policy(pod) == "Never" {
            self.phase = Phase::Failed;
            None
        } else {
            // OnFailure: the kubelet restarts the containers in place.
            self.restarts += 1;
            self.started_at = now;
            Some(Duration::try_from(run).unwrap_or(Duration::MAX))
        }
    }

    /// The track of a pod whose status this hollow node wrote before (it restarted).
    pub fn recover(pod: &Pod) -> Option<Track> {
        let status = pod.status.as_ref()?;
        let cs = status.container_statuses.as_ref()?.first()?;
        if !cs
            .container_id
            .as_deref()
            .is_some_and(|id| id.starts_with(CONTAINER_ID_PREFIX))
        {
            return None;
        }
        let phase = match status.phase.as_deref()? {
            "Running" => Phase::Running,
            "Succeeded" => Phase::Succeeded,
            "Failed" => Phase::Failed,
            _ => return None,
        };
        let ips = status
            .pod_ips
            .iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        let start_time = status.start_time.as_ref()?.0;
        let state = cs.state.as_ref();
        let started_at = state
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0)
            .unwrap_or(start_time);
        let terminated = |s: Option<&ContainerState>| {
            s.and_then(|s| s.terminated.as_ref()).map(|t| Exit {
                code: t.exit_code,
                started_at: t.started_at.as_ref().map_or(start_time, |t| t.0),
                finished_at: t.finished_at.as_ref().map_or(start_time, |t| t.0),
            })
        };
        Some(Track {
            ips,
            host_ip: status.host_ip.clone().unwrap_or_default(),
            start_time,
            started_at,
            restarts: cs.restart_count,
            last_exit: terminated(state).or_else(|| terminated(cs.last_state.as_ref())),
            phase,
            reason: status.reason.clone(),
        })
    }

    /// Whether `pod`'s status already says what this track says.
    pub fn written(&self, pod: &Pod) -> bool {
        let Some(status) = pod.status.as_ref() else {
            return false;
        };
        let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
        let statuses = status.container_statuses.as_deref().unwrap_or_default();
        status.phase.as_deref() == Some(self.phase.as_str())
            && status.pod_ip.as_deref() == self.ips.first().map(|ip| ip.to_string()).as_deref()
            && statuses.len() == containers
            && statuses.iter().all(|c| {
                c.restart_count == self.restarts
                    && c.container_id
                        .as_deref()
                        .is_some_and(|id| id.starts_with(CONTAINER_ID_PREFIX))
            })
            && condition(pod, "Ready").map(|c| c.status.as_str())
                == Some(if ready(pod, self) { "True" } else { "False" })
    }

    /// The pod's status as the kubelet would post it, as a merge patch.
    pub fn status_patch(&self, pod: &Pod) -> serde_json::Value {
        json!({ "status": self.status(pod) })
    }

    pub fn status(&self, pod: &Pod) -> PodStatus {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let running = self.phase == Phase::Running;
        let t = |ts: Timestamp| Some(Time(ts));
        let container_id = |name: &str, run: i32| {
            format!(
                "{CONTAINER_ID_PREFIX}{}",
                full_hash(&format!("{uid}/{name}/{run}"))
            )
        };
        let image_id = |image: Option<&str>| {
            let image = image.unwrap_or_default();
            let repo = image.split('@').next().unwrap_or(image);
            let repo = match repo.rsplit_once(':') {
                Some((r, tag)) if !tag.contains('/') => r,
                _ => repo,
            };
            format!("{repo}@sha256:{}", full_hash(image))
        };
        let terminated = |exit: &Exit, id: String| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: exit.code,
                reason: Some(if exit.code == 0 { "Completed" } else { "Error" }.to_string()),
                started_at: t(exit.started_at),
                finished_at: t(exit.finished_at),
                container_id: Some(id),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container_statuses = spec
            .containers
            .iter()
            .map(|c| {
                let id = container_id(&c.name, self.restarts);
                let (state, last_state) = match (running, &self.last_exit) {
                    (true, last) => (
                        ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: t(self.started_at),
                            }),
                            ..Default::default()
                        },
                        last.as_ref()
                            .map(|e| terminated(e, container_id(&c.name, self.restarts - 1))),
                    ),
                    (false, Some(e)) => (terminated(e, id.clone()), None),
                    (false, None) => (
                        terminated(
                            &Exit {
                                code: 0,
                                started_at: self.started_at,
                                finished_at: self.started_at,
                            },
                            id.clone(),
                        ),
                        None,
                    ),
                };
                ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: image_id(c.image.as_deref()),
                    container_id: Some(id),
                    ready: running,
                    started: Some(running),
                    restart_count: self.restarts,
                    state: Some(state),
                    last_state: Some(last_state.unwrap_or_default()),
                    ..Default::default()
                }
            })
            .collect();
        let init_container_statuses: Vec<ContainerStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let id = container_id(&c.name, 0);
                let sidecar = c.restart_policy.as_deref() == Some("Always");
                let state = if sidecar && running {
                    ContainerState {
                        running: Some(ContainerStateRunning {
                            started_at: t(self.start_time),
                        }),
                        ..Default::default()
                    }
                } else {
                    terminated(
                        &Exit {
                            code: 0,
                            started_at: self.start_time,
                            finished_at: self.start_time,
                        },
                        id.clone(),
                    )
                };
                ContainerStatus {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    image_id: image_id(c.image.as_deref()),
                    container_id: Some(id),
                    ready: !sidecar || running,
                    started: Some(sidecar && running),
                    restart_count: 0,
                    state: Some(state),
                    last_state: Some(ContainerState::default()),
                    ..Default::default()
                }
            })
            .collect();
        let ips: Vec<PodIP> = self
            .ips
            .iter()
            .map(|ip| PodIP { ip: ip.to_string() })
            .collect();
        PodStatus {
            phase: Some(self.phase.as_str().to_string()),
            conditions: Some(self.conditions(pod)),
            host_ip: Some(self.host_ip.clone()),
            host_ips: Some(vec![HostIP {
                ip: self.host_ip.clone(),
            }]),
            pod_ip: ips.first().map(|p| p.ip.clone()),
            pod_ips: Some(ips),
            start_time: t(self.start_time),
            reason: self.reason.clone(),
            message: (self.reason.as_deref() == Some(DEADLINE_REASON))
                .then(|| DEADLINE_MESSAGE.to_string()),
            container_statuses: Some(container_statuses),
            init_container_statuses: (!init_container_statuses.is_empty())
                .then_some(init_container_statuses),
            ..Default::default()
        }
    }

    fn conditions(&self, pod: &Pod) -> Vec<PodCondition> {
        let now = Time(Timestamp::now());
        let running = self.phase == Phase::Running;
        let containers: Vec<&str> = pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter().map(|c| c.name.as_str()))
            .collect();
        let not_ready = format!("containers with unready status: [{}]", containers.join(" "));
        let (containers_reason, containers_message) = match self.phase {
            Phase::Running => (None, None),
            Phase::Succeeded => (Some("PodCompleted".to_string()), None),
            Phase::Failed => (
                Some("ContainersNotReady".to_string()),
                Some(not_ready.clone()),
            ),
        };
        let is_ready = ready(pod, self);
        let (ready_reason, ready_message) = if is_ready || !running {
            (containers_reason.clone(), containers_message.clone())
        } else {
            (
                Some("ReadinessGatesNotReady".to_string()),
                Some(format!(
                    "the status of pod readiness gate{} is not \"True\", but False",
                    unready_gates(pod)
                        .iter()
                        .map(|g| format!(" {g:?}"))
                        .collect::<String>()
                )),
            )
        };
        let status = |b: bool| if b { "True" } else { "False" }.to_string();
        let wanted = [
            ("PodReadyToStartContainers", status(running), None, None),
            ("Initialized", status(true), None, None),
            (
                "ContainersReady",
                status(running),
                containers_reason,
                containers_message,
            ),
            ("Ready", status(is_ready), ready_reason, ready_message),
            ("PodScheduled", status(true), None, None),
        ];
        let existing = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut out: Vec<PodCondition> = existing
            .iter()
            .filter(|c| !OWN_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        for (type_, status, reason, message) in wanted {
            let old = existing.iter().find(|c| c.type_ == type_);
            let last_transition_time = match old {
                Some(o) if o.status == status => o.last_transition_time.clone(),
                _ => Some(now.clone()),
            };
            out.push(PodCondition {
                type_: type_.to_string(),
                status,
                reason,
                message,
                last_transition_time,
                last_probe_time: None,
                observed_generation: None,
            });
        }
        out
    }
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

/// Readiness gates whose condition is not True.
fn unready_gates(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.readiness_gates.iter().flatten())
        .filter(|g| condition(pod, &g.condition_type).is_none_or(|c| c.status != "True"))
        .map(|g| g.condition_type.clone())
        .collect()
}

/// Ready: containers running and every readiness gate True.
fn ready(pod: &Pod, t: &Track) -> bool {
    t.phase == Phase::Running && unready_gates(pod).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::collections::BTreeMap;

    fn pod(policy: &str, exit: Option<&str>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("u1".into()),
                annotations: exit
                    .map(|e| BTreeMap::from([(EXIT_CODE_ANNOTATION.into(), e.into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some(policy.into()),
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("nginx:1.27".into()),
                    ..Default::default()
                }],
                init_containers: Some(vec![Container {
                    name: "init".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn track(now: Timestamp) -> Track {
        Track::new(
            vec!["10.244.0.2".parse().unwrap()],
            "172.16.0.1".into(),
            now,
        )
    }

    fn with_status(mut p: Pod, t: &Track) -> Pod {
        p.status = Some(t.status(&p));
        p
    }

    #[test]
    fn running_status_has_kubelet_shapes() {
        let now = Timestamp::now();
        let p = pod("Always", None);
        let t = track(now);
        assert!(!t.written(&p));
        let s = t.status(&p);
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(s.pod_ip.as_deref(), Some("10.244.0.2"));
        assert_eq!(s.host_ips.as_ref().unwrap()[0].ip, "172.16.0.1");
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.ready);
        assert_eq!(cs.started, Some(true));
        assert!(cs.container_id.as_deref().unwrap().starts_with("hollow://"));
        assert!(cs.image_id.starts_with("nginx@sha256:"), "{}", cs.image_id);
        assert!(cs.state.as_ref().unwrap().running.is_some());
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        let term = init.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(term.reason.as_deref(), Some("Completed"));
        let conds: Vec<(String, String)> = s
            .conditions
            .unwrap()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        for ty in OWN_CONDITIONS {
            assert!(
                conds.contains(&(ty.to_string(), "True".to_string())),
                "{ty}: {conds:?}"
            );
        }
        let p = with_status(p, &t);
        assert!(t.written(&p));
        assert_eq!(Track::recover(&p).unwrap().ips, t.ips);
    }

    #[test]
    fn always_pods_keep_running() {
        let now = Timestamp::now();
        let mut t = track(now);
        let p = pod("Always", Some("3"));
        assert_eq!(
            t.advance(
                &p,
                Duration::from_secs(2),
                now + SignedDuration::from_secs(60)
            ),
            None
        );
        assert_eq!(t.phase, Phase::Running);
    }

    #[test]
    fn never_pods_succeed_or_fail_after_the_run() {
        let now = Timestamp::now();
        let run = Duration::from_secs(2);
        let p = pod("Never", None);
        let mut t = track(now);
        let left = t
            .advance(&p, run, now + SignedDuration::from_millis(500))
            .unwrap();
        assert_eq!(left, Duration::from_millis(1500));
        assert_eq!(t.advance(&p, run, now + SignedDuration::from_secs(2)), None);
        assert_eq!(t.phase, Phase::Succeeded);
        let s = t.status(&p);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(!cs.ready);
        let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (term.exit_code, term.reason.as_deref()),
            (0, Some("Completed"))
        );
        let ready = s
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("False", Some("PodCompleted"))
        );

        let p = pod("Never", Some("3"));
        let mut t = track(now);
        t.advance(&p, run, now + SignedDuration::from_secs(3));
        assert_eq!(t.phase, Phase::Failed);
        let s = t.status(&p);
        let term = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!((term.exit_code, term.reason.as_deref()), (3, Some("Error")));
        let p = with_status(p, &t);
        assert!(t.written(&p));
        let back = Track::recover(&p).unwrap();
        assert_eq!(back.phase, Phase::Failed);
        assert_eq!(back.last_exit.unwrap().code, 3);
    }

    #[test]
    fn on_failure_pods_restart_in_place() {
        let now = Timestamp::now();
        let run = Duration::from_secs(2);
        let p = pod("OnFailure", Some("1"));
        let mut t = track(now);
        let later = now + SignedDuration::from_secs(2);
        assert_eq!(t.advance(&p, run, later), Some(run));
        assert_eq!((t.phase, t.restarts), (Phase::Running, 1));
        let s = t.status(&p);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(cs.restart_count, 1);
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(last.exit_code, 1);
        // Exit code 0 on OnFailure: done.
        let p = pod("OnFailure", None);
        let mut t = track(now);
        t.advance(&p, run, later);
        assert_eq!(t.phase, Phase::Succeeded);
    }

    #[test]
    fn active_deadline_stops_the_pod() {
        let now = Timestamp::now();
        let mut p = pod("Always", None);
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(5);
        let mut t = track(now);
        let left = t.advance(
            &p,
            Duration::from_secs(2),
            now + SignedDuration::from_secs(1),
        );
        assert_eq!(left, Some(Duration::from_secs(4)));
        assert_eq!(
            t.advance(
                &p,
                Duration::from_secs(2),
                now + SignedDuration::from_secs(5)
            ),
            None
        );
        assert_eq!(t.phase, Phase::Failed);
        let s = t.status(&p);
        assert_eq!(s.reason.as_deref(), Some(DEADLINE_REASON));
        assert_eq!(s.message.as_deref(), Some(DEADLINE_MESSAGE));
        let p = with_status(p, &t);
        assert_eq!(
            Track::recover(&p).unwrap().reason.as_deref(),
            Some(DEADLINE_REASON)
        );
        // A Never pod whose run ends first completes; the deadline bounds the wait.
        let mut p = pod("Never", None);
        p.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
        let mut t = track(now);
        assert_eq!(
            t.advance(&p, Duration::from_secs(2), now),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn readiness_gates_hold_ready_back() {
        let now = Timestamp::now();
        let mut p = pod("Always", None);
        p.spec.as_mut().unwrap().readiness_gates =
            Some(vec![k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: "example.com/lb".into(),
            }]);
        let t = track(now);
        let p = with_status(p, &t);
        assert_eq!(condition(&p, "Ready").unwrap().status, "False");
        assert_eq!(condition(&p, "ContainersReady").unwrap().status, "True");
        assert!(t.written(&p));
    }
}

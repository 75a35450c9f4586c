//! What the endpoints and endpointslice controllers share (upstream's
//! `pkg/controller/util/endpoint`): which pods back a service, whether they are ready,
//! the port a service port resolves to in one pod, and the hostname a headless service
//! publishes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Annotation with the time of the last change that triggered an update.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// Label marking the endpoints of a headless service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// The service's selector, if the controllers manage its endpoints (a service without
/// a selector has user-managed endpoints).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .filter(|s| !s.is_empty())
}

pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

pub fn is_pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Whether `pod` belongs in a service's endpoints at all (upstream's
/// `ShouldPodBeInEndpoints`): it has an IP, has not finished, and is not terminating
/// unless terminating pods are wanted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return false;
    }
    if status
        .and_then(|s| s.pod_ip.as_deref())
        .is_none_or(str::is_empty)
    {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The hostname a headless service publishes for `pod` (its `spec.hostname` when its
/// `spec.subdomain` is the service's name).
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (is_headless(svc) && spec.subdomain.as_deref() == svc.metadata.name.as_deref())
        .then(|| hostname.to_string())
}

/// The container port `sp` targets in `pod` (upstream's `podutil.FindPort`): a number
/// as is, a name looked up among the containers' ports of the same protocol.
pub fn find_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let protocol = sp.protocol.as_deref().unwrap_or("TCP");
    match sp.target_port.as_ref() {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            spec.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

pub fn pod_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

/// The latest change among the service and its pods, as the trigger time the
/// controllers publish (upstream tracks the triggering events; the last pod readiness
/// transition or creation, or the service's creation, is what those events were).
pub fn last_change(svc: &Service, pods: &[&Pod]) -> Option<jiff::Timestamp> {
    let mut latest = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    for pod in pods {
        let ready_change = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .filter(|c| c.type_ == "Ready")
            .filter_map(|c| c.last_transition_time.as_ref().map(|t| t.0))
            .max();
        let t = ready_change.or(pod.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let deleted = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0);
        for t in [t, deleted].into_iter().flatten() {
            if latest.is_none_or(|l| t > l) {
                latest = Some(t);
            }
        }
    }
    latest
}

pub fn format_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus, ServiceSpec};

    fn pod_with_port(name: &str, port: i32, protocol: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(name.into()),
                        container_port: port,
                        protocol: Some(protocol.into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn named_ports_resolve_per_pod_and_protocol() {
        let sp = |target: IntOrString, protocol: &str| ServicePort {
            port: 80,
            target_port: Some(target),
            protocol: Some(protocol.into()),
            ..Default::default()
        };
        let pod = pod_with_port("http", 8080, "TCP");
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("http".into()), "TCP")),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("http".into()), "UDP")),
            None
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::String("web".into()), "TCP")),
            None
        );
        assert_eq!(
            find_port(&pod, &sp(IntOrString::Int(9000), "TCP")),
            Some(9000)
        );
    }

    #[test]
    fn pods_without_ip_finished_or_terminating_are_left_out() {
        let mut pod = Pod::default();
        assert!(!should_be_in_endpoints(&pod, false));
        pod.status = Some(PodStatus {
            pod_ip: Some("10.0.0.1".into()),
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert!(should_be_in_endpoints(&pod, false));
        pod.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        assert!(!should_be_in_endpoints(&pod, false));
        assert!(should_be_in_endpoints(&pod, true));
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!should_be_in_endpoints(&pod, true));
    }

    #[test]
    fn headless_services_publish_hostnames_of_their_subdomain() {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.spec = Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            ..Default::default()
        });
        let mut pod = Pod {
            spec: Some(PodSpec {
                hostname: Some("web-0".into()),
                subdomain: Some("web".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(hostname(&pod, &svc).as_deref(), Some("web-0"));
        pod.spec.as_mut().unwrap().subdomain = Some("other".into());
        assert_eq!(hostname(&pod, &svc), None);
    }
}

//! The endpoints controller (upstream `endpoints`): for every service with a selector,
//! an Endpoints object of the same name listing the selected pods' addresses, ready
//! ones under `addresses` and the others under `notReadyAddresses` (all ready with
//! `publishNotReadyAddresses`), grouped into subsets by the ports they serve (named
//! target ports resolve per pod). Headless services publish pod hostnames. At most
//! 1000 addresses are kept; beyond that the object is truncated and annotated
//! `endpoints.kubernetes.io/over-capacity: truncated`. The Endpoints of a deleted
//! service are deleted.

pub mod runner;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use self::runner::{split_key, ServiceController};
use crate::context::Context;
use crate::controllers::util::endpoints::{
    self as eputil, format_time, HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME,
};
use crate::controllers::util::queue::Outcome;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "endpoint-controller";
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
/// Addresses an Endpoints object holds at most (upstream's `maxCapacity`).
pub const MAX_CAPACITY: usize = 1000;

struct Controller {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let ep_informer = ctx.informers.get::<Endpoints>();
    let owned = runner::owned_changes(&ep_informer, |ep: &Endpoints| {
        Some(format!(
            "{}/{}",
            ep.metadata.namespace.as_deref()?,
            ep.metadata.name.as_deref()?
        ))
    })?;
    let base = ServiceController::new(ctx, NAME, owned)?;
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        services: base.services.clone(),
        pods: base.pods.clone(),
        endpoints: ep_informer.store().clone(),
    });
    let workers = usize::from(ctx.options.concurrent_endpoint_syncs);
    let endpoints = ep_informer.store().clone();
    Ok(
        base.run(workers, vec![runner::ready(endpoints)], move |key| {
            let controller = Arc::clone(&controller);
            async move { controller.sync(&key).await }
        }),
    )
}

/// An endpoint port's identity, for grouping addresses by the ports they serve.
type PortSet = Vec<(Option<String>, i32, Option<String>, Option<String>)>;

/// The subsets for `svc` backed by `pods`, and whether they were truncated.
pub fn desired_subsets(svc: &Service, pods: &[&Pod]) -> (Vec<EndpointSubset>, bool) {
    let publish = eputil::publish_not_ready(svc);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut groups: BTreeMap<PortSet, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in pods {
        if !eputil::should_be_in_endpoints(pod, publish) {
            continue;
        }
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let address = EndpointAddress {
            ip,
            hostname: eputil::hostname(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(eputil::pod_ref(pod)),
        };
        let mut set: PortSet = Vec::new();
        for sp in &ports {
            if let Some(port) = eputil::find_port(pod, sp) {
                set.push((
                    sp.name.clone().filter(|n| !n.is_empty()),
                    port,
                    Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    sp.app_protocol.clone(),
                ));
            }
        }
        // A pod serving none of the service's ports is not an endpoint (a headless
        // service without ports lists addresses only).
        if set.is_empty() && !(ports.is_empty() && eputil::is_headless(svc)) {
            continue;
        }
        set.sort();
        let entry = groups.entry(set).or_default();
        if publish || eputil::is_pod_ready(pod) {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    let mut subsets: Vec<EndpointSubset> = groups
        .into_iter()
        .map(|(ports, (mut ready, mut not_ready))| {
            let key = |a: &EndpointAddress| {
                (
                    a.ip.clone(),
                    a.target_ref.as_ref().and_then(|r| r.uid.clone()),
                )
            };
            ready.sort_by_key(key);
            not_ready.sort_by_key(key);
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .into_iter()
                        .map(|(name, port, protocol, app_protocol)| EndpointPort {
                            name,
                            port,
                            protocol,
                            app_protocol,
                        })
                        .collect()
                }),
            }
        })
        .collect();
    let truncated = truncate(&mut subsets, MAX_CAPACITY);
    (subsets, truncated)
}

fn count(v: &Option<Vec<EndpointAddress>>) -> usize {
    v.as_ref().map_or(0, Vec::len)
}

/// Cut the subsets down to `max` addresses, each subset keeping its share (upstream's
/// `truncateEndpoints`): not-ready addresses go first; when the ready ones alone are
/// too many, all not-ready ones go and the ready ones are cut.
pub fn truncate(subsets: &mut [EndpointSubset], max: usize) -> bool {
    let ready: usize = subsets.iter().map(|s| count(&s.addresses)).sum();
    let not_ready: usize = subsets.iter().map(|s| count(&s.not_ready_addresses)).sum();
    if ready + not_ready <= max {
        return false;
    }
    let truncate_ready = ready > max;
    let (budget, total) = if truncate_ready {
        (max, ready)
    } else {
        (max - ready, not_ready)
    };
    let mut left = budget;
    for s in subsets.iter_mut() {
        let n = if truncate_ready {
            count(&s.addresses)
        } else {
            count(&s.not_ready_addresses)
        };
        let share = (n * budget).div_ceil(total.max(1)).min(left);
        if truncate_ready {
            if let Some(a) = s.addresses.as_mut() {
                a.truncate(share);
            }
            s.not_ready_addresses = None;
            left -= count(&s.addresses);
        } else {
            if let Some(a) = s.not_ready_addresses.as_mut() {
                a.truncate(share);
            }
            left -= count(&s.not_ready_addresses);
        }
    }
    true
}

fn normalized(subsets: &Option<Vec<EndpointSubset>>) -> Vec<EndpointSubset> {
    subsets
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|mut s| {
            if s.addresses.as_ref().is_some_and(Vec::is_empty) {
                s.addresses = None;
            }
            if s.not_ready_addresses.as_ref().is_some_and(Vec::is_empty) {
                s.not_ready_addresses = None;
            }
            if s.ports.as_ref().is_some_and(Vec::is_empty) {
                s.ports = None;
            }
            s
        })
        .collect()
}

/// The labels the Endpoints of `svc` carry: the service's, the headless marker, and
/// the managed-by label.
pub fn desired_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if eputil::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(MANAGED_BY_LABEL.into(), NAME.into());
    labels
}

impl Controller {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let Some(svc) = self.services.get(&ObjectRef::new(name).within(ns)) else {
            // The service is gone: so are its endpoints.
            return match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Outcome::Forget,
                Err(kube::Error::Api(e)) if e.code == 404 => Outcome::Forget,
                Err(e) => {
                    tracing::warn!(controller = NAME, key, error = %e, "deleting endpoints");
                    Outcome::Retry
                }
            };
        };
        let Some(selector) = eputil::selector(&svc) else {
            return Outcome::Forget;
        };
        let pods: Vec<Arc<Pod>> = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns) && eputil::selects(selector, p)
        });
        let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        let (subsets, truncated) = desired_subsets(&svc, &pods);
        let labels = desired_labels(&svc);
        let current = self.endpoints.get(&ObjectRef::new(name).within(ns));
        if let Some(cur) = &current {
            let annotations = cur.metadata.annotations.clone().unwrap_or_default();
            let capacity_ok = annotations.contains_key(OVER_CAPACITY) == truncated;
            if normalized(&cur.subsets) == subsets
                && cur.metadata.labels.clone().unwrap_or_default() == labels
                && capacity_ok
            {
                return Outcome::Forget;
            }
        }
        let mut annotations = current
            .as_ref()
            .and_then(|c| c.metadata.annotations.clone())
            .unwrap_or_default();
        annotations.remove(OVER_CAPACITY);
        if truncated {
            annotations.insert(OVER_CAPACITY.into(), "truncated".into());
        }
        if let Some(t) = eputil::last_change(&svc, &pods) {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), format_time(t));
        }
        let mut ep = Endpoints::default();
        ep.metadata.name = Some(name.to_string());
        ep.metadata.namespace = Some(ns.to_string());
        ep.metadata.labels = Some(labels);
        ep.metadata.annotations = Some(annotations);
        ep.subsets = (!subsets.is_empty()).then_some(subsets);
        let result = match &current {
            Some(cur) => {
                ep.metadata.resource_version = cur.metadata.resource_version.clone();
                api.replace(name, &PostParams::default(), &ep).await
            }
            None => api.create(&PostParams::default(), &ep).await,
        };
        match result {
            Ok(_) => Outcome::Forget,
            Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("being terminated") => {
                Outcome::Forget
            }
            Err(e) => {
                tracing::debug!(controller = NAME, key, error = %e, "updating endpoints; retrying");
                Outcome::Retry
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, PodCondition, PodSpec, PodStatus, ServicePort, ServiceSpec,
    };
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn service(publish: bool) -> Service {
        let mut svc = Service::default();
        svc.metadata.name = Some("web".into());
        svc.spec = Some(ServiceSpec {
            selector: Some([("app".to_string(), "web".to_string())].into()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            publish_not_ready_addresses: Some(publish),
            ..Default::default()
        });
        svc
    }

    fn pod(name: &str, ip: &str, port: i32, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("default".into());
        p.metadata.uid = Some(format!("uid-{name}"));
        p.spec = Some(PodSpec {
            node_name: Some("node-1".into()),
            containers: vec![Container {
                name: "c".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(ip.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    fn ips(v: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        v.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn subsets_group_by_resolved_port_and_split_readiness() {
        let a = pod("a", "10.0.0.2", 8080, true);
        let b = pod("b", "10.0.0.1", 8080, false);
        let c = pod("c", "10.0.0.3", 9090, true);
        let (subsets, truncated) = desired_subsets(&service(false), &[&a, &b, &c]);
        assert!(!truncated);
        assert_eq!(subsets.len(), 2);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.2"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), vec!["10.0.0.1"]);
        assert_eq!(subsets[0].ports.as_ref().unwrap()[0].port, 8080);
        assert_eq!(ips(&subsets[1].addresses), vec!["10.0.0.3"]);
        let target = subsets[0].addresses.as_ref().unwrap()[0]
            .target_ref
            .clone()
            .unwrap();
        assert_eq!(target.name.as_deref(), Some("a"));
        // publishNotReadyAddresses: everything is ready.
        let (subsets, _) = desired_subsets(&service(true), &[&a, &b]);
        assert_eq!(ips(&subsets[0].addresses), vec!["10.0.0.1", "10.0.0.2"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn truncation_keeps_shares_and_prefers_ready_addresses() {
        let addrs = |n: usize, base: usize| {
            Some(
                (0..n)
                    .map(|i| EndpointAddress {
                        ip: format!("10.0.{}.{}", base, i),
                        ..Default::default()
                    })
                    .collect::<Vec<_>>(),
            )
        };
        let mut s = vec![
            EndpointSubset {
                addresses: addrs(600, 1),
                not_ready_addresses: addrs(300, 2),
                ports: None,
            },
            EndpointSubset {
                addresses: addrs(200, 3),
                not_ready_addresses: addrs(100, 4),
                ports: None,
            },
        ];
        assert!(truncate(&mut s, 1000));
        let total: usize = s
            .iter()
            .map(|x| count(&x.addresses) + count(&x.not_ready_addresses))
            .sum();
        assert_eq!(total, 1000);
        assert_eq!((count(&s[0].addresses), count(&s[1].addresses)), (600, 200));
        assert_eq!(count(&s[0].not_ready_addresses), 150);
        assert_eq!(count(&s[1].not_ready_addresses), 50);
        let mut small = s.clone();
        assert!(!truncate(&mut small, 1000));
    }
}

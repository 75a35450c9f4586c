//! The endpointslice controller (upstream `endpointslice`): for every service with a
//! selector, EndpointSlices (labelled `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`, owned by
//! the service) listing one endpoint per selected pod with its address in the
//! service's primary IP family, conditions ready/serving/terminating, node name,
//! zone, target reference and (headless services) hostname. Endpoints are grouped by
//! the ports they serve and packed into slices of at most `--max-endpoints-per-slice`;
//! an endpoint stays in the slice it is in while it can, so a change touches few
//! slices. A service without endpoints keeps one empty placeholder slice.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::context::Context;
use crate::controllers::endpoints::runner::{self, split_key, ServiceController};
use crate::controllers::util::endpoints::{
    self as eputil, format_time, HEADLESS_LABEL, LAST_CHANGE_TRIGGER_TIME,
};
use crate::controllers::util::queue::Outcome;
use crate::controllers::util::refs::controller_ref;
use crate::controllers::ControllerFuture;

pub const NAME: &str = "endpointslice-controller";
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

struct Controller {
    client: kube::Client,
    services: Store<Service>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    max_per_slice: usize,
}

fn service_key(slice: &EndpointSlice) -> Option<String> {
    let labels = slice.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    Some(format!(
        "{}/{}",
        slice.metadata.namespace.as_deref()?,
        labels.get(SERVICE_NAME_LABEL)?
    ))
}

pub fn start(ctx: &Context) -> anyhow::Result<ControllerFuture> {
    let slice_informer = ctx.informers.get::<EndpointSlice>();
    let node_informer = ctx.informers.get::<Node>();
    let owned = runner::owned_changes(&slice_informer, service_key)?;
    let base = ServiceController::new(ctx, NAME, owned)?;
    let controller = Arc::new(Controller {
        client: ctx.client.clone(),
        services: base.services.clone(),
        pods: base.pods.clone(),
        nodes: node_informer.store().clone(),
        slices: slice_informer.store().clone(),
        max_per_slice: ctx.options.max_endpoints_per_slice.max(1),
    });
    let workers = usize::from(ctx.options.concurrent_service_endpoint_syncs);
    let ready = vec![
        runner::ready(slice_informer.store().clone()),
        runner::ready(node_informer.store().clone()),
    ];
    Ok(base.run(workers, ready, move |key| {
        let controller = Arc::clone(&controller);
        async move { controller.sync(&key).await }
    }))
}

/// The ports an endpoint serves, sorted (slices hold endpoints with equal port sets).
type PortSet = Vec<EndpointPort>;

/// A port's identity: name, number, protocol.
type PortKey = (Option<String>, Option<i32>, Option<String>);
/// Desired endpoints by the identities of the ports they serve.
pub type Desired = BTreeMap<Vec<PortKey>, (PortSet, Vec<Endpoint>)>;

fn port_key(p: &EndpointPort) -> PortKey {
    (p.name.clone(), p.port, p.protocol.clone())
}

/// The service's primary address type.
pub fn address_type(svc: &Service) -> &'static str {
    let family = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(String::as_str);
    if family == Some("IPv6") {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// One pod as an endpoint of `svc`, with the ports it serves; `None` when it has no
/// address of the slice's family.
pub fn pod_endpoint(
    svc: &Service,
    pod: &Pod,
    zone: Option<String>,
    family: &str,
) -> Option<(PortSet, Endpoint)> {
    let status = pod.status.as_ref()?;
    let mut ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.clone())
        .collect();
    if ips.is_empty() {
        ips.extend(status.pod_ip.clone());
    }
    let ip = ips
        .into_iter()
        .find(|ip| ip.contains(':') == (family == "IPv6"))?;
    let serving = eputil::is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // Never ready while terminating, unless not-ready addresses are published.
    let ready = eputil::publish_not_ready(svc) || (serving && !terminating);
    let mut ports: PortSet = Vec::new();
    for sp in svc.spec.as_ref()?.ports.iter().flatten() {
        if let Some(port) = eputil::find_port(pod, sp) {
            ports.push(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            });
        }
    }
    ports.sort_by_key(port_key);
    let endpoint = Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: eputil::hostname(pod, svc),
        node_name: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty()),
        target_ref: Some(eputil::pod_ref(pod)),
        zone,
        ..Default::default()
    };
    Some((ports, endpoint))
}

fn endpoint_id(e: &Endpoint) -> String {
    e.target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_else(|| e.addresses.join(","))
}

/// The slices wanted, from the existing ones (by index into `existing`, `None` for a
/// new slice) and the endpoints each should hold.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub slices: Vec<(Option<usize>, PortSet, Vec<Endpoint>)>,
    pub delete: Vec<usize>,
}

/// Pack `desired` endpoints (grouped by port set) into slices of at most `max`,
/// keeping endpoints in the existing slice that holds them.
pub fn plan(existing: &[(PortSet, Vec<Endpoint>)], desired: Desired, max: usize) -> Plan {
    let mut out = Plan {
        slices: Vec::new(),
        delete: Vec::new(),
    };
    let mut used: HashSet<usize> = HashSet::new();
    for (key, (ports, endpoints)) in desired {
        let mut wanted: BTreeMap<String, Endpoint> = endpoints
            .into_iter()
            .map(|e| (endpoint_id(&e), e))
            .collect();
        let mut slices: Vec<(Option<usize>, Vec<Endpoint>)> = Vec::new();
        for (i, (eports, eps)) in existing.iter().enumerate() {
            if used.contains(&i) || eports.iter().map(port_key).collect::<Vec<_>>() != key {
                continue;
            }
            let kept: Vec<Endpoint> = eps
                .iter()
                .filter_map(|e| wanted.remove(&endpoint_id(e)))
                .take(max)
                .collect();
            used.insert(i);
            slices.push((Some(i), kept));
        }
        // New endpoints fill the slices with room, then new slices.
        let mut rest = wanted.into_values();
        for (_, eps) in slices.iter_mut() {
            while eps.len() < max {
                match rest.next() {
                    Some(e) => eps.push(e),
                    None => break,
                }
            }
        }
        let rest: Vec<Endpoint> = rest.collect();
        for chunk in rest.chunks(max) {
            slices.push((None, chunk.to_vec()));
        }
        for (i, eps) in slices {
            match (i, eps.is_empty()) {
                (Some(i), true) => out.delete.push(i),
                _ => out.slices.push((i, ports.clone(), eps)),
            }
        }
    }
    // Slices of port sets no longer served go, except one kept as the placeholder when
    // there are no endpoints at all.
    for i in 0..existing.len() {
        if !used.contains(&i) {
            out.delete.push(i);
        }
    }
    if out.slices.is_empty() {
        let placeholder = out
            .delete
            .iter()
            .position(|&i| existing[i].0.is_empty() && existing[i].1.is_empty());
        match placeholder {
            Some(pos) => {
                let i = out.delete.remove(pos);
                out.slices.push((Some(i), Vec::new(), Vec::new()));
            }
            None => out.slices.push((None, Vec::new(), Vec::new())),
        }
    }
    out.delete.sort_unstable();
    out
}

/// The labels a slice of `svc` carries.
pub fn slice_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.metadata.labels.clone().unwrap_or_default();
    labels.remove(HEADLESS_LABEL);
    if eputil::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(
        SERVICE_NAME_LABEL.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

impl Controller {
    async fn sync(&self, key: &str) -> Outcome {
        let (ns, name) = split_key(key);
        // A deleted service's slices go with it (the garbage collector follows their
        // owner references).
        let Some(svc) = self.services.get(&ObjectRef::new(name).within(ns)) else {
            return Outcome::Forget;
        };
        let Some(selector) = eputil::selector(&svc) else {
            return Outcome::Forget;
        };
        let family = address_type(&svc);
        let pods: Vec<Arc<Pod>> = self.pods.state_filter(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && eputil::selects(selector, p)
                && eputil::should_be_in_endpoints(p, true)
        });
        let mut desired: Desired = BTreeMap::new();
        for pod in &pods {
            let zone = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .and_then(|n| self.nodes.get(&ObjectRef::new(n)))
                .and_then(|n| n.metadata.labels.as_ref()?.get(ZONE_LABEL).cloned());
            let Some((ports, endpoint)) = pod_endpoint(&svc, pod, zone, family) else {
                continue;
            };
            let has_ports = svc
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|p| !p.is_empty());
            if ports.is_empty() && has_ports {
                continue;
            }
            let k: Vec<_> = ports.iter().map(port_key).collect();
            desired
                .entry(k)
                .or_insert_with(|| (ports, Vec::new()))
                .1
                .push(endpoint);
        }
        let mut existing: Vec<Arc<EndpointSlice>> = self.slices.state_filter(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && service_key(s).as_deref() == Some(key)
                && s.address_type == family
                && s.metadata.deletion_timestamp.is_none()
        });
        existing.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let existing_content: Vec<(PortSet, Vec<Endpoint>)> = existing
            .iter()
            .map(|s| (s.ports.clone().unwrap_or_default(), s.endpoints.clone()))
            .collect();
        let plan = plan(&existing_content, desired, self.max_per_slice);
        let labels = slice_labels(&svc);
        let pod_refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
        let trigger = eputil::last_change(&svc, &pod_refs).map(format_time);
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let mut failed = false;
        for (index, ports, endpoints) in plan.slices {
            let current = index.map(|i| &existing[i]);
            if let Some(cur) = current {
                if cur.endpoints == endpoints
                    && cur.ports.clone().unwrap_or_default() == ports
                    && cur.metadata.labels.as_ref() == Some(&labels)
                {
                    continue;
                }
            }
            let mut slice = match current {
                Some(cur) => (**cur).clone(),
                None => {
                    let mut s = EndpointSlice::default();
                    s.metadata.generate_name = Some(format!("{name}-"));
                    s.metadata.namespace = Some(ns.to_string());
                    s.metadata.owner_references = Some(vec![controller_ref(svc.as_ref())]);
                    s.address_type = family.to_string();
                    s
                }
            };
            slice.metadata.labels = Some(labels.clone());
            if let Some(t) = &trigger {
                slice
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default)
                    .insert(LAST_CHANGE_TRIGGER_TIME.into(), t.clone());
            }
            slice.endpoints = endpoints;
            slice.ports = (!ports.is_empty()).then_some(ports);
            let result = match current {
                Some(cur) => {
                    api.replace(
                        cur.metadata.name.as_deref().unwrap_or_default(),
                        &PostParams::default(),
                        &slice,
                    )
                    .await
                }
                None => api.create(&PostParams::default(), &slice).await,
            };
            if let Err(e) = result {
                if !matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
                {
                    tracing::debug!(controller = NAME, key, error = %e, "writing endpoint slice");
                    failed = true;
                }
            }
        }
        for i in plan.delete {
            let slice_name = existing[i].metadata.name.clone().unwrap_or_default();
            match api.delete(&slice_name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    tracing::debug!(controller = NAME, key, error = %e, "deleting endpoint slice");
                    failed = true;
                }
            }
        }
        if failed {
            Outcome::Retry
        } else {
            Outcome::Forget
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(uid: &str) -> Endpoint {
        Endpoint {
            addresses: vec![format!("10.0.0.{}", uid.len())],
            target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                uid: Some(uid.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn port(p: i32) -> EndpointPort {
        EndpointPort {
            name: Some("http".into()),
            port: Some(p),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }
    }

    fn desired(ports: PortSet, eps: Vec<Endpoint>) -> Desired {
        let key = ports.iter().map(port_key).collect();
        [(key, (ports, eps))].into()
    }

    #[test]
    fn endpoints_are_packed_into_slices_of_the_maximum_size() {
        let eps: Vec<Endpoint> = (0..5).map(|i| ep(&format!("u{i}"))).collect();
        let p = plan(&[], desired(vec![port(80)], eps), 2);
        let sizes: Vec<usize> = p.slices.iter().map(|s| s.2.len()).collect();
        assert_eq!(sizes, vec![2, 2, 1]);
        assert!(p.slices.iter().all(|s| s.0.is_none()));
    }

    #[test]
    fn endpoints_stay_in_their_slice_and_new_ones_fill_gaps() {
        let existing = vec![
            (vec![port(80)], vec![ep("a"), ep("b")]),
            (vec![port(80)], vec![ep("c")]),
            (vec![port(81)], vec![ep("z")]),
        ];
        // "b" left, "d" arrived; port 81 no longer served.
        let p = plan(
            &existing,
            desired(vec![port(80)], vec![ep("a"), ep("c"), ep("d")]),
            2,
        );
        assert_eq!(p.slices.len(), 2);
        assert_eq!(p.slices[0].0, Some(0));
        assert_eq!(p.slices[0].2, vec![ep("a"), ep("d")]);
        assert_eq!(p.slices[1].2, vec![ep("c")]);
        assert_eq!(p.delete, vec![2]);
    }

    #[test]
    fn no_endpoints_leave_one_placeholder_slice() {
        let p = plan(&[(vec![port(80)], vec![ep("a")])], BTreeMap::new(), 100);
        assert_eq!(p.slices, vec![(None, vec![], vec![])]);
        assert_eq!(p.delete, vec![0]);
        let p = plan(&[(vec![], vec![])], BTreeMap::new(), 100);
        assert_eq!(p.slices, vec![(Some(0), vec![], vec![])]);
        assert!(p.delete.is_empty());
    }
}

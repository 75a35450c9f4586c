//! services: defaulting and validation as upstream's, cluster IPs and node ports handed out
//! by the persisted allocators (and given back on delete or type change).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use apimachinery::errors::GroupKind;
use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::{validation, StatusError};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::object;
use crate::registry::allocator::{AllocationError, IpAllocator, PortAllocator};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField, StoreHooks};

/// The first address of the service range: the `kubernetes` service's cluster IP.
pub fn first_service_ip(range: &ipnet::IpNet) -> Option<IpAddr> {
    range.hosts().next()
}

pub struct ServiceStrategy;

const TYPES: &[&str] = &["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Type", "string", "The type of the service"),
    Column::new("Cluster-IP", "string", "The cluster IP of the service"),
    Column::new("External-IP", "string", "The external IPs of the service"),
    Column::new("Port(s)", "string", "The ports of the service"),
    AGE,
    Column::new("Selector", "string", "The label selector of the service").wide(),
];

const FIELDS: &[SelectableField] = &[
    SelectableField::new("spec.clusterIP"),
    SelectableField::new("spec.type"),
];

fn spec_type(spec: &ServiceSpec) -> &str {
    spec.type_.as_deref().unwrap_or("ClusterIP")
}

fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

fn needs_node_ports(spec: &ServiceSpec) -> bool {
    matches!(spec_type(spec), "NodePort" | "LoadBalancer")
}

impl TypedStrategy for ServiceStrategy {
    type Object = Service;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Service>()
            .short_names(&["svc"])
            .categories(&["all"])
            .storage_path("services/specs")
            .with_status()
            .name_validator(apimachinery::validation::NameValidator::Dns1035Label)
            .returns_deleted_object()
    }

    fn default(&self, svc: &mut Service) {
        let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
        if spec.type_.is_none() {
            spec.type_ = Some("ClusterIP".into());
        }
        if spec.session_affinity.is_none() {
            spec.session_affinity = Some("None".into());
        }
        let ty = spec_type(spec).to_string();
        for port in spec.ports.iter_mut().flatten() {
            if port.protocol.is_none() {
                port.protocol = Some("TCP".into());
            }
            if port.target_port.is_none() {
                port.target_port = Some(IntOrString::Int(port.port));
            }
        }
        if ty != "ExternalName" {
            if spec.internal_traffic_policy.is_none() {
                spec.internal_traffic_policy = Some("Cluster".into());
            }
            if spec.ip_families.is_none() && !(is_headless(spec) && spec.selector.is_none()) {
                spec.ip_families = Some(vec!["IPv4".into()]);
            }
            if spec.ip_family_policy.is_none() {
                spec.ip_family_policy = Some("SingleStack".into());
            }
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
            && spec.external_traffic_policy.is_none()
        {
            spec.external_traffic_policy = Some("Cluster".into());
        }
        if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
            spec.allocate_load_balancer_node_ports = Some(true);
        }
        // clusterIP and clusterIPs mirror each other.
        match (&spec.cluster_ip, &spec.cluster_ips) {
            (Some(ip), None) if !ip.is_empty() => spec.cluster_ips = Some(vec![ip.clone()]),
            (None, Some(ips)) if !ips.is_empty() => spec.cluster_ip = Some(ips[0].clone()),
            _ => {}
        }
        if svc.status.is_none() {
            svc.status = Some(Default::default());
        }
        if let Some(status) = svc.status.as_mut() {
            if status.load_balancer.is_none() {
                status.load_balancer = Some(Default::default());
            }
        }
    }

    fn prepare_for_create(&self, svc: &mut Service) {
        svc.status = Some(k8s_openapi::api::core::v1::ServiceStatus {
            load_balancer: Some(Default::default()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&self, new: &mut Service, old: &Service) {
        new.status = old.status.clone();
        // Clients that send back what they read without clusterIP keep the allocation.
        if let (Some(n), Some(o)) = (new.spec.as_mut(), old.spec.as_ref()) {
            if n.cluster_ip.as_deref().is_none_or(str::is_empty)
                && spec_type(n) != "ExternalName"
                && spec_type(o) != "ExternalName"
            {
                n.cluster_ip = o.cluster_ip.clone();
                n.cluster_ips = o.cluster_ips.clone();
            }
            if needs_node_ports(n) && needs_node_ports(o) {
                for port in n.ports.iter_mut().flatten() {
                    if port.node_port.unwrap_or(0) == 0 {
                        port.node_port = o
                            .ports
                            .iter()
                            .flatten()
                            .find(|p| p.port == port.port && p.protocol == port.protocol)
                            .and_then(|p| p.node_port);
                    }
                }
            }
        }
    }

    fn validate(&self, svc: &Service) -> ErrorList {
        let mut errs = Vec::new();
        let spec_path = Path::new("spec");
        let Some(spec) = svc.spec.as_ref() else {
            return vec![FieldError::required(&spec_path, "")];
        };
        let ty = spec_type(spec);
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported(
                &spec_path.child("type"),
                ty,
                TYPES,
            ));
        }
        let ports = spec.ports.clone().unwrap_or_default();
        if ports.is_empty() && ty != "ExternalName" && !is_headless(spec) {
            errs.push(FieldError::required(&spec_path.child("ports"), ""));
        }
        let mut names = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (i, p) in ports.iter().enumerate() {
            let path = spec_path.child("ports").index(i);
            errs.extend(validate_port(p, &path, ports.len() > 1));
            if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
                if !names.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(&path.child("name"), name));
                }
            }
            let key = (p.port, p.protocol.clone().unwrap_or_default());
            if !seen.insert(key) {
                errs.push(FieldError::duplicate(
                    &path,
                    format!("{}/{}", p.port, p.protocol.clone().unwrap_or_default()),
                ));
            }
            if p.node_port.is_some_and(|n| n != 0) && !needs_node_ports(spec) {
                errs.push(FieldError::forbidden(
                    &path.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
        if ty == "ExternalName" {
            let name = spec.external_name.clone().unwrap_or_default();
            if name.is_empty() {
                errs.push(FieldError::required(&spec_path.child("externalName"), ""));
            } else {
                for msg in validation::is_dns1123_subdomain(name.trim_end_matches('.')) {
                    errs.push(FieldError::invalid(
                        &spec_path.child("externalName"),
                        name.as_str(),
                        msg,
                    ));
                }
            }
        }
        if let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| !ip.is_empty() && *ip != "None")
        {
            if ip.parse::<IpAddr>().is_err() {
                errs.push(FieldError::invalid(
                    &spec_path.child("clusterIPs").index(0),
                    ip,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
            }
        }
        if let Some(aff) = spec.session_affinity.as_deref() {
            if !["None", "ClientIP"].contains(&aff) {
                errs.push(FieldError::not_supported(
                    &spec_path.child("sessionAffinity"),
                    aff,
                    &["ClientIP", "None"],
                ));
            }
        }
        if let Some(sel) = &spec.selector {
            for (k, v) in sel {
                let p = spec_path.child("selector");
                for msg in validation::is_qualified_name(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), msg));
                }
                for msg in validation::is_valid_label_value(v) {
                    errs.push(FieldError::invalid(&p.key(k), v.as_str(), msg));
                }
            }
        }
        errs
    }

    fn validate_update(&self, new: &Service, old: &Service) -> ErrorList {
        let mut errs = self.validate(new);
        let (Some(n), Some(o)) = (new.spec.as_ref(), old.spec.as_ref()) else {
            return errs;
        };
        let changing_type = spec_type(n) != spec_type(o);
        let old_ip = o.cluster_ip.clone().unwrap_or_default();
        let new_ip = n.cluster_ip.clone().unwrap_or_default();
        if !changing_type && !old_ip.is_empty() && old_ip != new_ip {
            errs.push(FieldError::invalid(
                &Path::new("spec").child("clusterIPs").index(0),
                Value::from(vec![new_ip]),
                "may not change once set",
            ));
        }
        errs
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, svc: &Service, raw: &Value) -> Vec<Value> {
        let spec = svc.spec.clone().unwrap_or_default();
        let ty = spec_type(&spec).to_string();
        let cluster_ip = match spec.cluster_ip.as_deref() {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => "<none>".to_string(),
        };
        let ports = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                match p.node_port {
                    Some(np) if np > 0 => format!("{}:{np}/{proto}", p.port),
                    _ => format!("{}/{proto}", p.port),
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let selector = spec
            .selector
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into());
        vec![
            svc.metadata.name.clone().unwrap_or_default().into(),
            ty.clone().into(),
            cluster_ip.into(),
            external_ips(svc, &ty).into(),
            if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports
            }
            .into(),
            table::age(raw),
            selector.into(),
        ]
    }
}

/// Upstream's EXTERNAL-IP column.
fn external_ips(svc: &Service, ty: &str) -> String {
    let spec = svc.spec.clone().unwrap_or_default();
    let mut ips: Vec<String> = spec.external_ips.clone().unwrap_or_default();
    match ty {
        "ExternalName" => return spec.external_name.unwrap_or_default(),
        "LoadBalancer" => {
            let ingress = svc
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone());
            for i in ingress.unwrap_or_default() {
                if let Some(ip) = i.ip.or(i.hostname) {
                    ips.push(ip);
                }
            }
            if ips.is_empty() {
                return "<pending>".into();
            }
        }
        _ => {}
    }
    if ips.is_empty() {
        "<none>".into()
    } else {
        ips.join(",")
    }
}

fn validate_port(p: &ServicePort, path: &Path, multiple: bool) -> ErrorList {
    let mut errs = Vec::new();
    match p.name.as_deref() {
        None | Some("") if multiple => errs.push(FieldError::required(&path.child("name"), "")),
        Some(name) if !name.is_empty() => {
            for msg in validation::is_dns1123_label(name) {
                errs.push(FieldError::invalid(&path.child("name"), name, msg));
            }
        }
        _ => {}
    }
    for msg in validation::is_valid_port_num(p.port) {
        errs.push(FieldError::invalid(&path.child("port"), p.port, msg));
    }
    let proto = p.protocol.as_deref().unwrap_or("TCP");
    if !PROTOCOLS.contains(&proto) {
        errs.push(FieldError::not_supported(
            &path.child("protocol"),
            proto,
            PROTOCOLS,
        ));
    }
    match &p.target_port {
        Some(IntOrString::Int(n)) => {
            for msg in validation::is_valid_port_num(*n) {
                errs.push(FieldError::invalid(&path.child("targetPort"), *n, msg));
            }
        }
        Some(IntOrString::String(s)) => {
            for msg in validation::is_valid_port_name(s) {
                errs.push(FieldError::invalid(
                    &path.child("targetPort"),
                    s.as_str(),
                    msg,
                ));
            }
        }
        None => {}
    }
    errs
}

/// Hands out and takes back cluster IPs and node ports.
pub struct ServiceAllocations {
    pub ips: IpAllocator,
    pub ports: PortAllocator,
}

fn service_spec(obj: &Value) -> ServiceSpec {
    obj.get("spec")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default()
}

fn allocation_error(obj: &Value, path: Path, value: Value, e: AllocationError) -> StatusError {
    let detail = match &e {
        AllocationError::Full => "range is full".to_string(),
        other => format!("failed to allocate: {other}"),
    };
    StatusError::invalid(
        &GroupKind::new("", "Service"),
        object::name(obj),
        &vec![FieldError::invalid(&path, value, detail)],
    )
}

fn cluster_ip_of(spec: &ServiceSpec) -> Option<IpAddr> {
    spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok())
}

fn node_ports_of(spec: &ServiceSpec) -> Vec<i32> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port)
        .filter(|p| *p > 0)
        .collect()
}

impl ServiceAllocations {
    /// Fill in the cluster IP and node ports a service needs.
    async fn allocate(
        &self,
        obj: &mut Value,
        old: Option<&ServiceSpec>,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        let mut spec = service_spec(obj);
        let ty = spec_type(&spec).to_string();
        let old_ip = old.and_then(cluster_ip_of);
        let old_ports = old.map(node_ports_of).unwrap_or_default();
        let mut taken_ip: Option<IpAddr> = None;
        let mut taken_ports: Vec<i32> = Vec::new();
        let result: Result<(), StatusError> = async {
            if ty != "ExternalName" && !is_headless(&spec) {
                match cluster_ip_of(&spec) {
                    Some(ip) if Some(ip) == old_ip => {}
                    Some(ip) if !dry_run => {
                        self.ips.allocate(ip).await.map_err(|e| {
                            allocation_error(obj, Path::new("spec").child("clusterIPs").index(0), Value::from(vec![ip.to_string()]), e)
                        })?;
                        taken_ip = Some(ip);
                    }
                    Some(_) => {}
                    None if !dry_run => {
                        let ip = self.ips.allocate_next().await.map_err(|e| {
                            allocation_error(obj, Path::new("spec").child("clusterIPs"), Value::Null, e)
                        })?;
                        taken_ip = Some(ip);
                        spec.cluster_ip = Some(ip.to_string());
                        spec.cluster_ips = Some(vec![ip.to_string()]);
                    }
                    None => {}
                }
            }
            if needs_node_ports(&spec) && spec.allocate_load_balancer_node_ports != Some(false) || ty == "NodePort" {
                for (i, port) in spec.ports.iter_mut().flatten().enumerate() {
                    match port.node_port.filter(|p| *p > 0) {
                        Some(p) if old_ports.contains(&p) => {}
                        Some(p) if !dry_run => {
                            self.ports.allocate(p).await.map_err(|e| {
                                let e = match e {
                                    AllocationError::Allocated => AllocationError::Storage("provided port is already allocated".into()),
                                    AllocationError::OutOfRange(r) => {
                                        AllocationError::Storage(format!("provided port is not in the valid range. The range of valid ports is {r}"))
                                    }
                                    other => other,
                                };
                                allocation_error(obj, Path::new("spec").child("ports").index(i).child("nodePort"), Value::from(p), e)
                            })?;
                            taken_ports.push(p);
                        }
                        Some(_) => {}
                        None if !dry_run => {
                            let p = self.ports.allocate_next().await.map_err(|e| {
                                allocation_error(obj, Path::new("spec").child("ports").index(i).child("nodePort"), Value::Null, e)
                            })?;
                            taken_ports.push(p);
                            port.node_port = Some(p);
                        }
                        None => {}
                    }
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            // Give back what this attempt took before failing.
            if let Some(ip) = taken_ip {
                let _ = self.ips.release(ip).await;
            }
            for p in taken_ports {
                let _ = self.ports.release(p).await;
            }
            return Err(e);
        }
        if let (Some(map), Ok(spec)) = (obj.as_object_mut(), serde_json::to_value(&spec)) {
            map.insert("spec".into(), spec);
        }
        Ok(())
    }

    /// Release what `spec` holds and `keep` does not.
    async fn release(&self, spec: &ServiceSpec, keep: Option<&ServiceSpec>) {
        let keep_ip = keep.and_then(cluster_ip_of);
        if let Some(ip) = cluster_ip_of(spec).filter(|ip| Some(*ip) != keep_ip) {
            if let Err(e) = self.ips.release(ip).await {
                tracing::warn!(%ip, error = %e, "releasing cluster IP");
            }
        }
        let keep_ports = keep.map(node_ports_of).unwrap_or_default();
        for p in node_ports_of(spec)
            .into_iter()
            .filter(|p| !keep_ports.contains(p))
        {
            if let Err(e) = self.ports.release(p).await {
                tracing::warn!(port = p, error = %e, "releasing node port");
            }
        }
    }
}

#[async_trait::async_trait]
impl StoreHooks for ServiceAllocations {
    async fn before_create(&self, obj: &mut Value, dry_run: bool) -> Result<(), StatusError> {
        self.allocate(obj, None, dry_run).await
    }

    async fn create_failed(&self, obj: &Value) {
        self.release(&service_spec(obj), None).await;
    }

    async fn before_update(
        &self,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<(), StatusError> {
        let old_spec = service_spec(old);
        self.allocate(new, Some(&old_spec), dry_run).await
    }

    async fn update_done(&self, new: &Value, old: &Value, stored: bool) {
        let (new_spec, old_spec) = (service_spec(new), service_spec(old));
        if stored {
            // What the old object held and the new one dropped (e.g. NodePort → ClusterIP).
            self.release(&old_spec, Some(&new_spec)).await;
        } else {
            self.release(&new_spec, Some(&old_spec)).await;
        }
    }

    async fn after_delete(&self, obj: &Value) {
        self.release(&service_spec(obj), None).await;
    }
}

pub fn allocations(ctx: &crate::registry::BuildContext) -> Arc<ServiceAllocations> {
    Arc::new(ServiceAllocations {
        ips: IpAllocator::new(
            Arc::clone(&ctx.storage),
            &ctx.etcd_prefix,
            ctx.service_cluster_ip_range,
        ),
        ports: PortAllocator::new(
            Arc::clone(&ctx.storage),
            &ctx.etcd_prefix,
            ctx.service_node_port_range.0,
            ctx.service_node_port_range.1,
        ),
    })
}

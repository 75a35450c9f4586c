//! endpointslices: the addresses behind a Service, in slices of at most 1000 endpoints,
//! written by the EndpointSlice controller (labelled `kubernetes.io/service-name`) and read
//! by kube-proxy and cluster DNS. Validation as upstream's `ValidateEndpointSlice`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct EndpointSliceStrategy;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];
/// `IP` was an address type of v1alpha1; slices that still have it may be updated.
const ADDRESS_TYPES_ON_UPDATE: &[&str] = &["FQDN", "IP", "IPv4", "IPv6"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;
const MAX_TOPOLOGY_LABELS: usize = 16;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    Column::new(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    Column::new(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

fn dns1123_label(value: &str, path: &Path) -> ErrorList {
    validation::is_dns1123_label(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect()
}

/// Upstream's `ValidateNonSpecialIP`: endpoints must be reachable from other nodes.
fn validate_non_special_ip(ip: IpAddr, value: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local_unicast = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local_unicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let link_local_multicast = match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => (v6.segments()[0] & 0xff0f) == 0xff02,
    };
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

fn validate_address(address_type: &str, address: &str, path: &Path) -> ErrorList {
    match address_type {
        "IPv4" | "IPv6" => {
            let want_v4 = address_type == "IPv4";
            match address.parse::<IpAddr>() {
                Ok(ip) if ip.is_ipv4() == want_v4 => validate_non_special_ip(ip, address, path),
                _ => vec![FieldError::invalid(
                    path,
                    address,
                    format!("must be a valid {address_type} address"),
                )],
            }
        }
        "IP" => match address.parse::<IpAddr>() {
            Ok(_) => Vec::new(),
            Err(_) => vec![FieldError::invalid(
                path,
                address,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )],
        },
        "FQDN" => validation::is_fully_qualified_domain_name(path, address),
        // Unknown types are reported once, on addressType.
        _ => Vec::new(),
    }
}

fn validate_endpoints(endpoints: &[Endpoint], address_type: &str, path: &Path) -> ErrorList {
    if endpoints.len() > MAX_ENDPOINTS {
        return vec![FieldError::too_many(path, endpoints.len(), MAX_ENDPOINTS)];
    }
    let mut errs = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let idx = path.index(i);
        let addresses_path = idx.child("addresses");
        if endpoint.addresses.is_empty() {
            errs.push(FieldError::required(
                &addresses_path,
                "must contain at least 1 address",
            ));
        } else if endpoint.addresses.len() > MAX_ADDRESSES {
            errs.push(FieldError::too_many(
                &addresses_path,
                endpoint.addresses.len(),
                MAX_ADDRESSES,
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            errs.extend(validate_address(
                address_type,
                address,
                &addresses_path.index(j),
            ));
        }
        if let Some(topology) = &endpoint.deprecated_topology {
            let topology_path = idx.child("deprecatedTopology");
            if topology.len() > MAX_TOPOLOGY_LABELS {
                errs.push(FieldError::too_many(
                    &topology_path,
                    topology.len(),
                    MAX_TOPOLOGY_LABELS,
                ));
            }
            errs.extend(validation::validate_labels(topology, &topology_path));
        }
        if let Some(hostname) = &endpoint.hostname {
            errs.extend(dns1123_label(hostname, &idx.child("hostname")));
        }
        if let Some(node) = &endpoint.node_name {
            for msg in validation::is_dns1123_subdomain(node) {
                errs.push(FieldError::invalid(
                    &idx.child("nodeName"),
                    node.as_str(),
                    msg,
                ));
            }
        }
    }
    errs
}

fn validate_ports(ports: &[EndpointPort], path: &Path) -> ErrorList {
    if ports.len() > MAX_PORTS {
        return vec![FieldError::too_many(path, ports.len(), MAX_PORTS)];
    }
    let mut errs = Vec::new();
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let idx = path.index(i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            errs.extend(dns1123_label(name, &idx.child("name")));
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(&idx.child("name"), name));
        }
        match port.protocol.as_deref() {
            None => errs.push(FieldError::required(&idx.child("protocol"), "")),
            Some(p) if !PROTOCOLS.contains(&p) => errs.push(FieldError::not_supported(
                &idx.child("protocol"),
                p,
                PROTOCOLS,
            )),
            Some(_) => {}
        }
        if let Some(app) = &port.app_protocol {
            for msg in validation::is_qualified_name(app) {
                errs.push(FieldError::invalid(
                    &idx.child("appProtocol"),
                    app.as_str(),
                    msg,
                ));
            }
        }
    }
    errs
}

fn validate_slice(slice: &EndpointSlice, address_types: &[&str]) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("addressType");
    if slice.address_type.is_empty() {
        errs.push(FieldError::required(&path, ""));
    } else if !address_types.contains(&slice.address_type.as_str()) {
        errs.push(FieldError::not_supported(
            &path,
            slice.address_type.as_str(),
            address_types,
        ));
    }
    errs.extend(validate_endpoints(
        &slice.endpoints,
        &slice.address_type,
        &Path::new("endpoints"),
    ));
    errs.extend(validate_ports(
        slice.ports.as_deref().unwrap_or_default(),
        &Path::new("ports"),
    ));
    errs
}

/// Upstream's `dropTopologyOnV1`: v1 clients never see `deprecatedTopology` set anew.
fn drop_deprecated_topology(slice: &mut EndpointSlice) {
    for endpoint in &mut slice.endpoints {
        endpoint.deprecated_topology = None;
    }
}

/// Upstream's `formatDiscoveryPorts` / `formatDiscoveryEndpoints`: the first three, then
/// a count of the rest.
fn list_with_more(items: impl Iterator<Item = String>) -> String {
    const MAX: usize = 3;
    let mut shown = Vec::new();
    let mut count = 0;
    for item in items {
        if shown.len() < MAX {
            shown.push(item);
        }
        count += 1;
    }
    let joined = shown.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

impl TypedStrategy for EndpointSliceStrategy {
    type Object = EndpointSlice;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<EndpointSlice>().tracks_generation()
    }

    fn default(&self, slice: &mut EndpointSlice) {
        for port in slice.ports.iter_mut().flatten() {
            if port.name.is_none() {
                port.name = Some(String::new());
            }
            if port.protocol.is_none() {
                port.protocol = Some("TCP".into());
            }
        }
    }

    fn prepare_for_create(&self, slice: &mut EndpointSlice) {
        drop_deprecated_topology(slice);
    }

    fn prepare_for_update(&self, new: &mut EndpointSlice, old: &EndpointSlice) {
        if new.endpoints != old.endpoints {
            drop_deprecated_topology(new);
        }
    }

    fn validate(&self, slice: &EndpointSlice) -> ErrorList {
        validate_slice(slice, ADDRESS_TYPES)
    }

    fn validate_update(&self, new: &EndpointSlice, old: &EndpointSlice) -> ErrorList {
        let mut errs = validate_slice(new, ADDRESS_TYPES_ON_UPDATE);
        errs.extend(validation::validate_immutable_field(
            &new.address_type,
            &old.address_type,
            new.address_type.as_str(),
            &Path::new("addressType"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, slice: &EndpointSlice, raw: &Value) -> Vec<Value> {
        let ports = list_with_more(slice.ports.iter().flatten().map(|p| {
            match (p.port, p.name.as_deref()) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            }
        }));
        let endpoints = list_with_more(
            slice
                .endpoints
                .iter()
                .flat_map(|e| e.addresses.iter().cloned()),
        );
        vec![
            slice.metadata.name.clone().unwrap_or_default().into(),
            slice.address_type.clone().into(),
            ports.into(),
            endpoints.into(),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn strategy() -> Typed<EndpointSliceStrategy> {
        Typed::new(EndpointSliceStrategy)
    }

    fn slice(address_type: &str, endpoints: Value, ports: Value) -> Value {
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "web-abc",
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": "web"},
            },
            "addressType": address_type,
            "endpoints": endpoints,
            "ports": ports,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn ports_default_to_unnamed_tcp() {
        let s = strategy();
        let obj = s
            .decode(slice(
                "IPv4",
                json!([{"addresses": ["10.0.0.1"]}]),
                json!([{"port": 80}]),
            ))
            .unwrap();
        assert_eq!(
            obj["ports"],
            json!([{"name": "", "port": 80, "protocol": "TCP"}])
        );
        assert!(s.validate(&obj).is_empty());
    }

    #[test]
    fn address_type_and_addresses_are_checked() {
        let s = strategy();
        let obj = s
            .decode(slice("IP", json!([{"addresses": []}]), json!([])))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6""#,
                "endpoints[0].addresses: Required value: must contain at least 1 address",
            ]
        );
        let obj = s
            .decode(slice(
                "IPv4",
                json!([{"addresses": ["fd00::1", "127.0.0.1", "10.0.0.1"]}]),
                json!([]),
            ))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address"#,
                r#"endpoints[0].addresses[1]: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, ::1/128)"#,
            ]
        );
        let obj = s
            .decode(slice(
                "FQDN",
                json!([{"addresses": ["example"]}]),
                json!([]),
            ))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"endpoints[0].addresses[0]: Invalid value: "example": should be a domain with at least two segments separated by dots"#
            ]
        );
    }

    #[test]
    fn too_many_endpoints() {
        let s = strategy();
        let endpoints: Vec<Value> = (0..1001)
            .map(|_| json!({"addresses": ["10.0.0.1"]}))
            .collect();
        let obj = s
            .decode(slice("IPv4", json!(endpoints), json!([])))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["endpoints: Too many: 1001: must have at most 1000 items"]
        );
    }

    #[test]
    fn ports_are_checked() {
        let s = strategy();
        let obj = s
            .decode(slice(
                "IPv4",
                json!([]),
                json!([
                    {"name": "http", "port": 80, "protocol": "ICMP"},
                    {"name": "http", "port": 81},
                    {"name": "Bad_Name", "port": 82, "appProtocol": "not/a/name"},
                ]),
            ))
            .unwrap();
        let msgs = messages(&s.validate(&obj));
        assert_eq!(
            msgs[0],
            r#"ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#
        );
        assert_eq!(msgs[1], r#"ports[1].name: Duplicate value: "http""#);
        assert!(msgs[2].starts_with(r#"ports[2].name: Invalid value: "Bad_Name""#));
        assert!(msgs[3].starts_with(r#"ports[2].appProtocol: Invalid value: "not/a/name""#));
    }

    #[test]
    fn address_type_is_immutable() {
        let s = strategy();
        let old = s.decode(slice("IPv4", json!([]), json!([]))).unwrap();
        let new = s.decode(slice("IPv6", json!([]), json!([]))).unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![r#"addressType: Invalid value: "IPv6": field is immutable"#]
        );
    }

    #[test]
    fn deprecated_topology_is_dropped() {
        let s = strategy();
        let mut obj = s
            .decode(slice(
                "IPv4",
                json!([{"addresses": ["10.0.0.1"], "deprecatedTopology": {"a": "b"}}]),
                json!([]),
            ))
            .unwrap();
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["endpoints"], json!([{"addresses": ["10.0.0.1"]}]));
    }

    #[test]
    fn row_lists_ports_and_addresses() {
        let s = strategy();
        let obj = s
            .decode(slice(
                "IPv4",
                json!([
                    {"addresses": ["10.0.0.1", "10.0.0.2"]},
                    {"addresses": ["10.0.0.3", "10.0.0.4", "10.0.0.5"]},
                ]),
                json!([{"port": 80}, {"name": "dns"}, {}]),
            ))
            .unwrap();
        let row = s.row(&obj);
        assert_eq!(row[1], json!("IPv4"));
        assert_eq!(row[2], json!("80,dns,"));
        assert_eq!(row[3], json!("10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..."));
        let empty = s.decode(slice("IPv4", json!([]), json!(null))).unwrap();
        let row = s.row(&empty);
        assert_eq!(row[2], json!("<unset>"));
        assert_eq!(row[3], json!("<unset>"));
    }
}

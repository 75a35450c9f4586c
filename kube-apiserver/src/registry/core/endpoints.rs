//! endpoints: the addresses behind a service (written by the endpoints controller, or by
//! hand for selector-less services); updates may create (upstream's
//! `AllowCreateOnUpdate`), and `kubectl get ep` shows `ip:port,...` with `+ N more...`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use serde_json::Value;

use crate::registry::core::podspec;
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct EndpointsStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.",
    ),
    AGE,
];

/// Addresses that endpoints may not point at (upstream's `ValidateNonSpecialIP`).
pub fn validate_non_special_ip(ip: &str, path: &Path) -> ErrorList {
    let Some(addr) = parse_ip_sloppy(ip) else {
        return vec![FieldError::invalid(path, ip, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    if addr.is_unspecified() {
        errs.push(FieldError::invalid(
            path,
            ip,
            format!("may not be unspecified ({ip})"),
        ));
    }
    if addr.is_loopback() {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (link_local_unicast, link_local_multicast) = match addr {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            ((s[0] & 0xffc0) == 0xfe80, (s[0] & 0xff0f) == 0xff02)
        }
    };
    if link_local_unicast {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// Go's `ParseIPSloppy`: IPv4 octets may carry leading zeros.
fn parse_ip_sloppy(ip: &str) -> Option<IpAddr> {
    if let Ok(addr) = ip.parse() {
        return Some(addr);
    }
    let octets: Vec<u8> = ip
        .split('.')
        .map(|o| o.parse::<u8>().ok())
        .collect::<Option<_>>()?;
    <[u8; 4]>::try_from(octets).ok().map(IpAddr::from)
}

fn validate_address(a: &EndpointAddress, path: &Path) -> ErrorList {
    let mut errs = validation::is_valid_ip(&path.child("ip"), &a.ip);
    if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
        for m in validation::is_dns1123_label(h) {
            errs.push(FieldError::invalid(&path.child("hostname"), h, m));
        }
    }
    if let Some(n) = a.node_name.as_deref() {
        for m in validation::name_is_dns_subdomain(n, false) {
            errs.push(FieldError::invalid(&path.child("nodeName"), n, m));
        }
    }
    errs.extend(validate_non_special_ip(&a.ip, &path.child("ip")));
    errs
}

/// Upstream's `validateEndpointSubsets`.
fn validate(ep: &Endpoints) -> ErrorList {
    let mut errs = Vec::new();
    let path = Path::new("subsets");
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let p = path.index(i);
        let addrs = ss.addresses.as_deref().unwrap_or_default();
        let not_ready = ss.not_ready_addresses.as_deref().unwrap_or_default();
        if addrs.is_empty() && not_ready.is_empty() {
            errs.push(FieldError::required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (j, a) in addrs.iter().enumerate() {
            errs.extend(validate_address(a, &p.child("addresses").index(j)));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errs.extend(validate_address(a, &p.child("notReadyAddresses").index(j)));
        }
        let ports = ss.ports.as_deref().unwrap_or_default();
        for (j, port) in ports.iter().enumerate() {
            let pp = p.child("ports").index(j);
            match port.name.as_deref().filter(|n| !n.is_empty()) {
                None if ports.len() > 1 => errs.push(FieldError::required(&pp.child("name"), "")),
                None => {}
                Some(name) => {
                    for m in validation::is_dns1123_label(name) {
                        errs.push(FieldError::invalid(&pp.child("name"), name, m));
                    }
                }
            }
            for m in validation::is_valid_port_num(port.port) {
                errs.push(FieldError::invalid(&pp.child("port"), port.port, m));
            }
            errs.extend(podspec::port_protocol(
                &port.protocol,
                &pp.child("protocol"),
            ));
            if let Some(ap) = port.app_protocol.as_deref() {
                for m in validation::is_qualified_name(ap) {
                    errs.push(FieldError::invalid(&pp.child("appProtocol"), ap, m));
                }
            }
        }
    }
    errs
}

/// `10.0.0.1:80,10.0.0.2:80 + 1 more...` (upstream's `formatEndpoints`, all ports).
pub fn format_endpoints(ep: &Endpoints, ports: Option<&BTreeSet<String>>) -> String {
    let subsets = ep.subsets.as_deref().unwrap_or_default();
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addrs = ss.addresses.as_deref().unwrap_or_default();
        let ss_ports = ss.ports.as_deref().unwrap_or_default();
        if ss_ports.is_empty() {
            for a in addrs {
                if list.len() < MAX {
                    list.push(a.ip.clone());
                }
                count += 1;
            }
            continue;
        }
        for port in ss_ports {
            let name = port.name.clone().unwrap_or_default();
            if ports.is_some_and(|p| !p.contains(&name)) {
                continue;
            }
            for a in addrs {
                if list.len() < MAX {
                    let host = if a.ip.contains(':') {
                        format!("[{}]", a.ip)
                    } else {
                        a.ip.clone()
                    };
                    list.push(format!("{host}:{}", port.port));
                }
                count += 1;
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

impl TypedStrategy for EndpointsStrategy {
    type Object = Endpoints;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Endpoints>().short_names(&["ep"])
    }

    fn default(&self, ep: &mut Endpoints) {
        for port in ep
            .subsets
            .iter_mut()
            .flatten()
            .flat_map(|s| s.ports.iter_mut().flatten())
        {
            if port.protocol.as_deref().is_none_or(str::is_empty) {
                port.protocol = Some("TCP".into());
            }
        }
    }

    fn validate(&self, ep: &Endpoints) -> ErrorList {
        validate(ep)
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, ep: &Endpoints, raw: &Value) -> Vec<Value> {
        vec![
            ep.metadata.name.clone().unwrap_or_default().into(),
            format_endpoints(ep, None).into(),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn s() -> Typed<EndpointsStrategy> {
        Typed::new(EndpointsStrategy)
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults_and_format() {
        let obj = s()
            .decode(json!({"metadata": {"name": "web"}, "subsets": [
                {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443, "name": "https"}]}]}))
            .unwrap();
        assert_eq!(obj["subsets"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(
            s().row(&obj)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
        let empty = json!({"metadata": {"name": "x"}});
        assert_eq!(s().row(&empty)[1], "<none>");
        let headless =
            json!({"metadata": {"name": "x"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(s().row(&headless)[1], "10.0.0.1");
        assert!(s().allow_create_on_update());
    }

    #[test]
    fn validation() {
        let obj = s()
            .decode(json!({"metadata": {"name": "web"}, "subsets": [
                {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 0}, {"port": 80, "protocol": "ICMP"}]},
                {}]}))
            .unwrap();
        let errs = messages(&s().validate(&obj));
        assert_eq!(errs, vec![
            "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            "subsets[0].ports[0].name: Required value",
            "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "subsets[0].ports[1].name: Required value",
            "subsets[0].ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
        ]);
    }
}

//! ingresses: HTTP routing rules for an ingress controller, with a load-balancer status
//! the controller writes through `/status`. Validation as upstream's
//! `ValidateIngressCreate` / `ValidateIngressUpdate` / `ValidateIngressStatusUpdate`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, Ingress, IngressBackend, IngressLoadBalancerStatus, IngressRule, IngressSpec,
    IngressStatus,
};
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct IngressStrategy;

/// The legacy annotation that named the class before `spec.ingressClassName`.
const ANNOTATION_INGRESS_CLASS: &str = "kubernetes.io/ingress.class";
const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];
const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];
const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Class",
        "string",
        "The name of the IngressClass resource that should be used for additional configuration",
    ),
    Column::new(
        "Hosts",
        "string",
        "Hosts that incoming requests are matched against before the ingress rule",
    ),
    Column::new(
        "Address",
        "string",
        "Address is a list containing ingress points for the load-balancer",
    ),
    Column::new("Ports", "string", "Ports of TLS configurations that open"),
    AGE,
];

/// Upstream's `IngressValidationOptions`: tolerances for data stored before a rule was
/// tightened.
#[derive(Default, Clone, Copy)]
struct Options {
    allow_invalid_secret_name: bool,
    allow_invalid_wildcard_host_rule: bool,
}

fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

fn invalid_each(path: &Path, value: &str, msgs: Vec<String>) -> ErrorList {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn validate_backend(backend: &IngressBackend, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    match (&backend.resource, &backend.service) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid(
                path,
                "",
                "cannot set both resource and service backends",
            ));
        }
        (Some(resource), None) => {
            let p = path.child("resource");
            if let Some(group) = &resource.api_group {
                errs.extend(invalid_each(
                    &p.child("apiGroup"),
                    group,
                    validation::is_dns1123_subdomain(group),
                ));
            }
            for (field, value) in [("kind", &resource.kind), ("name", &resource.name)] {
                if value.is_empty() {
                    errs.push(FieldError::required(&p.child(field), ""));
                } else {
                    errs.extend(invalid_each(
                        &p.child(field),
                        value,
                        validation::is_valid_path_segment_name(value),
                    ));
                }
            }
        }
        (None, Some(service)) => {
            let name_path = path.child("service").child("name");
            if service.name.is_empty() {
                errs.push(FieldError::required(&name_path, ""));
            } else {
                errs.extend(invalid_each(
                    &name_path,
                    &service.name,
                    validation::name_is_dns1035_label(&service.name, false),
                ));
            }
            let port = service.port.clone().unwrap_or_default();
            let name = port.name.unwrap_or_default();
            let number = port.number.unwrap_or(0);
            let port_path = path.child("service").child("port");
            match (name.is_empty(), number != 0) {
                (false, true) => errs.push(FieldError::invalid(
                    path,
                    "",
                    "cannot set both port name & port number",
                )),
                (false, false) => errs.extend(invalid_each(
                    &port_path.child("name"),
                    &name,
                    validation::is_valid_port_name(&name),
                )),
                (true, true) => {
                    for msg in validation::is_valid_port_num(number) {
                        errs.push(FieldError::invalid(&port_path.child("number"), number, msg));
                    }
                }
                (true, false) => errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                )),
            }
        }
        (None, None) => errs.push(FieldError::invalid(
            path,
            "",
            "resource or service backend is required",
        )),
    }
    errs
}

fn validate_path(p: &HTTPIngressPath, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if p.path_type.is_empty() {
        return vec![FieldError::required(
            &path.child("pathType"),
            "pathType must be specified",
        )];
    }
    let value = p.path.as_deref().unwrap_or("");
    let path_path = path.child("path");
    match p.path_type.as_str() {
        "Exact" | "Prefix" => {
            if !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &path_path,
                    value,
                    "must be an absolute path",
                ));
            }
            if !value.is_empty() {
                for seq in INVALID_PATH_SEQUENCES {
                    if value.contains(seq) {
                        errs.push(FieldError::invalid(
                            &path_path,
                            value,
                            format!("must not contain '{seq}'"),
                        ));
                    }
                }
                for suffix in INVALID_PATH_SUFFIXES {
                    if value.ends_with(suffix) {
                        errs.push(FieldError::invalid(
                            &path_path,
                            value,
                            format!("cannot end with '{suffix}'"),
                        ));
                    }
                }
            }
        }
        "ImplementationSpecific" => {
            if !value.is_empty() && !value.starts_with('/') {
                errs.push(FieldError::invalid(
                    &path_path,
                    value,
                    "must be an absolute path",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &path.child("pathType"),
            other,
            PATH_TYPES,
        )),
    }
    errs.extend(validate_backend(&p.backend, &path.child("backend")));
    errs
}

fn validate_rule_value(rule: &IngressRule, path: &Path) -> ErrorList {
    let Some(http) = &rule.http else {
        return Vec::new();
    };
    let http_path = path.child("http");
    let mut errs = Vec::new();
    if http.paths.is_empty() {
        errs.push(FieldError::required(&http_path.child("paths"), ""));
    }
    for (i, p) in http.paths.iter().enumerate() {
        errs.extend(validate_path(p, &http_path.child("paths").index(i)));
    }
    errs
}

fn validate_rules(rules: &[IngressRule], path: &Path, opts: Options) -> ErrorList {
    let mut errs = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let host_path = path.index(i).child("host");
        let host = rule.host.as_deref().unwrap_or("");
        let mut wildcard = false;
        if !host.is_empty() {
            if is_ip(host) {
                errs.push(FieldError::invalid(
                    &host_path,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            if host.contains('*') {
                errs.extend(invalid_each(
                    &host_path,
                    host,
                    validation::is_wildcard_dns1123_subdomain(host),
                ));
                wildcard = true;
            } else {
                errs.extend(invalid_each(
                    &host_path,
                    host,
                    validation::is_dns1123_subdomain(host),
                ));
            }
        }
        if !wildcard || !opts.allow_invalid_wildcard_host_rule {
            errs.extend(validate_rule_value(rule, &path.index(i)));
        }
    }
    errs
}

fn tls_secret_name_errors(name: &str) -> Vec<String> {
    if name.is_empty() {
        Vec::new()
    } else {
        validation::name_is_dns_subdomain(name, false)
    }
}

fn validate_spec(spec: &IngressSpec, path: &Path, opts: Options) -> ErrorList {
    let mut errs = Vec::new();
    let rules = spec.rules.as_deref().unwrap_or_default();
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::invalid(
            path,
            serde_json::to_value(rules).unwrap_or(Value::Null),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(backend) = &spec.default_backend {
        errs.extend(validate_backend(backend, &path.child("defaultBackend")));
    }
    errs.extend(validate_rules(rules, &path.child("rules"), opts));
    for (i, tls) in spec.tls.iter().flatten().enumerate() {
        let tls_path = path.child("tls").index(i);
        for (j, host) in tls.hosts.iter().flatten().enumerate() {
            let msgs = if host.contains('*') {
                validation::is_wildcard_dns1123_subdomain(host)
            } else {
                validation::is_dns1123_subdomain(host)
            };
            errs.extend(invalid_each(&tls_path.child("hosts").index(j), host, msgs));
        }
        if !opts.allow_invalid_secret_name {
            let name = tls.secret_name.as_deref().unwrap_or("");
            errs.extend(invalid_each(
                &tls_path.child("secretName"),
                name,
                tls_secret_name_errors(name),
            ));
        }
    }
    if let Some(class) = &spec.ingress_class_name {
        errs.extend(invalid_each(
            &path.child("ingressClassName"),
            class,
            validation::name_is_dns_subdomain(class, false),
        ));
    }
    errs
}

fn validate_load_balancer(
    status: Option<&IngressLoadBalancerStatus>,
    old: Option<&IngressLoadBalancerStatus>,
    path: &Path,
) -> ErrorList {
    let old_ips: Vec<String> = old
        .and_then(|s| s.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone().filter(|ip| !ip.is_empty()))
        .collect();
    let mut errs = Vec::new();
    let entries = status
        .and_then(|s| s.ingress.as_deref())
        .unwrap_or_default();
    for (i, entry) in entries.iter().enumerate() {
        let idx = path.child("ingress").index(i);
        if let Some(ip) = entry.ip.as_deref().filter(|ip| !ip.is_empty()) {
            errs.extend(validation::is_valid_ip_for_legacy_field(
                &idx.child("ip"),
                ip,
                false,
                &old_ips,
            ));
        }
        if let Some(host) = entry.hostname.as_deref().filter(|h| !h.is_empty()) {
            errs.extend(invalid_each(
                &idx.child("hostname"),
                host,
                validation::is_dns1123_subdomain(host),
            ));
            if is_ip(host) {
                errs.push(FieldError::invalid(
                    &idx.child("hostname"),
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

fn lb_status(ing: &Ingress) -> Option<&IngressLoadBalancerStatus> {
    ing.status.as_ref().and_then(|s| s.load_balancer.as_ref())
}

/// Upstream's `ingressLoadBalancerStatusStringer`: the sorted, distinct IPs (or hostnames)
/// of the load balancer, unclipped because the server's table convertor always prints the
/// wide form.
fn address(ing: &Ingress) -> String {
    let set: BTreeSet<String> = lb_status(ing)
        .and_then(|s| s.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i.ip.clone()
                .filter(|ip| !ip.is_empty())
                .or_else(|| i.hostname.clone().filter(|h| !h.is_empty()))
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

/// Upstream's `formatHosts`: the first three hosts, `*` when none is named.
fn hosts(rules: &[IngressRule]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        if let Some(host) = rule.host.as_deref().filter(|h| !h.is_empty()) {
            if !more {
                list.push(host);
            }
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len() - MAX)
    } else {
        joined
    }
}

fn empty_status() -> IngressStatus {
    IngressStatus {
        load_balancer: Some(Default::default()),
    }
}

impl TypedStrategy for IngressStrategy {
    type Object = Ingress;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Ingress>()
            .short_names(&["ing"])
            .with_status()
            .tracks_generation()
    }

    fn prepare_for_create(&self, ing: &mut Ingress) {
        ing.status = Some(empty_status());
    }

    fn prepare_for_update(&self, new: &mut Ingress, old: &Ingress) {
        new.status = old.status.clone();
    }

    fn validate(&self, ing: &Ingress) -> ErrorList {
        let spec = ing.spec.clone().unwrap_or_default();
        let mut errs = validate_spec(&spec, &Path::new("spec"), Options::default());
        let annotation = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_INGRESS_CLASS));
        if let (Some(annotation), Some(class)) = (annotation, spec.ingress_class_name.as_ref()) {
            if annotation != class {
                errs.push(FieldError::invalid(
                    &Path::new("annotations").child(ANNOTATION_INGRESS_CLASS),
                    annotation.as_str(),
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Ingress, old: &Ingress) -> ErrorList {
        let old_spec = old.spec.clone().unwrap_or_default();
        let opts = Options {
            allow_invalid_secret_name: old_spec.tls.iter().flatten().any(|t| {
                !tls_secret_name_errors(t.secret_name.as_deref().unwrap_or("")).is_empty()
            }),
            allow_invalid_wildcard_host_rule: old_spec.rules.iter().flatten().any(|r| {
                r.host.as_deref().is_some_and(|h| h.contains('*'))
                    && !validate_rule_value(r, &Path::new("")).is_empty()
            }),
        };
        let spec = new.spec.clone().unwrap_or_default();
        let mut errs = validate_spec(&spec, &Path::new("spec"), opts);
        // The same check serves status updates, whose load balancer is the only change.
        errs.extend(validate_load_balancer(
            lb_status(new),
            lb_status(old),
            &Path::new("status").child("loadBalancer"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, ing: &Ingress, raw: &Value) -> Vec<Value> {
        let spec = ing.spec.clone().unwrap_or_default();
        let class = spec
            .ingress_class_name
            .clone()
            .unwrap_or_else(|| "<none>".into());
        let ports = if spec.tls.as_ref().is_some_and(|t| !t.is_empty()) {
            "80, 443"
        } else {
            "80"
        };
        vec![
            ing.metadata.name.clone().unwrap_or_default().into(),
            class.into(),
            hosts(spec.rules.as_deref().unwrap_or_default()).into(),
            address(ing).into(),
            ports.into(),
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

    fn strategy() -> Typed<IngressStrategy> {
        Typed::new(IngressStrategy)
    }

    fn ingress(spec: Value) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        })
    }

    fn simple_rule(path: Value) -> Value {
        json!({
            "host": "example.com",
            "http": {"paths": [path]},
        })
    }

    fn backend() -> Value {
        json!({"service": {"name": "web", "port": {"number": 80}}})
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn valid_ingress_passes() {
        let s = strategy();
        let obj = s
            .decode(ingress(json!({
                "ingressClassName": "nginx",
                "rules": [simple_rule(json!({"path": "/", "pathType": "Prefix", "backend": backend()}))],
                "tls": [{"hosts": ["example.com", "*.example.com"], "secretName": "tls"}],
            })))
            .unwrap();
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
    }

    #[test]
    fn rules_or_default_backend_required() {
        let s = strategy();
        let obj = s.decode(ingress(json!({}))).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"]
        );
    }

    #[test]
    fn paths_are_checked() {
        let s = strategy();
        let obj = s
            .decode(ingress(json!({"rules": [
                simple_rule(json!({"path": "/a", "backend": backend()})),
                simple_rule(json!({"path": "relative//x", "pathType": "Exact", "backend": backend()})),
                simple_rule(json!({"path": "/", "pathType": "Regex", "backend": backend()})),
            ]})))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
                r#"spec.rules[1].http.paths[0].path: Invalid value: "relative//x": must be an absolute path"#,
                r#"spec.rules[1].http.paths[0].path: Invalid value: "relative//x": must not contain '//'"#,
                r#"spec.rules[2].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#,
            ]
        );
    }

    #[test]
    fn backends_are_checked() {
        let s = strategy();
        let obj = s
            .decode(ingress(json!({"defaultBackend": {"service": {"name": "Web"}}, "rules": [
                {"host": "10.0.0.1", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {}}]}},
            ]})))
            .unwrap();
        let msgs = messages(&s.validate(&obj));
        assert!(msgs[0].starts_with(r#"spec.defaultBackend.service.name: Invalid value: "Web": a DNS-1035 label must consist of lower case"#));
        assert_eq!(
            msgs[1],
            "spec.defaultBackend: Required value: port name or number is required"
        );
        assert_eq!(
            msgs[2],
            r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#
        );
        assert_eq!(
            msgs[3],
            r#"spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is required"#
        );
    }

    #[test]
    fn class_annotation_must_match() {
        let s = strategy();
        let mut ing = ingress(json!({"ingressClassName": "nginx", "defaultBackend": backend()}));
        ing["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "traefik"});
        let obj = s.decode(ing).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"annotations.kubernetes.io/ingress.class: Invalid value: "traefik": must match `ingressClassName` when both are specified"#
            ]
        );
    }

    #[test]
    fn status_is_reset_on_create_and_kept_on_update() {
        let s = strategy();
        let mut ing = ingress(json!({"defaultBackend": backend()}));
        ing["status"] = json!({"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}});
        let mut obj = s.decode(ing.clone()).unwrap();
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["status"], json!({"loadBalancer": {}}));
        let old = s.decode(ing).unwrap();
        let mut new = obj.clone();
        s.prepare_for_update(&mut new, &old);
        assert_eq!(new["status"], old["status"]);
    }

    #[test]
    fn status_load_balancer_is_checked() {
        let s = strategy();
        let old = s
            .decode(ingress(json!({"defaultBackend": backend()})))
            .unwrap();
        let mut new = ingress(json!({"defaultBackend": backend()}));
        new["status"] =
            json!({"loadBalancer": {"ingress": [{"ip": "1.2.3"}, {"hostname": "1.2.3.4"}]}});
        let new = s.decode(new).unwrap();
        let msgs = messages(&s.validate_update(&new, &old));
        assert!(msgs[0].starts_with(r#"status.loadBalancer.ingress[0].ip: Invalid value: "1.2.3""#));
        assert_eq!(
            msgs.last().unwrap(),
            r#"status.loadBalancer.ingress[1].hostname: Invalid value: "1.2.3.4": must be a DNS name, not an IP address"#
        );
    }

    #[test]
    fn row_prints_class_hosts_address_ports() {
        let s = strategy();
        let mut ing = ingress(json!({
            "ingressClassName": "nginx",
            "rules": [
                {"host": "a.example.com"}, {"host": "b.example.com"}, {}, {"host": "c.example.com"}, {"host": "d.example.com"},
            ],
            "tls": [{"hosts": ["a.example.com"]}],
        }));
        ing["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.2"}, {"hostname": "lb.example.com"}, {"ip": "10.0.0.1"}]}});
        let obj = s.decode(ing).unwrap();
        let row = s.row(&obj);
        assert_eq!(row[1], json!("nginx"));
        assert_eq!(
            row[2],
            json!("a.example.com,b.example.com,c.example.com + 2 more...")
        );
        assert_eq!(row[3], json!("10.0.0.1,10.0.0.2,lb.example.com"));
        assert_eq!(row[4], json!("80, 443"));
        let plain = s
            .decode(ingress(json!({"defaultBackend": backend()})))
            .unwrap();
        let row = s.row(&plain);
        assert_eq!(row[1], json!("<none>"));
        assert_eq!(row[2], json!("*"));
        assert_eq!(row[3], json!(""));
        assert_eq!(row[4], json!("80"));
    }
}

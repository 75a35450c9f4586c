//! networkpolicies: which traffic may reach (ingress) or leave (egress) the selected pods.
//! Defaults and validation as upstream's `SetDefaults_NetworkPolicy` and
//! `ValidateNetworkPolicy`.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::labels::Selector;
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct NetworkPolicyStrategy;

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];
const POLICY_TYPES: &[&str] = &["Ingress", "Egress"];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Pod-Selector",
        "string",
        "podSelector selects the pods to which this NetworkPolicy object applies.",
    ),
    AGE,
];

#[derive(Default)]
struct Options {
    allow_invalid_label_value_in_selector: bool,
    /// CIDRs of the stored object, which stay valid whatever the rules became since.
    allowed_cidrs: Vec<String>,
}

impl Options {
    fn selector(&self) -> LabelSelectorValidationOptions {
        LabelSelectorValidationOptions {
            allow_invalid_label_value_in_selector: self.allow_invalid_label_value_in_selector,
            ..Default::default()
        }
    }
}

fn validate_port(port: &NetworkPolicyPort, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if let Some(p) = port.protocol.as_deref() {
        if !PROTOCOLS.contains(&p) {
            errs.push(FieldError::not_supported(
                &path.child("protocol"),
                p,
                PROTOCOLS,
            ));
        }
    }
    match (&port.port, port.end_port) {
        (Some(IntOrString::Int(n)), end) => {
            for msg in validation::is_valid_port_num(*n) {
                errs.push(FieldError::invalid(&path.child("port"), *n, msg));
            }
            if let Some(end) = end {
                if end < *n {
                    errs.push(FieldError::invalid(
                        &path.child("endPort"),
                        end,
                        "must be greater than or equal to `port`",
                    ));
                }
                for msg in validation::is_valid_port_num(end) {
                    errs.push(FieldError::invalid(&path.child("endPort"), end, msg));
                }
            }
        }
        (Some(IntOrString::String(name)), end) => {
            if let Some(end) = end {
                errs.push(FieldError::invalid(
                    &path.child("endPort"),
                    end,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for msg in validation::is_valid_port_name(name) {
                errs.push(FieldError::invalid(&path.child("port"), name.as_str(), msg));
            }
        }
        (None, Some(end)) => errs.push(FieldError::invalid(
            &path.child("endPort"),
            end,
            "may not be specified when `port` is not specified",
        )),
        (None, None) => {}
    }
    errs
}

fn cidr_errors(value: &str, path: &Path, opts: &Options) -> ErrorList {
    validation::is_valid_cidr_for_legacy_field(path, value, false, &opts.allowed_cidrs)
}

fn validate_ip_block(block: &IPBlock, path: &Path, opts: &Options) -> ErrorList {
    if block.cidr.is_empty() {
        return vec![FieldError::required(&path.child("cidr"), "")];
    }
    let mut errs = cidr_errors(&block.cidr, &path.child("cidr"), opts);
    let Ok(cidr) = block.cidr.parse::<ipnet::IpNet>() else {
        return errs;
    };
    let cidr = cidr.trunc();
    for (i, except) in block.except.iter().flatten().enumerate() {
        let except_path = path.child("except").index(i);
        errs.extend(cidr_errors(except, &except_path, opts));
        let Ok(net) = except.parse::<ipnet::IpNet>() else {
            continue;
        };
        if !cidr.contains(&net.network()) || cidr.prefix_len() >= net.prefix_len() {
            errs.push(FieldError::invalid(
                &except_path,
                except.as_str(),
                "must be a strict subset of `cidr`",
            ));
        }
    }
    errs
}

fn validate_peer(peer: &NetworkPolicyPeer, path: &Path, opts: &Options) -> ErrorList {
    let mut errs = Vec::new();
    let mut peers = 0;
    if let Some(sel) = &peer.pod_selector {
        peers += 1;
        errs.extend(validation::validate_label_selector(
            Some(sel),
            opts.selector(),
            &path.child("podSelector"),
        ));
    }
    if let Some(sel) = &peer.namespace_selector {
        peers += 1;
        errs.extend(validation::validate_label_selector(
            Some(sel),
            opts.selector(),
            &path.child("namespaceSelector"),
        ));
    }
    if let Some(block) = &peer.ip_block {
        peers += 1;
        errs.extend(validate_ip_block(block, &path.child("ipBlock"), opts));
    }
    if peers == 0 {
        errs.push(FieldError::required(path, "must specify a peer"));
    } else if peers > 1 && peer.ip_block.is_some() {
        errs.push(FieldError::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    errs
}

fn validate_spec(spec: &NetworkPolicySpec, path: &Path, opts: &Options) -> ErrorList {
    let empty = LabelSelector::default();
    let mut errs = validation::validate_label_selector(
        Some(spec.pod_selector.as_ref().unwrap_or(&empty)),
        opts.selector(),
        &path.child("podSelector"),
    );
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let rule_path = path.child("ingress").index(i);
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            errs.extend(validate_port(port, &rule_path.child("ports").index(j)));
        }
        for (j, peer) in rule.from.iter().flatten().enumerate() {
            errs.extend(validate_peer(peer, &rule_path.child("from").index(j), opts));
        }
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let rule_path = path.child("egress").index(i);
        for (j, port) in rule.ports.iter().flatten().enumerate() {
            errs.extend(validate_port(port, &rule_path.child("ports").index(j)));
        }
        for (j, peer) in rule.to.iter().flatten().enumerate() {
            errs.extend(validate_peer(peer, &rule_path.child("to").index(j), opts));
        }
    }
    let types = spec.policy_types.as_deref().unwrap_or_default();
    if types.len() > POLICY_TYPES.len() {
        errs.push(FieldError::invalid(
            &path.child("policyTypes"),
            serde_json::to_value(types).unwrap_or(Value::Null),
            "may not specify more than two policyTypes",
        ));
        return errs;
    }
    for (i, t) in types.iter().enumerate() {
        if !POLICY_TYPES.contains(&t.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("policyTypes").index(i),
                t.as_str(),
                POLICY_TYPES,
            ));
        }
    }
    errs
}

fn all_cidrs(np: &NetworkPolicy) -> Vec<String> {
    let Some(spec) = &np.spec else {
        return Vec::new();
    };
    let peers = spec
        .ingress
        .iter()
        .flatten()
        .flat_map(|r| r.from.iter().flatten())
        .chain(
            spec.egress
                .iter()
                .flatten()
                .flat_map(|r| r.to.iter().flatten()),
        );
    let mut cidrs = Vec::new();
    for block in peers.filter_map(|p| p.ip_block.as_ref()) {
        cidrs.push(block.cidr.clone());
        cidrs.extend(block.except.iter().flatten().cloned());
    }
    cidrs
}

/// `metav1.FormatLabelSelector`: the selector as a string, `<none>` when it selects all.
fn format_selector(sel: Option<&LabelSelector>) -> String {
    let empty = LabelSelector::default();
    match Selector::from_label_selector(sel.unwrap_or(&empty)) {
        Ok(s) if s.is_empty() => "<none>".to_string(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_string(),
    }
}

impl TypedStrategy for NetworkPolicyStrategy {
    type Object = NetworkPolicy;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<NetworkPolicy>()
            .short_names(&["netpol"])
            .tracks_generation()
    }

    fn default(&self, np: &mut NetworkPolicy) {
        let spec = np.spec.get_or_insert_with(Default::default);
        for rule in spec.ingress.iter_mut().flatten() {
            for port in rule.ports.iter_mut().flatten() {
                port.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
        for rule in spec.egress.iter_mut().flatten() {
            for port in rule.ports.iter_mut().flatten() {
                port.protocol.get_or_insert_with(|| "TCP".into());
            }
        }
        if spec.policy_types.as_ref().is_none_or(Vec::is_empty) {
            let mut types = vec!["Ingress".to_string()];
            if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                types.push("Egress".into());
            }
            spec.policy_types = Some(types);
        }
    }

    fn validate(&self, np: &NetworkPolicy) -> ErrorList {
        let spec = np.spec.clone().unwrap_or_default();
        validate_spec(&spec, &Path::new("spec"), &Options::default())
    }

    fn validate_update(&self, new: &NetworkPolicy, old: &NetworkPolicy) -> ErrorList {
        let old_selector_invalid = !validation::validate_label_selector(
            old.spec.as_ref().and_then(|s| s.pod_selector.as_ref()),
            LabelSelectorValidationOptions::default(),
            &Path::new(""),
        )
        .is_empty();
        let opts = Options {
            allow_invalid_label_value_in_selector: old_selector_invalid,
            allowed_cidrs: all_cidrs(old),
        };
        let spec = new.spec.clone().unwrap_or_default();
        validate_spec(&spec, &Path::new("spec"), &opts)
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, np: &NetworkPolicy, raw: &Value) -> Vec<Value> {
        let selector = format_selector(np.spec.as_ref().and_then(|s| s.pod_selector.as_ref()));
        vec![
            np.metadata.name.clone().unwrap_or_default().into(),
            selector.into(),
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

    fn strategy() -> Typed<NetworkPolicyStrategy> {
        Typed::new(NetworkPolicyStrategy)
    }

    fn policy(spec: Value) -> Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny", "namespace": "default"},
            "spec": spec,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_policy_types_and_protocols() {
        let s = strategy();
        let obj = s
            .decode(policy(json!({
                "podSelector": {},
                "ingress": [{"ports": [{"port": 80}]}],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
            })))
            .unwrap();
        assert_eq!(obj["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(
            obj["spec"]["ingress"][0]["ports"][0]["protocol"],
            json!("TCP")
        );
        assert!(s.validate(&obj).is_empty());
        let ingress_only = s.decode(policy(json!({"podSelector": {}}))).unwrap();
        assert_eq!(ingress_only["spec"]["policyTypes"], json!(["Ingress"]));
    }

    #[test]
    fn ports_and_peers_are_checked() {
        let s = strategy();
        let obj = s
            .decode(policy(json!({
                "podSelector": {},
                "ingress": [{
                    "ports": [{"port": 90, "endPort": 80, "protocol": "ICMP"}, {"port": "http", "endPort": 90}],
                    "from": [{}, {"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}, "podSelector": {}}],
                }],
                "policyTypes": ["Sideways"],
            })))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"spec.ingress[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP""#,
                "spec.ingress[0].ports[0].endPort: Invalid value: 80: must be greater than or equal to `port`",
                "spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
                "spec.ingress[0].from[0]: Required value: must specify a peer",
                r#"spec.ingress[0].from[1].ipBlock.except[0]: Invalid value: "10.1.0.0/24": must be a strict subset of `cidr`"#,
                "spec.ingress[0].from[1]: Forbidden: may not specify both ipBlock and another peer",
                r#"spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress""#,
            ]
        );
    }

    #[test]
    fn stored_cidrs_stay_valid_on_update() {
        let s = strategy();
        let spec =
            json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "010.0.0.0/8"}}]}]});
        let old = s.decode(policy(spec.clone())).unwrap();
        assert!(s.validate_update(&old, &old).is_empty());
    }

    #[test]
    fn row_prints_the_pod_selector() {
        let s = strategy();
        let obj = s
            .decode(policy(
                json!({"podSelector": {"matchLabels": {"app": "web"}}}),
            ))
            .unwrap();
        assert_eq!(s.row(&obj)[1], json!("app=web"));
        let all = s.decode(policy(json!({"podSelector": {}}))).unwrap();
        assert_eq!(s.row(&all)[1], json!("<none>"));
    }
}

//! Environment variables of a container: envFrom, then env (values with `$(VAR)`
//! expansion, fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef), then the
//! expansion of command and args, as upstream's makeEnvironmentVariables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::Api;

use crate::cm;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Upstream's expansion.Expand: `$(VAR)` → value when VAR is known, `$$` → `$`, anything
/// else is kept as written.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let bytes = input.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().unwrap_or('\0');
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Values of a pod's downward-API field paths.
pub fn field_value(pod: &Pod, path: &str, host_ip: &str, pod_ips: &[String]) -> Option<String> {
    let meta = &pod.metadata;
    let bracket = |prefix: &str| -> Option<String> {
        let rest = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(rest.to_string())
    };
    if let Some(k) = bracket("metadata.labels['") {
        return Some(meta.labels.as_ref()?.get(&k).cloned().unwrap_or_default());
    }
    if let Some(k) = bracket("metadata.annotations['") {
        return Some(
            meta.annotations
                .as_ref()?
                .get(&k)
                .cloned()
                .unwrap_or_default(),
        );
    }
    let spec = pod.spec.as_ref();
    Some(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => host_ip.to_string(),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => return None,
    })
}

/// resourceFieldRef: limits default to the node's allocatable (upstream), divided by the
/// divisor and rounded up.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    allocatable: &BTreeMap<String, i64>,
) -> Option<String> {
    let r = container.resources.clone().unwrap_or_default();
    let (kind, name) = resource.split_once('.')?;
    let list = if kind == "limits" {
        r.limits
    } else {
        r.requests
    };
    let milli = |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| cm::quantity_milli(q);
    let value_milli = list
        .as_ref()
        .and_then(|l| l.get(name))
        .and_then(milli)
        .or_else(|| {
            if kind == "limits" {
                allocatable.get(name).map(|v| v * 1000)
            } else {
                Some(0)
            }
        })?;
    let divisor_milli = divisor
        .and_then(|d| apimachinery::quantity::Quantity::parse(d).ok())
        .map(|d| d.milli_value())
        .filter(|d| *d > 0)
        .unwrap_or(1000);
    let v = (value_milli + divisor_milli - 1) / divisor_milli;
    Some(v.to_string())
}

/// Everything needed to resolve one container's environment.
pub struct EnvInputs<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub host_ip: String,
    pub pod_ips: Vec<String>,
    /// Service links (KUBERNETES_SERVICE_HOST, ...) in the order upstream emits them.
    pub service_env: Vec<(String, String)>,
    pub allocatable: BTreeMap<String, i64>,
}

/// The container's environment, in order. Config maps and secrets are read from the API.
pub async fn make_env(
    client: &kube::Client,
    input: &EnvInputs<'_>,
) -> Result<Vec<(String, String)>, EnvError> {
    let ns = input
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(e) = vars.iter_mut().find(|(n, _)| *n == k) {
            e.1 = v;
        } else {
            vars.push((k, v));
        }
    };
    for (k, v) in &input.service_env {
        set(&mut vars, k.clone(), v.clone());
    }
    for from in input.container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional.unwrap_or(false);
            match cms.get_opt(&r.name).await? {
                Some(c) => {
                    for (k, v) in c.data.unwrap_or_default() {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => {
                    return Err(EnvError::Config(format!(
                        "configmap \"{}\" not found",
                        r.name
                    )))
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            let optional = r.optional.unwrap_or(false);
            match secrets.get_opt(&r.name).await? {
                Some(s) => {
                    for (k, v) in secret_data(&s) {
                        set(&mut vars, format!("{prefix}{k}"), v);
                    }
                }
                None if optional => {}
                None => return Err(EnvError::Config(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for e in input.container.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            let snapshot = vars.clone();
            expand(v, &|name| {
                snapshot
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            })
        } else if let Some(src) = &e.value_from {
            if let Some(f) = &src.field_ref {
                field_value(input.pod, &f.field_path, &input.host_ip, &input.pod_ips).ok_or_else(
                    || EnvError::Config(format!("unsupported fieldPath {:?}", f.field_path)),
                )?
            } else if let Some(r) = &src.resource_field_ref {
                let container = match &r.container_name {
                    Some(name) if !name.is_empty() => input
                        .pod
                        .spec
                        .iter()
                        .flat_map(|s| s.containers.iter())
                        .find(|c| &c.name == name)
                        .unwrap_or(input.container),
                    _ => input.container,
                };
                resource_value(
                    container,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    &input.allocatable,
                )
                .ok_or_else(|| EnvError::Config(format!("unsupported resource {:?}", r.resource)))?
            } else if let Some(r) = &src.config_map_key_ref {
                let optional = r.optional.unwrap_or(false);
                match cms.get_opt(&r.name).await? {
                    Some(c) => match c.data.unwrap_or_default().remove(&r.key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::Config(format!(
                                "couldn't find key {} in ConfigMap {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => {
                        return Err(EnvError::Config(format!(
                            "configmap \"{}\" not found",
                            r.name
                        )))
                    }
                }
            } else if let Some(r) = &src.secret_key_ref {
                let optional = r.optional.unwrap_or(false);
                match secrets.get_opt(&r.name).await? {
                    Some(s) => match secret_data(&s).remove(&r.key) {
                        Some(v) => v,
                        None if optional => continue,
                        None => {
                            return Err(EnvError::Config(format!(
                                "couldn't find key {} in Secret {}/{}",
                                r.key, ns, r.name
                            )))
                        }
                    },
                    None if optional => continue,
                    None => {
                        return Err(EnvError::Config(format!("secret \"{}\" not found", r.name)))
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

fn secret_data(s: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// Upstream's service links for the `kubernetes` service: the variables every pod sees.
pub fn service_env(services: &[k8s_openapi::api::core::v1::Service]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for svc in services {
        let Some(spec) = &svc.spec else { continue };
        let Some(ip) = spec
            .cluster_ip
            .as_deref()
            .filter(|ip| *ip != "None" && !ip.is_empty())
        else {
            continue;
        };
        let name = svc
            .metadata
            .name
            .clone()
            .unwrap_or_default()
            .to_uppercase()
            .replace('-', "_");
        let ports = spec.ports.clone().unwrap_or_default();
        let Some(first) = ports.first() else { continue };
        out.push((format!("{name}_SERVICE_HOST"), ip.to_string()));
        out.push((format!("{name}_SERVICE_PORT"), first.port.to_string()));
        for p in &ports {
            if let Some(pn) = &p.name {
                out.push((
                    format!(
                        "{name}_SERVICE_PORT_{}",
                        pn.to_uppercase().replace('-', "_")
                    ),
                    p.port.to_string(),
                ));
            }
        }
        let proto = first.protocol.clone().unwrap_or_else(|| "TCP".into());
        out.push((
            format!("{name}_PORT"),
            format!("{}://{ip}:{}", proto.to_lowercase(), first.port),
        ));
        for p in &ports {
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            let prefix = format!("{name}_PORT_{}_{}", p.port, proto.to_uppercase());
            out.push((
                prefix.clone(),
                format!("{}://{ip}:{}", proto.to_lowercase(), p.port),
            ));
            out.push((format!("{prefix}_PROTO"), proto.to_lowercase()));
            out.push((format!("{prefix}_PORT"), p.port.to_string()));
            out.push((format!("{prefix}_ADDR"), ip.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expansion_as_upstream() {
        let vars = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("$(A)-$(B)", &vars), "x-$(B)");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("a$b$(A", &vars), "a$b$(A");
        assert_eq!(expand("ünï$(A)", &vars), "ünïx");
    }

    #[test]
    fn downward_fields() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u",
                          "labels": {"app": "web"}, "annotations": {"a": "b"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "sa", "containers": []}
        }))
        .unwrap();
        let ips = vec!["10.0.0.2".to_string()];
        let f = |p: &str| field_value(&pod, p, "192.0.2.1", &ips);
        assert_eq!(f("metadata.name").as_deref(), Some("p"));
        assert_eq!(f("metadata.labels['app']").as_deref(), Some("web"));
        assert_eq!(f("metadata.annotations['a']").as_deref(), Some("b"));
        assert_eq!(f("spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(f("spec.serviceAccountName").as_deref(), Some("sa"));
        assert_eq!(f("status.hostIP").as_deref(), Some("192.0.2.1"));
        assert_eq!(f("status.podIP").as_deref(), Some("10.0.0.2"));
        assert_eq!(f("bogus"), None);
    }

    #[test]
    fn resource_fields() {
        let c: Container = serde_json::from_value(json!({
            "name": "c", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}
        }))
        .unwrap();
        let alloc = BTreeMap::from([("cpu".to_string(), 4)]);
        assert_eq!(
            resource_value(&c, "limits.memory", None, &alloc).as_deref(),
            Some("67108864")
        );
        assert_eq!(
            resource_value(&c, "limits.memory", Some("1Mi"), &alloc).as_deref(),
            Some("64")
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", None, &alloc).as_deref(),
            Some("1")
        );
        assert_eq!(
            resource_value(&c, "requests.cpu", Some("1m"), &alloc).as_deref(),
            Some("250")
        );
        assert_eq!(
            resource_value(&c, "limits.cpu", None, &alloc).as_deref(),
            Some("4")
        );
    }
}

//! API discovery: the legacy documents (`/api`, `/apis`, `/apis/<group>`, and the resource
//! list of each group-version) and the aggregated `apidiscovery.k8s.io/v2` form kubectl
//! 1.32 asks for, all built once from the registry.

use std::collections::BTreeMap;

use base64::Engine;
use http::StatusCode;
use serde_json::{json, Value};
use sha2::Digest;

use crate::apiserver::ApiServer;
use crate::handlers::{json_response, Reply};
use crate::negotiation::Output;
use crate::registry::{Registry, ResourceInfo, Subresource};

/// Upstream's group order: clients resolve ambiguous short names by it.
const GROUP_PRIORITY: &[&str] = &[
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

/// Versions, newest (preferred) first.
fn version_rank(v: &str) -> (u8, u32, u8, u32) {
    // v2 > v1 > v2beta1 > v1beta1 > v1alpha1, as upstream's version priority.
    let rest = v.trim_start_matches('v');
    let (major, tail) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let major: u32 = major.parse().unwrap_or(0);
    let (stability, minor) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n.parse().unwrap_or(0))
    } else {
        (2, 0)
    };
    (stability, major, 0, minor)
}

/// Precomputed discovery documents.
pub struct Discovery {
    api_versions: Value,
    group_list: Value,
    groups: BTreeMap<String, Value>,
    resource_lists: BTreeMap<String, Value>,
    aggregated_core: Value,
    aggregated_groups: Value,
}

struct GroupVersions<'a> {
    name: &'a str,
    versions: Vec<(&'a str, Vec<&'a ResourceInfo>)>,
}

fn grouped(registry: &Registry) -> Vec<GroupVersions<'_>> {
    let mut groups: Vec<GroupVersions<'_>> = Vec::new();
    for store in registry.stores() {
        let info = store.info();
        let group = match groups.iter_mut().find(|g| g.name == info.group) {
            Some(g) => g,
            None => {
                groups.push(GroupVersions {
                    name: info.group,
                    versions: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        match group.versions.iter_mut().find(|(v, _)| *v == info.version) {
            Some((_, list)) => list.push(info),
            None => group.versions.push((info.version, vec![info])),
        }
    }
    for g in &mut groups {
        g.versions
            .sort_by_key(|(v, _)| std::cmp::Reverse(version_rank(v)));
    }
    let rank = |name: &str| {
        GROUP_PRIORITY
            .iter()
            .position(|g| *g == name)
            .unwrap_or(GROUP_PRIORITY.len())
    };
    groups.sort_by_key(|g| {
        (
            if g.name.is_empty() {
                0
            } else {
                1 + rank(g.name)
            },
            g.name.to_string(),
        )
    });
    groups
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn storage_version_hash(info: &ResourceInfo) -> String {
    let digest =
        sha2::Sha256::digest(format!("{}/{}/{}", info.group, info.version, info.kind).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(&digest[..8])
}

/// The verbs and kind a subresource is served with.
fn subresource_shape(info: &ResourceInfo, sub: &Subresource) -> (Vec<&'static str>, Value) {
    let own_kind = json!({"group": info.group, "version": info.version, "kind": info.kind});
    match sub {
        Subresource::Status => (vec!["get", "patch", "update"], own_kind),
        Subresource::Scale(_) => (
            vec!["get", "patch", "update"],
            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
        ),
        Subresource::Binding => (
            vec!["create"],
            json!({"group": "", "version": "v1", "kind": "Binding"}),
        ),
        Subresource::Eviction => (
            vec!["create"],
            json!({"group": "policy", "version": "v1", "kind": "Eviction"}),
        ),
        Subresource::Finalize => (vec!["update"], own_kind),
        Subresource::Approval => (vec!["get", "patch", "update"], own_kind),
        Subresource::Token => (
            vec!["create"],
            json!({"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"}),
        ),
        Subresource::Connect("log") => (
            vec!["get"],
            json!({"group": "", "version": "v1", "kind": "Pod"}),
        ),
        Subresource::Connect(_) => (
            vec!["create", "get"],
            json!({"group": "", "version": "v1", "kind": kind_options(info)}),
        ),
    }
}

fn kind_options(info: &ResourceInfo) -> String {
    format!("{}ProxyOptions", info.kind)
}

impl Discovery {
    pub fn build(registry: &Registry, server_address: &str) -> Self {
        let groups = grouped(registry);
        let mut resource_lists = BTreeMap::new();
        let mut group_docs = BTreeMap::new();
        let mut group_list = Vec::new();
        let mut aggregated = Vec::new();
        let mut aggregated_core = json!({});
        for g in &groups {
            let mut versions = Vec::new();
            let mut agg_versions = Vec::new();
            for (version, infos) in &g.versions {
                let gv = group_version(g.name, version);
                versions.push(json!({"groupVersion": gv, "version": version}));
                let mut resources = Vec::new();
                let mut agg_resources = Vec::new();
                for info in infos {
                    let mut r = json!({
                        "name": info.plural,
                        "singularName": info.singular,
                        "namespaced": info.namespaced,
                        "kind": info.kind,
                        "verbs": info.verbs,
                        "storageVersionHash": storage_version_hash(info),
                    });
                    if !info.short_names.is_empty() {
                        r["shortNames"] = json!(info.short_names);
                    }
                    if !info.categories.is_empty() {
                        r["categories"] = json!(info.categories);
                    }
                    resources.push(r);
                    let mut subs = Vec::new();
                    for sub in &info.subresources {
                        let (verbs, kind) = subresource_shape(info, sub);
                        let mut s = json!({
                            "name": format!("{}/{}", info.plural, sub.name()),
                            "singularName": "",
                            "namespaced": info.namespaced,
                            "kind": kind["kind"],
                            "verbs": verbs,
                        });
                        if kind["group"] != json!(info.group)
                            || kind["version"] != json!(info.version)
                        {
                            s["group"] = kind["group"].clone();
                            s["version"] = kind["version"].clone();
                        }
                        resources.push(s);
                        subs.push(json!({"subresource": sub.name(), "responseKind": kind, "verbs": verbs}));
                    }
                    let mut a = json!({
                        "resource": info.plural,
                        "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
                        "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": info.singular,
                        "verbs": info.verbs,
                    });
                    if !info.short_names.is_empty() {
                        a["shortNames"] = json!(info.short_names);
                    }
                    if !info.categories.is_empty() {
                        a["categories"] = json!(info.categories);
                    }
                    if !subs.is_empty() {
                        a["subresources"] = json!(subs);
                    }
                    agg_resources.push(a);
                }
                resource_lists.insert(
                    gv.clone(),
                    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
                );
                agg_versions.push(
                    json!({"version": version, "resources": agg_resources, "freshness": "Current"}),
                );
            }
            let agg_group = json!({"metadata": {"name": g.name}, "versions": agg_versions});
            if g.name.is_empty() {
                aggregated_core = agg_group;
                continue;
            }
            aggregated.push(agg_group);
            let group_doc = json!({
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": g.name,
                "versions": versions,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
            });
            group_list.push(group_doc.as_object().cloned().map(|mut m| {
                m.remove("kind");
                m.remove("apiVersion");
                Value::Object(m)
            }));
            group_docs.insert(g.name.to_string(), group_doc);
        }
        let core_versions: Vec<&str> = groups
            .iter()
            .find(|g| g.name.is_empty())
            .map(|g| g.versions.iter().map(|(v, _)| *v).collect())
            .unwrap_or_default();
        Discovery {
            api_versions: json!({
                "kind": "APIVersions",
                "versions": core_versions,
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
            }),
            group_list: json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": group_list}),
            groups: group_docs,
            resource_lists,
            aggregated_core: json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {},
                "items": [aggregated_core],
            }),
            aggregated_groups: json!({
                "kind": "APIGroupDiscoveryList",
                "apiVersion": "apidiscovery.k8s.io/v2",
                "metadata": {},
                "items": aggregated,
            }),
        }
    }

    fn lookup(&self, path: &str, output: Output) -> Option<Value> {
        let aggregated = |doc: &Value, v2beta1: bool| {
            let mut doc = doc.clone();
            if v2beta1 {
                doc["apiVersion"] = json!("apidiscovery.k8s.io/v2beta1");
            }
            doc
        };
        match (path, output) {
            ("/api", Output::AggregatedDiscovery { v2beta1 }) => {
                Some(aggregated(&self.aggregated_core, v2beta1))
            }
            ("/apis", Output::AggregatedDiscovery { v2beta1 }) => {
                Some(aggregated(&self.aggregated_groups, v2beta1))
            }
            ("/api", _) => Some(self.api_versions.clone()),
            ("/apis", _) => Some(self.group_list.clone()),
            _ => {
                if let Some(v) = path.strip_prefix("/api/") {
                    return self.resource_lists.get(v).cloned();
                }
                let rest = path.strip_prefix("/apis/")?;
                match rest.split_once('/') {
                    None => self.groups.get(rest).cloned(),
                    Some(_) => self.resource_lists.get(rest).cloned(),
                }
            }
        }
    }
}

pub fn handle(server: &ApiServer, path: &str, output: Output) -> Option<Reply> {
    let doc = server.discovery.lookup(path, output)?;
    let output = match output {
        Output::AggregatedDiscovery { .. } if path == "/api" || path == "/apis" => output,
        _ => Output::Json,
    };
    Some(json_response(StatusCode::OK, &doc, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order() {
        let mut v = vec!["v1beta1", "v1", "v2", "v2beta1", "v1alpha1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_rank(v)));
        assert_eq!(v, vec!["v2", "v1", "v2beta1", "v1beta1", "v1alpha1"]);
    }
}

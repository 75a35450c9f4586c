//! The API server's resources as discovery describes them, in each group's preferred
//! version (upstream's `ServerPreferredResources`), for the controllers that act on
//! every kind generically: the namespace deleter, the garbage collector and the
//! resource quota controller. A group that fails to answer is reported beside the
//! resources found, as upstream's `ErrGroupDiscoveryFailed`, so callers can carry on
//! with what they have.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;

/// One top-level resource (subresources are left out).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The dynamic type kube-rs' `Api<DynamicObject>` wants.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// `plural.group` (just `plural` for the core group), as upstream prints a
    /// GroupResource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// What discovery found, and the group versions that failed.
#[derive(Debug, Default, Clone)]
pub struct Discovered {
    pub resources: Vec<Resource>,
    /// `group/version` → error message.
    pub failed: BTreeMap<String, String>,
}

impl Discovered {
    /// Upstream's message for a partial discovery (`ErrGroupDiscoveryFailed`).
    pub fn error_message(&self) -> Option<String> {
        if self.failed.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .failed
            .iter()
            .map(|(gv, e)| format!("{gv}: {e}"))
            .collect();
        Some(format!(
            "unable to retrieve the complete list of server APIs: {}",
            parts.join(", ")
        ))
    }

    /// The resource serving `kind` in `api_version` (upstream's RESTMapper lookup):
    /// first in that exact version, then in the preferred version of its group.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, _) = split_api_version(api_version);
        self.resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
            .or_else(|| {
                self.resources
                    .iter()
                    .find(|r| r.group == group && r.kind == kind)
            })
    }
}

/// `group/version` → (group, version); the core group has no slash.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// Top-level resources of one group version.
pub fn resources_of(group: &str, version: &str, list: &APIResourceList) -> Vec<Resource> {
    list.resources
        .iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| Resource {
            group: r.group.clone().unwrap_or_else(|| group.to_string()),
            version: r.version.clone().unwrap_or_else(|| version.to_string()),
            kind: r.kind.clone(),
            plural: r.name.clone(),
            namespaced: r.namespaced,
            verbs: r.verbs.clone(),
        })
        .collect()
}

/// Every group's preferred version, with its resources.
pub async fn preferred_resources(client: &kube::Client) -> Result<Discovered, kube::Error> {
    let mut found = Discovered::default();
    let core = client.list_core_api_versions().await?;
    if let Some(version) = core.versions.first() {
        match client.list_core_api_resources(version).await {
            Ok(list) => found.resources.extend(resources_of("", version, &list)),
            Err(e) => {
                found.failed.insert(version.clone(), e.to_string());
            }
        }
    }
    let groups = client.list_api_groups().await?;
    for group in groups.groups {
        let Some(preferred) = group
            .preferred_version
            .or_else(|| group.versions.first().cloned())
        else {
            continue;
        };
        match client
            .list_api_group_resources(&preferred.group_version)
            .await
        {
            Ok(list) => {
                found
                    .resources
                    .extend(resources_of(&group.name, &preferred.version, &list))
            }
            Err(e) => {
                found
                    .failed
                    .insert(preferred.group_version.clone(), e.to_string());
            }
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;

    fn api_resource(name: &str, kind: &str, verbs: &[&str]) -> APIResource {
        APIResource {
            name: name.into(),
            kind: kind.into(),
            namespaced: true,
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn subresources_are_left_out_and_kinds_resolve() {
        let list = APIResourceList {
            group_version: "apps/v1".into(),
            resources: vec![
                api_resource("deployments", "Deployment", &["list", "delete"]),
                api_resource("deployments/scale", "Scale", &["get"]),
            ],
        };
        let found = Discovered {
            resources: resources_of("apps", "v1", &list),
            failed: BTreeMap::new(),
        };
        assert_eq!(found.resources.len(), 1);
        let d = found.for_kind("apps/v1", "Deployment").unwrap();
        assert_eq!(
            (d.group_resource().as_str(), d.supports("delete")),
            ("deployments.apps", true)
        );
        // Another version of the group resolves to the preferred one.
        assert!(found.for_kind("apps/v1beta2", "Deployment").is_some());
        assert!(found.for_kind("v1", "Deployment").is_none());
        assert_eq!(split_api_version("v1"), ("", "v1"));
    }
}

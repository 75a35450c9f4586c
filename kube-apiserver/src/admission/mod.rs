//! Admission: plugins that may mutate (`admit`) and then veto (`validate`) every write, in
//! upstream's order, enabled with `--enable-admission-plugins`.

pub mod default_toleration_seconds;
pub mod limit_ranger;
pub mod namespace_lifecycle;
pub mod priority;
pub mod resource_quota;
pub mod resources;
pub mod service_account;
#[cfg(test)]
pub(crate) mod test_support;

use std::sync::Arc;

use apimachinery::errors::GroupResource;
use apimachinery::StatusError;
use serde_json::Value;

use crate::registry::store::{RequestContext, Store};
use crate::registry::ResourceInfo;
use crate::request::UserInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What is being admitted (upstream `admission.Attributes`).
#[derive(Debug, Clone)]
pub struct Attributes {
    pub operation: Operation,
    pub resource: ResourceInfo,
    pub subresource: Option<String>,
    pub namespace: String,
    pub name: String,
    pub object: Option<Value>,
    pub old_object: Option<Value>,
    pub user: UserInfo,
    pub dry_run: bool,
}

impl Attributes {
    pub fn new(
        operation: Operation,
        resource: &ResourceInfo,
        namespace: &str,
        name: &str,
        ctx: &RequestContext,
    ) -> Self {
        Attributes {
            operation,
            resource: resource.clone(),
            subresource: None,
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: None,
            old_object: None,
            user: ctx.user.clone(),
            dry_run: ctx.dry_run,
        }
    }

    /// `group`/`resource` of the request, e.g. `("", "pods")`.
    pub fn is(&self, group: &str, resource: &str) -> bool {
        self.resource.group == group && self.resource.plural == resource
    }

    /// The name errors about this request carry (upstream's `extractResourceName`): the
    /// request's name, else the object's name or generateName, else "Unknown".
    pub fn error_name(&self) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let object = self.object.as_ref();
        object
            .map(crate::object::name)
            .filter(|n| !n.is_empty())
            .or_else(|| {
                object
                    .and_then(|o| crate::object::meta_str(o, "generateName"))
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or("Unknown")
            .to_string()
    }

    /// A 403 about this request's object, as upstream's `admission.NewForbidden`.
    pub fn forbidden(&self, cause: impl std::fmt::Display) -> StatusError {
        StatusError::forbidden(&self.resource.group_resource(), &self.error_name(), cause)
    }
}

/// Several messages as one, as upstream's `utilerrors.NewAggregate(...).Error()`: a lone
/// message as is, several deduplicated, comma-separated and in brackets.
pub fn aggregate(messages: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for m in messages {
        if !seen.contains(&m.as_str()) {
            seen.push(m);
        }
    }
    match seen.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// One admission plugin. Both phases default to allowing everything.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// The mutating phase.
    async fn admit(&self, _attrs: &mut Attributes) -> Result<(), StatusError> {
        Ok(())
    }

    /// The validating phase, after the object has been validated by its strategy.
    async fn validate(&self, _attrs: &Attributes) -> Result<(), StatusError> {
        Ok(())
    }
}

/// The enabled plugins, in order.
#[derive(Clone, Default)]
pub struct Admission {
    plugins: Vec<Arc<dyn Plugin>>,
}

impl Admission {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Admission { plugins }
    }

    pub fn plugin_names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    pub async fn admit(&self, attrs: &mut Attributes) -> Result<(), StatusError> {
        for plugin in &self.plugins {
            plugin.admit(attrs).await?;
        }
        Ok(())
    }

    pub async fn validate(&self, attrs: &Attributes) -> Result<(), StatusError> {
        for plugin in &self.plugins {
            plugin.validate(attrs).await?;
        }
        Ok(())
    }
}

/// How to build one plugin from the options and the served resources; `None` when a
/// resource it needs is not served (yet).
type Constructor = fn(&crate::options::Options, &Stores) -> Option<Arc<dyn Plugin>>;

/// Every plugin this server has, in upstream's order of execution.
const PLUGINS: &[(&str, Constructor)] = &[
    ("NamespaceLifecycle", |_, stores| {
        let namespaces = stores.get("", "namespaces")?;
        Some(Arc::new(namespace_lifecycle::NamespaceLifecycle::new(
            namespaces,
        )))
    }),
    ("LimitRanger", |_, stores| {
        let limit_ranges = stores.get("", "limitranges")?;
        Some(Arc::new(limit_ranger::LimitRanger::new(limit_ranges)))
    }),
    ("ServiceAccount", |_, stores| {
        let accounts = stores.get("", "serviceaccounts")?;
        Some(Arc::new(service_account::ServiceAccountAdmission::new(
            accounts,
        )))
    }),
    ("Priority", |_, stores| {
        let classes = stores.get("scheduling.k8s.io", "priorityclasses")?;
        Some(Arc::new(priority::Priority::new(classes)))
    }),
    ("DefaultTolerationSeconds", |opts, _| {
        Some(Arc::new(
            default_toleration_seconds::DefaultTolerationSeconds::new(
                opts.default_not_ready_toleration_seconds,
                opts.default_unreachable_toleration_seconds,
            ),
        ))
    }),
    ("ResourceQuota", |_, stores| {
        let quotas = stores.get("", "resourcequotas")?;
        Some(Arc::new(resource_quota::ResourceQuota::new(
            quotas,
            stores.all(),
        )))
    }),
];

/// Enabled by default, as upstream enables them. Deviation: ServiceAccount is off until
/// `--enable-admission-plugins=ServiceAccount`, because it refuses pods whose service
/// account does not exist yet, and many test setups run without the controller manager's
/// serviceaccount controller.
const DEFAULT_ON: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "Priority",
    "DefaultTolerationSeconds",
    "ResourceQuota",
];

/// The registry's stores as plugins look them up, logging the ones that are missing.
pub struct Stores<'a> {
    registry: &'a crate::registry::Registry,
    plugin: std::cell::Cell<&'static str>,
}

impl Stores<'_> {
    /// The store of `group`/`plural` in whichever version is served first.
    pub fn get(&self, group: &str, plural: &str) -> Option<Arc<Store>> {
        let store = self.registry.find(group, plural).cloned();
        if store.is_none() {
            tracing::warn!(
                plugin = self.plugin.get(),
                resource = %GroupResource::new(group, plural),
                "admission plugin skipped: the resource it needs is not served"
            );
        }
        store
    }

    /// Every served resource's store, by group and plural.
    pub fn all(&self) -> resource_quota::StoreMap {
        let mut map = resource_quota::StoreMap::new();
        for store in self.registry.stores() {
            let info = store.info();
            map.entry((info.group.to_string(), info.plural.to_string()))
                .or_insert_with(|| Arc::clone(store));
        }
        map
    }
}

/// The plugins `--enable-admission-plugins` / `--disable-admission-plugins` select.
pub fn build(
    opts: &crate::options::Options,
    registry: &crate::registry::Registry,
) -> anyhow::Result<Admission> {
    let known = || {
        PLUGINS
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in opts
        .enable_admission_plugins
        .iter()
        .chain(&opts.disable_admission_plugins)
    {
        if !PLUGINS.iter().any(|(known, _)| known == name) {
            anyhow::bail!("unknown admission plugin {name:?} (known: {})", known());
        }
    }
    let enabled = |name: &str| {
        (DEFAULT_ON.contains(&name) || opts.enable_admission_plugins.iter().any(|p| p == name))
            && !opts.disable_admission_plugins.iter().any(|p| p == name)
    };
    let stores = Stores {
        registry,
        plugin: std::cell::Cell::new(""),
    };
    let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
    for (name, construct) in PLUGINS {
        if !enabled(name) {
            continue;
        }
        stores.plugin.set(name);
        if let Some(plugin) = construct(opts, &stores) {
            plugins.push(plugin);
        }
    }
    Ok(Admission::new(plugins))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;
    use serde_json::json;

    fn options(args: &[&str]) -> crate::options::Options {
        let mut all = vec!["kube-apiserver", "--storage-backend-memory-for-tests"];
        all.extend_from_slice(args);
        crate::options::Options::parse_from(all)
    }

    #[test]
    fn aggregates_like_upstream() {
        assert_eq!(aggregate(&[]), "");
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into(), "a".into()]), "[a, b]");
    }

    #[test]
    fn builds_every_default_plugin_in_order() {
        let h = test_support::Harness::new();
        let admission = build(&options(&[]), &h.registry).unwrap();
        assert_eq!(
            admission.plugin_names(),
            vec![
                "NamespaceLifecycle",
                "LimitRanger",
                "Priority",
                "DefaultTolerationSeconds",
                "ResourceQuota"
            ]
        );
        let admission = build(
            &options(&["--disable-admission-plugins=Priority,ResourceQuota"]),
            &h.registry,
        )
        .unwrap();
        assert_eq!(admission.plugin_names().len(), 3);
        assert!(build(&options(&["--enable-admission-plugins=Bogus"]), &h.registry).is_err());
    }

    /// The namespace tutorials' LimitRange and ResourceQuota examples, through the
    /// default plugin chain and the served resources' own strategies.
    #[tokio::test]
    async fn tutorial_examples_behave_as_documented() {
        let h = test_support::Harness::new();
        let admission = build(&options(&[]), &h.registry).unwrap();
        h.create(
            "",
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        )
        .await
        .unwrap();
        let create = |plural: &'static str, obj: Value| {
            let store = h.store("", plural);
            let admission = admission.clone();
            async move {
                store
                    .create("demo", obj, &RequestContext::default(), &admission)
                    .await
            }
        };
        let pod = |name: &str, resources: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                   "spec": {"containers": [{"name": "c", "image": "nginx", "resources": resources}]}})
        };
        create(
            "limitranges",
            json!({"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "mem-min-max-demo-lr"},
                   "spec": {"limits": [{"type": "Container",
                                        "max": {"memory": "1Gi"}, "min": {"memory": "500Mi"}}]}}),
        )
        .await
        .unwrap();

        let err = create(
            "pods",
            pod(
                "constraints-mem-demo-2",
                json!({"limits": {"memory": "1.5Gi"}, "requests": {"memory": "800Mi"}}),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code, 403);
        assert_eq!(
            err.message,
            r#"pods "constraints-mem-demo-2" is forbidden: maximum memory usage per Container is 1Gi, but limit is 1536Mi"#
        );
        let err = create(
            "pods",
            pod(
                "constraints-mem-demo-3",
                json!({"limits": {"memory": "800Mi"}, "requests": {"memory": "100Mi"}}),
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.message,
            r#"pods "constraints-mem-demo-3" is forbidden: minimum memory usage per Container is 500Mi, but request is 100Mi"#
        );
        // Without resources the container gets the range's defaults (the max, here).
        let p = create("pods", pod("constraints-mem-demo-4", json!({})))
            .await
            .unwrap();
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}})
        );
        assert_eq!(
            p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
            "LimitRanger plugin set: memory request for container c; memory limit for container c"
        );
        // And the other defaults of the chain.
        assert_eq!(p["spec"]["priority"], 0);
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);

        // A quota on compute resources is satisfied by the range's defaults.
        create(
            "resourcequotas",
            json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "mem-demo"},
                   "spec": {"hard": {"requests.memory": "2Gi", "limits.memory": "2Gi", "pods": "3"}}}),
        )
        .await
        .unwrap();
        create("pods", pod("fits", json!({}))).await.unwrap();
        let err = create("pods", pod("too-many", json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            err.message,
            r#"pods "too-many" is forbidden: exceeded quota: mem-demo, requested: limits.memory=1Gi,requests.memory=1Gi, used: limits.memory=2Gi,requests.memory=2Gi, limited: limits.memory=2Gi,requests.memory=2Gi"#
        );
        let quota = h
            .store("", "resourcequotas")
            .get("demo", "mem-demo")
            .await
            .unwrap();
        assert_eq!(
            quota["status"]["used"],
            json!({"limits.memory": "2Gi", "pods": "2", "requests.memory": "2Gi"})
        );
    }
}

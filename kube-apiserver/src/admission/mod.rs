//! Admission: plugins that may mutate (`admit`) and then veto (`validate`) every write, in
//! upstream's order, enabled with `--enable-admission-plugins`.

pub mod namespace_lifecycle;

use std::sync::Arc;

use apimachinery::StatusError;
use serde_json::Value;

use crate::registry::store::RequestContext;
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

/// Upstream's default plugin order, for the plugins this server has.
const DEFAULT_ORDER: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "DefaultTolerationSeconds",
    "Priority",
    "ResourceQuota",
];

/// Enabled by default, as upstream enables them.
const DEFAULT_ON: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "DefaultTolerationSeconds",
    "Priority",
    "ResourceQuota",
];

/// The plugins `--enable-admission-plugins` / `--disable-admission-plugins` select.
pub fn build(
    opts: &crate::options::Options,
    registry: &crate::registry::Registry,
) -> anyhow::Result<Admission> {
    for name in opts
        .enable_admission_plugins
        .iter()
        .chain(&opts.disable_admission_plugins)
    {
        if !DEFAULT_ORDER.contains(&name.as_str()) {
            anyhow::bail!(
                "unknown admission plugin {name:?} (known: {})",
                DEFAULT_ORDER.join(", ")
            );
        }
    }
    let enabled = |name: &str| {
        (DEFAULT_ON.contains(&name) || opts.enable_admission_plugins.iter().any(|p| p == name))
            && !opts.disable_admission_plugins.iter().any(|p| p == name)
    };
    let store = |group: &str, plural: &str| {
        registry
            .find(group, plural)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{plural} are not served"))
    };
    let mut plugins: Vec<Arc<dyn Plugin>> = Vec::new();
    for name in DEFAULT_ORDER {
        if !enabled(name) {
            continue;
        }
        match *name {
            "NamespaceLifecycle" => plugins.push(Arc::new(
                namespace_lifecycle::NamespaceLifecycle::new(store("", "namespaces")?),
            )),
            _ => tracing::debug!(plugin = name, "admission plugin not built yet"),
        }
    }
    Ok(Admission::new(plugins))
}

//! The core (`""`) API group, version v1.

pub mod configmap;
pub mod namespace;
pub mod secret;
pub mod service;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource, StoreHooks};

pub fn resources(ctx: &BuildContext) -> Vec<Resource> {
    let service_hooks: Arc<dyn StoreHooks> = service::allocations(ctx);
    vec![
        Resource::new(Arc::new(Typed::new(namespace::NamespaceStrategy))),
        Resource::new(Arc::new(Typed::new(configmap::ConfigMapStrategy))),
        Resource::new(Arc::new(Typed::new(secret::SecretStrategy))),
        Resource {
            strategy: Arc::new(Typed::new(service::ServiceStrategy)),
            hooks: Some(service_hooks),
        },
    ]
}

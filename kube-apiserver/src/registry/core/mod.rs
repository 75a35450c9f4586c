//! The core (`""`) API group, version v1.

pub mod binding;
pub mod configmap;
pub mod endpoints;
pub mod event;
pub mod kubernetesservice;
pub mod limitrange;
pub mod namespace;
pub mod node;
pub mod persistentvolume;
pub mod persistentvolumeclaim;
pub mod pod;
pub mod podspec;
pub mod podtemplate;
pub mod replicationcontroller;
pub mod resourcelist;
pub mod resourcequota;
pub mod secret;
pub mod service;
pub mod serviceaccount;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource, StoreHooks};

pub fn resources(ctx: &BuildContext) -> Vec<Resource> {
    let service_hooks: Arc<dyn StoreHooks> = service::allocations(ctx);
    vec![
        Resource::new(Arc::new(Typed::new(pod::PodStrategy))),
        Resource::new(Arc::new(Typed::new(binding::BindingStrategy))),
        Resource::new(Arc::new(Typed::new(podtemplate::PodTemplateStrategy))),
        Resource::new(Arc::new(Typed::new(
            replicationcontroller::ReplicationControllerStrategy,
        ))),
        Resource {
            strategy: Arc::new(Typed::new(service::ServiceStrategy)),
            hooks: Some(service_hooks),
        },
        Resource::new(Arc::new(Typed::new(node::NodeStrategy))),
        Resource::new(Arc::new(Typed::new(event::EventStrategy))),
        Resource::new(Arc::new(Typed::new(limitrange::LimitRangeStrategy))),
        Resource::new(Arc::new(Typed::new(resourcequota::ResourceQuotaStrategy))),
        Resource::new(Arc::new(Typed::new(namespace::NamespaceStrategy))),
        Resource::new(Arc::new(Typed::new(endpoints::EndpointsStrategy))),
        Resource::new(Arc::new(Typed::new(secret::SecretStrategy))),
        Resource::new(Arc::new(Typed::new(serviceaccount::ServiceAccountStrategy))),
        Resource::new(Arc::new(Typed::new(
            persistentvolume::PersistentVolumeStrategy,
        ))),
        Resource::new(Arc::new(Typed::new(
            persistentvolumeclaim::PersistentVolumeClaimStrategy,
        ))),
        Resource::new(Arc::new(Typed::new(configmap::ConfigMapStrategy))),
    ]
}

/// An object as upstream's semantic equality compares it: absent and empty lists are the
/// same (quantities are already canonical after defaulting).
pub(crate) fn semantic(v: &impl Serialize) -> Value {
    fn strip(v: Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(_, v)| match v {
                        Value::Null => false,
                        Value::Array(a) => !a.is_empty(),
                        _ => true,
                    })
                    .map(|(k, v)| (k, strip(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            other => other,
        }
    }
    strip(serde_json::to_value(v).unwrap_or(Value::Null))
}

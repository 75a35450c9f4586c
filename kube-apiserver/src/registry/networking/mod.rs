//! The `networking.k8s.io` API group, version v1.

pub mod ingress;
pub mod ingressclass;
pub mod networkpolicy;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(ingressclass::IngressClassStrategy))),
        Resource::new(Arc::new(Typed::new(ingress::IngressStrategy))),
        Resource::new(Arc::new(Typed::new(networkpolicy::NetworkPolicyStrategy))),
    ]
}

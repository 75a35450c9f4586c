//! The `coordination.k8s.io` API group, version v1.

pub mod lease;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![Resource::new(Arc::new(Typed::new(lease::LeaseStrategy)))]
}

//! The `scheduling.k8s.io` API group, version v1.

pub mod priorityclass;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![Resource::new(Arc::new(Typed::new(
        priorityclass::PriorityClassStrategy,
    )))]
}

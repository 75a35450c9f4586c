//! The `scheduling.k8s.io` API group, version v1.

use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    Vec::new()
}

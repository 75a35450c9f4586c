//! The `events.k8s.io` API group, version v1 (stored as core v1 Events).

use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    Vec::new()
}

//! The `autoscaling` API group, versions v2 (storage) and v1.

use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    Vec::new()
}

//! The `policy` API group, version v1: PodDisruptionBudgets.

pub mod pdb;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![Resource::new(Arc::new(Typed::new(
        pdb::PodDisruptionBudgetStrategy,
    )))]
}

//! The `apps` API group, version v1.

use crate::registry::StrategyRef;

pub fn strategies() -> Vec<StrategyRef> {
    Vec::new()
}

//! Helpers the workload controllers share (upstream's `pkg/controller` package): owner
//! references, adoption and release of objects by selector, pod creation from
//! templates, and expectations.

pub mod backoff;
pub mod discovery;
pub mod endpoints;
pub mod expectations;
pub mod history;
pub mod keyed;
pub mod nodes;
pub mod pods;
pub mod queue;
pub mod refs;
pub mod taints;
pub mod triggers;

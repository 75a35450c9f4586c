//! Helpers the workload controllers share (upstream's `pkg/controller` package): owner
//! references, adoption and release of objects by selector, pod creation from
//! templates, and expectations.

pub mod expectations;
pub mod pods;
pub mod refs;

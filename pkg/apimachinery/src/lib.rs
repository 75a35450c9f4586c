//! API machinery shared by the API server, the controllers and the clients of this
//! workspace: the protocol vocabulary that upstream keeps in `k8s.io/apimachinery`.
//!
//! Nothing in here does I/O; every module is plain data and pure functions so that it
//! can be unit tested without a cluster.

pub mod errors;
pub mod field;

pub use errors::{GroupResource, StatusError, StatusReason};
pub mod duration;
pub mod fields;
pub mod labels;
pub mod quantity;
pub mod strategicpatch;
pub mod validation;

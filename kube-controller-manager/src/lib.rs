//! The Kubernetes controller manager: one process running upstream's controllers, each
//! an API client that reads shared informer caches, compares desired with observed state
//! and acts through the API server (level-triggered and idempotent).
//!
//! Layout: [`options`] (flags), [`context`] (what every controller gets),
//! [`controllers`] (one module per controller, registered by upstream name), [`run`]
//! (start the enabled controllers under leader election).

pub mod context;
pub mod controllers;
pub mod options;
pub mod run;

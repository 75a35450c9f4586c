//! kube-scheduler: watches pods and nodes, and binds each pending pod whose
//! `spec.schedulerName` names one of its profiles to a node, through `pods/binding`.
//! An API client only (see `docs` in the workspace for the conventions).

pub mod cache;
pub mod config;
pub mod framework;
pub mod metrics;
pub mod options;
pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod run;
pub mod scheduler;

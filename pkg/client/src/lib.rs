//! What every component that talks to the API server shares (upstream's client-go
//! conveniences): a [`kube::Client`] from a kubeconfig ([`config`]), informers that
//! watch each resource type once per process and share their cache among controllers
//! ([`informers`]), leader election on a coordination.k8s.io Lease ([`leader`]), and the
//! `/healthz` + `/metrics` endpoint every daemon serves ([`serving`]), events with
//! upstream's series semantics ([`events`]), and the logging
//! and signal handling every daemon's `main` starts with ([`process`]).

pub mod config;
pub mod events;
pub mod informers;
pub mod leader;
pub mod process;
pub mod serving;

pub use informers::{Informer, SharedInformers};

//! The Kubernetes API server: the REST API over etcd that every other component uses.
//!
//! Layers, outside in: [`server`] (TLS, HTTP, shutdown) → [`authn`] / [`authz`] →
//! [`handlers`] (routing, verbs, discovery, OpenAPI, health) → [`admission`] →
//! [`registry`] (per-resource strategies over the generic store) → the `storage` crate.

// Every handler returns `Result<_, StatusError>`: the error is the wire Status, built
// once per failed request, so its size does not matter on the success path.
#![allow(clippy::result_large_err)]

pub mod admission;
pub mod apiserver;
pub mod authn;
pub mod authz;
pub mod bootstrap;
pub mod fieldmanager;
pub mod handlers;
pub mod kubelet;
pub mod metrics;
pub mod negotiation;
pub mod object;
pub mod openapi;
pub mod options;
pub mod registry;
pub mod request;
pub mod server;
pub mod serviceaccount;
pub mod version;

//! Every controller, registered under its upstream name (the names `--controllers`
//! takes). A controller's `start` subscribes to the informers it needs and returns the
//! future that runs it until shutdown.

use futures::future::BoxFuture;

use crate::context::Context;

pub mod deployment;
pub mod job;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod serviceaccount;
pub mod tainteviction;
pub mod util;

pub type ControllerFuture = BoxFuture<'static, ()>;

/// One controller as the manager knows it.
pub struct Descriptor {
    pub name: &'static str,
    pub enabled_by_default: bool,
    pub start: fn(&Context) -> anyhow::Result<ControllerFuture>,
}

/// A controller that runs unless `--controllers` turns it off.
fn on(name: &'static str, start: fn(&Context) -> anyhow::Result<ControllerFuture>) -> Descriptor {
    Descriptor {
        name,
        enabled_by_default: true,
        start,
    }
}

/// All controllers this manager has, in start order. One line each.
pub fn all() -> Vec<Descriptor> {
    vec![
        on("serviceaccount", serviceaccount::start),
        on(job::NAME, job::start),
        on("replicaset", replicaset::start_replicaset),
        on(
            "replicationcontroller",
            replicaset::start_replicationcontroller,
        ),
        on("deployment", deployment::start),
    ]
}

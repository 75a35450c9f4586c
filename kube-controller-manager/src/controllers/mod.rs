//! Every controller, registered under its upstream name (the names `--controllers`
//! takes). A controller's `start` subscribes to the informers it needs and returns the
//! future that runs it until shutdown.

use futures::future::BoxFuture;

use crate::context::Context;

pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod replicaset;
pub mod resourcequota;
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

/// All controllers this manager has, in start order.
pub fn all() -> Vec<Descriptor> {
    vec![
        Descriptor {
            name: "serviceaccount",
            enabled_by_default: true,
            start: serviceaccount::start,
        },
        Descriptor {
            name: "garbage-collector",
            enabled_by_default: true,
            start: garbagecollector::start,
        },
        Descriptor {
            name: "namespace",
            enabled_by_default: true,
            start: namespace::start,
        },
        Descriptor {
            name: "endpoints",
            enabled_by_default: true,
            start: endpoints::start,
        },
        Descriptor {
            name: "endpointslice",
            enabled_by_default: true,
            start: endpointslice::start,
        },
        Descriptor {
            name: "resourcequota",
            enabled_by_default: true,
            start: resourcequota::start,
        },
        Descriptor {
            name: "disruption",
            enabled_by_default: true,
            start: disruption::start,
        },
    ]
}

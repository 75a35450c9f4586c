//! Every controller, registered under its upstream name (the names `--controllers`
//! takes). A controller's `start` subscribes to the informers it needs and returns the
//! future that runs it until shutdown.

use futures::future::BoxFuture;

use crate::context::Context;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod rootcacertpublisher;
pub mod serviceaccount;
pub mod statefulset;
pub mod tainteviction;
pub mod ttlafterfinished;
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
        on("root-ca-cert-publisher", rootcacertpublisher::start),
        on("garbage-collector", garbagecollector::start),
        on("namespace", namespace::start),
        on("endpoints", endpoints::start),
        on("endpointslice", endpointslice::start),
        on(job::NAME, job::start),
        on(cronjob::NAME, cronjob::start),
        on(statefulset::NAME, statefulset::start),
        on(daemonset::NAME, daemonset::start),
        on(nodeipam::NAME, nodeipam::start),
        on("node-lifecycle", nodelifecycle::start),
        on(tainteviction::NAME, tainteviction::start),
        on("replicaset", replicaset::start_replicaset),
        on(
            "replicationcontroller",
            replicaset::start_replicationcontroller,
        ),
        on("deployment", deployment::start),
        on(ttlafterfinished::NAME, ttlafterfinished::start),
        on(podgc::NAME, podgc::start),
        on("resourcequota", resourcequota::start),
        on("disruption", disruption::start),
    ]
}

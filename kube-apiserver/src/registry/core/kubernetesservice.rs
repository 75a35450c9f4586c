//! The `kubernetes` Service in `default`, through which in-cluster clients reach the API
//! servers (upstream's `kubernetesservice` controller and lease endpoint reconciler): the
//! first address of the service range, port 443 (`https`) to the secure port, no selector;
//! its Endpoints (and EndpointSlice, when served) list every API server that holds a live
//! lease under `<etcd-prefix>/masterleases/`.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use apimachinery::StatusError;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::admission::Admission;
use crate::apiserver::ApiServer;
use crate::object;
use crate::options::Options;
use crate::registry::core::service::first_service_ip;
use crate::registry::store::{RequestContext, Store, UpdateTarget};
use crate::registry::Registry;
use crate::request::UserInfo;

const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";
const SERVICE_PORT: u16 = 443;
/// How often the service and this server's lease are refreshed (upstream: 10s).
const INTERVAL: Duration = Duration::from_secs(10);
/// How long a lease outlives its last refresh (upstream's `--endpoint-reconciler` TTL).
const LEASE_TTL: Duration = Duration::from_secs(15);

pub struct MasterService {
    service_ip: IpAddr,
    advertise: IpAddr,
    port: u16,
    lease_prefix: String,
    /// The last failure reported, so that a lasting one is logged once.
    last_error: parking_lot::Mutex<Option<String>>,
}

fn context() -> RequestContext {
    RequestContext {
        user: UserInfo {
            name: "system:apiserver".into(),
            groups: vec!["system:masters".into()],
            ..Default::default()
        },
        dry_run: false,
        field_manager: Some("kube-apiserver".into()),
        ..Default::default()
    }
}

/// The address other members of the cluster reach this server at, as upstream picks it:
/// `--advertise-address`, else a specific `--bind-address`, else the address of the
/// interface holding the default route, else loopback.
pub fn advertise_address(opts: &Options) -> IpAddr {
    if let Some(a) = opts.advertise_address.filter(|a| !a.is_unspecified()) {
        return a;
    }
    if !opts.bind_address.is_unspecified() {
        return opts.bind_address;
    }
    let ipv6 = opts.service_cluster_ip_range.addr().is_ipv6();
    default_route_address(ipv6).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// The source address the kernel would use towards the internet; connecting a UDP
/// socket sends nothing.
fn default_route_address(ipv6: bool) -> Option<IpAddr> {
    let (bind, target) = if ipv6 {
        ("[::]:0", "[2001:4860:4860::8888]:53")
    } else {
        ("0.0.0.0:0", "8.8.8.8:53")
    };
    let socket = UdpSocket::bind(bind).ok()?;
    socket.connect(target).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

impl MasterService {
    pub fn new(opts: &Options) -> Option<Self> {
        Some(MasterService {
            service_ip: first_service_ip(&opts.service_cluster_ip_range)?,
            advertise: advertise_address(opts),
            port: opts.secure_port,
            lease_prefix: format!("{}/masterleases/", opts.etcd_prefix.trim_end_matches('/')),
            last_error: Default::default(),
        })
    }

    fn desired_service(&self) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": self.service_ip.to_string(),
                "clusterIPs": [self.service_ip.to_string()],
                "sessionAffinity": "None",
                "ports": [{"name": "https", "port": SERVICE_PORT, "protocol": "TCP", "targetPort": self.port}],
            },
        })
    }

    fn desired_endpoints(&self, ips: &BTreeSet<IpAddr>) -> Value {
        let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let subsets = if addresses.is_empty() {
            json!([])
        } else {
            json!([{"addresses": addresses, "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}]}])
        };
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": subsets,
        })
    }

    fn desired_slice(&self, ips: &BTreeSet<IpAddr>) -> Value {
        let family = if self.advertise.is_ipv6() {
            "IPv6"
        } else {
            "IPv4"
        };
        let endpoints: Vec<Value> = ips
            .iter()
            .filter(|ip| ip.is_ipv6() == self.advertise.is_ipv6())
            .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
            .collect();
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": NAME},
            },
            "addressType": family,
            "endpoints": endpoints,
            "ports": [{"name": "https", "port": self.port, "protocol": "TCP"}],
        })
    }

    /// Refresh this server's lease and return the addresses of every live one.
    async fn leases(
        &self,
        storage: &dyn storage::Storage,
        keep_own: bool,
    ) -> Result<BTreeSet<IpAddr>, StatusError> {
        let key = format!("{}{}", self.lease_prefix, self.advertise);
        let value = Bytes::from(json!({"ip": self.advertise.to_string()}).to_string());
        let unavailable =
            |e: storage::StorageError| StatusError::service_unavailable(e.to_string());
        if keep_own {
            match storage.get(&key).await.map_err(unavailable)? {
                Some(kv) => {
                    storage
                        .update(&key, value, kv.mod_revision, Some(LEASE_TTL))
                        .await
                        .map_err(unavailable)?;
                }
                None => {
                    storage
                        .create(&key, value, Some(LEASE_TTL))
                        .await
                        .map_err(unavailable)?;
                }
            }
        } else if storage.get(&key).await.map_err(unavailable)?.is_some() {
            let _ = storage.delete(&key, None).await;
        }
        let page = storage
            .list(&self.lease_prefix, &storage::ListOptions::default())
            .await
            .map_err(unavailable)?;
        Ok(page
            .items
            .iter()
            .filter_map(|kv| kv.key[self.lease_prefix.len()..].parse().ok())
            .collect())
    }

    /// Create or correct the service, and set the endpoints to the live API servers.
    pub async fn reconcile(&self, server: &ApiServer) -> Result<(), StatusError> {
        self.sync(&server.registry, server.storage.as_ref(), true)
            .await
    }

    async fn sync(
        &self,
        registry: &Registry,
        storage: &dyn storage::Storage,
        keep_own: bool,
    ) -> Result<(), StatusError> {
        let services = registry
            .get("", "v1", "services")
            .ok_or_else(|| StatusError::internal("services are not served"))?;
        ensure(services, self.desired_service(), |current, desired| {
            // Only the ports and type are kept in line; the cluster IP never changes.
            let mut next = current.clone();
            let spec = &mut next["spec"];
            for field in ["ports", "type"] {
                spec[field] = desired["spec"][field].clone();
            }
            (object::path(current, "spec.ports") != object::path(&next, "spec.ports")
                || object::path(current, "spec.type") != object::path(&next, "spec.type"))
            .then_some(next)
        })
        .await?;
        let ips = self.leases(storage, keep_own).await?;
        let endpoints = registry
            .get("", "v1", "endpoints")
            .ok_or_else(|| StatusError::internal("endpoints are not served"))?;
        ensure(
            endpoints,
            self.desired_endpoints(&ips),
            replace_fields(&["subsets"]),
        )
        .await?;
        if let Some(slices) = registry.find("discovery.k8s.io", "endpointslices") {
            ensure(
                slices,
                self.desired_slice(&ips),
                replace_fields(&["addressType", "endpoints", "ports"]),
            )
            .await?;
        }
        Ok(())
    }

    /// Reconcile every [`INTERVAL`] until the server shuts down, then withdraw this
    /// server's address from the endpoints.
    pub async fn run(self, server: Arc<ApiServer>) {
        let shutdown = server.shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(INTERVAL) => self.reconcile_logged(&server).await,
                _ = &mut shutdown => break,
            }
        }
        if let Err(e) = self
            .sync(&server.registry, server.storage.as_ref(), false)
            .await
        {
            tracing::warn!(error = %e, "removing this API server from the kubernetes endpoints");
        }
    }

    /// [`MasterService::reconcile`], reporting failures (e.g. a loopback advertise address,
    /// which endpoints reject, as upstream's do) without stopping.
    pub async fn reconcile_logged(&self, server: &ApiServer) {
        let result = self.reconcile(server).await.err().map(|e| e.to_string());
        let mut last = self.last_error.lock();
        match &result {
            Some(e) if last.as_ref() != Some(e) => {
                tracing::warn!(error = %e, advertise = %self.advertise, "unable to sync kubernetes service")
            }
            Some(e) => tracing::debug!(error = %e, "unable to sync kubernetes service"),
            None => {}
        }
        *last = result;
    }
}

/// A correction that overwrites `fields` with the desired values when they differ.
fn replace_fields(fields: &'static [&'static str]) -> impl Fn(&Value, &Value) -> Option<Value> {
    move |current, desired| {
        let mut next = current.clone();
        for f in fields {
            next[*f] = desired[*f].clone();
        }
        (next != *current).then_some(next)
    }
}

/// Create `desired`, or apply `correct` (current, desired) to the existing object.
async fn ensure(
    store: &Arc<Store>,
    desired: Value,
    correct: impl Fn(&Value, &Value) -> Option<Value> + Send + Sync,
) -> Result<(), StatusError> {
    let ctx = context();
    let admission = Admission::default();
    let name = object::name(&desired).to_string();
    match store.get(NAMESPACE, &name).await {
        Err(e) if e.is_not_found() => {
            match store.create(NAMESPACE, desired, &ctx, &admission).await {
                Ok(_) => {
                    tracing::info!(resource = store.info().plural, name, "created");
                    Ok(())
                }
                // Another API server was first.
                Err(e) if e.is_already_exists() => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(current) => {
            if correct(&current, &desired).is_none() {
                return Ok(());
            }
            // The store's update callback has the store's error type.
            #[allow(clippy::result_large_err)]
            let update = |cur: Option<&Value>| {
                let cur = cur
                    .ok_or_else(|| StatusError::not_found(&store.info().group_resource(), &name))?;
                let mut next = correct(cur, &desired).unwrap_or_else(|| cur.clone());
                // Without a resourceVersion, conflicts are retried on the latest object.
                object::remove_meta(&mut next, "resourceVersion");
                Ok(next)
            };
            store
                .update_with(
                    NAMESPACE,
                    &name,
                    UpdateTarget::Main,
                    false,
                    &ctx,
                    &admission,
                    update,
                )
                .await
                .map(|_| ())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::{all_resources, BuildContext};
    use storage::memory::MemoryStorage;

    fn setup() -> (Registry, Arc<dyn storage::Storage>) {
        let storage: Arc<dyn storage::Storage> = Arc::new(MemoryStorage::new());
        let ctx = BuildContext {
            storage: Arc::clone(&storage),
            etcd_prefix: "/registry".into(),
            service_cluster_ip_range: "10.96.0.0/12".parse().unwrap(),
            service_node_port_range: (30000, 32767),
        };
        let registry = Registry::new(all_resources(&ctx), Arc::clone(&storage), None, "/registry");
        (registry, storage)
    }

    #[tokio::test]
    async fn creates_the_service_and_endpoints() {
        let (registry, storage) = setup();
        let master = MasterService {
            service_ip: "10.96.0.1".parse().unwrap(),
            advertise: "192.0.2.10".parse().unwrap(),
            port: 6443,
            lease_prefix: "/registry/masterleases/".into(),
            last_error: Default::default(),
        };
        master
            .sync(&registry, storage.as_ref(), true)
            .await
            .unwrap();
        let svc = registry
            .get("", "v1", "services")
            .unwrap()
            .get("default", "kubernetes")
            .await
            .unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
        );
        assert!(svc["spec"].get("selector").is_none());
        let ep = registry
            .get("", "v1", "endpoints")
            .unwrap()
            .get("default", "kubernetes")
            .await
            .unwrap();
        assert_eq!(
            ep["subsets"],
            json!([{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );

        // A second server joins, then leaves.
        let other = MasterService {
            advertise: "192.0.2.11".parse().unwrap(),
            ..master
        };
        other.sync(&registry, storage.as_ref(), true).await.unwrap();
        let ep = registry
            .get("", "v1", "endpoints")
            .unwrap()
            .get("default", "kubernetes")
            .await
            .unwrap();
        assert_eq!(
            ep["subsets"][0]["addresses"],
            json!([{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}])
        );
        other
            .sync(&registry, storage.as_ref(), false)
            .await
            .unwrap();
        let ep = registry
            .get("", "v1", "endpoints")
            .unwrap()
            .get("default", "kubernetes")
            .await
            .unwrap();
        assert_eq!(ep["subsets"][0]["addresses"], json!([{"ip": "192.0.2.10"}]));
    }
}

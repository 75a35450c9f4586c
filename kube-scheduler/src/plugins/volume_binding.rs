//! VolumeBinding: pods whose PersistentVolumeClaims are bound go only where the bound
//! volumes' node affinity allows; claims of a WaitForFirstConsumer class are bound
//! when the pod is placed, to a matching available volume on the chosen node, or left
//! to dynamic provisioning with the `volume.kubernetes.io/selected-node` annotation
//! (as upstream's binder does); an unbound claim of an Immediate class keeps the pod
//! pending until the claim is bound elsewhere.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::framework::helpers::node_selector_matches;
use crate::framework::types::PendingPod;
use crate::framework::{NodeInfo, Status};

pub const ERR_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const ERR_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const ERR_BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The storage caches the plugin reads.
#[derive(Clone)]
pub struct Stores {
    pub claims: Store<PersistentVolumeClaim>,
    pub volumes: Store<PersistentVolume>,
    pub classes: Store<StorageClass>,
}

/// A WaitForFirstConsumer claim still to bind.
pub struct Delayed {
    pub claim: Arc<PersistentVolumeClaim>,
    pub class: Option<Arc<StorageClass>>,
}

pub struct PodVolumes {
    pub bound: Vec<Arc<PersistentVolume>>,
    pub delayed: Vec<Delayed>,
    /// Volumes available for delayed claims (unbound), taken at PreFilter.
    pub available: Vec<Arc<PersistentVolume>>,
}

fn class_name(claim: &PersistentVolumeClaim) -> String {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// PreFilter: `Ok(None)` when the pod has no claims; `Err` rejects the pod outright.
pub fn pre_filter(pod: &PendingPod, stores: &Stores) -> Result<Option<PodVolumes>, Status> {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return Ok(None);
    };
    let ns = pod.namespace();
    let mut out = PodVolumes {
        bound: Vec::new(),
        delayed: Vec::new(),
        available: Vec::new(),
    };
    let mut any = false;
    let mut unbound_immediate = false;
    for v in spec.volumes.iter().flatten() {
        let name = match (&v.persistent_volume_claim, &v.ephemeral) {
            (Some(c), _) => c.claim_name.clone(),
            (None, Some(_)) => format!("{}-{}", pod.name(), v.name),
            _ => continue,
        };
        any = true;
        let claim = stores
            .claims
            .get(&ObjectRef::new(&name).within(ns))
            .ok_or_else(|| {
                Status::unresolvable(format!("persistentvolumeclaim \"{name}\" not found"))
            })?;
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(Status::unresolvable(format!(
                "persistentvolumeclaim \"{name}\" is being deleted"
            )));
        }
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if !volume_name.is_empty() {
            match stores.volumes.get(&ObjectRef::new(&volume_name)) {
                Some(pv) => out.bound.push(pv),
                None => {
                    return Err(Status::unresolvable(format!(
                        "persistentvolume \"{volume_name}\" not found"
                    )))
                }
            }
            continue;
        }
        let class = stores.classes.get(&ObjectRef::new(&class_name(&claim)));
        let delayed = class
            .as_ref()
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if delayed {
            out.delayed.push(Delayed { claim, class });
        } else {
            unbound_immediate = true;
        }
    }
    if unbound_immediate {
        return Err(Status::unresolvable(ERR_UNBOUND_IMMEDIATE));
    }
    if !any {
        return Ok(None);
    }
    if !out.delayed.is_empty() {
        out.available = stores
            .volumes
            .state()
            .into_iter()
            .filter(|pv| {
                pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_none())
                    && pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released")
            })
            .collect();
    }
    Ok(Some(out))
}

fn volume_fits_node(pv: &PersistentVolume, node: &NodeInfo) -> bool {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    required.is_none_or(|r| node_selector_matches(r, &node.name, node.labels()))
}

type QuantityMap =
    std::collections::BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>;

/// The `storage` amount of a capacity or request list, in bytes.
fn storage(list: Option<&QuantityMap>) -> i64 {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| apimachinery::quantity::Quantity::parse(&q.0).ok())
        .map_or(0, |q| q.value())
}

fn volume_matches_claim(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let (Some(ps), Some(cs)) = (pv.spec.as_ref(), claim.spec.as_ref()) else {
        return false;
    };
    if ps.storage_class_name.clone().unwrap_or_default() != class_name(claim) {
        return false;
    }
    let want = storage(cs.resources.as_ref().and_then(|r| r.requests.as_ref()));
    if storage(ps.capacity.as_ref()) < want {
        return false;
    }
    let have = ps.access_modes.as_deref().unwrap_or(&[]);
    cs.access_modes.iter().flatten().all(|m| have.contains(m))
        && cs.volume_mode.as_deref().unwrap_or("Filesystem")
            == ps.volume_mode.as_deref().unwrap_or("Filesystem")
}

/// For each delayed claim, the volume it would bind to on `node` (`None`: provision).
/// `None` when a claim can neither bind nor be provisioned there.
pub fn decide(v: &PodVolumes, node: &NodeInfo) -> Option<Vec<Option<Arc<PersistentVolume>>>> {
    let mut taken: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for d in &v.delayed {
        let pick = v
            .available
            .iter()
            .filter(|pv| !taken.contains(&pv.metadata.name.as_deref().unwrap_or("")))
            .filter(|pv| volume_matches_claim(pv, &d.claim) && volume_fits_node(pv, node))
            .min_by_key(|pv| storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())));
        match pick {
            Some(pv) => {
                taken.push(pv.metadata.name.as_deref().unwrap_or(""));
                out.push(Some(Arc::clone(pv)));
            }
            None => {
                let provisioner = d
                    .class
                    .as_ref()
                    .map(|c| c.provisioner.as_str())
                    .unwrap_or("");
                if provisioner.is_empty() || provisioner == NO_PROVISIONER {
                    return None;
                }
                out.push(None);
            }
        }
    }
    Some(out)
}

pub fn filter(v: &PodVolumes, node: &NodeInfo) -> Status {
    if v.bound.iter().any(|pv| !volume_fits_node(pv, node)) {
        return Status::unresolvable(ERR_NODE_CONFLICT);
    }
    if !v.delayed.is_empty() && decide(v, node).is_none() {
        return Status::unresolvable(ERR_BIND_CONFLICT);
    }
    Status::success()
}

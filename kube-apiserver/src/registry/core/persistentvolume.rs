//! persistentvolumes: cluster-scoped, reclaim policy Retain and phase Pending by default,
//! an immutable volume source, and the columns of `kubectl get pv`.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeSpec, PersistentVolumeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Map, Value};

use crate::registry::core::persistentvolumeclaim::{
    access_modes_string, validate_access_modes, STORAGE_CLASS_ANNOTATION,
};
use crate::registry::core::{podspec, resourcelist, semantic};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct PersistentVolumeStrategy;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity",
    ),
    Column::new(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes",
    ),
    Column::new(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim. Valid options are Retain (default for manually created PersistentVolumes), Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). Recycle must be supported by the volume plugin underlying this PersistentVolume. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming",
    ),
    Column::new(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase",
    ),
    Column::new(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the authoritative bind between PV and PVC. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding",
    ),
    Column::new("StorageClass", "string", "StorageClass of the pv"),
    Column::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    Column::new(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI.",
    ),
    AGE,
    Column::new(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state. Value of Filesystem is implied when not included in spec.",
    )
    .wide(),
];

/// The volume source fields of a PV spec, in upstream's validation order.
const SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// The spec's volume source as JSON fields (what may not change after creation).
fn source(spec: &PersistentVolumeSpec) -> Map<String, Value> {
    match serde_json::to_value(spec) {
        Ok(Value::Object(map)) => map
            .into_iter()
            .filter(|(k, _)| SOURCES.contains(&k.as_str()))
            .collect(),
        _ => Map::new(),
    }
}

fn now() -> Time {
    Time(jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap_or_default())
}

/// Upstream's `ValidatePersistentVolumeSpec` for a standalone volume.
fn validate_spec(spec: &PersistentVolumeSpec, path: &Path) -> ErrorList {
    let modes = spec.access_modes.clone().unwrap_or_default();
    let mut errs = validate_access_modes(&modes, Some(""), &path.child("accessModes"));
    let capacity = spec.capacity.clone().unwrap_or_default();
    let cap_path = path.child("capacity");
    if capacity.is_empty() {
        errs.push(FieldError::required(&cap_path, ""));
    }
    if !capacity.contains_key("storage") || capacity.len() > 1 {
        errs.push(FieldError::not_supported(
            &cap_path,
            serde_json::to_value(&capacity).unwrap_or_default(),
            &["storage"],
        ));
    }
    for (name, q) in &capacity {
        let p = cap_path.key(name);
        match resourcelist::parse(q, &p) {
            Err(e) => errs.push(e),
            Ok(q) if q.sign() < 0 => errs.push(FieldError::invalid(
                &p,
                q.value(),
                "must be a valid resource quantity",
            )),
            Ok(q) if q.sign() == 0 => errs.push(FieldError::invalid(
                &p,
                q.to_string(),
                "must be greater than zero",
            )),
            Ok(_) => {}
        }
    }
    let policy = spec
        .persistent_volume_reclaim_policy
        .as_deref()
        .unwrap_or("");
    if !policy.is_empty() && !["Delete", "Recycle", "Retain"].contains(&policy) {
        errs.push(FieldError::not_supported(
            &path.child("persistentVolumeReclaimPolicy"),
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let mut affinity_set = false;
    if let Some(na) = &spec.node_affinity {
        affinity_set = true;
        let p = path.child("nodeAffinity");
        match &na.required {
            Some(req) => errs.extend(podspec::validate_node_selector(
                req,
                false,
                &p.child("required"),
            )),
            None => errs.push(FieldError::required(
                &p.child("required"),
                "must specify required node constraints",
            )),
        }
    }
    let present: Vec<&str> = {
        let src = source(spec);
        SOURCES
            .iter()
            .copied()
            .filter(|s| src.contains_key(*s))
            .collect()
    };
    for extra in present.iter().skip(1) {
        errs.push(FieldError::forbidden(
            &path.child(extra),
            "may not specify more than 1 volume type",
        ));
    }
    match present.first() {
        None => errs.push(FieldError::required(path, "must specify a volume type")),
        Some(&"hostPath") => {
            if let Some(h) = &spec.host_path {
                errs.extend(podspec::validate_host_path(
                    &h.path,
                    h.type_.as_deref(),
                    &path.child("hostPath"),
                ));
            }
        }
        Some(&"local") => {
            if let Some(l) = &spec.local {
                let p = path.child("local").child("path");
                if l.path.is_empty() {
                    errs.push(FieldError::required(&p, ""));
                } else if l.path.split('/').any(|s| s == "..") {
                    errs.push(FieldError::invalid(
                        &p,
                        l.path.as_str(),
                        "must not contain '..'",
                    ));
                }
            }
            if !affinity_set {
                errs.push(FieldError::required(
                    &path.child("nodeAffinity"),
                    "Local volume requires node affinity",
                ));
            }
        }
        Some(&"nfs") => {
            if let Some(n) = &spec.nfs {
                let p = path.child("nfs");
                if n.server.is_empty() {
                    errs.push(FieldError::required(&p.child("server"), ""));
                }
                if n.path.is_empty() {
                    errs.push(FieldError::required(&p.child("path"), ""));
                }
                if !n.path.starts_with('/') {
                    errs.push(FieldError::invalid(
                        &p.child("path"),
                        n.path.as_str(),
                        "must be an absolute path",
                    ));
                }
            }
        }
        Some(&"csi") => {
            if let Some(c) = &spec.csi {
                let p = path.child("csi");
                if c.driver.is_empty() {
                    errs.push(FieldError::required(&p.child("driver"), ""));
                }
                for m in validation::is_dns1123_subdomain(&c.driver.to_lowercase()) {
                    errs.push(FieldError::invalid(
                        &p.child("driver"),
                        c.driver.as_str(),
                        m,
                    ));
                }
                if c.volume_handle.is_empty() {
                    errs.push(FieldError::required(&p.child("volumeHandle"), ""));
                }
            }
        }
        Some(_) => {}
    }
    let recycle_root = spec
        .host_path
        .as_ref()
        .is_some_and(|h| h.path.trim_end_matches('/').is_empty() && h.path.starts_with('/'));
    if recycle_root && policy == "Recycle" {
        errs.push(FieldError::forbidden(
            &path.child("persistentVolumeReclaimPolicy"),
            "may not be 'recycle' for a hostPath mount of '/'",
        ));
    }
    if let Some(class) = spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
        for m in validation::name_is_dns_subdomain(class, false) {
            errs.push(FieldError::invalid(
                &path.child("storageClassName"),
                class,
                m,
            ));
        }
    }
    if let Some(mode) = spec.volume_mode.as_deref() {
        if !["Block", "Filesystem"].contains(&mode) {
            errs.push(FieldError::not_supported(
                &path.child("volumeMode"),
                mode,
                &["Block", "Filesystem"],
            ));
        }
    }
    errs
}

impl TypedStrategy for PersistentVolumeStrategy {
    type Object = PersistentVolume;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<PersistentVolume>()
            .short_names(&["pv"])
            .with_status()
    }

    fn default(&self, pv: &mut PersistentVolume) {
        let spec = pv.spec.get_or_insert_with(Default::default);
        if spec
            .persistent_volume_reclaim_policy
            .as_deref()
            .is_none_or(str::is_empty)
        {
            spec.persistent_volume_reclaim_policy = Some("Retain".into());
        }
        if spec.volume_mode.as_deref().is_none_or(str::is_empty) {
            spec.volume_mode = Some("Filesystem".into());
        }
        resourcelist::normalize(&mut spec.capacity);
        let status = pv.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Pending".into());
        }
    }

    fn prepare_for_create(&self, pv: &mut PersistentVolume) {
        pv.status = Some(PersistentVolumeStatus {
            phase: Some("Pending".into()),
            last_phase_transition_time: Some(now()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&self, new: &mut PersistentVolume, old: &PersistentVolume) {
        new.status = old.status.clone();
    }

    fn prepare_for_status_update(&self, new: &mut PersistentVolume, old: &PersistentVolume) {
        let old_status = old.status.clone().unwrap_or_default();
        let status = new.status.get_or_insert_with(Default::default);
        if status.phase == old_status.phase {
            if status.last_phase_transition_time.is_none() {
                status.last_phase_transition_time = old_status.last_phase_transition_time;
            }
        } else if status.last_phase_transition_time.is_none()
            || status.last_phase_transition_time == old_status.last_phase_transition_time
        {
            status.last_phase_transition_time = Some(now());
        }
    }

    fn validate(&self, pv: &PersistentVolume) -> ErrorList {
        validate_spec(&pv.spec.clone().unwrap_or_default(), &Path::new("spec"))
    }

    fn validate_update(&self, new: &PersistentVolume, old: &PersistentVolume) -> ErrorList {
        let mut errs = self.validate(new);
        let mut new_spec = new.spec.clone().unwrap_or_default();
        let old_spec = old.spec.clone().unwrap_or_default();
        // A CSI volume may gain the secret used for expansion.
        if let (Some(n), Some(o)) = (new_spec.csi.as_mut(), old_spec.csi.as_ref()) {
            if o.controller_expand_secret_ref.is_none() {
                n.controller_expand_secret_ref = None;
            }
        }
        if semantic(&source(&new_spec)) != semantic(&source(&old_spec)) {
            errs.push(FieldError::forbidden(
                &Path::new("spec").child("persistentvolumesource"),
                "spec.persistentvolumesource is immutable after creation",
            ));
        }
        errs.extend(validation::validate_immutable_field(
            &new_spec.volume_mode,
            &old_spec.volume_mode,
            new_spec.volume_mode.clone().unwrap_or_default(),
            &Path::new("volumeMode"),
        ));
        if old_spec.node_affinity.is_some() && new_spec.node_affinity != old_spec.node_affinity {
            errs.push(FieldError::invalid(
                &Path::new("nodeAffinity"),
                serde_json::to_value(&new_spec.node_affinity).unwrap_or_default(),
                "field is immutable, except for updating from beta label to GA",
            ));
        }
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, pv: &PersistentVolume, raw: &Value) -> Vec<Value> {
        let spec = pv.spec.clone().unwrap_or_default();
        let status = pv.status.clone().unwrap_or_default();
        let claim = spec
            .claim_ref
            .as_ref()
            .map(|c| {
                format!(
                    "{}/{}",
                    c.namespace.clone().unwrap_or_default(),
                    c.name.clone().unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let phase = if pv.metadata.deletion_timestamp.is_some() {
            "Terminating".to_string()
        } else {
            status.phase.clone().unwrap_or_default()
        };
        let class = pv
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STORAGE_CLASS_ANNOTATION).cloned())
            .or(spec.storage_class_name.clone())
            .unwrap_or_default();
        vec![
            pv.metadata.name.clone().unwrap_or_default().into(),
            resourcelist::quantity(spec.capacity.as_ref(), "storage")
                .to_string()
                .into(),
            access_modes_string(spec.access_modes.as_ref()).into(),
            spec.persistent_volume_reclaim_policy
                .clone()
                .unwrap_or_default()
                .into(),
            phase.into(),
            claim.into(),
            class.into(),
            spec.volume_attributes_class_name
                .clone()
                .unwrap_or_else(|| "<unset>".into())
                .into(),
            status.reason.clone().unwrap_or_default().into(),
            table::age(raw),
            spec.volume_mode
                .clone()
                .unwrap_or_else(|| "<unset>".into())
                .into(),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::result_large_err)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn s() -> Typed<PersistentVolumeStrategy> {
        Typed::new(PersistentVolumeStrategy)
    }

    fn created(spec: Value) -> Value {
        let mut obj = s()
            .decode(json!({"metadata": {"name": "pv1"}, "spec": spec}))
            .unwrap();
        s().prepare_for_create(&mut obj);
        obj
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.body()))
            .collect()
    }

    #[test]
    fn defaults_validation_and_row() {
        let obj = created(
            json!({"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
            "hostPath": {"path": "/data"}, "claimRef": {"namespace": "default", "name": "data"}}),
        );
        assert_eq!(obj["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(obj["spec"]["volumeMode"], "Filesystem");
        assert_eq!(obj["status"]["phase"], "Pending");
        assert!(obj["status"]["lastPhaseTransitionTime"].is_string());
        assert!(
            s().validate(&obj).is_empty(),
            "{:?}",
            messages(&s().validate(&obj))
        );
        let r = s().row(&obj);
        assert_eq!(
            &r[..9],
            &[
                json!("pv1"),
                json!("10Gi"),
                json!("RWO"),
                json!("Retain"),
                json!("Pending"),
                json!("default/data"),
                json!(""),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(r[10], "Filesystem");

        let bad = created(json!({"accessModes": []}));
        let errs = messages(&s().validate(&bad));
        assert_eq!(
            errs,
            vec![
                "spec.accessModes: Required value",
                "spec.capacity: Required value",
                "spec.capacity: Unsupported value: {}: supported values: \"storage\"",
                "spec: Required value: must specify a volume type",
            ]
        );
    }

    #[test]
    fn source_is_immutable() {
        let old = created(
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/a"}}),
        );
        let mut new = old.clone();
        new["spec"]["hostPath"]["path"] = json!("/b");
        let errs = messages(&s().validate_update(&new, &old));
        assert_eq!(errs, vec!["spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"]);
        let mut new = old.clone();
        new["spec"]["capacity"]["storage"] = json!("2Gi");
        assert!(s().validate_update(&new, &old).is_empty());
    }

    #[test]
    fn phase_changes_stamp_the_transition_time() {
        let mut old = created(
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/a"}}),
        );
        old["status"]["lastPhaseTransitionTime"] = json!("2020-01-01T00:00:00Z");
        let mut new = old.clone();
        new["status"]["phase"] = json!("Bound");
        s().prepare_for_status_update(&mut new, &old);
        assert_ne!(
            new["status"]["lastPhaseTransitionTime"],
            "2020-01-01T00:00:00Z"
        );
    }
}

//! persistentvolumeclaims: phase Pending until bound, a spec that is immutable once
//! created except for growing the storage request of a bound claim (upstream's
//! `ValidatePersistentVolumeClaimUpdate`), and the columns of `kubectl get pvc`.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation::{self, LabelSelectorValidationOptions};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
};
use serde_json::Value;

use crate::registry::core::{resourcelist, semantic};
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct PersistentVolumeClaimStrategy;

/// The beta annotation that predates `spec.storageClassName`.
pub const STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Status",
        "string",
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    Column::new(
        "Volume",
        "string",
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    Column::new(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    Column::new(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has. More info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
    ),
    Column::new("StorageClass", "string", "StorageClass of the pvc"),
    Column::new(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    Column::new(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim. Value of Filesystem is implied when not included in claim spec.",
    )
    .wide(),
];

/// `SetDefaults_PersistentVolumeClaimSpec` (also applied to ephemeral volume templates).
pub fn default_pvc_spec(spec: &mut PersistentVolumeClaimSpec) {
    if spec.volume_mode.as_deref().is_none_or(str::is_empty) {
        spec.volume_mode = Some("Filesystem".into());
    }
    if let Some(r) = spec.resources.as_mut() {
        resourcelist::normalize(&mut r.limits);
        resourcelist::normalize(&mut r.requests);
    }
}

/// Access modes as `kubectl` abbreviates them: `RWO,ROX,RWX,RWOP`.
pub fn access_modes_string(modes: Option<&Vec<String>>) -> String {
    let modes = modes.cloned().unwrap_or_default();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| modes.iter().any(|x| x == m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// Access modes: at least one (when `required`), known values, RWOP alone.
pub fn validate_access_modes(modes: &[String], required: Option<&str>, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if modes.is_empty() {
        if let Some(detail) = required {
            errs.push(FieldError::required(path, detail));
        }
    }
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(path, m.as_str(), ACCESS_MODES));
        } else if m == "ReadWriteOncePod" {
            rwop = true;
        } else {
            other = true;
        }
    }
    if rwop && other {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

/// Upstream's `ValidatePersistentVolumeClaimSpec`.
pub fn validate_pvc_spec(spec: &PersistentVolumeClaimSpec, path: &Path) -> ErrorList {
    let modes = spec.access_modes.clone().unwrap_or_default();
    let mut errs = Vec::new();
    if modes.is_empty() {
        errs.push(FieldError::required(
            &path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if spec.selector.is_some() {
        errs.extend(validation::validate_label_selector(
            spec.selector.as_ref(),
            LabelSelectorValidationOptions::default(),
            &path.child("selector"),
        ));
    }
    errs.extend(validate_access_modes(
        &modes,
        None,
        &path.child("accessModes"),
    ));
    let storage_path = path.child("resources").key("storage");
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    match storage {
        None => errs.push(FieldError::required(&storage_path, "")),
        Some(q) => match resourcelist::parse(q, &storage_path) {
            Err(e) => errs.push(e),
            Ok(q) if q.sign() <= 0 => errs.push(FieldError::invalid(
                &storage_path,
                q.to_string(),
                "must be greater than zero",
            )),
            Ok(q) => errs.extend(resourcelist::validate_parsed_quantity_value(
                "storage",
                &q,
                &storage_path,
            )),
        },
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
    let refs = [
        (
            "dataSource",
            spec.data_source
                .as_ref()
                .map(|d| (d.name.as_str(), d.kind.as_str(), d.api_group.as_deref())),
        ),
        (
            "dataSourceRef",
            spec.data_source_ref
                .as_ref()
                .map(|d| (d.name.as_str(), d.kind.as_str(), d.api_group.as_deref())),
        ),
    ];
    for (field, r) in refs {
        let Some((name, kind, group)) = r else {
            continue;
        };
        let p = path.child(field);
        if name.is_empty() {
            errs.push(FieldError::required(&p.child("name"), ""));
        }
        if kind.is_empty() {
            errs.push(FieldError::required(&p.child("kind"), ""));
        }
        let group = group.unwrap_or("");
        if group.is_empty() && kind != "PersistentVolumeClaim" {
            errs.push(FieldError::invalid(
                &p,
                kind,
                "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
            ));
        }
        if !group.is_empty() {
            for m in validation::is_dns1123_subdomain(group) {
                errs.push(FieldError::invalid(&p.child("apiGroup"), group, m));
            }
        }
    }
    if let (Some(ds), Some(dsr)) = (&spec.data_source, &spec.data_source_ref) {
        if dsr.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
            errs.push(FieldError::invalid(
                path,
                path.child("dataSource").to_string(),
                "may not be specified when dataSourceRef.namespace is specified",
            ));
        } else if ds.api_group != dsr.api_group || ds.kind != dsr.kind || ds.name != dsr.name {
            errs.push(FieldError::invalid(
                path,
                path.child("dataSource").to_string(),
                "must match dataSourceRef",
            ));
        }
    }
    errs
}

fn storage_request(pvc: &PersistentVolumeClaim) -> apimachinery::quantity::Quantity {
    resourcelist::quantity(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
        "storage",
    )
}

fn phase(pvc: &PersistentVolumeClaim) -> &str {
    pvc.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

impl TypedStrategy for PersistentVolumeClaimStrategy {
    type Object = PersistentVolumeClaim;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<PersistentVolumeClaim>()
            .short_names(&["pvc"])
            .with_status()
    }

    fn default(&self, pvc: &mut PersistentVolumeClaim) {
        default_pvc_spec(pvc.spec.get_or_insert_with(Default::default));
        let status = pvc.status.get_or_insert_with(Default::default);
        if status.phase.as_deref().is_none_or(str::is_empty) {
            status.phase = Some("Pending".into());
        }
        resourcelist::normalize(&mut status.capacity);
        resourcelist::normalize(&mut status.allocated_resources);
    }

    fn prepare_for_create(&self, pvc: &mut PersistentVolumeClaim) {
        // Status is reset; upstream's decoder then defaults the phase to Pending.
        pvc.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        });
    }

    fn prepare_for_update(&self, new: &mut PersistentVolumeClaim, old: &PersistentVolumeClaim) {
        new.status = old.status.clone();
    }

    fn validate(&self, pvc: &PersistentVolumeClaim) -> ErrorList {
        validate_pvc_spec(&pvc.spec.clone().unwrap_or_default(), &Path::new("spec"))
    }

    fn validate_update(
        &self,
        new: &PersistentVolumeClaim,
        old: &PersistentVolumeClaim,
    ) -> ErrorList {
        let mut errs = self.validate(new);
        let mut new_spec = new.spec.clone().unwrap_or_default();
        let mut old_spec = old.spec.clone().unwrap_or_default();
        // The volume name may be set once, by the binder.
        if old_spec.volume_name.as_deref().is_none_or(str::is_empty) {
            old_spec.volume_name = new_spec.volume_name.clone();
        }
        let annotation = |p: &PersistentVolumeClaim| {
            p.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(STORAGE_CLASS_ANNOTATION).cloned())
        };
        let (old_ann, new_ann) = (annotation(old), annotation(new));
        let upgrade_from_annotation = old_ann.is_some()
            && old_spec.storage_class_name.is_none()
            && new_spec.storage_class_name.is_some()
            && new_spec.storage_class_name == old_ann
            && (new_ann.is_none() || new_ann == old_ann);
        if upgrade_from_annotation {
            new_spec.storage_class_name = None;
        } else {
            if new_ann != old_ann {
                errs.push(FieldError::invalid(
                    &Path::new("metadata")
                        .child("annotations")
                        .child(STORAGE_CLASS_ANNOTATION),
                    new_ann.clone().unwrap_or_default(),
                    validation::FIELD_IMMUTABLE_ERROR_MSG,
                ));
            }
            // A claim without a class may get one, if it agrees with the annotation.
            let from_nil = new_spec.storage_class_name.is_some()
                && old_spec.storage_class_name.is_none()
                && (old_ann.is_none() || new_spec.storage_class_name == old_ann);
            if from_nil {
                new_spec.storage_class_name = old_spec.storage_class_name.clone();
            }
        }
        let bound = phase(new) == "Bound";
        if bound {
            let old_storage = old_spec
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .cloned();
            if let Some(requests) = new_spec
                .resources
                .as_mut()
                .and_then(|r| r.requests.as_mut())
            {
                match old_storage {
                    Some(q) => {
                        requests.insert("storage".into(), q);
                    }
                    None => {
                        requests.remove("storage");
                    }
                }
            }
            if new_spec.volume_attributes_class_name.is_some() {
                new_spec.volume_attributes_class_name =
                    old_spec.volume_attributes_class_name.clone();
            }
        }
        if semantic(&new_spec) != semantic(&old_spec) {
            errs.push(FieldError::forbidden(
                &Path::new("spec"),
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
        let (new_size, old_size) = (storage_request(new), storage_request(old));
        if new_size < old_size {
            // RecoverVolumeExpansionFailure: a request may shrink back, but not below what
            // the volume already has.
            let capacity = resourcelist::quantity(
                old.status.as_ref().and_then(|s| s.capacity.as_ref()),
                "storage",
            );
            if new_size <= capacity {
                errs.push(FieldError::forbidden(
                    &Path::new("spec")
                        .child("resources")
                        .child("requests")
                        .child("storage"),
                    "field can not be less than status.capacity",
                ));
            }
        }
        let mode = |p: &PersistentVolumeClaim| p.spec.as_ref().and_then(|s| s.volume_mode.clone());
        errs.extend(validation::validate_immutable_field(
            &mode(new),
            &mode(old),
            mode(new).unwrap_or_default(),
            &Path::new("volumeMode"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, pvc: &PersistentVolumeClaim, raw: &Value) -> Vec<Value> {
        let spec = pvc.spec.clone().unwrap_or_default();
        let status = pvc.status.clone().unwrap_or_default();
        let phase = if pvc.metadata.deletion_timestamp.is_some() {
            "Terminating".to_string()
        } else {
            status.phase.clone().unwrap_or_default()
        };
        let volume = spec.volume_name.clone().unwrap_or_default();
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                resourcelist::quantity(status.capacity.as_ref(), "storage").to_string(),
                access_modes_string(status.access_modes.as_ref()),
            )
        };
        let class = pvc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STORAGE_CLASS_ANNOTATION).cloned())
            .or(spec.storage_class_name.clone())
            .unwrap_or_default();
        vec![
            pvc.metadata.name.clone().unwrap_or_default().into(),
            phase.into(),
            volume.into(),
            capacity.into(),
            modes.into(),
            class.into(),
            spec.volume_attributes_class_name
                .clone()
                .unwrap_or_else(|| "<unset>".into())
                .into(),
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

    fn s() -> Typed<PersistentVolumeClaimStrategy> {
        Typed::new(PersistentVolumeClaimStrategy)
    }

    fn created(spec: Value) -> Value {
        let mut obj = s()
            .decode(json!({"metadata": {"name": "data", "namespace": "default"}, "spec": spec}))
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
    fn defaults_and_validation() {
        let obj = created(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        );
        assert_eq!(obj["status"], json!({"phase": "Pending"}));
        assert_eq!(obj["spec"]["volumeMode"], "Filesystem");
        assert!(s().validate(&obj).is_empty());

        let bad =
            created(json!({"accessModes": ["ReadWriteOncePod", "ReadWriteOnce", "Sometimes"]}));
        let errs = messages(&s().validate(&bad));
        assert_eq!(
            errs,
            vec![
                "spec.accessModes: Unsupported value: \"Sometimes\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.resources[storage]: Required value",
            ]
        );
    }

    #[test]
    fn bound_claims_may_only_grow() {
        let mut old = created(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "volumeName": "pv1"}),
        );
        old["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}});
        let update = |f: &dyn Fn(&mut Value)| {
            let mut new = old.clone();
            f(&mut new);
            let mut new = s().decode(new).unwrap();
            s().prepare_for_update(&mut new, &old);
            messages(&s().validate_update(&new, &old))
        };
        assert!(
            update(&|n| n["spec"]["resources"]["requests"]["storage"] = json!("2Gi")).is_empty()
        );
        assert_eq!(
            update(&|n| n["spec"]["resources"]["requests"]["storage"] = json!("512Mi")),
            vec!["spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
        );
        assert_eq!(
            update(&|n| n["spec"]["accessModes"] = json!(["ReadWriteMany"])),
            vec!["spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"]
        );
    }

    #[test]
    fn volume_name_may_be_set_once() {
        let old = created(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
        );
        let mut new = old.clone();
        new["spec"]["volumeName"] = json!("pv1");
        assert!(s().validate_update(&new, &old).is_empty());
    }

    #[test]
    fn row() {
        let mut obj = created(
            json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "fast", "volumeName": "pv1"}),
        );
        obj["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"]});
        let r = s().row(&obj);
        assert_eq!(
            &r[..7],
            &[
                json!("data"),
                json!("Bound"),
                json!("pv1"),
                json!("1Gi"),
                json!("RWO,ROX"),
                json!("fast"),
                json!("<unset>")
            ]
        );
        assert_eq!(r[8], "Filesystem");
    }
}

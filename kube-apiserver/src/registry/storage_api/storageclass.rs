//! storageclasses: cluster-scoped classes of dynamically provisioned volumes. Defaults
//! reclaimPolicy Delete and volumeBindingMode Immediate; provisioner, parameters,
//! reclaimPolicy and volumeBindingMode cannot change.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct StorageClassStrategy;

/// The annotation that makes a class the default of claims that name none (the beta one
/// is still honoured, as upstream's `IsDefaultAnnotation` does).
const DEFAULT_ANNOTATIONS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];
const RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETERS_SIZE: usize = 256 * 1024;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Provisioner",
        "string",
        "provisioner indicates the type of the provisioner.",
    ),
    Column::new(
        "ReclaimPolicy",
        "string",
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete.",
    ),
    Column::new(
        "VolumeBindingMode",
        "string",
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature.",
    ),
    Column::new(
        "AllowVolumeExpansion",
        "string",
        "allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    AGE,
];

pub fn is_default_class(sc: &StorageClass) -> bool {
    let annotations = sc.metadata.annotations.as_ref();
    DEFAULT_ANNOTATIONS.iter().any(|a| {
        annotations
            .and_then(|m| m.get(*a))
            .is_some_and(|v| v == "true")
    })
}

fn validate_parameters(sc: &StorageClass, path: &Path) -> ErrorList {
    let Some(params) = &sc.parameters else {
        return Vec::new();
    };
    if params.len() > MAX_PARAMETERS {
        return vec![FieldError::too_long(path, MAX_PARAMETERS)];
    }
    let mut errs = Vec::new();
    let mut total = 0;
    for (k, v) in params {
        if k.is_empty() {
            errs.push(FieldError::invalid(
                path,
                k.as_str(),
                "field can not be empty.",
            ));
        }
        total += k.len() + v.len();
    }
    if total > MAX_PARAMETERS_SIZE {
        errs.push(FieldError::too_long(path, MAX_PARAMETERS_SIZE));
    }
    errs
}

impl TypedStrategy for StorageClassStrategy {
    type Object = StorageClass;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<StorageClass>()
            .short_names(&["sc"])
            .returns_deleted_object()
    }

    fn default(&self, sc: &mut StorageClass) {
        sc.reclaim_policy.get_or_insert_with(|| "Delete".into());
        sc.volume_binding_mode
            .get_or_insert_with(|| "Immediate".into());
    }

    fn validate(&self, sc: &StorageClass) -> ErrorList {
        let mut errs = Vec::new();
        let path = Path::new("provisioner");
        if sc.provisioner.is_empty() {
            errs.push(FieldError::required(&path, ""));
        } else {
            for msg in validation::is_qualified_name(&sc.provisioner.to_lowercase()) {
                errs.push(FieldError::invalid(&path, sc.provisioner.as_str(), msg));
            }
        }
        errs.extend(validate_parameters(sc, &Path::new("parameters")));
        if let Some(policy) = sc.reclaim_policy.as_deref().filter(|p| !p.is_empty()) {
            if !RECLAIM_POLICIES.contains(&policy) {
                errs.push(FieldError::not_supported(
                    &Path::new("reclaimPolicy"),
                    policy,
                    RECLAIM_POLICIES,
                ));
            }
        }
        match sc.volume_binding_mode.as_deref() {
            None => errs.push(FieldError::required(&Path::new("volumeBindingMode"), "")),
            Some(mode) if !BINDING_MODES.contains(&mode) => errs.push(FieldError::not_supported(
                &Path::new("volumeBindingMode"),
                mode,
                BINDING_MODES,
            )),
            Some(_) => {}
        }
        errs
    }

    fn validate_update(&self, new: &StorageClass, old: &StorageClass) -> ErrorList {
        let mut errs = self.validate(new);
        let empty = Default::default();
        if new.parameters.as_ref().unwrap_or(&empty) != old.parameters.as_ref().unwrap_or(&empty) {
            errs.push(FieldError::forbidden(
                &Path::new("parameters"),
                "updates to parameters are forbidden.",
            ));
        }
        if new.provisioner != old.provisioner {
            errs.push(FieldError::forbidden(
                &Path::new("provisioner"),
                "updates to provisioner are forbidden.",
            ));
        }
        if new.reclaim_policy != old.reclaim_policy {
            errs.push(FieldError::forbidden(
                &Path::new("reclaimPolicy"),
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        errs.extend(validation::validate_immutable_field(
            &new.volume_binding_mode,
            &old.volume_binding_mode,
            new.volume_binding_mode.clone().unwrap_or_default(),
            &Path::new("volumeBindingMode"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, sc: &StorageClass, raw: &Value) -> Vec<Value> {
        let mut name = sc.metadata.name.clone().unwrap_or_default();
        if is_default_class(sc) {
            name.push_str(" (default)");
        }
        vec![
            name.into(),
            sc.provisioner.clone().into(),
            sc.reclaim_policy
                .clone()
                .unwrap_or_else(|| "Delete".into())
                .into(),
            sc.volume_binding_mode
                .clone()
                .unwrap_or_else(|| "Immediate".into())
                .into(),
            sc.allow_volume_expansion.unwrap_or(false).into(),
            table::age(raw),
        ]
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::registry::typed::Typed;
    use crate::registry::Strategy;
    use serde_json::json;

    fn sc(extra: Value) -> Value {
        let mut obj = json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": "standard"},
            "provisioner": "rancher.io/local-path",
        });
        for (k, v) in extra.as_object().unwrap() {
            obj[k] = v.clone();
        }
        obj
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_reclaim_policy_and_binding_mode() {
        let s = Typed::new(StorageClassStrategy);
        let obj = s.decode(sc(json!({}))).unwrap();
        assert_eq!(obj["reclaimPolicy"], json!("Delete"));
        assert_eq!(obj["volumeBindingMode"], json!("Immediate"));
        assert!(s.validate(&obj).is_empty());
        assert!(!s.info().namespaced);
        assert_eq!(s.info().short_names, vec!["sc"]);
    }

    #[test]
    fn provisioner_and_enums_are_checked() {
        let s = Typed::new(StorageClassStrategy);
        let obj = s
            .decode(sc(json!({"provisioner": "", "reclaimPolicy": "Recycle", "volumeBindingMode": "Later"})))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                "provisioner: Required value",
                r#"reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain""#,
                r#"volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer""#,
            ]
        );
        let obj = s.decode(sc(json!({"provisioner": "a/b/c"}))).unwrap();
        assert!(
            messages(&s.validate(&obj))[0].starts_with(r#"provisioner: Invalid value: "a/b/c": "#)
        );
    }

    #[test]
    fn provisioner_and_parameters_are_immutable() {
        let s = Typed::new(StorageClassStrategy);
        let old = s
            .decode(sc(json!({"parameters": {"type": "ssd"}})))
            .unwrap();
        let new = s
            .decode(sc(json!({"provisioner": "other.io/x", "parameters": {"type": "hdd"}, "volumeBindingMode": "WaitForFirstConsumer"})))
            .unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec![
                "parameters: Forbidden: updates to parameters are forbidden.",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
                r#"volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable"#,
            ]
        );
    }

    #[test]
    fn row_marks_the_default_class() {
        let s = Typed::new(StorageClassStrategy);
        let mut raw = sc(json!({"allowVolumeExpansion": true}));
        raw["metadata"]["annotations"] =
            json!({"storageclass.kubernetes.io/is-default-class": "true"});
        let obj = s.decode(raw).unwrap();
        let row = s.row(&obj);
        assert_eq!(
            &row[..5],
            &[
                json!("standard (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("Immediate"),
                json!(true)
            ]
        );
    }
}

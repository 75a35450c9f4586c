//! csidrivers: cluster-scoped descriptions of installed CSI drivers: whether volumes need
//! attaching, what the kubelet passes at mount, which lifecycle modes they support.

use std::collections::BTreeSet;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::storage::v1::{CSIDriver, CSIDriverSpec};
use serde_json::Value;

use crate::registry::storage_api::validate_csi_driver_name;
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct CsiDriverStrategy;

const FS_GROUP_POLICIES: &[&str] = &["File", "None", "ReadWriteOnceWithFSType"];
const LIFECYCLE_MODES: &[&str] = &["Persistent", "Ephemeral"];
const MIN_TOKEN_SECONDS: i64 = 600;
const MAX_TOKEN_SECONDS: i64 = 1 << 32;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "AttachRequired",
        "boolean",
        "attachRequired indicates this CSI volume driver requires an attach operation.",
    ),
    Column::new(
        "PodInfoOnMount",
        "boolean",
        "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations.",
    ),
    Column::new(
        "StorageCapacity",
        "boolean",
        "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report.",
    ),
    Column::new(
        "TokenRequests",
        "string",
        "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication.",
    ),
    Column::new(
        "RequiresRepublish",
        "boolean",
        "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume.",
    ),
    Column::new(
        "Modes",
        "string",
        "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports.",
    ),
    AGE,
];

fn required_flag(value: Option<bool>, path: &Path) -> ErrorList {
    match value {
        Some(_) => Vec::new(),
        None => vec![FieldError::required(path, "")],
    }
}

fn validate_spec(spec: &CSIDriverSpec, path: &Path) -> ErrorList {
    // The field name upstream's messages carry, misspelt as they are.
    let mut errs = required_flag(spec.attach_required, &path.child("attachedRequired"));
    errs.extend(required_flag(
        spec.pod_info_on_mount,
        &path.child("podInfoOnMount"),
    ));
    errs.extend(required_flag(
        spec.storage_capacity,
        &path.child("storageCapacity"),
    ));
    match spec.fs_group_policy.as_deref() {
        None => errs.push(FieldError::required(&path.child("fsGroupPolicy"), "")),
        Some(p) if !FS_GROUP_POLICIES.contains(&p) => errs.push(FieldError::not_supported(
            &path.child("fsGroupPolicy"),
            p,
            FS_GROUP_POLICIES,
        )),
        Some(_) => {}
    }
    let mut audiences = BTreeSet::new();
    for (i, token) in spec.token_requests.iter().flatten().enumerate() {
        let p = path.child("tokenRequests").index(i);
        if !audiences.insert(token.audience.as_str()) {
            errs.push(FieldError::duplicate(
                &p.child("audience"),
                token.audience.as_str(),
            ));
        }
        if let Some(secs) = token.expiration_seconds {
            if secs < MIN_TOKEN_SECONDS {
                errs.push(FieldError::invalid(
                    &p.child("expirationSeconds"),
                    secs,
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if secs > MAX_TOKEN_SECONDS {
                errs.push(FieldError::invalid(
                    &p.child("expirationSeconds"),
                    secs,
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
        }
    }
    let modes = spec.volume_lifecycle_modes.as_deref().unwrap_or_default();
    if modes.is_empty() {
        errs.push(FieldError::required(
            &path.child("volumeLifecycleModes"),
            "must specify at least one volume lifecycle mode",
        ));
    }
    for (i, mode) in modes.iter().enumerate() {
        if !LIFECYCLE_MODES.contains(&mode.as_str()) {
            errs.push(FieldError::not_supported(
                &path.child("volumeLifecycleModes").index(i),
                mode.as_str(),
                LIFECYCLE_MODES,
            ));
        }
    }
    errs
}

impl TypedStrategy for CsiDriverStrategy {
    type Object = CSIDriver;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<CSIDriver>()
    }

    fn default(&self, driver: &mut CSIDriver) {
        let spec = &mut driver.spec;
        spec.attach_required.get_or_insert(true);
        spec.pod_info_on_mount.get_or_insert(false);
        spec.storage_capacity.get_or_insert(false);
        spec.requires_republish.get_or_insert(false);
        spec.se_linux_mount.get_or_insert(false);
        spec.fs_group_policy
            .get_or_insert_with(|| "ReadWriteOnceWithFSType".into());
        if spec
            .volume_lifecycle_modes
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            spec.volume_lifecycle_modes = Some(vec!["Persistent".into()]);
        }
    }

    fn prepare_for_create(&self, driver: &mut CSIDriver) {
        // MutableCSINodeAllocatableCount is an alpha feature, off by default.
        driver.spec.node_allocatable_update_period_seconds = None;
    }

    fn prepare_for_update(&self, new: &mut CSIDriver, old: &CSIDriver) {
        if old.spec.node_allocatable_update_period_seconds.is_none() {
            new.spec.node_allocatable_update_period_seconds = None;
        }
    }

    fn validate(&self, driver: &CSIDriver) -> ErrorList {
        let name = driver.metadata.name.as_deref().unwrap_or("");
        let mut errs = validate_csi_driver_name(name, &Path::new("name"));
        errs.extend(validate_spec(&driver.spec, &Path::new("spec")));
        errs
    }

    fn validate_update(&self, new: &CSIDriver, old: &CSIDriver) -> ErrorList {
        let mut errs = self.validate(new);
        let spec = Path::new("spec");
        errs.extend(validation::validate_immutable_field(
            &new.spec.attach_required,
            &old.spec.attach_required,
            new.spec.attach_required,
            &spec.child("attachedRequired"),
        ));
        errs.extend(validation::validate_immutable_field(
            &new.spec.volume_lifecycle_modes,
            &old.spec.volume_lifecycle_modes,
            serde_json::to_value(&new.spec.volume_lifecycle_modes).unwrap_or(Value::Null),
            &spec.child("volumeLifecycleModes"),
        ));
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, driver: &CSIDriver, raw: &Value) -> Vec<Value> {
        let spec = &driver.spec;
        let tokens = match &spec.token_requests {
            None => "<unset>".to_string(),
            Some(t) => t
                .iter()
                .map(|t| t.audience.as_str())
                .collect::<Vec<_>>()
                .join(","),
        };
        let modes = spec
            .volume_lifecycle_modes
            .as_deref()
            .unwrap_or_default()
            .join(",");
        vec![
            driver.metadata.name.clone().unwrap_or_default().into(),
            spec.attach_required.unwrap_or(true).into(),
            spec.pod_info_on_mount.unwrap_or(false).into(),
            spec.storage_capacity.unwrap_or(false).into(),
            tokens.into(),
            spec.requires_republish.unwrap_or(false).into(),
            if modes.is_empty() {
                "<none>".to_string()
            } else {
                modes
            }
            .into(),
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

    fn driver(spec: Value) -> Value {
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSIDriver",
            "metadata": {"name": "hostpath.csi.k8s.io"},
            "spec": spec,
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn defaults_and_row() {
        let s = Typed::new(CsiDriverStrategy);
        let obj = s.decode(driver(json!({}))).unwrap();
        assert_eq!(
            obj["spec"],
            json!({
                "attachRequired": true,
                "fsGroupPolicy": "ReadWriteOnceWithFSType",
                "podInfoOnMount": false,
                "requiresRepublish": false,
                "seLinuxMount": false,
                "storageCapacity": false,
                "volumeLifecycleModes": ["Persistent"],
            })
        );
        assert!(s.validate(&obj).is_empty());
        assert_eq!(
            &s.row(&obj)[..7],
            &[
                json!("hostpath.csi.k8s.io"),
                json!(true),
                json!(false),
                json!(false),
                json!("<unset>"),
                json!(false),
                json!("Persistent")
            ]
        );
    }

    #[test]
    fn spec_is_checked() {
        let s = Typed::new(CsiDriverStrategy);
        let obj = s
            .decode(driver(json!({
                "fsGroupPolicy": "Sometimes",
                "volumeLifecycleModes": ["Persistent", "Forever"],
                "tokenRequests": [{"audience": "a", "expirationSeconds": 60}, {"audience": "a"}],
            })))
            .unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec![
                r#"spec.fsGroupPolicy: Unsupported value: "Sometimes": supported values: "File", "None", "ReadWriteOnceWithFSType""#,
                "spec.tokenRequests[0].expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes",
                r#"spec.tokenRequests[1].audience: Duplicate value: "a""#,
                r#"spec.volumeLifecycleModes[1]: Unsupported value: "Forever": supported values: "Persistent", "Ephemeral""#,
            ]
        );
    }

    #[test]
    fn attach_required_is_immutable() {
        let s = Typed::new(CsiDriverStrategy);
        let old = s.decode(driver(json!({}))).unwrap();
        let new = s.decode(driver(json!({"attachRequired": false}))).unwrap();
        assert_eq!(
            messages(&s.validate_update(&new, &old)),
            vec!["spec.attachedRequired: Invalid value: false: field is immutable"]
        );
    }
}

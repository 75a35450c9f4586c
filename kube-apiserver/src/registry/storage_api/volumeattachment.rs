//! volumeattachments: cluster-scoped requests to attach a volume to a node, written by
//! the attach/detach controller and reported on by the CSI external-attacher through
//! `/status`. The spec never changes after creation.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::storage::v1::{VolumeAttachment, VolumeAttachmentStatus, VolumeError};
use serde_json::Value;

use crate::registry::storage_api::validate_csi_driver_name;
use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct VolumeAttachmentStrategy;

const MAX_METADATA_SIZE: usize = 256 * 1024;
const MAX_ERROR_MESSAGE: usize = 1024;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Attacher",
        "string",
        "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().",
    )
    .format("name"),
    Column::new(
        "PV",
        "string",
        "persistentVolumeName represents the name of the persistent volume to attach.",
    ),
    Column::new(
        "Node",
        "string",
        "nodeName represents the node that the volume should be attached to.",
    ),
    Column::new(
        "Attached",
        "boolean",
        "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher.",
    ),
    AGE,
];

fn invalid_each(path: &Path, value: &str, msgs: Vec<String>) -> ErrorList {
    msgs.into_iter()
        .map(|m| FieldError::invalid(path, value, m))
        .collect()
}

fn validate_volume_error(err: Option<&VolumeError>, path: &Path) -> ErrorList {
    match err.and_then(|e| e.message.as_deref()) {
        Some(msg) if msg.len() > MAX_ERROR_MESSAGE => {
            vec![FieldError::too_long(
                &path.child("message"),
                MAX_ERROR_MESSAGE,
            )]
        }
        _ => Vec::new(),
    }
}

fn validate_status(status: Option<&VolumeAttachmentStatus>) -> ErrorList {
    let Some(status) = status else {
        return Vec::new();
    };
    let path = Path::new("status");
    let mut errs = Vec::new();
    let size: usize = status
        .attachment_metadata
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_METADATA_SIZE {
        errs.push(FieldError::too_long(
            &path.child("attachmentMetadata"),
            MAX_METADATA_SIZE,
        ));
    }
    errs.extend(validate_volume_error(
        status.attach_error.as_ref(),
        &path.child("attachError"),
    ));
    errs.extend(validate_volume_error(
        status.detach_error.as_ref(),
        &path.child("detachError"),
    ));
    errs
}

impl TypedStrategy for VolumeAttachmentStrategy {
    type Object = VolumeAttachment;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<VolumeAttachment>().with_status()
    }

    fn prepare_for_create(&self, va: &mut VolumeAttachment) {
        va.status = Some(VolumeAttachmentStatus::default());
    }

    fn prepare_for_update(&self, new: &mut VolumeAttachment, old: &VolumeAttachment) {
        new.status = old.status.clone();
    }

    fn validate(&self, va: &VolumeAttachment) -> ErrorList {
        let spec = Path::new("spec");
        let mut errs = Vec::new();
        if va.spec.attacher.is_empty() {
            errs.push(FieldError::required(&spec.child("attacher"), ""));
        }
        let source = &va.spec.source;
        let source_path = spec.child("source");
        match (&source.inline_volume_spec, &source.persistent_volume_name) {
            (None, None) => errs.push(FieldError::required(
                &source_path,
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (Some(_), Some(_)) => errs.push(FieldError::forbidden(
                &source_path,
                "must specify exactly one of inlineVolumeSpec and persistentVolumeName",
            )),
            (None, Some(pv)) if pv.is_empty() => errs.push(FieldError::required(
                &source_path.child("persistentVolumeName"),
                "must specify non empty persistentVolumeName",
            )),
            _ => {}
        }
        errs.extend(invalid_each(
            &spec.child("nodeName"),
            &va.spec.node_name,
            validation::name_is_dns_subdomain(&va.spec.node_name, false),
        ));
        errs.extend(validate_status(va.status.as_ref()));
        // The checks upstream adds for storage.k8s.io/v1 requests.
        errs.extend(validate_csi_driver_name(
            &va.spec.attacher,
            &Path::new("spec.attacher"),
        ));
        if let Some(pv) = source.persistent_volume_name.as_deref() {
            errs.extend(invalid_each(
                &Path::new("spec.source.persistentVolumeName"),
                pv,
                validation::name_is_dns_subdomain(pv, false),
            ));
        }
        errs
    }

    fn validate_update(&self, new: &VolumeAttachment, old: &VolumeAttachment) -> ErrorList {
        let mut errs = self.validate(new);
        if new.spec != old.spec {
            errs.push(FieldError::invalid(
                &Path::new("spec"),
                serde_json::to_value(&new.spec).unwrap_or(Value::Null),
                validation::FIELD_IMMUTABLE_ERROR_MSG,
            ));
        }
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, va: &VolumeAttachment, raw: &Value) -> Vec<Value> {
        vec![
            va.metadata.name.clone().unwrap_or_default().into(),
            va.spec.attacher.clone().into(),
            va.spec
                .source
                .persistent_volume_name
                .clone()
                .unwrap_or_default()
                .into(),
            va.spec.node_name.clone().into(),
            va.status.as_ref().is_some_and(|s| s.attached).into(),
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

    fn attachment(source: Value) -> Value {
        json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "VolumeAttachment",
            "metadata": {"name": "csi-123"},
            "spec": {"attacher": "hostpath.csi.k8s.io", "nodeName": "node-1", "source": source},
            "status": {"attached": true},
        })
    }

    fn messages(errs: &ErrorList) -> Vec<String> {
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn status_is_reset_on_create_and_row() {
        let s = Typed::new(VolumeAttachmentStrategy);
        let mut obj = s
            .decode(attachment(json!({"persistentVolumeName": "pv-1"})))
            .unwrap();
        assert_eq!(s.row(&obj)[4], json!(true));
        s.prepare_for_create(&mut obj);
        assert_eq!(obj["status"], json!({"attached": false}));
        assert!(s.validate(&obj).is_empty(), "{:?}", s.validate(&obj));
        let row = s.row(&obj);
        assert_eq!(
            &row[..5],
            &[
                json!("csi-123"),
                json!("hostpath.csi.k8s.io"),
                json!("pv-1"),
                json!("node-1"),
                json!(false)
            ]
        );
    }

    #[test]
    fn source_needs_exactly_one_volume() {
        let s = Typed::new(VolumeAttachmentStrategy);
        let obj = s.decode(attachment(json!({}))).unwrap();
        assert_eq!(
            messages(&s.validate(&obj)),
            vec!["spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName"]
        );
    }

    #[test]
    fn spec_is_immutable() {
        let s = Typed::new(VolumeAttachmentStrategy);
        let old = s
            .decode(attachment(json!({"persistentVolumeName": "pv-1"})))
            .unwrap();
        let new = s
            .decode(attachment(json!({"persistentVolumeName": "pv-2"})))
            .unwrap();
        let msgs = messages(&s.validate_update(&new, &old));
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].starts_with("spec: Invalid value: "));
        assert!(msgs[0].ends_with(": field is immutable"));
    }
}

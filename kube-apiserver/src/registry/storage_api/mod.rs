//! The `storage.k8s.io` API group, version v1.

pub mod csidriver;
pub mod csinode;
pub mod storageclass;
pub mod volumeattachment;

use std::sync::Arc;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(csidriver::CsiDriverStrategy))),
        Resource::new(Arc::new(Typed::new(csinode::CsiNodeStrategy))),
        Resource::new(Arc::new(Typed::new(storageclass::StorageClassStrategy))),
        Resource::new(Arc::new(Typed::new(
            volumeattachment::VolumeAttachmentStrategy,
        ))),
    ]
}

/// Upstream's `ValidateCSIDriverName`: a DNS subdomain of at most 63 characters.
pub(crate) fn validate_csi_driver_name(name: &str, path: &Path) -> ErrorList {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(FieldError::required(path, ""));
    }
    if name.len() > 63 {
        errs.push(FieldError::too_long(path, 63));
    }
    for msg in validation::is_dns1123_subdomain(&name.to_lowercase()) {
        errs.push(FieldError::invalid(path, name, msg));
    }
    errs
}

/// `apivalidation.ValidateQualifiedName`.
pub(crate) fn validate_qualified_name(value: &str, path: &Path) -> ErrorList {
    validation::is_qualified_name(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect()
}

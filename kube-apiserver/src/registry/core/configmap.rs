//! configmaps: data and binaryData keys, validated as upstream's `ValidateConfigMap`.

use std::collections::BTreeSet;

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::ResourceInfo;

pub struct ConfigMapStrategy;

/// Upstream's limit on the total size of a ConfigMap's data (1 MiB).
const MAX_DATA_BYTES: usize = 1024 * 1024;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Data", "string", "Number of data entries"),
    AGE,
];

impl TypedStrategy for ConfigMapStrategy {
    type Object = ConfigMap;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<ConfigMap>().short_names(&["cm"])
    }

    fn validate(&self, cm: &ConfigMap) -> ErrorList {
        let mut errs = Vec::new();
        let mut total = 0;
        let mut seen = BTreeSet::new();
        if let Some(data) = &cm.data {
            for (k, v) in data {
                let p = Path::new("data").key(k);
                for msg in validation::is_config_map_key(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), msg));
                }
                total += v.len();
                seen.insert(k.clone());
            }
        }
        if let Some(data) = &cm.binary_data {
            for (k, v) in data {
                let p = Path::new("binaryData").key(k);
                for msg in validation::is_config_map_key(k) {
                    errs.push(FieldError::invalid(&p, k.as_str(), msg));
                }
                if seen.contains(k) {
                    errs.push(FieldError::invalid(
                        &p,
                        k.as_str(),
                        "duplicate of key present in data",
                    ));
                }
                total += v.0.len();
            }
        }
        if total > MAX_DATA_BYTES {
            errs.push(FieldError::too_long(&Path::new(""), MAX_DATA_BYTES));
        }
        errs
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> ErrorList {
        let mut errs = self.validate(new);
        if old.immutable == Some(true) {
            if new.immutable != Some(true) {
                errs.push(FieldError::forbidden(
                    &Path::new("immutable"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if new.data != old.data {
                errs.push(FieldError::forbidden(
                    &Path::new("data"),
                    "field is immutable when `immutable` is set",
                ));
            }
            if new.binary_data != old.binary_data {
                errs.push(FieldError::forbidden(
                    &Path::new("binaryData"),
                    "field is immutable when `immutable` is set",
                ));
            }
        }
        errs
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, cm: &ConfigMap, raw: &Value) -> Vec<Value> {
        let n = cm.data.as_ref().map_or(0, |d| d.len())
            + cm.binary_data.as_ref().map_or(0, |d| d.len());
        vec![
            cm.metadata.name.clone().unwrap_or_default().into(),
            Value::from(n),
            table::age(raw),
        ]
    }
}

//! secrets: typed secrets with the keys their type requires (upstream
//! `ValidateSecret`), default type Opaque, stringData folded into data.

use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::validation;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::Value;

use crate::registry::table::{self, Column, AGE, NAME};
use crate::registry::typed::TypedStrategy;
use crate::registry::{ResourceInfo, SelectableField};

pub struct SecretStrategy;

const MAX_SECRET_BYTES: usize = 1024 * 1024;

const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Type", "string", "The type of the secret"),
    Column::new("Data", "string", "The number of entries in data"),
    AGE,
];

const FIELDS: &[SelectableField] = &[SelectableField::new("type")];

/// Keys each well-known secret type must carry.
fn required_keys(secret_type: &str) -> &'static [&'static str] {
    match secret_type {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/basic-auth" => &[],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        _ => &[],
    }
}

impl TypedStrategy for SecretStrategy {
    type Object = Secret;

    fn info(&self) -> ResourceInfo {
        ResourceInfo::of::<Secret>()
    }

    fn default(&self, s: &mut Secret) {
        if s.type_.as_deref().is_none_or(str::is_empty) {
            s.type_ = Some("Opaque".into());
        }
        // stringData is a write-only convenience: it lands in data.
        if let Some(string_data) = s.string_data.take() {
            let data = s.data.get_or_insert_with(Default::default);
            for (k, v) in string_data {
                data.insert(k, ByteString(v.into_bytes()));
            }
        }
    }

    fn validate(&self, s: &Secret) -> ErrorList {
        let mut errs = Vec::new();
        let mut total = 0;
        let data = s.data.clone().unwrap_or_default();
        for (k, v) in &data {
            let p = Path::new("data").key(k);
            for msg in validation::is_config_map_key(k) {
                errs.push(FieldError::invalid(&p, k.as_str(), msg));
            }
            total += v.0.len();
        }
        if total > MAX_SECRET_BYTES {
            errs.push(FieldError::too_long(&Path::new("data"), MAX_SECRET_BYTES));
        }
        let ty = s.type_.as_deref().unwrap_or("Opaque");
        for key in required_keys(ty) {
            if !data.contains_key(*key) {
                errs.push(FieldError::required(&Path::new("data").key(key), ""));
            }
        }
        if ty == "kubernetes.io/service-account-token" {
            let has_sa = s
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("kubernetes.io/service-account.name"));
            if !has_sa {
                errs.push(FieldError::required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        errs
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> ErrorList {
        let mut errs = self.validate(new);
        if new.type_ != old.type_ {
            errs.push(FieldError::invalid(
                &Path::new("type"),
                new.type_.clone().unwrap_or_default(),
                "field is immutable",
            ));
        }
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
        }
        errs
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        FIELDS
    }

    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }

    fn row(&self, s: &Secret, raw: &Value) -> Vec<Value> {
        vec![
            s.metadata.name.clone().unwrap_or_default().into(),
            s.type_.clone().unwrap_or_default().into(),
            Value::from(s.data.as_ref().map_or(0, |d| d.len())),
            table::age(raw),
        ]
    }
}

//! Strategies written against k8s-openapi's typed structs, adapted to the JSON-level
//! [`Strategy`] the generic store uses. Decoding into the typed struct is what type-checks
//! a request body and drops fields the type does not have, as upstream's decoder does.

use std::borrow::Cow;

use apimachinery::field::ErrorList;
use apimachinery::StatusError;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata as _, Resource as _};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::table::{self, Column};
use crate::registry::{ResourceInfo, SelectableField, Strategy};

/// A resource's behaviour on its typed object. Every method has upstream's default.
pub trait TypedStrategy: Send + Sync + 'static {
    type Object: k8s_openapi::Resource
        + k8s_openapi::Metadata<Ty = ObjectMeta>
        + Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync;

    fn info(&self) -> ResourceInfo;

    /// Upstream's defaulting functions (`SetDefaults_*`).
    fn default(&self, _obj: &mut Self::Object) {}

    /// Conversions for resources served in a version other than their storage version
    /// (see [`crate::registry::Strategy::decode_storage_version`]).
    fn decode_storage_version(&self, obj: Value) -> Value {
        obj
    }

    fn encode_storage_version<'a>(&self, obj: Cow<'a, Value>) -> Cow<'a, Value> {
        obj
    }

    fn prepare_for_create(&self, _obj: &mut Self::Object) {}

    fn prepare_for_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}

    /// The status subresource's preparation, after everything but status has been taken
    /// from the stored object (e.g. status fields a writer may not clear).
    fn prepare_for_status_update(&self, _new: &mut Self::Object, _old: &Self::Object) {}

    fn validate(&self, _obj: &Self::Object) -> ErrorList {
        Vec::new()
    }

    fn validate_update(&self, new: &Self::Object, _old: &Self::Object) -> ErrorList {
        self.validate(new)
    }

    fn allow_create_on_update(&self) -> bool {
        false
    }

    fn allow_unconditional_update(&self) -> bool {
        true
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        &[]
    }

    fn has_pending_finalizers(&self, _obj: &Self::Object) -> bool {
        false
    }

    fn prepare_for_deletion(&self, _obj: &mut Self::Object) {}

    /// See [`crate::registry::Strategy::grace_period`].
    fn grace_period(&self, _obj: &Self::Object, _requested: Option<i64>) -> i64 {
        0
    }

    fn columns(&self) -> &'static [Column] {
        table::DEFAULT_COLUMNS
    }

    /// Cells for [`TypedStrategy::columns`]; the default prints Name and Age.
    fn row(&self, obj: &Self::Object, raw: &Value) -> Vec<Value> {
        vec![
            Value::String(obj.metadata().name.clone().unwrap_or_default()),
            table::age(raw),
        ]
    }
}

/// Adapts a [`TypedStrategy`] to the JSON-level [`Strategy`].
pub struct Typed<S: TypedStrategy> {
    strategy: S,
    info: ResourceInfo,
}

impl<S: TypedStrategy> Typed<S> {
    pub fn new(strategy: S) -> Self {
        let info = strategy.info();
        Typed { strategy, info }
    }

    fn typed(&self, obj: &Value) -> Option<S::Object> {
        // Straight from the borrowed Value: no copy of the whole object first.
        S::Object::deserialize(obj).ok()
    }

    fn to_json(obj: &S::Object) -> Value {
        // Serialising a k8s-openapi struct into a Value cannot fail: it has no maps with
        // non-string keys and no custom serialisers that error.
        serde_json::to_value(obj).unwrap_or(Value::Null)
    }

    /// Apply `f` to the typed form of `obj` and write the result back.
    fn edit(&self, obj: &mut Value, f: impl FnOnce(&mut S::Object)) {
        if let Some(mut typed) = self.typed(obj) {
            f(&mut typed);
            *obj = Self::to_json(&typed);
        }
    }
}

impl<S: TypedStrategy> Strategy for Typed<S> {
    fn info(&self) -> &ResourceInfo {
        &self.info
    }

    fn decode(&self, obj: Value) -> Result<Value, StatusError> {
        let mut typed: S::Object = serde_json::from_value(obj).map_err(|e| {
            StatusError::bad_request(format!(
                "{kind} in version {version:?} cannot be handled as a {kind}: {e}",
                kind = S::Object::KIND,
                version = S::Object::VERSION,
            ))
        })?;
        self.strategy.default(&mut typed);
        Ok(Self::to_json(&typed))
    }

    fn decode_storage_version(&self, obj: Value) -> Value {
        self.strategy.decode_storage_version(obj)
    }

    fn encode_storage_version<'a>(&self, obj: Cow<'a, Value>) -> Cow<'a, Value> {
        self.strategy.encode_storage_version(obj)
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        self.edit(obj, |o| self.strategy.prepare_for_create(o));
    }

    fn prepare_for_update(&self, new: &mut Value, old: &Value) {
        if let Some(old) = self.typed(old) {
            self.edit(new, |n| self.strategy.prepare_for_update(n, &old));
        }
    }

    fn prepare_for_status_update(&self, new: &mut Value, old: &Value) {
        // Everything but status comes from the stored object, except the metadata a status
        // writer may legitimately carry (resourceVersion for the precondition).
        let status = new.get("status").cloned();
        let rv = crate::object::resource_version(new).to_string();
        *new = old.clone();
        match (new.as_object_mut(), status) {
            (Some(map), Some(status)) => {
                map.insert("status".to_string(), status);
            }
            (Some(map), None) => {
                map.remove("status");
            }
            _ => {}
        }
        if !rv.is_empty() {
            crate::object::set_meta(new, "resourceVersion", rv);
        }
        if let Some(old) = self.typed(old) {
            self.edit(new, |n| self.strategy.prepare_for_status_update(n, &old));
        }
    }

    fn validate(&self, obj: &Value) -> ErrorList {
        self.typed(obj)
            .map(|o| self.strategy.validate(&o))
            .unwrap_or_default()
    }

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList {
        match (self.typed(new), self.typed(old)) {
            (Some(n), Some(o)) => self.strategy.validate_update(&n, &o),
            _ => Vec::new(),
        }
    }

    fn allow_create_on_update(&self) -> bool {
        self.strategy.allow_create_on_update()
    }

    fn allow_unconditional_update(&self) -> bool {
        self.strategy.allow_unconditional_update()
    }

    fn selectable_fields(&self) -> &'static [SelectableField] {
        self.strategy.selectable_fields()
    }

    fn has_pending_finalizers(&self, obj: &Value) -> bool {
        self.typed(obj)
            .is_some_and(|o| self.strategy.has_pending_finalizers(&o))
    }

    fn grace_period(&self, obj: &Value, requested: Option<i64>) -> i64 {
        self.typed(obj)
            .map_or(0, |o| self.strategy.grace_period(&o, requested))
    }

    fn prepare_for_deletion(&self, obj: &mut Value) {
        self.edit(obj, |o| self.strategy.prepare_for_deletion(o));
    }

    fn columns(&self) -> &[Column] {
        self.strategy.columns()
    }

    fn row(&self, obj: &Value) -> Vec<Value> {
        match self.typed(obj) {
            Some(typed) => self.strategy.row(&typed, obj),
            None => vec![
                Value::String(crate::object::name(obj).to_string()),
                table::age(obj),
            ],
        }
    }
}

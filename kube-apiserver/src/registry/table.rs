//! Server-side printing (`meta.k8s.io/v1` Table), which `kubectl get` asks for and prints
//! as it comes: the columns and cell values here are what users see.

use serde_json::{json, Map, Value};

use crate::object;

/// One column of a Table (upstream `metav1.TableColumnDefinition`).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub kind: &'static str,
    pub format: &'static str,
    pub description: &'static str,
    /// 0 for default output, 1 for `-o wide` only.
    pub priority: i32,
}

impl Column {
    pub const fn new(name: &'static str, kind: &'static str, description: &'static str) -> Self {
        Column {
            name,
            kind,
            format: "",
            description,
            priority: 0,
        }
    }

    pub const fn wide(mut self) -> Self {
        self.priority = 1;
        self
    }

    pub const fn format(mut self, format: &'static str) -> Self {
        self.format = format;
        self
    }

    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.kind,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

pub const NAME: Column = Column::new(
    "Name",
    "string",
    "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
)
.format("name");

pub const AGE: Column = Column::new(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
);

/// The default columns of a resource without its own printer: Name and Age.
pub const DEFAULT_COLUMNS: &[Column] = &[NAME, AGE];

/// `kubectl`'s AGE cell: time since creation, as upstream's `translateTimestampSince`.
pub fn age(obj: &Value) -> Value {
    Value::String(since(object::meta_str(obj, "creationTimestamp")))
}

/// Time since an RFC 3339 timestamp, short human form; `<unknown>` when absent.
pub fn since(timestamp: Option<&str>) -> String {
    match timestamp.and_then(object::parse_time) {
        Some(t) => {
            let secs = jiff::Timestamp::now().as_second() - t.as_second();
            apimachinery::duration::human_duration_seconds(secs)
        }
        None => "<unknown>".to_string(),
    }
}

/// What `includeObject` asks to embed in each row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The object embedded in a row: as `PartialObjectMetadata` by default.
pub fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => partial_object_metadata(obj),
    }
}

/// `meta.k8s.io/v1 PartialObjectMetadata` of an object.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object::metadata(obj).cloned().map(Value::Object).unwrap_or_else(|| Value::Object(Map::new())),
    })
}

/// A Table of rows, with list metadata.
pub fn table(columns: &[Column], rows: Vec<Value>, list_meta: Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns.iter().map(Column::to_json).collect::<Vec<_>>(),
        "rows": rows,
    })
}

pub fn row(cells: Vec<Value>, object: Value) -> Value {
    json!({ "cells": cells, "object": object })
}

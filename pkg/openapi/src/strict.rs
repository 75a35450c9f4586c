//! Strict field validation (`fieldValidation=Strict|Warn`): unknown and duplicate fields,
//! with paths worded as upstream's strict decoder words them
//! (`spec.template.spec.containers[0].imagePullPolcy`).
//!
//! serde_json keeps the last of duplicate keys without a word, so duplicates are found on
//! the raw bytes, by a serde visitor that walks the document once without building it.
//! Upstream reports a field that is both unknown and repeated only as unknown, once, and
//! reports findings in document order; [`Definitions::strict_field_errors`] does the same.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::definitions::Definitions;

/// One finding of the strict decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrictFieldError {
    Unknown(String),
    Duplicate(String),
}

impl StrictFieldError {
    pub fn path(&self) -> &str {
        match self {
            StrictFieldError::Unknown(p) | StrictFieldError::Duplicate(p) => p,
        }
    }
}

impl fmt::Display for StrictFieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrictFieldError::Unknown(p) => write!(f, "unknown field {p:?}"),
            StrictFieldError::Duplicate(p) => write!(f, "duplicate field {p:?}"),
        }
    }
}

/// What a schema says about the shape of the value it describes.
enum Shape<'a> {
    Struct(&'a Map<String, Value>),
    Map(&'a Value),
    List(&'a Value),
    /// Anything goes: scalars, int-or-string, raw extensions, free-form objects.
    Any,
}

fn is_free_form(schema: &Value) -> bool {
    schema.get("x-kubernetes-int-or-string").is_some()
        || schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn shape<'a>(definitions: &'a Definitions, schema: &'a Value) -> Shape<'a> {
    if is_free_form(schema) {
        return Shape::Any;
    }
    let schema = definitions.resolve(schema);
    if is_free_form(schema) {
        return Shape::Any;
    }
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        return Shape::Struct(properties);
    }
    if let Some(values @ Value::Object(_)) = schema.get("additionalProperties") {
        return Shape::Map(values);
    }
    if let Some(items) = schema.get("items") {
        return Shape::List(items);
    }
    Shape::Any
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

fn push_index(path: &mut String, index: usize) {
    use std::fmt::Write as _;
    let _ = write!(path, "[{index}]");
}

fn joined(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl Definitions {
    /// The fields of `value` that `definition` does not know, as paths.
    pub fn unknown_fields(&self, definition: &str, value: &Value) -> Vec<String> {
        let mut found = Vec::new();
        if let Some(schema) = self.get(definition) {
            let mut path = String::new();
            self.walk_unknown(schema, value, &mut path, &mut found);
        }
        found
    }

    fn walk_unknown(
        &self,
        schema: &Value,
        value: &Value,
        path: &mut String,
        found: &mut Vec<String>,
    ) {
        let len = path.len();
        match (shape(self, schema), value) {
            (Shape::Struct(properties), Value::Object(map)) => {
                for (key, v) in map {
                    match properties.get(key) {
                        Some(property) => {
                            push_key(path, key);
                            self.walk_unknown(property, v, path, found);
                            path.truncate(len);
                        }
                        None => found.push(joined(path, key)),
                    }
                }
            }
            (Shape::Map(values), Value::Object(map)) => {
                for (key, v) in map {
                    push_key(path, key);
                    self.walk_unknown(values, v, path, found);
                    path.truncate(len);
                }
            }
            (Shape::List(items), Value::Array(list)) => {
                for (index, v) in list.iter().enumerate() {
                    push_index(path, index);
                    self.walk_unknown(items, v, path, found);
                    path.truncate(len);
                }
            }
            _ => {}
        }
    }

    /// Unknown and duplicate fields of the raw JSON `raw` against `definition`, in document
    /// order. Fails only when `raw` is not JSON.
    pub fn strict_field_errors(
        &self,
        definition: &str,
        raw: &[u8],
    ) -> Result<Vec<StrictFieldError>, serde_json::Error> {
        let cursor = match self.get(definition) {
            Some(schema) => Cursor::Schema(schema),
            None => Cursor::Unchecked,
        };
        walk_raw(self, cursor, raw)
    }
}

/// The unknown fields of `value` against a definition of [`Definitions::global`].
pub fn unknown_fields(definition: &str, value: &Value) -> Vec<String> {
    Definitions::global().unknown_fields(definition, value)
}

/// Unknown and duplicate fields of raw JSON against a definition of
/// [`Definitions::global`], in document order.
pub fn strict_field_errors(
    definition: &str,
    raw: &[u8],
) -> Result<Vec<StrictFieldError>, serde_json::Error> {
    Definitions::global().strict_field_errors(definition, raw)
}

/// The paths of repeated keys anywhere in raw JSON, without a schema. Invalid JSON yields
/// what was found before the error (the caller's own parse reports the error).
pub fn duplicate_fields(raw: &[u8]) -> Vec<String> {
    let mut state = State::default();
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let walker = Walker {
        definitions: None,
        cursor: Cursor::Unchecked,
        state: &mut state,
    };
    let _ = walker.deserialize(&mut deserializer);
    state
        .found
        .into_iter()
        .map(|e| e.path().to_owned())
        .collect()
}

fn walk_raw(
    definitions: &Definitions,
    cursor: Cursor<'_>,
    raw: &[u8],
) -> Result<Vec<StrictFieldError>, serde_json::Error> {
    let mut state = State::default();
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    Walker {
        definitions: Some(definitions),
        cursor,
        state: &mut state,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(state.found)
}

#[derive(Default)]
struct State {
    path: String,
    found: Vec<StrictFieldError>,
}

#[derive(Clone, Copy)]
enum Cursor<'s> {
    /// No schema: only duplicates are looked for.
    Unchecked,
    /// A free-form value: nothing is looked for inside.
    Skip,
    Schema(&'s Value),
}

struct Walker<'s, 'p> {
    definitions: Option<&'s Definitions>,
    cursor: Cursor<'s>,
    state: &'p mut State,
}

impl<'s> Walker<'s, '_> {
    fn child<'q>(&'q mut self, cursor: Cursor<'s>) -> Walker<'s, 'q> {
        Walker {
            definitions: self.definitions,
            cursor,
            state: self.state,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walker<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if let Cursor::Skip = self.cursor {
            return <IgnoredAny as serde::Deserialize>::deserialize(deserializer).map(|_| ());
        }
        deserializer.deserialize_any(self)
    }
}

/// The keys seen in one object: a short list scanned linearly, a set past that (maps such
/// as ConfigMap data can be large).
#[derive(Default)]
struct SeenKeys<'de> {
    list: Vec<Cow<'de, str>>,
    set: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> SeenKeys<'de> {
    /// Records `key`; false if it was already there.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.set {
            return set.insert(key);
        }
        if self.list.contains(&key) {
            return false;
        }
        self.list.push(key);
        if self.list.len() > 16 {
            self.set = Some(self.list.drain(..).collect());
        }
        true
    }
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> Visitor<'de> for Walker<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let items = match (self.cursor, self.definitions) {
            (Cursor::Schema(schema), Some(definitions)) => match shape(definitions, schema) {
                Shape::List(items) => Cursor::Schema(items),
                _ => Cursor::Skip,
            },
            (Cursor::Schema(_) | Cursor::Skip, _) => Cursor::Skip,
            (Cursor::Unchecked, _) => Cursor::Unchecked,
        };
        let mut index = 0;
        loop {
            let len = self.state.path.len();
            push_index(&mut self.state.path, index);
            let next = seq.next_element_seed(self.child(items));
            self.state.path.truncate(len);
            if next?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        enum Mode<'s> {
            Unchecked,
            Skip,
            Struct(&'s Map<String, Value>),
            Map(&'s Value),
        }
        let mode = match (self.cursor, self.definitions) {
            (Cursor::Schema(schema), Some(definitions)) => match shape(definitions, schema) {
                Shape::Struct(properties) => Mode::Struct(properties),
                Shape::Map(values) => Mode::Map(values),
                Shape::List(_) | Shape::Any => Mode::Skip,
            },
            (Cursor::Unchecked, _) => Mode::Unchecked,
            _ => Mode::Skip,
        };
        let mut seen = SeenKeys::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let value_cursor = match mode {
                Mode::Skip => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                Mode::Unchecked => Cursor::Unchecked,
                Mode::Map(values) => Cursor::Schema(values),
                Mode::Struct(properties) => match properties.get(key.as_ref()) {
                    Some(property) => Cursor::Schema(property),
                    None => {
                        // Unknown: reported once, never as a duplicate, as upstream does.
                        if seen.insert(key.clone()) {
                            let path = joined(&self.state.path, &key);
                            self.state.found.push(StrictFieldError::Unknown(path));
                        }
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    }
                },
            };
            if !seen.insert(key.clone()) {
                let path = joined(&self.state.path, &key);
                self.state.found.push(StrictFieldError::Duplicate(path));
            }
            let len = self.state.path.len();
            push_key(&mut self.state.path, &key);
            let result = map.next_value_seed(self.child(value_cursor));
            self.state.path.truncate(len);
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    const DEPLOYMENT: &str = "io.k8s.api.apps.v1.Deployment";

    #[test]
    fn unknown_fields_are_named_by_path() {
        let value = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "x", "labels": {"any": "thing"}, "unknownMeta": 1},
            "spec": {
                "replicas": 1,
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {"spec": {"containers": [
                    {"name": "a", "image": "i"},
                    {"name": "b", "imagePullPolcy": "Always",
                     "resources": {"limits": {"cpu": "1"}},
                     "ports": [{"containerPort": 80, "bogus": true}]}
                ]}}
            },
            "extra": {}
        });
        assert_eq!(
            unknown_fields(DEPLOYMENT, &value),
            vec![
                "metadata.unknownMeta",
                "spec.template.spec.containers[1].imagePullPolcy",
                "spec.template.spec.containers[1].ports[0].bogus",
                "extra",
            ]
        );
    }

    #[test]
    fn free_form_fields_accept_anything() {
        let value = json!({
            "apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"managedFields": [{"fieldsV1": {"f:spec": {"f:x": {}}}}]},
            "data": {"anything": ["goes", {"here": 1}]},
            "revision": 1
        });
        assert!(unknown_fields("io.k8s.api.apps.v1.ControllerRevision", &value).is_empty());
        assert!(unknown_fields("no.such.Definition", &value).is_empty());
    }

    #[test]
    fn strict_errors_come_in_document_order_like_upstream() {
        // Upstream's field validation integration test body, in spirit.
        let raw = br#"{
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "dupename", "name": "x", "labels": {"app": "nginx"}, "unknownMeta": "v"},
            "spec": {
                "unknown1": "val1",
                "unknownDupe": "a",
                "unknownDupe": "b",
                "paused": true,
                "paused": false,
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:latest",
                        "unknownNested": "val1",
                        "imagePullPolicy": "Always",
                        "imagePullPolicy": "Never"
                    }]}
                }
            }
        }"#;
        let found: Vec<String> = strict_field_errors(DEPLOYMENT, raw)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found.join(", "),
            r#"duplicate field "metadata.name", unknown field "metadata.unknownMeta", unknown field "spec.unknown1", unknown field "spec.unknownDupe", duplicate field "spec.paused", unknown field "spec.template.spec.containers[0].unknownNested", duplicate field "spec.template.spec.containers[0].imagePullPolicy""#
        );
        assert!(strict_field_errors(DEPLOYMENT, b"{").is_err());
        assert!(strict_field_errors(DEPLOYMENT, b"{} {}").is_err());
    }

    #[test]
    fn duplicates_without_schema() {
        let raw = br#"{"a": 1, "b": {"c": [{"d": 1, "d": 2}], "e\u0041": 1, "eA": 2}, "a": 3}"#;
        assert_eq!(duplicate_fields(raw), vec!["b.c[0].d", "b.eA", "a"]);
        let many: String = (0..40).map(|i| format!("\"k{i}\":1,")).collect();
        let raw = format!("{{{many}\"k3\":2,\"k39\":2}}");
        assert_eq!(duplicate_fields(raw.as_bytes()), vec!["k3", "k39"]);
        assert!(duplicate_fields(b"not json").is_empty());
    }

    #[test]
    fn map_keys_are_checked_for_duplicates() {
        let raw = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"a":"1","a":"2"},"dta":{}}"#;
        let found = strict_field_errors("io.k8s.api.core.v1.ConfigMap", raw).unwrap();
        assert_eq!(
            found,
            vec![
                StrictFieldError::Duplicate("data.a".into()),
                StrictFieldError::Unknown("dta".into())
            ]
        );
    }

    /// `cargo test --release -p openapi strict_checks_are_fast -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn strict_checks_are_fast() {
        let raw = serde_json::to_vec(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"},
                "annotations": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "containers": [
                        {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                         "readinessProbe": {"httpGet": {"path": "/", "port": 80}}},
                        {"name": "side", "image": "busybox", "command": ["sleep", "1d"]}
                    ],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}}
        }))
        .unwrap();
        let value: Value = serde_json::from_slice(&raw).unwrap();
        let defs = Definitions::global();
        let n = 10_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(defs
                .strict_field_errors(DEPLOYMENT, &raw)
                .unwrap()
                .is_empty());
        }
        let raw_time = start.elapsed() / n;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(defs.unknown_fields(DEPLOYMENT, &value).is_empty());
        }
        let value_time = start.elapsed() / n;
        let start = std::time::Instant::now();
        for _ in 0..n {
            assert!(duplicate_fields(&raw).is_empty());
        }
        let dup_time = start.elapsed() / n;
        eprintln!("{} bytes: strict_field_errors {raw_time:?}, unknown_fields {value_time:?}, duplicate_fields {dup_time:?}", raw.len());
    }
}

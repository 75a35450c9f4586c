//! The schemas of served types compiled for structured merge, as upstream's
//! kube-openapi `schemaconv` converts OpenAPI into structured-merge-diff types:
//!
//! - an object with properties is a struct (`x-kubernetes-map-type: atomic` makes it one
//!   leaf); with `additionalProperties`, a map (granular unless atomic); with neither, or a
//!   schema with no type at all, "deduced" (maps granular, lists atomic);
//! - a list is atomic, a set (`x-kubernetes-list-type: set`, or patch strategy merge
//!   without a merge key) or a map keyed by `x-kubernetes-list-map-keys` (or the patch
//!   merge key);
//! - `RawExtension` and int-or-string values are single leaves.
//!
//! Compiled once for every definition into an arena, so walking an object never looks a
//! schema up by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use openapi::{Definitions, V3_REF_PREFIX};
use serde_json::{json, Value};

pub type TypeId = usize;

#[derive(Debug, Clone)]
pub enum Atom {
    Scalar,
    /// Any value, as one leaf.
    Untyped,
    /// Any value: objects are granular maps of deduced values, lists are atomic.
    Deduced,
    Struct(Struct),
    Map {
        elem: TypeId,
        atomic: bool,
    },
    List {
        elem: TypeId,
        kind: ListKind,
    },
}

#[derive(Debug, Clone)]
pub struct Struct {
    pub fields: HashMap<String, Field>,
    pub atomic: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub ty: TypeId,
    /// The field is a non-pointer struct (or a list serialized even when nil) in
    /// upstream's Go types, so a Go object always has it: comparisons then see an empty
    /// value where the JSON has none, and the field itself is never "added".
    pub always_present: bool,
}

#[derive(Debug, Clone)]
pub enum ListKind {
    Atomic,
    /// Items are scalars identified by their value.
    Set,
    /// Items are objects identified by these fields (sorted by name), each with the
    /// default that stands in when an item omits it.
    Map(Vec<(String, Option<Value>)>),
}

pub const UNTYPED: TypeId = 0;
pub const DEDUCED: TypeId = 1;
pub const SCALAR: TypeId = 2;

const RAW_EXTENSION: &str = "io.k8s.apimachinery.pkg.runtime.RawExtension";

#[derive(Debug)]
pub struct Schema {
    atoms: Vec<Atom>,
    named: HashMap<String, TypeId>,
}

/// Defaults of list-map key fields that upstream's OpenAPI carries and k8s-openapi's
/// schemas lack: an item without them is keyed by the default.
const KEY_DEFAULTS: &[(&str, &str, &str)] = &[
    ("io.k8s.api.core.v1.ContainerPort", "protocol", "TCP"),
    ("io.k8s.api.core.v1.ServicePort", "protocol", "TCP"),
];

/// Struct fields that are values (not pointers) in upstream's Go types, besides the
/// `metadata`, `spec` and `status` of every kind; see [`Field::always_present`].
const ALWAYS_PRESENT: &[(&str, &[&str])] = &[
    ("io.k8s.api.core.v1.PodTemplateSpec", &["metadata", "spec"]),
    ("io.k8s.api.batch.v1.JobTemplateSpec", &["metadata", "spec"]),
    ("io.k8s.api.core.v1.PodTemplate", &["template"]),
    (
        "io.k8s.api.apps.v1.DeploymentSpec",
        &["template", "strategy"],
    ),
    ("io.k8s.api.apps.v1.ReplicaSetSpec", &["template"]),
    (
        "io.k8s.api.apps.v1.DaemonSetSpec",
        &["template", "updateStrategy"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        &["template", "updateStrategy"],
    ),
    ("io.k8s.api.batch.v1.JobSpec", &["template"]),
    ("io.k8s.api.batch.v1.CronJobSpec", &["jobTemplate"]),
    ("io.k8s.api.core.v1.PodSpec", &["containers"]),
    ("io.k8s.api.core.v1.Container", &["resources"]),
    ("io.k8s.api.core.v1.EphemeralContainer", &["resources"]),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        &["resources"],
    ),
    ("io.k8s.api.core.v1.ServiceStatus", &["loadBalancer"]),
    (
        "io.k8s.api.core.v1.NodeStatus",
        &["daemonEndpoints", "nodeInfo"],
    ),
    (
        "io.k8s.api.core.v1.NodeDaemonEndpoints",
        &["kubeletEndpoint"],
    ),
    ("io.k8s.api.core.v1.Event", &["involvedObject", "source"]),
];

impl Schema {
    /// The schemas of [`Definitions::global`], compiled on first use.
    pub fn global() -> &'static Schema {
        static SCHEMA: OnceLock<Schema> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::compile(Definitions::global()))
    }

    pub fn compile(defs: &Definitions) -> Schema {
        let mut c = Compiler {
            defs,
            schema: Schema {
                atoms: vec![Atom::Untyped, Atom::Deduced, Atom::Scalar],
                named: HashMap::new(),
            },
        };
        c.schema.named.insert(RAW_EXTENSION.to_string(), UNTYPED);
        for name in defs.schemas().keys() {
            c.named(name);
        }
        c.schema
    }

    /// The type of a definition (`io.k8s.api.core.v1.Pod`).
    pub fn root(&self, definition: &str) -> Option<TypeId> {
        self.named.get(definition).copied()
    }

    pub fn atom(&self, ty: TypeId) -> &Atom {
        self.atoms.get(ty).unwrap_or(&Atom::Untyped)
    }
}

struct Compiler<'d> {
    defs: &'d Definitions,
    schema: Schema,
}

fn ref_name(schema: &Value) -> Option<&str> {
    let reference = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|all| all.len() == 1)
            .and_then(|all| all[0].get("$ref"))
    })?;
    reference.as_str()?.strip_prefix(V3_REF_PREFIX)
}

fn map_type_atomic(schema: &Value) -> Option<bool> {
    schema
        .get("x-kubernetes-map-type")
        .and_then(Value::as_str)
        .map(|t| t == "atomic")
}

impl Compiler<'_> {
    fn push(&mut self, atom: Atom) -> TypeId {
        self.schema.atoms.push(atom);
        self.schema.atoms.len() - 1
    }

    fn named(&mut self, name: &str) -> TypeId {
        if let Some(id) = self.schema.named.get(name) {
            return *id;
        }
        // Reserved before compiling the body, so recursive types refer to themselves.
        let id = self.push(Atom::Deduced);
        self.schema.named.insert(name.to_string(), id);
        let Some(schema) = self.defs.get(name) else {
            return id;
        };
        let atom = self.inline(schema, Some(name));
        self.schema.atoms[id] = atom;
        id
    }

    /// The type of a property or of list items.
    fn type_of(&mut self, schema: &Value) -> TypeId {
        if let Some(name) = ref_name(schema) {
            let id = self.named(name);
            // A property may change the map type of the struct it refers to.
            return match (map_type_atomic(schema), self.schema.atom(id).clone()) {
                (Some(atomic), Atom::Struct(mut s)) if s.atomic != atomic => {
                    s.atomic = atomic;
                    self.push(Atom::Struct(s))
                }
                (Some(atomic), Atom::Map { elem, atomic: was }) if was != atomic => {
                    self.push(Atom::Map { elem, atomic })
                }
                _ => id,
            };
        }
        let atom = self.inline(schema, None);
        match atom {
            Atom::Scalar => SCALAR,
            Atom::Deduced => DEDUCED,
            Atom::Untyped => UNTYPED,
            atom => self.push(atom),
        }
    }

    fn inline(&mut self, schema: &Value, definition: Option<&str>) -> Atom {
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            return Atom::Scalar;
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        match schema.get("type").and_then(Value::as_str) {
            Some("array") => {
                let items = schema.get("items").cloned().unwrap_or(json!({}));
                let elem = self.type_of(&items);
                let kind = self.list_kind(schema, &items);
                Atom::List { elem, kind }
            }
            Some("string" | "integer" | "number" | "boolean") => Atom::Scalar,
            Some("object") | None if properties.is_some() => {
                let is_kind = properties.is_some_and(|p| {
                    p.contains_key("apiVersion")
                        && p.contains_key("kind")
                        && p.contains_key("metadata")
                });
                let listed: &[&str] = definition
                    .and_then(|d| ALWAYS_PRESENT.iter().find(|(n, _)| *n == d))
                    .map(|(_, f)| *f)
                    .unwrap_or(&[]);
                let mut fields = HashMap::new();
                for (name, property) in properties.into_iter().flatten() {
                    let ty = self.type_of(property);
                    let always_present = listed.contains(&name.as_str())
                        || (is_kind && matches!(name.as_str(), "metadata" | "spec" | "status"));
                    fields.insert(name.clone(), Field { ty, always_present });
                }
                Atom::Struct(Struct {
                    fields,
                    atomic: map_type_atomic(schema).unwrap_or(false),
                })
            }
            Some("object") => match schema.get("additionalProperties") {
                Some(values @ Value::Object(_)) => {
                    let elem = self.type_of(values);
                    Atom::Map {
                        elem,
                        atomic: map_type_atomic(schema).unwrap_or(false),
                    }
                }
                _ => Atom::Deduced,
            },
            _ => Atom::Deduced,
        }
    }

    fn list_kind(&self, schema: &Value, items: &Value) -> ListKind {
        let ext = |k: &str| schema.get(k);
        let keys: Vec<String> = match ext("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => return ListKind::Set,
            Some("map") => ext("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            Some(_) => return ListKind::Atomic,
            None => match ext("x-kubernetes-patch-strategy").and_then(Value::as_str) {
                Some(s) if s.split(',').any(|p| p == "merge") => {
                    match ext("x-kubernetes-patch-merge-key").and_then(Value::as_str) {
                        Some(key) => vec![key.to_string()],
                        None => return ListKind::Set,
                    }
                }
                _ => return ListKind::Atomic,
            },
        };
        let item_definition = ref_name(items);
        let mut keyed: Vec<(String, Option<Value>)> = keys
            .into_iter()
            .map(|key| {
                let default = item_definition.and_then(|d| self.key_default(d, &key));
                (key, default)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        ListKind::Map(keyed)
    }

    fn key_default(&self, definition: &str, key: &str) -> Option<Value> {
        let from_schema = self
            .defs
            .get(definition)
            .and_then(|d| d.get("properties"))
            .and_then(|p| p.get(key))
            .and_then(|p| p.get("default"))
            .cloned();
        from_schema.or_else(|| {
            KEY_DEFAULTS
                .iter()
                .find(|(d, k, _)| *d == definition && *k == key)
                .map(|(_, _, v)| Value::String((*v).to_string()))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field<'a>(s: &'a Schema, ty: TypeId, name: &str) -> &'a Field {
        match s.atom(ty) {
            Atom::Struct(st) => st.fields.get(name).unwrap(),
            other => panic!("not a struct: {other:?}"),
        }
    }

    #[test]
    fn compiles_upstream_list_and_map_types() {
        let s = Schema::global();
        let pod = s.root("io.k8s.api.core.v1.Pod").unwrap();
        let spec = field(s, pod, "spec");
        assert!(spec.always_present);
        let containers = field(s, spec.ty, "containers");
        let Atom::List {
            elem,
            kind: ListKind::Map(keys),
        } = s.atom(containers.ty)
        else {
            panic!("containers is a list map");
        };
        assert_eq!(keys, &[("name".to_string(), None)]);
        let ports = field(s, *elem, "ports");
        let Atom::List {
            kind: ListKind::Map(keys),
            ..
        } = s.atom(ports.ty)
        else {
            panic!("ports is a list map");
        };
        assert_eq!(
            keys,
            &[
                ("containerPort".to_string(), None),
                ("protocol".to_string(), Some(Value::String("TCP".into()))),
            ]
        );
        let meta = field(s, pod, "metadata");
        let finalizers = field(s, meta.ty, "finalizers");
        assert!(matches!(
            s.atom(finalizers.ty),
            Atom::List {
                kind: ListKind::Set,
                ..
            }
        ));
        let labels = field(s, meta.ty, "labels");
        assert!(matches!(s.atom(labels.ty), Atom::Map { atomic: false, .. }));

        let svc = s.root("io.k8s.api.core.v1.Service").unwrap();
        let svc_spec = field(s, svc, "spec");
        let selector = field(s, svc_spec.ty, "selector");
        assert!(matches!(
            s.atom(selector.ty),
            Atom::Map { atomic: true, .. }
        ));
        let cluster_ips = field(s, svc_spec.ty, "clusterIPs");
        assert!(matches!(
            s.atom(cluster_ips.ty),
            Atom::List {
                kind: ListKind::Atomic,
                ..
            }
        ));

        let deploy = s.root("io.k8s.api.apps.v1.Deployment").unwrap();
        let dspec = field(s, deploy, "spec");
        let dsel = field(s, dspec.ty, "selector");
        assert!(matches!(
            s.atom(dsel.ty),
            Atom::Struct(Struct { atomic: true, .. })
        ));
        assert!(field(s, dspec.ty, "strategy").always_present);
        assert!(!field(s, dspec.ty, "replicas").always_present);
        let cr = s.root("io.k8s.api.apps.v1.ControllerRevision").unwrap();
        assert_eq!(field(s, cr, "data").ty, UNTYPED);
    }
}

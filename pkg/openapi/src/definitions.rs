//! The schema definitions of every served type, generated from k8s-openapi's `JsonSchema`
//! impls and completed with upstream's vendor extensions.
//!
//! Two renderings are kept: OpenAPI 3 (`#/components/schemas/` refs, a `$ref` with
//! siblings wrapped in `allOf` as upstream's v3 documents do) and swagger 2.0
//! (`#/definitions/` refs, siblings kept beside `$ref` as upstream's v2 document does).

use std::collections::BTreeSet;
use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::extensions;
use crate::registry::{
    register_meta_types, GroupVersionKind, BUILTIN_KINDS, CORE_META_KINDS, EVERY_GROUP_META_KINDS,
};

/// Where OpenAPI 3 documents keep their schemas.
pub const V3_REF_PREFIX: &str = "#/components/schemas/";
/// Where swagger 2.0 documents keep their schemas.
pub const V2_REF_PREFIX: &str = "#/definitions/";

const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// All schema definitions, keyed by upstream's definition names.
#[derive(Debug, Clone)]
pub struct Definitions {
    v3: Map<String, Value>,
    v2: Map<String, Value>,
    /// Table entries that matched nothing in the generated schemas (see `extensions`).
    unmatched_extensions: Vec<String>,
}

impl Definitions {
    /// Generates the definitions. Costs a few milliseconds; the API server should use
    /// [`Definitions::global`].
    pub fn generate() -> Definitions {
        let v3_settings = SchemaSettings::openapi3().with(|s| s.meta_schema = None);
        let v2_settings = SchemaSettings::draft07().with(|s| {
            s.meta_schema = None;
            // Swagger 2.0 documents keep siblings beside `$ref`, as upstream's do.
            s.transforms.clear();
        });
        let (v3, unmatched_extensions) = generate(v3_settings, V3_REF_PREFIX);
        let (v2, _) = generate(v2_settings, V2_REF_PREFIX);
        Definitions {
            v3,
            v2,
            unmatched_extensions,
        }
    }

    /// The process-wide definitions, generated on first use.
    pub fn global() -> &'static Definitions {
        static DEFINITIONS: OnceLock<Definitions> = OnceLock::new();
        DEFINITIONS.get_or_init(Definitions::generate)
    }

    /// The OpenAPI 3 schemas (`#/components/schemas/` refs).
    pub fn schemas(&self) -> &Map<String, Value> {
        &self.v3
    }

    /// The swagger 2.0 schemas (`#/definitions/` refs).
    pub fn swagger2_schemas(&self) -> &Map<String, Value> {
        &self.v2
    }

    /// One OpenAPI 3 schema by definition name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.v3.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.v3.contains_key(name)
    }

    /// Follows `$ref`s and single-element `allOf`s to the schema that has the content.
    pub fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        let mut schema = schema;
        // Bounded: a definition that only refers to itself would otherwise loop.
        for _ in 0..32 {
            if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
                match reference
                    .strip_prefix(V3_REF_PREFIX)
                    .and_then(|name| self.v3.get(name))
                {
                    Some(target) => {
                        schema = target;
                        continue;
                    }
                    None => return schema,
                }
            }
            match schema.get("allOf").and_then(Value::as_array) {
                Some(all) if all.len() == 1 => schema = &all[0],
                _ => return schema,
            }
        }
        schema
    }

    /// The definitions reachable from `roots` through `$ref`s, roots included.
    pub fn reachable<'n>(&self, roots: impl IntoIterator<Item = &'n str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<String> = roots.into_iter().map(str::to_owned).collect();
        while let Some(name) = stack.pop() {
            let Some(schema) = self.v3.get(&name) else {
                continue;
            };
            if !seen.insert(name) {
                continue;
            }
            collect_refs(schema, &mut |target| {
                if !seen.contains(target) {
                    stack.push(target.to_owned());
                }
            });
        }
        seen
    }

    /// Extension table entries that found no property to go on; empty unless the table
    /// and k8s-openapi disagree.
    pub fn unmatched_extensions(&self) -> &[String] {
        &self.unmatched_extensions
    }
}

fn collect_refs(value: &Value, found: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref" {
                    if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(V3_REF_PREFIX)) {
                        found(name);
                    }
                } else {
                    collect_refs(v, found);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| collect_refs(v, found)),
        _ => {}
    }
}

fn generate(settings: SchemaSettings, ref_prefix: &str) -> (Map<String, Value>, Vec<String>) {
    let mut generator = settings.into_generator();
    for kind in BUILTIN_KINDS {
        (kind.register)(&mut generator);
    }
    register_meta_types(&mut generator);
    let mut schemas = generator.take_definitions(true);

    for kind in BUILTIN_KINDS {
        if let Some(list) = kind.list_definition() {
            let schema = list_schema(&schemas, kind.definition, kind.kind, ref_prefix);
            schemas.insert(list, schema);
        }
    }
    add_group_version_kinds(&mut schemas);
    let unmatched = extensions::apply(&mut schemas);
    schemas.sort_keys();
    (schemas, unmatched)
}

/// Upstream has a `<Kind>List` definition per kind; k8s-openapi has one generic `List<T>`
/// without a schema, so the list schemas are written here in upstream's shape.
fn list_schema(
    schemas: &Map<String, Value>,
    item_definition: &str,
    kind: &str,
    ref_prefix: &str,
) -> Value {
    let property_description = |name: &str| {
        schemas
            .get(item_definition)
            .and_then(|s| s.pointer(&format!("/properties/{name}/description")))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let metadata_ref = format!("{ref_prefix}{LIST_META}");
    let metadata_description = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
    let metadata = if ref_prefix == V3_REF_PREFIX {
        json!({"allOf": [{"$ref": metadata_ref}], "description": metadata_description})
    } else {
        json!({"$ref": metadata_ref, "description": metadata_description})
    };
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": property_description("apiVersion"), "type": "string"},
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{ref_prefix}{item_definition}")},
            },
            "kind": {"description": property_description("kind"), "type": "string"},
            "metadata": metadata,
        },
        "required": ["items"],
    })
}

fn add_group_version_kinds(schemas: &mut Map<String, Value>) {
    let mut tag = |definition: &str, gvk: GroupVersionKind| {
        if let Some(Value::Object(schema)) = schemas.get_mut(definition) {
            let entry = schema
                .entry(GVK_EXTENSION)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                let value = gvk.to_json();
                if !list.contains(&value) {
                    list.push(value);
                }
            }
        }
    };
    for kind in BUILTIN_KINDS {
        tag(kind.definition, kind.gvk());
        if let Some(list) = kind.list_definition() {
            tag(
                &list,
                GroupVersionKind::new(kind.group, kind.version, &format!("{}List", kind.kind)),
            );
        }
    }
    for (kind, definition) in CORE_META_KINDS {
        tag(definition, GroupVersionKind::new("", "v1", kind));
    }
    let group_versions: BTreeSet<(&str, &str)> =
        BUILTIN_KINDS.iter().map(|k| (k.group, k.version)).collect();
    for (kind, definition) in EVERY_GROUP_META_KINDS {
        for (group, version) in &group_versions {
            tag(definition, GroupVersionKind::new(group, version, kind));
        }
    }
}

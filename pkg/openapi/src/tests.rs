#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

fn documents() -> OpenApiDocuments {
    OpenApiDocuments::build(
        Definitions::global(),
        &builtin_served_resources(),
        &DocumentOptions::default(),
    )
    .unwrap()
}

fn parse(document: &CachedDocument) -> Value {
    serde_json::from_slice(&document.bytes).unwrap()
}

fn all_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.insert(v.as_str().unwrap().to_owned());
                } else {
                    all_refs(v, out);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

#[test]
fn builtin_kinds_use_upstream_definition_names() {
    let defs = Definitions::global();
    for kind in BUILTIN_KINDS {
        assert_eq!(kind.schema_name(), kind.definition);
        let schema = defs.get(kind.definition).unwrap();
        let gvks = schema["x-kubernetes-group-version-kind"]
            .as_array()
            .unwrap();
        assert!(gvks.contains(&kind.gvk().to_json()), "{}", kind.definition);
        if let Some(list) = kind.list_definition() {
            let list = defs.get(&list).unwrap();
            assert_eq!(
                list["x-kubernetes-group-version-kind"][0]["kind"],
                format!("{}List", kind.kind)
            );
            assert_eq!(
                list["properties"]["items"]["items"]["$ref"],
                format!("{V3_REF_PREFIX}{}", kind.definition)
            );
        }
    }
    for meta in [
        "Status",
        "DeleteOptions",
        "WatchEvent",
        "APIResourceList",
        "APIGroupList",
        "Patch",
    ] {
        assert!(defs.contains(&format!("io.k8s.apimachinery.pkg.apis.meta.v1.{meta}")));
    }
    let delete_options = defs
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        .unwrap();
    let gvks = delete_options["x-kubernetes-group-version-kind"]
        .as_array()
        .unwrap();
    assert_eq!(
        gvks[0],
        GroupVersionKind::new("", "v1", "DeleteOptions").to_json()
    );
    assert!(gvks.contains(&GroupVersionKind::new("apps", "v1", "DeleteOptions").to_json()));
}

#[test]
fn extension_table_matches_the_generated_schemas() {
    assert_eq!(
        Definitions::global().unmatched_extensions(),
        &[] as &[String]
    );
}

#[test]
fn upstream_extensions_are_present_in_both_renderings() {
    let defs = Definitions::global();
    let containers = &defs.get("io.k8s.api.core.v1.PodSpec").unwrap()["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    let ports = &defs.get("io.k8s.api.core.v1.Container").unwrap()["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
    let finalizers = &defs
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .unwrap()["properties"]["finalizers"];
    assert_eq!(finalizers["x-kubernetes-patch-strategy"], "merge");
    let owners = &defs
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .unwrap()["properties"]["ownerReferences"];
    assert_eq!(owners["x-kubernetes-patch-merge-key"], "uid");
    let selector = defs
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
        .unwrap();
    assert_eq!(selector["x-kubernetes-map-type"], "atomic");
    let int_or_string = defs
        .get("io.k8s.apimachinery.pkg.util.intstr.IntOrString")
        .unwrap();
    assert_eq!(int_or_string["x-kubernetes-int-or-string"], true);

    // v3 wraps a described $ref in allOf and keeps extensions beside it.
    let strategy =
        &defs.get("io.k8s.api.apps.v1.DeploymentSpec").unwrap()["properties"]["strategy"];
    assert_eq!(
        strategy["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    // v2 keeps siblings beside $ref.
    let v2 =
        &defs.swagger2_schemas()["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
    assert_eq!(
        v2["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert_eq!(v2["x-kubernetes-patch-strategy"], "retainKeys");
    assert!(v2["description"].is_string());

    let mut refs = BTreeSet::new();
    all_refs(&Value::Object(defs.swagger2_schemas().clone()), &mut refs);
    assert!(
        refs.iter().all(|r| r.starts_with(V2_REF_PREFIX)),
        "{refs:?}"
    );
}

/// kubectl's `supportsQueryParamV3`: a PATCH operation tagged with the kind that declares
/// the query parameter.
fn supports_query_param(doc: &Value, gvk: &GroupVersionKind, param: &str) -> bool {
    for item in doc["paths"].as_object().unwrap().values() {
        let Some(patch) = item.get("patch") else {
            continue;
        };
        if patch["x-kubernetes-group-version-kind"] != gvk.to_json() {
            continue;
        }
        return patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == param && p["in"] == "query");
    }
    false
}

/// kubectl apply's `gvkSupportsPatchOpenAPIV3`.
fn supports_strategic_merge_patch(doc: &Value, gvk: &GroupVersionKind) -> bool {
    for item in doc["paths"].as_object().unwrap().values() {
        if let Some(patch) = item.get("patch") {
            if patch["x-kubernetes-group-version-kind"] == gvk.to_json() {
                return patch["requestBody"]["content"]
                    .get("application/strategic-merge-patch+json")
                    .is_some();
            }
        }
    }
    false
}

#[test]
fn v3_documents_answer_kubectls_questions() {
    let docs = documents();
    for resource in builtin_served_resources() {
        let path = if resource.group.is_empty() {
            format!("api/{}", resource.version)
        } else {
            format!("apis/{}/{}", resource.group, resource.version)
        };
        let doc = parse(docs.v3_group_version(&path).unwrap());
        assert_eq!(doc["openapi"], "3.0.0");
        let gvk = resource.gvk();
        if resource.has_verb("patch") {
            for param in ["fieldValidation", "dryRun", "fieldManager"] {
                assert!(supports_query_param(&doc, &gvk, param), "{gvk:?} {param}");
            }
            assert!(supports_strategic_merge_patch(&doc, &gvk), "{gvk:?}");
            // apply's v3 patch path finds the kind's schema by its GVK.
            let schemas = doc["components"]["schemas"].as_object().unwrap();
            assert!(schemas
                .values()
                .any(|s| s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&gvk.to_json()))));
        }
        // explain: some operation on the resource's paths names the kind.
        let collection = if resource.namespaced {
            format!("/{path}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("/{path}/{}", resource.plural)
        };
        let item = &doc["paths"][&collection];
        let named = ["get", "post", "put", "patch", "delete"]
            .iter()
            .any(|m| item[*m]["x-kubernetes-group-version-kind"] == gvk.to_json());
        assert!(named, "{collection}");
    }
}

#[test]
fn v3_documents_are_self_contained_and_minimal() {
    let docs = documents();
    let apps = parse(docs.v3_group_version("apis/apps/v1").unwrap());
    let schemas = apps["components"]["schemas"].as_object().unwrap();
    let mut refs = BTreeSet::new();
    all_refs(&apps, &mut refs);
    for r in &refs {
        let name = r.strip_prefix(V3_REF_PREFIX).unwrap();
        assert!(schemas.contains_key(name), "{r}");
    }
    assert!(schemas.contains_key("io.k8s.api.autoscaling.v1.Scale"));
    assert!(schemas.contains_key("io.k8s.api.core.v1.PodTemplateSpec"));
    assert!(!schemas.contains_key("io.k8s.api.batch.v1.Job"));
    assert!(!schemas.contains_key("io.k8s.api.core.v1.Service"));

    let deployment = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    assert_eq!(
        deployment["patch"]["operationId"],
        "patchAppsV1NamespacedDeployment"
    );
    assert_eq!(deployment["patch"]["x-kubernetes-action"], "patch");
    let content = deployment["patch"]["requestBody"]["content"]
        .as_object()
        .unwrap();
    for t in PATCH_CONTENT_TYPES {
        assert!(content.contains_key(*t));
    }
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"]["x-kubernetes-group-version-kind"]["kind"],
        "Scale"
    );
    let list = &apps["paths"]["/apis/apps/v1/deployments"]["get"];
    assert_eq!(list["operationId"], "listAppsV1DeploymentForAllNamespaces");
    let watch =
        &apps["paths"]["/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}"]["get"];
    assert_eq!(watch["x-kubernetes-action"], "watch");
    assert!(apps["paths"]["/apis/apps/v1/"]["get"].is_object());

    let core = parse(docs.v3_group_version("api/v1").unwrap());
    let eviction = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"]["group"],
        "policy"
    );
    let namespaces = &core["paths"]["/api/v1/namespaces/{name}"];
    assert_eq!(namespaces["get"]["operationId"], "readCoreV1Namespace");
    let rbac = parse(
        docs.v3_group_version("apis/rbac.authorization.k8s.io/v1")
            .unwrap(),
    );
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["tags"][0],
        "rbacAuthorization_v1"
    );
}

#[test]
fn v3_index_links_every_group_version_with_its_hash() {
    let docs = documents();
    let index = parse(&docs.v3_index);
    let paths = index["paths"].as_object().unwrap();
    assert_eq!(paths.len(), docs.v3.len());
    let apps = docs.v3_group_version("apis/apps/v1").unwrap();
    assert_eq!(apps.hash.len(), 128);
    assert!(apps
        .hash
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    assert_eq!(
        paths["apis/apps/v1"]["serverRelativeURL"],
        format!("/openapi/v3/apis/apps/v1?hash={}", apps.hash)
    );
    assert_eq!(apps.etag(), format!("\"{}\"", apps.hash));
    // Deterministic: the same input gives the same bytes.
    assert_eq!(documents().v3_index, docs.v3_index);
}

#[test]
fn swagger2_document_is_consistent() {
    let docs = documents();
    let v2 = parse(&docs.v2);
    assert_eq!(v2["swagger"], "2.0");
    let definitions = v2["definitions"].as_object().unwrap();
    let mut refs = BTreeSet::new();
    all_refs(&v2, &mut refs);
    for r in &refs {
        let name = r.strip_prefix(V2_REF_PREFIX).unwrap();
        assert!(definitions.contains_key(name), "{r}");
    }
    let patch = &v2["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(patch["consumes"]
        .as_array()
        .unwrap()
        .contains(&Value::from("application/strategic-merge-patch+json")));
    assert_eq!(patch["parameters"][0]["in"], "body");
}

#[test]
fn unknown_definitions_are_refused() {
    let mut resources = builtin_served_resources();
    resources[0].definition = "io.k8s.api.core.v1.Nothing".into();
    let err = OpenApiDocuments::build(
        Definitions::global(),
        &resources,
        &DocumentOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, OpenApiError::UnknownDefinition(_)));
}

#[test]
fn building_everything_is_quick() {
    let start = std::time::Instant::now();
    let defs = Definitions::generate();
    let generated = start.elapsed();
    let docs = OpenApiDocuments::build(
        &defs,
        &builtin_served_resources(),
        &DocumentOptions::default(),
    )
    .unwrap();
    let built = start.elapsed();
    let total: usize = docs.v3.values().map(|d| d.bytes.len()).sum();
    eprintln!(
        "generate {generated:?}, documents {:?}, v3 bytes {total}, v2 bytes {}",
        built - generated,
        docs.v2.bytes.len()
    );
    // Generous bound for debug builds on a loaded machine.
    assert!(built.as_secs() < 30);
}

/// `OPENAPI_DUMP_DIR=/tmp/x cargo test -p openapi dump -- --ignored` writes the documents
/// out for inspection with jq or kubectl's own parsers.
#[test]
#[ignore]
fn dump() {
    let dir = std::path::PathBuf::from(std::env::var("OPENAPI_DUMP_DIR").unwrap());
    let docs = documents();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("v2.json"), &docs.v2.bytes).unwrap();
    std::fs::write(dir.join("v3.json"), &docs.v3_index.bytes).unwrap();
    for (path, doc) in &docs.v3 {
        std::fs::write(
            dir.join(format!("{}.json", path.replace('/', "__"))),
            &doc.bytes,
        )
        .unwrap();
    }
}

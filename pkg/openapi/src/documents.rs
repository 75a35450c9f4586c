//! The OpenAPI documents the API server publishes: one OpenAPI 3 document per
//! group-version (`/openapi/v3/api/v1`, `/openapi/v3/apis/apps/v1`), the v3 index
//! (`/openapi/v3`) and the swagger 2.0 document (`/openapi/v2`).
//!
//! kubectl reads them as follows, so their shapes follow upstream's closely:
//! - `--validate` (server-side field validation) looks in the group-version's v3 document
//!   for a PATCH operation whose `x-kubernetes-group-version-kind` is the object's kind and
//!   that declares the `fieldValidation` query parameter (`dryRun` alike for `--dry-run`).
//! - `apply` takes the strategic merge patch path when that PATCH operation's
//!   `requestBody.content` has `application/strategic-merge-patch+json`, and then reads the
//!   patch extensions from the `components.schemas` entry tagged with the kind.
//! - `explain` finds the kind through the GET/POST/... operations of the resource's paths,
//!   then the schema through `x-kubernetes-group-version-kind` in `components.schemas`.
//!
//! Documents are built once (from the [`ServedResource`]s the API server passes) and kept
//! as serialized bytes with their upstream-style hash (upper-case hex SHA-512).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

use crate::definitions::{Definitions, V2_REF_PREFIX, V3_REF_PREFIX};
use crate::registry::{GroupVersionKind, ServedResource};
use crate::OpenApiError;

const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

/// The patch content types, as kubectl looks for them.
pub const PATCH_CONTENT_TYPES: &[&str] = &[
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// What the documents say about the server.
#[derive(Debug, Clone)]
pub struct DocumentOptions {
    /// `info.title`.
    pub title: String,
    /// `info.version`: upstream's API server puts its version here (`v1.33.0`).
    pub version: String,
    /// Response media types of the served endpoints.
    pub produces: Vec<String>,
}

impl Default for DocumentOptions {
    fn default() -> Self {
        DocumentOptions {
            title: "Kubernetes".to_owned(),
            version: "unversioned".to_owned(),
            produces: vec!["application/json".to_owned(), "application/yaml".to_owned()],
        }
    }
}

/// A serialized document and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDocument {
    /// The JSON bytes to serve.
    pub bytes: Vec<u8>,
    /// Upper-case hex SHA-512 of `bytes`, as upstream computes it for `?hash=` and ETags.
    pub hash: String,
}

impl CachedDocument {
    fn new(value: &Value) -> Result<CachedDocument, OpenApiError> {
        let bytes = serde_json::to_vec(value).map_err(OpenApiError::Serialize)?;
        let hash = Sha512::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        Ok(CachedDocument { bytes, hash })
    }

    /// The `ETag` header value (quoted hash).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.hash)
    }
}

/// Every published document, serialized.
#[derive(Debug, Clone)]
pub struct OpenApiDocuments {
    /// `/openapi/v2` (swagger 2.0, JSON).
    pub v2: CachedDocument,
    /// `/openapi/v3`: the index of group-versions.
    pub v3_index: CachedDocument,
    /// `/openapi/v3/<path>`, keyed by `api/v1`, `apis/apps/v1`, ...
    pub v3: BTreeMap<String, CachedDocument>,
}

impl OpenApiDocuments {
    /// Builds and serializes every document for the served resources.
    pub fn build(
        definitions: &Definitions,
        resources: &[ServedResource],
        options: &DocumentOptions,
    ) -> Result<OpenApiDocuments, OpenApiError> {
        let mut by_group_version: BTreeMap<String, Vec<&ServedResource>> = BTreeMap::new();
        for resource in resources {
            for definition in resource_definitions(resource) {
                if !definitions.contains(&definition) {
                    return Err(OpenApiError::UnknownDefinition(definition));
                }
            }
            by_group_version
                .entry(group_version_path(&resource.group, &resource.version))
                .or_default()
                .push(resource);
        }

        let mut v3 = BTreeMap::new();
        for (path, resources) in &by_group_version {
            let document = build_v3(definitions, path, resources, options);
            v3.insert(path.clone(), CachedDocument::new(&document)?);
        }
        let index = v3_index(&v3);
        let v2 = build_v2(definitions, &by_group_version, options);
        Ok(OpenApiDocuments {
            v2: CachedDocument::new(&v2)?,
            v3_index: CachedDocument::new(&index)?,
            v3,
        })
    }

    /// The document of a group-version path (`api/v1`, `apis/apps/v1`).
    pub fn v3_group_version(&self, path: &str) -> Option<&CachedDocument> {
        self.v3.get(path.trim_matches('/'))
    }
}

/// The v3 index as upstream serves it: `{"paths": {"api/v1": {"serverRelativeURL":
/// "/openapi/v3/api/v1?hash=..."}}}`.
pub fn v3_index(documents: &BTreeMap<String, CachedDocument>) -> Value {
    let paths: Map<String, Value> = documents
        .iter()
        .map(|(path, document)| {
            (
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", document.hash)}),
            )
        })
        .collect();
    json!({ "paths": paths })
}

fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn resource_definitions(resource: &ServedResource) -> Vec<String> {
    let mut names = vec![resource.definition.clone()];
    if resource.has_verb("list") || resource.has_verb("watch") {
        names.push(resource.list_definition());
    }
    names.extend(resource.subresources.iter().map(|s| s.definition.clone()));
    names
}

// ---------------------------------------------------------------------------------------
// A neutral model of the operations, rendered as OpenAPI 3 or swagger 2.0.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum ParamType {
    String,
    Integer,
    Boolean,
}

impl ParamType {
    fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
        }
    }
}

struct Param {
    name: &'static str,
    location: &'static str,
    description: String,
    kind: ParamType,
    required: bool,
}

fn query(name: &'static str, kind: ParamType, description: &str) -> Param {
    Param {
        name,
        location: "query",
        description: description.to_owned(),
        kind,
        required: false,
    }
}

fn path_param(name: &'static str, description: String) -> Param {
    Param {
        name,
        location: "path",
        description,
        kind: ParamType::String,
        required: true,
    }
}

fn p_pretty() -> Param {
    query(
        "pretty",
        ParamType::String,
        "If 'true', then the output is pretty printed.",
    )
}
fn p_dry_run() -> Param {
    query("dryRun", ParamType::String, "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed")
}
fn p_field_manager() -> Param {
    query("fieldManager", ParamType::String, "fieldManager is a name associated with the actor or entity that is making these changes. Required for apply requests (application/apply-patch), optional otherwise.")
}
fn p_field_validation() -> Param {
    query("fieldValidation", ParamType::String, "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: drop them silently. - Warn: drop them and send a warning header for each (the default). - Strict: fail the request with a BadRequest error naming them all.")
}
fn p_force() -> Param {
    query("force", ParamType::Boolean, "Force is going to \"force\" Apply requests: the caller re-acquires fields other managers own. Must be unset for non-apply patch requests.")
}

fn list_params() -> Vec<Param> {
    vec![
        query("allowWatchBookmarks", ParamType::Boolean, "allowWatchBookmarks requests watch events with type \"BOOKMARK\"; the server sends them at its discretion. Ignored when not watching."),
        query("continue", ParamType::String, "The continue token returned by a previous list call with a limit, to retrieve the next chunk of results."),
        query("fieldSelector", ParamType::String, "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", ParamType::String, "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", ParamType::Integer, "limit is a maximum number of responses to return for a list call; the list metadata's continue field then leads to the rest."),
        query("resourceVersion", ParamType::String, "resourceVersion sets a constraint on what resource versions a request may be served from. Defaults to unset."),
        query("resourceVersionMatch", ParamType::String, "resourceVersionMatch determines how resourceVersion is applied to list calls. Defaults to unset."),
        query("sendInitialEvents", ParamType::Boolean, "With watch=true, start the watch stream with synthetic events for the current state of the collection, followed by a bookmark."),
        query("timeoutSeconds", ParamType::Integer, "Timeout for the list/watch call, regardless of any activity or inactivity."),
        query("watch", ParamType::Boolean, "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
    ]
}

fn delete_params() -> Vec<Param> {
    vec![
        p_dry_run(),
        query("gracePeriodSeconds", ParamType::Integer, "The duration in seconds before the object should be deleted. Zero means delete immediately; unset means the type's default."),
        query("ignoreStoreReadErrorWithClusterBreakingPotential", ParamType::Boolean, "If set, the server deletes an object whose stored data cannot be read. Unsafe: only for corrupt objects."),
        query("orphanDependents", ParamType::Boolean, "Deprecated: please use the PropagationPolicy. Whether the dependent objects should be orphaned."),
        query("propagationPolicy", ParamType::String, "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'."),
    ]
}

enum Body {
    /// A whole object of this definition (`*/*`).
    Object(String),
    /// A patch (the patch content types).
    Patch,
}

struct Response {
    code: &'static str,
    description: &'static str,
    definition: Option<String>,
}

fn ok(definition: &str) -> Response {
    Response {
        code: "200",
        description: "OK",
        definition: Some(definition.to_owned()),
    }
}
fn created(definition: &str) -> Response {
    Response {
        code: "201",
        description: "Created",
        definition: Some(definition.to_owned()),
    }
}
fn accepted(definition: &str) -> Response {
    Response {
        code: "202",
        description: "Accepted",
        definition: Some(definition.to_owned()),
    }
}
fn unauthorized() -> Response {
    Response {
        code: "401",
        description: "Unauthorized",
        definition: None,
    }
}

struct Operation {
    method: &'static str,
    id: String,
    description: String,
    action: &'static str,
    gvk: Option<GroupVersionKind>,
    params: Vec<Param>,
    body: Option<Body>,
    responses: Vec<Response>,
    /// Responses may be watch streams.
    streaming: bool,
    tag: String,
}

struct PathItem {
    path: String,
    params: Vec<Param>,
    operations: Vec<Operation>,
}

/// `rbac.authorization.k8s.io` → `RbacAuthorization`, `""` → `Core`.
fn group_identifier(group: &str) -> String {
    if group.is_empty() {
        return "Core".to_owned();
    }
    group
        .trim_end_matches(".k8s.io")
        .split('.')
        .map(capitalize)
        .collect()
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `rbac.authorization.k8s.io`/`v1` → `rbacAuthorization_v1`, as upstream tags operations.
fn tag_for(group: &str, version: &str) -> String {
    let id = group_identifier(group);
    let mut chars = id.chars();
    let lowered: String = match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    };
    format!("{lowered}_{version}")
}

/// The path items of one resource, upstream's way: collection, item, subresources and the
/// deprecated `watch/` paths.
fn resource_paths(resource: &ServedResource) -> Vec<PathItem> {
    let gv = format!(
        "{}{}",
        group_identifier(&resource.group),
        capitalize(&resource.version)
    );
    let base = format!(
        "/{}",
        group_version_path(&resource.group, &resource.version)
    );
    let kind = &resource.kind;
    let gvk = resource.gvk();
    let tag = tag_for(&resource.group, &resource.version);
    let definition = resource.definition.as_str();
    let list_definition = resource.list_definition();
    let scope = if resource.namespaced {
        "Namespaced"
    } else {
        ""
    };
    let ns_prefix = if resource.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let plural = &resource.plural;

    let scope_params = |with_name: bool| {
        let mut params = Vec::new();
        if with_name {
            params.push(path_param("name", format!("name of the {kind}")));
        }
        if resource.namespaced {
            params.push(path_param(
                "namespace",
                "object name and auth scope, such as for teams and projects".to_owned(),
            ));
        }
        params.push(p_pretty());
        params
    };
    let op = |method: &'static str,
              id: String,
              description: String,
              action: &'static str,
              gvk: &GroupVersionKind,
              params: Vec<Param>,
              body: Option<Body>,
              responses: Vec<Response>| Operation {
        method,
        id,
        description,
        action,
        gvk: Some(gvk.clone()),
        params,
        body,
        responses,
        streaming: false,
        tag: tag.clone(),
    };

    let mut items = Vec::new();

    // The collection.
    let mut collection = Vec::new();
    if resource.has_verb("list") {
        let mut list = op(
            "get",
            format!("list{gv}{scope}{kind}"),
            format!("list or watch objects of kind {kind}"),
            "list",
            &gvk,
            list_params(),
            None,
            vec![ok(&list_definition), unauthorized()],
        );
        list.streaming = true;
        collection.push(list);
    }
    if resource.has_verb("create") {
        collection.push(op(
            "post",
            format!("create{gv}{scope}{kind}"),
            format!("create a {kind}"),
            "post",
            &gvk,
            vec![p_dry_run(), p_field_manager(), p_field_validation()],
            Some(Body::Object(definition.to_owned())),
            vec![
                ok(definition),
                created(definition),
                accepted(definition),
                unauthorized(),
            ],
        ));
    }
    if resource.has_verb("deletecollection") {
        let mut params = delete_params();
        params.extend(
            list_params()
                .into_iter()
                .filter(|p| !matches!(p.name, "watch" | "allowWatchBookmarks")),
        );
        params.sort_by_key(|p| p.name);
        collection.push(op(
            "delete",
            format!("delete{gv}Collection{scope}{kind}"),
            format!("delete collection of {kind}"),
            "deletecollection",
            &gvk,
            params,
            Some(Body::Object(DELETE_OPTIONS.to_owned())),
            vec![ok(STATUS), unauthorized()],
        ));
    }
    if !collection.is_empty() {
        items.push(PathItem {
            path: format!("{base}{ns_prefix}/{plural}"),
            params: scope_params(false),
            operations: collection,
        });
    }

    // The item.
    let mut item = Vec::new();
    if resource.has_verb("get") {
        item.push(op(
            "get",
            format!("read{gv}{scope}{kind}"),
            format!("read the specified {kind}"),
            "get",
            &gvk,
            Vec::new(),
            None,
            vec![ok(definition), unauthorized()],
        ));
    }
    if resource.has_verb("update") {
        item.push(op(
            "put",
            format!("replace{gv}{scope}{kind}"),
            format!("replace the specified {kind}"),
            "put",
            &gvk,
            vec![p_dry_run(), p_field_manager(), p_field_validation()],
            Some(Body::Object(definition.to_owned())),
            vec![ok(definition), created(definition), unauthorized()],
        ));
    }
    if resource.has_verb("patch") {
        item.push(op(
            "patch",
            format!("patch{gv}{scope}{kind}"),
            format!("partially update the specified {kind}"),
            "patch",
            &gvk,
            vec![
                p_dry_run(),
                p_field_manager(),
                p_field_validation(),
                p_force(),
            ],
            Some(Body::Patch),
            vec![ok(definition), created(definition), unauthorized()],
        ));
    }
    if resource.has_verb("delete") {
        item.push(op(
            "delete",
            format!("delete{gv}{scope}{kind}"),
            format!("delete a {kind}"),
            "delete",
            &gvk,
            delete_params(),
            Some(Body::Object(DELETE_OPTIONS.to_owned())),
            vec![ok(definition), accepted(definition), unauthorized()],
        ));
    }
    if !item.is_empty() {
        items.push(PathItem {
            path: format!("{base}{ns_prefix}/{plural}/{{name}}"),
            params: scope_params(true),
            operations: item,
        });
    }

    // Subresources that have kinds.
    for sub in &resource.subresources {
        let sub_name = capitalize(&sub.name);
        let sub_definition = sub.definition.as_str();
        let has = |verb: &str| sub.verbs.iter().any(|v| v == verb);
        let mut operations = Vec::new();
        if has("get") {
            operations.push(op(
                "get",
                format!("read{gv}{scope}{kind}{sub_name}"),
                format!("read {} of the specified {kind}", sub.name),
                "get",
                &sub.gvk,
                Vec::new(),
                None,
                vec![ok(sub_definition), unauthorized()],
            ));
        }
        if has("create") {
            operations.push(op(
                "post",
                format!("create{gv}{scope}{kind}{sub_name}"),
                format!("create {} of a {kind}", sub.name),
                "post",
                &sub.gvk,
                vec![p_dry_run(), p_field_manager(), p_field_validation()],
                Some(Body::Object(sub_definition.to_owned())),
                vec![
                    ok(sub_definition),
                    created(sub_definition),
                    accepted(sub_definition),
                    unauthorized(),
                ],
            ));
        }
        if has("update") {
            operations.push(op(
                "put",
                format!("replace{gv}{scope}{kind}{sub_name}"),
                format!("replace {} of the specified {kind}", sub.name),
                "put",
                &sub.gvk,
                vec![p_dry_run(), p_field_manager(), p_field_validation()],
                Some(Body::Object(sub_definition.to_owned())),
                vec![ok(sub_definition), created(sub_definition), unauthorized()],
            ));
        }
        if has("patch") {
            operations.push(op(
                "patch",
                format!("patch{gv}{scope}{kind}{sub_name}"),
                format!("partially update {} of the specified {kind}", sub.name),
                "patch",
                &sub.gvk,
                vec![
                    p_dry_run(),
                    p_field_manager(),
                    p_field_validation(),
                    p_force(),
                ],
                Some(Body::Patch),
                vec![ok(sub_definition), created(sub_definition), unauthorized()],
            ));
        }
        if !operations.is_empty() {
            items.push(PathItem {
                path: format!("{base}{ns_prefix}/{plural}/{{name}}/{}", sub.name),
                params: scope_params(true),
                operations,
            });
        }
    }

    if resource.has_verb("list") && resource.namespaced {
        let mut list = op(
            "get",
            format!("list{gv}{kind}ForAllNamespaces"),
            format!("list or watch objects of kind {kind}"),
            "list",
            &gvk,
            Vec::new(),
            None,
            vec![ok(&list_definition), unauthorized()],
        );
        list.streaming = true;
        let mut params = list_params();
        params.push(p_pretty());
        params.sort_by_key(|p| p.name);
        items.push(PathItem {
            path: format!("{base}/{plural}"),
            params,
            operations: vec![list],
        });
    }

    if resource.has_verb("watch") {
        let watch = |id: String, description: String, action: &'static str| {
            let mut watch = op(
                "get",
                id,
                description,
                action,
                &gvk,
                Vec::new(),
                None,
                vec![ok(WATCH_EVENT), unauthorized()],
            );
            watch.streaming = true;
            vec![watch]
        };
        let with_scope = |with_name: bool| {
            let mut params = list_params();
            params.extend(scope_params(with_name));
            params.sort_by_key(|p| p.name);
            params
        };
        items.push(PathItem {
            path: format!("{base}/watch{ns_prefix}/{plural}"),
            params: with_scope(false),
            operations: watch(
                format!("watch{gv}{scope}{kind}List"),
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                "watchlist",
            ),
        });
        items.push(PathItem {
            path: format!("{base}/watch{ns_prefix}/{plural}/{{name}}"),
            params: with_scope(true),
            operations: watch(
                format!("watch{gv}{scope}{kind}"),
                format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
                "watch",
            ),
        });
        if resource.namespaced {
            let mut params = list_params();
            params.push(p_pretty());
            params.sort_by_key(|p| p.name);
            items.push(PathItem {
                path: format!("{base}/watch/{plural}"),
                params,
                operations: watch(
                    format!("watch{gv}{kind}ListForAllNamespaces"),
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    "watchlist",
                ),
            });
        }
    }
    items
}

/// `GET /apis/<group>/<version>/`: the group-version's resource list.
fn resources_path(group: &str, version: &str) -> PathItem {
    let gv = format!("{}{}", group_identifier(group), capitalize(version));
    PathItem {
        path: format!("/{}/", group_version_path(group, version)),
        params: Vec::new(),
        operations: vec![Operation {
            method: "get",
            id: format!("get{gv}APIResources"),
            description: "get available resources".to_owned(),
            action: "",
            gvk: None,
            params: Vec::new(),
            body: None,
            responses: vec![ok(API_RESOURCE_LIST), unauthorized()],
            streaming: false,
            tag: tag_for(group, version),
        }],
    }
}

fn group_version_paths(resources: &[&ServedResource]) -> Vec<PathItem> {
    let mut items = Vec::new();
    if let Some(first) = resources.first() {
        items.push(resources_path(&first.group, &first.version));
    }
    for resource in resources {
        items.extend(resource_paths(resource));
    }
    // Two resources cannot share a path; keep the first should the input repeat one.
    let mut seen = BTreeSet::new();
    items.retain(|item| seen.insert(item.path.clone()));
    items.sort_by(|a, b| a.path.cmp(&b.path));
    items
}

fn security() -> (Value, Value) {
    (
        json!({"BearerToken": {"description": "Bearer Token authentication", "in": "header", "name": "authorization", "type": "apiKey"}}),
        json!([{"BearerToken": []}]),
    )
}

// ---------------------------------------------------------------------------------------
// OpenAPI 3.
// ---------------------------------------------------------------------------------------

fn v3_param(param: &Param) -> Value {
    let mut value = json!({
        "description": param.description,
        "in": param.location,
        "name": param.name,
        "schema": {"type": param.kind.name(), "uniqueItems": true},
    });
    if param.required {
        value["required"] = Value::Bool(true);
    }
    value
}

fn v3_ref(definition: &str) -> Value {
    json!({"$ref": format!("{V3_REF_PREFIX}{definition}")})
}

fn v3_operation(op: &Operation, options: &DocumentOptions) -> Value {
    let mut value = Map::new();
    value.insert("description".into(), Value::String(op.description.clone()));
    value.insert("operationId".into(), Value::String(op.id.clone()));
    if !op.params.is_empty() {
        value.insert(
            "parameters".into(),
            Value::Array(op.params.iter().map(v3_param).collect()),
        );
    }
    match &op.body {
        Some(Body::Object(definition)) => {
            let mut body = json!({"content": {"*/*": {"schema": v3_ref(definition)}}});
            if definition != DELETE_OPTIONS {
                body["required"] = Value::Bool(true);
            }
            value.insert("requestBody".into(), body);
        }
        Some(Body::Patch) => {
            let content: Map<String, Value> = PATCH_CONTENT_TYPES
                .iter()
                .map(|t| ((*t).to_owned(), json!({"schema": v3_ref(PATCH)})))
                .collect();
            value.insert(
                "requestBody".into(),
                json!({"content": content, "required": true}),
            );
        }
        None => {}
    }
    let mut responses = Map::new();
    for response in &op.responses {
        let mut r = json!({"description": response.description});
        if let Some(definition) = &response.definition {
            let mut content = Map::new();
            for media in &options.produces {
                content.insert(media.clone(), json!({"schema": v3_ref(definition)}));
                if op.streaming && media == "application/json" {
                    content.insert(
                        "application/json;stream=watch".into(),
                        json!({"schema": v3_ref(definition)}),
                    );
                }
            }
            r["content"] = Value::Object(content);
        }
        responses.insert(response.code.to_owned(), r);
    }
    value.insert("responses".into(), Value::Object(responses));
    value.insert("tags".into(), json!([op.tag]));
    if !op.action.is_empty() {
        value.insert(
            "x-kubernetes-action".into(),
            Value::String(op.action.into()),
        );
    }
    if let Some(gvk) = &op.gvk {
        value.insert("x-kubernetes-group-version-kind".into(), gvk.to_json());
    }
    Value::Object(value)
}

fn build_v3(
    definitions: &Definitions,
    _path: &str,
    resources: &[&ServedResource],
    options: &DocumentOptions,
) -> Value {
    let mut paths = Map::new();
    for item in group_version_paths(resources) {
        let mut path_item = Map::new();
        for op in &item.operations {
            path_item.insert(op.method.to_owned(), v3_operation(op, options));
        }
        if !item.params.is_empty() {
            path_item.insert(
                "parameters".into(),
                Value::Array(item.params.iter().map(v3_param).collect()),
            );
        }
        paths.insert(item.path, Value::Object(path_item));
    }

    let mut roots = BTreeSet::new();
    collect_v3_refs(&Value::Object(paths.clone()), &mut roots);
    let reachable = definitions.reachable(roots.iter().map(String::as_str));
    let schemas: Map<String, Value> = reachable
        .into_iter()
        .filter_map(|name| definitions.get(&name).map(|s| (name, s.clone())))
        .collect();

    let (schemes, requirement) = security();
    let mut components = Map::new();
    components.insert("schemas".into(), Value::Object(schemas));
    components.insert("securitySchemes".into(), schemes);
    json!({
        "components": components,
        "info": {"title": options.title, "version": options.version},
        "openapi": "3.0.0",
        "paths": paths,
        "security": requirement,
    })
}

fn collect_v3_refs(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("$ref", Some(r)) => {
                        if let Some(name) = r.strip_prefix(V3_REF_PREFIX) {
                            out.insert(name.to_owned());
                        }
                    }
                    _ => collect_v3_refs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| collect_v3_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Swagger 2.0.
// ---------------------------------------------------------------------------------------

fn v2_param(param: &Param) -> Value {
    let mut value = json!({
        "description": param.description,
        "in": param.location,
        "name": param.name,
        "type": param.kind.name(),
        "uniqueItems": true,
    });
    if param.required {
        value["required"] = Value::Bool(true);
    }
    value
}

fn v2_ref(definition: &str) -> Value {
    json!({"$ref": format!("{V2_REF_PREFIX}{definition}")})
}

fn v2_operation(op: &Operation, options: &DocumentOptions) -> Value {
    let mut value = Map::new();
    let consumes: Vec<&str> = match &op.body {
        Some(Body::Patch) => PATCH_CONTENT_TYPES.to_vec(),
        _ => vec!["*/*"],
    };
    value.insert("consumes".into(), json!(consumes));
    value.insert("description".into(), Value::String(op.description.clone()));
    value.insert("operationId".into(), Value::String(op.id.clone()));
    let mut params: Vec<Value> = Vec::new();
    match &op.body {
        Some(Body::Object(definition)) => params.push(json!({
            "in": "body", "name": "body", "required": definition != DELETE_OPTIONS,
            "schema": v2_ref(definition),
        })),
        Some(Body::Patch) => params.push(json!({
            "in": "body", "name": "body", "required": true, "schema": v2_ref(PATCH),
        })),
        None => {}
    }
    params.extend(op.params.iter().map(v2_param));
    if !params.is_empty() {
        value.insert("parameters".into(), Value::Array(params));
    }
    let mut produces = options.produces.clone();
    if op.streaming {
        produces.push("application/json;stream=watch".to_owned());
    }
    value.insert("produces".into(), json!(produces));
    let mut responses = Map::new();
    for response in &op.responses {
        let mut r = json!({"description": response.description});
        if let Some(definition) = &response.definition {
            r["schema"] = v2_ref(definition);
        }
        responses.insert(response.code.to_owned(), r);
    }
    value.insert("responses".into(), Value::Object(responses));
    value.insert("schemes".into(), json!(["https"]));
    value.insert("tags".into(), json!([op.tag]));
    if !op.action.is_empty() {
        value.insert(
            "x-kubernetes-action".into(),
            Value::String(op.action.into()),
        );
    }
    if let Some(gvk) = &op.gvk {
        value.insert("x-kubernetes-group-version-kind".into(), gvk.to_json());
    }
    Value::Object(value)
}

fn build_v2(
    definitions: &Definitions,
    by_group_version: &BTreeMap<String, Vec<&ServedResource>>,
    options: &DocumentOptions,
) -> Value {
    let mut paths = Map::new();
    let mut roots = BTreeSet::new();
    for resources in by_group_version.values() {
        for item in group_version_paths(resources) {
            let mut path_item = Map::new();
            for op in &item.operations {
                for response in &op.responses {
                    roots.extend(response.definition.clone());
                }
                match &op.body {
                    Some(Body::Object(definition)) => {
                        roots.insert(definition.clone());
                    }
                    Some(Body::Patch) => {
                        roots.insert(PATCH.to_owned());
                    }
                    None => {}
                }
                path_item.insert(op.method.to_owned(), v2_operation(op, options));
            }
            if !item.params.is_empty() {
                path_item.insert(
                    "parameters".into(),
                    Value::Array(item.params.iter().map(v2_param).collect()),
                );
            }
            paths.insert(item.path, Value::Object(path_item));
        }
    }
    let reachable = definitions.reachable(roots.iter().map(String::as_str));
    let schemas: Map<String, Value> = reachable
        .into_iter()
        .filter_map(|name| {
            definitions
                .swagger2_schemas()
                .get(&name)
                .map(|s| (name, s.clone()))
        })
        .collect();
    let (schemes, requirement) = security();
    json!({
        "definitions": schemas,
        "info": {"title": options.title, "version": options.version},
        "paths": paths,
        "security": requirement,
        "securityDefinitions": schemes,
        "swagger": "2.0",
    })
}

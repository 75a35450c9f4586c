//! Server-side apply and `metadata.managedFields`, with the semantics of upstream's
//! structured-merge-diff and `k8s.io/apimachinery/pkg/util/managedfields`.
//!
//! - [`path`] and [`set`]: field paths and sets, and their FieldsV1 JSON form.
//! - [`schema`]: the served types compiled for structured merge (list and map types from
//!   the OpenAPI extensions).
//! - [`typed`]: field sets, comparisons, merges and removals of objects against a schema.
//! - [`managed`]: decoding, encoding and capping of managedFields entries.
//!
//! Every write records who changed what. A create, update or non-apply patch is an
//! `Update` by its manager (`?fieldManager=`, else the User-Agent up to its first `/`):
//! the fields that differ between the stored object and the request's (defaulted) object
//! move to that manager's entry and leave every other entry. The store calls
//! [`begin_update`] on the decoded request object, before admission, and
//! [`PendingUpdate::finish`] once the strategy has prepared the object: fields the strategy
//! put back (status on a main-resource write, spec on a status write) are not the writer's.
//!
//! Server-side apply ([`apply`]) merges the applied configuration into the live object by
//! the schema's list and map types, removes what the manager applied before and no longer
//! applies unless someone else owns it, and refuses to change fields that other managers
//! own unless forced (409 with upstream's message and causes). The first apply with
//! manager `kubectl` onto an object managed by client-side apply takes over the fields
//! whose live value still matches the last-applied annotation, and keeps the annotation in
//! step, as upstream does for the migration from client-side apply.
//!
//! Deliberate differences: all API versions of a resource share paths (no conversion of
//! field sets between versions); an apply through the scale subresource is recorded as an
//! update of the parent.

pub mod managed;
pub mod path;
pub mod schema;
pub mod set;
pub mod typed;

use std::sync::OnceLock;

use apimachinery::{StatusError, StatusReason};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};
use serde_json::{json, Map, Value};

use crate::apiserver::ApiServer;
use crate::object;
use crate::registry::ResourceInfo;

use managed::{Entry, Managed, ManagerId, Operation};
use path::{values_equal, Path, PathElement};
use schema::{Schema, TypeId};
use set::Set;
use typed::{Comparison, Typed};

pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The manager of the fields an object had before anyone recorded managedFields.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Longest field manager name (upstream's `FieldManagerMaxLength`).
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// How the store records a write in managedFields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Tracking {
    /// An `Update` by the request's manager; through the status subresource when the
    /// store writes status.
    #[default]
    Update,
    /// An `Update` through another subresource (`scale`).
    Subresource(&'static str),
    /// Server-side apply already computed the managedFields.
    Applied,
}

/// The manager named by the User-Agent: the part before the first `/`, printable
/// characters only, at most [`FIELD_MANAGER_MAX_LENGTH`] bytes (upstream's
/// `prefixFromUserAgent`).
pub fn prefix_from_user_agent(user_agent: &str) -> String {
    let head = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in head.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// The manager of a write: `?fieldManager=`, else the User-Agent's prefix. `None` for
/// writes that carry neither (the server's own internal writes), which are not tracked.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> Option<String> {
    match (field_manager.filter(|m| !m.is_empty()), user_agent) {
        (Some(m), _) => Some(m.to_string()),
        (None, Some(ua)) => Some(prefix_from_user_agent(ua)),
        (None, None) => None,
    }
}

/// The fields no manager owns (upstream's `stripMetaManager`).
fn strip_set() -> &'static Set {
    static STRIP: OnceLock<Set> = OnceLock::new();
    STRIP.get_or_init(|| {
        let mut s = Set::new();
        for p in [
            &["apiVersion"][..],
            &["kind"],
            &["metadata"],
            &["metadata", "name"],
            &["metadata", "namespace"],
            &["metadata", "creationTimestamp"],
            &["metadata", "selfLink"],
            &["metadata", "uid"],
            &["metadata", "clusterName"],
            &["metadata", "generation"],
            &["metadata", "managedFields"],
            &["metadata", "resourceVersion"],
        ] {
            s.insert(&Path::fields(p).0);
        }
        s
    })
}

fn single(name: &str) -> Set {
    let mut s = Set::new();
    s.insert(&[PathElement::field(name)]);
    s
}

/// The fields a write through `subresource` does not own (upstream's reset fields, in
/// their common form): status for the main resource when status is its own subresource,
/// spec for the status subresource.
fn reset_fields(info: &ResourceInfo, subresource: &str) -> Set {
    match subresource {
        "" if info.has_subresource("status") => single("status"),
        "status" => single("spec"),
        _ => Set::new(),
    }
}

fn managed_fields_of(obj: &Value) -> Option<&Value> {
    object::metadata(obj).and_then(|m| m.get("managedFields"))
}

fn write_managed(obj: &mut Value, managed: &Managed) {
    match managed.encode() {
        Some(list) => object::set_meta(obj, "managedFields", list),
        None => {
            object::remove_meta(obj, "managedFields");
        }
    }
}

/// Which managedFields an update starts from (upstream's `decodeLiveOrNew`): the
/// request's, unless it asks for a reset (empty), sends none or invalid ones, or writes a
/// subresource; then the stored object's.
fn decode_live_or_new(live: &Value, new: &Value, subresource: bool) -> Managed {
    let from_live = || Managed::decode(managed_fields_of(live)).unwrap_or_default();
    if subresource {
        return from_live();
    }
    let requested = managed_fields_of(new);
    if managed::is_reset(requested) {
        return Managed::default();
    }
    match Managed::decode(requested) {
        Ok(m) if !m.is_empty() => m,
        _ => from_live(),
    }
}

fn empty_object() -> &'static Value {
    static EMPTY: OnceLock<Value> = OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

/// An update whose comparison is computed, waiting for the strategy to prepare the object.
pub struct PendingUpdate {
    root: TypeId,
    id: ManagerId,
    api_version: String,
    managed: Managed,
    /// `None` when the objects could not be compared: the stored managedFields stay.
    cmp: Option<Comparison>,
}

/// Start recording a create (`old` is `None`) or an update of `new`, the decoded request
/// object, before admission changes it. `None` for types without a schema.
pub fn begin_update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: &str,
) -> Option<PendingUpdate> {
    let schema = Schema::global();
    let root = schema.root(&info.definition)?;
    let t = Typed::new(schema);
    let live = old.unwrap_or(empty_object());
    let managed = decode_live_or_new(live, new, !subresource.is_empty());
    let cmp = t
        .compare(root, live, new, Some("managedFields"))
        .ok()
        .map(|mut c| {
            c.exclude(&reset_fields(info, subresource));
            c
        });
    let api_version = info.api_version();
    Some(PendingUpdate {
        root,
        id: ManagerId::new(manager, Operation::Update, &api_version, subresource),
        api_version,
        managed,
        cmp,
    })
}

impl PendingUpdate {
    /// Record the update into `post`, the object about to be stored. Changes the strategy
    /// reverted (`post` has the stored value again) are not the writer's.
    pub fn finish(self, old: Option<&Value>, post: &mut Value) {
        let live = old.unwrap_or(empty_object());
        let Some(cmp) = self.cmp else {
            // Upstream's UpdateNoErrors: keep what was recorded before.
            match managed_fields_of(live).cloned() {
                Some(mf) => object::set_meta(post, "managedFields", mf),
                None => {
                    object::remove_meta(post, "managedFields");
                }
            }
            return;
        };
        let t = Typed::new(Schema::global());
        let root = Some(self.root);
        let Comparison {
            mut added,
            mut modified,
            mut removed,
        } = cmp;
        t.retain_changed(root, &mut added, Some(live), Some(post));
        t.retain_changed(root, &mut modified, Some(live), Some(post));
        t.retain_changed(root, &mut removed, Some(live), Some(post));
        let mut changed = added.union_owned(modified);
        let mut managed = self.managed;
        for e in &mut managed.entries {
            e.set.subtract(&changed);
            e.set.subtract(&removed);
        }
        managed.drop_empty();
        changed.subtract(strip_set());
        let current = changed;
        if !current.is_empty() {
            let now = object::now_rfc3339();
            match managed.get_mut(&self.id) {
                Some(e) => {
                    e.set = current.union_owned(std::mem::take(&mut e.set));
                    e.api_version = self.api_version;
                    e.time = Some(now);
                }
                None => managed.entries.push(Entry {
                    id: self.id,
                    api_version: self.api_version,
                    time: Some(now),
                    set: current,
                }),
            }
        }
        managed.cap_update_managers();
        write_managed(post, &managed);
    }
}

/// Record a whole update at once (tests and callers without admission in between).
pub fn update(
    info: &ResourceInfo,
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    subresource: &str,
) {
    if let Some(pending) = begin_update(info, old, new, manager, subresource) {
        pending.finish(old, new);
    }
}

// ---- server-side apply ----

/// Go's `GroupVersionKind.String()` of an object's type.
fn gvk_string(obj: &Value) -> String {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    format!("{group}/{version}, Kind={kind}")
}

fn invalid_typed_object(what: &str, obj: &Value, errors: &[typed::WalkError]) -> StatusError {
    let detail = match errors {
        [one] => one.to_string(),
        many => {
            let mut lines = vec!["errors:".to_string()];
            lines.extend(many.iter().map(|e| format!("  {e}")));
            lines.join("\n")
        }
    };
    // Upstream answers these as an unclassified internal error.
    StatusError::new(
        500,
        StatusReason::Unknown,
        format!(
            "failed to create typed {what} object ({}/{}; {}): {detail}",
            object::namespace(obj),
            object::name(obj),
            gvk_string(obj)
        ),
    )
}

/// The 409 of an apply that would change fields other managers own (upstream's
/// `NewConflictError`).
pub fn conflict_error(mut conflicts: Vec<(ManagerId, Set)>) -> StatusError {
    conflicts.sort_by_key(|(id, _)| id.identifier());
    let flat: Vec<(&ManagerId, Path)> = conflicts
        .iter()
        .flat_map(|(id, set)| set.paths().into_iter().map(move |p| (id, p)))
        .collect();
    let causes = flat
        .iter()
        .map(|(id, p)| StatusCause {
            reason: Some("FieldManagerConflict".into()),
            message: Some(format!("conflict with {}", id.describe())),
            field: Some(p.to_string()),
        })
        .collect();
    let message = match flat.as_slice() {
        [(id, p)] => format!(
            "Apply failed with 1 conflict: conflict with {}: {p}",
            id.describe()
        ),
        _ => {
            let mut lines = Vec::new();
            for (id, set) in &conflicts {
                lines.push(format!("conflicts with {}:", id.describe()));
                lines.extend(set.paths().iter().map(|p| format!("- {p}")));
            }
            format!(
                "Apply failed with {} conflicts: {}",
                flat.len(),
                lines.join("\n")
            )
        }
    };
    StatusError {
        code: 409,
        reason: StatusReason::Conflict,
        message,
        details: Some(StatusDetails {
            causes: Some(causes),
            ..Default::default()
        }),
    }
}

/// What one apply needs besides the objects.
struct ApplyCtx<'a> {
    t: Typed<'static>,
    root: TypeId,
    id: ManagerId,
    api_version: String,
    ignored: Set,
    config_set: &'a Set,
}

enum ApplyFailure {
    Conflicts(Vec<(ManagerId, Set)>),
    Error(StatusError),
}

/// Server-side apply of `applied` by `manager` onto `current` (main resource).
pub fn apply(
    _server: &ApiServer,
    info: &ResourceInfo,
    current: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, StatusError> {
    apply_to(info, Some(current), applied, manager, "", force)
}

/// Server-side apply creating the object.
pub fn apply_new(
    info: &ResourceInfo,
    applied: &Value,
    manager: &str,
    subresource: &str,
) -> Result<Value, StatusError> {
    apply_to(info, None, applied, manager, subresource, false)
}

/// Server-side apply onto `live` (`None` to create) through `subresource` (`""` for the
/// main resource).
pub fn apply_to(
    info: &ResourceInfo,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: &str,
    force: bool,
) -> Result<Value, StatusError> {
    let config_api_version = config.get("apiVersion").and_then(Value::as_str);
    let config_kind = config.get("kind").and_then(Value::as_str);
    let api_version = match (config_api_version, config_kind) {
        (Some(v), Some(k)) if serves_type(info, v, k) => v.to_string(),
        _ => {
            return Err(StatusError::bad_request(format!(
                "invalid object type: {}",
                gvk_string(config)
            )))
        }
    };
    if managed_fields_of(config).is_some_and(|v| !v.is_null()) {
        return Err(StatusError::bad_request(
            "metadata.managedFields must be nil",
        ));
    }
    let live = live.unwrap_or(empty_object());
    let mut managed = Managed::decode(managed_fields_of(live))
        .map_err(|e| StatusError::internal(format!("failed to decode managed fields: {e}")))?;
    // Fields of an object nobody recorded belong to "before-first-apply", so that the
    // first applier conflicts with them rather than silently taking them (upstream's
    // skipNonAppliedManager).
    let before_first_apply;
    let live = if managed.is_empty() && live.as_object().is_some_and(|m| !m.is_empty()) {
        let mut recorded = live.clone();
        update(info, None, &mut recorded, BEFORE_FIRST_APPLY, subresource);
        managed = Managed::decode(managed_fields_of(&recorded)).unwrap_or_default();
        before_first_apply = recorded;
        &before_first_apply
    } else {
        live
    };
    let schema = Schema::global();
    let root = schema
        .root(&info.definition)
        .ok_or_else(|| StatusError::internal(format!("no schema for {}", info.definition)))?;
    let t = Typed::new(schema);
    let config_set = t
        .field_set(root, config, true)
        .map_err(|errs| invalid_typed_object("patch", config, &errs))?;
    let ctx = ApplyCtx {
        t,
        root,
        id: ManagerId::new(manager, Operation::Apply, &api_version, subresource),
        api_version,
        ignored: reset_fields(info, subresource),
        config_set: &config_set,
    };
    let mut result = match ctx.apply_once(live, config, managed.clone(), force) {
        Ok(r) => r,
        Err(ApplyFailure::Error(e)) => return Err(e),
        Err(ApplyFailure::Conflicts(conflicts)) => {
            // Taking over from client-side apply: conflicts on fields whose live value
            // is still what kubectl last applied are not conflicts.
            let allowed = (manager == "kubectl")
                .then(|| ctx.allowed_from_last_applied(live))
                .flatten();
            let Some(allowed) = allowed else {
                return Err(conflict_error(conflicts));
            };
            let remaining: Vec<(ManagerId, Set)> = conflicts
                .into_iter()
                .map(|(id, set)| (id, set.difference(&allowed)))
                .filter(|(_, set)| !set.is_empty())
                .collect();
            if !remaining.is_empty() {
                return Err(conflict_error(remaining));
            }
            match ctx.apply_once(live, config, managed, true) {
                Ok(r) => r,
                Err(ApplyFailure::Error(e)) => return Err(e),
                Err(ApplyFailure::Conflicts(c)) => return Err(conflict_error(c)),
            }
        }
    };
    if manager == "kubectl" && has_last_applied(&result) {
        let mut last = config.clone();
        if let Some(annotations) = last
            .get_mut("metadata")
            .and_then(|m| m.get_mut("annotations"))
            .and_then(Value::as_object_mut)
        {
            annotations.remove(LAST_APPLIED_ANNOTATION);
        }
        let mut encoded = String::new();
        path::write_go_json(&last, true, &mut encoded);
        encoded.push('\n');
        let meta = object::metadata_mut(&mut result);
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(LAST_APPLIED_ANNOTATION.into(), Value::String(encoded));
        }
    }
    Ok(result)
}

/// Whether an applied object's type is the endpoint's: the kind of its definition (a
/// subresource such as scale applies its own type, `autoscaling/v1` Scale).
fn serves_type(info: &ResourceInfo, api_version: &str, kind: &str) -> bool {
    let tagged = openapi::Definitions::global()
        .get(&info.definition)
        .and_then(|d| d.get("x-kubernetes-group-version-kind"))
        .and_then(Value::as_array);
    match tagged {
        Some(gvks) if !gvks.is_empty() => gvks.iter().any(|gvk| {
            let s = |k: &str| gvk.get(k).and_then(Value::as_str).unwrap_or_default();
            let expected = match s("group") {
                "" => s("version").to_string(),
                group => format!("{group}/{}", s("version")),
            };
            expected == api_version && s("kind") == kind
        }),
        _ => api_version == info.api_version() && kind == info.kind,
    }
}

fn has_last_applied(obj: &Value) -> bool {
    object::metadata(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

impl ApplyCtx<'_> {
    /// One attempt (upstream's `Updater.Apply` under the managedFields wrappers).
    fn apply_once(
        &self,
        live: &Value,
        config: &Value,
        mut managed: Managed,
        force: bool,
    ) -> Result<Value, ApplyFailure> {
        let internal = |what: &str, e: String| {
            ApplyFailure::Error(StatusError::internal(format!("{what}: {e}")))
        };
        let merged = self
            .t
            .merge(self.root, Some(live), Some(config))
            .map_err(|e| internal("failed to merge config", e))?
            .unwrap_or_else(|| json!({}));
        let previous = managed.get(&self.id).cloned();
        let last_set = previous.as_ref().map(|e| e.set.clone());
        managed.put(Entry {
            id: self.id.clone(),
            api_version: self.api_version.clone(),
            time: previous.and_then(|e| e.time),
            set: self.config_set.recursive_difference(&self.ignored),
        });
        let merged = self.prune(merged, &managed, last_set);
        let mut cmp = self
            .t
            .compare(self.root, live, &merged, Some("managedFields"))
            .map_err(|e| internal("failed to compare objects", e))?;
        cmp.exclude(&self.ignored);
        let changed = cmp.added.union(&cmp.modified);
        let conflicts: Vec<(ManagerId, Set)> = managed
            .entries
            .iter()
            .filter(|e| e.id != self.id)
            .map(|e| (e.id.clone(), e.set.intersection(&changed)))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        if !force && !conflicts.is_empty() {
            return Err(ApplyFailure::Conflicts(conflicts));
        }
        for e in managed.entries.iter_mut().filter(|e| e.id != self.id) {
            e.set = e.set.difference(&changed).difference(&cmp.removed);
        }
        managed.drop_empty();
        let noop = values_equal(live, &merged);
        let mut drop_entry = false;
        if let Some(e) = managed.get_mut(&self.id) {
            e.set = e.set.difference(strip_set());
            drop_entry = e.set.is_empty();
            if !noop {
                e.time = Some(object::now_rfc3339());
            }
        }
        if drop_entry {
            managed.remove(&self.id);
        }
        let mut result = if noop { live.clone() } else { merged };
        write_managed(&mut result, &managed);
        Ok(result)
    }

    /// Remove what the manager applied last time and no longer applies, unless another
    /// manager (or this one's new configuration) owns it (upstream's `prune`).
    fn prune(&self, merged: Value, managed: &Managed, last: Option<Set>) -> Value {
        let Some(last) = last.filter(|s| !s.is_empty()) else {
            return merged;
        };
        let t = &self.t;
        let root = Some(self.root);
        let ensure = |s: &Set| t.ensure_named_fields_are_members(root, s);
        let fields = |v: &Value| ensure(&t.field_set(self.root, v, false).unwrap_or_default());
        let last = ensure(&last);
        let pruned = t.remove(self.root, &merged, &last);
        let owned = managed
            .entries
            .iter()
            .fold(Set::new(), |acc, e| acc.union(&e.set));
        let merged_set = fields(&merged);
        let pruned_set = fields(&pruned);
        let pruned = t.remove(
            self.root,
            &merged,
            &merged_set.difference(&pruned_set.union(&ensure(&owned))),
        );
        let pruned_set = fields(&pruned);
        t.remove(
            self.root,
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last),
        )
    }

    /// The fields kubectl's client-side apply last applied whose live value is still the
    /// applied one (upstream's `allowedConflictsFromLastApplied`).
    fn allowed_from_last_applied(&self, live: &Value) -> Option<Set> {
        let text = object::metadata(live)?
            .get("annotations")?
            .get(LAST_APPLIED_ANNOTATION)?
            .as_str()
            .filter(|s| !s.is_empty())?;
        let last: Value = serde_json::from_str(text).ok()?;
        if last.get("apiVersion").and_then(Value::as_str) != Some(self.api_version.as_str()) {
            return None;
        }
        let last_set = self.t.field_set(self.root, &last, true).ok()?;
        let cmp = self
            .t
            .compare(self.root, &last, live, Some("managedFields"))
            .ok()?;
        Some(
            last_set
                .difference(&cmp.modified)
                .difference(&cmp.added)
                .difference(&cmp.removed),
        )
    }
}

/// The managedFields of the scale subresource of `parent`: the entries that own the
/// replica count (at `replicas_path`, dotted), as owners of the Scale's `spec.replicas`
/// (upstream's `ScaleHandler.ToSubresource`).
pub fn scale_managed_fields(parent: &Value, replicas_path: &str) -> Option<Value> {
    let path: Vec<&str> = replicas_path.split('.').collect();
    let replicas = Path::fields(&path);
    let mut scale_set = Set::new();
    scale_set.insert(&Path::fields(&["spec", "replicas"]).0);
    let parent_managed = Managed::decode(managed_fields_of(parent)).ok()?;
    let entries = parent_managed
        .entries
        .into_iter()
        .filter(|e| e.set.has(&replicas.0))
        .map(|e| Entry {
            set: scale_set.clone(),
            api_version: "autoscaling/v1".into(),
            ..e
        })
        .collect();
    Managed { entries }.encode()
}

/// Upstream's `ValidateFieldManager` on the `fieldManager` of create, update and patch
/// options, as the 422 of `<kind>.meta.k8s.io ""`.
pub fn validate_options(
    options_kind: &str,
    field_manager: Option<&str>,
) -> Result<(), StatusError> {
    let errors = apimachinery::validation::validate_field_manager(
        field_manager.unwrap_or_default(),
        &apimachinery::field::Path::new("fieldManager"),
    );
    if errors.is_empty() {
        return Ok(());
    }
    Err(StatusError::invalid(
        &apimachinery::errors::GroupKind::new("meta.k8s.io", options_kind),
        "",
        &errors,
    ))
}

/// Upstream's `ValidatePatchOptions`: apply needs a field manager, only apply may force.
pub fn validate_patch_options(
    is_apply: bool,
    field_manager: Option<&str>,
    force_given: bool,
) -> Result<(), StatusError> {
    let path = |name: &str| apimachinery::field::Path::new(name);
    let mut errors = Vec::new();
    if !is_apply && force_given {
        errors.push(apimachinery::field::FieldError::forbidden(
            &path("force"),
            "may not be specified for non-apply patch",
        ));
    }
    if is_apply && field_manager.is_none_or(str::is_empty) {
        errors.push(apimachinery::field::FieldError::required(
            &path("fieldManager"),
            "is required for apply patch",
        ));
    }
    errors.extend(apimachinery::validation::validate_field_manager(
        field_manager.unwrap_or_default(),
        &path("fieldManager"),
    ));
    if errors.is_empty() {
        return Ok(());
    }
    Err(StatusError::invalid(
        &apimachinery::errors::GroupKind::new("meta.k8s.io", "PatchOptions"),
        "",
        &errors,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

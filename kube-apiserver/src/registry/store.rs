//! The generic store: one per resource, applying the resource's [`Strategy`] to storage
//! with upstream's semantics for metadata, optimistic concurrency, graceful and finalized
//! deletion, paging and watches (upstream's `registry/generic/registry.Store` and the
//! etcd3 storage layer together).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apimachinery::errors::GroupResource;
use apimachinery::field::{ErrorList, FieldError, Path};
use apimachinery::{fields, labels, validation, StatusError};
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{json, Map, Value};
use storage::{EventKind, KeyValue, ListOptions, Revision, Storage, StorageError, WatchItem};

use crate::admission::{Admission, Attributes, Operation};
use crate::fieldmanager;
use crate::object;
use crate::registry::{ResourceInfo, StoreHooks, Strategy, StrategyRef};
use crate::request::UserInfo;

/// Keys per storage read when listing.
const STORAGE_PAGE: i64 = 1000;

/// How many times an update without a client-given resourceVersion is retried on
/// conflicts before giving up (upstream retries patches 5 times).
const MAX_CONFLICT_RETRIES: usize = 16;

/// The per-request facts the store needs beside the object.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub user: UserInfo,
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// The request's User-Agent, which names the field manager of a write without
    /// `fieldManager` (as upstream's `managerOrUserAgent`).
    pub user_agent: Option<String>,
    /// How the write is recorded in `metadata.managedFields`.
    pub tracking: crate::fieldmanager::Tracking,
}

/// Options of `list` and `watch` (upstream `metav1.ListOptions`), parsed.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    pub label_selector: labels::Selector,
    pub field_selector: fields::Selector,
    pub limit: Option<i64>,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_watch_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout: Option<Duration>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
            WatchEventType::Bookmark => "BOOKMARK",
            WatchEventType::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: WatchEventType,
    pub object: Value,
}

/// `metav1.DeleteOptions`, parsed.
#[derive(Debug, Clone, Default)]
pub struct DeleteParams {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub propagation_policy: Option<String>,
    pub orphan_dependents: Option<bool>,
    /// `dryRun: ["All"]` in the DeleteOptions body (kubectl sends it there, not in the
    /// query).
    pub dry_run: bool,
}

enum DeletionAction {
    DeleteNow,
    /// Mark the object as terminating (deletionTimestamp, finalizers) and wait.
    Update(Value),
    /// Already terminating; nothing to change.
    Wait,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; this was its last state.
    Deleted(Value),
    /// Deletion is under way (finalizers or a grace period); this is the updated object.
    Pending(Value),
}

pub struct Store {
    strategy: StrategyRef,
    storage: Arc<dyn Storage>,
    cache: Option<Arc<crate::registry::WatchCache>>,
    hooks: Option<Arc<dyn StoreHooks>>,
    /// `<etcd-prefix>/<storage path>/`
    root: String,
}

/// Where an object is being written from, which decides the update preparation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateTarget {
    Main,
    Status,
    /// `namespaces/finalize`: everything but status comes from the request (upstream's
    /// finalize strategy), so `spec.finalizers` can change.
    Finalize,
}

impl UpdateTarget {
    /// The subresource admission sees.
    fn subresource(self) -> Option<String> {
        match self {
            UpdateTarget::Main => None,
            UpdateTarget::Status => Some("status".to_string()),
            UpdateTarget::Finalize => Some("finalize".to_string()),
        }
    }
}

impl Store {
    pub fn new(strategy: StrategyRef, storage: Arc<dyn Storage>, etcd_prefix: &str) -> Self {
        let root = format!(
            "{}/{}/",
            etcd_prefix.trim_end_matches('/'),
            strategy.info().storage_path
        );
        Store {
            strategy,
            storage,
            cache: None,
            hooks: None,
            root,
        }
    }

    pub fn with_cache(mut self, cache: Option<Arc<crate::registry::WatchCache>>) -> Self {
        self.cache = cache;
        self
    }

    pub fn with_hooks(mut self, hooks: Option<Arc<dyn StoreHooks>>) -> Self {
        self.hooks = hooks;
        self
    }

    pub fn info(&self) -> &ResourceInfo {
        self.strategy.info()
    }

    pub fn strategy(&self) -> &dyn Strategy {
        self.strategy.as_ref()
    }

    fn resource(&self) -> GroupResource {
        self.info().group_resource()
    }

    pub fn key(&self, namespace: &str, name: &str) -> String {
        if self.info().namespaced {
            format!("{}{namespace}/{name}", self.root)
        } else {
            format!("{}{name}", self.root)
        }
    }

    /// The key prefix of a list: the resource root, or one namespace of it.
    pub fn prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.info().namespaced && !ns.is_empty() => format!("{}{ns}/", self.root),
            _ => self.root.clone(),
        }
    }

    fn decode_stored(&self, kv: &KeyValue) -> Result<Value, StatusError> {
        let obj: Value = serde_json::from_slice(&kv.value).map_err(|e| {
            StatusError::internal(format!("decoding stored object {}: {e}", kv.key))
        })?;
        let mut obj = self.strategy.decode_storage_version(obj);
        object::set_meta(&mut obj, "resourceVersion", kv.mod_revision.to_string());
        Ok(obj)
    }

    fn encode_for_storage(&self, obj: &Value) -> Result<Bytes, StatusError> {
        let obj = self.strategy.encode_storage_version(Cow::Borrowed(obj));
        // The resourceVersion is the revision, not part of the stored object. Without one
        // (every create) the object is written as it is, without a copy.
        let stored_as_is =
            object::metadata(&obj).is_some_and(|m| !m.contains_key("resourceVersion"));
        let bytes = if stored_as_is {
            serde_json::to_vec(&*obj)
        } else {
            let mut obj = obj.into_owned();
            object::remove_meta(&mut obj, "resourceVersion");
            serde_json::to_vec(&obj)
        };
        bytes.map(Bytes::from).map_err(StatusError::internal)
    }

    fn storage_error(&self, e: StorageError, name: &str) -> StatusError {
        match e {
            StorageError::NotFound { .. } => StatusError::not_found(&self.resource(), name),
            StorageError::AlreadyExists { .. } => {
                StatusError::already_exists(&self.resource(), name)
            }
            StorageError::Conflict { .. } => StatusError::object_modified(&self.resource(), name),
            StorageError::Compacted {
                requested,
                compacted,
            } => StatusError::resource_expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            StorageError::FutureRevision { requested, current } => StatusError::timeout(
                format!(
                    "Too large resource version: {requested}, current resource version: {current}"
                ),
                1,
            ),
            StorageError::Unavailable(msg) => StatusError::service_unavailable(msg),
            StorageError::Internal(msg) => StatusError::internal(msg),
        }
    }

    pub async fn get(&self, namespace: &str, name: &str) -> Result<Value, StatusError> {
        match self.storage.get(&self.key(namespace, name)).await {
            Ok(Some(kv)) => self.decode_stored(&kv),
            Ok(None) => Err(StatusError::not_found(&self.resource(), name)),
            Err(e) => Err(self.storage_error(e, name)),
        }
    }

    /// A read for lookups on hot paths (admission): from the watch cache when there is
    /// one, possibly a moment stale as upstream's informer-backed lookups are; a miss is
    /// checked against storage, so an object created a moment ago is still found.
    pub async fn get_cached(&self, namespace: &str, name: &str) -> Result<Value, StatusError> {
        let kv = self.get_cached_raw(namespace, name).await?;
        self.decode_stored(&kv)
    }

    /// [`Store::get_cached`] without decoding: the stored bytes (storage version, no
    /// resourceVersion inside), for lookups that read only a field or two.
    pub async fn get_cached_raw(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<KeyValue, StatusError> {
        if let Some(cache) = &self.cache {
            let key = self.key(namespace, name);
            if let Ok((kvs, _)) = cache.list_from_cache(&key).await {
                if let Some(kv) = kvs.into_iter().find(|kv| kv.key == key) {
                    return Ok(kv);
                }
            }
        }
        self.get_kv(namespace, name)
            .await?
            .ok_or_else(|| StatusError::not_found(&self.resource(), name))
    }

    /// A list for lookups on hot paths: served from the watch cache when there is one
    /// (upstream's `resourceVersion=0`), else a consistent read.
    pub async fn list_cached(&self, namespace: Option<&str>) -> Result<Vec<Value>, StatusError> {
        let params = ListParams {
            resource_version: self.cache.as_ref().map(|_| "0".to_string()),
            ..Default::default()
        };
        Ok(self.list(namespace, &params).await?.items)
    }

    async fn get_kv(&self, namespace: &str, name: &str) -> Result<Option<KeyValue>, StatusError> {
        self.storage
            .get(&self.key(namespace, name))
            .await
            .map_err(|e| self.storage_error(e, name))
    }

    /// Whether `obj` passes the label and field selectors of `params`.
    pub fn matches(&self, obj: &Value, params: &ListParams) -> bool {
        if !params.label_selector.is_empty() && !params.label_selector.matches(&object::labels(obj))
        {
            return false;
        }
        if params.field_selector.is_empty() {
            return true;
        }
        params
            .field_selector
            .matches(&|field: &str| self.field_value(obj, field))
    }

    fn field_value(&self, obj: &Value, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(object::name(obj).to_string()),
            "metadata.namespace" if self.info().namespaced => {
                Some(object::namespace(obj).to_string())
            }
            _ => self
                .strategy
                .selectable_fields()
                .iter()
                .find(|f| f.name == field)
                .map(|f| f.value(obj)),
        }
    }

    /// Reject field selectors on fields the resource does not index, with upstream's
    /// message.
    pub fn check_field_selector(&self, selector: &fields::Selector) -> Result<(), StatusError> {
        for field in selector.fields() {
            let known = field == "metadata.name"
                || (field == "metadata.namespace" && self.info().namespaced)
                || self
                    .strategy
                    .selectable_fields()
                    .iter()
                    .any(|f| f.name == field);
            if !known {
                return Err(StatusError::bad_request(fields::field_label_not_supported(
                    field,
                )));
            }
        }
        Ok(())
    }

    pub async fn list(
        &self,
        namespace: Option<&str>,
        params: &ListParams,
    ) -> Result<ListPage, StatusError> {
        let prefix = self.prefix(namespace);
        if let Some(page) = self.list_from_cache(&prefix, params).await? {
            return Ok(page);
        }
        let (mut start_key, mut revision) = (None, parse_list_revision(params)?);
        if let Some(token) = params.continue_token.as_deref().filter(|t| !t.is_empty()) {
            let (rev, start) = decode_continue(token, &prefix)?;
            revision = Some(rev);
            start_key = Some(start);
        }
        let limit = params.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut read_revision;
        let (mut more, mut remaining);
        let mut last_key: Option<String> = None;
        loop {
            // Storage is read in bounded pages (all at one revision), so that a large
            // list never needs one huge etcd response.
            let opts = ListOptions {
                revision,
                limit: Some(limit.map_or(STORAGE_PAGE, |l| l.min(STORAGE_PAGE))),
                start_key: start_key.clone(),
            };
            let page = self
                .storage
                .list(&prefix, &opts)
                .await
                .map_err(|e| match e {
                    StorageError::Compacted { .. } if params.continue_token.is_some() => {
                        continue_expired()
                    }
                    e => self.storage_error(e, ""),
                })?;
            read_revision = page.revision;
            // Later pages of the same list must read the same snapshot.
            revision = Some(page.revision);
            more = page.more;
            remaining = page.remaining;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let obj = self.decode_stored(kv)?;
                if self.matches(&obj, params) {
                    items.push(obj);
                    if limit.is_some_and(|l| items.len() as i64 >= l) {
                        break;
                    }
                }
            }
            let filled = limit.is_some_and(|l| items.len() as i64 >= l);
            let stopped_early = page
                .items
                .last()
                .map(|kv| Some(&kv.key) != last_key.as_ref())
                .unwrap_or(false);
            if filled {
                if stopped_early {
                    more = true;
                    remaining = 0;
                }
                break;
            }
            if !page.more {
                break;
            }
            start_key = last_key.as_ref().map(|k| format!("{k}\u{0}"));
        }
        let continue_token = if more && limit.is_some() {
            last_key.map(|k| encode_continue(read_revision, &k[prefix.len()..]))
        } else {
            None
        };
        // Upstream reports remainingItemCount only when no selector filtered the page.
        let exact = params.label_selector.is_empty() && params.field_selector.is_empty();
        Ok(ListPage {
            items,
            resource_version: read_revision,
            continue_token,
            remaining: (more && exact && remaining > 0).then_some(remaining),
        })
    }

    /// Serve a list from the watch cache when the request allows any state at least as
    /// new as a given resourceVersion (upstream: `resourceVersion` set, not `Exact`, no
    /// continue token). `limit` is ignored there, as upstream's cache ignored it.
    async fn list_from_cache(
        &self,
        prefix: &str,
        params: &ListParams,
    ) -> Result<Option<ListPage>, StatusError> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let Some(rv) = params.resource_version.as_deref() else {
            return Ok(None);
        };
        if params.continue_token.is_some()
            || params.resource_version_match.as_deref() == Some("Exact")
        {
            return Ok(None);
        }
        let min: Revision = rv.parse().map_err(|_| invalid_rv(rv))?;
        if min > 0 {
            cache
                .wait_for_revision(prefix, min)
                .await
                .map_err(|e| self.storage_error(e, ""))?;
        }
        let (kvs, revision) = cache
            .list_from_cache(prefix)
            .await
            .map_err(|e| self.storage_error(e, ""))?;
        let mut items = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            let obj = self.decode_stored(kv)?;
            if self.matches(&obj, params) {
                items.push(obj);
            }
        }
        Ok(Some(ListPage {
            items,
            resource_version: revision,
            continue_token: None,
            remaining: None,
        }))
    }

    pub async fn create(
        &self,
        namespace: &str,
        obj: Value,
        ctx: &RequestContext,
        admission: &Admission,
    ) -> Result<Value, StatusError> {
        let mut obj = self.strategy.decode(obj)?;
        if !object::resource_version(&obj).is_empty() {
            return Err(StatusError::bad_request(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        let mut generated = false;
        if object::name(&obj).is_empty() {
            if let Some(base) = object::meta_str(&obj, "generateName").filter(|b| !b.is_empty()) {
                let name = validation::simple_name_generator(base);
                object::set_meta(&mut obj, "name", name);
                generated = true;
            }
        }
        if self.info().namespaced {
            object::set_meta(&mut obj, "namespace", namespace);
        } else {
            object::remove_meta(&mut obj, "namespace");
        }
        // managedFields describe the request's object, before admission changes it.
        let tracked = self.begin_tracking(None, &obj, ctx, None);
        let mut attrs = Attributes::new(
            Operation::Create,
            self.info(),
            namespace,
            object::name(&obj),
            ctx,
        );
        attrs.object = Some(obj);
        admission.admit(&mut attrs).await?;
        let mut obj = attrs.object.take().unwrap_or(Value::Null);

        self.prepare_metadata_for_create(&mut obj);
        self.strategy.prepare_for_create_by(&mut obj, &ctx.user);
        if let Some(tracked) = tracked {
            tracked.finish(None, &mut obj);
        }
        let name = object::name(&obj).to_string();
        let mut errors = self.validate_metadata(&obj);
        errors.extend(self.strategy.validate(&obj));
        if !errors.is_empty() {
            return Err(StatusError::invalid(
                &self.info().group_kind(),
                &name,
                &errors,
            ));
        }
        if let Some(hooks) = &self.hooks {
            hooks.before_create(&mut obj, ctx.dry_run).await?;
        }
        // A copy only for the hooks' clean-up after a failed write.
        let kept = self.hooks.as_ref().map(|_| obj.clone());
        let result = self
            .finish_create(namespace, &name, obj, generated, ctx, admission, attrs)
            .await;
        if let (Some(hooks), Err(_), Some(obj)) = (&self.hooks, &result, &kept) {
            hooks.create_failed(obj).await;
        }
        result
    }

    /// Validating admission and the write; a dry run returns the object unwritten.
    #[allow(clippy::too_many_arguments)]
    async fn finish_create(
        &self,
        namespace: &str,
        name: &str,
        obj: Value,
        generated: bool,
        ctx: &RequestContext,
        admission: &Admission,
        mut attrs: Attributes,
    ) -> Result<Value, StatusError> {
        attrs.object = Some(obj);
        admission.validate(&attrs).await?;
        let obj = attrs.object.take().unwrap_or(Value::Null);
        if ctx.dry_run {
            return Ok(obj);
        }
        let key = self.key(namespace, name);
        match self
            .storage
            .create(&key, self.encode_for_storage(&obj)?, self.info().ttl)
            .await
        {
            Ok(kv) => Ok(written(obj, &kv)),
            Err(StorageError::AlreadyExists { .. }) if generated => {
                Err(StatusError::generate_name_conflict(&self.resource(), name))
            }
            Err(e) => Err(self.storage_error(e, name)),
        }
    }

    /// Events expire, as upstream's `--event-ttl` (1 h) does.
    fn prepare_metadata_for_create(&self, obj: &mut Value) {
        let meta = object::metadata_mut(obj);
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert(
            "creationTimestamp".into(),
            Value::String(object::now_rfc3339()),
        );
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.remove("selfLink");
        if self.info().tracks_generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
    }

    fn validate_metadata(&self, obj: &Value) -> ErrorList {
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta = match obj
            .get("metadata")
            .filter(|m| m.is_object())
            .map(serde::Deserialize::deserialize)
        {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                return vec![FieldError::invalid(
                    &Path::new("metadata"),
                    "",
                    e.to_string(),
                )]
            }
            None => {
                return vec![FieldError::required(
                    &Path::new("metadata").child("name"),
                    "",
                )]
            }
        };
        validation::validate_object_meta(
            &meta,
            self.info().namespaced,
            self.info().name_validator,
            &Path::new("metadata"),
        )
    }

    /// Read-modify-write with retries, as upstream's GuaranteedUpdate: `update` maps the
    /// current object (or `None` if missing and `allow_create`) to the desired one. When
    /// the desired object names a resourceVersion, a mismatch is a Conflict instead of a
    /// retry.
    #[allow(clippy::too_many_arguments)]
    pub async fn update_with<F>(
        &self,
        namespace: &str,
        name: &str,
        target: UpdateTarget,
        allow_create: bool,
        ctx: &RequestContext,
        admission: &Admission,
        mut update: F,
    ) -> Result<(Value, bool), StatusError>
    where
        F: FnMut(Option<&Value>) -> Result<Value, StatusError> + Send,
    {
        let key = self.key(namespace, name);
        let mut current = self.get_kv(namespace, name).await?;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(kv) = current.clone() else {
                if allow_create {
                    let obj = update(None)?;
                    if !object::resource_version(&obj).is_empty() {
                        return Err(StatusError::not_found(&self.resource(), name));
                    }
                    return self
                        .create(namespace, obj, ctx, admission)
                        .await
                        .map(|o| (o, true));
                }
                return Err(StatusError::not_found(&self.resource(), name));
            };
            let old = self.decode_stored(&kv)?;
            let new = update(Some(&old))?;
            let requested_rv = object::resource_version(&new).to_string();
            if !requested_rv.is_empty() && requested_rv != kv.mod_revision.to_string() {
                return Err(StatusError::object_modified(&self.resource(), name));
            }
            if requested_rv.is_empty()
                && !self.strategy.allow_unconditional_update()
                && target == UpdateTarget::Main
            {
                let errors = vec![FieldError::invalid(
                    &Path::new("metadata").child("resourceVersion"),
                    "",
                    "must be specified for an update",
                )];
                return Err(StatusError::invalid(
                    &self.info().group_kind(),
                    name,
                    &errors,
                ));
            }
            let mut new = new;
            if requested_rv.is_empty() {
                // An unconditional update applies to the version just read, as upstream's
                // (metadata validation requires a resourceVersion).
                object::set_meta(&mut new, "resourceVersion", kv.mod_revision.to_string());
            }
            let mut new = self
                .prepare_update(new, &old, target, namespace, name, ctx, admission)
                .await?;
            if strip_rv(&new) == strip_rv(&old) {
                return Ok((old, false));
            }
            if let Some(hooks) = &self.hooks {
                hooks.before_update(&mut new, &old, ctx.dry_run).await?;
            }
            if ctx.dry_run {
                return Ok((new, false));
            }
            // An object being deleted whose last finalizer was just removed is deleted now.
            if object::deletion_timestamp(&new).is_some()
                && object::finalizers(&new).is_empty()
                && !self.strategy.has_pending_finalizers(&new)
            {
                let grace = object::metadata(&new)
                    .and_then(|m| m.get("deletionGracePeriodSeconds"))
                    .and_then(Value::as_i64);
                if grace.unwrap_or(0) == 0 {
                    let result = self.storage.delete(&key, Some(kv.mod_revision)).await;
                    self.update_done(&new, &old, false).await;
                    match result {
                        Ok(deleted) => {
                            let mut obj = new;
                            object::set_meta(
                                &mut obj,
                                "resourceVersion",
                                deleted.mod_revision.to_string(),
                            );
                            if let Some(hooks) = &self.hooks {
                                hooks.after_delete(&old).await;
                            }
                            return Ok((obj, false));
                        }
                        Err(StorageError::Conflict { current: c, .. }) => {
                            current = c;
                            continue;
                        }
                        Err(e) => return Err(self.storage_error(e, name)),
                    }
                }
            }
            let result = self
                .storage
                .update(
                    &key,
                    self.encode_for_storage(&new)?,
                    kv.mod_revision,
                    self.info().ttl,
                )
                .await;
            self.update_done(&new, &old, result.is_ok()).await;
            match result {
                Ok(kv) => return Ok((written(new, &kv), false)),
                Err(StorageError::Conflict { current: c, .. }) => {
                    if !requested_rv.is_empty() {
                        return Err(StatusError::object_modified(&self.resource(), name));
                    }
                    current = c;
                }
                Err(e) => return Err(self.storage_error(e, name)),
            }
        }
        Err(StatusError::object_modified(&self.resource(), name))
    }

    /// Read-modify-write of the stored object without the strategy's update preparation,
    /// validation or admission, as upstream's `GuaranteedUpdate` does for subresources
    /// that own a narrow part of an object (`pods/binding`). `update` maps the current
    /// object to the new one; conflicts are retried.
    pub async fn guaranteed_update<F>(
        &self,
        namespace: &str,
        name: &str,
        dry_run: bool,
        mut update: F,
    ) -> Result<Value, StatusError>
    where
        F: FnMut(Value) -> Result<Value, StatusError> + Send,
    {
        let key = self.key(namespace, name);
        let mut current = self.get_kv(namespace, name).await?;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(kv) = current.clone() else {
                return Err(StatusError::not_found(&self.resource(), name));
            };
            let new = update(self.decode_stored(&kv)?)?;
            if dry_run {
                return Ok(new);
            }
            let result = self
                .storage
                .update(
                    &key,
                    self.encode_for_storage(&new)?,
                    kv.mod_revision,
                    self.info().ttl,
                )
                .await;
            match result {
                Ok(kv) => return self.decode_stored(&kv),
                Err(StorageError::Conflict { current: c, .. }) => current = c,
                Err(e) => return Err(self.storage_error(e, name)),
            }
        }
        Err(StatusError::object_modified(&self.resource(), name))
    }

    async fn update_done(&self, new: &Value, old: &Value, stored: bool) {
        if let Some(hooks) = &self.hooks {
            hooks.update_done(new, old, stored).await;
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn prepare_update(
        &self,
        new: Value,
        old: &Value,
        target: UpdateTarget,
        namespace: &str,
        name: &str,
        ctx: &RequestContext,
        admission: &Admission,
    ) -> Result<Value, StatusError> {
        let mut new = self.strategy.decode(new)?;
        if object::name(&new) != name {
            return Err(StatusError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object::name(&new)
            )));
        }
        if self.info().namespaced {
            object::set_meta(&mut new, "namespace", namespace);
        }
        let tracked = self.begin_tracking(Some(old), &new, ctx, target.subresource());
        let mut attrs = Attributes::new(Operation::Update, self.info(), namespace, name, ctx);
        attrs.subresource = target.subresource();
        attrs.old_object = Some(old.clone());
        attrs.object = Some(new);
        admission.admit(&mut attrs).await?;
        let mut new = attrs.object.take().unwrap_or(Value::Null);

        match target {
            UpdateTarget::Main => self.strategy.prepare_for_update(&mut new, old),
            UpdateTarget::Status => self.strategy.prepare_for_status_update(&mut new, old),
            UpdateTarget::Finalize => {
                let status = old.get("status").cloned();
                if let Some(map) = new.as_object_mut() {
                    match status {
                        Some(status) => map.insert("status".to_string(), status),
                        None => map.remove("status"),
                    };
                }
            }
        }
        self.carry_metadata(&mut new, old, target);
        if let Some(tracked) = tracked {
            tracked.finish(Some(old), &mut new);
        }
        let mut errors = ErrorList::new();
        errors.extend(validation::validate_object_meta_update_json(
            object::metadata(&new),
            object::metadata(old),
            &Path::new("metadata"),
        ));
        errors.extend(self.strategy.validate_update(&new, old));
        if !errors.is_empty() {
            return Err(StatusError::invalid(
                &self.info().group_kind(),
                name,
                &errors,
            ));
        }
        attrs.object = Some(new);
        admission.validate(&attrs).await?;
        Ok(attrs.object.take().unwrap_or(Value::Null))
    }

    /// Start recording a write in managedFields (see `crate::fieldmanager`); `None` when
    /// server-side apply already did, or the write names no manager (internal writes).
    fn begin_tracking(
        &self,
        old: Option<&Value>,
        new: &Value,
        ctx: &RequestContext,
        subresource: Option<String>,
    ) -> Option<fieldmanager::PendingUpdate> {
        let subresource = match ctx.tracking {
            fieldmanager::Tracking::Applied => return None,
            fieldmanager::Tracking::Subresource(s) => s.to_string(),
            fieldmanager::Tracking::Update => subresource.unwrap_or_default(),
        };
        let manager =
            fieldmanager::manager_name(ctx.field_manager.as_deref(), ctx.user_agent.as_deref())?;
        fieldmanager::begin_update(self.info(), old, new, &manager, &subresource)
    }

    /// Metadata the system owns comes from the stored object; generation moves on spec
    /// changes.
    fn carry_metadata(&self, new: &mut Value, old: &Value, target: UpdateTarget) {
        let old_meta = object::metadata(old).cloned().unwrap_or_default();
        let spec_changed = !object::spec_equal(new, old);
        let meta = object::metadata_mut(new);
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
        ] {
            match old_meta.get(field) {
                Some(v) => meta.insert(field.to_string(), v.clone()),
                None => meta.remove(field),
            };
        }
        meta.remove("selfLink");
        if self.info().tracks_generation {
            let generation = old_meta
                .get("generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let generation = if spec_changed && target == UpdateTarget::Main {
                generation + 1
            } else {
                generation
            };
            meta.insert("generation".into(), json!(generation));
        } else {
            meta.remove("generation");
        }
    }

    pub async fn delete(
        &self,
        namespace: &str,
        name: &str,
        params: &DeleteParams,
        ctx: &RequestContext,
        admission: &Admission,
    ) -> Result<DeleteOutcome, StatusError> {
        let key = self.key(namespace, name);
        let mut current = self.get_kv(namespace, name).await?;
        for _ in 0..MAX_CONFLICT_RETRIES {
            let Some(kv) = current.clone() else {
                return Err(StatusError::not_found(&self.resource(), name));
            };
            let obj = self.decode_stored(&kv)?;
            self.check_delete_preconditions(&obj, name, params)?;
            let mut attrs = Attributes::new(Operation::Delete, self.info(), namespace, name, ctx);
            attrs.old_object = Some(obj.clone());
            admission.admit(&mut attrs).await?;
            admission.validate(&attrs).await?;

            match self.deletion_action(&obj, params) {
                DeletionAction::Wait => return Ok(DeleteOutcome::Pending(obj)),
                DeletionAction::Update(updated) if ctx.dry_run => {
                    return Ok(DeleteOutcome::Pending(updated))
                }
                DeletionAction::Update(updated) => {
                    match self
                        .storage
                        .update(
                            &key,
                            self.encode_for_storage(&updated)?,
                            kv.mod_revision,
                            None,
                        )
                        .await
                    {
                        Ok(kv) => return Ok(DeleteOutcome::Pending(written(updated, &kv))),
                        Err(StorageError::Conflict { current: c, .. }) => {
                            current = c;
                            continue;
                        }
                        Err(e) => return Err(self.storage_error(e, name)),
                    }
                }
                DeletionAction::DeleteNow if ctx.dry_run => return Ok(DeleteOutcome::Deleted(obj)),
                DeletionAction::DeleteNow => {}
            }
            match self.storage.delete(&key, Some(kv.mod_revision)).await {
                Ok(deleted) => {
                    let obj = self.decode_stored(&deleted)?;
                    if let Some(hooks) = &self.hooks {
                        hooks.after_delete(&obj).await;
                    }
                    return Ok(DeleteOutcome::Deleted(obj));
                }
                Err(StorageError::Conflict { current: c, .. }) => current = c,
                Err(StorageError::NotFound { .. }) => {
                    return Err(StatusError::not_found(&self.resource(), name))
                }
                Err(e) => return Err(self.storage_error(e, name)),
            }
        }
        Err(StatusError::object_modified(&self.resource(), name))
    }

    fn check_delete_preconditions(
        &self,
        obj: &Value,
        name: &str,
        params: &DeleteParams,
    ) -> Result<(), StatusError> {
        if let Some(uid) = params.precondition_uid.as_deref() {
            if uid != object::uid(obj) {
                return Err(StatusError::conflict(
                    &self.resource(),
                    name,
                    format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        object::uid(obj)
                    ),
                ));
            }
        }
        if let Some(rv) = params.precondition_resource_version.as_deref() {
            if rv != object::resource_version(obj) {
                return Err(StatusError::conflict(
                    &self.resource(),
                    name,
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        object::resource_version(obj)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether a delete removes the object now, or marks it and waits for its finalizers
    /// or grace period (upstream's `BeforeDelete`).
    fn deletion_action(&self, obj: &Value, params: &DeleteParams) -> DeletionAction {
        let old_finalizers = object::finalizers(obj);
        let mut finalizers = old_finalizers.clone();
        let policy = params
            .propagation_policy
            .as_deref()
            .or(match params.orphan_dependents {
                Some(true) => Some("Orphan"),
                Some(false) => Some("Background"),
                None => None,
            });
        match policy {
            Some("Foreground") | Some("Orphan") => {
                let wanted = if policy == Some("Foreground") {
                    "foregroundDeletion"
                } else {
                    "orphan"
                };
                // The two propagation finalizers exclude each other.
                finalizers.retain(|x| x != "foregroundDeletion" && x != "orphan");
                finalizers.push(wanted.to_string());
            }
            Some("Background") => finalizers.retain(|x| x != "foregroundDeletion" && x != "orphan"),
            _ => {}
        }
        let grace = self.strategy.grace_period(obj, params.grace_period_seconds);
        let held = !finalizers.is_empty() || self.strategy.has_pending_finalizers(obj);
        if !held && grace == 0 {
            return DeletionAction::DeleteNow;
        }
        let current_grace = object::metadata(obj)
            .and_then(|m| m.get("deletionGracePeriodSeconds"))
            .and_then(Value::as_i64);
        let mut updated = obj.clone();
        let mut changed = false;
        if finalizers != old_finalizers {
            object::set_meta(&mut updated, "finalizers", json!(finalizers));
            changed = true;
        }
        // A terminating object only ever gets its grace period shortened.
        let set_deadline = match (object::deletion_timestamp(obj), current_grace) {
            (None, _) => true,
            (Some(_), Some(current)) => grace < current,
            (Some(_), None) => false,
        };
        if set_deadline {
            self.strategy.prepare_for_deletion(&mut updated);
            let meta = object::metadata_mut(&mut updated);
            let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
            meta.insert(
                "deletionTimestamp".into(),
                Value::String(deadline.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
            changed = true;
        }
        if changed {
            DeletionAction::Update(updated)
        } else {
            DeletionAction::Wait
        }
    }

    /// Delete every object matching `params` in `namespace`.
    pub async fn delete_collection(
        &self,
        namespace: Option<&str>,
        list: &ListParams,
        params: &DeleteParams,
        ctx: &RequestContext,
        admission: &Admission,
    ) -> Result<Vec<Value>, StatusError> {
        let page = self
            .list(
                namespace,
                &ListParams {
                    limit: None,
                    continue_token: None,
                    ..list.clone()
                },
            )
            .await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            match self
                .delete(
                    object::namespace(&obj),
                    object::name(&obj),
                    params,
                    ctx,
                    admission,
                )
                .await
            {
                Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => deleted.push(o),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Changes as upstream's watch delivers them: optionally the current state first (as
    /// ADDED events), then every change after the starting resourceVersion, filtered by
    /// the selectors (an object leaving the selection is seen as DELETED, one entering it
    /// as ADDED).
    pub async fn watch(
        self: &Arc<Self>,
        namespace: Option<&str>,
        params: ListParams,
    ) -> Result<impl Stream<Item = WatchEvent> + Send + 'static, StatusError> {
        let prefix = self.prefix(namespace);
        let rv = params.resource_version.clone().unwrap_or_default();
        let send_initial = params
            .send_initial_events
            .unwrap_or(rv.is_empty() || rv == "0");
        let mut initial = Vec::new();
        let start: Revision = if send_initial {
            let page = self
                .list(
                    namespace,
                    // "0" or a revision: any state at least that new, from the cache;
                    // unset: a consistent read.
                    &ListParams {
                        limit: None,
                        continue_token: None,
                        resource_version: (!rv.is_empty()).then(|| rv.clone()),
                        resource_version_match: None,
                        ..params.clone()
                    },
                )
                .await?;
            initial = page.items;
            page.resource_version
        } else {
            rv.parse::<Revision>().map_err(|_| invalid_rv(&rv))?
        };
        let initial_end_bookmark =
            params.send_initial_events == Some(true) && params.allow_watch_bookmarks;
        let stream = match self.storage.watch(&prefix, start).await {
            Ok(s) => s,
            Err(StorageError::Compacted {
                requested,
                compacted,
            }) => {
                let status = StatusError::resource_expired(format!(
                    "too old resource version: {requested} ({compacted})"
                ));
                let event = WatchEvent {
                    kind: WatchEventType::Error,
                    object: status_json(&status),
                };
                return Ok(futures::stream::iter(vec![event]).boxed());
            }
            Err(e) => return Err(self.storage_error(e, "")),
        };
        let store = Arc::clone(self);
        let info = self.info().clone();
        let mut head: Vec<WatchEvent> = initial
            .into_iter()
            .map(|object| WatchEvent {
                kind: WatchEventType::Added,
                object,
            })
            .collect();
        if initial_end_bookmark {
            head.push(WatchEvent {
                kind: WatchEventType::Bookmark,
                object: bookmark(&info, start, true),
            });
        }
        let bookmarks = params.allow_watch_bookmarks;
        let mut last_bookmark = Instant::now();
        let live = stream.filter_map(move |item| {
            let out = match item {
                Ok(WatchItem::Event(ev)) => store.translate_event(&ev, &params),
                Ok(WatchItem::Progress(rev)) => {
                    if bookmarks && last_bookmark.elapsed() >= BOOKMARK_INTERVAL {
                        last_bookmark = Instant::now();
                        Some(WatchEvent {
                            kind: WatchEventType::Bookmark,
                            object: bookmark(&info, rev, false),
                        })
                    } else {
                        None
                    }
                }
                Err(e) => Some(WatchEvent {
                    kind: WatchEventType::Error,
                    object: status_json(&store.storage_error(e, "")),
                }),
            };
            futures::future::ready(out)
        });
        Ok(futures::stream::iter(head).chain(live).boxed())
    }

    fn translate_event(&self, ev: &storage::Event, params: &ListParams) -> Option<WatchEvent> {
        let cur = self.decode_stored(&ev.kv).ok()?;
        let cur_matches = self.matches(&cur, params);
        let prev_matches = ev
            .prev
            .as_ref()
            .and_then(|p| self.decode_stored(p).ok())
            .map(|p| self.matches(&p, params))
            .unwrap_or(false);
        let kind = match ev.kind {
            EventKind::Created if cur_matches => WatchEventType::Added,
            EventKind::Updated if cur_matches && prev_matches => WatchEventType::Modified,
            EventKind::Updated if cur_matches => WatchEventType::Added,
            EventKind::Updated if prev_matches => WatchEventType::Deleted,
            EventKind::Deleted if cur_matches => WatchEventType::Deleted,
            _ => return None,
        };
        Some(WatchEvent { kind, object: cur })
    }

    pub async fn current_revision(&self) -> Result<Revision, StatusError> {
        self.storage
            .current_revision()
            .await
            .map_err(|e| self.storage_error(e, ""))
    }
}

/// How often an idle watch with bookmarks enabled gets one (upstream: about a minute).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);

fn bookmark(info: &ResourceInfo, rev: Revision, initial_events_end: bool) -> Value {
    let mut meta = Map::new();
    meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    if initial_events_end {
        meta.insert(
            "annotations".into(),
            json!({"k8s.io/initial-events-end": "true"}),
        );
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": meta})
}

pub fn status_json(e: &StatusError) -> Value {
    let mut v = serde_json::to_value(e.to_status()).unwrap_or(Value::Null);
    if let Some(map) = v.as_object_mut() {
        map.insert("kind".into(), Value::String("Status".into()));
        map.insert("apiVersion".into(), Value::String("v1".into()));
    }
    v
}

/// The object just written, as a read would return it: what was sent, at the write's
/// revision (no need to parse the stored bytes back).
fn written(mut obj: Value, kv: &KeyValue) -> Value {
    object::set_meta(&mut obj, "resourceVersion", kv.mod_revision.to_string());
    obj
}

fn strip_rv(obj: &Value) -> Value {
    let mut obj = obj.clone();
    object::remove_meta(&mut obj, "resourceVersion");
    obj
}

fn invalid_rv(rv: &str) -> StatusError {
    StatusError::bad_request(format!("invalid resource version: {rv:?}"))
}

/// The revision a list reads at: `None` for the latest (resourceVersion unset, or "0"
/// which allows any, served here as the latest), or the exact one for
/// `resourceVersionMatch=Exact`.
fn parse_list_revision(params: &ListParams) -> Result<Option<Revision>, StatusError> {
    let rv = params.resource_version.as_deref().unwrap_or("");
    match params.resource_version_match.as_deref().unwrap_or("") {
        "" | "NotOlderThan" => {
            if !rv.is_empty() {
                rv.parse::<Revision>().map_err(|_| invalid_rv(rv))?;
            } else if params.resource_version_match.as_deref() == Some("NotOlderThan") {
                return Err(StatusError::bad_request(
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            Ok(None)
        }
        "Exact" => {
            let rev = rv.parse::<Revision>().map_err(|_| invalid_rv(rv))?;
            if rev == 0 {
                return Err(StatusError::bad_request("resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\""));
            }
            Ok(Some(rev))
        }
        other => Err(StatusError::bad_request(format!(
            "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
        ))),
    }
}

/// Upstream's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>"}`
/// where start is the key after the list prefix to resume from.
fn encode_continue(rev: Revision, last_key_suffix: &str) -> String {
    let token =
        json!({"v": "meta.k8s.io/v1", "rv": rev, "start": format!("{last_key_suffix}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), StatusError> {
    let bad = || StatusError::bad_request(format!("invalid continue token: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rev = v
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    // Keys are relative, so a token cannot reach outside the listed prefix.
    if start.contains("..") || start.starts_with('/') {
        return Err(bad());
    }
    Ok((rev, format!("{prefix}{start}")))
}

fn continue_expired() -> StatusError {
    StatusError::resource_expired(
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web-1");
        let (rev, start) = decode_continue(&t, "/registry/pods/").unwrap();
        assert_eq!(rev, 42);
        assert_eq!(start, "/registry/pods/default/web-1\u{0}");
        assert!(decode_continue("garbage", "/registry/pods/").is_err());
    }
}

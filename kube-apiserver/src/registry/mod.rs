//! The registry: one [`Strategy`] per resource (defaulting, validation, create/update
//! preparation, field selector fields, printed columns) and the generic [`store::Store`]
//! that applies a strategy to storage, as upstream's `registry/generic/registry.Store`.
//!
//! Resources live in one module per API group (`core`, `apps`, ...), each resource in its
//! own file with its tests beside it.

pub mod allocator;
pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;
pub mod networking;
pub mod policy;
pub mod rbac;
pub mod scheduling;
pub mod storage_api;
pub mod store;
pub mod table;
pub mod typed;

use std::borrow::Cow;
use std::sync::Arc;

use apimachinery::errors::{GroupKind, GroupResource};
use apimachinery::field::ErrorList;
use serde_json::Value;

use crate::registry::table::Column;

/// The subresources a resource serves besides the object itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subresource {
    /// `/status`: updates that touch only `.status`.
    Status,
    /// `/scale`: an `autoscaling/v1` Scale view of the replica count.
    Scale(ScaleInfo),
    /// `pods/binding`: the scheduler's binding of a pod to a node.
    Binding,
    /// `pods/eviction`: a PodDisruptionBudget-aware delete.
    Eviction,
    /// `namespaces/finalize`.
    Finalize,
    /// `certificatesigningrequests/approval`.
    Approval,
    /// `serviceaccounts/token`: the TokenRequest API.
    Token,
    /// Streaming and proxy subresources served by the kubelet behind the API server.
    Connect(&'static str),
}

impl Subresource {
    pub fn name(&self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale(_) => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Finalize => "finalize",
            Subresource::Approval => "approval",
            Subresource::Token => "token",
            Subresource::Connect(name) => name,
        }
    }
}

/// Where the replica count and selector of a scalable resource live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleInfo {
    /// Path of the desired replica count (`spec.replicas`).
    pub spec_replicas: &'static str,
    /// Path of the observed replica count (`status.replicas`).
    pub status_replicas: &'static str,
    /// Path of the selector: a `LabelSelector` (`spec.selector` of apps/v1) or, when
    /// `selector_is_map`, a plain label map (ReplicationController).
    pub selector: &'static str,
    pub selector_is_map: bool,
}

/// Static description of one served resource.
#[derive(Debug, Clone)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<&'static str>,
    pub categories: Vec<&'static str>,
    /// The key segment under `--etcd-prefix` (`pods`, `services/specs`, `minions`).
    pub storage_path: &'static str,
    pub subresources: Vec<Subresource>,
    /// Whether `metadata.generation` is set on create and bumped on spec changes.
    pub tracks_generation: bool,
    /// How names are validated (upstream's per-resource `ValidateNameFunc`).
    pub name_validator: apimachinery::validation::NameValidator,
    /// Whether a DELETE answers with the deleted object rather than a Success Status
    /// (upstream's `ReturnDeletedObject`).
    pub returns_deleted_object: bool,
    /// Objects expire this long after their last write (upstream's `--event-ttl`).
    pub ttl: Option<std::time::Duration>,
    /// Verbs advertised in discovery.
    pub verbs: Vec<&'static str>,
    /// Upstream's OpenAPI definition name of the kind (`io.k8s.api.core.v1.Pod`).
    pub definition: String,
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceInfo {
    /// Description of a k8s-openapi type, with upstream's plural and storage path.
    pub fn of<K>() -> Self
    where
        K: k8s_openapi::Resource + schemars::JsonSchema,
    {
        let namespaced = std::any::type_name::<K::Scope>().ends_with("NamespaceResourceScope");
        ResourceInfo {
            group: K::GROUP,
            version: K::VERSION,
            kind: K::KIND,
            plural: K::URL_PATH_SEGMENT,
            singular: K::KIND.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            storage_path: K::URL_PATH_SEGMENT,
            subresources: Vec::new(),
            tracks_generation: false,
            name_validator: apimachinery::validation::NameValidator::Dns1123Subdomain,
            returns_deleted_object: false,
            ttl: None,
            verbs: ALL_VERBS.to_vec(),
            definition: K::schema_name().into_owned(),
        }
    }

    pub fn short_names(mut self, names: &[&'static str]) -> Self {
        self.short_names = names.to_vec();
        self
    }

    pub fn categories(mut self, categories: &[&'static str]) -> Self {
        self.categories = categories.to_vec();
        self
    }

    pub fn storage_path(mut self, path: &'static str) -> Self {
        self.storage_path = path;
        self
    }

    pub fn subresource(mut self, sub: Subresource) -> Self {
        self.subresources.push(sub);
        self
    }

    pub fn with_status(self) -> Self {
        self.subresource(Subresource::Status)
    }

    pub fn tracks_generation(mut self) -> Self {
        self.tracks_generation = true;
        self
    }

    pub fn name_validator(mut self, validator: apimachinery::validation::NameValidator) -> Self {
        self.name_validator = validator;
        self
    }

    pub fn returns_deleted_object(mut self) -> Self {
        self.returns_deleted_object = true;
        self
    }

    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    pub fn verbs(mut self, verbs: &[&'static str]) -> Self {
        self.verbs = verbs.to_vec();
        self
    }

    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(self.group, self.plural)
    }

    pub fn group_kind(&self) -> GroupKind {
        GroupKind::new(self.group, self.kind)
    }

    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name() == name)
    }

    pub fn scale(&self) -> Option<&ScaleInfo> {
        self.subresources.iter().find_map(|s| match s {
            Subresource::Scale(info) => Some(info),
            _ => None,
        })
    }

    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }
}

/// A field a field selector may name, read from a JSON path of the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectableField {
    pub name: &'static str,
    pub path: &'static str,
    /// The value when the field is absent (upstream prints Go zero values: `""`, `false`).
    pub default: &'static str,
}

impl SelectableField {
    pub const fn new(name: &'static str) -> Self {
        SelectableField {
            name,
            path: name,
            default: "",
        }
    }

    pub const fn with_default(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }

    pub const fn at(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// The field's value in `obj`, as upstream's field sets print it.
    pub fn value(&self, obj: &Value) -> String {
        match crate::object::path(obj, self.path) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            _ => self.default.to_string(),
        }
    }
}

/// What to do with a resource's objects, as upstream's `RESTCreateStrategy`,
/// `RESTUpdateStrategy`, `RESTDeleteStrategy` and `TableConvertor` together. Implemented
/// for typed resources through [`typed::TypedStrategy`].
pub trait Strategy: Send + Sync + 'static {
    fn info(&self) -> &ResourceInfo;

    /// Decode the wire form into the stored form: check types, drop what the type does
    /// not hold, and apply upstream's defaults. A type mismatch is a 400 BadRequest.
    fn decode(&self, obj: Value) -> Result<Value, apimachinery::StatusError>;

    /// Convert a stored object into this endpoint's version. Identity except for
    /// resources served in several versions over one storage version (autoscaling/v1
    /// HorizontalPodAutoscalers stored as v2, events.k8s.io Events stored as core Events).
    fn decode_storage_version(&self, obj: Value) -> Value {
        obj
    }

    /// Convert an object of this endpoint's version into the storage version. Borrowed in,
    /// borrowed out when there is nothing to convert, so that storing costs no copy.
    fn encode_storage_version<'a>(&self, obj: Cow<'a, Value>) -> Cow<'a, Value> {
        obj
    }

    /// Reset what a client may not set on create (e.g. status).
    fn prepare_for_create(&self, obj: &mut Value);

    /// [`Strategy::prepare_for_create`] with the requesting user, for resources that
    /// record who created them (a CertificateSigningRequest's `spec.username`).
    fn prepare_for_create_by(&self, obj: &mut Value, _user: &crate::request::UserInfo) {
        self.prepare_for_create(obj);
    }

    /// Carry over what a client may not change on update (e.g. status on the main
    /// resource).
    fn prepare_for_update(&self, new: &mut Value, old: &Value);

    /// The status subresource's update preparation: keep everything but status from old.
    fn prepare_for_status_update(&self, new: &mut Value, old: &Value);

    fn validate(&self, obj: &Value) -> ErrorList;

    fn validate_update(&self, new: &Value, old: &Value) -> ErrorList;

    /// Whether an update of a missing object creates it (upstream `AllowCreateOnUpdate`).
    fn allow_create_on_update(&self) -> bool;

    /// Whether updates without a resourceVersion are accepted.
    fn allow_unconditional_update(&self) -> bool;

    /// Field selector fields beyond `metadata.name` and `metadata.namespace`.
    fn selectable_fields(&self) -> &'static [SelectableField];

    /// Whether something besides `metadata.finalizers` still holds a terminating object
    /// (a namespace's `spec.finalizers`).
    fn has_pending_finalizers(&self, _obj: &Value) -> bool {
        false
    }

    /// Seconds a delete waits before the object goes (pods stopping on their node); 0
    /// deletes at once. `requested` is the DeleteOptions' gracePeriodSeconds.
    fn grace_period(&self, _obj: &Value, _requested: Option<i64>) -> i64 {
        0
    }

    /// Adjust an object that starts terminating (a namespace's phase).
    fn prepare_for_deletion(&self, _obj: &mut Value) {}

    /// Printed columns of `kubectl get`.
    fn columns(&self) -> &[Column];

    /// One table row's cells, in the order of [`Strategy::columns`].
    fn row(&self, obj: &Value) -> Vec<Value>;
}

pub type StrategyRef = Arc<dyn Strategy>;

/// Asynchronous steps around writes, for resources whose objects own something outside
/// themselves (service cluster IPs and node ports).
#[async_trait::async_trait]
pub trait StoreHooks: Send + Sync {
    /// Before a new object is validated and stored; may fill in allocated values.
    async fn before_create(
        &self,
        obj: &mut Value,
        dry_run: bool,
    ) -> Result<(), apimachinery::StatusError>;

    /// The create did not happen: give back what `before_create` took.
    async fn create_failed(&self, obj: &Value);

    /// Before an update is validated and stored.
    async fn before_update(
        &self,
        new: &mut Value,
        old: &Value,
        dry_run: bool,
    ) -> Result<(), apimachinery::StatusError>;

    /// The update did (`stored`) or did not happen: release what is no longer used.
    async fn update_done(&self, new: &Value, old: &Value, stored: bool);

    /// The object is gone.
    async fn after_delete(&self, obj: &Value);
}

/// A resource to serve: its strategy and optional write hooks.
pub struct Resource {
    pub strategy: StrategyRef,
    pub hooks: Option<Arc<dyn StoreHooks>>,
}

impl Resource {
    pub fn new(strategy: StrategyRef) -> Self {
        Resource {
            strategy,
            hooks: None,
        }
    }
}

/// What building the resources needs to know about the server.
pub struct BuildContext {
    pub storage: Arc<dyn storage::Storage>,
    pub etcd_prefix: String,
    pub service_cluster_ip_range: ipnet::IpNet,
    pub service_node_port_range: (u16, u16),
}

/// Every served resource's store, found by group, version and plural name.
pub struct Registry {
    stores: Vec<Arc<store::Store>>,
    index: std::collections::HashMap<(String, String, String), usize>,
}

/// The watch cache in front of storage: every resource's key range is cached.
pub type WatchCache = storage::cache::CachedStorage<Arc<dyn storage::Storage>>;

impl Registry {
    /// Stores over `storage`, with list-from-cache reads served by `cache` when given
    /// (`storage` should then be that cache too, so watches share its backend watch).
    pub fn new(
        resources: Vec<Resource>,
        storage: Arc<dyn storage::Storage>,
        cache: Option<Arc<WatchCache>>,
        etcd_prefix: &str,
    ) -> Self {
        let mut stores = Vec::new();
        let mut index = std::collections::HashMap::new();
        for resource in resources {
            let info = resource.strategy.info();
            index.insert(
                (
                    info.group.to_string(),
                    info.version.to_string(),
                    info.plural.to_string(),
                ),
                stores.len(),
            );
            let store = store::Store::new(resource.strategy, Arc::clone(&storage), etcd_prefix)
                .with_hooks(resource.hooks)
                .with_cache(cache.clone());
            stores.push(Arc::new(store));
        }
        Registry { stores, index }
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<store::Store>> {
        self.index
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .map(|i| &self.stores[*i])
    }

    /// The store of a resource in whichever version is served first.
    pub fn find(&self, group: &str, plural: &str) -> Option<&Arc<store::Store>> {
        self.stores
            .iter()
            .find(|s| s.info().group == group && s.info().plural == plural)
    }

    pub fn stores(&self) -> &[Arc<store::Store>] {
        &self.stores
    }
}

/// The key prefixes of every resource, for the watch cache. Resources sharing a storage
/// path (two versions of one resource) share one prefix.
pub fn storage_prefixes(resources: &[Resource], etcd_prefix: &str) -> Vec<String> {
    let mut prefixes: Vec<String> = resources
        .iter()
        .map(|r| {
            format!(
                "{}/{}/",
                etcd_prefix.trim_end_matches('/'),
                r.strategy.info().storage_path
            )
        })
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Every resource this server serves, in discovery order within each group.
pub fn all_resources(ctx: &BuildContext) -> Vec<Resource> {
    let mut all = core::resources(ctx);
    all.extend(apps::resources(ctx));
    all.extend(batch::resources(ctx));
    all.extend(autoscaling::resources(ctx));
    all.extend(policy::resources(ctx));
    all.extend(coordination::resources(ctx));
    all.extend(discovery::resources(ctx));
    all.extend(events::resources(ctx));
    all.extend(networking::resources(ctx));
    all.extend(rbac::resources(ctx));
    all.extend(certificates::resources(ctx));
    all.extend(storage_api::resources(ctx));
    all.extend(scheduling::resources(ctx));
    all
}

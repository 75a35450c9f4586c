//! Controller revisions (upstream's `pkg/controller/history`): the StatefulSet and
//! DaemonSet controllers snapshot their pod template into ControllerRevisions, label
//! their pods with the revision's hash, and roll forward or back by comparing revisions.
//!
//! A revision's data is the strategic merge patch upstream stores,
//! `{"spec":{"template":{...,"$patch":"replace"}}}`, so revisions written by either
//! implementation read the same. The name is `<parent>-<hash>`, the hash being FNV-1 of
//! the serialized data (plus the collision count, when there is one) spelled with
//! upstream's safe alphabet; it also goes into the `controller-revision-hash` label.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::Resource;
use serde_json::{json, Value};

use super::refs;

/// The label holding a revision's hash, on the revision and on the pods made from it.
pub const CONTROLLER_REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no digits easily confused.
const SAFE_ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// 32-bit FNV-1 (Go's `hash/fnv.New32`).
pub fn fnv1_32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5_u32, |hash, b| {
        hash.wrapping_mul(0x0100_0193) ^ u32::from(*b)
    })
}

/// Upstream's `rand.SafeEncodeString`: every character mapped into the safe alphabet.
pub fn safe_encode(s: &str) -> String {
    s.chars()
        .map(|c| char::from(SAFE_ALPHANUMS[c as usize % SAFE_ALPHANUMS.len()]))
        .collect()
}

/// The hash of revision data and an optional collision count (`HashControllerRevision`).
pub fn hash(data: &Value, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    if let Some(count) = collision_count {
        bytes.extend_from_slice(count.to_string().as_bytes());
    }
    safe_encode(&fnv1_32(&bytes).to_string())
}

/// `<parent>-<hash>`, the parent's name cut so the whole stays a valid name.
pub fn revision_name(parent: &str, hash: &str) -> String {
    // Upstream keeps names under 253 characters: 223 for the prefix.
    let prefix: String = parent.chars().take(223).collect();
    format!("{prefix}-{hash}")
}

/// The data a StatefulSet or DaemonSet revision stores for `template`.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut template {
        map.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({ "spec": { "template": template } })
}

/// The pod template a revision recorded (the reverse of [`template_patch`]).
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Value::Object(map) = &mut template {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

fn data_of(revision: &ControllerRevision) -> Option<&Value> {
    revision.data.as_ref().map(|d| &d.0)
}

/// Whether two revisions record the same state (`EqualRevision`; data compared as
/// JSON values, so formatting differences after a round trip do not matter).
pub fn equal(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    data_of(a) == data_of(b)
}

/// Whether a revision records `data`.
pub fn records(revision: &ControllerRevision, data: &Value) -> bool {
    data_of(revision) == Some(data)
}

/// A new revision of `parent` holding `data`, controlled by the parent, labelled with
/// the template's labels and the hash (`NewControllerRevision`).
pub fn new_revision<P>(
    parent: &P,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision
where
    P: Resource<DynamicType = ()>,
{
    let hash = hash(&data, collision_count);
    let parent_name = parent.meta().name.clone().unwrap_or_default();
    let mut labels = template_labels.cloned().unwrap_or_default();
    labels.insert(CONTROLLER_REVISION_HASH_LABEL.to_string(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent_name, &hash)),
            namespace: parent.meta().namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![refs::controller_ref(parent)]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

/// Sort by revision number, then creation time, then name (`SortControllerRevisions`).
pub fn sort(revisions: &mut [ControllerRevision]) {
    revisions.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| {
                let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
                let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
                ta.cmp(&tb)
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
}

/// The number after the highest revision of sorted `revisions` (1 for none).
pub fn next_revision(sorted: &[ControllerRevision]) -> i64 {
    sorted.last().map_or(1, |r| r.revision + 1)
}

/// Create a revision of `parent` numbered `number` holding `data`; on a name collision
/// with a revision holding other data, bump `collision_count` and retry under the new
/// name (`CreateControllerRevision`). An existing revision with the same data controlled
/// by the parent is returned as is.
async fn create<P>(
    api: &Api<ControllerRevision>,
    parent: &P,
    template_labels: Option<&BTreeMap<String, String>>,
    data: &Value,
    number: i64,
    collision_count: &mut i32,
) -> Result<ControllerRevision, kube::Error>
where
    P: Resource<DynamicType = ()>,
{
    let parent_uid = parent.meta().uid.clone().unwrap_or_default();
    // Each round either returns or moves to a fresh name; the bound only guards
    // against a server that keeps answering "exists" for everything.
    for _ in 0..64 {
        let candidate = new_revision(
            parent,
            template_labels,
            data.clone(),
            number,
            Some(*collision_count),
        );
        match api.create(&PostParams::default(), &candidate).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let name = candidate.metadata.name.clone().unwrap_or_default();
                let existing = api.get(&name).await?;
                if records(&existing, data)
                    && refs::is_controlled_by(&existing.metadata, &parent_uid)
                {
                    return Ok(existing);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
    Err(kube::Error::Service(
        "too many controller revision name collisions".into(),
    ))
}

/// The revisions `parent` controls in `store`, sorted oldest first.
pub fn owned<P>(store: &Store<ControllerRevision>, parent: &P) -> Vec<ControllerRevision>
where
    P: Resource<DynamicType = ()>,
{
    let namespace = parent.meta().namespace.as_deref();
    let uid = parent.meta().uid.as_deref().unwrap_or_default();
    let mut revisions: Vec<ControllerRevision> = store
        .state()
        .into_iter()
        .filter(|r| {
            r.metadata.namespace.as_deref() == namespace && refs::is_controlled_by(&r.metadata, uid)
        })
        .map(|r| (*r).clone())
        .collect();
    sort(&mut revisions);
    revisions
}

/// The revision recording `template` (upstream's history construction of the
/// StatefulSet and DaemonSet controllers): the newest of `parent`'s sorted `revisions`
/// when it already does, an older one moved to the newest number (a rollback), or a new
/// one. `collision_count` is bumped past name collisions.
pub async fn for_template<P>(
    api: &Api<ControllerRevision>,
    parent: &P,
    revisions: &[ControllerRevision],
    template: &PodTemplateSpec,
    collision_count: &mut i32,
) -> Result<ControllerRevision, kube::Error>
where
    P: Resource<DynamicType = ()>,
{
    let data = template_patch(template);
    let next = next_revision(revisions);
    match revisions.iter().rev().find(|r| records(r, &data)) {
        Some(existing) if existing.revision == next - 1 => Ok(existing.clone()),
        Some(existing) => set_revision(api, existing, next).await,
        None => {
            let labels = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
            create(api, parent, labels, &data, next, collision_count).await
        }
    }
}

/// Move an existing revision to a new revision number (a rollback to it).
pub async fn set_revision(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    number: i64,
) -> Result<ControllerRevision, kube::Error> {
    if revision.revision == number {
        return Ok(revision.clone());
    }
    let name = revision.metadata.name.clone().unwrap_or_default();
    let patch = json!({"revision": number});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;

    #[test]
    fn fnv_and_safe_encoding_match_go() {
        // Go: fnv.New32() over "hello" is 0xb6fa7167.
        assert_eq!(fnv1_32(b"hello"), 0xb6fa_7167);
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        // '0' is 48, 48 % 27 = 21 -> '4'; '1' -> '5'; '9' is 57 -> 3 -> 'f'.
        assert_eq!(safe_encode("0129"), "456f");
    }

    #[test]
    fn template_round_trip_and_equality() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let data = template_patch(&template);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let mut set = StatefulSet::default();
        set.metadata.name = Some("web".into());
        set.metadata.namespace = Some("default".into());
        set.metadata.uid = Some("uid-1".into());
        let a = new_revision(
            &set,
            template.metadata.as_ref().and_then(|m| m.labels.as_ref()),
            data.clone(),
            1,
            None,
        );
        let b = new_revision(&set, None, data, 2, Some(0));
        assert!(equal(&a, &b));
        assert_ne!(
            a.metadata.name, b.metadata.name,
            "the collision count changes the name"
        );
        assert!(a
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .starts_with("web-"));
        let labels = a.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        let hash = labels
            .get(CONTROLLER_REVISION_HASH_LABEL)
            .cloned()
            .unwrap_or_default();
        assert_eq!(a.metadata.name, Some(format!("web-{hash}")));
        assert_eq!(template_of(&a), Some(template));
        assert_eq!(
            a.metadata
                .owner_references
                .as_ref()
                .map(|r| r[0].kind.as_str()),
            Some("StatefulSet")
        );
    }

    #[test]
    fn sorting_and_next() {
        let rev = |n: i64, name: &str| ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            revision: n,
            data: None,
        };
        let mut revs = vec![rev(3, "c"), rev(1, "a"), rev(2, "b")];
        sort(&mut revs);
        assert_eq!(
            revs.iter().map(|r| r.revision).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(next_revision(&revs), 4);
        assert_eq!(next_revision(&[]), 1);
    }
}

//! Strategic merge patch metadata read from the definitions, so that the API server can
//! strategic-merge-patch every served type.

use apimachinery::strategicpatch::{LookupPatchMeta, PatchMeta};
use serde_json::Value;

use crate::definitions::Definitions;

const PATCH_STRATEGY: &str = "x-kubernetes-patch-strategy";
const PATCH_MERGE_KEY: &str = "x-kubernetes-patch-merge-key";

/// A cursor into one schema of [`Definitions`], implementing the engine's lookup trait.
#[derive(Debug, Clone, Copy)]
pub struct SchemaPatchMeta<'a> {
    definitions: &'a Definitions,
    /// The schema as written where it is used: a property keeps its extensions beside the
    /// `$ref`, so it is resolved only when looking inside.
    schema: &'a Value,
}

impl<'a> SchemaPatchMeta<'a> {
    fn resolved(&self) -> &'a Value {
        self.definitions.resolve(self.schema)
    }
}

impl Definitions {
    /// The patch metadata of a definition (e.g. `io.k8s.api.apps.v1.Deployment`).
    pub fn patch_meta(&self, definition: &str) -> Option<SchemaPatchMeta<'_>> {
        self.get(definition).map(|schema| SchemaPatchMeta {
            definitions: self,
            schema,
        })
    }
}

/// The metadata a property carries. A malformed strategy (none exists upstream) counts as
/// none, so that patching degrades to JSON merge patch rather than failing.
fn property_meta(property: &Value) -> PatchMeta {
    PatchMeta::parse(
        property.get(PATCH_STRATEGY).and_then(Value::as_str),
        property.get(PATCH_MERGE_KEY).and_then(Value::as_str),
    )
    .unwrap_or_default()
}

impl LookupPatchMeta for SchemaPatchMeta<'_> {
    fn lookup_field(&self, key: &str) -> Option<(Self, PatchMeta)> {
        let schema = self.resolved();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            let property = properties.get(key)?;
            return Some((
                SchemaPatchMeta {
                    definitions: self.definitions,
                    schema: property,
                },
                property_meta(property),
            ));
        }
        match schema.get("additionalProperties") {
            Some(values @ Value::Object(_)) => Some((
                SchemaPatchMeta {
                    definitions: self.definitions,
                    schema: values,
                },
                PatchMeta::default(),
            )),
            _ => None,
        }
    }

    fn lookup_items(&self) -> Option<Self> {
        self.resolved().get("items").map(|items| SchemaPatchMeta {
            definitions: self.definitions,
            schema: items,
        })
    }

    fn name(&self) -> String {
        match self.resolved().get("type").and_then(Value::as_str) {
            Some(t) => t.to_owned(),
            None => "Struct".to_owned(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use apimachinery::strategicpatch::{
        create_two_way_merge_patch, strategic_merge_patch, PatchStrategy,
    };
    use serde_json::json;

    use super::*;

    #[test]
    fn finds_upstream_patch_metadata() {
        let defs = Definitions::global();
        let pod = defs.patch_meta("io.k8s.api.core.v1.Pod").unwrap();
        let (spec, _) = pod.lookup_field("spec").unwrap();
        let (containers, meta) = spec.lookup_field("containers").unwrap();
        assert_eq!(meta.strategy, Some(PatchStrategy::Merge));
        assert_eq!(meta.merge_key.as_deref(), Some("name"));
        let container = containers.lookup_items().unwrap();
        let (_, ports) = container.lookup_field("ports").unwrap();
        assert_eq!(ports.merge_key.as_deref(), Some("containerPort"));
        let (_, volumes) = spec.lookup_field("volumes").unwrap();
        assert!(volumes.retain_keys);
        let (metadata, _) = pod.lookup_field("metadata").unwrap();
        let (_, finalizers) = metadata.lookup_field("finalizers").unwrap();
        assert_eq!(finalizers.strategy, Some(PatchStrategy::Merge));
        let (labels, _) = metadata.lookup_field("labels").unwrap();
        assert!(labels.lookup_field("app").is_some());
        assert!(pod.lookup_field("nonsense").is_none());
    }

    #[test]
    fn patches_deployment_containers_by_name() {
        let defs = Definitions::global();
        let meta = defs.patch_meta("io.k8s.api.apps.v1.Deployment").unwrap();
        let original = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
                "template": {"spec": {"containers": [
                {"name": "app", "image": "nginx:1", "env": [{"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "busybox"}
            ]}}}
        });
        let patch = json!({"spec": {
        "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        "template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:2", "env": [{"name": "B", "value": "2"}]}
        ]}}}});
        let patched = strategic_merge_patch(original.clone(), patch, &meta).unwrap();
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "app", "image": "nginx:2",
                 "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                 "ports": [{"containerPort": 80}]},
                {"name": "sidecar", "image": "busybox"}
            ])
        );
        assert_eq!(patched["spec"]["strategy"], json!({"type": "Recreate"}));

        let two_way = create_two_way_merge_patch(&original, &patched, &meta).unwrap();
        assert_eq!(
            strategic_merge_patch(original, two_way, &meta).unwrap(),
            patched
        );
    }

    #[test]
    fn applies_the_patch_kubectl_apply_sends() {
        // What kubectl 1.32 sent, having read this crate's v3 document, when a container
        // was added in front of an existing one whose image changed.
        let meta = Definitions::global()
            .patch_meta("io.k8s.api.apps.v1.Deployment")
            .unwrap();
        let live = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "resourceVersion": "5"},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:1", "imagePullPolicy": "Always"}
        ]}}}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "side"}, {"name": "app"}],
            "containers": [{"image": "busybox", "name": "side"}, {"image": "nginx:2", "name": "app"}]
        }}}});
        let patched = strategic_merge_patch(live, patch, &meta).unwrap();
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([
                {"image": "busybox", "name": "side"},
                {"name": "app", "image": "nginx:2", "imagePullPolicy": "Always"}
            ])
        );
        assert_eq!(patched["spec"]["replicas"], 1);
    }

    #[test]
    fn volume_sources_are_swapped_with_retain_keys() {
        let meta = Definitions::global()
            .patch_meta("io.k8s.api.core.v1.Pod")
            .unwrap();
        let original = json!({"spec": {"volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "conf", "configMap": {"name": "c"}}
        ]}});
        let modified = json!({"spec": {"volumes": [
            {"name": "data", "hostPath": {"path": "/srv"}},
            {"name": "conf", "configMap": {"name": "c"}}
        ]}});
        let patch = create_two_way_merge_patch(&original, &modified, &meta).unwrap();
        assert_eq!(
            patch["spec"]["volumes"][0]["$retainKeys"],
            json!(["hostPath", "name"])
        );
        assert_eq!(
            strategic_merge_patch(original, patch, &meta).unwrap(),
            modified
        );
    }
}

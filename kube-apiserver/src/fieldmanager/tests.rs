//! Apply and update semantics end to end on JSON objects, then through the store.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::registry::typed::{Typed as TypedRegistry, TypedStrategy};

fn configmaps() -> ResourceInfo {
    crate::registry::core::configmap::ConfigMapStrategy.info()
}

fn services() -> ResourceInfo {
    crate::registry::core::service::ServiceStrategy.info()
}

fn pods() -> ResourceInfo {
    crate::registry::core::pod::PodStrategy.info()
}

fn deployments() -> ResourceInfo {
    crate::registry::apps::deployment::DeploymentStrategy.info()
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|l| {
            l.iter()
                .find(|e| e["manager"] == manager && e["operation"] == operation)
        })
        .unwrap_or_else(|| panic!("no {operation} entry of {manager} in {obj:#}"))
}

fn fields(obj: &Value, manager: &str, operation: &str) -> Value {
    entry(obj, manager, operation)["fieldsV1"].clone()
}

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default"}, "data": data})
}

// ---- updates ----

#[test]
fn create_records_the_request_fields_as_an_update() {
    let mut obj = cm(json!({"a": "1"}));
    obj["metadata"]["labels"] = json!({"app": "x"});
    update(&configmaps(), None, &mut obj, "kubectl-create", "");
    let e = entry(&obj, "kubectl-create", "Update");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsType"], "FieldsV1");
    assert!(e["time"].as_str().unwrap().ends_with('Z'));
    assert!(e.get("subresource").is_none());
    assert_eq!(
        e["fieldsV1"],
        json!({
            "f:data": {".": {}, "f:a": {}},
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        })
    );
}

#[test]
fn updates_move_changed_fields_to_their_manager() {
    let info = configmaps();
    let mut v1 = cm(json!({"a": "1", "b": "2", "c": "3"}));
    update(&info, None, &mut v1, "m1", "");
    let mut v2 = v1.clone();
    v2["data"] = json!({"a": "changed", "b": "2", "d": "4"});
    update(&info, Some(&v1), &mut v2, "m2", "");
    assert_eq!(
        fields(&v2, "m1", "Update"),
        json!({"f:data": {".": {}, "f:b": {}}})
    );
    assert_eq!(
        fields(&v2, "m2", "Update"),
        json!({"f:data": {"f:a": {}, "f:d": {}}})
    );
    // The same manager again: its entry grows, no second entry.
    let mut v3 = v2.clone();
    v3["data"]["e"] = json!("5");
    update(&info, Some(&v2), &mut v3, "m2", "");
    assert_eq!(entries(&v3).len(), 2);
    assert_eq!(
        fields(&v3, "m2", "Update"),
        json!({"f:data": {"f:a": {}, "f:d": {}, "f:e": {}}})
    );
}

#[test]
fn an_update_that_changes_nothing_leaves_managed_fields_alone() {
    let info = configmaps();
    let mut v1 = cm(json!({"a": "1"}));
    update(&info, None, &mut v1, "m1", "");
    let mut v2 = v1.clone();
    update(&info, Some(&v1), &mut v2, "m2", "");
    assert_eq!(
        v2["metadata"]["managedFields"],
        v1["metadata"]["managedFields"]
    );
}

#[test]
fn clients_can_reset_but_not_corrupt_managed_fields() {
    let info = configmaps();
    let mut v1 = cm(json!({"a": "1"}));
    update(&info, None, &mut v1, "m1", "");

    // An empty list clears them; the write itself changed nothing to record.
    let mut reset = v1.clone();
    reset["metadata"]["managedFields"] = json!([]);
    update(&info, Some(&v1), &mut reset, "m2", "");
    assert!(reset["metadata"].get("managedFields").is_none());

    // Invalid entries are replaced by the stored ones.
    let mut bad = v1.clone();
    bad["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Patch", "apiVersion": "v1", "fieldsType": "FieldsV1"}]);
    update(&info, Some(&v1), &mut bad, "m2", "");
    assert_eq!(
        bad["metadata"]["managedFields"],
        v1["metadata"]["managedFields"]
    );

    // Valid ones are taken as they are.
    let mut own = v1.clone();
    own["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Update", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]);
    update(&info, Some(&v1), &mut own, "m2", "");
    assert_eq!(entries(&own).len(), 1);
    assert_eq!(entries(&own)[0]["manager"], "x");
}

#[test]
fn status_writes_are_recorded_with_their_subresource() {
    let info = pods();
    let old = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let mut new = old.clone();
    new["status"] = json!({"phase": "Running"});
    new["spec"]["containers"][0]["image"] = json!("other");
    update(&info, Some(&old), &mut new, "kubelet", "status");
    let e = entry(&new, "kubelet", "Update");
    assert_eq!(e["subresource"], "status");
    // Spec is not the status writer's.
    assert_eq!(e["fieldsV1"], json!({"f:status": {"f:phase": {}}}));
}

#[test]
fn main_writes_do_not_own_status_of_resources_with_a_status_subresource() {
    let mut obj = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}});
    update(&pods(), None, &mut obj, "kubectl-create", "");
    assert!(fields(&obj, "kubectl-create", "Update")
        .get("f:status")
        .is_none());
}

#[test]
fn changes_the_strategy_reverts_are_not_recorded() {
    let info = configmaps();
    let old = cm(json!({"a": "1"}));
    let mut new = cm(json!({"a": "2", "b": "2"}));
    let pending = begin_update(&info, Some(&old), &new, "m", "").unwrap();
    // As a strategy putting a field back.
    new["data"]["a"] = json!("1");
    pending.finish(Some(&old), &mut new);
    assert_eq!(fields(&new, "m", "Update"), json!({"f:data": {"f:b": {}}}));
}

#[test]
fn update_managers_are_capped() {
    let info = configmaps();
    let mut obj = cm(json!({}));
    update(&info, None, &mut obj, "creator", "");
    for i in 0..12 {
        let old = obj.clone();
        obj["data"][format!("k{i}")] = json!("v");
        update(&info, Some(&old), &mut obj, &format!("m{i}"), "");
    }
    let updates = entries(&obj);
    assert_eq!(updates.len(), managed::MAX_UPDATE_MANAGERS);
    assert!(updates.iter().any(|e| e["manager"] == "ancient-changes"));
}

// ---- apply ----

fn apply_cm(
    live: Option<&Value>,
    config: Value,
    manager: &str,
    force: bool,
) -> Result<Value, StatusError> {
    apply_to(&configmaps(), live, &config, manager, "", force)
}

#[test]
fn apply_creates_with_an_apply_entry() {
    let obj = apply_cm(None, cm(json!({"key": "v"})), "kubectl", false).unwrap();
    let e = entry(&obj, "kubectl", "Apply");
    assert_eq!(e["apiVersion"], "v1");
    assert_eq!(e["fieldsV1"], json!({"f:data": {"f:key": {}}}));
    assert_eq!(obj["data"], json!({"key": "v"}));
}

#[test]
fn apply_checks_the_type_and_refuses_managed_fields() {
    let mut wrong = cm(json!({}));
    wrong["apiVersion"] = json!("apps/v1");
    let e = apply_cm(None, wrong, "m", false).unwrap_err();
    assert_eq!(e.code, 400);
    assert_eq!(e.message, "invalid object type: apps/v1, Kind=ConfigMap");
    let mut with_mf = cm(json!({}));
    with_mf["metadata"]["managedFields"] = json!([]);
    let e = apply_cm(None, with_mf, "m", false).unwrap_err();
    assert_eq!(e.message, "metadata.managedFields must be nil");
    let mut unknown = cm(json!({}));
    unknown["dat"] = json!({});
    let e = apply_cm(None, unknown, "m", false).unwrap_err();
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "failed to create typed patch object (default/c; /v1, Kind=ConfigMap): .dat: field not declared in schema"
    );
}

#[test]
fn reapplying_removes_what_the_manager_stopped_applying() {
    let v1 = apply_cm(None, cm(json!({"a": "1", "b": "2"})), "m", false).unwrap();
    let v2 = apply_cm(Some(&v1), cm(json!({"a": "1"})), "m", false).unwrap();
    assert_eq!(v2["data"], json!({"a": "1"}));
    assert_eq!(fields(&v2, "m", "Apply"), json!({"f:data": {"f:a": {}}}));
    // Removing the last key removes the map.
    let v3 = apply_cm(Some(&v2), cm(json!(null)), "m", false).unwrap();
    assert!(v3.get("data").is_none_or(Value::is_null));
}

#[test]
fn fields_other_managers_own_survive_the_prune() {
    let v1 = apply_cm(None, cm(json!({"a": "1", "b": "2"})), "m1", false).unwrap();
    // m2 applies b with the same value: shared ownership, no conflict.
    let v2 = apply_cm(Some(&v1), cm(json!({"b": "2"})), "m2", false).unwrap();
    let v3 = apply_cm(Some(&v2), cm(json!({"a": "1"})), "m1", false).unwrap();
    assert_eq!(v3["data"], json!({"a": "1", "b": "2"}));
    // An updater's fields survive too.
    let mut v4 = v3.clone();
    v4["data"]["c"] = json!("3");
    update(&configmaps(), Some(&v3), &mut v4, "editor", "");
    let v5 = apply_cm(Some(&v4), cm(json!({"a": "1", "c": "3"})), "m1", false).unwrap();
    let v6 = apply_cm(Some(&v5), cm(json!({"a": "1"})), "m1", false).unwrap();
    assert_eq!(v6["data"], json!({"a": "1", "b": "2", "c": "3"}));
}

#[test]
fn conflicts_name_the_owner_and_force_takes_ownership() {
    let mut v1 = cm(json!({"key": "a"}));
    update(
        &configmaps(),
        None,
        &mut v1,
        "kubectl-client-side-apply",
        "",
    );
    let err = apply_cm(Some(&v1), cm(json!({"key": "b"})), "m2", false).unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(err.reason, StatusReason::Conflict);
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using v1: .data.key"#
    );
    let causes = err.details.unwrap().causes.unwrap();
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0].reason.as_deref(), Some("FieldManagerConflict"));
    assert_eq!(causes[0].field.as_deref(), Some(".data.key"));
    assert_eq!(
        causes[0].message.as_deref(),
        Some(r#"conflict with "kubectl-client-side-apply" using v1"#)
    );
    // The same value is not a conflict.
    assert!(apply_cm(Some(&v1), cm(json!({"key": "a"})), "m2", false).is_ok());
    // Forced: m2 owns the field, the previous owner loses it.
    let v2 = apply_cm(Some(&v1), cm(json!({"key": "b"})), "m2", true).unwrap();
    assert_eq!(v2["data"]["key"], "b");
    assert_eq!(fields(&v2, "m2", "Apply"), json!({"f:data": {"f:key": {}}}));
    assert_eq!(
        fields(&v2, "kubectl-client-side-apply", "Update"),
        json!({"f:data": {}})
    );
}

#[test]
fn several_conflicts_are_listed_by_manager() {
    let v1 = apply_cm(None, cm(json!({"a": "1", "b": "1"})), "m1", false).unwrap();
    let mut v2 = v1.clone();
    v2["data"]["c"] = json!("1");
    update(&configmaps(), Some(&v1), &mut v2, "m0", "");
    let err = apply_cm(
        Some(&v2),
        cm(json!({"a": "2", "b": "2", "c": "2"})),
        "m2",
        false,
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "Apply failed with 3 conflicts: conflicts with \"m0\" using v1:\n- .data.c\nconflicts with \"m1\":\n- .data.a\n- .data.b"
    );
    assert_eq!(err.details.unwrap().causes.unwrap().len(), 3);
}

#[test]
fn apply_merges_containers_by_name_and_ports_by_port_and_protocol() {
    let info = deployments();
    let base = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1",
                "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]}]}}},
    });
    let v1 = apply_to(&info, None, &base, "deployer", "", false).unwrap();
    // Another manager adds a sidecar and a TCP port 53 to the web container.
    let mut v2 = v1.clone();
    v2["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy"}));
    v2["spec"]["template"]["spec"]["containers"][0]["ports"]
        .as_array_mut()
        .unwrap()
        .push(json!({"containerPort": 53, "protocol": "TCP"}));
    update(&info, Some(&v1), &mut v2, "injector", "");
    // The deployer changes its image and drops the UDP port.
    let mut config = base.clone();
    config["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    config["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80}]);
    let v3 = apply_to(&info, Some(&v2), &config, "deployer", "", false).unwrap();
    let containers = &v3["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 2);
    assert_eq!(containers[0]["image"], "nginx:2");
    assert_eq!(containers[1]["name"], "sidecar");
    assert_eq!(
        containers[0]["ports"],
        json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "TCP"}])
    );
    let owned = fields(&v3, "deployer", "Apply");
    let web = &owned["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"];
    assert_eq!(
        web["f:ports"],
        json!({"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}})
    );
    // Changing the injector's port is a conflict on that item's field.
    let mut steal = config.clone();
    steal["spec"]["template"]["spec"]["containers"][0]["ports"] =
        json!([{"containerPort": 80}, {"containerPort": 53, "protocol": "TCP", "name": "dns"}]);
    assert!(apply_to(&info, Some(&v3), &steal, "deployer", "", false).is_ok());
    let mut image = config.clone();
    image["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "envoy:2"}));
    let err = apply_to(&info, Some(&v3), &image, "deployer", "", false).unwrap_err();
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "injector" using apps/v1: .spec.template.spec.containers[name="sidecar"].image"#
    );
}

#[test]
fn apply_treats_finalizers_as_a_set_and_atomic_lists_as_one_field() {
    let info = services();
    let base = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "finalizers": ["a/x", "a/y"]},
        "spec": {"ports": [{"port": 80}], "externalIPs": ["1.1.1.1", "2.2.2.2"]}});
    let v1 = apply_to(&info, None, &base, "m1", "", false).unwrap();
    let owned = fields(&v1, "m1", "Apply");
    assert_eq!(
        owned["f:metadata"]["f:finalizers"],
        json!({"v:\"a/x\"": {}, "v:\"a/y\"": {}})
    );
    assert_eq!(owned["f:spec"]["f:externalIPs"], json!({}));
    // Another manager adds a finalizer; m1 drops one of its own.
    let mut v2 = v1.clone();
    v2["metadata"]["finalizers"] = json!(["a/x", "a/y", "b/z"]);
    update(&info, Some(&v1), &mut v2, "controller", "");
    let mut config = base.clone();
    config["metadata"]["finalizers"] = json!(["a/x"]);
    let v3 = apply_to(&info, Some(&v2), &config, "m1", "", false).unwrap();
    assert_eq!(v3["metadata"]["finalizers"], json!(["a/x", "b/z"]));
    // The atomic list is replaced whole, and owned whole.
    let mut ips = config.clone();
    ips["spec"]["externalIPs"] = json!(["3.3.3.3"]);
    let v4 = apply_to(&info, Some(&v3), &ips, "m1", "", false).unwrap();
    assert_eq!(v4["spec"]["externalIPs"], json!(["3.3.3.3"]));
    let mut other = base.clone();
    other["metadata"]["finalizers"] = json!([]);
    other["spec"]["externalIPs"] = json!(["4.4.4.4"]);
    let err = apply_to(&info, Some(&v4), &other, "m2", "", false).unwrap_err();
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "m1": .spec.externalIPs"#
    );
}

#[test]
fn an_apply_that_changes_nothing_keeps_the_time() {
    let v1 = apply_cm(None, cm(json!({"a": "1"})), "m", false).unwrap();
    let mut stamped = v1.clone();
    stamped["metadata"]["managedFields"][0]["time"] = json!("2000-01-01T00:00:00Z");
    let v2 = apply_cm(Some(&stamped), cm(json!({"a": "1"})), "m", false).unwrap();
    assert_eq!(v2, stamped);
}

#[test]
fn kubectl_takes_over_from_client_side_apply() {
    let last = r#"{"apiVersion":"v1","data":{"key":"a"},"kind":"ConfigMap","metadata":{"annotations":{},"name":"c","namespace":"default"}}
"#;
    let mut v1 = cm(json!({"key": "a"}));
    v1["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: last});
    update(
        &configmaps(),
        None,
        &mut v1,
        "kubectl-client-side-apply",
        "",
    );
    // A value still equal to the last applied one moves to kubectl without conflict.
    let v2 = apply_cm(Some(&v1), cm(json!({"key": "b"})), "kubectl", false).unwrap();
    assert_eq!(v2["data"]["key"], "b");
    assert_eq!(
        fields(&v2, "kubectl", "Apply"),
        json!({"f:data": {"f:key": {}}})
    );
    // The annotation follows what kubectl applied.
    assert_eq!(
        v2["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
        "{\"apiVersion\":\"v1\",\"data\":{\"key\":\"b\"},\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\",\"namespace\":\"default\"}}\n"
    );
    // Another manager name gets the conflict.
    assert_eq!(
        apply_cm(Some(&v1), cm(json!({"key": "b"})), "other", false)
            .unwrap_err()
            .code,
        409
    );
    // A value someone changed since the last client-side apply still conflicts.
    let mut drifted = v1.clone();
    drifted["data"]["key"] = json!("edited");
    update(&configmaps(), Some(&v1), &mut drifted, "kubectl-edit", "");
    let err = apply_cm(Some(&drifted), cm(json!({"key": "b"})), "kubectl", false).unwrap_err();
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.key"#
    );
}

#[test]
fn applied_status_is_not_owned_on_the_main_resource() {
    let config = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}});
    let obj = apply_to(&pods(), None, &config, "m", "", false).unwrap();
    assert!(fields(&obj, "m", "Apply").get("f:status").is_none());
}

#[test]
fn managers_come_from_the_field_manager_or_the_user_agent() {
    assert_eq!(
        manager_name(None, Some("kubectl/v1.32.0 (linux/amd64) kubernetes/abc")),
        Some("kubectl".to_string())
    );
    assert_eq!(
        manager_name(Some("kubectl-edit"), Some("kubectl/v1.32.0")),
        Some("kubectl-edit".to_string())
    );
    assert_eq!(manager_name(Some(""), Some("")), Some(String::new()));
    assert_eq!(manager_name(None, None), None);
    assert_eq!(prefix_from_user_agent(&"x".repeat(300)).len(), 128);
    assert_eq!(prefix_from_user_agent("a\u{7}b/c"), "ab");
}

#[test]
fn patch_options_are_validated_as_upstream() {
    let e = validate_patch_options(true, None, false).unwrap_err();
    assert_eq!(e.code, 422);
    assert_eq!(
        e.message,
        r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#
    );
    let e = validate_patch_options(false, Some("m"), true).unwrap_err();
    assert_eq!(
        e.message,
        r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#
    );
    assert!(validate_patch_options(true, Some("m"), true).is_ok());
    assert!(validate_options("CreateOptions", Some(&"x".repeat(129))).is_err());
}

// ---- through the store ----

fn store_of<S: TypedStrategy + 'static>(strategy: S) -> crate::registry::store::Store {
    let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
    crate::registry::store::Store::new(Arc::new(TypedRegistry::new(strategy)), storage, "/registry")
}

fn ctx(field_manager: Option<&str>) -> crate::registry::store::RequestContext {
    crate::registry::store::RequestContext {
        field_manager: field_manager.map(str::to_string),
        user_agent: Some("kubectl/v1.32.0 (linux/amd64) kubernetes/0000000".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_store_records_creates_and_updates() {
    use crate::admission::Admission;
    use crate::registry::store::UpdateTarget;
    let store = store_of(crate::registry::core::configmap::ConfigMapStrategy);
    let admission = Admission::default();
    let created = store
        .create("default", cm(json!({"a": "1"})), &ctx(None), &admission)
        .await
        .unwrap();
    assert_eq!(
        fields(&created, "kubectl", "Update"),
        json!({"f:data": {".": {}, "f:a": {}}})
    );
    let (updated, _) = store
        .update_with(
            "default",
            "c",
            UpdateTarget::Main,
            false,
            &ctx(Some("kubectl-edit")),
            &admission,
            |cur| {
                let mut obj = cur.cloned().unwrap();
                obj["data"]["a"] = json!("2");
                Ok(obj)
            },
        )
        .await
        .unwrap();
    assert_eq!(fields(&updated, "kubectl", "Update"), json!({"f:data": {}}));
    assert_eq!(
        fields(&updated, "kubectl-edit", "Update"),
        json!({"f:data": {"f:a": {}}})
    );
    // Writes that name no manager (the server's own) are not recorded.
    let internal = store
        .create(
            "default",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "i"}}),
            &crate::registry::store::RequestContext::default(),
            &admission,
        )
        .await
        .unwrap();
    assert!(internal["metadata"].get("managedFields").is_none());
}

#[tokio::test]
async fn the_store_does_not_give_pod_creators_status() {
    use crate::admission::Admission;
    let store = store_of(crate::registry::core::pod::PodStrategy);
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}, "status": {"phase": "Running"}});
    let created = store
        .create(
            "default",
            pod,
            &ctx(Some("kubectl-create")),
            &Admission::default(),
        )
        .await
        .unwrap();
    let owned = fields(&created, "kubectl-create", "Update");
    assert!(owned.get("f:status").is_none());
    let container = &owned["f:spec"]["f:containers"]["k:{\"name\":\"c\"}"];
    // Defaulted fields belong to the creator, as upstream's defaulting precedes tracking.
    assert_eq!(container["f:image"], json!({}));
    assert!(container.get("f:imagePullPolicy").is_some(), "{owned:#}");
}

#[test]
fn apply_to_a_subresource_type_checks_its_own_kind() {
    let mut info = deployments();
    info.definition = "io.k8s.api.autoscaling.v1.Scale".into();
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
        "spec": {"replicas": 3}});
    let live = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web",
            "managedFields": [{"manager": "hpa", "operation": "Apply", "apiVersion": "autoscaling/v1",
                "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"}]},
        "spec": {"replicas": 1}});
    let out = apply_to(&info, Some(&live), &scale, "hpa", "scale", false).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(entry(&out, "hpa", "Apply")["apiVersion"], "autoscaling/v1");
    let mut wrong = scale.clone();
    wrong["kind"] = json!("Deployment");
    assert_eq!(
        apply_to(&info, Some(&live), &wrong, "hpa", "scale", false)
            .unwrap_err()
            .message,
        "invalid object type: autoscaling/v1, Kind=Deployment"
    );
}

#[test]
fn fields_nobody_recorded_belong_to_before_first_apply() {
    let live = cm(json!({"a": "1", "b": "2"}));
    let err = apply_cm(Some(&live), cm(json!({"a": "9"})), "m", false).unwrap_err();
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using v1: .data.a"#
    );
    let out = apply_cm(Some(&live), cm(json!({"a": "1"})), "m", false).unwrap();
    assert_eq!(
        fields(&out, "before-first-apply", "Update"),
        json!({"f:data": {".": {}, "f:a": {}, "f:b": {}}})
    );
    assert_eq!(fields(&out, "m", "Apply"), json!({"f:data": {"f:a": {}}}));
}

#[test]
fn the_scale_subresource_shows_who_owns_replicas() {
    let info = deployments();
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}}}});
    update(&info, None, &mut d, "kubectl-create", "");
    let mf = scale_managed_fields(&d, "spec.replicas").unwrap();
    assert_eq!(mf[0]["manager"], "kubectl-create");
    assert_eq!(mf[0]["apiVersion"], "autoscaling/v1");
    assert_eq!(mf[0]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let mut scaled = d.clone();
    scaled["spec"]["replicas"] = json!(5);
    update(&info, Some(&d), &mut scaled, "kubectl", "scale");
    let mf = scale_managed_fields(&scaled, "spec.replicas").unwrap();
    assert_eq!(mf.as_array().unwrap().len(), 1);
    assert_eq!(mf[0]["manager"], "kubectl");
    assert_eq!(mf[0]["subresource"], "scale");
}

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use super::*;
use crate::admission::test_support::Harness;
use crate::registry::store::DeleteParams;

struct Setup {
    h: Harness,
    admission: Admission,
}

impl Setup {
    fn new() -> Self {
        Self::over(Harness::new())
    }

    fn over(h: Harness) -> Self {
        let stores = crate::admission::Stores {
            registry: &h.registry,
            plugin: std::cell::Cell::new("ResourceQuota"),
        };
        let plugin = ResourceQuota::new(h.store("", "resourcequotas"), stores.all());
        Setup {
            admission: Admission::new(vec![Arc::new(plugin)]),
            h,
        }
    }

    async fn quota(&self, name: &str, spec: Value) {
        self.h
            .create(
                "",
                "resourcequotas",
                "ns",
                json!({"apiVersion": "v1", "kind": "ResourceQuota",
                       "metadata": {"name": name}, "spec": spec}),
            )
            .await
            .unwrap();
    }

    async fn status(&self, name: &str) -> Value {
        let q = self
            .h
            .store("", "resourcequotas")
            .get("ns", name)
            .await
            .unwrap();
        q["status"].clone()
    }

    async fn create(&self, plural: &str, obj: Value) -> Result<Value, StatusError> {
        self.create_with(plural, obj, &RequestContext::default())
            .await
    }

    async fn create_with(
        &self,
        plural: &str,
        obj: Value,
        ctx: &RequestContext,
    ) -> Result<Value, StatusError> {
        self.h
            .store("", plural)
            .create("ns", obj, ctx, &self.admission)
            .await
    }

    async fn delete(&self, plural: &str, name: &str) {
        self.h
            .store("", plural)
            .delete(
                "ns",
                name,
                &DeleteParams::default(),
                &RequestContext::default(),
                &self.admission,
            )
            .await
            .unwrap();
    }
}

fn pod(name: &str, resources: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"containers": [{"name": name, "image": "nginx", "resources": resources}]}})
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
}

#[tokio::test]
async fn pod_count_quota_as_in_the_docs() {
    let s = Setup::new();
    s.quota("pod-demo", json!({"hard": {"pods": "2"}})).await;
    s.create("pods", pod("a", json!({}))).await.unwrap();
    s.create("pods", pod("b", json!({}))).await.unwrap();
    assert_eq!(
        s.status("pod-demo").await,
        json!({"hard": {"pods": "2"}, "used": {"pods": "2"}})
    );
    let err = s.create("pods", pod("c", json!({}))).await.unwrap_err();
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        r#"pods "c" is forbidden: exceeded quota: pod-demo, requested: pods=1, used: pods=2, limited: pods=2"#
    );
    assert_eq!(err.details.as_ref().unwrap().name.as_deref(), Some("c"));
}

#[tokio::test]
async fn compute_quota_as_in_the_docs() {
    let s = Setup::new();
    s.quota(
        "mem-cpu-demo",
        json!({"hard": {"requests.cpu": "1", "requests.memory": "1Gi",
                        "limits.cpu": "2", "limits.memory": "2Gi"}}),
    )
    .await;
    s.create(
        "pods",
        pod(
            "quota-mem-cpu-demo",
            json!({"limits": {"memory": "800Mi", "cpu": "800m"},
                   "requests": {"memory": "600Mi", "cpu": "400m"}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        s.status("mem-cpu-demo").await["used"],
        json!({"limits.cpu": "800m", "limits.memory": "800Mi",
               "requests.cpu": "400m", "requests.memory": "600Mi"})
    );
    let err = s
        .create(
            "pods",
            pod(
                "quota-mem-cpu-demo-2",
                json!({"limits": {"memory": "1Gi", "cpu": "800m"},
                       "requests": {"memory": "700Mi", "cpu": "400m"}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"pods "quota-mem-cpu-demo-2" is forbidden: exceeded quota: mem-cpu-demo, requested: requests.memory=700Mi, used: requests.memory=600Mi, limited: requests.memory=1Gi"#
    );

    let err = s.create("pods", pod("nginx", json!({}))).await.unwrap_err();
    assert_eq!(
        err.message,
        r#"pods "nginx" is forbidden: failed quota: mem-cpu-demo: must specify limits.cpu for: nginx; limits.memory for: nginx; requests.cpu for: nginx; requests.memory for: nginx"#
    );
}

#[tokio::test]
async fn exceeding_limits_reports_zero_usage() {
    let s = Setup::new();
    s.quota("q", json!({"hard": {"limits.cpu": "1"}})).await;
    let err = s
        .create(
            "pods",
            pod(
                "x",
                json!({"limits": {"cpu": "2"}, "requests": {"cpu": "2"}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"pods "x" is forbidden: exceeded quota: q, requested: limits.cpu=2, used: limits.cpu=0, limited: limits.cpu=1"#
    );
}

#[tokio::test]
async fn deleted_objects_give_room_back() {
    let s = Setup::new();
    s.quota("q", json!({"hard": {"pods": "1"}})).await;
    s.create("pods", pod("a", json!({}))).await.unwrap();
    // Let the admitted write be seen, as any real client's round trip would.
    tokio::time::sleep(POLL * 3).await;
    s.delete("pods", "a").await;
    let started = Instant::now();
    s.create("pods", pod("b", json!({}))).await.unwrap();
    assert!(
        started.elapsed() < SETTLE,
        "the recount waited for a landed write"
    );
    assert_eq!(s.status("q").await["used"], json!({"pods": "1"}));
    let err = s.create("pods", pod("c", json!({}))).await.unwrap_err();
    assert!(
        err.message.contains("used: pods=1, limited: pods=1"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn finished_pods_only_count_as_objects() {
    let s = Setup::new();
    s.quota("q", json!({"hard": {"pods": "1", "count/pods": "5"}}))
        .await;
    s.create("pods", pod("done", json!({}))).await.unwrap();
    s.h.store("", "pods")
        .update_with(
            "ns",
            "done",
            UpdateTarget::Status,
            false,
            &RequestContext::default(),
            &Admission::default(),
            |old| {
                let mut new = old.cloned().unwrap_or_default();
                new["status"] = json!({"phase": "Succeeded"});
                Ok(new)
            },
        )
        .await
        .unwrap();
    s.create("pods", pod("next", json!({}))).await.unwrap();
    assert_eq!(
        s.status("q").await["used"],
        json!({"count/pods": "2", "pods": "1"})
    );
}

#[tokio::test]
async fn stale_or_missing_status_is_recounted() {
    let s = Setup::new();
    s.create("configmaps", configmap("before")).await.unwrap();
    s.quota("q", json!({"hard": {"configmaps": "2"}})).await;
    // Someone else's idea of the quota, for other limits.
    s.h.store("", "resourcequotas")
        .update_with(
            "ns",
            "q",
            UpdateTarget::Status,
            false,
            &RequestContext::default(),
            &Admission::default(),
            |old| {
                let mut new = old.cloned().unwrap_or_default();
                new["status"] = json!({"hard": {"configmaps": "9"}, "used": {"configmaps": "0"}});
                Ok(new)
            },
        )
        .await
        .unwrap();
    s.create("configmaps", configmap("one")).await.unwrap();
    assert_eq!(
        s.status("q").await,
        json!({"hard": {"configmaps": "2"}, "used": {"configmaps": "2"}})
    );
    let err = s.create("configmaps", configmap("two")).await.unwrap_err();
    assert_eq!(
        err.message,
        r#"configmaps "two" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=2, limited: configmaps=2"#
    );
}

#[tokio::test]
async fn dry_runs_are_judged_but_not_charged() {
    let s = Setup::new();
    s.quota("q", json!({"hard": {"count/configmaps": "1"}}))
        .await;
    let dry = RequestContext {
        dry_run: true,
        ..Default::default()
    };
    s.create_with("configmaps", configmap("a"), &dry)
        .await
        .unwrap();
    assert!(s.status("q").await.get("used").is_none());
    s.create("configmaps", configmap("a")).await.unwrap();
    let err = s
        .create_with("configmaps", configmap("b"), &dry)
        .await
        .unwrap_err();
    assert_eq!(err.code, 403);
}

#[tokio::test]
async fn every_matching_quota_is_charged_and_scopes_select() {
    let s = Setup::new();
    s.quota("all", json!({"hard": {"pods": "10"}})).await;
    s.quota(
        "best-effort",
        json!({"hard": {"pods": "1"}, "scopes": ["BestEffort"]}),
    )
    .await;
    s.create("pods", pod("be", json!({}))).await.unwrap();
    let err = s.create("pods", pod("be2", json!({}))).await.unwrap_err();
    assert!(
        err.message.contains("exceeded quota: best-effort"),
        "{}",
        err.message
    );
    s.create(
        "pods",
        pod("burstable", json!({"requests": {"cpu": "100m"}})),
    )
    .await
    .unwrap();
    assert_eq!(s.status("all").await["used"], json!({"pods": "2"}));
    assert_eq!(s.status("best-effort").await["used"], json!({"pods": "1"}));
}

#[tokio::test]
async fn services_and_claims() {
    let s = Setup::new();
    s.quota(
        "q",
        json!({"hard": {"services": "2", "services.nodeports": "0",
                        "requests.storage": "1Gi", "persistentvolumeclaims": "5"}}),
    )
    .await;
    let err = s
        .create(
            "services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "np"},
                   "spec": {"type": "NodePort", "selector": {"a": "b"},
                            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"services "np" is forbidden: exceeded quota: q, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0"#
    );
    let claim = |name: &str, size: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}})
    };
    s.create("persistentvolumeclaims", claim("a", "600Mi"))
        .await
        .unwrap();
    let err = s
        .create("persistentvolumeclaims", claim("b", "600Mi"))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        r#"persistentvolumeclaims "b" is forbidden: exceeded quota: q, requested: requests.storage=600Mi, used: requests.storage=600Mi, limited: requests.storage=1Gi"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_cannot_both_fit() {
    for fresh_quota in [true, false] {
        // Admitted pods take a while to be stored, so later admissions have to count
        // them while they are in flight.
        let s = Arc::new(Setup::over(Harness::with_slow_pod_creates(
            std::time::Duration::from_millis(100),
        )));
        s.quota("q", json!({"hard": {"pods": "1"}})).await;
        if !fresh_quota {
            // The ledger says full, so both creates go through a recount.
            s.create("pods", pod("old", json!({}))).await.unwrap();
            s.delete("pods", "old").await;
        }
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let s = Arc::clone(&s);
                tokio::spawn(
                    async move { s.create("pods", pod(&format!("p{i}"), json!({}))).await },
                )
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => admitted += 1,
                Err(e) => assert_eq!(e.code, 403, "{}", e.message),
            }
        }
        assert_eq!(admitted, 1, "fresh quota: {fresh_quota}");
    }
}

#[tokio::test]
async fn quotas_elsewhere_and_other_kinds_are_ignored() {
    let s = Setup::new();
    s.quota("q", json!({"hard": {"pods": "0"}})).await;
    s.create("configmaps", configmap("fine")).await.unwrap();
    s.h.store("", "pods")
        .create(
            "other",
            pod("fine", json!({})),
            &RequestContext::default(),
            &s.admission,
        )
        .await
        .unwrap();
    // A quota counts itself among quotas.
    s.quota("limit-quotas", json!({"hard": {"resourcequotas": "2"}}))
        .await;
    let err =
        s.h.store("", "resourcequotas")
            .create(
                "ns",
                json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "third"},
                   "spec": {"hard": {"pods": "1"}}}),
                &RequestContext::default(),
                &s.admission,
            )
            .await
            .unwrap_err();
    assert_eq!(
        err.message,
        r#"resourcequotas "third" is forbidden: exceeded quota: limit-quotas, requested: resourcequotas=1, used: resourcequotas=2, limited: resourcequotas=2"#
    );
}

#[tokio::test]
async fn new_and_edited_quotas_get_their_status() {
    let s = Setup::new();
    s.create("configmaps", configmap("a")).await.unwrap();
    s.create(
        "resourcequotas",
        json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
               "spec": {"hard": {"configmaps": "5", "pods": "2"}}}),
    )
    .await
    .unwrap();
    let wait_for = |expected: Value| {
        let s = &s;
        async move {
            let start = Instant::now();
            loop {
                let status = s.status("q").await;
                if status == expected || start.elapsed() > SETTLE {
                    return status;
                }
                tokio::time::sleep(POLL).await;
            }
        }
    };
    assert_eq!(
        wait_for(json!({"hard": {"configmaps": "5", "pods": "2"},
                        "used": {"configmaps": "1", "pods": "0"}}))
        .await,
        json!({"hard": {"configmaps": "5", "pods": "2"}, "used": {"configmaps": "1", "pods": "0"}})
    );
    // Raising a limit shows in the status too.
    s.h.store("", "resourcequotas")
        .update_with(
            "ns",
            "q",
            UpdateTarget::Main,
            false,
            &RequestContext::default(),
            &s.admission,
            |old| {
                let mut new = old.cloned().unwrap_or_default();
                new["spec"]["hard"]["configmaps"] = json!("10");
                Ok(new)
            },
        )
        .await
        .unwrap();
    assert_eq!(
        wait_for(json!({"hard": {"configmaps": "10", "pods": "2"},
                        "used": {"configmaps": "1", "pods": "0"}}))
        .await["hard"]["configmaps"],
        "10"
    );
}

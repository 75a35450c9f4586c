//! The `autoscaling` API group: HorizontalPodAutoscalers in v2 (the storage and preferred
//! version) and v1, one object in storage seen through two versions.

pub mod hpa;
pub mod hpa_v1;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(hpa::HorizontalPodAutoscalerStrategy))),
        Resource::new(Arc::new(Typed::new(
            hpa_v1::HorizontalPodAutoscalerV1Strategy,
        ))),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::admission::Admission;
    use crate::registry::store::{RequestContext, Store, UpdateTarget};
    use crate::registry::typed::Typed;

    use super::{hpa, hpa_v1};

    /// Both versions read and write the same stored objects.
    #[tokio::test]
    async fn versions_share_storage() {
        let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let v2 = Store::new(
            Arc::new(Typed::new(hpa::HorizontalPodAutoscalerStrategy)),
            Arc::clone(&storage),
            "/registry",
        );
        let v1 = Store::new(
            Arc::new(Typed::new(hpa_v1::HorizontalPodAutoscalerV1Strategy)),
            storage,
            "/registry",
        );
        assert_eq!(v1.key("ns", "x"), v2.key("ns", "x"));
        let (ctx, adm) = (RequestContext::default(), Admission::default());

        let created = v1
            .create(
                "ns",
                json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                       "metadata": {"name": "a"},
                       "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                                "maxReplicas": 4, "targetCPUUtilizationPercentage": 50}}),
                &ctx,
                &adm,
            )
            .await
            .unwrap();
        assert_eq!(created["apiVersion"], "autoscaling/v1");
        assert_eq!(created["spec"]["targetCPUUtilizationPercentage"], 50);
        let as_v2 = v2.get("ns", "a").await.unwrap();
        assert_eq!(as_v2["apiVersion"], "autoscaling/v2");
        assert_eq!(
            as_v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert_eq!(as_v2["spec"]["minReplicas"], 1);

        v2.create(
            "ns",
            json!({"metadata": {"name": "b"},
                   "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 4,
                            "metrics": [{"type": "Pods", "pods": {"metric": {"name": "qps"},
                                         "target": {"type": "AverageValue", "averageValue": "10"}}}]}}),
            &ctx,
            &adm,
        )
        .await
        .unwrap();
        // A v1 client's read-modify-write keeps the metric v1 cannot express.
        let (updated, _) = v1
            .update_with("ns", "b", UpdateTarget::Main, false, &ctx, &adm, |cur| {
                let mut obj = cur.unwrap().clone();
                obj["spec"]["maxReplicas"] = json!(8);
                Ok(obj)
            })
            .await
            .unwrap();
        assert!(updated["spec"]
            .get("targetCPUUtilizationPercentage")
            .is_none());
        let after = v2.get("ns", "b").await.unwrap();
        assert_eq!(after["spec"]["maxReplicas"], 8);
        assert_eq!(after["spec"]["metrics"][0]["pods"]["metric"]["name"], "qps");
        assert!(after["metadata"].get("annotations").is_none());
        let listed = v1.list(Some("ns"), &Default::default()).await.unwrap();
        assert_eq!(listed.items.len(), 2);
        assert!(listed
            .items
            .iter()
            .all(|o| o["apiVersion"] == "autoscaling/v1"));
    }
}

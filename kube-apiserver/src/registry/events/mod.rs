//! The `events.k8s.io` API group, version v1 (stored as core v1 Events).

pub mod event;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![Resource::new(Arc::new(Typed::new(event::EventStrategy)))]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admission::Admission;
    use crate::registry::store::{ListParams, RequestContext, Store};
    use serde_json::json;
    use storage::Storage;

    #[tokio::test]
    async fn events_are_stored_as_core_events_and_selected_by_events_fields() {
        let storage: Arc<dyn Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let store = Store::new(
            Arc::new(Typed::new(event::EventStrategy)),
            Arc::clone(&storage),
            "/registry",
        );
        let ev = json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.1"},
            "eventTime": "2024-05-01T10:00:00.000000Z",
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "action": "Pulling",
            "reason": "Pulling",
            "type": "Normal",
            "note": "Pulling image",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web"},
        });
        let created = store
            .create(
                "default",
                ev,
                &RequestContext::default(),
                &Admission::default(),
            )
            .await
            .unwrap();
        assert_eq!(created["apiVersion"], "events.k8s.io/v1");
        assert_eq!(created["note"], "Pulling image");

        let kv = storage
            .get("/registry/events/default/web.1")
            .await
            .unwrap()
            .unwrap();
        let stored: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "Pulling image");
        assert_eq!(stored["reportingComponent"], "kubelet");

        let selected = |sel: &str| ListParams {
            field_selector: apimachinery::fields::Selector::parse(sel).unwrap(),
            ..Default::default()
        };
        let page = store
            .list(
                Some("default"),
                &selected("regarding.name=web,reportingController=kubelet"),
            )
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0]["regarding"]["kind"], "Pod");
        let none = store
            .list(Some("default"), &selected("regarding.name=other"))
            .await
            .unwrap();
        assert!(none.items.is_empty());
        assert!(store
            .check_field_selector(
                &apimachinery::fields::Selector::parse("involvedObject.name=web").unwrap()
            )
            .is_err());
    }
}

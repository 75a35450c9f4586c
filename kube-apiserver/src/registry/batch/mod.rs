//! The `batch` API group, version v1: run-to-completion workloads.

pub mod cronjob;
pub mod job;

use std::sync::Arc;

use crate::registry::typed::Typed;
use crate::registry::{BuildContext, Resource};

pub fn resources(_ctx: &BuildContext) -> Vec<Resource> {
    vec![
        Resource::new(Arc::new(Typed::new(cronjob::CronJobStrategy))),
        Resource::new(Arc::new(Typed::new(job::JobStrategy))),
    ]
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use crate::admission::Admission;
    use crate::registry::store::{RequestContext, Store};
    use crate::registry::typed::Typed;

    /// The store assigns the uid before the strategy's create preparation, which the
    /// generated selector is made of.
    #[tokio::test]
    async fn job_selector_from_the_stored_uid() {
        let storage: Arc<dyn storage::Storage> = Arc::new(storage::memory::MemoryStorage::new());
        let store = Store::new(
            Arc::new(Typed::new(super::job::JobStrategy)),
            storage,
            "/registry",
        );
        let job = store
            .create(
                "default",
                json!({"metadata": {"generateName": "pi-"}, "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "pi", "image": "perl"}]}}}}),
                &RequestContext::default(),
                &Admission::default(),
            )
            .await
            .unwrap();
        let uid = job["metadata"]["uid"].as_str().unwrap();
        let name = job["metadata"]["name"].as_str().unwrap();
        assert!(!uid.is_empty() && name.starts_with("pi-"));
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            uid
        );
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
            name
        );
        assert_eq!(job["metadata"]["generation"], 1);
    }
}

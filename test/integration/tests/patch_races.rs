//! Concurrent patches: a patch that names no resourceVersion applies to whatever version
//! is current, so racing writers all succeed (the server re-applies the loser), while a
//! patch naming a stale resourceVersion is refused with upstream's Conflict.
#![allow(clippy::unwrap_used)]

use integration::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_patches_never_conflict_and_conditional_ones_do() {
    const WRITERS: usize = 8;
    const PATCHES: usize = 10;
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("raced".into());
    let created = api.create(&PostParams::default(), &cm).await.unwrap();

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let api = api.clone();
        writers.push(tokio::spawn(async move {
            for p in 0..PATCHES {
                let patch = json!({"metadata": {"labels": {format!("w{w}-p{p}"): "x"}}});
                api.patch("raced", &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let labels = api.get("raced").await.unwrap().metadata.labels.unwrap();
    assert_eq!(labels.len(), WRITERS * PATCHES);

    let stale = json!({"metadata": {
        "resourceVersion": created.metadata.resource_version.unwrap(),
        "labels": {"late": "x"},
    }});
    let err = api
        .patch("raced", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert!(status.message.contains("the object has been modified"));
        }
        other => panic!("expected a Conflict, got {other:?}"),
    }
}

//! Faults: etcd unavailable makes requests fail with 5xx and readiness fail, the server
//! stays up, and everything works again when etcd returns.

use std::time::{Duration, Instant};

use integration::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .unwrap()
}

fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_fails_requests_and_readiness_then_recovers() {
    let cp = ControlPlane::start().unwrap();
    let api: Api<ConfigMap> = Api::namespaced(cp.client().await.unwrap(), "default");
    api.create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();

    cp.etcd.pause().unwrap();
    let readyz_fails = wait_until(Duration::from_secs(20), || {
        let out = cp.kubectl(&["get", "--raw", "/readyz?verbose"]).unwrap();
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("[-]etcd failed")
    });
    assert!(readyz_fails, "readyz kept passing while etcd was down");
    let out = cp.kubectl(&["get", "--raw", "/readyz/etcd"]).unwrap();
    assert!(!out.status.success());
    // Writes fail with a server error, not a hang and not a client error. (kubectl, not
    // kube-rs, whose client retries 503s for minutes.)
    let out = cp
        .kubectl(&[
            "create",
            "configmap",
            "during",
            "--from-literal=k=v",
            "-v=6",
        ])
        .unwrap();
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("503 Service Unavailable"), "{log}");
    assert!(log.contains("etcd request timed out"), "{log}");
    // The server is still serving (liveness does not depend on etcd being reachable for
    // a moment, and the process did not exit).
    assert!(cp
        .kubectl(&["get", "--raw", "/version"])
        .unwrap()
        .status
        .success());

    cp.etcd.resume().unwrap();
    let ready_again = wait_until(Duration::from_secs(30), || {
        cp.kubectl(&["get", "--raw", "/readyz"])
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    assert!(ready_again, "not ready after etcd returned:\n{}", cp.log());
    api.create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(
        names.contains(&"before".to_string()) && names.contains(&"after".to_string()),
        "{names:?}"
    );
}

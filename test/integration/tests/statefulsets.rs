//! The statefulset controller as the seed tutorial uses it: a headless service and the
//! `web` StatefulSet on hollow nodes placed by our scheduler, scaled up and down in
//! order, rolled out with `kubectl set image` and `kubectl rollout status`; and claims
//! from volume claim templates that outlive their pods.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use integration::ControlPlane;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};

const WEB: &str = "apiVersion: v1
kind: Service
metadata:
  name: nginx
  labels:
    app: nginx
spec:
  ports:
  - port: 80
    name: web
  clusterIP: None
  selector:
    app: nginx
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.21
        ports:
        - containerPort: 80
          name: web
";

fn have_cluster_binaries() -> bool {
    ["hollow-node", "kube-scheduler"]
        .iter()
        .all(|b| integration::binary(b).exists())
}

/// The ordinals of web's pods (`None` once they all exist and stop changing is the
/// caller's business).
async fn ordinals(pods: &Api<Pod>, set: &str) -> BTreeSet<i32> {
    pods.list(&ListParams::default().labels("app=nginx"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .filter_map(|n| n.strip_prefix(&format!("{set}-"))?.parse().ok())
        .collect()
}

/// Watch web's pods until `want` exist, asserting at every look that they form a prefix
/// `0..k` (created in order, deleted in reverse order).
async fn until_ordinals_in_order(pods: &Api<Pod>, want: i32, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = ordinals(pods, "web").await;
        let k = i32::try_from(seen.len()).unwrap();
        assert_eq!(seen, (0..k).collect(), "pods out of order: {seen:?}");
        if k == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out at {seen:?}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn web_scales_up_and_down_in_order_and_rolls_out() {
    if !have_cluster_binaries() {
        eprintln!("hollow-node or kube-scheduler not built: skipping");
        return;
    }
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=statefulset",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    cp.start_component("kube-scheduler", &["--leader-elect=false"])
        .unwrap();
    cp.start_component("hollow-node", &["--nodes=2"]).unwrap();
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let applied = cp.kubectl_stdin(&["apply", "-f", "-"], WEB).unwrap();
    assert!(applied.status.success(), "{applied:?}");
    until_ordinals_in_order(&pods, 3, Duration::from_secs(40)).await;
    let out = cp
        .kubectl_ok(&["rollout", "status", "sts/web", "--timeout=40s"])
        .unwrap();
    assert!(out.contains("roll out complete"), "{out}");
    // Stable identity.
    assert_eq!(
        cp.jsonpath(&["get", "pod", "web-1"],
            "{.spec.hostname} {.spec.subdomain} {.metadata.labels.statefulset\\.kubernetes\\.io/pod-name} {.metadata.labels.apps\\.kubernetes\\.io/pod-index}").unwrap(),
        "web-1 nginx web-1 1"
    );
    assert_eq!(
        cp.jsonpath(&["get", "sts", "web"],
            "{.status.replicas} {.status.readyReplicas} {.status.currentReplicas} {.status.updatedReplicas}").unwrap(),
        "3 3 3 3"
    );

    // Scale up to 5 and down to 2: in order both ways.
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=5"])
        .unwrap();
    until_ordinals_in_order(&pods, 5, Duration::from_secs(40)).await;
    cp.kubectl_ok(&["scale", "sts", "web", "--replicas=2"])
        .unwrap();
    until_ordinals_in_order(&pods, 2, Duration::from_secs(40)).await;

    // A new image rolls the pods over, highest ordinal first.
    let before = cp
        .jsonpath(&["get", "sts", "web"], "{.status.updateRevision}")
        .unwrap();
    cp.kubectl_ok(&[
        "set",
        "image",
        "sts/web",
        "nginx=registry.k8s.io/nginx-slim:0.24",
    ])
    .unwrap();
    let out = cp
        .kubectl_ok(&["rollout", "status", "sts/web", "--timeout=45s"])
        .unwrap();
    assert!(out.contains("roll out complete"), "{out}");
    let revs = cp
        .jsonpath(
            &["get", "sts", "web"],
            "{.status.currentRevision} {.status.updateRevision}",
        )
        .unwrap();
    let (current, update) = revs.split_once(' ').unwrap();
    assert_eq!(current, update);
    assert_ne!(update, before);
    let images = cp
        .jsonpath(
            &["get", "pods", "-l", "app=nginx"],
            "{.items[*].spec.containers[0].image}",
        )
        .unwrap();
    assert_eq!(
        images,
        "registry.k8s.io/nginx-slim:0.24 registry.k8s.io/nginx-slim:0.24"
    );
    let history = cp
        .kubectl_ok(&["get", "controllerrevisions", "-o", "name"])
        .unwrap();
    assert_eq!(history.lines().count(), 2, "{history}");
}

/// Claims from volume claim templates, one per ordinal, kept when the set scales down.
#[tokio::test(flavor = "multi_thread")]
async fn claims_outlive_their_pods() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=statefulset",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, "default");
    let set = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";
    let applied = cp.kubectl_stdin(&["apply", "-f", "-"], set).unwrap();
    assert!(applied.status.success(), "{applied:?}");
    // Parallel: both pods at once (nothing schedules them here).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: BTreeSet<String> = pods
            .list(&ListParams::default().labels("app=db"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        if names.len() == 2 {
            assert_eq!(
                names,
                ["db-0".to_string(), "db-1".to_string()]
                    .into_iter()
                    .collect()
            );
            break;
        }
        assert!(Instant::now() < deadline, "pods: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cp.jsonpath(
            &["get", "pod", "db-1"],
            "{.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}"
        )
        .unwrap(),
        "data-db-1"
    );
    let claim_names = || async {
        claims
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<BTreeSet<String>>()
    };
    let want: BTreeSet<String> = ["data-db-0".to_string(), "data-db-1".to_string()]
        .into_iter()
        .collect();
    assert_eq!(claim_names().await, want);
    assert_eq!(
        cp.jsonpath(&["get", "pvc", "data-db-0"], "{.metadata.labels.app}")
            .unwrap(),
        "db"
    );
    cp.kubectl_ok(&["scale", "sts", "db", "--replicas=0"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pods
        .list(&ListParams::default().labels("app=db"))
        .await
        .unwrap()
        .items
        .is_empty()
    {
        assert!(Instant::now() < deadline, "pods not deleted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(claim_names().await, want);
}

/// `whenScaled: Delete`: the claims of a removed ordinal go with its pod (through the
/// garbage collector); the others stay.
#[tokio::test(flavor = "multi_thread")]
async fn claims_of_scaled_down_pods_are_deleted_when_asked() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=statefulset,garbage-collector",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    let client = cp.client().await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client, "default");
    let set = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: kv
spec:
  serviceName: kv
  replicas: 2
  podManagementPolicy: Parallel
  persistentVolumeClaimRetentionPolicy:
    whenScaled: Delete
  selector:
    matchLabels:
      app: kv
  template:
    metadata:
      labels:
        app: kv
    spec:
      containers:
      - name: kv
        image: etcd
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";
    let applied = cp.kubectl_stdin(&["apply", "-f", "-"], set).unwrap();
    assert!(applied.status.success(), "{applied:?}");
    let names = || async {
        claims
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<BTreeSet<String>>()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while names().await.len() < 2 {
        assert!(Instant::now() < deadline, "claims not created");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cp.kubectl_ok(&["scale", "sts", "kv", "--replicas=1"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = names().await;
        if now == ["data-kv-0".to_string()].into_iter().collect() {
            break;
        }
        assert!(Instant::now() < deadline, "claims: {now:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

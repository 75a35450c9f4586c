//! The kubelet's volume manager against a real API server: a pod's volumes are set up on
//! disk (emptyDir, tmpfs emptyDir, hostPath, configMap, secret, downwardAPI, projected with
//! a service account token, a claim on a hostPath PersistentVolume), content follows
//! ConfigMap and Secret changes within seconds through the atomic `..data` swap, failures
//! read like upstream's FailedMount events, subPaths are prepared, and teardown leaves
//! nothing mounted.
//!
//! These run as root (tmpfs mounts, as the kubelet does). The end-to-end variants through
//! containerd live with the kubelet's pod workers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use integration::ControlPlane;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use kube::api::{Api, Patch, PatchParams};
use kubelet::volumes::{VolumeError, VolumeManager};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Poll until `f` holds, for at most `timeout`.
async fn eventually(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mounted_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(String::from)
        .collect()
}

fn is_root() -> bool {
    read(Path::new("/proc/self/status"))
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
}

async fn create_pod(cp: &ControlPlane, name: &str, yaml: &str) -> Pod {
    cp.apply(yaml).unwrap();
    let pods: Api<Pod> = Api::default_namespaced(cp.client().await.unwrap());
    pods.get(name).await.unwrap()
}

#[tokio::test]
async fn pod_volumes_on_disk_and_live_updates() {
    if !is_root() {
        eprintln!("skipped: needs root for tmpfs mounts");
        return;
    }
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    let host = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let host_dir = host.path().join("made/by/kubelet");
    let pv_dir = host.path().join("pv");
    std::fs::create_dir(&pv_dir).unwrap();
    std::fs::write(pv_dir.join("existing"), "on the volume").unwrap();

    cp.apply(&format!(
        "apiVersion: v1
kind: ServiceAccount
metadata: {{name: runner}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: cfg}}
data: {{a: one, b: two}}
---
apiVersion: v1
kind: Secret
metadata: {{name: sec}}
stringData: {{password: s3cr3t}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv1}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: {pv}}}
  claimRef: {{namespace: default, name: claim}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: claim}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
  volumeName: pv1
",
        pv = pv_dir.display()
    ))
    .unwrap();
    // No PV controller runs here: bind the claim as it would.
    cp.kubectl_ok(&[
        "patch",
        "pvc",
        "claim",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Bound"}}"#,
    ])
    .unwrap();

    let pod = create_pod(
        &cp,
        "vols",
        &format!(
            "apiVersion: v1
kind: Pod
metadata:
  name: vols
  labels: {{app: web}}
spec:
  serviceAccountName: runner
  securityContext: {{fsGroup: 2000}}
  containers:
  - name: c
    image: busybox
    env: [{{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
    volumeMounts:
    - {{name: scratch, mountPath: /scratch}}
    - {{name: scratch, mountPath: /logs, subPathExpr: 'logs/$(POD)'}}
    - {{name: cfg, mountPath: /cfg}}
    - {{name: cfg, mountPath: /etc/a.conf, subPath: a}}
    - {{name: claim, mountPath: /data}}
  volumes:
  - name: scratch
    emptyDir: {{}}
  - name: mem
    emptyDir: {{medium: Memory, sizeLimit: 1Mi}}
  - name: host
    hostPath: {{path: {host_dir}, type: DirectoryOrCreate}}
  - name: cfg
    configMap: {{name: cfg}}
  - name: cfg-items
    configMap:
      name: cfg
      defaultMode: 0600
      items: [{{key: b, path: nested/b.txt, mode: 0400}}]
  - name: sec
    secret: {{secretName: sec}}
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
      - {{path: mem, resourceFieldRef: {{containerName: c, resource: limits.memory, divisor: 1Mi}}}}
  - name: all
    projected:
      sources:
      - configMap: {{name: cfg, items: [{{key: a, path: cfg-a}}]}}
      - secret: {{name: sec}}
      - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
      - serviceAccountToken: {{path: token, expirationSeconds: 3607}}
  - name: claim
    persistentVolumeClaim: {{claimName: claim}}
",
            host_dir = host_dir.display()
        ),
    )
    .await;
    let uid = pod.metadata.uid.clone().unwrap();

    let vm = VolumeManager::new(root.path().to_path_buf(), client.clone(), "node-1");
    let volumes = vm.setup(&pod).await.unwrap();
    let vol = |plugin: &str, name: &str| -> PathBuf {
        root.path()
            .join("pods")
            .join(&uid)
            .join("volumes")
            .join(plugin)
            .join(name)
    };

    // emptyDir on disk, 0777; Memory emptyDir on a 1Mi tmpfs.
    use std::os::unix::fs::MetadataExt;
    let scratch = vol("kubernetes.io~empty-dir", "scratch");
    assert!(scratch.is_dir());
    // fsGroup: the group owns the emptyDir (setgid) and the content volumes' files.
    let scratch_meta = std::fs::metadata(&scratch).unwrap();
    assert_eq!(scratch_meta.gid(), 2000);
    assert_eq!(scratch_meta.mode() & 0o7777, 0o2777);
    let mem = vol("kubernetes.io~empty-dir", "mem");
    let mounts = mounted_under(root.path());
    assert!(mounts.contains(&mem.display().to_string()), "{mounts:?}");
    assert!(std::fs::write(mem.join("big"), vec![0u8; 2 * 1024 * 1024]).is_err());
    // hostPath created.
    assert!(host_dir.is_dir());
    assert_eq!(volumes.volumes["host"].host_path, host_dir);
    // configMap: all keys, upstream layout.
    let cfg = vol("kubernetes.io~configmap", "cfg");
    assert_eq!(read(&cfg.join("a")), "one");
    assert_eq!(std::fs::metadata(cfg.join("a")).unwrap().gid(), 2000);
    assert_eq!(
        std::fs::read_link(cfg.join("a")).unwrap(),
        Path::new("..data/a")
    );
    assert!(std::fs::read_link(cfg.join("..data"))
        .unwrap()
        .to_string_lossy()
        .starts_with(".."));
    let items = vol("kubernetes.io~configmap", "cfg-items");
    assert_eq!(read(&items.join("nested/b.txt")), "two");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(items.join("nested/b.txt"))
        .unwrap()
        .permissions()
        .mode();
    // 0400 requested, group-readable for the fsGroup.
    assert_eq!(mode & 0o777, 0o440);
    assert!(!items.join("a").exists());
    // secret on tmpfs.
    let sec = vol("kubernetes.io~secret", "sec");
    assert_eq!(read(&sec.join("password")), "s3cr3t");
    assert!(mounted_under(root.path()).contains(&sec.display().to_string()));
    // downward API.
    let info = vol("kubernetes.io~downward-api", "info");
    assert_eq!(read(&info.join("labels")), "app=\"web\"");
    assert_eq!(read(&info.join("name")), "vols");
    assert!(read(&info.join("mem")).parse::<u64>().unwrap() > 0);
    // projected: all sources, with a token bound to this pod that the API server accepts.
    let all = vol("kubernetes.io~projected", "all");
    assert_eq!(read(&all.join("cfg-a")), "one");
    assert_eq!(read(&all.join("password")), "s3cr3t");
    assert_eq!(read(&all.join("namespace")), "default");
    let token = read(&all.join("token"));
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server=https://127.0.0.1:{}", cp.port))
        .arg(format!("--certificate-authority={}", cp.pki_dir().join("ca.crt").display()))
        .arg(format!("--token={token}"))
        .args(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username} {.status.userInfo.extra.authentication\\.kubernetes\\.io/pod-uid}"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("system:serviceaccount:default:runner [\"{uid}\"]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The claim's PV path.
    assert_eq!(volumes.volumes["claim"].host_path, pv_dir);
    assert!(volumes.volumes["cfg"].read_only);
    assert!(!volumes.volumes["claim"].read_only);

    // Container mounts: subPath and subPathExpr prepared, read-only content volumes.
    let container: &Container = &pod.spec.as_ref().unwrap().containers[0];
    let cri_mounts = volumes.container_mounts(container).unwrap();
    let by_path = |p: &str| {
        cri_mounts
            .iter()
            .find(|m| m.container_path == p)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_path("/logs").host_path,
        scratch.join("logs/vols").display().to_string()
    );
    assert!(scratch.join("logs/vols").is_dir());
    assert!(by_path("/cfg").readonly);
    assert_eq!(
        std::fs::read_to_string(&by_path("/etc/a.conf").host_path).unwrap(),
        "one"
    );
    assert_eq!(by_path("/data").host_path, pv_dir.display().to_string());

    // Live updates without another setup call: the manager watches what pods reference.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let old_data_dir = std::fs::read_link(cfg.join("..data")).unwrap();
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"a": "uno", "c": "three"}})),
    )
    .await
    .unwrap();
    let started = Instant::now();
    eventually(
        Duration::from_secs(10),
        "configMap update in the volume",
        || std::fs::read_to_string(cfg.join("a")).ok().as_deref() == Some("uno"),
    )
    .await;
    eprintln!("configMap change visible after {:?}", started.elapsed());
    assert_eq!(read(&cfg.join("c")), "three");
    assert_ne!(
        std::fs::read_link(cfg.join("..data")).unwrap(),
        old_data_dir
    );
    assert!(
        !cfg.join(&old_data_dir).exists(),
        "old payload directory removed"
    );
    eventually(
        Duration::from_secs(10),
        "projected configMap update",
        || std::fs::read_to_string(all.join("cfg-a")).ok().as_deref() == Some("uno"),
    )
    .await;
    secrets
        .patch(
            "sec",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": "rotated"}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "secret update in the volume",
        || {
            std::fs::read_to_string(sec.join("password"))
                .ok()
                .as_deref()
                == Some("rotated")
        },
    )
    .await;
    // A subPath mount keeps what it resolved to (as upstream: subPaths do not update).

    // Labels follow the pod on the pod worker's next sync.
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let updated = pods
        .patch(
            "vols",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"labels": {"tier": "front"}}})),
        )
        .await
        .unwrap();
    vm.setup(&updated).await.unwrap();
    assert_eq!(read(&info.join("labels")), "app=\"web\"\ntier=\"front\"");

    // Teardown unmounts every tmpfs and removes the volumes.
    vm.teardown(&uid).await.unwrap();
    assert!(
        mounted_under(root.path()).is_empty(),
        "{:?}",
        mounted_under(root.path())
    );
    assert!(!root.path().join("pods").join(&uid).join("volumes").exists());
    // Host and PV data stay.
    assert_eq!(read(&pv_dir.join("existing")), "on the volume");
    assert!(host_dir.is_dir());
}

#[tokio::test]
async fn failed_mounts_read_like_upstream_and_recover() {
    if !is_root() {
        eprintln!("skipped: needs root for tmpfs mounts");
        return;
    }
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    let root = tempfile::tempdir().unwrap();
    let host = tempfile::tempdir().unwrap();
    let file = host.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let vm = VolumeManager::new(root.path().to_path_buf(), client.clone(), "node-1");

    let pod_with = |name: &str, volume: &str| {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: c, image: busybox}}]
  volumes:
  - {volume}
"
        )
    };
    // A missing configMap: FailedMount, then the volume appears once it is created,
    // without another setup call (its watch retries).
    let pod = create_pod(
        &cp,
        "cm",
        &pod_with("cm", "{name: config, configMap: {name: later}}"),
    )
    .await;
    let err = vm.setup(&pod).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"config\" : configmap \"later\" not found"
    );
    assert_eq!(err.reason(), "FailedMount");
    cp.kubectl_ok(&["create", "configmap", "later", "--from-literal=k=v"])
        .unwrap();
    let uid = pod.metadata.uid.clone().unwrap();
    let target = root
        .path()
        .join("pods")
        .join(&uid)
        .join("volumes/kubernetes.io~configmap/config/k");
    eventually(
        Duration::from_secs(10),
        "the configMap volume after creation",
        || target.exists(),
    )
    .await;
    vm.setup(&pod).await.unwrap();
    // Optional: no error, an empty volume.
    let pod = create_pod(
        &cp,
        "opt",
        &pod_with(
            "opt",
            "{name: s, secret: {secretName: nope, optional: true}}",
        ),
    )
    .await;
    vm.setup(&pod).await.unwrap();
    // A missing secret.
    let pod = create_pod(
        &cp,
        "sec",
        &pod_with("sec", "{name: s, secret: {secretName: nope}}"),
    )
    .await;
    assert_eq!(
        vm.setup(&pod).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"s\" : secret \"nope\" not found"
    );
    // A missing key.
    let pod = create_pod(
        &cp,
        "key",
        &pod_with(
            "key",
            "{name: k, configMap: {name: later, items: [{key: zz, path: z}]}}",
        ),
    )
    .await;
    assert_eq!(
        vm.setup(&pod).await.unwrap_err().to_string(),
        "MountVolume.SetUp failed for volume \"k\" : configmap references non-existent config key: zz"
    );
    // hostPath type check.
    let pod = create_pod(
        &cp,
        "hp",
        &pod_with(
            "hp",
            &format!(
                "{{name: h, hostPath: {{path: {}, type: Directory}}}}",
                file.display()
            ),
        ),
    )
    .await;
    assert_eq!(
        vm.setup(&pod).await.unwrap_err().to_string(),
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {} is not a directory",
            file.display()
        )
    );
    // An unbound claim.
    cp.apply(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: pending}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
",
    )
    .unwrap();
    let pod = create_pod(
        &cp,
        "pvc",
        &pod_with(
            "pvc",
            "{name: data, persistentVolumeClaim: {claimName: pending}}",
        ),
    )
    .await;
    let err = vm.setup(&pod).await.unwrap_err();
    assert!(matches!(err, VolumeError::Unprocessable { .. }));
    assert_eq!(
        err.to_string(),
        "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: error processing PVC default/pending: PVC is not bound"
    );
    // A service account that does not exist: the token cannot be fetched.
    let pod = create_pod(
        &cp,
        "tok",
        "apiVersion: v1
kind: Pod
metadata: {name: tok}
spec:
  serviceAccountName: ghost
  containers: [{name: c, image: busybox}]
  volumes:
  - {name: t, projected: {sources: [{serviceAccountToken: {path: token}}]}}
",
    )
    .await;
    let err = vm.setup(&pod).await.unwrap_err().to_string();
    assert!(
        err.starts_with("MountVolume.SetUp failed for volume \"t\" : failed to fetch token: "),
        "{err}"
    );

    // A disk emptyDir over its sizeLimit is reported for eviction.
    let pod = create_pod(
        &cp,
        "big",
        &pod_with("big", "{name: scratch, emptyDir: {sizeLimit: 1Mi}}"),
    )
    .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let volumes = vm.setup(&pod).await.unwrap();
    assert!(vm
        .check_size_limits()
        .await
        .iter()
        .all(|e| e.pod_uid != uid));
    std::fs::write(
        volumes.volumes["scratch"].host_path.join("fill"),
        vec![1u8; 2 * 1024 * 1024],
    )
    .unwrap();
    let evictions = vm.check_size_limits().await;
    let eviction = evictions.iter().find(|e| e.pod_uid == uid).unwrap();
    assert_eq!(eviction.name, "big");
    assert_eq!(
        eviction.message,
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"1Mi\". "
    );

    for name in ["cm", "opt", "sec", "key", "hp", "pvc", "tok", "big"] {
        let pods: Api<Pod> = Api::default_namespaced(client.clone());
        if let Ok(p) = pods.get(name).await {
            vm.teardown(p.metadata.uid.as_deref().unwrap())
                .await
                .unwrap();
        }
    }
    assert!(mounted_under(root.path()).is_empty());
}

/// The ServiceAccount admission plugin gives a pod the `kube-api-access-*` volume, the
/// root CA publisher provides its `kube-root-ca.crt`, and the volume manager turns it into
/// the files a client inside the pod reads (token, ca.crt, namespace).
#[tokio::test]
async fn service_account_api_access_volume() {
    if !is_root() {
        eprintln!("skipped: needs root for tmpfs mounts");
        return;
    }
    let mut cp = ControlPlane::start_with(&["--enable-admission-plugins=ServiceAccount"]).unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=serviceaccount,root-ca-cert-publisher",
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
    let client = cp.client().await.unwrap();
    let ca = read(&cp.pki_dir().join("ca.crt"));
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let published = || async {
        cms.get_opt("kube-root-ca.crt")
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("ca.crt").cloned())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while published().await.as_deref() != Some(ca.as_str()) {
        assert!(
            Instant::now() < deadline,
            "kube-root-ca.crt not published\n{}",
            cp.component_log("kube-controller-manager")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Put back after a change and after a deletion.
    cms.patch(
        "kube-root-ca.crt",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"ca.crt": "bogus"}})),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while published().await.as_deref() != Some(ca.as_str()) {
        assert!(Instant::now() < deadline, "kube-root-ca.crt not restored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cp.kubectl_ok(&["delete", "configmap", "kube-root-ca.crt"])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while published().await.as_deref() != Some(ca.as_str()) {
        assert!(Instant::now() < deadline, "kube-root-ca.crt not recreated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The default service account appears (serviceaccount controller), then pods pass.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cp.kubectl(&["get", "sa", "default"]).unwrap().status.code() != Some(0) {
        assert!(Instant::now() < deadline, "no default service account");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pod = create_pod(
        &cp,
        "api",
        "apiVersion: v1
kind: Pod
metadata: {name: api}
spec:
  containers: [{name: c, image: busybox}]
",
    )
    .await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let volume = &spec.volumes.as_ref().unwrap()[0];
    assert!(
        volume.name.starts_with("kube-api-access-"),
        "{}",
        volume.name
    );
    let mount = &spec.containers[0].volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        mount.mount_path,
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount.read_only, Some(true));

    let root = tempfile::tempdir().unwrap();
    let vm = VolumeManager::new(root.path().to_path_buf(), client.clone(), "node-1");
    let volumes = vm.setup(&pod).await.unwrap();
    let mounts = volumes.container_mounts(&spec.containers[0]).unwrap();
    let dir = PathBuf::from(&mounts[0].host_path);
    assert!(mounts[0].readonly);
    assert_eq!(read(&dir.join("ca.crt")), ca);
    assert_eq!(read(&dir.join("namespace")), "default");
    let token = read(&dir.join("token"));
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server=https://127.0.0.1:{}", cp.port))
        .arg(format!(
            "--certificate-authority={}",
            dir.join("ca.crt").display()
        ))
        .arg(format!("--token={token}"))
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "system:serviceaccount:default:default",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    vm.teardown(pod.metadata.uid.as_deref().unwrap())
        .await
        .unwrap();
    assert!(mounted_under(root.path()).is_empty());
}

/// Exec in a container through the CRI; stdout.
async fn exec(cri: &cri::Cri, container_id: &str, cmd: &[&str]) -> String {
    let out = cri
        .runtime
        .clone()
        .exec_sync(cri::api::ExecSyncRequest {
            container_id: container_id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        out.exit_code,
        0,
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The volume manager's mounts in real containers (containerd + runc through the CRI, as
/// the kubelet's pod workers create them): an emptyDir shared by two containers,
/// configMap and secret content updated in place while the container runs, a subPath,
/// the downward API and a service account token readable inside.
#[tokio::test]
async fn volumes_in_real_containers() {
    use cri::api;
    let ctrd = match integration::containerd::Containerd::start() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: {e:#}");
            return;
        }
    };
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    cp.apply(
        "apiVersion: v1
kind: ServiceAccount
metadata: {name: runner}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: one}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {password: s3cr3t}
",
    )
    .unwrap();
    let pod = create_pod(
        &cp,
        "two",
        "apiVersion: v1
kind: Pod
metadata:
  name: two
  labels: {app: web}
spec:
  serviceAccountName: runner
  containers:
  - name: writer
    image: busybox
    volumeMounts: [{name: shared, mountPath: /shared}]
  - name: reader
    image: busybox
    volumeMounts:
    - {name: shared, mountPath: /in}
    - {name: cfg, mountPath: /cfg}
    - {name: cfg, mountPath: /etc/a.conf, subPath: a}
    - {name: sec, mountPath: /sec}
    - {name: info, mountPath: /info}
    - {name: token, mountPath: /var/run/secrets/tokens}
  volumes:
  - {name: shared, emptyDir: {}}
  - {name: cfg, configMap: {name: cfg}}
  - {name: sec, secret: {secretName: sec}}
  - name: info
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: token
    projected: {sources: [{serviceAccountToken: {path: token, audience: vault}}]}
",
    )
    .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let root = tempfile::tempdir().unwrap();
    let vm = VolumeManager::new(root.path().to_path_buf(), client.clone(), "node-1");
    let volumes = vm.setup(&pod).await.unwrap();

    let cri = ctrd.cri().await.unwrap();
    let mut runtime = cri.runtime.clone();
    let logs = root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let sandbox_config = api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: "two".into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "two".into(),
        log_directory: logs.display().to_string(),
        linux: Some(api::LinuxPodSandboxConfig::default()),
        ..Default::default()
    };
    let sandbox_id = runtime
        .run_pod_sandbox(api::RunPodSandboxRequest {
            config: Some(sandbox_config.clone()),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut ids = Vec::new();
    for (container, script) in pod.spec.as_ref().unwrap().containers.iter().zip([
        "echo hello from writer > /shared/msg; exec sleep 3600",
        "exec sleep 3600",
    ]) {
        let mounts = volumes.container_mounts(container).unwrap();
        let id = runtime
            .create_container(api::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.clone(),
                config: Some(api::ContainerConfig {
                    metadata: Some(api::ContainerMetadata {
                        name: container.name.clone(),
                        attempt: 0,
                    }),
                    image: Some(api::ImageSpec {
                        image: "docker.io/library/busybox:1.35".into(),
                        ..Default::default()
                    }),
                    command: vec!["sh".into(), "-c".into(), script.into()],
                    log_path: format!("{}/0.log", container.name),
                    mounts,
                    linux: Some(api::LinuxContainerConfig::default()),
                    ..Default::default()
                }),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctrd.log()))
            .into_inner()
            .container_id;
        runtime
            .start_container(api::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .unwrap();
        ids.push(id);
    }
    let reader = ids[1].clone();

    // The emptyDir is shared.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cri
            .runtime
            .clone()
            .exec_sync(api::ExecSyncRequest {
                container_id: reader.clone(),
                cmd: vec!["cat".into(), "/in/msg".into()],
                timeout: 5,
            })
            .await
            .unwrap()
            .into_inner();
        if out.exit_code == 0 {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from writer\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer's file never showed up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(exec(&cri, &reader, &["cat", "/cfg/a"]).await, "one");
    assert_eq!(exec(&cri, &reader, &["cat", "/etc/a.conf"]).await, "one");
    assert_eq!(
        exec(&cri, &reader, &["cat", "/sec/password"]).await,
        "s3cr3t"
    );
    assert_eq!(
        exec(&cri, &reader, &["cat", "/info/labels"]).await,
        "app=\"web\""
    );
    let token = exec(&cri, &reader, &["cat", "/var/run/secrets/tokens/token"]).await;
    assert_eq!(token.split('.').count(), 3);
    // Content volumes are read-only in the container.
    let out = cri
        .runtime
        .clone()
        .exec_sync(api::ExecSyncRequest {
            container_id: reader.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo x > /cfg/new".into()],
            timeout: 5,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(out.exit_code, 0);

    // Updates reach the running container.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    cms.patch(
        "cfg",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"data": {"a": "uno"}})),
    )
    .await
    .unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    secrets
        .patch(
            "sec",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"stringData": {"password": "rotated"}})),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cfg = exec(&cri, &reader, &["cat", "/cfg/a"]).await;
        let sec = exec(&cri, &reader, &["cat", "/sec/password"]).await;
        if cfg == "uno" && sec == "rotated" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "container still sees {cfg:?} / {sec:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The subPath file keeps its content, as upstream's subPath mounts do.
    assert_eq!(exec(&cri, &reader, &["cat", "/etc/a.conf"]).await, "one");

    runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: sandbox_id.clone(),
        })
        .await
        .unwrap();
    runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: sandbox_id,
        })
        .await
        .unwrap();
    vm.teardown(&uid).await.unwrap();
    assert!(mounted_under(root.path()).is_empty());
}

/// Through our kubelet on a real node: two containers share an emptyDir, a configMap
/// volume follows its ConfigMap in the running container, and a pod whose ConfigMap is
/// missing gets upstream's FailedMount event and starts once it exists.
#[tokio::test]
async fn kubelet_runs_pods_with_volumes() {
    use integration::node::TestNode;
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let node = TestNode::start().await;
    node.cp
        .kubectl_ok(&["create", "configmap", "cfg", "--from-literal=a=one"])
        .unwrap();
    let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let pod = node
        .create_pod(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "shared"},
            "spec": {
                "containers": [
                    {"name": "writer", "image": "docker.io/library/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "echo hi > /shared/msg; exec sleep 3600"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/shared"}]},
                    {"name": "reader", "image": "docker.io/library/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                     "command": ["sh", "-c", "exec sleep 3600"],
                     "volumeMounts": [{"name": "shared", "mountPath": "/in"}, {"name": "cfg", "mountPath": "/cfg"}]}
                ],
                "volumes": [{"name": "shared", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}]
            }
        }))
        .await;
    node.wait_pod("shared", Duration::from_secs(60), running)
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let reader = node
        .containers_of(&uid)
        .await
        .into_iter()
        .find(|c| c.metadata.as_ref().map(|m| m.name.as_str()) == Some("reader"))
        .unwrap()
        .id;
    let cri = node.ctrd.cri().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = cri
            .runtime
            .clone()
            .exec_sync(cri::api::ExecSyncRequest {
                container_id: reader.clone(),
                cmd: vec!["cat".into(), "/in/msg".into()],
                timeout: 5,
            })
            .await
            .unwrap()
            .into_inner();
        if out.exit_code == 0 {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer's file never showed up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(exec(&cri, &reader, &["cat", "/cfg/a"]).await, "one");
    node.cp
        .kubectl_ok(&[
            "patch",
            "configmap",
            "cfg",
            "--type=merge",
            "-p",
            r#"{"data":{"a":"two"}}"#,
        ])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while exec(&cri, &reader, &["cat", "/cfg/a"]).await != "two" {
        assert!(
            Instant::now() < deadline,
            "the container never saw the update"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A missing ConfigMap: FailedMount, then Running once it is created.
    node.create_pod(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "waits"},
        "spec": {
            "containers": [{"name": "c", "image": "docker.io/library/busybox:1.35", "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", "exec sleep 3600"],
                            "volumeMounts": [{"name": "late", "mountPath": "/late"}]}],
            "volumes": [{"name": "late", "configMap": {"name": "late"}}]
        }
    }))
    .await;
    let want = "MountVolume.SetUp failed for volume \"late\" : configmap \"late\" not found";
    let deadline = Instant::now() + Duration::from_secs(30);
    while !node
        .events_for("waits")
        .await
        .iter()
        .any(|(reason, note)| reason == "FailedMount" && note == want)
    {
        assert!(
            Instant::now() < deadline,
            "no FailedMount event: {:?}",
            node.events_for("waits").await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    node.cp
        .kubectl_ok(&["create", "configmap", "late", "--from-literal=k=v"])
        .unwrap();
    node.wait_pod("waits", Duration::from_secs(60), running)
        .await;
}

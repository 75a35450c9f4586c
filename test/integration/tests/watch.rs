//! Watches: 410 Gone on compacted resourceVersions, kube-rs resuming by re-listing, and
//! the server's graceful shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use integration::ControlPlane;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use tokio::net::{TcpListener, TcpStream};

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .unwrap()
}

fn compact(cp: &ControlPlane, revision: &str) {
    let out = std::process::Command::new("etcdctl")
        .args(["--endpoints", &cp.etcd.endpoint(), "compact", revision])
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn watch_from_a_compacted_revision_gets_410() {
    let cp = ControlPlane::start().unwrap();
    let client = cp.client().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &configmap("a"))
        .await
        .unwrap();
    let old_rv = first.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &configmap("b"))
        .await
        .unwrap();
    let last = api
        .create(&PostParams::default(), &configmap("c"))
        .await
        .unwrap();
    // Watching from `old_rv` needs old_rv+1, which is now older than the compaction.
    compact(&cp, &last.metadata.resource_version.unwrap());
    let mut stream = api
        .watch(&WatchParams::default().timeout(10), &old_rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.contains("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 error event, got {other:?}"),
    }
}

/// A TCP proxy that the test can cut: existing connections are dropped and new ones
/// refused while blocked.
struct Proxy {
    port: u16,
    blocked: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let blocked = Arc::new(AtomicBool::new(false));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let (b, g) = (Arc::clone(&blocked), Arc::clone(&generation));
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if b.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            blocked,
            generation,
        }
    }

    fn cut(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn kube_rs_watcher_relists_after_410() {
    // A small watch cache, so that a watcher cut off for a few writes falls out of it.
    let cp = ControlPlane::start_with(&["--default-watch-cache-size=5"]).unwrap();
    let direct: Api<ConfigMap> = Api::namespaced(cp.client().await.unwrap(), "default");
    direct
        .create(&PostParams::default(), &configmap("before"))
        .await
        .unwrap();

    let proxy = Proxy::start(cp.port).await;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&cp.kubeconfig).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.cluster_url = format!("https://127.0.0.1:{}", proxy.port).parse().unwrap();
    let proxied: Api<ConfigMap> =
        Api::namespaced(kube::Client::try_from(config).unwrap(), "default");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut events = watcher(proxied, watcher::Config::default()).boxed();
        while let Some(ev) = events.next().await {
            if tx.send(ev.map_err(|e| e.to_string())).is_err() {
                return;
            }
        }
    });
    let names_of_init = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<
        Result<watcher::Event<ConfigMap>, String>,
    >| {
        let mut names = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(Ok(watcher::Event::InitApply(cm))) => {
                    names.push(cm.metadata.name.unwrap_or_default())
                }
                Ok(Ok(watcher::Event::InitDone)) => return Some(names),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    };
    let wait_init = async |rx: &mut _| {
        for _ in 0..200 {
            if let Some(names) = names_of_init(rx) {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("watcher did not (re)list");
    };
    assert_eq!(wait_init(&mut rx).await, vec!["before".to_string()]);

    // While the watcher is cut off, history moves on beyond what the server keeps.
    proxy.cut();
    direct
        .create(&PostParams::default(), &configmap("after"))
        .await
        .unwrap();
    for i in 0..10 {
        let name = format!("churn-{i}");
        direct
            .create(&PostParams::default(), &configmap(&name))
            .await
            .unwrap();
        direct.delete(&name, &Default::default()).await.unwrap();
    }
    let after = direct
        .create(&PostParams::default(), &configmap("after-2"))
        .await
        .unwrap();
    compact(&cp, &after.metadata.resource_version.unwrap());
    proxy.restore();

    // Resuming from its last resourceVersion gets 410, so the watcher lists again.
    let mut relisted = wait_init(&mut rx).await;
    relisted.sort();
    assert_eq!(
        relisted,
        vec![
            "after".to_string(),
            "after-2".to_string(),
            "before".to_string()
        ]
    );
    // And it keeps watching.
    direct
        .create(&PostParams::default(), &configmap("later"))
        .await
        .unwrap();
    let mut seen_later = false;
    for _ in 0..100 {
        if let Ok(Ok(watcher::Event::Apply(cm))) = rx.try_recv() {
            if cm.metadata.name.as_deref() == Some("later") {
                seen_later = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen_later);
    task.abort();
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut cp = ControlPlane::start().unwrap();
    // An open watch must not hold the shutdown up.
    let mut watch = cp
        .kubectl_cmd(&["get", "configmaps", "--watch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = cp.terminate_apiserver(Duration::from_secs(20)).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(cp.log().contains("shutdown complete"), "{}", cp.log());
    let _ = watch.kill();
    let _ = watch.wait();
}

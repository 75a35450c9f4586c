//! Cluster-maintenance controllers of kube-controller-manager (service accounts, garbage
//! collection, namespace deletion, resource quota, disruption budgets), driven by the
//! real kubectl against etcd + our API server + our controller manager.

use std::time::{Duration, Instant};

use integration::ControlPlane;

/// Poll `check` until it returns `Some`, failing after `timeout` with `what` and the
/// controller manager's log.
fn wait_for<T>(
    cp: &ControlPlane,
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out waiting for {what}\n--- kube-controller-manager log ---\n{}",
                cp.component_log("kube-controller-manager")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn start(controllers: &str) -> ControlPlane {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--leader-elect=false",
            "--secure-port=0",
            &format!("--controllers={controllers}"),
        ],
    )
    .unwrap();
    cp
}

fn kubectl_out(cp: &ControlPlane, args: &[&str]) -> Option<String> {
    let out = cp.kubectl(args).ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[allow(dead_code)] // used by the tests that follow
fn apply(cp: &ControlPlane, yaml: &str) {
    let out = cp.kubectl_stdin(&["apply", "-f", "-"], yaml).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_namespace_gets_a_default_service_account_again_after_deletion() {
    let cp = start("serviceaccount");
    cp.kubectl_ok(&["create", "namespace", "team-a"]).unwrap();
    for ns in ["default", "kube-system", "team-a"] {
        wait_for(
            &cp,
            Duration::from_secs(30),
            "default service account",
            || {
                kubectl_out(
                    &cp,
                    &["get", "serviceaccount", "default", "-n", ns, "-o", "name"],
                )
            },
        );
    }
    let uid = |cp: &ControlPlane| {
        kubectl_out(
            cp,
            &[
                "get",
                "sa",
                "default",
                "-n",
                "team-a",
                "-o",
                "jsonpath={.metadata.uid}",
            ],
        )
    };
    let first = uid(&cp).unwrap();
    cp.kubectl_ok(&["delete", "serviceaccount", "default", "-n", "team-a"])
        .unwrap();
    let second = wait_for(&cp, Duration::from_secs(30), "re-created account", || {
        uid(&cp).filter(|u| !u.is_empty() && *u != first)
    });
    assert_ne!(first, second);
    // Other accounts are not the controller's business.
    cp.kubectl_ok(&["create", "serviceaccount", "robot", "-n", "team-a"])
        .unwrap();
    cp.kubectl_ok(&["delete", "serviceaccount", "robot", "-n", "team-a"])
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(kubectl_out(&cp, &["get", "sa", "robot", "-n", "team-a"]).is_none());
}

//! Jobs and CronJobs through the real kubectl, with our kube-controller-manager.
//!
//! The first tests play the kubelet's part themselves (they set pod phases through the
//! status subresource), so they need no scheduler or nodes; the last ones run pods on
//! hollow nodes placed by our scheduler, as a user's cluster would.

use std::time::{Duration, Instant};

use integration::ControlPlane;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

/// Poll `f` until it returns `Some`, for at most `timeout`.
async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn job_pods(api: &Api<Pod>, job: &str) -> Vec<Pod> {
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}")))
        .await
        .unwrap()
        .items
}

/// Finish a pod as a kubelet would: its container terminated with `exit_code`.
async fn finish(api: &Api<Pod>, pod: &Pod, exit_code: i32) {
    let phase = if exit_code == 0 {
        "Succeeded"
    } else {
        "Failed"
    };
    let status = json!({"status": {
        "phase": phase,
        "containerStatuses": [{
            "name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0,
            "state": {"terminated": {"exitCode": exit_code, "reason": if exit_code == 0 { "Completed" } else { "Error" }}},
        }],
    }});
    api.patch_status(
        pod.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(status),
    )
    .await
    .unwrap();
}

fn start(cp: &mut ControlPlane, controllers: &str) {
    cp.start_component(
        "kube-controller-manager",
        &[
            &format!("--controllers={controllers}"),
            "--leader-elect=false",
            "--secure-port=0",
        ],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn job_completes_and_kubectl_wait_sees_it() {
    let mut cp = ControlPlane::start().unwrap();
    start(&mut cp, "job");
    cp.kubectl_ok(&[
        "create",
        "job",
        "pi",
        "--image=busybox",
        "--",
        "sh",
        "-c",
        "exit 0",
    ])
    .unwrap();
    // Two completions, one at a time.
    cp.kubectl_ok(&[
        "patch",
        "job",
        "pi",
        "--type=merge",
        "-p",
        r#"{"spec":{"parallelism":1}}"#,
    ])
    .unwrap();
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = eventually(Duration::from_secs(20), "the job's pod", || async {
        job_pods(&pods, "pi").await.into_iter().next()
    })
    .await;
    // The controller's pod: tracked by the finalizer, owned by the job.
    assert_eq!(
        pod.metadata.finalizers.clone().unwrap_or_default(),
        vec!["batch.kubernetes.io/job-tracking".to_string()]
    );
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Job", "pi"));
    assert_eq!(
        cp.jsonpath(&["get", "job", "pi"], "{.status.active}")
            .unwrap(),
        "1"
    );
    finish(&pods, &pod, 0).await;
    let out = cp
        .kubectl_ok(&[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=30s",
        ])
        .unwrap();
    assert!(out.contains("condition met"), "{out}");
    assert_eq!(
        cp.jsonpath(
            &["get", "job", "pi"],
            "{.status.succeeded} {.status.failed} {.status.ready} {.status.conditions[*].type}"
        )
        .unwrap(),
        "1 0 0 SuccessCriteriaMet Complete"
    );
    assert!(!cp
        .jsonpath(&["get", "job", "pi"], "{.status.completionTime}")
        .unwrap()
        .is_empty());
    // The finished pod was counted and let go.
    let counted = eventually(Duration::from_secs(10), "the finalizer removed", || async {
        let p = pods.get(pod.metadata.name.as_deref().unwrap()).await.ok()?;
        p.metadata
            .finalizers
            .as_ref()
            .is_none_or(|f| f.is_empty())
            .then_some(p)
    })
    .await;
    assert_eq!(counted.status.unwrap().phase.as_deref(), Some("Succeeded"));
    let events = cp
        .kubectl_ok(&["get", "events", "--field-selector=involvedObject.name=pi"])
        .unwrap();
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("Completed"), "{events}");
    let table = cp.kubectl_ok(&["get", "jobs"]).unwrap();
    assert!(
        table.contains("Complete") || table.contains("1/1"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_pods_hit_the_backoff_limit_and_the_failure_policy() {
    let mut cp = ControlPlane::start().unwrap();
    start(&mut cp, "job");
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");

    // backoffLimit 0: the first failure fails the job.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"fails"},
            "spec":{"backoffLimit":0,"template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"main","image":"busybox"}]}}}}"#,
    )
    .unwrap();
    let pod = eventually(Duration::from_secs(20), "the failing job's pod", || async {
        job_pods(&pods, "fails").await.into_iter().next()
    })
    .await;
    finish(&pods, &pod, 1).await;
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/fails",
        "--timeout=30s",
    ])
    .unwrap();
    assert_eq!(
        cp.jsonpath(
            &["get", "job", "fails"],
            "{.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}"
        )
        .unwrap(),
        "1 BackoffLimitExceeded"
    );

    // A FailJob rule on exit code 42 ends an Indexed job at once, whatever the limit.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"indexed"},
            "spec":{"completions":3,"parallelism":3,"completionMode":"Indexed","backoffLimit":6,
            "podFailurePolicy":{"rules":[{"action":"FailJob","onExitCodes":{"containerName":"main","operator":"In","values":[42]}}]},
            "template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"main","image":"busybox"}]}}}}"#,
    )
    .unwrap();
    let three = eventually(Duration::from_secs(20), "three indexed pods", || async {
        let ps = job_pods(&pods, "indexed").await;
        (ps.len() == 3).then_some(ps)
    })
    .await;
    let mut indexes: Vec<String> = three
        .iter()
        .map(|p| {
            let idx = p.metadata.annotations.as_ref().unwrap()
                ["batch.kubernetes.io/job-completion-index"]
                .clone();
            assert_eq!(
                p.spec.as_ref().unwrap().hostname.as_deref(),
                Some(format!("indexed-{idx}").as_str())
            );
            idx
        })
        .collect();
    indexes.sort();
    assert_eq!(indexes, vec!["0", "1", "2"]);
    // Index 0 succeeds, then index 1 fails with 42.
    let by_index = |i: &str| {
        three
            .iter()
            .find(|p| {
                p.metadata.annotations.as_ref().unwrap()["batch.kubernetes.io/job-completion-index"]
                    == i
            })
            .unwrap()
            .clone()
    };
    finish(&pods, &by_index("0"), 0).await;
    eventually(Duration::from_secs(20), "index 0 recorded", || async {
        let out = cp
            .jsonpath(&["get", "job", "indexed"], "{.status.completedIndexes}")
            .unwrap();
        (out == "0").then_some(())
    })
    .await;
    finish(&pods, &by_index("1"), 42).await;
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=failed",
        "job/indexed",
        "--timeout=30s",
    ])
    .unwrap();
    let reason = cp.jsonpath(&["get", "job", "indexed"],
        "{.status.conditions[?(@.type==\"Failed\")].reason}:{.status.conditions[?(@.type==\"Failed\")].message}",).unwrap();
    assert_eq!(
        reason,
        "PodFailurePolicy:Container main for pod default/".to_string()
            + by_index("1").metadata.name.as_deref().unwrap()
            + " failed with exit code 42 matching FailJob rule at index 0"
    );
    // The remaining pod was deleted and, as the job failed, counted as failed.
    assert_eq!(
        cp.jsonpath(
            &["get", "job", "indexed"],
            "{.status.succeeded} {.status.failed} {.status.active}"
        )
        .unwrap(),
        "1 2 0"
    );
}

fn have_cluster_binaries() -> bool {
    ["hollow-node", "kube-scheduler"]
        .iter()
        .all(|b| integration::binary(b).exists())
}

/// On hollow nodes: a Job to completion (created and awaited with kubectl), and a job
/// whose pods exit 1 failing after its backoff limit.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_on_hollow_nodes() {
    if !have_cluster_binaries() {
        eprintln!("hollow-node or kube-scheduler not built: skipping");
        return;
    }
    let mut cp = ControlPlane::start().unwrap();
    start(&mut cp, "job");
    cp.start_component("kube-scheduler", &["--leader-elect=false"])
        .unwrap();
    cp.start_component("hollow-node", &["--nodes=2", "--pod-run-duration=1s"])
        .unwrap();
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"pi"},
            "spec":{"completions":3,"parallelism":2,"template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"pi","image":"perl"}]}}}}"#,
    )
    .unwrap();
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=45s",
    ])
    .unwrap();
    assert_eq!(
        cp.jsonpath(&["get", "job", "pi"], "{.status.succeeded}")
            .unwrap(),
        "3"
    );
    // Exit code 3 on every run; backoffLimit 1: two failures (10 s apart) fail it.
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"bad"},
            "spec":{"backoffLimit":1,"template":{"metadata":{"annotations":{"hollow-node.k8s-rs.io/exit-code":"3"}},
            "spec":{"restartPolicy":"Never","containers":[{"name":"main","image":"busybox"}]}}}}"#,
    )
    .unwrap();
    cp.kubectl_ok(&["wait", "--for=condition=failed", "job/bad", "--timeout=45s"])
        .unwrap();
    assert_eq!(
        cp.jsonpath(
            &["get", "job", "bad"],
            "{.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}"
        )
        .unwrap(),
        "2 BackoffLimitExceeded"
    );
}

/// ttl-after-finished deletes a finished job; podgc keeps terminated pods under
/// `--terminated-pod-gc-threshold`, oldest deleted first.
#[tokio::test(flavor = "multi_thread")]
async fn finished_jobs_expire_and_terminated_pods_are_collected() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--controllers=job,ttl-after-finished,podgc",
            "--leader-elect=false",
            "--secure-port=0",
            "--terminated-pod-gc-threshold=2",
        ],
    )
    .unwrap();
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"short"},
            "spec":{"ttlSecondsAfterFinished":1,"template":{"spec":{"restartPolicy":"Never",
            "containers":[{"name":"main","image":"busybox"}]}}}}"#,
    )
    .unwrap();
    let pod = eventually(Duration::from_secs(20), "the job's pod", || async {
        job_pods(&pods, "short").await.into_iter().next()
    })
    .await;
    finish(&pods, &pod, 0).await;
    // Deleted in the foreground: gone, or marked for deletion waiting for the garbage
    // collector (not running here) to remove its pods first.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    eventually(Duration::from_secs(20), "the job deleted", || async {
        match jobs.get_opt("short").await.unwrap() {
            None => Some(()),
            Some(j) => j.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;

    // Three more terminated pods: with the job's, four; two stay, the oldest go.
    for name in ["gc-a", "gc-b", "gc-c"] {
        cp.kubectl_ok(&["run", name, "--image=busybox", "--restart=Never"])
            .unwrap();
        let p = pods.get(name).await.unwrap();
        finish(&pods, &p, 0).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    eventually(
        Duration::from_secs(45),
        "terminated pods collected",
        || async {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            (names.len() == 2).then_some(names)
        },
    )
    .await;
    assert!(pods.get_opt("gc-c").await.unwrap().is_some());
    assert!(pods.get_opt("gc-b").await.unwrap().is_some());
}

/// A CronJob firing every minute: `kubectl create job --from=cronjob/...` makes a job by
/// hand, the schedule makes `hello-<minutes>` with the scheduled-time annotation; the
/// status follows the job through to lastSuccessfulTime.
#[tokio::test(flavor = "multi_thread")]
async fn cronjob_runs_on_schedule_and_by_hand() {
    let mut cp = ControlPlane::start().unwrap();
    start(&mut cp, "job,cronjob");
    let client = cp.client().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    cp.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"hello"},
            "spec":{"schedule":"*/1 * * * *","timeZone":"Etc/UTC","successfulJobsHistoryLimit":1,
            "jobTemplate":{"spec":{"template":{"spec":{"restartPolicy":"OnFailure",
            "containers":[{"name":"main","image":"busybox"}]}}}}}}"#,
    )
    .unwrap();
    cp.kubectl_ok(&["create", "job", "by-hand", "--from=cronjob/hello"])
        .unwrap();
    assert_eq!(
        cp.jsonpath(
            &["get", "job", "by-hand"],
            "{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}"
        )
        .unwrap(),
        "manual"
    );
    let pod = eventually(Duration::from_secs(20), "the manual job's pod", || async {
        job_pods(&pods, "by-hand").await.into_iter().next()
    })
    .await;
    finish(&pods, &pod, 0).await;
    cp.kubectl_ok(&[
        "wait",
        "--for=condition=complete",
        "job/by-hand",
        "--timeout=30s",
    ])
    .unwrap();

    // The first scheduled run, at the next minute.
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    let scheduled = eventually(Duration::from_secs(75), "the scheduled job", || async {
        jobs.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|j| {
                j.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("hello-"))
            })
    })
    .await;
    let name = scheduled.metadata.name.clone().unwrap();
    let minutes: i64 = name.trim_start_matches("hello-").parse().unwrap();
    let stamp = &scheduled.metadata.annotations.as_ref().unwrap()
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"];
    let at: jiff::Timestamp = stamp.parse().unwrap();
    assert_eq!(at.as_second(), minutes * 60, "{stamp}");
    eventually(Duration::from_secs(10), "status.active", || async {
        let active = cp
            .jsonpath(
                &["get", "cronjob", "hello"],
                "{.status.active[*].name} {.status.lastScheduleTime}",
            )
            .unwrap();
        active.starts_with(&name).then_some(())
    })
    .await;
    let pod = eventually(
        Duration::from_secs(20),
        "the scheduled job's pod",
        || async { job_pods(&pods, &name).await.into_iter().next() },
    )
    .await;
    finish(&pods, &pod, 0).await;
    eventually(Duration::from_secs(20), "lastSuccessfulTime", || async {
        let s = cp
            .jsonpath(
                &["get", "cronjob", "hello"],
                "{.status.active}|{.status.lastSuccessfulTime}",
            )
            .unwrap();
        (s.starts_with('|') && s.len() > 1).then_some(())
    })
    .await;
    let events = cp
        .kubectl_ok(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=hello",
        ])
        .unwrap();
    assert!(events.contains("SuccessfulCreate"), "{events}");
    assert!(events.contains("SawCompletedJob"), "{events}");
}

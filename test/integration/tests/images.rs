//! The kubelet's image manager and image GC against a real containerd (the fixture):
//! pull policies with local images, ErrImagePull then ImagePullBackOff for an image that
//! cannot be pulled, and GC removing an unused image while keeping the sandbox image and
//! images in use. Needs root.

use std::process::Command;
use std::time::{Duration, Instant};

use cri::api;
use integration::Containerd;
use k8s_openapi::api::core::v1::Container;
use kubelet::images::gc::GcError;
use kubelet::images::{EventType, ImageError, ImageGcManager, ImageGcPolicy, ImageManager};

fn container(image: &str, policy: &str) -> Container {
    Container {
        name: "c".into(),
        image: Some(image.into()),
        image_pull_policy: Some(policy.into()),
        ..Default::default()
    }
}

async fn image_present(ctrd: &Containerd, name: &str) -> bool {
    ctrd.cri()
        .await
        .unwrap()
        .image
        .image_status(api::ImageStatusRequest {
            image: Some(api::ImageSpec {
                image: name.into(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .is_some()
}

#[tokio::test]
async fn pull_policies_and_back_off() {
    let ctrd = Containerd::start().unwrap();
    let images = ImageManager::new(ctrd.cri().await.unwrap());

    let (result, events) = images
        .ensure_image("uid-1", &container("busybox:1.35", "IfNotPresent"))
        .await;
    assert!(result.unwrap().starts_with("sha256:"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "Pulled");
    assert_eq!(
        events[0].message,
        "Container image \"busybox:1.35\" already present on machine"
    );

    let (result, events) = images
        .ensure_image("uid-1", &container("busybox:0.1", "Never"))
        .await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ErrImageNeverPull");
    assert_eq!(events[0].reason, "ErrImageNeverPull");
    assert_eq!(events[0].type_, EventType::Warning);

    // Always pulls, from the fixture's local registry (docker.io resolves only there).
    let (result, events) = images
        .ensure_image("uid-1", &container("busybox", "Always"))
        .await;
    assert!(result.unwrap().starts_with("sha256:"));
    let reasons: Vec<_> = events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Pulling", "Pulled"]);
    assert!(
        events[1]
            .message
            .starts_with("Successfully pulled image \"busybox\" in "),
        "{}",
        events[1].message
    );
    assert!(
        events[1].message.ends_with(" bytes."),
        "{}",
        events[1].message
    );
    // A default policy for an untagged image is Always too.
    let mut untagged = container("busybox", "Always");
    untagged.image_pull_policy = None;
    assert!(images.ensure_image("uid-1", &untagged).await.0.is_ok());

    // An image the registry does not have: the pull asks the local registry only.
    let (result, _) = images
        .ensure_image(
            "uid-1",
            &container("docker.io/library/missing:1", "IfNotPresent"),
        )
        .await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ErrImagePull");
    assert!(err.waiting_message().contains("not found"), "{err:?}");
    let requests = ctrd.registry_requests();
    assert!(
        requests
            .iter()
            .any(|r| r.ends_with(" /v2/library/missing/manifests/1")),
        "{requests:?}"
    );

    // Nothing listens on 127.0.0.1:1: the pull fails at once, without leaving the host.
    let missing = "127.0.0.1:1/missing:1";
    let (result, events) = images
        .ensure_image("uid-1", &container(missing, "IfNotPresent"))
        .await;
    let err = result.unwrap_err();
    assert!(matches!(err, ImageError::Pull { .. }), "{err:?}");
    assert_eq!(err.reason(), "ErrImagePull");
    assert!(!err.waiting_message().is_empty());
    let reasons: Vec<_> = events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Pulling", "Failed"]);
    assert!(events[1]
        .message
        .starts_with(&format!("Failed to pull image \"{missing}\": ")));

    // Within the back-off period the runtime is not asked again.
    let (result, events) = images
        .ensure_image("uid-1", &container(missing, "IfNotPresent"))
        .await;
    let err = result.unwrap_err();
    assert_eq!(err.reason(), "ImagePullBackOff");
    assert_eq!(
        err.waiting_message(),
        format!("Back-off pulling image \"{missing}\"")
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "BackOff");

    // The back-off is per pod: another pod pulls (and fails) on its own.
    let (result, _) = images
        .ensure_image("uid-2", &container(missing, "IfNotPresent"))
        .await;
    assert_eq!(result.unwrap_err().reason(), "ErrImagePull");
}

#[tokio::test]
async fn gc_removes_unused_images_only() {
    let ctrd = Containerd::start().unwrap();
    // An extra image nothing uses.
    let victim = "docker.io/library/gc-victim:1";
    let mut image = image_builder::Image::new([victim]).unwrap();
    image
        .file("/data", vec![7u8; 256 * 1024], 0o644)
        .unwrap()
        .host_binary("/bin/busybox", "/bin/sh")
        .unwrap();
    let archive = ctrd.path("gc-victim.tar");
    image.write_archive(&archive).unwrap();
    let out = Command::new("ctr")
        .arg("--address")
        .arg(ctrd.socket())
        .args(["-n", "k8s.io", "images", "import"])
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(image_present(&ctrd, victim).await);

    let pod = ctrd.run_busybox_pod("gc", "sleep 3600").await.unwrap();
    let cri = ctrd.cri().await.unwrap();
    let sandbox_image = "registry.k8s.io/pause:3.10";
    assert_eq!(
        kubelet::images::gc::runtime_sandbox_image(&cri)
            .await
            .as_deref(),
        Some(sandbox_image)
    );

    // Too young to be collected.
    let young = ImageGcManager::new(
        cri.clone(),
        ImageGcPolicy {
            high_threshold_percent: 0,
            low_threshold_percent: 0,
            min_age: Duration::from_secs(3600),
        },
        sandbox_image,
    );
    assert_eq!(young.free_space(u64::MAX, Instant::now()).await.unwrap(), 0);
    assert!(image_present(&ctrd, victim).await);

    // High threshold 0 %: always collect, and low 0 % asks for the whole disk, which
    // cannot be freed: the victim goes and the shortfall is reported as upstream does.
    let gc = ImageGcManager::new(
        cri.clone(),
        ImageGcPolicy {
            high_threshold_percent: 0,
            low_threshold_percent: 0,
            min_age: Duration::ZERO,
        },
        sandbox_image,
    );
    let stats = gc.image_fs_stats().await.unwrap();
    assert!(stats.capacity > 0 && stats.available <= stats.capacity);
    let err = gc.garbage_collect().await.unwrap_err();
    match &err {
        GcError::NotEnoughFreed { attempted, freed } => {
            assert!(*freed >= 256 * 1024, "freed {freed}");
            assert!(attempted > freed);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.event().reason, "FreeDiskSpaceFailed");
    assert!(!image_present(&ctrd, victim).await, "unused image kept");
    assert!(
        image_present(&ctrd, sandbox_image).await,
        "sandbox image removed"
    );
    assert!(
        image_present(&ctrd, "docker.io/library/busybox:1.35").await,
        "image in use removed"
    );

    // Once the container is gone busybox is unused too; the sandbox image stays.
    let mut runtime = cri.runtime.clone();
    runtime
        .stop_pod_sandbox(api::StopPodSandboxRequest {
            pod_sandbox_id: pod.sandbox_id.clone(),
        })
        .await
        .unwrap();
    runtime
        .remove_pod_sandbox(api::RemovePodSandboxRequest {
            pod_sandbox_id: pod.sandbox_id.clone(),
        })
        .await
        .unwrap();
    let freed = gc.free_space(u64::MAX, Instant::now()).await.unwrap();
    assert!(freed > 0);
    assert!(!image_present(&ctrd, "docker.io/library/busybox:1.35").await);
    assert!(image_present(&ctrd, sandbox_image).await);
}

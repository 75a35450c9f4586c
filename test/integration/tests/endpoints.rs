//! The endpoints and endpointslice controllers of kube-controller-manager: services
//! with selectors, pods whose status is set through `pods/status` (as a kubelet
//! would), read back through the real kubectl.

use std::time::{Duration, Instant};

use integration::ControlPlane;
use serde_json::Value;

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

fn json(cp: &ControlPlane, args: &[&str]) -> Option<Value> {
    let mut full = args.to_vec();
    full.extend(["-o", "json"]);
    let out = cp.kubectl(&full).ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// A pod bound to `node` with a container port named `http`; `ready` and `ip` set
/// through the status subresource.
fn pod(cp: &ControlPlane, name: &str, app: &str, port: u16, extra_spec: &str) {
    cp.apply(&format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: {app}
spec:
  nodeName: node-1
{extra_spec}  containers:
  - name: c
    image: nginx
    ports:
    - name: http
      containerPort: {port}
"
    ))
    .unwrap();
}

fn set_status(cp: &ControlPlane, name: &str, ip: &str, ready: bool) {
    let status = if ready { "True" } else { "False" };
    let patch = format!(
        r#"{{"status":{{"phase":"Running","podIP":"{ip}","podIPs":[{{"ip":"{ip}"}}],"conditions":[{{"type":"Ready","status":"{status}"}}]}}}}"#
    );
    cp.kubectl_ok(&[
        "patch",
        "pod",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ])
    .unwrap();
}

fn ips(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["ip"].as_str().map(String::from))
        .collect();
    out.sort();
    out
}

fn slices(cp: &ControlPlane, service: &str) -> Vec<Value> {
    json(
        cp,
        &[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={service}"),
        ],
    )
    .and_then(|v| v["items"].as_array().cloned())
    .unwrap_or_default()
}

const WEB: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    tier: front
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
";

#[test]
fn endpoints_and_slices_follow_pods_readiness_and_named_ports() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=endpoints,endpointslice",
            "--max-endpoints-per-slice=2",
        ],
    )
    .unwrap();
    let timeout = Duration::from_secs(30);
    cp.apply(WEB).unwrap();
    pod(&cp, "web-0", "web", 8080, "");
    pod(&cp, "web-1", "web", 8080, "");
    pod(&cp, "web-2", "web", 9090, "");
    set_status(&cp, "web-0", "10.1.0.10", true);
    set_status(&cp, "web-1", "10.1.0.11", false);
    set_status(&cp, "web-2", "10.1.0.12", true);

    // Endpoints: one subset per resolved port, not-ready pods apart.
    let ep = wait_for(&cp, timeout, "endpoints of web", || {
        let ep = json(&cp, &["get", "endpoints", "web"])?;
        (ep["subsets"].as_array().map(Vec::len) == Some(2)
            && ep["subsets"][0]["notReadyAddresses"].is_array())
        .then_some(ep)
    });
    let s0 = &ep["subsets"][0];
    assert_eq!(ips(&s0["addresses"]), vec!["10.1.0.10"]);
    assert_eq!(ips(&s0["notReadyAddresses"]), vec!["10.1.0.11"]);
    assert_eq!(s0["ports"][0]["port"], 8080);
    assert_eq!(s0["ports"][0]["name"], "http");
    assert_eq!(s0["addresses"][0]["nodeName"], "node-1");
    assert_eq!(s0["addresses"][0]["targetRef"]["name"], "web-0");
    assert_eq!(ips(&ep["subsets"][1]["addresses"]), vec!["10.1.0.12"]);
    assert_eq!(ep["subsets"][1]["ports"][0]["port"], 9090);
    assert_eq!(ep["metadata"]["labels"]["tier"], "front");
    assert_eq!(
        ep["metadata"]["labels"]["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );
    assert!(
        ep["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"]
            .is_string()
    );
    let table = cp.kubectl_ok(&["get", "endpoints", "web"]).unwrap();
    assert!(table.contains("10.1.0.10:8080"), "{table}");

    // Slices: grouped by port, conditions per endpoint.
    let found = wait_for(&cp, timeout, "slices of web", || {
        let s = slices(&cp, "web");
        let total: usize = s
            .iter()
            .map(|x| x["endpoints"].as_array().map_or(0, Vec::len))
            .sum();
        (total == 3).then_some(s)
    });
    assert_eq!(found.len(), 2);
    for s in &found {
        assert_eq!(
            s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(s["addressType"], "IPv4");
        assert_eq!(s["metadata"]["ownerReferences"][0]["kind"], "Service");
        assert!(s["metadata"]["generateName"] == "web-");
    }
    let by_port = |port: i64| {
        found
            .iter()
            .find(|s| s["ports"][0]["port"] == port)
            .cloned()
            .unwrap()
    };
    let s8080 = by_port(8080);
    let not_ready = s8080["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["addresses"][0] == "10.1.0.11")
        .unwrap();
    assert_eq!(not_ready["conditions"]["ready"], false);
    assert_eq!(not_ready["conditions"]["serving"], false);
    assert_eq!(not_ready["conditions"]["terminating"], false);
    assert_eq!(not_ready["nodeName"], "node-1");
    assert_eq!(not_ready["targetRef"]["name"], "web-1");

    // Readiness flips: the address moves.
    set_status(&cp, "web-1", "10.1.0.11", true);
    wait_for(&cp, timeout, "web-1 ready in endpoints", || {
        let ep = json(&cp, &["get", "endpoints", "web"])?;
        (ips(&ep["subsets"][0]["addresses"]) == vec!["10.1.0.10", "10.1.0.11"]
            && ep["subsets"][0]["notReadyAddresses"].is_null())
        .then_some(())
    });
    set_status(&cp, "web-0", "10.1.0.10", false);
    wait_for(&cp, timeout, "web-0 not ready in endpoints", || {
        let ep = json(&cp, &["get", "endpoints", "web"])?;
        (ips(&ep["subsets"][0]["notReadyAddresses"]) == vec!["10.1.0.10"]).then_some(())
    });
    wait_for(&cp, timeout, "web-0 not ready in its slice", || {
        let s = slices(&cp, "web");
        s.iter()
            .flat_map(|x| x["endpoints"].as_array().cloned().unwrap_or_default())
            .any(|e| e["addresses"][0] == "10.1.0.10" && e["conditions"]["ready"] == false)
            .then_some(())
    });

    // More endpoints than fit in one slice (--max-endpoints-per-slice=2).
    for (i, name) in ["web-3", "web-4"].iter().enumerate() {
        pod(&cp, name, "web", 8080, "");
        set_status(&cp, name, &format!("10.1.0.{}", 13 + i), true);
    }
    wait_for(
        &cp,
        timeout,
        "port-8080 endpoints split over slices",
        || {
            let s = slices(&cp, "web");
            let mut sizes: Vec<usize> = s
                .iter()
                .filter(|x| x["ports"][0]["port"] == 8080)
                .map(|x| x["endpoints"].as_array().map_or(0, Vec::len))
                .collect();
            sizes.sort();
            (sizes == vec![2, 2]).then_some(())
        },
    );

    // The service goes: so do its Endpoints.
    cp.kubectl_ok(&["delete", "service", "web"]).unwrap();
    wait_for(&cp, timeout, "endpoints deleted with the service", || {
        json(&cp, &["get", "endpoints", "web"])
            .is_none()
            .then_some(())
    });
}

#[test]
fn headless_and_publish_not_ready_services() {
    let mut cp = ControlPlane::start().unwrap();
    cp.start_component(
        "kube-controller-manager",
        &[
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=endpoints,endpointslice",
        ],
    )
    .unwrap();
    let timeout = Duration::from_secs(30);
    cp.apply(
        "apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  publishNotReadyAddresses: true
  selector:
    app: db
  ports:
  - name: sql
    port: 5432
",
    )
    .unwrap();
    pod(
        &cp,
        "db-0",
        "db",
        5432,
        "  hostname: db-0\n  subdomain: db\n",
    );
    set_status(&cp, "db-0", "10.2.0.5", false);
    let ep = wait_for(&cp, timeout, "endpoints of db", || {
        let ep = json(&cp, &["get", "endpoints", "db"])?;
        ep["subsets"][0]["addresses"].is_array().then_some(ep)
    });
    // Not ready, but published; the pod's hostname is published for its subdomain.
    let addr = &ep["subsets"][0]["addresses"][0];
    assert_eq!(addr["ip"], "10.2.0.5");
    assert_eq!(addr["hostname"], "db-0");
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 5432);
    assert_eq!(
        ep["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );
    let slice = wait_for(&cp, timeout, "slice of db", || {
        slices(&cp, "db")
            .into_iter()
            .find(|s| s["endpoints"].as_array().is_some_and(|e| !e.is_empty()))
    });
    let e = &slice["endpoints"][0];
    assert_eq!(e["hostname"], "db-0");
    assert_eq!(e["conditions"]["ready"], true);
    assert_eq!(e["conditions"]["serving"], false);
    assert_eq!(
        slice["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );

    // A service selecting nothing has an empty Endpoints and one placeholder slice.
    cp.apply(
        "apiVersion: v1
kind: Service
metadata:
  name: nothing
spec:
  selector:
    app: none
  ports:
  - port: 80
",
    )
    .unwrap();
    wait_for(&cp, timeout, "placeholder slice", || {
        let s = slices(&cp, "nothing");
        (s.len() == 1 && s[0]["endpoints"].as_array().is_none_or(Vec::is_empty)).then_some(())
    });
    let ep = wait_for(&cp, timeout, "empty endpoints", || {
        json(&cp, &["get", "endpoints", "nothing"])
    });
    assert!(ep["subsets"].is_null(), "{ep}");
}

use integration::ControlPlane;
#[test]
fn scratch() {
    let cp = ControlPlane::start().unwrap();
    println!("{}", cp.kubectl_ok(&["create", "deployment", "nginx", "--image=nginx", "--port=80"]).unwrap());
    println!("{}", cp.kubectl_ok(&["get", "deploy", "nginx", "-o", "yaml", "--show-managed-fields"]).unwrap());
    println!("{}", cp.kubectl_ok(&["scale", "deploy", "nginx", "--replicas=3"]).unwrap());
    println!("{}", cp.kubectl_ok(&["get", "deploy", "nginx", "-o", "yaml", "--show-managed-fields"]).unwrap());
    println!("{}", cp.kubectl_ok(&["get", "ns", "default", "-o", "yaml", "--show-managed-fields"]).unwrap());
    println!("{}", cp.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]).unwrap());
    println!("{}", cp.kubectl_ok(&["get", "svc", "web", "-o", "yaml", "--show-managed-fields"]).unwrap());
}

#!/usr/bin/env bash
# Brings up etcd, kube-apiserver, kube-controller-manager and kube-scheduler on this
# machine (state in a temporary directory) and prints how to point kubectl at them.
# Ctrl-C stops everything. `--kubelet` (needs root) adds a real node: a private containerd
# (own root, state, socket, CNI bridge k8srslocal0 with podCIDR 10.244.0.0/24; this script
# writes the CNI conflist, as an admin or network addon would) with the locally built
# images imported (hack/build-images.sh), and our kubelet (node IP 127.0.0.1, static pods
# from DIR/manifests). `--hollow-nodes N` adds N hollow nodes (test/hollow-node: Node
# objects whose pods are reported Running without containers).
#   hack/local-up-cluster.sh [--dir DIR] [--port PORT] [--kubelet] [--hollow-nodes N]
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

dir=""
port=6443
hollow_nodes=0
kubelet=false
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --hollow-nodes) hollow_nodes="$2"; shift 2 ;;
        --kubelet) kubelet=true; shift ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[ -n "$dir" ] || dir="$(mktemp -d /tmp/k8s-rs-local.XXXXXX)"
mkdir -p "$dir"

# PROFILE=debug SKIP_BUILD=1 reuses existing debug builds.
PROFILE="${PROFILE:-release}"
bin="$CARGO_TARGET_DIR/$PROFILE"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --profile "$PROFILE" -p kube-apiserver -p kube-controller-manager -p kube-scheduler -p hollow-node -p kubelet
fi

etcd_port=$(free_port)
etcd_peer=$(free_port)
etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
pids=("$etcd_pid")
controllers=()
kubelet_pid=""
no_containers() {
    [ -z "$(timeout 5 ctr --address "$dir/containerd.sock" -n k8s.io containers ls -q 2>/dev/null)" ]
}
cleanup() {
    if [ -n "$kubelet_pid" ]; then
        # Let the kubelet remove its pods (CNI DEL, mounts, cgroups) before stopping it:
        # controllers first, so nothing recreates them.
        for p in "${controllers[@]}"; do kill "$p" 2>/dev/null || true; done
        rm -f "$dir"/manifests/*
        KUBECONFIG="$kubeconfig" kubectl delete pods --all -A --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
        wait_for 60 no_containers || true
    fi
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if $kubelet; then
        # containerd is gone: stop what it left running, then its bridge and cgroups.
        for shim in $(pgrep -f "containerd-shim.*-address $dir/containerd.sock" || true); do
            kill -9 "$shim" 2>/dev/null || true
        done
        for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
            umount -l "$m" 2>/dev/null || true
        done
        ip link delete k8srslocal0 2>/dev/null || true
        find /sys/fs/cgroup/*/k8s-rs-local -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM
wait_for 20 etcdctl --endpoints "127.0.0.1:$etcd_port" endpoint health || { echo "etcd did not start; see $dir/etcd.log" >&2; exit 1; }

token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$token,admin,admin,\"system:masters\"" > "$dir/tokens.csv"
chmod 600 "$dir/tokens.csv"

"$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$port" --bind-address 127.0.0.1 \
    --cert-dir "$dir/certs" --token-auth-file "$dir/tokens.csv" --enable-admission-plugins ServiceAccount \
    >"$dir/kube-apiserver.log" 2>&1 &
pids+=("$!")
wait_for 30 test -s "$dir/certs/apiserver.crt" || { echo "kube-apiserver did not start; see $dir/kube-apiserver.log" >&2; exit 1; }

kubeconfig="$dir/admin.kubeconfig"
KUBECONFIG="$kubeconfig" kubectl config set-cluster local --server "https://127.0.0.1:$port" \
    --certificate-authority "$dir/certs/apiserver.crt" --embed-certs >/dev/null
KUBECONFIG="$kubeconfig" kubectl config set-credentials admin --token "$token" >/dev/null
KUBECONFIG="$kubeconfig" kubectl config set-context local --cluster local --user admin >/dev/null
KUBECONFIG="$kubeconfig" kubectl config use-context local >/dev/null
wait_for 30 env KUBECONFIG="$kubeconfig" kubectl get --raw /readyz || { echo "kube-apiserver not ready; see $dir/kube-apiserver.log" >&2; exit 1; }

# The other components bind their health ports on free ports so that several local
# clusters (and the tests) can run side by side.
"$bin/kube-controller-manager" --kubeconfig "$kubeconfig" --secure-port "$(free_port)" \
    --allocate-node-cidrs --cluster-cidr 10.244.0.0/16 >"$dir/kube-controller-manager.log" 2>&1 &
pids+=("$!")
controllers+=("$!")
"$bin/kube-scheduler" --kubeconfig "$kubeconfig" --secure-port "$(free_port)" >"$dir/kube-scheduler.log" 2>&1 &
pids+=("$!")
controllers+=("$!")
if [ "$hollow_nodes" -gt 0 ]; then
    "$bin/hollow-node" --kubeconfig "$kubeconfig" --nodes "$hollow_nodes" >"$dir/hollow-node.log" 2>&1 &
    pids+=("$!")
fi

if $kubelet; then
    [ "$(id -u)" = 0 ] || { echo "--kubelet needs root (containerd, runc, CNI)" >&2; exit 1; }
    mkdir -p "$dir/cni" "$dir/manifests" "$dir/kubelet" "$dir/pods-logs"
    cat >"$dir/cni/10-k8s-rs.conflist" <<CNI
{"cniVersion": "1.0.0", "name": "k8s-rs-local", "plugins": [
  {"type": "bridge", "bridge": "k8srslocal0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$dir/cni-ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
CNI
    cat >"$dir/containerd.toml" <<TOML
version = 2
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  sandbox_image = "registry.k8s.io/pause:3.10"
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  Root = "$dir/containerd-state/runc"
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$dir/cni"
  max_conf_num = 1
TOML
    containerd --config "$dir/containerd.toml" --root "$dir/containerd-root" --state "$dir/containerd-state" \
        --address "$dir/containerd.sock" >"$dir/containerd.log" 2>&1 &
    pids+=("$!")
    wait_for 30 ctr --address "$dir/containerd.sock" version || { echo "containerd did not start; see $dir/containerd.log" >&2; exit 1; }
    hack/build-images.sh --import --address "$dir/containerd.sock" >/dev/null
    cat >"$dir/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$dir/containerd.sock
staticPodPath: $dir/manifests
podLogsDir: $dir/pods-logs
cgroupRoot: /k8s-rs-local
port: $(free_port)
healthzPort: $(free_port)
clusterDomain: cluster.local
podCIDR: 10.244.0.0/24
YAML
    "$bin/kubelet" --kubeconfig "$kubeconfig" --config "$dir/kubelet.yaml" --root-dir "$dir/kubelet" \
        --node-ip 127.0.0.1 >"$dir/kubelet.log" 2>&1 &
    kubelet_pid=$!
    pids+=("$kubelet_pid")
fi

cat <<MSG
Cluster is up (state and logs in $dir).
  export KUBECONFIG=$kubeconfig
  kubectl get namespaces
Press Ctrl-C to stop.
MSG
wait "${pids[1]}"

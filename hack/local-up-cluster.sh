#!/usr/bin/env bash
# Brings up etcd, kube-apiserver, kube-controller-manager and kube-scheduler on this
# machine (state in a temporary directory) and prints how to point kubectl at them.
# Ctrl-C stops everything. Until the kubelet lands, `--hollow-nodes N` adds N hollow
# nodes (test/hollow-node: Node objects whose pods are reported Running without
# containers) so that workloads can be tried end to end.
#   hack/local-up-cluster.sh [--dir DIR] [--port PORT] [--hollow-nodes N]
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

dir=""
port=6443
hollow_nodes=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --hollow-nodes) hollow_nodes="$2"; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[ -n "$dir" ] || dir="$(mktemp -d /tmp/k8s-rs-local.XXXXXX)"
mkdir -p "$dir"

bin="$CARGO_TARGET_DIR/release"
cargo build --release -p kube-apiserver -p kube-controller-manager -p kube-scheduler -p hollow-node

etcd_port=$(free_port)
etcd_peer=$(free_port)
etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    >"$dir/etcd.log" 2>&1 &
etcd_pid=$!
pids=("$etcd_pid")
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
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
"$bin/kube-scheduler" --kubeconfig "$kubeconfig" --secure-port "$(free_port)" >"$dir/kube-scheduler.log" 2>&1 &
pids+=("$!")
if [ "$hollow_nodes" -gt 0 ]; then
    "$bin/hollow-node" --kubeconfig "$kubeconfig" --nodes "$hollow_nodes" >"$dir/hollow-node.log" 2>&1 &
    pids+=("$!")
fi

cat <<MSG
Cluster is up (state and logs in $dir).
  export KUBECONFIG=$kubeconfig
  kubectl get namespaces
Press Ctrl-C to stop.
MSG
wait "${pids[1]}"

#!/usr/bin/env bash
# Benchmarks the kubelet on one real node (release builds, needs root): brings up
# hack/local-up-cluster.sh --kubelet (etcd, control plane, a private containerd, our
# kubelet), then test/bench's kubelet-bench creates $PODS (30) busybox pods bound to the
# node and reports
#  - pod startup latency p50/p99 (create -> all containers running, seen through a
#    watch; upstream's SLO is 5 s at p99, our target 2 s),
#  - the kubelet's RSS while it runs them (target under 40 MB),
#  - the time from a deletion with a 0 s grace period until the containers stopped.
#   hack/bench-kubelet.sh   (PODS overrides the pod count)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

PODS="${PODS:-30}"
[ "$(id -u)" = 0 ] || { echo "needs root (containerd, runc, CNI)" >&2; exit 1; }
cargo build --release -p apiserver-bench --bin kubelet-bench
dir="$(mktemp -d /tmp/k8s-rs-bench-kubelet.XXXXXX)"
hack/local-up-cluster.sh --kubelet --dir "$dir" --port "$(free_port)" >"$dir/local-up.out" 2>&1 &
cluster=$!
cleanup() {
    kill -TERM "$cluster" 2>/dev/null || true
    wait "$cluster" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

wait_for 3600 grep -q "Cluster is up" "$dir/local-up.out" || { cat "$dir/local-up.out" >&2; exit 1; }
export KUBECONFIG="$dir/admin.kubeconfig"
node="$(tr '[:upper:]' '[:lower:]' </proc/sys/kernel/hostname)"
wait_for 60 kubectl wait --for=condition=Ready "node/$node" --timeout=1s || {
    echo "node $node not Ready; see $dir/kubelet.log" >&2; exit 1; }
kubelet_pid="$(pgrep -f -- "--root-dir $dir/kubelet" | head -1)"
"$CARGO_TARGET_DIR/release/kubelet-bench" --kubeconfig "$KUBECONFIG" --node "$node" \
    --kubelet-pid "$kubelet_pid" --cri-endpoint "unix://$dir/containerd.sock" --pods "$PODS"

#!/usr/bin/env bash
# Benchmarks the workload controllers on hollow nodes (release builds):
#  1. Deployment scale-out: a Deployment of $REPLICAS (1000) replicas, from create to all
#     pods Ready, on $NODES (100) hollow nodes with kube-scheduler placing the pods.
#     Target: under 15 s.
#  2. (unless --skip-rss) kube-controller-manager's and kube-scheduler's RSS with
#     $RSS_PODS (10,000) pods on $RSS_NODES (5,000) hollow nodes. Target: under 150 MB.
#   hack/bench-controllers.sh [--skip-rss]   (REPLICAS, NODES, RSS_NODES, RSS_PODS override)
# Needs etcd (hack/install-deps.sh installs it) and kubectl.
# The first deployment is deleted before the RSS phase; without the garbage-collector
# controller (only replicaset and deployment run here) its pods stay and are counted.
# Measured 2026-11-25, quiet 2-vCPU machine, release builds: 1000 replicas / 100 nodes
# all Ready in 2.3-2.4 s, kube-controller-manager RSS 52 MB; 10,000 pods / 5,000 nodes
# Ready in 24 s, RSS 141.5 MB. Latest figures: docs/STATUS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

REPLICAS="${REPLICAS:-1000}"
NODES="${NODES:-100}"
RSS_NODES="${RSS_NODES:-5000}"
RSS_PODS="${RSS_PODS:-10000}"
skip_rss=false
[ "${1:-}" = "--skip-rss" ] && skip_rss=true

# PROFILE=debug SKIP_BUILD=1 tries the script itself quickly on existing debug builds.
PROFILE="${PROFILE:-release}"
if [ -z "${SKIP_BUILD:-}" ]; then
    cargo build --profile "$PROFILE" -p kube-apiserver -p kube-controller-manager -p kube-scheduler -p hollow-node
fi
bin="$CARGO_TARGET_DIR/$PROFILE"
dir="$(mktemp -d /tmp/k8s-rs-bench-controllers.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

etcd_port=$(free_port)
etcd_peer=$(free_port)
etcd --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
    --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
    --quota-backend-bytes 8589934592 >"$dir/etcd.log" 2>&1 &
pids+=("$!")
wait_for 20 etcdctl --endpoints "127.0.0.1:$etcd_port" endpoint health || { echo "etcd did not start" >&2; exit 1; }

port=$(free_port)
token="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
echo "$token,admin,admin,\"system:masters\"" > "$dir/tokens.csv"
"$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --secure-port "$port" --bind-address 127.0.0.1 \
    --cert-dir "$dir/certs" --token-auth-file "$dir/tokens.csv" >"$dir/kube-apiserver.log" 2>&1 &
pids+=("$!")
wait_for 30 test -s "$dir/certs/apiserver.crt" || { echo "kube-apiserver did not start" >&2; exit 1; }
export KUBECONFIG="$dir/admin.kubeconfig"
kubectl config set-cluster local --server "https://127.0.0.1:$port" \
    --certificate-authority "$dir/certs/apiserver.crt" --embed-certs >/dev/null
kubectl config set-credentials admin --token "$token" >/dev/null
kubectl config set-context local --cluster local --user admin >/dev/null
kubectl config use-context local >/dev/null
wait_for 30 kubectl get --raw /readyz || { echo "kube-apiserver not ready" >&2; exit 1; }

start_components() {
    local nodes=$1
    "$bin/hollow-node" --kubeconfig "$KUBECONFIG" --nodes "$nodes" >"$dir/hollow-node.log" 2>&1 &
    pids+=("$!")
    "$bin/kube-scheduler" --kubeconfig "$KUBECONFIG" --leader-elect=false --secure-port 0 \
        >"$dir/kube-scheduler.log" 2>&1 &
    pids+=("$!"); sched_pid=$!
    "$bin/kube-controller-manager" --kubeconfig "$KUBECONFIG" --leader-elect=false --secure-port 0 \
        --controllers=replicaset,deployment >"$dir/kube-controller-manager.log" 2>&1 &
    pids+=("$!"); kcm_pid=$!
    wait_for 120 sh -c "[ \"\$(kubectl get nodes --no-headers 2>/dev/null | wc -l)\" -ge $nodes ]" \
        || { echo "hollow nodes did not register" >&2; exit 1; }
}

deployment() {
    cat <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $1
spec:
  replicas: $2
  selector:
    matchLabels:
      app: $1
  template:
    metadata:
      labels:
        app: $1
    spec:
      containers:
      - name: nginx
        image: nginx:1.25.3
        resources:
          requests:
            cpu: 1m
            memory: 1Mi
YAML
}

ready() {
    kubectl get deploy "$1" -o jsonpath='{.status.readyReplicas}' 2>/dev/null
}

# Wait until $1 has $2 ready replicas; prints the seconds it took.
time_until_ready() {
    local name=$1 want=$2 limit=$3 start now
    start=$(date +%s.%N)
    deployment "$name" "$want" | kubectl apply -f - >/dev/null
    while [ "$(ready "$name")" != "$want" ]; do
        now=$(date +%s.%N)
        if [ "$(echo "$now - $start > $limit" | bc)" = 1 ]; then
            echo "timeout ($(ready "$name") of $want ready after ${limit}s)" >&2
            return 1
        fi
        sleep 0.1
    done
    now=$(date +%s.%N)
    echo "$now - $start" | bc
}

rss_mb() {
    awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"
}

echo "== Deployment scale-out: $REPLICAS replicas on $NODES hollow nodes"
start_components "$NODES"
secs=$(time_until_ready scale-out "$REPLICAS" 120)
echo "create -> $REPLICAS/$REPLICAS Ready: ${secs}s (target < 15 s)"
# Where the time went (API timestamps, 1 s resolution): the last pod created, scheduled
# and ready, counted from the first pod's creation.
{ kubectl get deploy scale-out -o json; kubectl get rs -l app=scale-out -o json; kubectl get pods -l app=scale-out -o json; } | python3 -c '
import json, sys
from datetime import datetime
t = lambda s: datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").timestamp()
dec = json.JSONDecoder(); raw = sys.stdin.read().strip(); docs = []
while raw:
    d, i = dec.raw_decode(raw); docs.append(d); raw = raw[i:].strip()
dep, rss, pods = docs[0], docs[1]["items"], docs[2]["items"]
created = [t(p["metadata"]["creationTimestamp"]) for p in pods]
cond = lambda p, c: next(t(x["lastTransitionTime"]) for x in p["status"]["conditions"] if x["type"] == c)
first = min(created)
print("  deployment created -%ds, replica set -%ds before the first pod" % (
    first - t(dep["metadata"]["creationTimestamp"]), first - t(rss[0]["metadata"]["creationTimestamp"])))
print("  last pod created +%ds, last scheduled +%ds, last ready +%ds" % (
    max(created) - first,
    max(cond(p, "PodScheduled") for p in pods) - first,
    max(cond(p, "Ready") for p in pods) - first))
' || true
echo "kube-controller-manager RSS: $(rss_mb "$kcm_pid") MB"

$skip_rss && exit 0

echo "== RSS with $RSS_PODS pods on $RSS_NODES hollow nodes"
kubectl delete deploy scale-out --wait=false >/dev/null
# The first $NODES nodes stay; a second hollow-node process adds the rest.
"$bin/hollow-node" --kubeconfig "$KUBECONFIG" --nodes "$((RSS_NODES - NODES))" --name-prefix big \
    >"$dir/hollow-node-big.log" 2>&1 &
pids+=("$!")
wait_for 600 sh -c "[ \"\$(kubectl get nodes --no-headers 2>/dev/null | wc -l)\" -ge $RSS_NODES ]" \
    || { echo "big hollow nodes did not register" >&2; exit 1; }
secs=$(time_until_ready rss "$RSS_PODS" 900)
echo "create -> $RSS_PODS/$RSS_PODS Ready: ${secs}s"
sleep 5
echo "kube-controller-manager RSS with $RSS_PODS pods, $RSS_NODES nodes: $(rss_mb "$kcm_pid") MB (target < 150 MB)"
echo "kube-scheduler RSS with $RSS_PODS pods, $RSS_NODES nodes: $(rss_mb "$sched_pid") MB (target < 150 MB)"

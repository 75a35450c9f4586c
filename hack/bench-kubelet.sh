#!/usr/bin/env bash
# Issue 4's kubelet benchmark on a real containerd (needs root; the containerd test
# fixture starts a private instance): 30 pods on one node, pod startup latency p50/p99
# (create request until a watch shows all containers started; target p99 < 2 s), kubelet
# RSS with the 30 pods (target < 40 MB), and deletion with grace 0 until the containers
# are gone. Release builds by default.
#   hack/bench-kubelet.sh          (PROFILE=debug to try it on debug builds)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

PROFILE="${PROFILE:-release}"
cargo build --profile "$PROFILE" -p kubelet -p kube-apiserver -p pause --bins
cargo test --profile "$PROFILE" -p integration --test kubelet -- --ignored --nocapture bench_pod_startup_latency 2>&1 \
    | grep -E "^kubelet bench:|panicked|FAILED|test result"

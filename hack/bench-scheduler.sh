#!/usr/bin/env bash
# Benchmarks kube-scheduler as upstream's scheduler_perf SchedulingBasic does: 5,000
# nodes, 1,000 pods scheduled first, then 10,000 pods measured from creation to bound.
# Prints pods/s, per-pod latency p50/p99 and the scheduler's memory against the
# project's targets. Release builds; a few minutes.
#   hack/bench-scheduler.sh [scheduler-bench flags, see --help]
# Needs etcd (hack/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

cargo build --release -p kube-apiserver -p kube-scheduler -p apiserver-bench
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi
exec "$CARGO_TARGET_DIR/release/scheduler-bench" \
    --apiserver-bin "$CARGO_TARGET_DIR/release/kube-apiserver" \
    --scheduler-bin "$CARGO_TARGET_DIR/release/kube-scheduler" \
    --label "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit" \
    "$@"

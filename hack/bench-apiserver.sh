#!/usr/bin/env bash
# Benchmarks kube-apiserver against the etcd under it and prints one report: raw etcd
# create transactions vs API server creates at 1, 16 and 64 clients, get/list/update
# latency, watch fan-out to 1000 watchers, and the server's memory idle and with 10,000
# ConfigMaps, each against the project's targets. Release builds; about three minutes.
#   hack/bench-apiserver.sh [apiserver-bench flags, see --help]
# Needs etcd (hack/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

cargo build --release -p kube-apiserver -p apiserver-bench
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD 2>/dev/null; then
    commit="$commit (with uncommitted changes)"
fi
exec "$CARGO_TARGET_DIR/release/apiserver-bench" \
    --apiserver-bin "$CARGO_TARGET_DIR/release/kube-apiserver" \
    --label "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit" \
    "$@"

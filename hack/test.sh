#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the integration tests (real etcd, our
# kube-apiserver, the real kubectl). Installs missing packages first.
#   hack/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

hack/install-deps.sh --no-build
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
export KUBE_APISERVER_BIN="$CARGO_TARGET_DIR/debug/kube-apiserver"
if command -v cargo-nextest >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
    cargo test --workspace --doc
else
    cargo test --workspace --no-fail-fast "$@"
fi

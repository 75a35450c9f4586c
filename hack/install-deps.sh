#!/usr/bin/env bash
# Installs what this repository needs on Debian 12 (idempotent), then builds it.
# The containerd tests need root: they start containerd, create bridges and netns.
#   hack/install-deps.sh            install packages and build (release)
#   hack/install-deps.sh --no-build only install packages
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(etcd-server etcd-client protobuf-compiler ca-certificates curl
    # The kubelet's runtime and pod network (tests run private containerd instances):
    containerd runc containernetworking-plugins busybox-static conntrack iptables iproute2)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    echo "installing: ${missing[*]}"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's etcd package starts a system etcd on 2379; our clusters run their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
fi

# Debian's containerd package may start a system containerd on /run/containerd; tests and
# local clusters run their own instances (own root, state, socket, CNI config), so it
# does no harm and is left alone.

command -v kubectl >/dev/null || echo "warning: kubectl (v1.32) not found; the integration tests need it at /usr/bin/kubectl" >&2
command -v cargo >/dev/null || { echo "error: cargo not found (install Rust with rustup)" >&2; exit 1; }

if [ "${1:-}" != "--no-build" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/k8s-rs-target}"
    cargo build --release --workspace --bins
fi

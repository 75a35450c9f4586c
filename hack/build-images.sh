#!/usr/bin/env bash
# Builds the cluster's OCI image archives (no registry needed; see cluster/images/README.md)
# into $CARGO_TARGET_DIR/images, and optionally imports them into a containerd.
#   hack/build-images.sh [--nginx] [--import [--address SOCK]]
#     --nginx          also build docker.io/library/nginx:1.22 from Debian's nginx package
#     --import         import every archive into containerd's k8s.io namespace
#     --address SOCK   containerd's socket (default /run/containerd/containerd.sock)
set -euo pipefail
cd "$(dirname "$0")/.."
source hack/lib.sh

nginx=false
import=false
address=/run/containerd/containerd.sock
while [ $# -gt 0 ]; do
    case "$1" in
        --nginx) nginx=true ;;
        --import) import=true ;;
        --address) address="$2"; shift ;;
        --address=*) address="${1#--address=}" ;;
        -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

cargo build -q -p pause -p image-builder
bin="$CARGO_TARGET_DIR/debug"
out="$CARGO_TARGET_DIR/images"
archives=()
while read -r a; do archives+=("$a"); done < <("$bin/image-builder" standard --out "$out" --pause-binary "$bin/pause")
if $nginx; then
    archives+=("$("$bin/image-builder" nginx --out "$out")")
fi
printf '%s\n' "${archives[@]}"

if $import; then
    for a in "${archives[@]}"; do
        ctr --address "$address" -n k8s.io images import "$a" >/dev/null
    done
    ctr --address "$address" -n k8s.io images ls -q
fi

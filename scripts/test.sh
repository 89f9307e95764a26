#!/usr/bin/env bash
# Set up everything on a fresh machine (system packages, .venv/, helm, the test control plane built
# from Go modules), lint, type-check, and run every test (slow end-to-end and `cluster` ones
# included). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/setup.sh
bash scripts/get-helm.sh
bash scripts/build-control-plane.sh   # etcd, kube-apiserver, kube-controller-manager (cached by version)
bash scripts/build-kueue.sh           # Kueue's controller manager (cached by version)
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"

#!/usr/bin/env bash
# Set up everything on a fresh machine (system packages, .venv/, helm), lint, type-check, and run
# every test (slow end-to-end ones included). CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-packages.sh
bash scripts/setup.sh
bash scripts/get-helm.sh
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/pytest -q "$@"

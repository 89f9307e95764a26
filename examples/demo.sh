#!/usr/bin/env bash
# Set up .venv/ and run the demo manifest on this machine: infer → convert → select → export.
#   bash examples/demo.sh                  a trained fall detector on the real campus/street clips
#   DEMO=synthetic bash examples/demo.sh   a detector trained here on synthetic street scenes
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${DEMO:-}" = synthetic ]; then
  .venv/bin/python examples/make_demo_videos.py examples/videos-synthetic --synthetic
  .venv/bin/python examples/train_demo_detector.py examples/models/demo-detector.pt
  manifest=examples/demo-synthetic.yaml out=examples/out-synthetic run=demo-synthetic
else
  .venv/bin/python examples/make_demo_videos.py examples/videos
  manifest=examples/demo.yaml out=examples/out run=demo
fi
.venv/bin/framesift run "$manifest" "$@"
echo "results: $out/ (LightlyOne layout in .lightly/, the selection and report in runs/$run/)"

"""Put the demo's videos in examples/videos/: synthetic street scenes (what the demo detector
knows) and the real clips from ../shared/data/videos when they are there. Nothing is downloaded."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from framesift.jobs.synthetic_video import scene_video

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FRAMESIFT_SHARED", HERE.parents[1] / "shared")) / "data" / "videos"


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "videos"
    dest.mkdir(parents=True, exist_ok=True)
    # Street scenes of the kind the demo detector was trained on: it finds real objects here.
    for seed, name in enumerate(("street-1.mp4", "street-2.mp4")):
        if not (dest / name).exists():
            scene_video(dest / name, frames=150, seed=100 + seed)
    made = ["street-1.mp4, street-2.mp4 (synthetic scenes)"]
    # The real clips show decoding and selection on camera footage (the demo detector was not
    # trained on people or cars that look like these: expect few boxes there).
    real = sorted(SHARED.glob("*.avi")) + sorted(SHARED.glob("*.mp4"))
    for clip in real:
        if not (dest / clip.name).exists():
            shutil.copyfile(clip, dest / clip.name)
    made += [f"{c.name} (real, from {SHARED})" for c in real]
    print("demo videos: " + ", ".join(made))


if __name__ == "__main__":
    main()

"""Put the demo's videos in examples/videos/: the real clips from ../shared/data/videos when
they are there, else synthetic clips (nothing is downloaded)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from framesift.jobs.synthetic_video import synthetic_video

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FRAMESIFT_SHARED", HERE.parents[1] / "shared")) / "data" / "videos"


def main() -> None:
    dest = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "videos"
    dest.mkdir(parents=True, exist_ok=True)
    real = sorted(SHARED.glob("*.avi")) + sorted(SHARED.glob("*.mp4"))
    if real:
        for clip in real:
            if not (dest / clip.name).exists():
                shutil.copyfile(clip, dest / clip.name)
        print(f"demo videos: {', '.join(c.name for c in real)} (real clips from {SHARED})")
        return
    for i, name in enumerate(("street.mp4", "campus.avi")):
        if not (dest / name).exists():
            synthetic_video(
                dest / name, frames=200, size=(320, 192), codec="libx264" if name.endswith(".mp4") else "mpeg4", seed=i
            )
    print(f"demo videos: synthetic street.mp4, campus.avi in {dest} ({SHARED} not found)")


if __name__ == "__main__":
    main()

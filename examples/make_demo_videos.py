"""Put the demo's videos in a folder. Nothing is downloaded.

make_demo_videos.py DEST            the real clips from ../shared/data/videos: the campus
                                    camera (vtest.avi) as three cameras of ~26 s each, and
                                    the street clip (bikes.mp4)
make_demo_videos.py DEST --synthetic  two synthetic street scenes (what the synthetic-scene
                                    detector was trained on)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import av

from framesift.jobs.synthetic_video import scene_video

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("FRAMESIFT_SHARED", HERE.parents[1] / "shared")) / "data" / "videos"
CAMPUS_PARTS = 3


def split_video(source: Path, dest: Path, parts: int, stem: str) -> list[Path]:
    """Cut a clip into `parts` consecutive clips (H.264, near-lossless) named <stem>-<n>.mp4."""
    outputs = [dest / f"{stem}-{n + 1}.mp4" for n in range(parts)]
    if all(p.exists() for p in outputs):
        return outputs
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        rate = stream.average_rate or 10
    per = -(-len(frames) // parts)
    for n, out in enumerate(outputs):
        tmp = out.with_suffix(".tmp.mp4")
        with av.open(str(tmp), "w") as target:
            video = target.add_stream("libx264", rate=rate)
            assert isinstance(video, av.VideoStream)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt, video.options = "yuv420p", {"crf": "12"}
            for image in frames[n * per : (n + 1) * per]:
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    target.mux(packet)
            for packet in video.encode():
                target.mux(packet)
        tmp.replace(out)
    return outputs


def real_clips(dest: Path) -> list[str]:
    if not (SHARED / "vtest.avi").exists():
        raise SystemExit(f"the shared clips are missing at {SHARED} (set FRAMESIFT_SHARED)")
    made = [p.name for p in split_video(SHARED / "vtest.avi", dest, CAMPUS_PARTS, "campus")]
    for clip in sorted(SHARED.glob("*.mp4")):
        if not (dest / clip.name).exists():
            shutil.copyfile(clip, dest / clip.name)
        made.append(clip.name)
    return made


def synthetic_scenes(dest: Path) -> list[str]:
    made = []
    for seed, name in enumerate(("street-1.mp4", "street-2.mp4")):
        if not (dest / name).exists():
            scene_video(dest / name, frames=150, seed=100 + seed)
        made.append(name)
    return made


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    dest = Path(args[0]) if args else HERE / "videos"
    dest.mkdir(parents=True, exist_ok=True)
    made = synthetic_scenes(dest) if "--synthetic" in sys.argv else real_clips(dest)
    print(f"demo videos in {dest}: " + ", ".join(made))


if __name__ == "__main__":
    main()

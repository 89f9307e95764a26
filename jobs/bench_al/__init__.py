"""`framesift bench al`: does framesift's selection improve a detector more than random frames or
every k-th frame? A labelled video benchmark generated here (scenes.py), the active-learning loop
with Ultralytics training and validation (loop.py), and the measures beside mAP (measures.py)."""

# The methods compared, by the names the result JSON uses.
METHODS = ("random", "uniform", "frame_diversity", "tutorial", "demo", "recommended")

"""framesift: choose the video frames worth labelling."""

__version__ = "0.1.0"

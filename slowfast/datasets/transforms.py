"""Spatial transforms on whole clips: `[T, H, W, 3]` uint8 frames in, `[3, T, S, S]` float32 out.

The same resize/crop/flip is applied to every frame of a clip. Resizing uses torchvision's bilinear
resize with antialiasing on the uint8 frames (its fast path), then frames are scaled to [0, 1] and
normalised with the per-channel mean/std (CLIP's values in our configs). The original code normalised
first and resized the float frames bilinearly without antialiasing; `original_resize=True`
(`DATA.ORIGINAL_RESIZE`) does that, for parity. Antialiasing is the better-behaved choice when shrinking:
without it, detail finer than the new pixel grid aliases.

* train: short side to a random size in [min, max] of `jitter_scales`, random `crop_size` crop,
  horizontal flip with p = 0.5 when `flip`;
* val: short side to `jitter_scales[0]`, centre crop (deterministic);
* test: short side to `crop_size`, then crop `spatial_index` of `num_crops`: 1 crop is the centre, 3 crops
  are left/centre/right along the long side (top/centre/bottom for portrait videos).

`TrainTransform`, `ValTransform` and `TestTransform` hold these settings, built once from the config
(`slowfast.datasets.loader.build_transform`); each is called as `transform(frames, crop, rng)`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

__all__ = [
    "ClipTransform",
    "TrainTransform",
    "ValTransform",
    "TestTransform",
    "to_tensor_clip",
    "short_side_resize",
    "crop",
    "random_crop",
    "uniform_crop",
    "normalize",
    "train_transform",
    "val_transform",
    "test_transform",
]


def to_tensor_clip(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """`[T, H, W, 3]` uint8 (numpy or torch) -> `[T, 3, H, W]` uint8 tensor (a channels-last view).

    No copy: torchvision's uint8 resize is fastest on channels-last memory, and `normalize` copies anyway.
    """
    t = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
    return t.permute(0, 3, 1, 2)


def short_side_resize(clip: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Resize `[..., H, W]` so that the short side is `size`; the long side keeps the aspect (floored)."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    if h <= w:
        nh, nw = size, int(w * size / h)
    else:
        nh, nw = int(h * size / w), size
    return TF.resize(clip, [nh, nw], interpolation=TF.InterpolationMode.BILINEAR, antialias=antialias)


def crop(clip: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    """The `size`x`size` window at (top, left); refuses windows that do not fit."""
    h, w = clip.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"crop {size} larger than the frames ({h}x{w})")
    return clip[..., top : top + size, left : left + size]


def random_crop(clip: torch.Tensor, size: int, rng: random.Random) -> torch.Tensor:
    h, w = clip.shape[-2:]
    return crop(clip, rng.randint(0, h - size), rng.randint(0, w - size), size)


def uniform_crop(clip: torch.Tensor, size: int, spatial_index: int, num_crops: int) -> torch.Tensor:
    """Crop `spatial_index` of `num_crops` (1: centre; 3: start/centre/end along the long side)."""
    h, w = clip.shape[-2:]
    top, left = (h - size + 1) // 2, (w - size + 1) // 2  # ceil of half the margin, as the original
    if num_crops == 3:
        if spatial_index not in (0, 1, 2):
            raise ValueError(f"spatial_index {spatial_index} out of range for 3 crops")
        if w >= h:
            left = [0, left, w - size][spatial_index]
        else:
            top = [0, top, h - size][spatial_index]
    elif num_crops != 1:
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    return crop(clip, top, left, size)


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 `[T, 3, H, W]` -> float32 `[3, T, H, W]`, scaled to [0, 1] and normalised per channel."""
    std_t = torch.tensor(std, dtype=torch.float32).view(3, 1, 1, 1)
    scale = 1.0 / (255.0 * std_t)
    shift = -torch.tensor(mean, dtype=torch.float32).view(3, 1, 1, 1) / std_t
    x = clip.permute(1, 0, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)
    return x.mul_(scale).add_(shift)  # (x / 255 - mean) / std in one pass each


def _resized(frames: np.ndarray | torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float],
             original_resize: bool) -> torch.Tensor:
    """The clip with its short side at `size`: uint8 `[T, 3, h, w]` resized with antialiasing, or (the
    original's order) normalised float `[3, T, h, w]` resized without; crops and flips apply to both."""
    clip = to_tensor_clip(frames)
    if original_resize:
        return short_side_resize(normalize(clip, mean, std), size, antialias=False)
    return short_side_resize(clip, size)


def _normalized(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float], original_resize: bool) -> torch.Tensor:
    return clip.contiguous() if original_resize else normalize(clip, mean, std)


def train_transform(
    frames: np.ndarray | torch.Tensor,
    jitter_scales: Sequence[int],
    crop_size: int,
    flip: bool,
    mean: Sequence[float],
    std: Sequence[float],
    rng: random.Random,
    original_resize: bool = False,
) -> torch.Tensor:
    size = rng.randint(int(jitter_scales[0]), int(jitter_scales[1]))
    clip = random_crop(_resized(frames, size, mean, std, original_resize), crop_size, rng)
    if flip and rng.random() < 0.5:
        clip = clip.flip(-1)
    return _normalized(clip, mean, std, original_resize)


def val_transform(
    frames: np.ndarray | torch.Tensor,
    jitter_scales: Sequence[int],
    crop_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    original_resize: bool = False,
) -> torch.Tensor:
    clip = _resized(frames, int(jitter_scales[0]), mean, std, original_resize)
    return _normalized(uniform_crop(clip, crop_size, 1, 1), mean, std, original_resize)


def test_transform(
    frames: np.ndarray | torch.Tensor,
    crop_size: int,
    spatial_index: int,
    num_crops: int,
    mean: Sequence[float],
    std: Sequence[float],
    original_resize: bool = False,
) -> torch.Tensor:
    clip = _resized(frames, crop_size, mean, std, original_resize)
    return _normalized(uniform_crop(clip, crop_size, spatial_index, num_crops), mean, std, original_resize)


@dataclass(frozen=True)
class ClipTransform:
    """The spatial half of the clip pipeline: settings shared by the three modes.

    A transform makes `num_crops` clips from the frames of one temporal clip; `crop` picks one of them.
    """

    crop_size: int = 224
    mean: tuple[float, ...] = (0.45, 0.45, 0.45)
    std: tuple[float, ...] = (0.225, 0.225, 0.225)
    original_resize: bool = False

    @property
    def num_crops(self) -> int:
        return 1

    def __call__(self, frames: np.ndarray | torch.Tensor, crop: int = 0, rng: random.Random | None = None) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class TrainTransform(ClipTransform):
    """Random short side in `jitter_scales`, random crop, horizontal flip (p = 0.5) when `flip`."""

    jitter_scales: tuple[int, int] = (256, 320)
    flip: bool = True

    def __call__(self, frames, crop=0, rng=None):
        return train_transform(frames, self.jitter_scales, self.crop_size, self.flip, self.mean, self.std,
                               rng if rng is not None else random.Random(), self.original_resize)


@dataclass(frozen=True)
class ValTransform(ClipTransform):
    """Short side to `scale`, centre crop."""

    scale: int = 256

    def __call__(self, frames, crop=0, rng=None):
        return val_transform(frames, (self.scale, self.scale), self.crop_size, self.mean, self.std, self.original_resize)


@dataclass(frozen=True)
class TestTransform(ClipTransform):
    """Short side to `crop_size`, then crop `crop` of `crops` (1: centre; 3: along the long side)."""

    __test__ = False  # not a pytest test class, whatever its name
    crops: int = 1

    def __post_init__(self):
        if self.crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {self.crops}")

    @property
    def num_crops(self) -> int:
        return self.crops

    def __call__(self, frames, crop=0, rng=None):
        return test_transform(frames, self.crop_size, crop, self.crops, self.mean, self.std, self.original_resize)

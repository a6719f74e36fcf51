"""The embedded default dataset: short H.264 clips whose classes differ only in the order of their frames.

Training classes (`CLASSES`): a filled square moving left, right, up or down. Each clip draws its
parameters (square side, speed, colours, path) independently of its class and the class only decides
along which axis and in which direction the path is played, so "moving left" is exactly "moving right"
played backwards (the same holds for up/down). The coordinate across the motion is drawn with the same
distribution as the coordinate along it, so a single frame of any class is distributed identically: a
model that looks at frames one at a time (or averages them) cannot beat chance; it has to model time.

Zero-shot classes (`ZERO_SHOT_CLASSES`, disjoint): a square growing or shrinking, a bar rotating
clockwise or anticlockwise; again pairs of time-reversed clips.

Defaults (calibrated so that the demo run learns the classes in minutes on a CPU): 64x64 frames, square side
14-19 px, Gaussian noise sigma 0.05 added before encoding. Clips have 16 frames at 30 fps and move
1.5-2 px per frame, so the default sampling `DATA.NUM_FRAMES 8`, `DATA.SAMPLING_RATE 2` sees 8 frames
3-4 px apart (the calibrated motion) with a random start of 0 or 1 in training. Horizontal flipping would
turn "moving left" into "moving right": the synthetic configs must set `DATA.RANDOM_FLIP False`.

`make_kinetics_like` writes Kinetics-sized videos (340x256, 10 s, 30 fps, textured moving content) for the
data benchmark. Everything is deterministic for a given seed (H.264 encoding uses one thread).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_path, atomic_write_text
from slowfast.utils.class_index import write_class_names

__all__ = [
    "CLASSES",
    "ZERO_SHOT_CLASSES",
    "SyntheticSpec",
    "SyntheticSpecError",
    "write_video",
    "render_clip",
    "sample_clip_params",
    "make_clip",
    "make_synthetic_dataset",
    "make_kinetics_like",
]

CLASSES = ("moving left", "moving right", "moving up", "moving down")
ZERO_SHOT_CLASSES = ("square growing", "square shrinking", "bar rotating clockwise", "bar rotating anticlockwise")

# class -> (family, played backwards?)
_CLASS_MOTION = {
    "moving right": ("translate_x", False),
    "moving left": ("translate_x", True),
    "moving down": ("translate_y", False),
    "moving up": ("translate_y", True),
    "square growing": ("scale", False),
    "square shrinking": ("scale", True),
    "bar rotating clockwise": ("rotate", False),  # image y points down: increasing angle is clockwise
    "bar rotating anticlockwise": ("rotate", True),
}

_SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "zero_shot": 3}


class SyntheticSpecError(UserError, ValueError):
    """Sizes the synthetic dataset cannot be written with (e.g. an odd frame size, which H.264 refuses)."""


@dataclass(frozen=True)
class SyntheticSpec:
    """Sizes of the generated dataset (defaults: the embedded demo)."""

    seed: int = 0
    train_per_class: int = 128
    val_per_class: int = 32
    test_per_class: int = 64
    zero_shot_per_class: int = 64
    size: int = 64
    frames: int = 16
    fps: int = 30
    side_range: tuple[float, float] = (14.0, 19.0)
    speed_range: tuple[float, float] = (1.5, 2.0)
    noise: float = 0.05


# ---- encoding ------------------------------------------------------------------------------------
def write_video(
    path: str, frames: np.ndarray, fps: int, threads: int = 1, preset: str | None = None, crf: int | None = None
) -> None:
    """Encode uint8 RGB frames `[T, H, W, 3]` (even H and W) as H.264/yuv420p mp4, atomically.

    `threads` 1 makes the bitstream reproducible: x264 then runs on one thread and without MB-tree rate
    control, which on these short clips gave different bitstreams for the same frames from run to run
    (one in a few encodes differed, even on one thread). `preset`/`crf` are x264's (None = its defaults).
    Frame i gets the timestamp i / fps.
    """
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 yuv420p needs even frame sizes, got {w}x{h}")
    time_base = Fraction(1, int(fps))
    with atomic_path(path) as tmp, av.open(tmp, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = threads
        options = {}
        if preset is not None:
            options["preset"] = preset
        if crf is not None:
            options["crf"] = str(crf)
        if threads == 1:
            options["x264-params"] = "mbtree=0"
        stream.codec_context.options = options
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            frame.pts, frame.time_base = i, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


# ---- rendering -----------------------------------------------------------------------------------
def _coverage(lo, length, size: int) -> np.ndarray:
    """Fraction of each pixel of [0, size) covered by [lo, lo + length) (anti-aliased edges).

    `lo` and `length` may be arrays of shape [F]; the result is then [F, size].
    """
    j = np.arange(size, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)[..., None]
    hi = lo + np.asarray(length, dtype=np.float64)[..., None]
    return np.clip(np.minimum(j + 1, hi) - np.maximum(j, lo), 0.0, 1.0)


def sample_clip_params(rng: np.random.Generator, family: str, spec: SyntheticSpec) -> dict:
    """Class-independent parameters of one clip of `family` (the class only picks the direction)."""
    s, f = spec.size, spec.frames
    params = {
        "bg": rng.uniform(0.0, 0.35, 3),
        "fg": rng.uniform(0.55, 1.0, 3),
    }
    if family in ("translate_x", "translate_y"):
        side = rng.uniform(*spec.side_range)
        speed = min(rng.uniform(*spec.speed_range), (s - side) / max(f - 1, 1))
        room = s - side - speed * (f - 1)
        params.update(side=side, speed=speed, along=rng.uniform(0.0, room))
        # The cross coordinate is distributed like the along coordinate of a random frame, so that the
        # marginal distribution of a frame is the same for horizontal and vertical motion.
        params["across"] = rng.uniform(0.0, room) + speed * rng.integers(0, f)
    elif family == "scale":
        big = rng.uniform(0.45, 0.55) * s
        params.update(small=rng.uniform(0.12, 0.2) * s, big=big, cx=rng.uniform(big / 2, s - big / 2),
                      cy=rng.uniform(big / 2, s - big / 2))
    elif family == "rotate":
        length = rng.uniform(0.55, 0.7) * s
        params.update(length=length, thick=rng.uniform(0.09, 0.12) * s, theta0=rng.uniform(0, np.pi),
                      omega=np.deg2rad(rng.uniform(6.0, 9.0)) * 16 / f,
                      cx=rng.uniform(0.45, 0.55) * s, cy=rng.uniform(0.45, 0.55) * s)
    else:
        raise ValueError(f"unknown motion family {family!r}")
    return params


def render_clip(class_name: str, params: dict, spec: SyntheticSpec) -> np.ndarray:
    """Noise-free float frames `[F, S, S, 3]` in [0, 1] of `class_name` drawn with `params`."""
    family, backwards = _CLASS_MOTION[class_name]
    s, f = spec.size, spec.frames
    k = np.arange(f, dtype=np.float64)
    if family in ("translate_x", "translate_y"):
        along = _coverage(params["along"] + params["speed"] * k, np.full(f, params["side"]), s)  # [F, S]
        across = _coverage(params["across"], params["side"], s)  # [S]
        if family == "translate_x":
            masks = across[None, :, None] * along[:, None, :]
        else:
            masks = along[:, :, None] * across[None, None, :]
    elif family == "scale":
        side = params["small"] + (params["big"] - params["small"]) * k / max(f - 1, 1)
        masks = _coverage(params["cy"] - side / 2, side, s)[:, :, None] * _coverage(params["cx"] - side / 2, side, s)[:, None, :]
    else:  # rotate: distance of pixel centres to the bar's segment, with a one-pixel soft edge
        theta = (params["theta0"] + params["omega"] * k)[:, None, None]
        dx, dy = np.cos(theta), np.sin(theta)
        yy, xx = np.mgrid[0:s, 0:s] + 0.5
        px, py = (xx - params["cx"])[None], (yy - params["cy"])[None]
        t = np.clip(px * dx + py * dy, -params["length"] / 2, params["length"] / 2)
        dist = np.hypot(px - t * dx, py - t * dy)
        masks = np.clip(params["thick"] / 2 + 0.5 - dist, 0.0, 1.0)
    if backwards:
        masks = masks[::-1]
    bg, fg = params["bg"], params["fg"]
    return bg + (fg - bg) * masks[..., None]


def make_clip(rng: np.random.Generator, class_name: str, spec: SyntheticSpec) -> np.ndarray:
    """uint8 frames `[F, S, S, 3]` of one random clip of `class_name`, with Gaussian noise."""
    params = sample_clip_params(rng, _CLASS_MOTION[class_name][0], spec)
    clean = render_clip(class_name, params, spec)
    if spec.noise > 0:
        clean = clean + spec.noise * rng.standard_normal(clean.shape, dtype=np.float32)
    return np.clip(clean * 255.0 + 0.5, 0, 255).astype(np.uint8)


# ---- datasets ------------------------------------------------------------------------------------
def _write_one(task: tuple) -> None:
    out, rel, seed_key, name, spec = task
    write_video(os.path.join(out, rel), make_clip(np.random.default_rng(seed_key), name, spec), spec.fps,
                preset="veryfast")


def _split_tasks(out: str, split: str, classes: Sequence[str], per_class: int, spec: SyntheticSpec):
    tasks, rows = [], []
    for i in range(per_class):  # interleave classes so any prefix of the list is balanced
        for c, name in enumerate(classes):
            rel = f"videos/{split}/{name.replace(' ', '_')}_{i:04d}.mp4"
            # One seed per clip: a clip does not depend on how many others are made, or by which worker.
            tasks.append((out, rel, [spec.seed, _SPLIT_CODES[split], c, i], name, spec))
            rows.append(f"{rel},{c}")
    return tasks, rows


def make_synthetic_dataset(out: str, spec: SyntheticSpec = SyntheticSpec(), workers: int = 1) -> dict:
    """Write the synthetic dataset under `out`; returns a summary (counts per split).

    Layout: `out/{train,val,test}.csv`, `out/index2cls.json`, `out/videos/<split>/*.mp4`,
    `out/zero_shot/{test.csv,index2cls.json}`. CSV lines are `path,label` with paths relative to
    `out` (use `DATA.PATH_PREFIX out` and `DATA.PATH_LABEL_SEPARATOR ,`, also for the zero-shot split).
    `workers` > 1 encodes in that many processes; the files are the same either way.
    """
    if spec.size % 2:
        raise SyntheticSpecError(f"size must be even for H.264 (yuv420p), got {spec.size}")
    plan = [
        ("train", CLASSES, spec.train_per_class, "train.csv"),
        ("val", CLASSES, spec.val_per_class, "val.csv"),
        ("test", CLASSES, spec.test_per_class, "test.csv"),
        ("zero_shot", ZERO_SHOT_CLASSES, spec.zero_shot_per_class, os.path.join("zero_shot", "test.csv")),
    ]
    tasks, lists = [], []
    for split, classes, per_class, csv_name in plan:
        t, rows = _split_tasks(out, split, classes, per_class, spec)
        tasks += t
        lists.append((csv_name, rows))
    if workers > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_write_one, tasks, chunksize=16))
    else:
        for task in tasks:
            _write_one(task)
    # The lists are written last: a folder with CSVs is a complete dataset.
    write_class_names(os.path.join(out, "index2cls.json"), CLASSES)
    write_class_names(os.path.join(out, "zero_shot", "index2cls.json"), ZERO_SHOT_CLASSES)
    for csv_name, rows in lists:
        atomic_write_text(os.path.join(out, csv_name), "".join(r + "\n" for r in rows))
    return {split: len(rows) for (split, *_), (_, rows) in zip(plan, lists)}


def _smooth_texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Random RGB texture in [0, 1]: coarse noise upsampled bilinearly plus fine grain."""
    gh, gw = h // cell + 2, w // cell + 2
    coarse = rng.uniform(0, 1, (gh, gw, 3))
    ys, xs = np.linspace(0, gh - 1.001, h), np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    up = (c[y0][:, x0] * (1 - fy) * (1 - fx) + c[y0 + 1][:, x0] * fy * (1 - fx)
          + c[y0][:, x0 + 1] * (1 - fy) * fx + c[y0 + 1][:, x0 + 1] * fy * fx)
    return np.clip(0.8 * up + 0.2 * rng.uniform(0, 1, (h, w, 3)), 0, 1)


def make_kinetics_like(
    out: str, num_videos: int = 4, seed: int = 0, width: int = 340, height: int = 256,
    seconds: float = 10.0, fps: int = 30, threads: int = 0,
) -> list[str]:
    """Kinetics-sized videos for the data benchmark: a panning texture with moving textured blobs.

    The texture and per-frame grain keep H.264 from compressing the videos to nothing, so decoding
    costs about what a real 340x256 Kinetics video costs. Returns the paths relative to `out`.
    """
    rels = []
    n = int(round(seconds * fps))
    for v in range(num_videos):
        rng = np.random.default_rng([seed, 99, v])
        pan = np.array([rng.uniform(-1.5, 1.5), rng.uniform(-1.0, 1.0)])
        margin = int(np.ceil(np.abs(pan).max() * n)) + 2
        big = _smooth_texture(rng, height + 2 * margin, width + 2 * margin, cell=24)
        blobs = [(rng.uniform(0, width), rng.uniform(0, height), rng.uniform(-3, 3), rng.uniform(-2, 2),
                  rng.uniform(20, 50), _smooth_texture(rng, height, width, cell=8)) for _ in range(3)]
        yy, xx = np.mgrid[0:height, 0:width]
        frames = np.empty((n, height, width, 3), np.uint8)
        for k in range(n):
            oy, ox = (margin + pan[::-1] * k).astype(int)
            img = big[oy : oy + height, ox : ox + width].copy()
            for bx, by, vx, vy, r, tex in blobs:
                cx, cy = (bx + vx * k) % width, (by + vy * k) % height
                m = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
                img = np.where(m, tex, img)
            img += rng.normal(0, 0.015, img.shape)
            frames[k] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        rel = f"videos/kinetics_like_{v:03d}.mp4"
        write_video(os.path.join(out, rel), frames, fps, threads=threads)
        rels.append(rel)
    return rels

"""The input and output side of classifying your own videos: class lists, video lists, the predictions
CSV and the annotated copy of a video. The scoring itself is `slowfast.inference.VideoClassifier`, which
runs the test loop's path (same dataset, views, crops and weight loading as `tools/run_net.py` testing).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from typing import Optional
from collections.abc import Sequence

import av
import numpy as np
from PIL import Image, ImageDraw

from slowfast.datasets.prepare import VIDEO_EXTENSIONS
from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_output, atomic_path

logger = logging.getLogger(__name__)


class ClassifyError(UserError, RuntimeError):
    """Bad input to the classifier (no videos, no classes); the message names it."""


@dataclass
class Prediction:
    path: str
    ok: bool
    topk: list[tuple[str, float]]  # (class name, probability), best first
    reason: str = ""


def parse_classes(classes: Optional[str] = None, classes_file: Optional[str] = None) -> list[str]:
    """Class names from "a,b,c" or from a file with one class per line (blank lines and '#' comments skipped)."""
    names: list[str] = []
    if classes_file:
        if not os.path.isfile(classes_file):
            raise ClassifyError(f"classes file not found: {classes_file}")
        with open(classes_file, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    elif classes:
        names = [c.strip() for c in classes.split(",") if c.strip()]
    if len(names) < 2:
        raise ClassifyError("give at least two class names (--classes \"a,b,c\" or --classes-file FILE)")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ClassifyError(f"class names must be distinct; repeated: {', '.join(dupes)}")
    return names


def list_videos(path: str) -> list[str]:
    """`path` itself if it is a file, else the videos directly inside the folder (sorted)."""
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if os.path.isdir(path):
        videos = sorted(os.path.abspath(os.path.join(path, f)) for f in os.listdir(path)
                        if f.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(path, f)))
        if not videos:
            raise ClassifyError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in folder {path}")
        return videos
    raise ClassifyError(f"video not found: {path}")


def write_predictions_csv(predictions: Sequence[Prediction], path: str) -> None:
    """One row per video: path, ok, top-1 class and probability, then the top-k as "name:prob" pairs."""
    with atomic_output(path, "w") as f:
        w = csv.writer(f)
        w.writerow(["video", "ok", "top1_class", "top1_prob", "topk", "error"])
        for p in predictions:
            top1 = p.topk[0] if p.topk else ("", float("nan"))
            w.writerow([p.path, p.ok, top1[0], f"{top1[1]:.4f}", "; ".join(f"{n}:{q:.4f}" for n, q in p.topk), p.reason])


def _read_frames(src: str, max_frames: int) -> tuple[list[Image.Image], float]:
    """Up to `max_frames` frames of `src` as RGB images, and its frame rate (25 when unknown)."""
    frames, fps = [], 25.0
    with av.open(src) as container:
        stream = container.streams.video[0]
        if stream.average_rate:
            fps = float(stream.average_rate)
        for frame in container.decode(stream):
            frames.append(frame.to_image().convert("RGB"))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ClassifyError(f"{src}: no frames to draw on")
    return frames, fps


def _draw_lines(img: Image.Image, lines: Sequence[str]) -> Image.Image:
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 12 * len(lines) + 6], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 0))
    return img


def _write_mp4(path: str, images: Sequence[Image.Image], fps: float) -> None:
    w, h = images[0].width - images[0].width % 2, images[0].height - images[0].height % 2
    with av.open(path, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=round(fps))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for img in images:
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.asarray(img)[:h, :w], format="rgb24")))
        out.mux(s.encode())


def write_annotated_video(src: str, dst: str, lines: Sequence[str], max_frames: int = 300) -> None:
    """A copy of `src` with `lines` drawn in its top-left corner: an .mp4 (H.264) or a .gif by `dst`'s
    extension; written atomically."""
    frames, fps = _read_frames(src, max_frames)
    drawn = [_draw_lines(img, lines) for img in frames]
    with atomic_path(dst) as tmp:
        if os.path.splitext(dst)[1].lower() == ".gif":
            drawn[0].save(tmp, format="GIF", save_all=True, append_images=drawn[1:], duration=int(1000 / fps), loop=0)
        else:
            _write_mp4(tmp, drawn, fps)

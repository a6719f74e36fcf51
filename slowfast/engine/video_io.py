"""Video input and output around classification: class lists, video lists, the predictions CSV and the
annotated copy of a video. The scoring itself is `slowfast.inference.VideoClassifier`, which runs the test
loop's path (same clip pipeline, views, crops and weight loading as `tools/run_net.py` testing).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

import av
import numpy as np
from PIL import Image, ImageDraw

from slowfast.datasets.prepare import VIDEO_EXTENSIONS
from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_output, atomic_path, make_writable_dir

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
    """Class names from "a,b,c" or from a file with one class per line (blank lines and '#' comments skipped;
    a UTF-8 byte-order mark, as some editors write, is not part of the first name)."""
    names: list[str] = []
    if classes_file:
        if not os.path.isfile(classes_file):
            raise ClassifyError(f"classes file not found: {classes_file}")
        with open(classes_file, encoding="utf-8-sig") as f:
            names = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    elif classes:
        names = [c.strip() for c in classes.split(",") if c.strip()]
    return check_class_names(names, how=' (--classes "a,b,c" or --classes-file FILE)')


def split_class_text(text: str) -> list[str]:
    """Class names typed in a box, separated by commas or line breaks (either or both); blank entries dropped."""
    return [name.strip() for line in (text or "").splitlines() for name in line.split(",") if name.strip()]


def check_class_names(names: Sequence[str], how: str = "") -> list[str]:
    """`names` when they can make a classifier: a list (not one string, which would be read letter by letter)
    of at least two distinct, non-blank strings; ClassifyError naming the problem otherwise (`how` says where
    the names come from). The one rule of the command line, the web page and `VideoClassifier`."""
    if isinstance(names, (str, bytes)):
        raise ClassifyError(f"class names must be a list of strings, not one string{how}: {names!r} would be read "
                            f"letter by letter; write [{names!r}, ...]")
    names = list(names)
    bad = next((n for n in names if not isinstance(n, str) or not n.strip()), None)
    if bad is not None:
        raise ClassifyError(f"every class name must be a non-blank string{how}; got {bad!r}")
    if len(names) < 2:
        raise ClassifyError(f"give at least two class names{how}" + (f"; got only {names[0]!r}" if names else ""))
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ClassifyError(f"class names must be distinct; repeated: {', '.join(dupes)}")
    return names


def prediction_lines(topk: Sequence[tuple[str, float]], n: int = 3) -> list[str]:
    """The lines drawn on an annotated video: the `n` best classes as "name: 12.3%"."""
    return [f"{name}: {prob:.1%}" for name, prob in topk[:n]]


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


def _frames(src: str) -> tuple[Iterator[Image.Image], float]:
    """Every frame of `src` as an RGB image (decoded lazily), and its frame rate (25 when unknown)."""
    container = av.open(src)
    stream = container.streams.video[0]
    fps = float(stream.average_rate) if stream.average_rate else 25.0

    def decode() -> Iterator[Image.Image]:
        with container:
            for frame in container.decode(stream):
                yield frame.to_image().convert("RGB")

    return decode(), fps


_MIN_DRAWN_WIDTH = 256  # narrower frames are enlarged first (whole multiples, nearest neighbour) so that the text fits


def _draw_lines(img: Image.Image, lines: Sequence[str]) -> Image.Image:
    factor = -(-_MIN_DRAWN_WIDTH // img.width)
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, 12 * len(lines) + 6], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((4, 3 + 12 * i), line, fill=(255, 255, 0))
    return img


def _write_mp4(path: str, images: Iterator[Image.Image], fps: float) -> int:
    """Encode `images` one at a time (a long video never sits in memory); returns the frame count."""
    count = 0
    with av.open(path, "w", format="mp4") as out:
        s = None
        for img in images:
            if s is None:
                s = out.add_stream("libx264", rate=round(fps))
                s.width, s.height, s.pix_fmt = img.width - img.width % 2, img.height - img.height % 2, "yuv420p"
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.asarray(img)[:s.height, :s.width], format="rgb24")))
            count += 1
        if s is not None:
            out.mux(s.encode())
    return count


ANNOTATED_EXTENSIONS = (".mp4", ".gif")


def check_predictions_csv(dst: str, inputs: Sequence[str]) -> None:
    """Refuse, before any inference, a predictions CSV that would overwrite an input or an existing file that
    is not a CSV (a video given by mistake, say), or that cannot be written; an earlier predictions CSV is
    replaced, missing folders are created."""
    if any(os.path.abspath(dst) == os.path.abspath(v) for v in inputs):
        raise ClassifyError(f"--csv {dst} is an input video; choose another file name")
    if os.path.exists(dst) and os.path.splitext(dst)[1].lower() != ".csv":
        raise ClassifyError(f"--csv {dst} exists and is not a .csv file; it would be overwritten: choose another name")
    folder = os.path.dirname(os.path.abspath(dst))
    while not os.path.isdir(folder):  # missing folders are created when the CSV is written: probe the first that exists
        if os.path.exists(folder):
            raise ClassifyError(f"--csv {dst}: {folder} is a file, not a folder")
        folder = os.path.dirname(folder)
    make_writable_dir(folder, f"--csv {dst}: folder")  # a probe file, as for --output below


def check_annotated_output(dst: str, inputs: Sequence[str], force: bool = False) -> None:
    """Refuse, before any inference, an output that would overwrite an input or (without `force`) any
    existing file, has another extension than .mp4/.gif, or whose folder does not exist or cannot be written."""
    if os.path.splitext(dst)[1].lower() not in ANNOTATED_EXTENSIONS:
        raise ClassifyError(f"--output {dst}: the annotated copy is written as .mp4 or .gif, not {os.path.splitext(dst)[1] or 'no extension'}")
    if any(os.path.abspath(dst) == os.path.abspath(v) for v in inputs):
        raise ClassifyError(f"--output {dst} is the input video; choose another file name")
    if os.path.exists(dst) and not force:
        raise ClassifyError(f"--output {dst} exists; add --force to replace it")
    folder = os.path.dirname(os.path.abspath(dst))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ClassifyError(f"--output {dst}: {folder} is a file, not a folder")
    if not os.path.isdir(folder):
        raise ClassifyError(f"--output {dst}: folder {folder} does not exist")
    # A file is created there and removed: asking the system (os.access) says yes to root even where nothing
    # can be written (/proc, a read-only mount), and the refusal would come only after inference.
    make_writable_dir(folder, f"--output {dst}: folder")


def write_annotated_video(src: str, dst: str, lines: Sequence[str]) -> None:
    """A copy of the whole of `src` with `lines` drawn in its top-left corner (frames narrower than 256 px
    enlarged so that the text fits): an .mp4 (H.264) or a .gif by `dst`'s extension; written atomically."""
    frames, fps = _frames(src)
    drawn = (_draw_lines(img, lines) for img in frames)
    with atomic_path(dst) as tmp:
        if os.path.splitext(dst)[1].lower() == ".gif":
            images = list(drawn)  # GIF frames are assembled in memory by PIL
            if not images:
                raise ClassifyError(f"{src}: no frames to draw on")
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        elif _write_mp4(tmp, drawn, fps) == 0:
            raise ClassifyError(f"{src}: no frames to draw on")

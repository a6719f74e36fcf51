"""The video dataset behind every dataset name: a CSV of `path<SEP>label` lines plus PyAV decoding.

Kinetics, UCF101, HMDB51, Kinetics-600 and the synthetic default differ only in their files, so one class
serves them all (`build_dataset` maps the names). The CSV is checked line by line when the dataset is
built, so a bad line stops the run before any training with the file name and line number.

Items are dicts `{"frames": [3, T, S, S] float32, "label", "video_index", "view_index", "ok"}`.
Train/val give one item per video; test gives `num_views * num_crops` consecutive items per video
(`view_index = temporal_view * num_crops + spatial_crop`).

Broken videos (missing, truncated, no frames, undecodable): in train/val the failure is logged once per
path and another random video is drawn, up to `num_retries` times, after which a RuntimeError names every
path tried. In test the item comes back with `ok=False` and zero frames so the test loop can exclude and
report it. `failures` lists the (path, reason) pairs seen by this process *and its data-loader workers*:
workers append them to a small log file that the dataset owns (a temp file, removed with the dataset),
so the test loop can name the reason of each unreadable video even when decoding ran in workers.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from slowfast.errors import UserError
from slowfast.datasets import sampling, transforms
from slowfast.datasets.decoder import VideoDecodeError, read_clip
from slowfast.utils.class_index import read_class_names  # noqa: F401  (re-exported)

__all__ = ["VideoEntry", "read_video_csv", "read_class_names", "VideoCSVDataset", "DatasetFileError",
           "UnreadableVideosError", "check_paths_exist"]

logger = logging.getLogger(__name__)


class DatasetFileError(UserError, ValueError):
    """A malformed CSV or class-index file; the message names the file and line."""


@dataclass(frozen=True)
class VideoEntry:
    path: str
    label: int


def read_video_csv(
    csv_path: str,
    separator: str,
    path_prefix: str,
    num_classes: int | None = None,
) -> list[VideoEntry]:
    """Parse and validate every line; paths are joined to `path_prefix` (absolute paths stay as they are)."""
    if not os.path.isfile(csv_path):
        raise DatasetFileError(f"dataset list not found: {csv_path}")
    entries = []
    # utf-8-sig: spreadsheet programs ("CSV UTF-8") start the file with a byte-order mark, which would
    # otherwise become part of the first path.
    with open(csv_path, encoding="utf-8-sig") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line:
                continue
            fields = line.split(separator)
            if len(fields) != 2:
                raise DatasetFileError(
                    f"{csv_path}:{lineno}: expected 2 fields (path{separator}label) separated by "
                    f"{separator!r}, got {len(fields)}: {line[:200]!r}"
                )
            path, label_text = fields[0].strip(), fields[1].strip()
            if not path:
                raise DatasetFileError(f"{csv_path}:{lineno}: empty path")
            try:
                label = int(label_text)
            except ValueError:
                raise DatasetFileError(f"{csv_path}:{lineno}: label {label_text!r} is not an integer") from None
            if label < 0 or (num_classes is not None and label >= num_classes):
                upper = f"0..{num_classes - 1}" if num_classes is not None else "a non-negative integer"
                raise DatasetFileError(f"{csv_path}:{lineno}: label {label} outside {upper} (the class-index file)")
            entries.append(VideoEntry(os.path.join(path_prefix, path), label))
    if not entries:
        raise DatasetFileError(f"{csv_path}: no videos listed")
    return entries


class UnreadableVideosError(UserError, RuntimeError):
    """Every video tried in a row could not be decoded (train/val): the list or the files are broken."""


# Listed paths checked for existence when a dataset is built: enough to catch a wrong DATA.PATH_PREFIX
# or separator at once, few enough to cost nothing on a network file system.
PATH_SAMPLE = 20


def check_paths_exist(entries: Sequence[VideoEntry], csv_path: str, path_prefix: str, sample: int = PATH_SAMPLE) -> None:
    """Refuse a list none of whose first `sample` videos exists, naming the prefix tried and what is
    there; a list where only some are missing is left to the per-video handling (broken videos)."""
    checked = entries[:sample]
    if not checked or any(os.path.exists(e.path) for e in checked):
        return
    where = path_prefix or os.getcwd()
    if os.path.isdir(where):
        names = sorted(os.listdir(where))
        found = f"it contains {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}" if names else "it is empty"
    else:
        found = "it does not exist"
    raise DatasetFileError(
        f"{csv_path}: none of the first {len(checked)} listed videos exists, e.g. {checked[0].path}; "
        f"DATA.PATH_PREFIX is {path_prefix!r} ({found}); check DATA.PATH_PREFIX and DATA.PATH_LABEL_SEPARATOR"
    )


def _remove_dir_if_owner(path: str, owner_pid: int) -> None:
    # Forked data-loader workers inherit the finalizer; only the process that made the folder removes it.
    if os.getpid() == owner_pid:
        shutil.rmtree(path, ignore_errors=True)


class VideoCSVDataset(Dataset):
    """Clips of the videos listed in one CSV; see the module docstring for items and failure handling."""

    def __init__(
        self,
        csv_path: str,
        mode: str,
        *,
        path_prefix: str = "",
        separator: str = ",",
        class_names: Sequence[str] | None = None,
        num_frames: int = 8,
        sampling_rate: int = 8,
        target_fps: float = 30.0,
        original_sampling: bool = False,
        random_val: bool = False,
        original_resize: bool = False,
        train_jitter_scales: Sequence[int] = (256, 320),
        train_crop_size: int = 224,
        test_crop_size: int = 256,
        random_flip: bool = True,
        mean: Sequence[float] = (0.45, 0.45, 0.45),
        std: Sequence[float] = (0.225, 0.225, 0.225),
        num_views: int = 1,
        num_crops: int = 1,
        num_retries: int = 10,
        multi_thread_decode: bool = True,
        seed: int = 0,
    ):
        if mode not in ("train", "val", "test"):
            raise ValueError(f"mode must be train, val or test, got {mode!r}")
        if num_crops not in (1, 3):
            raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
        self.mode = mode
        self.csv_path = csv_path
        self.class_names = list(class_names) if class_names is not None else None
        self.entries = read_video_csv(
            csv_path, separator, path_prefix, len(self.class_names) if self.class_names is not None else None
        )
        check_paths_exist(self.entries, csv_path, path_prefix)
        self.num_frames = num_frames
        self.sampling_rate = sampling_rate
        self.target_fps = float(target_fps)
        self.original_sampling = original_sampling
        self.random_val = random_val
        self.original_resize = original_resize
        self.train_jitter_scales = list(train_jitter_scales)
        self.train_crop_size = train_crop_size
        self.test_crop_size = test_crop_size
        self.random_flip = random_flip
        self.mean = list(mean)
        self.std = list(std)
        self.num_views = num_views if mode == "test" else 1
        self.num_crops = num_crops if mode == "test" else 1
        self.num_retries = num_retries
        self.multi_thread_decode = multi_thread_decode
        self._failed_paths: set[str] = set()
        self._failure_log = self._new_failure_log()
        self._cache_key = None  # video index of the views in _cache_value (test mode)
        self._cache_value = None
        self.rng = random.Random(seed)

    def _new_failure_log(self) -> str:
        """Path of this dataset's log of unreadable videos (reasons shared by the loader's workers).

        The folder is created by the first failure only, so a run without broken videos leaves nothing
        behind even when it is killed (SIGKILL runs no clean-up); it is removed with the dataset, at exit
        and on Ctrl-C (a KeyboardInterrupt unwinds normally).
        """
        log_dir = os.path.join(tempfile.gettempdir(), f"stdd-video-failures-{os.getpid()}-{secrets.token_hex(6)}")
        weakref.finalize(self, _remove_dir_if_owner, log_dir, os.getpid())
        return os.path.join(log_dir, "failures.tsv")

    # ---- public helpers used by the loader and the test loop ------------------------------------
    @property
    def num_videos(self) -> int:
        return len(self.entries)

    @property
    def items_per_video(self) -> int:
        return self.num_views * self.num_crops

    def video_path(self, video_index: int) -> str:
        return self.entries[video_index].path

    def labels(self) -> list[int]:
        return [e.label for e in self.entries]

    def reseed(self, seed: int) -> None:
        """Re-seed the sampling/augmentation RNG (called per data-loader worker)."""
        self.rng.seed(seed)

    def __len__(self) -> int:
        return self.num_videos * self.items_per_video

    # ---- items --------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> dict:
        if self.mode == "test":
            return self._test_item(index)
        tried = []
        video = index
        for _ in range(self.num_retries + 1):
            try:
                frames = self._decode(video, view=0)
                clip = self._spatial(frames, spatial_index=1)
                return self._item(clip, video, 0, True)
            except VideoDecodeError as e:
                self._record_failure(e)
                tried.append(f"{e.path} ({e.reason})")
                video = self.rng.randrange(self.num_videos)
        raise UnreadableVideosError(
            f"{self.csv_path}: {len(tried)} videos in a row could not be decoded "
            f"(DATA_LOADER.NUM_RETRIES = {self.num_retries}): " + "; ".join(tried)
        )

    def _test_item(self, index: int) -> dict:
        video, view = divmod(index, self.items_per_video)
        temporal, spatial = divmod(view, self.num_crops)
        if self._cache_key != video:
            # All views of a video are consecutive items: decode them in one pass over the file and
            # keep them for the following items (views and crops), instead of seeking once per view.
            try:
                self._cache_value = self._decode_views(video)
            except VideoDecodeError as e:
                self._record_failure(e)
                self._cache_value = None
            self._cache_key = video
        if self._cache_value is None:
            s = self.test_crop_size
            return self._item(torch.zeros(3, self.num_frames, s, s), video, view, False)
        clip = self._spatial(self._cache_value[temporal], spatial_index=spatial)
        return self._item(clip, video, view, True)

    def _item(self, clip: torch.Tensor, video: int, view: int, ok: bool) -> dict:
        return {
            "frames": clip,
            "label": torch.tensor(self.entries[video].label, dtype=torch.long),
            "video_index": torch.tensor(video, dtype=torch.long),
            "view_index": torch.tensor(view, dtype=torch.long),
            "ok": torch.tensor(ok, dtype=torch.bool),
        }

    @property
    def failures(self) -> list[tuple[str, str]]:
        """(path, reason) of every unreadable video met so far, by this process or its workers."""
        try:
            with open(self._failure_log, encoding="utf-8") as f:
                rows = [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]
        except FileNotFoundError:
            return []
        seen: dict[str, str] = {}
        for path, reason in rows:
            seen.setdefault(path, reason)
        return list(seen.items())

    def _record_failure(self, e: VideoDecodeError) -> None:
        """Log a broken video once (over all workers) and add it to the failure log."""
        if e.path in self._failed_paths:
            return
        self._failed_paths.add(e.path)
        if any(p == e.path for p, _ in self.failures):  # another worker got there first
            return
        reason = " ".join(e.reason.split())  # one line, no tabs
        try:
            os.makedirs(os.path.dirname(self._failure_log), exist_ok=True)
            with open(self._failure_log, "a", encoding="utf-8") as f:
                f.write(f"{e.path}\t{reason}\n")  # one small append: atomic between processes
        except OSError:
            pass  # the log is a convenience; the item's ok=False already reports the video
        logger.warning("unreadable video %s: %s", e.path, reason)

    def _choose_indices(self, view: int):
        random_clip = self.mode == "train" or (self.mode == "val" and self.random_val)

        def choose(num_video_frames: int, fps: float) -> list[int]:
            if self.original_sampling:
                clip_idx = -1 if random_clip else (view if self.mode == "test" else 0)
                return sampling.original_pyav_indices(
                    num_video_frames, fps, self.num_frames, self.sampling_rate, self.target_fps,
                    clip_idx, self.num_views, self.rng,
                )
            mode = "random" if random_clip else ("view" if self.mode == "test" else "centre")
            return sampling.sample_clip_indices(
                mode, num_video_frames, fps, self.num_frames, self.sampling_rate, self.target_fps,
                rng=self.rng, view=view, num_views=self.num_views,
            )

        return choose

    def _decode(self, video: int, view: int):
        frames, _ = read_clip(self.entries[video].path, self._choose_indices(view), self.multi_thread_decode)
        return frames

    def _decode_views(self, video: int) -> list:
        """The frames of every temporal test view of `video`, from one decoding pass."""
        choosers = [self._choose_indices(v) for v in range(self.num_views)]

        def choose_all(num_video_frames: int, fps: float) -> list[int]:
            return [i for c in choosers for i in c(num_video_frames, fps)]

        frames, _ = read_clip(self.entries[video].path, choose_all, self.multi_thread_decode)
        t = self.num_frames
        return [frames[v * t : (v + 1) * t] for v in range(self.num_views)]

    def _spatial(self, frames, spatial_index: int) -> torch.Tensor:
        if self.mode == "train" or (self.mode == "val" and self.random_val):
            flip = self.random_flip
            return transforms.train_transform(
                frames, self.train_jitter_scales, self.train_crop_size, flip, self.mean, self.std, self.rng,
                self.original_resize,
            )
        if self.mode == "val":
            return transforms.val_transform(frames, self.train_jitter_scales, self.train_crop_size, self.mean, self.std,
                                            self.original_resize)
        return transforms.test_transform(
            frames, self.test_crop_size, spatial_index, self.num_crops, self.mean, self.std, self.original_resize
        )

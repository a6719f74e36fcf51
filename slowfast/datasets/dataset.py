"""`VideoDataset`: a list of (path, label), a clip sampler and a transform, joined into model items.

The three parts are built apart (`read_video_csv`, `build_sampler`, `build_transform` in `loader.py`) and
the dataset only joins them, so the same items can come from a CSV, a list of your own videos or frames
in memory (`load_clip`).

Items are dicts `{"frames": [3, T, S, S] float32, "label", "video_index", "view_index", "ok", "reason"}`.
A sampler in "views" mode (test) gives `num_views * num_crops` consecutive items per video
(`view_index = temporal_view * num_crops + spatial_crop`); the others give one item per video.

Broken videos (missing, truncated, no frames, undecodable): for random or centre clips (train/val) the
failure is logged once per path and another random video is drawn, up to `num_retries` times, after which
an error names every path tried. For test views the items come back with `ok=False`, zero frames and the
one-line `reason`, so the test loop can exclude and report the video; the reason travels in the batch.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from slowfast.datasets.clips import load_clip
from slowfast.datasets.decoder import VideoDecodeError
from slowfast.datasets.sampling import ClipSampler
from slowfast.datasets.transforms import ClipTransform
from slowfast.datasets.video_list import VideoEntry
from slowfast.errors import UserError

__all__ = ["VideoDataset", "UnreadableVideosError"]

logger = logging.getLogger(__name__)


class UnreadableVideosError(UserError, RuntimeError):
    """Every video tried in a row could not be decoded (train/val): the list or the files are broken."""


class VideoDataset(Dataset):
    """Clips of `entries`; see the module docstring for items and failure handling."""

    def __init__(
        self,
        entries: Sequence[VideoEntry],
        sampler: ClipSampler,
        transform: ClipTransform,
        *,
        num_retries: int = 10,
        multi_thread_decode: bool = True,
        seed: int = 0,
        source: str = "the video list",
    ):
        self.entries = list(entries)
        self.sampler = sampler
        self.transform = transform
        self.num_retries = num_retries
        self.multi_thread_decode = multi_thread_decode
        self.source = source  # names the list in error messages (the CSV's path)
        self.rng = random.Random(seed)
        self._logged: set[str] = set()
        self._cache: tuple[int, torch.Tensor | None, str] | None = None  # (video, its clips, reason) in test mode

    @property
    def num_videos(self) -> int:
        return len(self.entries)

    @property
    def items_per_video(self) -> int:
        if self.sampler.mode != "views":
            return 1
        return self.sampler.clips_per_video * self.transform.num_crops

    def video_path(self, video_index: int) -> str:
        return self.entries[video_index].path

    def labels(self) -> list[int]:
        return [e.label for e in self.entries]

    def reseed(self, seed: int) -> None:
        """Re-seed the sampling/augmentation RNG (called per data-loader worker and per epoch)."""
        self.rng.seed(seed)

    def __len__(self) -> int:
        return self.num_videos * self.items_per_video

    def __getitem__(self, index: int) -> dict:
        if self.sampler.mode == "views":
            return self._view_item(index)
        tried = []
        video = index
        for _ in range(self.num_retries + 1):
            try:
                return self._item(self._clips(video)[0], video, 0)
            except VideoDecodeError as e:
                self._log_failure(e)
                tried.append(f"{e.path} ({e.reason})")
                video = self.rng.randrange(self.num_videos)
        raise UnreadableVideosError(
            f"{self.source}: {len(tried)} videos in a row could not be decoded "
            f"(DATA_LOADER.NUM_RETRIES = {self.num_retries}): " + "; ".join(tried)
        )

    def _clips(self, video: int) -> torch.Tensor:
        return load_clip(self.entries[video].path, self.sampler, self.transform, self.rng,
                         multi_thread=self.multi_thread_decode)

    def _view_item(self, index: int) -> dict:
        video, view = divmod(index, self.items_per_video)
        if self._cache is None or self._cache[0] != video:
            # All views of a video are consecutive items: decode them in one pass over the file and keep
            # them for the following items, instead of reading the file once per view.
            try:
                self._cache = (video, self._clips(video), "")
            except VideoDecodeError as e:
                self._log_failure(e)
                self._cache = (video, None, " ".join(e.reason.split()) or "could not be decoded")
        _, clips, reason = self._cache
        if clips is None:
            s = self.transform.crop_size
            return self._item(torch.zeros(3, self.sampler.num_frames, s, s), video, view, reason)
        return self._item(clips[view], video, view)

    def _item(self, clip: torch.Tensor, video: int, view: int, reason: str = "") -> dict:
        return {
            "frames": clip,
            "label": torch.tensor(self.entries[video].label, dtype=torch.long),
            "video_index": torch.tensor(video, dtype=torch.long),
            "view_index": torch.tensor(view, dtype=torch.long),
            "ok": torch.tensor(not reason, dtype=torch.bool),
            "reason": reason,  # one line; "" when the video was read
        }

    def _log_failure(self, e: VideoDecodeError) -> None:
        """Log a broken video once per process."""
        if e.path not in self._logged:
            self._logged.add(e.path)
            logger.warning("unreadable video %s: %s", e.path, " ".join(e.reason.split()))

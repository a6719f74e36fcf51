"""The config at the edge of the data pipeline: `build_sampler`, `build_transform`, `build_dataset`,
`build_loader` (and `make_loader` for a dataset built otherwise, e.g. from your own list of videos).

A split's pipeline is three parts built once: the video list (`read_video_csv` of the split's CSV), the
clip sampler (train: a random clip; val: the centre clip, or a random one with DATA.RANDOM_VAL; test:
TEST.NUM_ENSEMBLE_VIEWS views) and the transform (train: jitter, crop, flip; val: centre crop; test:
TEST.NUM_SPATIAL_CROPS crops), joined by `VideoDataset`.

Per-process batch = global batch / world size (TRAIN.BATCH_SIZE for train and val, TEST.BATCH_SIZE for
test); `assert_and_infer_cfg` has checked that it divides.

Seeds (all from `slowfast.utils.seeding.derive_seed`): the dataset's RNG in the main process and the
loader's generator start from (RNG_SEED, rank); `reseed_for_epoch` moves both to (RNG_SEED, epoch, rank)
before each training epoch; each worker seeds itself from (RNG_SEED, rank, worker id, the base seed the
loader drew from its generator), so worker streams, too, follow the epoch.

Under torch.distributed, training uses a shuffling `DistributedSampler` with drop_last; val and
test use `ContiguousSplitSampler`, which gives each rank its own slice with no padding, so every item is
seen exactly once over all ranks (the original's padded sampler counted some test videos twice).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from slowfast.datasets.dataset import VideoDataset
from slowfast.datasets.sampling import ClipSampler
from slowfast.datasets.transforms import ClipTransform, TestTransform, TrainTransform, ValTransform
from slowfast.datasets.video_list import check_paths_exist, read_video_csv
from slowfast.utils.class_index import read_class_names
from slowfast.utils.seeding import derive_seed

__all__ = [
    "ContiguousSplitSampler",
    "build_sampler",
    "build_transform",
    "build_dataset",
    "make_loader",
    "build_loader",
    "reseed_for_epoch",
    "dataset_csv_path",
]

class ContiguousSplitSampler(Sampler[int]):
    """Rank r of w gets items [r*n//w, (r+1)*n//w): no shuffling, no padding, no duplicates.

    Contiguous slices keep the views of a test video together on one rank (and usually in one batch).
    """

    def __init__(self, num_items: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.start = num_items * rank // world_size
        self.stop = num_items * (rank + 1) // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start

    def set_epoch(self, epoch: int) -> None:  # same order every epoch
        pass


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def dataset_csv_path(cfg, split: str) -> str:
    name = split
    if split == "test" and cfg.TEST.OPENSET:
        name = "test_openset"
    return os.path.join(cfg.DATA.PATH_TO_DATA_DIR, f"{name}.csv")


def _check_split(split: str) -> None:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")


def _random_clip(cfg, split: str) -> bool:
    return split == "train" or (split == "val" and cfg.DATA.RANDOM_VAL)


def build_sampler(cfg, split: str) -> ClipSampler:
    """Which frames the clips of `split` take (see the module docstring)."""
    _check_split(split)
    mode = "random" if _random_clip(cfg, split) else ("views" if split == "test" else "centre")
    d = cfg.DATA
    return ClipSampler(num_frames=d.NUM_FRAMES, sampling_rate=d.SAMPLING_RATE, target_fps=d.TARGET_FPS, mode=mode,
                       num_views=cfg.TEST.NUM_ENSEMBLE_VIEWS if mode == "views" else 1, original=d.ORIGINAL_SAMPLING)


def build_transform(cfg, split: str) -> ClipTransform:
    """The spatial transform of `split` (see the module docstring)."""
    _check_split(split)
    d = cfg.DATA
    common = dict(mean=tuple(d.MEAN), std=tuple(d.STD), original_resize=d.ORIGINAL_RESIZE)
    if _random_clip(cfg, split):
        return TrainTransform(crop_size=d.TRAIN_CROP_SIZE, jitter_scales=tuple(d.TRAIN_JITTER_SCALES),
                              flip=d.RANDOM_FLIP, **common)
    if split == "val":
        return ValTransform(crop_size=d.TRAIN_CROP_SIZE, scale=int(d.TRAIN_JITTER_SCALES[0]), **common)
    return TestTransform(crop_size=d.TEST_CROP_SIZE, crops=cfg.TEST.NUM_SPATIAL_CROPS, **common)


def build_dataset(cfg, split: str) -> VideoDataset:
    """The dataset of `split` (train, val or test) as the config describes it."""
    _check_split(split)
    num_classes = len(read_class_names(cfg.DATA.INDEX_LABEL_MAPPING_FILE)) if cfg.DATA.INDEX_LABEL_MAPPING_FILE else None
    prefix = cfg.DATA.PATH_PREFIX or cfg.DATA.PATH_TO_DATA_DIR
    csv_path = dataset_csv_path(cfg, split)
    entries = read_video_csv(csv_path, cfg.DATA.PATH_LABEL_SEPARATOR, prefix, num_classes, keep_repeats=split == "train")
    check_paths_exist(entries, csv_path, prefix)
    rank, _ = _world()
    return VideoDataset(
        entries, build_sampler(cfg, split), build_transform(cfg, split),
        num_retries=cfg.DATA_LOADER.NUM_RETRIES, multi_thread_decode=cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE,
        seed=derive_seed(cfg.RNG_SEED, rank), source=csv_path,
    )


class _WorkerInit:
    """Seeds random, numpy, torch and the dataset's RNG of a worker (see the module docstring).

    `torch.initial_seed()` in a worker is the loader's per-iteration base seed (drawn from the
    loader's seeded generator) plus the worker id, so seeds are reproducible yet differ per epoch.
    """

    def __init__(self, rng_seed: int, rank: int):
        self.rng_seed = rng_seed
        self.rank = rank

    def __call__(self, worker_id: int) -> None:
        seed = derive_seed(self.rng_seed, self.rank, worker_id, torch.initial_seed())
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        info = torch.utils.data.get_worker_info()
        if info is not None and hasattr(info.dataset, "reseed"):
            info.dataset.reseed(seed)


def build_loader(cfg, split: str, shuffle: bool | None = None) -> DataLoader:
    """DataLoader of dict batches for `split`; `shuffle` defaults to True for train only."""
    return make_loader(cfg, build_dataset(cfg, split), split, shuffle)


def make_loader(cfg, dataset: VideoDataset, split: str, shuffle: bool | None = None) -> DataLoader:
    """DataLoader of dict batches over `dataset` with `split`'s batch size, sampler and worker seeding."""
    rank, world = _world()
    batch = (cfg.TEST.BATCH_SIZE if split == "test" else cfg.TRAIN.BATCH_SIZE) // world
    is_train = split == "train"
    shuffle = is_train if shuffle is None else shuffle
    generator = torch.Generator().manual_seed(derive_seed(cfg.RNG_SEED, rank))
    if world > 1:
        if is_train:
            sampler = DistributedSampler(dataset, world, rank, shuffle=shuffle, seed=cfg.RNG_SEED, drop_last=True)
        else:
            sampler = ContiguousSplitSampler(len(dataset), rank, world)
        shuffle_arg = None
    else:
        sampler, shuffle_arg = None, shuffle
    workers = cfg.DATA_LOADER.NUM_WORKERS
    return DataLoader(
        dataset,
        batch_size=batch,
        shuffle=shuffle_arg,
        sampler=sampler,
        num_workers=workers,
        pin_memory=bool(cfg.DATA_LOADER.PIN_MEMORY and cfg.NUM_GPUS > 0 and torch.cuda.is_available()),
        drop_last=is_train,
        # Workers start anew for every pass over the loader, seeded from that pass's generator state: the
        # trainer rebuilds and reseeds the train loader every epoch, so a resumed run sees the same batches.
        persistent_workers=False,
        worker_init_fn=_WorkerInit(cfg.RNG_SEED, rank),
        generator=generator,
    )


def reseed_for_epoch(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Make the epoch's data order and augmentation a function of (seed, epoch, rank) only.

    Sets the loader's shuffling generator (which also draws the workers' base seed), the in-process
    dataset RNG and the distributed sampler's epoch, so a run resumed at `epoch` sees exactly the
    batches the uninterrupted run saw.
    """
    s = derive_seed(seed, epoch, rank, 1)
    gen = getattr(loader, "generator", None)
    if gen is not None:
        gen.manual_seed(s)
    dataset = getattr(loader, "dataset", None)
    if hasattr(dataset, "reseed"):
        dataset.reseed(s)
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)

"""What several test modules share: the repository root, the tiny videos and the config of a tiny run.

conftest.py imports this module first (it puts the repository on the import path) and turns
`write_tiny_data` into the `tiny_data` fixture; test modules import the rest from here, never from
each other.
"""

import json
import os
import signal
import socket
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from yacs.config import CfgNode  # noqa: E402

from slowfast.config import assert_and_infer_cfg, get_cfg, merge_dict, merge_from_list  # noqa: E402

TINY_CLASSES = ["moving left", "moving right"]

# The tiny run on `write_tiny_data`'s videos: 4 frames of 32 px, a one-block random CLIP with the STDD
# operator, 3 epochs of one or two batches, two test views; on the CPU, in the main process.
_TINY_RUN = {
    "NUM_GPUS": 0, "RNG_SEED": 3, "LOG_PERIOD": 1, "TRAIN.BATCH_SIZE": 4, "TEST.BATCH_SIZE": 4,
    "TRAIN.CHECKPOINT_PERIOD": 1, "TRAIN.EVAL_PERIOD": 1, "SOLVER.MAX_EPOCH": 3,
    "SOLVER.BASE_LR": 1e-3, "SOLVER.WARMUP_START_LR": 1e-4, "SOLVER.COSINE_END_LR": 1e-5,
    "SOLVER.WARMUP_EPOCHS": 1.0, "SOLVER.CLIP_GRAD_L2NORM": 1.0, "DATA.PATH_LABEL_SEPARATOR": ",",
    "DATA.NUM_FRAMES": 4, "DATA.SAMPLING_RATE": 1, "DATA.TARGET_FPS": 30,
    "DATA.TRAIN_JITTER_SCALES": [32, 32], "DATA.TRAIN_CROP_SIZE": 32, "DATA.TEST_CROP_SIZE": 32,
    "DATA.RANDOM_FLIP": False, "DATA_LOADER.NUM_WORKERS": 0,
    "TEST.NUM_ENSEMBLE_VIEWS": 2, "TEST.NUM_SPATIAL_CROPS": 1,
    "MODEL.ARCH": "custom", "MODEL.NUM_CLASSES": 2, "MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend",
    "MODEL.CHANNEL_FOLD": 8, "MODEL.TEMPORAL_SCALE": [1, 2],
    "MODEL.CUSTOM_CLIP.EMBED_DIM": 32, "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": 32,
    "MODEL.CUSTOM_CLIP.VISION_PATCH": 8, "MODEL.CUSTOM_CLIP.VISION_WIDTH": 32,
    "MODEL.CUSTOM_CLIP.VISION_LAYERS": 1, "MODEL.CUSTOM_CLIP.VISION_HEADS": 2,
    "MODEL.CUSTOM_CLIP.TEXT_WIDTH": 32, "MODEL.CUSTOM_CLIP.TEXT_LAYERS": 1, "MODEL.CUSTOM_CLIP.TEXT_HEADS": 2,
}


def config_from(values: dict, check: bool = True) -> CfgNode:
    """The default config with `values` ({"SECTION.KEY": value}) merged by the strict merge, then checked
    by `assert_and_infer_cfg` unless `check` is False (for tests of the checks that come later)."""
    cfg = merge_dict(get_cfg(), values)
    return assert_and_infer_cfg(cfg) if check else cfg


def moving_square_clip(label: int, seed: int, t: int = 4, size: int = 32) -> np.ndarray:
    """A bright square moving left (0) or right (1) on a noisy background: [T, H, W, 3] uint8."""
    rng = np.random.default_rng(seed)
    frames = (rng.random((t, size, size, 3)) * 40).astype(np.uint8)
    y, x0 = int(rng.integers(4, size - 12)), int(rng.integers(8, size - 16))
    for i in range(t):
        x = x0 + (4 * i if label == 1 else 4 * (t - 1 - i))
        frames[i, y:y + 8, x:x + 8] = 220
    return frames


def write_tiny_data(root: str) -> str:
    """8 train, 4 val, 4 test videos (4 frames, 32 px, 30 fps) of TINY_CLASSES, their lists
    (`videos/<split>_<i>.mp4,<label>`) and index2cls.json, under `root`; returns `root`."""
    from slowfast.datasets.synthetic import write_video

    os.makedirs(os.path.join(root, "videos"))
    for split, n, off in (("train", 8, 0), ("val", 4, 100), ("test", 4, 200)):
        lines = []
        for i in range(n):
            label = i % 2
            rel = f"videos/{split}_{i}.mp4"
            write_video(os.path.join(root, rel), moving_square_clip(label, off + i), fps=30)
            lines.append(f"{rel},{label}\n")
        with open(os.path.join(root, f"{split}.csv"), "w", encoding="utf-8") as f:
            f.write("".join(lines))
    with open(os.path.join(root, "index2cls.json"), "w", encoding="utf-8") as f:
        json.dump({str(i): c for i, c in enumerate(TINY_CLASSES)}, f)
    return root


def tiny_run_values(data_dir: str, out: str, **extra) -> dict:
    """The tiny run's config values for the videos in `data_dir`, writing to `out`; `extra` overrides."""
    paths = {"OUTPUT_DIR": out, "DATA.PATH_TO_DATA_DIR": data_dir, "DATA.PATH_PREFIX": data_dir,
             "DATA.INDEX_LABEL_MAPPING_FILE": os.path.join(data_dir, "index2cls.json")}
    return {**_TINY_RUN, **paths, **extra}


def tiny_run_opts(data_dir: str, out: str, **extra) -> list[str]:
    """`tiny_run_values` as the `--opts KEY VALUE ...` of a command line."""
    return [str(x) for kv in tiny_run_values(data_dir, out, **extra).items() for x in kv]


def tiny_run_cfg(data_dir: str, out: str, **extra) -> CfgNode:
    """`tiny_run_opts` merged as a command line's --opts are, then checked."""
    return assert_and_infer_cfg(merge_from_list(get_cfg(), tiny_run_opts(data_dir, out, **extra)))


def free_port() -> int:
    """A TCP port free on this machine now, for a multi-process run's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TINY_SYNTHETIC_YAML = """
_BASE_: {root}/tests/configs/tiny_synthetic.yaml
OUTPUT_DIR: {out}
DATA:
  PATH_TO_DATA_DIR: {data}
  PATH_PREFIX: {data}
  INDEX_LABEL_MAPPING_FILE: {data}/index2cls.json
MODEL:
  DETERMINISTIC_TEST_MASKS: True
"""


def make_tiny_synthetic(root, out, train_per_class: int = 1, extra_yaml: str = ""):
    """A small synthetic dataset in `root` (8-frame clips, one val/test/zero-shot clip per class) and
    `root/tiny.yaml`, the tiny test config pointed at it (`extra_yaml` appended); returns the config's path."""
    from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

    make_synthetic_dataset(str(root), SyntheticSpec(train_per_class=train_per_class, val_per_class=1, test_per_class=1,
                                                    zero_shot_per_class=1, frames=8))
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY_SYNTHETIC_YAML.format(root=ROOT, data=root, out=out) + extra_yaml)
    return cfg


def ctrl_c_as_in_a_terminal() -> None:
    """`preexec_fn` of a child a test sends Ctrl-C (SIGINT) to: the child takes it as in a terminal even when
    this test run ignores SIGINT, as every command started in the background by a non-interactive shell does
    (`make test &`, nohup), a setting children would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

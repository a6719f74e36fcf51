"""`VideoClassifier`: zero-shot video classification from Python, with the test loop's exact preprocessing.

    from slowfast.inference import VideoClassifier
    clf = VideoClassifier.from_config("configs/Kinetics/STDD_vitb16_8x16_k400.yaml", checkpoint="swa_2_22.pth")
    clf.predict("my_video.mp4", ["juggling", "skiing", "surfing"], top_k=2)  # [("juggling", 0.91), ...]
    clf.predict_many(paths, classes)                                           # one model, batched

The model is built and its weights loaded once. Videos go through the test loop's clip pipeline (the same
sampler and transform: temporal views x crops, normalisation, see `slowfast.datasets.load_clip`) and
`evaluate`; a video's probabilities are the softmax of its mean logit over views, so they equal what
`tools/run_net.py` testing computes. Nothing is written to disk. The text classifier is computed once per
class list and cached (the 16 most recently used lists).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import nn

from slowfast.engine.video_io import ClassifyError, Prediction, check_class_names

__all__ = ["VideoClassifier", "Prediction", "demo_config", "check_checkpoint_file", "check_crop_size"]
_VIDEOS_PER_BATCH = 4
_CACHED_CLASS_LISTS = 16  # text classifiers kept, the least recently used dropped: a web page sees many lists


def demo_config(cfg_files: Union[str, Sequence[str]], checkpoint: Optional[str] = None,
                opts: Optional[Sequence[str]] = None, device: Optional[str] = None):
    """The test config of `cfg_files` for classifying single videos: one process, no teacher, `checkpoint`
    (if given) loaded as TEST.CUSTOM_LOAD_FILE, then the user's `opts` (KEY VALUE ...)."""
    from slowfast.config import get_cfg, load, merge_from_file

    files = [cfg_files] if isinstance(cfg_files, str) else list(cfg_files)
    views = get_cfg()
    for path in files:  # the views x crops of the files decide the batch size (the opts below may change them)
        merge_from_file(views, path)
    use_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    per_video = views.TEST.NUM_ENSEMBLE_VIEWS * views.TEST.NUM_SPATIAL_CROPS
    cfg = load(files, [
        "NUM_GPUS", "1" if use_gpu else "0", "TRAIN.ENABLE", "False", "TEST.BATCH_SIZE", str(per_video * _VIDEOS_PER_BATCH),
        "MODEL.KEEP_RAW_MODEL", "False", "MODEL.RAW_MODEL_DISTILLATION", "False", "MODEL.ENSEMBLE_PRED", "False",
        "TEST.CUSTOM_LOAD", str(bool(checkpoint)), "TEST.CUSTOM_LOAD_FILE", checkpoint or "",
        "TEST.CHECKPOINT_FILE_PATH", "", "TRAIN.CHECKPOINT_FILE_PATH", "",
        "OUTPUT_DIR", os.path.join("output", "demo_net"), "DATA_LOADER.NUM_WORKERS", "0",
        *(opts or []),
    ])
    return cfg


def check_checkpoint_file(path: Optional[str], label: str) -> None:
    """Refuse a checkpoint that is not a local file before anything else is read (the CLIP weights may be a
    download); `label` names the argument or flag in the message."""
    from slowfast.utils.checkpoint import CheckpointError

    if path and not os.path.isfile(path):
        raise CheckpointError(f"{label}: " + ("a folder, not a checkpoint file" if os.path.isdir(path) else "file not found"))


def check_crop_size(cfg, model: nn.Module) -> None:
    """The model's CLIP takes images of one size (its position embedding and the temporal operator's masks are
    built for that patch grid): a DATA.TEST_CROP_SIZE of another size is refused here, not at the first video."""
    from slowfast.config import ConfigError

    size, crop = getattr(model, "image_resolution", None), cfg.DATA.TEST_CROP_SIZE
    if size and crop != size:
        also = f" (or MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION {crop})" if cfg.MODEL.ARCH == "custom" else ""
        raise ConfigError(f"DATA.TEST_CROP_SIZE is {crop} but the model's CLIP (MODEL.ARCH {cfg.MODEL.ARCH}) takes "
                          f"{size}x{size} images; set DATA.TEST_CROP_SIZE {size}{also}")


def _video_path(video, name: str) -> str:
    """`video` (a str or os.PathLike path) when it is an existing file; ClassifyError naming `name` otherwise."""
    if isinstance(video, bytes) or not isinstance(video, (str, os.PathLike)):
        hint = "; for several videos use predict_many" if isinstance(video, (list, tuple)) else ""
        raise ClassifyError(f"{name} must be a video path (str), not {type(video).__name__}{hint}")
    path = os.fspath(video)
    if not os.path.isfile(path):
        raise ClassifyError(f"{name}={path!r}: " + ("a folder, not a video" if os.path.isdir(path) else "file not found"))
    return path


def _video_paths(videos, name: str) -> list[str]:
    """The paths of a list of videos; one path given where a list is expected is refused (a string would be
    read letter by letter)."""
    if isinstance(videos, (str, bytes, os.PathLike)):
        raise ClassifyError(f"{name} must be a list of video paths, not one path ({videos!r}); "
                            f"write [{os.fsdecode(videos)!r}] or use predict for one video")
    paths = [_video_path(v, f"{name}[{i}]") for i, v in enumerate(videos)]
    if not paths:
        raise ClassifyError(f"{name} is empty: no videos to classify")
    return paths


class VideoClassifier:
    """A loaded video model that classifies videos against any list of class names.

    Arguments are checked before any inference, with one rule shared with `tools/demo_net.py`: `classes`
    is a list of at least two distinct names (one string is refused, not read letter by letter), `videos`
    a list of paths (one path is refused: use `predict`), `top_k` a positive int (a larger one than the
    number of classes gives every class); errors are `UserError`s naming the argument and your path.
    """

    def __init__(self, cfg, model: nn.Module):
        from slowfast.datasets import build_sampler, build_transform

        self.cfg, self.model = cfg, model
        self.sampler, self.transform = build_sampler(cfg, "test"), build_transform(cfg, "test")
        self._classifiers: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    @classmethod
    def from_config(cls, config_path: Union[str, Sequence[str]], checkpoint: Optional[str] = None,
                    opts: Optional[Sequence[str]] = None, device: Optional[str] = None) -> VideoClassifier:
        """Build the model of `config_path` (one path or several merged in order) and load `checkpoint`
        (none: the initial weights, i.e. the frozen-CLIP zero-shot baseline). A missing checkpoint is
        refused before the CLIP weights are looked up, a DATA.TEST_CROP_SIZE the CLIP cannot take before
        any video is read."""
        from slowfast.engine.test_weights import load_test_weights
        from slowfast.models import build_model

        check_checkpoint_file(checkpoint, f"checkpoint={checkpoint!r}")
        cfg = demo_config(config_path, checkpoint, opts, device)
        model = build_model(cfg, class_names=["class 0", "class 1"])  # replaced by the caller's classes at each predict
        check_crop_size(cfg, model)
        load_test_weights(cfg, model)
        return cls(cfg, model.eval())

    def _use_classes(self, classes: Sequence[str]) -> None:
        key = tuple(classes)
        if key in self._classifiers:
            self._classifiers.move_to_end(key)
        else:
            self.model.set_classifier(list(classes))
            self._classifiers[key] = self.model.classifier
            if len(self._classifiers) > _CACHED_CLASS_LISTS:
                self._classifiers.popitem(last=False)
        self.model.set_classifier_tensor(self._classifiers[key], list(classes))

    def classify(self, videos: Sequence[str], classes: Sequence[str], top_k: Optional[int] = None) -> list[Prediction]:
        """One `Prediction` per video (in order), with the top-k (default: all) classes and probabilities;
        a video that cannot be decoded gets `ok=False` and the reason."""
        return self._classify(_video_paths(videos, "videos"), classes, top_k)

    def _classify(self, videos: list[str], classes: Sequence[str], top_k: Optional[int]) -> list[Prediction]:
        from slowfast.datasets import VideoDataset, VideoEntry, make_loader
        from slowfast.engine.common import check_top_k
        from slowfast.engine.evaluator import evaluate

        classes = check_class_names(classes, how=" (the classes argument)")
        k = len(classes) if top_k is None else check_top_k(top_k, len(classes), name="top_k")
        self._use_classes(classes)
        # Absolute paths for the decoder (a name such as "a:b.mp4" is not read as a protocol); messages keep yours.
        dataset = VideoDataset([VideoEntry(os.path.abspath(v), 0) for v in videos], self.sampler, self.transform,
                               multi_thread_decode=self.cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE, source="videos")
        out = evaluate(self.cfg, self.model, make_loader(self.cfg, dataset, "test"), split="classify", desc="classify")
        return self._predictions(out, videos, classes, k)

    def _predictions(self, out: dict, videos: list[str], classes: list[str], k: int) -> list[Prediction]:
        res, reasons = out["results"], {int(v): r for v, _, r in out["unreadable"]}
        preds: dict[int, Prediction] = {}
        for i, vi in enumerate(res.video_index.tolist()):
            logits = res.logits[i].float()
            if self.cfg.DATA.ENSEMBLE_METHOD == "sum":
                logits = logits / max(1, int(res.num_views[i]))  # mean logit over views: the scale of one view
            p, idx = torch.softmax(logits, dim=-1).topk(min(k, len(classes)))
            preds[vi] = Prediction(videos[vi], True, [(classes[j], float(q)) for q, j in zip(p.tolist(), idx.tolist())])
        for vi in map(int, res.unreadable):
            reason = reasons.get(vi, "could not be decoded").replace(os.path.abspath(videos[vi]), videos[vi])
            preds[vi] = Prediction(videos[vi], False, [], reason)
        return [preds[i] for i in sorted(preds)]

    def _top_k_lists(self, videos: list[str], names: list[str], classes: Sequence[str], top_k: int):
        preds = self._classify(videos, classes, top_k)
        broken = next(((n, p) for n, p in zip(names, preds) if not p.ok), None)
        if broken is not None:
            raise ClassifyError(f"{broken[0]}={broken[1].path!r}: {broken[1].reason}")
        return [p.topk for p in preds]

    def predict_many(self, videos: Sequence[str], classes: Sequence[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """`[(class, probability), ...]` per video of the list `videos`, best first; an unreadable video
        raises, naming it."""
        paths = _video_paths(videos, "videos")
        return self._top_k_lists(paths, [f"videos[{i}]" for i in range(len(paths))], classes, top_k)

    def predict(self, video: str, classes: Sequence[str], top_k: int = 5) -> list[tuple[str, float]]:
        """`[(class, probability), ...]` of one video (a path), best first."""
        return self._top_k_lists([_video_path(video, "video")], ["video"], classes, top_k)[0]

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

from slowfast.engine.video_io import ClassifyError, Prediction

__all__ = ["VideoClassifier", "Prediction", "demo_config"]
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


class VideoClassifier:
    """A loaded video model that classifies videos against any list of class names."""

    def __init__(self, cfg, model: nn.Module):
        from slowfast.datasets import build_sampler, build_transform

        self.cfg, self.model = cfg, model
        self.sampler, self.transform = build_sampler(cfg, "test"), build_transform(cfg, "test")
        self._classifiers: OrderedDict[tuple[str, ...], torch.Tensor] = OrderedDict()

    @classmethod
    def from_config(cls, config_path: Union[str, Sequence[str]], checkpoint: Optional[str] = None,
                    opts: Optional[Sequence[str]] = None, device: Optional[str] = None) -> VideoClassifier:
        """Build the model of `config_path` (one path or several merged in order) and load `checkpoint`
        (none: the initial weights, i.e. the frozen-CLIP zero-shot baseline)."""
        from slowfast.engine.test_weights import load_test_weights
        from slowfast.models import build_model

        cfg = demo_config(config_path, checkpoint, opts, device)
        model = build_model(cfg, class_names=["class 0", "class 1"])  # replaced by the caller's classes at each predict
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
        """One `Prediction` per video (in order), with the top-k (default: all) classes and probabilities."""
        from slowfast.datasets import VideoDataset, VideoEntry, make_loader
        from slowfast.engine.evaluator import evaluate

        if not videos:
            raise ClassifyError("no videos to classify")
        self._use_classes(classes)
        dataset = VideoDataset([VideoEntry(os.path.abspath(v), 0) for v in videos], self.sampler, self.transform,
                               multi_thread_decode=self.cfg.DATA_LOADER.ENABLE_MULTI_THREAD_DECODE, source="videos")
        out = evaluate(self.cfg, self.model, make_loader(self.cfg, dataset, "test"), split="classify", desc="classify")
        return self._predictions(out, list(videos), list(classes), top_k or len(classes))

    def _predictions(self, out: dict, videos: list[str], classes: list[str], k: int) -> list[Prediction]:
        res, reasons = out["results"], {int(v): r for v, _, r in out["unreadable"]}
        preds: dict[int, Prediction] = {}
        for i, vi in enumerate(res.video_index.tolist()):
            logits = res.logits[i].float()
            if self.cfg.DATA.ENSEMBLE_METHOD == "sum":
                logits = logits / max(1, int(res.num_views[i]))  # mean logit over views: the scale of one view
            p, idx = torch.softmax(logits, dim=-1).topk(min(k, len(classes)))
            preds[vi] = Prediction(videos[vi], True, [(classes[j], float(q)) for q, j in zip(p.tolist(), idx.tolist())])
        for vi in res.unreadable:
            preds[int(vi)] = Prediction(videos[int(vi)], False, [], reasons.get(int(vi), "could not be decoded"))
        return [preds[i] for i in sorted(preds)]

    def predict_many(self, videos: Sequence[str], classes: Sequence[str], top_k: int = 5) -> list[list[tuple[str, float]]]:
        """`[(class, probability), ...]` per video, best first; an unreadable video raises, naming it."""
        preds = self.classify(videos, classes, top_k)
        broken = next((p for p in preds if not p.ok), None)
        if broken is not None:
            raise ClassifyError(f"{broken.path}: {broken.reason}")
        return [p.topk for p in preds]

    def predict(self, video: str, classes: Sequence[str], top_k: int = 5) -> list[tuple[str, float]]:
        """`[(class, probability), ...]` of one video, best first."""
        return self.predict_many([video], classes, top_k)[0]

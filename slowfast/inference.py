"""`VideoClassifier`: zero-shot video classification from Python, with the test loop's exact preprocessing.

    from slowfast.inference import VideoClassifier
    clf = VideoClassifier.from_config("configs/Kinetics/STDD_vitb16_8x16_k400.yaml", checkpoint="swa_2_22.pth")
    clf.predict("my_video.mp4", ["juggling", "skiing", "surfing"], top_k=2)  # [("juggling", 0.91), ...]
    clf.predict_many(paths, classes)                                           # one model, batched

The model is built and its weights loaded once. Videos go through the test loop's dataset (temporal views
x crops, normalisation) and `evaluate`; a video's probabilities are the softmax of its mean logit over
views, so they equal what `tools/run_net.py` testing computes. The text classifier is computed once per
class list and cached.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from typing import Optional, Union

import torch
from torch import nn

from slowfast.engine.classify import ClassifyError, Prediction

__all__ = ["VideoClassifier", "Prediction", "demo_config"]
_VIDEOS_PER_BATCH = 4


def demo_config(cfg_files: Union[str, Sequence[str]], checkpoint: Optional[str] = None,
                opts: Optional[Sequence[str]] = None, device: Optional[str] = None):
    """The test config of `cfg_files` for classifying single videos: one process, no teacher, `checkpoint`
    (if given) loaded as TEST.CUSTOM_LOAD_FILE, then the user's `opts` (KEY VALUE ...)."""
    import argparse

    from slowfast.config import assert_and_infer_cfg, merge_from_list
    from slowfast.config.parser import load_config

    files = [cfg_files] if isinstance(cfg_files, str) else list(cfg_files)
    cfg = load_config(argparse.Namespace(cfg_files=files, opts=[], shard_id=None, num_shards=None))
    use_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
    merge_from_list(cfg, [
        "NUM_GPUS", "1" if use_gpu else "0", "TRAIN.ENABLE", "False", "TEST.BATCH_SIZE", str(views * _VIDEOS_PER_BATCH),
        "MODEL.KEEP_RAW_MODEL", "False", "MODEL.RAW_MODEL_DISTILLATION", "False", "MODEL.ENSEMBLE_PRED", "False",
        "TEST.CUSTOM_LOAD", str(bool(checkpoint)), "TEST.CUSTOM_LOAD_FILE", checkpoint or "",
        "TEST.CHECKPOINT_FILE_PATH", "", "TRAIN.CHECKPOINT_FILE_PATH", "",
        "OUTPUT_DIR", os.path.join("output", "demo_net"), "DATA_LOADER.NUM_WORKERS", "0",
    ])
    merge_from_list(cfg, list(opts or []))
    assert_and_infer_cfg(cfg)
    return cfg


def _write_index(folder: str, class_names: Sequence[str]) -> str:
    path = os.path.join(folder, "index2cls.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({str(i): n for i, n in enumerate(class_names)}, f)
    return path


def _with_data(cfg, folder: str, index_file: str, num_classes: int):
    c = cfg.clone()
    c.defrost()
    c.DATA.PATH_TO_DATA_DIR, c.DATA.PATH_PREFIX, c.DATA.PATH_LABEL_SEPARATOR = folder, "", ","
    c.DATA.INDEX_LABEL_MAPPING_FILE, c.MODEL.NUM_CLASSES, c.TEST.OPENSET = index_file, num_classes, False
    c.DATA.TEXT_AUG = False  # the classes are the caller's: the templates, not a feature file of other classes
    c.freeze()
    return c


class VideoClassifier:
    """A loaded video model that classifies videos against any list of class names."""

    def __init__(self, cfg, model: nn.Module):
        self.cfg, self.model = cfg, model
        self._classifiers: dict[tuple[str, ...], torch.Tensor] = {}

    @classmethod
    def from_config(cls, config_path: Union[str, Sequence[str]], checkpoint: Optional[str] = None,
                    opts: Optional[Sequence[str]] = None, device: Optional[str] = None) -> VideoClassifier:
        """Build the model of `config_path` (one path or several merged in order) and load `checkpoint`
        (none: the initial weights, i.e. the frozen-CLIP zero-shot baseline)."""
        from slowfast.engine.evaluator import load_test_weights
        from slowfast.models import build_model

        cfg = demo_config(config_path, checkpoint, opts, device)
        with tempfile.TemporaryDirectory(prefix="stdd-infer-") as tmp:
            placeholder = ["class 0", "class 1"]  # replaced by the caller's classes at each predict
            c = _with_data(cfg, tmp, _write_index(tmp, placeholder), len(placeholder))
            model = build_model(c)
            load_test_weights(c, model)
        return cls(cfg, model.eval())

    def _use_classes(self, classes: Sequence[str]) -> None:
        key = tuple(classes)
        if key not in self._classifiers:
            self.model.set_classifier(list(classes))
            self._classifiers[key] = self.model.classifier
        self.model.set_classifier_tensor(self._classifiers[key], list(classes))

    def classify(self, videos: Sequence[str], classes: Sequence[str], top_k: Optional[int] = None) -> list[Prediction]:
        """One `Prediction` per video (in order), with the top-k (default: all) classes and probabilities."""
        from slowfast.datasets import build_loader
        from slowfast.engine.evaluator import evaluate

        bad = next((v for v in videos if "," in v), None)
        if bad is not None:
            raise ClassifyError(f"video path contains ',' which the list format cannot hold: {bad}")
        self._use_classes(classes)
        with tempfile.TemporaryDirectory(prefix="stdd-infer-") as tmp:
            with open(os.path.join(tmp, "test.csv"), "w", encoding="utf-8") as f:
                f.writelines(f"{os.path.abspath(v)},0\n" for v in videos)
            c = _with_data(self.cfg, tmp, _write_index(tmp, classes), len(classes))
            out = evaluate(c, self.model, build_loader(c, "test"), split="classify", desc="classify")
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

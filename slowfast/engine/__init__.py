"""Training and evaluation loops: `train(cfg)`, `test(cfg)` (multi-view), `evaluate`, and the meters."""

from slowfast.engine.evaluator import evaluate, test
from slowfast.engine.trainer import train

__all__ = ["train", "test", "evaluate"]

"""The CUDA path (`pytest -m cuda`): skipped where no CUDA device is present.

Run on a GPU machine by `tools/gpu_check.py` (part `cuda_tests`). Models are built through the public
builders (`get_cfg` + `build_model`) with a small random-init CLIP, so the whole file takes seconds.
"""

import copy
import json
import os

import pytest
import torch
import torch.nn.functional as F

from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_list
from slowfast.models import build_model
from slowfast.utils import checkpoint as cu

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CLASSES = ["moving left", "moving right", "moving up", "moving down"]


@pytest.fixture
def device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(autouse=True)
def exact_fp32():
    """TF32 matmuls would make "CUDA equals CPU in fp32" a comparison at 1e-3; the check is for fp32 proper."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def small_cfg(tmp_path, device: torch.device, **extra):
    """An STDD model (scales [1, 2], teacher + distillation) on 32 px frames, 2 blocks of width 64."""
    index = tmp_path / "index2cls.json"
    index.write_text(json.dumps({str(i): c for i, c in enumerate(CLASSES)}))
    opts = {
        "NUM_GPUS": 1 if device.type == "cuda" else 0, "RNG_SEED": 0, "OUTPUT_DIR": str(tmp_path / "run"),
        "DATA.INDEX_LABEL_MAPPING_FILE": str(index), "DATA.NUM_FRAMES": 4,
        "MODEL.ARCH": "custom", "MODEL.NUM_CLASSES": len(CLASSES), "MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend",
        "MODEL.TEMPORAL_SCALE": [1, 2], "MODEL.CHANNEL_FOLD": 8, "MODEL.DETERMINISTIC_TEST_MASKS": True,
        "MODEL.KEEP_RAW_MODEL": True, "MODEL.RAW_MODEL_DISTILLATION": True,
        "MODEL.CUSTOM_CLIP.EMBED_DIM": 32, "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": 32,
        "MODEL.CUSTOM_CLIP.VISION_PATCH": 8, "MODEL.CUSTOM_CLIP.VISION_WIDTH": 64,
        "MODEL.CUSTOM_CLIP.VISION_LAYERS": 2, "MODEL.CUSTOM_CLIP.VISION_HEADS": 2,
        "MODEL.CUSTOM_CLIP.TEXT_WIDTH": 32, "MODEL.CUSTOM_CLIP.TEXT_LAYERS": 1, "MODEL.CUSTOM_CLIP.TEXT_HEADS": 2,
    }
    opts.update(extra)
    cfg = get_cfg()
    merge_from_list(cfg, [str(x) for kv in opts.items() for x in kv])
    return assert_and_infer_cfg(cfg)


def clips(batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 4, 32, 32, generator=g)


def test_stdd_model_on_cuda_equals_cpu_in_fp32(tmp_path, device):
    cpu_model = build_model(small_cfg(tmp_path, torch.device("cpu"))).eval()
    cuda_model = copy.deepcopy(cpu_model).to(device)
    x = clips()
    with torch.no_grad():
        want = cpu_model.encode_frames(x)
        got = cuda_model.encode_frames(x.to(device)).cpu()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def _train_loss(model, x, y, dtype) -> torch.Tensor:
    torch.manual_seed(1)  # the same training masks in every precision
    with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
        logits, aux = model(x, return_aux=True)
        return F.cross_entropy(logits.float(), y) + aux["loss_distill"].float()


def test_bf16_autocast_train_step_is_finite_and_close_to_fp32(tmp_path, device):
    model = build_model(small_cfg(tmp_path, device)).train()
    x, y = clips(4).to(device), torch.tensor([0, 1, 2, 3], device=device)
    ref = float(_train_loss(model, x, y, None))
    loss = _train_loss(model, x, y, torch.bfloat16)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    opt.step()
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert abs(float(loss) - ref) <= 0.02 * abs(ref)


def test_checkpoint_saved_on_cuda_loads_on_cpu(tmp_path, device):
    cfg = small_cfg(tmp_path, device)
    cuda_model = build_model(cfg).eval()
    opt = torch.optim.AdamW([p for p in cuda_model.parameters() if p.requires_grad], lr=1e-4)
    cuda_model(clips().to(device)).sum().backward()
    opt.step()  # optimizer state (exp_avg, exp_avg_sq) now lives on the GPU too
    with torch.no_grad():  # weights that differ from a fresh build, so loading is what makes them equal
        for p in cuda_model.parameters():
            p.add_(0.01)
    path = cu.save_checkpoint(cfg.OUTPUT_DIR, cuda_model, opt, 0, cfg)
    assert path and os.path.isfile(path)
    cpu_model = build_model(small_cfg(tmp_path, torch.device("cpu"))).eval()
    cpu_opt = torch.optim.AdamW([p for p in cpu_model.parameters() if p.requires_grad], lr=1e-4)
    assert cu.load_checkpoint(path, cpu_model, cpu_opt, None, strict=True) == 0
    assert all(p.device.type == "cpu" for p in cpu_model.parameters())
    assert all(t.device.type == "cpu" for s in cpu_opt.state.values() for t in s.values() if torch.is_tensor(t))
    x = clips()
    with torch.no_grad():
        torch.testing.assert_close(cpu_model(x), cuda_model(x.to(device)).cpu(), rtol=1e-4, atol=1e-4)


def test_compiled_video_model_equals_eager(tmp_path, device):
    eager = build_model(small_cfg(tmp_path, device)).eval()
    compiled = build_model(small_cfg(tmp_path, device, **{"MODEL.COMPILE": True})).eval()
    compiled.load_state_dict(eager.state_dict())
    x = clips().to(device)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-4)

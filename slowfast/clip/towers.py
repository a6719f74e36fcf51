"""open_clip's CLIP towers adapted to the video model: which towers qualify, and strict weight loading.

open_clip builds the model (any `open_clip.list_models()` name whose image tower is a ViT with a class
token, or a CLIP described by a `CLIPConfig` for `MODEL.ARCH custom` and OpenAI-layout files). The
image tower's residual blocks may then be replaced by temporal blocks that keep CLIP's parameter names,
so a checkpoint loads 1:1. Activation, LayerScale and the projection follow the checkpoint; a key the
model lacks, a key the file lacks, or a shape that differs is refused, naming the key.
"""

from __future__ import annotations

import copy
import difflib
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from slowfast.clip.weights import CLIPWeightsError
from slowfast.config.choices import ARCH_TO_OPEN_CLIP, ARCHS, CUSTOM_ARCH

# open_clip's default LayerScale init; the checkpoint's gammas overwrite it.
_LS_INIT = 1e-5


@dataclass(frozen=True)
class CLIPConfig:
    """Sizes of an OpenAI-layout CLIP (what `MODEL.CUSTOM_CLIP` sets and what a state dict reveals)."""

    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    vision_patch_size: int
    vision_heads: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int

    def open_clip_config(self) -> dict[str, Any]:
        """The same model as an open_clip model config."""
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {
                "image_size": self.image_resolution, "layers": self.vision_layers, "width": self.vision_width,
                "patch_size": self.vision_patch_size, "head_width": self.vision_width // self.vision_heads,
            },
            "text_cfg": {
                "context_length": self.context_length, "vocab_size": self.vocab_size,
                "width": self.transformer_width, "heads": self.transformer_heads, "layers": self.transformer_layers,
            },
            "quick_gelu": True,  # OpenAI's CLIPs, and ours, use QuickGELU
        }


def _open_clip_cls():
    from open_clip.model import CLIP as OpenClipCLIP
    from open_clip.transformer import text_global_pool

    class ClipModel(OpenClipCLIP):
        """open_clip's CLIP whose `encode_text` also takes token rows shorter than the context.

        Tokens after the end-of-text token cannot influence it (causal attention), so a batch cut to its
        longest text gives the full context's embeddings, several times faster (the classifier of 400
        classes x 28 templates is built at every start).
        """

        def encode_text(self, text: torch.Tensor, normalize: bool = False) -> torch.Tensor:
            n = text.shape[-1]
            if n > self.context_length:
                raise ValueError(f"text has {n} tokens; this CLIP's context length is {self.context_length}")
            if n == self.context_length or self.text_pool_type != "argmax":
                return super().encode_text(text, normalize=normalize)
            cast = self.transformer.get_cast_dtype()
            x = self.token_embedding(text).to(cast) + self.positional_embedding[:n].to(cast)
            x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask[:n, :n]))
            x = text_global_pool(x, text, "argmax")
            x = self.text_projection(x) if isinstance(self.text_projection, nn.Linear) else x @ self.text_projection
            return torch.nn.functional.normalize(x, dim=-1) if normalize else x

    return ClipModel


@functools.lru_cache(maxsize=1)
def _clip_class() -> type:
    return _open_clip_cls()


def new_clip(model_cfg: Mapping[str, Any]) -> nn.Module:
    """An open_clip CLIP (random init) from an open_clip model config; custom text towers are refused."""
    cfg = copy.deepcopy(dict(model_cfg))
    if cfg.pop("custom_text", False) or cfg.get("text_cfg", {}).get("hf_model_name"):
        raise CLIPWeightsError("only CLIPs with CLIP's own text tower and tokenizer are supported (custom text tower)")
    allowed = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "init_logit_scale", "init_logit_bias",
               "nonscalar_logit_scale"}
    return _clip_class()(**{k: v for k, v in cfg.items() if k in allowed})


def CLIP(config: CLIPConfig) -> nn.Module:  # capitalised: the constructor name callers use
    """An open_clip CLIP of `config`'s sizes (random init, OpenAI key layout), with `config` attached."""
    model = new_clip(config.open_clip_config())
    model.config = config
    return model


def custom_clip_config(
    embed_dim: int = 64, image_resolution: int = 64, vision_patch: int = 8, vision_width: int = 128,
    vision_layers: int = 4, vision_heads: int = 2, text_width: int = 64, text_layers: int = 2, text_heads: int = 2,
    context_length: int = 77, vocab_size: int = 49408,
) -> CLIPConfig:
    return CLIPConfig(
        embed_dim=embed_dim, image_resolution=image_resolution, vision_layers=vision_layers,
        vision_width=vision_width, vision_patch_size=vision_patch, vision_heads=vision_heads,
        context_length=context_length, vocab_size=vocab_size, transformer_width=text_width,
        transformer_heads=text_heads, transformer_layers=text_layers,
    )


def random_clip_state_dict(config: CLIPConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a randomly initialised CLIP (deterministic for a seed): for `MODEL.ARCH custom` and tests."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = CLIP(config)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.state_dict()


def _count(sd: Mapping[str, torch.Tensor], prefix: str, suffix: str) -> int:
    return len({k[len(prefix):].split(".")[0] for k in sd if k.startswith(prefix) and k.endswith(suffix)})


def infer_clip_config(sd: Mapping[str, torch.Tensor], source: str = "state dict") -> CLIPConfig:
    """Architecture sizes read off an OpenAI-layout CLIP state dict (heads: width // 64, as OpenAI's)."""
    if "visual.proj" not in sd:
        raise CLIPWeightsError(
            f"{source}: no 'visual.proj' key; only OpenAI-layout ViT CLIP checkpoints can be read without a "
            "model name (ResNet CLIP is not supported; set MODEL.ARCH to the open_clip name for other layouts)"
        )
    try:
        vision_width, patch = sd["visual.conv1.weight"].shape[0], sd["visual.conv1.weight"].shape[-1]
        positions = sd["visual.positional_embedding"].shape[0]
        text_width = sd["ln_final.weight"].shape[0]
        config = CLIPConfig(
            embed_dim=sd["text_projection"].shape[1],
            image_resolution=patch * round((positions - 1) ** 0.5),
            vision_layers=_count(sd, "visual.transformer.resblocks.", ".attn.in_proj_weight"),
            vision_width=vision_width, vision_patch_size=patch, vision_heads=max(1, vision_width // 64),
            context_length=sd["positional_embedding"].shape[0], vocab_size=sd["token_embedding.weight"].shape[0],
            transformer_width=text_width, transformer_heads=max(1, text_width // 64),
            transformer_layers=_count(sd, "transformer.resblocks.", ".attn.in_proj_weight"),
        )
    except KeyError as e:
        raise CLIPWeightsError(f"{source}: missing CLIP key {e.args[0]!r}") from None
    grid = config.image_resolution // patch
    if grid * grid + 1 != positions:
        raise CLIPWeightsError(f"{source}: visual positional embedding does not describe a square patch grid")
    return config


def model_config_for(arch: Optional[str], sd: Mapping[str, torch.Tensor], source: str) -> dict[str, Any]:
    """The open_clip model config of `arch` (an open_clip name or a short OpenAI name), or inferred from `sd`.

    A named architecture the video model cannot use is refused with the reason. LayerScale follows the
    checkpoint: gammas in the file switch it on (their values are loaded).
    """
    name = ARCH_TO_OPEN_CLIP.get(arch or "", arch)
    if not name or name == CUSTOM_ARCH:
        cfg = infer_clip_config(sd, source).open_clip_config()
    else:
        cfg = _named_model_config(name)
        reasons = _unusable_reasons(cfg)
        if reasons:
            raise CLIPWeightsError(f"MODEL.ARCH {arch!r} cannot be used: {'; '.join(reasons)}")
        if arch in ARCH_TO_OPEN_CLIP:
            cfg["quick_gelu"] = True  # the short names mean OpenAI's releases, trained with QuickGELU
    for tower, prefix in (("vision_cfg", "visual.transformer.resblocks.0."), ("text_cfg", "transformer.resblocks.0.")):
        if f"{prefix}ls_1.gamma" in sd and cfg[tower].get("ls_init_value") is None:
            cfg[tower]["ls_init_value"] = _LS_INIT
    return cfg


def check_arch(arch: str) -> None:
    """Refuse a MODEL.ARCH the video model cannot be built from, with the reason, before any weights are looked
    up: an unknown name (with the close matches), a missing model-config file, a tower that is not a ViT
    pooled by its class token, a custom text tower. The short names and `custom` are always usable."""
    if arch and arch != CUSTOM_ARCH and arch not in ARCH_TO_OPEN_CLIP:
        model_config_for(arch, {}, f"MODEL.ARCH {arch}")


def _named_model_config(name: str) -> dict[str, Any]:
    """A copy of the open_clip model config `name` (an `open_clip.list_models()` name or a `.json` path)."""
    import open_clip

    if name.endswith(".json"):  # an open_clip model-config file of the user's own
        return _read_model_config(name)
    cfg = open_clip.get_model_config(name)
    if cfg is None:
        known = {m.lower(): m for m in (*ARCHS, *open_clip.list_models())}
        close = [known[m] for m in difflib.get_close_matches(name.lower(), list(known), n=3, cutoff=0.6)]
        hint = f" (close matches: {', '.join(close)})" if close else ""
        raise CLIPWeightsError(
            f"MODEL.ARCH {name!r}: unknown architecture{hint}; it takes {', '.join(ARCHS)}, an "
            "open_clip.list_models() ViT name or the path of an open_clip model-config .json"
        )
    return copy.deepcopy(cfg)


def _unusable_reasons(cfg: Mapping[str, Any]) -> list[str]:
    """Why the video model cannot use the CLIP of this open_clip model config (empty: it can). The same
    refusals as `check_video_tower` and `new_clip`, read off the config so that they come before any weights
    are looked up."""
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    reasons = []
    if isinstance(vision.get("layers"), (list, tuple)):
        reasons.append("its image tower is a ResNet, not a ViT (the temporal operators need a ViT)")
    elif vision.get("timm_model_name"):
        reasons.append(f"its image tower is the timm model {vision['timm_model_name']!r}, not open_clip's ViT "
                       "(the temporal operators need open_clip's ViT)")
    if vision.get("attentional_pool"):
        reasons.append("its image tower pools by attention (the video model reads the class token)")
    elif vision.get("pool_type", "tok") != "tok":
        reasons.append(f"its image tower pools by {vision['pool_type']!r}, not by the class token")
    if cfg.get("custom_text") or cfg.get("multimodal_cfg") or text.get("hf_model_name"):
        reasons.append("it has a custom text tower, as SigLIP, CoCa, EVA and HF text models do (only CLIP's own "
                       "text tower and tokenizer are supported)")
    return reasons


def _read_model_config(path: str) -> dict[str, Any]:
    import json

    if not os.path.isfile(path):
        raise CLIPWeightsError(f"MODEL.ARCH {path}: file not found (the path of an open_clip model-config .json)")
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise CLIPWeightsError(f"MODEL.ARCH {path}: cannot read the open_clip model config ({e})") from None
    cfg = cfg.get("model_cfg", cfg) if isinstance(cfg, dict) else cfg
    if not isinstance(cfg, dict) or not all(k in cfg for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise CLIPWeightsError(f"MODEL.ARCH {path}: not an open_clip model config (embed_dim, vision_cfg, text_cfg)")
    return cfg


def vision_geometry(arch: Optional[str], sd: Mapping[str, torch.Tensor], source: str) -> tuple[int, int]:
    """(width, patch-grid side) of the image tower that `arch` and `sd` describe (before it is built)."""
    vision = model_config_for(arch, sd, source)["vision_cfg"]
    return int(vision["width"]), int(vision["image_size"]) // int(vision["patch_size"])


def check_video_tower(visual: nn.Module, name: str) -> None:
    """Refuse image towers the temporal operators cannot wrap: not a ViT, no class token, pooled by attention."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if not isinstance(visual, VisionTransformer):
        raise CLIPWeightsError(f"{name}: the image tower is {type(visual).__name__}, not a ViT; the temporal operators need a ViT")
    if getattr(visual, "attn_pool", None) is not None:
        raise CLIPWeightsError(f"{name}: the image tower pools by attention; the video model reads the class token")
    if getattr(visual, "pool_type", "tok") != "tok":
        raise CLIPWeightsError(f"{name}: the image tower pools by {visual.pool_type!r}, not the class token")
    if visual.grid_size[0] != visual.grid_size[1]:
        raise CLIPWeightsError(f"{name}: the patch grid {visual.grid_size} is not square")
    if not all(type(b) is ResidualAttentionBlock for b in visual.transformer.resblocks):
        raise CLIPWeightsError(f"{name}: the image tower's blocks are not CLIP's residual attention blocks")


def load_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str, allow_missing: tuple[str, ...] = ()) -> None:
    """Load `sd` into `model`; a missing (not matching `allow_missing`) or unknown key or a shape mismatch is an error."""
    model_sd = model.state_dict()
    shapes = [f"{k}: file {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}"
              for k, v in sd.items() if k in model_sd and model_sd[k].shape != v.shape]
    if shapes:
        raise CLIPWeightsError(f"{source}: shape mismatch for {len(shapes)} keys (wrong MODEL.ARCH?): " + "; ".join(shapes[:3]))
    result = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    missing = [k for k in result.missing_keys if not any(a in k for a in allow_missing)]
    if missing or result.unexpected_keys:
        raise CLIPWeightsError(
            f"{source}: {len(missing)} CLIP keys missing from the file ({', '.join(missing[:5])}) and "
            f"{len(result.unexpected_keys)} keys unknown to the model ({', '.join(result.unexpected_keys[:5])})"
        )


BlockFactory = Callable[[nn.Module, int], nn.Module]
"""`factory(clip_block, layer_index) -> block`: the replacement of one of the image tower's blocks."""


def build_clip(
    sd: Mapping[str, torch.Tensor],
    source: str = "state dict",
    arch: Optional[str] = None,
    vision_block_factory: Optional[BlockFactory] = None,
    use_checkpoint: bool = False,
    allow_missing: tuple[str, ...] = (),
    context_length: Optional[int] = None,
) -> nn.Module:
    """An fp32 open_clip CLIP (eval mode) of `arch` (or the architecture `sd` reveals), loaded with `sd`."""
    cfg = model_config_for(arch, sd, source)
    ctx = cfg["text_cfg"].get("context_length", 77)
    if context_length is not None and context_length != ctx:
        if context_length > ctx:
            raise CLIPWeightsError(f"{source}: context length {context_length} exceeds the checkpoint's {ctx}")
        cfg["text_cfg"]["context_length"] = context_length
        sd = {**sd, "positional_embedding": sd["positional_embedding"][:context_length]}
    model = new_clip(cfg)
    check_video_tower(model.visual, arch or source)
    if vision_block_factory is not None:
        blocks = model.visual.transformer.resblocks
        for i in range(len(blocks)):
            blocks[i] = vision_block_factory(blocks[i], i)
    load_strict(model, sd, source, allow_missing=allow_missing)
    model.set_grad_checkpointing(use_checkpoint)
    return model.float().eval()


def load_clip(name_or_path: str, arch: Optional[str] = None, cache_dir: Optional[str] = None) -> nn.Module:
    """A plain CLIP from a file (OpenAI layout or open_clip state dict) or a pretrained tag of `arch`."""
    from slowfast.clip.weights import read_state_dict

    sd = read_state_dict(name_or_path, model_name=ARCH_TO_OPEN_CLIP.get(arch or "", arch), cache_dir=cache_dir)
    model = build_clip(sd, source=name_or_path, arch=arch)
    model.config = infer_clip_config(sd, name_or_path)  # text-feature files record these sizes
    return model

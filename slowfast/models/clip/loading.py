"""Loading CLIP weights: OpenAI TorchScript archives or plain state dicts, by path or by name.

The architecture is inferred from the state dict, so any OpenAI-format checkpoint (including the
small random ones the tests write) builds the right model. Every key must load: missing or
unexpected keys are an error, never a print.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from typing import Optional
from collections.abc import Mapping

import torch

from slowfast.models.clip.model import CLIP, BlockFactory, CLIPConfig


class CLIPWeightsError(RuntimeError):
    """CLIP weights could not be found, read or matched to the model; the message names the file."""


# OpenAI's released weights: name -> (file name, SHA-256 of the file, URL).
_OPENAI = "https://openaipublic.azureedge.net/clip/models"
PRETRAINED: dict[str, tuple[str, str]] = {
    "ViT-B/32": ("ViT-B-32.pt", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"),
    "ViT-B/16": ("ViT-B-16.pt", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"),
    "ViT-L/14": ("ViT-L-14.pt", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"),
}
ARCH_TO_NAME = {"vitb32": "ViT-B/32", "vitb16": "ViT-B/16", "vitl14": "ViT-L/14"}
_META_KEYS = ("input_resolution", "context_length", "vocab_size")


def pretrained_url(name: str) -> str:
    fname, sha = PRETRAINED[name]
    return f"{_OPENAI}/{sha}/{fname}"


def default_cache_dir() -> str:
    return os.environ.get("STDD_CLIP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "clip")


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(url: str, target: str, sha256: str, timeout: float = 30.0) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        got = _sha256(tmp)
        if got != sha256:
            raise CLIPWeightsError(f"downloaded {url} has SHA-256 {got}, expected {sha256}; not saved")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve_clip_weights(name_or_path: str, cache_dir: Optional[str] = None, download: bool = True) -> str:
    """A path to CLIP weights: `name_or_path` itself if it is a file, else the cached file for a name.

    A named file missing from the cache is downloaded (and its SHA-256 checked) only when the network
    allows; otherwise the error says where to put the file.
    """
    if os.path.isfile(name_or_path):
        return name_or_path
    name = ARCH_TO_NAME.get(name_or_path, name_or_path)
    if name not in PRETRAINED:
        raise CLIPWeightsError(
            f"CLIP weights {name_or_path!r}: no such file, and not one of the known names "
            f"{', '.join(PRETRAINED)} (or archs {', '.join(ARCH_TO_NAME)})"
        )
    cache_dir = cache_dir or default_cache_dir()
    fname, sha = PRETRAINED[name]
    target = os.path.join(cache_dir, fname)
    if os.path.isfile(target):
        return target
    url = pretrained_url(name)
    if download:
        try:
            _download(url, target, sha)
            return target
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = f"download failed: {e}"
    else:
        reason = "downloading is disabled"
    raise CLIPWeightsError(
        f"CLIP weights {name} not found at {target} ({reason}). Download {url} on a machine with "
        f"network access and put it at that path (or set MODEL.CLIP_CACHE_DIR / $STDD_CLIP_CACHE), "
        f"or point MODEL.CLIP_WEIGHTS at the file."
    )


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The CLIP state dict in `path`: a TorchScript archive or a plain `torch.save`d state dict."""
    if not os.path.isfile(path):
        raise CLIPWeightsError(f"CLIP weights file not found: {path}")
    errors = []
    try:
        with warnings.catch_warnings():  # TorchScript is deprecated, but OpenAI's releases are archives
            warnings.simplefilter("ignore", FutureWarning)
            archive = torch.jit.load(path, map_location="cpu")
        sd = archive.state_dict()
    except Exception as e:  # not a TorchScript archive (or a broken one): try a plain state dict
        errors.append(f"as TorchScript: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e2:
            errors.append(f"as a state dict: {type(e2).__name__}: {str(e2).splitlines()[0] if str(e2) else ''}")
            raise CLIPWeightsError(
                f"could not read CLIP weights from {path}: the file is truncated or not a CLIP checkpoint "
                f"({'; '.join(errors)})"
            ) from None
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CLIPWeightsError(f"{path} does not hold a state dict of tensors")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k not in _META_KEYS}


def infer_clip_config(sd: Mapping[str, torch.Tensor], source: str = "state dict") -> CLIPConfig:
    """Architecture sizes read off an OpenAI-layout CLIP state dict."""
    if "visual.proj" not in sd:
        raise CLIPWeightsError(
            f"{source}: no 'visual.proj' key; only OpenAI-layout ViT CLIP checkpoints are supported "
            "(ResNet CLIP is not)"
        )
    try:
        vision_width = sd["visual.conv1.weight"].shape[0]
        vision_layers = len({k.split(".")[3] for k in sd if k.startswith("visual.transformer.resblocks.") and k.endswith(".attn.in_proj_weight")})
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        embed_dim = sd["text_projection"].shape[1]
        context_length = sd["positional_embedding"].shape[0]
        vocab = sd["token_embedding.weight"].shape[0]
        tw = sd["ln_final.weight"].shape[0]
        text_layers = len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks.")})
    except KeyError as e:
        raise CLIPWeightsError(f"{source}: missing CLIP key {e.args[0]!r}") from None
    if grid * grid + 1 != sd["visual.positional_embedding"].shape[0]:
        raise CLIPWeightsError(f"{source}: visual positional embedding does not describe a square patch grid")
    return CLIPConfig(
        embed_dim=embed_dim,
        image_resolution=patch * grid,
        vision_layers=vision_layers,
        vision_width=vision_width,
        vision_patch_size=patch,
        vision_heads=max(1, vision_width // 64),
        context_length=context_length,
        vocab_size=vocab,
        transformer_width=tw,
        transformer_heads=max(1, tw // 64),
        transformer_layers=text_layers,
    )


def load_into(model: torch.nn.Module, sd: Mapping[str, torch.Tensor], source: str, allow_missing: tuple[str, ...] = ()) -> None:
    """Load `sd` into `model`; any missing (not matching `allow_missing` substrings) or unexpected key is an error."""
    model_sd = model.state_dict()
    shape_errors = [
        f"{k}: file {tuple(v.shape)} vs model {tuple(model_sd[k].shape)}"
        for k, v in sd.items() if k in model_sd and model_sd[k].shape != v.shape
    ]
    if shape_errors:
        raise CLIPWeightsError(f"{source}: shape mismatch for {len(shape_errors)} keys: " + "; ".join(shape_errors[:5]))
    result = model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=False)
    missing = [k for k in result.missing_keys if not any(a in k for a in allow_missing)]
    if missing or result.unexpected_keys:
        raise CLIPWeightsError(
            f"{source}: {len(missing)} CLIP keys missing from the file ({', '.join(missing[:5])}) and "
            f"{len(result.unexpected_keys)} keys unknown to the model ({', '.join(result.unexpected_keys[:5])})"
        )


def build_clip(
    sd: Mapping[str, torch.Tensor],
    source: str = "state dict",
    vision_block_factory: Optional[BlockFactory] = None,
    use_checkpoint: bool = False,
    fused_attention: bool = True,
    allow_missing: tuple[str, ...] = (),
    context_length: Optional[int] = None,
) -> CLIP:
    """A fp32 CLIP built from and loaded with `sd` (`allow_missing`: substrings of new, non-CLIP keys)."""
    config = infer_clip_config(sd, source)
    if context_length is not None and context_length != config.context_length:
        if context_length > config.context_length:
            raise CLIPWeightsError(f"{source}: context length {context_length} exceeds the checkpoint's {config.context_length}")
        sd = dict(sd)
        sd["positional_embedding"] = sd["positional_embedding"][:context_length]
        config = CLIPConfig(**{**config.__dict__, "context_length": context_length})
    model = CLIP(config, vision_block_factory=vision_block_factory, use_checkpoint=use_checkpoint, fused_attention=fused_attention)
    load_into(model, sd, source, allow_missing=allow_missing)
    return model.float().eval()


def load_clip(
    name_or_path: str,
    cache_dir: Optional[str] = None,
    download: bool = True,
    **build_kwargs,
) -> CLIP:
    """CLIP from a file path or a name (`ViT-B/16`, `vitb16`, ...): resolved, read, architecture inferred, loaded."""
    path = resolve_clip_weights(name_or_path, cache_dir, download=download)
    return build_clip(read_state_dict(path), source=path, **build_kwargs)


def custom_clip_config(
    embed_dim: int = 64,
    image_resolution: int = 64,
    vision_patch: int = 8,
    vision_width: int = 128,
    vision_layers: int = 4,
    vision_heads: int = 2,
    text_width: int = 64,
    text_layers: int = 2,
    text_heads: int = 2,
    context_length: int = 77,
    vocab_size: int = 49408,
) -> CLIPConfig:
    return CLIPConfig(
        embed_dim=embed_dim,
        image_resolution=image_resolution,
        vision_layers=vision_layers,
        vision_width=vision_width,
        vision_patch_size=vision_patch,
        vision_heads=vision_heads,
        context_length=context_length,
        vocab_size=vocab_size,
        transformer_width=text_width,
        transformer_heads=text_heads,
        transformer_layers=text_layers,
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

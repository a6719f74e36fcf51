"""Reading CLIP weights without running code, and finding them by open_clip pretrained tag.

A TorchScript archive (OpenAI's release format) runs its own code while `torch.jit.load` opens it, so
no archive is opened that way unless its SHA-256 is one of OpenAI's releases. Every other archive is
read as data: the zip's `data.pkl` is unpickled with an allow-list (tensor rebuilds only; every
TorchScript class becomes an inert record) and the parameter and buffer names are read from the
`__parameters__` / `__buffers__` lines of its `code/` files as text. Plain state dicts go through
`torch.load(..., weights_only=True)`, `.safetensors` files through safetensors.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Optional

import torch

from slowfast.errors import UserError


class CLIPWeightsError(UserError, RuntimeError):
    """CLIP weights could not be found, read or matched to the model; the message names the file or key."""


# SHA-256 of OpenAI's released TorchScript archives (the only archives that `torch.jit.load` may open).
OPENAI_RELEASE_SHA256: dict[str, str] = {
    "ViT-B-32.pt": "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    "ViT-B-16.pt": "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f",
    "ViT-L-14.pt": "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    "ViT-L-14-336px.pt": "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02",
}
# Non-weight entries: metadata of OpenAI's archives, and open_clip's causal mask (a buffer archives keep).
_META_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")
HF_HUB_PREFIX = "hf-hub:"
_CONVERT_HINT = (
    "convert a file you trust to a plain state dict: python -c \"import torch; "
    "torch.save(torch.jit.load('ViT-B-16.pt', map_location='cpu').state_dict(), 'ViT-B-16-state.pt')\""
)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_torchscript_archive(path: str) -> bool:
    """A zip holding `code/` and `constants.pkl` (what `torch.jit.save` writes; `torch.save` writes neither)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


_STORAGE_DTYPES = {
    "HalfStorage": torch.float16, "FloatStorage": torch.float32, "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for every TorchScript class while unpickling: keeps the state, runs nothing."""

    qualified_name = ""
    state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ArchiveUnpickler(pickle.Unpickler):
    """Allow-list unpickler for a TorchScript archive's data.pkl: tensors and records, nothing callable."""

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
        super().__init__(file)
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            # NEWOBJ needs a type: a fresh inert subclass that only remembers the class name.
            return type(name, (_ScriptObject,), {"qualified_name": f"{module}.{name}"})
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]  # the storage classes are only read for their dtype
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in CLIP weights")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        if key not in self.storages:
            dtype = storage_type
            raw = bytearray(self.archive.read(f"{self.prefix}data/{key}"))
            flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            self.storages[key] = flat[:numel].clone()
        return self.storages[key]


def _rebuild_tensor(storage: torch.Tensor, offset: int, size, stride, requires_grad=False, hooks=None, *rest):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


_CLASS_RE = re.compile(r"^class (\w+)\(")
_LIST_RE = re.compile(r"^\s+__(parameters|buffers)__ = \[(.*)\]")


def _state_names(archive: zipfile.ZipFile, prefix: str) -> dict[str, set[str]]:
    """`qualified class name -> names of its parameters and buffers`, read from the code files as text."""
    names: dict[str, set[str]] = {}
    for entry in archive.namelist():
        if not (entry.startswith(f"{prefix}code/") and entry.endswith(".py")):
            continue
        module = entry[len(f"{prefix}code/"):-3].replace("/", ".")
        current = None
        for line in archive.read(entry).decode("utf-8", "replace").splitlines():
            m = _CLASS_RE.match(line)
            if m:
                current = names.setdefault(f"{module}.{m.group(1)}", set())
                continue
            m = _LIST_RE.match(line)
            if m and current is not None:
                current.update(s.strip().strip('"') for s in m.group(2).split(",") if s.strip())
    return names


def _collect(obj: _ScriptObject, names: dict[str, set[str]], prefix: str, out: dict[str, torch.Tensor]) -> None:
    state = obj.state if isinstance(obj.state, Mapping) else {}
    own = names.get(obj.qualified_name, set())
    for key, value in state.items():
        if isinstance(value, _ScriptObject):
            _collect(value, names, f"{prefix}{key}.", out)
        elif isinstance(value, torch.Tensor) and key in own:
            out[prefix + key] = value


def read_torchscript_weights(path: str) -> dict[str, torch.Tensor]:
    """The state dict of a TorchScript archive, read as data (no TorchScript code is run)."""
    with zipfile.ZipFile(path) as archive:
        pkl = next((n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1), None)
        if pkl is None:
            raise CLIPWeightsError(f"{path}: TorchScript archive without data.pkl")
        prefix = pkl[: -len("data.pkl")]
        with archive.open(pkl) as f:
            root = _ArchiveUnpickler(f, archive, prefix).load()
        if not isinstance(root, _ScriptObject):
            raise CLIPWeightsError(f"{path}: the archive does not hold a module")
        out: dict[str, torch.Tensor] = {}
        _collect(root, _state_names(archive, prefix), "", out)
    return out


def _read_archive(path: str) -> dict[str, torch.Tensor]:
    reason = "it holds no tensors readable as data"
    try:
        sd = read_torchscript_weights(path)
        if sd:
            return sd
    except (pickle.UnpicklingError, CLIPWeightsError, KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = f"{type(e).__name__}: {e}"
    if sha256_of(path) in OPENAI_RELEASE_SHA256.values():  # a known release: the code it runs is OpenAI's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(path, map_location="cpu").state_dict()
    raise CLIPWeightsError(
        f"{path} is a TorchScript archive whose weights could not be read as data ({reason}) and that is not a "
        f"known OpenAI release, so it is not opened (opening it would run its code); {_CONVERT_HINT}"
    )


def _unwrap(sd: Any, path: str) -> dict[str, torch.Tensor]:
    """Accept `{"state_dict": sd}` and DDP's `module.` prefix; drop OpenAI's metadata entries."""
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CLIPWeightsError(f"{path} does not hold a state dict of tensors")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k not in _META_KEYS}


def read_state_file(path: str) -> dict[str, torch.Tensor]:
    """The CLIP state dict in a local file (archive, `torch.save`d dict or safetensors), read without running code."""
    if not os.path.isfile(path):
        raise CLIPWeightsError(f"CLIP weights file not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return _unwrap(load_file(path), path)
    if is_torchscript_archive(path):
        return _unwrap(_read_archive(path), path)
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, not a checkpoint, or a pickle that needs code: all refused the same way
        first = str(e).splitlines()[0] if str(e) else ""
        raise CLIPWeightsError(
            f"could not read CLIP weights from {path}: the file is truncated or not a CLIP checkpoint "
            f"({type(e).__name__}: {first[:200]})"
        ) from None
    return _unwrap(sd, path)


def default_cache_dir() -> str:
    """Where pretrained weights are looked for and downloaded: $STDD_CLIP_CACHE, else open_clip's ~/.cache/clip."""
    return os.environ.get("STDD_CLIP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "clip")


def resolve_pretrained(model_name: str, tag: str, cache_dir: Optional[str] = None) -> str:
    """Local path of open_clip's pretrained `tag` for `model_name` (or `hf-hub:ORG/NAME`), downloaded through
    open_clip's own cache and checks when the network allows; otherwise one line saying where to put the file.

    Whether there is a network is decided once, by one short connection attempt (`_no_network`): without
    one, a file the hub client downloaded before is still found in its cache, and nothing else is tried.
    """
    import open_clip
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cache_dir = cache_dir or default_cache_dir()
    if tag.startswith(HF_HUB_PREFIX):
        cfg, where = {"hf_hub": tag[len(HF_HUB_PREFIX):].rstrip("/") + "/"}, f"https://huggingface.co/{tag[len(HF_HUB_PREFIX):]}"
    else:
        cfg = get_pretrained_cfg(model_name, tag)
        if not cfg:
            known = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)) or "none"
            raise CLIPWeightsError(
                f"CLIP weights {tag!r}: no such file, and not an open_clip pretrained tag of {model_name} (tags: {known})"
            )
        where = cfg.get("url") or f"https://huggingface.co/{cfg.get('hf_hub', '').rstrip('/')}"
    url = cfg.get("url", "")
    local = os.path.join(cache_dir, os.path.basename(url)) if url else ""
    if local and os.path.isfile(local):
        return local  # a file placed by hand (verified against OpenAI's hashes only if it is an archive)
    offline = _no_network(url)
    failure = f"cannot be downloaded: no network ({offline})"
    try:
        if offline is None or not url:  # offline, the hub client still returns a file it downloaded before
            with _hub_client_offline(offline is not None):
                return download_pretrained(cfg, prefer_hf_hub=not url, cache_dir=cache_dir)
    except Exception as e:  # the hub refused, or (offline) the file is not in its cache: one line with what to do
        if offline is None:
            failure = f"could not be downloaded ({type(e).__name__}: {' '.join(str(e).split())[:120]})"
    target = local or "a local file and set MODEL.CLIP_WEIGHTS to it"
    raise CLIPWeightsError(
        f"CLIP weights {model_name} '{tag}' are not in {cache_dir} and {failure}; download {where} on a machine "
        f"with network access and put it at {target} (cache folder: MODEL.CLIP_CACHE_DIR or $STDD_CLIP_CACHE)"
    )


# The one connection attempt that decides whether there is a network may take this long (seconds).
NETWORK_PROBE_TIMEOUT_S = 5.0
# The environment variables that put the Hugging Face hub client offline, and the values that mean "on".
_OFFLINE_FLAGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = ("1", "ON", "YES", "TRUE")


def _no_network(url: str) -> Optional[str]:
    """Why nothing can be downloaded from `url` (empty: the Hugging Face hub), or None when the server, or
    the proxy the environment names for it, takes a connection. Without this, a download without network
    costs the hub client about a minute of retries ("Retrying in 8s") before it fails."""
    import socket
    import urllib.parse
    import urllib.request

    flag = next((f for f in _OFFLINE_FLAGS if os.environ.get(f, "").strip().upper() in _TRUE), None)
    if flag:
        return f"{flag} is set"
    if not url:
        from huggingface_hub import constants

        url = constants.ENDPOINT  # HF_ENDPOINT, as the hub client read it
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or (443 if via.scheme == "https" else 1080 if via.scheme.startswith("socks") else 80)
    try:
        socket.create_connection((host, port), timeout=NETWORK_PROBE_TIMEOUT_S).close()
    except OSError as e:
        return f"cannot connect to {host}:{port}: {e.strerror or e}"
    return None


@contextmanager
def _hub_client_offline(offline: bool) -> Iterator[None]:
    """While `offline`, the Hugging Face hub client answers from its cache only (no request, no retries). It
    reads HF_HUB_OFFLINE once, when imported: the switch is its module constant, restored afterwards."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before


def read_state_dict(
    path_or_tag: str, model_name: Optional[str] = None, cache_dir: Optional[str] = None
) -> dict[str, torch.Tensor]:
    """The CLIP state dict (OpenAI / open_clip key layout) of a local file, or of an open_clip pretrained tag of
    `model_name` or `hf-hub:ORG/NAME`, read without running any code from the file."""
    if os.path.isfile(path_or_tag) or model_name is None and not path_or_tag.startswith(HF_HUB_PREFIX):
        return read_state_file(path_or_tag)
    return read_state_file(resolve_pretrained(model_name or "", path_or_tag, cache_dir))

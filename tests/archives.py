"""TorchScript archives laid out like OpenAI's CLIP releases, built by the tests from a state dict."""

from typing import Optional

import torch


class Holder(torch.nn.Module):
    """A scriptable container whose only job is to hold parameters under CLIP's key names."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def clip_module_tree(sd: dict, dtype: Optional[torch.dtype] = None) -> Holder:
    """A module tree whose state dict has the keys and values of `sd` (cast to `dtype` if given),
    ready for `torch.jit.script`; callers add metadata buffers or other submodules first."""
    root = Holder()
    for key, value in sd.items():
        *parents, leaf = key.split(".")
        module = root
        for p in parents:
            if not hasattr(module, p):
                module.add_module(p, Holder())
            module = getattr(module, p)
        tensor = value.clone() if dtype is None else value.clone().to(dtype)
        module.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    return root

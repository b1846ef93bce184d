"""Helpers shared by the compression plugins: which weights are compressible, sparsity, honest sizes."""
from __future__ import annotations

import gzip

import torch
from torch import nn

from suite.measure import state_dict_bytes
from suite.profiles import Recipe
from suite.spec import CellSpec


def baseline_dependency(spec: CellSpec) -> dict[str, CellSpec]:
    """Compression starts from the trained baseline of the same model, data, profile and seed."""
    return {"baseline": spec.with_(method="baseline", params={})}


def finetune_recipe(recipe: Recipe, fraction: float, lr_scale: float = 1.0) -> Recipe:
    """The recipe for a fine-tuning stage: `fraction` of its epochs (at least one), lr scaled."""
    return recipe.with_(epochs=max(1, round(recipe.epochs * fraction)), lr=recipe.lr * lr_scale)


def compressible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every convolution and linear layer (their `weight` is what pruning and clustering act on)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the weights of the compressible layers."""
    total = zeros = 0
    for _, m in compressible_layers(model):
        w = m.weight.detach()
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / max(total, 1)


def gzip_size(model: nn.Module) -> int:
    """Bytes of the gzip-compressed saved state dict: zeros and shared values compress, dense kernels do not."""
    return len(gzip.compress(state_dict_bytes(model), compresslevel=9))


def quantized_parameter_count(model: nn.Module) -> int:
    """Weights and biases of a converted int8 model, which holds them outside `parameters()`."""
    count = 0
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and key.endswith((".weight", ".bias")):
            count += value.numel()
        elif isinstance(value, tuple):  # packed linear params: (weight, bias)
            count += sum(v.numel() for v in value if isinstance(v, torch.Tensor))
    return count

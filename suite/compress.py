"""Helpers shared by the compression plugins: which weights are compressible, sparsity, honest sizes."""
from __future__ import annotations

import gzip

import torch
from torch import nn

from suite.measure import state_dict_bytes
from suite.plugins import Method
from suite.profiles import Recipe
from suite.spec import CellSpec


def baseline_dependency(spec: CellSpec) -> dict[str, CellSpec]:
    """Compression starts from the trained baseline of the same model, data, profile and seed."""
    return {"baseline": spec.baseline()}


class CompressionMethod(Method):
    """A compression plugin: starts from the trained baseline cell of its model and only fine-tunes it, for
    `finetune_fraction(params)` of the recipe's epochs (Params.finetune_fraction unless it says otherwise)."""
    family = "compression"

    def requires(self, spec, params):
        return baseline_dependency(spec)

    def finetune_fraction(self, params) -> float:
        return params.finetune_fraction

    def estimated_epochs(self, recipe: Recipe, params) -> float:
        return recipe.epochs * self.finetune_fraction(params)


def finetune_recipe(recipe: Recipe, fraction: float, lr_scale: float = 1.0) -> Recipe:
    """The recipe for a fine-tuning stage: `fraction` of its epochs (Recipe.scaled), lr scaled."""
    return recipe.scaled(fraction, lr=recipe.lr * lr_scale)


def shaped_like(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """`model` with every conv, linear and BatchNorm layer resized to the tensors of `state` (a channel-pruned
    model's state dict), so `load_state_dict(state)` fits: a pruned model is rebuilt from its weights alone."""
    for name, m in model.named_modules():
        weight = state.get(f"{name}.weight" if name else "weight")
        if weight is None:
            continue
        if isinstance(m, nn.Conv2d):
            depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            m.out_channels = weight.shape[0]
            m.in_channels = weight.shape[0] if depthwise else weight.shape[1] * m.groups
            m.groups = weight.shape[0] if depthwise else m.groups
        elif isinstance(m, nn.Linear):
            m.out_features, m.in_features = weight.shape
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.num_features = weight.shape[0]
        else:
            continue
        for key, param in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            stored = state.get(f"{name}.{key}" if name else key)
            if stored is not None and stored.shape != param.shape:
                new = torch.empty_like(stored, device=param.device, dtype=param.dtype)
                setattr(m, key, nn.Parameter(new, requires_grad=param.requires_grad) if isinstance(param, nn.Parameter) else new)
    return model


def load_shaped(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """`model` resized to `state` (see `shaped_like`) with `state` loaded: a channel-pruned model restored."""
    model = shaped_like(model, state)
    model.load_state_dict(state)
    return model


def compressible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every convolution and linear layer (their `weight` is what pruning and clustering act on)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def classifier_layer(model: nn.Module) -> nn.Module | None:
    """The layer that outputs the logits (`head.fc` of every baseline), or None for a model without one
    (an autoencoder's encoder)."""
    return getattr(getattr(model, "head", None), "fc", None)


def prunable_layers(model: nn.Module, include_classifier: bool = False) -> list[tuple[str, nn.Module]]:
    """The compressible layers that pruning acts on: the classifier is exempt unless asked, as ShrinkBench's
    `VisionPruning.can_prune` exempts a layer marked `is_classifier` (pruning it can silence whole classes)."""
    fc = None if include_classifier else classifier_layer(model)
    return [(name, m) for name, m in compressible_layers(model) if m is not fc]


def sparsity_for_compression(model: nn.Module, compression: float, include_classifier: bool = False) -> float:
    """The fraction of the prunable weights to zero so that the whole model's compression -- all parameters
    (biases, BatchNorm and exempt layers included) over the non-zero ones -- equals `compression`: ShrinkBench's
    `fraction_to_keep`, keep = (total / compression - unprunable) / prunable, with the weights of
    `prunable_layers` as the prunable part."""
    total = sum(p.numel() for p in model.parameters())
    prunable = sum(m.weight.numel() for _, m in prunable_layers(model, include_classifier))
    keep = (total / compression - (total - prunable)) / prunable
    if not 0 < keep <= 1:
        raise ValueError(f"cannot compress {type(model).__name__} {compression:g}x: {total - prunable} of its "
                         f"{total} parameters are not prunable")
    return 1 - keep


def weight_sparsity(model: nn.Module, layers: list[tuple[str, nn.Module]] | None = None) -> float:
    """Fraction of zeros among the weights of `layers` (default: every compressible layer)."""
    total = zeros = 0
    for _, m in compressible_layers(model) if layers is None else layers:
        w = m.weight.detach()
        total += w.numel()
        zeros += int((w == 0).sum())
    return zeros / max(total, 1)


def gzip_size(model: nn.Module) -> int:
    """Bytes of the gzip-compressed saved state dict: zeros and shared values compress, dense kernels do not."""
    return len(gzip.compress(state_dict_bytes(model), compresslevel=9))


def quantized_parameter_count(model: nn.Module) -> int:
    """Weights and biases of a converted int8 model, which holds them outside `parameters()` (FX: packed
    `.weight`/`.bias`; pt2e: int8 `_frozen_param` tensors and fp32 biases beside scales and zero points)."""
    count = 0
    for key, value in model.state_dict().items():
        if isinstance(value, torch.Tensor) and (key.endswith((".weight", ".bias", "_bias")) or value.dtype == torch.int8):
            count += value.numel()
        elif isinstance(value, tuple):  # packed linear params: (weight, bias)
            count += sum(v.numel() for v in value if isinstance(v, torch.Tensor))
    return count

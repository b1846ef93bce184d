"""Unstructured pruning (torch.nn.utils.prune) by magnitude -- or at random, ShrinkBench's control --
starting from the trained baseline.

- `schedule="constant"`: prune the smallest-magnitude weights once to `sparsity` (globally across
  layers, or per layer), then fine-tune with the mask held (Han et al. 2015).
- `schedule="gradual"`: Zhu & Gupta 2017, s_t = s_f + (s_i - s_f)(1 - t/n)^3, applied at the start
  of every fine-tuning epoch; the final sparsity is reached at the start of the last epoch, which then
  fine-tunes at it.
Each step sets the masks to the s_t fraction of the weights with the smallest magnitude (or the lowest
seeded random scores), never reviving a pruned weight. Size is reported as the gzip of the saved state dict (zeros compress);
dense kernels do not run faster on unstructured zeros, so latency is expected to stay unchanged.

As ShrinkBench (`shrinkbench.pruning.VisionPruning`, `GlobalMagWeight`, `LayerMagWeight`):
- the classifier (`head.fc`) is exempt (`prune_classifier=True` prunes it too; version 1 did);
- `compression` > 0 asks for a whole-model compression ratio (all parameters / non-zero ones, biases and
  BatchNorm included), solved for the fraction of prunable weights to keep by ShrinkBench's `fraction_to_keep`;
  it then replaces `sparsity`. The pruning table asks for ratios this way.
Departures, stated: biases are never pruned (ShrinkBench masks a prunable layer's bias with its weight; the
CIFAR ResNets' prunable convs have none, LeNet-5's 216 are 0.4 % of its parameters); masks keep the exact count
of largest scores (top-k) where ShrinkBench thresholds at a `np.quantile`, which can differ by one weight at
the boundary; global random pruning draws exactly that count where ShrinkBench's `RandomPruning` keeps each
weight with that probability, layer by layer.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune

from suite.compress import (CompressionMethod, compressible_layers, finetune_recipe, gzip_size, prunable_layers,
                            sparsity_for_compression, weight_sparsity)
from suite.plugins import NON_NEGATIVE, POSITIVE, register_method


@dataclass(frozen=True)
class PruneParams:
    ranges: ClassVar[dict[str, str]] = {"sparsity": "[0, 1)", "initial_sparsity": "[0, 1)", "finetune_fraction": NON_NEGATIVE,
                                        "compression": NON_NEGATIVE, "finetune_lr_scale": POSITIVE}
    added_later: ClassVar[tuple[str, ...]] = ("finetune_lr_scale",)  # published prune cells keep their keys
    sparsity: float = 0.5  # final fraction of zero weights in conv and linear layers
    scope: str = "global"  # "global" (one threshold for all layers) or "layer" (the same fraction in each)
    schedule: str = "constant"  # or "gradual"
    initial_sparsity: float = 0.5  # gradual only
    finetune_fraction: float = 0.5  # fine-tuning epochs as a fraction of the recipe's
    criterion: str = "magnitude"  # or "random": weights drawn uniformly (seeded by the cell's seed)
    compression: float = 0.0  # > 0: whole-model compression ratio asked (ShrinkBench's), replacing `sparsity`
    prune_classifier: bool = False  # ShrinkBench exempts the classifier layer
    finetune_lr_scale: float = 1.0  # the fine-tuning lr as a multiple of the recipe's (QAT's control: QAT's scale)

    def __post_init__(self) -> None:
        if self.scope not in {"global", "layer"} or self.schedule not in {"constant", "gradual"} \
                or self.criterion not in {"magnitude", "random"}:
            raise ValueError(f"prune: scope must be global|layer, schedule constant|gradual, criterion "
                             f"magnitude|random, got {self}")
        if self.compression and self.compression < 1:
            raise ValueError(f"prune: compression must be >= 1 (or 0 to use sparsity), got {self.compression}")


def gradual_sparsity(step: int, steps: int, initial: float, final: float) -> float:
    """Zhu & Gupta's cubic schedule over steps 0..steps-1 (initial at 0, final at the last step)."""
    if steps <= 1:
        return final
    return final + (initial - final) * (1 - step / (steps - 1)) ** 3


def prune_to(model: nn.Module, target: float, scope: str, criterion: str = "magnitude", seed: int = 0,
             include_classifier: bool = False) -> None:
    """Raise the sparsity of the prunable weights (`prunable_layers`: the classifier exempt unless
    `include_classifier`) to `target` (masks stay attached; pruned weights stay pruned).

    The masks are computed here rather than by torch's pruning functions, which flatten weights with
    `.view` and fail on channels_last weights -- the layout the harness trains in under bf16, where the
    gradual schedule prunes between epochs."""
    layers = [m for _, m in prunable_layers(model, include_classifier)]
    weights = [m.weight.detach() for m in layers]
    kept = [w != 0 for w in weights]
    total = sum(w.numel() for w in weights)
    if round(target * total) <= total - sum(int(k.sum()) for k in kept):
        return
    if criterion == "magnitude":
        scores = [w.abs().float() for w in weights]
    else:
        generator = torch.Generator().manual_seed(seed)
        scores = [torch.rand(w.shape, generator=generator).to(w.device) for w in weights]
    scores = [torch.where(k, s, torch.full_like(s, -1.0)) for s, k in zip(scores, kept)]  # pruned stay pruned
    if scope == "global":
        flat = torch.cat([s.reshape(-1) for s in scores])
        keep = torch.zeros_like(flat, dtype=torch.bool)
        keep[flat.topk(total - round(target * total)).indices] = True
        masks = list(keep.split([s.numel() for s in scores]))
    else:
        masks = []
        for s in scores:
            keep = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
            keep[s.reshape(-1).topk(s.numel() - round(target * s.numel())).indices] = True
            masks.append(keep)
    for m, keep, w in zip(layers, masks, weights):
        mask = keep.view(w.shape).to(w.dtype)
        if prune.is_pruned(m):
            m.weight_mask.copy_(mask)
            m.weight = m.weight_orig * m.weight_mask  # what torch's forward pre-hook sets
        else:
            prune.custom_from_mask(m, "weight", mask)


def bake_masks(model: nn.Module) -> None:
    """Replace every attached pruning mask by plain weights with zeros (layers without a mask -- sparsity 0 --
    are left as they are)."""
    for _, m in compressible_layers(model):
        if prune.is_pruned(m):
            prune.remove(m, "weight")


@register_method
class MagnitudePruning(CompressionMethod):
    name = "prune"
    version = "2"  # 2: classifier exempt, `compression` as ShrinkBench (1 pruned the classifier)
    family = "compression"
    Params = PruneParams
    description = "unstructured pruning by magnitude or at random (constant or gradual) with fine-tuning"

    def run(self, ctx):
        p = ctx.params
        model = ctx.deps["baseline"].load_model(ctx.device)
        recipe = finetune_recipe(ctx.recipe, p.finetune_fraction, p.finetune_lr_scale)
        epochs = recipe.epochs
        final = sparsity_for_compression(model, p.compression, p.prune_classifier) if p.compression else p.sparsity
        if p.schedule == "constant":
            schedule = [final] * epochs
        else:
            schedule = [gradual_sparsity(t, epochs, p.initial_sparsity, final) for t in range(epochs)]

        def prune(m: nn.Module, target: float, seed: int) -> None:
            prune_to(m, target, p.scope, p.criterion, seed, include_classifier=p.prune_classifier)

        prune(model, schedule[0] if schedule else final, ctx.spec.seed)  # 0 epochs: no tuning

        def next_step(epoch: int, m: nn.Module) -> None:  # epoch counts from 1; prepare the next epoch
            if epoch < epochs:
                prune(m, schedule[epoch], ctx.spec.seed + epoch)

        ctx.fit(model, recipe=recipe, stage="finetune", on_epoch_end=next_step)
        bake_masks(model)  # sparsity 0 (the dense fine-tuning control) attached none
        ctx.record(sparsity=weight_sparsity(model, prunable_layers(model, p.prune_classifier)),
                   weight_sparsity_all_layers=weight_sparsity(model), sparsity_schedule=schedule)
        return model

    def measure(self, ctx, model, metrics):
        return {"size_bytes": gzip_size(model), "size_format": "gzip of the fp32 state dict"}

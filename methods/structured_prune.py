"""Structured (channel) pruning with Torch-Pruning, starting from the trained baseline.

Removes `ratio` of the channels of every prunable layer by L2 magnitude, or at random (ShrinkBench's
control; Torch-Pruning's RandomImportance, seeded by the cell's seed) (Torch-Pruning's
MagnitudePruner follows the dependency graph, so residual connections and flatten layers stay
consistent), keeps the classifier's outputs, then fine-tunes. The result is a genuinely smaller dense
model: fewer parameters and FLOPs, and lower latency. Torch-Pruning's `pruning_ratio` is a ratio of
channels, not of parameters (0.4 keeps roughly 36 % of the parameters of a ResNet).
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

import torch

from suite.compress import CompressionMethod, finetune_recipe, load_shaped
from suite.plugins import NON_NEGATIVE, register_method


@dataclass(frozen=True)
class StructuredPruneParams:
    ranges: ClassVar[dict[str, str]] = {"ratio": "(0, 1)", "finetune_fraction": NON_NEGATIVE}
    ratio: float = 0.4  # fraction of channels removed in every prunable layer
    finetune_fraction: float = 0.5
    importance: str = "l2"  # or "random"

    def __post_init__(self) -> None:
        if self.importance not in {"l2", "random"}:
            raise ValueError(f"structured_prune: importance must be l2|random, got {self.importance!r}")


@register_method
class StructuredPruning(CompressionMethod):
    name = "structured_prune"
    version = "1"
    family = "compression"
    Params = StructuredPruneParams
    description = "channel pruning with Torch-Pruning (L2 magnitude or random), then fine-tuning"

    @staticmethod
    def remove_channels(model: torch.nn.Module, info, params: StructuredPruneParams, seed: int) -> None:
        """Remove `params.ratio` of the channels of every prunable layer of `model` (in place)."""
        import torch_pruning as tp

        device = next(model.parameters()).device
        example = torch.zeros(1, info.in_chans, info.image_size, info.image_size, device=device)
        importance = tp.importance.MagnitudeImportance(p=2) if params.importance == "l2" \
            else tp.importance.RandomImportance()
        pruner = tp.pruner.MagnitudePruner(model, example, importance=importance,
                                           pruning_ratio=params.ratio, ignored_layers=[model.head.fc])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pruner.step()

    def run(self, ctx):
        model = ctx.deps["baseline"].load_model(ctx.device).eval()
        before = sum(p.numel() for p in model.parameters())
        self.remove_channels(model, ctx.info, ctx.params, ctx.spec.seed)
        ctx.record(params_before=before, params_kept_fraction=sum(p.numel() for p in model.parameters()) / before)
        ctx.fit(model, recipe=finetune_recipe(ctx.recipe, ctx.params.finetune_fraction), stage="finetune")
        return model

    def timing_model(self, spec, info, params):
        """The same ratio removed from every layer of a fresh baseline: the same widths whichever channels go (the
        ratio is per layer, not global), so the same inference work as the trained cell's."""
        model = self.build_model(spec, info, params).eval()
        self.remove_channels(model, info, params, spec.seed)
        return model

    def restore(self, spec, info, params, state):
        """The pruned architecture follows from the saved weights' shapes."""
        return load_shaped(self.build_model(spec, info, params), state)

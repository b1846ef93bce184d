"""The plain baseline: train the registered model with cross-entropy by the profile's recipe.

The example every other plugin follows: declare Params, build the model, call `ctx.fit`, return it.
Its cells are also the teachers of distillers and the starting points of EncodeNet and compression.
"""
from __future__ import annotations

from typing import ClassVar
from dataclasses import dataclass

from torch import nn

from suite.context import CellContext
from suite.plugins import Method, NON_NEGATIVE, register_method


@dataclass(frozen=True)
class BaselineParams:
    ranges: ClassVar[dict[str, str]] = {"epochs_scale": NON_NEGATIVE}
    epochs_scale: float = 1.0  # train for this multiple of the recipe's epochs (equal-compute comparisons)


@register_method
class Baseline(Method):
    name = "baseline"
    version = "1"
    family = "baseline"
    Params = BaselineParams
    description = "the registered model trained with cross-entropy by the profile's recipe"

    def estimated_epochs(self, recipe, params) -> float:
        return recipe.epochs * params.epochs_scale

    def run(self, ctx: CellContext) -> nn.Module:
        model = self.build_model(ctx.spec, ctx.info, ctx.params)
        ctx.fit(model, recipe=ctx.recipe.scaled(ctx.params.epochs_scale))
        return model

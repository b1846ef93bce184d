"""Weight clustering (weight sharing), as in Deep Compression (Han et al. 2016, Sec. 3).

Each conv / linear layer's weights are clustered by 1-D k-means (scikit-learn) into 2^bits shared
values, with the centroids initialised linearly between the minimum and maximum weight (the paper's
best initialisation). The layer then computes with `centroids[index]`; fine-tuning trains only the
centroids together with the unclustered parameters (biases, BN). A centroid's gradient is the paper's
Eq. 3 sum over its member weights divided by their number: with the sum, an SGD step at the recipe's
learning rate moves a centroid as far as thousands of weight steps, and fine-tuning collapsed to chance
(LeNet-5 at lr 0.05, ResNet8 at lr 0.1: 10 %); with the mean it moves like the weights it stands for
(version 2; `tests/test_compression.py` fine-tunes a clustered ResNet8 under the `cpu` SGD recipe). Size counts what a deployment stores: `bits`-bit indices plus an
fp32 codebook per layer, plus every other tensor in fp32, computed rather than written as a file.
"""
from __future__ import annotations

import math
from typing import ClassVar
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from suite.compress import CompressionMethod, compressible_layers, finetune_recipe
from suite.plugins import NON_NEGATIVE, register_method


class SharedWeights(nn.Module):
    """Parametrization: the weight is looked up from trainable centroids by fixed cluster indices."""

    def __init__(self, weight: torch.Tensor, bits: int) -> None:
        super().__init__()
        from sklearn.cluster import KMeans

        values = weight.detach().cpu().reshape(-1, 1).double().numpy()
        k = min(2 ** bits, len(np.unique(values)))
        init = np.linspace(values.min(), values.max(), k).reshape(-1, 1)
        km = KMeans(n_clusters=k, init=init, n_init=1, max_iter=100).fit(values)
        self.centroids = nn.Parameter(torch.tensor(km.cluster_centers_.ravel(), dtype=weight.dtype, device=weight.device))
        self.register_buffer("index", torch.tensor(km.labels_, dtype=torch.long, device=weight.device).view(weight.shape))
        members = torch.bincount(self.index.flatten(), minlength=k).clamp_min(1).to(weight.dtype)
        self.centroids.register_hook(lambda grad: grad / members.to(grad.device))  # mean, not sum (docstring)

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return self.centroids[self.index]


@dataclass(frozen=True)
class ClusterParams:
    ranges: ClassVar[dict[str, str]] = {"bits": "[1, 8]", "finetune_fraction": NON_NEGATIVE}
    bits: int = 4  # 2^bits shared values per layer
    finetune_fraction: float = 0.5


def cluster_model(model: nn.Module, bits: int) -> list[nn.Module]:
    layers = []
    for _, m in compressible_layers(model):
        parametrize.register_parametrization(m, "weight", SharedWeights(m.weight, bits))
        m.parametrizations.weight.original.requires_grad_(False)  # only centroids learn
        layers.append(m)
    return layers


def clustered_size_bytes(model: nn.Module, bits: int) -> int:
    """bits-bit indices + fp32 codebook for clustered weights, fp32 for every other tensor."""
    clustered, total = 0, 0
    for _, m in compressible_layers(model):
        n = m.weight.numel()
        clustered += n
        total += math.ceil(n * bits / 8) + len(torch.unique(m.weight.detach())) * 4
    others = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point()) - clustered
    return total + 4 * others


@register_method
class WeightClustering(CompressionMethod):
    name = "cluster"
    version = "2"  # 2: centroid gradient averaged over its members (was summed)
    family = "compression"
    Params = ClusterParams
    description = "k-means weight sharing (2^bits values per layer) with centroid fine-tuning"

    def run(self, ctx):
        model = ctx.deps["baseline"].load_model(ctx.device)
        layers = cluster_model(model, ctx.params.bits)
        trainable = [p for p in model.parameters() if p.requires_grad]
        ctx.fit(model, recipe=finetune_recipe(ctx.recipe, ctx.params.finetune_fraction), stage="finetune",
                params=trainable)
        for m in layers:
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        ctx.record(distinct_values_per_layer=[len(torch.unique(m.weight.detach())) for m in layers])
        return model

    def measure(self, ctx, model, metrics):
        return {"size_bytes": clustered_size_bytes(model, ctx.params.bits),
                "size_format": f"{ctx.params.bits}-bit indices + fp32 codebooks (computed)"}

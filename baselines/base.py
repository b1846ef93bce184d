"""The one model shape every baseline follows: stem -> stages -> head.

Following timm, models expose `forward_features` (last feature map) and `forward_head` (pool + fully
connected layers). On top of that the suite needs:
- `forward_stages(x)`: every stage's output, for distillers (FitNet hints, FT factors);
- `forward_head(x, pre_logits=True)`: the penultimate embedding (RKD);
- `split(at)`: an (encoder, classifier) pair that composes back to the model, for EncodeNet and CAE-Net;
- `forward_with_features(x)`: stage outputs, embedding, logits, the stem's output and, for stages that
  can give it (`ActivatedStage`, `ResidualStage`), each stage's output before its last activation
  (OFD, ReviewKD), in one pass; `bn_before_relu()` the BatchNorm that feeds each such activation (OFD's
  margins). These are mdistiller's `feats`, `preact_feats`, `pooled_feat`, `get_bn_before_relu`.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn


class Features(NamedTuple):
    """Everything a distiller may read from one forward pass (mdistiller's names in brackets)."""
    stages: list[torch.Tensor]  # each stage's output [feats[1:]]
    embedding: torch.Tensor  # penultimate, pre-logits [pooled_feat]
    logits: torch.Tensor
    stem: torch.Tensor | None = None  # the stem's output [feats[0]]
    preact: list[torch.Tensor] | None = None  # each stage's output before its last activation [preact_feats[1:]]


class ActivatedStage(nn.Sequential):
    """A stage whose last module is its activation (not in-place), so its pre-activation output is at hand."""

    def forward_preact(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for module in list(self)[:-1]:
            x = module(x)
        return self[-1](x), x

    def bn_before_act(self) -> nn.BatchNorm2d:
        return [m for m in list(self)[:-1] if isinstance(m, nn.BatchNorm2d)][-1]


class ResidualStage(nn.Sequential):
    """A stage of residual blocks; its last block gives the pre-activation sum (`forward_preact`)."""

    def forward_preact(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in list(self)[:-1]:
            x = block(x)
        return self[-1].forward_preact(x)

    def bn_before_act(self) -> nn.BatchNorm2d:
        return self[-1].bn_before_act()


class ClassifierHead(nn.Module):
    """pool/flatten -> optional hidden fully connected layers -> final linear layer."""

    def __init__(self, pool: nn.Module, fc: nn.Linear, hidden: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.pool = pool
        self.hidden = nn.Sequential(*hidden)
        self.fc = fc

    @property
    def num_features(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.hidden(self.pool(x))
        return x if pre_logits else self.fc(x)


def pooled_linear_head(channels: int, num_classes: int) -> ClassifierHead:
    """Global average pooling + one linear layer (ResNet, VGG, MobileNetV2 on CIFAR)."""
    return ClassifierHead(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()), nn.Linear(channels, num_classes))


class StagedClassifier(nn.Module):
    # The stages whose outputs are mdistiller's / RepDistiller's `feats[1:]` for the same architecture (their
    # feats[0] is the stem's output); None = every stage in order, as for their ResNets and VGGs. A model whose
    # stages are finer than theirs names the ones they return (MobileNetV2).
    feats_stages: tuple[int, ...] | None = None

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], head: ClassifierHead) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

    def reference_stage(self, feats_index: int) -> int:
        """The stage whose output is the reference codebases' `feats[feats_index]` (1 = the first stage)."""
        order = self.feats_stages if self.feats_stages is not None else tuple(range(self.num_stages))
        if not 1 <= feats_index <= len(order):
            raise ValueError(f"{type(self).__name__} has no reference feats[{feats_index}] (1..{len(order)})")
        return order[feats_index - 1]

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def num_classes(self) -> int:
        return self.head.fc.out_features

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_with_features(self, x: torch.Tensor) -> Features:
        """Stage outputs, embedding, logits, stem output and pre-activation stage outputs in one pass."""
        stem = x = self.stem(x)
        stages, preacts = [], []
        for stage in self.stages:
            if hasattr(stage, "forward_preact"):
                x, pre = stage.forward_preact(x)
                preacts.append(pre)
            else:
                x = stage(x)
            stages.append(x)
        embedding = self.head(x, pre_logits=True)
        return Features(stages, embedding, self.head.fc(embedding), stem,
                        preacts if len(preacts) == len(stages) else None)

    def bn_before_relu(self) -> list[nn.BatchNorm2d]:
        """The BatchNorm feeding each stage's last activation (OFD's margins); stages must provide it."""
        missing = [i for i, s in enumerate(self.stages) if not hasattr(s, "bn_before_act")]
        if missing:
            raise NotImplementedError(f"{type(self).__name__}: stages {missing} expose no BatchNorm before their "
                                      "last activation")
        return [stage.bn_before_act() for stage in self.stages]

    def split(self, at: int | None = None) -> tuple[nn.Sequential, nn.Sequential]:
        """(encoder, classifier): encoder = stem + stages[:at], classifier = stages[at:] + head.

        `at` defaults to all stages, i.e. the feature extractor / fully connected split. The
        returned modules share parameters with this model; `classifier(encoder(x)) == model(x)`.
        """
        at = self.num_stages if at is None else at
        if not 0 <= at <= self.num_stages:
            raise ValueError(f"split point {at} outside 0..{self.num_stages}")
        encoder = nn.Sequential(self.stem, *self.stages[:at])
        classifier = nn.Sequential(*self.stages[at:], self.head)
        return encoder, classifier

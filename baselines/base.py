"""The one model shape every baseline follows: stem -> stages -> head.

Following timm, models expose `forward_features` (last feature map) and `forward_head` (pool + fully
connected layers). On top of that the suite needs:
- `forward_stages(x)`: every stage's output, for distillers (FitNet hints, FT factors);
- `forward_head(x, pre_logits=True)`: the penultimate embedding (RKD);
- `split(at)`: an (encoder, classifier) pair that composes back to the model, for EncodeNet and CAE-Net.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


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
    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], head: ClassifierHead) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.head = head

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

    def forward_with_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """(stage outputs, penultimate embedding, logits) in one pass, for distillers."""
        stages = self.forward_stages(x)
        embedding = self.head(stages[-1], pre_logits=True)
        return stages, embedding, self.head.fc(embedding)

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

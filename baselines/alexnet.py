"""AlexNet for 32x32 inputs (CAE-Net's CIFAR-10 reference model).

The CAE-Net paper does not print its AlexNet variant (it reports 9.3 M parameters). This one keeps
AlexNet's five convolutions (64-192-384-256-256 channels, 3x3 kernels for 32x32 inputs), three max
pools and a dropout classifier with two 1024-wide hidden layers: 7.5 M parameters for 10 classes.
"""
from __future__ import annotations

from torch import nn

from baselines.base import ClassifierHead, StagedClassifier
from baselines.registry import register_model


def _conv(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]


def build_alexnet(num_classes: int, in_chans: int, hidden: int, dropout: float, width: float = 1.0) -> StagedClassifier:
    c1, c2, c3, c4, c5 = (max(8, round(c * width)) for c in (64, 192, 384, 256, 256))
    stages = [
        nn.Sequential(*_conv(in_chans, c1), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(c1, c2), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(c2, c3), *_conv(c3, c4), *_conv(c4, c5), nn.AdaptiveMaxPool2d(4)),
    ]
    head = ClassifierHead(
        nn.Flatten(),
        nn.Linear(hidden, num_classes),
        hidden=[nn.Dropout(dropout), nn.Linear(c5 * 4 * 4, hidden), nn.ReLU(inplace=True),
                nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)],
    )
    return StagedClassifier(nn.Identity(), stages, head)


@register_model("alexnet", label="AlexNet")
def alexnet(num_classes: int = 10, in_chans: int = 3, hidden: int = 1024, dropout: float = 0.5) -> StagedClassifier:
    return build_alexnet(num_classes, in_chans, hidden, dropout)


@register_model("alexnet_small")
def alexnet_small(num_classes: int = 10, in_chans: int = 3) -> StagedClassifier:
    """A quarter of AlexNet's channels and 256-wide hidden layers: the KD student of the edge table (0.47 M)."""
    return build_alexnet(num_classes, in_chans, hidden=256, dropout=0.5, width=0.25)

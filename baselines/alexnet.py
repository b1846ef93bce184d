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


@register_model("alexnet")
def alexnet(num_classes: int = 10, in_chans: int = 3, hidden: int = 1024, dropout: float = 0.5) -> StagedClassifier:
    stages = [
        nn.Sequential(*_conv(in_chans, 64), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(64, 192), nn.MaxPool2d(2)),
        nn.Sequential(*_conv(192, 384), *_conv(384, 256), *_conv(256, 256), nn.AdaptiveMaxPool2d(4)),
    ]
    head = ClassifierHead(
        nn.Flatten(),
        nn.Linear(hidden, num_classes),
        hidden=[nn.Dropout(dropout), nn.Linear(256 * 4 * 4, hidden), nn.ReLU(inplace=True),
                nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True)],
    )
    return StagedClassifier(nn.Identity(), stages, head)

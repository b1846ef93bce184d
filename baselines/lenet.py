"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as used on MNIST by the compression and CAE-Net papers."""
from __future__ import annotations

from torch import nn

from baselines.base import ClassifierHead, StagedClassifier
from baselines.registry import register_model


def build_lenet5(num_classes: int, in_chans: int, width: float = 1.0) -> StagedClassifier:
    # conv1 is padded so a 28x28 digit gives the classic 16x5x5 map; the adaptive pool gives the same
    # 5x5 map for 32x32 inputs, so the model runs on CIFAR unchanged (61.7 K parameters on MNIST).
    c1, c2, f1, f2 = (max(1, round(n * width)) for n in (6, 16, 120, 84))
    stages = [
        nn.Sequential(nn.Conv2d(in_chans, c1, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(c1, c2, 5), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(5)),
    ]
    head = ClassifierHead(
        nn.Flatten(),
        nn.Linear(f2, num_classes),
        hidden=[nn.Linear(c2 * 5 * 5, f1), nn.ReLU(inplace=True), nn.Linear(f1, f2), nn.ReLU(inplace=True)],
    )
    return StagedClassifier(nn.Identity(), stages, head)


@register_model("lenet5", label="LeNet-5")
def lenet5(num_classes: int = 10, in_chans: int = 1) -> StagedClassifier:
    return build_lenet5(num_classes, in_chans)


@register_model("lenet5_half")
def lenet5_half(num_classes: int = 10, in_chans: int = 1) -> StagedClassifier:
    """Every layer half as wide (15.7 K parameters, 3.9x fewer): the compression paper's smaller KD student."""
    return build_lenet5(num_classes, in_chans, width=0.5)

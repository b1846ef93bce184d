"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, as used on MNIST by the compression and CAE-Net papers."""
from __future__ import annotations

from torch import nn

from baselines.base import ClassifierHead, StagedClassifier
from baselines.registry import register_model


@register_model("lenet5")
def lenet5(num_classes: int = 10, in_chans: int = 1) -> StagedClassifier:
    # conv1 is padded so a 28x28 digit gives the classic 16x5x5 map; the adaptive pool gives the same
    # 5x5 map for 32x32 inputs, so the model runs on CIFAR unchanged (61.7 K parameters on MNIST).
    stages = [
        nn.Sequential(nn.Conv2d(in_chans, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)),
        nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(5)),
    ]
    head = ClassifierHead(
        nn.Flatten(),
        nn.Linear(84, num_classes),
        hidden=[nn.Linear(16 * 5 * 5, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True)],
    )
    return StagedClassifier(nn.Identity(), stages, head)

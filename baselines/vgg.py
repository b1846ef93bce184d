"""VGG with batch norm for CIFAR (the layout mdistiller/RepDistiller use: five conv blocks, a max pool
after each of the first four, global average pooling, one linear layer)."""
from __future__ import annotations

from torch import nn

from baselines.base import StagedClassifier, pooled_linear_head
from baselines.registry import register_model

CONFIGS: dict[str, list[list[int]]] = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
}


def build_vgg(config: list[list[int]], num_classes: int, in_chans: int) -> StagedClassifier:
    stages, cin = [], in_chans
    for i, widths in enumerate(config):
        layers: list[nn.Module] = []
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            cin = w
        if i < len(config) - 1:
            layers.append(nn.MaxPool2d(2))
        stages.append(nn.Sequential(*layers))
    return StagedClassifier(nn.Identity(), stages, pooled_linear_head(cin, num_classes))


def _make(name: str) -> None:
    @register_model(name)
    def factory(num_classes: int = 10, in_chans: int = 3) -> StagedClassifier:
        return build_vgg(CONFIGS[name], num_classes, in_chans)

    factory.__name__ = name


for _name in CONFIGS:
    _make(_name)
